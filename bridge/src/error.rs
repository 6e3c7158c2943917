//! Errors as the DOMException names a page's `navigator.credentials` call rejects with.

use passgate_client::{ClientError, TransportError};

use passgate_platform_api::host_channel::ChannelError;
use passgate_proto::ctap::StatusCode;
use serde_json::{Value, json};

/// The `DOMException` (or `TypeError`) name a page sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorName {
    /// The user declined, the ceremony timed out, or no credential was found (WebAuthn
    /// deliberately gives all of these one name).
    NotAllowedError,
    /// makeCredential found a credential from `excludeCredentials` on this authenticator.
    InvalidStateError,
    /// The origin may not act for the RP ID (scheme, RP ID not a registrable suffix, public
    /// suffix, IP address).
    SecurityError,
    /// None of `pubKeyCredParams` is an algorithm this authenticator supports.
    NotSupportedError,
    /// The caller cancelled the ceremony.
    AbortError,
    /// The authenticator did not answer in time (transport level).
    TimeoutError,
    /// The options are malformed: not JSON, a required member missing, bad base64url.
    TypeError,
    /// A member has a value outside its allowed syntax (e.g. `evalByCredential` keys).
    SyntaxError,
    /// A requirement the authenticator cannot meet (e.g. `residentKey: "required"`).
    ConstraintError,
    /// Anything else: the authenticator is unreachable or answered nonsense.
    UnknownError,
}

impl ErrorName {
    /// The name as JavaScript sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAllowedError => "NotAllowedError",
            Self::InvalidStateError => "InvalidStateError",
            Self::SecurityError => "SecurityError",
            Self::NotSupportedError => "NotSupportedError",
            Self::AbortError => "AbortError",
            Self::TimeoutError => "TimeoutError",
            Self::TypeError => "TypeError",
            Self::SyntaxError => "SyntaxError",
            Self::ConstraintError => "ConstraintError",
            Self::UnknownError => "UnknownError",
        }
    }
}

impl std::fmt::Display for ErrorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed ceremony: the exception name and a message for the page (and logs). Messages
/// never contain secrets (PINs, keys).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct BridgeError {
    /// The exception name.
    pub name: ErrorName,
    /// A human-readable explanation.
    pub message: String,
}

impl BridgeError {
    /// An error with `name` and `message`.
    pub fn new(name: ErrorName, message: impl Into<String>) -> Self {
        Self {
            name,
            message: message.into(),
        }
    }

    /// `NotAllowedError`.
    pub fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(ErrorName::NotAllowedError, message)
    }

    /// `SecurityError`.
    pub fn security(message: impl Into<String>) -> Self {
        Self::new(ErrorName::SecurityError, message)
    }

    /// `TypeError`.
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::new(ErrorName::TypeError, message)
    }

    /// `UnknownError`.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(ErrorName::UnknownError, message)
    }

    /// `{"name": ..., "message": ...}`.
    pub fn to_json(&self) -> Value {
        json!({ "name": self.name.as_str(), "message": self.message })
    }

    /// The authenticator's error status, as the exception a page gets (WebAuthn §6.3.2,
    /// §6.3.3 and CTAP 2.1 §6.1.2/§6.2.2).
    pub fn from_status(status: u8) -> Self {
        let code = StatusCode::from_byte(status);
        let (name, message) = match code {
            Some(StatusCode::CredentialExcluded) => (
                ErrorName::InvalidStateError,
                "the authenticator already holds a credential from excludeCredentials",
            ),
            Some(StatusCode::NoCredentials) => (
                ErrorName::NotAllowedError,
                "the authenticator holds no credential for this request",
            ),
            Some(StatusCode::InvalidCredential) => (
                ErrorName::NotAllowedError,
                "the credential is no longer valid on this authenticator",
            ),
            Some(StatusCode::OperationDenied) => (
                ErrorName::NotAllowedError,
                "you declined on passgate's prompt",
            ),
            Some(StatusCode::UserActionTimeout | StatusCode::ActionTimeout) => (
                ErrorName::NotAllowedError,
                "no answer in time on passgate's prompt",
            ),
            Some(StatusCode::KeepaliveCancel) => {
                (ErrorName::AbortError, "the request was cancelled")
            }
            Some(StatusCode::UnsupportedAlgorithm) => (
                ErrorName::NotSupportedError,
                "the authenticator supports none of the requested algorithms",
            ),
            Some(StatusCode::KeyStoreFull) => (
                ErrorName::NotAllowedError,
                "the authenticator has no room for another credential",
            ),
            Some(StatusCode::PinInvalid) => (ErrorName::NotAllowedError, "wrong PIN"),
            Some(StatusCode::PinBlocked) => (
                ErrorName::NotAllowedError,
                "the PIN is blocked: the authenticator must be reset",
            ),
            Some(StatusCode::PinAuthBlocked) => (
                ErrorName::NotAllowedError,
                "three wrong PINs in a row: passgate stops asking for the PIN until its authenticator restarts (restart `passgate authenticator serve`, or the demo); the PIN's other attempts are kept",
            ),
            Some(StatusCode::PinNotSet | StatusCode::PuatRequired) => (
                ErrorName::NotAllowedError,
                "user verification is required, but no PIN or built-in verification is available",
            ),
            Some(StatusCode::UvBlocked) => (
                ErrorName::NotAllowedError,
                "built-in user verification is locked out: use the PIN",
            ),
            Some(StatusCode::UvInvalid) => (ErrorName::NotAllowedError, "user verification failed"),
            Some(StatusCode::PinAuthInvalid) => (
                ErrorName::NotAllowedError,
                "the authenticator refused the user-verification token",
            ),
            Some(StatusCode::UnsupportedOption | StatusCode::InvalidOption) => (
                ErrorName::NotAllowedError,
                "the authenticator cannot honour the requested options",
            ),
            _ => (
                ErrorName::UnknownError,
                "the authenticator reported an error",
            ),
        };
        let detail = code.map_or_else(|| format!("0x{status:02x}"), |c| c.to_string());
        Self::new(name, format!("{message} (CTAP {detail})"))
    }
}

