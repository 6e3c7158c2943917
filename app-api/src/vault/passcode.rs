//! The app passcode (Identity Vault's `setPasscode` / `onPasscodeRequest`): stretched with
//! argon2id, then combined with the vault credential's UV-gated hmac-secret output
//! ([`super::file::VaultKey::derive_with_passcode`]). The passcode never replaces the
//! authenticator's user verification: it is a second factor on the passcode path, so an app
//! passcode can only make a vault harder to open, never easier.
//!
//! Parameters: argon2id, 19 MiB of memory, 2 passes, 1 lane (OWASP's first recommended
//! configuration for argon2id), a random 16-byte salt per passcode, 32 bytes out. They are
//! stored in the vault header, so they can be raised later without breaking old vaults; a
//! header asking for more than 1 GiB or 64 passes is refused as damaged.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// argon2id's memory cost in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// argon2id's passes over memory.
pub const ITERATIONS: u32 = 2;
/// argon2id's lanes.
pub const LANES: u32 = 1;
/// The longest passcode accepted, in bytes.
pub const MAX_PASSCODE_BYTES: usize = 256;

/// The argon2id parameters and salt of one app passcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StretchParams {
    /// Random per passcode.
    pub salt: [u8; 16],
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub lanes: u32,
}

impl StretchParams {
    /// The current parameters with a fresh salt.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            salt: crate::random()?,
            memory_kib: MEMORY_KIB,
            iterations: ITERATIONS,
            lanes: LANES,
        })
    }

    /// Refuses parameters no vault of ours was written with (a damaged or crafted header
    /// must not make an unlock allocate gigabytes or spin for minutes).
    pub fn check_bounds(&self) -> Result<(), &'static str> {
        if !(8 * 1024..=1024 * 1024).contains(&self.memory_kib)
            || !(1..=64).contains(&self.iterations)
            || !(1..=16).contains(&self.lanes)
        {
            return Err("passcode parameters out of range");
        }
        Ok(())
    }
}

/// Why a passcode cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasscodeError {
    /// Empty, too long, or with control characters.
    #[error("a passcode is 1 to {MAX_PASSCODE_BYTES} bytes without control characters")]
    Invalid,
    /// argon2 refused the parameters (a damaged header).
    #[error("the passcode parameters are invalid")]
    Params,
}

/// Checks what an app passes as a passcode.
pub fn check_passcode(passcode: &str) -> Result<(), PasscodeError> {
    if passcode.is_empty()
        || passcode.len() > MAX_PASSCODE_BYTES
        || passcode.chars().any(char::is_control)
    {
        return Err(PasscodeError::Invalid);
    }
    Ok(())
}

/// argon2id(`passcode`) under `params`: 32 bytes, zeroized when dropped.
pub fn stretch(
    passcode: &str,
    params: &StretchParams,
) -> Result<Zeroizing<[u8; 32]>, PasscodeError> {
    check_passcode(passcode)?;
    params.check_bounds().map_err(|_| PasscodeError::Params)?;
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(params.memory_kib, params.iterations, params.lanes, Some(32))
            .map_err(|_| PasscodeError::Params)?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passcode.as_bytes(), &params.salt, &mut *out)
        .map_err(|_| PasscodeError::Params)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretch_is_argon2id_with_the_documented_parameters() {
        let params = StretchParams {
            salt: [9; 16],
            memory_kib: MEMORY_KIB,
            iterations: ITERATIONS,
            lanes: LANES,
        };
        let a = stretch("1234", &params).unwrap();
        assert_eq!(a, stretch("1234", &params).unwrap());
        assert_ne!(a, stretch("1235", &params).unwrap());
        let other_salt = StretchParams {
            salt: [8; 16],
            ..params.clone()
        };
        assert_ne!(a, stretch("1234", &other_salt).unwrap());
        // The same as argon2 computes it directly (not some other KDF under the name).
        let mut expected = [0u8; 32];
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(19 * 1024, 2, 1, Some(32)).unwrap(),
        )
        .hash_password_into(b"1234", &[9; 16], &mut expected)
        .unwrap();
        assert_eq!(*a, expected);
    }

    #[test]
    fn bad_passcodes_and_parameters_are_refused() {
        let params = StretchParams::new().unwrap();
        assert_eq!(stretch("", &params), Err(PasscodeError::Invalid));
        assert_eq!(stretch("12\n34", &params), Err(PasscodeError::Invalid));
        assert_eq!(
            stretch(&"1".repeat(MAX_PASSCODE_BYTES + 1), &params),
            Err(PasscodeError::Invalid)
        );
        let huge = StretchParams {
            memory_kib: 4 * 1024 * 1024,
            ..params
        };
        assert_eq!(stretch("1234", &huge), Err(PasscodeError::Params));
    }
}
