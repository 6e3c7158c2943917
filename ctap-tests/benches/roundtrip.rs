//! One CTAPHID getAssertion round trip (a non-resident credential by allowList, presence
//! approved with nobody there) over loopback TCP and, with `PASSGATE_BENCH_UHID=1`, over a
//! uhid device: the same software authenticator served in this process on each transport,
//! this crate's client on the other side (hidraw reports unpaced, so the figure is the
//! transport's own cost, not a USB host controller's 1 ms frames). Every round trip's status
//! is checked.
//!
//! With `PASSGATE_BENCH_LIBFIDO2=FILE` as well, libfido2's own client is timed afterwards on
//! the uhid device: `fido2-cred -M` once, then 30 whole `fido2-assert -G` runs (exec, open,
//! INIT, getInfo, getAssertion), one wall time in microseconds per line of FILE.
//!
//! `cargo xtask bench` runs it on the host (TCP) and in the `vm-test` guest (uhid and TCP side
//! by side: the same kernel and emulated CPU, the fair ratio); see xtask/src/vm_bench.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // Benchmark harness code.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use passgate_authenticator::Authenticator;
use passgate_authenticator::ctap::AttestationFormat;
use passgate_authenticator::presence::AutoPresence;
use passgate_authenticator::setup::{AuthenticatorParts, KeyStoreChoice, build_authenticator};
use passgate_authenticator::transport::tcp::TcpServer;
use passgate_authenticator::transport::uhid::{UhidServer, passgate_identity};
use passgate_ctap_tests::hid::{Channel, TcpTransport};
use passgate_ctap_tests::hidraw::{HidrawTransport, fido_devices};
use passgate_ctap_tests::{ga_request, make};

const RP: &str = "bench.passgate.test";

fn authenticator(state_dir: &Path) -> Authenticator {
    build_authenticator(AuthenticatorParts {
        state_dir,
        key_store: &KeyStoreChoice::Software,
        user: Box::new(AutoPresence::new()),
        biometric_release: false,
        attestation: AttestationFormat::PackedSelf,
        capacity: 1000,
        max_uv_attempts: 8,
        reset_window: None,
    })
    .unwrap()
}

/// The hidraw node of the uhid device just created (the only FIDO device in the guest).
fn wait_for_hidraw() -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(node) = fido_devices(Path::new("/sys/class/hidraw")).pop() {
            if node.exists() {
                return node;
            }
        }
        assert!(Instant::now() < deadline, "no hidraw node appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn bench_getassertion(c: &mut Criterion, name: &str, mut channel: Channel) {
    let made = make(&mut channel, RP, b"bench-user", false, Vec::new()).unwrap();
    let request = ga_request(RP, &[made.id.as_slice()], Vec::new());
    c.benchmark_group("roundtrip_get_assertion")
        .bench_function(name, |b| {
            b.iter(|| {
                let (status, body) = channel.ctap(0x02, Some(&request)).unwrap();
                assert_eq!(status, 0, "getAssertion over {name}");
                assert!(body.is_some());
            });
        });
}

/// `fido2-cred -M` once, then `runs` timed `fido2-assert -G`; microseconds per run.
fn time_libfido2(node: &Path, work: &Path, runs: usize) -> Vec<u128> {
    let run = |args: &[&str], input: &Path, output: &Path| {
        let status = Command::new(args[0])
            .args(&args[1..])
            .arg("-i")
            .arg(input)
            .arg("-o")
            .arg(output)
            .arg(node)
            .arg("es256")
            .status()
            .unwrap();
        assert!(status.success(), "{args:?} failed");
    };
    let hash = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="; // 32 bytes, base64
    let cred_in = work.join("cred.in");
    std::fs::write(&cred_in, format!("{hash}\n{RP}\nbench\nYmVuY2gtdXNlcg==\n")).unwrap();
    let cred_out = work.join("cred.out");
    run(&["fido2-cred", "-M"], &cred_in, &cred_out);
    let cred = std::fs::read_to_string(&cred_out).unwrap();
    let id = cred
        .lines()
        .nth(4)
        .expect("fido2-cred -M prints the credential ID on line 5");
    let assert_in = work.join("assert.in");
    std::fs::write(&assert_in, format!("{hash}\n{RP}\n{id}\n")).unwrap();
    let assert_out = work.join("assert.out");
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            run(&["fido2-assert", "-G"], &assert_in, &assert_out);
            started.elapsed().as_micros()
        })
        .collect()
}

fn roundtrip(c: &mut Criterion) {
    let work = std::env::temp_dir().join(format!("passgate-roundtrip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    let tcp = TcpServer::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        authenticator(&work.join("tcp")),
    )
    .unwrap();
    let addr = tcp.local_addr().to_string();
    bench_getassertion(
        c,
        "tcp",
        Channel::open(Box::new(TcpTransport::connect(&addr).unwrap())).unwrap(),
    );

    if std::env::var("PASSGATE_BENCH_UHID").is_ok_and(|v| v == "1") {
        let uhid =
            UhidServer::start(authenticator(&work.join("uhid")), &passgate_identity()).unwrap();
        let node = wait_for_hidraw();
        let transport = HidrawTransport::open(&node).unwrap().unpaced();
        bench_getassertion(c, "uhid", Channel::open(Box::new(transport)).unwrap());
        if let Ok(file) = std::env::var("PASSGATE_BENCH_LIBFIDO2") {
            let times = time_libfido2(&node, &work, 30);
            let lines: String = times.iter().map(|t| format!("{t}\n")).collect();
            std::fs::write(file, lines).unwrap();
        }
        uhid.stop().unwrap();
    }
    tcp.stop().unwrap();
    let _ = std::fs::remove_dir_all(&work);
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
