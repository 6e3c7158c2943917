//! The relying party's JSON API bodies (WebAuthn registration and sign-in, step-up, signed
//! actions and receipts, the stateless verify API, the FIDO conformance endpoints, SOTER, and
//! the signed-in session's own routes: the passkey list, renaming and deleting a passkey,
//! signing out everywhere), through its real axum router
//! (`passgate_relying_party::server::router`) as a tower service, on SQLite in a tmpfs
//! directory.
//!
//! Input: 1 selector byte (route, session cookie, passkey ID: `passgate_fuzz::rp`), then the
//! body (sent as `application/json` with a valid API token). The rig's account has two
//! passkeys and two sessions, one verified recently enough for a step-up and one not; what an
//! input deletes (a passkey, a session, all sessions) is put back before the next. Checks: no
//! panic; never a 5xx; every refusal is a JSON body with a `code` (the precise error the API
//! promises).
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use passgate_fuzz::rp::{CREDENTIAL_IDS, Cookie, Selector};
use passgate_relying_party::rp::token_hash;
use passgate_relying_party::server::session::SESSION_COOKIE;
use passgate_relying_party::server::state::Shared;
use passgate_relying_party::store::{CredentialRow, SessionRow, UserRow, now_millis};
use passgate_relying_party::{RpConfig, build_state, server};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-backend-token";
/// The account's user handle, base64url as the server makes them ("fuzz-user-handle"): a
/// signed-in `register/options` decodes it.
const USER_ID: &str = "ZnV6ei11c2VyLWhhbmRsZQ";
/// The cookie tokens of the rig's two sessions.
const VERIFIED_TOKEN: &str = "fuzz-session-verified";
const STALE_TOKEN: &str = "fuzz-session-stale";
/// A step-up window no run outlasts (the verified session stays recent); the stale session's
/// verification is older than it.
const STEP_UP_SECS: u64 = 10 * 365 * 24 * 3600;

struct Rig {
    runtime: tokio::runtime::Runtime,
    router: Router,
    state: Shared,
}

fn passkey(id: &str) -> CredentialRow {
    CredentialRow {
        id: id.into(),
        user_id: USER_ID.into(),
        // An uncompressed P-256 point is not needed: these routes never verify with it.
        public_key: "pQECAyYgASFYIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIlggAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        verify_key: None,
        algorithm: -7,
        sign_count: 0,
        transports: "[\"internal\"]".into(),
        backup_eligible: false,
        backup_state: false,
        aaguid: "00000000-0000-0000-0000-000000000000".into(),
        attestation_format: "none".into(),
        name: id.into(),
        created_at: 0,
        last_used_at: None,
        counter_regressions: 0,
    }
}

/// Puts back the rig's account, its two passkeys and its two sessions, whichever are gone.
async fn restore(state: &Shared) {
    let store = state.rp.store();
    if store.user_by_id(USER_ID).await.unwrap().is_none() {
        let user = UserRow {
            id: USER_ID.into(),
            name: "fuzz".into(),
            display_name: "Fuzz".into(),
            created_at: 0,
        };
        store.register(Some(&user), &passkey(CREDENTIAL_IDS[0])).await.unwrap();
    }
    for id in &CREDENTIAL_IDS[..2] {
        if store.credential(id).await.unwrap().is_none() {
            store.register(None, &passkey(id)).await.unwrap();
        }
    }
    let now = now_millis();
    for (token, verified_at) in [(VERIFIED_TOKEN, now), (STALE_TOKEN, 0)] {
        let hash = token_hash(token);
        if store.session(&hash, now).await.unwrap().is_none() {
            store
                .create_session(&SessionRow {
                    token_hash: hash,
                    user_id: USER_ID.into(),
                    credential_id: CREDENTIAL_IDS[0].into(),
                    created_at: now,
                    expires_at: i64::MAX,
                    verified_at,
                })
                .await
                .unwrap();
        }
    }
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
            step_up_max_age_secs: STEP_UP_SECS,
            ..RpConfig::default()
        };
        let state = runtime.block_on(build_state(config)).unwrap();
        runtime.block_on(restore(&state));
        // The real server always knows the peer's address (the rate limiter keys on it); a
        // router without it answers 500 by design, which is a rig fault, not a finding.
        let router = server::router(Arc::clone(&state)).layer(MockConnectInfo(
            std::net::SocketAddr::from(([127, 0, 0, 1], 4000)),
        ));
        Rig {
            runtime,
            router,
            state,
        }
    })
}

// The rig is built in `init` (before libFuzzer's per-input timer starts): built by the
// first input, its set-up counted against that input's 1 s and showed as a hang on a
// loaded machine.
fuzz_target!(init: { passgate_fuzz::rp::check_layout(); rig(); }, |data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let rig = rig();
    let selector = Selector::decode(which);
    let (method, path) = selector.request_line();
    let mut request = Request::builder()
        .method(method)
        .uri(&path)
        .header(header::HOST, "localhost:8080")
        .header(header::ORIGIN, "http://localhost:8080")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    match selector.cookie {
        Cookie::None => {}
        Cookie::Verified => request = request.header(header::COOKIE, format!("{SESSION_COOKIE}={VERIFIED_TOKEN}")),
        Cookie::Stale => request = request.header(header::COOKIE, format!("{SESSION_COOKIE}={STALE_TOKEN}")),
    }
    let request = request.body(Body::from(body.to_vec())).unwrap();
    let (status, bytes) = rig.runtime.block_on(async {
        let response = rig.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        if status.is_success() && method != "GET" && selector.cookie != Cookie::None {
            // It may have ended a session or deleted a passkey: the next input starts from
            // the same account.
            restore(&rig.state).await;
        }
        (status, bytes)
    });
    assert!(
        !status.is_server_error(),
        "{method} {path} answered {status}: {}",
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
