//! The HTTP API (axum): handlers, session cookies, rate limits, request IDs, graceful shutdown.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::b64;
use crate::cose::CredentialPublicKey;
use crate::error::ApiError;
use crate::request_context::RequestContextLayer;
use crate::rp::{AuthPurpose, CredentialView, RelyingParty, UserView};
use crate::store::{SessionRow, UserRow};
use crate::verify::{
    AssertionExpectation, AssertionVerdict, AuthenticationResponseJson, CounterPolicy,
    StoredCredential, constant_time_eq, verify_assertion,
};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "passgate_session";

/// A token bucket per client address, for the option endpoints (which write ceremony state).
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `burst` at once and `per_sec` sustained; `per_sec == 0` disables it.
    pub fn new(burst: u32, per_sec: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_sec),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `ip`, or says how long to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Forget idle clients rather than grow without bound.
            buckets.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(60));
        }
        let (tokens, last) = buckets.entry(ip).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_sec).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_sec))
        }
    }
}

/// Shared server state.
#[derive(Debug)]
pub struct AppState {
    /// The relying party.
    pub rp: RelyingParty,
    /// The option-endpoint limiter.
    pub limiter: RateLimiter,
}

/// The state every handler shares.
pub type Shared = Arc<AppState>;

/// Whether the request says its body is `application/json` (parameters such as `charset` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    is_json_type(headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes))
}

/// Whether a `Content-Type` value is `application/json` (parameters such as `charset` allowed).
pub(crate) fn is_json_type(content_type: Option<&[u8]>) -> bool {
    content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// The 415 of a body that is not `application/json`.
pub(crate) fn not_json() -> ApiError {
    // Also the CSRF guard: a cross-site form cannot send application/json.
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as application/json",
    )
}

/// The 413 of a body over the server's limit.
pub(crate) fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body exceeds the server's limit",
    )
}

/// The body of a JSON API request, or the error naming why it cannot be used.
pub(crate) fn body_bytes(
    body: Result<Bytes, BytesRejection>,
    headers: &HeaderMap,
) -> Result<Bytes, ApiError> {
    json_body(body, is_json(headers))
}

/// The body, or the error naming why it cannot be used: too large, unreadable, not JSON.
fn json_body(body: Result<Bytes, BytesRejection>, json_type: bool) -> Result<Bytes, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            body_too_large()
        } else {
            ApiError::bad_request("unreadable_body", e.body_text())
        }
    })?;
    if !json_type {
        return Err(not_json());
    }
    Ok(bytes)
}

/// The body as `T`; malformed JSON is `malformed_request`.
pub(crate) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("malformed_request", e.to_string()))
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_owned())
        })
}

async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(SessionRow, UserRow)>, ApiError> {
    match session_token(headers) {
        Some(token) => state.rp.session(&token).await,
        None => Ok(None),
    }
}

async fn require_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(SessionRow, UserRow), ApiError> {
    current_session(state, headers)
        .await?
        .ok_or_else(ApiError::unauthenticated)
}

fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    let secure = if state.rp.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        state.rp.config().session_ttl_secs
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn clear_cookie(state: &AppState) -> HeaderValue {
    let secure = if state.rp.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn rate_limit(state: &AppState, addr: SocketAddr) -> Result<(), ApiError> {
    state.limiter.check(addr.ip()).map_err(|wait| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {} ms", wait.as_millis()),
        )
    })
}

// ---- handlers ----

/// The answer of `GET /healthz`, on the main port and on the verification listener.
pub(crate) const HEALTHY: &str = r#"{"status":"ok"}"#;

async fn healthz() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        HEALTHY,
    )
        .into_response()
}

