//! One bench connection: a writer and a reader over the two halves of one
//! link, sharing a [`Window`], run side by side in one task.
//!
//! One task rather than two, so that the room the reader makes reaches the
//! writer without a wake-up at all: the reader is polled first, the writer
//! right after it. With one message in flight a trip to another thread would
//! be a large part of each round trip; with many, a wake-up per window would
//! be a few percent of the client's time. Connections still spread over every
//! worker thread.
//!
//! The writer sends messages while fewer than `depth` are in flight (and, when
//! paced, once each is due), many per write when the window allows. The
//! reader takes the echoes as they come, checks every byte against the
//! message it answers, and times it from the send time the writer left in the
//! window. Each message follows from its connection and sequence number, so
//! an echo can be checked on its own; over TCP, when a window of messages is
//! small enough, the writer also keeps their bytes ([`SentBytes`]), and the
//! reader verifies all the echoes of a read in one comparison, checking them
//! one by one only to find what is wrong. Nothing is allocated per message.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use echo_proto::FrameError;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::dialer::{Dialer, Opened};
use super::reconnect::Reconnector;
use super::schedule::Schedule;
use super::sent_bytes::SentBytes;
use super::tally::{Collector, Datagrams, Tally};
use crate::error::ClientError;
use crate::mode::Mode;
use crate::payload::Pattern;
use crate::transport::{Link, Receiver, Sender};

/// The most bytes one write gathers, so that a deep window of large messages
/// does not need a huge buffer.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// The fewest slots of a UDP socket's window ring. A lost datagram holds
/// its slot until its timeout while the other messages go on, so the ring
/// must reach further ahead than `depth` messages: with 1024 slots (24 KiB
/// a socket with the reader's record), a socket is held back only once it
/// has sent 1024 messages past one that is still awaited.
const MIN_UDP_RING: u64 = 1024;

/// What every connection of a run shares.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) addr: String,
    pub(super) mode: Mode,
    /// The start of the run; every time is counted in nanoseconds from it.
    pub(super) epoch: Instant,
    pub(super) warmup_nanos: u64,
    pub(super) depth: u64,
    pub(super) timeout: Duration,
    /// Messages per second in all, when paced.
    pub(super) rate: Option<f64>,
    pub(super) connections: u64,
    pub(super) pattern: Pattern,
    pub(super) collector: Collector,
    /// Whether a connection that fails is opened again, and its messages in
    /// flight sent again.
    pub(super) reconnect: bool,
}

impl Plan {
    /// Nanoseconds since the start of the run.
    pub(super) fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// `nanos` from the start of the run, as an instant to sleep until.
    fn instant(&self, nanos: u64) -> tokio::time::Instant {
        (self.epoch + Duration::from_nanos(nanos)).into()
    }

    fn timeout_nanos(&self) -> u64 {
        nanos(self.timeout)
    }
}

/// A duration in nanoseconds, saturating (at 584 years).
pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// What the writer and reader of one connection share: the messages in
/// flight and their send times.
///
/// At most `depth` messages are in flight, so the send times fit in a ring
/// of `depth` slots or more: the writer reuses a slot only once the reader is
/// done with the message before. The ring's length is a power of two, so that
/// finding a message's slot is a mask rather than a division, which would
/// cost more than the rest of the bookkeeping of a small message.
#[derive(Debug)]
struct Window {
    /// Messages in flight at most.
    depth: u64,
    /// The ring's length less one.
    mask: u64,
    sent_at: Box<[AtomicU64]>,
    /// How many messages have been queued for sending (the next one's
    /// number).
    sent: AtomicU64,
    /// How many messages at the front are done with: echoed, or given up
    /// as lost. Over TCP echoes come in order, and the window's room is
    /// `depth - (sent - completed)`.
    completed: AtomicU64,
    /// Over UDP, how many messages are done with in all, the front's and
    /// those answered out of order beyond it: the room is `depth - (sent -
    /// resolved)`, as far as the ring reaches past the front. Always 0 over
    /// TCP, whose `completed` says it all.
    resolved: AtomicU64,
    /// The messages' wire bytes, from which the writer sends and against
    /// which the reader verifies, when the connection is a stream, pipelined,
    /// and they are few enough to keep. (With one message in flight, each
    /// read brings one echo: there is nothing to verify in bulk.)
    sent_bytes: Option<Mutex<SentBytes>>,
}

