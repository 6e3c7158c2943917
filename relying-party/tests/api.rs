//! The HTTP API end to end in process: the real router, store (SQLite file) and receipt key,
//! driven by a software authenticator that builds browser-shaped JSON. Every bad-input case
//! asserts the status, the error code, and that nothing stored changed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::{SoftCredential, Tamper, UP, UV, b64, unb64};
use passgate_relying_party::server::{AppState, router};
use passgate_relying_party::{RpConfig, build_state};
use serde_json::{Value, json};
use tower::ServiceExt;

const ORIGIN: &str = "http://localhost:8080";

struct Server {
    app: Router,
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    body: Value,
    cookie: Option<String>,
    request_id: Option<String>,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }
}

impl Server {
    async fn start(adjust: impl FnOnce(&mut RpConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = RpConfig {
            database: format!("sqlite://{}", dir.path().join("rp.sqlite3").display()),
            rate_limit_per_sec: 0,
            api_tokens: vec!["backend-token".into()],
            ..RpConfig::default()
        };
        adjust(&mut config);
        let state = build_state(config).await.unwrap();
        let app =
            router(state.clone()).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
        Self {
            app,
            state,
            _dir: dir,
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        cookie: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, format!("passgate_session={c}"));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let cookie = resp
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let request_id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{path}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            body,
            cookie,
            request_id,
        }
    }

    async fn post(&self, path: &str, body: &Value, cookie: Option<&str>) -> Reply {
        self.raw(
            Method::POST,
            path,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
            cookie,
            &[],
        )
        .await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.raw(Method::GET, path, None, Vec::new(), cookie, &[])
            .await
    }

    async fn fingerprint(&self) -> String {
        self.state.rp.store().fingerprint().await.unwrap()
    }

    /// Registers a new account with a fresh credential; returns it and the session token.
    async fn sign_up(&self, username: &str) -> (SoftCredential, String) {
        let options = self
            .post(
                "/api/register/options",
                &json!({"username": username, "displayName": username}),
                None,
            )
            .await;
        assert_eq!(options.status, StatusCode::OK, "{}", options.body);
        let (cred, response) = SoftCredential::register(&options.body, ORIGIN, &Tamper::default());
        let done = self.post("/api/register/verify", &response, None).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        (cred, session_from(&done))
    }

    async fn login_options(&self, username: Option<&str>) -> Value {
        let body = match username {
            Some(u) => json!({ "username": u }),
            None => json!({}),
        };
        let r = self.post("/api/login/options", &body, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }
}

fn session_from(reply: &Reply) -> String {
    let cookie = reply.cookie.as_deref().expect("a Set-Cookie header");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "cookie {cookie:?} lacks {attr}");
    }
    cookie
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("passgate_session="))
        .expect("the passgate_session cookie")
        .to_owned()
}

