//! The verification listener: a second port that serves only `POST /api/verify/assertion` (and
//! `GET /healthz` for load balancers), for backends that verify an assertion on every sign-in.
//!
//! Why a second listener: on the main port a verification request pays for hyper's general
//! HTTP machinery, axum's router and the tower layers around every endpoint — measured here at
//! 25-35 µs of a ~125 µs request, where the P-256 verify itself is ~85 µs. This listener reads
//! HTTP/1.1 with `httparse` (the parser hyper uses) and does nothing a verification does not
//! need, and it writes the answers of the connections that are ready together (see
//! `connection`): under load a worker core verifies at about 0.8× of the library call's rate
//! on this project's 2-vCPU machines, against about 0.75× on the main port (see the
//! relying-party docs, "Performance"). The answer is the main port's, byte for
//! byte: the same function ([`crate::server::verify_for_backend_body`]) checks and verifies
//! the body, with the same token check, body limit, JSON errors, request IDs and log span.
//!
//! The HTTP it accepts is deliberately narrow, and everything else gets a precise error:
//! - HTTP/1.1 (keep-alive unless `Connection: close`) and HTTP/1.0 (one request per
//!   connection);
//! - a body framed by one `Content-Length`; `Transfer-Encoding` gets 411 and a close, since
//!   without it the end of the body is unknown (RFC 9112 §6.3 lets a server refuse it);
//! - `Expect: 100-continue` is answered;
//! - a request head of at most 16 KiB and 64 headers (431), a body within the server's limit
//!   (413), a `Host` header on HTTP/1.1 (400, RFC 9112 §3.2);
//! - a slow client cannot hold a connection: 10 s to send a request head once it started,
//!   30 s for its body, 60 s of keep-alive idleness (408 or a close);
//! - pipelined requests are answered in order.
//!
//! On shutdown it stops accepting, closes idle connections, and lets a request being read or
//! verified finish (up to 10 s).

use std::future::Future;
use std::io::{self, Write as _};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::ApiError;
use crate::request_context::{log_finished, request_id_or_new, request_span};
use crate::server::{
    HEALTHY, Shared, body_too_large, check_bearer, is_json_type, not_json, verify_for_backend_body,
    wrong_method,
};

/// The one verification route.
const VERIFY_PATH: &str = "/api/verify/assertion";
/// Largest request head (request line and headers).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in a request.
const MAX_HEADERS: usize = 64;
/// How long a slow client may hold a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A started request head (10 s).
    pub head: Duration,
    /// A body, once its head arrived (30 s).
    pub body: Duration,
    /// A kept-alive connection between requests (60 s).
    pub idle: Duration,
    /// Requests in progress at shutdown (10 s).
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            head: Duration::from_secs(10),
            body: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            drain: Duration::from_secs(10),
        }
    }
}

/// Serves the verification listener until `shutdown` resolves.
pub async fn serve_verify(
    listener: TcpListener,
    state: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_verify_with(listener, state, Timeouts::default(), shutdown).await
}

