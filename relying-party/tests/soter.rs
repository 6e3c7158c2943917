//! The SOTER endpoints end to end in process (real router, SQLite store): a device key
//! registered from SOTER's key format, RP-issued single-use challenges, RSASSA-PSS (salt 20)
//! results, counters increasing per device, and every bad input a precise 4xx that changes
//! nothing stored. The client side here is a plain RSA key, as any SOTER implementation is;
//! passgate's own client (`passgate app`) is tested against this server from Python.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use passgate_relying_party::server::{AppState, router};
use passgate_relying_party::{RpConfig, build_state};
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::pss::SigningKey;
use rsa::sha2::Sha256;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "backend-token";
const CPU_ID: &str = "0f000000262300000b5f094d1cf4c411";
const UID: &str = "10206";

struct Server {
    app: Router,
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    body: Value,
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
            api_tokens: vec![TOKEN.into()],
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
        path: &str,
        content_type: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, content_type);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.raw(
            path,
            "application/json",
            Some(TOKEN),
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    async fn fingerprint(&self) -> String {
        let store = self.state.rp.store();
        format!(
            "{}|{}",
            store.fingerprint().await.unwrap(),
            passgate_relying_party::soter::fingerprint(store)
                .await
                .unwrap()
        )
    }

    async fn challenge(&self, binding: Value) -> String {
        let r = self.post("/api/soter/challenge", &binding).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["challenge"].as_str().unwrap().to_owned()
    }
}

/// A SOTER device: an RSA key that signs PSS with a chosen salt length.
struct Device {
    key: RsaPrivateKey,
}

impl Device {
    fn new(bits: usize) -> Self {
        let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
        Self {
            key: RsaPrivateKey::new(&mut rng, bits).unwrap(),
        }
    }

    fn sign_with_salt(&self, message: &str, salt: usize) -> String {
        let signer = SigningKey::<Sha256>::new_with_salt_len(self.key.clone(), salt);
        let sig = signer
            .try_sign_with_rng(&mut getrandom::SysRng, message.as_bytes())
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.to_vec())
    }

    fn sign(&self, message: &str) -> String {
        self.sign_with_salt(message, 20)
    }

    fn pem(&self) -> String {
        let der = self.key.to_public_key().to_public_key_der().unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
        let lines: Vec<String> = body
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    fn key_json(&self, counter: u64) -> String {
        serde_json::to_string(
            &json!({"pub_key": self.pem(), "cpu_id": CPU_ID, "counter": counter, "uid": UID}),
        )
        .unwrap()
    }

    fn registration(&self, counter: u64) -> Value {
        let key_json = self.key_json(counter);
        json!({"keyJson": key_json, "keyJsonSignature": self.sign(&key_json)})
    }

    /// A resultJSON in SOTER's member order, and its signature.
    fn result(&self, raw: &str, counter: u64) -> Value {
        let result_json = format!(
            r#"{{"raw":{},"fid":"3","counter":{counter},"tee_n":"QSEE","tee_v":"4.0","fp_n":"ET","fp_v":"320","cpu_id":"{CPU_ID}","uid":"{UID}"}}"#,
            serde_json::to_string(raw).unwrap()
        );
        json!({"resultJSON": result_json, "resultJSONSignature": self.sign(&result_json)})
    }
}

