//! Malformed input over the real transport: the passgate authenticator (software stores, auto
//! presence) served on loopback TCP, fed bad CTAPHID framing and bad CBOR, answering each with
//! its exact CTAPHID error or CTAP status code — and still working afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use passgate_authenticator::api::clock::SystemClock;
use passgate_authenticator::api::rng::SystemRng;
use passgate_authenticator::api::user_verifier::{Interaction, KeepaliveStatus};
use passgate_authenticator::ctap::AuthenticatorConfig;
use passgate_authenticator::ctaphid::{
    self, BROADCAST_CID, CMD_CANCEL, CMD_CBOR, CMD_ERROR, CMD_INIT, CMD_KEEPALIVE, CMD_PING,
    CtapHandler, MessageAssembler, PACKET_SIZE, Packet, error,
};
use passgate_authenticator::presence::AutoPresence;
use passgate_authenticator::software::{
    DeviceKey, FileCredentialStore, FileStateStore, SoftwareKeyStore,
};
use passgate_authenticator::{Authenticator, Env};

fn serve_passgate() -> (std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = DeviceKey::load_or_create(dir.path()).unwrap();
    let env = Env {
        key_store: Box::new(SoftwareKeyStore::new(&key)),
        credentials: Box::new(FileCredentialStore::open(dir.path(), &key, 1000).unwrap()),
        state: Box::new(FileStateStore::open(dir.path(), &key).unwrap()),
        user: Box::new(AutoPresence::new()),
        clock: Box::new(SystemClock),
        rng: Box::new(SystemRng::new()),
    };
    serve(Authenticator::new(env, AuthenticatorConfig::default()), dir)
}

fn serve<H: CtapHandler + 'static>(
    handler: H,
    dir: tempfile::TempDir,
) -> (std::net::SocketAddr, tempfile::TempDir) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || passgate_authenticator::transport::tcp::serve(listener, handler));
    (addr, dir)
}

struct Client {
    stream: TcpStream,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        Self { stream }
    }

    fn send(&mut self, packet: &Packet) {
        self.stream.write_all(packet).unwrap();
    }

    fn recv(&mut self) -> Packet {
        let mut p = [0u8; PACKET_SIZE];
        self.stream
            .read_exact(&mut p)
            .expect("a response within 3 s");
        p
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

    fn init(&mut self) -> u32 {
        for p in ctaphid::encode_message(BROADCAST_CID, CMD_INIT, &[7; 8]) {
            self.send(&p);
        }
        let (_, cmd, data) = self.message();
        assert_eq!(cmd, CMD_INIT);
        u32::from_be_bytes(data[8..12].try_into().unwrap())
    }

    fn cbor(&mut self, cid: u32, request: &[u8]) -> Vec<u8> {
        for p in ctaphid::encode_message(cid, CMD_CBOR, request) {
            self.send(&p);
        }
        let (rcid, cmd, data) = self.message();
        assert_eq!((rcid, cmd), (cid, CMD_CBOR));
        data
    }

    fn no_response_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut p = [0u8; PACKET_SIZE];
        let silent = self.stream.read_exact(&mut p).is_err();
        self.stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        silent
    }
}

fn init_packet(cid: u32, cmd: u8, bcnt: u16, data: &[u8]) -> Packet {
    let mut p = [0u8; PACKET_SIZE];
    p[..4].copy_from_slice(&cid.to_be_bytes());
    p[4] = 0x80 | cmd;
    p[5..7].copy_from_slice(&bcnt.to_be_bytes());
    p[7..7 + data.len()].copy_from_slice(data);
    p
}

fn cont_packet(cid: u32, seq: u8) -> Packet {
    let mut p = [0u8; PACKET_SIZE];
    p[..4].copy_from_slice(&cid.to_be_bytes());
    p[4] = seq;
    p
}

fn expect_error(client: &mut Client, cid: u32, code: u8, case: &str) {
    let p = client.recv();
    assert_eq!(
        &p[..8],
        &[&cid.to_be_bytes()[..], &[0x80 | CMD_ERROR, 0, 1, code]].concat()[..],
        "{case}"
    );
}

