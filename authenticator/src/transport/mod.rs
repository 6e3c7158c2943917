//! Byte pipes that carry CTAPHID reports to the authenticator.

pub mod limits;
pub use passgate_platform_api::transport::{secret, stream};
pub mod tcp;
pub mod uhid;
