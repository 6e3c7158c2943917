//! passgate's wire types, shared by every crate that speaks them: the authenticator (which
//! decodes requests and encodes responses), the CTAP client (which does the opposite), the bridge
//! and app APIs (WebAuthn and SOTER JSON) and the relying party (authenticator data, COSE keys).
//!
//! One definition per concept, in the spirit of passkey-rs's `passkey-types` and OpenSK's
//! `ctap/command.rs` / `response.rs`. Nothing here does I/O, and nothing does cryptography but
//! `ctap::pin_protocol` (the `pin-protocol` feature), so the crate builds for every target
//! without a C compiler.

pub mod authenticator_data;
pub mod b64;
pub mod client_data;
pub mod cose;
pub mod ctap;
pub mod ctaphid;
pub mod display;
pub mod soter;
pub mod webauthn;

/// The RP ID prefix of credentials made for apps rather than websites (`passgate-app:<caller>`).
/// It holds a `:`, which no web origin's RP ID can, so a WebAuthn client never lets a page use
/// these credentials, and a trusted prompt can name the app instead of a site.
pub const APP_RP_ID_PREFIX: &str = "passgate-app:";

pub use authenticator_data::{
    AttestedCredentialData, AuthenticatorData, AuthenticatorDataError, Flags,
};
