//! authenticatorGetAssertion and authenticatorGetNextAssertion checks (CTAP 2.1 §6.2, §6.3).

use ciborium::value::Value;

use super::checks;
use super::make_credential::{raw_check, status_check};
use crate::cbor::{as_int, bytes, get, imap, int, text, tget, tmap};
use crate::hid::Channel;
use crate::needs::PRESENCE;
use crate::{Check, Ctx, Made, ensure, expect_status, ga_request, make, verify};

fn assert_ok(ch: &mut Channel, request: &Value) -> Result<Value, String> {
    let (status, body) = ch.ctap(0x02, Some(request))?;
    expect_status(status, 0)?;
    body.ok_or_else(|| "getAssertion returned no body".to_owned())
}

/// The assertion's authData, at least the 37 bytes of rpIdHash, flags and counter.
fn auth_data(body: &Value) -> Result<Vec<u8>, String> {
    let d = get(body, 2)
        .and_then(Value::as_bytes)
        .ok_or("no authData")?
        .clone();
    ensure!(d.len() >= 37, "authData is only {} bytes", d.len());
    Ok(d)
}

fn counter(d: &[u8]) -> u32 {
    d.get(33..37)
        .and_then(|c| <[u8; 4]>::try_from(c).ok())
        .map_or(0, u32::from_be_bytes)
}

fn setup(ctx: &mut Ctx, rk: bool) -> Result<(Channel, String, Made), String> {
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(&mut ch, &rp, b"user-a", rk, vec![])?;
    Ok((ch, rp, made))
}

fn signature_verifies(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, made) = setup(ctx, false)?;
    let body = assert_ok(&mut ch, &ga_request(&rp, &[&made.id], vec![]))?;
    let d = auth_data(&body)?;
    let sig = get(&body, 3)
        .and_then(Value::as_bytes)
        .ok_or("no signature")?;
    ensure!(
        verify(&made.public_key, &d, &[0x22; 32], sig),
        "assertion signature does not verify"
    );
    ensure!(d[32] & 0x01 != 0, "UP flag not set");
    ensure!(d[32] & 0x40 == 0, "AT flag set in an assertion");
    ensure!(
        d[..32] == *aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, rp.as_bytes()).as_ref(),
        "rpIdHash is not SHA-256(rpId)"
    );
    let id = get(&body, 1)
        .and_then(|c| tget(c, "id"))
        .and_then(Value::as_bytes)
        .ok_or("no credential descriptor")?;
    ensure!(*id == made.id, "the assertion names another credential");
    ensure!(
        !verify(&made.public_key, &d, &[0x23; 32], sig),
        "the signature also verifies over a different clientDataHash"
    );
    Ok(())
}

fn counter_increases(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, made) = setup(ctx, false)?;
    let mut last = 0;
    for i in 0..3 {
        let d = auth_data(&assert_ok(&mut ch, &ga_request(&rp, &[&made.id], vec![]))?)?;
        let c = counter(&d);
        ensure!(
            i == 0 || c > last,
            "counter {c} did not increase over {last}"
        );
        last = c;
    }
    Ok(())
}

fn silent_probe(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, made) = setup(ctx, false)?;
    let body = assert_ok(
        &mut ch,
        &ga_request(
            &rp,
            &[&made.id],
            vec![(5, tmap(vec![("up", Value::Bool(false))]))],
        ),
    )?;
    let d = auth_data(&body)?;
    ensure!(d[32] & 0x01 == 0, "UP set on an up=false assertion");
    let sig = get(&body, 3)
        .and_then(Value::as_bytes)
        .ok_or("no signature")?;
    ensure!(
        verify(&made.public_key, &d, &[0x22; 32], sig),
        "probe signature does not verify"
    );
    Ok(())
}

fn unknown_credential(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, _) = setup(ctx, false)?;
    let (status, _) = ch.ctap(0x02, Some(&ga_request(&rp, &[&[0x42; 16]], vec![])))?;
    expect_status(status, 0x2e)
}

