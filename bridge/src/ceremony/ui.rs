//! What the bridge asks of the person, through the host's own trusted UI (never the page):
//! PIN entry, a first PIN, the choice between accounts.

use zeroize::Zeroizing;

use passgate_platform_api::user_verifier::Interaction;

/// One of several discoverable credentials the person picks from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The credential ID.
    pub credential_id: Vec<u8>,
    /// The user handle.
    pub user_handle: Option<Vec<u8>>,
    /// The account name, when the authenticator reveals it.
    pub name: Option<String>,
    /// The display name, when the authenticator reveals it.
    pub display_name: Option<String>,
}

/// What a ceremony that needs the person is for: shown in the host's prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// Creating a passkey for this account name.
    Create {
        /// `user.name` from the creation options.
        user_name: &'a str,
    },
    /// Signing in (or re-authenticating).
    Get,
    /// Approving an action whose text the page passed with the request: the challenge ends
    /// with SHA-256 of exactly this text (checked before anyone is asked), so the prompt
    /// shows what the signature covers.
    Approve {
        /// The action's text, as the relying party will record it (untrusted: cleaned
        /// before it is shown).
        payload: &'a str,
    },
    /// Not a request to go ahead but a notice: the page asked to create a passkey for this
    /// account, and this authenticator already holds one of the credentials the page
    /// excluded. The person's acknowledgement is the consent WebAuthn requires before the
    /// page learns it (`InvalidStateError`); nobody is asked for a PIN first.
    AlreadyRegistered {
        /// `user.name` from the creation options.
        user_name: &'a str,
    },
    /// Signing in from passkey autofill: a conditional request the page armed, started by
    /// a hint that the person is at a sign-in field (a hint the page could have given
    /// itself: the prompt decides, not the hint).
    Autofill,
}

/// Which page a request comes from, beyond its origin, and how many more wait behind it:
/// with two tabs of one site open, each prompt says which tab it is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestLabel<'a> {
    /// The requesting tab's title, as the page gives it (untrusted: cleaned, and shown as
    /// the page's own name for itself).
    pub tab_title: Option<&'a str>,
    /// Requests queued for the authenticator after this one (they are answered in turn).
    pub waiting: usize,
}

/// A request to enter the authenticator's PIN.
#[derive(Debug, Clone, Copy)]
pub struct PinRequest<'a> {
    /// The caller's origin, as the host established it (the prompt shows it).
    pub origin: &'a str,
    /// The RP ID the PIN token will be bound to.
    pub rp_id: &'a str,
    /// What the ceremony does.
    pub purpose: Purpose<'a>,
    /// The PIN entered before was wrong; this many attempts are left before the PIN is
    /// blocked (when the authenticator said).
    pub after_wrong_pin: Option<Option<u64>>,
    /// Which tab asks, and what waits behind it.
    pub label: RequestLabel<'a>,
    /// Cancelled when the page aborts or the ceremony times out: the prompt must close then.
    pub interaction: &'a Interaction,
}

/// A request to choose the authenticator's first PIN (asked twice, so a typo is not locked
/// in). Made when user verification is needed and the authenticator has no PIN yet.
#[derive(Debug, Clone, Copy)]
pub struct NewPinRequest<'a> {
    /// The caller's origin.
    pub origin: &'a str,
    /// The RP ID of the ceremony that needs it.
    pub rp_id: &'a str,
    /// What the ceremony does.
    pub purpose: Purpose<'a>,
    /// The shortest PIN the authenticator accepts, in Unicode code points.
    pub min_length: usize,
    /// Why the previous choice was refused, if it was.
    pub problem: Option<&'a str>,
    /// Which tab asks, and what waits behind it.
    pub label: RequestLabel<'a>,
    /// Cancelled when the page aborts or the ceremony times out.
    pub interaction: &'a Interaction,
}

/// Several discoverable credentials answered: the person picks one.
#[derive(Debug, Clone, Copy)]
pub struct AccountChoice<'a> {
    /// The caller's origin.
    pub origin: &'a str,
    /// The RP ID.
    pub rp_id: &'a str,
    /// What the sign-in is for ([`Purpose::Get`] or [`Purpose::Autofill`]).
    pub purpose: Purpose<'a>,
    /// The accounts, newest (or most recently used) first.
    pub accounts: &'a [Account],
    /// The choice comes first, from the account record: one verification follows, for the
    /// chosen account only.
    pub before_verification: bool,
    /// Which tab asks, and what waits behind it.
    pub label: RequestLabel<'a>,
    /// Cancelled when the page aborts or the ceremony times out.
    pub interaction: &'a Interaction,
}

