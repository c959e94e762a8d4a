//! The HTTPS accept loop: rustls handshakes, HTTP/1.1 and HTTP/2 through
//! hyper, a bound on every phase of a connection, a cap on connections, and
//! graceful shutdown that lets in-flight reviews finish.
//!
//! Every phase of a connection has a deadline ([`Limits`]), so no client can
//! hold a task, a file descriptor or a connection slot by sending slowly or
//! not at all:
//!
//! ```text
//!  accept ─► slot free? ── no ──► closed at once (tierguard_connections_rejected_total)
//!    │ yes (tierguard_connections_open)
//!    ▼
//!  TLS handshake ........................ handshake_timeout
//!    ▼
//!  idle: no request in flight ........... idle_timeout, then closed (GOAWAY on HTTP/2)
//!    │   covers: nothing sent after the handshake, a slow HTTP/2 preface,
//!    │   HEADERS without END_HEADERS, an idle keep-alive connection
//!    │   HTTP/1 request head ............ header_read_timeout
//!    │   HTTP/2: PING every h2_keep_alive_interval, dead after h2_keep_alive_timeout;
//!    │           at most h2_max_concurrent_streams streams, h2_max_header_list_size bytes
//!    ▼
//!  request in flight .................... the handler's own deadline (--request-deadline-ms)
//! ```
//!
//! A failing `accept` (no file descriptors left, say) pauses the loop, 10 ms
//! doubling up to 1 s, and is logged at most once a second
//! ([`AcceptBackoff`]).
//!
//! Shutdown is one signal for the whole process:
//!
//! ```text
//!  SIGTERM / Ctrl-C ─► shutdown_token() cancelled ─┬─► /readyz answers 503 (admin)
//!                                                  ├─► after_drain: keep serving for
//!                                                  │   --drain-seconds (a second signal
//!                                                  │   skips it), then the webhook
//!                                                  │   listener stops accepting and
//!                                                  │   in-flight requests finish
//!                                                  │   (drain_timeout); then the admin
//!                                                  │   listener stops
//!                                                  └─► leader loop: stop the controller,
//!                                                      release the Lease
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use hyper::service::Service as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::telemetry::Metrics;

/// How long a client may take to finish the TLS handshake (default).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send HTTP/1 request headers (default).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may stay without a request in flight (default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests once the listener has
/// closed (default).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection asked to close (HTTP/2 GOAWAY) may take
/// before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Bounds on every phase of a webhook connection, and on their number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; those over it are closed right after
    /// accept.
    pub max_connections: usize,
    /// Time to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time to send an HTTP/1 request head.
    pub header_read_timeout: Duration,
    /// Time a connection may spend with no request in flight: before its
    /// first request (nothing sent after the handshake, a slow HTTP/2
    /// preface, an unfinished HEADERS block) and between requests.
    pub idle_timeout: Duration,
    /// How often an HTTP/2 connection is pinged.
    pub h2_keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the HTTP/2 connection is
    /// closed.
    pub h2_keep_alive_timeout: Duration,
    /// Concurrent streams on one HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
    /// Largest HTTP/2 header list (decoded), in bytes.
    pub h2_max_header_list_size: u32,
    /// How long, once the listener has closed, in-flight requests may take
    /// to finish.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            h2_keep_alive_interval: Duration::from_secs(20),
            h2_keep_alive_timeout: Duration::from_secs(10),
            h2_max_concurrent_streams: 100,
            h2_max_header_list_size: 16 * 1024,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// What every connection task shares.
struct Shared {
    acceptor: TlsAcceptor,
    app: Router,
    /// Built once from the [`Limits`]: HTTP/1 and HTTP/2 settings.
    http: auto::Builder<TokioExecutor>,
    limits: Limits,
    /// Cancelled when the listener closes: every connection finishes what
    /// it is serving and closes.
    closing: CancellationToken,
}

