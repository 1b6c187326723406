//! The command line: options shared by every command, the commands, the help.
//!
//! `echo-client MESSAGE...` is shorthand for `echo-client send MESSAGE...`.
//! Clap looks for a subcommand name only until the first message: after a
//! message, every word is a message (so `echo-client hi send` sends `hi` and
//! `send`). To send a word that is also a command's name on its own, write
//! `echo-client send send` or `echo-client -- send`.

mod bench;
mod merge;
mod ping;
mod send;

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{FalseyValueParser, PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use echo_client::{Client, ConnectOptions, Mode, ProxyProtocol, ProxyVersion, TlsOptions};

const USAGE: &str = "echo-client [OPTIONS] [MESSAGE]...\n       echo-client [OPTIONS] <COMMAND>";

const EXAMPLES: &str = "\
Examples:
  echo-client 'Hello Echo!'          Send one message and print its echo
  echo-client one two three          Send three messages on one connection
  printf 'a\\nb\\n' | echo-client      Send each line of standard input
  echo-client                        Type lines at a prompt; Ctrl-D ends
  echo-client -v --addr 10.0.0.7:9999 --timeout 0.5 hi
  echo-client -- send                Send the word \"send\" itself
  echo-client ping -c 5              Is it up? Five timed echoes
  echo-client bench -c 10 -d 32 -t 5 How fast is it, and is it correct?
  echo-client --udp ping             The same over UDP (--raw: RFC 862 TCP)
  echo-client --mode raw ping -c 3   Any RFC 862 server: inetd, nc -e cat
  echo-client merge a.json b.json    Two load hosts' bench --json, as one";

/// Send messages to an echo server and check their echoes; ping it; bench it;
/// merge bench reports.
///
/// Each MESSAGE is sent as one frame, exactly as its bytes are given, and its
/// echo is printed on its own line once it has come back identical. `ping`
/// times one echo at a time; `bench` loads the server from many connections
/// and reports throughput, latency percentiles and errors. Every echo is
/// checked byte for byte. Besides the echo protocol (framed TCP, the default
/// --mode), --mode raw speaks RFC 862 over TCP and --mode udp RFC 862 over
/// UDP, for any echo server; --raw and --udp say the same for short.
#[derive(Debug, Parser)]
#[command(name = "echo-client", version, override_usage = USAGE, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(flatten)]
    options: Options,

    #[command(subcommand)]
    command: Option<Command>,

    /// The messages of the `send` shorthand.
    #[command(flatten)]
    messages: SendArgs,
}

impl Cli {
    /// Runs the command the user asked for.
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let Cli {
            options,
            command,
            messages,
        } = self;
        match command.unwrap_or(Command::Send(messages)) {
            Command::Send(args) => send::run(&options, args).await,
            Command::Ping(args) => ping::run(&options, args).await,
            Command::Bench(args) => bench::run(&options, args).await,
            Command::Merge(args) => merge::run(args),
        }
    }

    /// Checks what clap cannot check alone, because it depends on two
    /// options at once: the message size against the mode, and what UDP
    /// has none of (a greeting, TLS, a PROXY header, a connection to open
    /// again).
    ///
    /// # Errors
    ///
    /// A usage error, which exits with code 2 like clap's own.
    pub(crate) fn validate(&self) -> Result<(), clap::Error> {
        let mode = self.options.mode();
        if self.options.expect_greeting && mode == Mode::Udp {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "--expect-greeting: a greeting comes only over TCP (framed or raw), not UDP",
            ));
        }
        if self.options.tls().is_some() && mode == Mode::Udp {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "--tls: TLS goes only over TCP (framed or raw), not UDP",
            ));
        }
        if self.options.proxy_protocol.is_some() && mode == Mode::Udp {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "--proxy-protocol: a PROXY header goes only over TCP (framed or raw), not UDP",
            ));
        }
        if let Some(Command::Bench(args)) = &self.command {
            if args.reconnect && mode == Mode::Udp {
                return Err(Cli::command().error(
                    ErrorKind::ArgumentConflict,
                    "--reconnect: reconnecting is for TCP (framed or raw), not UDP, which has \
                     no connection to lose",
                ));
            }
        }
        let size = match &self.command {
            Some(Command::Ping(args)) => args.size,
            Some(Command::Bench(args)) => args.size,
            Some(Command::Send(_) | Command::Merge(_)) | None => return Ok(()),
        };
        mode.check_message_len(size).map_err(|reason| {
            Cli::command().error(ErrorKind::ValueValidation, format!("--size: {reason}"))
        })
    }

    /// Whether the command spreads its work over every core: the bench does,
    /// so that the client is not the bottleneck; the others drive one
    /// connection and need one thread.
    pub(crate) fn wants_every_core(&self) -> bool {
        matches!(self.command, Some(Command::Bench(_)))
    }
}

