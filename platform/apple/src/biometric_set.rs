//! The biometric-set fingerprint behind `passgateBiometricSet`.
//!
//! LocalAuthentication gives an opaque `evaluatedPolicyDomainState` that changes whenever a
//! finger or face is enrolled or removed. The seams want a fixed 32-byte enrollment state, so
//! it is hashed (SHA-256, domain-separated): equal states give equal fingerprints, any change
//! gives a different one, and the authenticator's `biometric_set_allows` does the rest. The
//! enclave enforces the same rule for `biometryCurrentSet` keys on its own.

use sha2::{Digest, Sha256};

const DOMAIN: &[u8] = b"passgate apple biometric set v1\0";

/// The enrollment state for a domain state; `None` when LocalAuthentication gave none (no
/// biometry, or nothing enrolled), so biometric-set credentials cannot be made or used.
pub fn enrollment_state(domain_state: Option<&[u8]>) -> Option<[u8; 32]> {
    let state = domain_state.filter(|s| !s.is_empty())?;
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(state);
    Some(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use passgate_platform_api::user_verifier::biometric_set_allows;

    #[test]
    fn enrollment_changes_are_detected() {
        let before = enrollment_state(Some(b"domain state with two fingers")).unwrap();
        let same = enrollment_state(Some(b"domain state with two fingers")).unwrap();
        let after = enrollment_state(Some(b"domain state with three fingers")).unwrap();
        assert_eq!(before, same);
        assert_ne!(before, after);
        assert!(biometric_set_allows(Some(&before), Some(&same)));
        assert!(!biometric_set_allows(Some(&before), Some(&after)));
        // No biometry (or nothing enrolled): no state, and bound credentials are refused.
        assert_eq!(enrollment_state(None), None);
        assert_eq!(enrollment_state(Some(b"")), None);
        assert!(!biometric_set_allows(Some(&before), None));
    }

    #[test]
    fn the_fingerprint_is_domain_separated_sha256() {
        // SHA-256("passgate apple biometric set v1\0" || "abc"), computed independently.
        let got = enrollment_state(Some(b"abc")).unwrap();
        let mut plain = Sha256::new();
        plain.update(b"abc");
        let undomained: [u8; 32] = plain.finalize().into();
        assert_ne!(got, undomained);
        let mut manual = Sha256::new();
        manual.update(b"passgate apple biometric set v1\0abc");
        let expected: [u8; 32] = manual.finalize().into();
        assert_eq!(got, expected);
    }
}
