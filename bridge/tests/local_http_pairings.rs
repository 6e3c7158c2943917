//! Stored pairings: a page paired before the local bridge restarts stays paired, `passgate
//! bridge unpair` (the store's revoke) reaches a running bridge before its next answer, a
//! page's own unpair is stored, and a token the bridge does not know is told to pair again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use common::{PIN, PinEntry, authenticator};
use passgate_bridge::channel::ChannelRouter;
use passgate_bridge::local_http::{Config, LocalBridge, PairingStore, Revoke, pairings_path};
use passgate_bridge::{Bridge, InProcess};
use serde_json::{Value, json};
use tower::ServiceExt;

const ORIGIN: &str = "http://localhost:8080";
const OTHER: &str = "http://localhost:3000";
const ADDR: &str = "127.0.0.1:8781";

/// A local bridge (as after a start of `passgate demo`) on the pairings of `state`.
fn bridge(state: &std::path::Path) -> LocalBridge {
    let authenticator_dir = state.join("authenticator");
    std::fs::create_dir_all(&authenticator_dir).unwrap();
    let transport = InProcess::new(authenticator(&authenticator_dir));
    let bridge = Arc::new(Bridge::new(
        Box::new(transport),
        Box::new(PinEntry::with(PIN)),
    ));
    let mut config = Config::new(vec![ORIGIN.into(), OTHER.into()]);
    config.pairings = Some(pairings_path(state));
    LocalBridge::new(Arc::new(ChannelRouter::webauthn(bridge)), config).unwrap()
}

async fn post(
    bridge: &LocalBridge,
    path: &str,
    origin: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let addr: SocketAddr = ADDR.parse().unwrap();
    let mut request = Request::post(path)
        .header("host", ADDR)
        .header("origin", origin)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = bridge
        .app(addr)
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn pair(bridge: &LocalBridge, origin: &str) -> String {
    let code = bridge.pairing_code();
    let (status, body) = post(
        bridge,
        "/v1/pair",
        origin,
        None,
        json!({"code": code.as_str()}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// The status and error code of an `isUvpaa` message with `token`.
async fn ask(bridge: &LocalBridge, origin: &str, token: &str) -> (u16, Option<String>) {
    let (status, body) = post(
        bridge,
        "/v1/message",
        origin,
        Some(token),
        json!({"type": "isUvpaa", "requestId": 1}),
    )
    .await;
    if status == 200 {
        assert_eq!(body["ok"], true, "{body}");
    }
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

const OK: (u16, Option<String>) = (200, None);

fn stale() -> (u16, Option<String>) {
    (401, Some("pairing_stale".to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairings_survive_a_restart_until_revoked() {
    let state = tempfile::tempdir().unwrap();
    let first = bridge(state.path());
    let page = pair(&first, ORIGIN).await;
    let other_page = pair(&first, OTHER).await;
    let app_token = first.issue_token(ORIGIN).unwrap();
    assert_eq!(ask(&first, ORIGIN, &page).await, OK);
    assert_eq!(ask(&first, ORIGIN, &app_token).await, OK);
    // The file holds hashes, never a token.
    let text = std::fs::read_to_string(pairings_path(state.path())).unwrap();
    for token in [&page, &other_page, &*app_token] {
        assert!(!text.contains(token.as_str()));
    }
    drop(first);

    // Restarted: pages paired by code still are, with a new code shown for the next page;
    // an app's injected token lived as long as the process.
    let second = bridge(state.path());
    assert_eq!(ask(&second, ORIGIN, &page).await, OK);
    assert_eq!(ask(&second, OTHER, &other_page).await, OK);
    assert_eq!(ask(&second, ORIGIN, &app_token).await, stale());
    // Bound to its origin after the restart too.
    assert_eq!(
        ask(&second, OTHER, &page).await,
        (401, Some("pairing_invalid".to_owned()))
    );

    // `passgate bridge unpair --origin` while the bridge runs: its next answer knows.
    let store = PairingStore::new(pairings_path(state.path()));
    let revoked = store.revoke(&Revoke::Origin(ORIGIN.into())).unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].origin, ORIGIN);
    assert_eq!(ask(&second, ORIGIN, &page).await, stale());
    assert_eq!(ask(&second, OTHER, &other_page).await, OK);

    // Pairing again works (a fresh code), and `--all` revokes that one too.
    let again = pair(&second, ORIGIN).await;
    assert_eq!(ask(&second, ORIGIN, &again).await, OK);
    assert_eq!(store.revoke(&Revoke::All).unwrap().len(), 2);
    assert_eq!(ask(&second, ORIGIN, &again).await, stale());
    assert_eq!(ask(&second, OTHER, &other_page).await, stale());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_unpairs_stays_unpaired_after_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let first = bridge(state.path());
    let leaving = pair(&first, ORIGIN).await;
    let staying = pair(&first, ORIGIN).await;
    let (status, body) = post(&first, "/v1/unpair", ORIGIN, Some(&leaving), json!({})).await;
    assert_eq!((status, body), (200, json!({"unpaired": true})));
    assert_eq!(ask(&first, ORIGIN, &leaving).await, stale());
    // One tab's unpairing leaves another pairing of the same origin alone.
    assert_eq!(ask(&first, ORIGIN, &staying).await, OK);
    drop(first);
    let second = bridge(state.path());
    assert_eq!(ask(&second, ORIGIN, &leaving).await, stale());
    assert_eq!(ask(&second, ORIGIN, &staying).await, OK);
    let stored = PairingStore::new(pairings_path(state.path()))
        .load()
        .unwrap();
    assert_eq!(stored.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_store_fails_closed() {
    use std::os::unix::fs::PermissionsExt;
    let state = tempfile::tempdir().unwrap();
    let running = bridge(state.path());
    let page = pair(&running, ORIGIN).await;
    let path = pairings_path(state.path());
    // Someone made the file writable by others: its pairings are no longer trusted.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(ask(&running, ORIGIN, &page).await, stale());
    // And a new bridge refuses to start on it, naming the file.
    let error = LocalBridge::new(Arc::new(ChannelRouter::new()), {
        let mut config = Config::new(vec![ORIGIN.into()]);
        config.pairings = Some(path.clone());
        config
    })
    .unwrap_err();
    assert!(error.to_string().contains("pairings.json"), "{error}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(ask(&running, ORIGIN, &page).await, OK);
}
