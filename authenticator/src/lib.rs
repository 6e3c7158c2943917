//! passgate's CTAP 2.1 authenticator.
//!
//! The core is transport-agnostic: [`ctap::Authenticator::handle`] takes a command byte plus
//! canonical CBOR and returns a status byte plus canonical CBOR. [`ctaphid`] frames those
//! messages into 64-byte HID reports, and [`transport`] carries the reports over a byte pipe
//! (TCP today, a Linux uhid device later). Platform seams live in [`api`], and the default
//! software backends in [`software`]; [`fs`] has the
//! private directories and atomic, durable writes every passgate crate keeps its files with;
//! [`setup`] builds an authenticator on a state directory, as every front end does.

pub mod api;
pub mod ctap;
pub mod ctaphid;
pub mod env;
#[cfg(feature = "fprintd")]
pub mod fprintd;
#[cfg(feature = "fprintd")]
pub mod fprintd_enroll;
pub use passgate_platform_api::fs;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod presence;
pub mod setup;
pub mod software;
#[cfg(feature = "tpm")]
pub mod tpm;
pub mod transport;

pub use ctap::Authenticator;
pub use env::Env;
