//! The local HTTP bridge's requests (`/v1/pair`, `/v1/message`, `/v1/unpair`, preflights),
//! through its axum service (`LocalBridge::app`, what its hyper server runs) as a tower
//! oneshot, not a socket; messages reach a real bridge on a software authenticator with
//! presence approved at once.
//!
//! Input: method byte, path byte, flags byte (bit 0: the right Host, bit 1: the allowed
//! Origin, bit 2: a valid bearer token, bit 3: `application/json`), then the body. Checks: no
//! panic; never a 5xx; every 4xx is the documented `{"error":{"code","message"}}`; an origin
//! that is not allowed never gets CORS headers.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, header};
use libfuzzer_sys::fuzz_target;
use passgate_bridge::channel::ChannelRouter;
use passgate_bridge::local_http::{Config, LocalBridge};
use passgate_bridge::{Bridge, NoUserInterface};
use passgate_client::InProcess;
use tower::ServiceExt;

const ORIGIN: &str = "http://localhost:8080";
const METHODS: [Method; 4] = [Method::POST, Method::OPTIONS, Method::GET, Method::PUT];
const PATHS: [&str; 4] = ["/v1/message", "/v1/pair", "/v1/unpair", "/v1/other"];

struct Rig {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    token: String,
    host: String,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let dir = passgate_fuzz::scratch_dir("local-bridge");
        let authenticator = passgate_testkit::auto_presence_authenticator(&dir, 64);
        let bridge = Arc::new(Bridge::new(
            Box::new(InProcess::new(authenticator)),
            Box::new(NoUserInterface),
        ));
        let local = LocalBridge::new(
            Arc::new(ChannelRouter::webauthn(bridge)),
            Config::new(vec![ORIGIN.to_owned()]),
        )
        .unwrap();
        let token = local.issue_token(ORIGIN).unwrap().to_string();
        let address: SocketAddr = "127.0.0.1:8765".parse().unwrap();
        Rig {
            runtime: passgate_fuzz::runtime(),
            app: local.app(address),
            token,
            host: address.to_string(),
        }
    })
}

// The rig is built in `init` (before libFuzzer's per-input timer starts): built by the
// first input, its set-up counted against that input's 1 s and showed as a hang on a
// loaded machine.
fuzz_target!(init: { rig(); }, |data: &[u8]| {
    let [method, path, flags, body @ ..] = data else {
        return;
    };
    let rig = rig();
    let mut request = Request::builder()
        .method(METHODS[usize::from(*method) % METHODS.len()].clone())
        .uri(PATHS[usize::from(*path) % PATHS.len()]);
    if flags & 1 != 0 {
        request = request.header(header::HOST, rig.host.as_str());
    }
    let origin = if flags & 2 != 0 {
        ORIGIN
    } else {
        "https://evil.example"
    };
    request = request.header(header::ORIGIN, origin);
    if flags & 4 != 0 {
        request = request.header(header::AUTHORIZATION, format!("Bearer {}", rig.token));
    }
    if flags & 8 != 0 {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    if flags & 16 != 0 {
        request = request.header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST");
    }
    let request = request.body(Body::from(body.to_vec())).unwrap();
    let (status, cors, bytes) = rig.runtime.block_on(async {
        let response = rig.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let cors = response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, cors, bytes)
    });
    assert!(!status.is_server_error(), "{status}: {bytes:?}");
    if flags & 2 == 0 {
        assert!(!cors, "CORS headers for an origin that is not allowed");
    }
    if status.is_client_error() {
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status} without a JSON body ({e}): {bytes:?}"));
        assert!(json.pointer("/error/code").is_some(), "{status}: {json}");
    }
});
