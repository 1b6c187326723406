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

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use echo_testkit::procfs::{memory_kib, open_fds};
use echo_testkit::wire::{connect, echo_all, expect_eof, pattern, reset};
use echo_testkit::{Kind, Spawn};
use serde_json::{Value, json};

use crate::e2e::Bins;

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

/// At most this many frames in flight at once in a round, so that rounds
/// of near-limit frames do not need hundreds of megabytes.
const MAX_IN_FLIGHT_BYTES: usize = 16 * MAX_FRAME;

/// How long one bench round sends for.
const ROUND: Duration = Duration::from_secs(1);

/// How long `echo-client` waits to connect and for each echo.
const CLIENT_TIMEOUT_SECS: u64 = 5;

/// How long past the end of the load the soak may take to wind down:
/// a round finishing, the descriptors settling and the final checks.
const MARGIN: Duration = Duration::from_secs(20);

/// How long the open descriptors get to fall back to their idle count once
/// the load has stopped.
const SETTLE: Duration = Duration::from_secs(5);

/// How often the server is sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Most silent connections the hostile client holds at once.
const MAX_SILENT: usize = 16;

/// The growth in open descriptors, idle baseline to final count or first
/// to last third, beyond which the soak fails.
const FD_SLACK: f64 = 20.0;

/// How far the final descriptor count may be above the idle baseline.
const FD_SETTLED_SLACK: usize = 2;

/// The shortest soak: the 8 s warm-up and then enough samples (a dozen) to
/// compare the first third of them with the last.
const MIN_DURATION_SECS: u64 = 20;

/// The options of `cargo xtask soak`.
#[derive(Debug, PartialEq)]
pub(crate) struct Options {
    /// How long the load runs.
    pub(crate) duration: Duration,
    /// Print one JSON document instead of the human report.
    pub(crate) json: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration: Duration::from_secs(60),
            json: false,
        }
    }
}

impl Options {
    /// Parses the arguments that follow `soak`.
    pub(crate) fn parse(args: Vec<String>) -> Result<Self, String> {
        let mut options = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--json" => options.json = true,
                "--duration" => {
                    let value = args
                        .next()
                        .ok_or_else(|| "`--duration` needs a number of seconds".to_owned())?;
                    options.duration = match value.parse::<u64>() {
                        Ok(secs) if secs >= MIN_DURATION_SECS => Duration::from_secs(secs),
                        _ => {
                            return Err(format!(
                                "`--duration` must be a whole number of seconds, at least {MIN_DURATION_SECS}, got `{value}`"
                            ));
                        }
                    };
                }
                other => return Err(format!("unknown argument `{other}` for `soak`")),
            }
        }
        Ok(options)
    }
}

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

/// What the hostile client did.
#[derive(Debug, Default)]
struct HostileTally {
    resets: u64,
    oversize: u64,
    garbage: u64,
    silent: u64,
    silent_reaped: u64,
    failures: Vec<String>,
}

impl HostileTally {
    fn connections(&self) -> u64 {
        self.resets + self.oversize + self.garbage + self.silent
    }
}

/// Builds the release binaries, soaks the server and reports. Returns
/// whether the soak passed.
pub(crate) fn run(root: &std::path::Path, options: &Options) -> Result<bool> {
    let bins = crate::e2e::build(root, true)?;
    let report = soak(&bins, options.duration)?;
    if options.json {
        println!("{:#}", report.to_json(options.duration));
    } else {
        print!("{}", report.to_text(options.duration));
    }
    Ok(report.failures.is_empty())
}

/// Everything the soak found.
#[derive(Debug)]
struct Report {
    bench: BenchTally,
    hostile: HostileTally,
    samples: Vec<Sample>,
    /// The descriptors the server had open before the load.
    idle_fds: usize,
    /// The descriptors it had open once the load had stopped and they settled.
    final_fds: Option<usize>,
    failures: Vec<String>,
}