/// [`serve_verify`] with other timeouts.
pub async fn serve_verify_with(
    listener: TcpListener,
    state: Shared,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Answers are one write each; Nagle would hold them for the client's ACK.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, state.clone(), timeouts, stop_rx.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "verification listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(timeouts.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "verification listener: closing connections still busy after the drain timeout"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// What a request head asks for, read out of the buffer so the buffer can move on.
#[derive(Debug)]
struct Head {
    /// Bytes of the request line and headers.
    len: usize,
    /// The body's length (0 without `Content-Length`).
    body_len: usize,
    /// The client keeps the connection for another request.
    keep_alive: bool,
    /// `Expect: 100-continue`.
    expect_continue: bool,
    /// `x-request-id` as sent, or a fresh one.
    request_id: Option<HeaderValue>,
    /// The span the answer is made and logged in.
    span: tracing::Span,
    /// What to do once the body is in: verify it, answer health, or refuse.
    route: Route,
    /// The methods a 405 names.
    allow: Option<&'static str>,
}

#[derive(Debug)]
enum Route {
    Verify,
    Health,
    Refuse(ApiError),
}

/// A request that cannot be read further: answer it and close the connection.
#[derive(Debug)]
struct Fatal(ApiError);

/// Parses a complete request head from `buf`, `Ok(None)` while it is incomplete.
fn parse_head(buf: &[u8], state: &Shared) -> Result<Option<Head>, Fatal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Fatal(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "the request has more than 64 headers",
            )));
        }
        Err(e) => {
            return Err(Fatal(ApiError::bad_request(
                "malformed_http",
                format!("the request is not valid HTTP/1.1: {e}"),
            )));
        }
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Ok(None);
    };
    let mut content_length: Option<usize> = None;
    let mut host = false;
    let mut close = false;
    let mut expect_continue = false;
    let mut authorization = None;
    let mut content_type = None;
    let mut sent_id = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok().map(str::trim);
            let parsed = value
                .filter(|v| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok());
            match (parsed, content_length) {
                (Some(n), None) => content_length = Some(n),
                // A repeated Content-Length is how request smuggling starts: refuse it.
                _ => {
                    return Err(Fatal(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_content_length",
                        "Content-Length must appear once, as a decimal number",
                    )));
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Fatal(ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "send the body with a Content-Length; Transfer-Encoding is not accepted here",
            )));
        } else if name.eq_ignore_ascii_case("host") {
            host = true;
        } else if name.eq_ignore_ascii_case("connection") {
            close |= header
                .value
                .split(|b| *b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if name.eq_ignore_ascii_case("expect") {
            if !header
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue")
            {
                return Err(Fatal(ApiError::new(
                    StatusCode::EXPECTATION_FAILED,
                    "expectation_failed",
                    "only `Expect: 100-continue` is understood",
                )));
            }
            expect_continue = true;
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(header.value);
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(header.value);
        } else if name.eq_ignore_ascii_case("x-request-id") {
            sent_id = HeaderValue::from_bytes(header.value).ok();
        }
    }
    if version == 1 && !host {
        return Err(Fatal(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_host",
            "an HTTP/1.1 request must carry a Host header",
        )));
    }
    let path = target.split('?').next().unwrap_or_default();
    let mut allow = None;
    let route = match (method, path) {
        ("POST", VERIFY_PATH) => match check_bearer(&state.rp.config().api_tokens, authorization) {
            Err(e) => Route::Refuse(e),
            Ok(()) if content_length.is_none() => {
                return Err(Fatal(ApiError::new(
                    StatusCode::LENGTH_REQUIRED,
                    "length_required",
                    "send the body with a Content-Length",
                )));
            }
            Ok(()) if !is_json_type(content_type) => Route::Refuse(not_json()),
            Ok(()) => Route::Verify,
        },
        ("GET", "/healthz") => Route::Health,
        (_, VERIFY_PATH | "/healthz") => {
            allow = Some(if path == VERIFY_PATH { "POST" } else { "GET" });
            Route::Refuse(wrong_method())
        }
        _ => Route::Refuse(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this listener serves only POST /api/verify/assertion and GET /healthz",
        )),
    };
    let body_len = content_length.unwrap_or(0);
    // A refused request is answered from its head; a body that would be read must fit.
    if !matches!(route, Route::Refuse(_)) && body_len > state.rp.config().body_limit_bytes {
        return Err(Fatal(body_too_large()));
    }
    let request_id = request_id_or_new(sent_id.as_ref());
    let span = request_span(request_id.as_ref(), method, path);
    Ok(Some(Head {
        len,
        body_len,
        // HTTP/1.0 keep-alive would need a `Connection: keep-alive` answer; one request each.
        keep_alive: version == 1 && !close,
        expect_continue,
        request_id,
        span,
        route,
        allow,
    }))
}

/// Reads more bytes into `buf`; `Ok(0)` at end of stream.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(8192);
    }
    stream.read_buf(buf).await
}