/// Framing cases: each sends packets and expects one CTAPHID error on a given channel.
#[test]
fn framing_errors_over_tcp() {
    let (addr, _dir) = serve_passgate();
    let mut c = Client::connect(addr);
    let cid = c.init();
    let unallocated = cid + 1000;
    let cases: Vec<(&str, Vec<Packet>, u32, u8)> = vec![
        (
            "CID 0",
            vec![init_packet(0, CMD_PING, 1, &[1])],
            0,
            error::INVALID_CHANNEL,
        ),
        (
            "PING on broadcast",
            vec![init_packet(BROADCAST_CID, CMD_PING, 1, &[1])],
            BROADCAST_CID,
            error::INVALID_CHANNEL,
        ),
        (
            "CBOR on broadcast",
            vec![init_packet(BROADCAST_CID, CMD_CBOR, 1, &[4])],
            BROADCAST_CID,
            error::INVALID_CHANNEL,
        ),
        (
            "unallocated CID",
            vec![init_packet(unallocated, CMD_PING, 1, &[1])],
            unallocated,
            error::INVALID_CHANNEL,
        ),
        (
            "INIT on unallocated CID",
            vec![init_packet(unallocated, CMD_INIT, 8, &[1; 8])],
            unallocated,
            error::INVALID_CHANNEL,
        ),
        (
            "INIT with 7 bytes",
            vec![init_packet(BROADCAST_CID, CMD_INIT, 7, &[1; 7])],
            BROADCAST_CID,
            error::INVALID_LEN,
        ),
        (
            "INIT with 9 bytes",
            vec![init_packet(BROADCAST_CID, CMD_INIT, 9, &[1; 9])],
            BROADCAST_CID,
            error::INVALID_LEN,
        ),
        (
            "BCNT 7610",
            vec![init_packet(cid, CMD_PING, 7610, &[])],
            cid,
            error::INVALID_LEN,
        ),
        (
            "BCNT 65535",
            vec![init_packet(cid, CMD_CBOR, 0xffff, &[])],
            cid,
            error::INVALID_LEN,
        ),
        (
            "empty CBOR",
            vec![init_packet(cid, CMD_CBOR, 0, &[])],
            cid,
            error::INVALID_LEN,
        ),
        (
            "WINK with data",
            vec![init_packet(cid, ctaphid::CMD_WINK, 1, &[1])],
            cid,
            error::INVALID_LEN,
        ),
        (
            "MSG (NMSG device)",
            vec![init_packet(cid, ctaphid::CMD_MSG, 1, &[0])],
            cid,
            error::INVALID_CMD,
        ),
        (
            "LOCK",
            vec![init_packet(cid, ctaphid::CMD_LOCK, 1, &[1])],
            cid,
            error::INVALID_CMD,
        ),
        (
            "unknown command 0x55",
            vec![init_packet(cid, 0x55, 0, &[])],
            cid,
            error::INVALID_CMD,
        ),
        (
            "KEEPALIVE from host",
            vec![init_packet(cid, CMD_KEEPALIVE, 1, &[1])],
            cid,
            error::INVALID_CMD,
        ),
        (
            "ERROR from host",
            vec![init_packet(cid, CMD_ERROR, 1, &[1])],
            cid,
            error::INVALID_CMD,
        ),
        (
            "sequence skips 0",
            vec![
                init_packet(cid, CMD_PING, 100, &[1; 57]),
                cont_packet(cid, 1),
            ],
            cid,
            error::INVALID_SEQ,
        ),
        (
            "sequence repeats",
            vec![
                init_packet(cid, CMD_PING, 200, &[1; 57]),
                cont_packet(cid, 0),
                cont_packet(cid, 0),
            ],
            cid,
            error::INVALID_SEQ,
        ),
        (
            "new request mid-message",
            vec![
                init_packet(cid, CMD_PING, 100, &[1; 57]),
                init_packet(cid, CMD_PING, 1, &[1]),
            ],
            cid,
            error::INVALID_SEQ,
        ),
    ];
    let count = cases.len();
    for (name, packets, err_cid, code) in cases {
        for p in &packets {
            c.send(p);
        }
        expect_error(&mut c, err_cid, code, name);
    }
    // Message timeout: the continuation never comes.
    c.send(&init_packet(cid, CMD_PING, 100, &[1; 57]));
    let started = Instant::now();
    expect_error(&mut c, cid, error::MSG_TIMEOUT, "reassembly timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    // A continuation with no message is ignored, and the device still answers.
    c.send(&cont_packet(cid, 0));
    assert!(c.no_response_within(Duration::from_millis(200)));
    c.send(&init_packet(cid, CMD_PING, 3, &[1, 2, 3]));
    assert_eq!(c.message(), (cid, CMD_PING, vec![1, 2, 3]));
    assert!(count + 1 >= 20);
}

/// CBOR cases through the whole stack: exact CTAP status codes.
#[test]
fn cbor_errors_over_tcp() {
    let (addr, _dir) = serve_passgate();
    let mut c = Client::connect(addr);
    let cid = c.init();
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("unknown CTAP command", vec![0x42], 0x01),
        ("getInfo with a body", vec![0x04, 0xa0], 0x03),
        ("truncated map", vec![0x01, 0xa2, 0x01], 0x12),
        ("trailing garbage", vec![0x02, 0xa0, 0xff], 0x12),
        ("non-canonical length", vec![0x02, 0xb8, 0x00], 0x12),
        (
            "unsorted keys",
            vec![0x02, 0xa2, 0x02, 0x00, 0x01, 0x00],
            0x12,
        ),
        (
            "duplicate keys",
            vec![0x02, 0xa2, 0x01, 0x00, 0x01, 0x00],
            0x12,
        ),
        ("tag", vec![0x02, 0xc1, 0x00], 0x12),
        ("not a map", vec![0x02, 0x01], 0x11),
        ("makeCredential missing everything", vec![0x01, 0xa0], 0x14),
        (
            "getAssertion missing clientDataHash",
            vec![0x02, 0xa1, 0x01, 0x61, 0x61],
            0x14,
        ),
        (
            "getAssertion rpId is bytes",
            vec![0x02, 0xa2, 0x01, 0x41, 0x61, 0x02, 0x40],
            0x11,
        ),
        ("getNextAssertion with nothing pending", vec![0x08], 0x30),
    ];
    for (name, request, status) in &cases {
        assert_eq!(c.cbor(cid, request), vec![*status], "{name}");
    }
    // Still healthy: getInfo answers OK.
    assert_eq!(c.cbor(cid, &[0x04])[0], 0x00);
}