/// Runs the load against a fresh server for `duration` and checks it.
fn soak(bins: &Bins, duration: Duration) -> Result<Report> {
    let started = Instant::now();
    let max_frame = MAX_FRAME.to_string();
    let idle = IDLE_TIMEOUT.as_secs().to_string();
    let mut server = Spawn::new(&bins.server)
        .args(["--listen", "127.0.0.1:0", "--max-frame", &max_frame])
        .args(["--idle-timeout", &idle])
        .start()?;
    let [addr] = server.listening([Kind::Framed], started + duration + MARGIN)?;
    let pid = server.pid();
    let idle_fds = open_fds(pid)?;

    let load_end = Instant::now() + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let (bench, hostile, samples, mut failures) = thread::scope(|scope| {
        let bench = scope.spawn(|| bench_rounds(bins, addr, load_end, &stop));
        let hostile = scope.spawn(|| hostile_client(addr, load_end, &stop));
        let (samples, failures) = sample_until(pid, load_end, &stop);
        // The sampler returns early only if the server is gone: the load
        // threads see `stop` and wind down too.
        stop.store(true, Ordering::Relaxed);
        let bench = bench.join().unwrap_or_else(|_| BenchTally {
            failures: vec!["the bench thread panicked".to_owned()],
            ..BenchTally::default()
        });
        let hostile = hostile.join().unwrap_or_else(|_| HostileTally {
            failures: vec!["the hostile client's thread panicked".to_owned()],
            ..HostileTally::default()
        });
        (bench, hostile, samples, failures)
    });
    failures.extend(bench.failures.iter().cloned());
    failures.extend(hostile.failures.iter().cloned());

    let warm_up = warm_up(duration).as_secs_f64();
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm_up).collect();
    let rss: Vec<f64> = settled.iter().map(|s| s.rss_kib as f64).collect();
    let fds: Vec<f64> = settled.iter().map(|s| s.fds as f64).collect();
    if let Some((first, last)) = grows(&rss, |first| (8.0 * 1024.0f64).max(first * 0.1)) {
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
        failures.push(format!(
            "only {} samples after the warm-up, too few to judge growth",
            settled.len()
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
    if let Err(error) = final_echo(addr, Instant::now() + Duration::from_secs(10)) {
        failures.push(format!("the final echo check failed: {error:#}"));
    }
    // Its own deadline, since the soak's may be spent by a slow wind-down,
    // and a server that does not stop must still be reported, not killed
    // at once.
    match server.stop(Instant::now() + Duration::from_secs(10)) {
        Ok(output) if output.status.success() => {}
        Ok(output) => failures.push(format!("the server did not exit cleanly: {output}")),
        Err(error) => failures.push(format!("the server did not stop: {error:#}")),
    }
    Ok(Report {
        bench,
        hostile,
        samples,
        idle_fds,
        final_fds: final_fds.ok(),
        failures,
    })
}

/// The warm-up: the first fifth of the soak, and at least 8 s, which covers
/// the silent hostile connections' ramp to their steady number (they are held
/// until the server's 2 s idle timeout, with new ones every few hundred
/// milliseconds): a ramp is not a leak.
fn warm_up(duration: Duration) -> Duration {
    (duration / 5).max(Duration::from_secs(8))
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

/// Samples the server every second until `load_end`, or until it cannot be
/// sampled any more, which means it died. Returns the samples and, if it
/// died, why.
fn sample_until(pid: u32, load_end: Instant, stop: &AtomicBool) -> (Vec<Sample>, Vec<String>) {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next = started;
    while next <= load_end {
        thread::sleep(next.saturating_duration_since(Instant::now()));
        match memory_kib(pid, "VmRSS").and_then(|rss| Ok((rss, open_fds(pid)?))) {
            Ok((rss_kib, fds)) => samples.push(Sample {
                at: started.elapsed().as_secs_f64(),
                rss_kib,
                fds,
            }),
            Err(error) => {
                stop.store(true, Ordering::Relaxed);
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
fn settle_fds(pid: u32, idle_fds: usize) -> Result<usize> {
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
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) && Instant::now() + ROUND / 2 <= load_end {
        let size = SIZES[round % SIZES.len()];
        let (connections, depth) = shape(round, size);
        let deadline = Instant::now() + ROUND + Duration::from_secs(2 * CLIENT_TIMEOUT_SECS);
        let args = [
            "--timeout".to_owned(),
            CLIENT_TIMEOUT_SECS.to_string(),
            "bench".to_owned(),
            "--json".to_owned(),
            format!("--size={size}"),
            format!("--connections={connections}"),
            format!("--depth={depth}"),
            format!("--duration={}", ROUND.as_secs_f64()),
        ];
        let label = format!(
            "round {} (-s {size} -c {connections} -d {depth})",
            round + 1
        );
        match Spawn::new(&bins.client)
            .args(["--addr".to_owned(), addr.to_string()])
            .args(&args)
            .run(deadline)
            .map_err(anyhow::Error::from)
            .and_then(|output| judge_round(&output.stdout, output.status.success()))
        {
            Ok(echoed) => tally.echoed += echoed,
            Err(error) => tally.failures.push(format!("{label}: {error:#}")),
        }
        tally.rounds += 1;
        round += 1;
    }
    tally
}

/// The connections and depth of round `round` sending `size`-byte frames:
/// the round's shape, with the depth cut so that near-limit frames stay
/// within [`MAX_IN_FLIGHT_BYTES`].
fn shape(round: usize, size: usize) -> (usize, usize) {
    let (connections, depth) = SHAPES[round % SHAPES.len()];
    let budget = MAX_IN_FLIGHT_BYTES / size.max(1);
    let connections = connections.min(budget).max(1);
    (connections, depth.min(budget / connections).max(1))
}

/// Reads a round's `--json` report: the messages echoed, or why the round
/// failed (an error, a failed connection, or a non-zero exit).
pub(crate) fn judge_round(stdout: &[u8], exited_ok: bool) -> Result<u64> {
    let report: Value =
        serde_json::from_slice(stdout).context("the bench report is not valid JSON")?;
    let field = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(Value::as_u64)
            .with_context(|| format!("the bench report has no number at {pointer}"))
    };
    let errors = field("/errors/total")?;
    let failed = field("/connections/failed")?;
    if errors > 0 || failed > 0 || !exited_ok {
        let first = report.get("first_error").cloned().unwrap_or(Value::Null);
        bail!("{errors} errors, {failed} failed connections, first error: {first}");
    }
    field("/echoed")
}

/// The kinds of hostile connection, taken in turn.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// Sends half a frame, then resets the connection.
    ResetMidFrame,
    /// Announces a frame larger than the limit.
    Oversize,
    /// Sends random bytes and closes.
    Garbage,
    /// Connects and says nothing; the idle timeout must close it.
    Silent,
}

const HOSTILE: [Hostile; 4] = [
    Hostile::ResetMidFrame,
    Hostile::Oversize,
    Hostile::Garbage,
    Hostile::Silent,
];

/// Opens hostile connections until `load_end`, a few a second.
fn hostile_client(addr: SocketAddr, load_end: Instant, stop: &AtomicBool) -> HostileTally {
    let mut tally = HostileTally::default();
    let mut silent: Vec<(TcpStream, Instant)> = Vec::new();
    let mut seed = 0u32;
    while !stop.load(Ordering::Relaxed) && Instant::now() < load_end {
        let kind = HOSTILE[seed as usize % HOSTILE.len()];
        let deadline = Instant::now() + Duration::from_secs(5);
        let outcome = match kind {
            Hostile::ResetMidFrame => reset_mid_frame(addr, seed, deadline),
            Hostile::Oversize => oversize(addr, deadline),
            Hostile::Garbage => garbage(addr, seed, deadline),
            Hostile::Silent if silent.len() < MAX_SILENT => connect(addr, deadline)
                .map(|stream| silent.push((stream, Instant::now())))
                .map_err(anyhow::Error::from),
            Hostile::Silent => Ok(()),
        };
        match (outcome, kind) {
            (Err(error), _) => tally.failures.push(format!("{kind:?}: {error:#}")),
            (Ok(()), Hostile::ResetMidFrame) => tally.resets += 1,
            (Ok(()), Hostile::Oversize) => tally.oversize += 1,
            (Ok(()), Hostile::Garbage) => tally.garbage += 1,
            (Ok(()), Hostile::Silent) => tally.silent += 1,
        }
        // A silent connection past the idle timeout (and a second's grace)
        // must have been closed by the server.
        let overdue = IDLE_TIMEOUT + Duration::from_secs(1);
        let (old, young): (Vec<_>, Vec<_>) = silent
            .into_iter()
            .partition(|(_, opened)| opened.elapsed() >= overdue);
        silent = young;
        for (stream, opened) in old {
            match closed_by_server(&stream) {
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

/// Sends a header for 1000 bytes and half of them, then resets.
fn reset_mid_frame(addr: SocketAddr, seed: u32, deadline: Instant) -> Result<()> {
    let mut stream = connect(addr, deadline)?;
    let mut wire = 1000u32.to_be_bytes().to_vec();
    wire.extend(pattern(seed, 500));
    stream.write_all(&wire)?;
    Ok(reset(stream)?)
}

/// Announces a frame one byte over the limit and checks that the server
/// closes the connection without echoing anything.
fn oversize(addr: SocketAddr, deadline: Instant) -> Result<()> {
    let mut stream = connect(addr, deadline)?;
    let too_big = u32::try_from(MAX_FRAME + 1)?;
    stream.write_all(&too_big.to_be_bytes())?;
    closed_by_server_within(&stream, Duration::from_secs(5))
}

/// Sends random bytes, their first four a random length, and closes.
fn garbage(addr: SocketAddr, seed: u32, deadline: Instant) -> Result<()> {
    let mut stream = connect(addr, deadline)?;
    // The seed is mixed so that the announced length is usually over the
    // limit and sometimes under it, leaving a frame cut short.
    let noise = pattern(seed.wrapping_mul(0x9E37_79B9), 64 + seed as usize % 512);
    stream.write_all(&noise)?;
    Ok(())
}

/// Checks that the server has already closed `stream`: a read returns the
/// end of stream or a reset within a moment.
fn closed_by_server(stream: &TcpStream) -> Result<()> {
    closed_by_server_within(stream, Duration::from_millis(200))
}

/// Checks that the server closes `stream` within `wait`, sending nothing.
fn closed_by_server_within(stream: &TcpStream, wait: Duration) -> Result<()> {
    stream.set_read_timeout(Some(wait))?;
    let mut buf = [0; 64];
    match (&*stream).read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => bail!("the server sent {n} bytes instead of closing"),
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(error).context("the server did not close the connection"),
    }
}

/// Echoes one frame of each soak size on a fresh connection, then closes it.
fn final_echo(addr: SocketAddr, deadline: Instant) -> Result<()> {
    let stream = connect(addr, deadline)?;
    let frames: Vec<Vec<u8>> = SIZES
        .iter()
        .zip(1..)
        .map(|(&size, seed)| pattern(seed, size))
        .collect();
    echo_all(&stream, &frames, deadline, |stream| {
        Ok(stream.shutdown(Shutdown::Write)?)
    })?;
    Ok(expect_eof(&stream, deadline)?)
}

impl Report {
    fn verdict(&self) -> &'static str {
        if self.failures.is_empty() {
            "PASS"
        } else {
            "FAIL"
        }
    }

    /// The short human report.
    fn to_text(&self, duration: Duration) -> String {
        let first = self.samples.first();
        let last = self.samples.last();
        let mib = |s: Option<&Sample>| s.map_or(0.0, |s| s.rss_kib as f64 / 1024.0);
        let fds = |s: Option<&Sample>| s.map_or(0, |s| s.fds);
        let mut text = format!(
            "soak: {} s, {} samples, warm-up {} s\n\
             bench: {} rounds, {} messages echoed, {} failed rounds\n\
             hostile: {} connections ({} reset mid-frame, {} oversize, {} garbage, {} silent, {} reaped by the idle timeout)\n\
             rss: {:.1} MiB -> {:.1} MiB\n\
             fds: {} idle, {} -> {} under load, {} after\n",
            duration.as_secs(),
            self.samples.len(),
            warm_up(duration).as_secs(),
            self.bench.rounds,
            self.bench.echoed,
            self.bench.failures.len(),
            self.hostile.connections(),
            self.hostile.resets,
            self.hostile.oversize,
            self.hostile.garbage,
            self.hostile.silent,
            self.hostile.silent_reaped,
            mib(first),
            mib(last),
            self.idle_fds,
            fds(first),
            fds(last),
            self.final_fds
                .map_or_else(|| "unknown".to_owned(), |fds| fds.to_string()),
        );
        for failure in &self.failures {
            text.push_str(&format!("failure: {failure}\n"));
        }
        text.push_str(&format!("{}\n", self.verdict()));
        text
    }

    /// The report as one JSON document.
    fn to_json(&self, duration: Duration) -> Value {
        json!({
            "duration_s": duration.as_secs(),
            "warm_up_s": warm_up(duration).as_secs(),
            "passed": self.failures.is_empty(),
            "bench": {
                "rounds": self.bench.rounds,
                "echoed": self.bench.echoed,
                "failed_rounds": self.bench.failures.len(),
            },
            "hostile": {
                "connections": self.hostile.connections(),
                "reset_mid_frame": self.hostile.resets,
                "oversize": self.hostile.oversize,
                "garbage": self.hostile.garbage,
                "silent": self.hostile.silent,
                "silent_reaped": self.hostile.silent_reaped,
            },
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
    use super::*;

    fn rss_limit(first: f64) -> f64 {
        (8.0 * 1024.0f64).max(first * 0.1)
    }

    #[test]
    fn steady_growth_is_detected() {
        // A leak of 1 MiB a second from 20 MiB, over 30 samples.
        let leak: Vec<f64> = (0..30).map(|i| 20_480.0 + 1024.0 * f64::from(i)).collect();
        let (first, last) = grows(&leak, rss_limit).expect("a leak must be detected");
        assert!(last > first);
        // Descriptors leaking two a second.
        let fds: Vec<f64> = (0..20).map(|i| 10.0 + 2.0 * f64::from(i)).collect();
        assert!(grows(&fds, |_| FD_SLACK).is_some());
    }

    #[test]
    fn flat_or_noisy_samples_are_not_growth() {
        let flat = vec![30_000.0; 30];
        assert_eq!(grows(&flat, rss_limit), None);
        // Noise of +-4 MiB around a level, and a single spike in the middle.
        let mut noisy: Vec<f64> = (0..30)
            .map(|i| 30_000.0 + if i % 2 == 0 { 4096.0 } else { -4096.0 })
            .collect();
        noisy[15] = 200_000.0;
        assert_eq!(grows(&noisy, rss_limit), None);
        let fds: Vec<f64> = (0..20).map(|i| 40.0 + f64::from(i % 7) * 3.0).collect();
        assert_eq!(grows(&fds, |_| FD_SLACK), None);
        // Shrinking is not growth.
        let falling: Vec<f64> = (0..30).map(|i| 90_000.0 - 1024.0 * f64::from(i)).collect();
        assert_eq!(grows(&falling, rss_limit), None);
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
                let (connections, depth) = shape(round, size);
                assert!(connections >= 1 && depth >= 1);
                assert!(connections * depth * size <= MAX_IN_FLIGHT_BYTES);
            }
        }
        assert_eq!(shape(0, 64), SHAPES[0]);
    }

    #[test]
    fn judges_bench_reports() {
        let ok = br#"{"echoed": 12, "errors": {"total": 0}, "connections": {"failed": 0}}"#;
        assert_eq!(judge_round(ok, true).unwrap(), 12);
        assert!(judge_round(ok, false).is_err());
        let bad = br#"{"echoed": 3, "errors": {"total": 1}, "connections": {"failed": 0},
                       "first_error": "echo 3 differs"}"#;
        let error = judge_round(bad, false).unwrap_err().to_string();
        assert!(error.contains("echo 3 differs"), "{error}");
        assert!(judge_round(b"not json", true).is_err());
    }

    #[test]
    fn parses_options() {
        let parse = |args: &[&str]| Options::parse(args.iter().map(|a| (*a).to_owned()).collect());
        assert_eq!(parse(&[]), Ok(Options::default()));
        assert_eq!(
            parse(&["--duration", "20", "--json"]),
            Ok(Options {
                duration: Duration::from_secs(20),
                json: true,
            })
        );
        assert!(parse(&["--duration"]).unwrap_err().contains("--duration"));
        assert!(parse(&["--duration", "0"]).unwrap_err().contains("`0`"));
        assert!(
            parse(&["--duration", "19"])
                .unwrap_err()
                .contains("at least 20")
        );
        assert_eq!(
            parse(&["--duration", "20"]).map(|options| options.duration),
            Ok(Duration::from_secs(20))
        );
        assert!(parse(&["--duration", "x"]).unwrap_err().contains("`x`"));
        assert!(parse(&["--fast"]).unwrap_err().contains("--fast"));
    }
}