/// Serves `app` over TLS on `listener`, within `limits`, until `shutdown`
/// completes; then stops accepting (the listener is closed, so new
/// connections are refused) and waits up to `limits.drain_timeout` for
/// in-flight requests.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_read_timeout);
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_timeout)
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.h2_max_header_list_size);
    // Waiting for every permit is waiting for every connection to close.
    let slot_count = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(slot_count as usize));
    let shared = Arc::new(Shared {
        acceptor: TlsAcceptor::from(tls),
        app,
        http,
        limits,
        closing: CancellationToken::new(),
    });
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => {
                if let Some(suppressed) = backoff.succeeded() {
                    info!(suppressed, "accepting connections again");
                }
                c
            }
            Err(e) if is_connection_error(&e) => {
                // The client gave up before we took its connection: nothing
                // is wrong with the listener.
                debug!(error = %e, "connection reset before accept");
                continue;
            }
            Err(e) => {
                let failure = backoff.failed(Instant::now());
                if let Some(suppressed) = failure.warn {
                    warn!(
                        error = %e, pause_ms = failure.pause.as_millis() as u64, suppressed,
                        "accept failed; pausing the listener"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(failure.pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.connections_rejected.inc();
            debug!(%peer, max = slot_count, "connection over --max-connections; closed");
            drop(tcp);
            continue;
        };
        let slot = Slot::new(permit, metrics.clone());
        tokio::spawn(serve_connection(tcp, peer, shared.clone(), slot));
    }
    drop(listener);
    shared.closing.cancel();
    let drain = shared.limits.drain_timeout;
    info!("webhook listener closed; draining in-flight requests");
    if tokio::time::timeout(drain, slots.acquire_many(slot_count))
        .await
        .is_err()
    {
        warn!("some connections were still open after {drain:?}");
    }
    Ok(())
}

/// Handshakes, then serves requests until the connection ends, stays idle
/// for `idle_timeout`, or the listener closes.
async fn serve_connection(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>, _slot: Slot) {
    let limits = &shared.limits;
    let tls =
        match tokio::time::timeout(limits.handshake_timeout, shared.acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
    let activity = Activity::default();
    let tracked = activity.clone();
    let app = TowerToHyperService::new(shared.app.clone());
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let busy = tracked.busy();
        let response = app.call(req);
        async move {
            let r = response.await;
            drop(busy);
            r
        }
    });
    let conn = shared.http.serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    let idle = activity.idle_for(limits.idle_timeout);
    tokio::pin!(idle);
    let idled = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        () = &mut idle => true,
        () = shared.closing.cancelled() => false,
    };
    // Finish what is in flight, then close (HTTP/2: GOAWAY).
    conn.as_mut().graceful_shutdown();
    let ended = if idled {
        debug!(%peer, idle = ?limits.idle_timeout, "connection idle; closing it");
        match tokio::time::timeout(CLOSE_GRACE, conn).await {
            Ok(r) => r,
            Err(_) => {
                debug!(%peer, "idle connection did not close when asked; dropped");
                return;
            }
        }
    } else {
        // Bounded by serve_tls's drain timeout.
        conn.await
    };
    if let Err(e) = ended {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Errors of one connection, not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

// === impl Slot ===

/// One of the `max_connections` places, held for a connection's life and
/// counted in `tierguard_connections_open`.
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.connections_open.inc();
        Self {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
    }
}

// === impl Activity ===

/// The number of requests in flight on one connection: a connection with
/// none for `idle_timeout` is closed.
#[derive(Clone)]
struct Activity(Arc<watch::Sender<usize>>);

/// A request in flight; dropping it ends it.
struct Busy(Arc<watch::Sender<usize>>);

impl Default for Activity {
    fn default() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }
}

impl Activity {
    fn busy(&self) -> Busy {
        self.0.send_modify(|n| *n += 1);
        Busy(self.0.clone())
    }

    /// Completes once no request has been in flight for `timeout` (every
    /// request started or finished restarts the clock).
    async fn idle_for(&self, timeout: Duration) {
        let mut rx = self.0.subscribe();
        loop {
            let idle = *rx.borrow_and_update() == 0;
            if idle {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => return,
                    r = rx.changed() => if r.is_err() { return },
                }
            } else if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

// === impl AcceptBackoff ===

/// Shortest pause after a failed accept.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(10);
/// Longest pause after failed accepts.
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);
/// At most one warning about failed accepts this often.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(1);

/// What the accept loop does after failed accepts (such as EMFILE, when
/// file descriptors run out): pause 10 ms, doubling to 1 s while they keep
/// failing, and warn at most once a second with the number of failures
/// not logged since the last warning. A success ends the pauses.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    pause: Option<Duration>,
    last_warning: Option<Instant>,
    suppressed: u64,
}

