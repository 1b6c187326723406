//! The command line: options shared by every command, the commands, the help.
//!
//! `echo-client MESSAGE...` is shorthand for `echo-client send MESSAGE...`.
//! Clap looks for a subcommand name only until the first message: after a
//! message, every word is a message (so `echo-client hi send` sends `hi` and
//! `send`). To send a word that is also a command's name on its own, write
//! `echo-client send send` or `echo-client -- send`.

mod send;

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use clap::builder::FalseyValueParser;
use clap::{Args, Parser, Subcommand};

const USAGE: &str = "echo-client [OPTIONS] [MESSAGE]...\n       echo-client [OPTIONS] <COMMAND>";

const EXAMPLES: &str = "\
Examples:
  echo-client 'Hello Echo!'          Send one message and print its echo
  echo-client one two three          Send three messages on one connection
  printf 'a\\nb\\n' | echo-client      Send each line of standard input
  echo-client                        Type lines at a prompt; Ctrl-D ends
  echo-client -v --addr 10.0.0.7:9999 --timeout 0.5 hi
  echo-client -- send                Send the word \"send\" itself";

/// Send messages to an echo server and print their echoes.
///
/// Each MESSAGE is sent as one frame, exactly as its bytes are given, and its
/// echo is printed on its own line once it has come back identical.
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
        }
    }
}

/// Options that every command takes, before or after its name.
#[derive(Debug, Args)]
struct Options {
    /// The server's address, as HOST:PORT
    #[arg(
        long,
        global = true,
        env = "ECHO_ADDR",
        default_value = "127.0.0.1:9999",
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

    /// Print on stderr the address connected to, the size of each message
    /// and how long each echo took [default: off]
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
}

impl Options {
    /// Prints one line of `--verbose` commentary to stderr.
    fn note(&self, message: fmt::Arguments<'_>) {
        if self.verbose {
            // The commentary is a diagnostic: if stderr is gone, the echoes
            // on stdout still matter more, so a failed write is ignored.
            let _ = writeln!(io::stderr(), "{message}");
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send each MESSAGE (or each line of standard input) and print its echo.
    /// This is the default command.
    Send(SendArgs),
}

#[derive(Debug, Args)]
struct SendArgs {
    /// Messages to send, one frame each, in order, on one connection. Without
    /// any, each line of standard input is sent, without its line ending
    /// (\n or \r\n). Put a message that starts with '-' after `--`
    #[arg(value_name = "MESSAGE")]
    messages: Vec<OsString>,
}

/// Parses `--timeout`: a positive, finite number of seconds.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a number of seconds, such as 5 or 0.5".to_owned())?;
    match Duration::try_from_secs_f64(seconds) {
        Ok(timeout) if !timeout.is_zero() => Ok(timeout),
        Err(_) if seconds > 0.0 => Err("the timeout is too long".to_owned()),
        // Zero, negative, NaN, or so small that it rounds to zero.
        _ => Err("the timeout must be more than 0 seconds".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("echo-client").chain(args.iter().copied()))
    }

    /// The messages that `args` would send.
    fn messages(args: &[&str]) -> Vec<OsString> {
        let cli = parse(args).unwrap();
        match cli.command.unwrap_or(Command::Send(cli.messages)) {
            Command::Send(send) => send.messages,
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

    #[test]
    fn defaults_are_shown_and_match_the_contract() {
        let command = Cli::command();
        let default = |id: &str| {
            let arg = command.get_arguments().find(|arg| arg.get_id() == id);
            let arg = arg.unwrap_or_else(|| panic!("no argument {id}"));
            (
                arg.get_default_values().to_vec(),
                arg.get_env().map(ToOwned::to_owned),
            )
        };
        assert_eq!(
            default("addr"),
            (vec!["127.0.0.1:9999".into()], Some("ECHO_ADDR".into()))
        );
        assert_eq!(
            default("timeout"),
            (vec!["5".into()], Some("ECHO_TIMEOUT".into()))
        );
        assert_eq!(default("verbose").1, Some("ECHO_VERBOSE".into()));
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
    fn unknown_options_are_usage_errors() {
        let error = parse(&["--bogus"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
        assert_eq!(error.exit_code(), 2);
    }
}
