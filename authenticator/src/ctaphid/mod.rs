//! CTAPHID framing (CTAP 2.1 §11.2) as a pure state machine.
//!
//! [`Device`] takes 64-byte reports and the current time and says what to do: reply with
//! reports, dispatch a complete CBOR request, cancel the running one. It performs no I/O, so
//! the TCP transport of today and a Linux uhid device later drive the same code. The client
//! side helpers ([`encode_message`], [`MessageAssembler`]) serve tests, benchmarks and tools.

use std::time::{Duration, Instant};

use crate::api::user_verifier::Interaction;

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

const INIT_DATA: usize = PACKET_SIZE - 7;
const CONT_DATA: usize = PACKET_SIZE - 5;

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

/// Runs CTAP2 commands for a CTAPHID device.
pub trait CtapHandler: Send {
    /// Runs one CTAP2 command (command byte + CBOR) and returns status byte + CBOR.
    fn handle_cbor(&mut self, request: &[u8], interaction: &Interaction) -> Vec<u8>;
    /// Flashes/notifies so the person can tell which authenticator this is.
    fn wink(&mut self) {}
}

impl CtapHandler for crate::Authenticator {
    fn handle_cbor(&mut self, request: &[u8], interaction: &Interaction) -> Vec<u8> {
        self.handle_with(request, interaction)
    }

    fn wink(&mut self) {
        tracing::info!("wink: this is the authenticator the client is talking to");
    }
}

/// Identifies one connection (one open handle) to the device.
pub type ConnectionId = u64;

/// What the transport must do after a packet or a tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing (more packets expected, or the packet is ignored).
    None,
    /// Send these reports to the connection that sent the packet.
    Reply(Vec<Packet>),
    /// Run this CBOR request for `cid`; the device stays busy until [`Device::finish`].
    Dispatch {
        /// The channel.
        cid: u32,
        /// Command byte + CBOR.
        request: Vec<u8>,
    },
    /// Cancel the running request of `cid` (no response to the CANCEL itself).
    Cancel {
        /// The channel.
        cid: u32,
    },
    /// Wink, then send these reports.
    Wink(Vec<Packet>),
    /// INIT arrived on the channel whose request is running: cancel that request and discard
    /// its response (the channel is resynchronised), then send `reply` to the sender. The device
    /// stays busy until [`Device::finish`].
    Resync {
        /// The channel.
        cid: u32,
        /// The INIT response.
        reply: Vec<Packet>,
    },
}

/// A message being reassembled from an init packet and its continuation packets.
struct Reassembly {
    connection: ConnectionId,
    cid: u32,
    cmd: u8,
    expected: usize,
    data: Vec<u8>,
    next_seq: u8,
    /// When the init packet arrived.
    started: Instant,
    last_packet: Instant,
}

impl Reassembly {
    /// When this message times out: [`REASSEMBLY_TIMEOUT`] after its last packet, and never
    /// later than [`TRANSACTION_TIMEOUT`] after its first.
    fn deadline(&self) -> Instant {
        (self.last_packet + REASSEMBLY_TIMEOUT).min(self.started + TRANSACTION_TIMEOUT)
    }
}

/// The CTAPHID state of one authenticator device, shared by all its connections.
///
/// Channels are device-wide and the device runs one transaction at a time: while a message
/// is being reassembled or a CBOR request is running, requests on other channels are answered
/// with [`error::CHANNEL_BUSY`] (INIT is always answered).
pub struct Device {
    /// The CID the next INIT on the broadcast channel allocates.
    next_cid: u32,
    /// Every CID in 1..=0xfffffffe has been handed out once (allocation wrapped around).
    wrapped: bool,
    capabilities: u8,
    rx: Option<Reassembly>,
    busy: Option<(ConnectionId, u32)>,
}

impl Default for Device {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("next_cid", &self.next_cid)
            .field("reassembling", &self.rx.as_ref().map(|rx| rx.cid))
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

/// The channel identifier of a report (its first four bytes, big-endian).
pub fn packet_cid(packet: &Packet) -> u32 {
    u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]])
}

/// The BCNT field of an init packet.
fn packet_bcnt(packet: &Packet) -> usize {
    usize::from(u16::from_be_bytes([packet[5], packet[6]]))
}

/// A single-packet response carrying one status byte (ERROR, KEEPALIVE).
fn status_packet(cid: u32, cmd: u8, code: u8) -> Packet {
    let mut p = [0u8; PACKET_SIZE];
    p[..4].copy_from_slice(&cid.to_be_bytes());
    p[4] = 0x80 | cmd;
    p[6] = 1;
    p[7] = code;
    p
}

