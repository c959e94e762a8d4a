//! The isolation policy in force, which may change while `serve` runs.
//!
//! ```text
//!  --policy FILE ──────────────► Live::fixed (never changes)
//!  --policy-object NAME ─► object::run: watch IsolationPolicy NAME
//!        valid generation ──► Live::set ─► admission (next request) and
//!                                          the controller (reconciles all)
//!        invalid generation ─► the last valid one stays; status says why
//! ```
//!
//! A judgement takes one snapshot ([`Live::get`]) and judges with it (the
//! membership, the baseline and the flows of one generation), so a change
//! is never seen half-way through one. The response's mode is read when the
//! answer is written: a request that races an edit is judged under one
//! generation and answered under the newer one's mode.

pub mod census;
pub mod object;
pub mod reports;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::engine::tiers::{IsolationPolicy, Mode};

/// The isolation policy in force, swapped whole.
#[derive(Debug)]
pub struct Live {
    current: ArcSwap<IsolationPolicy>,
    mode: Option<Mode>,
    changes: watch::Sender<u64>,
}

impl Live {
    /// A policy in force from now on; `mode` (from `--mode`) overrides the
    /// mode of this and every later version.
    pub fn new(mut policy: IsolationPolicy, mode: Option<Mode>) -> Arc<Self> {
        if let Some(m) = mode {
            policy.mode = m;
        }
        Arc::new(Self {
            current: ArcSwap::from_pointee(policy),
            mode,
            changes: watch::Sender::new(0),
        })
    }

    /// A policy that never changes.
    pub fn fixed(policy: IsolationPolicy) -> Arc<Self> {
        Self::new(policy, None)
    }

    /// The policy in force now.
    pub fn get(&self) -> Arc<IsolationPolicy> {
        self.current.load_full()
    }

    /// Puts `policy` in force (its mode overridden as [`Live::new`] says);
    /// returns false, changing nothing, when it equals the one in force.
    pub fn set(&self, mut policy: IsolationPolicy) -> bool {
        if let Some(m) = self.mode {
            policy.mode = m;
        }
        if *self.current.load_full() == policy {
            return false;
        }
        self.current.store(Arc::new(policy));
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        true
    }

    /// A receiver that sees every change from now on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A stream that yields once per change (changes in quick succession
    /// may be yielded as one).
    pub fn changes(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(self.subscribe(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn policy(mode: &str, tier: &str) -> IsolationPolicy {
        crate::model::isolationpolicy::parse(
            &format!(
                "apiVersion: tierguard.io/v1alpha1\nkind: IsolationPolicy\nmetadata: {{name: p}}\n\
                 spec: {{mode: {mode}, tiers: [{{name: {tier}}}]}}\n"
            ),
            "test",
        )
        .expect("policy")
    }

    #[tokio::test]
    async fn a_change_is_seen_by_the_next_get_and_announced_once() {
        let live = Live::fixed(policy("enforce", "a"));
        let mut changes = Box::pin(live.changes());
        assert!(
            !live.set(policy("enforce", "a")),
            "an equal policy is no change"
        );
        assert!(live.set(policy("enforce", "b")));
        assert_eq!(live.get().tiers[0].name, "b");
        tokio::time::timeout(std::time::Duration::from_secs(1), changes.next())
            .await
            .expect("announced")
            .expect("stream open");
    }

    #[test]
    fn the_mode_override_holds_for_every_version() {
        let live = Live::new(policy("enforce", "a"), Some(Mode::Audit));
        assert_eq!(live.get().mode, Mode::Audit);
        live.set(policy("enforce", "b"));
        assert_eq!(live.get().mode, Mode::Audit);
        assert!(!live.set(policy("audit", "b")), "the same once overridden");
    }
}