/// Options that every command takes, before or after its name.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection options (for every command)")]
struct Options {
    /// The server's address, as HOST:PORT; an IPv6 address in brackets, as
    /// in [::1]:9999
    #[arg(
        long,
        global = true,
        env = "ECHO_ADDR",
        default_value_t = echo_proto::DEFAULT_ADDR.to_string(),
        value_name = "ADDR"
    )]
    addr: String,

    /// How long to wait to connect, and for each echo, in seconds; fractions
    /// such as 0.5 are allowed
    #[arg(
        long,
        global = true,
        env = "ECHO_TIMEOUT",
        default_value = "5",
        value_name = "SECS",
        value_parser = parse_timeout,
        // So that `--timeout -1` reaches parse_timeout and gets its message.
        allow_negative_numbers = true
    )]
    timeout: Duration,

    /// Print on stderr what happens: the address connected to, and with
    /// `send` each message's size and how long its echo took [default: off]
    // Read with FalseyValueParser so that ECHO_VERBOSE=1 or =yes turns it on
    // and ECHO_VERBOSE=0 or =no leaves it off, as users expect of a flag.
    #[arg(
        short,
        long,
        global = true,
        env = "ECHO_VERBOSE",
        value_parser = FalseyValueParser::new()
    )]
    verbose: bool,

    /// How to talk to the server: `framed` is the echo protocol
    /// (length-prefixed frames over TCP); `raw` is RFC 862 over TCP, bytes
    /// echoed as they arrive; `udp` is RFC 862 over UDP, a datagram each way
    //
    // `--transport` is an older name of --mode, accepted but not listed, so
    // that scripts that use it go on working.
    #[arg(
        long,
        alias = "transport",
        global = true,
        env = "ECHO_MODE",
        value_parser = mode_parser(),
        default_value_t = Mode::Framed,
        value_name = "MODE"
    )]
    mode: Mode,

    /// Shorthand for --mode raw: RFC 862 echo over TCP, no framing, for
    /// inetd, `nc -e cat` and `echo-server --mode raw` [default: off]
    #[arg(long, global = true, conflicts_with = "udp")]
    raw: bool,

    /// Shorthand for --mode udp: RFC 862 echo over UDP, one datagram per
    /// message [default: off]
    #[arg(long, global = true)]
    udp: bool,

    // Greetings.
    /// Read the greeting of a server started with --greeting before the
    /// first echo, on every connection (framed or raw TCP, not UDP); an
    /// error if none comes within --timeout or it is not the greeting's
    /// JSON. -v prints the instance that answered; bench counts connections
    /// and echoes per instance [default: off]
    #[arg(
        long,
        global = true,
        env = "ECHO_EXPECT_GREETING",
        value_parser = FalseyValueParser::new()
    )]
    expect_greeting: bool,

    // The PROXY protocol.
    /// Open each TCP connection with a PROXY protocol header of this
    /// version, `v1` (text) or `v2` (binary), as a load balancer would, for
    /// a server started with --proxy-protocol [default: off]
    #[arg(
        long,
        global = true,
        env = "ECHO_SEND_PROXY_PROTOCOL",
        value_name = "VERSION",
        value_parser = clap::builder::PossibleValuesParser::new(["v1", "v2"])
            .try_map(|name| name.parse::<ProxyVersion>())
    )]
    proxy_protocol: Option<ProxyVersion>,

    /// The client address the PROXY header names, as IP:PORT [default: each
    /// connection's own local address]
    #[arg(
        long,
        global = true,
        env = "ECHO_PROXY_SOURCE",
        value_name = "ADDR",
        requires = "proxy_protocol"
    )]
    proxy_source: Option<SocketAddr>,

    // TLS.
    /// Speak TLS (1.2 or 1.3) to the server, as to echo-server's
    /// --tls-listen, verifying its certificate against the system's roots
    /// [default: off]
    #[arg(long, global = true, env = "ECHO_TLS", value_parser = FalseyValueParser::new())]
    tls: bool,

    /// Trust the CA certificates in this PEM file instead of the system's
    /// roots; implies --tls [default: the system's roots]
    #[arg(long, global = true, env = "ECHO_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,

    /// The name sent in SNI and checked against the certificate; implies
    /// --tls [default: the host of --addr]
    #[arg(long, global = true, env = "ECHO_TLS_SERVER_NAME", value_name = "NAME")]
    tls_server_name: Option<String>,

    /// A client certificate chain (PEM), for a server that requires one
    /// (mutual TLS); needs --tls-key, implies --tls [default: none]
    #[arg(
        long,
        global = true,
        env = "ECHO_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM); needs --tls-cert [default: none]
    #[arg(
        long,
        global = true,
        env = "ECHO_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,

    /// Accept any certificate, verifying nothing (a warning says so on
    /// stderr); implies --tls [default: off]
    #[arg(
        long,
        global = true,
        env = "ECHO_TLS_INSECURE",
        value_parser = FalseyValueParser::new(),
        conflicts_with = "tls_ca"
    )]
    tls_insecure: bool,
}

