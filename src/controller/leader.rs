//! Leader election over a coordination.k8s.io Lease: with several replicas,
//! exactly one runs the baseline controller; all of them serve the webhook.
//!
//! The holder renews the Lease every `renew` period; the others look every
//! `retry` period and take it over once it has not been renewed for `lease`
//! duration, or at once when it has no holder. A holder whose renewals fail (or hang) steps down once none
//! has succeeded for `lease - renew` (the renew deadline), before anyone else
//! may take over. Updates use the Lease's resourceVersion, so two replicas
//! cannot both win a race.
//!
//! ```text
//!  lead: loop {
//!      acquire ─► leading(stop) runs ─► hold (renew every `renew`) ─► lost ─► stop ─┐
//!      ▲                                                                            │
//!      └────────────────────────────────────────────────────────────────────────────┘
//!  }
//!  shutdown while competing ─► return
//!  shutdown while leading   ─► stop `leading`, wait for it ─► release ─► return
//!      release: still the holder? replace the Lease with holderIdentity cleared
//!               and leaseDurationSeconds 1 (same resourceVersion: a conflict
//!               means another replica took it, and it is left alone)
//! ```
//!
//! Releasing on shutdown (client-go's `ReleaseOnCancel`) lets the next
//! replica lead at once instead of after the Lease runs out: a Lease without
//! a holder is free to take.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Lease settings.
#[derive(Clone, Debug)]
pub struct Election {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity.
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How often the holder renews.
    pub renew: Duration,
    /// How often the others try to take the Lease, and the holder retries a
    /// failed renewal (at most `renew`).
    pub retry: Duration,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// True when the Lease was last renewed longer ago than its duration (to
/// the microsecond the Lease records).
fn expired(spec: &LeaseSpec, lease: Duration) -> bool {
    let Some(MicroTime(renewed)) = &spec.renew_time else {
        return true;
    };
    let secs = spec
        .lease_duration_seconds
        .map_or(lease.as_secs() as i64, i64::from);
    Timestamp::now().duration_since(*renewed) > k8s_openapi::jiff::SignedDuration::from_secs(secs)
}

impl Election {
    fn spec(&self, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.lease.as_secs()).unwrap_or(15)),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Tries once to hold the lease; true when this replica holds it now.
    pub async fn try_hold(&self, client: &Client) -> Result<bool, kube::Error> {
        let api: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        match api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(0)),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let mine = spec.holder_identity.as_deref() == Some(&self.identity);
                let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
                if !mine && !free && !expired(&spec, self.lease) {
                    return Ok(false);
                }
                let mut next = self.spec(
                    spec.lease_transitions
                        .unwrap_or(0)
                        .saturating_add(i32::from(!mine)),
                );
                if mine {
                    next.acquire_time = spec.acquire_time.clone();
                }
                lease.spec = Some(next);
                self.replace(&api, &lease).await
            }
        }
    }

    /// Gives the Lease up if this replica still holds it: replaces it with
    /// no holder and a duration of 1 s, keeping its resourceVersion, so a
    /// replica that took the Lease meanwhile is not disturbed (the conflict
    /// is the answer). True when the Lease was released.
    pub async fn release(&self, client: &Client) -> Result<bool, kube::Error> {
        let api: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        let Some(mut lease) = api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_default();
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now());
        spec.renew_time = Some(now());
        self.replace(&api, &lease).await
    }

    /// Writes the Lease back at its resourceVersion: true when written,
    /// false when another replica changed it first (409).
    async fn replace(&self, api: &Api<Lease>, lease: &Lease) -> Result<bool, kube::Error> {
        match api.replace(&self.name, &PostParams::default(), lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self, client: &Client) {
        loop {
            match self.try_hold(client).await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => debug!(lease = %self.name, "another replica leads"),
                Err(e) => warn!(error = %e, lease = %self.name, "leader election failed; retrying"),
            }
            tokio::time::sleep(self.retry).await;
        }
    }

    /// How long after its last successful renewal the holder keeps leading
    /// while renewals fail or hang: the Lease's duration less one renew
    /// period (client-go's `RenewDeadline`). The holder stops a period before
    /// another replica may take the Lease over, even when the API server or
    /// etcd stops answering mid-renewal. (The margin assumes the replicas'
    /// clocks agree to within it: expiry compares `renewTime` with the
    /// observer's clock.)
    pub fn renew_deadline(&self) -> Duration {
        self.lease.saturating_sub(self.renew)
    }

    /// Renews the lease every renew period; returns when leadership is lost:
    /// another replica holds the Lease, or no renewal has succeeded within
    /// [`Election::renew_deadline`] (failed ones are retried every retry
    /// period, and a hanging one is cut off at the deadline).
    pub async fn hold(&self, client: &Client) {
        let deadline = self.renew_deadline();
        let retry = self.retry.min(self.renew);
        let mut renewed = tokio::time::Instant::now();
        let mut wait = self.renew;
        loop {
            let until = renewed + deadline;
            tokio::time::sleep_until((tokio::time::Instant::now() + wait).min(until)).await;
            let attempt = tokio::time::Instant::now();
            let left = until.saturating_duration_since(attempt);
            if left.is_zero() {
                warn!(lease = %self.name, deadline_secs = deadline.as_secs_f64(), "no renewal succeeded within the renew deadline; stepping down");
                return;
            }
            match tokio::time::timeout(left, self.try_hold(client)).await {
                Ok(Ok(true)) => {
                    renewed = attempt;
                    wait = self.renew;
                }
                Ok(Ok(false)) => {
                    warn!(lease = %self.name, "lost leadership");
                    return;
                }
                Ok(Err(e)) => {
                    warn!(error = %e, lease = %self.name, left_secs = left.as_secs_f64(), "cannot renew the lease; retrying until the renew deadline");
                    wait = retry;
                }
                Err(_) => {
                    warn!(lease = %self.name, deadline_secs = deadline.as_secs_f64(), "a renewal did not finish within the renew deadline; stepping down");
                    return;
                }
            }
        }
    }
}

/// Runs `leading` whenever this replica holds the Lease, until `shutdown`
/// is cancelled: `leading` is started once the Lease is acquired and told to
/// stop (its receiver completes) when a renewal fails or on shutdown; `lead`
/// waits for it to finish before competing again, so at most one copy runs
/// at a time. On shutdown, once `leading` has stopped, the Lease is released
/// (see [`Election::release`]) and `lead` returns.
pub async fn lead<F, Fut>(
    client: &Client,
    election: &Election,
    shutdown: CancellationToken,
    mut leading: F,
) where
    F: FnMut(oneshot::Receiver<()>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = election.acquire(client) => {}
        }
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let running = tokio::spawn(leading(stop_rx));
        let shutting_down = tokio::select! {
            biased;
            () = shutdown.cancelled() => true,
            () = election.hold(client) => false,
        };
        let _ = stop_tx.send(());
        let _ = running.await;
        if shutting_down {
            match election.release(client).await {
                Ok(true) => info!(lease = %election.name, "shutting down: lease released"),
                Ok(false) => {
                    debug!(lease = %election.name, "shutting down: the lease was no longer ours")
                }
                Err(e) => {
                    warn!(error = %e, lease = %election.name, "cannot release the lease; it runs out on its own")
                }
            }
            return;
        }
    }
}
