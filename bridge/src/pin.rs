//! The platform side of PIN/UV auth protocol 2 (CTAP 2.1 §6.5): the shared secret, the
//! authenticatorClientPIN requests (setting a PIN, pinUvAuthTokens, retries), and the
//! hmac-secret input and salts the PRF extension rides on.

use ciborium::value::Value;
use passgate_authenticator::ctap::pin_protocol::{KeyAgreement, Protocol};
use zeroize::Zeroizing;

use crate::cbor::{bytes, int_key, int_map};
use crate::error::BridgeError;

/// The protocol this client speaks (the authenticator offers 2 and 1; 2 is preferred).
pub const PROTOCOL: Protocol = Protocol::Two;
/// Its number on the wire.
pub const PROTOCOL_NUMBER: i64 = 2;

/// authenticatorClientPIN subcommands used here.
pub mod sub {
    /// getPINRetries.
    pub const GET_RETRIES: i64 = 0x01;
    /// getKeyAgreement.
    pub const GET_KEY_AGREEMENT: i64 = 0x02;
    /// setPIN.
    pub const SET_PIN: i64 = 0x03;
    /// getUVRetries.
    pub const GET_UV_RETRIES: i64 = 0x07;
    /// getPinUvAuthTokenUsingPinWithPermissions.
    pub const GET_TOKEN_USING_PIN: i64 = 0x09;
}

/// An authenticatorClientPIN request that carries only the protocol and `subcommand`
/// (getPINRetries, getKeyAgreement, getUVRetries).
pub fn subcommand_request(subcommand: i64) -> Value {
    int_map(vec![
        (1, Value::Integer(PROTOCOL_NUMBER.into())),
        (2, Value::Integer(subcommand.into())),
    ])
}

/// getPinUvAuthTokenUsingPinWithPermissions: a token for `permissions` on `rp_id`, from `pin`.
pub fn token_request(
    secret: &Shared,
    pin: &str,
    permissions: i64,
    rp_id: &str,
) -> Result<Value, BridgeError> {
    Ok(int_map(vec![
        (1, Value::Integer(PROTOCOL_NUMBER.into())),
        (2, Value::Integer(sub::GET_TOKEN_USING_PIN.into())),
        (3, secret.platform_key.clone()),
        (6, Value::Bytes(secret.pin_hash_enc(pin)?)),
        (9, Value::Integer(permissions.into())),
        (10, Value::Text(rp_id.to_owned())),
    ]))
}

/// setPIN: the authenticator's first PIN, `new_pin` (at most 63 bytes).
pub fn set_pin_request(secret: &Shared, new_pin: &str) -> Result<Value, BridgeError> {
    let new_pin_enc = secret.new_pin_enc(new_pin)?;
    let param = secret.authenticate(&new_pin_enc);
    Ok(int_map(vec![
        (1, Value::Integer(PROTOCOL_NUMBER.into())),
        (2, Value::Integer(sub::SET_PIN.into())),
        (3, secret.platform_key.clone()),
        (4, Value::Bytes(param)),
        (5, Value::Bytes(new_pin_enc)),
    ]))
}

/// pinUvAuthToken permissions.
pub mod permission {
    /// makeCredential.
    pub const MC: i64 = 0x01;
    /// getAssertion.
    pub const GA: i64 = 0x02;
}

/// A shared secret with the authenticator and the platform key that made it.
pub struct Shared {
    /// The platform's COSE public key, sent as keyAgreement.
    pub platform_key: Value,
    /// The 64-byte protocol 2 shared secret.
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared(..)")
    }
}

fn internal(what: &str) -> BridgeError {
    BridgeError::unknown(format!("PIN protocol: {what}"))
}

impl Shared {
    /// ECDH with the authenticator's key-agreement key (the getKeyAgreement response map).
    pub fn establish(get_key_agreement_response: &Value) -> Result<Self, BridgeError> {
        let peer = int_key(get_key_agreement_response, 1)
            .ok_or_else(|| internal("no keyAgreement in the response"))?
            .clone();
        let platform = KeyAgreement::generate().map_err(|_| internal("no key pair"))?;
        let secret = platform
            .decapsulate(PROTOCOL, peer)
            .map_err(|_| internal("the authenticator's key is not a P-256 point"))?;
        Ok(Self {
            platform_key: platform.cose_public_key(),
            secret,
        })
    }