fn other_rp(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, made) = setup(ctx, false)?;
    let (status, _) = ch.ctap(
        0x02,
        Some(&ga_request(&format!("x.{rp}"), &[&made.id], vec![])),
    )?;
    expect_status(status, 0x2e)
}

fn two_accounts(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let a = make(&mut ch, &rp, b"alice", true, vec![])?;
    let b = make(&mut ch, &rp, b"bob", true, vec![])?;
    let first = assert_ok(&mut ch, &ga_request(&rp, &[], vec![]))?;
    ensure!(
        as_int(get(&first, 5)) == Some(2),
        "numberOfCredentials is not 2"
    );
    let (status, next) = ch.ctap(0x08, None)?;
    expect_status(status, 0)?;
    let next = next.ok_or("no body")?;
    let ids: Vec<Vec<u8>> = [&first, &next]
        .iter()
        .filter_map(|r| {
            get(r, 1)
                .and_then(|c| tget(c, "id"))
                .and_then(Value::as_bytes)
                .cloned()
        })
        .collect();
    ensure!(
        ids.contains(&a.id) && ids.contains(&b.id),
        "the two assertions are not the two credentials"
    );
    ensure!(
        get(&next, 5).is_none(),
        "numberOfCredentials repeated in getNextAssertion"
    );
    for (r, made) in [
        (&first, if ids[0] == a.id { &a } else { &b }),
        (&next, if ids[1] == a.id { &a } else { &b }),
    ] {
        let d = auth_data(r)?;
        let sig = get(r, 3).and_then(Value::as_bytes).ok_or("no signature")?;
        ensure!(
            verify(&made.public_key, &d, &[0x22; 32], sig),
            "a signature does not verify"
        );
    }
    let (status, _) = ch.ctap(0x08, None)?;
    expect_status(status, 0x30)
}

fn next_after_other_command(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    make(&mut ch, &rp, b"alice", true, vec![])?;
    make(&mut ch, &rp, b"bob", true, vec![])?;
    assert_ok(&mut ch, &ga_request(&rp, &[], vec![]))?;
    let (status, _) = ch.ctap(0x04, None)?;
    expect_status(status, 0)?;
    let (status, _) = ch.ctap(0x08, None)?;
    expect_status(status, 0x30)
}

fn user_entity(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, _) = setup(ctx, true)?;
    let body = assert_ok(&mut ch, &ga_request(&rp, &[], vec![]))?;
    let user = get(&body, 4).ok_or("no user entity for a discoverable credential")?;
    ensure!(
        tget(user, "id")
            .and_then(Value::as_bytes)
            .map(Vec::as_slice)
            == Some(b"user-a".as_slice()),
        "wrong user id"
    );
    let d = auth_data(&body)?;
    if d[32] & 0x04 == 0 {
        ensure!(
            tget(user, "name").is_none() && tget(user, "displayName").is_none(),
            "names returned without UV"
        );
    }
    Ok(())
}

fn cred_protect_three(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(
        &mut ch,
        &rp,
        b"u",
        true,
        vec![(6, tmap(vec![("credProtect", int(3))]))],
    )?;
    let (s1, _) = ch.ctap(0x02, Some(&ga_request(&rp, &[], vec![])))?;
    let (s2, _) = ch.ctap(0x02, Some(&ga_request(&rp, &[&made.id], vec![])))?;
    expect_status(s1, 0x2e).map_err(|e| format!("discovery: {e}"))?;
    expect_status(s2, 0x2e).map_err(|e| format!("allowList: {e}"))
}

fn cred_protect_two(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(
        &mut ch,
        &rp,
        b"u",
        true,
        vec![(6, tmap(vec![("credProtect", int(2))]))],
    )?;
    let (s1, _) = ch.ctap(0x02, Some(&ga_request(&rp, &[], vec![])))?;
    expect_status(s1, 0x2e).map_err(|e| format!("discovery without UV: {e}"))?;
    assert_ok(&mut ch, &ga_request(&rp, &[&made.id], vec![]))?;
    Ok(())
}