impl Options {
    /// The PROXY header to send, if asked for.
    fn proxy(&self) -> Option<ProxyProtocol> {
        self.proxy_protocol.map(|version| ProxyProtocol {
            version,
            source: self.proxy_source,
        })
    }

    /// TLS as asked for: by --tls or by any of the options that imply it.
    fn tls(&self) -> Option<TlsOptions> {
        let asked = self.tls
            || self.tls_insecure
            || self.tls_ca.is_some()
            || self.tls_server_name.is_some()
            || self.tls_cert.is_some();
        asked.then(|| TlsOptions {
            ca: self.tls_ca.clone(),
            server_name: self.tls_server_name.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            insecure: self.tls_insecure,
        })
    }

    /// Says on stderr, once, that certificates go unverified.
    fn warn_if_insecure(&self) {
        if self.tls_insecure {
            let _ = writeln!(
                io::stderr(),
                "warning: --tls-insecure: the server's certificate is not verified; anyone \
                 on the path can pose as the server"
            );
        }
    }

    /// Connects to the server as the options say: the mode, the timeout, a
    /// PROXY header first and TLS if asked for.
    async fn connect(&self) -> Result<Client, echo_client::ClientError> {
        self.warn_if_insecure();
        let options = ConnectOptions {
            mode: self.mode(),
            timeout: self.timeout,
            proxy: self.proxy(),
            tls: self.tls(),
        };
        Client::connect_with_options(&self.addr, &options).await
    }

    /// The mode asked for: --raw or --udp if given, else --mode.
    fn mode(&self) -> Mode {
        if self.raw {
            Mode::Raw
        } else if self.udp {
            Mode::Udp
        } else {
            self.mode
        }
    }

    /// The `--verbose` line that says where a command connected, and how.
    fn note_connected(&self, peer: SocketAddr, mode: Mode) {
        self.note(format_args!("connected to {peer} ({mode})"));
    }

    /// The `--verbose` line that says which server instance greeted.
    fn note_greeting(&self, greeting: &echo_client::Greeting) {
        self.note(format_args!(
            "greeted by instance {} ({} {})",
            greeting.instance, greeting.server, greeting.version
        ));
    }

    /// Prints one line of `--verbose` commentary to stderr.
    fn note(&self, message: fmt::Arguments<'_>) {
        if self.verbose {
            // The commentary is a diagnostic: if stderr is gone, the echoes
            // on stdout still matter more, so a failed write is ignored.
            let _ = writeln!(io::stderr(), "{message}");
        }
    }
}