#[tokio::test]
async fn registration_sign_in_discoverable_reauth_and_passkey_management() {
    let s = Server::start(|_| {}).await;
    assert_eq!(s.get("/healthz", None).await.status, StatusCode::OK);
    let ready = s.get("/readyz", None).await;
    assert_eq!(ready.body["database"], "sqlite");

    // Registration options follow WebAuthn L3's JSON form.
    let options = s
        .post(
            "/api/register/options",
            &json!({"username": "alice", "displayName": "Alice A."}),
            None,
        )
        .await;
    assert_eq!(options.status, StatusCode::OK);
    let o = &options.body;
    assert_eq!(o["rp"]["id"], "localhost");
    assert_eq!(o["user"]["name"], "alice");
    assert_eq!(o["user"]["displayName"], "Alice A.");
    assert_eq!(o["authenticatorSelection"]["residentKey"], "preferred");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(unb64(o["challenge"].as_str().unwrap()).len(), 32);
    assert_eq!(o["pubKeyCredParams"][0]["alg"], -7);
    assert_eq!(o["extensions"]["credProps"], true);

    let (mut cred, response) = SoftCredential::register(o, ORIGIN, &Tamper::default());
    let done = s.post("/api/register/verify", &response, None).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["user"]["name"], "alice");
    assert_eq!(done.body["credential"]["id"], b64(&cred.id));
    assert_eq!(done.body["credential"]["backupEligible"], true);
    assert_eq!(done.body["credential"]["deviceType"], "multiDevice");
    assert_eq!(
        done.body["credential"]["transports"],
        json!(["internal", "hybrid"])
    );
    let session = session_from(&done);
    let who = s.get("/api/session", Some(&session)).await;
    assert_eq!(who.body["user"]["name"], "alice");

    // Username sign-in: allowCredentials names the credential.
    let login = s.login_options(Some("alice")).await;
    assert_eq!(login["rpId"], "localhost");
    assert_eq!(login["userVerification"], "required");
    assert_eq!(login["allowCredentials"][0]["id"], b64(&cred.id));
    let assertion = cred.assert(&login, ORIGIN, &Tamper::default());
    let signed_in = s.post("/api/login/verify", &assertion, None).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["verdict"]["userVerified"], true);
    assert_eq!(signed_in.body["verdict"]["signCount"], 1);
    assert_eq!(signed_in.body["verdict"]["counter"]["status"], "increased");
    assert_eq!(signed_in.body["credential"]["signCount"], 1);
    assert!(signed_in.body["credential"]["lastUsedAt"].as_i64().unwrap() > 0);
    let session2 = session_from(&signed_in);
    assert_ne!(session, session2);

    // Discoverable sign-in (autofill): no allowCredentials; the user handle finds the account.
    let login = s.login_options(None).await;
    assert_eq!(login["allowCredentials"], json!([]));
    let assertion = cred.assert(&login, ORIGIN, &Tamper::default());
    let signed_in = s.post("/api/login/verify", &assertion, None).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["user"]["name"], "alice");
    let session3 = session_from(&signed_in);

    // Credential list: last used, transports, authenticator name, current.
    let list = s.get("/api/credentials", Some(&session3)).await;
    let creds = list.body["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0]["signCount"], 2);
    assert!(creds[0]["lastUsedAt"].as_i64().unwrap() > 0);
    assert_eq!(creds[0]["current"], true);

    // A second passkey for the signed-in user; the first is excluded.
    let options = s
        .post("/api/register/options", &json!({}), Some(&session3))
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    assert_eq!(
        options.body["excludeCredentials"][0]["id"],
        b64(&cred.id),
        "{}",
        options.body
    );
    assert_eq!(options.body["user"]["name"], "alice");
    let (mut cred2, response) = SoftCredential::register(&options.body, ORIGIN, &Tamper::default());
    let added = s
        .post("/api/register/verify", &response, Some(&session3))
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert!(added.cookie.is_none(), "adding a passkey keeps the session");
    let id2 = b64(&cred2.id);

    // Rename.
    let renamed = s
        .raw(
            Method::PATCH,
            &format!("/api/credentials/{id2}"),
            Some("application/json"),
            br#"{"name":"  Laptop  "}"#.to_vec(),
            Some(&session3),
            &[],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let list = s.get("/api/credentials", Some(&session3)).await;
    assert!(
        list.body["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id2.as_str() && c["name"] == "Laptop")
    );

    // Re-authentication with the second passkey, then delete the first.
    let reauth = s
        .post("/api/reauth/options", &json!({}), Some(&session3))
        .await;
    assert_eq!(reauth.status, StatusCode::OK, "{}", reauth.body);
    let allowed: Vec<&str> = reauth.body["allowCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(allowed.len(), 2);
    let assertion = cred2.assert(&reauth.body, ORIGIN, &Tamper::default());
    let ok = s
        .post("/api/reauth/verify", &assertion, Some(&session3))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let deleted = s
        .raw(
            Method::DELETE,
            &format!("/api/credentials/{}", b64(&cred.id)),
            None,
            Vec::new(),
            Some(&session3),
            &[],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    // The deleted credential no longer signs in.
    let login = s.login_options(None).await;
    let assertion = cred.assert(&login, ORIGIN, &Tamper::default());
    let refused = s.post("/api/login/verify", &assertion, None).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.code(), "unknown_credential");
    // The last passkey cannot be deleted.
    let last = s
        .raw(
            Method::DELETE,
            &format!("/api/credentials/{id2}"),
            None,
            Vec::new(),
            Some(&session3),
            &[],
        )
        .await;
    assert_eq!(last.status, StatusCode::CONFLICT);
    assert_eq!(last.code(), "last_credential");

    // A cross-site form (text/plain) cannot sign the user out: 415, and the session lives on.
    let form = s
        .raw(
            Method::POST,
            "/api/logout",
            Some("text/plain"),
            b"{}".to_vec(),
            Some(&session3),
            &[],
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(form.code(), "unsupported_media_type");
    assert!(form.cookie.is_none());
    let still = s.get("/api/credentials", Some(&session3)).await;
    assert_eq!(still.status, StatusCode::OK);

    // Logout ends the session.
    let out = s.post("/api/logout", &json!({}), Some(&session3)).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.cookie.unwrap().contains("Max-Age=0"));
    let gone = s.get("/api/credentials", Some(&session3)).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gone.code(), "not_signed_in");
}

#[tokio::test]
async fn deleting_a_passkey_needs_a_recent_verification() {
    let s = Server::start(|c| c.step_up_max_age_secs = 1).await;
    let (_cred, session) = s.sign_up("bob").await;
    let options = s
        .post("/api/register/options", &json!({}), Some(&session))
        .await;
    let (cred2, response) = SoftCredential::register(&options.body, ORIGIN, &Tamper::default());
    assert_eq!(
        s.post("/api/register/verify", &response, Some(&session))
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = s.fingerprint().await;
    let refused = s
        .raw(
            Method::DELETE,
            &format!("/api/credentials/{}", b64(&cred2.id)),
            None,
            Vec::new(),
            Some(&session),
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "step_up_required");
    assert_eq!(s.fingerprint().await, before);
}

#[tokio::test]
async fn signed_action_issues_a_receipt_anyone_can_verify() {
    let s = Server::start(|_| {}).await;
    let (mut cred, session) = s.sign_up("carol").await;
    let payload = r#"{"pay":"ACME Ltd","amount":"129.00","currency":"EUR"}"#;
    let options = s
        .post(
            "/api/actions/options",
            &json!({ "payload": payload }),
            Some(&session),
        )
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    assert_eq!(options.body["payload"], payload);
    let challenge = unb64(options.body["publicKey"]["challenge"].as_str().unwrap());
    // The challenge commits to the payload: 16-byte nonce || SHA-256(payload).
    assert_eq!(challenge.len(), 48);
    assert_eq!(
        &challenge[16..],
        digest(&SHA256, payload.as_bytes()).as_ref()
    );
    let assertion = cred.assert(&options.body["publicKey"], ORIGIN, &Tamper::default());
    let approved = s
        .post("/api/actions/verify", &assertion, Some(&session))
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    let receipt = &approved.body["receipt"];
    let receipt_json = receipt["receiptJson"].as_str().unwrap();
    let signature = unb64(receipt["signature"].as_str().unwrap());
    let parsed: Value = serde_json::from_str(receipt_json).unwrap();
    assert_eq!(parsed["payload"], payload);
    assert_eq!(parsed["userName"], "carol");
    assert_eq!(parsed["userVerified"], true);
    assert_eq!(parsed["credentialId"], b64(&cred.id));
    assert_eq!(parsed["type"], "passgate.action-receipt.v1");

    // Anyone with the public key verifies it (here: aws-lc-rs directly, from the JWK).
    let key = s.get("/api/receipts/key", None).await;
    assert_eq!(key.body["alg"], "ES256");
    let x = unb64(key.body["jwk"]["x"].as_str().unwrap());
    let y = unb64(key.body["jwk"]["y"].as_str().unwrap());
    let point = [&[4u8][..], &x, &y].concat();
    let verifier = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point);
    verifier
        .verify(receipt_json.as_bytes(), &signature)
        .expect("the receipt signature verifies with the published key");
    let mut forged = receipt_json.replace("129.00", "929.00");
    assert!(verifier.verify(forged.as_bytes(), &signature).is_err());

    // The server's verify endpoint agrees, and stored receipts come back byte for byte.
    let valid = s
        .post(
            "/api/receipts/verify",
            &json!({"receiptJson": receipt_json, "signature": b64(&signature)}),
            None,
        )
        .await;
    assert_eq!(valid.body["valid"], true);
    forged.push(' ');
    let invalid = s
        .post(
            "/api/receipts/verify",
            &json!({"receiptJson": forged, "signature": b64(&signature)}),
            None,
        )
        .await;
    assert_eq!(invalid.body["valid"], false);
    let id = parsed["id"].as_str().unwrap();
    let stored = s.get(&format!("/api/receipts/{id}"), None).await;
    assert_eq!(stored.body["receiptJson"], receipt_json);

    // The embedded assertion re-verifies against the credential key in the receipt.
    let cd = unb64(parsed["assertion"]["clientDataJSON"].as_str().unwrap());
    let cd: Value = serde_json::from_slice(&cd).unwrap();
    assert_eq!(cd["challenge"], parsed["challenge"]);
}

#[tokio::test]
async fn backend_verification_endpoint_returns_a_typed_verdict() {
    let s = Server::start(|_| {}).await;
    let (cred, _session) = s.sign_up("dave").await;
    let mut cred = cred;
    let challenge = [7u8; 32];
    let (cred_id, cose, handle) = (b64(&cred.id), cred.cose_b64(), b64(&cred.user_handle));
    let request = |response: Value, sign_count: u32| {
        json!({
            "credential": {
                "id": cred_id,
                "publicKey": cose,
                "signCount": sign_count,
                "userHandle": handle,
            },
            "response": response,
            "expectedChallenge": b64(&challenge),
            "expectedOrigins": [ORIGIN],
            "expectedRpId": "localhost",
        })
    };
    let good = cred.assert_challenge(&challenge, ORIGIN, &Tamper::default());
    let body = request(good.clone(), 0);
    let auth = [("authorization", "Bearer backend-token")];
    let r = s
        .raw(
            Method::POST,
            "/api/verify/assertion",
            Some("application/json"),
            serde_json::to_vec(&body).unwrap(),
            None,
            &auth,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["verified"], true);
    assert_eq!(r.body["verdict"]["userVerified"], true);
    assert_eq!(r.body["verdict"]["origin"], ORIGIN);
    assert_eq!(r.body["verdict"]["credentialId"], cred_id.as_str());
    assert_eq!(r.body["verdict"]["counter"]["status"], "increased");
    // A request without X-Request-Id gets a generated random UUID (version 4) back.
    let id = r.request_id.clone().unwrap_or_default();
    assert_eq!(id.len(), 36, "{id:?}");
    assert_eq!(id.as_bytes()[14], b'4', "{id:?}");

    // With a valid token: the body must be JSON, and within the body limit (64 KiB here).
    let not_json = s
        .raw(
            Method::POST,
            "/api/verify/assertion",
            Some("text/plain"),
            serde_json::to_vec(&body).unwrap(),
            None,
            &auth,
        )
        .await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(not_json.code(), "unsupported_media_type");
    let mut large = body.clone();
    large["padding"] = json!("x".repeat(70 * 1024));
    let too_large = s
        .raw(
            Method::POST,
            "/api/verify/assertion",
            Some("application/json"),
            serde_json::to_vec(&large).unwrap(),
            None,
            &auth,
        )
        .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.code(), "body_too_large");
    // Without one, the token is refused before the body is looked at.
    let no_token = s
        .raw(
            Method::POST,
            "/api/verify/assertion",
            Some("text/plain"),
            serde_json::to_vec(&large).unwrap(),
            None,
            &[],
        )
        .await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_token.code(), "invalid_api_token");

    let cases = [
        (request(good.clone(), 5), "counter_regression"),
        (
            request(
                cred.assert_challenge(
                    &challenge,
                    ORIGIN,
                    &Tamper {
                        break_signature: true,
                        ..Tamper::default()
                    },
                ),
                0,
            ),
            "bad_signature",
        ),
        (
            request(
                cred.assert_challenge(&[8u8; 32], ORIGIN, &Tamper::default()),
                0,
            ),
            "challenge_mismatch",
        ),
    ];
    for (body, code) in cases {
        let status = if code == "counter_regression" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        let r = s
            .raw(
                Method::POST,
                "/api/verify/assertion",
                Some("application/json"),
                serde_json::to_vec(&body).unwrap(),
                None,
                &auth,
            )
            .await;
        assert_eq!(r.status, status, "{code}: {}", r.body);
        assert_eq!(r.code(), code);
    }
    for token in [None, Some("Bearer wrong"), Some("backend-token")] {
        let headers: Vec<(&str, &str)> = token.map(|t| ("authorization", t)).into_iter().collect();
        let r = s
            .raw(
                Method::POST,
                "/api/verify/assertion",
                Some("application/json"),
                serde_json::to_vec(&body).unwrap(),
                None,
                &headers,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.code(), "invalid_api_token");
    }
}

