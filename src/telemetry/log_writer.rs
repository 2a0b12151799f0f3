//! The server's log lines, written out by a thread of their own, in
//! batches.
//!
//! Logging a line copies it into a shared buffer; the thread writes what
//! gathered within [`BATCH`] of its first line, or as soon as [`EAGER`]
//! bytes wait: one `write` and one wake-up for many lines, and none while
//! idle. (tracing-appender's writer, used before, woke its thread for every
//! line and, whenever it kept up, wrote every line alone: a wake-up and a
//! system call a request.)
//!
//! Past [`QUEUE`] bytes waiting (stdout slower than the lines come, or
//! taking nothing: a log shipper that stalled, a pipe nobody reads), lines
//! are dropped and counted, and once a write goes through again the thread
//! reports how many. Waiting for room instead made every request wait on
//! stdout: a reader that stopped stopped authentication, `/readyz`
//! included. What must not be lost is not here: the audit trail is in
//! the database.

use std::cell::Cell;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

/// How long a line waits at most before it is written.
const BATCH: Duration = Duration::from_millis(20);
/// Waiting bytes that get written without waiting out the [`BATCH`].
const EAGER: usize = 256 * 1024;
/// Waiting bytes past which lines are dropped.
const QUEUE: usize = 8 * 1024 * 1024;
/// How long the guard waits at exit for what is queued to be written: a
/// stdout that takes nothing for this long (a pipe nobody reads) must not
/// keep the process from exiting.
const LAST_WRITES: Duration = Duration::from_secs(5);
/// The counter of lines dropped.
pub const DROPPED: &str = "authd_log_lines_dropped_total";

#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    /// Lines dropped since the last report.
    dropped: u64,
    closed: bool,
}

/// Told how many lines were dropped, on the writer's thread once a write
/// goes through again; it may log (the line is queued like any other).
pub type Report = Box<dyn Fn(u64) + Send>;

thread_local! {
    /// Set on the writer's own thread: what it logs (a report) is queued
    /// even when full, and even once closed, since writing it directly
    /// would wait for itself.
    static WRITER_THREAD: Cell<bool> = const { Cell::new(false) };
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the thread: a batch's first line, [`EAGER`] bytes, closing.
    wake: Condvar,
    /// The thread holds it while it runs: a line logged once the writer is
    /// closed waits for it to finish, and so comes after what was queued.
    out: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn out(&self) -> MutexGuard<'_, Box<dyn Write + Send>> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The thread: waits for a batch, writes it, until closed and empty. A
    /// batch gathers for [`BATCH`] from its first line (less once
    /// [`EAGER`] bytes wait), and an idle server's thread sleeps.
    fn drain(&self, report: &Report) {
        WRITER_THREAD.set(true);
        let mut out = self.out();
        let mut batch = Vec::new();
        loop {
            let queue = self
                .wake
                .wait_while(self.queue(), |queue| {
                    queue.bytes.is_empty() && !queue.closed
                })
                .unwrap_or_else(PoisonError::into_inner);
            let (mut queue, _) = self
                .wake
                .wait_timeout_while(queue, BATCH, |queue| {
                    !queue.closed && queue.bytes.len() < EAGER
                })
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut queue.bytes, &mut batch);
            let closed = queue.closed;
            drop(queue);
            if !batch.is_empty() {
                // Nowhere to report a failing stdout; the next batch tries again.
                let _ = out.write_all(&batch).and_then(|()| out.flush());
                batch.clear();
            }
            // What was dropped while that write waited, told once it is done.
            let dropped = std::mem::take(&mut self.queue().dropped);
            if dropped > 0 {
                report(dropped);
            }
            if closed && self.queue().bytes.is_empty() {
                return;
            }
        }
    }
}

/// Where the subscriber writes lines (`MakeWriter`).
#[derive(Clone)]
pub struct LogWriter(Arc<Shared>);

/// Dropping it has the thread write what waits (waiting for that up to
/// [`LAST_WRITES`]), and stop.
#[must_use = "dropping it stops the log writer"]
pub struct LogWriterGuard {
    shared: Arc<Shared>,
    /// Disconnects when the thread is done.
    done: mpsc::Receiver<()>,
}

/// A writer of lines to `out`, and the guard of its thread, which tells
/// `report` how many lines it dropped.
pub fn spawn(
    out: impl Write + Send + 'static,
    report: Report,
) -> io::Result<(LogWriter, LogWriterGuard)> {
    let shared = Arc::new(Shared {
        queue: Mutex::default(),
        wake: Condvar::new(),
        out: Mutex::new(Box::new(out)),
    });
    let (finished, done) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("authd-log".into())
        .spawn({
            let shared = shared.clone();
            move || {
                shared.drain(&report);
                drop(finished);
            }
        })?;
    Ok((LogWriter(shared.clone()), LogWriterGuard { shared, done }))
}