impl Window {
    /// The window of connection `id`, for `depth` messages of the plan's.
    fn new(depth: u64, id: u32, plan: &Plan) -> Self {
        let len = match plan.mode {
            Mode::Udp => depth.max(MIN_UDP_RING).next_power_of_two(),
            Mode::Framed | Mode::Raw => depth.next_power_of_two(),
        };
        let slots = usize::try_from(len).unwrap_or(usize::MAX);
        let sent_bytes = plan
            .mode
            .stream_header(plan.pattern.len())
            .filter(|_| depth > 1)
            .and_then(|header| SentBytes::new(&plan.pattern, id, &header, slots));
        Self {
            depth,
            mask: len - 1,
            sent_at: (0..len).map(|_| AtomicU64::new(0)).collect(),
            sent: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            resolved: AtomicU64::new(0),
            sent_bytes: sent_bytes.map(Mutex::new),
        }
    }

    /// The ring slot of message `seq`.
    fn index(&self, seq: u64) -> usize {
        (seq & self.mask) as usize
    }

    /// The length of the ring.
    fn len(&self) -> usize {
        self.sent_at.len()
    }

    fn slot(&self, seq: u64) -> &AtomicU64 {
        &self.sent_at[self.index(seq)]
    }

    /// How many more messages may be sent once `sent` have been: `depth`
    /// less those in flight, and no further than the ring reaches past the
    /// oldest message still awaited.
    fn room(&self, sent: u64) -> u64 {
        let completed = self.completed.load(Ordering::Acquire);
        let resolved = self.resolved.load(Ordering::Acquire).max(completed);
        let in_flight = sent - resolved;
        let ahead = sent - completed;
        self.depth
            .saturating_sub(in_flight)
            .min((self.len() as u64).saturating_sub(ahead))
    }

    /// Records that every message before `completed` is done with. The
    /// writer, polled right after the reader, sees the room it makes.
    fn complete(&self, completed: u64) {
        self.completed.store(completed, Ordering::Release);
    }

    /// Records that `resolved` messages are done with in all (UDP).
    fn resolve(&self, resolved: u64) {
        self.resolved.store(resolved, Ordering::Release);
    }
}

/// Locks what the writer and reader share. The two run in one task and
/// never hold it across an await, so it is never contended: taking it costs
/// an atomic operation or two, once per batch of messages or per read.
fn lock(sent_bytes: &Mutex<SentBytes>) -> MutexGuard<'_, SentBytes> {
    // A panic while it was held ends the task, and both with it.
    sent_bytes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A one-way signal, raised once and checked often: a flag for the checks (a
/// load, where a cancellation token's check takes a lock), and a token for
/// the waits.
#[derive(Debug, Clone, Default)]
pub(super) struct Signal {
    raised: Arc<AtomicBool>,
    token: CancellationToken,
}

impl Signal {
    pub(super) fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub(super) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Resolves once the signal is raised.
    pub(super) async fn raised(&self) {
        self.token.cancelled().await;
    }
}

/// How far a connection's writer has got: kept from one link to the next
/// when the connection is opened again.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// The number of the next message to send.
    next: u64,
    /// Messages sent after the warmup, for the quota: each counted once,
    /// however often it was sent.
    measured: u64,
    /// The messages before this one were sent already, on a link that
    /// failed before their echoes came: they go again first, timed from
    /// when they were first sent, and counted no more.
    resend_until: u64,
}

impl Progress {
    /// Every message sent so far, on this link or an earlier one.
    fn sent(&self) -> u64 {
        self.next.max(self.resend_until)
    }
}

/// How a writer ended.
#[derive(Debug, Default)]
struct WriterEnd {
    progress: Progress,
    /// Why it stopped early, if it did.
    error: Option<ClientError>,
}

/// How one link of a connection ended.
#[derive(Debug)]
struct LinkEnd {
    progress: Progress,
    failure: Option<Failure>,
}

