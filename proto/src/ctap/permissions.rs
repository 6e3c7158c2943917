//! pinUvAuthToken permissions (CTAP 2.1 §6.5.5.7) as one typed set.

/// A set of pinUvAuthToken permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// makeCredential (`mc`).
    pub const MAKE_CREDENTIAL: Self = Self(0x01);
    /// getAssertion (`ga`).
    pub const GET_ASSERTION: Self = Self(0x02);
    /// credentialManagement (`cm`).
    pub const CREDENTIAL_MANAGEMENT: Self = Self(0x04);
    /// bioEnrollment (`be`).
    pub const BIO_ENROLLMENT: Self = Self(0x08);
    /// largeBlobWrite (`lbw`).
    pub const LARGE_BLOB_WRITE: Self = Self(0x10);
    /// authenticatorConfig (`acfg`).
    pub const AUTHENTICATOR_CONFIG: Self = Self(0x20);
    /// No permission.
    pub const NONE: Self = Self(0);

    /// The set encoded by `bits` (unknown bits are kept, the authenticator judges them).
    pub fn from_bits(bits: u8) -> Self {
        Self(bits)
    }

    /// The bits on the wire.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether every permission of `other` is in this set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the set has a permission that is bound to an RP ID (mc, ga).
    pub fn needs_rp_id(self) -> bool {
        self.0 & (Self::MAKE_CREDENTIAL.0 | Self::GET_ASSERTION.0) != 0
    }
}

impl std::ops::BitOr for Permissions {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Permissions {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_combine_and_test() {
        let set = Permissions::MAKE_CREDENTIAL | Permissions::LARGE_BLOB_WRITE;
        assert_eq!(set.bits(), 0x11);
        assert!(set.contains(Permissions::MAKE_CREDENTIAL));
        assert!(!set.contains(Permissions::GET_ASSERTION));
        assert!(set.needs_rp_id());
        assert!(!Permissions::CREDENTIAL_MANAGEMENT.needs_rp_id());
        assert!(Permissions::NONE.is_empty());
        assert_eq!(
            Permissions::from_bits(0x22),
            Permissions::GET_ASSERTION | Permissions::AUTHENTICATOR_CONFIG
        );
    }
}