/// A single-packet ERROR response with `code` (see [`error`]).
pub fn error_packet(cid: u32, code: u8) -> Packet {
    status_packet(cid, CMD_ERROR, code)
}

/// A KEEPALIVE packet with `status` (1 processing, 2 user presence needed).
pub fn keepalive_packet(cid: u32, status: u8) -> Packet {
    status_packet(cid, CMD_KEEPALIVE, status)
}

/// Splits a message into an init packet (CID, CMD|0x80, BCNT, 57 data bytes) and
/// continuation packets (CID, SEQ 0..=0x7f, 59 data bytes), zero padded. Payloads longer than
/// [`MAX_MESSAGE_SIZE`] are truncated to it (the device never produces them; a client that
/// wants to send an over-long BCNT builds the init packet itself).
pub fn encode_message(cid: u32, cmd: u8, payload: &[u8]) -> Vec<Packet> {
    let payload = payload.get(..MAX_MESSAGE_SIZE).unwrap_or(payload);
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let (first, rest) = payload.split_at(payload.len().min(INIT_DATA));
    let mut packets = Vec::with_capacity(1 + rest.len().div_ceil(CONT_DATA));
    let mut p = [0u8; PACKET_SIZE];
    p[..4].copy_from_slice(&cid.to_be_bytes());
    p[4] = 0x80 | cmd;
    p[5..7].copy_from_slice(&len.to_be_bytes());
    p[7..7 + first.len()].copy_from_slice(first);
    packets.push(p);
    for (seq, chunk) in (0u8..=0x7f).zip(rest.chunks(CONT_DATA)) {
        let mut p = [0u8; PACKET_SIZE];
        p[..4].copy_from_slice(&cid.to_be_bytes());
        p[4] = seq;
        p[5..5 + chunk.len()].copy_from_slice(chunk);
        packets.push(p);
    }
    packets
}

impl Device {
    /// A device with no channels allocated.
    pub fn new() -> Self {
        Self {
            next_cid: 1,
            wrapped: false,
            capabilities: capability::WINK | capability::CBOR | capability::NMSG,
            rx: None,
            busy: None,
        }
    }

    /// Whether `cid` was handed out by an INIT on the broadcast channel.
    pub fn is_allocated(&self, cid: u32) -> bool {
        cid != 0 && cid != BROADCAST_CID && (self.wrapped || cid < self.next_cid)
    }

    /// The channel whose CBOR request is running, if any.
    pub fn busy_channel(&self) -> Option<u32> {
        self.busy.map(|(_, cid)| cid)
    }

    /// When the partial message (if any) times out; a transport without its own ticking can
    /// sleep until then and call [`Self::on_tick`].
    pub fn reassembly_deadline(&self) -> Option<Instant> {
        self.rx.as_ref().map(Reassembly::deadline)
    }

    fn allocate(&mut self) -> u32 {
        let cid = self.next_cid;
        if cid >= BROADCAST_CID - 1 {
            // 2^32 - 2 channels later: start over (the oldest channels are long gone).
            self.next_cid = 1;
            self.wrapped = true;
        } else {
            self.next_cid = cid + 1;
        }
        cid
    }

    /// Handles one report from `connection` at time `now`. Never panics, whatever the bytes.
    pub fn on_packet(&mut self, connection: ConnectionId, packet: &Packet, now: Instant) -> Action {
        let cid = packet_cid(packet);
        if packet[4] & 0x80 == 0 {
            return self.on_continuation(connection, cid, packet, now);
        }
        let cmd = packet[4] & 0x7f;
        let bcnt = packet_bcnt(packet);
        if cid == 0 {
            return reply_error(cid, error::INVALID_CHANNEL);
        }
        if cmd == CMD_INIT {
            return self.on_init(cid, bcnt, packet);
        }
        if !self.is_allocated(cid) {
            // Also the broadcast channel: only INIT may use it.
            return reply_error(cid, error::INVALID_CHANNEL);
        }
        if cmd == CMD_CANCEL {
            // CTAP 2.1 §11.2.9.1.5: a CANCEL with no CBOR request of its channel running is
            // ignored, and a CANCEL never gets a response.
            return match self.busy {
                Some((_, busy)) if busy == cid => Action::Cancel { cid },
                _ => Action::None,
            };
        }
        if self.busy.is_some() {
            return reply_error(cid, error::CHANNEL_BUSY);
        }
        if let Some(rx) = &self.rx {
            if rx.cid != cid {
                return reply_error(cid, error::CHANNEL_BUSY);
            }
            // A new request on the channel that is mid-message breaks the sequence: the
            // partial message is dropped.
            self.rx = None;
            return reply_error(cid, error::INVALID_SEQ);
        }
        if bcnt > MAX_MESSAGE_SIZE {
            return reply_error(cid, error::INVALID_LEN);
        }
        if let Some(data) = packet[7..].get(..bcnt) {
            return self.complete(connection, cid, cmd, data.to_vec());
        }
        let mut data = Vec::with_capacity(bcnt);
        data.extend_from_slice(&packet[7..]);
        self.rx = Some(Reassembly {
            connection,
            cid,
            cmd,
            expected: bcnt,
            data,
            next_seq: 0,
            started: now,
            last_packet: now,
        });
        Action::None
    }

