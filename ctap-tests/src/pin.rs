//! The platform side of PIN/UV auth protocols 1 and 2 (CTAP 2.1 §6.5.6–6.5.7).

use aws_lc_rs::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use aws_lc_rs::cipher::{
    AES_256, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::{digest, hmac};
use ciborium::value::Value;

use crate::cbor::{as_int, bytes, get, imap, int};

/// A shared secret established with the authenticator.
pub struct SharedSecret {
    /// Protocol number (1 or 2).
    pub protocol: u8,
    /// The derived secret (32 bytes for protocol 1, 64 for protocol 2).
    pub secret: Vec<u8>,
    /// The platform's COSE key to send as keyAgreement.
    pub platform_key: Value,
}

/// Performs ECDH with the authenticator's COSE key and derives the protocol's secret.
pub fn agree(protocol: u8, authenticator_key: &Value) -> Result<SharedSecret, String> {
    let x = get(authenticator_key, -2)
        .and_then(Value::as_bytes)
        .ok_or("keyAgreement lacks x")?;
    let y = get(authenticator_key, -3)
        .and_then(Value::as_bytes)
        .ok_or("keyAgreement lacks y")?;
    if as_int(get(authenticator_key, 1)) != Some(2)
        || as_int(get(authenticator_key, 3)) != Some(-25)
    {
        return Err("keyAgreement is not an EC2 key with alg -25".into());
    }
    let point = [&[4u8][..], x, y].concat();
    let private =
        EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new()).map_err(|_| "keygen")?;
    let public = private.compute_public_key().map_err(|_| "public key")?;
    let public = public.as_ref();
    let platform_key = imap(vec![
        (1, int(2)),
        (3, int(-25)),
        (-1, int(1)),
        (-2, bytes(&public[1..33])),
        (-3, bytes(&public[33..65])),
    ]);
    let secret = agreement::agree_ephemeral(
        private,
        UnparsedPublicKey::new(&ECDH_P256, &point),
        "ECDH failed",
        |z| {
            Ok(match protocol {
                1 => digest::digest(&digest::SHA256, z).as_ref().to_vec(),
                _ => {
                    let prk = Salt::new(HKDF_SHA256, &[0u8; 32]).extract(z);
                    let mut out = vec![0u8; 64];
                    for (info, range) in [
                        (&b"CTAP2 HMAC key"[..], 0..32),
                        (&b"CTAP2 AES key"[..], 32..64),
                    ] {
                        prk.expand(&[info], HKDF_SHA256)
                            .and_then(|okm| okm.fill(&mut out[range]))
                            .map_err(|_| "HKDF failed")?;
                    }
                    out
                }
            })
        },
    )?;
    Ok(SharedSecret {
        protocol,
        secret,
        platform_key,
    })
}

impl SharedSecret {
    fn aes_key(&self) -> &[u8] {
        if self.protocol == 1 {
            &self.secret[..32]
        } else {
            &self.secret[32..64]
        }
    }

    /// Encrypts whole blocks.
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let iv: [u8; 16] = if self.protocol == 1 {
            [0; 16]
        } else {
            let mut iv = [0u8; 16];
            let _ = aws_lc_rs::rand::fill(&mut iv);
            iv
        };
        let mut out = plaintext.to_vec();
        if let Ok(key) =
            UnboundCipherKey::new(&AES_256, self.aes_key()).and_then(EncryptingKey::cbc)
        {
            let _ =
                key.less_safe_encrypt(&mut out, EncryptionContext::Iv128(FixedLength::from(iv)));
        }
        if self.protocol == 1 {
            out
        } else {
            [&iv[..], &out].concat()
        }
    }

    /// Decrypts.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        let (iv, body) = if self.protocol == 1 {
            ([0u8; 16], ciphertext)
        } else {
            let (iv, body) = ciphertext.split_at(16.min(ciphertext.len()));
            (
                iv.try_into().map_err(|_| "ciphertext shorter than an IV")?,
                body,
            )
        };
        let key = UnboundCipherKey::new(&AES_256, self.aes_key())
            .and_then(DecryptingKey::cbc)
            .map_err(|_| "AES key")?;
        let mut out = body.to_vec();
        let len = key
            .decrypt(&mut out, DecryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| "decryption failed")?
            .len();
        out.truncate(len);
        Ok(out)
    }

    /// The MAC with the shared secret.
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        authenticate(self.protocol, &self.secret[..32], message)
    }
}

/// The MAC of a protocol with `key` (a token, or the HMAC half of a shared secret).
pub fn authenticate(protocol: u8, key: &[u8], message: &[u8]) -> Vec<u8> {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    if protocol == 1 {
        tag.as_ref()[..16].to_vec()
    } else {
        tag.as_ref().to_vec()
    }
}

/// LEFT(SHA-256(pin), 16).
pub fn pin_hash(pin: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, pin.as_bytes()).as_ref()[..16].to_vec()
}

/// A PIN padded to 64 bytes.
pub fn padded(pin: &str) -> Vec<u8> {
    let mut p = pin.as_bytes().to_vec();
    p.resize(64, 0);
    p
}
