use std::time::{Duration, Instant};

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

fn allocate(d: &mut HidDevice) -> u32 {
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
    let mut d = HidDevice::new();
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
    let mut d = HidDevice::new();
    let a = allocate(&mut d);
    let b = allocate(&mut d);
    assert_eq!((a, b), (1, 2));
    let Action::Reply(r) = d.on_packet(1, &init_packet(a, CMD_INIT, 8, &[1; 8]), Instant::now())
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
    let mut d = HidDevice::new();
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
    let mut d = HidDevice::new();
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
    let mut d = HidDevice::new();
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
    let mut d = HidDevice::new();
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
    let mut d = HidDevice::new();
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
    let mut d = HidDevice::new();
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
    let Action::Resync { cid, reply } = d.on_packet(1, &init_packet(a, CMD_INIT, 8, &[6; 8]), now)
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
    let mut d = HidDevice::new();
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
    let mut d = HidDevice::new();
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
    let mut d = HidDevice::new();
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
    let mut d = HidDevice::new();
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
            p[4] =
                0x80 | [CMD_INIT, CMD_PING, CMD_CBOR, CMD_CANCEL, CMD_WINK][usize::from(p[63] % 5)];
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