#[tokio::test]
async fn register_challenge_verify_and_counters_only_go_up() {
    let server = Server::start(|_| {}).await;
    let device = Device::new(2048);
    let registered = server
        .post("/api/soter/devices", &device.registration(181))
        .await;
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    assert_eq!(
        registered.body,
        json!({"registered": true, "cpuId": CPU_ID, "uid": UID, "counter": 181})
    );
    // Registering the same key again is idempotent.
    let again = server
        .post("/api/soter/devices", &device.registration(181))
        .await;
    assert_eq!(again.status, StatusCode::OK);

    let challenge = server.challenge(json!({"cpuId": CPU_ID, "uid": UID})).await;
    let result = device.result(&challenge, 246);
    let verified = server.post("/api/soter/verify", &result).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.body["verified"], true);
    assert_eq!(verified.body["counter"], 246);
    assert_eq!(verified.body["raw"], challenge.as_str());
    assert_eq!(verified.body["fid"], "3");

    // Replayed: the counter is not above 246 (and the challenge is used).
    let before = server.fingerprint().await;
    let replay = server.post("/api/soter/verify", &result).await;
    assert_eq!(
        (replay.status, replay.code()),
        (StatusCode::FORBIDDEN, "soter_counter_not_increasing")
    );
    assert_eq!(server.fingerprint().await, before);

    // Out of order: a fresh challenge with an older counter is refused and not consumed ...
    let fresh = server.challenge(json!({})).await;
    let before = server.fingerprint().await;
    let old = server
        .post("/api/soter/verify", &device.result(&fresh, 200))
        .await;
    assert_eq!(
        (old.status, old.code()),
        (StatusCode::FORBIDDEN, "soter_counter_not_increasing")
    );
    assert_eq!(server.fingerprint().await, before, "nothing stored changed");
    // ... so the legitimate result for it still verifies, once.
    let ok = server
        .post("/api/soter/verify", &device.result(&fresh, 247))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let twice = server
        .post("/api/soter/verify", &device.result(&fresh, 248))
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::BAD_REQUEST, "soter_challenge_unknown")
    );
}

#[tokio::test]
async fn a_business_string_is_verified_against_the_expected_raw() {
    let server = Server::start(|_| {}).await;
    let device = Device::new(2048);
    let registered = server
        .post("/api/soter/devices", &device.registration(1))
        .await;
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    // WeChat's challenge is any string the business chose: an order to confirm, say.
    let order = "order 8841: pay 12.50 CNY to Tea House";
    let mut result = device.result(order, 2);
    // Without expectedRaw it would have to be one of this server's challenges.
    let refused = server.post("/api/soter/verify", &result).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::BAD_REQUEST, "soter_challenge_unknown")
    );
    // Another expected string: refused, nothing stored changes.
    let before = server.fingerprint().await;
    result["expectedRaw"] = json!("order 8841: pay 99.00 CNY to Tea House");
    let mismatch = server.post("/api/soter/verify", &result).await;
    assert_eq!(
        (mismatch.status, mismatch.code()),
        (StatusCode::BAD_REQUEST, "soter_raw_mismatch")
    );
    assert_eq!(server.fingerprint().await, before);
    result["expectedRaw"] = json!("");
    let empty = server.post("/api/soter/verify", &result).await;
    assert_eq!(
        (empty.status, empty.code()),
        (StatusCode::BAD_REQUEST, "soter_expected_raw_malformed")
    );
    result["expectedRaw"] = json!(order);
    let verified = server.post("/api/soter/verify", &result).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.body["raw"], order);
    assert_eq!(verified.body["counter"], 2);
    // The counter still only goes up: the same signed result again is a replay.
    let replay = server.post("/api/soter/verify", &result).await;
    assert_eq!(
        (replay.status, replay.code()),
        (StatusCode::FORBIDDEN, "soter_counter_not_increasing")
    );
}