impl From<BridgeError> for ChannelError {
    /// A WebAuthn failure on the host channel: its DOMException name and message.
    fn from(e: BridgeError) -> Self {
        Self::new(e.name.as_str(), e.message)
    }
}

impl From<ClientError> for BridgeError {
    /// A CTAP client failure as the page sees it: a status as WebAuthn names it, a PIN the
    /// authenticator cannot take as `ConstraintError`, anything else `UnknownError`.
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Status(status) => Self::from_status(status),
            ClientError::PinTooLong => Self::new(ErrorName::ConstraintError, e.to_string()),
            ClientError::Transport(e) => e.into(),
            ClientError::Protocol(_) => Self::unknown(e.to_string()),
        }
    }
}

impl From<TransportError> for BridgeError {
    /// No answer in time is `TimeoutError`; an unreachable authenticator is `NotAllowedError`
    /// (as browsers say when no authenticator responds); nonsense is `UnknownError`.
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Timeout => Self::new(ErrorName::TimeoutError, e.to_string()),
            TransportError::Unreachable(_) => Self::not_allowed(e.to_string()),
            TransportError::Protocol(_) => Self::unknown(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctap_statuses_map_to_the_exceptions_pages_expect() {
        let table: [(u8, ErrorName); 16] = [
            (0x19, ErrorName::InvalidStateError),
            (0x2e, ErrorName::NotAllowedError),
            (0x22, ErrorName::NotAllowedError),
            (0x27, ErrorName::NotAllowedError),
            (0x2f, ErrorName::NotAllowedError),
            (0x2d, ErrorName::AbortError),
            (0x26, ErrorName::NotSupportedError),
            (0x28, ErrorName::NotAllowedError),
            (0x31, ErrorName::NotAllowedError),
            (0x32, ErrorName::NotAllowedError),
            (0x35, ErrorName::NotAllowedError),
            (0x36, ErrorName::NotAllowedError),
            (0x3c, ErrorName::NotAllowedError),
            (0x3f, ErrorName::NotAllowedError),
            (0x7f, ErrorName::UnknownError),
            (0xee, ErrorName::UnknownError),
        ];
        for (byte, name) in table {
            let e = BridgeError::from_status(byte);
            assert_eq!(e.name, name, "status 0x{byte:02x}");
            assert!(e.message.contains("CTAP"), "{}", e.message);
        }
        assert!(
            BridgeError::from_status(0x19)
                .message
                .contains("CredentialExcluded (0x19)")
        );
        assert!(BridgeError::from_status(0xee).message.contains("0xee"));
    }

    #[test]
    fn client_errors_keep_their_meaning() {
        assert_eq!(
            BridgeError::from(ClientError::Status(0x2e)).name,
            ErrorName::NotAllowedError
        );
        assert_eq!(
            BridgeError::from(ClientError::PinTooLong).name,
            ErrorName::ConstraintError
        );
        let e = BridgeError::from(ClientError::protocol("PIN protocol: no pinUvAuthToken"));
        assert_eq!(e.name, ErrorName::UnknownError);
        assert_eq!(e.message, "PIN protocol: no pinUvAuthToken");
    }

    #[test]
    fn errors_serialise_as_name_and_message() {
        let e = BridgeError::security("nope");
        assert_eq!(
            e.to_json(),
            json!({"name": "SecurityError", "message": "nope"})
        );
        assert_eq!(e.to_string(), "SecurityError: nope");
    }
}
