//! The local HTTP bridge: the host channel over HTTP on a loopback address, for pages in an
//! ordinary browser during development (and webviews whose app prefers it).
//!
//! ```text
//! POST /v1/pair     {"code": "ABCD-EFGH-JKMN"}         -> {"token": "...", "origin": "..."}
//! POST /v1/message  Authorization: Bearer TOKEN, a host-channel message (see `channel`)
//!                                                      -> the reply
//! POST /v1/unpair   Authorization: Bearer TOKEN        -> {"unpaired": true}
//! OPTIONS ...       CORS preflight, answered for the configured origins only
//! ```
//!
//! Who is calling is the HTTP `Origin` header, and nothing else: the body never names the
//! origin. A browser sets that header itself and no page script can change it, so a page can
//! only ever speak as its own origin. Only configured origins are answered (others get 403
//! and no CORS headers, so their script cannot even read the refusal), and only after
//! pairing: a page proves once that the person wants it to use passgate by sending the code
//! passgate showed in its own terminal, and gets a token bound to its origin. Codes and
//! tokens are compared in constant time. The code is used once: a successful pairing replaces
//! it (the new one is shown where the old one was). Wrong codes make that origin wait, longer
//! after each one (other origins are not held up, so a local process cannot lock the person
//! out by guessing in another origin's name for ever).
//!
//! Bodies are JSON of at most [`Config::max_body_bytes`]; headers and bodies must arrive
//! within their timeouts; a request whose client goes away is cancelled; every refusal is
//! `{"error": {"code", "message"}}` with a 4xx status.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use passgate_authenticator::api::user_verifier::Interaction;
use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use crate::b64;
use crate::channel::{Router, Sender};
use crate::conditional;

/// Limits and timeouts of the local bridge.
#[derive(Debug, Clone)]
pub struct Config {
    /// The origins answered, e.g. `http://localhost:8080` (exactly as browsers serialise
    /// them).
    pub allowed_origins: Vec<String>,
    /// The largest request body.
    pub max_body_bytes: usize,
    /// How long a client may take to send its request headers; also how long a connection
    /// may sit idle, before its first request or between two (hyper starts this timer
    /// whenever it waits for a request head).
    pub header_timeout: Duration,
    /// How long a client may take to send its body once the headers are in.
    pub body_timeout: Duration,
    /// The longest a message may run (ceremonies end by their own timeout, at most 10 min).
    pub request_timeout: Duration,
    /// Wrong pairing codes an origin may send before it must wait between tries.
    pub pairing_free_tries: u32,
    /// The longest wait between an origin's tries (the wait doubles from 1 s per wrong code).
    pub pairing_max_backoff: Duration,
    /// Messages handled at once (besides the waits of conditional requests, which have
    /// their own [`crate::conditional::MAX_CONDITIONAL`] so that armed pages never hold up a
    /// ceremony).
    pub max_in_flight: usize,
    /// Connections open at once; more are closed as they arrive (a local process opening
    /// thousands must not exhaust the descriptors the ceremonies need).
    pub max_connections: usize,
}

impl Config {
    /// Defaults for `allowed_origins`: 256 KiB bodies, 10 s for headers and for bodies,
    /// 11 min per message, 3 wrong pairing codes before waits of up to 5 min, 8 messages at
    /// once, 64 connections.
    pub fn new(allowed_origins: Vec<String>) -> Self {
        Self {
            allowed_origins,
            max_body_bytes: 256 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(660),
            pairing_free_tries: 3,
            pairing_max_backoff: Duration::from_secs(300),
            max_in_flight: 8,
            max_connections: 64,
        }
    }
}

/// Why the local bridge cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LocalBridgeError {
    /// An allowed origin is not an origin.
    #[error("{0:?} is not an origin (scheme://host[:port], nothing after it)")]
    Origin(String),
    /// No origin is allowed.
    #[error("the local bridge needs at least one allowed origin")]
    NoOrigins,
    /// Not a loopback address.
    #[error("the local bridge listens on loopback addresses only, not {0}")]
    NotLoopback(SocketAddr),
    /// No randomness for the pairing code.
    #[error("no randomness for the pairing code")]
    Random,
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The alphabet of pairing codes: Crockford's base 32 (no I, L, O, U to misread).
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 12 symbols, 60 bits: shown as three groups of four.
const CODE_LENGTH: usize = 12;

