//! The `send` command: send messages from the arguments, or from standard
//! input line by line, and print each echo.

use std::io::{self, IsTerminal, StdoutLock, Write};
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use anyhow::Context;
use echo_client::Client;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Options, SendArgs, print_line, printed};

/// Connects, then sends every message and prints every echo.
pub(super) async fn run(options: &Options, args: SendArgs) -> anyhow::Result<()> {
    let mut client = options.connect().await?;
    options.note_connected(client.peer_addr(), client.mode());
    if options.expect_greeting {
        options.note_greeting(&client.read_greeting().await?);
    }
    let mut session = Session {
        client,
        options,
        stdout: io::stdout().lock(),
    };
    if args.messages.is_empty() {
        return session.send_lines().await;
    }
    for message in &args.messages {
        // An argument's raw bytes, so that non-UTF-8 arguments go out intact.
        if session.echo(message.as_bytes()).await?.is_break() {
            break;
        }
    }
    Ok(())
}

/// One connection, and where its echoes go.
struct Session<'a> {
    client: Client,
    options: &'a Options,
    stdout: StdoutLock<'static>,
}

impl Session<'_> {
    /// Sends each line of standard input as a message, until end of input.
    ///
    /// Lines are bytes, not text, so any input is sent as it is, except that
    /// a line's ending (`\n`, or `\r\n` as a whole, so that Windows-style
    /// input works) is not part of its message. A last line without an ending
    /// is still sent; an empty line is sent as an empty message.
    async fn send_lines(&mut self) -> anyhow::Result<()> {
        // A prompt is for a person at a terminal; piped input stays silent so
        // that stderr carries only what matters.
        let prompt = io::stdin().is_terminal();
        let mut input = BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        loop {
            if prompt {
                let _ = write!(io::stderr(), "> ");
            }
            line.clear();
            let read = input
                .read_until(b'\n', &mut line)
                .await
                .context("cannot read standard input")?;
            if read == 0 {
                if prompt {
                    // End the prompt's line, so the shell's prompt starts on
                    // a fresh one after Ctrl-D.
                    let _ = writeln!(io::stderr());
                }
                return Ok(());
            }
            if self.echo(strip_line_ending(&line)).await?.is_break() {
                return Ok(());
            }
        }
    }

    /// Sends one message and prints its echo. Breaks when stdout has been
    /// closed, since nobody is reading the echoes any more.
    async fn echo(&mut self, message: &[u8]) -> anyhow::Result<ControlFlow<()>> {
        self.options
            .note(format_args!("sending {} bytes", message.len()));
        let started = Instant::now();
        let echo = self.client.echo(message).await?;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        self.options.note(format_args!(
            "received {} bytes in {millis:.3} ms",
            echo.len()
        ));
        printed(print_line(&mut self.stdout, &echo))
    }
}

/// A line read with `read_until(b'\n')`, without its `\n` or `\r\n`.
fn strip_line_ending(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_are_stripped_whole_and_only_at_the_end() {
        assert_eq!(strip_line_ending(b"abc\n"), b"abc");
        assert_eq!(strip_line_ending(b"abc\r\n"), b"abc");
        assert_eq!(strip_line_ending(b"abc"), b"abc");
        assert_eq!(strip_line_ending(b"abc\r"), b"abc\r");
        assert_eq!(strip_line_ending(b"a\rb\n"), b"a\rb");
        assert_eq!(strip_line_ending(b"\n"), b"");
        assert_eq!(strip_line_ending(b"\r\n"), b"");
        assert_eq!(strip_line_ending(b"\r\r\n"), b"\r");
        assert_eq!(strip_line_ending(b""), b"");
    }
}
