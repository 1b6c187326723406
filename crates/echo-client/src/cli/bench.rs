//! The `bench` command: load the server, check every echo, report throughput,
//! latency percentiles and errors, for people or (with `--json`) for scripts.

use std::io::{self, IsTerminal};
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use clap::builder::FalseyValueParser;
use echo_client::bench::{self, BenchConfig, BenchEvent, BenchProgress, BenchReport, Stop};
use echo_client::report::bench_banner;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{
    Options, interrupt, parse_positive, parse_seconds, parse_seconds_or_zero, print_line, printed,
};

/// The options of `bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Every echo is checked byte for byte; a corrupted, missing or unexpected echo is an error.
Over UDP, datagrams lost, duplicated or reordered, and the jitter (RFC 3550), are figures of
the path, not errors: the bench fails only if nothing at all comes back.
Latency is timed from each message's sending or, with --rate, from when it was due, so a
stalling server shows in the percentiles (the client's own timer, with its 1 ms resolution,
is not counted against the server). MB/s counts echoed payload bytes (10^6 a second),
each byte once. Exit status: 0 if there was no error, no connection failed and something came
back, 1 otherwise.
On a terminal a progress bar is drawn on stderr; with --json, stdout has the JSON only.

Examples:
  echo-client bench                      One connection, one message at a time, 10 s
  echo-client bench -c 100 -d 1 -t 5     100 connections
  echo-client bench -c 10 -d 32 -i 1     Pipelined, a line a second
  echo-client bench -r 5000 -t 30        5000 msgs/s in all, latency under a set load
  echo-client bench -n 100000 --json     A fixed number of messages, JSON for CI
  echo-client --udp bench -s 512         UDP datagrams of 512 bytes
  echo-client bench -c 8 --reconnect     Across a server's restart, losing no echo")]
pub(super) struct BenchArgs {
    /// Connections (UDP: sockets) to open
    #[arg(
        short,
        long,
        env = "ECHO_CONNECTIONS",
        value_name = "N",
        default_value = "1",
        value_parser = parse_positive
    )]
    connections: u64,

    /// Bytes of payload per message (over UDP at least 12, to carry the
    /// sequence number; over raw TCP at least 1)
    #[arg(
        short,
        long,
        env = "ECHO_SIZE",
        value_name = "BYTES",
        default_value_t = 64
    )]
    pub(super) size: usize,

    /// Messages in flight per connection: 1 waits for each echo before the
    /// next message; more pipelines them
    #[arg(
        short,
        long,
        env = "ECHO_DEPTH",
        value_name = "N",
        default_value = "1",
        value_parser = parse_positive
    )]
    depth: u64,

    /// Seconds to send for, after the warmup (fractions allowed)
    #[arg(
        short = 't',
        long,
        env = "ECHO_DURATION",
        value_name = "SECS",
        default_value = "10",
        value_parser = parse_seconds,
        conflicts_with = "messages",
        // So that a negative number reaches the parser and gets its message.
        allow_negative_numbers = true
    )]
    duration: Duration,

    /// Send this many messages in all (after the warmup), instead of sending
    /// for --duration [default: off]
    #[arg(short = 'n', long, env = "ECHO_MESSAGES", value_name = "N", value_parser = parse_positive)]
    messages: Option<u64>,

    /// Seconds to send before measuring: their echoes are checked but not
    /// counted in the results
    #[arg(
        short,
        long,
        env = "ECHO_WARMUP",
        value_name = "SECS",
        default_value = "0",
        value_parser = parse_seconds_or_zero,
        // So that a negative number reaches the parser and gets its message.
        allow_negative_numbers = true
    )]
    warmup: Duration,

    /// Messages per second, all connections together, sent on a fixed
    /// schedule whatever the server does (open loop); latency is timed from
    /// when each was due [default: as fast as the echoes allow]
    #[arg(short, long, env = "ECHO_RATE", value_name = "MSGS_PER_SEC", value_parser = parse_rate, allow_negative_numbers = true)]
    rate: Option<f64>,

    /// Print a line of figures every SECS seconds (fractions allowed)
    /// [default: off]
    #[arg(
        short = 'i',
        long,
        env = "ECHO_REPORT_INTERVAL",
        value_name = "SECS",
        value_parser = parse_seconds,
        // So that a negative number reaches the parser and gets its message.
        allow_negative_numbers = true
    )]
    report_interval: Option<Duration>,

    /// Open a connection that fails (closed, reset, or silent past
    /// --timeout) again after a short back-off, and send the messages that
    /// were in flight on it again: a run across a server's restart or crash
    /// loses no echo, and the report counts reconnects, messages sent again,
    /// failed attempts and the longest outage. A connection not open again
    /// within --timeout fails. TCP only [default: off]
    #[arg(long, env = "ECHO_RECONNECT", value_parser = FalseyValueParser::new())]
    pub(super) reconnect: bool,

    /// Print one JSON document with every setting and result, and nothing
    /// else on stdout [default: off]
    #[arg(long, env = "ECHO_JSON", value_parser = FalseyValueParser::new())]
    json: bool,
}

