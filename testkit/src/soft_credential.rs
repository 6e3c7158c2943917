//! A software authenticator and client for the relying-party tests: it builds
//! `RegistrationResponseJSON` / `AuthenticationResponseJSON` from the server's options exactly as
//! a browser would, and can tamper with any part before or after signing.

// Test code: the fields and helpers are named for what the WebAuthn spec calls them.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciborium::Value as Cbor;
use serde_json::{Value, json};

pub const UP: u8 = 0x01;
pub const UV: u8 = 0x04;
pub const BE: u8 = 0x08;
pub const BS: u8 = 0x10;
pub const AT: u8 = 0x40;

pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// A `POST /api/verify/assertion` body: a fresh P-256 credential registered for `rp_id`, and
/// its assertion for `origin`, changed as `tamper` says.
pub fn backend_verify_request(origin: &str, rp_id: &str, tamper: &Tamper) -> Value {
    let challenge = [0x5au8; 32];
    let options = json!({
        "rp": {"id": rp_id},
        "user": {"id": b64(&[7u8; 16])},
        "challenge": b64(&challenge),
    });
    let (mut cred, _) = SoftCredential::register(&options, origin, &Tamper::default());
    let response = cred.assert_challenge(&challenge, origin, tamper);
    json!({
        "credential": {
            "id": b64(&cred.id),
            "publicKey": cred.cose_b64(),
            "signCount": 0,
            "userHandle": b64(&cred.user_handle),
        },
        "response": response,
        "expectedChallenge": b64(&challenge),
        "expectedOrigins": [origin],
        "expectedRpId": rp_id,
        "requireUserVerification": true,
    })
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).unwrap()
}

/// One passkey held by the test authenticator.
pub struct SoftCredential {
    pub id: Vec<u8>,
    pub key: EcdsaKeyPair,
    pub rp_id: String,
    pub user_handle: Vec<u8>,
    pub counter: u32,
}

/// What a test wants to change in a ceremony. Fields apply before signing unless noted.
#[derive(Clone)]
pub struct Tamper {
    pub flags: u8,
    pub origin: Option<String>,
    pub client_type: Option<String>,
    pub challenge: Option<Vec<u8>>,
    pub rp_id_for_hash: Option<String>,
    pub counter: Option<u32>,
    pub cross_origin: Option<bool>,
    pub user_handle: Option<Option<Vec<u8>>>,
    /// Flip a bit of the signature after signing.
    pub break_signature: bool,
    /// Change a byte of authenticatorData after signing.
    pub alter_after_signing: bool,
}

impl Default for Tamper {
    fn default() -> Self {
        Self {
            flags: UP | UV | BE | BS,
            origin: None,
            client_type: None,
            challenge: None,
            rp_id_for_hash: None,
            counter: None,
            cross_origin: None,
            user_handle: None,
            break_signature: false,
            alter_after_signing: false,
        }
    }
}

pub fn client_data(
    type_: &str,
    challenge: &[u8],
    origin: &str,
    cross_origin: Option<bool>,
) -> Vec<u8> {
    let mut cd = json!({
        "type": type_,
        "challenge": b64(challenge),
        "origin": origin,
    });
    if let Some(c) = cross_origin {
        cd["crossOrigin"] = json!(c);
    }
    serde_json::to_vec(&cd).unwrap()
}

