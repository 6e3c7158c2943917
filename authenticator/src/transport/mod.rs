//! Byte pipes that carry CTAPHID reports to the authenticator.

pub mod tcp;
pub mod uhid;