fn empty_allow_list(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, made) = setup(ctx, true)?;
    let body = assert_ok(
        &mut ch,
        &imap(vec![
            (1, text(&rp)),
            (2, bytes(&[0x22; 32])),
            (3, Value::Array(vec![])),
        ]),
    )?;
    let id = get(&body, 1)
        .and_then(|c| tget(c, "id"))
        .and_then(Value::as_bytes)
        .ok_or("no credential")?;
    ensure!(*id == made.id, "wrong credential");
    Ok(())
}

fn foreign_type_skipped(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, made) = setup(ctx, false)?;
    let list = Value::Array(vec![tmap(vec![
        ("id", bytes(&made.id)),
        ("type", text("other-type")),
    ])]);
    let (status, _) = ch.ctap(
        0x02,
        Some(&imap(vec![
            (1, text(&rp)),
            (2, bytes(&[0x22; 32])),
            (3, list),
        ])),
    )?;
    expect_status(status, 0x2e)
}

fn no_extensions_plain(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, made) = setup(ctx, false)?;
    let d = auth_data(&assert_ok(&mut ch, &ga_request(&rp, &[&made.id], vec![]))?)?;
    ensure!(d.len() == 37, "authData is {} bytes, expected 37", d.len());
    Ok(())
}

fn allow_list_first_match(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, made) = setup(ctx, false)?;
    let body = assert_ok(&mut ch, &ga_request(&rp, &[&[0x01; 16], &made.id], vec![]))?;
    ensure!(
        get(&body, 5).is_none(),
        "numberOfCredentials with an allowList"
    );
    let id = get(&body, 1)
        .and_then(|c| tget(c, "id"))
        .and_then(Value::as_bytes)
        .ok_or("no credential")?;
    ensure!(*id == made.id, "wrong credential chosen");
    Ok(())
}

status_check!(
    rk_option,
    0x02,
    |rp| ga_request(rp, &[], vec![(5, tmap(vec![("rk", Value::Bool(true))]))]),
    0x2b
);
status_check!(
    missing_rp_id,
    0x02,
    |_rp| imap(vec![(2, bytes(&[0; 32]))]),
    0x14
);
status_check!(missing_cdh, 0x02, |rp| imap(vec![(1, text(rp))]), 0x14);
status_check!(
    allow_item_without_id,
    0x02,
    |rp| imap(vec![
        (1, text(rp)),
        (2, bytes(&[0; 32])),
        (
            3,
            Value::Array(vec![tmap(vec![("type", text("public-key"))])])
        )
    ]),
    0x14
);
status_check!(
    allow_not_array,
    0x02,
    |rp| imap(vec![(1, text(rp)), (2, bytes(&[0; 32])), (3, int(3))]),
    0x11
);
status_check!(
    rp_id_bytes,
    0x02,
    |_rp| imap(vec![(1, bytes(b"x")), (2, bytes(&[0; 32]))]),
    0x11
);
status_check!(
    no_credentials_at_all,
    0x02,
    |rp| ga_request(&format!("empty.{rp}"), &[], vec![]),
    0x2e
);
raw_check!(next_without_assertion, [0x08], 0x30);
raw_check!(ga_truncated, [0x02, 0xa1, 0x01], 0x12);
raw_check!(
    ga_duplicate_keys,
    [0x02, 0xa2, 0x01, 0x60, 0x01, 0x60],
    0x12
);

fn next_after_allow_list(ctx: &mut Ctx) -> Result<(), String> {
    // With an allowList the authenticator answers with one credential and keeps no state for
    // getNextAssertion (§6.2.2, §6.3).
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let a = make(&mut ch, &rp, b"alice", true, vec![])?;
    let b = make(&mut ch, &rp, b"bob", true, vec![])?;
    let body = assert_ok(&mut ch, &ga_request(&rp, &[&a.id, &b.id], vec![]))?;
    ensure!(
        get(&body, 5).is_none(),
        "numberOfCredentials returned for an allowList request"
    );
    let (status, _) = ch.ctap(0x08, None)?;
    expect_status(status, 0x30)
}

