//! The `ping` command: timed echoes one at a time, a line each, then ping's
//! summary; Ctrl-C ends it early with the summary all the same.

use std::io;
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use clap::builder::FalseyValueParser;
use echo_client::ping::{PingReport, Pinger};
use echo_client::report::{ping_banner, ping_reply_lines};
use tokio::time::Instant;

use super::{Options, interrupt, parse_millis_or_zero, parse_positive, print_line, printed};

/// The options of `ping`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each line is one echo: its size, sequence number and round-trip time. The summary gives the
loss and rtt min/avg/max/mdev (mdev: the standard deviation), p50 and p99. Exit status: 0 if
at least one echo came back intact and none came back wrong, 1 otherwise.

Examples:
  echo-client ping                   Until Ctrl-C, one echo a second
  echo-client ping -c 5 -i 200       Five echoes, 200 ms apart
  echo-client --udp ping -s 1400     UDP datagrams of 1400 bytes
  echo-client ping -c 3 --json       One JSON document, for scripts")]
pub(super) struct PingArgs {
    /// Stop after this many echoes [default: until interrupted]
    #[arg(short, long, env = "ECHO_COUNT", value_name = "N", value_parser = parse_positive)]
    count: Option<u64>,

    /// Milliseconds between one echo's sending and the next's (fractions
    /// allowed; 0 sends each as soon as the last is back). A slower echo
    /// delays the next
    #[arg(
        short,
        long,
        env = "ECHO_INTERVAL",
        value_name = "MS",
        default_value = "1000",
        value_parser = parse_millis_or_zero,
        // So that a negative number reaches the parser and gets its message.
        allow_negative_numbers = true
    )]
    interval: Duration,

    /// Bytes of payload per echo (over UDP at least 12, to carry the
    /// sequence number; over raw TCP at least 1)
    #[arg(
        short,
        long,
        env = "ECHO_SIZE",
        value_name = "BYTES",
        default_value_t = 56
    )]
    pub(super) size: usize,

    /// Print one JSON document with the summary instead of the lines
    /// [default: off]
    #[arg(long, env = "ECHO_JSON", value_parser = FalseyValueParser::new())]
    json: bool,
}

/// Pings until the count is reached, the connection fails, stdout closes or
/// Ctrl-C, then prints the summary.
pub(super) async fn run(options: &Options, args: PingArgs) -> anyhow::Result<()> {
    let mut pinger = Pinger::with_client(options.connect().await?, args.size)?;
    let peer = pinger.peer_addr();
    options.note_connected(peer, pinger.mode());
    if options.expect_greeting {
        options.note_greeting(&pinger.read_greeting().await?);
    }
    let mut stdout = io::stdout().lock();
    let mut say = |line: &str| -> anyhow::Result<ControlFlow<()>> {
        if args.json {
            return Ok(ControlFlow::Continue(()));
        }
        printed(print_line(&mut stdout, line.as_bytes()))
    };

    let interrupted = interrupt();
    tokio::pin!(interrupted);
    let mut failure = None;
    let mut stdout_closed = say(&ping_banner(peer, pinger.mode(), args.size))?.is_break();
    if !stdout_closed {
        let mut next_send = Instant::now();
        let mut sent = 0;
        'pinging: while args.count.is_none_or(|count| sent < count) {
            tokio::select! {
                () = &mut interrupted => break,
                () = tokio::time::sleep_until(next_send) => {}
            }
            next_send += args.interval;
            let reply = tokio::select! {
                () = &mut interrupted => break,
                reply = pinger.ping() => reply,
            };
            sent += 1;
            match reply {
                Ok(reply) => {
                    for line in ping_reply_lines(peer, args.size, options.timeout, &reply) {
                        if say(&line)?.is_break() {
                            stdout_closed = true;
                            break 'pinging;
                        }
                    }
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
            // An echo slower than the interval delays the next one, rather
            // than sending a burst to catch up.
            next_send = next_send.max(Instant::now());
        }
    }

    let report = pinger.report();
    let summary = if args.json {
        serde_json::to_string_pretty(&report).context("cannot write the report as JSON")?
    } else {
        report.to_string()
    };
    // The summary matters even when the lines could not all be printed, but
    // a closed stdout is still not an error.
    stdout_closed |= printed(print_line(&mut stdout, summary.as_bytes()))?.is_break();
    if let Some(error) = failure {
        return Err(error.into());
    }
    if stdout_closed {
        return Ok(());
    }
    verdict(&report)
}

/// Ping's exit rule, made stricter for an echo service: success if at least
/// one echo came back intact and none came back wrong.
fn verdict(report: &PingReport) -> anyhow::Result<()> {
    let peer = report.peer;
    if report.corrupted > 0 {
        bail!(
            "{} from {peer} differed from the message sent",
            plural(report.corrupted, "echo", "echoes")
        );
    }
    if report.unexpected > 0 {
        bail!(
            "{} from {peer} answered no ping",
            plural(report.unexpected, "datagram", "datagrams")
        );
    }
    if report.received == 0 {
        bail!("no echo came back from {peer}");
    }
    Ok(())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