/// One connection: requests in, answers out, until the client or the server ends it.
async fn connection(
    mut stream: TcpStream,
    state: Shared,
    timeouts: Timeouts,
    stop: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    // One wait for shutdown for the connection's life, instead of one registration per request.
    let mut stopping = stop.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    tokio::pin!(stopped);
    // One timer for the connection's life, moved on at each phase. Moving a tokio timer later
    // is an atomic store; a new timeout per read was a timer-wheel insertion and removal (about
    // 1% of a request's CPU).
    let timer = tokio::time::sleep(timeouts.idle);
    tokio::pin!(timer);
    loop {
        // The head: wait idle for the first byte, then at most `timeouts.head` for the rest.
        // The idle deadline is always later than the one before (the cheap way to move the
        // timer); the head's and the body's are only set for a head or body that arrives in
        // pieces.
        timer
            .as_mut()
            .reset(tokio::time::Instant::now() + timeouts.idle);
        let mut head_deadline = false;
        let head = loop {
            if !buf.is_empty() {
                match parse_head(&buf, &state) {
                    Ok(Some(head)) => break head,
                    Ok(None) if buf.len() > MAX_HEAD_BYTES => {
                        let refused = Fatal(ApiError::new(
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            "headers_too_large",
                            "the request head exceeds 16 KiB",
                        ));
                        let _ = answer_fatal(&mut stream, &mut out, refused).await;
                        return;
                    }
                    Ok(None) => {
                        if !head_deadline {
                            head_deadline = true;
                            timer
                                .as_mut()
                                .reset(tokio::time::Instant::now() + timeouts.head);
                        }
                    }
                    Err(refused) => {
                        let _ = answer_fatal(&mut stream, &mut out, refused).await;
                        return;
                    }
                }
            }
            let read = tokio::select! {
                // In this order: bytes that are there win over a timer that just ran out.
                biased;
                read = read_more(&mut stream, &mut buf) => Some(read),
                () = &mut timer => None,
                // Shutdown closes a connection between requests, never in the middle of one.
                () = &mut stopped, if buf.is_empty() => return,
            };
            match read {
                Some(Ok(0) | Err(_)) => return,
                Some(Ok(_)) => {}
                None => {
                    if !buf.is_empty() {
                        let _ = answer_fatal(&mut stream, &mut out, too_slow("head")).await;
                    }
                    return;
                }
            }
        };

        // The body.
        let end = head.len + head.body_len;
        if buf.len() < end {
            let too_large = head.body_len > state.rp.config().body_limit_bytes;
            if let (Route::Refuse(refused), true) = (&head.route, too_large || head.expect_continue)
            {
                // Refused from its head alone, with a body too large to read or one the client
                // waits to be asked for: answer and close instead of waiting for it. (A refused
                // request's body within the limit is read below, so the connection stays in step.)
                let refused = Err(refused.clone());
                let _ = answer(
                    &mut stream,
                    &mut out,
                    head.request_id.as_ref(),
                    &refused,
                    head.allow,
                    false,
                )
                .await;
                return;
            }
            if head.expect_continue
                && stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
            {
                return;
            }
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + timeouts.body);
            buf.reserve(end - buf.len());
            while buf.len() < end {
                let read = tokio::select! {
                    biased;
                    read = stream.read_buf(&mut buf) => Some(read),
                    () = &mut timer => None,
                };
                match read {
                    Some(Ok(0) | Err(_)) => return,
                    Some(Ok(_)) => {}
                    None => {
                        let _ = answer_fatal(&mut stream, &mut out, too_slow("body")).await;
                        return;
                    }
                }
            }
        }

        // The answer, in the same span and with the same checks as on the main port.
        let span = head.span;
        let when = Instant::now();
        let result = span.in_scope(|| match head.route {
            Route::Verify => verify_for_backend_body(&buf[head.len..end]),
            Route::Health => Ok(HEALTHY.as_bytes().to_vec()),
            Route::Refuse(refused) => Err(refused),
        });
        if buf.len() == end {
            // Let the other connections that are ready now run first, so that their answers
            // go out together with this one. Each answer written alone wakes the client that
            // waits for it, and a wake-up on another core costs the sender an interrupt to that
            // core (on this VM, about as much as reading the request). Written together, one
            // wake-up serves several: wrk woke once per 10 answers instead of once per answer,
            // for 11-14% more answers per CPU-second. Tokio runs a yielded task again after
            // the tasks ready now, and after at most one I/O-driver turn (61 polls), so an
            // answer cannot be held back behind a flood. With one client nothing else is
            // ready, and the answer goes out after one look at the I/O driver. (A pipelined
            // request needs no wait: its answer is written after the last one's anyway.) The
            // logged duration includes the wait, as on the main port.
            tokio::task::yield_now().await;
        }
        let status = result
            .as_ref()
            .map_or_else(|e| e.status, |_| StatusCode::OK);
        span.in_scope(|| log_finished(status, when));
        let keep_alive = head.keep_alive && !*stop.borrow();
        if answer(
            &mut stream,
            &mut out,
            head.request_id.as_ref(),
            &result,
            head.allow,
            keep_alive,
        )
        .await
        .is_err()
            || !keep_alive
        {
            return;
        }
        // Keep what a pipelining client already sent after this request.
        buf.drain(..end);
    }
}

