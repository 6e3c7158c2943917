//! credentialManagement (§6.8), largeBlobs (§6.10) and authenticatorConfig (§6.11) checks.
//! Each resets the authenticator first.

use aws_lc_rs::digest;
use ciborium::value::Value;

use super::checks;
use super::client_pin::{PIN, fresh, set_pin, token};
use crate::cbor::{as_int, bytes, encode, get, imap, int, text, tget, tmap};
use crate::hid::Channel;
use crate::needs::{PRESENCE, RESET};
use crate::pin::authenticate;
use crate::{Check, Ctx, ensure, expect_status, make};

const BOTH: u8 = PRESENCE | RESET;

fn cm(
    ch: &mut Channel,
    t: &[u8],
    sub: u8,
    params: Option<Value>,
) -> Result<(u8, Option<Value>), String> {
    let mut message = vec![sub];
    if let Some(p) = &params {
        message.extend(encode(p));
    }
    let mut entries = vec![
        (1, int(i64::from(sub))),
        (3, int(2)),
        (4, bytes(&authenticate(2, t, &message))),
    ];
    if let Some(p) = params {
        entries.push((2, p));
    }
    ch.ctap(0x0a, Some(&imap(entries)))
}

const NO_CM: &str = "the target offers no credentialManagement with clientPin";

fn setup_cm(ctx: &mut Ctx) -> Result<Option<(Channel, Vec<u8>, String)>, String> {
    if ctx.option("credMgmt")? != Some(true) || ctx.option("clientPin")?.is_none() {
        return Ok(None);
    }
    let rp = ctx.rp();
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    for user in [&b"alice"[..], b"bob"] {
        let t = token(&mut ch, 2, PIN, Some(0x01), Some(&rp))?
            .map_err(|s| format!("token 0x{s:02x}"))?;
        make(
            &mut ch,
            &rp,
            user,
            true,
            vec![(8, bytes(&authenticate(2, &t, &[0x11; 32]))), (9, int(2))],
        )?;
    }
    let t = token(&mut ch, 2, PIN, Some(0x04), None)?.map_err(|s| format!("token 0x{s:02x}"))?;
    Ok(Some((ch, t, rp)))
}

fn cm_metadata(ctx: &mut Ctx) -> Result<(), String> {
    let Some((mut ch, t, _)) = setup_cm(ctx)? else {
        return Err(crate::skip(NO_CM));
    };
    let (status, body) = cm(&mut ch, &t, 1, None)?;
    expect_status(status, 0)?;
    let body = body.ok_or("no body")?;
    ensure!(
        as_int(get(&body, 1)) == Some(2),
        "existingResidentCredentialsCount is not 2"
    );
    ensure!(
        as_int(get(&body, 2)).is_some(),
        "no maxPossibleRemainingResidentCredentialsCount"
    );
    Ok(())
}

fn cm_enumerate(ctx: &mut Ctx) -> Result<(), String> {
    let Some((mut ch, t, rp)) = setup_cm(ctx)? else {
        return Err(crate::skip(NO_CM));
    };
    let (status, body) = cm(&mut ch, &t, 2, None)?;
    expect_status(status, 0)?;
    let body = body.ok_or("no body")?;
    ensure!(as_int(get(&body, 5)) == Some(1), "totalRPs is not 1");
    ensure!(
        get(&body, 3)
            .and_then(|r| tget(r, "id"))
            .and_then(Value::as_text)
            == Some(rp.as_str()),
        "wrong RP"
    );
    let hash = digest::digest(&digest::SHA256, rp.as_bytes());
    ensure!(
        get(&body, 4).and_then(Value::as_bytes).map(Vec::as_slice) == Some(hash.as_ref()),
        "wrong rpIDHash"
    );
    let (status, first) = cm(&mut ch, &t, 4, Some(imap(vec![(1, bytes(hash.as_ref()))])))?;
    expect_status(status, 0)?;
    let first = first.ok_or("no body")?;
    ensure!(
        as_int(get(&first, 9)) == Some(2),
        "totalCredentials is not 2"
    );
    ensure!(get(&first, 8).is_some(), "no publicKey");
    let (status, _) = ch.ctap(0x0a, Some(&imap(vec![(1, int(5))])))?;
    expect_status(status, 0)?;
    let (status, _) = ch.ctap(0x0a, Some(&imap(vec![(1, int(5))])))?;
    expect_status(status, 0x30)
}

