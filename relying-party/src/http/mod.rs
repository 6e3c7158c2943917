//! The HTTP layer (axum) over the library: one file per route group, the shared extractors
//! ([`extract::ApiJson`], [`extract::ApiToken`], [`rate_limit::RateLimited`]), sessions, request
//! IDs, graceful shutdown. Handlers parse and answer; the relying party ([`crate::rp`],
//! [`crate::soter`], [`crate::verify`]) decides.

pub mod actions;
pub mod backend_verify;
pub mod conformance;
pub mod connections;
pub mod credentials;
pub mod error;
pub mod extract;
pub mod login;
pub mod rate_limit;
pub mod registration;
pub mod request_context;
pub mod session;
pub mod soter;
pub mod state;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::json;
use tower::layer::util::{Identity, Stack};

pub use error::ApiError;
pub use rate_limit::RateLimiter;
use request_context::RequestContextLayer;
pub use session::SESSION_COOKIE;
pub use state::{AppState, Shared};

/// The answer of `GET /healthz`.
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

/// Where the demo's local bridge listens (`null` when this server runs none).
async fn local_bridge(State(state): State<Shared>) -> Response {
    Json(json!({ "url": state.rp.config().local_bridge })).into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::wrong_method()
}

/// [`request_layers`]' stack, innermost first (as tower nests them).
type RequestLayers = Stack<
    DefaultBodyLimit,
    Stack<axum::Extension<extract::BodyTimeout>, Stack<RequestContextLayer, Identity>>,
>;

/// The layers every request passes, outermost first: its request context (ID, span, log
/// line), the JSON extractor's body deadline, and the body limit. The router and the verify
/// route ([`verify_route`]) both take them from here, so the two paths cannot drift apart.
fn request_layers(state: &Shared) -> tower::ServiceBuilder<RequestLayers> {
    let config = state.rp.config();
    tower::ServiceBuilder::new()
        .layer(RequestContextLayer)
        .layer(axum::Extension(extract::BodyTimeout(Duration::from_secs(
            config.body_timeout_secs,
        ))))
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
}

/// The router with every endpoint and layer.
pub fn router(state: Shared) -> Router {
    let static_dir = state.rp.config().static_dir.clone();
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/api/local-bridge", get(local_bridge))
        .route(
            "/api/register/options",
            post(registration::register_options),
        )
        .route("/api/register/verify", post(registration::register_verify))
        .route("/api/login/options", post(login::login_options))
        .route("/api/login/verify", post(login::login_verify))
        .route("/api/logout", post(login::logout))
        .route("/api/logout/all", post(login::logout_everywhere))
        .route("/api/session", get(login::session_info))
        .route("/api/reauth/options", post(login::reauth_options))
        .route("/api/reauth/verify", post(login::reauth_verify))
        .route("/api/credentials", get(credentials::list_credentials))
        .route(
            "/api/credentials/{id}",
            patch(credentials::rename_credential).delete(credentials::delete_credential),
        )
        .route("/api/actions/options", post(actions::action_options))
        .route("/api/actions/verify", post(actions::action_verify))
        .route("/api/receipts/key", get(actions::receipt_key))
        .route("/api/receipts/verify", post(actions::verify_receipt))
        .route("/api/receipts/{id}", get(actions::get_receipt))
        .route(
            "/api/verify/assertion",
            post(backend_verify::verify_for_backend),
        )
        .route(
            "/attestation/options",
            post(conformance::attestation_options),
        )
        .route("/attestation/result", post(conformance::attestation_result))
        .route("/assertion/options", post(conformance::assertion_options))
        .route("/assertion/result", post(conformance::assertion_result))
        .route("/api/soter/challenge", post(soter::challenge))
        .route("/api/soter/devices", post(soter::register))
        .route("/api/soter/verify", post(soter::verify))
        .method_not_allowed_fallback(method_not_allowed);
    let app = match static_dir {
        Some(dir) => api.fallback_service(
            tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true),
        ),
        None => api.fallback(not_found),
    };
    app.layer(request_layers(&state)).with_state(state)
}

/// `POST /api/verify/assertion` under the same layers as in [`router`], in the same order,
/// without the router in front: the main port sends that route's requests here directly
/// ([`connections::is_verify_route`]), and everything else to the router.
pub fn verify_route(
    state: Shared,
) -> impl tower::Service<
    axum::extract::Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    use axum::handler::Handler;
    let layers = request_layers(&state);
    layers.service(backend_verify::verify_for_backend.with_state(state))
}

/// Serves until `shutdown` resolves, then finishes in-flight requests and closes the store.
/// Connections are bounded as [`connections`] describes.
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
    let limits = state.rp.config().connection_limits();
    let verify = verify_route(state.clone());
    connections::serve_connections(listener, router(state), verify, limits, shutdown).await;
    purger.abort();
    store.close().await;
    Ok(())
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
