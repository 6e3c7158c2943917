//! The bridge between a real passgate authenticator (in process, software keys in a temporary
//! directory, PIN verification) and the real relying party (its router and an SQLite file):
//! registration, username sign-in and discoverable sign-in end to end, with the bytes checked
//! on the way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::{Counting, PIN, PageCalls, PinEntry, authenticator};
use passgate_bridge::{Bridge, ErrorName, InProcess, b64};
use passgate_relying_party::server::router;
use passgate_relying_party::{RpConfig, build_state};
use serde_json::{Value, json};
use tower::ServiceExt;

const ORIGIN: &str = "http://localhost:8080";

struct Rp {
    app: Router,
    _dir: tempfile::TempDir,
}

impl Rp {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = RpConfig {
            database: format!("sqlite://{}", dir.path().join("rp.sqlite3").display()),
            rate_limit_per_sec: 0,
            ..RpConfig::default()
        };
        let state = build_state(config).await.unwrap();
        let app = router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
        Self { app, _dir: dir }
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, body)
    }
}

fn cbor(bytes: &[u8]) -> ciborium::Value {
    ciborium::from_reader(bytes).unwrap()
}

fn cbor_text<'a>(map: &'a ciborium::Value, key: &str) -> &'a ciborium::Value {
    map.as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key}"))
}

/// A bridge on a fresh authenticator whose PIN is set (through the bridge's setPIN) and a
/// host UI that enters it.
fn bridge_with_pin(dir: &std::path::Path) -> (Arc<Bridge>, PinEntry, Counting) {
    let transport = Counting::new(InProcess::new(authenticator(dir)));
    let ui = PinEntry::with(PIN);
    let bridge = Arc::new(Bridge::new(
        Box::new(transport.clone()),
        Box::new(ui.clone()),
    ));
    bridge.set_pin(PIN).unwrap();
    (bridge, ui, transport)
}