    fn on_init(&mut self, cid: u32, bcnt: usize, packet: &Packet) -> Action {
        if cid != BROADCAST_CID && !self.is_allocated(cid) {
            return reply_error(cid, error::INVALID_CHANNEL);
        }
        if bcnt != 8 {
            return reply_error(cid, error::INVALID_LEN);
        }
        // INIT on an allocated channel resynchronises it: drop its partial message. A request
        // that is already running cannot be taken back here; the transport cancels it.
        if self.rx.as_ref().is_some_and(|rx| rx.cid == cid) {
            self.rx = None;
        }
        let cancel_running = self.busy.is_some_and(|(_, busy)| busy == cid);
        let new_cid = if cid == BROADCAST_CID {
            self.allocate()
        } else {
            cid
        };
        let mut payload = [0u8; 17];
        payload[..8].copy_from_slice(&packet[7..15]);
        payload[8..12].copy_from_slice(&new_cid.to_be_bytes());
        payload[12] = PROTOCOL_VERSION;
        payload[13..16].copy_from_slice(&DEVICE_VERSION);
        payload[16] = self.capabilities;
        let reply = encode_message(cid, CMD_INIT, &payload);
        if cancel_running {
            Action::Resync { cid, reply }
        } else {
            Action::Reply(reply)
        }
    }

    fn on_continuation(
        &mut self,
        connection: ConnectionId,
        cid: u32,
        packet: &Packet,
        now: Instant,
    ) -> Action {
        let Some(rx) = &mut self.rx else {
            return Action::None; // A continuation with no message started is ignored.
        };
        if rx.cid != cid || rx.connection != connection {
            return Action::None; // Not part of the transaction in progress.
        }
        if packet[4] != rx.next_seq {
            self.rx = None;
            return reply_error(cid, error::INVALID_SEQ);
        }
        rx.next_seq = rx.next_seq.wrapping_add(1);
        rx.last_packet = now;
        let missing = rx.expected.saturating_sub(rx.data.len());
        rx.data
            .extend_from_slice(&packet[5..5 + missing.min(CONT_DATA)]);
        if rx.data.len() < rx.expected {
            return Action::None;
        }
        match self.rx.take() {
            Some(done) => self.complete(connection, done.cid, done.cmd, done.data),
            None => Action::None,
        }
    }

    fn complete(
        &mut self,
        connection: ConnectionId,
        cid: u32,
        cmd: u8,
        payload: Vec<u8>,
    ) -> Action {
        match cmd {
            CMD_PING => Action::Reply(encode_message(cid, CMD_PING, &payload)),
            CMD_CBOR => {
                if payload.is_empty() {
                    return reply_error(cid, error::INVALID_LEN);
                }
                self.busy = Some((connection, cid));
                Action::Dispatch {
                    cid,
                    request: payload,
                }
            }
            CMD_WINK => {
                if !payload.is_empty() {
                    return reply_error(cid, error::INVALID_LEN);
                }
                Action::Wink(encode_message(cid, CMD_WINK, &[]))
            }
            // MSG (we are CTAP2-only: NMSG), LOCK, and anything unknown.
            _ => reply_error(cid, error::INVALID_CMD),
        }
    }

    /// Called periodically by the connection that may own a partial message: after
    /// [`REASSEMBLY_TIMEOUT`] without a continuation, or [`TRANSACTION_TIMEOUT`] after the
    /// init packet, the message is dropped and the ERROR packet with [`error::MSG_TIMEOUT`] to
    /// send to that connection is returned.
    pub fn on_tick(&mut self, connection: ConnectionId, now: Instant) -> Option<Packet> {
        let rx = self.rx.as_ref()?;
        if rx.connection == connection && now >= rx.deadline() {
            let cid = rx.cid;
            self.rx = None;
            return Some(error_packet(cid, error::MSG_TIMEOUT));
        }
        None
    }

