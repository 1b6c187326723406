//! `cargo xtask soak`: runs the release `echo-server` under a mixed load for
//! a while and checks that it neither leaks nor stops serving.
//!
//! The load is two threads side by side: rounds of `echo-client bench`, each
//! with fresh connections that close when it ends (churn), cycling through
//! payload sizes from 0 to just under the server's frame limit; and a hostile
//! client that resets connections mid-frame, announces oversize frames, sends
//! garbage and connects without a word. Every second the server's resident
//! memory and open file descriptors are sampled. After a warm-up, a steady
//! rise of either fails the soak, as do a wrong echo, a failed connection, a
//! silent connection the idle timeout did not close, descriptors that do not
//! return to their idle count once the load stops, and a server that died or
//! no longer echoes at the end.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use echo_testkit::Kind;
use nix::sys::socket::{setsockopt, sockopt};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::client::{Load, read_report};
use crate::process::{self, Bins, Server, cmd, output_by};

/// The options of `cargo xtask soak`.
#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Seconds the load runs, at least 20: an 8 s warm-up, then enough
    /// samples to compare the first third of them with the last.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(20..))]
    duration: u64,
    /// Print one JSON document instead of the human report [default: off].
    #[arg(long)]
    json: bool,
}

/// The largest frame the soaked server accepts: small enough that frames
/// "near the limit" are cheap to send many times.
const MAX_FRAME: usize = 1 << 20;

/// The server's idle timeout, short so that silent connections are reaped
/// several times during a soak.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The payload sizes the bench rounds cycle through: empty, small, a page,
/// large, and just under the limit.
const SIZES: [usize; 5] = [0, 64, 4096, 65536, MAX_FRAME - 64];

/// The connections and depth of the rounds, cycled independently of the
/// sizes so that every size meets several shapes of load.
const SHAPES: [(usize, usize); 4] = [(1, 1), (8, 4), (32, 1), (4, 16)];

/// At most this many bytes in flight at once in a round, so that rounds of
/// near-limit frames do not need hundreds of megabytes.
const MAX_IN_FLIGHT_BYTES: usize = 16 * MAX_FRAME;

/// How long one bench round sends for.
const ROUND: Duration = Duration::from_secs(1);

/// How long `echo-client` waits to connect and for each echo.
const CLIENT_TIMEOUT_SECS: u64 = 5;

/// How long past the end of the load the soak may take to wind down: a
/// round finishing, the descriptors settling and the final checks.
const MARGIN: Duration = Duration::from_secs(20);

/// How long the open descriptors get to fall back to their idle count once
/// the load has stopped.
const SETTLE: Duration = Duration::from_secs(5);

/// How often the server is sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Most silent connections the hostile client holds at once.
const MAX_SILENT: usize = 16;

/// The growth in open descriptors, first to last third, beyond which the
/// soak fails; and how far the final count may be above the idle one.
const FD_SLACK: f64 = 20.0;
const FD_SETTLED_SLACK: usize = 2;

/// One sample of the server: seconds since the load started, resident
/// memory in KiB and open file descriptors.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    rss_kib: u64,
    fds: usize,
}

/// What the bench rounds did.
#[derive(Debug, Default)]
struct BenchTally {
    rounds: u64,
    echoed: u64,
    failures: Vec<String>,
}

/// What the hostile client did: connections of each kind, silent ones the
/// idle timeout closed, and what went wrong.
#[derive(Debug, Default)]
struct HostileTally {
    done: [u64; 4],
    silent_reaped: u64,
    failures: Vec<String>,
}

/// Everything the soak found.
#[derive(Debug)]
struct Report {
    duration: Duration,
    bench: BenchTally,
    hostile: HostileTally,
    samples: Vec<Sample>,
    /// The descriptors open before the load, and once it had stopped and
    /// they settled.
    idle_fds: usize,
    final_fds: Option<usize>,
    failures: Vec<String>,
}

