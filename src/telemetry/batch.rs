//! The log sink: formatted lines are appended to one shared in-memory batch, and a flusher thread writes
//! each batch to stdout with one `write` call.
//!
//! Why not a line queue with a writer thread per line (tracing-appender)? Under load that thread empties its
//! queue after almost every line and goes back to sleep, so each line costs the request thread a futex wake
//! and the machine a context switch: on 2 cores that was a quarter of the `events` throughput. Here the
//! flusher sleeps until the batch has lines, lingers up to [`LINGER`] (or until [`EAGER_BYTES`] are
//! waiting) and writes them all at once: at most one wake per linger period, and no allocation per line.
//!
//! Nothing is dropped. A request thread that finds [`MAX_PENDING_BYTES`] waiting writes the batch itself
//! (waiting for the sink if it must), so memory stays bounded when stdout is slow. Lines reach the sink in
//! the order they were appended. [`BatchGuard`] flushes what is left when dropped, and lines logged after
//! that are written at once; only a process killed outright loses the last linger period's lines.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Longest a line waits in memory before the flusher writes it.
pub(super) const LINGER: Duration = Duration::from_millis(50);
/// A batch this large is written without waiting for the rest of the linger period.
pub(super) const EAGER_BYTES: usize = 64 * 1024;
/// A batch this large is written by the thread that logs next (backpressure instead of growth or loss).
pub(super) const MAX_PENDING_BYTES: usize = 1024 * 1024;

/// Hands out [`LineWriter`]s for the `fmt` layer; clone freely.
#[derive(Clone)]
pub(super) struct BatchWriter {
    shared: Arc<Shared>,
}

/// Stops the flusher and writes what is still pending when dropped.
#[must_use = "dropping the guard stops the flusher"]
pub(super) struct BatchGuard {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the flusher: the first line of a batch, an eager-sized batch, or shutdown.
    wake: Condvar,
    /// The sink and a spare buffer. Taken *before* swapping the batch out, so batches leave in order.
    output: Mutex<Output>,
}

struct Pending {
    lines: Vec<u8>,
    flusher_idle: bool,
    closed: bool,
}

struct Output {
    sink: Box<dyn Write + Send>,
    spare: Vec<u8>,
}

impl BatchWriter {
    /// Starts the flusher thread writing to `sink`. Should the thread fail to start, every line is written
    /// to `sink` as it is logged instead (slower, still complete).
    pub(super) fn spawn(sink: impl Write + Send + 'static) -> (Self, BatchGuard) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                lines: Vec::new(),
                flusher_idle: false,
                closed: false,
            }),
            wake: Condvar::new(),
            output: Mutex::new(Output {
                sink: Box::new(sink),
                spare: Vec::new(),
            }),
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("log-flusher".into())
                .spawn(move || shared.run_flusher())
                .ok()
        };
        if flusher.is_none() {
            shared.lock_pending().closed = true;
        }
        let guard = BatchGuard {
            shared: shared.clone(),
            flusher,
        };
        (Self { shared }, guard)
    }

    /// Appends one formatted line (or any bytes) to the batch.
    fn append(&self, bytes: &[u8]) {
        let mut pending = self.shared.lock_pending();
        if pending.lines.len() + bytes.len() > MAX_PENDING_BYTES && !pending.lines.is_empty() {
            drop(pending);
            self.shared.write_batch();
            pending = self.shared.lock_pending();
        }
        let before = pending.lines.len();
        pending.lines.extend_from_slice(bytes);
        let after = pending.lines.len();
        let wake = (before == 0 && pending.flusher_idle) || (before < EAGER_BYTES && after >= EAGER_BYTES);
        let closed = pending.closed;
        drop(pending);
        if closed {
            // The flusher is gone (shutdown): threads still logging write their own lines.
            self.shared.write_batch();
        } else if wake {
            self.shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave `Pending` inconsistent (appends are whole or absent).
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the current batch to the sink. Errors are ignored: there is nowhere left to report them.
    fn write_batch(&self) {
        let mut output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let Output { sink, spare } = &mut *output;
        std::mem::swap(&mut self.lock_pending().lines, spare);
        if !spare.is_empty() {
            let _ = sink.write_all(spare);
            let _ = sink.flush();
            spare.clear();
        }
    }

    fn run_flusher(&self) {
        loop {
            let mut pending = self.lock_pending();
            while pending.lines.is_empty() && !pending.closed {
                pending.flusher_idle = true;
                pending = self.wake.wait(pending).unwrap_or_else(PoisonError::into_inner);
            }
            pending.flusher_idle = false;
            let deadline = Instant::now() + LINGER;
            while !pending.closed && pending.lines.len() < EAGER_BYTES {
                let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                    break;
                };
                pending = self
                    .wake
                    .wait_timeout(pending, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let closed = pending.closed;
            drop(pending);
            self.write_batch();
            if closed {
                return;
            }
        }
    }
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        self.shared.lock_pending().closed = true;
        self.shared.wake.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        // Lines logged after the flusher's last batch (other threads still running) are written here.
        self.shared.write_batch();
    }
}

/// The writer the `fmt` layer uses for one event; it writes the whole line in one call.
pub(super) struct LineWriter<'a> {
    writer: &'a BatchWriter,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.writer.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { writer: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that records what it was given and how many writes it took.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Recorder {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut inner = self.0.lock().unwrap();
            inner.0.extend_from_slice(bytes);
            inner.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().0.clone()).unwrap()
        }
        fn writes(&self) -> usize {
            self.0.lock().unwrap().1
        }
    }

    fn log(writer: &BatchWriter, line: &str) {
        writer.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn a_burst_of_lines_leaves_in_one_write_after_the_linger_period() {
        let recorder = Recorder::default();
        let (writer, _guard) = BatchWriter::spawn(recorder.clone());
        for i in 0..100 {
            log(&writer, &format!("line {i}\n"));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while recorder.text().lines().count() < 100 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(recorder.text(), expected);
        assert_eq!(recorder.writes(), 1, "one burst is one write");
    }

    #[test]
    fn dropping_the_guard_writes_what_is_pending() {
        let recorder = Recorder::default();
        let (writer, guard) = BatchWriter::spawn(recorder.clone());
        log(&writer, "first\n");
        log(&writer, "second\n");
        drop(guard);
        assert_eq!(recorder.text(), "first\nsecond\n");
        log(&writer, "after shutdown\n");
        assert_eq!(
            recorder.text(),
            "first\nsecond\nafter shutdown\n",
            "late lines are written at once"
        );
    }

    #[test]
    fn many_threads_lose_nothing_and_pending_memory_stays_bounded() {
        /// A slow sink: every write takes a while, so the batch fills up to the backpressure limit.
        struct Slow(Recorder);
        impl Write for Slow {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(2));
                self.0.write(bytes)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let recorder = Recorder::default();
        let (writer, guard) = BatchWriter::spawn(Slow(recorder.clone()));
        let line = "x".repeat(1000) + "\n";
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let writer = writer.clone();
                let line = &line;
                scope.spawn(move || {
                    for i in 0..1000 {
                        log(&writer, &format!("{thread} {i} {line}"));
                        assert!(writer.shared.lock_pending().lines.capacity() <= 2 * MAX_PENDING_BYTES);
                    }
                });
            }
        });
        drop(guard);
        let text = recorder.text();
        assert_eq!(text.lines().count(), 4000);
        for thread in 0..4 {
            // Each thread's lines arrive complete and in the order it logged them.
            let numbers: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{thread} ")))
                .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..1000).collect::<Vec<_>>());
        }
    }
}