/// A paired page.
struct Session {
    /// SHA-256 of its token (the token itself is not kept).
    token_hash: [u8; 32],
    /// The origin that paired.
    origin: String,
    /// The router session its requests run in.
    id: String,
}

/// An origin's wrong pairing codes.
#[derive(Debug, Default)]
struct Tries {
    failures: u32,
    not_before: Option<std::time::Instant>,
}

struct Pairing {
    code: Zeroizing<String>,
    /// Per origin (only allowed origins get this far, so the map stays small).
    tries: std::collections::HashMap<String, Tries>,
    sessions: Vec<Session>,
}

/// Shows a new pairing code where the person sees it (the terminal running passgate).
type CodeDisplay = Box<dyn Fn(&str) + Send + Sync>;

struct Shared {
    router: Arc<Router>,
    config: Config,
    allowed: Vec<String>,
    pairing: Mutex<Pairing>,
    code_display: Mutex<Option<CodeDisplay>>,
    in_flight: tokio::sync::Semaphore,
    connections: Arc<tokio::sync::Semaphore>,
    conditional_waits: tokio::sync::Semaphore,
}

/// The local HTTP bridge over a [`Router`].
#[derive(Clone)]
pub struct LocalBridge {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LocalBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBridge")
            .field("allowed", &self.shared.allowed)
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], LocalBridgeError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| LocalBridgeError::Random)?;
    Ok(out)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref());
    out
}

/// The canonical form of a typed code: upper case, separators dropped, Crockford's
/// look-alikes (O, I, L) read as the digits they stand for.
fn normalize_code(typed: &str) -> Zeroizing<String> {
    Zeroizing::new(
        typed
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            })
            .collect(),
    )
}

/// Serialises an origin as browsers send it in `Origin`.
fn normalize_origin(origin: &str) -> Result<String, LocalBridgeError> {
    let url = url::Url::parse(origin).map_err(|_| LocalBridgeError::Origin(origin.into()))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(LocalBridgeError::Origin(origin.into()));
    }
    let serialized = url.origin().ascii_serialization();
    if serialized == "null" {
        return Err(LocalBridgeError::Origin(origin.into()));
    }
    Ok(serialized)
}

impl LocalBridge {
    /// A local bridge answering `config.allowed_origins` through `router`, with a fresh
    /// pairing code.
    pub fn new(router: Arc<Router>, config: Config) -> Result<Self, LocalBridgeError> {
        let allowed = config
            .allowed_origins
            .iter()
            .map(|o| normalize_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        if allowed.is_empty() {
            return Err(LocalBridgeError::NoOrigins);
        }
        let code = new_code()?;
        Ok(Self {
            shared: Arc::new(Shared {
                router,
                in_flight: tokio::sync::Semaphore::new(config.max_in_flight.max(1)),
                connections: Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1))),
                conditional_waits: tokio::sync::Semaphore::new(conditional::MAX_CONDITIONAL),
                config,
                allowed,
                pairing: Mutex::new(Pairing {
                    code,
                    tries: std::collections::HashMap::new(),
                    sessions: Vec::new(),
                }),
                code_display: Mutex::new(None),
            }),
        })
    }

    /// The pairing code, `XXXX-XXXX-XXXX`: show it where only the person can see it (the
    /// terminal running passgate), never to a page.
    pub fn pairing_code(&self) -> Zeroizing<String> {
        grouped(&self.lock().code)
    }

    /// Calls `display` with each new pairing code (a code is replaced once a page pairs with
    /// it): show it where the first one was shown.
    pub fn on_new_code(&self, display: impl Fn(&str) + Send + Sync + 'static) {
        *self
            .shared
            .code_display
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(display));
    }

    /// The origins answered.
    pub fn allowed_origins(&self) -> &[String] {
        &self.shared.allowed
    }

    /// Pairs `origin` without a code and returns its token: for a native app that loads its
    /// own page into a webview and injects the token with the shim.
    pub fn issue_token(&self, origin: &str) -> Result<Zeroizing<String>, LocalBridgeError> {
        let origin = normalize_origin(origin)?;
        if !self.shared.allowed.contains(&origin) {
            return Err(LocalBridgeError::Origin(origin));
        }
        self.new_session(&origin)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pairing> {
        self.shared
            .pairing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn new_session(&self, origin: &str) -> Result<Zeroizing<String>, LocalBridgeError> {
        let token = Zeroizing::new(b64::encode(&random_bytes::<32>()?));
        let id = passgate_authenticator::fs::hex(&random_bytes::<8>()?);
        self.lock().sessions.push(Session {
            token_hash: sha256(token.as_bytes()),
            origin: origin.to_owned(),
            id,
        });
        Ok(token)
    }

    /// The HTTP routes, for a server of the caller's own; `local` is the address it listens
    /// on (requests must name it in `Host`).
    pub fn app(&self, local: SocketAddr) -> axum::Router {
        let state = AppState {
            bridge: self.clone(),
            hosts: allowed_hosts(local),
        };
        axum::Router::new().fallback(entry).with_state(state)
    }

    /// Serves on `listener` (a loopback address) until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), LocalBridgeError> {
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() {
            return Err(LocalBridgeError::NotLoopback(local));
        }
        let app = self.app(local);
        let header_timeout = self.shared.config.header_timeout;
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "local bridge: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            if !peer.ip().is_loopback() {
                continue;
            }
            let Ok(slot) = Arc::clone(&self.shared.connections).try_acquire_owned() else {
                tracing::warn!(
                    limit = self.shared.config.max_connections,
                    "local bridge: too many connections, closing a new one"
                );
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "local bridge: connection ended");
                }
            });
        }
        // Whatever is still running is abandoned: cancel it so no prompt stays open.
        let sessions: Vec<String> = self.lock().sessions.iter().map(|s| s.id.clone()).collect();
        for id in sessions {
            self.shared.router.cancel_session(&id);
        }
        Ok(())
    }
}

