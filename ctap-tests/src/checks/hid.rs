//! CTAPHID transport checks (CTAP 2.1 §11.2).

use std::time::{Duration, Instant};

use super::checks;
use crate::hid::{BROADCAST, Channel, InitResponse, cmd, cont_report, init_report};
use crate::needs::{NO_PERSON, NOTHING};
use crate::{Check, Ctx, ensure, mc_request};

const CAP_WINK: u8 = 0x01;
const CAP_CBOR: u8 = 0x04;
const CAP_NMSG: u8 = 0x08;

fn error_code(ch: &mut Channel) -> Result<(u32, u8), String> {
    let m = ch.response()?;
    ensure!(
        m.command == cmd::ERROR,
        "expected CTAPHID_ERROR, got command 0x{:02x}",
        m.command
    );
    Ok((m.cid, m.payload.first().copied().unwrap_or(0)))
}

fn expect_error(ch: &mut Channel, cid: u32, code: u8) -> Result<(), String> {
    let (got_cid, got) = error_code(ch)?;
    ensure!(got == code, "expected error 0x{code:02x}, got 0x{got:02x}");
    ensure!(
        got_cid == cid,
        "error on channel {got_cid:08x}, expected {cid:08x}"
    );
    Ok(())
}

fn ping(ch: &mut Channel, len: usize) -> Result<(), String> {
    let payload: Vec<u8> = (0..len)
        .map(|i| u8::try_from(i % 253).unwrap_or(0))
        .collect();
    let m = ch.request(cmd::PING, &payload)?;
    ensure!(
        m.command == cmd::PING && m.cid == ch.cid,
        "PING answered with {:?}",
        m.command
    );
    ensure!(
        m.payload == payload,
        "PING echo differs ({} bytes back)",
        m.payload.len()
    );
    Ok(())
}

fn init_broadcast(ctx: &mut Ctx) -> Result<(), String> {
    // The suite's own channel (opened the ordinary way) only carries the transport; the INIT
    // under test is sent by hand so that every field of the response can be checked.
    let mut ch = ctx.channel()?;
    let nonce = crate::hid::fresh_nonce()?;
    ch.send_report(&init_report(BROADCAST, cmd::INIT, 8, &nonce))?;
    let m = ch.response()?;
    ensure!(
        m.cid == BROADCAST,
        "INIT response on channel {:08x} instead of the broadcast channel",
        m.cid
    );
    let init = InitResponse::parse(&m)?;
    ensure!(
        init.nonce == nonce,
        "nonce {:02x?} echoed as {:02x?}",
        nonce,
        init.nonce
    );
    ensure!(
        init.cid != 0 && init.cid != BROADCAST,
        "allocated CID {:08x} is reserved",
        init.cid
    );
    ensure!(
        init.cid != ch.cid,
        "a second INIT re-allocated channel {:08x}",
        init.cid
    );
    ensure!(
        init.protocol_version == 2,
        "CTAPHID protocol version {} instead of 2",
        init.protocol_version
    );
    ensure!(
        init.capabilities & CAP_CBOR != 0,
        "capabilities 0x{:02x} lack CBOR",
        init.capabilities
    );
    // The new channel works.
    ch.cid = init.cid;
    ping(&mut ch, 4)
}

fn init_distinct(ctx: &mut Ctx) -> Result<(), String> {
    let a = ctx.channel()?;
    let b = ctx.channel()?;
    ensure!(
        a.cid != b.cid,
        "two INITs returned the same CID {:08x}",
        a.cid
    );
    Ok(())
}

fn init_allocated(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    ch.send_report(&init_report(ch.cid, cmd::INIT, 8, b"12345678"))?;
    let m = ch.response()?;
    ensure!(
        m.cid == ch.cid,
        "INIT on channel {:08x} answered on {:08x}",
        ch.cid,
        m.cid
    );
    let init = InitResponse::parse(&m)?;
    ensure!(&init.nonce == b"12345678", "nonce not echoed");
    ensure!(
        init.cid == ch.cid,
        "INIT on an allocated channel changed it to {:08x}",
        init.cid
    );
    ensure!(
        init.protocol_version == 2,
        "CTAPHID protocol version {} instead of 2",
        init.protocol_version
    );
    ping(&mut ch, 2)
}

fn init_bad_length(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    ch.send_report(&init_report(BROADCAST, cmd::INIT, 7, b"1234567"))?;
    expect_error(&mut ch, BROADCAST, 0x03)
}

fn ping_0(ctx: &mut Ctx) -> Result<(), String> {
    ping(&mut ctx.channel()?, 0)
}
fn ping_1(ctx: &mut Ctx) -> Result<(), String> {
    ping(&mut ctx.channel()?, 1)
}
fn ping_57(ctx: &mut Ctx) -> Result<(), String> {
    ping(&mut ctx.channel()?, 57)
}
fn ping_58(ctx: &mut Ctx) -> Result<(), String> {
    ping(&mut ctx.channel()?, 58)
}
fn ping_max(ctx: &mut Ctx) -> Result<(), String> {
    ping(&mut ctx.channel()?, 7609)
}