fn cm_delete(ctx: &mut Ctx) -> Result<(), String> {
    let Some((mut ch, t, rp)) = setup_cm(ctx)? else {
        return Err(crate::skip(NO_CM));
    };
    let hash = digest::digest(&digest::SHA256, rp.as_bytes());
    let (_, first) = cm(&mut ch, &t, 4, Some(imap(vec![(1, bytes(hash.as_ref()))])))?;
    let descriptor = get(first.as_ref().ok_or("no body")?, 7)
        .ok_or("no credentialID")?
        .clone();
    let (status, _) = cm(&mut ch, &t, 6, Some(imap(vec![(2, descriptor.clone())])))?;
    expect_status(status, 0)?;
    let (status, body) = cm(&mut ch, &t, 1, None)?;
    expect_status(status, 0)?;
    ensure!(
        as_int(get(body.as_ref().ok_or("no body")?, 1)) == Some(1),
        "count did not drop to 1"
    );
    let (status, _) = cm(&mut ch, &t, 6, Some(imap(vec![(2, descriptor)])))?;
    expect_status(status, 0x2e)
}

fn cm_update(ctx: &mut Ctx) -> Result<(), String> {
    let Some((mut ch, t, rp)) = setup_cm(ctx)? else {
        return Err(crate::skip(NO_CM));
    };
    let hash = digest::digest(&digest::SHA256, rp.as_bytes());
    let (_, first) = cm(&mut ch, &t, 4, Some(imap(vec![(1, bytes(hash.as_ref()))])))?;
    let first = first.ok_or("no body")?;
    let descriptor = get(&first, 7).ok_or("no credentialID")?.clone();
    let user_id = get(&first, 6)
        .and_then(|u| tget(u, "id"))
        .ok_or("no user id")?
        .clone();
    let user = tmap(vec![("id", user_id), ("name", text("renamed"))]);
    let (status, _) = cm(
        &mut ch,
        &t,
        7,
        Some(imap(vec![(2, descriptor.clone()), (3, user)])),
    )?;
    expect_status(status, 0)?;
    let other = tmap(vec![("id", bytes(b"mallory")), ("name", text("x"))]);
    let (status, _) = cm(
        &mut ch,
        &t,
        7,
        Some(imap(vec![(2, descriptor), (3, other)])),
    )?;
    expect_status(status, 0x02)
}