/// `Host` values that name this server (anything else may be a DNS-rebinding attack).
fn allowed_hosts(local: SocketAddr) -> Vec<String> {
    let port = local.port();
    vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        local.to_string(),
    ]
}

#[derive(Clone)]
struct AppState {
    bridge: LocalBridge,
    hosts: Vec<String>,
}

/// A refusal before the request is handled; becomes `{"error": {"code", "message"}}`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refusal(self.status, self.code, self.message)
    }
}

/// A refusal: `{"error": {"code", "message"}}`.
fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": code, "message": message.into() } });
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Adds the CORS headers for an allowed `origin`.
fn with_cors(mut response: Response, origin: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const PATHS: [&str; 3] = ["/v1/pair", "/v1/message", "/v1/unpair"];
const ALLOWED_REQUEST_HEADERS: [&str; 2] = ["authorization", "content-type"];

async fn entry(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !state.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return refusal(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!("this bridge answers requests for {} only", state.hosts[0]),
        );
    }
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
    else {
        return refusal(
            StatusCode::FORBIDDEN,
            "origin_required",
            "requests must come from a page: the Origin header is missing",
        );
    };
    if !state.bridge.shared.allowed.contains(&origin) {
        tracing::warn!(%origin, path = parts.uri.path(), "local bridge: origin refused");
        return refusal(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!("{origin} may not use this bridge"),
        );
    }
    let path = parts.uri.path();
    if !PATHS.contains(&path) {
        return with_cors(
            refusal(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no {path} here"),
            ),
            &origin,
        );
    }
    if parts.method == Method::OPTIONS {
        return preflight(&parts.headers, &origin);
    }
    if parts.method != Method::POST {
        let mut r = refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} takes POST"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return with_cors(r, &origin);
    }
    let response = match read_json(&state.bridge.shared.config, &parts.headers, body).await {
        Err(r) => r.into_response(),
        Ok(body) => match path {
            "/v1/pair" => pair(&state.bridge, &origin, &body),
            "/v1/unpair" => unpair(&state.bridge, &origin, &parts.headers),
            _ => message(&state.bridge, &origin, &parts.headers, body).await,
        },
    };
    with_cors(response, &origin)
}