/// Runs connection `id`, opened as `opened`, until its last echo. `quota`
/// limits the messages sent after the warmup; `stop` ends the sending (the
/// run's deadline, or an interruption). With the plan's `reconnect`, a link
/// that fails is opened again by `dialer`, and the messages that were in
/// flight on it are sent again.
pub(super) async fn run(
    id: u32,
    mut opened: Opened,
    quota: Option<u64>,
    plan: Arc<Plan>,
    stop: Signal,
    dialer: Arc<Dialer>,
) {
    let window = Arc::new(Window::new(plan.depth, id, &plan));
    let mut tally = Tally::new(&plan.collector, plan.warmup_nanos);
    let mut progress = Progress::default();
    let mut reconnector = Reconnector::new(id);
    let failure = loop {
        let completed_before = window.completed.load(Ordering::Acquire);
        let opened_at = plan.now();
        let link = Served {
            id,
            quota,
            plan: &plan,
            window: &window,
            stop: &stop,
        };
        let end = link.serve(opened.link, &mut tally, progress).await;
        progress = end.progress;
        if let Some(instance) = &opened.instance {
            tally.flush(plan.now());
            tally.count_instance(instance);
        }
        let Some(failure) = end.failure else {
            break None;
        };
        if !(plan.reconnect && failure.worth_reconnecting()) {
            break Some(failure);
        }
        // Every echo is in and nothing more is to be sent (the half-close
        // failed, say): there is nothing to reconnect for.
        let done_sending =
            stop.is_raised() || quota.is_some_and(|quota| progress.measured >= quota);
        if done_sending && window.completed.load(Ordering::Acquire) >= progress.sent() {
            break None;
        }
        if window.completed.load(Ordering::Acquire) > completed_before {
            reconnector.served();
        }
        tally.outage_began(opened_at);
        tracing::debug!(connection = id, error = %crate::error::describe(&failure.error), "reconnecting");
        match reconnector.reopen(failure.error, &dialer, &plan).await {
            Ok(again) => {
                // Everything after the last echo goes again, from the front
                // of the window, which the reader takes up where it was.
                let completed = window.completed.load(Ordering::Acquire);
                let sent = progress.sent();
                {
                    let mut totals = plan.collector.lock();
                    totals.reconnects.reconnects += 1;
                    totals.reconnects.resent += sent - completed;
                }
                progress = Progress {
                    next: completed,
                    resend_until: sent,
                    ..progress
                };
                window.sent.store(completed, Ordering::Release);
                opened = again;
            }
            Err(error) => break Some(Failure::new(error)),
        }
    };
    if let Some(failure) = &failure {
        // Every message sent whose echo will now never come is missing.
        let completed = window.completed.load(Ordering::Acquire);
        tally.missing += progress
            .sent()
            .saturating_sub(completed + failure.answered_ahead);
        tally.note_error(|| {
            format!(
                "connection {id}: {}",
                crate::error::describe(&failure.error)
            )
        });
    }
    tally.outage_ended(plan.now());
    tally.flush(plan.now());
    tally.count_connection();
    if failure.is_some() {
        plan.collector.lock().failed_connections += 1;
    }
}

/// One link of a connection: what its writer and reader share.
struct Served<'a> {
    id: u32,
    quota: Option<u64>,
    plan: &'a Arc<Plan>,
    window: &'a Arc<Window>,
    stop: &'a Signal,
}

impl Served<'_> {
    /// Sends and reads on `link`, from `progress` on, until the last echo or
    /// a failure.
    async fn serve(self, link: Link, tally: &mut Tally<'_>, progress: Progress) -> LinkEnd {
        // Raised by the reader when the link has failed, so that the writer
        // stops instead of waiting for room that will never come.
        let abort = Signal::default();
        let schedule = self
            .plan
            .rate
            .map(|rate| Schedule::new(rate, self.plan.connections, u64::from(self.id)));
        let (ended, writer_end) = oneshot::channel();
        let writer = Writer {
            id: self.id,
            sender: link.sender,
            quota: self.quota,
            schedule,
            plan: Arc::clone(self.plan),
            window: Arc::clone(self.window),
            stop: self.stop.clone(),
            abort: abort.clone(),
            progress,
        };
        let reader = Reader {
            id: self.id,
            receiver: link.receiver,
            plan: Arc::clone(self.plan),
            window: Arc::clone(self.window),
            abort,
            writer: writer_end,
            writer_end: None,
            progress,
        };
        // The reader goes first in every poll of the task, so that the
        // writer, polled right after it, finds the room that the echoes just
        // made: it needs no wake-up of its own (see `Writer::run`).
        let (end, ()) = tokio::join!(biased; reader.run(tally), writer.run(ended));
        end
    }
}

