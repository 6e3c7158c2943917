//! The device side of CTAPHID: channel allocation, reassembly, busy/cancel, timeouts.

use std::time::Instant;

use super::{
    BROADCAST_CID, CMD_CANCEL, CMD_CBOR, CMD_INIT, CMD_PING, CMD_WINK, CONT_DATA, DEVICE_VERSION,
    MAX_MESSAGE_SIZE, PROTOCOL_VERSION, Packet, REASSEMBLY_TIMEOUT, TRANSACTION_TIMEOUT,
    capability, error,
};
use super::{encode_message, error_packet, packet_bcnt, packet_cid};

/// Identifies one connection (one open handle) to the device.
pub type ConnectionId = u64;

/// What the transport must do after a packet or a tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing (more packets expected, or the packet is ignored).
    None,
    /// Send these reports to the connection that sent the packet.
    Reply(Vec<Packet>),
    /// Run this CBOR request for `cid`; the device stays busy until [`HidDevice::finish`].
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
    /// stays busy until [`HidDevice::finish`].
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
pub struct HidDevice {
    /// The CID the next INIT on the broadcast channel allocates.
    pub(super) next_cid: u32,
    /// Every CID in 1..=0xfffffffe has been handed out once (allocation wrapped around).
    wrapped: bool,
    capabilities: u8,
    rx: Option<Reassembly>,
    busy: Option<(ConnectionId, u32)>,
}

impl Default for HidDevice {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HidDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HidDevice")
            .field("next_cid", &self.next_cid)
            .field("reassembling", &self.rx.as_ref().map(|rx| rx.cid))
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

impl HidDevice {
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
