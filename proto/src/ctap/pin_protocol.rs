//! PIN/UV auth protocols 1 and 2 (CTAP 2.1 §6.5.6, §6.5.7): the key agreement, key derivation,
//! encryption and MACs that protect PINs and pinUvAuthTokens between platform and
//! authenticator.

use aws_lc_rs::agreement::{self, ECDH_P256, UnparsedPublicKey};
use aws_lc_rs::cipher::{
    AES_256, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::{constant_time, digest, hmac, iv::FixedLength};
use ciborium::value::Value;
use zeroize::Zeroizing;

use super::cbor::{ValueExt, int, int_map};
use super::status::StatusCode;

/// The protocols this authenticator speaks, in order of preference (reported in getInfo).
pub const SUPPORTED: [u64; 2] = [2, 1];

/// A PIN/UV auth protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Protocol 1: SHA-256 KDF, AES-256-CBC with a zero IV, 16-byte HMAC.
    One,
    /// Protocol 2: HKDF, AES-256-CBC with a random IV, 32-byte HMAC.
    Two,
}

impl Protocol {
    /// The protocol for a pinUvAuthProtocol number; unknown numbers are INVALID_PARAMETER.
    pub fn from_number(n: u64) -> Result<Self, StatusCode> {
        match n {
            1 => Ok(Self::One),
            2 => Ok(Self::Two),
            _ => Err(StatusCode::InvalidParameter),
        }
    }

    /// Derives the shared secret from the ECDH x-coordinate `z`.
    fn kdf(self, z: &[u8]) -> Zeroizing<Vec<u8>> {
        match self {
            Self::One => Zeroizing::new(digest::digest(&digest::SHA256, z).as_ref().to_vec()),
            Self::Two => {
                let prk = Salt::new(HKDF_SHA256, &[0u8; 32]).extract(z);
                let mut out = Zeroizing::new(vec![0u8; 64]);
                for (info, range) in [
                    (&b"CTAP2 HMAC key"[..], 0..32),
                    (&b"CTAP2 AES key"[..], 32..64),
                ] {
                    if let Ok(okm) = prk.expand(&[info], HKDF_SHA256) {
                        let _ = okm.fill(&mut out[range]);
                    }
                }
                out
            }
        }
    }

    fn aes_key(self, shared: &[u8]) -> &[u8] {
        match self {
            Self::One => shared.get(..32).unwrap_or(shared),
            Self::Two => shared.get(32..64).unwrap_or(shared),
        }
    }

    fn hmac_key(self, key: &[u8]) -> &[u8] {
        // Protocol 2 uses the first 32 bytes of a 64-byte shared secret; a 32-byte token is
        // used whole by both protocols.
        key.get(..32).unwrap_or(key)
    }

    /// Encrypts `plaintext` (a multiple of 16 bytes) under a shared secret.
    pub fn encrypt(self, shared: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StatusCode> {
        if plaintext.len() % 16 != 0 {
            return Err(StatusCode::Other);
        }
        let key =
            UnboundCipherKey::new(&AES_256, self.aes_key(shared)).map_err(|_| StatusCode::Other)?;
        let key = EncryptingKey::cbc(key).map_err(|_| StatusCode::Other)?;
        let iv = match self {
            Self::One => [0u8; 16],
            Self::Two => {
                let mut iv = [0u8; 16];
                aws_lc_rs::rand::fill(&mut iv).map_err(|_| StatusCode::Other)?;
                iv
            }
        };
        let mut out = plaintext.to_vec();
        key.less_safe_encrypt(&mut out, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| StatusCode::Other)?;
        Ok(match self {
            Self::One => out,
            Self::Two => [&iv[..], &out].concat(),
        })
    }

    /// Decrypts a ciphertext; a length that is not whole blocks is INVALID_PARAMETER.
    pub fn decrypt(
        self,
        shared: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StatusCode> {
        let (iv, body) = match self {
            Self::One => ([0u8; 16], ciphertext),
            Self::Two => {
                if ciphertext.len() < 16 {
                    return Err(StatusCode::InvalidParameter);
                }
                let (iv, body) = ciphertext.split_at(16);
                let mut fixed = [0u8; 16];
                fixed.copy_from_slice(iv);
                (fixed, body)
            }
        };
        if body.is_empty() || body.len() % 16 != 0 {
            return Err(StatusCode::InvalidParameter);
        }
        let key =
            UnboundCipherKey::new(&AES_256, self.aes_key(shared)).map_err(|_| StatusCode::Other)?;
        let key = DecryptingKey::cbc(key).map_err(|_| StatusCode::Other)?;
        let mut out = Zeroizing::new(body.to_vec());
        key.decrypt(&mut out, DecryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| StatusCode::InvalidParameter)?;
        Ok(out)
    }

    /// The MAC a platform sends as pinUvAuthParam.
    pub fn authenticate(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, self.hmac_key(key)),
            message,
        );
        match self {
            Self::One => tag.as_ref()[..16].to_vec(),
            Self::Two => tag.as_ref().to_vec(),
        }
    }

    /// Checks a pinUvAuthParam in constant time.
    pub fn verify(self, key: &[u8], message: &[u8], param: &[u8]) -> bool {
        let expected = self.authenticate(key, message);
        param.len() == expected.len()
            && constant_time::verify_slices_are_equal(&expected, param).is_ok()
    }
}

/// The authenticator's key-agreement key pair, regenerated at start, after PIN mismatches
/// and on reset.
pub struct KeyAgreement {
    private: agreement::PrivateKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for KeyAgreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyAgreement(..)")
    }
}