/// The sending side of a connection.
struct Writer {
    id: u32,
    sender: Sender,
    quota: Option<u64>,
    schedule: Option<Schedule>,
    plan: Arc<Plan>,
    window: Arc<Window>,
    stop: Signal,
    abort: Signal,
    /// Where the connection's earlier links left off.
    progress: Progress,
}

impl Writer {
    /// Sends until told to stop, then tells the reader how many messages
    /// it sent, through `ended`.
    async fn run(mut self, ended: oneshot::Sender<WriterEnd>) {
        let Progress {
            next: mut seq,
            mut measured,
            resend_until,
        } = self.progress;
        // Whether the writer has just slept until a paced message was due,
        // and nothing else has held it up since.
        let mut on_time = false;
        let error = 'run: loop {
            // Messages sent before on a link that failed go again whatever
            // the stop and the quota say: they were sent, and are owed.
            let resending = seq < resend_until;
            if self.abort.is_raised() || (!resending && self.stop.is_raised()) {
                break None;
            }
            if !resending && self.quota.is_some_and(|quota| measured >= quota) {
                break None;
            }
            let room = self.window.room(seq);
            if room == 0 {
                // Only the reader makes room, or gives up, and it is polled
                // just before the writer in the same task (see `run`): the
                // writer waits for its next poll without asking to be woken,
                // which spares a trip through the runtime per window of
                // echoes. A stop is seen then, at most a round trip (or a
                // timeout) late.
                let (window, abort) = (&self.window, &self.abort);
                std::future::poll_fn(|_| {
                    if window.room(seq) > 0 || abort.is_raised() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                on_time = false;
                continue;
            }
            let now = self.plan.now();
            let mut batch = room.min(max_batch(self.plan.pattern.len()));
            if resending {
                batch = batch.min(resend_until - seq);
            } else if let Some(schedule) = self.schedule {
                let due = schedule.due_at(seq);
                if due > now {
                    on_time = tokio::select! {
                        () = tokio::time::sleep_until(self.plan.instant(due)) => true,
                        () = self.stop.raised() => false,
                        () = self.abort.raised() => false,
                    };
                    continue;
                }
                batch = batch.min(schedule.due_by(now) - seq);
            }

            // Paced messages are timed from when they were due, so that a
            // server that holds the writer back (a full window, a blocked
            // write) has every delay counted against it. Except when the
            // writer was only waiting for its own timer, which wakes up to a
            // millisecond late: that delay is the client's, and these
            // messages are timed from now, when they could first be sent.
            let paced = self.schedule.filter(|_| !std::mem::take(&mut on_time));
            // Messages sent again keep their first send times: their
            // latency counts the outage against the service.
            let mut queued = if resending { batch } else { 0 };
            while queued < batch {
                let message_seq = seq + queued;
                let sent_at = paced.map_or(now, |schedule| schedule.due_at(message_seq));
                if sent_at >= self.plan.warmup_nanos {
                    if self.quota.is_some_and(|quota| measured >= quota) {
                        break;
                    }
                    measured += 1;
                }
                self.window
                    .slot(message_seq)
                    .store(sent_at, Ordering::Release);
                queued += 1;
            }
            if queued == 0 {
                continue;
            }
            if let Err(error) = self.queue(seq, queued) {
                // The socket failed, and none of these messages went out
                // (a message too long to frame cannot happen: the size was
                // checked before the run). Either ends this connection only.
                break 'run Some(ClientError::exchange(
                    &self.plan.addr,
                    self.plan.pattern.len(),
                    error,
                ));
            }
            seq += queued;
            self.window.sent.store(seq, Ordering::Release);
            // The flush first: it is nearly always done at once, and then the
            // abort's future is never polled, which would cost a lock.
            tokio::select! {
                biased;
                flushed = self.sender.flush() => {
                    if let Err(error) = flushed {
                        break Some(ClientError::exchange(&self.plan.addr, self.plan.pattern.len(), error.into()));
                    }
                }
                () = self.abort.raised() => break None,
            }
        };
        let mut end = WriterEnd {
            progress: Progress {
                next: seq,
                measured,
                resend_until,
            },
            error,
        };
        if end.error.is_none() && !self.abort.is_raised() {
            if let Err(error) = self.sender.finish().await {
                end.error = Some(ClientError::exchange(
                    &self.plan.addr,
                    self.plan.pattern.len(),
                    error.into(),
                ));
            }
        }
        self.plan.collector.lock().sent += measured - self.progress.measured;
        // The reader is gone only if it has finished, and then it needs
        // nothing more.
        let _ = ended.send(end);
    }

    /// Hands messages `first..first + count` to the sender: when there is a
    /// kept ring (see [`SentBytes`]), its span with their identities
    /// stamped, written at once as far as the socket takes it and the rest
    /// queued; else one message (a large one: a batch holds one message of
    /// 32 KiB or more) sent the same way from its parts, or several built
    /// into the queue, to go out in one write. The flush that follows sends
    /// whatever is queued.
    fn queue(&mut self, first: u64, count: u64) -> Result<(), FrameError> {
        if let Some(sent_bytes) = &self.window.sent_bytes {
            let mut sent_bytes = lock(sent_bytes);
            for seq in first..first + count {
                sent_bytes.stamp(seq);
            }
            let (head, tail) = sent_bytes.wire(first, count as usize);
            return Ok(self.sender.send_stream_bytes(head, tail)?);
        }
        if count == 1 {
            let message = self.plan.pattern.message(self.id, first);
            let (identity, identity_len) = message.identity();
            return self
                .sender
                .send_message(&identity[..identity_len], message.body());
        }
        for seq in first..first + count {
            let message = self.plan.pattern.message(self.id, seq);
            self.sender
                .push_with(message.len(), |batch| message.append_to(batch))?;
        }
        Ok(())
    }
}