#[tokio::test]
async fn a_key_rotates_only_explicitly_and_forward() {
    let server = Server::start(|_| {}).await;
    let first = Device::new(2048);
    let second = Device::new(2048);
    assert_eq!(
        server
            .post("/api/soter/devices", &first.registration(10))
            .await
            .status,
        StatusCode::OK
    );
    let before = server.fingerprint().await;
    let clash = server
        .post("/api/soter/devices", &second.registration(20))
        .await;
    assert_eq!(
        (clash.status, clash.code()),
        (StatusCode::CONFLICT, "soter_device_exists")
    );
    let mut backwards = second.registration(5);
    backwards["replace"] = json!(true);
    let back = server.post("/api/soter/devices", &backwards).await;
    assert_eq!(
        (back.status, back.code()),
        (StatusCode::FORBIDDEN, "soter_counter_not_increasing")
    );
    assert_eq!(server.fingerprint().await, before);
    let mut rotate = second.registration(20);
    rotate["replace"] = json!(true);
    // Security finding 6: without the registered key's signature, or with the new key's own,
    // the rotation is refused and nothing changes.
    let unsigned = server.post("/api/soter/devices", &rotate).await;
    assert_eq!(
        (unsigned.status, unsigned.code()),
        (StatusCode::FORBIDDEN, "soter_replacement_unauthorised")
    );
    let key_json = rotate["keyJson"].as_str().unwrap().to_owned();
    rotate["currentKeySignature"] = json!(second.sign(&key_json));
    let self_signed = server.post("/api/soter/devices", &rotate).await;
    assert_eq!(
        (self_signed.status, self_signed.code()),
        (StatusCode::FORBIDDEN, "soter_replacement_unauthorised")
    );
    assert_eq!(server.fingerprint().await, before);
    rotate["currentKeySignature"] = json!(first.sign(&key_json));
    let rotated = server.post("/api/soter/devices", &rotate).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    // The device keeps its counter (10): the new key's self-declared 20 is not trusted.
    assert_eq!(rotated.body["counter"], 10);
    let challenge = server.challenge(json!({})).await;
    let stale = server
        .post("/api/soter/verify", &first.result(&challenge, 30))
        .await;
    assert_eq!(
        stale.code(),
        "soter_bad_signature",
        "the old key no longer verifies"
    );
    let fresh = server
        .post("/api/soter/verify", &second.result(&challenge, 30))
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
}

