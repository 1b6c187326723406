//! `echo-server`: the command line over the echo-server library.

#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::{FalseyValueParser, TypedValueParser};
use clap::{CommandFactory, Parser};
use echo_proto::frame::{DEFAULT_MAX_FRAME_LEN, MAX_ANNOUNCEABLE_LEN};
use echo_server::{
    Config, DEFAULT_RELAY_BUFFER_LEN, Delay, Mode, Server, ShutdownSignal, TlsConfig, TlsReloader,
};
use tracing::info;
use tracing_appender::non_blocking::ErrorCounter;

mod logging;

/// mimalloc rather than glibc's malloc: tokio aligns each connection's task
/// and I/O registration to a 128-byte cache line, and glibc pads every such
/// block (with the task at 640 bytes, 896 bytes of heap per idle connection
/// took 1.25 KiB of RSS); mimalloc serves them from size classes that need
/// no padding.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use logging::{LogFormat, init_logging, report_lost_log_lines};

/// A TCP and UDP echo server. By default it sends back every frame it
/// receives (a 4-byte big-endian length, then that many bytes); `--mode raw`
/// echoes bytes as they arrive (RFC 862), and `--udp` answers datagrams.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Logs go to stderr; set their level with RUST_LOG (default: info; \
                  debug shows every frame).\n\n\
                  Examples:\n  \
                  echo-server\n  \
                  echo-server --listen 127.0.0.1:0\n  \
                  echo-server --mode raw --udp 127.0.0.1:9999\n  \
                  echo-server --metrics 127.0.0.1:9898\n  \
                  echo-server --listen [::]:9999 --greeting --delay 10ms..50ms\n  \
                  echo-server --admin 127.0.0.1:9898 --drain-delay 10\n  \
                  echo-server --tls-listen 127.0.0.1:9443 --tls-cert cert.pem --tls-key key.pem\n  \
                  RUST_LOG=debug echo-server --max-frame 65536"
)]
struct Cli {
    /// Address to listen on, as IP:PORT; port 0 picks a free port. The default
    /// serves this machine only: binding to 0.0.0.0 or [::] exposes the
    /// server to the network.
    #[arg(
        long,
        env = "ECHO_LISTEN",
        value_name = "ADDR",
        default_value_t = echo_proto::DEFAULT_ADDR
    )]
    listen: SocketAddr,

    /// What to echo over TCP. `raw` suits nc, telnet and classic echo
    /// clients.
    #[arg(long, env = "ECHO_MODE", value_enum, default_value_t = Mode::Framed)]
    mode: Mode,

    /// Also serve UDP echo (RFC 862) on this address, as IP:PORT: each
    /// datagram is answered with an identical one. Off unless given.
    #[arg(long, env = "ECHO_UDP", value_name = "ADDR")]
    udp: Option<SocketAddr>,

    /// Largest frame payload accepted, in bytes (at most 4294967295). A
    /// header announcing more closes that connection, after the frames before
    /// it are echoed.
    #[arg(
        long,
        env = "ECHO_MAX_FRAME",
        value_name = "BYTES",
        default_value_t = DEFAULT_MAX_FRAME_LEN,
        value_parser = clap::value_parser!(u64).range(0..=MAX_ANNOUNCEABLE_LEN as u64).map(|n| n as usize)
    )]
    max_frame: usize,

    /// Seconds that open connections get to finish echoing after Ctrl-C or
    /// SIGTERM, before they are closed regardless.
    #[arg(
        long,
        env = "ECHO_DRAIN_TIMEOUT",
        value_name = "SECS",
        default_value = "5",
        value_parser = parse_seconds
    )]
    drain_timeout: Duration,

    /// Most connections served at once. Beyond it, a new connection is closed
    /// at once; open ones are unaffected.
    #[arg(
        long,
        env = "ECHO_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = echo_server::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u64).range(1..).map(|n| n as usize)
    )]
    max_connections: usize,

    /// Seconds a connection may go without reading or writing a byte
    /// (silent, stalled inside a frame, or not reading its echoes) before it
    /// is closed.
    #[arg(
        long,
        env = "ECHO_IDLE_TIMEOUT",
        value_name = "SECS",
        default_value = "300",
        value_parser = parse_seconds
    )]
    idle_timeout: Duration,

    /// How logs are written to stderr: `text` for people, `json` (one object
    /// per line) for log collectors. The level comes from RUST_LOG.
    #[arg(long, env = "ECHO_LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    // The greeting and the delay.
    /// Open each TCP connection with a greeting that says which server
    /// answered: one frame in framed mode, one line in raw mode, holding
    /// {"server":"echo-server","version":...,"instance":HOSTNAME}. Clients
    /// must be told to expect it (echo-client --expect-greeting); see
    /// PROTOCOL.md [default: off]
    #[arg(long, env = "ECHO_GREETING", value_parser = FalseyValueParser::new())]
    greeting: bool,

    /// Hold each echo back this long before writing it, as a slow backend
    /// would: a duration such as 30ms, 1.5s or 250us, or a range such as
    /// 10ms..50ms drawn uniformly for each echo. Only the connection whose
    /// echo waits is held back, and it reads nothing more meanwhile
    /// [default: no delay]
    #[arg(long, env = "ECHO_DELAY", value_name = "DURATION")]
    delay: Option<Delay>,
    // The admin endpoint, readiness and the instance name.
    /// Serve the admin endpoint over HTTP/1.1 on this address, as IP:PORT:
    /// GET /metrics (Prometheus, OpenMetrics text), /healthz (200 while the
    /// process runs), /readyz (200 while accepting, 503 once a shutdown
    /// starts) and /info (JSON: version, instance, listeners, limits). Off
    /// unless given.
    #[arg(long, env = "ECHO_ADMIN", value_name = "ADDR")]
    admin: Option<SocketAddr>,

    /// The former name of --admin, still accepted.
    #[arg(
        long,
        env = "ECHO_METRICS",
        value_name = "ADDR",
        hide = true,
        conflicts_with = "admin"
    )]
    metrics: Option<SocketAddr>,

    /// Seconds, after Ctrl-C or SIGTERM, during which /readyz answers 503
    /// while the server goes on accepting and echoing, so that load balancers
    /// take it out of rotation before its listener closes; then the drain
    /// (--drain-timeout) starts.
    #[arg(
        long,
        env = "ECHO_DRAIN_DELAY",
        value_name = "SECS",
        default_value = "0",
        value_parser = parse_seconds
    )]
    drain_delay: Duration,

    /// The name of this server in /info and in the echo_build_info metric:
    /// which server answered. Default: the host name.
    #[arg(long, env = "ECHO_INSTANCE", value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    instance: Option<String>,
    // TLS.
    /// Also serve the echo over TLS (1.2 and 1.3) on this address, as
    /// IP:PORT, in the same mode as --listen. Needs --tls-cert and
    /// --tls-key. SIGHUP reloads the certificate, key and client CA. Off
    /// unless given.
    #[arg(long, env = "ECHO_TLS_LISTEN", value_name = "ADDR")]
    tls_listen: Option<SocketAddr>,

    /// The TLS certificate chain, PEM, the server's certificate first.
    /// Needs --tls-listen and --tls-key.
    #[arg(long, env = "ECHO_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1). Needs
    /// --tls-listen and --tls-cert.
    #[arg(long, env = "ECHO_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// Require TLS clients to present a certificate signed by a CA in this
    /// PEM file (mutual TLS); its subject is logged with the connection.
    /// Off unless given.
    #[arg(long, env = "ECHO_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,

    /// Seconds a TLS client has to complete its handshake before it is
    /// closed (and counted in echo_tls_handshake_failures_total).
    #[arg(
        long,
        env = "ECHO_TLS_HANDSHAKE_TIMEOUT",
        value_name = "SECS",
        default_value = "10",
        value_parser = parse_seconds
    )]
    tls_handshake_timeout: Duration,

    // Workers.
    /// Threads that accept and serve TCP connections. Default: one per core
    /// this process may use (taskset and cgroup limits count)
    #[arg(long, env = "ECHO_WORKERS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    workers: Option<usize>,

    /// How the workers share the connections: `shared` runs them as one
    /// multi-threaded runtime behind one listener, whose threads steal work
    /// from each other; `per-worker` gives each its own single-threaded
    /// runtime and its own listener on the port (SO_REUSEPORT), and a
    /// connection stays on the worker the kernel gave it to. `cargo xtask
    /// bench --workers 2` measures both; docs/server.md says why `shared` is
    /// the default
    #[arg(long, env = "ECHO_RUNTIME", value_enum, default_value_t = Runtime::Shared)]
    runtime: Runtime,

    // The PROXY protocol.
    /// Every TCP connection, plain or TLS, starts with a PROXY protocol
    /// header (v1 or v2, before the TLS handshake) from a load balancer,
    /// naming the client it relays; a connection without a valid header
    /// within 5 seconds (or the idle timeout, if shorter) is closed
    /// unserved. Off unless given
    #[arg(long, env = "ECHO_PROXY_PROTOCOL")]
    proxy_protocol: bool,

    /// The sources a PROXY header is taken from, as CIDR networks or
    /// addresses, comma-separated: a connection from anywhere else is
    /// closed unserved. Needs --proxy-protocol
    #[arg(
        long,
        env = "ECHO_PROXY_FROM",
        value_name = "CIDR[,CIDR...]",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1/128",
        requires = "proxy_protocol",
        value_parser = echo_server::parse_proxy_source
    )]
    proxy_from: Vec<ipnet::IpNet>,
}