/// Parses the mode's name with the library's [`FromStr`](std::str::FromStr),
/// after clap has checked it against the names it lists in the help, each
/// with what it means.
fn mode_parser() -> impl TypedValueParser<Value = Mode> {
    let values = Mode::ALL.map(|mode| {
        PossibleValue::new(mode.as_str()).help(match mode {
            Mode::Framed => {
                "TCP with the echo protocol's framing: each message is a 4-byte big-endian \
                 length and that many bytes, echoed whole"
            }
            Mode::Raw => {
                "TCP without framing (RFC 862): the bytes of a message are sent as they are, \
                 and its echo is complete once as many bytes have come back"
            }
            Mode::Udp => "UDP (RFC 862): each message is one datagram, answered by one datagram",
        })
    });
    PossibleValuesParser::new(values).try_map(|name| name.parse::<Mode>())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send each MESSAGE (or each line of standard input) and print its echo.
    /// This is the default command.
    Send(SendArgs),
    /// Is the endpoint up? Send timed echoes one at a time, like ping.
    Ping(ping::PingArgs),
    /// How fast is the endpoint, and is it correct? Load it and measure.
    Bench(bench::BenchArgs),
    /// Merge the JSON reports of benches run at once from several hosts into
    /// one: totals, rates, percentiles over every echo, a row per host.
    Merge(merge::MergeArgs),
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Arguments")]
struct SendArgs {
    /// Messages to send (a frame each; a datagram each over UDP), in order, on
    /// one connection. Without any, each line of standard input is sent,
    /// without its line ending (\n or \r\n). Put a message that starts with
    /// '-' after `--`
    #[arg(value_name = "MESSAGE")]
    messages: Vec<OsString>,
}

/// Writes `bytes` and a newline, and flushes, so that each line appears as
/// soon as it is known, whether stdout is a terminal, a pipe or a file.
fn print_line(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// What to do after writing to stdout: go on, or stop because nobody reads
/// any more.
///
/// Rust ignores SIGPIPE, so a reader that went away (as `head -1` does) shows
/// up as a broken pipe. That is a normal way for a pipeline to end, not a
/// failure: the command stops quietly.
fn printed(result: io::Result<()>) -> anyhow::Result<ControlFlow<()>> {
    match result {
        Ok(()) => Ok(ControlFlow::Continue(())),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(ControlFlow::Break(())),
        Err(error) => Err(anyhow::Error::new(error).context("cannot write to standard output")),
    }
}

/// Resolves on Ctrl-C, so that ping and bench can stop and still report. If
/// the signal cannot be watched, it never resolves: Ctrl-C then ends the
/// program the default way, without a report.
async fn interrupt() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Parses `--timeout`: a positive, finite number of seconds.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    parse_duration(text, Unit::Seconds, "the timeout")
}

/// Parses a positive number of seconds (`--duration`, `--report-interval`).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    parse_duration(text, Unit::Seconds, "it")
}

/// Parses a number of seconds that may be 0 (`--warmup`).
fn parse_seconds_or_zero(text: &str) -> Result<Duration, String> {
    if is_zero(text) {
        return Ok(Duration::ZERO);
    }
    parse_seconds(text)
}

/// Parses a number of milliseconds that may be 0 (ping's `--interval`).
fn parse_millis_or_zero(text: &str) -> Result<Duration, String> {
    if is_zero(text) {
        return Ok(Duration::ZERO);
    }
    parse_duration(text, Unit::Milliseconds, "it")
}

fn is_zero(text: &str) -> bool {
    text.trim().parse::<f64>().is_ok_and(|value| value == 0.0)
}

/// The unit of a duration given as a plain number.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Seconds,
    Milliseconds,
}

/// Parses a positive, finite duration in `unit`; fractions such as 0.5 are
/// allowed. `what` names it in the errors.
fn parse_duration(text: &str, unit: Unit, what: &str) -> Result<Duration, String> {
    let (name, example, scale) = match unit {
        Unit::Seconds => ("seconds", "5 or 0.5", 1.0),
        Unit::Milliseconds => ("milliseconds", "1000 or 0.5", 1e-3),
    };
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of {name}, such as {example}"))?;
    match Duration::try_from_secs_f64(value * scale) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Err(_) if value > 0.0 => Err(format!("{what} is too long")),
        // Zero, negative, NaN, or so small that it rounds to zero.
        _ => Err(format!("{what} must be more than 0 {name}")),
    }
}

