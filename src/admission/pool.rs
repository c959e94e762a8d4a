//! The bounded blocking pool for judgements whose cost grows with the
//! cluster (the engine's [`Cost::Cluster`](crate::engine::isolation::Cost)).
//!
//! ```text
//!  handler ─► permit (a semaphore; wait at most the budget, else "busy, retry")
//!          ─► spawn_blocking, the request's span entered
//!          ─► the answer within the budget, else "did not finish, retry"
//! ```
//!
//! The permit travels with the judgement, so at most `size` of them run at
//! once even when their requests have given up: an abandoned judgement has
//! no side effects and holds its permit until it ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::Span;

use crate::report::Unjudgeable;

/// How long a judgement may take: what is left of the request deadline,
/// less a tenth of it, so that a slow judgement is answered with a reason
/// rather than cut off by the deadline.
pub fn judge_budget(deadline: Duration, elapsed: Duration) -> Duration {
    deadline
        .saturating_sub(elapsed)
        .saturating_sub(deadline / 10)
}

/// At most `size` judgements at once, off the async workers.
#[derive(Clone, Debug)]
pub struct JudgePool {
    permits: Arc<Semaphore>,
}

impl JudgePool {
    /// A pool running at most `size` judgements at once (at least one).
    pub fn new(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// One judgement per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Runs `judge` on the pool within `budget`; a judgement that cannot
    /// start or finish in time, or panics, is answered with why (all of
    /// these are worth a retry).
    pub async fn judge<T, F>(&self, budget: Duration, judge: F) -> Result<T, Unjudgeable>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let started = Instant::now();
        let permit = match tokio::time::timeout(budget, self.permits.clone().acquire_owned()).await
        {
            Ok(Ok(p)) => p,
            _ => return Err(Unjudgeable::Busy),
        };
        let span = Span::current();
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            judge()
        });
        match tokio::time::timeout(budget.saturating_sub(started.elapsed()), work).await {
            Ok(Ok(judged)) => Ok(judged),
            Ok(Err(e)) => Err(Unjudgeable::Failed {
                error: e.to_string(),
            }),
            Err(_) => Err(Unjudgeable::Overran {
                budget_ms: budget.as_millis(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_a_tenth_of_the_deadline() {
        let d = Duration::from_millis(2000);
        assert_eq!(judge_budget(d, Duration::ZERO), Duration::from_millis(1800));
        assert_eq!(
            judge_budget(d, Duration::from_millis(500)),
            Duration::from_millis(1300)
        );
        assert_eq!(judge_budget(d, Duration::from_secs(3)), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_judgement_in_time_is_returned() {
        let v = JudgePool::new(1)
            .judge(Duration::from_secs(5), || "judged")
            .await;
        assert_eq!(v, Ok("judged"));
    }

    #[tokio::test]
    async fn a_slow_judgement_is_answered_with_a_retriable_reason() {
        let started = Instant::now();
        let v = JudgePool::new(1)
            .judge(Duration::from_millis(50), || {
                std::thread::sleep(Duration::from_secs(2));
                "judged"
            })
            .await;
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "the answer did not wait for the judgement"
        );
        assert_eq!(v, Err(Unjudgeable::Overran { budget_ms: 50 }));
    }

    #[tokio::test]
    async fn a_panicking_judgement_is_answered_not_propagated() {
        let v = JudgePool::new(1)
            .judge(Duration::from_secs(5), || -> u8 {
                panic!("engine bug");
            })
            .await;
        assert!(matches!(v, Err(Unjudgeable::Failed { .. })), "{v:?}");
    }

    #[tokio::test]
    async fn a_full_pool_answers_busy_within_the_budget() {
        let pool = JudgePool::new(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let busy = pool.clone();
        let first = tokio::spawn(async move {
            busy.judge(Duration::from_secs(5), move || {
                let _ = rx.recv_timeout(Duration::from_secs(5));
                "judged"
            })
            .await
        });
        // Let the first judgement take the only permit.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = pool.judge(Duration::from_millis(50), || "judged").await;
        assert_eq!(second, Err(Unjudgeable::Busy));
        let _ = tx.send(());
        assert_eq!(first.await.expect("first judgement"), Ok("judged"));
    }
}