fn unknown_option_ignored(ctx: &mut Ctx) -> Result<(), String> {
    let (mut ch, rp, made) = setup(ctx, false)?;
    assert_ok(
        &mut ch,
        &ga_request(
            &rp,
            &[&made.id],
            vec![(5, tmap(vec![("x-opt", Value::Bool(true))]))],
        ),
    )?;
    Ok(())
}

fn uv_option_without_uv(ctx: &mut Ctx) -> Result<(), String> {
    if ctx.option("uv")?.is_some() {
        return Err(crate::skip("the target has built-in user verification"));
    }
    let (mut ch, rp, made) = setup(ctx, false)?;
    let (status, _) = ch.ctap(
        0x02,
        Some(&ga_request(
            &rp,
            &[&made.id],
            vec![(5, tmap(vec![("uv", Value::Bool(true))]))],
        )),
    )?;
    ensure!(
        status == 0x2c || status == 0x2b,
        "expected INVALID_OPTION, got 0x{status:02x}"
    );
    Ok(())
}

fn probe_counts(ctx: &mut Ctx) -> Result<(), String> {
    // WebAuthn §6.1.1 counts every successful assertion; an authenticator may instead leave a
    // silent probe (up=false) out of the count and report 0 for it (no counter revealed). Either
    // way the counter never goes backwards: the probe reports 0 or more than the assertion
    // before it, and the next user-present assertion reports more than both.
    let (mut ch, rp, made) = setup(ctx, false)?;
    let request = ga_request(&rp, &[&made.id], vec![]);
    let first = counter(&auth_data(&assert_ok(&mut ch, &request)?)?);
    let probe = counter(&auth_data(&assert_ok(
        &mut ch,
        &ga_request(
            &rp,
            &[&made.id],
            vec![(5, tmap(vec![("up", Value::Bool(false))]))],
        ),
    )?)?);
    let next = counter(&auth_data(&assert_ok(&mut ch, &request)?)?);
    ensure!(
        probe == 0 || probe > first,
        "counter {first}, then {probe} on an up=false assertion (neither 0 nor increasing)"
    );
    ensure!(
        next > first.max(probe) || (first == 0 && probe == 0 && next == 0),
        "counter {first}, probe {probe}, then {next}: the counter went backwards"
    );
    Ok(())
}

fn most_recent_first(ctx: &mut Ctx) -> Result<(), String> {
    // CTAP 2.1 §6.2.2 (no allowList): the applicable credentials are ordered by creation time,
    // most recent first. Four credentials made back to back (well within one second) also
    // catch an authenticator whose creation time is too coarse to order them.
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let mut made = Vec::new();
    for user in [&b"first"[..], b"second", b"third", b"fourth"] {
        made.push(make(&mut ch, &rp, user, true, vec![])?.id);
    }
    let id = |r: &Value| {
        get(r, 1)
            .and_then(|c| tget(c, "id"))
            .and_then(Value::as_bytes)
            .cloned()
            .unwrap_or_default()
    };
    let first = assert_ok(&mut ch, &ga_request(&rp, &[], vec![]))?;
    ensure!(
        as_int(get(&first, 5)) == Some(4),
        "numberOfCredentials {:?} instead of 4",
        as_int(get(&first, 5))
    );
    let mut order = vec![id(&first)];
    for _ in 1..4 {
        let (status, next) = ch.ctap(0x08, None)?;
        expect_status(status, 0)?;
        order.push(id(&next.ok_or("getNextAssertion returned no body")?));
    }
    let position = |cred: &Vec<u8>| made.iter().position(|m| m == cred);
    let got: Vec<Option<usize>> = order.iter().map(position).collect();
    ensure!(
        got == [Some(3), Some(2), Some(1), Some(0)],
        "creation order of the returned credentials {got:?} (0 = oldest), expected newest first [3, 2, 1, 0]"
    );
    Ok(())
}

