//! Rendering results for people and for programs.
//!
//! For people: ping's lines in the style of iputils' `ping`, and the bench's
//! banner, interval lines and results block, every figure with its unit. For
//! programs: the reports serialize to JSON (with serde) with the unit in each
//! field's name: `_s` for seconds, `latency_us` and `rtt_us` for microseconds;
//! they read back from it the same way.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::bench::{BenchConfig, BenchReport, IntervalReport, Stop};
use crate::mode::Mode;
use crate::ping::{PingOutcome, PingReply, PingReport};
use crate::stats::LatencySummary;

/// A duration with three significant figures in a unit that suits it: ns, µs,
/// ms or s.
///
/// ```
/// use std::time::Duration;
/// use echo_client::report::human_duration;
///
/// assert_eq!(human_duration(Duration::from_nanos(850)), "850 ns");
/// assert_eq!(human_duration(Duration::from_nanos(18_149)), "18.1 µs");
/// assert_eq!(human_duration(Duration::from_micros(1_210)), "1.21 ms");
/// assert_eq!(human_duration(Duration::from_millis(2_500)), "2.50 s");
/// ```
pub fn human_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos() as f64;
    let (value, unit) = if nanos < 1e3 {
        (nanos, "ns")
    } else if nanos < 1e6 {
        (nanos / 1e3, "µs")
    } else if nanos < 1e9 {
        (nanos / 1e6, "ms")
    } else {
        (nanos / 1e9, "s")
    };
    // Three significant figures, whatever the magnitude; a value that rounds
    // up to the next power of ten (999.7 → "1000") keeps its unit, which is
    // still right.
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    if unit == "ns" {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.decimals$} {unit}")
    }
}

/// A duration in milliseconds with three decimals, as ping prints times.
fn ms(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1e3)
}

/// A percentage as ping prints it: whole when it is, else one decimal.
fn percent(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}%")
    } else {
        format!("{value:.1}%")
    }
}

/// Seconds, briefly: "10 s", "0.5 s", "1.25 s".
fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// `n` and the noun, in the plural unless `n` is 1.
fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Ping's first line: `ECHO 127.0.0.1:9999 (framed): 56 bytes of payload`.
pub fn ping_banner(peer: SocketAddr, mode: Mode, size: usize) -> String {
    format!("ECHO {peer} ({mode}): {size} bytes of payload")
}

/// The lines ping prints for one reply: late echoes of earlier pings first,
/// then this ping's outcome, then any unexpected datagrams.
///
/// ```
/// # use std::time::Duration;
/// # use echo_client::report::ping_reply_lines;
/// # use echo_client::ping::{PingReply, PingOutcome};
/// // Replies come from Pinger::ping; printing one looks like this:
/// fn print(reply: &PingReply) {
///     let peer = echo_proto::DEFAULT_ADDR;
///     for line in ping_reply_lines(peer, 56, Duration::from_secs(5), reply) {
///         println!("{line}"); // 56 bytes from 127.0.0.1:9999: seq=1 time=0.061 ms
///     }
/// }
/// ```
pub fn ping_reply_lines(
    peer: SocketAddr,
    size: usize,
    timeout: Duration,
    reply: &PingReply,
) -> Vec<String> {
    let mut lines: Vec<String> = reply
        .late
        .iter()
        .map(|late| {
            format!(
                "late echo from {peer}: seq={} time={} ms{}",
                late.seq,
                ms(late.rtt),
                if late.intact { "" } else { " (corrupted)" }
            )
        })
        .collect();
    let seq = reply.seq;
    lines.push(match reply.outcome {
        PingOutcome::Echoed { rtt } => format!("{size} bytes from {peer}: seq={seq} time={} ms", ms(rtt)),
        PingOutcome::Corrupted { rtt, first_difference } => format!(
            "{size} bytes from {peer}: seq={seq} time={} ms CORRUPTED: first difference at byte {first_difference}",
            ms(rtt)
        ),
        PingOutcome::Lost => format!("no echo from {peer} for seq={seq} within {}", human_duration(timeout)),
    });
    if reply.unexpected > 0 {
        lines.push(format!(
            "{} from {peer} that answer no ping",
            count(reply.unexpected, "unexpected datagram")
        ));
    }
    lines
}

