//! One report's fields, and the single-status and multi-packet encodings of a message.

use super::{
    CMD_ERROR, CMD_KEEPALIVE, CONT_DATA, INIT_DATA, MAX_MESSAGE_SIZE, PACKET_SIZE, Packet,
};

/// The channel identifier of a report (its first four bytes, big-endian).
pub fn packet_cid(packet: &Packet) -> u32 {
    u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]])
}

/// The BCNT field of an init packet.
pub fn packet_bcnt(packet: &Packet) -> usize {
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