fn bcnt_too_big(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid;
    ch.send_report(&init_report(cid, cmd::PING, 7610, &[]))?;
    expect_error(&mut ch, cid, 0x03)
}

fn wrong_seq(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid;
    ch.send_report(&init_report(cid, cmd::PING, 100, &[1; 57]))?;
    ch.send_report(&cont_report(cid, 1, &[1; 59]))?;
    expect_error(&mut ch, cid, 0x04)
}

fn stray_continuation(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid;
    ch.send_report(&cont_report(cid, 0, &[1; 59]))?;
    ensure!(
        ch.silent_for(Duration::from_millis(200))?,
        "a stray continuation packet was answered"
    );
    ping(&mut ch, 3)
}

fn unknown_command(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid;
    ch.send_report(&init_report(cid, 0x55, 0, &[]))?;
    expect_error(&mut ch, cid, 0x01)
}

fn cid_zero(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    ch.send_report(&init_report(0, cmd::PING, 1, &[1]))?;
    expect_error(&mut ch, 0, 0x0b)
}

fn broadcast_non_init(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    ch.send_report(&init_report(BROADCAST, cmd::PING, 1, &[1]))?;
    expect_error(&mut ch, BROADCAST, 0x0b)
}

fn unallocated_cid(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid.wrapping_add(0x0100_0000);
    ch.send_report(&init_report(cid, cmd::PING, 1, &[1]))?;
    expect_error(&mut ch, cid, 0x0b)
}

fn msg_without_ctap1(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    if ch.capabilities & CAP_NMSG == 0 {
        return Err(crate::skip(
            "the target implements CTAP1 (no NMSG capability): MSG is valid there",
        ));
    }
    let cid = ch.cid;
    ch.send_report(&init_report(cid, cmd::MSG, 1, &[0]))?;
    expect_error(&mut ch, cid, 0x01)
}

fn empty_cbor(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid;
    ch.send_report(&init_report(cid, cmd::CBOR, 0, &[]))?;
    expect_error(&mut ch, cid, 0x03)
}

fn busy_other_channel(ctx: &mut Ctx) -> Result<(), String> {
    let mut a = ctx.channel()?;
    let mut b = ctx.channel()?;
    // A starts a two-packet message and stops half-way; B must be told the device is busy.
    a.send_report(&init_report(a.cid, cmd::PING, 100, &[1; 57]))?;
    std::thread::sleep(Duration::from_millis(20));
    b.send_report(&init_report(b.cid, cmd::PING, 1, &[2]))?;
    let bcid = b.cid;
    expect_error(&mut b, bcid, 0x06)?;
    a.send_report(&cont_report(a.cid, 0, &[1; 59]))?;
    let m = a.response()?;
    ensure!(
        m.command == cmd::PING && m.payload.len() == 100,
        "A's message was not completed: {m:?}"
    );
    ping(&mut b, 1)
}

fn message_timeout(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid;
    ch.send_report(&init_report(cid, cmd::PING, 100, &[1; 57]))?;
    let started = Instant::now();
    expect_error(&mut ch, cid, 0x05)?;
    let waited = started.elapsed();
    ensure!(
        waited >= Duration::from_millis(100),
        "timed out after only {waited:?}"
    );
    ping(&mut ch, 2)
}

fn init_resync(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid;
    ch.send_report(&init_report(cid, cmd::PING, 100, &[1; 57]))?;
    ch.send_report(&init_report(cid, cmd::INIT, 8, b"resync!!"))?;
    let m = ch.response()?;
    let init = InitResponse::parse(&m).map_err(|e| format!("INIT did not resynchronise: {e}"))?;
    ensure!(
        &init.nonce == b"resync!!" && init.cid == cid,
        "INIT did not resynchronise: {init:?}"
    );
    ping(&mut ch, 5)
}

fn cancel_idle(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid;
    ch.send_report(&init_report(cid, cmd::CANCEL, 0, &[]))?;
    ensure!(
        ch.silent_for(Duration::from_millis(200))?,
        "CANCEL with nothing running was answered"
    );
    ping(&mut ch, 1)
}

fn wink(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    if ch.capabilities & CAP_WINK == 0 {
        return Err(crate::skip("the target has no WINK capability"));
    }
    let m = ch.request(cmd::WINK, &[])?;
    ensure!(
        m.command == cmd::WINK && m.payload.is_empty(),
        "WINK answered with {m:?}"
    );
    Ok(())
}

