//! The binary's logs: on stderr through a bounded queue that a thread of
//! its own writes out, each line naming the instance, text or JSON.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use echo_server::Metrics;
use tracing::{Event, Subscriber, warn};
use tracing_appender::non_blocking::{ErrorCounter, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The formats `--log-format` offers.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The most log lines queued for stderr; past it, lines are dropped and
/// counted. At a few hundred bytes a line, some megabytes at most.
const QUEUED_LOG_LINES: usize = 16_384;

/// How often lost log lines are counted and reported.
const LOST_LOGS_PERIOD: Duration = Duration::from_secs(1);

/// The logs' writer, kept for as long as the process logs.
pub(crate) struct Logs {
    /// Flushes the queued lines when dropped, waiting for stderr at most a
    /// second.
    _flush: WorkerGuard,
    /// The lines dropped so far.
    pub(crate) lost: ErrorCounter,
}

/// Sends logs to stderr, at the level RUST_LOG asks for (info by default),
/// each line naming `instance`.
///
/// Through a queue that a thread of its own writes out: a reader of stderr
/// that falls behind or stops (a stuck log collector, a full pipe) then
/// costs lost log lines, counted, and never a stalled server. Written
/// directly, one blocked write to stderr would block the runtime's thread
/// in the middle of an echo.
pub(crate) fn init_logging(format: LogFormat, instance: &str) -> Logs {
    let (writer, flush) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LOG_LINES)
        .thread_name("echo-logs")
        .finish(std::io::stderr());
    let lost = writer.error_counter();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        // Without colours: each line is formatted into a buffer first,
        // which takes none.
        LogFormat::Text => logs
            .with_ansi(false)
            .event_format(WithInstance::text(instance, Format::default()))
            .init(),
        LogFormat::Json => logs
            .event_format(WithInstance::json(instance, Format::default().json()))
            .init(),
    }
    Logs {
        _flush: flush,
        lost,
    }
}

/// Every second, counts the log lines lost since the last time in
/// `echo_log_lines_dropped_total` and says so in the logs: the line gets
/// through once stderr is read again (or is lost and counted with the
/// rest, to be said again a second later).
pub(crate) async fn report_lost_log_lines(lost: ErrorCounter, metrics: Arc<Metrics>) {
    let mut reported = 0;
    let mut ticks = tokio::time::interval(LOST_LOGS_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let total = lost.dropped_lines() as u64;
        if total > reported {
            metrics.count_dropped_log_lines(total);
            warn!(
                lost = total - reported,
                total, "log lines lost: stderr was not read fast enough"
            );
            reported = total;
        }
    }
}

/// An event format that names the instance on every line: `inner`'s line,
/// with ` instance=NAME` at its end (text) or `"instance":"NAME"` as its
/// first field (JSON). A field of the line itself rather than a span, so
/// that it costs no connection anything and is there on every line,
/// whatever the level or the span.
struct WithInstance<F> {
    inner: F,
    /// What goes into each line, ready made: ` instance=NAME`, or
    /// `"instance":"NAME",`.
    insert: String,
    json: bool,
}

impl<F> WithInstance<F> {
    fn text(instance: &str, inner: F) -> Self {
        // Quoted as tracing quotes a string field with spaces or quotes.
        let plain = !instance.is_empty()
            && instance
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '=');
        let insert = if plain {
            format!(" instance={instance}")
        } else {
            format!(" instance={instance:?}")
        };
        Self {
            inner,
            insert,
            json: false,
        }
    }

    fn json(instance: &str, inner: F) -> Self {
        let name = serde_json::Value::from(instance).to_string();
        Self {
            inner,
            insert: format!("\"instance\":{name},"),
            json: true,
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithInstance<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let insert_at = if self.json {
            // After the opening brace.
            usize::from(line.starts_with('{'))
        } else {
            line.trim_end_matches('\n').len()
        };
        line.insert_str(insert_at, &self.insert);
        writer.write_str(&line)
    }
}