impl KeyAgreement {
    /// A fresh P-256 key pair.
    pub fn generate() -> Result<Self, StatusCode> {
        let private = agreement::PrivateKey::generate(&ECDH_P256).map_err(|_| StatusCode::Other)?;
        let public = private
            .compute_public_key()
            .map_err(|_| StatusCode::Other)?
            .as_ref()
            .to_vec();
        Ok(Self { private, public })
    }

    /// getPublicKey(): the COSE_Key (kty EC2, alg -25 ECDH-ES+HKDF-256, crv P-256).
    pub fn cose_public_key(&self) -> Value {
        let (x, y) = self
            .public
            .get(1..)
            .unwrap_or_default()
            .split_at(32.min(self.public.len().saturating_sub(1)));
        int_map([
            (1, Some(int(2))),
            (3, Some(int(-25))),
            (-1, Some(int(1))),
            (-2, Some(Value::Bytes(x.to_vec()))),
            (-3, Some(Value::Bytes(y.to_vec()))),
        ])
    }

    /// decapsulate(peerCoseKey): ECDH with the platform's key and the protocol's KDF. A key
    /// that is malformed or not on the curve is INVALID_PARAMETER.
    pub fn decapsulate(
        &self,
        protocol: Protocol,
        peer: Value,
    ) -> Result<Zeroizing<Vec<u8>>, StatusCode> {
        let mut x = None;
        let mut y = None;
        let mut kty = None;
        let mut crv = None;
        for (k, v) in peer.ctap_map()? {
            match k.ctap_int()? {
                1 => kty = Some(v.ctap_int()?),
                -1 => crv = Some(v.ctap_int()?),
                -2 => x = Some(v.ctap_bytes()?),
                -3 => y = Some(v.ctap_bytes()?),
                _ => {}
            }
        }
        let (Some(x), Some(y)) = (x, y) else {
            return Err(StatusCode::MissingParameter);
        };
        if kty != Some(2) || crv != Some(1) || x.len() != 32 || y.len() != 32 {
            return Err(StatusCode::InvalidParameter);
        }
        let point = [&[0x04][..], &x, &y].concat();
        agreement::agree(
            &self.private,
            UnparsedPublicKey::new(&ECDH_P256, &point),
            StatusCode::InvalidParameter,
            |z| Ok(protocol.kdf(z)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_secret_and_round_trip() {
        let authenticator = KeyAgreement::generate().unwrap();
        let platform = KeyAgreement::generate().unwrap();
        for protocol in [Protocol::One, Protocol::Two] {
            let a = authenticator
                .decapsulate(protocol, platform.cose_public_key())
                .unwrap();
            let b = platform
                .decapsulate(protocol, authenticator.cose_public_key())
                .unwrap();
            assert_eq!(*a, *b);
            assert_eq!(a.len(), if protocol == Protocol::One { 32 } else { 64 });
            let ct = protocol.encrypt(&a, &[7u8; 64]).unwrap();
            assert_eq!(ct.len(), if protocol == Protocol::One { 64 } else { 80 });
            assert_eq!(*protocol.decrypt(&b, &ct).unwrap(), vec![7u8; 64]);
            let tag = protocol.authenticate(&a, b"msg");
            assert_eq!(tag.len(), if protocol == Protocol::One { 16 } else { 32 });
            assert!(protocol.verify(&b, b"msg", &tag));
            assert!(!protocol.verify(&b, b"msh", &tag));
            assert!(!protocol.verify(&b, b"msg", &tag[..8]));
        }
    }

    #[test]
    fn protocol_one_matches_known_construction() {
        // Protocol 1 encryption is AES-256-CBC with a zero IV: two equal blocks encrypt to
        // two different blocks only through chaining, and the MAC is HMAC-SHA-256 truncated.
        let key = [1u8; 32];
        let ct = Protocol::One.encrypt(&key, &[0u8; 32]).unwrap();
        assert_ne!(ct[..16], ct[16..]);
        let full = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), b"m");
        assert_eq!(
            Protocol::One.authenticate(&key, b"m"),
            full.as_ref()[..16].to_vec()
        );
    }

    #[test]
    fn malformed_peer_keys_are_rejected() {
        let ka = KeyAgreement::generate().unwrap();
        let bad_point = int_map([
            (1, Some(int(2))),
            (3, Some(int(-25))),
            (-1, Some(int(1))),
            (-2, Some(Value::Bytes(vec![1; 32]))),
            (-3, Some(Value::Bytes(vec![2; 32]))),
        ]);
        assert_eq!(
            ka.decapsulate(Protocol::Two, bad_point).err(),
            Some(StatusCode::InvalidParameter)
        );
        let missing_y = int_map([(1, Some(int(2))), (-2, Some(Value::Bytes(vec![1; 32])))]);
        assert_eq!(
            ka.decapsulate(Protocol::One, missing_y).err(),
            Some(StatusCode::MissingParameter)
        );
        assert_eq!(
            ka.decapsulate(Protocol::One, int(3)).err(),
            Some(StatusCode::CborUnexpectedType)
        );
        assert_eq!(
            Protocol::Two.decrypt(&[0; 64], &[0; 15]).err(),
            Some(StatusCode::InvalidParameter)
        );
        assert_eq!(
            Protocol::One.decrypt(&[0; 32], &[0; 17]).err(),
            Some(StatusCode::InvalidParameter)
        );
    }
}
