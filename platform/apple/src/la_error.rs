//! LocalAuthentication's errors and biometry types, mapped to the app-facing codes (the ones
//! Tauri's biometric plugin and the app APIs use: `biometryNotEnrolled`, `userCancel`, ...).
//!
//! The numbers are Apple's (`LAError.h`, `LABiometryType`), kept as plain values so that the
//! tables are unit-tested on any OS.

use passgate_platform_api::user_verifier::{BiometryType, UserActionError, VerifierErrorCode};

/// `LAErrorAuthenticationFailed`.
pub const AUTHENTICATION_FAILED: i64 = -1;
/// `LAErrorUserCancel`.
pub const USER_CANCEL: i64 = -2;
/// `LAErrorUserFallback`.
pub const USER_FALLBACK: i64 = -3;
/// `LAErrorSystemCancel`.
pub const SYSTEM_CANCEL: i64 = -4;
/// `LAErrorPasscodeNotSet`.
pub const PASSCODE_NOT_SET: i64 = -5;
/// `LAErrorBiometryNotAvailable` (was `TouchIDNotAvailable`).
pub const BIOMETRY_NOT_AVAILABLE: i64 = -6;
/// `LAErrorBiometryNotEnrolled`.
pub const BIOMETRY_NOT_ENROLLED: i64 = -7;
/// `LAErrorBiometryLockout`.
pub const BIOMETRY_LOCKOUT: i64 = -8;
/// `LAErrorAppCancel`.
pub const APP_CANCEL: i64 = -9;
/// `LAErrorInvalidContext`.
pub const INVALID_CONTEXT: i64 = -10;
/// `LAErrorCompanionNotAvailable` (was `WatchNotAvailable`).
pub const COMPANION_NOT_AVAILABLE: i64 = -11;
/// `LAErrorBiometryNotPaired` (a removable Touch ID keyboard).
pub const BIOMETRY_NOT_PAIRED: i64 = -12;
/// `LAErrorBiometryDisconnected`.
pub const BIOMETRY_DISCONNECTED: i64 = -13;
/// `LAErrorInvalidDimensions`.
pub const INVALID_DIMENSIONS: i64 = -14;
/// `LAErrorNotInteractive`.
pub const NOT_INTERACTIVE: i64 = -1004;

/// The app-facing code for an `LAError` code. Unknown codes (a newer OS) read as
/// `authenticationFailed`, which never claims success and makes the app retry or give up.
pub fn verifier_error_code(la_error: i64) -> VerifierErrorCode {
    match la_error {
        USER_CANCEL => VerifierErrorCode::UserCancel,
        USER_FALLBACK => VerifierErrorCode::UserFallback,
        SYSTEM_CANCEL => VerifierErrorCode::SystemCancel,
        PASSCODE_NOT_SET => VerifierErrorCode::PasscodeNotSet,
        BIOMETRY_NOT_AVAILABLE
        | COMPANION_NOT_AVAILABLE
        | BIOMETRY_NOT_PAIRED
        | BIOMETRY_DISCONNECTED => VerifierErrorCode::BiometryNotAvailable,
        BIOMETRY_NOT_ENROLLED => VerifierErrorCode::BiometryNotEnrolled,
        BIOMETRY_LOCKOUT => VerifierErrorCode::BiometryLockout,
        APP_CANCEL => VerifierErrorCode::AppCancel,
        INVALID_CONTEXT | INVALID_DIMENSIONS => VerifierErrorCode::InvalidContext,
        NOT_INTERACTIVE => VerifierErrorCode::NotInteractive,
        _ => VerifierErrorCode::AuthenticationFailed,
    }
}

/// How a failed `evaluatePolicy` ends the ceremony. `cancelled_by_client` is whether passgate
/// itself invalidated the context because the client sent CTAPHID_CANCEL (LocalAuthentication
/// then reports `appCancel` or `systemCancel`).
pub fn user_action_error(la_error: i64, cancelled_by_client: bool) -> UserActionError {
    if cancelled_by_client {
        return UserActionError::Cancelled;
    }
    match verifier_error_code(la_error) {
        VerifierErrorCode::UserCancel | VerifierErrorCode::UserFallback => UserActionError::Denied,
        VerifierErrorCode::BiometryLockout => UserActionError::Lockout,
        VerifierErrorCode::AuthenticationFailed => UserActionError::Failed,
        other => UserActionError::Unavailable(other),
    }
}

