//! [`TokenCache`]: a pinUvAuthToken kept for a short while after the person entered the PIN,
//! so that a ceremony that follows within the window does not ask again when CTAP still lets
//! the token be used.
//!
//! The rules are CTAP 2.1's, mirrored on the platform side so that a kept token is never
//! offered where the authenticator would refuse it:
//! - a token carries its permissions and, once used (or when asked for with one), its
//!   permissions RP ID (§6.5.5.7): it is never used for another RP ID or for a permission it
//!   does not hold;
//! - a makeCredential or getAssertion that collects user presence with the token leaves it
//!   only `lbw` (§6.1.2 and §6.2.2: `clearPinUvAuthTokenPermissionsExceptLbw`). So a token
//!   authorises **one** WebAuthn ceremony: what the window saves is the PIN of a ceremony
//!   that follows one which ended *before* the authenticator used the token (declined or
//!   aborted after the PIN, refused by a check, failed on the way), and any use of the
//!   permissions that survive;
//! - the authenticator ends a token on its own (its lifetime, a power cycle, a new token, a
//!   wrong PIN, a reset): the authenticator's PIN_AUTH_INVALID then drops the kept token, and
//!   the caller asks for the PIN.
//!
//! The token lives only in memory, in [`Zeroizing`] storage, and is dropped when the window
//! ends, on any status that says it is no longer good, and when the authenticator changes.

use std::time::{Duration, Instant};

use passgate_proto::ctap::{Permissions, StatusCode};
use zeroize::Zeroizing;

/// How long a kept token is offered when the host says nothing (`--pin-token-ttl`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(120);

/// A pinUvAuthToken and what CTAP lets it do.
struct KeptToken {
    token: Zeroizing<Vec<u8>>,
    permissions: Permissions,
    rp_id: String,
    authenticator: Vec<u8>,
    obtained: Instant,
}

/// At most one kept pinUvAuthToken (an authenticator holds one token at a time).
pub struct TokenCache {
    ttl: Duration,
    kept: Option<KeptToken>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .field("holds_token", &self.kept.is_some())
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl TokenCache {
    /// A cache that offers a token for `ttl` after it was obtained; zero keeps nothing.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, kept: None }
    }

    /// The window.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Keeps `token`, just obtained with the PIN for `permissions` on `rp_id`, from the
    /// authenticator that `authenticator` identifies (its AAGUID and transport, as the caller
    /// knows it). It replaces any kept token: the authenticator has forgotten that one.
    pub fn keep(
        &mut self,
        token: &[u8],
        permissions: Permissions,
        rp_id: &str,
        authenticator: &[u8],
        now: Instant,
    ) {
        if self.ttl.is_zero() {
            self.kept = None;
            return;
        }
        self.kept = Some(KeptToken {
            token: Zeroizing::new(token.to_vec()),
            permissions,
            rp_id: rp_id.to_owned(),
            authenticator: authenticator.to_vec(),
            obtained: now,
        });
    }

    /// The kept token, if it may authorise `permission` on `rp_id` at `authenticator` now.
    /// An expired token, or one from another authenticator, is dropped.
    pub fn token_for(
        &mut self,
        permission: Permissions,
        rp_id: &str,
        authenticator: &[u8],
        now: Instant,
    ) -> Option<Zeroizing<Vec<u8>>> {
        let kept = self.kept.as_ref()?;
        if kept.authenticator != authenticator
            || now.saturating_duration_since(kept.obtained) >= self.ttl
        {
            self.kept = None;
            return None;
        }
        if !kept.permissions.contains(permission) || kept.rp_id != rp_id {
            return None;
        }
        Some(kept.token.clone())
    }

    /// The authenticator collected user presence with the token in a makeCredential or
    /// getAssertion: it keeps only `lbw` (CTAP 2.1 §6.1.2, §6.2.2), and so does the cache.
    pub fn used_with_presence(&mut self) {
        let lbw = Permissions::LARGE_BLOB_WRITE;
        let Some(kept) = self.kept.as_mut() else {
            return;
        };
        if kept.permissions.contains(lbw) {
            kept.permissions = lbw;
        } else {
            self.kept = None;
        }
    }

