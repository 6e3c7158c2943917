//! Extension checks: hmac-secret (§12.5), credBlob (§12.2), largeBlobKey (§12.3).

use ciborium::value::Value;

use super::checks;
use crate::cbor::{bytes, get, imap, int, tget, tmap};
use crate::hid::Channel;
use crate::needs::PRESENCE;
use crate::pin::{SharedSecret, agree};
use crate::{Check, Ctx, Made, ensure, expect_status, ga_request, make};

fn supports(ctx: &mut Ctx, name: &str) -> Result<bool, String> {
    let info = ctx.info()?;
    Ok(
        matches!(get(&info, 2), Some(Value::Array(a)) if a.iter().any(|e| e.as_text() == Some(name))),
    )
}

fn shared(ch: &mut Channel, protocol: u8) -> Result<SharedSecret, String> {
    let (status, body) = ch.ctap(
        0x06,
        Some(&imap(vec![(1, int(i64::from(protocol))), (2, int(2))])),
    )?;
    expect_status(status, 0)?;
    let key = get(body.as_ref().ok_or("no body")?, 1)
        .ok_or("no keyAgreement")?
        .clone();
    agree(protocol, &key)
}

fn hmac_eval(
    ch: &mut Channel,
    rp: &str,
    made: &Made,
    protocol: u8,
    salts: &[u8],
) -> Result<(u8, Option<Vec<u8>>), String> {
    let s = shared(ch, protocol)?;
    let salt_enc = s.encrypt(salts);
    let salt_auth = s.authenticate(&salt_enc);
    let ext = tmap(vec![(
        "hmac-secret",
        imap(vec![
            (1, s.platform_key.clone()),
            (2, bytes(&salt_enc)),
            (3, bytes(&salt_auth)),
            (4, int(i64::from(protocol))),
        ]),
    )]);
    let (status, body) = ch.ctap(0x02, Some(&ga_request(rp, &[&made.id], vec![(4, ext)])))?;
    if status != 0 {
        return Ok((status, None));
    }
    let body = body.ok_or("no body")?;
    let d = get(&body, 2)
        .and_then(Value::as_bytes)
        .ok_or("no authData")?;
    ensure!(d[32] & 0x80 != 0, "no extension data in the assertion");
    let mut reader = &d[37..];
    let ext: Value = ciborium::de::from_reader(&mut reader).map_err(|e| e.to_string())?;
    let out = tget(&ext, "hmac-secret")
        .and_then(Value::as_bytes)
        .ok_or("no hmac-secret output")?;
    Ok((0, Some(s.decrypt(out)?)))
}

fn hmac_created(ctx: &mut Ctx) -> Result<(Channel, String, Made), String> {
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(
        &mut ch,
        &rp,
        b"u",
        true,
        vec![(6, tmap(vec![("hmac-secret", Value::Bool(true))]))],
    )?;
    ensure!(
        made.auth_data[32] & 0x80 != 0,
        "hmac-secret: true not echoed"
    );
    Ok((ch, rp, made))
}

fn hmac_secret_stable(ctx: &mut Ctx) -> Result<(), String> {
    if !supports(ctx, "hmac-secret")? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (mut ch, rp, made) = hmac_created(ctx)?;
    for protocol in [1, 2] {
        let a = hmac_eval(&mut ch, &rp, &made, protocol, &[7; 32])?
            .1
            .ok_or("no output")?;
        let b = hmac_eval(&mut ch, &rp, &made, protocol, &[7; 32])?
            .1
            .ok_or("no output")?;
        let c = hmac_eval(&mut ch, &rp, &made, protocol, &[8; 32])?
            .1
            .ok_or("no output")?;
        ensure!(
            a.len() == 32,
            "protocol {protocol}: output is {} bytes",
            a.len()
        );
        ensure!(a == b, "protocol {protocol}: same salt, different output");
        ensure!(a != c, "protocol {protocol}: different salts, same output");
    }
    Ok(())
}

fn hmac_secret_two_salts(ctx: &mut Ctx) -> Result<(), String> {
    if !supports(ctx, "hmac-secret")? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (mut ch, rp, made) = hmac_created(ctx)?;
    let one = hmac_eval(&mut ch, &rp, &made, 2, &[1; 32])?
        .1
        .ok_or("no output")?;
    let two = hmac_eval(&mut ch, &rp, &made, 2, &[[1u8; 32], [2; 32]].concat())?
        .1
        .ok_or("no output")?;
    ensure!(
        two.len() == 64 && two[..32] == one[..],
        "two salts do not give output1 || output2"
    );
    Ok(())
}

fn hmac_secret_bad_auth(ctx: &mut Ctx) -> Result<(), String> {
    if !supports(ctx, "hmac-secret")? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (mut ch, rp, made) = hmac_created(ctx)?;
    let s = shared(&mut ch, 2)?;
    let salt_enc = s.encrypt(&[3; 32]);
    let ext = tmap(vec![(
        "hmac-secret",
        imap(vec![
            (1, s.platform_key.clone()),
            (2, bytes(&salt_enc)),
            (3, bytes(&[0; 32])),
            (4, int(2)),
        ]),
    )]);
    let (status, _) = ch.ctap(0x02, Some(&ga_request(&rp, &[&made.id], vec![(4, ext)])))?;
    expect_status(status, 0x33)
}

fn hmac_secret_bad_salt_length(ctx: &mut Ctx) -> Result<(), String> {
    if !supports(ctx, "hmac-secret")? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (mut ch, rp, made) = hmac_created(ctx)?;
    let (status, _) = hmac_eval(&mut ch, &rp, &made, 2, &[3; 48])?;
    expect_status(status, 0x03)
}