/// Ping's summary, as iputils prints it:
///
/// ```text
/// --- 127.0.0.1:9999 echo statistics ---
/// 5 sent, 5 received, 0% loss, time 4004 ms
/// rtt min/avg/max/mdev = 0.045/0.061/0.089/0.012 ms, p50 0.060 ms, p99 0.089 ms
/// ```
///
/// Corrupted, late and unexpected echoes are added to the second line when
/// there are any; the third line is left out when no echo came back intact.
/// Over TCP a last line says how long connecting took (`connect 0.081
/// ms`), and with TLS how long the handshake took after it.
impl fmt::Display for PingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- {} echo statistics ---", self.peer)?;
        write!(
            f,
            "{} sent, {} received, {} loss, time {} ms",
            self.sent,
            self.received,
            percent(self.loss_percent),
            self.time.as_millis()
        )?;
        for (n, what) in [
            (self.corrupted, "corrupted"),
            (self.late, "late"),
            (self.unexpected, "unexpected"),
        ] {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
        }
        if let Some(rtt) = &self.rtt {
            write!(
                f,
                "\nrtt min/avg/max/mdev = {}/{}/{}/{} ms, p50 {} ms, p99 {} ms",
                ms(rtt.min),
                ms(rtt.mean),
                ms(rtt.max),
                ms(rtt.mdev),
                ms(rtt.p50),
                ms(rtt.p99)
            )?;
        }
        if let Some(connect) = self.connect_time {
            write!(f, "\nconnect {} ms", ms(connect))?;
            if let Some(handshake) = self.tls_handshake_time {
                write!(f, ", TLS handshake {} ms", ms(handshake))?;
            }
        }
        Ok(())
    }
}

/// The bench's first line, stating what it will do:
/// `BENCH 127.0.0.1:9999 (framed): 1 connection, depth 1, 64-byte messages, for 10 s, unpaced`.
pub fn bench_banner(config: &BenchConfig) -> String {
    let stop = match config.stop {
        Stop::Duration(duration) => format!("for {}", seconds(duration)),
        Stop::Messages(messages) => count(messages, "message"),
    };
    let warmup = if config.warmup.is_zero() {
        String::new()
    } else {
        format!(" after a {} warmup", seconds(config.warmup))
    };
    let pace = match config.rate {
        Some(rate) => format!("paced at {rate} msgs/s"),
        None => "unpaced".to_owned(),
    };
    format!(
        "BENCH {} ({}): {}, depth {}, {}-byte messages, {stop}{warmup}, {pace}",
        config.addr,
        config.mode,
        count(config.connections as u64, "connection"),
        config.depth,
        config.size
    )
}

/// Throughput as the bench prints it: `51234 msgs/s, 3.28 MB/s`.
fn throughput(messages_per_s: f64, megabytes_per_s: f64) -> String {
    format!("{messages_per_s:.0} msgs/s, {megabytes_per_s:.2} MB/s")
}

/// One interval line:
/// `[  1.0-  2.0 s]  51234 msgs/s, 3.28 MB/s, p50 18.1 µs, p99 40.2 µs, 0 errors`.
impl fmt::Display for IntervalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:5.1}-{:5.1} s]  {}",
            self.start.as_secs_f64(),
            self.end.as_secs_f64(),
            throughput(self.messages_per_s, self.megabytes_per_s)
        )?;
        if let Some(latency) = &self.latency {
            write!(
                f,
                ", p50 {}, p99 {}",
                human_duration(latency.p50),
                human_duration(latency.p99)
            )?;
        }
        write!(f, ", {}", count(self.errors, "error"))
    }
}

