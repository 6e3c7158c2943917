//! Byte pipes that carry CTAPHID reports to the authenticator.

pub mod limits;
pub mod secret;
pub mod stream;
pub mod tcp;
pub mod uhid;
