//! The uhid server against a datagram socket that plays the kernel's side of `/dev/uhid`
//! (the real kernel is exercised by `cargo xtask vm-test`).

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::event::{self, EVENT_SIZE, KernelEvent};
use super::*;
use crate::api::user_verifier::KeepaliveStatus;
use crate::ctaphid::{
    BROADCAST_CID, CMD_CANCEL, CMD_INIT, CMD_KEEPALIVE, CMD_PING, MessageAssembler, PACKET_SIZE,
};

/// Answers `[0x00, len]`; on `0x66` waits for the person until cancelled and answers
/// KEEPALIVE_CANCEL (0x2d); panics on `0x67`.
struct Handler;

impl CtapHandler for Handler {
    fn handle_cbor(&mut self, request: &[u8], interaction: &Interaction) -> Vec<u8> {
        assert_ne!(request, [0x67], "the test handler panics on 0x67");
        if request == [0x66] {
            interaction.set_status(KeepaliveStatus::UpNeeded);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !interaction.is_cancelled() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            return vec![0x2d];
        }
        vec![0x00, request.len().try_into().unwrap()]
    }
}

/// The kernel's end of the pipe.
struct Kernel {
    socket: UnixDatagram,
}

impl Kernel {
    fn recv_event(&self) -> Vec<u8> {
        let mut buf = vec![0u8; EVENT_SIZE + 1];
        let n = self.socket.recv(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// The next input report the device sent.
    fn recv_report(&self) -> Packet {
        let e = self.recv_event();
        assert_eq!(e.len(), EVENT_SIZE);
        assert_eq!(event::kind_of(&e), Some(event::kind::INPUT2));
        assert_eq!(u16::from_ne_bytes([e[4], e[5]]), 64);
        e[6..70].try_into().unwrap()
    }

    fn message(&self) -> (u32, u8, Vec<u8>) {
        let mut asm = MessageAssembler::new();
        loop {
            if let Some(m) = asm.push(&self.recv_report()).unwrap() {
                return m;
            }
        }
    }

    /// Writes a message as hidraw does: report number 0, then the 64-byte report.
    fn send(&self, cid: u32, cmd: u8, payload: &[u8]) {
        for p in encode_message(cid, cmd, payload) {
            let mut data = vec![0u8];
            data.extend_from_slice(&p);
            self.socket
                .send(&event::output_for_test(&data, 1)[..])
                .unwrap();
        }
    }

    fn send_bare(&self, kind: u32) {
        self.socket.send(&event::bare_for_test(kind)[..]).unwrap();
    }

    fn init(&self) -> u32 {
        self.send(BROADCAST_CID, CMD_INIT, &[9; 8]);
        let (cid, cmd, payload) = self.message();
        assert_eq!((cid, cmd), (BROADCAST_CID, CMD_INIT));
        assert_eq!(&payload[..8], &[9; 8]);
        u32::from_be_bytes(payload[8..12].try_into().unwrap())
    }
}

fn start() -> (UhidServer, Kernel) {
    let (ours, theirs) = UnixDatagram::pair().unwrap();
    theirs
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let server = UhidServer::start_on(Arc::new(ours), Handler, &passgate_identity()).unwrap();
    let kernel = Kernel { socket: theirs };
    let create = kernel.recv_event();
    assert_eq!(event::kind_of(&create), Some(event::kind::CREATE2));
    assert_eq!(&create[4..13], b"passgate\0");
    assert_eq!(&create[280..314], &event::FIDO_REPORT_DESCRIPTOR);
    kernel.send_bare(2); // UHID_START
    kernel.send_bare(event::kind::OPEN);
    (server, kernel)
}

fn stop(server: UhidServer, kernel: &Kernel) {
    let stopper = std::thread::spawn(move || server.stop());
    let destroy = kernel.recv_event();
    assert_eq!(event::kind_of(&destroy), Some(event::kind::DESTROY));
    kernel.send_bare(event::kind::STOP);
    stopper.join().unwrap().unwrap();
}

#[test]
fn init_ping_and_cbor_round_trip_over_uhid_events() {
    let (server, kernel) = start();
    let cid = kernel.init();
    assert_ne!(cid, BROADCAST_CID);
    let long: Vec<u8> = (0..200u8).collect();
    kernel.send(cid, CMD_PING, &long);
    assert_eq!(kernel.message(), (cid, CMD_PING, long));
    // The longest message (129 reports) arrives whole, paced like a USB key's reports.
    let longest: Vec<u8> = (0..7609u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let started = Instant::now();
    kernel.send(cid, CMD_PING, &longest);
    assert_eq!(kernel.message(), (cid, CMD_PING, longest));
    assert!(
        started.elapsed() >= Duration::from_millis(128),
        "{:?}",
        started.elapsed()
    );
    kernel.send(cid, CMD_CBOR, &[0x04, 1, 2]);
    assert_eq!(kernel.message(), (cid, CMD_CBOR, vec![0x00, 3]));
    // An unallocated channel is refused with INVALID_CHANNEL.
    kernel.send(0x1234_5678, CMD_CBOR, &[0x04]);
    assert_eq!(
        kernel.message(),
        (0x1234_5678, 0x3f, vec![error::INVALID_CHANNEL])
    );
    stop(server, &kernel);
}

#[test]
fn keepalives_say_up_needed_and_cancel_ends_the_request() {
    let (server, kernel) = start();
    let cid = kernel.init();
    kernel.send(cid, CMD_CBOR, &[0x66]);
    for _ in 0..2 {
        let report = kernel.recv_report();
        assert_eq!(
            &report[..8],
            &keepalive_packet(cid, 2)[..8],
            "KEEPALIVE UPNEEDED"
        );
    }
    // A second client's channel is busy meanwhile.
    let other = kernel.init();
    kernel.send(other, CMD_CBOR, &[0x04]);
    loop {
        let (c, cmd, payload) = kernel.message();
        if cmd == CMD_KEEPALIVE {
            continue;
        }
        assert_eq!((c, cmd, payload), (other, 0x3f, vec![error::CHANNEL_BUSY]));
        break;
    }
    kernel.send(cid, CMD_CANCEL, &[]);
    loop {
        let (c, cmd, payload) = kernel.message();
        if cmd == CMD_KEEPALIVE {
            continue;
        }
        assert_eq!((c, cmd, payload), (cid, CMD_CBOR, vec![0x2d]));
        break;
    }
    // The device is free again.
    kernel.send(other, CMD_CBOR, &[0x04]);
    assert_eq!(kernel.message(), (other, CMD_CBOR, vec![0x00, 1]));
    stop(server, &kernel);
}

#[test]
fn closing_the_device_cancels_and_discards_the_running_request() {
    let (server, kernel) = start();
    let cid = kernel.init();
    kernel.send(cid, CMD_CBOR, &[0x66]);
    assert_eq!(kernel.recv_report()[4], 0x80 | CMD_KEEPALIVE);
    kernel.send_bare(event::kind::CLOSE);
    kernel.send_bare(event::kind::OPEN);
    // The cancelled response is discarded: the next answer is to the new request.
    let cid = kernel.init();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        kernel.send(cid, CMD_CBOR, &[0x04, 0]);
        let (c, cmd, payload) = kernel.message();
        assert_eq!(c, cid);
        assert_ne!(payload, vec![0x2d], "the discarded response was sent");
        if cmd == CMD_CBOR {
            assert_eq!(payload, vec![0x00, 2]);
            break;
        }
        assert_eq!((cmd, payload), (0x3f, vec![error::CHANNEL_BUSY]));
        assert!(Instant::now() < deadline, "the device stayed busy");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(server, &kernel);
}

#[test]
fn report_requests_are_refused_and_bad_output_is_ignored() {
    let (server, kernel) = start();
    let mut request = event::bare_for_test(event::kind::GET_REPORT);
    request[4..8].copy_from_slice(&41u32.to_ne_bytes());
    kernel.socket.send(&request[..]).unwrap();
    let reply = kernel.recv_event();
    assert_eq!(event::kind_of(&reply), Some(10));
    assert_eq!(&reply[4..10], &[41, 0, 0, 0, 5, 0]);
    // A 10-byte output report and a truncated event change nothing.
    kernel
        .socket
        .send(&event::output_for_test(&[1; 10], 1)[..])
        .unwrap();
    kernel.socket.send(&[6, 0]).unwrap();
    let cid = kernel.init();
    kernel.send(cid, CMD_CBOR, &[0x67]);
    loop {
        let (c, cmd, payload) = kernel.message();
        if cmd != CMD_KEEPALIVE {
            assert_eq!((c, cmd, payload), (cid, 0x3f, vec![error::OTHER]));
            break;
        }
    }
    assert!(matches!(
        event::parse(&event::destroy()[..]),
        Some(KernelEvent::Other(1))
    ));
    stop(server, &kernel);
}

#[test]
fn a_missing_uhid_node_is_a_precise_error() {
    let err = UhidServer::start_at(
        Path::new("/nonexistent/uhid"),
        Handler,
        &passgate_identity(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("/nonexistent/uhid"), "{err}");
}

#[test]
fn the_identity_says_passgate() {
    let id = passgate_identity();
    assert_eq!(id.name, "passgate");
    assert_eq!((id.bus, id.vendor, id.product), (3, 0x1209, 0x000a));
    assert_eq!(PACKET_SIZE, 64);
}