/// How many messages of `len` bytes one write gathers at most.
fn max_batch(len: usize) -> u64 {
    (MAX_BATCH_BYTES / (len + 4)).max(1) as u64
}

/// The receiving side of a connection, which also judges it.
struct Reader {
    id: u32,
    receiver: Receiver,
    plan: Arc<Plan>,
    window: Arc<Window>,
    abort: Signal,
    /// Where the writer's end arrives.
    writer: oneshot::Receiver<WriterEnd>,
    writer_end: Option<WriterEnd>,
    /// Where the writer started on this link.
    progress: Progress,
}

impl Reader {
    /// Reads the link's echoes until the last, or until it fails; then
    /// says how it ended, with the writer's progress.
    async fn run(mut self, tally: &mut Tally<'_>) -> LinkEnd {
        let read = if self.plan.mode == Mode::Udp {
            self.read_datagrams(tally).await
        } else {
            self.read_stream(tally).await
        };
        let failure = match read {
            Err(failure) => {
                // Stop the writer, and wait for how far it got.
                self.abort.raise();
                self.writer_end().await;
                Some(failure)
            }
            Ok(()) => self.writer_end().await.error.take().map(Failure::new),
        };
        LinkEnd {
            progress: self.writer_end().await.progress,
            failure,
        }
    }

    /// What to assume of a writer that vanished without saying how it ended:
    /// that everything it queued was sent. It cannot happen (the writer runs
    /// in this task, and a panic would end both), but it costs nothing to
    /// handle.
    fn lost_writer(&self) -> WriterEnd {
        WriterEnd {
            progress: Progress {
                next: self.window.sent.load(Ordering::Acquire),
                ..self.progress
            },
            error: None,
        }
    }

    /// The writer's end, waiting for it if it has not ended yet.
    async fn writer_end(&mut self) -> &mut WriterEnd {
        if self.writer_end.is_none() {
            let end = (&mut self.writer)
                .await
                .unwrap_or_else(|_| self.lost_writer());
            self.writer_end = Some(end);
        }
        self.writer_end.get_or_insert_with(WriterEnd::default)
    }

