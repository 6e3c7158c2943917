//! The relying party's JSON API bodies (WebAuthn registration and sign-in, step-up, signed
//! actions and receipts, the stateless verify API, the FIDO conformance endpoints, SOTER),
//! through its real axum router (`passgate_relying_party::server::router`) as a tower
//! service, on SQLite in a tmpfs directory.
//!
//! Input: 1 byte picking the endpoint, then the body (sent as `application/json` with a valid
//! API token and a session cookie when one was issued). Checks: no panic; never a 5xx; every
//! refusal is a JSON body with a `code` (the precise error the API promises).
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use passgate_relying_party::{RpConfig, build_state, server};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-backend-token";

const ENDPOINTS: &[&str] = &[
    "/api/register/options",
    "/api/register/verify",
    "/api/login/options",
    "/api/login/verify",
    "/api/reauth/options",
    "/api/reauth/verify",
    "/api/actions/options",
    "/api/actions/verify",
    "/api/receipts/verify",
    "/api/verify/assertion",
    "/attestation/options",
    "/attestation/result",
    "/assertion/options",
    "/assertion/result",
    "/api/soter/challenge",
    "/api/soter/devices",
    "/api/soter/verify",
    "/api/logout",
];

struct Rig {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let dir = passgate_fuzz::scratch_dir("rp");
        let runtime = passgate_fuzz::runtime();
        let config = RpConfig {
            database: format!("sqlite://{}", dir.join("rp.sqlite3").display()),
            receipt_key: Some(dir.join("receipt.key")),
            rate_limit_per_sec: 0,
            api_tokens: vec![TOKEN.into()],
            ..RpConfig::default()
        };
        let state = runtime.block_on(build_state(config)).unwrap();
        // The real server always knows the peer's address (the rate limiter keys on it); a
        // router without it answers 500 by design, which is a rig fault, not a finding.
        let router = server::router(Arc::clone(&state)).layer(MockConnectInfo(
            std::net::SocketAddr::from(([127, 0, 0, 1], 4000)),
        ));
        Rig { runtime, router }
    })
}

// The rig is built in `init` (before libFuzzer's per-input timer starts): built by the
// first input, its set-up counted against that input's 1 s and showed as a hang on a
// loaded machine.
fuzz_target!(init: { rig(); }, |data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let rig = rig();
    let path = ENDPOINTS[usize::from(which) % ENDPOINTS.len()];
    let request = Request::post(path)
        .header(header::HOST, "localhost:8080")
        .header(header::ORIGIN, "http://localhost:8080")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_vec()))
        .unwrap();
    let (status, bytes) = rig.runtime.block_on(async {
        let response = rig.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes)
    });
    assert!(
        !status.is_server_error(),
        "{path} answered {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{path} {status} without a JSON body ({e}): {bytes:?}"));
        // The API's `{"error":{"code","message"}}`, or the conformance endpoints'
        // `{"status":"failed","errorMessage"}`.
        assert!(
            json.pointer("/error/code").is_some() || json.get("status").is_some(),
            "{path} {status}: {json}"
        );
    }
});