#[tokio::test]
async fn every_bad_input_is_a_precise_4xx_and_changes_nothing() {
    let server = Server::start(|c| c.challenge_ttl_secs = 1).await;
    let device = Device::new(2048);
    assert_eq!(
        server
            .post("/api/soter/devices", &device.registration(1))
            .await
            .status,
        StatusCode::OK
    );
    let stranger = Device::new(2048);
    let small = Device::new(1024);
    let expiring = server.challenge(json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let live = server.challenge(json!({})).await;
    let bound = server.challenge(json!({"uid": "another-app"})).await;

    let key_json = device.key_json(2);
    let mut cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/api/soter/devices",
            json!({"keyJson": "{", "keyJsonSignature": "AA"}),
            StatusCode::BAD_REQUEST,
            "soter_key_json_malformed",
        ),
        (
            "/api/soter/devices",
            json!({"keyJson": r#"{"pub_key":"x","cpu_id":"c","counter":1,"uid":"u"}"#, "keyJsonSignature": "AA"}),
            StatusCode::BAD_REQUEST,
            "soter_key_json_malformed",
        ),
        (
            "/api/soter/devices",
            json!({"keyJson": r#"{"pub_key":"x","cpu_id":"c","counter":"1","uid":"u"}"#, "keyJsonSignature": "AA"}),
            StatusCode::BAD_REQUEST,
            "soter_key_json_malformed",
        ),
        (
            "/api/soter/devices",
            small.registration(1),
            StatusCode::BAD_REQUEST,
            "soter_key_unsupported",
        ),
        (
            "/api/soter/devices",
            json!({"keyJson": key_json, "keyJsonSignature": "***"}),
            StatusCode::BAD_REQUEST,
            "soter_signature_malformed",
        ),
        (
            "/api/soter/devices",
            json!({"keyJson": key_json, "keyJsonSignature": stranger.sign(&key_json)}),
            StatusCode::BAD_REQUEST,
            "soter_key_signature_invalid",
        ),
        (
            "/api/soter/devices",
            json!({"keyJson": key_json, "keyJsonSignature": device.sign_with_salt(&key_json, 32)}),
            StatusCode::BAD_REQUEST,
            "soter_key_signature_invalid",
        ),
        (
            "/api/soter/devices",
            json!({"keyJson": key_json}),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            "/api/soter/devices",
            json!({"keyJson": key_json, "keyJsonSignature": "AA", "extra": 1}),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            "/api/soter/challenge",
            json!({"uid": 5}),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            "/api/soter/verify",
            json!({"resultJSON": "{}", "resultJSONSignature": "AA"}),
            StatusCode::BAD_REQUEST,
            "soter_result_json_malformed",
        ),
        (
            "/api/soter/verify",
            json!({"resultJSON": "not json", "resultJSONSignature": "AA"}),
            StatusCode::BAD_REQUEST,
            "soter_result_json_malformed",
        ),
    ];
    // A duplicate member could make two parsers read different values: refused.
    let mut dup = device.result(&live, 5);
    let text = dup["resultJSON"].as_str().unwrap().replacen(
        "\"fid\":\"3\"",
        "\"fid\":\"3\",\"counter\":9",
        1,
    );
    dup = json!({"resultJSON": text, "resultJSONSignature": device.sign(&text)});
    cases.push((
        "/api/soter/verify",
        dup,
        StatusCode::BAD_REQUEST,
        "soter_result_json_malformed",
    ));
    let mut bad_sig = device.result(&live, 5);
    bad_sig["resultJSONSignature"] = json!("%%%");
    cases.push((
        "/api/soter/verify",
        bad_sig,
        StatusCode::BAD_REQUEST,
        "soter_signature_malformed",
    ));
    cases.push((
        "/api/soter/verify",
        stranger.result(&live, 5),
        StatusCode::BAD_REQUEST,
        "soter_bad_signature",
    ));
    let mut salt32 = device.result(&live, 5);
    salt32["resultJSONSignature"] =
        json!(device.sign_with_salt(salt32["resultJSON"].as_str().unwrap(), 32));
    cases.push((
        "/api/soter/verify",
        salt32,
        StatusCode::BAD_REQUEST,
        "soter_bad_signature",
    ));
    let mut tampered = device.result(&live, 5);
    let altered = tampered["resultJSON"]
        .as_str()
        .unwrap()
        .replace("\"fid\":\"3\"", "\"fid\":\"4\"");
    tampered["resultJSON"] = json!(altered);
    cases.push((
        "/api/soter/verify",
        tampered,
        StatusCode::BAD_REQUEST,
        "soter_bad_signature",
    ));
    cases.push((
        "/api/soter/verify",
        device.result("never-issued", 5),
        StatusCode::BAD_REQUEST,
        "soter_challenge_unknown",
    ));
    cases.push((
        "/api/soter/verify",
        device.result(&expiring, 5),
        StatusCode::BAD_REQUEST,
        "soter_challenge_unknown",
    ));
    cases.push((
        "/api/soter/verify",
        device.result(&bound, 5),
        StatusCode::BAD_REQUEST,
        "soter_challenge_mismatch",
    ));
    let unknown_text = device.result(&live, 5)["resultJSON"]
        .as_str()
        .unwrap()
        .replace(CPU_ID, "ffff");
    cases.push((
        "/api/soter/verify",
        json!({"resultJSON": unknown_text, "resultJSONSignature": device.sign(&unknown_text)}),
        StatusCode::NOT_FOUND,
        "soter_device_not_registered",
    ));

    for (path, body, status, code) in cases {
        let before = server.fingerprint().await;
        let reply = server.post(path, &body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{path} {body}: {}",
            reply.body
        );
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(
            server.fingerprint().await,
            before,
            "{path} {code} changed the store"
        );
    }

    let before = server.fingerprint().await;
    for (content_type, token, status, code) in [
        (
            "application/json",
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_api_token",
        ),
        (
            "application/json",
            Some("wrong"),
            StatusCode::UNAUTHORIZED,
            "invalid_api_token",
        ),
        (
            "text/plain",
            Some(TOKEN),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ] {
        for path in [
            "/api/soter/challenge",
            "/api/soter/devices",
            "/api/soter/verify",
        ] {
            let reply = server.raw(path, content_type, token, b"{}".to_vec()).await;
            assert_eq!((reply.status, reply.code()), (status, code), "{path}");
        }
    }
    let reply = server
        .raw(
            "/api/soter/verify",
            "application/json",
            Some(TOKEN),
            b"{".to_vec(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    assert_eq!(server.fingerprint().await, before);

    // After all that, the live challenge still verifies (nothing consumed it).
    let ok = server
        .post("/api/soter/verify", &device.result(&live, 5))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}