async fn readyz(State(state): State<Shared>) -> Response {
    match state.rp.store().schema_version().await {
        Ok(version) => Json(json!({
            "status": "ready",
            "database": format!("{:?}", state.rp.store().backend()).to_lowercase(),
            "schemaVersion": version,
        }))
        .into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            e.to_string(),
        )
        .into_response(),
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterOptionsRequest {
    #[serde(default)]
    username: String,
    display_name: Option<String>,
    attestation: Option<String>,
}

/// Registration options, shared by the JSON API and the FIDO conformance shape.
async fn registration_options(
    state: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    rate_limit(state, addr)?;
    let req: RegisterOptionsRequest = parse(&body_bytes(body, headers)?)?;
    let session = current_session(state, headers).await?;
    state
        .rp
        .begin_registration(
            &req.username,
            req.display_name.as_deref(),
            session.as_ref().map(|(_, u)| u),
            req.attestation.as_deref(),
        )
        .await
}

async fn register_options(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    registration_options(&state, addr, &headers, body)
        .await
        .map(Json)
}

async fn register_verify(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body, &headers)?;
    let session = current_session(&state, &headers).await?;
    let (user, credential, token) = state
        .rp
        .finish_registration(&body, session.as_ref().map(|(_, u)| u))
        .await?;
    let mut response = Json(json!({
        "verified": true,
        "user": UserView::from(&user),
        "credential": CredentialView::from(&credential),
    }))
    .into_response();
    if let Some(token) = token {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, session_cookie(&state, &token));
    }
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LoginOptionsRequest {
    username: Option<String>,
    user_verification: Option<String>,
}

/// Sign-in options (an empty body means discoverable), shared by the JSON API and the FIDO
/// conformance shape.
async fn sign_in_options(
    state: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    rate_limit(state, addr)?;
    let body = body_bytes(body, headers)?;
    let req: LoginOptionsRequest = if body.is_empty() {
        LoginOptionsRequest::default()
    } else {
        parse(&body)?
    };
    state
        .rp
        .begin_authentication(
            AuthPurpose::Login,
            req.username.as_deref(),
            None,
            None,
            req.user_verification.as_deref(),
        )
        .await
}

async fn login_options(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    sign_in_options(&state, addr, &headers, body)
        .await
        .map(Json)
}

async fn login_verify(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body, &headers)?;
    let auth = state
        .rp
        .finish_authentication(AuthPurpose::Login, &body, None)
        .await?;
    let mut response = Json(json!({
        "verified": true,
        "user": UserView::from(&auth.user),
        "credential": CredentialView::from(&auth.credential),
        "verdict": auth.verdict,
    }))
    .into_response();
    if let Some(token) = &auth.session_token {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, session_cookie(&state, token));
    }
    Ok(response)
}

async fn logout(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers) {
        state
            .rp
            .store()
            .delete_session(&crate::rp::token_hash(&token))
            .await?;
    }
    let mut response = Json(json!({ "signedOut": true })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(&state));
    Ok(response)
}

async fn session_info(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (session, user) = require_session(&state, &headers).await?;
    Ok(Json(json!({
        "user": UserView::from(&user),
        "credentialId": session.credential_id,
        "createdAt": session.created_at,
        "expiresAt": session.expires_at,
        "verifiedAt": session.verified_at,
        "recentlyVerified": state.rp.recently_verified(&session),
    })))
}

async fn list_credentials(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (session, user) = require_session(&state, &headers).await?;
    let creds = state.rp.store().credentials_of(&user.id).await?;
    let views: Vec<Value> = creds
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(CredentialView::from(c)).unwrap_or(Value::Null);
            v["current"] = json!(c.id == session.credential_id);
            v
        })
        .collect();
    Ok(Json(json!({ "credentials": views })))
}

#[derive(Deserialize)]
struct RenameRequest {
    name: String,
}

async fn rename_credential(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body_bytes(body, &headers)?;
    let (_, user) = require_session(&state, &headers).await?;
    let req: RenameRequest = parse(&body)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a passkey name is 1 to 64 printable characters",
        ));
    }
    if !state
        .rp
        .store()
        .rename_credential(&user.id, &id, name)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_credential",
            "you have no passkey with that ID",
        ));
    }
    Ok(Json(json!({ "id": id, "name": name })))
}