/// A request to approve what a ceremony is about to sign, made when no PIN dialog shows it
/// (no PIN is needed, or the authenticator verifies by itself).
#[derive(Debug, Clone, Copy)]
pub struct ApprovalRequest<'a> {
    /// The caller's origin.
    pub origin: &'a str,
    /// The RP ID.
    pub rp_id: &'a str,
    /// What the ceremony does ([`Purpose::Approve`] with the action's text).
    pub purpose: Purpose<'a>,
    /// Which tab asks, and what waits behind it.
    pub label: RequestLabel<'a>,
    /// Cancelled when the page aborts or the ceremony times out.
    pub interaction: &'a Interaction,
}

/// The PIN is blocked until the authenticator power-cycles (three wrong PINs in a row): the
/// person may unlock it here, and then enter the PIN again.
#[derive(Debug, Clone, Copy)]
pub struct UnlockRequest<'a> {
    /// The caller's origin.
    pub origin: &'a str,
    /// The RP ID of the ceremony that needs the PIN.
    pub rp_id: &'a str,
    /// What the ceremony does.
    pub purpose: Purpose<'a>,
    /// PIN attempts left before the PIN is blocked for good, when the authenticator says.
    pub retries: Option<u64>,
    /// Seconds the unlock waits after the block before it power-cycles.
    pub delay_seconds: u64,
    /// Which tab asks, and what waits behind it.
    pub label: RequestLabel<'a>,
    /// Cancelled when the page aborts or the ceremony times out.
    pub interaction: &'a Interaction,
}

/// Why the person gave no answer in the host's prompt: each reaches the page as its own
/// message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The person declined (Cancel, Deny, Escape).
    Declined,
    /// Nobody answered within the prompt's own timeout (this many seconds, when known).
    TimedOut(Option<u64>),
    /// The request was cancelled (the page aborted, the ceremony timed out).
    Cancelled,
    /// The prompt could not be shown.
    Unavailable,
}

/// What the bridge asks of the person through the host's own (trusted) UI: never the page.
pub trait UserInterface: Send + Sync {
    /// Whether this host can ask for the authenticator's PIN.
    fn collects_pin(&self) -> bool {
        false
    }

    /// Asks for the PIN; why not, when the person gave none.
    fn pin(&self, _request: &PinRequest<'_>) -> Result<Zeroizing<String>, Unanswered> {
        Err(Unanswered::Unavailable)
    }

    /// Whether this host can set the authenticator's first PIN when verification is required
    /// and none is set yet.
    fn sets_pin(&self) -> bool {
        false
    }

    /// Asks for a new PIN, twice, and returns it once both entries match; why not, when
    /// the person gave none.
    fn new_pin(&self, _request: &NewPinRequest<'_>) -> Result<Zeroizing<String>, Unanswered> {
        Err(Unanswered::Unavailable)
    }

    /// Lets the person pick one of several accounts: before the verification when the
    /// bridge's account record knows them ([`AccountChoice::before_verification`]), else
    /// after it in a discoverable sign-in; why not, when they picked none. The default takes
    /// the first (the most recently used, or the authenticator's newest).
    fn choose_account(&self, choice: &AccountChoice<'_>) -> Result<usize, Unanswered> {
        if choice.accounts.is_empty() {
            Err(Unanswered::Unavailable)
        } else {
            Ok(0)
        }
    }

    /// Whether this host shows an action's text ([`Purpose::Approve`]) before it is signed:
    /// then every such ceremony shows it (in the PIN dialog, or through [`Self::approve`]) or
    /// fails. A host that cannot show it signs as for a sign-in, and never says it showed it.
    fn shows_approvals(&self) -> bool {
        false
    }

    /// Shows what is about to be signed and asks the person to approve it.
    fn approve(&self, _request: &ApprovalRequest<'_>) -> Result<(), Unanswered> {
        Err(Unanswered::Unavailable)
    }

    /// After three wrong PINs in a row (PIN_AUTH_BLOCKED), offers to unlock: power-cycling
    /// only the authenticator, where the host can ([`crate::Bridge::with_power_cycle`]).
    /// `Ok` when the person chose to. The default offers nothing: the ceremony fails and
    /// says to restart the authenticator.
    fn unlock(&self, _request: &UnlockRequest<'_>) -> Result<(), Unanswered> {
        Err(Unanswered::Unavailable)
    }

    /// The ceremony that asked is over (whatever its outcome): anything the UI kept for it
    /// (an approval the authenticator's presence check may take) goes.
    fn ceremony_ended(&self) {}
}

/// A host with no UI of its own: no PIN entry, the newest account in discoverable sign-ins.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUserInterface;

impl UserInterface for NoUserInterface {}