/// Builds the release binaries, soaks the server and prints the report;
/// fails if the soak found anything wrong.
pub(crate) fn run(args: &Args) -> Result<()> {
    let bins = process::build_binaries(true)?;
    let duration = Duration::from_secs(args.duration);
    let report = soak(&bins, duration)?;
    if args.json {
        println!("{:#}", report.to_json());
    } else {
        print!("{report}");
    }
    let failures = report.failures.len();
    ensure!(
        failures == 0,
        "the soak failed: {failures} failures, listed in the report"
    );
    Ok(())
}

/// Runs the load against a fresh server for `duration` and checks it.
fn soak(bins: &Bins, duration: Duration) -> Result<Report> {
    let args = [
        "--listen=127.0.0.1:0".to_owned(),
        format!("--max-frame={MAX_FRAME}"),
        format!("--idle-timeout={}", IDLE_TIMEOUT.as_secs()),
    ];
    let server = Server::echo_server(
        process::spawn(&bins.server, args),
        Kind::Framed,
        Instant::now() + MARGIN,
    )?;
    let (pid, addr) = (server.pid(), server.addr());
    let idle_fds = open_fds(pid)?;
    let load_end = Instant::now() + duration;
    let stop = AtomicBool::new(false);
    let (bench, hostile, samples, mut failures) = thread::scope(|scope| {
        let bench = scope.spawn(|| bench_rounds(bins, addr, load_end, &stop));
        let hostile = scope.spawn(|| hostile_client(addr, load_end, &stop));
        let (samples, failures) = sample_until(pid, load_end);
        // The sampler returns early only if the server is gone: the load
        // threads see `stop` and wind down too.
        stop.store(true, Ordering::Relaxed);
        let panicked = |what: &str| vec![format!("the {what} thread panicked")];
        let bench = bench.join().unwrap_or_else(|_| BenchTally {
            failures: panicked("bench"),
            ..BenchTally::default()
        });
        let hostile = hostile.join().unwrap_or_else(|_| HostileTally {
            failures: panicked("hostile client's"),
            ..HostileTally::default()
        });
        (bench, hostile, samples, failures)
    });
    failures.extend(bench.failures.iter().chain(&hostile.failures).cloned());

    let warm_up = warm_up(duration).as_secs_f64();
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm_up).collect();
    let rss: Vec<f64> = settled.iter().map(|s| s.rss_kib as f64).collect();
    let fds: Vec<f64> = settled.iter().map(|s| s.fds as f64).collect();
    if let Some((first, last)) = grows(&rss, rss_slack) {
        failures.push(format!(
            "resident memory grew steadily after the warm-up: {first:.0} KiB to {last:.0} KiB on average"
        ));
    }
    if let Some((first, last)) = grows(&fds, |_| FD_SLACK) {
        failures.push(format!(
            "open descriptors grew steadily after the warm-up: {first:.1} to {last:.1} on average"
        ));
    }
    if settled.len() < 3 {
        let count = settled.len();
        failures.push(format!(
            "only {count} samples after the warm-up, too few to judge growth"
        ));
    }
    let final_fds = settle_fds(pid, idle_fds);
    match final_fds {
        Ok(fds) if fds > idle_fds + FD_SETTLED_SLACK => failures.push(format!(
            "{fds} descriptors still open {} s after the load stopped, against {idle_fds} before it",
            SETTLE.as_secs()
        )),
        Ok(_) => {}
        Err(ref error) => failures.push(format!("the server stopped serving: {error:#}")),
    }
    if let Err(error) = final_echo(bins, addr) {
        failures.push(format!("the final echo check failed: {error:#}"));
    }
    match server.stop(Instant::now() + Duration::from_secs(10)) {
        Ok(output) if output.status.success() => {}
        Ok(output) => failures.push(format!(
            "the server did not exit cleanly: {}",
            output.status
        )),
        Err(error) => failures.push(format!("the server did not stop: {error:#}")),
    }
    Ok(Report {
        duration,
        bench,
        hostile,
        samples,
        idle_fds,
        final_fds: final_fds.ok(),
        failures,
    })
}

