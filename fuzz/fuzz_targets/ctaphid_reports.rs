//! CTAPHID report sequences through the device state machine (`ctaphid::HidDevice`), as the TCP
//! and uhid transports drive it, with several connections and the clock moving.
//!
//! Input: records of 1 control byte + a 64-byte report. The control byte's low 2 bits pick
//! the connection, bit 2 says whether a dispatched request is finished at once, bits 3..8
//! advance the clock by that many 20 ms steps (so reassembly and transaction timeouts fire).
//!
//! Checks: no panic; every reply reassembles (passgate's `MessageAssembler`) into whole
//! messages on the channel that asked, none over the CTAPHID maximum; a dispatched request
//! is at most the maximum message size; and the framing round-trips: a payload taken from the
//! input, framed by `encode_message`, reassembles to the same channel, command and bytes.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use passgate_authenticator::ctaphid::{
    Action, HidDevice, MAX_MESSAGE_SIZE, MessageAssembler, PACKET_SIZE, Packet, encode_message,
    packet_cid,
};

fn check_replies(replies: &[Packet]) {
    let mut assembler = MessageAssembler::new();
    let mut complete = 0usize;
    for report in replies {
        match assembler.push(report) {
            Ok(Some((cid, _cmd, payload))) => {
                assert_eq!(cid, packet_cid(report), "a reply changed channels");
                assert!(payload.len() <= MAX_MESSAGE_SIZE);
                complete += 1;
            }
            Ok(None) => {}
            Err(e) => panic!("the device sent reports that do not reassemble: {e}"),
        }
    }
    assert!(!assembler.is_pending(), "a reply ended mid-message");
    assert!(complete >= 1, "a reply without a message");
}

fuzz_target!(|data: &[u8]| {
    let mut device = HidDevice::new();
    let mut now = Instant::now();
    for record in data.chunks_exact(1 + PACKET_SIZE) {
        let control = record[0];
        let connection = u64::from(control & 0x03);
        now += Duration::from_millis(20 * u64::from(control >> 3));
        if let Some(keepalive) = device.on_tick(connection, now) {
            check_replies(&[keepalive]);
        }
        let mut packet: Packet = [0; PACKET_SIZE];
        packet.copy_from_slice(&record[1..]);
        match device.on_packet(connection, &packet, now) {
            Action::None | Action::Cancel { .. } => {}
            Action::Reply(replies) | Action::Wink(replies) => check_replies(&replies),
            Action::Resync { cid, reply } => {
                check_replies(&reply);
                device.finish(cid);
            }
            Action::Dispatch { cid, request } => {
                assert!(!request.is_empty() && request.len() <= MAX_MESSAGE_SIZE);
                if control & 0x04 != 0 {
                    device.finish(cid);
                }
            }
        }
        if control == 0xff {
            device.disconnect(connection);
        }
    }

    // The framing round trip, on a payload from the input.
    if data.len() >= 5 {
        let cid = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let cmd = data[4] & 0x7f;
        let payload = &data[5..data.len().min(5 + MAX_MESSAGE_SIZE)];
        let mut assembler = MessageAssembler::new();
        let mut out = None;
        for report in encode_message(cid, cmd, payload) {
            assert!(out.is_none(), "reports after the message was complete");
            out = assembler
                .push(&report)
                .expect("our own framing reassembles");
        }
        assert_eq!(out, Some((cid, cmd, payload.to_vec())));
    }
});