/// Writes a complete response: status line, headers, JSON body.
async fn answer(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    request_id: Option<&HeaderValue>,
    result: &Result<Vec<u8>, ApiError>,
    allow: Option<&str>,
    keep_alive: bool,
) -> io::Result<()> {
    let error_body;
    let (status, body): (StatusCode, &[u8]) = match result {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => {
            error_body = e.body().to_string().into_bytes();
            (e.status, &error_body)
        }
    };
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}", body.len());
    out.extend_from_slice(b"\r\ndate: ");
    http_date(out);
    if let Some(id) = request_id {
        out.extend_from_slice(b"\r\nx-request-id: ");
        out.extend_from_slice(id.as_bytes());
    }
    if let Some(allow) = allow {
        out.extend_from_slice(b"\r\nallow: ");
        out.extend_from_slice(allow.as_bytes());
    }
    if !keep_alive {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    stream.write_all(out).await?;
    if !keep_alive {
        stream.shutdown().await?;
    }
    Ok(())
}

/// Appends the current time as an HTTP date (RFC 9110 §5.6.7). It changes once a second, so
/// each thread formats it once a second, as hyper does.
fn http_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// The 408 of a request whose `part` (head or body) did not arrive in time.
fn too_slow(part: &str) -> Fatal {
    Fatal(ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!("the request {part} did not arrive in time"),
    ))
}

/// Answers a request that cannot be read on, and closes. Its head could not be read, so its
/// own `x-request-id` is unknown: the answer and the log line carry a fresh one.
async fn answer_fatal(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    Fatal(e): Fatal,
) -> io::Result<()> {
    let id = request_id_or_new(None);
    tracing::debug!(
        request_id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
        status = e.status.as_u16(),
        code = e.code,
        "verification listener refused a request"
    );
    answer(stream, out, id.as_ref(), &Err(e), None, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date_now() -> SystemTime {
        let mut out = Vec::new();
        http_date(&mut out);
        let text = String::from_utf8(out).unwrap_or_default();
        httpdate::parse_http_date(&text).unwrap_or(SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn the_cached_date_follows_the_clock() {
        let first = date_now();
        let skew = |date: SystemTime| {
            SystemTime::now()
                .duration_since(date)
                .unwrap_or(Duration::MAX)
        };
        assert!(skew(first) < Duration::from_secs(1), "{first:?}");
        std::thread::sleep(Duration::from_millis(1100));
        let second = date_now();
        assert!(second > first, "{first:?} then {second:?}");
        assert!(skew(second) < Duration::from_secs(1), "{second:?}");
    }
}