fn cose_p256(key: &EcdsaKeyPair) -> Vec<u8> {
    // Uncompressed point: 0x04 || x || y.
    let point = key.public_key().as_ref();
    let (x, y) = (point[1..33].to_vec(), point[33..65].to_vec());
    let map = Cbor::Map(vec![
        (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
        (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
        (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
        (Cbor::Integer((-2).into()), Cbor::Bytes(x)),
        (Cbor::Integer((-3).into()), Cbor::Bytes(y)),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&map, &mut out).unwrap();
    out
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).unwrap();
    out
}

impl SoftCredential {
    /// Creates a credential for `PublicKeyCredentialCreationOptionsJSON` and returns it with the
    /// `RegistrationResponseJSON`.
    pub fn register(options: &Value, origin: &str, tamper: &Tamper) -> (Self, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let rp_id = options["rp"]["id"].as_str().unwrap().to_owned();
        let challenge = tamper
            .challenge
            .clone()
            .unwrap_or_else(|| unb64(options["challenge"].as_str().unwrap()));
        let user_handle = unb64(options["user"]["id"].as_str().unwrap());
        let id = random::<32>().to_vec();
        let cd = client_data(
            tamper.client_type.as_deref().unwrap_or("webauthn.create"),
            &challenge,
            tamper.origin.as_deref().unwrap_or(origin),
            tamper.cross_origin,
        );
        let hash_rp = tamper.rp_id_for_hash.as_deref().unwrap_or(&rp_id);
        let mut auth_data = digest(&SHA256, hash_rp.as_bytes()).as_ref().to_vec();
        auth_data.push(tamper.flags | AT);
        auth_data.extend_from_slice(&tamper.counter.unwrap_or(0).to_be_bytes());
        auth_data.extend_from_slice(&[0x50; 16]); // AAGUID
        auth_data.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_p256(&key));
        let att = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (
                Cbor::Text("authData".into()),
                Cbor::Bytes(auth_data.clone()),
            ),
        ]);
        let mut att_bytes = Vec::new();
        ciborium::into_writer(&att, &mut att_bytes).unwrap();
        let response = json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {"credProps": {"rk": true}},
            "response": {
                "clientDataJSON": b64(&cd),
                "attestationObject": b64(&att_bytes),
                "authenticatorData": b64(&auth_data),
                "transports": ["internal", "hybrid"],
                "publicKeyAlgorithm": -7,
            },
        });
        (
            Self {
                id,
                key,
                rp_id,
                user_handle,
                counter: tamper.counter.unwrap_or(0),
            },
            response,
        )
    }

    /// Signs an assertion for `PublicKeyCredentialRequestOptionsJSON` (its challenge; the RP ID
    /// from the credential) and returns `AuthenticationResponseJSON`.
    pub fn assert(&mut self, options: &Value, origin: &str, tamper: &Tamper) -> Value {
        let challenge = tamper
            .challenge
            .clone()
            .unwrap_or_else(|| unb64(options["challenge"].as_str().unwrap()));
        self.assert_challenge(&challenge, origin, tamper)
    }

    /// Signs an assertion over a given challenge.
    pub fn assert_challenge(&mut self, challenge: &[u8], origin: &str, tamper: &Tamper) -> Value {
        self.counter = self.counter.wrapping_add(1);
        let counter = tamper.counter.unwrap_or(self.counter);
        let cd = client_data(
            tamper.client_type.as_deref().unwrap_or("webauthn.get"),
            challenge,
            tamper.origin.as_deref().unwrap_or(origin),
            tamper.cross_origin,
        );
        let hash_rp = tamper.rp_id_for_hash.as_deref().unwrap_or(&self.rp_id);
        let mut auth_data = digest(&SHA256, hash_rp.as_bytes()).as_ref().to_vec();
        auth_data.push(tamper.flags);
        auth_data.extend_from_slice(&counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(digest(&SHA256, &cd).as_ref());
        let mut signature = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .unwrap()
            .as_ref()
            .to_vec();
        if tamper.break_signature {
            let last = signature.len() - 1;
            signature[last] ^= 0x01;
        }
        if tamper.alter_after_signing {
            auth_data[32] ^= BS;
        }
        let user_handle = match &tamper.user_handle {
            Some(h) => h.clone(),
            None => Some(self.user_handle.clone()),
        };
        json!({
            "id": b64(&self.id),
            "rawId": b64(&self.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(&cd),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": user_handle.map(|h| b64(&h)),
            },
        })
    }

    /// The COSE public key, base64url (what the server stores).
    pub fn cose_b64(&self) -> String {
        b64(&cose_p256(&self.key))
    }
}

/// A webauthn-rs 0.6 relying party with one credential of a fresh [`SoftCredential`] registered
/// through it (attestation none, UV required): the oracle of the differential test and the peer
/// of the benchmark.
pub fn webauthn_rs_with_credential(
    origin: &str,
    rp_id: &str,
) -> (
    webauthn_rs_core::WebauthnCore,
    webauthn_rs_core::proto::Credential,
    SoftCredential,
) {
    use webauthn_rs_core::proto::{
        AttestationConveyancePreference, RegisterPublicKeyCredential, UserVerificationPolicy,
    };
    let core = webauthn_rs_core::WebauthnCore::new_unsafe_experts_only(
        "passgate",
        rp_id,
        vec![url::Url::parse(origin).unwrap()],
        std::time::Duration::from_secs(60),
        Some(false),
        Some(false),
    );
    let builder = core
        .new_challenge_register_builder(&[9u8; 16], "alice", "Alice")
        .unwrap()
        .attestation(AttestationConveyancePreference::None)
        .user_verification_policy(UserVerificationPolicy::Required);
    let (ccr, reg_state) = core.generate_challenge_register(builder).unwrap();
    let options = serde_json::to_value(&ccr).unwrap()["publicKey"].clone();
    let (soft, response) = SoftCredential::register(&options, origin, &Tamper::default());
    let reg: RegisterPublicKeyCredential = serde_json::from_value(response).unwrap();
    let credential = core.register_credential(&reg, &reg_state, None).unwrap();
    (core, credential, soft)
}
