//! CTAP 2.1 status codes (§8.2), the first byte of every response: the one definition lives in
//! `passgate-proto`, shared with every CTAP client.

pub use passgate_proto::ctap::StatusCode;
