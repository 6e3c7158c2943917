//! Signed-action receipts: the server's statement "user U approved payload P at time T with
//! credential C, with (or without) user verification", signed so that anyone holding the
//! server's public key can check it later, and carrying the user's own assertion so that the
//! approval itself can be re-verified with the credential's public key.

use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::b64;

/// The receipt-signing key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptKeyError {
    /// Reading or writing the key file failed.
    #[error("receipt key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a P-256 PKCS#8 key.
    #[error("receipt key {0} is not a P-256 PKCS#8 private key")]
    Invalid(String),
}

/// The server's receipt signer (ECDSA P-256, SHA-256).
#[derive(Debug)]
pub struct ReceiptSigner {
    key: EcdsaKeyPair,
    key_id: String,
    spki: Vec<u8>,
    /// HMAC keyed by the private key's PKCS#8 bytes: the root of secrets every instance of a
    /// deployment must share (they share this key), derived by label.
    secret_root: aws_lc_rs::hmac::Key,
}

/// `SubjectPublicKeyInfo` DER prefix for an uncompressed P-256 point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl ReceiptSigner {
    /// Loads the PKCS#8 key at `path`, or creates one there (0600, written atomically) when the
    /// file does not exist. Instances of one deployment must share the file.
    pub fn load_or_create(path: &Path) -> Result<Self, ReceiptKeyError> {
        let io = |source| ReceiptKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let pkcs8 = match std::fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| ReceiptKeyError::Invalid(path.display().to_string()))?;
                write_private_file(path, doc.as_ref()).map_err(io)?;
                // Read back what is on disk: when two instances start together, the one whose
                // link lost uses the winner's key, so all of them sign with the same key.
                Zeroizing::new(std::fs::read(path).map_err(io)?)
            }
            Err(e) => return Err(io(e)),
        };
        Self::from_pkcs8(&pkcs8).map_err(|_| ReceiptKeyError::Invalid(path.display().to_string()))
    }

    /// A signer from PKCS#8 bytes.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, aws_lc_rs::error::KeyRejected> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(key.public_key().as_ref());
        let key_id = b64::encode(&digest(&SHA256, &spki).as_ref()[..16]);
        let secret_root = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pkcs8);
        Ok(Self {
            key,
            key_id,
            spki,
            secret_root,
        })
    }

    /// A 32-byte secret for `label`, derived from the private key (HMAC-SHA256): the same on
    /// every instance that shares the key, unrelated across labels, revealing nothing of the
    /// key.
    pub fn derive_secret(&self, label: &str) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(
            aws_lc_rs::hmac::sign(&self.secret_root, label.as_bytes())
                .as_ref()
                .to_vec(),
        )
    }

    /// The key ID: base64url of the first 16 bytes of SHA-256(SPKI).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as `SubjectPublicKeyInfo` DER.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        let point = self.key.public_key().as_ref();
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64::encode(point.get(1..33).unwrap_or_default()),
            "y": b64::encode(point.get(33..65).unwrap_or_default()),
            "alg": "ES256",
            "use": "sig",
            "kid": self.key_id,
        })
    }

    /// Signs the exact bytes of a receipt (DER ECDSA signature).
    pub fn sign(&self, receipt_json: &str) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        Ok(self
            .key
            .sign(&SystemRandom::new(), receipt_json.as_bytes())?
            .as_ref()
            .to_vec())
    }

    /// Verifies a receipt against this server's key.
    pub fn verify(&self, receipt_json: &str, signature: &[u8]) -> bool {
        verify_receipt(self.key.public_key().as_ref(), receipt_json, signature)
    }
}

/// Verifies a receipt signature with a server public key (SEC1 uncompressed point): what any
/// third party does, here for tests and for `POST /api/receipts/verify`.
pub fn verify_receipt(public_point: &[u8], receipt_json: &str, signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_point)
        .verify(receipt_json.as_bytes(), signature)
        .is_ok()
}

