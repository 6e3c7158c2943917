//! Usernames over the HTTP API: `login/options` answers an unknown name as it answers a known
//! one (decoy descriptors from an HMAC under the server's secret, stable per name and across
//! instances sharing the receipt key, same shape, similar time); `register/options` does not
//! say a name is taken (only a completed ceremony is refused, 409 `username_taken`); names are
//! NFKC-normalised and confusable or invisible ones get a 400 naming the problem.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::{SoftCredential, Tamper};
use passgate_relying_party::server::router;
use passgate_relying_party::{RpConfig, build_state};
use serde_json::{Value, json};
use tower::ServiceExt;

const ORIGIN: &str = "http://localhost:8080";

async fn app(dir: &std::path::Path, database: &str) -> Router {
    let config = RpConfig {
        database: format!("sqlite://{}", dir.join(database).display()),
        receipt_key: Some(dir.join("receipt-key.p8")),
        rate_limit_per_sec: 0,
        ..RpConfig::default()
    };
    let state = build_state(config).await.unwrap();
    router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))))
}

async fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn sign_up(app: &Router, username: &str) -> (SoftCredential, Value) {
    let (status, options) = post(
        app,
        "/api/register/options",
        &json!({"username": username, "displayName": username}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let (credential, response) = SoftCredential::register(&options, ORIGIN, &Tamper::default());
    let (status, done) = post(app, "/api/register/verify", &response).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    (credential, done)
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn an_unknown_username_gets_decoy_credentials_shaped_like_a_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "rp.sqlite3").await;
    let (mut alice, _) = sign_up(&app, "alice").await;

    let (known_status, known) =
        post(&app, "/api/login/options", &json!({"username": "alice"})).await;
    let (unknown_status, unknown) =
        post(&app, "/api/login/options", &json!({"username": "mallory"})).await;
    assert_eq!(
        (known_status, unknown_status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(keys(&known), keys(&unknown));
    assert_eq!(known["userVerification"], unknown["userVerification"]);
    assert_eq!(known["rpId"], unknown["rpId"]);
    let decoys = unknown["allowCredentials"].as_array().unwrap();
    assert!((1..=3).contains(&decoys.len()), "{unknown}");
    for descriptor in decoys {
        assert_eq!(keys(descriptor), vec!["id", "transports", "type"]);
        assert_eq!(descriptor["type"], "public-key");
    }
    // Stable per name, different across names.
    let (_, again) = post(&app, "/api/login/options", &json!({"username": "mallory"})).await;
    assert_eq!(again["allowCredentials"], unknown["allowCredentials"]);
    assert_ne!(again["challenge"], unknown["challenge"]);
    let (_, other) = post(&app, "/api/login/options", &json!({"username": "trent"})).await;
    assert_ne!(other["allowCredentials"], unknown["allowCredentials"]);

    // A second instance of the deployment (its own database, the same receipt key) answers
    // the name alike: comparing instances reveals nothing either.
    let second = self::app(dir.path(), "second.sqlite3").await;
    let (_, elsewhere) = post(
        &second,
        "/api/login/options",
        &json!({"username": "mallory"}),
    )
    .await;
    assert_eq!(elsewhere["allowCredentials"], unknown["allowCredentials"]);

    // Answering the decoy ceremony with a real passkey fails as answering alice's own
    // ceremony with someone else's passkey does.
    let (_, bob_done) = sign_up(&app, "bob").await;
    assert_eq!(bob_done["user"]["name"], "bob");
    let answered = alice.assert(&unknown, ORIGIN, &Tamper::default());
    let (status, refused) = post(&app, "/api/login/verify", &answered).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"]["code"], "credential_not_allowed");
    // Alice still signs in.
    let (_, login) = post(&app, "/api/login/options", &json!({"username": "alice"})).await;
    let (status, done) = post(
        &app,
        "/api/login/verify",
        &alice.assert(&login, ORIGIN, &Tamper::default()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
}

#[tokio::test]
async fn an_unknown_username_takes_about_as_long_as_a_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "rp.sqlite3").await;
    sign_up(&app, "alice").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    // Interleaved rounds, so load on the machine hits both alike.
    for round in 0..60 {
        for (name, times) in [("alice", &mut known), ("nobody", &mut unknown)] {
            let started = Instant::now();
            let (status, _) = post(
                &app,
                "/api/login/options",
                &json!({ "username": name, "n": round }),
            )
            .await;
            times.push(started.elapsed());
            assert_eq!(status, StatusCode::OK);
        }
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[known.len() / 2], unknown[unknown.len() / 2]);
    let ratio = u.as_secs_f64() / k.as_secs_f64().max(1e-9);
    assert!(
        (0.6..1.67).contains(&ratio),
        "median unknown {u:?} vs known {k:?} (ratio {ratio:.2}): the answer's timing tells them apart"
    );
    assert!(k < Duration::from_secs(1));
}

#[tokio::test]
async fn a_taken_username_is_refused_only_after_a_completed_ceremony() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "rp.sqlite3").await;
    let (_, first) = sign_up(&app, "alice").await;

    let (status, taken) = post(
        &app,
        "/api/register/options",
        &json!({"username": "alice", "displayName": "Impostor"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    let (_, free) = post(
        &app,
        "/api/register/options",
        &json!({"username": "carol", "displayName": "Impostor"}),
    )
    .await;
    assert_eq!(keys(&taken), keys(&free));
    assert_eq!(keys(&taken["user"]), keys(&free["user"]));
    assert_ne!(taken["user"]["id"], first["user"]["id"]);

    let (_, response) = SoftCredential::register(&taken, ORIGIN, &Tamper::default());
    let (status, refused) = post(&app, "/api/register/verify", &response).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "username_taken");
    // Nothing of the refused ceremony was kept: alice has one passkey, the original.
    let (_, login) = post(&app, "/api/login/options", &json!({"username": "alice"})).await;
    assert_eq!(
        login["allowCredentials"].as_array().unwrap().len(),
        1,
        "{login}"
    );
    assert_eq!(
        login["allowCredentials"][0]["id"],
        first["credential"]["id"]
    );
}

#[tokio::test]
async fn usernames_are_nfkc_normalised_and_confusable_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "rp.sqlite3").await;
    // Full-width letters are the same name as ASCII ones.
    let (mut credential, done) = sign_up(&app, "ａｌｉｃｅ").await;
    assert_eq!(done["user"]["name"], "alice");
    let (_, login) = post(&app, "/api/login/options", &json!({"username": "alice"})).await;
    assert_eq!(login["allowCredentials"][0]["id"], done["credential"]["id"]);
    let (status, signed_in) = post(
        &app,
        "/api/login/verify",
        &credential.assert(&login, ORIGIN, &Tamper::default()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    // A decomposed accent is the precomposed one.
    let (_, jose) = sign_up(&app, "jose\u{301}").await;
    assert_eq!(jose["user"]["name"], "jos\u{e9}");

    for (name, code) in [
        ("p\u{430}ypal", "mixed_script_username"),
        (
            "\u{440}\u{430}\u{443}\u{440}\u{430}\u{4cf}",
            "confusable_username",
        ),
        ("ali\u{200b}ce", "disallowed_character_in_username"),
        ("bob\u{202e}", "disallowed_character_in_username"),
        ("", "invalid_username"),
    ] {
        for path in ["/api/register/options", "/api/login/options"] {
            if name.is_empty() && path == "/api/login/options" {
                continue; // No name is a discoverable sign-in.
            }
            let (status, refused) = post(&app, path, &json!({ "username": name })).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{name:?} {path}: {refused}"
            );
            assert_eq!(refused["error"]["code"], code, "{name:?} {path}");
            assert!(
                refused["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("username"),
                "{refused}"
            );
        }
    }
}