#[tokio::test]
async fn register_sign_in_and_discoverable_sign_in_against_the_relying_party() {
    let rp = Rp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (bridge, ui, _) = bridge_with_pin(dir.path());
    assert!(bridge.is_uvpaa().unwrap());

    // Registration.
    let (status, options) = rp
        .post(
            "/api/register/options",
            &json!({"username": "alice", "displayName": "Alice A."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let credential = bridge.create(ORIGIN, None, &options).unwrap();
    assert_eq!(ui.asked(), 1, "the PIN verified the user");
    assert_eq!(credential["type"], "public-key");
    assert_eq!(credential["authenticatorAttachment"], "platform");
    assert_eq!(credential["id"], credential["rawId"]);
    assert_eq!(
        b64::decode(credential["id"].as_str().unwrap())
            .unwrap()
            .len(),
        16
    );
    assert_eq!(
        credential["clientExtensionResults"],
        json!({"credProps": {"rk": true}})
    );
    let response = &credential["response"];
    assert_eq!(response["transports"], json!(["internal"]));
    assert_eq!(response["publicKeyAlgorithm"], -7);

    // clientDataJSON: exactly the browser's bytes for this challenge and origin.
    let client_data = b64::decode(response["clientDataJSON"].as_str().unwrap()).unwrap();
    assert_eq!(
        String::from_utf8(client_data).unwrap(),
        format!(
            r#"{{"type":"webauthn.create","challenge":"{}","origin":"http://localhost:8080","crossOrigin":false}}"#,
            options["challenge"].as_str().unwrap()
        )
    );
    // attestationObject: fmt none, empty statement, and the same authenticatorData.
    let attestation = b64::decode(response["attestationObject"].as_str().unwrap()).unwrap();
    let auth_data = b64::decode(response["authenticatorData"].as_str().unwrap()).unwrap();
    let att = cbor(&attestation);
    assert_eq!(cbor_text(&att, "fmt").as_text(), Some("none"));
    assert_eq!(cbor_text(&att, "attStmt").as_map().map(Vec::len), Some(0));
    assert_eq!(cbor_text(&att, "authData").as_bytes(), Some(&auth_data));
    assert_eq!(&auth_data[..32], digest(&SHA256, b"localhost").as_ref());
    assert_eq!(
        auth_data[32],
        0x01 | 0x04 | 0x40,
        "UP, UV (by the PIN) and AT"
    );
    assert_eq!(
        &auth_data[37..53],
        &passgate_authenticator::ctap::PASSGATE_AAGUID
    );
    // publicKey: SPKI DER of the P-256 key in the attested credential data.
    let spki = b64::decode(response["publicKey"].as_str().unwrap()).unwrap();
    assert_eq!(spki.len(), 91);
    assert_eq!(
        &spki[..27],
        &[
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04
        ]
    );
    let cose = cbor(&auth_data[55 + 16..]);
    let cose_x = cose
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_integer() == Some((-2).into()))
        .unwrap()
        .1
        .as_bytes()
        .unwrap()
        .clone();
    assert_eq!(&spki[27..59], &cose_x[..]);

    let (status, done) = rp.post("/api/register/verify", &credential).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["user"]["name"], "alice");
    assert_eq!(done["credential"]["id"], credential["id"]);

    // Username sign-in: allowCredentials names the new credential.
    let (status, login) = rp
        .post("/api/login/options", &json!({"username": "alice"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["userVerification"], "required");
    let assertion = bridge.get(ORIGIN, None, &login).unwrap();
    assert_eq!(ui.asked(), 2);
    assert_eq!(assertion["id"], credential["id"]);
    assert_eq!(assertion["clientExtensionResults"], json!({}));
    let client_data =
        b64::decode(assertion["response"]["clientDataJSON"].as_str().unwrap()).unwrap();
    assert_eq!(
        String::from_utf8(client_data).unwrap(),
        format!(
            r#"{{"type":"webauthn.get","challenge":"{}","origin":"http://localhost:8080","crossOrigin":false}}"#,
            login["challenge"].as_str().unwrap()
        )
    );
    let auth_data =
        b64::decode(assertion["response"]["authenticatorData"].as_str().unwrap()).unwrap();
    assert_eq!(auth_data.len(), 37);
    assert_eq!(auth_data[32], 0x01 | 0x04);
    let (status, signed_in) = rp.post("/api/login/verify", &assertion).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(signed_in["verified"], true);
    assert_eq!(signed_in["verdict"]["userVerified"], true);
    assert_eq!(signed_in["user"]["name"], "alice");

    // Discoverable sign-in: no allowCredentials, the user handle names the account.
    let (status, login) = rp.post("/api/login/options", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["allowCredentials"], json!([]));
    let assertion = bridge.get(ORIGIN, None, &login).unwrap();
    assert_eq!(assertion["id"], credential["id"]);
    assert_eq!(
        b64::decode(assertion["response"]["userHandle"].as_str().unwrap()).unwrap(),
        b64::decode(options["user"]["id"].as_str().unwrap()).unwrap()
    );
    let (status, signed_in) = rp.post("/api/login/verify", &assertion).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(signed_in["verdict"]["userVerified"], true);
    assert_eq!(signed_in["user"]["name"], "alice");

    // The same assertion is not accepted twice (the challenge is spent).
    let (status, _) = rp.post("/api/login/verify", &assertion).await;
    assert_ne!(status, StatusCode::OK);
}

#[tokio::test]
async fn another_origin_cannot_use_the_rp_id_and_the_authenticator_is_never_called() {
    let rp = Rp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let transport = Counting::new(InProcess::new(authenticator(dir.path())));
    let bridge = Bridge::new(Box::new(transport.clone()), Box::new(PinEntry::with(PIN)));
    let (_, options) = rp
        .post(
            "/api/register/options",
            &json!({"username": "bob", "displayName": "Bob"}),
        )
        .await;
    assert_eq!(options["rp"]["id"], "localhost");
    // The origin is the host's: a page naming the RP's own origin in the request changes
    // nothing.
    let request = json!({"type": "create", "origin": "http://localhost:8080", "options": options});
    let reply: Value =
        serde_json::from_str(&bridge.handle("https://evil.example", &request.to_string())).unwrap();
    assert_eq!(reply["error"]["name"], "SecurityError", "{reply}");
    let (_, login) = rp.post("/api/login/options", &json!({})).await;
    for origin in [
        "https://evil.example",
        "http://evil.example:8080",
        "https://127.0.0.1",
    ] {
        let e = bridge.get(origin, None, &login).unwrap_err();
        assert_eq!(e.name, ErrorName::SecurityError, "{origin}: {e}");
    }
    // A page cannot name a parent of a public suffix or a sibling either.
    let mut sibling = options.clone();
    sibling["rp"]["id"] = json!("example.localhost");
    let e = bridge
        .create("http://app.localhost:8080", None, &sibling)
        .unwrap_err();
    assert_eq!(e.name, ErrorName::SecurityError);
    assert_eq!(
        transport.commands(),
        Vec::<u8>::new(),
        "nothing reached the authenticator"
    );
}