async fn delete_credential(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (session, user) = require_session(&state, &headers).await?;
    if !state.rp.recently_verified(&session) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "step_up_required",
            "confirm it is you (re-authenticate with a passkey) before deleting a passkey",
        ));
    }
    let creds = state.rp.store().credentials_of(&user.id).await?;
    if !creds.iter().any(|c| c.id == id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_credential",
            "you have no passkey with that ID",
        ));
    }
    if creds.len() == 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_credential",
            "this is your only passkey; add another before deleting it",
        ));
    }
    state.rp.store().delete_credential(&user.id, &id).await?;
    Ok(Json(json!({ "deleted": id })))
}

async fn reauth_options(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    rate_limit(&state, addr)?;
    let (session, user) = require_session(&state, &headers).await?;
    Ok(Json(
        state
            .rp
            .begin_authentication(
                AuthPurpose::Reauth,
                None,
                Some((&session, &user)),
                None,
                None,
            )
            .await?,
    ))
}

async fn reauth_verify(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body_bytes(body, &headers)?;
    let (session, _) = require_session(&state, &headers).await?;
    let auth = state
        .rp
        .finish_authentication(AuthPurpose::Reauth, &body, Some(&session))
        .await?;
    Ok(Json(json!({ "verified": true, "verdict": auth.verdict })))
}

#[derive(Deserialize)]
struct ActionRequest {
    payload: Value,
}

async fn action_options(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    rate_limit(&state, addr)?;
    let body = body_bytes(body, &headers)?;
    let (session, user) = require_session(&state, &headers).await?;
    let req: ActionRequest = parse(&body)?;
    let payload = match req.payload {
        Value::String(s) => s,
        Value::Null => {
            return Err(ApiError::bad_request(
                "missing_payload",
                "payload is required",
            ));
        }
        other => other.to_string(),
    };
    if payload.is_empty() || payload.len() > 8192 {
        return Err(ApiError::bad_request(
            "invalid_payload",
            "payload must be 1 to 8192 bytes",
        ));
    }
    let options = state
        .rp
        .begin_authentication(
            AuthPurpose::Action,
            None,
            Some((&session, &user)),
            Some(payload.clone()),
            None,
        )
        .await?;
    Ok(Json(json!({ "publicKey": options, "payload": payload })))
}

async fn action_verify(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body_bytes(body, &headers)?;
    let (session, _) = require_session(&state, &headers).await?;
    let auth = state
        .rp
        .finish_authentication(AuthPurpose::Action, &body, Some(&session))
        .await?;
    let receipt = auth
        .receipt
        .ok_or_else(|| ApiError::internal("action without receipt"))?;
    Ok(Json(json!({ "verified": true, "receipt": receipt })))
}

async fn get_receipt(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        serde_json::to_value(state.rp.receipt(&id).await?).map_err(ApiError::internal)?,
    ))
}