/// The bench's results block:
///
/// ```text
/// --- 127.0.0.1:9999 bench results ---
/// messages     512340 sent, 512340 echoed in 10.00 s
/// throughput   51234 msgs/s, 3.28 MB/s of echoed payload
/// latency      min 12.1 µs, p50 18.1 µs, p90 22.0 µs, p99 40.2 µs, p99.9 80.1 µs, max 1.21 ms
/// errors       0
/// connections  1 of 1 connected, 0 failed
/// ```
///
/// With greetings expected, a line per server instance follows, in name
/// order: `instance     web-1: 5 connections, 256170 echoed`. A report
/// [merged](crate::bench::merge()) from several hosts says so in its first
/// line and ends with a line per host: `host         a.json: 256170 echoed
/// in 10.00 s, 25617 msgs/s, 1.64 MB/s, 0 errors, p99 40.2 µs`.
impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let merged = match self.hosts.len() {
            0 => String::new(),
            hosts => format!(", merged from {}", count(hosts as u64, "host")),
        };
        writeln!(
            f,
            "--- {} bench results{merged}{} ---",
            self.parameters.addr,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "messages     {} sent, {} echoed in {:.2} s",
            self.sent,
            self.echoed,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "throughput   {} of echoed payload",
            throughput(self.messages_per_s, self.megabytes_per_s)
        )?;
        match &self.latency {
            Some(latency) => writeln!(f, "latency      {}", latency_line(latency))?,
            None => writeln!(f, "latency      no echo was timed")?,
        }
        let errors = &self.errors;
        write!(f, "errors       {}", errors.total)?;
        if errors.total > 0 {
            write!(
                f,
                " ({} corrupted, {} missing, {} unexpected)",
                errors.corrupted, errors.missing, errors.unexpected
            )?;
        }
        if self.late > 0 {
            write!(
                f,
                "; {} after their timeout",
                count(self.late, "late reply")
            )?;
        }
        writeln!(f)?;
        if let Some(datagrams) = &self.datagrams {
            writeln!(
                f,
                "datagrams    {} lost ({}), {} duplicated, {} reordered, jitter {}",
                datagrams.lost,
                percent(datagrams.loss_percent),
                datagrams.duplicated,
                datagrams.reordered,
                human_duration(datagrams.jitter)
            )?;
        }
        let connections = &self.connections;
        write!(
            f,
            "connections  {} of {} connected, {} failed",
            connections.connected, connections.requested, connections.failed
        )?;
        if let Some(connect) = &self.connect_time {
            write!(
                f,
                "\nconnect      p50 {}, max {} over TCP",
                human_duration(connect.p50),
                human_duration(connect.max)
            )?;
            if let Some(handshake) = &self.tls_handshake_time {
                write!(
                    f,
                    "; TLS handshake p50 {}, max {}",
                    human_duration(handshake.p50),
                    human_duration(handshake.max)
                )?;
            }
        }
        if let Some(cpu) = &self.client_cpu {
            write!(
                f,
                "\nclient       {:.0}% of its {} busy",
                cpu.busy_percent,
                count(cpu.cores as u64, "core")
            )?;
            if cpu.limited {
                f.write_str(
                    ": the client may have been the limit, and these figures its own rather \
                     than the server's",
                )?;
            }
        }
        if let Some(reconnects) = &self.reconnects {
            write!(
                f,
                "\nreconnects   {} ({} sent again, {}), longest outage {}",
                reconnects.reconnects,
                count(reconnects.resent, "message"),
                count(reconnects.failed_attempts, "failed attempt"),
                human_duration(reconnects.longest_outage)
            )?;
        }
        if let Some(fairness) = &self.fairness {
            write!(
                f,
                "\nfairness     Jain's index {:.3} over {}: {} to {} echoes each",
                fairness.jain_index,
                count(fairness.connections, "connection"),
                fairness.min_echoes,
                fairness.max_echoes
            )?;
        }
        for (instance, counts) in &self.instances {
            write!(
                f,
                "\ninstance     {instance}: {}, {} echoed",
                count(counts.connections, "connection"),
                counts.echoed
            )?;
        }
        for host in &self.hosts {
            write!(
                f,
                "\nhost         {}: {} echoed in {:.2} s, {}, {} errors",
                host.name,
                host.echoed,
                host.elapsed.as_secs_f64(),
                throughput(host.messages_per_s, host.megabytes_per_s),
                host.errors
            )?;
            if let Some(latency) = &host.latency {
                write!(f, ", p99 {}", human_duration(latency.p99))?;
            }
        }
        if let Some(error) = &self.first_error {
            write!(f, "\nfirst error  {error}")?;
        }
        Ok(())
    }
}

