//! [`ClientError`]: why a CTAP exchange failed, keeping the authenticator's status byte so that
//! each caller (WebAuthn's DOMException names, the app APIs' biometric errors) can map it its
//! own way.

use passgate_proto::ctap::{DecodeError, StatusCode};

use crate::transport::TransportError;

/// Why a CTAP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The authenticator answered with an error status (its byte, named or not).
    #[error("the authenticator answered CTAP status {0:#04x}")]
    Status(u8),
    /// The request did not reach the authenticator or got no answer.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The authenticator answered something malformed, or the PIN protocol failed locally.
    #[error("{0}")]
    Protocol(String),
    /// A PIN longer than the 63 bytes CTAP allows.
    #[error("a PIN is at most 63 bytes")]
    PinTooLong,
}

impl ClientError {
    /// A malformed answer or a local protocol failure.
    pub fn protocol(what: impl Into<String>) -> Self {
        Self::Protocol(what.into())
    }

    /// Whether this is the authenticator's `status`.
    pub fn is(&self, status: StatusCode) -> bool {
        matches!(self, Self::Status(s) if *s == status.byte())
    }

    /// The authenticator's status byte, when it answered with one.
    pub fn status(&self) -> Option<u8> {
        match self {
            Self::Status(s) => Some(*s),
            _ => None,
        }
    }
}

impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> Self {
        Self::Protocol(format!("the authenticator's answer is malformed: {e}"))
    }
}
