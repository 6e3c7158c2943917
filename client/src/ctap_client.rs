//! [`CtapClient`]: one authenticator behind a transport, spoken to with proto's typed requests.
//! Every error keeps the authenticator's status byte ([`ClientError::Status`]), so the bridge can
//! name DOMExceptions and the app APIs can tell a wrong finger from a locked-out sensor.

use std::sync::{Arc, Mutex, PoisonError};

use ciborium::value::Value;
use passgate_platform_api::ctap_handler::LocalAuthenticator;
use passgate_platform_api::user_verifier::Interaction;
use passgate_proto::ctap::client_pin::{self, SubCommand};
use passgate_proto::ctap::{
    self, Permissions, StatusCode, get_assertion, get_info, make_credential,
};
use zeroize::Zeroizing;

use crate::error::ClientError;
use crate::info::AuthenticatorInfo;
use crate::pin::{self, SharedSecret};
use crate::transport::{CtapTransport, InProcess};

/// A pinUvAuthToken obtained with the PIN, for one operation. Zeroized on drop.
pub struct PinToken {
    token: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinToken(..)")
    }
}

impl PinToken {
    /// The pinUvAuthParam/protocol pair that authorises a request over `client_data_hash`.
    pub fn authorise(&self, client_data_hash: &[u8]) -> ctap::PinUvAuth {
        pin::pin_uv_auth(&self.token, client_data_hash)
    }
}

/// An authenticator behind a transport (and, in this process, the authenticator itself).
pub struct CtapClient {
    transport: Mutex<Box<dyn CtapTransport>>,
    local: Option<Arc<Mutex<dyn LocalAuthenticator>>>,
}

impl std::fmt::Debug for CtapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtapClient")
            .field("in_process", &self.local.is_some())
            .finish_non_exhaustive()
    }
}

impl CtapClient {
    /// An authenticator in this process.
    pub fn in_process<A: LocalAuthenticator + 'static>(authenticator: Arc<Mutex<A>>) -> Self {
        let transport = InProcess::shared(Arc::clone(&authenticator));
        Self {
            transport: Mutex::new(Box::new(transport)),
            local: Some(authenticator),
        }
    }

    /// An authenticator behind any transport (e.g. `TcpCtapHid` to `passgate authenticator
    /// serve`).
    pub fn remote(transport: Box<dyn CtapTransport>) -> Self {
        Self {
            transport: Mutex::new(transport),
            local: None,
        }
    }

    /// The authenticator, when it runs in this process.
    pub fn local(&self) -> Option<&Arc<Mutex<dyn LocalAuthenticator>>> {
        self.local.as_ref()
    }

    /// Runs one CTAP command given as a value (for requests proto does not type).
    pub fn call(
        &self,
        cmd: u8,
        params: Option<&Value>,
        interaction: &Interaction,
    ) -> Result<Value, ClientError> {
        let response = self.exchange(&crate::cbor::request(cmd, params), interaction)?;
        crate::cbor::reply(&response)?.map_err(ClientError::Status)
    }

    /// Sends a typed request and decodes the typed response.
    pub fn send<Q: ctap::Request, A: ctap::Response>(
        &self,
        request: &Q,
        interaction: &Interaction,
    ) -> Result<A, ClientError> {
        let message = request
            .encode()
            .map_err(|e| ClientError::protocol(format!("request not encodable: {e}")))?;
        let response = self.exchange(&message, interaction)?;
        match ctap::split_response(&response) {
            Ok(body) => Ok(A::decode(body)?),
            Err(ctap::ResponseStatus::Error(status)) => Err(ClientError::Status(status)),
            Err(ctap::ResponseStatus::Empty) => Err(ClientError::protocol(
                "the authenticator sent an empty response",
            )),
        }
    }

    fn exchange(&self, message: &[u8], interaction: &Interaction) -> Result<Vec<u8>, ClientError> {
        Ok(self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .call(message, interaction)?)
    }

    /// authenticatorGetInfo, as a client reads it.
    pub fn info(&self) -> Result<AuthenticatorInfo, ClientError> {
        Ok(AuthenticatorInfo::parse(&self.call(
            ctap::Command::GetInfo.byte(),
            None,
            &Interaction::new(),
        )?))
    }

    /// authenticatorGetInfo, every member as sent.
    pub fn info_response(&self) -> Result<get_info::Response, ClientError> {
        self.send(&get_info::Request, &Interaction::new())
    }

    /// Built-in verifications left before lockout (`None` without a built-in method).
    pub fn uv_retries(&self) -> Result<Option<u8>, ClientError> {
        let request = pin::subcommand_request(SubCommand::GET_UV_RETRIES);
        match self.send::<_, client_pin::Response>(&request, &Interaction::new()) {
            Ok(r) => Ok(r.uv_retries),
            Err(e) if e.is(StatusCode::InvalidSubcommand) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// PIN tries left.
    pub fn pin_retries(&self) -> Result<u8, ClientError> {
        let request = pin::subcommand_request(SubCommand::GET_PIN_RETRIES);
        let r: client_pin::Response = self.send(&request, &Interaction::new())?;
        r.pin_retries.ok_or_else(|| {
            ClientError::protocol("the authenticator's answer is malformed: no pinRetries")
        })
    }

    /// A fresh shared secret (getKeyAgreement).
    pub fn shared_secret(&self, interaction: &Interaction) -> Result<SharedSecret, ClientError> {
        let request = pin::subcommand_request(SubCommand::GET_KEY_AGREEMENT);
        SharedSecret::establish(&self.send(&request, interaction)?)
    }

    /// A pinUvAuthToken for `permissions` on `rp_id`, from the PIN (subcommand 0x09). A wrong
    /// PIN is `Status(PIN_INVALID)`; the authenticator counts it.
    pub fn pin_token(
        &self,
        pin_text: &str,
        permissions: Permissions,
        rp_id: &str,
        interaction: &Interaction,
    ) -> Result<PinToken, ClientError> {
        let secret = self.shared_secret(interaction)?;
        let response: client_pin::Response = self.send(
            &pin::token_request(&secret, pin_text, permissions, rp_id)?,
            interaction,
        )?;
        Ok(PinToken {
            token: secret.token(&response)?,
        })
    }

    /// Sets the first PIN.
    pub fn set_pin(&self, new_pin: &str) -> Result<(), ClientError> {
        let interaction = Interaction::new();
        let secret = self.shared_secret(&interaction)?;
        let _: client_pin::Response =
            self.send(&pin::set_pin_request(&secret, new_pin)?, &interaction)?;
        Ok(())
    }

    /// authenticatorMakeCredential.
    pub fn make_credential(
        &self,
        request: &make_credential::Request,
        interaction: &Interaction,
    ) -> Result<make_credential::Response, ClientError> {
        self.send(request, interaction)
    }

    /// authenticatorGetAssertion.
    pub fn get_assertion(
        &self,
        request: &get_assertion::Request,
        interaction: &Interaction,
    ) -> Result<get_assertion::Response, ClientError> {
        self.send(request, interaction)
    }
}

/// Whether `rp_id_hash` (from authenticator data) is SHA-256 of `rp_id`.
pub fn is_rp_id_hash(rp_id_hash: &[u8; 32], rp_id: &str) -> bool {
    let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, rp_id.as_bytes());
    rp_id_hash.as_slice() == expected.as_ref()
}
