//! The retention threads' loop, shared by the event log and the impression log: delete what
//! is past the retention in steps (each a short job on the writer, so writes queued meanwhile
//! go between steps), at once and then every [`PRUNE_EVERY`], until told to stop.

use std::{
    sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError},
    time::Duration,
};

use chrono::Utc;
use vitrina_core::ports::StoreResult;

/// How often rows past a retention are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What one step deleted, and whether more is left past the cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub deleted: u64,
    pub more: bool,
}

/// Runs until `stop` is dropped or `step` returns `None` (the writer is gone). `step` gets the
/// cutoff in epoch milliseconds; `what` names the rows in the log.
pub fn run(
    stop: Receiver<()>,
    retention: Duration,
    what: &'static str,
    mut step: impl FnMut(i64) -> Option<StoreResult<Step>>,
) {
    loop {
        let cutoff = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let mut total = 0;
        loop {
            match step(cutoff.timestamp_millis()) {
                None => return,
                Some(Ok(done)) => {
                    total += done.deleted;
                    // Per step, so a long round shows its progress.
                    metrics::counter!("vitrina_store_pruned_total", "what" => what).increment(done.deleted);
                    if !done.more {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, what, "deleting rows past the retention failed; trying again later");
                    break;
                }
            }
            if !matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
                return;
            }
        }
        if total > 0 {
            tracing::info!(rows = total, what, "rows past the retention deleted");
        }
        match stop.recv_timeout(PRUNE_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Runs `step` until it reports nothing more left; returns how many rows went in all. For
/// callers that prune now (tests, `vitrina` commands) rather than on the retention thread.
pub async fn until_done<F>(mut step: impl FnMut() -> F) -> StoreResult<u64>
where
    F: std::future::Future<Output = StoreResult<Step>>,
{
    let mut total = 0;
    loop {
        let done = step().await?;
        total += done.deleted;
        if !done.more {
            return Ok(total);
        }
    }
}

/// Sends one request to a writer and waits for its answer; `None` when the writer is gone.
pub fn ask<Op, T>(
    tx: &tokio::sync::mpsc::WeakSender<Op>,
    op: impl FnOnce(tokio::sync::oneshot::Sender<StoreResult<T>>) -> Op,
) -> Option<StoreResult<T>> {
    let sender = tx.upgrade()?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    sender.blocking_send(op(reply)).ok()?;
    drop(sender);
    answer.blocking_recv().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_go_on_while_more_is_left_and_the_loop_ends_when_told() {
        let (stop, stopped) = std::sync::mpsc::channel();
        let mut stop = Some(stop);
        let mut cutoffs = Vec::new();
        run(stopped, Duration::from_secs(3600), "test", |cutoff| {
            cutoffs.push(cutoff);
            if cutoffs.len() == 3 {
                stop.take(); // told to stop: the round finishes, no next one starts
            }
            Some(Ok(Step { deleted: 10, more: cutoffs.len() < 3 }))
        });
        assert_eq!(cutoffs.len(), 3);
        assert!(cutoffs.windows(2).all(|w| w[0] == w[1]), "one cutoff per round");
        let hour_ago = (Utc::now() - chrono::Duration::hours(1)).timestamp_millis();
        assert!((hour_ago - cutoffs[0]).abs() < 60_000, "the cutoff is the retention ago");
    }

    #[test]
    fn a_failed_step_ends_the_round_and_the_next_round_tries_again() {
        let (stop, stopped) = std::sync::mpsc::channel();
        let mut stop = Some(stop);
        let mut calls = 0;
        run(stopped, Duration::from_secs(60), "test", |_| {
            calls += 1;
            stop.take(); // after this round, stop
            Some(Err(vitrina_core::ports::StoreError::Backend("disk full".into())))
        });
        assert_eq!(calls, 1, "no second step after a failure in the same round");
    }

    #[test]
    fn a_writer_that_is_gone_ends_the_loop() {
        let (_stop, stopped) = std::sync::mpsc::channel::<()>();
        let mut calls = 0;
        run(stopped, Duration::from_secs(60), "test", |_| {
            calls += 1;
            None
        });
        assert_eq!(calls, 1);
    }
}
