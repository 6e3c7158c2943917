//! The main port's connections: hyper's HTTP/1.1 server under limits, so that idle or
//! drip-fed connections cannot starve real requests or run the process out of descriptors.
//!
//! - **Connection cap** ([`ConnectionLimits::max_connections`], clamped below the open-files
//!   limit). When a new connection would exceed it, the oldest connection with no request in
//!   flight (idle, or still sending its request head) is shut down to make room; only when every
//!   connection is busy is the new one closed. A flood of idle connections therefore cannot
//!   lock real clients out: it only evicts itself.
//! - **Header timeout** ([`ConnectionLimits::header_timeout`]): hyper's `header_read_timeout`.
//!   Its timer starts as soon as the connection waits for a request head — right after accept
//!   and again after every response — so it is also the keep-alive idle timeout. A slow-loris
//!   head is answered 408 and closed.
//! - **Body timeout**: the JSON extractor's deadline for the whole body
//!   ([`super::extract::BodyTimeout`]), answered 408 `body_timeout`.
//!
//! `POST /api/verify/assertion` goes straight to its handler under the same layers
//! ([`super::verify_route`]) rather than through the router: hyper still parses every request,
//! and only the router's dispatch (matching, boxing, the method router) is skipped for the
//! route that carries the backend load. Every other request goes to the router.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Descriptors kept free for everything that is not a client connection (the database, the
/// receipt key, static files, the local bridge in `passgate demo`).
const RESERVED_DESCRIPTORS: u64 = 256;

/// The main port's limits (from [`crate::RpConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long a connection may take to send a complete request head, counted from the
    /// moment it waits for one (so also the keep-alive idle timeout).
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// The cap actually used: the configured one, lowered so the process keeps
    /// [`RESERVED_DESCRIPTORS`] free under its soft open-files limit.
    pub fn effective_max_connections(&self) -> usize {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let room = usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX);
        self.max_connections.min(room).max(1)
    }
}

/// One open connection, as the accept loop sees it.
#[derive(Debug, Default)]
struct Slot {
    /// Requests being handled on it now.
    in_flight: AtomicUsize,
    /// Told to shut down to make room for a newer connection.
    evict: Notify,
}

/// Every open connection by accept order (oldest first).
#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    open: BTreeMap<u64, Arc<Slot>>,
}

impl Table {
    /// Registers a new connection when there is room, making room by evicting the oldest one
    /// with nothing in flight; `None` when every connection is busy.
    fn admit(&mut self, max: usize) -> Option<(u64, Arc<Slot>)> {
        if self.open.len() >= max {
            let idle = self
                .open
                .iter()
                .find(|(_, slot)| slot.in_flight.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id)?;
            if let Some(slot) = self.open.remove(&idle) {
                // `notify_one` keeps the permit if the task is not waiting yet.
                slot.evict.notify_one();
            }
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let slot = Arc::new(Slot::default());
        self.open.insert(id, Arc::clone(&slot));
        Some((id, slot))
    }
}

/// Counts a request as in flight on its connection until dropped.
struct InFlight(Arc<Slot>);

impl InFlight {
    fn new(slot: &Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(slot))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts on `listener` and serves `app` on each connection under `limits` until `shutdown`
/// resolves; then stops accepting, lets in-flight requests finish and closes idle connections.
pub async fn serve_connections<V>(
    listener: TcpListener,
    app: Router,
    verify: V,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) where
    V: tower::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    V::Future: Send + 'static,
{
    let max = limits.effective_max_connections();
    if max < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            used = max,
            "the open-files limit lowers the connection cap"
        );
    }
    let table = Arc::new(Mutex::new(Table::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        let admitted = table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(max);
        let Some((id, slot)) = admitted else {
            tracing::warn!(limit = max, %peer, "every connection is busy: closing a new one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let verify = verify.clone();
        let table = Arc::clone(&table);
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let service_slot = Arc::clone(&slot);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let in_flight = InFlight::new(&service_slot);
                req.extensions_mut().insert(ConnectInfo(peer));
                let to_verify = is_verify_route(&req);
                let app = app.clone();
                let verify = verify.clone();
                async move {
                    let response = if to_verify {
                        verify.oneshot(req.map(axum::body::Body::new)).await
                    } else {
                        app.oneshot(req).await
                    };
                    drop(in_flight);
                    Ok::<_, Infallible>(match response {
                        Ok(r) => r,
                        Err(never) => match never {},
                    })
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, %peer, "connection ended");
                        }
                        break;
                    }
                    () = slot.evict.notified(), if !shutting_down => {
                        tracing::debug!(%peer, "closing an idle connection to admit a newer one");
                        shutting_down = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    changed = stop.changed(), if !shutting_down => {
                        let _ = changed;
                        shutting_down = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .open
                .remove(&id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// Whether `request` is `POST /api/verify/assertion`, which the main port serves without the
/// router (see [`super::verify_route`]).
pub fn is_verify_route<B>(request: &hyper::Request<B>) -> bool {
    request.method() == hyper::Method::POST && request.uri().path() == "/api/verify/assertion"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_its_oldest_idle_connection_and_refuses_when_all_are_busy() {
        let mut table = Table::default();
        let (first, first_slot) = table.admit(2).unwrap();
        let (_second, second_slot) = table.admit(2).unwrap();
        let busy = InFlight::new(&first_slot);
        let (third, _) = table.admit(2).unwrap();
        assert_eq!(
            table.open.keys().copied().collect::<Vec<_>>(),
            vec![first, third],
            "the oldest idle one (not the busy oldest) makes room"
        );
        assert_eq!(second_slot.in_flight.load(Ordering::Acquire), 0);
        let third_slot = Arc::clone(&table.open[&third]);
        let also_busy = InFlight::new(&third_slot);
        assert!(table.admit(2).is_none(), "every connection busy: refused");
        drop((busy, also_busy));
        assert!(table.admit(2).is_some());
        assert_eq!(table.open.len(), 2);
    }

    #[test]
    fn only_a_post_to_the_verify_path_skips_the_router() {
        let request = |method: &str, uri: &str| {
            hyper::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap()
        };
        assert!(is_verify_route(&request("POST", "/api/verify/assertion")));
        assert!(is_verify_route(&request(
            "POST",
            "/api/verify/assertion?x=1"
        )));
        for (method, uri) in [
            ("GET", "/api/verify/assertion"),
            ("PUT", "/api/verify/assertion"),
            ("POST", "/api/verify/assertion/"),
            ("POST", "/api/verify/Assertion"),
            ("POST", "/api/verify/%61ssertion"),
            ("POST", "/api/verify"),
        ] {
            assert!(!is_verify_route(&request(method, uri)), "{method} {uri}");
        }
    }

    #[test]
    fn the_cap_stays_below_the_open_files_limit() {
        let limits = ConnectionLimits {
            max_connections: usize::MAX,
            header_timeout: Duration::from_secs(1),
        };
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let used = u64::try_from(limits.effective_max_connections()).unwrap();
        assert!(used <= soft.saturating_sub(RESERVED_DESCRIPTORS).max(1));
        let small = ConnectionLimits {
            max_connections: 8,
            ..limits
        };
        assert_eq!(small.effective_max_connections(), 8);
    }
}