    /// Drops the kept token when the authenticator's `status` says it is no longer good:
    /// PIN_AUTH_INVALID (expired, replaced, power-cycled, wrong permission), a PIN that is
    /// blocked, PIN_INVALID (a wrong PIN also ends the token) or PIN_NOT_SET (a reset).
    /// Returns whether it dropped one.
    pub fn forget_on(&mut self, status: u8) -> bool {
        let ends_token = [
            StatusCode::PinAuthInvalid,
            StatusCode::PinAuthBlocked,
            StatusCode::PinBlocked,
            StatusCode::PinInvalid,
            StatusCode::PinNotSet,
        ]
        .iter()
        .any(|code| code.byte() == status);
        ends_token && self.kept.take().is_some()
    }

    /// Drops the kept token.
    pub fn clear(&mut self) {
        self.kept = None;
    }

    /// Whether a token is kept (for logs and tests; never the token).
    pub fn holds_token(&self) -> bool {
        self.kept.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHENTICATOR: &[u8] = b"aaguid-1";
    const GA: Permissions = Permissions::GET_ASSERTION;
    const MC: Permissions = Permissions::MAKE_CREDENTIAL;

    fn kept(ttl: u64, permissions: Permissions) -> (TokenCache, Instant) {
        let mut cache = TokenCache::new(Duration::from_secs(ttl));
        let now = Instant::now();
        cache.keep(&[7; 32], permissions, "example.com", AUTHENTICATOR, now);
        (cache, now)
    }

    #[test]
    fn a_token_is_offered_for_its_permission_and_rp_id_within_the_window() {
        let (mut cache, now) = kept(120, GA | MC);
        let later = now + Duration::from_secs(119);
        assert_eq!(
            cache
                .token_for(GA, "example.com", AUTHENTICATOR, later)
                .as_deref(),
            Some(&vec![7u8; 32])
        );
        assert!(
            cache
                .token_for(MC, "example.com", AUTHENTICATOR, later)
                .is_some()
        );
        // Never for another RP ID or a permission it lacks; those do not drop it.
        assert!(
            cache
                .token_for(GA, "other.example", AUTHENTICATOR, later)
                .is_none()
        );
        assert!(
            cache
                .token_for(
                    Permissions::CREDENTIAL_MANAGEMENT,
                    "example.com",
                    AUTHENTICATOR,
                    later
                )
                .is_none()
        );
        assert!(cache.holds_token());
    }

    #[test]
    fn the_window_and_the_authenticator_bound_the_token() {
        let (mut cache, now) = kept(120, GA);
        assert!(
            cache
                .token_for(
                    GA,
                    "example.com",
                    AUTHENTICATOR,
                    now + Duration::from_secs(120)
                )
                .is_none()
        );
        assert!(!cache.holds_token());
        let (mut cache, now) = kept(120, GA);
        assert!(
            cache
                .token_for(GA, "example.com", b"aaguid-2", now)
                .is_none()
        );
        assert!(!cache.holds_token());
        let (cache, _) = kept(0, GA);
        assert!(!cache.holds_token(), "a zero window keeps nothing");
    }

    #[test]
    fn presence_leaves_only_lbw_as_ctap_does() {
        let (mut cache, now) = kept(120, GA | MC);
        cache.used_with_presence();
        assert!(!cache.holds_token());
        let (mut cache, _) = kept(120, GA | Permissions::LARGE_BLOB_WRITE);
        cache.used_with_presence();
        assert!(
            cache
                .token_for(GA, "example.com", AUTHENTICATOR, now)
                .is_none()
        );
        assert!(
            cache
                .token_for(
                    Permissions::LARGE_BLOB_WRITE,
                    "example.com",
                    AUTHENTICATOR,
                    Instant::now()
                )
                .is_some()
        );
    }

    #[test]
    fn statuses_that_end_a_token_drop_it() {
        for status in [
            StatusCode::PinAuthInvalid,
            StatusCode::PinAuthBlocked,
            StatusCode::PinBlocked,
            StatusCode::PinInvalid,
            StatusCode::PinNotSet,
        ] {
            let (mut cache, _) = kept(120, GA);
            assert!(cache.forget_on(status.byte()), "{status:?}");
            assert!(!cache.holds_token());
        }
        let (mut cache, _) = kept(120, GA);
        assert!(!cache.forget_on(StatusCode::NoCredentials.byte()));
        assert!(!cache.forget_on(StatusCode::OperationDenied.byte()));
        assert!(cache.holds_token());
    }
}