    /// Encrypts under the shared secret.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, BridgeError> {
        PROTOCOL
            .encrypt(&self.secret, plaintext)
            .map_err(|_| internal("encryption failed"))
    }

    /// Decrypts under the shared secret.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        PROTOCOL
            .decrypt(&self.secret, ciphertext)
            .map_err(|_| internal("the authenticator's ciphertext does not decrypt"))
    }

    /// authenticate(sharedSecret, message).
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        PROTOCOL.authenticate(&self.secret, message)
    }

    /// `pinHashEnc`: the first 16 bytes of SHA-256(PIN), encrypted.
    pub fn pin_hash_enc(&self, pin: &str) -> Result<Vec<u8>, BridgeError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pin.as_bytes());
        self.encrypt(digest.as_ref().get(..16).unwrap_or_default())
    }

    /// `newPinEnc`: the PIN padded with zeros to 64 bytes, encrypted.
    pub fn new_pin_enc(&self, pin: &str) -> Result<Vec<u8>, BridgeError> {
        if pin.len() > 63 {
            return Err(BridgeError::new(
                crate::error::ErrorName::ConstraintError,
                "a PIN is at most 63 bytes",
            ));
        }
        let mut padded = Zeroizing::new(vec![0u8; 64]);
        padded
            .get_mut(..pin.len())
            .ok_or_else(|| internal("PIN too long"))?
            .copy_from_slice(pin.as_bytes());
        self.encrypt(&padded)
    }

    /// The hmac-secret (or hmac-secret-mc) extension input for `salts` (32 or 64 bytes):
    /// keyAgreement, saltEnc, saltAuth and the protocol.
    pub fn hmac_secret_input(&self, salts: &[u8]) -> Result<Value, BridgeError> {
        let salt_enc = self.encrypt(salts)?;
        let salt_auth = self.authenticate(&salt_enc);
        Ok(int_map(vec![
            (1, self.platform_key.clone()),
            (2, Value::Bytes(salt_enc)),
            (3, Value::Bytes(salt_auth)),
            (4, Value::Integer(PROTOCOL_NUMBER.into())),
        ]))
    }

    /// Decrypts the pinUvAuthToken of a getPinUvAuthToken* response.
    pub fn token(&self, response: &Value) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        let enc = bytes(int_key(response, 2)).ok_or_else(|| internal("no pinUvAuthToken"))?;
        let token = self.decrypt(enc)?;
        if token.len() != 32 {
            return Err(internal("the pinUvAuthToken is not 32 bytes"));
        }
        Ok(token)
    }
}

/// The pinUvAuthParam for a makeCredential/getAssertion: authenticate(token, clientDataHash).
pub fn pin_uv_auth_param(token: &[u8], client_data_hash: &[u8]) -> Vec<u8> {
    PROTOCOL.authenticate(token, client_data_hash)
}

/// The `pinUvAuthParam` and `pinUvAuthProtocol` members of a makeCredential (keys 8, 9) or
/// getAssertion (keys 6, 7) that `token` verifies: `param_key` is the first of the two.
pub fn uv_auth_entries(param_key: i64, token: &[u8], client_data_hash: &[u8]) -> [(i64, Value); 2] {
    [
        (
            param_key,
            Value::Bytes(pin_uv_auth_param(token, client_data_hash)),
        ),
        (param_key + 1, Value::Integer(PROTOCOL_NUMBER.into())),
    ]
}

/// The WebAuthn PRF salt for an input: SHA-256("WebAuthn PRF" || 0x00 || input) (§10.1.4).
pub fn prf_salt(input: &[u8]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"WebAuthn PRF");
    ctx.update(&[0]);
    ctx.update(input);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prf_salt_is_the_domain_separated_hash() {
        let expected =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"WebAuthn PRF\x00hello");
        assert_eq!(prf_salt(b"hello"), expected.as_ref());
        assert_ne!(prf_salt(b"hello"), prf_salt(b"hellp"));
    }

    #[test]
    fn both_sides_agree_on_the_secret() {
        let authenticator = KeyAgreement::generate().unwrap();
        let response = Value::Map(vec![(
            Value::Integer(1.into()),
            authenticator.cose_public_key(),
        )]);
        let shared = Shared::establish(&response).unwrap();
        let theirs = authenticator
            .decapsulate(PROTOCOL, shared.platform_key.clone())
            .unwrap();
        assert_eq!(*theirs, *shared.secret);
        let enc = shared.new_pin_enc("1234").unwrap();
        let plain = PROTOCOL.decrypt(&theirs, &enc).unwrap();
        assert_eq!(&plain[..4], b"1234");
        assert!(plain[4..].iter().all(|&b| b == 0));
        assert_eq!(plain.len(), 64);
        assert!(shared.new_pin_enc(&"x".repeat(64)).is_err());
        assert!(Shared::establish(&Value::Map(vec![])).is_err());
    }
}