/// What to do after one failed accept.
#[derive(Debug, PartialEq, Eq)]
pub struct AcceptFailure {
    /// How long to pause before accepting again.
    pub pause: Duration,
    /// `Some(n)`: warn now, saying `n` failures were not logged since the
    /// last warning; `None`: do not log this one.
    pub warn: Option<u64>,
}

impl AcceptBackoff {
    /// One more failed accept, at `now`.
    pub fn failed(&mut self, now: Instant) -> AcceptFailure {
        let pause = match self.pause {
            None => ACCEPT_PAUSE_MIN,
            Some(p) => (p * 2).min(ACCEPT_PAUSE_MAX),
        };
        self.pause = Some(pause);
        let warn = match self.last_warning {
            Some(t) if now.saturating_duration_since(t) < ACCEPT_WARN_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_warning = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        };
        AcceptFailure { pause, warn }
    }

    /// An accept succeeded: no more pauses. `Some(n)` when failures were
    /// paused for, `n` of them not logged.
    pub fn succeeded(&mut self) -> Option<u64> {
        self.pause.take()?;
        Some(std::mem::take(&mut self.suppressed))
    }
}

// === shutdown ===

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("shutting down");
}

/// The process's one shutdown signal: a token cancelled on SIGTERM or
/// Ctrl-C ([`shutdown_signal`]), to be cloned to everything that must stop
/// (`/readyz` fails, listeners drain, the leader releases its Lease). Must
/// be called inside the async runtime; call it once.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        cancel.cancel();
    });
    token
}

/// Completes `drain` after `shutdown` is cancelled — the time for the
/// endpoints to drop this replica while it still serves — or as soon as
/// `skip` completes. `skip` is only polled once `shutdown` is cancelled, so
/// `server::shutdown_signal()` there means "a second signal".
pub async fn after_drain(
    shutdown: CancellationToken,
    drain: Duration,
    skip: impl Future<Output = ()>,
) {
    shutdown.cancelled().await;
    if drain.is_zero() {
        return;
    }
    info!(
        drain_seconds = drain.as_secs_f64(),
        "readiness fails; still serving while endpoints are updated"
    );
    tokio::select! {
        () = tokio::time::sleep(drain) => {}
        () = skip => info!("second signal: drain period cut short"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn accept_pauses_double_from_10ms_to_1s_and_reset_on_success() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let pauses: Vec<u128> = (0..10)
            .map(|i| b.failed(t0 + i * MS).pause.as_millis())
            .collect();
        assert_eq!(
            pauses,
            [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000],
            "doubling, capped at 1 s"
        );
        assert_eq!(b.succeeded(), Some(9), "9 failures were not logged");
        assert_eq!(b.succeeded(), None, "nothing to report twice");
        assert_eq!(b.failed(t0 + 2000 * MS).pause, 10 * MS, "starts over");
    }

    #[test]
    fn accept_failures_warn_at_most_once_a_second_with_the_count_suppressed() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.failed(t0).warn, Some(0), "the first failure is logged");
        // A tight loop of failures within the same second: silent.
        for i in 1..=1000 {
            assert_eq!(b.failed(t0 + i * Duration::from_micros(900)).warn, None);
        }
        assert_eq!(
            b.failed(t0 + 1000 * MS).warn,
            Some(1000),
            "one line a second later, counting the silent ones"
        );
        assert_eq!(b.failed(t0 + 1500 * MS).warn, None);
        assert_eq!(b.failed(t0 + 2000 * MS).warn, Some(1));
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_with_no_request_in_flight() {
        let a = Activity::default();
        let busy = a.busy();
        // Busy for longer than the timeout: not idle.
        assert!(
            tokio::time::timeout(300 * MS, a.idle_for(50 * MS))
                .await
                .is_err()
        );
        drop(busy);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(2), a.idle_for(50 * MS))
            .await
            .expect("idle once the request ended");
        assert!(started.elapsed() >= 50 * MS);
    }
}