    /// Reads a TCP connection's echoes, which come back in order, until the
    /// last message's.
    async fn read_stream(&mut self, tally: &mut Tally<'_>) -> Result<(), Failure> {
        let plan = Arc::clone(&self.plan);
        let (size, addr) = (plan.pattern.len(), plan.addr.as_str());
        let mut next = self.window.completed.load(Ordering::Acquire);
        let mut clock = ArrivalClock::default();
        let overdue = tokio::time::sleep(plan.timeout);
        tokio::pin!(overdue);
        loop {
            if self
                .writer_end
                .as_ref()
                .is_some_and(|end| next >= end.progress.next)
            {
                break;
            }
            tokio::select! {
                biased;
                received = self.receiver.next_echo(size) => {
                    let echo = match received {
                        Ok(Some(echo)) => echo,
                        Ok(None) => {
                            // The server closes once it has echoed all, after
                            // the writer's half-close; the writer's word that
                            // it is done may not have been read yet.
                            if self.writer_end.is_none() {
                                self.writer_end = self.writer.try_recv().ok();
                            }
                            if self.writer_end.as_ref().is_some_and(|end| next >= end.progress.next) {
                                break;
                            }
                            return Err(Failure::new(ClientError::closed(addr, size)));
                        }
                        Err(error) => return Err(Failure::new(ClientError::exchange(addr, size, error))),
                    };
                    // This echo, then the others that came in the same read,
                    // without a trip through the runtime each: in one
                    // comparison if they are intact (and the bytes sent are
                    // kept), else one by one.
                    let mut echo = echo;
                    let mut verify_in_bulk = self.window.sent_bytes.is_some();
                    let failure = loop {
                        if next >= self.window.sent.load(Ordering::Acquire) {
                            // An echo of nothing sent: the stream is out of step.
                            tally.unexpected += 1;
                            break Some(Failure::new(unexpected(addr)));
                        }
                        let checked = plan.pattern.message(self.id, next).check(echo);
                        let sent_at = self.window.slot(next).load(Ordering::Acquire);
                        match checked {
                            Ok(()) => tally.echoed(sent_at, clock.now(&plan, &self.receiver)),
                            Err(at) => corrupted(tally, self.id, next, at),
                        }
                        next += 1;
                        if std::mem::take(&mut verify_in_bulk) {
                            next += self.take_verified(next, tally, &mut clock);
                        }
                        echo = match self.receiver.buffered_echo(size) {
                            Some(Ok(echo)) => echo,
                            Some(Err(error)) => break Some(Failure::new(ClientError::exchange(addr, size, error))),
                            None => break None,
                        };
                    };
                    self.window.complete(next);
                    if let Some(failure) = failure {
                        return Err(failure);
                    }
                }
                joined = &mut self.writer, if self.writer_end.is_none() => {
                    self.writer_end = Some(joined.unwrap_or_else(|_| self.lost_writer()));
                }
                () = &mut overdue => {
                    let now = plan.now();
                    let due = if next < self.window.sent.load(Ordering::Acquire) {
                        let due = self.window.slot(next).load(Ordering::Acquire) + plan.timeout_nanos();
                        if now >= due {
                            return Err(Failure::new(ClientError::timeout(addr, plan.timeout)));
                        }
                        due
                    } else {
                        now + plan.timeout_nanos()
                    };
                    overdue.as_mut().reset(plan.instant(due));
                }
            }
        }
        // Every echo is in. The writer has half-closed the connection, so a
        // server that follows the protocol closes it too once it has echoed
        // everything: anything else that comes first is an extra echo. A
        // server that does not close is given the timeout, and then left.
        if self
            .writer_end
            .as_ref()
            .is_some_and(|end| end.error.is_none())
        {
            if let Ok(Ok(Some(_extra))) =
                tokio::time::timeout(plan.timeout, self.receiver.next_echo(1)).await
            {
                tally.unexpected += 1;
                tally.note_error(|| format!("connection {}: {}", self.id, unexpected(addr)));
            }
        }
        Ok(())
    }