/// Parses `--rate`: a positive, finite number of messages per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        Ok(_) => Err("the rate must be more than 0 messages per second".to_owned()),
        Err(_) => Err("expected a number of messages per second, such as 1000".to_owned()),
    }
}

/// Runs the bench and prints its report; fails if the endpoint did.
pub(super) async fn run(options: &Options, args: BenchArgs) -> anyhow::Result<()> {
    let config = config(options, &args)?;
    options.warn_if_insecure();
    let mut stdout = io::stdout().lock();
    if !args.json && printed(print_line(&mut stdout, bench_banner(&config).as_bytes()))?.is_break()
    {
        return Ok(());
    }
    let progress = Progress::new(&config);
    let mut stdout_open = true;
    let report = bench::run_with(
        &config,
        |event| match event {
            BenchEvent::Connected { connected, failed } => {
                options.note(format_args!("{connected} connected, {failed} failed"));
                progress.connected();
            }
            BenchEvent::Progress(figures) => progress.update(&figures),
            BenchEvent::Interval(interval) if !args.json && stdout_open => {
                // Printed above the bar, which is redrawn below it.
                progress.suspend(|| {
                    stdout_open = printed(print_line(&mut stdout, interval.to_string().as_bytes()))
                        .is_ok_and(|flow| flow.is_continue());
                });
            }
            // Intervals go only into the JSON document with --json; and
            // the library may add events, which a display can ignore.
            _ => {}
        },
        interrupt(),
    )
    .await?;
    progress.finish();

    let text = if args.json {
        report.to_json()
    } else {
        report.to_string()
    };
    if stdout_open && printed(print_line(&mut stdout, text.as_bytes()))?.is_break() {
        return Ok(());
    }
    verdict(&report)
}

/// The bench's settings, from the command line.
fn config(options: &Options, args: &BenchArgs) -> anyhow::Result<BenchConfig> {
    let too_many =
        |what: &str, n: u64| anyhow::anyhow!("{what} {n} is more than this machine can address");
    let config = BenchConfig {
        addr: options.addr.clone(),
        mode: options.mode(),
        connections: usize::try_from(args.connections)
            .map_err(|_| too_many("--connections", args.connections))?,
        size: args.size,
        depth: usize::try_from(args.depth).map_err(|_| too_many("--depth", args.depth))?,
        stop: args
            .messages
            .map_or(Stop::Duration(args.duration), Stop::Messages),
        warmup: args.warmup,
        proxy_protocol: options.proxy(),
        tls: options.tls(),
        rate: args.rate,
        timeout: options.timeout,
        report_interval: args.report_interval,
        expect_greeting: options.expect_greeting,
        reconnect: args.reconnect,
    };
    Ok(config)
}

/// The bench's exit rule: any error, or any connection failed, fails it.
pub(super) fn verdict(report: &BenchReport) -> anyhow::Result<()> {
    let (errors, failed) = (report.errors.total, report.connections.failed);
    if errors == 0 && failed == 0 && !report.succeeded() {
        bail!(
            "no echo came back from {} of the {} messages sent",
            report.parameters.addr,
            report.sent
        );
    }
    if errors > 0 || failed > 0 {
        let first = report.first_error.as_deref().unwrap_or("see the report");
        bail!(
            "the bench of {} found {errors} error{} and {failed} failed connection{} (first: {first})",
            report.parameters.addr,
            if errors == 1 { "" } else { "s" },
            if failed == 1 { "" } else { "s" },
        );
    }
    Ok(())
}

/// The progress bar on stderr: drawn on a terminal only, so that piped
/// output has no control characters.
struct Progress {
    bar: ProgressBar,
    /// What the bar counts: milliseconds of the run, or echoes.
    by_messages: bool,
}

impl Progress {
    fn new(config: &BenchConfig) -> Self {
        let (length, by_messages) = match config.stop {
            Stop::Duration(duration) => ((config.warmup + duration).as_millis() as u64, false),
            Stop::Messages(messages) => (messages, true),
        };
        let bar = if io::stderr().is_terminal() {
            let style =
                ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {msg}")
                    .expect("the template is valid")
                    .progress_chars("=> ");
            ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr())
                .with_style(style)
        } else {
            ProgressBar::hidden()
        };
        bar.set_message("connecting");
        Self { bar, by_messages }
    }

    fn connected(&self) {
        self.bar.set_message("starting");
    }

    fn update(&self, figures: &BenchProgress) {
        let position = if self.by_messages {
            figures.echoed
        } else {
            figures.elapsed.as_millis() as u64
        };
        self.bar.set_position(position);
        let phase = if figures.finishing {
            "finishing, "
        } else if figures.measuring {
            ""
        } else {
            "warming up, "
        };
        self.bar.set_message(format!(
            "{phase}{:.0} msgs/s, {} error{}",
            figures.current_rate,
            figures.errors,
            if figures.errors == 1 { "" } else { "s" }
        ));
    }

    fn suspend(&self, print: impl FnOnce()) {
        self.bar.suspend(print);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
