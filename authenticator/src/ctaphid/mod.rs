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
    /// INIT arrived on the channel whose request is running: cancel it, then send `reply`.
    Resync {
        /// The channel.
        cid: u32,
        /// The INIT response.
        reply: Vec<Packet>,
    },
}

struct Reassembly {
    connection: ConnectionId,
    cid: u32,
    cmd: u8,
    expected: usize,
    data: Vec<u8>,
    next_seq: u8,
    last_packet: Instant,
}

/// The CTAPHID state of one authenticator device, shared by all its connections.
pub struct Device {
    next_cid: u32,
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
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(b)
}

/// A single-packet ERROR response.
pub fn error_packet(cid: u32, code: u8) -> Packet {
    let mut p = [0u8; PACKET_SIZE];
    p[..4].copy_from_slice(&cid.to_be_bytes());
    p[4] = 0x80 | CMD_ERROR;
    p[6] = 1;
    p[7] = code;
    p
}

/// A KEEPALIVE packet with `status` (1 processing, 2 user presence needed).
pub fn keepalive_packet(cid: u32, status: u8) -> Packet {
    let mut p = [0u8; PACKET_SIZE];
    p[..4].copy_from_slice(&cid.to_be_bytes());
    p[4] = 0x80 | CMD_KEEPALIVE;
    p[6] = 1;
    p[7] = status;
    p
}