/// The warm-up: the first fifth of the soak, and at least 8 s, which covers
/// the silent hostile connections' ramp to their steady number (they are
/// held until the server's 2 s idle timeout, with new ones every few hundred
/// milliseconds): a ramp is not a leak.
fn warm_up(duration: Duration) -> Duration {
    (duration / 5).max(Duration::from_secs(8))
}

/// How much the mean resident memory may grow from `first` KiB: 8 MiB, or
/// a tenth, whichever is more.
fn rss_slack(first: f64) -> f64 {
    (8.0 * 1024.0f64).max(first * 0.1)
}

/// Whether `samples` grow steadily: the mean of their last third exceeds the
/// mean of their first third by more than `allowed(first mean)`. Returns the
/// two means if so; `None` if not, or if there are fewer than 3 samples.
///
/// Comparing means of thirds rather than single samples keeps one spike (a
/// burst of large frames in flight) from counting as growth, while a leak,
/// which raises every later sample, shows however noisy the samples are.
fn grows(samples: &[f64], allowed: impl Fn(f64) -> f64) -> Option<(f64, f64)> {
    let third = samples.len() / 3;
    if third == 0 {
        return None;
    }
    let mean = |part: &[f64]| part.iter().sum::<f64>() / part.len() as f64;
    let first = mean(&samples[..third]);
    let last = mean(&samples[samples.len() - third..]);
    (last - first > allowed(first)).then_some((first, last))
}

/// How many file descriptors `pid` has open.
fn open_fds(pid: Pid) -> Result<usize> {
    Ok(process::proc(pid)?.fd_count()?)
}

/// Samples the server every second until `load_end`, or until it cannot be
/// sampled any more, which means it died. Returns the samples and, if it
/// died, why.
fn sample_until(pid: Pid, load_end: Instant) -> (Vec<Sample>, Vec<String>) {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next = started;
    while next <= load_end {
        thread::sleep(next.saturating_duration_since(Instant::now()));
        match process::rss_kib(pid).and_then(|rss| Ok((rss, open_fds(pid)?))) {
            Ok((rss_kib, fds)) => {
                samples.push(Sample {
                    at: started.elapsed().as_secs_f64(),
                    rss_kib,
                    fds,
                });
            }
            Err(error) => {
                return (
                    samples,
                    vec![format!("the server stopped serving: {error:#}")],
                );
            }
        }
        next += SAMPLE_INTERVAL;
    }
    (samples, Vec::new())
}