fn cm_needs_token(ctx: &mut Ctx) -> Result<(), String> {
    if ctx.option("credMgmt")? != Some(true) {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (status, _) = ctx.channel()?.ctap(0x0a, Some(&imap(vec![(1, int(1))])))?;
    expect_status(status, 0x36)
}

fn cm_wrong_permission(ctx: &mut Ctx) -> Result<(), String> {
    if ctx.option("credMgmt")? != Some(true) {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    let t = token(&mut ch, 2, PIN, Some(0x02), None)?.map_err(|s| format!("token 0x{s:02x}"))?;
    expect_status(cm(&mut ch, &t, 1, None)?.0, 0x33)
}

fn cm_next_without_begin(ctx: &mut Ctx) -> Result<(), String> {
    if ctx.option("credMgmt")? != Some(true) {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (status, _) = ctx.channel()?.ctap(0x0a, Some(&imap(vec![(1, int(3))])))?;
    expect_status(status, 0x30)
}

fn lb_supported(ctx: &mut Ctx) -> Result<bool, String> {
    Ok(ctx.option("largeBlobs")? == Some(true))
}

fn serialized(array: &[u8]) -> Vec<u8> {
    let mut out = array.to_vec();
    out.extend_from_slice(&digest::digest(&digest::SHA256, array).as_ref()[..16]);
    out
}

fn lb_initial(ctx: &mut Ctx) -> Result<(), String> {
    if !lb_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    let (status, body) = ch.ctap(0x0c, Some(&imap(vec![(1, int(1024)), (3, int(0))])))?;
    expect_status(status, 0)?;
    let data = get(body.as_ref().ok_or("no body")?, 1)
        .and_then(Value::as_bytes)
        .ok_or("no config")?;
    ensure!(
        *data == serialized(&[0x80]),
        "initial array is not the empty serialized array"
    );
    Ok(())
}

fn lb_write_read(ctx: &mut Ctx) -> Result<(), String> {
    if !lb_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    let array = encode(&Value::Array(vec![imap(vec![
        (1, bytes(&[9; 40])),
        (2, bytes(&[1; 12])),
        (3, int(40)),
    ])]));
    let blob = serialized(&array);
    let (first, rest) = blob.split_at(30);
    expect_status(
        ch.ctap(
            0x0c,
            Some(&imap(vec![
                (2, bytes(first)),
                (3, int(0)),
                (4, int(i64::try_from(blob.len()).unwrap_or(0))),
            ])),
        )?
        .0,
        0,
    )?;
    expect_status(
        ch.ctap(0x0c, Some(&imap(vec![(2, bytes(rest)), (3, int(30))])))?
            .0,
        0,
    )?;
    let (status, body) = ch.ctap(0x0c, Some(&imap(vec![(1, int(20)), (3, int(10))])))?;
    expect_status(status, 0)?;
    let part = get(body.as_ref().ok_or("no body")?, 1)
        .and_then(Value::as_bytes)
        .ok_or("no config")?;
    ensure!(*part == blob[10..30], "fragmented read differs");
    Ok(())
}

fn lb_integrity(ctx: &mut Ctx) -> Result<(), String> {
    if !lb_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    let mut blob = serialized(&[0x80]);
    blob[5] ^= 1;
    let (status, _) = ch.ctap(
        0x0c,
        Some(&imap(vec![(2, bytes(&blob)), (3, int(0)), (4, int(17))])),
    )?;
    expect_status(status, 0x3d)
}

fn lb_too_large(ctx: &mut Ctx) -> Result<(), String> {
    if !lb_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let max = as_int(get(&ctx.info()?, 11)).unwrap_or(1024);
    let mut ch = fresh(ctx)?;
    let (status, _) = ch.ctap(
        0x0c,
        Some(&imap(vec![
            (2, bytes(&[0x80])),
            (3, int(0)),
            (4, int(i64::try_from(max + 1).unwrap_or(i64::MAX))),
        ])),
    )?;
    expect_status(status, 0x18)
}

fn lb_bad_offset(ctx: &mut Ctx) -> Result<(), String> {
    if !lb_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(
        ch.ctap(
            0x0c,
            Some(&imap(vec![
                (2, bytes(&[0x80; 10])),
                (3, int(0)),
                (4, int(40)),
            ])),
        )?
        .0,
        0,
    )?;
    expect_status(
        ch.ctap(
            0x0c,
            Some(&imap(vec![(2, bytes(&[0x80; 10])), (3, int(20))])),
        )?
        .0,
        0x04,
    )
}

fn lb_get_and_set(ctx: &mut Ctx) -> Result<(), String> {
    if !lb_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (status, _) = ctx.channel()?.ctap(
        0x0c,
        Some(&imap(vec![(1, int(10)), (2, bytes(&[0])), (3, int(0))])),
    )?;
    expect_status(status, 0x02)
}

fn lb_needs_token_with_pin(ctx: &mut Ctx) -> Result<(), String> {
    if !lb_supported(ctx)? || ctx.option("clientPin")?.is_none() {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    let blob = serialized(&[0x80]);
    let (status, _) = ch.ctap(
        0x0c,
        Some(&imap(vec![(2, bytes(&blob)), (3, int(0)), (4, int(17))])),
    )?;
    expect_status(status, 0x36)?;
    let t = token(&mut ch, 2, PIN, Some(0x10), None)?.map_err(|s| format!("token 0x{s:02x}"))?;
    let mut message = vec![0xff; 32];
    message.extend_from_slice(&[0x0c, 0x00, 0, 0, 0, 0]);
    message.extend_from_slice(digest::digest(&digest::SHA256, &blob).as_ref());
    let auth = authenticate(2, &t, &message);
    let (status, _) = ch.ctap(
        0x0c,
        Some(&imap(vec![
            (2, bytes(&blob)),
            (3, int(0)),
            (4, int(17)),
            (5, bytes(&auth)),
            (6, int(2)),
        ])),
    )?;
    expect_status(status, 0)
}

fn config_supported(ctx: &mut Ctx) -> Result<bool, String> {
    Ok(ctx.option("authnrCfg")? == Some(true))
}

fn cfg_min_pin_length(ctx: &mut Ctx) -> Result<(), String> {
    if !config_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    let (status, _) = ch.ctap(
        0x0d,
        Some(&imap(vec![(1, int(3)), (2, imap(vec![(1, int(6))]))])),
    )?;
    expect_status(status, 0)?;
    ctx.info = None;
    ensure!(
        as_int(get(&ctx.info()?, 13)) == Some(6),
        "minPINLength not 6"
    );
    ensure!(
        set_pin(&mut ch, 2, "12345")? == 0x37,
        "a 5-digit PIN accepted with minimum 6"
    );
    let (status, _) = ch.ctap(
        0x0d,
        Some(&imap(vec![(1, int(3)), (2, imap(vec![(1, int(4))]))])),
    )?;
    expect_status(status, 0x37)
}

fn cfg_always_uv(ctx: &mut Ctx) -> Result<(), String> {
    if !config_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    let before = ctx.option("alwaysUv")?.unwrap_or(false);
    expect_status(ch.ctap(0x0d, Some(&imap(vec![(1, int(2))])))?.0, 0)?;
    ctx.info = None;
    ensure!(
        ctx.option("alwaysUv")? == Some(!before),
        "alwaysUv did not flip"
    );
    Ok(())
}

fn cfg_enterprise(ctx: &mut Ctx) -> Result<(), String> {
    if !config_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let info = ctx.info()?;
    if get(&info, 4).and_then(|o| tget(o, "ep")).is_some() {
        return Ok(()); // Enterprise attestation is offered; nothing to refuse.
    }
    let mut ch = fresh(ctx)?;
    let (status, _) = ch.ctap(0x0d, Some(&imap(vec![(1, int(1))])))?;
    ensure!(
        status == 0x3e || status == 0x01,
        "enableEnterpriseAttestation not refused (0x{status:02x})"
    );
    Ok(())
}

fn cfg_unknown_sub(ctx: &mut Ctx) -> Result<(), String> {
    if !config_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(ch.ctap(0x0d, Some(&imap(vec![(1, int(0x33))])))?.0, 0x3e)
}

fn cfg_needs_token_with_pin(ctx: &mut Ctx) -> Result<(), String> {
    if !config_supported(ctx)? || ctx.option("clientPin")?.is_none() {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    expect_status(ch.ctap(0x0d, Some(&imap(vec![(1, int(2))])))?.0, 0x36)?;
    let t = token(&mut ch, 2, PIN, Some(0x20), None)?.map_err(|s| format!("token 0x{s:02x}"))?;
    let mut message = vec![0xff; 32];
    message.extend_from_slice(&[0x0d, 0x02]);
    let auth = authenticate(2, &t, &message);
    expect_status(
        ch.ctap(
            0x0d,
            Some(&imap(vec![(1, int(2)), (3, int(2)), (4, bytes(&auth))])),
        )?
        .0,
        0,
    )
}

fn pin_retries(ch: &mut Channel) -> Result<Option<i128>, String> {
    let (status, body) = ch.ctap(0x06, Some(&imap(vec![(1, int(2)), (2, int(1))])))?;
    expect_status(status, 0)?;
    Ok(as_int(get(body.as_ref().ok_or("no body")?, 3)))
}

/// CTAP 2.1 §6.5.5.7: with forcePINChange set, the correct PIN is checked (retries reset) and
/// then refused with PIN_INVALID, by getPinToken and by getPinUvAuthTokenUsingPinWithPermissions.
fn cfg_force_pin_change(ctx: &mut Ctx) -> Result<(), String> {
    if !config_supported(ctx)? || ctx.option("clientPin")?.is_none() {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    let t = token(&mut ch, 2, PIN, Some(0x20), None)?.map_err(|s| format!("token 0x{s:02x}"))?;
    let sub_params = imap(vec![(3, Value::Bool(true))]);
    let mut message = vec![0xff; 32];
    message.extend_from_slice(&[0x0d, 0x03]);
    message.extend(encode(&sub_params));
    let auth = authenticate(2, &t, &message);
    let req = imap(vec![
        (1, int(3)),
        (2, sub_params),
        (3, int(2)),
        (4, bytes(&auth)),
    ]);
    expect_status(ch.ctap(0x0d, Some(&req))?.0, 0)?;
    ctx.info = None;
    ensure!(
        get(&ctx.info()?, 12) == Some(&Value::Bool(true)),
        "forcePINChange not true in getInfo"
    );
    ensure!(
        token(&mut ch, 2, "000000", None, None)? == Err(0x31),
        "a wrong PIN is not PIN_INVALID"
    );
    ensure!(
        pin_retries(&mut ch)? == Some(7),
        "a wrong PIN cost no retry"
    );
    let got = token(&mut ch, 2, PIN, None, None)?;
    ensure!(
        got == Err(0x31),
        "getPinToken with the right PIN under forcePINChange: {got:?}, not PIN_INVALID"
    );
    ensure!(
        pin_retries(&mut ch)? == Some(8),
        "the right PIN did not reset the retries"
    );
    let got = token(&mut ch, 2, PIN, Some(0x01), None)?;
    ensure!(
        got == Err(0x31),
        "getPinUvAuthTokenUsingPinWithPermissions under forcePINChange: {got:?}, not PIN_INVALID"
    );
    Ok(())
}

/// The management checks.
pub fn checks() -> Vec<Check> {
    checks![
        (
            "cm-01",
            "getCredsMetadata counts discoverable credentials",
            BOTH,
            cm_metadata
        ),
        (
            "cm-02",
            "enumerate RPs and credentials, then NOT_ALLOWED past the end",
            BOTH,
            cm_enumerate
        ),
        (
            "cm-03",
            "deleteCredential removes it; again is NO_CREDENTIALS",
            BOTH,
            cm_delete
        ),
        (
            "cm-04",
            "updateUserInformation; a different user id is INVALID_PARAMETER",
            BOTH,
            cm_update
        ),
        (
            "cm-05",
            "credentialManagement without a token is PUAT_REQUIRED",
            PRESENCE,
            cm_needs_token
        ),
        (
            "cm-06",
            "a token without cm is PIN_AUTH_INVALID",
            BOTH,
            cm_wrong_permission
        ),
        (
            "cm-07",
            "enumerateRPsGetNextRP without begin is NOT_ALLOWED",
            PRESENCE,
            cm_next_without_begin
        ),
        (
            "lb-01",
            "the initial large-blob array is the empty serialized array",
            BOTH,
            lb_initial
        ),
        (
            "lb-02",
            "a fragmented write reads back byte for byte",
            BOTH,
            lb_write_read
        ),
        (
            "lb-03",
            "a bad checksum is INTEGRITY_FAILURE",
            BOTH,
            lb_integrity
        ),
        (
            "lb-04",
            "a length over maxSerializedLargeBlobArray is LARGE_BLOB_STORAGE_FULL",
            BOTH,
            lb_too_large
        ),
        (
            "lb-05",
            "a fragment at the wrong offset is INVALID_SEQ",
            BOTH,
            lb_bad_offset
        ),
        (
            "lb-06",
            "get and set together are INVALID_PARAMETER",
            PRESENCE,
            lb_get_and_set
        ),
        (
            "lb-07",
            "with a PIN, writes need an lbw token",
            BOTH,
            lb_needs_token_with_pin
        ),
        (
            "cfg-01",
            "setMinPINLength raises the minimum and never lowers it",
            BOTH,
            cfg_min_pin_length
        ),
        (
            "cfg-02",
            "toggleAlwaysUv flips alwaysUv in getInfo",
            BOTH,
            cfg_always_uv
        ),
        (
            "cfg-03",
            "enableEnterpriseAttestation is refused when ep is not offered",
            BOTH,
            cfg_enterprise
        ),
        (
            "cfg-04",
            "an unknown config subCommand is INVALID_SUBCOMMAND",
            BOTH,
            cfg_unknown_sub
        ),
        (
            "cfg-05",
            "with a PIN, config needs an acfg token",
            BOTH,
            cfg_needs_token_with_pin
        ),
        (
            "cfg-06",
            "forcePINChange: the right PIN resets the retries but is PIN_INVALID",
            BOTH,
            cfg_force_pin_change
        ),
    ]
}
