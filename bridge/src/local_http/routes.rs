//! The HTTP entry point: `Host` and `Origin` checks, CORS preflight, body limits, and the
//! message route that hands a request to the router.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use passgate_platform_api::user_verifier::Interaction;
use serde_json::Value as Json;

use super::pairing::{pair, session_of, unpair};
use super::refusal::{Refusal, refusal, with_cors};
use super::{Config, LocalBridge};
use crate::conditional;
use passgate_platform_api::host_channel::Sender;

#[derive(Clone)]
pub(super) struct AppState {
    pub(super) bridge: LocalBridge,
    pub(super) hosts: Vec<String>,
}

const PATHS: [&str; 3] = ["/v1/pair", "/v1/message", "/v1/unpair"];
const ALLOWED_REQUEST_HEADERS: [&str; 2] = ["authorization", "content-type"];

pub(super) async fn entry(State(state): State<AppState>, request: Request<Body>) -> Response {
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
            // Pairing and unpairing write the pairing store (fsync): off the async workers.
            "/v1/pair" => {
                let (bridge, caller) = (state.bridge.clone(), origin.clone());
                blocking(move || pair(&bridge, &caller, &body)).await
            }
            "/v1/unpair" => {
                let (bridge, caller, headers) =
                    (state.bridge.clone(), origin.clone(), parts.headers.clone());
                blocking(move || unpair(&bridge, &caller, &headers)).await
            }
            _ => message(&state.bridge, &origin, &parts.headers, body).await,
        },
    };
    with_cors(response, &origin)
}

/// Runs `work` (file I/O) on the blocking pool.
async fn blocking(work: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|_| {
        refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed",
        )
    })
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