/// The getAssertion checks.
pub fn checks() -> Vec<Check> {
    checks![
        (
            "ga-01",
            "allowList assertion: rpIdHash, UP set, no AT, credential named, signature binds clientDataHash",
            PRESENCE,
            signature_verifies
        ),
        (
            "ga-02",
            "signature counter strictly increases",
            PRESENCE,
            counter_increases
        ),
        (
            "ga-03",
            "up=false probe: no UP flag, signature still valid",
            PRESENCE,
            silent_probe
        ),
        (
            "ga-04",
            "unknown credential ID is NO_CREDENTIALS",
            PRESENCE,
            unknown_credential
        ),
        (
            "ga-05",
            "a credential of another RP is NO_CREDENTIALS",
            PRESENCE,
            other_rp
        ),
        (
            "ga-06",
            "two accounts: numberOfCredentials then getNextAssertion",
            PRESENCE,
            two_accounts
        ),
        (
            "ga-07",
            "another command ends the getNextAssertion sequence",
            PRESENCE,
            next_after_other_command
        ),
        (
            "ga-08",
            "user entity for discoverable credentials, no names without UV",
            PRESENCE,
            user_entity
        ),
        (
            "ga-09",
            "credProtect 3 hides the credential without UV",
            PRESENCE,
            cred_protect_three
        ),
        (
            "ga-10",
            "credProtect 2 needs the credential ID without UV",
            PRESENCE,
            cred_protect_two
        ),
        (
            "ga-11",
            "an empty allowList means discovery",
            PRESENCE,
            empty_allow_list
        ),
        (
            "ga-12",
            "descriptors of other types are skipped",
            PRESENCE,
            foreign_type_skipped
        ),
        (
            "ga-13",
            "authData without extensions is 37 bytes",
            PRESENCE,
            no_extensions_plain
        ),
        (
            "ga-14",
            "allowList picks the first existing credential",
            PRESENCE,
            allow_list_first_match
        ),
        (
            "ga-15",
            "rk option is UNSUPPORTED_OPTION",
            PRESENCE,
            rk_option
        ),
        (
            "ga-16",
            "missing rpId is MISSING_PARAMETER",
            PRESENCE,
            missing_rp_id
        ),
        (
            "ga-17",
            "missing clientDataHash is MISSING_PARAMETER",
            PRESENCE,
            missing_cdh
        ),
        (
            "ga-18",
            "allowList item without id is MISSING_PARAMETER",
            PRESENCE,
            allow_item_without_id
        ),
        (
            "ga-19",
            "allowList not an array is CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            allow_not_array
        ),
        (
            "ga-20",
            "rpId as bytes is CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            rp_id_bytes
        ),
        (
            "ga-21",
            "an RP without credentials is NO_CREDENTIALS",
            PRESENCE,
            no_credentials_at_all
        ),
        (
            "ga-22",
            "getNextAssertion without getAssertion is NOT_ALLOWED",
            PRESENCE,
            next_without_assertion
        ),
        (
            "ga-23",
            "truncated CBOR is INVALID_CBOR",
            PRESENCE,
            ga_truncated
        ),
        (
            "ga-24",
            "duplicate map keys are INVALID_CBOR",
            PRESENCE,
            ga_duplicate_keys
        ),
        (
            "ga-25",
            "getNextAssertion after an allowList request is NOT_ALLOWED",
            PRESENCE,
            next_after_allow_list
        ),
        (
            "ga-26",
            "unknown options are ignored",
            PRESENCE,
            unknown_option_ignored
        ),
        (
            "ga-27",
            "uv=true without built-in UV is INVALID_OPTION",
            PRESENCE,
            uv_option_without_uv
        ),
        (
            "ga-28",
            "a silent probe never makes the counter go backwards",
            PRESENCE,
            probe_counts
        ),
        (
            "ga-29",
            "discovered credentials come most recently created first",
            PRESENCE,
            most_recent_first
        ),
    ]
}