/// Answers a CORS preflight from an allowed origin: POST with the two headers the shim uses.
fn preflight(headers: &HeaderMap, origin: &str) -> Response {
    let method = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok());
    if method != Some("POST") {
        return refusal(
            StatusCode::FORBIDDEN,
            "preflight_refused",
            "only POST is allowed",
        );
    }
    let requested = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let unknown: Vec<String> = requested
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty() && !ALLOWED_REQUEST_HEADERS.contains(&h.as_str()))
        .collect();
    if !unknown.is_empty() {
        return refusal(
            StatusCode::FORBIDDEN,
            "preflight_refused",
            format!("headers not allowed: {}", unknown.join(", ")),
        );
    }
    let mut response = with_cors(StatusCode::NO_CONTENT.into_response(), origin);
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    // Chromium's Private Network Access asks before a page reaches a loopback address.
    if headers
        .get("access-control-request-private-network")
        .is_some_and(|v| v == "true")
    {
        h.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// Reads a JSON body within the limits.
async fn read_json(config: &Config, headers: &HeaderMap, body: Body) -> Result<Json, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be application/json",
        ));
    }
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is over {} bytes", config.max_body_bytes),
        )
    };
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.parse::<u64>().ok())
    {
        if usize::try_from(length).map_or(true, |l| l > config.max_body_bytes) {
            return Err(too_large());
        }
    }
    let bytes: Bytes = match tokio::time::timeout(
        config.body_timeout,
        axum::body::to_bytes(body, config.max_body_bytes),
    )
    .await
    {
        Err(_) => {
            return Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the body did not arrive in time",
            ));
        }
        Ok(Err(_)) => return Err(too_large()),
        Ok(Ok(bytes)) => bytes,
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not JSON: {e}"),
        )
    })
}

/// A fresh pairing code: 12 symbols of [`CODE_ALPHABET`].
fn new_code() -> Result<Zeroizing<String>, LocalBridgeError> {
    let raw = Zeroizing::new(random_bytes::<CODE_LENGTH>()?);
    Ok(Zeroizing::new(
        raw.iter()
            .map(|b| char::from(CODE_ALPHABET[usize::from(b & 31)]))
            .collect(),
    ))
}

/// `XXXX-XXXX-XXXX`.
fn grouped(code: &str) -> Zeroizing<String> {
    let groups: Vec<&str> = code
        .as_bytes()
        .chunks(4)
        .filter_map(|g| std::str::from_utf8(g).ok())
        .collect();
    Zeroizing::new(groups.join("-"))
}

fn pair(bridge: &LocalBridge, origin: &str, body: &Json) -> Response {
    let Some(typed) = body.get("code").and_then(Json::as_str) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send {\"code\": \"the pairing code passgate shows\"}",
        );
    };
    let typed = normalize_code(typed);
    let config = &bridge.shared.config;
    let now = std::time::Instant::now();
    // Made before the check: a used code must never stay valid for want of a new one.
    let fresh = match new_code() {
        Ok(code) => code,
        Err(e) => return refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let next_code = {
        let mut pairing = bridge.lock();
        let tries = pairing.tries.entry(origin.to_owned()).or_default();
        if let Some(wait) = tries.not_before.and_then(|t| t.checked_duration_since(now)) {
            let seconds = wait.as_secs().saturating_add(1);
            let mut response = refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "pairing_backoff",
                format!("too many wrong pairing codes from {origin}: try again in {seconds} s"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return response;
        }
        let right = aws_lc_rs::constant_time::verify_slices_are_equal(
            typed.as_bytes(),
            pairing.code.as_bytes(),
        )
        .is_ok();
        let Some(tries) = pairing.tries.get_mut(origin) else {
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "pairing state",
            );
        };
        if !right {
            tries.failures = tries.failures.saturating_add(1);
            let left = config.pairing_free_tries.saturating_sub(tries.failures);
            let message = if left > 0 {
                format!(
                    "that is not the pairing code passgate shows ({left} more tries before waits)"
                )
            } else {
                // 1 s, 2 s, 4 s, … after each wrong code past the free ones.
                let doublings = (tries.failures - config.pairing_free_tries).min(20);
                let wait = Duration::from_secs(1u64 << doublings).min(config.pairing_max_backoff);
                tries.not_before = Some(now + wait);
                format!(
                    "that is not the pairing code passgate shows (wait {} s before the next try)",
                    wait.as_secs()
                )
            };
            tracing::warn!(%origin, failures = tries.failures, "local bridge: wrong pairing code");
            return refusal(StatusCode::UNAUTHORIZED, "pairing_code_wrong", message);
        }
        pairing.tries.remove(origin);
        // One code, one pairing: the next page needs the next code.
        pairing.code = fresh;
        grouped(&pairing.code)
    };
    {
        let code = next_code;
        if let Some(display) = bridge
            .shared
            .code_display
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            display(&code);
        }
    }
    match bridge.new_session(origin) {
        Ok(token) => {
            tracing::info!(%origin, "local bridge: a page paired");
            (
                StatusCode::OK,
                axum::Json(json!({ "token": token.as_str(), "origin": origin })),
            )
                .into_response()
        }
        Err(e) => refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// The session of the bearer token, if it was issued to `origin`.
fn session_of(bridge: &LocalBridge, origin: &str, headers: &HeaderMap) -> Result<String, Refusal> {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|a| a.to_str().ok())
        .and_then(|a| {
            a.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
        })
        .filter(|t| !t.is_empty())
    else {
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "pairing_required",
            "pair first: POST /v1/pair with the code passgate shows, then send Authorization: Bearer TOKEN",
        ));
    };
    let hash = sha256(token.as_bytes());
    let pairing = bridge.lock();
    // Every session is compared, in constant time, whatever matches.
    let mut found = None;
    for session in &pairing.sessions {
        if aws_lc_rs::constant_time::verify_slices_are_equal(&hash, &session.token_hash).is_ok() {
            found = Some(session);
        }
    }
    match found {
        Some(session) if session.origin == origin => Ok(session.id.clone()),
        _ => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "pairing_invalid",
            "this token is not one passgate issued to this origin (passgate restarted?): pair again",
        )),
    }
}