fn latency_line(latency: &LatencySummary) -> String {
    format!(
        "min {}, p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
        human_duration(latency.min),
        human_duration(latency.p50),
        human_duration(latency.p90),
        human_duration(latency.p99),
        human_duration(latency.p99_9),
        human_duration(latency.max)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ping::LateEcho;

    #[test]
    fn durations_keep_three_significant_figures() {
        let cases = [
            (Duration::ZERO, "0 ns"),
            (Duration::from_nanos(999), "999 ns"),
            (Duration::from_nanos(1_000), "1.00 µs"),
            (Duration::from_nanos(61_234), "61.2 µs"),
            (Duration::from_nanos(123_456), "123 µs"),
            (Duration::from_micros(1_500), "1.50 ms"),
            (Duration::from_millis(42), "42.0 ms"),
            (Duration::from_secs(3), "3.00 s"),
            (Duration::from_secs(1234), "1234 s"),
        ];
        for (duration, text) in cases {
            assert_eq!(human_duration(duration), text);
        }
    }

    #[test]
    fn percentages_are_whole_when_they_can_be() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(20.0), "20%");
        assert_eq!(percent(100.0 / 3.0), "33.3%");
    }

    fn sample_rtt() -> LatencySummary {
        let us = Duration::from_micros;
        LatencySummary {
            count: 5,
            min: us(45),
            mean: us(61),
            max: us(89),
            mdev: us(12),
            p50: us(60),
            p90: us(80),
            p99: us(89),
            p99_9: us(89),
        }
    }

    fn sample_ping_report() -> PingReport {
        PingReport {
            addr: "localhost:7".to_owned(),
            peer: "127.0.0.1:7".parse().unwrap(),
            mode: Mode::Framed,
            size: 56,
            sent: 5,
            received: 5,
            corrupted: 0,
            lost: 0,
            late: 0,
            unexpected: 0,
            loss_percent: 0.0,
            time: Duration::from_micros(4_004_321),
            rtt: Some(sample_rtt()),
            connect_time: None,
            tls_handshake_time: None,
        }
    }

    #[test]
    fn the_ping_summary_looks_like_pings() {
        assert_eq!(
            sample_ping_report().to_string(),
            "--- 127.0.0.1:7 echo statistics ---\n\
             5 sent, 5 received, 0% loss, time 4004 ms\n\
             rtt min/avg/max/mdev = 0.045/0.061/0.089/0.012 ms, p50 0.060 ms, p99 0.089 ms"
        );
    }

    #[test]
    fn the_ping_summary_names_what_went_wrong() {
        let report = PingReport {
            sent: 3,
            received: 1,
            corrupted: 1,
            lost: 2,
            late: 1,
            loss_percent: 200.0 / 3.0,
            rtt: None,
            ..sample_ping_report()
        };
        assert_eq!(
            report.to_string(),
            "--- 127.0.0.1:7 echo statistics ---\n\
             3 sent, 1 received, 66.7% loss, time 4004 ms, 1 corrupted, 1 late"
        );
    }

    #[test]
    fn ping_lines_for_each_outcome() {
        let peer: SocketAddr = "127.0.0.1:7".parse().unwrap();
        let timeout = Duration::from_secs(5);
        let reply = |outcome, late, unexpected| PingReply {
            seq: 3,
            outcome,
            late,
            unexpected,
        };
        let rtt = Duration::from_micros(61);
        assert_eq!(
            ping_reply_lines(
                peer,
                56,
                timeout,
                &reply(PingOutcome::Echoed { rtt }, vec![], 0)
            ),
            ["56 bytes from 127.0.0.1:7: seq=3 time=0.061 ms"]
        );
        assert_eq!(
            ping_reply_lines(
                peer,
                56,
                timeout,
                &reply(
                    PingOutcome::Corrupted {
                        rtt,
                        first_difference: 13
                    },
                    vec![],
                    0
                )
            ),
            [
                "56 bytes from 127.0.0.1:7: seq=3 time=0.061 ms CORRUPTED: first difference at byte 13"
            ]
        );
        let late = LateEcho {
            seq: 2,
            rtt: Duration::from_millis(5_100),
            intact: true,
        };
        assert_eq!(
            ping_reply_lines(peer, 56, timeout, &reply(PingOutcome::Lost, vec![late], 2)),
            [
                "late echo from 127.0.0.1:7: seq=2 time=5100.000 ms",
                "no echo from 127.0.0.1:7 for seq=3 within 5.00 s",
                "2 unexpected datagrams from 127.0.0.1:7 that answer no ping",
            ]
        );
        assert_eq!(
            ping_banner(peer, Mode::Udp, 56),
            "ECHO 127.0.0.1:7 (udp): 56 bytes of payload"
        );
    }

    #[test]
    fn the_bench_banner_states_the_settings() {
        assert_eq!(
            bench_banner(&BenchConfig::default()),
            format!(
                "BENCH {} (framed): 1 connection, depth 1, 64-byte messages, for 10 s, unpaced",
                echo_proto::DEFAULT_ADDR
            )
        );
        let config = BenchConfig {
            connections: 10,
            depth: 32,
            stop: Stop::Messages(1),
            warmup: Duration::from_millis(500),
            rate: Some(2500.0),
            mode: Mode::Raw,
            ..BenchConfig::default()
        };
        assert_eq!(
            bench_banner(&config),
            format!(
                "BENCH {} (raw): 10 connections, depth 32, 64-byte messages, 1 message \
                 after a 0.5 s warmup, paced at 2500 msgs/s",
                echo_proto::DEFAULT_ADDR
            )
        );
    }

    #[test]
    fn an_interval_line_has_rates_and_percentiles() {
        let interval = IntervalReport {
            start: Duration::from_secs(1),
            end: Duration::from_secs(2),
            echoed: 51_234,
            errors: 1,
            messages_per_s: 51_234.4,
            megabytes_per_s: 3.279,
            latency: Some(sample_rtt()),
        };
        assert_eq!(
            interval.to_string(),
            "[  1.0-  2.0 s]  51234 msgs/s, 3.28 MB/s, p50 60.0 µs, p99 89.0 µs, 1 error"
        );
    }
}