/// Waits up to [`SETTLE`] for the server's descriptors to fall back to
/// `idle_fds` (plus a little) and returns the last count.
fn settle_fds(pid: Pid, idle_fds: usize) -> Result<usize> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let fds = open_fds(pid)?;
        if fds <= idle_fds + FD_SETTLED_SLACK || Instant::now() >= deadline {
            return Ok(fds);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Runs bench rounds until `load_end`: each opens its connections, sends for
/// a second and closes them.
fn bench_rounds(bins: &Bins, addr: SocketAddr, load_end: Instant, stop: &AtomicBool) -> BenchTally {
    let mut tally = BenchTally::default();
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() + ROUND / 2 <= load_end {
        let load = shape(round, SIZES[round % SIZES.len()]);
        match bench_round(bins, addr, load, ROUND) {
            Ok(echoed) => tally.echoed += echoed,
            Err(error) => tally
                .failures
                .push(format!("round {}, {load:?}: {error:#}", round + 1)),
        }
        tally.rounds += 1;
        round += 1;
    }
    tally
}

/// Runs `echo-client bench` with `load` for `duration`; returns how many
/// messages came back intact, or why the round failed (an error, a failed
/// connection, or a non-zero exit).
fn bench_round(bins: &Bins, addr: SocketAddr, load: Load, duration: Duration) -> Result<u64> {
    let client = cmd(&bins.client, load.args(addr, CLIENT_TIMEOUT_SECS, duration));
    let deadline = Instant::now() + duration + Duration::from_secs(2 * CLIENT_TIMEOUT_SECS);
    let output = output_by(process::isolated(client), deadline)?;
    Ok(read_report(&output.stdout, output.status.success())?.echoed)
}

/// The load of round `round` sending `size`-byte frames: the round's shape,
/// with the depth cut so that near-limit frames stay within
/// [`MAX_IN_FLIGHT_BYTES`].
fn shape(round: usize, size: usize) -> Load {
    let (connections, depth) = SHAPES[round % SHAPES.len()];
    let budget = MAX_IN_FLIGHT_BYTES / size.max(1);
    let connections = connections.min(budget).max(1);
    Load {
        connections,
        size,
        depth: depth.min(budget / connections).max(1),
    }
}

/// The kinds of hostile connection, taken in turn: half a frame and then a
/// reset; a frame announced larger than the limit; random bytes, then
/// closed; and a connection that says nothing, which the idle timeout must
/// close.
const HOSTILE: [&str; 4] = ["reset_mid_frame", "oversize", "garbage", "silent"];

/// Opens hostile connections until `load_end`, a few a second.
fn hostile_client(addr: SocketAddr, load_end: Instant, stop: &AtomicBool) -> HostileTally {
    let mut tally = HostileTally::default();
    let mut silent: Vec<(TcpStream, Instant)> = Vec::new();
    let mut seed = 0u32;
    while !stop.load(Ordering::Relaxed) && Instant::now() < load_end {
        let kind = seed as usize % HOSTILE.len();
        let outcome = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .context("could not connect")
            .and_then(|mut stream| match kind {
                0 => reset_mid_frame(stream, seed),
                1 => {
                    stream.write_all(&u32::try_from(MAX_FRAME + 1)?.to_be_bytes())?;
                    closed_by_server(&stream, Duration::from_secs(5))
                }
                // The announced length is usually over the limit and
                // sometimes under it, leaving a frame cut short.
                2 => Ok(stream.write_all(&noise(seed, 64 + seed as usize % 512))?),
                _ if silent.len() < MAX_SILENT => {
                    silent.push((stream, Instant::now()));
                    Ok(())
                }
                _ => Ok(()),
            });
        match outcome {
            Ok(()) => tally.done[kind] += 1,
            Err(error) => tally.failures.push(format!("{}: {error:#}", HOSTILE[kind])),
        }
        // A silent connection past the idle timeout (and a second's grace)
        // must have been closed by the server.
        let overdue = IDLE_TIMEOUT + Duration::from_secs(1);
        let (old, young) = silent
            .into_iter()
            .partition(|(_, opened)| opened.elapsed() >= overdue);
        silent = young;
        for (stream, opened) in old {
            match closed_by_server(&stream, Duration::from_millis(200)) {
                Ok(()) => tally.silent_reaped += 1,
                Err(error) => tally.failures.push(format!(
                    "a silent connection was still open after {:.1} s: {error:#}",
                    opened.elapsed().as_secs_f64()
                )),
            }
        }
        seed = seed.wrapping_add(1);
        thread::sleep(Duration::from_millis(50));
    }
    tally
}

/// Sends a header for 1000 bytes and half of them, then closes with a reset
/// instead of the orderly end of stream: with SO_LINGER on and a timeout of
/// zero, closing a socket sends RST.
fn reset_mid_frame(mut stream: TcpStream, seed: u32) -> Result<()> {
    let mut wire = 1000u32.to_be_bytes().to_vec();
    wire.extend(noise(seed, 500));
    stream.write_all(&wire)?;
    let abort = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&stream, sockopt::Linger, &abort).context("could not set SO_LINGER to 0")?;
    Ok(())
}

/// `len` bytes of noise from `seed` (xorshift32).
fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state.to_le_bytes()[0]
    };
    (0..len).map(|_| next()).collect()
}