/// Splits a message into an init packet and continuation packets. Payloads longer than
/// [`MAX_MESSAGE_SIZE`] are truncated to it (callers never produce them).
pub fn encode_message(cid: u32, cmd: u8, payload: &[u8]) -> Vec<Packet> {
    let payload = &payload[..payload.len().min(MAX_MESSAGE_SIZE)];
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut packets = Vec::with_capacity(1 + payload.len() / CONT_DATA);
    let mut p = [0u8; PACKET_SIZE];
    p[..4].copy_from_slice(&cid.to_be_bytes());
    p[4] = 0x80 | cmd;
    p[5..7].copy_from_slice(&len.to_be_bytes());
    let first = payload.len().min(INIT_DATA);
    p[7..7 + first].copy_from_slice(&payload[..first]);
    packets.push(p);
    for (seq, chunk) in payload[first..].chunks(CONT_DATA).enumerate() {
        let mut p = [0u8; PACKET_SIZE];
        p[..4].copy_from_slice(&cid.to_be_bytes());
        p[4] = u8::try_from(seq).unwrap_or(0x7f) & 0x7f;
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
            capabilities: capability::WINK | capability::CBOR | capability::NMSG,
            rx: None,
            busy: None,
        }
    }

    fn allocated(&self, cid: u32) -> bool {
        cid != 0 && cid != BROADCAST_CID && cid < self.next_cid
    }

    /// Handles one report from `connection`.
    pub fn on_packet(&mut self, connection: ConnectionId, packet: &Packet, now: Instant) -> Action {
        let cid = be_u32(packet);
        let is_init = packet[4] & 0x80 != 0;
        if !is_init {
            return self.on_continuation(connection, cid, packet, now);
        }
        let cmd = packet[4] & 0x7f;
        let bcnt = usize::from(u16::from_be_bytes([packet[5], packet[6]]));
        if cid == 0 {
            return Action::Reply(vec![error_packet(cid, error::INVALID_CHANNEL)]);
        }
        if cmd == CMD_INIT {
            return self.on_init(cid, bcnt, packet);
        }
        if cid == BROADCAST_CID || !self.allocated(cid) {
            return Action::Reply(vec![error_packet(cid, error::INVALID_CHANNEL)]);
        }
        if let Some((_, busy_cid)) = self.busy {
            if cmd == CMD_CANCEL && busy_cid == cid {
                return Action::Cancel { cid };
            }
            return if busy_cid == cid || cmd != CMD_CANCEL {
                Action::Reply(vec![error_packet(cid, error::CHANNEL_BUSY)])
            } else {
                Action::None
            };
        }
        if let Some(rx) = &self.rx {
            if rx.cid != cid {
                return Action::Reply(vec![error_packet(cid, error::CHANNEL_BUSY)]);
            }
            // A new request on the channel that is mid-message breaks the sequence.
            self.rx = None;
            return Action::Reply(vec![error_packet(cid, error::INVALID_SEQ)]);
        }
        if bcnt > MAX_MESSAGE_SIZE {
            return Action::Reply(vec![error_packet(cid, error::INVALID_LEN)]);
        }
        if bcnt <= INIT_DATA {
            return self.complete(connection, cid, cmd, packet[7..7 + bcnt].to_vec());
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
            last_packet: now,
        });
        Action::None
    }

    fn on_init(&mut self, cid: u32, bcnt: usize, packet: &Packet) -> Action {
        if cid != BROADCAST_CID && !self.allocated(cid) {
            return Action::Reply(vec![error_packet(cid, error::INVALID_CHANNEL)]);
        }
        if bcnt != 8 {
            return Action::Reply(vec![error_packet(cid, error::INVALID_LEN)]);
        }
        // INIT on an allocated channel resynchronises it: drop its partial message. A request
        // that is already running cannot be taken back; the transport cancels it.
        if self.rx.as_ref().is_some_and(|rx| rx.cid == cid) {
            self.rx = None;
        }
        let cancel_running = self.busy.is_some_and(|(_, busy)| busy == cid);
        let new_cid = if cid == BROADCAST_CID {
            let c = self.next_cid;
            self.next_cid = self.next_cid.saturating_add(1).min(BROADCAST_CID - 1);
            c
        } else {
            cid
        };
        let mut payload = Vec::with_capacity(17);
        payload.extend_from_slice(&packet[7..15]);
        payload.extend_from_slice(&new_cid.to_be_bytes());
        payload.push(PROTOCOL_VERSION);
        payload.extend_from_slice(&DEVICE_VERSION);
        payload.push(self.capabilities);
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
            return Action::None; // Spurious continuation: ignored (§11.2.4).
        };
        if rx.cid != cid || rx.connection != connection {
            return Action::None;
        }
        if packet[4] != rx.next_seq {
            self.rx = None;
            return Action::Reply(vec![error_packet(cid, error::INVALID_SEQ)]);
        }
        rx.next_seq = rx.next_seq.wrapping_add(1);
        rx.last_packet = now;
        let take = (rx.expected - rx.data.len().min(rx.expected)).min(CONT_DATA);
        rx.data.extend_from_slice(&packet[5..5 + take]);
        if rx.data.len() >= rx.expected {
            if let Some(mut done) = self.rx.take() {
                done.data.truncate(done.expected);
                return self.complete(connection, done.cid, done.cmd, done.data);
            }
        }
        Action::None
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
                    return Action::Reply(vec![error_packet(cid, error::INVALID_LEN)]);
                }
                self.busy = Some((connection, cid));
                Action::Dispatch {
                    cid,
                    request: payload,
                }
            }
            CMD_WINK => {
                if !payload.is_empty() {
                    return Action::Reply(vec![error_packet(cid, error::INVALID_LEN)]);
                }
                Action::Wink(encode_message(cid, CMD_WINK, &[]))
            }
            CMD_CANCEL => Action::None, // Nothing running on this channel: no response.
            _ => Action::Reply(vec![error_packet(cid, error::INVALID_CMD)]),
        }
    }

    /// Called periodically by the connection that may own a partial message: after
    /// [`REASSEMBLY_TIMEOUT`] without a continuation, the message is dropped with MSG_TIMEOUT.
    pub fn on_tick(&mut self, connection: ConnectionId, now: Instant) -> Option<Packet> {
        let rx = self.rx.as_ref()?;
        if rx.connection == connection
            && now.saturating_duration_since(rx.last_packet) >= REASSEMBLY_TIMEOUT
        {
            let cid = rx.cid;
            self.rx = None;
            return Some(error_packet(cid, error::MSG_TIMEOUT));
        }
        None
    }

    /// The running request of `cid` finished; the device is free again.
    pub fn finish(&mut self, cid: u32) {
        if self.busy.is_some_and(|(_, c)| c == cid) {
            self.busy = None;
        }
    }

    /// A connection went away: drop its partial message.
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
    /// The length field is larger than CTAPHID allows.
    #[error("message length {0} exceeds the CTAPHID maximum")]
    TooLong(usize),
}