fn hmac_without_extension_at_creation(ctx: &mut Ctx) -> Result<(), String> {
    if !supports(ctx, "hmac-secret")? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(&mut ch, &rp, b"u", false, vec![])?;
    let s = shared(&mut ch, 2)?;
    let salt_enc = s.encrypt(&[3; 32]);
    let salt_auth = s.authenticate(&salt_enc);
    let ext = tmap(vec![(
        "hmac-secret",
        imap(vec![
            (1, s.platform_key.clone()),
            (2, bytes(&salt_enc)),
            (3, bytes(&salt_auth)),
            (4, int(2)),
        ]),
    )]);
    let (status, body) = ch.ctap(0x02, Some(&ga_request(&rp, &[&made.id], vec![(4, ext)])))?;
    expect_status(status, 0)?;
    let d = get(body.as_ref().ok_or("no body")?, 2)
        .and_then(Value::as_bytes)
        .ok_or("no authData")?;
    ensure!(
        d[32] & 0x80 == 0,
        "hmac-secret output for a credential created without it"
    );
    Ok(())
}

fn cred_blob(ctx: &mut Ctx) -> Result<(), String> {
    if !supports(ctx, "credBlob")? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(
        &mut ch,
        &rp,
        b"u",
        true,
        vec![(6, tmap(vec![("credBlob", bytes(b"blob!"))]))],
    )?;
    let (status, body) = ch.ctap(
        0x02,
        Some(&ga_request(
            &rp,
            &[&made.id],
            vec![(4, tmap(vec![("credBlob", Value::Bool(true))]))],
        )),
    )?;
    expect_status(status, 0)?;
    let d = get(body.as_ref().ok_or("no body")?, 2)
        .and_then(Value::as_bytes)
        .ok_or("no authData")?;
    let mut reader = &d[37..];
    let ext: Value = ciborium::de::from_reader(&mut reader).map_err(|e| e.to_string())?;
    ensure!(
        tget(&ext, "credBlob")
            .and_then(Value::as_bytes)
            .map(Vec::as_slice)
            == Some(b"blob!".as_slice()),
        "credBlob not returned"
    );
    Ok(())
}

fn large_blob_key(ctx: &mut Ctx) -> Result<(), String> {
    if !supports(ctx, "largeBlobKey")? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(
        &mut ch,
        &rp,
        b"u",
        true,
        vec![(6, tmap(vec![("largeBlobKey", Value::Bool(true))]))],
    )?;
    let key = get(&made.response, 5)
        .and_then(Value::as_bytes)
        .ok_or("no largeBlobKey in makeCredential")?
        .clone();
    ensure!(key.len() == 32, "largeBlobKey is {} bytes", key.len());
    let (status, body) = ch.ctap(
        0x02,
        Some(&ga_request(
            &rp,
            &[&made.id],
            vec![(4, tmap(vec![("largeBlobKey", Value::Bool(true))]))],
        )),
    )?;
    expect_status(status, 0)?;
    let again = get(body.as_ref().ok_or("no body")?, 7)
        .and_then(Value::as_bytes)
        .ok_or("no largeBlobKey in getAssertion")?;
    ensure!(*again == key, "largeBlobKey differs between ceremonies");
    Ok(())
}

fn large_blob_key_needs_rk(ctx: &mut Ctx) -> Result<(), String> {
    if !supports(ctx, "largeBlobKey")? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let (status, _) = ctx.channel()?.ctap(
        0x01,
        Some(&crate::mc_request(
            &rp,
            b"u",
            false,
            vec![(6, tmap(vec![("largeBlobKey", Value::Bool(true))]))],
        )),
    )?;
    expect_status(status, 0x2c)
}

fn get_key_agreement(ctx: &mut Ctx) -> Result<(), String> {
    if ctx.option("clientPin")?.is_none() {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = ctx.channel()?;
    for protocol in [1u8, 2] {
        shared(&mut ch, protocol).map_err(|e| format!("protocol {protocol}: {e}"))?;
    }
    Ok(())
}

/// The extension checks.
pub fn checks() -> Vec<Check> {
    checks![
        (
            "ext-01",
            "hmac-secret: same salt same output, other salt other output (protocols 1, 2)",
            PRESENCE,
            hmac_secret_stable
        ),
        (
            "ext-02",
            "hmac-secret: two salts give output1 || output2",
            PRESENCE,
            hmac_secret_two_salts
        ),
        (
            "ext-03",
            "hmac-secret: a wrong saltAuth is PIN_AUTH_INVALID",
            PRESENCE,
            hmac_secret_bad_auth
        ),
        (
            "ext-04",
            "hmac-secret: a 48-byte salt is INVALID_LENGTH",
            PRESENCE,
            hmac_secret_bad_salt_length
        ),
        (
            "ext-05",
            "hmac-secret: no output for credentials created without it",
            PRESENCE,
            hmac_without_extension_at_creation
        ),
        (
            "ext-06",
            "credBlob stored at creation and returned for `credBlob: true` in getAssertion",
            PRESENCE,
            cred_blob
        ),
        (
            "ext-07",
            "largeBlobKey: 32 bytes, identical in makeCredential and getAssertion",
            PRESENCE,
            large_blob_key
        ),
        (
            "ext-08",
            "largeBlobKey without rk is INVALID_OPTION",
            PRESENCE,
            large_blob_key_needs_rk
        ),
        (
            "ext-09",
            "getKeyAgreement returns a usable key for protocols 1 and 2",
            PRESENCE,
            get_key_agreement
        ),
    ]
}