fn unpair(bridge: &LocalBridge, origin: &str, headers: &HeaderMap) -> Response {
    let id = match session_of(bridge, origin, headers) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    bridge.lock().sessions.retain(|s| s.id != id);
    bridge.shared.router.cancel_session(&id);
    (StatusCode::OK, axum::Json(json!({ "unpaired": true }))).into_response()
}

/// Cancels the request when the HTTP exchange is dropped before it finished (the client went
/// away).
struct CancelOnDrop {
    interaction: Interaction,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.interaction.cancel();
        }
    }
}

async fn message(bridge: &LocalBridge, origin: &str, headers: &HeaderMap, body: Json) -> Response {
    let session = match session_of(bridge, origin, headers) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let pool = if body.get("type").and_then(Json::as_str) == Some(conditional::WAIT) {
        &bridge.shared.conditional_waits
    } else {
        &bridge.shared.in_flight
    };
    let Ok(_permit) = pool.try_acquire() else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many requests at once",
        );
    };
    let interaction = Interaction::new();
    let mut cancel_on_drop = CancelOnDrop {
        interaction: interaction.clone(),
        armed: true,
    };
    let sender = Sender::new(origin).in_session(session);
    let router = Arc::clone(&bridge.shared.router);
    let running = tokio::task::spawn_blocking(move || {
        router.handle_value(&sender, &body, Some(&interaction))
    });
    let reply = match tokio::time::timeout(bridge.shared.config.request_timeout, running).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_)) => {
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed",
            );
        }
        Err(_) => {
            return refusal(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the request ran too long and was cancelled",
            );
        }
    };
    // Finished: nothing left to cancel.
    cancel_on_drop.armed = false;
    (StatusCode::OK, axum::Json(reply)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalised_and_origins_serialised() {
        assert_eq!(normalize_code(" abcd-efgh-jkmn ").as_str(), "ABCDEFGHJKMN");
        assert_eq!(normalize_code("o1lI").as_str(), "0111");
        assert_eq!(
            normalize_origin("http://LOCALHOST:8080/").unwrap(),
            "http://localhost:8080"
        );
        assert_eq!(
            normalize_origin("https://example.com:443").unwrap(),
            "https://example.com"
        );
        for bad in [
            "localhost:8080",
            "http://localhost:8080/path",
            "data:text/plain,x",
            "file:///tmp",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pairing_codes_are_twelve_crockford_symbols() {
        let bridge = LocalBridge::new(
            Arc::new(Router::new()),
            Config::new(vec!["http://localhost:8080".into()]),
        )
        .unwrap();
        let code = bridge.pairing_code();
        assert_eq!(code.len(), 14);
        let symbols = normalize_code(&code);
        assert_eq!(symbols.len(), CODE_LENGTH);
        assert!(symbols.bytes().all(|b| CODE_ALPHABET.contains(&b)));
        let other = LocalBridge::new(
            Arc::new(Router::new()),
            Config::new(vec!["http://localhost:8080".into()]),
        )
        .unwrap();
        assert_ne!(*code, *other.pairing_code());
        assert!(matches!(
            LocalBridge::new(Arc::new(Router::new()), Config::new(vec![])),
            Err(LocalBridgeError::NoOrigins)
        ));
    }
}
