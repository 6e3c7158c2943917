//! CTAPHID over real loopback TCP with a test handler: exact response bytes for every command,
//! error code and the keepalive/cancel/busy/disconnect behaviour of one shared device.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use passgate_authenticator::api::user_verifier::{Interaction, KeepaliveStatus};
use passgate_authenticator::ctaphid::{
    BROADCAST_CID, CMD_CANCEL, CMD_CBOR, CMD_ERROR, CMD_INIT, CMD_KEEPALIVE, CMD_LOCK, CMD_MSG,
    CMD_PING, CMD_WINK, CtapHandler, MAX_MESSAGE_SIZE, MessageAssembler, PACKET_SIZE, Packet,
    encode_message, error,
};
use passgate_authenticator::transport::tcp::TcpServer;

/// CTAP2 status the slow handler answers when it was cancelled.
const KEEPALIVE_CANCEL: u8 = 0x2d;
/// CTAP2 status the slow handler answers when nobody cancelled it in time.
const USER_ACTION_TIMEOUT: u8 = 0x2f;
/// Request command byte that makes the handler wait until cancelled.
const SLOW: u8 = 0x50;
/// Request command byte that makes the handler wait until cancelled, reporting UPNEEDED after
/// 250 ms of PROCESSING.
const SLOW_UP: u8 = 0x51;

/// What the handler observed, for assertions.
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<Vec<u8>>>,
    cancelled: AtomicUsize,
    winks: AtomicUsize,
    running: AtomicBool,
}

/// Echoes requests (`0x00` + request); `SLOW`/`SLOW_UP` requests wait on the interaction until
/// cancelled (at most 5 s).
struct TestHandler(Arc<Seen>);