/// Parses a count that must be at least 1.
fn parse_positive(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("it must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number, such as 10".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `args` as the command line would be, but blind to the
    /// caller's `ECHO_*` variables, so that a developer's environment cannot
    /// change what these tests see.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        use clap::FromArgMatches;

        fn without_env(command: clap::Command) -> clap::Command {
            let command = command.mut_args(|arg| arg.env(None));
            let subcommands: Vec<String> = command
                .get_subcommands()
                .map(|subcommand| subcommand.get_name().to_owned())
                .collect();
            subcommands.iter().fold(command, |command, name| {
                command.mut_subcommand(name, without_env)
            })
        }
        let matches = without_env(Cli::command())
            .try_get_matches_from(std::iter::once("echo-client").chain(args.iter().copied()))?;
        Cli::from_arg_matches(&matches)
    }

    /// The messages that `args` would send.
    fn messages(args: &[&str]) -> Vec<OsString> {
        let cli = parse(args).unwrap();
        match cli.command.unwrap_or(Command::Send(cli.messages)) {
            Command::Send(send) => send.messages,
            other => panic!("not a send: {other:?}"),
        }
    }

    fn strings(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_messages_are_the_send_shorthand() {
        assert_eq!(messages(&["a", "b"]), strings(&["a", "b"]));
        assert_eq!(messages(&["send", "a", "b"]), strings(&["a", "b"]));
        assert_eq!(messages(&[]), strings(&[]));
        assert_eq!(messages(&["send"]), strings(&[]));
    }

    #[test]
    fn a_command_name_is_a_message_after_a_message_or_after_double_dash() {
        assert_eq!(messages(&["a", "send"]), strings(&["a", "send"]));
        assert_eq!(messages(&["--", "send"]), strings(&["send"]));
        assert_eq!(messages(&["send", "send"]), strings(&["send"]));
        assert_eq!(messages(&["send", "--", "-v"]), strings(&["-v"]));
    }

    #[test]
    fn options_go_before_or_after_the_command() {
        for args in [
            &["--addr", "host:1", "send", "hi"][..],
            &["send", "--addr", "host:1", "hi"],
            &["hi", "--addr", "host:1"],
            &["--addr=host:1", "hi"],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.options.addr, "host:1", "{args:?}");
            assert_eq!(messages(args), strings(&["hi"]), "{args:?}");
        }
        assert!(parse(&["-v", "send", "x"]).unwrap().options.verbose);
        assert!(parse(&["send", "-v", "x"]).unwrap().options.verbose);
    }

    /// Every connection option has an `ECHO_*` variable and says its
    /// default in its help, as every flag must.
    #[test]
    fn every_connection_option_has_a_variable_and_a_default() {
        let command = Cli::command();
        let mut checked = 0;
        for arg in command.get_arguments().filter(|arg| arg.is_global_set()) {
            checked += 1;
            let id = arg.get_id().as_str();
            // The shorthands of --mode have no variable of their own.
            if ["raw", "udp"].contains(&id) {
                continue;
            }
            assert!(arg.get_env().is_some(), "--{id} has no ECHO_* variable");
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(ToString::to_string);
            let shown = !arg.get_default_values().is_empty()
                || help
                    .as_deref()
                    .is_some_and(|help| help.contains("[default: "));
            assert!(shown, "--{id} does not say its default: {help:?}");
        }
        // --addr, --timeout, --verbose, --mode, the greeting, the PROXY
        // header and TLS, at least.
        assert!(checked >= 14, "only {checked} connection options");
    }

    #[test]
    fn defaults_are_shown_and_match_the_contract() {
        let command = Cli::command();
        let text = |value: &std::ffi::OsStr| value.to_string_lossy().into_owned();
        let default = |id: &str| {
            let arg = command.get_arguments().find(|arg| arg.get_id() == id);
            let arg = arg.unwrap_or_else(|| panic!("no argument {id}"));
            let values: Vec<String> = arg.get_default_values().iter().map(|v| text(v)).collect();
            (values, arg.get_env().map(text))
        };
        let expected = |value: &str, env: &str| (vec![value.to_owned()], Some(env.to_owned()));
        assert_eq!(
            default("addr"),
            expected(&echo_proto::DEFAULT_ADDR.to_string(), "ECHO_ADDR")
        );
        assert_eq!(default("timeout"), expected("5", "ECHO_TIMEOUT"));
        assert_eq!(default("verbose").1, Some("ECHO_VERBOSE".to_owned()));
        assert_eq!(default("mode"), expected("framed", "ECHO_MODE"));
        assert_eq!(
            default("expect_greeting").1,
            Some("ECHO_EXPECT_GREETING".to_owned())
        );
    }

    #[test]
    fn raw_and_udp_are_shorthands_for_the_mode() {
        let mode = |args: &[&str]| parse(args).unwrap().options.mode();
        assert_eq!(mode(&["x"]), Mode::Framed);
        assert_eq!(mode(&["--raw", "x"]), Mode::Raw);
        assert_eq!(mode(&["--udp", "ping"]), Mode::Udp);
        assert_eq!(mode(&["ping", "--udp"]), Mode::Udp);
        assert_eq!(mode(&["--mode", "udp", "bench"]), Mode::Udp);
        assert_eq!(mode(&["bench", "--mode=raw"]), Mode::Raw);
        // The old name, still accepted.
        assert_eq!(mode(&["--transport", "raw", "x"]), Mode::Raw);
        assert_eq!(mode(&["ping", "--transport=udp"]), Mode::Udp);
        let error = parse(&["--raw", "--udp", "x"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn the_old_name_of_mode_is_not_listed() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("--mode <MODE>"), "{help}");
        assert!(!help.contains("--transport"), "{help}");
    }

    #[test]
    fn durations_take_fractions_and_name_their_unit() {
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_seconds_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_millis_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_millis_or_zero("200"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_millis_or_zero("0.5"), Ok(Duration::from_micros(500)));
        assert!(
            parse_millis_or_zero("-1")
                .unwrap_err()
                .contains("more than 0 milliseconds")
        );
        assert!(
            parse_millis_or_zero("soon")
                .unwrap_err()
                .contains("number of milliseconds")
        );
        assert!(
            parse_seconds("0")
                .unwrap_err()
                .contains("more than 0 seconds")
        );
        assert!(
            parse_seconds_or_zero("-2")
                .unwrap_err()
                .contains("more than 0 seconds")
        );
    }

    #[test]
    fn counts_are_whole_and_positive() {
        assert_eq!(parse_positive("10"), Ok(10));
        assert!(parse_positive("0").unwrap_err().contains("at least 1"));
        assert!(parse_positive("1.5").unwrap_err().contains("whole number"));
        assert!(parse_positive("-3").unwrap_err().contains("whole number"));
    }

    #[test]
    fn the_size_is_checked_against_the_mode() {
        assert!(
            parse(&["--udp", "ping", "--size", "64"])
                .unwrap()
                .validate()
                .is_ok()
        );
        let error = parse(&["--udp", "ping", "--size", "8"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert!(error.to_string().contains("sequence number"), "{error}");
        let error = parse(&["bench", "--raw", "--size", "0"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            error.to_string().contains("raw messages must be 1 to"),
            "{error}"
        );
        assert!(parse(&["bench", "--size", "0"]).unwrap().validate().is_ok());
        assert!(parse(&["--udp", "x"]).unwrap().validate().is_ok());
    }

    #[test]
    fn timeouts_accept_fractions() {
        assert_eq!(parse_timeout("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout(" 2.25 "), Ok(Duration::from_millis(2250)));
        let cli = parse(&["--timeout", "0.25", "x"]).unwrap();
        assert_eq!(cli.options.timeout, Duration::from_millis(250));
    }

    #[test]
    fn bad_timeouts_are_usage_errors_that_say_why() {
        for (text, why) in [
            ("0", "more than 0 seconds"),
            ("-1", "more than 0 seconds"),
            ("-0.0", "more than 0 seconds"),
            ("NaN", "more than 0 seconds"),
            ("1e-10", "more than 0 seconds"),
            ("inf", "too long"),
            ("1e300", "too long"),
            ("five", "expected a number of seconds"),
            ("", "expected a number of seconds"),
        ] {
            assert!(parse_timeout(text).unwrap_err().contains(why), "{text:?}");
            let error = parse(&["--timeout", text, "x"]).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{text:?}"
            );
            assert!(error.to_string().contains("--timeout"), "{error}");
        }
    }

    #[test]
    fn a_printed_line_is_the_raw_bytes_and_a_newline() {
        let mut out = Vec::new();
        print_line(&mut out, b"\x00\xff\r").unwrap();
        print_line(&mut out, b"").unwrap();
        assert_eq!(out, b"\x00\xff\r\n\n");
    }

    #[test]
    fn a_closed_stdout_stops_quietly_and_other_failures_are_errors() {
        let broken = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(printed(Err(broken)).unwrap(), ControlFlow::Break(()));
        assert_eq!(printed(Ok(())).unwrap(), ControlFlow::Continue(()));
        let full = io::Error::from(io::ErrorKind::StorageFull);
        let error = printed(Err(full)).unwrap_err();
        assert!(format!("{error:#}").starts_with("cannot write to standard output"));
    }

    #[test]
    fn a_greeting_is_expected_over_tcp_only() {
        assert!(
            parse(&["--expect-greeting", "x"])
                .unwrap()
                .validate()
                .is_ok()
        );
        assert!(
            parse(&["bench", "--raw", "--expect-greeting"])
                .unwrap()
                .validate()
                .is_ok()
        );
        let error = parse(&["--udp", "ping", "--expect-greeting"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("not UDP"), "{error}");
        let error = parse(&["--udp", "bench", "--reconnect"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("--reconnect"), "{error}");
        assert!(parse(&["bench", "--reconnect"]).unwrap().validate().is_ok());
    }

    #[test]
    fn unknown_options_are_usage_errors() {
        let error = parse(&["--bogus"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
        assert_eq!(error.exit_code(), 2);
    }
}