/// The body of a receipt. Field order is fixed (serialisation follows declaration order) and the
/// signature covers the exact serialised string, which is returned alongside.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Always `passgate.action-receipt.v1`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Receipt ID.
    pub id: String,
    /// The RP ID.
    pub rp_id: String,
    /// The approving user's handle (base64url).
    pub user_id: String,
    /// The approving user's name.
    pub user_name: String,
    /// The credential that signed (base64url).
    pub credential_id: String,
    /// The credential's COSE public key (base64url), to re-verify `assertion`.
    pub credential_public_key: String,
    /// The payload approved, exactly as submitted.
    pub payload: String,
    /// SHA-256 of the payload's UTF-8 bytes (base64url).
    pub payload_sha256: String,
    /// The client that built the signed clientDataJSON says its trusted prompt showed
    /// `payload` to the person before the signature (`"passgatePayloadShown": true`, which
    /// passgate's bridge adds only when it did). `false` when the client does not say so (a
    /// browser's own authenticator shows the site, not the text): the person approved a
    /// challenge they did not see spelled out.
    pub payload_shown: bool,
    /// The challenge signed: a 16-byte nonce followed by `payloadSha256` (base64url).
    pub challenge: String,
    /// When the server verified the approval, unix milliseconds.
    pub approved_at: i64,
    /// The UV flag: the user was verified on the device (biometric or PIN).
    pub user_verified: bool,
    /// The origin the approval came from.
    pub origin: String,
    /// The user's assertion, as sent: authenticatorData, clientDataJSON, signature (base64url).
    pub assertion: ReceiptAssertion,
}

/// The assertion inside a receipt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptAssertion {
    /// base64url authenticator data.
    pub authenticator_data: String,
    /// base64url clientDataJSON.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url signature.
    pub signature: String,
}

/// The clientDataJSON member in which passgate's bridge says it showed the payload.
pub const PAYLOAD_SHOWN_MEMBER: &str = "passgatePayloadShown";

/// Whether the signed `client_data_json` (the raw bytes) says the payload was shown.
pub fn client_data_says_payload_shown(client_data_json: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(client_data_json)
        .ok()
        .and_then(|v| {
            v.get(PAYLOAD_SHOWN_MEMBER)
                .and_then(serde_json::Value::as_bool)
        })
        .unwrap_or(false)
}

/// The challenge for approving `payload`: 16 random bytes, then SHA-256(payload).
pub fn action_challenge(nonce: &[u8; 16], payload: &str) -> Vec<u8> {
    let mut challenge = nonce.to_vec();
    challenge.extend_from_slice(digest(&SHA256, payload.as_bytes()).as_ref());
    challenge
}

/// Creates a private (0600) file atomically and durably, creating its directory (0700) where missing;
/// an existing file is kept. A second instance may have created the key meanwhile: keeping the
/// first one (a hard link fails if the target exists) means every instance ends up with the
/// same key.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::private_file::create_new_atomic(path, bytes).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_private_and_signs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.p8");
        let a = ReceiptSigner::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = ReceiptSigner::load_or_create(&path).unwrap();
        assert_eq!(a.spki(), b.spki());
        assert_eq!(a.spki().len(), 91);
        let sig = a.sign("{\"x\":1}").unwrap();
        assert!(b.verify("{\"x\":1}", &sig));
        assert!(!b.verify("{\"x\":2}", &sig));
        std::fs::write(&path, b"junk").unwrap();
        assert!(matches!(
            ReceiptSigner::load_or_create(&path),
            Err(ReceiptKeyError::Invalid(_))
        ));
    }

    #[test]
    fn instances_starting_together_end_up_with_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.p8");
        let barrier = std::sync::Barrier::new(8);
        let spkis: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        ReceiptSigner::load_or_create(&path)
                            .unwrap()
                            .spki()
                            .to_vec()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk = ReceiptSigner::load_or_create(&path).unwrap();
        assert!(spkis.iter().all(|s| s == on_disk.spki()));
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn only_the_clients_own_word_says_the_payload_was_shown() {
        assert!(client_data_says_payload_shown(
            br#"{"type":"webauthn.get","challenge":"AQID","origin":"https://a.example","crossOrigin":false,"passgatePayloadShown":true}"#
        ));
        for other in [
            &br#"{"type":"webauthn.get","challenge":"AQID","origin":"https://a.example","crossOrigin":false}"#[..],
            br#"{"type":"webauthn.get","passgatePayloadShown":"true"}"#,
            br#"{"type":"webauthn.get","passgatePayloadShown":false}"#,
            b"not json",
        ] {
            assert!(!client_data_says_payload_shown(other));
        }
    }

    #[test]
    fn challenge_commits_to_the_payload() {
        let c = action_challenge(&[7; 16], "pay 10 EUR");
        assert_eq!(c.len(), 48);
        assert_eq!(&c[..16], &[7; 16]);
        assert_eq!(&c[16..], digest(&SHA256, b"pay 10 EUR").as_ref());
    }
}