impl CtapHandler for TestHandler {
    fn handle_cbor(&mut self, request: &[u8], interaction: &Interaction) -> Vec<u8> {
        lock_push(&self.0.requests, request.to_vec());
        if !matches!(request.first(), Some(&SLOW | &SLOW_UP)) {
            return [&[0x00], request].concat();
        }
        self.0.running.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(5);
        while !interaction.is_cancelled() && Instant::now() < deadline {
            if request[0] == SLOW_UP && started.elapsed() >= Duration::from_millis(250) {
                interaction.set_status(KeepaliveStatus::UpNeeded);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.0.running.store(false, Ordering::SeqCst);
        if interaction.is_cancelled() {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
            vec![KEEPALIVE_CANCEL]
        } else {
            vec![USER_ACTION_TIMEOUT]
        }
    }

    fn wink(&mut self) {
        self.0.winks.fetch_add(1, Ordering::SeqCst);
    }
}

fn lock_push(m: &Mutex<Vec<Vec<u8>>>, v: Vec<u8>) {
    m.lock().unwrap().push(v);
}

fn start() -> (TcpServer, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = TcpServer::start(listener, TestHandler(Arc::clone(&seen))).unwrap();
    (server, seen)
}

/// A 64-byte report: `bytes`, zero padded.
fn packet(bytes: &[u8]) -> Packet {
    let mut p = [0u8; PACKET_SIZE];
    p[..bytes.len()].copy_from_slice(bytes);
    p
}

/// An init packet with an explicit BCNT (which may disagree with `data`).
fn init_packet(cid: u32, cmd: u8, bcnt: u16, data: &[u8]) -> Packet {
    packet(
        &[
            &cid.to_be_bytes()[..],
            &[0x80 | cmd],
            &bcnt.to_be_bytes(),
            data,
        ]
        .concat(),
    )
}

fn cont_packet(cid: u32, seq: u8, data: &[u8]) -> Packet {
    packet(&[&cid.to_be_bytes()[..], &[seq], data].concat())
}

fn error_bytes(cid: u32, code: u8) -> Packet {
    init_packet(cid, CMD_ERROR, 1, &[code])
}

fn keepalive_bytes(cid: u32, status: u8) -> Packet {
    init_packet(cid, CMD_KEEPALIVE, 1, &[status])
}

const READ_TIMEOUT: Duration = Duration::from_secs(3);

struct Client {
    stream: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Self { stream }
    }

    fn send(&mut self, packet: &Packet) {
        self.stream.write_all(packet).unwrap();
    }

    fn send_message(&mut self, cid: u32, cmd: u8, payload: &[u8]) {
        for p in encode_message(cid, cmd, payload) {
            self.send(&p);
        }
    }

    fn recv(&mut self) -> Packet {
        let mut p = [0u8; PACKET_SIZE];
        self.stream
            .read_exact(&mut p)
            .expect("a report within the read timeout");
        p
    }

    /// Reads exactly `n` reports.
    fn recv_n(&mut self, n: usize) -> Vec<Packet> {
        (0..n).map(|_| self.recv()).collect()
    }

    /// Reads one whole message, skipping keepalives.
    fn message(&mut self) -> (u32, u8, Vec<u8>) {
        let mut asm = MessageAssembler::new();
        loop {
            let p = self.recv();
            if let Some((cid, cmd, data)) = asm.push(&p).unwrap() {
                if cmd != CMD_KEEPALIVE {
                    return (cid, cmd, data);
                }
            }
        }
    }

    /// Allocates a channel with `nonce`; returns the whole INIT response report.
    fn init_with(&mut self, nonce: [u8; 8]) -> Packet {
        self.send(&init_packet(BROADCAST_CID, CMD_INIT, 8, &nonce));
        self.recv()
    }

    fn init(&mut self) -> u32 {
        let r = self.init_with([7; 8]);
        assert_eq!(&r[..7], &[0xff, 0xff, 0xff, 0xff, 0x86, 0, 17]);
        u32::from_be_bytes(r[15..19].try_into().unwrap())
    }

    /// Nothing arrives for `wait`.
    fn silent_for(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut p = [0u8; 1];
        let silent = match self.stream.read(&mut p) {
            Ok(n) => n == 0,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        silent
    }
}

/// Waits (at most 2 s) until the handler has started the slow request.
fn wait_running(seen: &Seen) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !seen.running.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the slow request never started");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn init_on_broadcast_allocates_distinct_channels() {
    let (server, _) = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.init_with([1, 2, 3, 4, 5, 6, 7, 8]);
    // CID, INIT|0x80, BCNT 17, nonce, new CID 1, protocol 2, version 0.1.0, WINK|CBOR|NMSG.
    assert_eq!(
        r,
        packet(&[
            0xff, 0xff, 0xff, 0xff, 0x86, 0, 17, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 2, 0, 1, 0,
            0x0d
        ])
    );
    let r = c.init_with([9; 8]);
    assert_eq!(
        r,
        packet(&[
            0xff, 0xff, 0xff, 0xff, 0x86, 0, 17, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 2, 2, 0, 1, 0,
            0x0d
        ])
    );
    // Channels are device-wide: another connection gets yet another one.
    let mut other = Client::connect(server.local_addr());
    assert_eq!(other.init(), 3);
    // INIT on an allocated channel answers on it, with the same CID.
    c.send(&init_packet(2, CMD_INIT, 8, &[5; 8]));
    assert_eq!(
        c.recv(),
        packet(&[
            0, 0, 0, 2, 0x86, 0, 17, 5, 5, 5, 5, 5, 5, 5, 5, 0, 0, 0, 2, 2, 0, 1, 0, 0x0d
        ])
    );
    server.stop().unwrap();
}

#[test]
fn ping_echoes_one_byte_and_the_largest_message() {
    let (server, _) = start();
    let mut c = Client::connect(server.local_addr());
    let cid = c.init();
    c.send(&init_packet(cid, CMD_PING, 1, &[0xa5]));
    assert_eq!(c.recv(), init_packet(cid, CMD_PING, 1, &[0xa5]));
    let payload: Vec<u8> = (0..MAX_MESSAGE_SIZE)
        .map(|i| u8::try_from(i % 253).unwrap())
        .collect();
    let packets = encode_message(cid, CMD_PING, &payload);
    assert_eq!(packets.len(), 129);
    // All 129 reports in one write: the server must cut the stream into reports itself.
    c.stream.write_all(&packets.concat()).unwrap();
    let echoed = c.recv_n(129);
    assert_eq!(echoed, packets);
    assert_eq!(echoed[0][..7], [0, 0, 0, 1, 0x81, 0x1d, 0xb9]); // BCNT 7609
    assert_eq!(echoed[128][..5], [0, 0, 0, 1, 0x7f]); // last SEQ
    let mut asm = MessageAssembler::new();
    let mut done = None;
    for p in &echoed {
        done = asm.push(p).unwrap();
    }
    assert_eq!(done, Some((cid, CMD_PING, payload)));
    server.stop().unwrap();
}

#[test]
fn reports_split_across_tcp_segments_are_reassembled() {
    let (server, _) = start();
    let mut c = Client::connect(server.local_addr());
    let cid = c.init();
    let p = init_packet(cid, CMD_PING, 2, &[1, 2]);
    for chunk in p.chunks(5) {
        c.stream.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    assert_eq!(c.recv(), p);
    server.stop().unwrap();
}

#[test]
fn cbor_round_trip_single_and_multi_packet() {
    let (server, seen) = start();
    let mut c = Client::connect(server.local_addr());
    let cid = c.init();
    c.send(&init_packet(cid, CMD_CBOR, 1, &[0x04]));
    assert_eq!(c.recv(), init_packet(cid, CMD_CBOR, 2, &[0x00, 0x04]));
    let request: Vec<u8> = (0..300u16)
        .map(|i| u8::try_from(i % 200).unwrap())
        .collect();
    c.send_message(cid, CMD_CBOR, &request);
    let expected = encode_message(cid, CMD_CBOR, &[&[0x00], &request[..]].concat());
    assert_eq!(expected.len(), 6, "301 bytes: 57 + 4 * 59 + 8");
    assert_eq!(c.recv_n(6), expected);
    assert_eq!(
        *seen.requests.lock().unwrap(),
        vec![vec![0x04], request],
        "the handler got exactly the reassembled requests"
    );
    server.stop().unwrap();
}

#[test]
fn keepalives_report_processing_then_upneeded_and_cancel_ends_the_request() {
    let (server, seen) = start();
    let mut c = Client::connect(server.local_addr());
    let cid = c.init();
    let sent = Instant::now();
    c.send(&init_packet(cid, CMD_CBOR, 1, &[SLOW_UP]));
    let mut statuses = Vec::new();
    while statuses.len() < 6 {
        let p = c.recv();
        let status = p[7];
        assert_eq!(
            p,
            keepalive_bytes(cid, status),
            "only keepalives while it runs"
        );
        statuses.push(status);
    }
    let elapsed = sent.elapsed();
    // One every 100 ms: six take about 600 ms.
    assert!(
        elapsed >= Duration::from_millis(550) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    // PROCESSING for the first 250 ms, then UPNEEDED, never back.
    assert_eq!(statuses[0], 1, "{statuses:?}");
    assert_eq!(statuses[5], 2, "{statuses:?}");
    assert!(statuses.windows(2).all(|w| w[0] <= w[1]), "{statuses:?}");
    c.send(&init_packet(cid, CMD_CANCEL, 0, &[]));
    // Keepalives sent before the cancel took effect may precede the response.
    let response = loop {
        let p = c.recv();
        if p != keepalive_bytes(cid, 2) {
            break p;
        }
    };
    assert_eq!(response, init_packet(cid, CMD_CBOR, 1, &[KEEPALIVE_CANCEL]));
    assert_eq!(seen.cancelled.load(Ordering::SeqCst), 1);
    assert!(
        c.silent_for(Duration::from_millis(250)),
        "no keepalive after the response"
    );
    // The device is free again.
    c.send(&init_packet(cid, CMD_PING, 1, &[3]));
    assert_eq!(c.recv(), init_packet(cid, CMD_PING, 1, &[3]));
    server.stop().unwrap();
}

#[test]
fn cancel_of_another_channel_is_ignored() {
    let (server, seen) = start();
    let mut c = Client::connect(server.local_addr());
    let a = c.init();
    let b = c.init();
    c.send(&init_packet(a, CMD_CBOR, 1, &[SLOW]));
    wait_running(&seen);
    c.send(&init_packet(b, CMD_CANCEL, 0, &[]));
    // Only PROCESSING keepalives for a while: the request was not cancelled, nothing answers
    // the CANCEL.
    let until = Instant::now() + Duration::from_millis(350);
    while Instant::now() < until {
        assert_eq!(c.recv(), keepalive_bytes(a, 1));
    }
    assert_eq!(seen.cancelled.load(Ordering::SeqCst), 0);
    c.send(&init_packet(a, CMD_CANCEL, 0, &[]));
    assert_eq!(c.message(), (a, CMD_CBOR, vec![KEEPALIVE_CANCEL]));
    server.stop().unwrap();
}

#[test]
fn channel_busy_for_other_channels_and_connections() {
    let (server, seen) = start();
    let mut a = Client::connect(server.local_addr());
    let mut b = Client::connect(server.local_addr());
    let cid_a = a.init();
    let cid_a2 = a.init();
    let cid_b = b.init();
    a.send(&init_packet(cid_a, CMD_CBOR, 1, &[SLOW]));
    wait_running(&seen);
    // Another channel on the same connection, and one on another connection.
    a.send(&init_packet(cid_a2, CMD_PING, 1, &[1]));
    b.send(&init_packet(cid_b, CMD_CBOR, 1, &[0x04]));
    b.send(&init_packet(cid_b, CMD_PING, 1, &[2]));
    assert_eq!(b.recv(), error_bytes(cid_b, error::CHANNEL_BUSY));
    assert_eq!(b.recv(), error_bytes(cid_b, error::CHANNEL_BUSY));
    let p = loop {
        let p = a.recv();
        if p != keepalive_bytes(cid_a, 1) {
            break p;
        }
    };
    assert_eq!(p, error_bytes(cid_a2, error::CHANNEL_BUSY));
    // INIT is answered while busy.
    assert_eq!(b.init(), 4);
    // The busy channel's owner may be cancelled from the other connection (channels are
    // device-wide); the response goes to the connection that sent the request.
    b.send(&init_packet(cid_a, CMD_CANCEL, 0, &[]));
    assert_eq!(a.message(), (cid_a, CMD_CBOR, vec![KEEPALIVE_CANCEL]));
    assert!(b.silent_for(Duration::from_millis(150)));
    b.send(&init_packet(cid_b, CMD_PING, 1, &[2]));
    assert_eq!(b.recv(), init_packet(cid_b, CMD_PING, 1, &[2]));
    server.stop().unwrap();
}

#[test]
fn channel_busy_while_another_channel_is_mid_message() {
    let (server, _) = start();
    let mut a = Client::connect(server.local_addr());
    let mut b = Client::connect(server.local_addr());
    let cid_a = a.init();
    let cid_b = b.init();
    let packets = encode_message(cid_a, CMD_PING, &[6; 100]);
    a.send(&packets[0]);
    std::thread::sleep(Duration::from_millis(30));
    b.send(&init_packet(cid_b, CMD_PING, 1, &[1]));
    assert_eq!(b.recv(), error_bytes(cid_b, error::CHANNEL_BUSY));
    a.send(&packets[1]);
    assert_eq!(a.recv_n(2), packets);
    b.send(&init_packet(cid_b, CMD_PING, 1, &[1]));
    assert_eq!(b.recv(), init_packet(cid_b, CMD_PING, 1, &[1]));
    server.stop().unwrap();
}

#[test]
fn invalid_sequence_aborts_the_message() {
    let (server, _) = start();
    let mut c = Client::connect(server.local_addr());
    let cid = c.init();
    c.send(&init_packet(cid, CMD_PING, 200, &[1; 57]));
    c.send(&cont_packet(cid, 0, &[2; 59]));
    c.send(&cont_packet(cid, 2, &[3; 59]));
    assert_eq!(c.recv(), error_bytes(cid, error::INVALID_SEQ));
    // The rest of the aborted message is ignored; the next request works.
    c.send(&cont_packet(cid, 3, &[4; 59]));
    assert!(c.silent_for(Duration::from_millis(100)));
    // A new request on the channel in the middle of a message breaks the sequence too.
    c.send(&init_packet(cid, CMD_PING, 100, &[1; 57]));
    c.send(&init_packet(cid, CMD_PING, 1, &[1]));
    assert_eq!(c.recv(), error_bytes(cid, error::INVALID_SEQ));
    c.send(&init_packet(cid, CMD_PING, 1, &[8]));
    assert_eq!(c.recv(), init_packet(cid, CMD_PING, 1, &[8]));
    server.stop().unwrap();
}

#[test]
fn message_timeout_after_500_ms() {
    let (server, _) = start();
    let mut c = Client::connect(server.local_addr());
    let cid = c.init();
    c.send(&init_packet(cid, CMD_PING, 100, &[1; 57]));
    let sent = Instant::now();
    assert_eq!(c.recv(), error_bytes(cid, error::MSG_TIMEOUT));
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(490) && elapsed < Duration::from_millis(900),
        "{elapsed:?}"
    );
    // The late continuation is ignored; the device is free.
    c.send(&cont_packet(cid, 0, &[2; 59]));
    c.send(&init_packet(cid, CMD_PING, 1, &[9]));
    assert_eq!(c.recv(), init_packet(cid, CMD_PING, 1, &[9]));
    server.stop().unwrap();
}

#[test]
fn invalid_channel_invalid_length_and_invalid_command() {
    let (server, _) = start();
    let mut c = Client::connect(server.local_addr());
    let cid = c.init();
    let unallocated = 0x0102_0304;
    let cases = [
        (
            "CID 0",
            init_packet(0, CMD_PING, 1, &[1]),
            error_bytes(0, error::INVALID_CHANNEL),
        ),
        (
            "unallocated CID",
            init_packet(unallocated, CMD_PING, 1, &[1]),
            packet(&[1, 2, 3, 4, 0xbf, 0, 1, 0x0b]),
        ),
        (
            "CBOR on broadcast",
            init_packet(BROADCAST_CID, CMD_CBOR, 1, &[4]),
            error_bytes(BROADCAST_CID, error::INVALID_CHANNEL),
        ),
        (
            "BCNT 7610",
            init_packet(cid, CMD_PING, 7610, &[]),
            error_bytes(cid, error::INVALID_LEN),
        ),
        (
            "INIT with 7 bytes",
            init_packet(BROADCAST_CID, CMD_INIT, 7, &[1; 7]),
            packet(&[0xff, 0xff, 0xff, 0xff, 0xbf, 0, 1, 0x03]),
        ),
        (
            "empty CBOR",
            init_packet(cid, CMD_CBOR, 0, &[]),
            error_bytes(cid, error::INVALID_LEN),
        ),
        (
            "unknown command 0x55",
            init_packet(cid, 0x55, 0, &[]),
            error_bytes(cid, error::INVALID_CMD),
        ),
        (
            "MSG",
            init_packet(cid, CMD_MSG, 1, &[0]),
            error_bytes(cid, 0x01),
        ),
        (
            "LOCK",
            init_packet(cid, CMD_LOCK, 1, &[1]),
            error_bytes(cid, 0x01),
        ),
    ];
    for (name, request, expected) in cases {
        c.send(&request);
        assert_eq!(c.recv(), expected, "{name}");
    }
    // A continuation with no message, and CANCEL with nothing running: no answer at all.
    c.send(&cont_packet(cid, 0, &[1; 59]));
    c.send(&init_packet(cid, CMD_CANCEL, 0, &[]));
    assert!(c.silent_for(Duration::from_millis(150)));
    server.stop().unwrap();
}

#[test]
fn wink_is_answered_and_reaches_the_handler() {
    let (server, seen) = start();
    let mut c = Client::connect(server.local_addr());
    let cid = c.init();
    c.send(&init_packet(cid, CMD_WINK, 0, &[]));
    assert_eq!(c.recv(), init_packet(cid, CMD_WINK, 0, &[]));
    // The wink runs on the request thread: a following CBOR request is answered after it.
    c.send(&init_packet(cid, CMD_CBOR, 1, &[0x04]));
    assert_eq!(c.recv(), init_packet(cid, CMD_CBOR, 2, &[0x00, 0x04]));
    assert_eq!(seen.winks.load(Ordering::SeqCst), 1);
    server.stop().unwrap();
}

#[test]
fn init_on_the_busy_channel_cancels_and_discards_its_request() {
    let (server, seen) = start();
    let mut c = Client::connect(server.local_addr());
    let cid = c.init();
    c.send(&init_packet(cid, CMD_CBOR, 1, &[SLOW]));
    wait_running(&seen);
    c.send(&init_packet(cid, CMD_INIT, 8, &[4; 8]));
    let reply = loop {
        let p = c.recv();
        if p != keepalive_bytes(cid, 1) {
            break p;
        }
    };
    let mut expected = init_packet(cid, CMD_INIT, 17, &[4; 8]);
    expected[15..24].copy_from_slice(&[0, 0, 0, 1, 2, 0, 1, 0, 0x0d]);
    assert_eq!(reply, expected);
    // The handler is cancelled and its response is not delivered.
    let deadline = Instant::now() + Duration::from_secs(2);
    while seen.cancelled.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the request was never cancelled");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(c.silent_for(Duration::from_millis(250)));
    c.send(&init_packet(cid, CMD_CBOR, 1, &[0x04]));
    assert_eq!(c.recv(), init_packet(cid, CMD_CBOR, 2, &[0x00, 0x04]));
    server.stop().unwrap();
}

#[test]
fn disconnect_mid_request_frees_the_device() {
    let (server, seen) = start();
    let mut a = Client::connect(server.local_addr());
    let mut b = Client::connect(server.local_addr());
    let cid_a = a.init();
    let cid_b = b.init();
    a.send(&init_packet(cid_a, CMD_CBOR, 1, &[SLOW]));
    assert_eq!(a.recv(), keepalive_bytes(cid_a, 1));
    drop(a);
    // Within a short while the request is cancelled and the device answers others.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        b.send(&init_packet(cid_b, CMD_PING, 1, &[7]));
        let p = b.recv();
        if p == init_packet(cid_b, CMD_PING, 1, &[7]) {
            break;
        }
        assert_eq!(p, error_bytes(cid_b, error::CHANNEL_BUSY));
        assert!(Instant::now() < deadline, "the device stayed busy");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(seen.cancelled.load(Ordering::SeqCst), 1);
    assert!(!seen.running.load(Ordering::SeqCst));
    server.stop().unwrap();
}

#[test]
fn partial_report_then_disconnect_and_partial_message_then_disconnect() {
    let (server, _) = start();
    let mut b = Client::connect(server.local_addr());
    let cid_b = b.init();
    {
        let mut a = Client::connect(server.local_addr());
        let cid_a = a.init();
        // Start a two-packet message, then half a report, then leave.
        a.send(&init_packet(cid_a, CMD_PING, 100, &[1; 57]));
        a.stream.write_all(&[0, 0, 0]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    // The departed client's partial message no longer blocks the device (well before the
    // 500 ms reassembly timeout would have freed it).
    let deadline = Instant::now() + Duration::from_millis(300);
    loop {
        b.send(&init_packet(cid_b, CMD_PING, 1, &[7]));
        let p = b.recv();
        if p == init_packet(cid_b, CMD_PING, 1, &[7]) {
            break;
        }
        assert_eq!(p, error_bytes(cid_b, error::CHANNEL_BUSY));
        assert!(Instant::now() < deadline, "the partial message was kept");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop().unwrap();
}