    /// Takes the whole echoes already buffered, from that of message `next`
    /// on, if they are exactly the bytes that were sent, and counts them:
    /// how many they were. If any differs, none is taken, and the caller
    /// checks them one by one, which says which is wrong and where.
    fn take_verified(&mut self, next: u64, tally: &mut Tally<'_>, clock: &mut ArrivalClock) -> u64 {
        let Some(sent_bytes) = &self.window.sent_bytes else {
            return 0;
        };
        let sent_bytes = lock(sent_bytes);
        let in_flight = self.window.sent.load(Ordering::Acquire) - next;
        let message_len = sent_bytes.message_len();
        let buffered = self.receiver.buffered_bytes();
        // Whole echoes only, and only of messages sent: anything after them
        // is for the caller to deal with.
        let count = usize::try_from(in_flight)
            .unwrap_or(usize::MAX)
            .min(buffered.len() / message_len);
        let len = count * message_len;
        if count == 0 || !sent_bytes.matches(next, &buffered[..len]) {
            return 0;
        }
        drop(sent_bytes);
        self.receiver.skip_buffered(len);
        // The echoes all came now; those sent together (a writer's batch)
        // have the same latency, and are counted together.
        let now = clock.now(&self.plan, &self.receiver);
        let end = next + count as u64;
        let mut run_start = next;
        let mut run_sent_at = self.window.slot(next).load(Ordering::Acquire);
        for seq in next + 1..end {
            let sent_at = self.window.slot(seq).load(Ordering::Acquire);
            if sent_at != run_sent_at {
                tally.echoed_many(run_sent_at, now, seq - run_start);
                (run_start, run_sent_at) = (seq, sent_at);
            }
        }
        tally.echoed_many(run_sent_at, now, end - run_start);
        end - next
    }

    /// Reads a UDP socket's replies, which may be lost, duplicated or
    /// reordered (each says which message it answers), until every message
    /// is answered or given up as lost; then adds what became of them to
    /// the run's figures. Loss, duplicates and reordering are the network's
    /// doing, measured rather than counted as errors.
    async fn read_datagrams(&mut self, tally: &mut Tally<'_>) -> Result<(), Failure> {
        let mut datagrams = Datagrams::default();
        let read = self.read_datagrams_into(tally, &mut datagrams).await;
        datagrams.add_to(&mut self.plan.collector.lock().datagrams);
        read
    }

