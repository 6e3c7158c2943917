//! CTAPHID framing (CTAP 2.1 §11.2): reports, the constants of the protocol, a message's
//! encoding into reports and its reassembly. Both ends of the wire use it: the authenticator's
//! device state machine (`passgate_authenticator::ctaphid::HidDevice`) and the client's transport.

use std::time::Duration;

/// Size of one HID report.
pub const PACKET_SIZE: usize = 64;
/// One HID report.
pub type Packet = [u8; PACKET_SIZE];
/// The broadcast channel, used to allocate channels with INIT.
pub const BROADCAST_CID: u32 = 0xffff_ffff;
/// Largest message: one init packet (57 bytes) and 128 continuation packets (59 bytes each).
pub const MAX_MESSAGE_SIZE: usize = 7609;
/// How long the device waits for the next continuation packet.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest a message may take to arrive, from its init packet to its last continuation
/// (CTAP's transaction timeout): a client that drip-feeds continuations just inside
/// [`REASSEMBLY_TIMEOUT`] would otherwise hold the device for a minute (129 packets) while
/// every other channel is answered CHANNEL_BUSY. A whole 7609-byte message takes
/// milliseconds on any transport.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How often KEEPALIVE is sent while a request runs.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);

/// Data bytes in an init packet.
pub const INIT_DATA: usize = PACKET_SIZE - 7;
/// Data bytes in a continuation packet.
pub const CONT_DATA: usize = PACKET_SIZE - 5;

/// CTAPHID_PING.
pub const CMD_PING: u8 = 0x01;
/// CTAPHID_MSG (CTAP1/U2F; not supported: NMSG).
pub const CMD_MSG: u8 = 0x03;
/// CTAPHID_LOCK (not supported).
pub const CMD_LOCK: u8 = 0x04;
/// CTAPHID_INIT.
pub const CMD_INIT: u8 = 0x06;
/// CTAPHID_WINK.
pub const CMD_WINK: u8 = 0x08;
/// CTAPHID_CBOR.
pub const CMD_CBOR: u8 = 0x10;
/// CTAPHID_CANCEL.
pub const CMD_CANCEL: u8 = 0x11;
/// CTAPHID_KEEPALIVE.
pub const CMD_KEEPALIVE: u8 = 0x3b;
/// CTAPHID_ERROR.
pub const CMD_ERROR: u8 = 0x3f;

/// CTAPHID error codes.
pub mod error {
    /// The command in the request is invalid.
    pub const INVALID_CMD: u8 = 0x01;
    /// A parameter in the request is invalid.
    pub const INVALID_PAR: u8 = 0x02;
    /// The length field (BCNT) is invalid for the request.
    pub const INVALID_LEN: u8 = 0x03;
    /// The sequence does not match the expected value.
    pub const INVALID_SEQ: u8 = 0x04;
    /// The message has timed out.
    pub const MSG_TIMEOUT: u8 = 0x05;
    /// The device is busy for the requesting channel.
    pub const CHANNEL_BUSY: u8 = 0x06;
    /// The command requires channel lock.
    pub const LOCK_REQUIRED: u8 = 0x0a;
    /// CID is not valid.
    pub const INVALID_CHANNEL: u8 = 0x0b;
    /// Unspecified error.
    pub const OTHER: u8 = 0x7f;
}

/// Capability flags sent in the INIT response.
pub mod capability {
    /// Implements WINK.
    pub const WINK: u8 = 0x01;
    /// Implements CBOR.
    pub const CBOR: u8 = 0x04;
    /// Does NOT implement MSG (CTAP1).
    pub const NMSG: u8 = 0x08;
}

/// CTAPHID protocol version.
pub const PROTOCOL_VERSION: u8 = 2;
/// Device version reported by INIT (major, minor, build).
pub const DEVICE_VERSION: [u8; 3] = [0, 1, 0];

mod assembler;
mod packet;

pub use assembler::{AssembleError, MessageAssembler};
pub use packet::{encode_message, error_packet, keepalive_packet, packet_bcnt, packet_cid};
