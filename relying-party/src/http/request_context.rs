//! Per-request context for every endpoint: the request ID, the log span, and the log line of a
//! failed request — one layer instead of tower-http's `SetRequestId`, `Trace` and
//! `PropagateRequestId`.
//!
//! Those three layers cost about 10-15 µs of a ~130 µs verification request on this project's
//! machines (measured with one worker under wrk; see the relying-party docs, "Performance"):
//! each wraps the request and response in its own future, the trace layer wraps the response
//! body to watch every frame, times every request and classifies every response, and the
//! request ID is looked up three times. This layer does the same observable work once:
//!
//! - a request keeps its own `x-request-id`, or gets a fresh random UUID (version 4);
//! - the handler runs inside an INFO span `request` with `request_id`, `method` and `path`
//!   (the path only: no query string, body or cookie reaches the logs), so every event a
//!   handler logs carries them;
//! - the response echoes `x-request-id`;
//! - a 5xx answer is logged at ERROR with its status and latency, any other at DEBUG.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Instrument;

/// The header carrying the request ID, in and out.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes the `x-request-id` of a request that arrives without one: a random UUID (version 4),
/// as `tower_http`'s `MakeRequestUuid` does, but drawn from AWS-LC's user-space DRBG. The `uuid`
/// crate asks the kernel (getrandom(2)) for every ID, which was one system call per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomRequestId;

/// IDs drawn per DRBG call. One call costs about as much as formatting 30 IDs, whatever its
/// length, so each thread draws for 64 at a time. The IDs name log lines; they are not secrets.
const IDS_PER_DRAW: usize = 64;

/// Random bytes for the next IDs of this thread, and how many are used.
struct IdPool {
    bytes: [u8; 16 * IDS_PER_DRAW],
    used: usize,
}

thread_local! {
    static ID_POOL: std::cell::RefCell<IdPool> = const {
        std::cell::RefCell::new(IdPool { bytes: [0; 16 * IDS_PER_DRAW], used: IDS_PER_DRAW })
    };
}

/// 16 fresh random bytes; `None` if the DRBG fails.
fn random_16() -> Option<[u8; 16]> {
    ID_POOL.with_borrow_mut(|pool| {
        if pool.used == IDS_PER_DRAW {
            aws_lc_rs::rand::fill(&mut pool.bytes).ok()?;
            pool.used = 0;
        }
        let at = pool.used * 16;
        pool.used += 1;
        pool.bytes.get(at..at + 16)?.try_into().ok()
    })
}

impl RandomRequestId {
    /// A fresh ID in the hyphenated lowercase form (`8-4-4-4-12` hex digits).
    pub fn generate() -> Option<HeaderValue> {
        let mut bytes = random_16()?;
        // RFC 9562 §5.4: version 4, variant 10.
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 36];
        let mut at = 0;
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                text[at] = b'-';
                at += 1;
            }
            text[at] = HEX[usize::from(byte >> 4)];
            text[at + 1] = HEX[usize::from(byte & 0x0f)];
            at += 2;
        }
        HeaderValue::from_bytes(&text).ok()
    }
}

/// The request's own ID if it sent one, otherwise a fresh one.
pub(crate) fn request_id_or_new(sent: Option<&HeaderValue>) -> Option<HeaderValue> {
    match sent {
        Some(id) => Some(id.clone()),
        None => RandomRequestId::generate(),
    }
}

/// The INFO span a request runs in. Its fields are only formatted when INFO is enabled for it.
pub(crate) fn request_span(id: Option<&HeaderValue>, method: &str, path: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = id.and_then(|v| v.to_str().ok()).unwrap_or("-"),
        method = %method,
        path = %path,
    )
}

/// Logs the end of a request in the current span: a 5xx at ERROR, anything else at DEBUG.
pub(crate) fn log_finished(status: StatusCode, started: Instant) {
    // The fields are only computed when the event is enabled.
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request failed"
        );
    } else {
        tracing::debug!(
            status = status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        );
    }
}

/// The layer that gives every request its [`RequestContextService`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestContextLayer;

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContextService { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct RequestContextService<S> {
    inner: S,
}

impl<S> Service<Request> for RequestContextService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let sent = request.headers().get(&X_REQUEST_ID);
        let fresh = sent.is_none();
        let id = request_id_or_new(sent);
        if let (true, Some(id)) = (fresh, &id) {
            // Handlers see the same ID the logs and the response carry.
            request
                .headers_mut()
                .insert(X_REQUEST_ID.clone(), id.clone());
        }
        let span = request_span(id.as_ref(), request.method().as_str(), request.uri().path());
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(
            async move {
                let Ok(mut response) = answer.await;
                log_finished(response.status(), started);
                if let Some(id) = id {
                    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_random_version_4_uuids() {
        // More than one draw of the per-thread pool.
        let ids: Vec<String> = (0..3 * IDS_PER_DRAW + 5)
            .map(|_| {
                RandomRequestId::generate()
                    .and_then(|v| v.to_str().ok().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        for id in &ids {
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(
                id.chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
                "{id}"
            );
            assert!(groups[2].starts_with('4'), "not version 4: {id}");
            assert!(
                groups[3].starts_with(['8', '9', 'a', 'b']),
                "not the RFC 9562 variant: {id}"
            );
        }
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), ids.len(), "repeated IDs: {ids:?}");
    }
}