async fn receipt_key(State(state): State<Shared>) -> Json<Value> {
    let signer = state.rp.signer();
    Json(json!({
        "keyId": signer.key_id(),
        "alg": "ES256",
        "jwk": signer.jwk(),
        "spki": b64::encode(signer.spki()),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptVerifyRequest {
    receipt_json: String,
    signature: String,
}

async fn verify_receipt(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: ReceiptVerifyRequest = parse(&body_bytes(body, &headers)?)?;
    let signature = b64::decode(&req.signature)
        .map_err(|_| ApiError::bad_request("malformed_request", "signature is not base64url"))?;
    let valid = state.rp.signer().verify(&req.receipt_json, &signature);
    Ok(Json(
        json!({ "valid": valid, "keyId": state.rp.signer().key_id() }),
    ))
}

/// The stored credential record a backend sends. Its strings are read in place from the body
/// (`Cow` only allocates for a string with JSON escapes), since they are decoded right away.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyCredential<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    public_key: Cow<'a, str>,
    #[serde(default)]
    sign_count: u32,
    #[serde(borrow)]
    user_handle: Cow<'a, str>,
    /// The BE flag recorded at registration; checked when given.
    #[serde(default)]
    backup_eligible: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifyRequest<'a> {
    #[serde(borrow)]
    credential: VerifyCredential<'a>,
    response: AuthenticationResponseJson,
    #[serde(borrow)]
    expected_challenge: Cow<'a, str>,
    expected_origins: Vec<String>,
    #[serde(borrow)]
    expected_rp_id: Cow<'a, str>,
    #[serde(default = "yes")]
    require_user_verification: bool,
    #[serde(default)]
    counter_policy: CounterPolicy,
    #[serde(default)]
    allow_cross_origin: bool,
}

fn yes() -> bool {
    true
}

/// The answer of `POST /api/verify/assertion`, serialized straight from the verdict.
#[derive(Serialize)]
struct VerifiedAssertion {
    verified: bool,
    verdict: AssertionVerdict,
}

/// `POST /api/verify/assertion`: stateless verification for other backends.
///
/// This is the endpoint other backends call on every sign-in, so it reads the headers in place
/// (the `HeaderMap` extractor would copy them) and writes its answer without building a
/// `serde_json::Value` first.
async fn verify_for_backend(
    State(state): State<Shared>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    check_api_token(&state, request.headers())?;
    let json_type = is_json(request.headers());
    let body = json_body(Bytes::from_request(request, &state).await, json_type)?;
    let answer = verify_for_backend_body(&body)?;
    // Answer after the other connections that are ready now have run, so that their answers go
    // out together and wake their clients once rather than one by one (15-25% more
    // verifications per CPU-second under load; `verify_listener::connection` says why).
    tokio::task::yield_now().await;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answer,
    )
        .into_response())
}

/// The work of `POST /api/verify/assertion` once the caller and the body's type are checked:
/// the request body in, the JSON answer out. The axum route and the dedicated verification
/// listener ([`crate::verify_listener`]) both answer through it.
pub(crate) fn verify_for_backend_body(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let req: VerifyRequest<'_> = parse(body)?;
    let bad =
        |what: &str| ApiError::bad_request("malformed_request", format!("{what} is not base64url"));
    let stored = StoredCredential {
        id: b64::decode(&req.credential.id).map_err(|_| bad("credential.id"))?,
        public_key: CredentialPublicKey::from_cose(
            &b64::decode(&req.credential.public_key).map_err(|_| bad("credential.publicKey"))?,
        )
        .map_err(|e| ApiError::bad_request("bad_public_key", e.to_string()))?,
        sign_count: req.credential.sign_count,
        user_handle: b64::decode(&req.credential.user_handle)
            .map_err(|_| bad("credential.userHandle"))?,
        backup_eligible: req.credential.backup_eligible,
    };
    let challenge = b64::decode(&req.expected_challenge).map_err(|_| bad("expectedChallenge"))?;
    let verdict = verify_assertion(
        &stored,
        &req.response,
        &AssertionExpectation {
            challenge: &challenge,
            origins: &req.expected_origins,
            rp_id: &req.expected_rp_id,
            require_user_verification: req.require_user_verification,
            allow_cross_origin: req.allow_cross_origin,
            counter_policy: req.counter_policy,
        },
    )?;
    // About 300 bytes for a typical credential: one allocation, no regrowth.
    let mut answer = Vec::with_capacity(512);
    serde_json::to_writer(
        &mut answer,
        &VerifiedAssertion {
            verified: true,
            verdict,
        },
    )
    .map_err(ApiError::internal)?;
    Ok(answer)
}

/// Refuses a request without one of the configured API tokens as `Authorization: Bearer`.
/// Each configured token is compared in constant time.
pub(crate) fn check_api_token(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    check_bearer(
        &state.rp.config().api_tokens,
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    )
}

/// The same check on a raw `Authorization` value against `tokens`.
pub(crate) fn check_bearer(
    tokens: &[String],
    authorization: Option<&[u8]>,
) -> Result<(), ApiError> {
    let token = authorization
        .and_then(|v| std::str::from_utf8(v).ok())
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    if token.is_empty()
        || !tokens
            .iter()
            .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_token",
            "a valid `Authorization: Bearer` API token is required",
        ));
    }
    Ok(())
}