/// The values of `--runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Runtime {
    /// One multi-threaded runtime and one listener.
    Shared,
    /// A single-threaded runtime and a listener per worker.
    PerWorker,
}

impl Cli {
    /// The TLS settings, if TLS is asked for, or the usage error that says
    /// what is missing.
    fn tls(&self) -> Result<Option<TlsConfig>, String> {
        let (listen, cert, key) = (self.tls_listen, &self.tls_cert, &self.tls_key);
        let Some(listen) = listen else {
            return match (cert, key, &self.tls_client_ca) {
                (None, None, None) => Ok(None),
                _ => Err("--tls-cert, --tls-key and --tls-client-ca need --tls-listen".to_owned()),
            };
        };
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let mut tls = TlsConfig::new(listen, cert, key);
                tls.client_ca.clone_from(&self.tls_client_ca);
                tls.handshake_timeout = self.tls_handshake_timeout;
                Ok(Some(tls))
            }
            (None, None) => Err("--tls-listen needs --tls-cert and --tls-key".to_owned()),
            (Some(_), None) => Err("--tls-listen needs --tls-key as well as --tls-cert".to_owned()),
            (None, Some(_)) => Err("--tls-listen needs --tls-cert as well as --tls-key".to_owned()),
        }
    }
}

/// The longest duration any flag takes: a year, beyond which a timeout is
/// a mistake rather than a choice.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Parses a number of seconds, fractions allowed: `5`, `0.5`.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(format!(
            "`{text}` must be between 0 and {MAX_SECONDS} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tls = match cli.tls() {
        Ok(tls) => tls,
        Err(message) => Cli::command()
            .error(clap::error::ErrorKind::MissingRequiredArgument, message)
            .exit(),
    };
    let instance = cli
        .instance
        .clone()
        .unwrap_or_else(echo_server::default_instance);
    let logs = init_logging(cli.log_format, &instance);
    let result = run(cli, tls, logs.lost.clone());
    // The lines still queued go out before the error line, within a second
    // even if stderr is stuck.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the server with `--workers` workers (by default one per core this
