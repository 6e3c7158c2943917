//! The `relying_party_api` target's input layout, shared with the seeder: one selector byte
//! (route, session cookie, credential ID), then the body.
//!
//! The byte `b` picks the route `b % ROUTES.len()`, the cookie `(b / ROUTES.len()) % 3` (none,
//! a recently verified session, a session whose verification is too old for a step-up) and,
//! for `{id}` routes, the passkey `b / 66` (see [`CREDENTIAL_IDS`]). A byte below
//! `ROUTES.len()` is a route with no cookie, as the corpus from before the session routes had.

/// The routes: (method, path; `{id}` is replaced by a passkey ID).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/register/options"),
    ("POST", "/api/register/verify"),
    ("POST", "/api/login/options"),
    ("POST", "/api/login/verify"),
    ("POST", "/api/reauth/options"),
    ("POST", "/api/reauth/verify"),
    ("POST", "/api/actions/options"),
    ("POST", "/api/actions/verify"),
    ("POST", "/api/receipts/verify"),
    ("POST", "/api/verify/assertion"),
    ("POST", "/attestation/options"),
    ("POST", "/attestation/result"),
    ("POST", "/assertion/options"),
    ("POST", "/assertion/result"),
    ("POST", "/api/soter/challenge"),
    ("POST", "/api/soter/devices"),
    ("POST", "/api/soter/verify"),
    ("POST", "/api/logout"),
    // The signed-in session's own routes.
    ("GET", "/api/credentials"),
    ("PATCH", "/api/credentials/{id}"),
    ("DELETE", "/api/credentials/{id}"),
    ("POST", "/api/logout/all"),
];

/// The session cookie a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    /// None: signed out.
    None,
    /// The rig's session, verified recently enough for a step-up.
    Verified,
    /// The rig's other session, whose verification is too old for a step-up.
    Stale,
}

/// The rig account's passkeys: the one its sessions signed in with, a second one, an ID no
/// one has, and one with percent-escapes (invalid UTF-8 and a `/` once decoded).
pub const CREDENTIAL_IDS: [&str; 4] = [
    "fuzz-passkey-a",
    "fuzz-passkey-b",
    "no-such-passkey",
    "%ff%2F..%00x",
];

/// What a selector byte asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selector {
    /// An index into [`ROUTES`].
    pub route: usize,
    /// The cookie sent.
    pub cookie: Cookie,
    /// An index into [`CREDENTIAL_IDS`], for `{id}` routes.
    pub credential: usize,
}

impl Selector {
    /// Decodes a selector byte.
    pub fn decode(byte: u8) -> Self {
        let b = usize::from(byte);
        let cookie = match (b / ROUTES.len()) % 3 {
            0 => Cookie::None,
            1 => Cookie::Verified,
            _ => Cookie::Stale,
        };
        Self {
            route: b % ROUTES.len(),
            cookie,
            credential: (b / 66) % CREDENTIAL_IDS.len(),
        }
    }

    /// The smallest byte that decodes to `self` (for seeds), if there is one.
    pub fn encode(self) -> Option<u8> {
        (0..=u8::MAX).find(|&b| {
            let d = Self::decode(b);
            // The credential only matters on `{id}` routes.
            d.route == self.route
                && d.cookie == self.cookie
                && (!ROUTES[self.route].1.contains("{id}") || d.credential == self.credential)
        })
    }

    /// The method and the path, `{id}` filled in.
    pub fn request_line(self) -> (&'static str, String) {
        let (method, path) = ROUTES[self.route];
        (method, path.replace("{id}", CREDENTIAL_IDS[self.credential]))
    }
}

/// Checks the layout (the target's `init` runs it, so every fuzz run does): every route with
/// every cookie, and every passkey on the `{id}` routes, has a byte, which decodes back to it;
/// the bytes below `ROUTES.len()` are the old corpus' routes without a cookie.
pub fn check_layout() {
    for route in 0..ROUTES.len() {
        let has_id = ROUTES[route].1.contains("{id}");
        for cookie in [Cookie::None, Cookie::Verified, Cookie::Stale] {
            for credential in 0..CREDENTIAL_IDS.len() {
                let wanted = Selector {
                    route,
                    cookie,
                    credential,
                };
                let Some(byte) = wanted.encode() else {
                    // One byte has room for all but this: the escaped ID with the stale
                    // session (refused at the path, before the session matters).
                    assert!(
                        has_id && cookie == Cookie::Stale && credential == 3,
                        "{wanted:?} has no byte"
                    );
                    continue;
                };
                let got = Selector::decode(byte);
                assert_eq!((got.route, got.cookie), (route, cookie));
                if has_id {
                    assert_eq!(got.credential, credential);
                }
            }
        }
    }
    for b in 0..18u8 {
        assert_eq!(Selector::decode(b).cookie, Cookie::None);
        assert_eq!(Selector::decode(b).route, usize::from(b));
    }
}