impl Write for &LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &self.0;
        let mut queue = shared.queue();
        // The thread's own report always gets in: under a stdout that
        // stays slow the queue is full again whenever it reports.
        if queue.bytes.len() >= QUEUE && !queue.closed && !WRITER_THREAD.get() {
            queue.dropped += 1;
            drop(queue);
            // Counted here, not at the report, so that a stdout that takes
            // nothing at all still shows.
            metrics::counter!(DROPPED).increment(1);
            return Ok(line.len());
        }
        if queue.closed && !WRITER_THREAD.get() {
            // The thread is gone (or going): write it here, in order.
            drop(queue);
            let mut out = shared.out();
            out.write_all(line)?;
            out.flush()?;
            return Ok(line.len());
        }
        let before = queue.bytes.len();
        queue.bytes.extend_from_slice(line);
        // The first line of a batch starts it; one past `EAGER` ends it.
        if before == 0 || (before < EAGER && queue.bytes.len() >= EAGER) {
            shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for LogWriterGuard {
    fn drop(&mut self) {
        self.shared.queue().closed = true;
        self.shared.wake.notify_one();
        let _ = self.done.recv_timeout(LAST_WRITES);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// What was written, shared with the test; each write waits for `gate`
    /// to let it through when there is one.
    #[derive(Clone, Default)]
    struct Output {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Option<Arc<Mutex<mpsc::Receiver<()>>>>,
    }

    impl Output {
        /// An output whose writes each wait for a message on `gate` (or
        /// for its sender to go).
        fn gated(gate: mpsc::Receiver<()>) -> Self {
            Self {
                gate: Some(Arc::new(Mutex::new(gate))),
                ..Self::default()
            }
        }
    }

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(gate) = &self.gate {
                // Open once the test lets a write through, or ends.
                let _ = gate.lock().unwrap().recv();
            }
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn no_report() -> Report {
        Box::new(|dropped| panic!("{dropped} lines dropped"))
    }

    fn lines(output: &Output) -> Vec<String> {
        String::from_utf8(output.bytes.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_line_is_written_in_each_threads_order_and_none_after_the_guard_is_lost() {
        let output = Output::default();
        let (writer, guard) = spawn(output.clone(), no_report()).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let writer = &writer;
                scope.spawn(move || {
                    for line in 0..20_000 {
                        // As the subscriber writes: a line at a time.
                        (&*writer)
                            .write_all(format!("{thread} {line}\n").as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        drop(guard);
        (&writer).write_all(b"after\n").unwrap();

        let lines = lines(&output);
        assert_eq!(lines.len(), 4 * 20_000 + 1);
        assert_eq!(lines.last().map(String::as_str), Some("after"));
        let mut next = [0; 4];
        for line in &lines[..lines.len() - 1] {
            let (thread, number) = line.split_once(' ').unwrap();
            let thread: usize = thread.parse().unwrap();
            assert_eq!(number.parse::<usize>().unwrap(), next[thread], "{line}");
            next[thread] += 1;
        }
    }

    #[test]
    fn a_line_is_written_within_a_batch() {
        let output = Output::default();
        let (writer, _guard) = spawn(output.clone(), no_report()).unwrap();
        (&writer).write_all(b"soon\n").unwrap();
        let started = Instant::now();
        while lines(&output).is_empty() {
            assert!(started.elapsed() < BATCH * 10, "not written");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_full_queue_drops_lines_and_the_thread_reports_how_many() {
        let (open, gate) = mpsc::channel();
        let output = Output::gated(gate);
        let (reports, reported) = mpsc::channel();
        // The report is logged, as the server's is, through the writer.
        let logger = Arc::new(std::sync::OnceLock::<LogWriter>::new());
        let report: Report = Box::new({
            let logger = logger.clone();
            move |dropped| {
                let line = format!("{dropped} dropped\n");
                logger.get().unwrap().write_all(line.as_bytes()).unwrap();
                reports.send(dropped).unwrap();
            }
        });
        let (writer, guard) = spawn(output.clone(), report).unwrap();
        let _ = logger.set(writer.clone());
        let chunk = vec![b'x'; QUEUE];
        // The thread takes the first chunk and waits at the gate with it;
        // the second fills the queue; the next lines find no room.
        (&writer).write_all(&chunk).unwrap();
        while !writer.0.queue().bytes.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        (&writer).write_all(&chunk).unwrap();
        let (done, finished) = mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..3 {
                    (&writer).write_all(b"dropped\n").unwrap();
                }
                done.send(()).unwrap();
            });
            // Waiting for room would wait for the gate, which stays shut.
            finished
                .recv_timeout(Duration::from_secs(5))
                .expect("logging waited for a stdout that took nothing");
        });
        assert!(
            reported.try_recv().is_err(),
            "reported before a write went through"
        );
        open.send(()).unwrap();
        assert_eq!(reported.recv_timeout(Duration::from_secs(5)), Ok(3));
        // The queue was still full, and the report got in after the chunk
        // in it; once the thread takes both there is room again.
        while !writer.0.queue().bytes.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        (&writer).write_all(b"kept\n").unwrap();
        drop(open);
        drop(guard);
        let written = output.bytes.lock().unwrap();
        let tail = b"x3 dropped\nkept\n";
        assert_eq!(written.len(), 2 * QUEUE + tail.len() - 1);
        let end = String::from_utf8_lossy(&written[written.len() - 20..]);
        assert!(written.ends_with(tail), "{end:?}");
        assert!(reported.try_recv().is_err(), "dropped more than three");
    }

    #[test]
    fn a_stdout_that_takes_nothing_does_not_keep_the_process_from_exiting() {
        let (_never, gate) = mpsc::channel();
        let output = Output::gated(gate);
        let (writer, guard) = spawn(output, no_report()).unwrap();
        (&writer).write_all(b"stuck\n").unwrap();
        let started = Instant::now();
        drop(guard);
        assert!(started.elapsed() < LAST_WRITES * 2);
    }
}