    async fn read_datagrams_into(
        &mut self,
        tally: &mut Tally<'_>,
        datagrams: &mut Datagrams,
    ) -> Result<(), Failure> {
        let plan = Arc::clone(&self.plan);
        let (size, addr) = (plan.pattern.len(), plan.addr.as_str());
        // What became of the messages of each window slot: the number of the
        // last one resolved there, and whether its reply came.
        let mut resolved: Vec<(u64, bool)> = vec![(u64::MAX, false); self.window.len()];
        let window = Arc::clone(&self.window);
        let slot = |seq: u64| window.index(seq);
        // The oldest message not yet resolved, and how many are.
        let mut oldest = 0;
        let mut resolved_count = 0;
        let mut clock = ArrivalClock::default();
        let overdue = tokio::time::sleep(plan.timeout);
        tokio::pin!(overdue);
        loop {
            if self
                .writer_end
                .as_ref()
                .is_some_and(|end| oldest >= end.progress.next)
            {
                return Ok(());
            }
            tokio::select! {
                biased;
                received = self.receiver.next_echo(size) => {
                    let echo = match received {
                        Ok(Some(echo)) => echo,
                        Ok(None) => return Err(Failure::new(ClientError::closed(addr, size))),
                        Err(error) => {
                            // Replies already in for messages after the
                            // oldest unanswered one are not missing.
                            let sent = self.window.sent.load(Ordering::Acquire);
                            let answered_ahead = (oldest..sent).filter(|&seq| resolved[slot(seq)].0 == seq).count() as u64;
                            return Err(Failure { error: ClientError::exchange(addr, size, error), answered_ahead });
                        }
                    };
                    let sent = self.window.sent.load(Ordering::Acquire);
                    let seq = match crate::payload::Pattern::identify(echo) {
                        Some((id, seq)) if id == self.id && seq < sent => seq,
                        _ => {
                            tally.unexpected += 1;
                            tally.note_error(|| format!("connection {}: a datagram that answers no message", self.id));
                            continue;
                        }
                    };
                    let (last, replied) = resolved[slot(seq)];
                    if seq < oldest || last == seq {
                        // Its message was resolved already: given up as lost
                        // (a late reply), or answered (a duplicate).
                        if last == seq && replied {
                            datagrams.duplicated += 1;
                        } else {
                            tally.late += 1;
                        }
                        continue;
                    }
                    if datagrams.latest_answered.is_some_and(|latest| seq < latest) {
                        datagrams.reordered += 1;
                    }
                    datagrams.latest_answered = datagrams.latest_answered.max(Some(seq));
                    let checked = plan.pattern.message(self.id, seq).check(echo);
                    let sent_at = self.window.slot(seq).load(Ordering::Acquire);
                    match checked {
                        Ok(()) => {
                            let now = clock.now(&plan, &self.receiver);
                            tally.echoed(sent_at, now);
                            if sent_at >= plan.warmup_nanos {
                                datagrams.jitter.arrived(Duration::from_nanos(sent_at), Duration::from_nanos(now));
                                datagrams.timed += 1;
                            }
                        }
                        Err(at) => corrupted(tally, self.id, seq, at),
                    }
                    resolved[slot(seq)] = (seq, true);
                    resolved_count += 1;
                    while oldest < sent && resolved[slot(oldest)].0 == oldest {
                        oldest += 1;
                    }
                    self.window.resolve(resolved_count);
                    self.window.complete(oldest);
                }
                joined = &mut self.writer, if self.writer_end.is_none() => {
                    self.writer_end = Some(joined.unwrap_or_else(|_| self.lost_writer()));
                }
                () = &mut overdue => {
                    // Every message older than the timeout is lost.
                    let now = plan.now();
                    let sent = self.window.sent.load(Ordering::Acquire);
                    let mut next_due = now + plan.timeout_nanos();
                    while oldest < sent {
                        if resolved[slot(oldest)].0 != oldest {
                            let sent_at = self.window.slot(oldest).load(Ordering::Acquire);
                            let due = sent_at + plan.timeout_nanos();
                            if now < due {
                                next_due = due;
                                break;
                            }
                            // Lost, which the loss figure counts for the
                            // measured part of the run.
                            if sent_at >= plan.warmup_nanos {
                                datagrams.lost += 1;
                            }
                            resolved[slot(oldest)] = (oldest, false);
                            resolved_count += 1;
                        }
                        oldest += 1;
                    }
                    self.window.resolve(resolved_count);
                    self.window.complete(oldest);
                    overdue.as_mut().reset(plan.instant(next_due));
                }
            }
        }
    }
}

/// The time echoes arrived, read from the clock once per read rather than
/// once per echo: the echoes of one read all arrived together, and reading
/// the clock is a noticeable part of handling a small echo.
#[derive(Debug, Default)]
struct ArrivalClock {
    /// The receiver's read count when the clock was last read, plus one (so
    /// that the first echo always reads it).
    reads: u64,
    now: u64,
}

impl ArrivalClock {
    fn now(&mut self, plan: &Plan, receiver: &Receiver) -> u64 {
        let reads = receiver.reads() + 1;
        if reads != self.reads {
            self.reads = reads;
            self.now = plan.now();
        }
        self.now
    }
}

fn corrupted(tally: &mut Tally<'_>, id: u32, seq: u64, at: usize) {
    tally.corrupted += 1;
    tally.note_error(|| {
        format!("connection {id}: the echo of message {seq} differs from it at byte {at}")
    });
}

fn unexpected(addr: &str) -> ClientError {
    ClientError::Unexpected {
        addr: addr.to_owned(),
    }
}

/// Why a reader stopped before the end.
#[derive(Debug)]
struct Failure {
    error: ClientError,
    /// Messages after the oldest unanswered one whose replies are in (over
    /// UDP, replies can come out of order): they are not missing.
    answered_ahead: u64,
}

impl Failure {
    fn new(error: ClientError) -> Self {
        Self {
            error,
            answered_ahead: 0,
        }
    }

    /// Whether the link failed as a restarting or crashing server makes it
    /// fail (closed, reset, or silent past the timeout), so that opening it
    /// again may help; a server that answers wrongly is not asked again.
    fn worth_reconnecting(&self) -> bool {
        matches!(
            self.error,
            ClientError::Closed { .. } | ClientError::Io { .. } | ClientError::Timeout { .. }
        )
    }
}
