//! Windows Hello's answers (`UserConsentVerifierAvailability`, `UserConsentVerificationResult`)
//! mapped to the app-facing codes the other platforms use (`biometryNotEnrolled`,
//! `biometryLockout`, `userCancel`, ...). The numbers are the WinRT enums' values, kept plain
//! so the tables are unit-tested on any OS.

use passgate_platform_api::user_verifier::{UserActionError, VerifierErrorCode};

/// `UserConsentVerifierAvailability::Available`.
pub const AVAILABLE: i32 = 0;
/// `...::DeviceNotPresent`: no biometric device and no PIN provider.
pub const DEVICE_NOT_PRESENT: i32 = 1;
/// `...::NotConfiguredForUser`: Windows Hello is not set up for this user.
pub const NOT_CONFIGURED_FOR_USER: i32 = 2;
/// `...::DisabledByPolicy`: group policy turns Windows Hello off.
pub const DISABLED_BY_POLICY: i32 = 3;
/// `...::DeviceBusy`: the device is performing another operation.
pub const DEVICE_BUSY: i32 = 4;

/// `UserConsentVerificationResult::Verified`.
pub const VERIFIED: i32 = 0;
/// `UserConsentVerificationResult::RetriesExhausted`: too many failed attempts.
pub const RETRIES_EXHAUSTED: i32 = 5;
/// `UserConsentVerificationResult::Canceled`: the person cancelled.
pub const CANCELED: i32 = 6;

/// Why Windows Hello is not available, for an availability value (`None` when it is).
pub fn availability_error(availability: i32) -> Option<VerifierErrorCode> {
    match availability {
        AVAILABLE => None,
        NOT_CONFIGURED_FOR_USER => Some(VerifierErrorCode::BiometryNotEnrolled),
        DEVICE_BUSY => Some(VerifierErrorCode::SystemCancel),
        // Not present, disabled by policy, or a value from a newer Windows.
        _ => Some(VerifierErrorCode::BiometryNotAvailable),
    }
}

/// The app-facing code for a verification result (`None` for `Verified`).
pub fn result_error_code(result: i32) -> Option<VerifierErrorCode> {
    match result {
        VERIFIED => None,
        RETRIES_EXHAUSTED => Some(VerifierErrorCode::BiometryLockout),
        CANCELED => Some(VerifierErrorCode::UserCancel),
        // The other values share the availability ones (1 to 4).
        DEVICE_NOT_PRESENT | NOT_CONFIGURED_FOR_USER | DISABLED_BY_POLICY | DEVICE_BUSY => {
            availability_error(result)
        }
        // A value from a newer Windows is never a success.
        _ => Some(VerifierErrorCode::AuthenticationFailed),
    }
}

/// How a verification result ends the ceremony: `Ok` only for `Verified`.
/// `cancelled_by_client` is whether passgate cancelled the operation itself (CTAPHID_CANCEL).
pub fn verification_outcome(result: i32, cancelled_by_client: bool) -> Result<(), UserActionError> {
    if cancelled_by_client {
        return Err(UserActionError::Cancelled);
    }
    match result_error_code(result) {
        None => Ok(()),
        Some(VerifierErrorCode::UserCancel) => Err(UserActionError::Denied),
        Some(VerifierErrorCode::BiometryLockout) => Err(UserActionError::Lockout),
        Some(VerifierErrorCode::AuthenticationFailed) => Err(UserActionError::Failed),
        Some(other) => Err(UserActionError::Unavailable(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_maps_to_the_app_facing_codes() {
        assert_eq!(availability_error(0), None);
        let table = [
            (1, "biometryNotAvailable"),
            (2, "biometryNotEnrolled"),
            (3, "biometryNotAvailable"),
            (4, "systemCancel"),
            (99, "biometryNotAvailable"),
        ];
        for (value, name) in table {
            assert_eq!(availability_error(value).map(|c| c.as_str()), Some(name));
        }
    }

    #[test]
    fn results_map_to_codes_and_outcomes() {
        assert_eq!(result_error_code(0), None);
        let table = [
            (1, "biometryNotAvailable"),
            (2, "biometryNotEnrolled"),
            (3, "biometryNotAvailable"),
            (4, "systemCancel"),
            (5, "biometryLockout"),
            (6, "userCancel"),
            (7, "authenticationFailed"),
            (-1, "authenticationFailed"),
        ];
        for (value, name) in table {
            assert_eq!(result_error_code(value).map(|c| c.as_str()), Some(name));
        }
        assert_eq!(verification_outcome(VERIFIED, false), Ok(()));
        assert_eq!(
            verification_outcome(CANCELED, false),
            Err(UserActionError::Denied)
        );
        assert_eq!(
            verification_outcome(RETRIES_EXHAUSTED, false),
            Err(UserActionError::Lockout)
        );
        assert_eq!(
            verification_outcome(NOT_CONFIGURED_FOR_USER, false),
            Err(UserActionError::Unavailable(
                VerifierErrorCode::BiometryNotEnrolled
            ))
        );
        assert_eq!(
            verification_outcome(42, false),
            Err(UserActionError::Failed)
        );
        // Our own cancel after CTAPHID_CANCEL, even if Windows still reported a result.
        assert_eq!(
            verification_outcome(VERIFIED, true),
            Err(UserActionError::Cancelled)
        );
    }
}
