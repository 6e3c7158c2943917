//! One approval, one prompt: when the bridge's trusted prompt has just shown the person the
//! whole request (who asks, for which site, to do what, and for an action its text) and they
//! approved it there (typed the PIN and pressed Verify, or pressed Approve), the
//! authenticator's presence check does not ask a second time.
//!
//! Only where both run in one process on the same trusted prompt (`passgate demo`, an app
//! with passgate inside): [`PromptUi::with_presence_grants`](super::PromptUi) records the
//! approval, [`PromptPresence::with_presence_grants`](super::PromptPresence) takes it. A grant
//! is for one RP ID and one kind of operation, is taken once, lapses after a few seconds, and
//! goes when the bridge's ceremony ends; the bridge holds the authenticator for the whole
//! ceremony, so no other request comes between the approval and the operation it approved.
//! Across processes (a bridge talking to `passgate authenticator serve`) nothing is shared and
//! the authenticator asks for presence itself, as CTAP expects of a PIN token (it carries no
//! user presence).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use passgate_platform_api::user_verifier::PromptAction;

/// How long an approval waits for the operation it approved (the ceremony's next CTAP
/// request, milliseconds later; generous for a slow machine).
pub const DEFAULT_GRANT_LIFETIME: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Grant {
    rp_id: String,
    action: PromptAction,
    at: Instant,
}

/// The approval the bridge's prompt just collected, for the authenticator's presence check.
#[derive(Debug)]
pub struct PresenceGrants {
    current: Mutex<Option<Grant>>,
    lifetime: Duration,
}

impl Default for PresenceGrants {
    fn default() -> Self {
        Self::new(DEFAULT_GRANT_LIFETIME)
    }
}

impl PresenceGrants {
    /// Grants that lapse after `lifetime`.
    pub fn new(lifetime: Duration) -> Self {
        Self {
            current: Mutex::new(None),
            lifetime,
        }
    }

    /// The person approved `action` on `rp_id` in the trusted prompt just now (replaces any
    /// earlier grant).
    pub fn grant(&self, rp_id: &str, action: PromptAction) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Grant {
            rp_id: rp_id.to_owned(),
            action,
            at: Instant::now(),
        });
    }

    /// Takes the grant if it is for `action` on `rp_id` and still fresh; a grant for anything
    /// else is dropped too (it was not used for what it approved).
    pub fn take(&self, rp_id: &str, action: PromptAction) -> bool {
        let grant = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        grant.is_some_and(|g| {
            g.rp_id == rp_id && g.action == action && g.at.elapsed() <= self.lifetime
        })
    }

    /// Drops any grant (the ceremony that collected it is over).
    pub fn clear(&self) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_for_one_site_one_operation_once() {
        let grants = PresenceGrants::default();
        assert!(!grants.take("example.com", PromptAction::SignIn));
        grants.grant("example.com", PromptAction::SignIn);
        assert!(grants.take("example.com", PromptAction::SignIn));
        assert!(
            !grants.take("example.com", PromptAction::SignIn),
            "taken once"
        );

        grants.grant("example.com", PromptAction::SignIn);
        assert!(!grants.take("evil.example", PromptAction::SignIn));
        assert!(
            !grants.take("example.com", PromptAction::SignIn),
            "a mismatched take drops it"
        );

        grants.grant("example.com", PromptAction::SignIn);
        assert!(!grants.take("example.com", PromptAction::Register));
        grants.grant("example.com", PromptAction::Register);
        grants.clear();
        assert!(!grants.take("example.com", PromptAction::Register));
    }

    #[test]
    fn a_grant_lapses() {
        let grants = PresenceGrants::new(Duration::from_millis(20));
        grants.grant("example.com", PromptAction::SignIn);
        std::thread::sleep(Duration::from_millis(40));
        assert!(!grants.take("example.com", PromptAction::SignIn));
    }
}