// ---- FIDO conformance server shapes ----

fn conformance(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(mut v) => {
            if let Value::Object(map) = &mut v {
                map.insert("status".into(), json!("ok"));
                map.insert("errorMessage".into(), json!(""));
            }
            Json(v).into_response()
        }
        Err(e) => (
            e.status,
            Json(
                json!({ "status": "failed", "errorMessage": format!("{}: {}", e.code, e.message) }),
            ),
        )
            .into_response(),
    }
}

async fn fido_attestation_options(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    conformance(registration_options(&state, addr, &headers, body).await)
}

async fn fido_attestation_result(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    conformance(
        async {
            let body = body_bytes(body, &headers)?;
            let session = current_session(&state, &headers).await?;
            state
                .rp
                .finish_registration(&body, session.as_ref().map(|(_, u)| u))
                .await?;
            Ok(json!({}))
        }
        .await,
    )
}

async fn fido_assertion_options(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    conformance(sign_in_options(&state, addr, &headers, body).await)
}

async fn fido_assertion_result(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    conformance(
        async {
            let body = body_bytes(body, &headers)?;
            let auth = state
                .rp
                .finish_authentication(AuthPurpose::Login, &body, None)
                .await?;
            // The conformance shape sets no cookie: do not keep a session nobody can use.
            if let Some(token) = &auth.session_token {
                state
                    .rp
                    .store()
                    .delete_session(&crate::rp::token_hash(token))
                    .await?;
            }
            Ok(json!({}))
        }
        .await,
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    wrong_method()
}

/// The 405 of a method an endpoint does not take.
pub(crate) fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// The router with every endpoint and layer.
pub fn router(state: Shared) -> Router {
    let body_limit = state.rp.config().body_limit_bytes;
    let static_dir = state.rp.config().static_dir.clone();
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/api/register/options", post(register_options))
        .route("/api/register/verify", post(register_verify))
        .route("/api/login/options", post(login_options))
        .route("/api/login/verify", post(login_verify))
        .route("/api/logout", post(logout))
        .route("/api/session", get(session_info))
        .route("/api/credentials", get(list_credentials))
        .route(
            "/api/credentials/{id}",
            patch(rename_credential).delete(delete_credential),
        )
        .route("/api/reauth/options", post(reauth_options))
        .route("/api/reauth/verify", post(reauth_verify))
        .route("/api/actions/options", post(action_options))
        .route("/api/actions/verify", post(action_verify))
        .route("/api/receipts/key", get(receipt_key))
        .route("/api/receipts/verify", post(verify_receipt))
        .route("/api/receipts/{id}", get(get_receipt))
        .route("/api/verify/assertion", post(verify_for_backend))
        .route("/attestation/options", post(fido_attestation_options))
        .route("/attestation/result", post(fido_attestation_result))
        .route("/assertion/options", post(fido_assertion_options))
        .route("/assertion/result", post(fido_assertion_result))
        .merge(crate::soter::routes())
        .method_not_allowed_fallback(method_not_allowed);
    let app = match static_dir {
        Some(dir) => api.fallback_service(
            tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true),
        ),
        None => api.fallback(not_found),
    };
    app.layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestContextLayer)
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests and closes the store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = state.rp.store().clone();
    let purge_store = store.clone();
    let purger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = purge_store.purge_expired(crate::store::now_millis()).await {
                tracing::warn!(error = %e, "purging expired ceremonies failed");
            }
        }
    });
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    purger.abort();
    store.close().await;
    result
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
