//! The FIDO conformance server API (`/attestation/options`, `/attestation/result`,
//! `/assertion/options`, `/assertion/result`) with the request bodies of the FIDO conformance
//! tools' server tests: the options honour and echo the caller's authenticatorSelection,
//! attestation and extensions, and registration ignores unsigned client extension outputs it
//! does not understand.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::{BE, BS, SoftCredential, Tamper, UP, UV};
use passgate_relying_party::server::router;
use passgate_relying_party::{RpConfig, build_state};
use serde_json::{Value, json};
use tower::ServiceExt;

const ORIGIN: &str = "http://localhost:8080";

struct Server {
    app: Router,
    _dir: tempfile::TempDir,
}

impl Server {
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
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }
}

/// The conformance API's `ServerPublicKeyCredentialCreationOptionsRequest` example, as the
/// tools send it (`residentKey` as the older boolean).
fn creation_request(username: &str, user_verification: &str) -> Value {
    json!({
        "username": username,
        "displayName": "John Doe",
        "authenticatorSelection": {
            "residentKey": false,
            "authenticatorAttachment": "cross-platform",
            "userVerification": user_verification
        },
        "attestation": "direct"
    })
}

#[tokio::test]
async fn creation_options_echo_the_requested_selection_attestation_and_extensions() {
    let s = Server::start().await;
    let (status, options) = s
        .post(
            "/attestation/options",
            &creation_request("johndoe@example.com", "preferred"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    assert_eq!(
        (&options["status"], &options["errorMessage"]),
        (&json!("ok"), &json!(""))
    );
    assert_eq!(
        options["authenticatorSelection"],
        json!({
            "residentKey": "discouraged",
            "requireResidentKey": false,
            "userVerification": "preferred",
            "authenticatorAttachment": "cross-platform"
        })
    );
    assert_eq!(options["attestation"], "direct");
    assert_eq!(options["extensions"], json!({"credProps": true}));
    assert_eq!(options["user"]["displayName"], "John Doe");

    // Level 1's requireResidentKey, Level 2's residentKey, requested extensions, enterprise.
    let (_, options) = s
        .post(
            "/attestation/options",
            &json!({
                "username": "rk@example.com",
                "displayName": "RK",
                "authenticatorSelection": {"requireResidentKey": true, "userVerification": "discouraged"},
                "attestation": "enterprise",
                "extensions": {"example.extension": true, "credProps": true}
            }),
        )
        .await;
    assert_eq!(options["status"], "ok", "{options}");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        options["authenticatorSelection"]["requireResidentKey"],
        true
    );
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "discouraged"
    );
    assert!(
        options["authenticatorSelection"]
            .get("authenticatorAttachment")
            .is_none()
    );
    assert_eq!(options["attestation"], "enterprise");
    assert_eq!(
        options["extensions"],
        json!({"example.extension": true, "credProps": true})
    );
    let (_, options) = s
        .post(
            "/attestation/options",
            &json!({"username": "l2@example.com", "authenticatorSelection": {"residentKey": "preferred"}}),
        )
        .await;
    assert_eq!(
        options["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    assert_eq!(
        options["authenticatorSelection"]["requireResidentKey"],
        false
    );
    // Nothing asked: the server's policy (UV required by default).
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );

    // Values outside the enumerations are named.
    for (selection, member) in [
        (json!({"userVerification": "sometimes"}), "userVerification"),
        (json!({"residentKey": "maybe"}), "residentKey"),
        (
            json!({"authenticatorAttachment": "usb"}),
            "authenticatorAttachment",
        ),
        (json!({"residentKey": 3}), "residentKey"),
    ] {
        let (status, answer) = s
            .post(
                "/attestation/options",
                &json!({"username": "bad@example.com", "authenticatorSelection": selection}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["status"], "failed");
        let message = answer["errorMessage"].as_str().unwrap();
        assert!(message.starts_with("invalid_option:"), "{message}");
        assert!(message.contains(member), "{message}");
    }
}

/// `userVerification: discouraged` lets an authenticator without UV register; `required` does
/// not, so the request really decides the ceremony's policy.
#[tokio::test]
async fn registration_follows_the_requested_user_verification() {
    let s = Server::start().await;
    let no_uv = Tamper {
        flags: UP | BE | BS,
        ..Tamper::default()
    };
    let (_, options) = s
        .post(
            "/attestation/options",
            &creation_request("a@example.com", "discouraged"),
        )
        .await;
    let (_, response) = SoftCredential::register(&options, ORIGIN, &no_uv);
    let (status, result) = s.post("/attestation/result", &response).await;
    assert_eq!(
        (status, &result["status"]),
        (StatusCode::OK, &json!("ok")),
        "{result}"
    );

    let (_, options) = s
        .post(
            "/attestation/options",
            &creation_request("b@example.com", "required"),
        )
        .await;
    let (_, response) = SoftCredential::register(&options, ORIGIN, &no_uv);
    let (status, result) = s.post("/attestation/result", &response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{result}");
    assert!(
        result["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("user_verification_missing:"),
        "{result}"
    );
}

/// `clientExtensionResults` is unsigned client output: an entry of an unexpected type or a
/// `null` member is ignored, and the credential signs in afterwards.
#[tokio::test]
async fn unexpected_client_extension_results_do_not_fail_registration() {
    let s = Server::start().await;
    for (user, results) in [
        ("credprotect@example.com", json!({"credProtect": 2})),
        ("null@example.com", Value::Null),
        (
            "mixed@example.com",
            json!({"credProps": {"rk": true}, "credProtect": "x", "uvm": [[1]]}),
        ),
        ("notanobject@example.com", json!([1, 2])),
    ] {
        let (_, options) = s
            .post("/attestation/options", &creation_request(user, "preferred"))
            .await;
        let (mut credential, mut response) =
            SoftCredential::register(&options, ORIGIN, &Tamper::default());
        response["clientExtensionResults"] = results.clone();
        let (status, result) = s.post("/attestation/result", &response).await;
        assert_eq!(status, StatusCode::OK, "{results}: {result}");
        assert_eq!(result, json!({"status": "ok", "errorMessage": ""}));

        let (_, options) = s
            .post(
                "/assertion/options",
                &json!({"username": user, "userVerification": "preferred"}),
            )
            .await;
        let assertion = credential.assert(
            &options,
            ORIGIN,
            &Tamper {
                flags: UP | UV | BE | BS,
                ..Tamper::default()
            },
        );
        let (status, result) = s.post("/assertion/result", &assertion).await;
        assert_eq!(status, StatusCode::OK, "{results}: {result}");
    }
}
