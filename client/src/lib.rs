//! passgate's CTAP 2.1 client: the platform side of the wire, shared by the bridge (the
//! WebAuthn client) and the app APIs.
//!
//! - [`transport`]: how a request reaches an authenticator ([`InProcess`], [`TcpCtapHid`]).
//! - [`pin`]: PIN/UV auth protocol 2 — the shared secret, clientPIN requests, hmac-secret
//!   inputs and the PRF salt.
//! - [`info`]: getInfo as a client needs it ([`AuthenticatorInfo`]).
//! - [`CtapClient`]: typed requests and responses (`passgate_proto::ctap`) over a transport.
//! - [`token_cache`]: a pinUvAuthToken kept for a short window, under CTAP 2.1's token rules.
//! - [`uv_plan`]: how a ceremony verifies the user (built-in UV, PIN token, first PIN).
//! - [`cbor`]: value-level helpers for what proto does not type yet.
//!
//! Errors ([`ClientError`]) keep the authenticator's status byte; mapping it to a DOMException
//! or an app error is the caller's business.

pub mod cbor;
pub mod ctap_client;
pub mod error;
pub mod info;
pub mod pin;
pub mod token_cache;
pub mod transport;
pub mod uv_plan;

pub use ctap_client::{CtapClient, PinToken, is_rp_id_hash};
pub use error::ClientError;
pub use info::AuthenticatorInfo;
pub use transport::{CtapHidSocket, CtapTransport, InProcess, TcpCtapHid, TransportError};