/// `LABiometryType` to the seams' [`BiometryType`]: Touch ID is a fingerprint reader, Face ID
/// a face sensor, Optic ID an iris scanner. Unknown values read as no biometry.
pub fn biometry_type(la_biometry_type: i64) -> BiometryType {
    match la_biometry_type {
        1 => BiometryType::Fingerprint,
        2 => BiometryType::Face,
        4 => BiometryType::Iris,
        _ => BiometryType::None,
    }
}

/// The product name shown in status output: `TouchID`, `FaceID`, `OpticID` or `None`.
pub fn biometry_product_name(la_biometry_type: i64) -> &'static str {
    match la_biometry_type {
        1 => "TouchID",
        2 => "FaceID",
        4 => "OpticID",
        _ => "None",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn la_errors_map_to_the_app_facing_codes() {
        let table = [
            (-1, "authenticationFailed"),
            (-2, "userCancel"),
            (-3, "userFallback"),
            (-4, "systemCancel"),
            (-5, "passcodeNotSet"),
            (-6, "biometryNotAvailable"),
            (-7, "biometryNotEnrolled"),
            (-8, "biometryLockout"),
            (-9, "appCancel"),
            (-10, "invalidContext"),
            (-11, "biometryNotAvailable"),
            (-12, "biometryNotAvailable"),
            (-13, "biometryNotAvailable"),
            (-14, "invalidContext"),
            (-1004, "notInteractive"),
            (-9999, "authenticationFailed"),
            (0, "authenticationFailed"),
        ];
        for (code, name) in table {
            assert_eq!(verifier_error_code(code).as_str(), name, "LAError {code}");
        }
    }

    #[test]
    fn failed_evaluations_end_the_ceremony_precisely() {
        assert_eq!(
            user_action_error(USER_CANCEL, false),
            UserActionError::Denied
        );
        assert_eq!(
            user_action_error(USER_FALLBACK, false),
            UserActionError::Denied
        );
        assert_eq!(
            user_action_error(BIOMETRY_LOCKOUT, false),
            UserActionError::Lockout
        );
        assert_eq!(
            user_action_error(AUTHENTICATION_FAILED, false),
            UserActionError::Failed
        );
        assert_eq!(
            user_action_error(BIOMETRY_NOT_ENROLLED, false),
            UserActionError::Unavailable(VerifierErrorCode::BiometryNotEnrolled)
        );
        assert_eq!(
            user_action_error(PASSCODE_NOT_SET, false),
            UserActionError::Unavailable(VerifierErrorCode::PasscodeNotSet)
        );
        // Our own invalidate() after CTAPHID_CANCEL is a cancel, whatever LA calls it.
        assert_eq!(
            user_action_error(SYSTEM_CANCEL, true),
            UserActionError::Cancelled
        );
        assert_eq!(
            user_action_error(APP_CANCEL, true),
            UserActionError::Cancelled
        );
        assert_eq!(
            user_action_error(SYSTEM_CANCEL, false),
            UserActionError::Unavailable(VerifierErrorCode::SystemCancel)
        );
    }

    #[test]
    fn biometry_types_map_to_sensor_kinds() {
        assert_eq!(biometry_type(0), BiometryType::None);
        assert_eq!(biometry_type(1), BiometryType::Fingerprint);
        assert_eq!(biometry_type(2), BiometryType::Face);
        assert_eq!(biometry_type(4), BiometryType::Iris);
        assert_eq!(biometry_type(3), BiometryType::None);
        assert_eq!(biometry_type(2).as_str(), "FaceID");
        assert_eq!(biometry_product_name(1), "TouchID");
        assert_eq!(biometry_product_name(2), "FaceID");
        assert_eq!(biometry_product_name(4), "OpticID");
        assert_eq!(biometry_product_name(7), "None");
    }
}