/// A handler that waits for the person until cancelled (transport test double).
struct WaitsForPerson;

impl CtapHandler for WaitsForPerson {
    fn handle_cbor(&mut self, _request: &[u8], interaction: &Interaction) -> Vec<u8> {
        interaction.set_status(KeepaliveStatus::UpNeeded);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !interaction.is_cancelled() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        vec![if interaction.is_cancelled() {
            0x2d
        } else {
            0x2f
        }]
    }
}

#[test]
fn keepalive_cancel_busy_and_disconnect() {
    let (addr, _dir) = serve(WaitsForPerson, tempfile::tempdir().unwrap());
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    let cid_a = a.init();
    let cid_b = b.init();
    a.send(&init_packet(cid_a, CMD_CBOR, 1, &[0x01]));
    // Keepalives with UPNEEDED arrive while the request waits.
    for _ in 0..2 {
        let p = a.recv();
        assert_eq!(
            &p[..8],
            &[&cid_a.to_be_bytes()[..], &[0x80 | CMD_KEEPALIVE, 0, 1, 2]].concat()[..]
        );
    }
    // Another connection's channel is told the device is busy.
    b.send(&init_packet(cid_b, CMD_PING, 1, &[9]));
    expect_error(
        &mut b,
        cid_b,
        error::CHANNEL_BUSY,
        "busy from another connection",
    );
    // CANCEL ends the request with KEEPALIVE_CANCEL.
    a.send(&init_packet(cid_a, CMD_CANCEL, 0, &[]));
    assert_eq!(a.message(), (cid_a, CMD_CBOR, vec![0x2d]));
    // The device is free again.
    b.send(&init_packet(cid_b, CMD_PING, 1, &[9]));
    assert_eq!(b.message(), (cid_b, CMD_PING, vec![9]));
    // A client that disconnects mid-request does not wedge the device.
    a.send(&init_packet(cid_a, CMD_CBOR, 1, &[0x01]));
    let _ = a.recv();
    drop(a);
    std::thread::sleep(Duration::from_millis(150));
    b.send(&init_packet(cid_b, CMD_PING, 1, &[8]));
    assert_eq!(b.message(), (cid_b, CMD_PING, vec![8]));
}
