//! The client side of the framing: reassembling a device's reports into messages.

use super::packet::{packet_bcnt, packet_cid};
use super::{CONT_DATA, MAX_MESSAGE_SIZE, Packet};

/// Why a response could not be reassembled (client side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// A continuation packet arrived out of order.
    #[error("unexpected continuation sequence {got}, expected {expected}")]
    Sequence {
        /// Expected sequence number.
        expected: u8,
        /// Received sequence number.
        got: u8,
    },
    /// A continuation packet arrived with no message started.
    #[error("continuation packet without an init packet")]
    NoMessage,
    /// A continuation packet belongs to another channel than the message in progress.
    #[error("continuation packet for channel {got:#010x} while reassembling {expected:#010x}")]
    Channel {
        /// The channel of the message in progress.
        expected: u32,
        /// The channel of the continuation packet.
        got: u32,
    },
    /// The length field is larger than CTAPHID allows.
    #[error("message length {0} exceeds the CTAPHID maximum")]
    TooLong(usize),
}

/// A message in progress on the client side.
#[derive(Debug)]
struct Partial {
    cid: u32,
    cmd: u8,
    expected: usize,
    data: Vec<u8>,
    next_seq: u8,
}

/// Reassembles messages from reports: the client side of the framing, for tests, the
/// benchmarks and conformance tools.
///
/// Feed every report read from the device to [`Self::push`]; it returns `(cid, cmd, payload)`
/// (`cmd` without the 0x80 bit) once a message is complete. An init packet starts a new
/// message, dropping any unfinished one.
#[derive(Debug, Default)]
pub struct MessageAssembler {
    current: Option<Partial>,
}

impl MessageAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a message has started and is not complete yet.
    pub fn is_pending(&self) -> bool {
        self.current.is_some()
    }

    /// Adds a report; returns `(cid, cmd, payload)` when a message is complete. KEEPALIVE and
    /// ERROR arrive as complete one-packet messages too. After an error the assembler is empty.
    pub fn push(&mut self, packet: &Packet) -> Result<Option<(u32, u8, Vec<u8>)>, AssembleError> {
        let cid = packet_cid(packet);
        if packet[4] & 0x80 != 0 {
            self.current = None;
            let cmd = packet[4] & 0x7f;
            let expected = packet_bcnt(packet);
            if expected > MAX_MESSAGE_SIZE {
                return Err(AssembleError::TooLong(expected));
            }
            if let Some(data) = packet[7..].get(..expected) {
                return Ok(Some((cid, cmd, data.to_vec())));
            }
            let mut data = Vec::with_capacity(expected);
            data.extend_from_slice(&packet[7..]);
            self.current = Some(Partial {
                cid,
                cmd,
                expected,
                data,
                next_seq: 0,
            });
            return Ok(None);
        }
        let Some(mut partial) = self.current.take() else {
            return Err(AssembleError::NoMessage);
        };
        if partial.cid != cid {
            return Err(AssembleError::Channel {
                expected: partial.cid,
                got: cid,
            });
        }
        if packet[4] != partial.next_seq {
            return Err(AssembleError::Sequence {
                expected: partial.next_seq,
                got: packet[4],
            });
        }
        let missing = partial.expected.saturating_sub(partial.data.len());
        partial
            .data
            .extend_from_slice(&packet[5..5 + missing.min(CONT_DATA)]);
        if partial.data.len() >= partial.expected {
            return Ok(Some((partial.cid, partial.cmd, partial.data)));
        }
        partial.next_seq = partial.next_seq.wrapping_add(1);
        self.current = Some(partial);
        Ok(None)
    }
}