#[tokio::test]
async fn fido_conformance_endpoints_use_status_and_error_message() {
    let s = Server::start(|_| {}).await;
    let options = s
        .post(
            "/attestation/options",
            &json!({"username": "erin", "displayName": "Erin", "attestation": "none"}),
            None,
        )
        .await;
    assert_eq!(options.body["status"], "ok", "{}", options.body);
    assert_eq!(options.body["errorMessage"], "");
    let (mut cred, response) = SoftCredential::register(&options.body, ORIGIN, &Tamper::default());
    let result = s.post("/attestation/result", &response, None).await;
    assert_eq!(result.body["status"], "ok", "{}", result.body);
    let login = s
        .post("/assertion/options", &json!({"username": "erin"}), None)
        .await;
    assert_eq!(login.body["status"], "ok");
    let assertion = cred.assert(&login.body, ORIGIN, &Tamper::default());
    let ok = s.post("/assertion/result", &assertion, None).await;
    assert_eq!(ok.body["status"], "ok", "{}", ok.body);
    // Replaying it fails in the conformance shape.
    let replay = s.post("/assertion/result", &assertion, None).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.body["status"], "failed");
    assert!(
        replay.body["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("unknown_challenge")
    );
}

#[tokio::test]
async fn rate_limit_on_option_endpoints() {
    let s = Server::start(|c| {
        c.rate_limit_burst = 3;
        c.rate_limit_per_sec = 1;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = s.post("/api/login/options", &json!({}), None).await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.code(), "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // Verification endpoints are not rate limited by the option bucket.
    let r = s.post("/api/login/verify", &json!({}), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// One row of the bad-input table.
struct Case {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    session: bool,
    status: StatusCode,
    code: &'static str,
}

fn case(
    name: &'static str,
    path: &'static str,
    body: &Value,
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case {
        name,
        path,
        content_type: "application/json",
        body: serde_json::to_vec(body).unwrap(),
        session: false,
        status,
        code,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_table_gets_a_precise_4xx_and_changes_nothing() {
    let s = Server::start(|c| c.body_limit_bytes = 16 * 1024).await;
    let (mut alice, _) = s.sign_up("alice").await;
    let (mut bob, bob_session) = s.sign_up("bob").await;
    // One successful sign-in so that alice's counter is 1.
    let login = s.login_options(Some("alice")).await;
    let ok = s
        .post(
            "/api/login/verify",
            &alice.assert(&login, ORIGIN, &Tamper::default()),
            None,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);

    let bad = StatusCode::BAD_REQUEST;
    let mut cases: Vec<Case> = Vec::new();

    // -- transport-level --
    cases.push(Case {
        content_type: "text/plain",
        ..case(
            "form content type",
            "/api/login/verify",
            &json!({}),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
    });
    cases.push(Case {
        body: b"{not json".to_vec(),
        ..case(
            "not JSON",
            "/api/login/verify",
            &json!({}),
            bad,
            "malformed_response",
        )
    });
    cases.push(Case {
        body: vec![b' '; 20 * 1024],
        ..case(
            "oversized body",
            "/api/login/verify",
            &json!({}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        )
    });
    cases.push(case(
        "assertion missing fields",
        "/api/login/verify",
        &json!({"id": "AAAA"}),
        bad,
        "malformed_response",
    ));
    cases.push(case(
        "registration missing fields",
        "/api/register/verify",
        &json!({"id": "AAAA", "type": "public-key"}),
        bad,
        "malformed_response",
    ));
    cases.push(case(
        "empty username",
        "/api/register/options",
        &json!({"username": "  "}),
        bad,
        "invalid_username",
    ));
    cases.push(case(
        "mixed-script username",
        "/api/register/options",
        &json!({"username": "p\u{430}ypal"}),
        bad,
        "mixed_script_username",
    ));
    cases.push(case(
        "zero-width character in a sign-in username",
        "/api/login/options",
        &json!({"username": "ali\u{200b}ce"}),
        bad,
        "disallowed_character_in_username",
    ));
    cases.push(case(
        "bad attestation preference",
        "/api/register/options",
        &json!({"username": "zed", "attestation": "maybe"}),
        bad,
        "invalid_option",
    ));

    // -- sign-in assertions --
    let fresh = s.login_options(Some("alice")).await;
    let mut assert_case = |name: &'static str, tamper: Tamper, code: &'static str| {
        let options = futures_lite(s.login_options(Some("alice")));
        let body = alice.assert(&options, ORIGIN, &tamper);
        case(name, "/api/login/verify", &body, bad, code)
    };
    cases.push(assert_case(
        "wrong origin",
        Tamper {
            origin: Some("https://evil.example".into()),
            ..Tamper::default()
        },
        "origin_not_allowed",
    ));
    cases.push(assert_case(
        "wrong RP ID hash",
        Tamper {
            rp_id_for_hash: Some("evil.example".into()),
            ..Tamper::default()
        },
        "rp_id_hash_mismatch",
    ));
    cases.push(assert_case(
        "UV missing",
        Tamper {
            flags: UP,
            ..Tamper::default()
        },
        "user_verification_missing",
    ));
    cases.push(assert_case(
        "UP missing",
        Tamper {
            flags: UV,
            ..Tamper::default()
        },
        "user_not_present",
    ));
    cases.push(assert_case(
        "bad signature",
        Tamper {
            break_signature: true,
            ..Tamper::default()
        },
        "bad_signature",
    ));
    cases.push(assert_case(
        "authenticator data altered after signing",
        Tamper {
            alter_after_signing: true,
            ..Tamper::default()
        },
        "bad_signature",
    ));
    cases.push(Case {
        status: StatusCode::FORBIDDEN,
        ..assert_case(
            "counter regression",
            Tamper {
                counter: Some(1),
                ..Tamper::default()
            },
            "counter_regression",
        )
    });
    cases.push(assert_case(
        "clientData type webauthn.create",
        Tamper {
            client_type: Some("webauthn.create".into()),
            ..Tamper::default()
        },
        "wrong_ceremony_type",
    ));
    cases.push(assert_case(
        "cross-origin iframe",
        Tamper {
            cross_origin: Some(true),
            ..Tamper::default()
        },
        "cross_origin_not_allowed",
    ));
    cases.push(assert_case(
        "user handle of another user",
        Tamper {
            user_handle: Some(Some(bob.user_handle.clone())),
            ..Tamper::default()
        },
        "user_handle_mismatch",
    ));
    cases.push(assert_case(
        "challenge never issued",
        Tamper {
            challenge: Some(vec![9; 32]),
            ..Tamper::default()
        },
        "unknown_challenge",
    ));
    // A discoverable sign-in without a user handle.
    let disc = futures_lite(s.login_options(None));
    cases.push(case(
        "discoverable without userHandle",
        "/api/login/verify",
        &alice.assert(
            &disc,
            ORIGIN,
            &Tamper {
                user_handle: Some(None),
                ..Tamper::default()
            },
        ),
        bad,
        "user_handle_missing",
    ));
    // Bob's credential against a challenge issued for alice.
    let for_alice = futures_lite(s.login_options(Some("alice")));
    cases.push(case(
        "credential of another account",
        "/api/login/verify",
        &bob.assert(&for_alice, ORIGIN, &Tamper::default()),
        bad,
        "credential_not_allowed",
    ));
    // An unknown credential.
    let stranger_opts = json!({
        "rp": {"id": "localhost"},
        "user": {"id": b64(&[1; 16])},
        "challenge": fresh["challenge"],
    });
    let (mut stranger, _) = SoftCredential::register(&stranger_opts, ORIGIN, &Tamper::default());
    cases.push(case(
        "unknown credential",
        "/api/login/verify",
        &stranger.assert(&fresh, ORIGIN, &Tamper::default()),
        bad,
        "unknown_credential",
    ));
    // The assertion that already signed in, replayed.
    let replay_opts = futures_lite(s.login_options(Some("alice")));
    let replayed = alice.assert(&replay_opts, ORIGIN, &Tamper::default());
    let first = futures_lite(s.post("/api/login/verify", &replayed, None));
    assert_eq!(first.status, StatusCode::OK);
    cases.push(case(
        "replayed assertion",
        "/api/login/verify",
        &replayed,
        bad,
        "unknown_challenge",
    ));
    // A registration challenge used to sign in.
    let reg_opts = futures_lite(s.post(
        "/api/register/options",
        &json!({"username": "mallory"}),
        None,
    ));
    cases.push(case(
        "registration challenge used for sign-in",
        "/api/login/verify",
        &alice.assert(&reg_opts.body, ORIGIN, &Tamper::default()),
        bad,
        "wrong_ceremony",
    ));
    // A sign-in challenge used for a signed action.
    let login_for_action = futures_lite(s.login_options(Some("bob")));
    cases.push(Case {
        session: true,
        ..case(
            "sign-in challenge used to approve an action",
            "/api/actions/verify",
            &bob.assert(&login_for_action, ORIGIN, &Tamper::default()),
            bad,
            "wrong_ceremony",
        )
    });
    cases.push(case(
        "action without a session",
        "/api/actions/verify",
        &json!({}),
        StatusCode::UNAUTHORIZED,
        "not_signed_in",
    ));
    cases.push(Case {
        session: true,
        ..case(
            "action without payload",
            "/api/actions/options",
            &json!({"payload": null}),
            bad,
            "missing_payload",
        )
    });
    cases.push(Case {
        session: true,
        ..case(
            "action payload too long",
            "/api/actions/options",
            &json!({"payload": "x".repeat(9000)}),
            bad,
            "invalid_payload",
        )
    });

    // -- registrations --
    let reg_case = |s: &Server, name: &'static str, tamper: Tamper, code: &'static str| {
        let options = futures_lite(s.post(
            "/api/register/options",
            &json!({"username": format!("new-{}", name.len())}),
            None,
        ));
        assert_eq!(options.status, StatusCode::OK, "{}", options.body);
        let (_, body) = SoftCredential::register(&options.body, ORIGIN, &tamper);
        case(name, "/api/register/verify", &body, bad, code)
    };
    cases.push(reg_case(
        &s,
        "registration from a wrong origin",
        Tamper {
            origin: Some("https://evil.example".into()),
            ..Tamper::default()
        },
        "origin_not_allowed",
    ));
    cases.push(reg_case(
        &s,
        "registration without UV",
        Tamper {
            flags: UP,
            ..Tamper::default()
        },
        "user_verification_missing",
    ));
    cases.push(reg_case(
        &s,
        "registration with a wrong RP ID hash",
        Tamper {
            rp_id_for_hash: Some("evil.example".into()),
            ..Tamper::default()
        },
        "rp_id_hash_mismatch",
    ));
    cases.push(reg_case(
        &s,
        "registration with clientData type webauthn.get",
        Tamper {
            client_type: Some("webauthn.get".into()),
            ..Tamper::default()
        },
        "wrong_ceremony_type",
    ));
    // Expired challenge: a second server with a 1-second TTL on the same store would be more
    // code; instead the expiry is covered in `expired_challenges_are_refused`.

    let before = s.fingerprint().await;
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let r = s
            .raw(
                Method::POST,
                c.path,
                Some(c.content_type),
                c.body.clone(),
                c.session.then_some(bob_session.as_str()),
                &[],
            )
            .await;
        if r.status != c.status || r.code() != c.code {
            failures.push(format!(
                "{}: expected {} {}, got {} {}",
                c.name, c.status, c.code, r.status, r.body
            ));
        }
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}: no message",
            c.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        s.fingerprint().await,
        before,
        "a rejected request changed the store"
    );
    println!("{} bad-input cases", cases.len());
}

#[tokio::test]
async fn expired_challenges_are_refused() {
    let s = Server::start(|c| c.challenge_ttl_secs = 1).await;
    let (mut cred, _) = s.sign_up("frank").await;
    let options = s.login_options(Some("frank")).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = s.fingerprint().await;
    let r = s
        .post(
            "/api/login/verify",
            &cred.assert(&options, ORIGIN, &Tamper::default()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "challenge_expired");
    assert_eq!(s.fingerprint().await, before);
}

#[tokio::test]
async fn counter_regression_is_reported_when_policy_allows() {
    let s = Server::start(|c| {
        c.counter_policy = passgate_relying_party::verify::CounterPolicy::Report;
    })
    .await;
    let (mut cred, session) = s.sign_up("gina").await;
    for expected in ["increased", "regressed"] {
        let options = s.login_options(Some("gina")).await;
        let tamper = Tamper {
            counter: Some(5),
            ..Tamper::default()
        };
        let r = s
            .post(
                "/api/login/verify",
                &cred.assert(&options, ORIGIN, &tamper),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            r.body["verdict"]["counter"]["status"], expected,
            "{}",
            r.body
        );
    }
    let list = s.get("/api/credentials", Some(&session)).await;
    assert_eq!(list.body["credentials"][0]["counterRegressions"], 1);
}

#[tokio::test]
async fn json_errors_for_unknown_routes_and_methods_and_openapi_is_served() {
    let s = Server::start(|_| {}).await;
    let r = s.get("/api/nope", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
    let r = s.get("/api/login/verify", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
    let r = s.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
}

#[tokio::test]
async fn the_local_bridge_address_is_served_as_configured() {
    let s = Server::start(|_| {}).await;
    let r = s.get("/api/local-bridge", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, serde_json::json!({"url": null}));
    let s = Server::start(|c| c.local_bridge = Some("http://127.0.0.1:8781".into())).await;
    let r = s.get("/api/local-bridge", None).await;
    assert_eq!(r.body, serde_json::json!({"url": "http://127.0.0.1:8781"}));
}

/// Runs a future to completion from synchronous test-building code (the table is built with
/// closures that need server round trips).
fn futures_lite<F: Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test]
async fn android_and_ios_app_origins_register_and_sign_in() {
    const ANDROID: &str = "android:apk-key-hash:Kj2gYbRg8wR0jrGz0kQk3c8d_2Uu3zqU3yX-0Wf1c2E";
    const IOS: &str = "ios:bundle-id:dev.passgate.demo";
    let s = Server::start(|c| {
        c.origins = vec![ORIGIN.into(), ANDROID.into(), IOS.into()];
    })
    .await;
    for (i, origin) in [ANDROID, IOS].into_iter().enumerate() {
        let name = format!("app-user-{i}");
        let options = s
            .post("/api/register/options", &json!({ "username": name }), None)
            .await;
        let (mut cred, response) =
            SoftCredential::register(&options.body, origin, &Tamper::default());
        let done = s.post("/api/register/verify", &response, None).await;
        assert_eq!(done.status, StatusCode::OK, "{origin}: {}", done.body);
        let login = s.login_options(Some(&name)).await;
        let r = s
            .post(
                "/api/login/verify",
                &cred.assert(&login, origin, &Tamper::default()),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{origin}: {}", r.body);
        assert_eq!(r.body["verdict"]["origin"], origin);
    }
    // An app origin that is not configured is refused.
    let (mut cred, _) = s.sign_up("web-user").await;
    let login = s.login_options(Some("web-user")).await;
    let r = s
        .post(
            "/api/login/verify",
            &cred.assert(&login, "android:apk-key-hash:AAAA", &Tamper::default()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "origin_not_allowed");
}

/// Sessions (security finding 5): a deleted passkey's sessions end with it, "sign out
/// everywhere" ends them all, and adding or renaming a passkey needs a recent verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_deletion_ends_its_sessions_and_sign_out_everywhere_ends_all() {
    let s = Server::start(|_| {}).await;
    let (mut first, session1) = s.sign_up("frank").await;
    // A second passkey, added from the fresh sign-up session.
    let options = s
        .post("/api/register/options", &json!({}), Some(&session1))
        .await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let (mut second, response) =
        SoftCredential::register(&options.body, ORIGIN, &Tamper::default());
    let added = s
        .post("/api/register/verify", &response, Some(&session1))
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    // A session signed in with the second passkey (say, a thief's).
    let login = s.login_options(Some("frank")).await;
    let signed = s
        .post(
            "/api/login/verify",
            &second.assert(&login, ORIGIN, &Tamper::default()),
            None,
        )
        .await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    let session2 = session_from(&signed);
    assert_eq!(
        s.get("/api/session", Some(&session2)).await.status,
        StatusCode::OK
    );

    // Deleting the second passkey ends its session, not the others.
    let deleted = s
        .raw(
            Method::DELETE,
            &format!("/api/credentials/{}", b64(&second.id)),
            None,
            Vec::new(),
            Some(&session1),
            &[],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let gone = s.get("/api/session", Some(&session2)).await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::UNAUTHORIZED, "not_signed_in")
    );
    assert_eq!(
        s.get("/api/session", Some(&session1)).await.status,
        StatusCode::OK
    );

    // Sign out everywhere: every session of the user ends, and only of that user.
    let login = s.login_options(Some("frank")).await;
    let signed = s
        .post(
            "/api/login/verify",
            &first.assert(&login, ORIGIN, &Tamper::default()),
            None,
        )
        .await;
    let session3 = session_from(&signed);
    let (_, other) = s.sign_up("grace").await;
    let form = s
        .raw(
            Method::POST,
            "/api/logout/all",
            Some("text/plain"),
            b"{}".to_vec(),
            Some(&session1),
            &[],
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let out = s.post("/api/logout/all", &json!({}), Some(&session1)).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(out.body, json!({"signedOut": true, "sessionsEnded": 2}));
    assert!(out.cookie.unwrap().contains("Max-Age=0"));
    for session in [&session1, &session3] {
        let gone = s.get("/api/session", Some(session)).await;
        assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        s.get("/api/session", Some(&other)).await.status,
        StatusCode::OK
    );
    let again = s.post("/api/logout/all", &json!({}), Some(&session1)).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::UNAUTHORIZED, "not_signed_in")
    );
}

#[tokio::test]
async fn adding_or_renaming_a_passkey_needs_a_recent_verification_and_deleting_the_last_is_refused_first()
 {
    let s = Server::start(|c| c.step_up_max_age_secs = 1).await;
    let (cred, session) = s.sign_up("heidi").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = s.fingerprint().await;
    let add = s
        .post("/api/register/options", &json!({}), Some(&session))
        .await;
    assert_eq!(
        (add.status, add.code()),
        (StatusCode::FORBIDDEN, "step_up_required")
    );
    let rename = s
        .raw(
            Method::PATCH,
            &format!("/api/credentials/{}", b64(&cred.id)),
            Some("application/json"),
            serde_json::to_vec(&json!({"name": "mine now"})).unwrap(),
            Some(&session),
            &[],
        )
        .await;
    assert_eq!(
        (rename.status, rename.code()),
        (StatusCode::FORBIDDEN, "step_up_required")
    );
    // Deleting the only passkey is bound to fail: refused as such before any step-up, so the
    // page never asks the person to verify for it.
    let delete_last = s
        .raw(
            Method::DELETE,
            &format!("/api/credentials/{}", b64(&cred.id)),
            None,
            Vec::new(),
            Some(&session),
            &[],
        )
        .await;
    assert_eq!(
        (delete_last.status, delete_last.code()),
        (StatusCode::CONFLICT, "last_credential")
    );
    assert_eq!(s.fingerprint().await, before);
}

/// A path parameter that does not decode (a percent-escape that is not UTF-8) is a 400 JSON
/// `invalid_path`, not axum's plain text, and changes nothing (found by the
/// `relying_party_api` fuzz target once it had a session).
#[tokio::test]
async fn an_undecodable_path_parameter_is_a_json_400() {
    let s = Server::start(|_| {}).await;
    let (_cred, session) = s.sign_up("ivan").await;
    let before = s.fingerprint().await;
    for (method, path, body) in [
        (
            Method::PATCH,
            "/api/credentials/%ff%2F..",
            br#"{"name":"x"}"#.to_vec(),
        ),
        (Method::DELETE, "/api/credentials/a%ffb", Vec::new()),
        (Method::GET, "/api/receipts/%c3%28", Vec::new()),
    ] {
        let reply = s
            .raw(
                method.clone(),
                path,
                Some("application/json"),
                body,
                Some(&session),
                &[],
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_path"),
            "{method} {path}: {}",
            reply.body
        );
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("UTF-8"),
            "{}",
            reply.body
        );
    }
    assert_eq!(s.fingerprint().await, before);
}

/// Registration stores the decoded public key (schema version 3), and a credential stored
/// before that version, with only its COSE bytes, still signs in.
#[tokio::test]
async fn the_decoded_key_is_stored_and_older_rows_still_sign_in() {
    let s = Server::start(|_| {}).await;
    let (mut cred, _) = s.sign_up("ivan").await;
    let url = format!("sqlite://{}", s._dir.path().join("rp.sqlite3").display());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT verify_key FROM credentials")
        .fetch_one(&pool)
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["alg"], "ES256");
    let point = unb64(stored["point"].as_str().unwrap());
    assert_eq!(
        (point.len(), point[0]),
        (65, 4),
        "an uncompressed P-256 point"
    );
    let done = sqlx::query("UPDATE credentials SET verify_key = NULL")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    pool.close().await;
    let login = s.login_options(Some("ivan")).await;
    let ok = s
        .post(
            "/api/login/verify",
            &cred.assert(&login, ORIGIN, &Tamper::default()),
            None,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}