/// Checks that the server closes `stream` within `wait`, sending nothing: a
/// read returns the end of stream or a reset.
fn closed_by_server(mut stream: &TcpStream, wait: Duration) -> Result<()> {
    stream.set_read_timeout(Some(wait))?;
    match stream.read(&mut [0; 64]) {
        Ok(0) => Ok(()),
        Ok(n) => bail!("the server sent {n} bytes instead of closing"),
        // A reset is what closing a socket with unread data sends.
        Err(error) if error.kind() == ErrorKind::ConnectionReset => Ok(()),
        Err(error) => Err(error).context("the server did not close the connection"),
    }
}

/// Echoes messages of each soak size, one connection each, for a moment:
/// the server still serves, and intact.
fn final_echo(bins: &Bins, addr: SocketAddr) -> Result<()> {
    for size in SIZES {
        let load = Load {
            connections: 1,
            size,
            depth: 1,
        };
        bench_round(bins, addr, load, Duration::from_millis(200))
            .with_context(|| format!("{load:?}"))?;
    }
    Ok(())
}

/// The short human report.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = self.duration;
        let first = self.samples.first();
        let last = self.samples.last();
        let mib = |s: Option<&Sample>| s.map_or(0.0, |s| s.rss_kib as f64 / 1024.0);
        let fds = |s: Option<&Sample>| s.map_or(0, |s| s.fds);
        let [resets, oversize, garbage, silent] = self.hostile.done;
        writeln!(
            f,
            "soak: {} s, {} samples, warm-up {} s\n\
             bench: {} rounds, {} messages echoed, {} failed rounds\n\
             hostile: {} connections ({resets} reset mid-frame, {oversize} oversize, {garbage} garbage, \
             {silent} silent, {} reaped by the idle timeout)\n\
             rss: {:.1} MiB -> {:.1} MiB\n\
             fds: {} idle, {} -> {} under load, {} after",
            duration.as_secs(),
            self.samples.len(),
            warm_up(duration).as_secs(),
            self.bench.rounds,
            self.bench.echoed,
            self.bench.failures.len(),
            self.hostile.done.iter().sum::<u64>(),
            self.hostile.silent_reaped,
            mib(first),
            mib(last),
            self.idle_fds,
            fds(first),
            fds(last),
            self.final_fds
                .map_or_else(|| "unknown".to_owned(), |fds| fds.to_string()),
        )?;
        for failure in &self.failures {
            writeln!(f, "failure: {failure}")?;
        }
        let verdict = if self.failures.is_empty() {
            "PASS"
        } else {
            "FAIL"
        };
        writeln!(f, "{verdict}")
    }
}

