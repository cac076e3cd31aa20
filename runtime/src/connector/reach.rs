//! How far a source reads in one run. Streaming runs read until stopped; a
//! `--once` run (Spark's `availableNow`) reads what is available when it
//! starts — except that a table written by another pipeline of the same run
//! is read until that pipeline has finished, so a file's pipelines can run at
//! the same time (bronze, silver and gold each on a core) and still see
//! exactly what a one-after-another run would.
//!
//! A writer publishes its progress on a [`Progress`]; every reader of its
//! table holds a [`Writers`] with one receiver per writer. The writer marks
//! itself finished only after its last commit, so a reader that sees all its
//! writers finished and then reads the table's latest version has everything
//! they wrote.

use futures::future::select_all;
use std::time::Duration;
use tokio::sync::watch;

/// How far a source reads in this run.
#[derive(Clone, Default)]
pub enum Reach {
    /// Until the run stops (streaming).
    #[default]
    Unbounded,
    /// `--once`: what is available at start, and what `Writers` add to the
    /// source's table until they have all finished.
    AvailableNow(Writers),
}

impl Reach {
    /// Whether the run is `--once`.
    pub fn once(&self) -> bool {
        matches!(self, Reach::AvailableNow(_))
    }
}

/// The writing side: one per pipeline of a `--once` run, holding whether it
/// has finished (every epoch it will write in this run is committed); each
/// commit before that wakes its readers. Dropping it unfinished (the
/// pipeline failed) leaves its readers waiting for the run to stop.
pub struct Progress(watch::Sender<bool>);

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// A pipeline that has not committed anything yet.
    pub fn new() -> Self {
        Progress(watch::Sender::new(false))
    }

    /// A reader's view of this writer.
    fn watch(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }

    /// Another epoch is committed to every sink: readers may look again.
    pub fn committed(&self) {
        // Unchanged value, but every receiver is marked changed.
        self.0.send_modify(|_| ());
    }

    /// The pipeline has committed its last epoch of this run.
    pub fn finished(&self) {
        self.0.send_replace(true);
    }
}

/// The reading side: the writers of one table, as seen by a pipeline reading
/// it. Empty when no pipeline of this run writes the table.
#[derive(Clone, Default)]
pub struct Writers(Vec<watch::Receiver<bool>>);

impl Writers {
    /// Watches `writers`.
    pub fn of<'a>(writers: impl IntoIterator<Item = &'a Progress>) -> Self {
        Writers(writers.into_iter().map(Progress::watch).collect())
    }

    /// True when every writer has finished (at once for none). A writer that
    /// failed never finishes.
    pub fn all_finished(&self) -> bool {
        self.0.iter().all(|w| *w.borrow())
    }

    /// Waits until a writer commits or finishes, at most `timeout` (so a
    /// caller polling a stop flag wakes up). Returns at once after a change
    /// it has not yet seen.
    pub async fn wait_for_change(&mut self, timeout: Duration) {
        let pending = self
            .0
            .iter_mut()
            .filter(|w| w.has_changed().is_ok())
            .map(|w| Box::pin(w.changed()))
            .collect::<Vec<_>>();
        if pending.is_empty() {
            // Only failed writers are left: the run is stopping; come back
            // soon to see the stop flag.
            tokio::time::sleep(timeout.min(Duration::from_millis(50))).await;
            return;
        }
        let _ = tokio::time::timeout(timeout, select_all(pending)).await;
    }

    /// Waits until every writer has finished; false if one stopped without
    /// finishing (it failed: the run is stopping).
    pub async fn until_all_finished(&mut self) -> bool {
        for writer in &mut self.0 {
            if writer.wait_for(|&finished| finished).await.is_err() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_see_commits_and_the_finish_of_every_writer() {
        let (a, b) = (Progress::new(), Progress::new());
        let mut writers = Writers::of([&a, &b]);
        assert!(!writers.all_finished());
        a.committed();
        // A commit not yet seen wakes the reader at once (the timeout would hang the test).
        tokio::time::timeout(
            Duration::from_secs(5),
            writers.wait_for_change(Duration::from_secs(3600)),
        )
        .await
        .expect("a commit wakes the reader");
        a.finished();
        assert!(!writers.all_finished(), "b is still running");
        b.finished();
        assert!(writers.all_finished());
        assert!(writers.until_all_finished().await);
    }

    #[tokio::test]
    async fn a_writer_that_fails_never_counts_as_finished() {
        let a = Progress::new();
        let mut writers = Writers::of([&a]);
        a.committed();
        drop(a);
        assert!(!writers.all_finished());
        assert!(!writers.until_all_finished().await);
        // A dropped writer neither makes the reader spin nor keeps it long.
        let started = std::time::Instant::now();
        writers.wait_for_change(Duration::from_secs(3600)).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50) && waited < Duration::from_secs(60));
    }

    #[tokio::test]
    async fn no_writers_means_finished() {
        let mut writers = Writers::default();
        assert!(writers.all_finished());
        assert!(writers.until_all_finished().await);
    }
}