/// Reassembles messages from reports (the client side of the framing).
#[derive(Debug, Default)]
pub struct MessageAssembler {
    current: Option<(u32, u8, usize, Vec<u8>, u8)>,
}

impl MessageAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a report; returns `(cid, cmd, payload)` when a message is complete. KEEPALIVE and
    /// ERROR arrive as complete one-packet messages too.
    pub fn push(&mut self, packet: &Packet) -> Result<Option<(u32, u8, Vec<u8>)>, AssembleError> {
        let cid = be_u32(packet);
        if packet[4] & 0x80 != 0 {
            let cmd = packet[4] & 0x7f;
            let len = usize::from(u16::from_be_bytes([packet[5], packet[6]]));
            if len > MAX_MESSAGE_SIZE {
                return Err(AssembleError::TooLong(len));
            }
            let first = len.min(INIT_DATA);
            let data = packet[7..7 + first].to_vec();
            if data.len() == len {
                self.current = None;
                return Ok(Some((cid, cmd, data)));
            }
            self.current = Some((cid, cmd, len, data, 0));
            return Ok(None);
        }
        let Some((c, cmd, len, mut data, seq)) = self.current.take() else {
            return Err(AssembleError::NoMessage);
        };
        if packet[4] != seq {
            return Err(AssembleError::Sequence {
                expected: seq,
                got: packet[4],
            });
        }
        let take = (len - data.len()).min(CONT_DATA);
        data.extend_from_slice(&packet[5..5 + take]);
        if data.len() == len {
            return Ok(Some((c, cmd, data)));
        }
        self.current = Some((c, cmd, len, data, seq.wrapping_add(1)));
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

    fn allocate(d: &mut Device) -> u32 {
        let Action::Reply(r) = d.on_packet(
            1,
            &init_packet(BROADCAST_CID, CMD_INIT, 8, &[9; 8]),
            Instant::now(),
        ) else {
            panic!()
        };
        assert_eq!(&r[0][7..15], &[9; 8]);
        be_u32(&r[0][15..19])
    }

    #[test]
    fn init_allocates_distinct_channels_and_reports_capabilities() {
        let mut d = Device::new();
        let a = allocate(&mut d);
        let b = allocate(&mut d);
        assert_ne!(a, b);
        assert!(a != 0 && a != BROADCAST_CID);
        let Action::Reply(r) =
            d.on_packet(1, &init_packet(a, CMD_INIT, 8, &[1; 8]), Instant::now())
        else {
            panic!()
        };
        assert_eq!(be_u32(&r[0]), a);
        assert_eq!(&r[0][4..7], &[0x86, 0, 17]);
        assert_eq!(
            be_u32(&r[0][15..19]),
            a,
            "INIT on an allocated channel keeps it"
        );
        assert_eq!(r[0][19], 2);
        assert_eq!(
            r[0][23],
            capability::WINK | capability::CBOR | capability::NMSG
        );
    }

    #[test]
    fn framing_errors_have_exact_codes() {
        let now = Instant::now();
        let mut d = Device::new();
        let cid = allocate(&mut d);
        let err = |code| Action::Reply(vec![error_packet(cid, code)]);
        assert_eq!(
            d.on_packet(1, &init_packet(0, CMD_PING, 0, &[]), now),
            Action::Reply(vec![error_packet(0, error::INVALID_CHANNEL)])
        );
        assert_eq!(
            d.on_packet(1, &init_packet(BROADCAST_CID, CMD_PING, 0, &[]), now),
            Action::Reply(vec![error_packet(BROADCAST_CID, error::INVALID_CHANNEL)])
        );
        assert_eq!(
            d.on_packet(1, &init_packet(77, CMD_PING, 0, &[]), now),
            Action::Reply(vec![error_packet(77, error::INVALID_CHANNEL)])
        );
        assert_eq!(
            d.on_packet(1, &init_packet(BROADCAST_CID, CMD_INIT, 7, &[0; 7]), now),
            Action::Reply(vec![error_packet(BROADCAST_CID, error::INVALID_LEN)])
        );
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_PING, 7610, &[]), now),
            err(error::INVALID_LEN)
        );
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_MSG, 1, &[0]), now),
            err(error::INVALID_CMD)
        );
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_LOCK, 1, &[1]), now),
            err(error::INVALID_CMD)
        );
        assert_eq!(
            d.on_packet(1, &init_packet(cid, 0x55, 0, &[]), now),
            err(error::INVALID_CMD)
        );
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_CBOR, 0, &[]), now),
            err(error::INVALID_LEN)
        );
        // Wrong sequence.
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_PING, 100, &[1; 57]), now),
            Action::None
        );
        let mut cont = [0u8; PACKET_SIZE];
        cont[..4].copy_from_slice(&cid.to_be_bytes());
        cont[4] = 1;
        assert_eq!(d.on_packet(1, &cont, now), err(error::INVALID_SEQ));
        // Timeout.
        assert_eq!(
            d.on_packet(1, &init_packet(cid, CMD_PING, 100, &[1; 57]), now),
            Action::None
        );
        assert_eq!(d.on_tick(1, now + Duration::from_millis(100)), None);
        assert_eq!(
            d.on_tick(2, now + Duration::from_millis(600)),
            None,
            "only the owner times out"
        );
        assert_eq!(
            d.on_tick(1, now + Duration::from_millis(600)),
            Some(error_packet(cid, error::MSG_TIMEOUT))
        );
    }

    #[test]
    fn busy_channel_and_cancel() {
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
        assert_eq!(
            d.on_packet(2, &init_packet(b, CMD_PING, 1, &[0]), now),
            Action::Reply(vec![error_packet(b, error::CHANNEL_BUSY)])
        );
        assert_eq!(
            d.on_packet(2, &init_packet(b, CMD_CANCEL, 0, &[]), now),
            Action::None
        );
        assert_eq!(
            d.on_packet(1, &init_packet(a, CMD_CANCEL, 0, &[]), now),
            Action::Cancel { cid: a }
        );
        d.finish(a);
        assert_eq!(
            d.on_packet(2, &init_packet(b, CMD_PING, 1, &[5]), now),
            Action::Reply(encode_message(b, CMD_PING, &[5]))
        );
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
        let Action::Reply(out) = reply else { panic!() };
        let mut asm = MessageAssembler::new();
        let mut got = None;
        for p in &out {
            got = asm.push(p).unwrap();
        }
        assert_eq!(got, Some((cid, CMD_PING, payload)));
    }

    #[test]
    fn random_packets_never_panic() {
        let mut d = Device::new();
        let mut state = 0x1234_5678_u64;
        let now = Instant::now();
        for i in 0..20_000u32 {
            let mut p = [0u8; PACKET_SIZE];
            for b in p.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state.to_le_bytes()[0];
            }
            if i % 3 == 0 {
                p[..4].copy_from_slice(&1u32.to_be_bytes());
            }
            let _ = d.on_packet(u64::from(i % 2), &p, now);
            let _ = d.on_tick(0, now + Duration::from_secs(1));
            if i % 7 == 0 {
                d.finish(1);
            }
        }
    }
}