fn keepalive_then_cancel(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let request = mc_request(&ctx.rp(), b"k", false, vec![]);
    let mut payload = vec![0x01];
    payload.extend(crate::cbor::encode(&request));
    ch.send(cmd::CBOR, &payload)?;
    // Wait for KEEPALIVE with status UPNEEDED (2).
    let started = Instant::now();
    loop {
        let m = crate::hid::read_message(ch.transport.as_mut(), Duration::from_secs(2))?;
        ensure!(
            m.command == cmd::KEEPALIVE,
            "expected KEEPALIVE while waiting for the user, got {m:?}"
        );
        if m.payload.first() == Some(&2) {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(3),
            "no KEEPALIVE with UPNEEDED"
        );
    }
    ch.send_report(&init_report(ch.cid, cmd::CANCEL, 0, &[]))?;
    let m = ch.response()?;
    ensure!(
        m.command == cmd::CBOR,
        "expected the CBOR response after CANCEL, got {m:?}"
    );
    ensure!(
        m.payload == [0x2d],
        "expected KEEPALIVE_CANCEL (0x2d), got {:02x?}",
        m.payload
    );
    ping(&mut ch, 1)
}

fn lock_unsupported(ctx: &mut Ctx) -> Result<(), String> {
    let mut ch = ctx.channel()?;
    let cid = ch.cid;
    ch.send_report(&init_report(cid, cmd::LOCK, 1, &[0]))?;
    let m = ch.response()?;
    // LOCK is optional: either it is implemented (empty LOCK response) or refused as invalid.
    ensure!(
        (m.command == cmd::LOCK && m.payload.is_empty())
            || (m.command == cmd::ERROR && m.payload == [0x01]),
        "LOCK answered with {m:?}"
    );
    Ok(())
}

/// The CTAPHID checks.
pub fn checks() -> Vec<Check> {
    checks![
        (
            "hid-01",
            "INIT on broadcast: nonce echoed, new usable CID, version 2, CBOR capability",
            NOTHING,
            init_broadcast
        ),
        (
            "hid-02",
            "two INITs allocate different channels",
            NOTHING,
            init_distinct
        ),
        (
            "hid-03",
            "INIT on an allocated channel keeps it, protocol version 2",
            NOTHING,
            init_allocated
        ),
        (
            "hid-04",
            "INIT with 7 bytes is ERR_INVALID_LEN",
            NOTHING,
            init_bad_length
        ),
        ("hid-05", "PING with no data", NOTHING, ping_0),
        ("hid-06", "PING with 1 byte", NOTHING, ping_1),
        (
            "hid-07",
            "PING filling exactly one init packet",
            NOTHING,
            ping_57
        ),
        (
            "hid-08",
            "PING needing one continuation packet",
            NOTHING,
            ping_58
        ),
        (
            "hid-09",
            "PING of the maximum 7609 bytes",
            NOTHING,
            ping_max
        ),
        (
            "hid-10",
            "BCNT 7610 is ERR_INVALID_LEN",
            NOTHING,
            bcnt_too_big
        ),
        (
            "hid-11",
            "wrong continuation sequence is ERR_INVALID_SEQ",
            NOTHING,
            wrong_seq
        ),
        (
            "hid-12",
            "a stray continuation packet is ignored",
            NOTHING,
            stray_continuation
        ),
        (
            "hid-13",
            "an unknown command is ERR_INVALID_CMD",
            NOTHING,
            unknown_command
        ),
        ("hid-14", "CID 0 is ERR_INVALID_CHANNEL", NOTHING, cid_zero),
        (
            "hid-15",
            "a non-INIT command on broadcast is ERR_INVALID_CHANNEL",
            NOTHING,
            broadcast_non_init
        ),
        (
            "hid-16",
            "an unallocated CID is ERR_INVALID_CHANNEL",
            NOTHING,
            unallocated_cid
        ),
        (
            "hid-17",
            "MSG on a device with NMSG is ERR_INVALID_CMD",
            NOTHING,
            msg_without_ctap1
        ),
        (
            "hid-18",
            "CBOR with no payload is ERR_INVALID_LEN",
            NOTHING,
            empty_cbor
        ),
        (
            "hid-19",
            "another channel is ERR_CHANNEL_BUSY during a message",
            NOTHING,
            busy_other_channel
        ),
        (
            "hid-20",
            "a message never completed is ERR_MSG_TIMEOUT",
            NOTHING,
            message_timeout
        ),
        (
            "hid-21",
            "INIT mid-message resynchronises the channel",
            NOTHING,
            init_resync
        ),
        (
            "hid-22",
            "CANCEL with nothing running gets no response",
            NOTHING,
            cancel_idle
        ),
        ("hid-23", "WINK answers with an empty WINK", NOTHING, wink),
        (
            "hid-24",
            "LOCK is implemented or refused as ERR_INVALID_CMD",
            NOTHING,
            lock_unsupported
        ),
        (
            "hid-25",
            "KEEPALIVE UPNEEDED while waiting, CANCEL ends it with 0x2d",
            NO_PERSON,
            keepalive_then_cancel
        ),
    ]
}