/// process may use: `available_parallelism` honours `taskset` and cgroup
/// limits). Per worker, this thread's single-threaded runtime is the first
/// worker and the server starts the others; shared, one multi-threaded
/// runtime runs them all. A single worker needs no more than the
/// single-threaded scheduler either way, which serves the same connections
/// without the bookkeeping of handing work between threads.
fn run(cli: Cli, tls: Option<TlsConfig>, lost_logs: ErrorCounter) -> anyhow::Result<()> {
    let workers = cli
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let (runtime, server_workers) = if cli.runtime == Runtime::Shared && workers > 1 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build();
        (runtime, 1)
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        (runtime, workers)
    };
    let runtime = runtime.context("cannot start the async runtime")?;
    runtime.block_on(serve(cli, tls, (server_workers, workers), lost_logs))
}

/// Binds and serves until a shutdown signal. `workers` is what the server
/// runs itself (one per listener) and `threads`, those that serve TCP,
/// whichever runtime runs them.
async fn serve(
    cli: Cli,
    tls: Option<TlsConfig>,
    (workers, threads): (usize, usize),
    lost_logs: ErrorCounter,
) -> anyhow::Result<()> {
    let runtime_name = match cli.runtime {
        Runtime::Shared => "shared",
        Runtime::PerWorker => "per-worker",
    };
    let config = Config {
        listen: cli.listen,
        mode: cli.mode,
        udp: cli.udp,
        max_frame_len: cli.max_frame,
        drain_timeout: cli.drain_timeout,
        relay_buffer_len: DEFAULT_RELAY_BUFFER_LEN,
        max_connections: cli.max_connections,
        idle_timeout: cli.idle_timeout,
        greeting: cli.greeting,
        delay: cli.delay,
        admin: cli.admin.or(cli.metrics),
        drain_delay: cli.drain_delay,
        instance: cli.instance.unwrap_or_else(echo_server::default_instance),
        tls,
        workers,
        proxy_protocol: cli.proxy_protocol,
        proxy_from: cli.proxy_from,
    };
    let server = Server::bind(config.clone()).await?;
    // Handlers go in before the announcement below: whoever reads it may
    // signal at once.
    let signal = ShutdownSignal::install().context("cannot listen for shutdown signals")?;
    if let Some(reloader) = server.tls_reloader() {
        reload_on_sighup(reloader).context("cannot listen for SIGHUP")?;
    }

    announce(&server).context("cannot write to stdout")?;
    info!(
        addr = %server.local_addr(),
        mode = %config.mode,
        max_frame = config.max_frame_len,
        max_connections = config.max_connections,
        idle_timeout = ?config.idle_timeout,
        greeting = config.greeting,
        delay = config.delay.map(|delay| delay.to_string()),
        workers = threads,
        runtime = runtime_name,
        proxy_protocol = config.proxy_protocol,
        "serving echo"
    );
    tokio::spawn(report_lost_log_lines(
        lost_logs,
        Arc::clone(server.metrics()),
    ));

    server
        .run(async {
            let name = signal.recv().await;
            info!(signal = name, "shutdown requested");
        })
        .await;
    Ok(())
}

/// Reloads the TLS files on every SIGHUP, for as long as the process runs.
/// The handler is installed here, before the server is announced, so that a
/// SIGHUP sent at once reloads rather than kills.
fn reload_on_sighup(reloader: TlsReloader) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                info!("SIGHUP: reloading the TLS files");
                // The reload logs and counts its outcome itself.
                let _ = reloader.reload();
            }
        });
    }
    #[cfg(not(unix))]
    let _ = reloader;
    Ok(())
}

/// Prints the lines that say the server is up, one per listener, in the form
/// scripts wait for (see [`echo_server::listening`]).
fn announce(server: &Server) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for line in server.listeners() {
        writeln!(stdout, "{line}")?;
    }
    stdout.flush()
}