impl Report {
    /// The report as one JSON document.
    fn to_json(&self) -> Value {
        let duration = self.duration;
        let mut hostile = json!({
            "connections": self.hostile.done.iter().sum::<u64>(),
            "silent_reaped": self.hostile.silent_reaped,
        });
        for (kind, done) in HOSTILE.iter().zip(self.hostile.done) {
            hostile[kind] = done.into();
        }
        json!({
            "duration_s": duration.as_secs(),
            "warm_up_s": warm_up(duration).as_secs(),
            "passed": self.failures.is_empty(),
            "bench": {
                "rounds": self.bench.rounds,
                "echoed": self.bench.echoed,
                "failed_rounds": self.bench.failures.len(),
            },
            "hostile": hostile,
            "fds": { "idle": self.idle_fds, "after": self.final_fds },
            "samples": self.samples.iter().map(|s| json!({
                "at_s": s.at, "rss_kib": s.rss_kib, "fds": s.fds,
            })).collect::<Vec<_>>(),
            "failures": self.failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn steady_growth_is_detected() {
        // A leak of 1 MiB a second from 20 MiB, over 30 samples.
        let leak: Vec<f64> = (0..30).map(|i| 20_480.0 + 1024.0 * f64::from(i)).collect();
        let (first, last) = grows(&leak, rss_slack).expect("a leak must be detected");
        assert!(last > first);
        // Descriptors leaking two a second.
        let fds: Vec<f64> = (0..20).map(|i| 10.0 + 2.0 * f64::from(i)).collect();
        assert!(grows(&fds, |_| FD_SLACK).is_some());
    }

    #[test]
    fn flat_or_noisy_samples_are_not_growth() {
        assert_eq!(grows(&[30_000.0; 30], rss_slack), None);
        // Noise of +-4 MiB around a level, and a single spike in the middle.
        let mut noisy: Vec<f64> = (0..30)
            .map(|i| 30_000.0 + if i % 2 == 0 { 4096.0 } else { -4096.0 })
            .collect();
        noisy[15] = 200_000.0;
        assert_eq!(grows(&noisy, rss_slack), None);
        let fds: Vec<f64> = (0..20).map(|i| 40.0 + f64::from(i % 7) * 3.0).collect();
        assert_eq!(grows(&fds, |_| FD_SLACK), None);
        // Shrinking is not growth.
        let falling: Vec<f64> = (0..30).map(|i| 90_000.0 - 1024.0 * f64::from(i)).collect();
        assert_eq!(grows(&falling, rss_slack), None);
    }

    #[test]
    fn too_few_samples_are_not_judged() {
        assert_eq!(grows(&[], |_| 0.0), None);
        assert_eq!(grows(&[1.0, 1000.0], |_| 0.0), None);
        assert_eq!(grows(&[1.0, 2.0, 1000.0], |_| 0.0), Some((1.0, 1000.0)));
    }

    #[test]
    fn near_limit_rounds_stay_within_the_in_flight_budget() {
        for round in 0..SHAPES.len() {
            for size in SIZES {
                let load = shape(round, size);
                assert!(load.connections >= 1 && load.depth >= 1);
                assert!(load.connections * load.depth * size <= MAX_IN_FLIGHT_BYTES);
            }
        }
        assert_eq!(
            shape(0, 64),
            Load {
                connections: 1,
                size: 64,
                depth: 1
            }
        );
    }

    #[test]
    fn noise_is_deterministic_and_differs_by_seed() {
        assert_eq!(noise(7, 100), noise(7, 100));
        assert_ne!(noise(7, 100), noise(8, 100));
        assert_eq!(noise(3, 512).len(), 512);
    }

    #[test]
    fn parses_options() {
        let parse = |args: &[&str]| {
            Args::try_parse_from(std::iter::once("soak").chain(args.iter().copied()))
        };
        let args = parse(&[]).unwrap();
        assert_eq!((args.duration, args.json), (60, false));
        let args = parse(&["--duration", "20", "--json"]).unwrap();
        assert_eq!((args.duration, args.json), (20, true));
        for bad in ["19", "0", "x", "1.5"] {
            assert!(parse(&["--duration", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_reports_carry_every_failure() {
        let report = Report {
            duration: Duration::from_secs(20),
            bench: BenchTally {
                rounds: 3,
                echoed: 99,
                failures: vec!["round 2: x".to_owned()],
            },
            hostile: HostileTally {
                done: [1, 2, 3, 4],
                silent_reaped: 4,
                failures: Vec::new(),
            },
            samples: vec![Sample {
                at: 0.0,
                rss_kib: 2048,
                fds: 9,
            }],
            idle_fds: 8,
            final_fds: None,
            failures: vec!["round 2: x".to_owned()],
        };
        let text = report.to_string();
        assert!(
            text.contains("hostile: 10 connections (1 reset mid-frame, 2 oversize"),
            "{text}"
        );
        assert!(text.ends_with("failure: round 2: x\nFAIL\n"), "{text}");
        let json = report.to_json();
        assert_eq!(
            (&json["hostile"]["silent"], &json["passed"]),
            (&json!(4), &json!(false))
        );
        assert_eq!(json["fds"]["after"], Value::Null);
    }
}
