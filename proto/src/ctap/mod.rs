//! CTAP 2.1 messages as typed values with named fields: one module per command, each with its
//! `Request` (what a platform sends, what the authenticator decodes) and `Response`. Requests
//! encode to the command byte followed by canonical CBOR; responses to canonical CBOR (the
//! status byte is the transport's business). Decoding ignores unknown keys, as CTAP asks, and
//! names the field that is wrong.

pub mod canonical;
pub mod cbor;
pub mod client_pin;
pub mod config;
pub mod credential_management;
pub mod data;
pub mod extensions;
pub mod fields;
pub mod get_assertion;
pub mod get_info;
pub mod large_blobs;
pub mod make_credential;
pub mod permissions;
// The PIN/UV auth protocols' crypto needs aws-lc-rs (C code), which the platform backends that
// are checked for Apple and Windows targets cannot build: an opt-in feature.
#[cfg(feature = "pin-protocol")]
pub mod pin_protocol;
pub mod reset;
pub mod selection;
pub mod status;
pub mod strict;

use ciborium::value::Value;

pub use canonical::CanonicalError;
pub use fields::DecodeError;
pub use permissions::Permissions;
pub use status::StatusCode;

/// CTAP command bytes (CTAP 2.1 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    /// authenticatorMakeCredential.
    MakeCredential = 0x01,
    /// authenticatorGetAssertion.
    GetAssertion = 0x02,
    /// authenticatorGetInfo.
    GetInfo = 0x04,
    /// authenticatorClientPIN.
    ClientPin = 0x06,
    /// authenticatorReset.
    Reset = 0x07,
    /// authenticatorGetNextAssertion.
    GetNextAssertion = 0x08,
    /// authenticatorCredentialManagement.
    CredentialManagement = 0x0a,
    /// authenticatorSelection.
    Selection = 0x0b,
    /// authenticatorLargeBlobs.
    LargeBlobs = 0x0c,
    /// authenticatorConfig.
    Config = 0x0d,
    /// The CTAP 2.1 pre-release credential management command, still used by some platforms.
    CredentialManagementPreview = 0x41,
}

impl Command {
    /// The command byte.
    #[allow(clippy::as_conversions)] // A fieldless #[repr(u8)] enum: the cast is its discriminant.
    pub fn byte(self) -> u8 {
        self as u8
    }

    /// The command for a byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        [
            Self::MakeCredential,
            Self::GetAssertion,
            Self::GetInfo,
            Self::ClientPin,
            Self::Reset,
            Self::GetNextAssertion,
            Self::CredentialManagement,
            Self::Selection,
            Self::LargeBlobs,
            Self::Config,
            Self::CredentialManagementPreview,
        ]
        .into_iter()
        .find(|c| c.byte() == byte)
    }
}

/// A CTAP request: its command and its parameters.
pub trait Request {
    /// The command byte this request goes with.
    const COMMAND: Command;

    /// The parameter map, `None` for commands without parameters.
    fn to_value(&self) -> Option<Value>;

    /// The message: command byte, then the parameters in canonical CBOR.
    fn encode(&self) -> Result<Vec<u8>, CanonicalError> {
        let mut out = vec![Self::COMMAND.byte()];
        if let Some(params) = self.to_value() {
            canonical::encode_into(&params, &mut out)?;
        }
        Ok(out)
    }
}

/// A CTAP response body: decoded by the platform, encoded by the authenticator.
pub trait Response: Sized {
    /// The response map.
    fn to_value(&self) -> Value;

    /// Reads the response map.
    fn from_value(value: Value) -> Result<Self, DecodeError>;

    /// The body in canonical CBOR.
    fn encode(&self) -> Result<Vec<u8>, CanonicalError> {
        canonical::encode(&self.to_value())
    }

    /// Decodes a body (an empty body is the empty map).
    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        if body.is_empty() {
            return Self::from_value(Value::Map(Vec::new()));
        }
        Self::from_value(fields::decode_value(body)?)
    }
}

/// The parts of a response: its status and, on success, its body.
pub fn split_response(response: &[u8]) -> Result<&[u8], ResponseStatus> {
    match response.split_first() {
        None => Err(ResponseStatus::Empty),
        Some((&0, body)) => Ok(body),
        Some((&status, _)) => Err(ResponseStatus::Error(status)),
    }
}

/// A response that carries no body to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// Not even a status byte.
    Empty,
    /// An error status (its byte, which may be one no spec names).
    Error(u8),
}

/// The pinUvAuthParam/pinUvAuthProtocol pair that authorises a request.
#[derive(Clone, PartialEq, Eq)]
pub struct PinUvAuth {
    /// The MAC over the request's authenticated bytes.
    pub param: Vec<u8>,
    /// The PIN/UV auth protocol number (1 or 2), as sent: a number outside 1–2 or none at all
    /// reaches the authenticator, which answers it at the step CTAP defines for it.
    pub protocol: Option<u64>,
}

impl std::fmt::Debug for PinUvAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinUvAuth")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_bytes_round_trip() {
        for b in 0..=u8::MAX {
            if let Some(c) = Command::from_byte(b) {
                assert_eq!(c.byte(), b);
            }
        }
        assert_eq!(Command::from_byte(0x0d), Some(Command::Config));
        assert_eq!(Command::from_byte(0x03), None);
    }

    #[test]
    fn responses_split_into_status_and_body() {
        assert_eq!(split_response(&[0, 0xa0]), Ok(&[0xa0][..]));
        assert_eq!(split_response(&[0x31]), Err(ResponseStatus::Error(0x31)));
        assert_eq!(split_response(&[]), Err(ResponseStatus::Empty));
    }
}
