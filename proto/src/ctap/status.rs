//! CTAP 2.1 status codes (§8.2), the first byte of every response.

/// A CTAP status code. `Ok` is success; every other value is an error response with no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StatusCode {
    /// CTAP2_OK / CTAP1_ERR_SUCCESS.
    Ok = 0x00,
    /// The command is not a valid CTAP command.
    InvalidCommand = 0x01,
    /// The command included an invalid parameter.
    InvalidParameter = 0x02,
    /// Invalid message or item length.
    InvalidLength = 0x03,
    /// Invalid message sequencing.
    InvalidSeq = 0x04,
    /// Message timed out.
    Timeout = 0x05,
    /// Channel busy.
    ChannelBusy = 0x06,
    /// Command requires channel lock.
    LockRequired = 0x0a,
    /// Command not allowed on this cid.
    InvalidChannel = 0x0b,
    /// Invalid/unexpected CBOR error.
    CborUnexpectedType = 0x11,
    /// Error when parsing CBOR (including non-canonical encodings).
    InvalidCbor = 0x12,
    /// Missing non-optional parameter.
    MissingParameter = 0x14,
    /// Limit for number of items exceeded.
    LimitExceeded = 0x15,
    /// Fingerprint database is full.
    FpDatabaseFull = 0x17,
    /// Large blob storage is full.
    LargeBlobStorageFull = 0x18,
    /// Valid credential found in the exclude list.
    CredentialExcluded = 0x19,
    /// Processing (lengthy operation is in progress).
    Processing = 0x21,
    /// Credential not valid for the authenticator.
    InvalidCredential = 0x22,
    /// Authentication is waiting for user interaction.
    UserActionPending = 0x23,
    /// Processing, lengthy operation is in progress.
    OperationPending = 0x24,
    /// No request is pending.
    NoOperations = 0x25,
    /// Authenticator does not support requested algorithm.
    UnsupportedAlgorithm = 0x26,
    /// Not authorized for requested operation.
    OperationDenied = 0x27,
    /// Internal key storage is full.
    KeyStoreFull = 0x28,
    /// Unsupported option.
    UnsupportedOption = 0x2b,
    /// Not a valid option for current operation.
    InvalidOption = 0x2c,
    /// Pending keep alive was cancelled.
    KeepaliveCancel = 0x2d,
    /// No valid credentials provided.
    NoCredentials = 0x2e,
    /// A user action timeout occurred.
    UserActionTimeout = 0x2f,
    /// Continuation command, such as authenticatorGetNextAssertion, not allowed.
    NotAllowed = 0x30,
    /// PIN invalid.
    PinInvalid = 0x31,
    /// PIN blocked.
    PinBlocked = 0x32,
    /// PIN authentication (pinUvAuthParam) verification failed.
    PinAuthInvalid = 0x33,
    /// PIN authentication using pinUvAuthToken blocked. Requires power cycle to reset.
    PinAuthBlocked = 0x34,
    /// No PIN has been set.
    PinNotSet = 0x35,
    /// A pinUvAuthToken is required for the selected operation.
    PuatRequired = 0x36,
    /// PIN policy violation.
    PinPolicyViolation = 0x37,
    /// Authenticator cannot handle this request due to memory constraints.
    RequestTooLarge = 0x39,
    /// The current operation has timed out.
    ActionTimeout = 0x3a,
    /// User presence is required for the requested operation.
    UpRequired = 0x3b,
    /// Built-in user verification is disabled.
    UvBlocked = 0x3c,
    /// A checksum did not match.
    IntegrityFailure = 0x3d,
    /// The requested subcommand is either invalid or not implemented.
    InvalidSubcommand = 0x3e,
    /// Built-in user verification unsuccessful.
    UvInvalid = 0x3f,
    /// The permissions parameter contains an unauthorized permission.
    UnauthorizedPermission = 0x40,
    /// Other unspecified error.
    Other = 0x7f,
}

impl StatusCode {
    /// The status byte.
    #[allow(clippy::as_conversions)] // A fieldless #[repr(u8)] enum: the cast is its discriminant.
    pub fn byte(self) -> u8 {
        self as u8
    }
}

impl StatusCode {
    /// Every named status, in byte order.
    pub const ALL: [StatusCode; 46] = [
        Self::Ok,
        Self::InvalidCommand,
        Self::InvalidParameter,
        Self::InvalidLength,
        Self::InvalidSeq,
        Self::Timeout,
        Self::ChannelBusy,
        Self::LockRequired,
        Self::InvalidChannel,
        Self::CborUnexpectedType,
        Self::InvalidCbor,
        Self::MissingParameter,
        Self::LimitExceeded,
        Self::FpDatabaseFull,
        Self::LargeBlobStorageFull,
        Self::CredentialExcluded,
        Self::Processing,
        Self::InvalidCredential,
        Self::UserActionPending,
        Self::OperationPending,
        Self::NoOperations,
        Self::UnsupportedAlgorithm,
        Self::OperationDenied,
        Self::KeyStoreFull,
        Self::UnsupportedOption,
        Self::InvalidOption,
        Self::KeepaliveCancel,
        Self::NoCredentials,
        Self::UserActionTimeout,
        Self::NotAllowed,
        Self::PinInvalid,
        Self::PinBlocked,
        Self::PinAuthInvalid,
        Self::PinAuthBlocked,
        Self::PinNotSet,
        Self::PuatRequired,
        Self::PinPolicyViolation,
        Self::RequestTooLarge,
        Self::ActionTimeout,
        Self::UpRequired,
        Self::UvBlocked,
        Self::IntegrityFailure,
        Self::InvalidSubcommand,
        Self::UvInvalid,
        Self::UnauthorizedPermission,
        Self::Other,
    ];

    /// The named status for a byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.byte() == byte)
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?} (0x{:02x})", self.byte())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_status_round_trips_through_its_byte() {
        let mut named = 0;
        for b in 0..=u8::MAX {
            if let Some(s) = StatusCode::from_byte(b) {
                assert_eq!(s.byte(), b);
                named += 1;
            }
        }
        assert_eq!(named, StatusCode::ALL.len());
        assert_eq!(
            StatusCode::from_byte(0x2d),
            Some(StatusCode::KeepaliveCancel)
        );
        assert_eq!(StatusCode::from_byte(0x08), None);
        assert_eq!(StatusCode::PinInvalid.to_string(), "PinInvalid (0x31)");
    }
}
