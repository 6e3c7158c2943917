//! Which `SecAccessControlCreateFlags` an enclave key gets, per credential policy.
//!
//! The values are Apple's (`SecAccessControl.h`); they are kept here as plain numbers so that
//! the choice is unit-tested on any OS. The enclave enforces them on every use of the key: no
//! code in passgate can sign with a `biometryCurrentSet` key without a matching biometric.

/// `kSecAccessControlUserPresence`: biometry (any enrolled) or the device passcode.
pub const USER_PRESENCE: u64 = 1 << 0;
/// `kSecAccessControlBiometryAny`: any enrolled biometric, surviving enrollment changes.
pub const BIOMETRY_ANY: u64 = 1 << 1;
/// `kSecAccessControlBiometryCurrentSet`: the biometrics enrolled when the key was made; the
/// key becomes unusable when a finger or face is added or removed.
pub const BIOMETRY_CURRENT_SET: u64 = 1 << 3;
/// `kSecAccessControlDevicePasscode`: the device passcode.
pub const DEVICE_PASSCODE: u64 = 1 << 4;
/// `kSecAccessControlOr`.
pub const OR: u64 = 1 << 14;
/// `kSecAccessControlAnd`.
pub const AND: u64 = 1 << 15;
/// `kSecAccessControlPrivateKeyUsage`: required for Secure Enclave private keys.
pub const PRIVATE_KEY_USAGE: u64 = 1 << 30;

/// What a credential's key asks of the person at each use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProtection {
    /// Biometry or the device passcode (`userPresence`): the default for passkeys, which
    /// LocalAuthentication can always satisfy while a passcode is set.
    UserPresence,
    /// The device passcode only (`devicePasscode`): for devices or apps that do not use
    /// biometrics.
    DevicePasscode,
    /// The current biometric set only (`biometryCurrentSet`): `passgateBiometricSet`
    /// credentials, invalidated when the enrollment changes, as on Linux.
    BiometryCurrentSet,
}

impl KeyProtection {
    /// The protection a credential gets: `passgateBiometricSet` credentials are bound to the
    /// current biometric set; otherwise the passcode alone when the app asked for no biometry,
    /// else biometry or passcode.
    pub fn for_credential(biometric_set: bool, passcode_only: bool) -> Self {
        if biometric_set {
            Self::BiometryCurrentSet
        } else if passcode_only {
            Self::DevicePasscode
        } else {
            Self::UserPresence
        }
    }

    /// The one-letter code kept in key handles (`p`, `c`, `b`).
    pub fn code(self) -> char {
        match self {
            Self::UserPresence => 'p',
            Self::DevicePasscode => 'c',
            Self::BiometryCurrentSet => 'b',
        }
    }

    /// The protection for a handle's code.
    pub fn from_code(code: char) -> Option<Self> {
        match code {
            'p' => Some(Self::UserPresence),
            'c' => Some(Self::DevicePasscode),
            'b' => Some(Self::BiometryCurrentSet),
            _ => None,
        }
    }
}

/// The `SecAccessControlCreateFlags` for an enclave private key with `protection`.
pub fn access_control_flags(protection: KeyProtection) -> u64 {
    PRIVATE_KEY_USAGE
        | match protection {
            KeyProtection::UserPresence => USER_PRESENCE,
            KeyProtection::DevicePasscode => DEVICE_PASSCODE,
            KeyProtection::BiometryCurrentSet => BIOMETRY_CURRENT_SET,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_apples_values_per_policy() {
        assert_eq!(
            access_control_flags(KeyProtection::UserPresence),
            0x4000_0001
        );
        assert_eq!(
            access_control_flags(KeyProtection::DevicePasscode),
            0x4000_0010
        );
        assert_eq!(
            access_control_flags(KeyProtection::BiometryCurrentSet),
            0x4000_0008
        );
        // Never biometryAny (which survives enrollment changes), never an Or that would let a
        // passcode unlock a biometric-set key.
        for protection in [
            KeyProtection::UserPresence,
            KeyProtection::DevicePasscode,
            KeyProtection::BiometryCurrentSet,
        ] {
            let flags = access_control_flags(protection);
            assert_eq!(flags & (BIOMETRY_ANY | OR | AND), 0);
            assert_ne!(flags & PRIVATE_KEY_USAGE, 0);
        }
    }

    #[test]
    fn credential_policy_selects_the_protection() {
        assert_eq!(
            KeyProtection::for_credential(true, false),
            KeyProtection::BiometryCurrentSet
        );
        // The biometric set wins: asking for it and for no biometry is not a passcode key.
        assert_eq!(
            KeyProtection::for_credential(true, true),
            KeyProtection::BiometryCurrentSet
        );
        assert_eq!(
            KeyProtection::for_credential(false, true),
            KeyProtection::DevicePasscode
        );
        assert_eq!(
            KeyProtection::for_credential(false, false),
            KeyProtection::UserPresence
        );
        for p in [
            KeyProtection::UserPresence,
            KeyProtection::DevicePasscode,
            KeyProtection::BiometryCurrentSet,
        ] {
            assert_eq!(KeyProtection::from_code(p.code()), Some(p));
        }
        assert_eq!(KeyProtection::from_code('x'), None);
    }
}
