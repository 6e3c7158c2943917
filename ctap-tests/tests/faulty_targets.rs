//! The suite against deliberately broken CTAPHID endpoints: it must finish (no hang, no
//! panic), report failures for what is wrong, and never crash on malformed responses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use passgate_ctap_tests::{RunOptions, Target, run};

/// How a fake device answers.
#[derive(Clone, Copy)]
enum Fault {
    /// INIT works; every CBOR request gets status 0 and `{2: h'00'}` (a 1-byte authData).
    ShortAuthData,
    /// INIT answers with a truncated 12-byte payload.
    ShortInit,
    /// INIT works; every CBOR request gets status 0 with a non-canonical map (keys 2 then 1).
    NonCanonical,
    /// Like `ShortAuthData`, but reset is refused with NOT_ALLOWED.
    ResetRefused,
}

const CID: [u8; 4] = [0x0a, 0x0b, 0x0c, 0x0d];

fn report(cid: &[u8], cmd: u8, payload: &[u8]) -> [u8; 64] {
    let mut r = [0u8; 64];
    r[..4].copy_from_slice(cid);
    r[4] = 0x80 | cmd;
    r[5..7].copy_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    r[7..7 + payload.len()].copy_from_slice(payload);
    r
}

fn device(mut stream: TcpStream, fault: Fault) {
    let mut r = [0u8; 64];
    while stream.read_exact(&mut r).is_ok() {
        if r[4] & 0x80 == 0 {
            continue; // Continuations are ignored; every answer is sent at the init packet.
        }
        let cid = &r[..4];
        let answer = match r[4] & 0x7f {
            0x06 => {
                let mut p = r[7..15].to_vec();
                p.extend_from_slice(&CID);
                p.extend_from_slice(&[2, 1, 0, 0, 0x0c]);
                if matches!(fault, Fault::ShortInit) {
                    p.truncate(12);
                }
                report(cid, 0x06, &p)
            }
            0x01 if usize::from(u16::from_be_bytes([r[5], r[6]])) <= 57 => {
                let n = usize::from(u16::from_be_bytes([r[5], r[6]]));
                report(cid, 0x01, &r[7..7 + n])
            }
            0x10 if matches!(fault, Fault::ResetRefused) && r[7] == 0x07 => {
                report(cid, 0x10, &[0x30])
            }
            0x10 => match fault {
                Fault::NonCanonical => report(cid, 0x10, &[0x00, 0xa2, 0x02, 0x40, 0x01, 0x40]),
                _ => report(cid, 0x10, &[0x00, 0xa1, 0x02, 0x41, 0x00]),
            },
            _ => report(cid, 0x3f, &[0x7f]),
        };
        if stream.write_all(&answer).is_err() {
            return;
        }
    }
}

fn serve(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let stream = stream.unwrap();
            std::thread::spawn(move || device(stream, fault));
        }
    });
    format!("tcp://{addr}")
}

fn run_against(fault: Fault) -> (passgate_ctap_tests::Report, String, Duration) {
    let target = Target::parse(&serve(fault)).unwrap();
    let options = RunOptions {
        presence_auto: true,
        allow_reset: true,
        ..RunOptions::default()
    };
    let mut out = Vec::new();
    let started = Instant::now();
    let report = run(&target, &options, &mut out);
    (report, String::from_utf8(out).unwrap(), started.elapsed())
}

fn line<'a>(text: &'a str, id: &str) -> &'a str {
    let prefix = format!(" {id} ");
    text.lines()
        .find(|l| l.contains(&prefix))
        .unwrap_or_else(|| panic!("no line for {id} in\n{text}"))
}

#[test]
fn short_auth_data_fails_without_panicking() {
    let (report, text, _) = run_against(Fault::ShortAuthData);
    println!("{text}");
    assert!(!text.contains("panicked"), "a check panicked:\n{text}");
    assert!(report.failed >= 60, "only {} failures", report.failed);
    for id in [
        "mc-01", "mc-03", "mc-04", "mc-06", "ga-01", "ga-28", "info-02",
    ] {
        assert!(
            line(&text, id).starts_with("FAIL "),
            "{id} did not fail: {}",
            line(&text, id)
        );
    }
    assert!(line(&text, "mc-03").contains("authData too short"));
    // A fake handing out one CID to everybody.
    assert!(line(&text, "hid-02").contains("two INITs returned the same CID 0a0b0c0d"));
    // Features the target does not offer are skipped, never passed.
    for id in [
        "hid-23", "cm-01", "cm-02", "cm-03", "cm-04", "pin-03", "ext-01",
    ] {
        assert!(line(&text, id).starts_with("SKIP "), "{}", line(&text, id));
    }
    // The transport checks the fake gets right still pass.
    for id in ["hid-05", "hid-07"] {
        assert!(line(&text, id).starts_with("PASS "), "{}", line(&text, id));
    }
    assert!(text.trim_end().ends_with(&format!(
        "{} passed, {} failed, {} skipped",
        report.passed, report.failed, report.skipped
    )));
}

#[test]
fn truncated_init_response_fails_every_check() {
    let (report, text, _) = run_against(Fault::ShortInit);
    assert!(!text.contains("panicked"), "a check panicked:\n{text}");
    assert_eq!(report.passed, 0, "{text}");
    assert!(
        line(&text, "hid-01").contains("INIT response payload is 12 bytes instead of 17"),
        "{text}"
    );
}

#[test]
fn non_canonical_responses_are_failures() {
    let (_, text, _) = run_against(Fault::NonCanonical);
    assert!(!text.contains("panicked"), "a check panicked:\n{text}");
    let info = line(&text, "info-13");
    assert!(
        info.starts_with("FAIL ") && info.contains("not canonical"),
        "{info}"
    );
    assert!(line(&text, "info-01").contains("response is not canonical CBOR"));
}

#[test]
fn refused_reset_skips_the_state_changing_checks() {
    let (_, text, _) = run_against(Fault::ResetRefused);
    assert!(!text.contains("panicked"), "a check panicked:\n{text}");
    let rst = line(&text, "rst-01");
    assert!(
        rst.starts_with("SKIP ") && rst.contains("NOT_ALLOWED (0x30)"),
        "{rst}"
    );
    let (_, text, _) = run_against(Fault::ShortAuthData);
    let rst = line(&text, "rst-01");
    assert!(rst.starts_with("FAIL "), "{rst}");
}
