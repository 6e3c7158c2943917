//! The platform side of PIN/UV auth protocol 2 (CTAP 2.1 §6.5): the shared secret, the
//! typed authenticatorClientPIN requests (setting a PIN, pinUvAuthTokens, retries), and the
//! hmac-secret input and salts the PRF extension rides on.

use ciborium::value::Value;
use passgate_proto::ctap::Permissions;
use passgate_proto::ctap::PinUvAuth;
use passgate_proto::ctap::client_pin::{self, SubCommand};
use passgate_proto::ctap::extensions::HmacSecretInput;
use passgate_proto::ctap::pin_protocol::{KeyAgreement, Protocol};
use zeroize::Zeroizing;

use crate::error::ClientError;

/// The protocol this client speaks (the authenticator offers 2 and 1; 2 is preferred).
pub const PROTOCOL: Protocol = Protocol::Two;
/// Its number on the wire.
pub const PROTOCOL_NUMBER: u8 = 2;

/// An authenticatorClientPIN request that carries only the protocol and `sub_command`
/// (getPINRetries, getKeyAgreement, getUVRetries).
pub fn subcommand_request(sub_command: SubCommand) -> client_pin::Request {
    client_pin::Request::new(PROTOCOL_NUMBER, sub_command)
}

/// getPinUvAuthTokenUsingPinWithPermissions: a token for `permissions` on `rp_id`, from `pin`.
pub fn token_request(
    secret: &SharedSecret,
    pin: &str,
    permissions: Permissions,
    rp_id: &str,
) -> Result<client_pin::Request, ClientError> {
    let mut request = subcommand_request(SubCommand::GET_TOKEN_USING_PIN);
    request.key_agreement = Some(secret.platform_key.clone());
    request.pin_hash_enc = Some(secret.pin_hash_enc(pin)?);
    request.permissions = Some(permissions);
    request.rp_id = Some(rp_id.to_owned());
    Ok(request)
}

/// setPIN: the authenticator's first PIN, `new_pin` (at most 63 bytes).
pub fn set_pin_request(
    secret: &SharedSecret,
    new_pin: &str,
) -> Result<client_pin::Request, ClientError> {
    let new_pin_enc = secret.new_pin_enc(new_pin)?;
    let mut request = subcommand_request(SubCommand::SET_PIN);
    request.key_agreement = Some(secret.platform_key.clone());
    request.pin_uv_auth_param = Some(secret.authenticate(&new_pin_enc));
    request.new_pin_enc = Some(new_pin_enc);
    Ok(request)
}

/// A shared secret with the authenticator and the platform key that made it.
pub struct SharedSecret {
    /// The platform's COSE public key, sent as keyAgreement.
    pub platform_key: Value,
    /// The 64-byte protocol 2 shared secret.
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

fn internal(what: &str) -> ClientError {
    ClientError::protocol(format!("PIN protocol: {what}"))
}

impl SharedSecret {
    /// ECDH with the authenticator's key-agreement key (from the getKeyAgreement response).
    pub fn establish(
        get_key_agreement_response: &client_pin::Response,
    ) -> Result<Self, ClientError> {
        let peer = get_key_agreement_response
            .key_agreement
            .clone()
            .ok_or_else(|| internal("no keyAgreement in the response"))?;
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
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, ClientError> {
        PROTOCOL
            .encrypt(&self.secret, plaintext)
            .map_err(|_| internal("encryption failed"))
    }

    /// Decrypts under the shared secret.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        PROTOCOL
            .decrypt(&self.secret, ciphertext)
            .map_err(|_| internal("the authenticator's ciphertext does not decrypt"))
    }

    /// authenticate(sharedSecret, message).
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        PROTOCOL.authenticate(&self.secret, message)
    }

    /// `pinHashEnc`: the first 16 bytes of SHA-256(PIN), encrypted.
    pub fn pin_hash_enc(&self, pin: &str) -> Result<Vec<u8>, ClientError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pin.as_bytes());
        self.encrypt(digest.as_ref().get(..16).unwrap_or_default())
    }

    /// `newPinEnc`: the PIN padded with zeros to 64 bytes, encrypted.
    pub fn new_pin_enc(&self, pin: &str) -> Result<Vec<u8>, ClientError> {
        if pin.len() > 63 {
            return Err(ClientError::PinTooLong);
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
    pub fn hmac_secret_input(&self, salts: &[u8]) -> Result<HmacSecretInput, ClientError> {
        let salt_enc = self.encrypt(salts)?;
        let salt_auth = self.authenticate(&salt_enc);
        Ok(HmacSecretInput {
            key_agreement: self.platform_key.clone(),
            salt_enc,
            salt_auth,
            protocol: Some(u64::from(PROTOCOL_NUMBER)),
        })
    }

    /// Decrypts the pinUvAuthToken of a getPinUvAuthToken* response.
    pub fn token(
        &self,
        response: &client_pin::Response,
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let enc = response
            .pin_uv_auth_token
            .as_deref()
            .ok_or_else(|| internal("no pinUvAuthToken"))?;
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

/// The pinUvAuthParam/pinUvAuthProtocol pair of a makeCredential or getAssertion that `token`
/// authorises.
pub fn pin_uv_auth(token: &[u8], client_data_hash: &[u8]) -> PinUvAuth {
    PinUvAuth {
        param: pin_uv_auth_param(token, client_data_hash),
        protocol: Some(u64::from(PROTOCOL_NUMBER)),
    }
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
        let response = client_pin::Response {
            key_agreement: Some(authenticator.cose_public_key()),
            ..client_pin::Response::default()
        };
        let shared = SharedSecret::establish(&response).unwrap();
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
        assert!(SharedSecret::establish(&client_pin::Response::default()).is_err());
    }
}