    /// The running request of `cid` finished (answered, or abandoned); the device is free.
    pub fn finish(&mut self, cid: u32) {
        if self.busy.is_some_and(|(_, c)| c == cid) {
            self.busy = None;
        }
    }

    /// A connection went away: drop its partial message. Its running request, if any, stays
    /// busy until the transport has cancelled it and calls [`Self::finish`].
    pub fn disconnect(&mut self, connection: ConnectionId) {
        if self
            .rx
            .as_ref()
            .is_some_and(|rx| rx.connection == connection)
        {
            self.rx = None;
        }
    }
}

fn reply_error(cid: u32, code: u8) -> Action {
    Action::Reply(vec![error_packet(cid, code)])
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn init_packet(cid: u32, cmd: u8, bcnt: u16, data: &[u8]) -> Packet {
        let mut p = [0u8; PACKET_SIZE];
        p[..4].copy_from_slice(&cid.to_be_bytes());
        p[4] = 0x80 | cmd;
        p[5..7].copy_from_slice(&bcnt.to_be_bytes());
        p[7..7 + data.len()].copy_from_slice(data);
        p
    }

    fn cont_packet(cid: u32, seq: u8, data: &[u8]) -> Packet {
        let mut p = [0u8; PACKET_SIZE];
        p[..4].copy_from_slice(&cid.to_be_bytes());
        p[4] = seq;
        p[5..5 + data.len()].copy_from_slice(data);
        p
    }

    fn err(cid: u32, code: u8) -> Action {
        Action::Reply(vec![error_packet(cid, code)])
    }

    fn allocate(d: &mut Device) -> u32 {
        let Action::Reply(r) = d.on_packet(
            1,
            &init_packet(BROADCAST_CID, CMD_INIT, 8, &[9; 8]),
            Instant::now(),
        ) else {
            panic!("INIT is answered")
        };
        assert_eq!(r.len(), 1);
        assert_eq!(&r[0][7..15], &[9; 8]);
        u32::from_be_bytes(r[0][15..19].try_into().unwrap())
    }

    #[test]
    fn init_response_exact_bytes() {
        let mut d = Device::new();
        let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
        let Action::Reply(r) = d.on_packet(
            1,
            &init_packet(BROADCAST_CID, CMD_INIT, 8, &nonce),
            Instant::now(),
        ) else {
            panic!("INIT is answered")
        };
        let mut expected = [0u8; PACKET_SIZE];
        expected[..24].copy_from_slice(&[
            0xff, 0xff, 0xff, 0xff, 0x86, 0x00, 17, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 2, 0, 1, 0,
            0x0d,
        ]);
        assert_eq!(r, vec![expected]);
        assert!(d.is_allocated(1));
        assert!(!d.is_allocated(2));
    }

    #[test]
    fn init_allocates_distinct_channels_and_resyncs_allocated_ones() {
        let mut d = Device::new();
        let a = allocate(&mut d);
        let b = allocate(&mut d);
        assert_eq!((a, b), (1, 2));
        let Action::Reply(r) =
            d.on_packet(1, &init_packet(a, CMD_INIT, 8, &[1; 8]), Instant::now())
        else {
            panic!("INIT is answered")
        };
        assert_eq!(packet_cid(&r[0]), a);
        assert_eq!(&r[0][4..7], &[0x86, 0, 17]);
        assert_eq!(
            &r[0][15..19],
            &a.to_be_bytes(),
            "INIT on a channel keeps it"
        );
        assert_eq!(
            r[0][23],
            capability::WINK | capability::CBOR | capability::NMSG
        );
        assert_eq!(allocate(&mut d), 3, "resync allocates nothing");
    }

    #[test]
    fn cid_allocation_wraps_without_reusing_reserved_ids() {
        let mut d = Device::new();
        d.next_cid = BROADCAST_CID - 1;
        assert_eq!(allocate(&mut d), 0xffff_fffe);
        assert!(d.is_allocated(0xffff_fffe));
        assert_eq!(allocate(&mut d), 1);
        assert!(
            d.is_allocated(77),
            "after wrapping every ordinary CID is valid"
        );
        assert!(!d.is_allocated(0));
        assert!(!d.is_allocated(BROADCAST_CID));
    }

    #[test]
    fn framing_error_table() {
        let now = Instant::now();
        let mut d = Device::new();
        let cid = allocate(&mut d);
        let cases: Vec<(&str, Vec<Packet>, Action)> = vec![
            (
                "CID 0",
                vec![init_packet(0, CMD_PING, 0, &[])],
                err(0, error::INVALID_CHANNEL),
            ),
            (
                "INIT on CID 0",
                vec![init_packet(0, CMD_INIT, 8, &[0; 8])],
                err(0, error::INVALID_CHANNEL),
            ),
            (
                "PING on broadcast",
                vec![init_packet(BROADCAST_CID, CMD_PING, 0, &[])],
                err(BROADCAST_CID, error::INVALID_CHANNEL),
            ),
            (
                "CANCEL on broadcast",
                vec![init_packet(BROADCAST_CID, CMD_CANCEL, 0, &[])],
                err(BROADCAST_CID, error::INVALID_CHANNEL),
            ),
            (
                "unallocated",
                vec![init_packet(77, CMD_CBOR, 1, &[4])],
                err(77, error::INVALID_CHANNEL),
            ),
            (
                "INIT on unallocated",
                vec![init_packet(77, CMD_INIT, 8, &[0; 8])],
                err(77, error::INVALID_CHANNEL),
            ),
            (
                "INIT 7 bytes",
                vec![init_packet(BROADCAST_CID, CMD_INIT, 7, &[0; 7])],
                err(BROADCAST_CID, error::INVALID_LEN),
            ),
            (
                "INIT 9 bytes on a channel",
                vec![init_packet(cid, CMD_INIT, 9, &[0; 9])],
                err(cid, error::INVALID_LEN),
            ),
            (
                "BCNT 7610",
                vec![init_packet(cid, CMD_PING, 7610, &[])],
                err(cid, error::INVALID_LEN),
            ),
            (
                "BCNT 65535",
                vec![init_packet(cid, CMD_CBOR, 0xffff, &[])],
                err(cid, error::INVALID_LEN),
            ),
            (
                "MSG",
                vec![init_packet(cid, CMD_MSG, 1, &[0])],
                err(cid, error::INVALID_CMD),
            ),
            (
                "LOCK",
                vec![init_packet(cid, CMD_LOCK, 1, &[1])],
                err(cid, error::INVALID_CMD),
            ),
            (
                "unknown",
                vec![init_packet(cid, 0x55, 0, &[])],
                err(cid, error::INVALID_CMD),
            ),
            (
                "KEEPALIVE from the host",
                vec![init_packet(cid, CMD_KEEPALIVE, 1, &[1])],
                err(cid, error::INVALID_CMD),
            ),
            (
                "empty CBOR",
                vec![init_packet(cid, CMD_CBOR, 0, &[])],
                err(cid, error::INVALID_LEN),
            ),
            (
                "WINK with data",
                vec![init_packet(cid, CMD_WINK, 1, &[1])],
                err(cid, error::INVALID_LEN),
            ),
            (
                "WINK",
                vec![init_packet(cid, CMD_WINK, 0, &[])],
                Action::Wink(vec![init_packet(cid, CMD_WINK, 0, &[])]),
            ),
            (
                "CANCEL with nothing running",
                vec![init_packet(cid, CMD_CANCEL, 0, &[])],
                Action::None,
            ),
            (
                "continuation with no message",
                vec![cont_packet(cid, 0, &[1; 59])],
                Action::None,
            ),
            (
                "sequence skips 0",
                vec![
                    init_packet(cid, CMD_PING, 100, &[1; 57]),
                    cont_packet(cid, 1, &[]),
                ],
                err(cid, error::INVALID_SEQ),
            ),
            (
                "sequence repeats",
                vec![
                    init_packet(cid, CMD_PING, 200, &[1; 57]),
                    cont_packet(cid, 0, &[]),
                    cont_packet(cid, 0, &[]),
                ],
                err(cid, error::INVALID_SEQ),
            ),
            (
                "new request mid-message",
                vec![
                    init_packet(cid, CMD_PING, 100, &[1; 57]),
                    init_packet(cid, CMD_PING, 1, &[1]),
                ],
                err(cid, error::INVALID_SEQ),
            ),
            (
                "PING 3 bytes after all that",
                vec![init_packet(cid, CMD_PING, 3, &[1, 2, 3])],
                Action::Reply(vec![init_packet(cid, CMD_PING, 3, &[1, 2, 3])]),
            ),
        ];
        for (name, packets, expected) in cases {
            let mut last = Action::None;
            for (i, p) in packets.iter().enumerate() {
                last = d.on_packet(1, p, now);
                if i + 1 < packets.len() {
                    assert_eq!(last, Action::None, "{name}: packet {i}");
                }
            }
            assert_eq!(last, expected, "{name}");
            assert_eq!(
                d.reassembly_deadline(),
                None,
                "{name}: nothing left pending"
            );
        }
    }

    #[test]
    fn reassembly_times_out_for_its_connection_only() {
        let now = Instant::now();
        let mut d = Device::new();
        let cid = allocate(&mut d);
        let other = allocate(&mut d);
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_PING, 200, &[1; 57]), now),
            Action::None
        );
        assert_eq!(d.reassembly_deadline(), Some(now + REASSEMBLY_TIMEOUT));
        // Another channel is busy-refused; a continuation from another connection or for
        // another channel is ignored.
        assert_eq!(
            d.on_packet(2, &init_packet(other, CMD_PING, 1, &[1]), now),
            err(other, error::CHANNEL_BUSY)
        );
        assert_eq!(
            d.on_packet(2, &init_packet(other, CMD_CANCEL, 0, &[]), now),
            Action::None,
            "CANCEL never gets a response"
        );
        assert_eq!(
            d.on_packet(2, &cont_packet(cid, 0, &[2; 59]), now),
            Action::None
        );
        assert_eq!(
            d.on_packet(1, &cont_packet(other, 0, &[2; 59]), now),
            Action::None
        );
        let t1 = now + Duration::from_millis(400);
        assert_eq!(d.on_tick(1, t1), None);
        // A continuation restarts the clock.
        assert_eq!(
            d.on_packet(1, &cont_packet(cid, 0, &[2; 59]), t1),
            Action::None
        );
        assert_eq!(d.reassembly_deadline(), Some(t1 + REASSEMBLY_TIMEOUT));
        let t2 = now + Duration::from_millis(800);
        assert_eq!(d.on_tick(1, t2), None, "400 ms after the continuation");
        let t3 = t1 + REASSEMBLY_TIMEOUT;
        assert_eq!(d.on_tick(2, t3), None, "only the owner times out");
        assert_eq!(
            d.on_tick(1, t3),
            Some(error_packet(cid, error::MSG_TIMEOUT))
        );
        assert_eq!(d.on_tick(1, t3), None, "reported once");
        assert_eq!(
            d.on_packet(2, &init_packet(other, CMD_PING, 1, &[1]), t3),
            Action::Reply(vec![init_packet(other, CMD_PING, 1, &[1])])
        );
    }

    #[test]
    fn a_drip_fed_message_times_out_after_the_transaction_timeout() {
        let start = Instant::now();
        let mut d = Device::new();
        let cid = allocate(&mut d);
        let other = allocate(&mut d);
        // The largest message: 129 packets, each continuation 400 ms after the last.
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_PING, 7609, &[1; 57]), start),
            Action::None
        );
        let mut now = start;
        let mut seq = 0u8;
        let timed_out = loop {
            now += Duration::from_millis(400);
            if let Some(p) = d.on_tick(1, now) {
                break p;
            }
            assert_eq!(
                d.on_packet(1, &cont_packet(cid, seq, &[2; 59]), now),
                Action::None
            );
            seq += 1;
            assert!(seq < 10, "still reassembling after {seq} continuations");
        };
        assert_eq!(timed_out, error_packet(cid, error::MSG_TIMEOUT));
        assert_eq!(now, start + TRANSACTION_TIMEOUT);
        // The device is free for everyone else.
        assert_eq!(
            d.on_packet(2, &init_packet(other, CMD_PING, 1, &[1]), now),
            Action::Reply(vec![init_packet(other, CMD_PING, 1, &[1])])
        );
    }

    #[test]
    fn disconnect_drops_the_partial_message() {
        let now = Instant::now();
        let mut d = Device::new();
        let cid = allocate(&mut d);
        let other = allocate(&mut d);
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_CBOR, 100, &[1; 57]), now),
            Action::None
        );
        d.disconnect(2);
        assert!(
            d.reassembly_deadline().is_some(),
            "another connection's leaving"
        );
        d.disconnect(1);
        assert_eq!(d.reassembly_deadline(), None);
        assert_eq!(
            d.on_packet(2, &init_packet(other, CMD_PING, 1, &[5]), now),
            Action::Reply(vec![init_packet(other, CMD_PING, 1, &[5])])
        );
    }

    #[test]
    fn busy_channel_cancel_and_resync() {
        let now = Instant::now();
        let mut d = Device::new();
        let a = allocate(&mut d);
        let b = allocate(&mut d);
        assert_eq!(
            d.on_packet(1, &init_packet(a, CMD_CBOR, 1, &[4]), now),
            Action::Dispatch {
                cid: a,
                request: vec![4]
            }
        );
        assert_eq!(d.busy_channel(), Some(a));
        assert_eq!(
            d.on_packet(2, &init_packet(b, CMD_PING, 1, &[0]), now),
            err(b, error::CHANNEL_BUSY)
        );
        assert_eq!(
            d.on_packet(1, &init_packet(a, CMD_PING, 1, &[0]), now),
            err(a, error::CHANNEL_BUSY),
            "the busy channel itself"
        );
        assert_eq!(
            d.on_packet(2, &init_packet(b, CMD_CANCEL, 0, &[]), now),
            Action::None,
            "CANCEL of another channel is ignored"
        );
        assert_eq!(
            d.on_packet(2, &init_packet(a, CMD_CANCEL, 0, &[]), now),
            Action::Cancel { cid: a },
            "any handle may cancel the channel"
        );
        // INIT on the broadcast channel is answered while busy.
        assert_eq!(allocate(&mut d), 3);
        let Action::Resync { cid, reply } =
            d.on_packet(1, &init_packet(a, CMD_INIT, 8, &[6; 8]), now)
        else {
            panic!("INIT on the running channel resynchronises it")
        };
        assert_eq!(cid, a);
        assert_eq!(
            &reply[0][..19],
            &[
                &init_packet(a, CMD_INIT, 17, &[6; 8])[..15],
                &a.to_be_bytes()
            ]
            .concat()[..]
        );
        assert_eq!(d.busy_channel(), Some(a), "busy until the request returns");
        d.finish(b);
        assert_eq!(
            d.busy_channel(),
            Some(a),
            "finishing another channel does nothing"
        );
        d.finish(a);
        assert_eq!(d.busy_channel(), None);
        assert_eq!(
            d.on_packet(2, &init_packet(b, CMD_PING, 1, &[5]), now),
            Action::Reply(encode_message(b, CMD_PING, &[5]))
        );
    }

    #[test]
    fn init_drops_the_channels_partial_message() {
        let now = Instant::now();
        let mut d = Device::new();
        let a = allocate(&mut d);
        let b = allocate(&mut d);
        assert_eq!(
            d.on_packet(1, &init_packet(a, CMD_PING, 100, &[1; 57]), now),
            Action::None
        );
        // INIT on another channel is answered and leaves the partial message alone.
        assert!(matches!(
            d.on_packet(2, &init_packet(b, CMD_INIT, 8, &[0; 8]), now),
            Action::Reply(_)
        ));
        assert!(d.reassembly_deadline().is_some());
        assert!(matches!(
            d.on_packet(1, &init_packet(a, CMD_INIT, 8, &[0; 8]), now),
            Action::Reply(_)
        ));
        assert_eq!(d.reassembly_deadline(), None);
        assert_eq!(
            d.on_packet(1, &cont_packet(a, 0, &[0; 59]), now),
            Action::None,
            "the dropped message's continuation is ignored"
        );
    }

    #[test]
    fn multi_packet_cbor_is_dispatched_whole() {
        let now = Instant::now();
        let mut d = Device::new();
        let cid = allocate(&mut d);
        let request: Vec<u8> = (0..200u8).collect();
        let packets = encode_message(cid, CMD_CBOR, &request);
        assert_eq!(packets.len(), 4, "57 + 59 + 59 + 25");
        for p in &packets[..3] {
            assert_eq!(d.on_packet(1, p, now), Action::None);
        }
        assert_eq!(
            d.on_packet(1, &packets[3], now),
            Action::Dispatch { cid, request }
        );
    }

    #[test]
    fn encode_message_packet_boundaries() {
        assert_eq!(
            encode_message(5, CMD_PING, &[]),
            vec![init_packet(5, CMD_PING, 0, &[])]
        );
        assert_eq!(
            encode_message(5, CMD_PING, &[7; 57]),
            vec![init_packet(5, CMD_PING, 57, &[7; 57])]
        );
        assert_eq!(
            encode_message(5, CMD_PING, &[7; 58]),
            vec![
                init_packet(5, CMD_PING, 58, &[7; 57]),
                cont_packet(5, 0, &[7])
            ]
        );
        let max = encode_message(5, CMD_CBOR, &[3; MAX_MESSAGE_SIZE]);
        assert_eq!(max.len(), 129);
        assert_eq!(max[0], init_packet(5, CMD_CBOR, 7609, &[3; 57]));
        assert_eq!(max[128], cont_packet(5, 0x7f, &[3; 59]));
        let over = encode_message(5, CMD_CBOR, &[3; MAX_MESSAGE_SIZE + 100]);
        assert_eq!(over, max, "truncated to the maximum");
    }

    #[test]
    fn multi_packet_round_trip_through_assembler() {
        let now = Instant::now();
        let mut d = Device::new();
        let cid = allocate(&mut d);
        let payload: Vec<u8> = (0..MAX_MESSAGE_SIZE)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let packets = encode_message(cid, CMD_PING, &payload);
        assert_eq!(packets.len(), 129);
        let mut reply = Action::None;
        for p in &packets {
            reply = d.on_packet(1, p, now);
        }
        let Action::Reply(out) = reply else {
            panic!("PING is answered")
        };
        assert_eq!(out, packets, "the echo is the same packets");
        let mut asm = MessageAssembler::new();
        for p in &out[..128] {
            assert_eq!(asm.push(p), Ok(None));
            assert!(asm.is_pending());
        }
        assert_eq!(asm.push(&out[128]), Ok(Some((cid, CMD_PING, payload))));
        assert!(!asm.is_pending());
    }

    #[test]
    fn assembler_errors() {
        let mut asm = MessageAssembler::new();
        assert_eq!(
            asm.push(&cont_packet(1, 0, &[])),
            Err(AssembleError::NoMessage)
        );
        assert_eq!(
            asm.push(&init_packet(1, CMD_CBOR, 7610, &[])),
            Err(AssembleError::TooLong(7610))
        );
        assert_eq!(asm.push(&init_packet(1, CMD_CBOR, 100, &[1; 57])), Ok(None));
        assert_eq!(
            asm.push(&cont_packet(2, 0, &[])),
            Err(AssembleError::Channel {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(
            asm.push(&cont_packet(1, 0, &[])),
            Err(AssembleError::NoMessage)
        );
        assert_eq!(asm.push(&init_packet(1, CMD_CBOR, 100, &[1; 57])), Ok(None));
        assert_eq!(
            asm.push(&cont_packet(1, 1, &[])),
            Err(AssembleError::Sequence {
                expected: 0,
                got: 1
            })
        );
        // A keepalive is a complete message; an init packet restarts.
        assert_eq!(
            asm.push(&keepalive_packet(1, 2)),
            Ok(Some((1, CMD_KEEPALIVE, vec![2])))
        );
        assert_eq!(
            asm.push(&error_packet(9, error::OTHER)),
            Ok(Some((9, CMD_ERROR, vec![0x7f])))
        );
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_packets_never_panic_and_the_device_recovers() {
        let mut d = Device::new();
        let mut asm = MessageAssembler::new();
        let mut state = 0x1234_5678_9abc_def0_u64;
        let start = Instant::now();
        let mut dispatched = 0u32;
        for _ in 0..3 {
            allocate(&mut d);
        }
        for i in 0..50_000u32 {
            let mut p = [0u8; PACKET_SIZE];
            for chunk in p.chunks_mut(8) {
                chunk.copy_from_slice(&xorshift(&mut state).to_le_bytes());
            }
            // Bias towards interesting headers: known channels, small lengths, real commands.
            match i % 5 {
                0 => p[..4].copy_from_slice(&(1 + (i % 3)).to_be_bytes()),
                1 => p[..4].copy_from_slice(&BROADCAST_CID.to_be_bytes()),
                _ => {}
            }
            if i % 4 == 0 {
                p[4] = 0x80
                    | [CMD_INIT, CMD_PING, CMD_CBOR, CMD_CANCEL, CMD_WINK][usize::from(p[63] % 5)];
                // Mostly lengths of one or two packets; sometimes anything.
                if p[5] % 8 != 0 {
                    p[5] = 0;
                    p[6] %= 120;
                }
            } else if i % 4 == 1 {
                p[4] %= 4;
            }
            let now = start + Duration::from_millis(u64::from(i));
            if let Action::Dispatch { cid, request } = d.on_packet(u64::from(i % 2), &p, now) {
                assert!(!request.is_empty() && request.len() <= MAX_MESSAGE_SIZE);
                dispatched += 1;
                if i % 3 == 0 {
                    d.finish(cid);
                }
            }
            let _ = d.on_tick(u64::from(i % 2), now);
            if let Some(cid) = d.busy_channel() {
                if i % 11 == 0 {
                    d.finish(cid);
                }
            }
            let _ = asm.push(&p);
        }
        assert!(
            dispatched > 10,
            "the fuzz reaches CBOR dispatch ({dispatched})"
        );
        // Whatever state the noise left, the device still works.
        let later = start + Duration::from_secs(3600);
        let _ = d.on_tick(0, later);
        let _ = d.on_tick(1, later);
        if let Some(cid) = d.busy_channel() {
            d.finish(cid);
        }
        let cid = allocate(&mut d);
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_PING, 2, &[4, 2]), later),
            Action::Reply(vec![init_packet(cid, CMD_PING, 2, &[4, 2])])
        );
    }
}
