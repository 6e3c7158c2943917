//! authenticatorMakeCredential checks (CTAP 2.1 §6.1).

use aws_lc_rs::digest;
use ciborium::value::Value;

use super::checks;
use crate::cbor::{as_int, bytes, get, int, text, tget, tmap};
use crate::needs::PRESENCE;
use crate::{Check, Ctx, ensure, expect_status, make, mc_request, parse_made, verify};

/// Sends `request(rp)` as command `cmd` and expects `status`.
macro_rules! status_check {
    ($fname:ident, $cmd:expr, $request:expr, $status:expr) => {
        pub(super) fn $fname(ctx: &mut Ctx) -> Result<(), String> {
            let rp = ctx.rp();
            let build: fn(&str) -> Value = $request;
            let (status, _) = ctx.channel()?.ctap($cmd, Some(&build(&rp)))?;
            expect_status(status, $status)
        }
    };
}
pub(crate) use status_check;

/// Like `status_check!` with raw request bytes.
macro_rules! raw_check {
    ($fname:ident, $bytes:expr, $status:expr) => {
        pub(super) fn $fname(ctx: &mut Ctx) -> Result<(), String> {
            let (status, _) = ctx.channel()?.ctap_raw(&$bytes)?;
            expect_status(status, $status)
        }
    };
}
pub(crate) use raw_check;

mod malformed;

use malformed::*;

fn none_attestation(ctx: &mut Ctx) -> Result<(), String> {
    let made = make(&mut ctx.channel()?, &ctx.rp(), b"u", false, vec![])?;
    let fmt = get(&made.response, 1)
        .and_then(Value::as_text)
        .unwrap_or("");
    let stmt = get(&made.response, 3).ok_or("no attStmt")?;
    if fmt == "none" {
        ensure!(
            matches!(stmt, Value::Map(m) if m.is_empty()),
            "none attestation with a non-empty statement"
        );
    } else {
        ensure!(fmt == "packed", "unexpected format {fmt}");
    }
    Ok(())
}

/// CTAP 2.2 attestationFormatsPreference: a client that prefers `none` gets it, whatever the
/// authenticator's default (security keys self-attest by default).
fn none_on_request(ctx: &mut Ctx) -> Result<(), String> {
    let made = make(
        &mut ctx.channel()?,
        &ctx.rp(),
        b"u",
        false,
        vec![(0x0b, Value::Array(vec![text("none"), text("packed")]))],
    )?;
    let fmt = get(&made.response, 1).and_then(Value::as_text);
    ensure!(
        fmt == Some("none"),
        "format {fmt:?} instead of the preferred none"
    );
    ensure!(
        matches!(get(&made.response, 3), Some(Value::Map(m)) if m.is_empty()),
        "none attestation with a non-empty statement"
    );
    Ok(())
}

fn packed_on_request(ctx: &mut Ctx) -> Result<(), String> {
    let made = make(
        &mut ctx.channel()?,
        &ctx.rp(),
        b"u",
        false,
        vec![(0x0b, Value::Array(vec![text("packed")]))],
    )?;
    ensure!(
        get(&made.response, 1).and_then(Value::as_text) == Some("packed"),
        "packed was not chosen"
    );
    let stmt = get(&made.response, 3).ok_or("no attStmt")?;
    ensure!(
        as_int(tget(stmt, "alg")) == Some(-7),
        "attStmt alg is not -7"
    );
    let sig = tget(stmt, "sig")
        .and_then(Value::as_bytes)
        .ok_or("no sig")?;
    if tget(stmt, "x5c").is_none() {
        ensure!(
            verify(&made.public_key, &made.auth_data, &[0x11; 32], sig),
            "self-attestation signature does not verify"
        );
    }
    Ok(())
}

fn auth_data_layout(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let made = make(&mut ctx.channel()?, &rp, b"u", false, vec![])?;
    let d = &made.auth_data;
    ensure!(
        d[..32] == *digest::digest(&digest::SHA256, rp.as_bytes()).as_ref(),
        "rpIdHash is not SHA-256(rp.id)"
    );
    ensure!(d[32] & 0x41 == 0x41, "flags 0x{:02x} lack UP|AT", d[32]);
    ensure!(d[32] & 0x04 == 0, "UV set without user verification");
    ensure!(
        d[32] & 0x80 == 0,
        "ED set although no extension was requested"
    );
    ensure!(d[32] & 0x22 == 0, "reserved flag bits set: 0x{:02x}", d[32]);
    let info = ctx.info()?;
    let aaguid = get(&info, 3).and_then(Value::as_bytes).ok_or("no aaguid")?;
    ensure!(
        &d[37..53] == aaguid.as_slice(),
        "attested AAGUID differs from getInfo"
    );
    Ok(())
}

fn cose_key(ctx: &mut Ctx) -> Result<(), String> {
    let made = make(&mut ctx.channel()?, &ctx.rp(), b"u", false, vec![])?;
    let start = 55usize.saturating_add(made.id.len());
    let encoded = made
        .auth_data
        .get(start..)
        .ok_or("authData ends before the credential public key")?;
    let mut reader = encoded;
    let key: Value = ciborium::de::from_reader(&mut reader).map_err(|e| e.to_string())?;
    // Without extensions the COSE key is the last item of authData (§6.1, WebAuthn §6.5.1).
    ensure!(
        reader.is_empty(),
        "{} bytes follow the COSE key although ED is clear",
        reader.len()
    );
    ensure!(
        crate::cbor::encode(&key) == encoded,
        "the COSE key is not canonical CBOR"
    );
    let Value::Map(entries) = &key else {
        return Err("the COSE key is not a map".into());
    };
    ensure!(
        entries.len() == 5,
        "the COSE key has {} entries, expected exactly kty, alg, crv, x, y",
        entries.len()
    );
    ensure!(as_int(get(&key, 1)) == Some(2), "kty is not EC2");
    ensure!(as_int(get(&key, 3)) == Some(-7), "alg is not ES256");
    ensure!(as_int(get(&key, -1)) == Some(1), "crv is not P-256");
    for (label, name) in [(-2, "x"), (-3, "y")] {
        let n = get(&key, label).and_then(Value::as_bytes).map(Vec::len);
        ensure!(n == Some(32), "{name} is {n:?} bytes, expected 32");
    }
    aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &made.public_key,
    )
    .map_err(|e| format!("x, y is not a point on P-256: {e}"))?;
    Ok(())
}

fn id_length(ctx: &mut Ctx) -> Result<(), String> {
    let made = make(&mut ctx.channel()?, &ctx.rp(), b"u", false, vec![])?;
    let info = ctx.info()?;
    if let Some(max) = as_int(get(&info, 8)) {
        ensure!(
            i128::try_from(made.id.len()).unwrap_or(i128::MAX) <= max,
            "credential ID longer than maxCredentialIdLength"
        );
    }
    Ok(())
}

fn counter_then_assertion(ctx: &mut Ctx) -> Result<(), String> {
    // A fresh credential's counter is whatever the authenticator's counter scheme gives
    // (0 for per-credential counters, a global value otherwise); the next assertion's counter
    // must be greater, unless the authenticator implements no counter at all (always 0).
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(&mut ch, &rp, b"u", false, vec![])?;
    let at_creation = made
        .auth_data
        .get(33..37)
        .and_then(|c| <[u8; 4]>::try_from(c).ok())
        .map(u32::from_be_bytes)
        .ok_or("short authData")?;
    let (status, body) = ch.ctap(0x02, Some(&crate::ga_request(&rp, &[&made.id], vec![])))?;
    expect_status(status, 0)?;
    let body = body.ok_or("getAssertion returned no body")?;
    let after = get(&body, 2)
        .and_then(Value::as_bytes)
        .and_then(|d| d.get(33..37))
        .and_then(|c| <[u8; 4]>::try_from(c).ok())
        .map(u32::from_be_bytes)
        .ok_or("assertion authData too short")?;
    ensure!(
        after > at_creation || (at_creation == 0 && after == 0),
        "counter {at_creation} at creation, {after} at the next assertion"
    );
    Ok(())
}

fn not_resident_not_discoverable(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    make(&mut ch, &rp, b"server-side", false, vec![])?;
    let (status, _) = ch.ctap(0x02, Some(&crate::ga_request(&rp, &[], vec![])))?;
    expect_status(status, 0x2e).map_err(|e| format!("rk=false credential discovered: {e}"))
}

fn algorithm_preference(ctx: &mut Ctx) -> Result<(), String> {
    // §6.1.2 step 3: the first supported algorithm in the client's order wins; unsupported
    // ones before it are skipped.
    let params = Value::Array(vec![
        tmap(vec![("alg", int(-65535)), ("type", text("public-key"))]),
        tmap(vec![("alg", int(-7)), ("type", text("public-key"))]),
        tmap(vec![("alg", int(-8)), ("type", text("public-key"))]),
    ]);
    let made = make(
        &mut ctx.channel()?,
        &ctx.rp(),
        b"u",
        false,
        vec![(4, params)],
    )?;
    let start = 55usize.saturating_add(made.id.len());
    let mut reader = made.auth_data.get(start..).ok_or("no COSE key")?;
    let key: Value = ciborium::de::from_reader(&mut reader).map_err(|e| e.to_string())?;
    ensure!(
        as_int(get(&key, 3)) == Some(-7),
        "chose alg {:?} instead of ES256",
        as_int(get(&key, 3))
    );
    Ok(())
}

fn exclude_list_unknown_id(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let list = Value::Array(vec![tmap(vec![
        ("id", bytes(&[0x5a; 48])),
        ("type", text("public-key")),
    ])]);
    let made = make(&mut ctx.channel()?, &rp, b"u", false, vec![(5, list)])?;
    ensure!(
        made.id != [0x5a; 48],
        "the new credential reuses the excluded ID"
    );
    Ok(())
}

fn packed_statement_shape(ctx: &mut Ctx) -> Result<(), String> {
    // Self attestation (no x5c): attStmt is exactly {alg, sig} and alg equals the credential's
    // algorithm (WebAuthn §8.2).
    let made = make(
        &mut ctx.channel()?,
        &ctx.rp(),
        b"u",
        false,
        vec![(0x0b, Value::Array(vec![text("packed")]))],
    )?;
    let stmt = get(&made.response, 3).ok_or("no attStmt")?;
    let Value::Map(entries) = stmt else {
        return Err("attStmt is not a map".into());
    };
    if tget(stmt, "x5c").is_some() {
        return Err(crate::skip(
            "the target uses full attestation (x5c); self-attestation shape not applicable",
        ));
    }
    let keys: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_text()).collect();
    ensure!(
        keys == ["alg", "sig"],
        "self attestation statement keys {keys:?}, expected [alg, sig]"
    );
    let sig = tget(stmt, "sig")
        .and_then(Value::as_bytes)
        .ok_or("no sig")?;
    // The signature is over authData || clientDataHash: the wrong hash must not verify.
    ensure!(
        !verify(&made.public_key, &made.auth_data, &[0x12; 32], sig),
        "the attestation signature also verifies over a different clientDataHash"
    );
    ensure!(
        verify(&made.public_key, &made.auth_data, &[0x11; 32], sig),
        "self-attestation signature does not verify"
    );
    Ok(())
}

fn resident_discoverable(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(&mut ch, &rp, b"resident", true, vec![])?;
    let (status, body) = ch.ctap(0x02, Some(&crate::ga_request(&rp, &[], vec![])))?;
    expect_status(status, 0)?;
    let body = body.ok_or("no body")?;
    let cred = get(&body, 1)
        .and_then(|c| tget(c, "id"))
        .and_then(Value::as_bytes)
        .ok_or("no credential")?;
    ensure!(*cred == made.id, "discovered a different credential");
    Ok(())
}

fn exclude_list(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let made = make(&mut ch, &rp, b"u", false, vec![])?;
    let list = Value::Array(vec![tmap(vec![
        ("id", bytes(&made.id)),
        ("type", text("public-key")),
    ])]);
    let (status, _) = ch.ctap(
        0x01,
        Some(&mc_request(&rp, b"u", false, vec![(5, list.clone())])),
    )?;
    expect_status(status, 0x19)?;
    let other = format!("other.{rp}");
    let (status, _) = ch.ctap(
        0x01,
        Some(&mc_request(&other, b"u", false, vec![(5, list)])),
    )?;
    expect_status(status, 0).map_err(|e| format!("excludeList matched across RPs: {e}"))
}

fn unknown_extension_ignored(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let (status, body) = ctx.channel()?.ctap(
        0x01,
        Some(&mc_request(
            &rp,
            b"u",
            false,
            vec![(6, tmap(vec![("x-unknown", Value::Bool(true))]))],
        )),
    )?;
    expect_status(status, 0)?;
    let made = parse_made(body.ok_or("no body")?)?;
    ensure!(
        made.auth_data[32] & 0x80 == 0,
        "an ignored extension produced extension data"
    );
    Ok(())
}

fn unknown_option_ignored(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    make(
        &mut ctx.channel()?,
        &rp,
        b"u",
        false,
        vec![(7, tmap(vec![("x-opt", Value::Bool(true))]))],
    )?;
    Ok(())
}

fn cred_protect_echo(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let made = make(
        &mut ctx.channel()?,
        &rp,
        b"u",
        true,
        vec![(6, tmap(vec![("credProtect", int(2))]))],
    )?;
    ensure!(made.auth_data[32] & 0x80 != 0, "no extension data");
    let start = 55usize.saturating_add(made.id.len());
    let mut reader = made.auth_data.get(start..).ok_or("no COSE key")?;
    let _key: Value = ciborium::de::from_reader(&mut reader).map_err(|e| e.to_string())?;
    let extensions = crate::cbor::decode(reader)
        .map_err(|e| format!("extension outputs after the COSE key: {e}"))?;
    ensure!(
        as_int(tget(&extensions, "credProtect")) == Some(2),
        "extension outputs {extensions:?} lack credProtect: 2"
    );
    Ok(())
}

fn uv_option_without_uv(ctx: &mut Ctx) -> Result<(), String> {
    if ctx.option("uv")?.is_some() {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let (status, _) = ctx.channel()?.ctap(
        0x01,
        Some(&mc_request(
            &rp,
            b"u",
            false,
            vec![(7, tmap(vec![("uv", Value::Bool(true))]))],
        )),
    )?;
    ensure!(
        status == 0x2c || status == 0x2b,
        "expected INVALID_OPTION, got 0x{status:02x}"
    );
    Ok(())
}

fn rk_same_user_replaced(ctx: &mut Ctx) -> Result<(), String> {
    // §6.1.2: a discoverable credential for the same rp.id and user.id overwrites the old one.
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let old = make(&mut ch, &rp, b"same-user", true, vec![])?;
    let new = make(&mut ch, &rp, b"same-user", true, vec![])?;
    ensure!(
        old.id != new.id,
        "the second credential reuses the first ID"
    );
    let (status, body) = ch.ctap(0x02, Some(&crate::ga_request(&rp, &[], vec![])))?;
    expect_status(status, 0)?;
    let body = body.ok_or("getAssertion returned no body")?;
    let count = as_int(get(&body, 5)).unwrap_or(1);
    ensure!(
        count == 1,
        "{count} discoverable credentials for one user (the old one was not replaced)"
    );
    let id = get(&body, 1)
        .and_then(|c| tget(c, "id"))
        .and_then(Value::as_bytes)
        .ok_or("no credential")?;
    ensure!(*id == new.id, "discovery returned the replaced credential");
    Ok(())
}

fn exclude_list_skips_uv_required(ctx: &mut Ctx) -> Result<(), String> {
    // §6.1.2 step 7: without UV, an excluded credential whose credProtect is
    // userVerificationRequired (3) is removed from the excludeList, so creation proceeds
    // (its existence is not revealed).
    if ctx.option("uv")? == Some(true) {
        return Err(crate::skip("the target verifies users by itself"));
    }
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let hidden = make(
        &mut ch,
        &rp,
        b"hidden",
        true,
        vec![(6, tmap(vec![("credProtect", int(3))]))],
    )?;
    let list = Value::Array(vec![tmap(vec![
        ("id", bytes(&hidden.id)),
        ("type", text("public-key")),
    ])]);
    let (status, _) = ch.ctap(
        0x01,
        Some(&mc_request(&rp, b"other", false, vec![(5, list)])),
    )?;
    expect_status(status, 0)
        .map_err(|e| format!("a credProtect=3 credential was revealed without UV: {e}"))
}

fn request_of_max_msg_size(ctx: &mut Ctx) -> Result<(), String> {
    // getInfo maxMsgSize (default 1024, §6.4) bounds what the authenticator must accept: a
    // makeCredential of exactly that size (padded with an unknown, hence ignored, extension)
    // succeeds.
    let info = ctx.info()?;
    let max = as_int(get(&info, 5)).unwrap_or(1024);
    let max = usize::try_from(max).map_err(|_| format!("maxMsgSize {max} out of range"))?;
    ensure!(
        max <= 7609,
        "maxMsgSize {max} exceeds the CTAPHID maximum message of 7609 bytes"
    );
    let rp = ctx.rp();
    let build = |pad: usize| {
        mc_request(
            &rp,
            b"u",
            false,
            vec![(6, tmap(vec![("x-pad", bytes(&vec![0x70; pad]))]))],
        )
    };
    let base = 1 + crate::cbor::encode(&build(0)).len();
    ensure!(
        base < max,
        "a minimal request already exceeds maxMsgSize {max}"
    );
    // The byte string's header grows by one or two bytes with its length: settle the padding.
    let mut pad = max - base;
    while pad > 0 && 1 + crate::cbor::encode(&build(pad)).len() > max {
        pad -= 1;
    }
    let request = build(pad);
    let size = 1 + crate::cbor::encode(&request).len();
    if size != max {
        return Err(crate::skip(&format!(
            "cannot pad a request to exactly {max} bytes (got {size})"
        )));
    }
    let (status, body) = ctx.channel()?.ctap(0x01, Some(&request))?;
    expect_status(status, 0).map_err(|e| format!("a {size}-byte request: {e}"))?;
    parse_made(body.ok_or("makeCredential returned no body")?)?;
    Ok(())
}

/// The makeCredential checks.
pub fn checks() -> Vec<Check> {
    checks![
        (
            "mc-01",
            "default attestation is packed self-attestation (or none with an empty statement)",
            PRESENCE,
            none_attestation
        ),
        (
            "mc-02",
            "packed attestation on request verifies",
            PRESENCE,
            packed_on_request
        ),
        (
            "mc-03",
            "authData: rpIdHash, UP|AT, no UV, AAGUID from getInfo",
            PRESENCE,
            auth_data_layout
        ),
        (
            "mc-04",
            "credential public key: canonical EC2 COSE key, ES256, P-256, valid 32-byte x, y",
            PRESENCE,
            cose_key
        ),
        (
            "mc-05",
            "credential ID within maxCredentialIdLength",
            PRESENCE,
            id_length
        ),
        (
            "mc-06",
            "the next assertion's counter exceeds the creation counter",
            PRESENCE,
            counter_then_assertion
        ),
        (
            "mc-07",
            "a resident credential is discoverable",
            PRESENCE,
            resident_discoverable
        ),
        (
            "mc-08",
            "excludeList is CREDENTIAL_EXCLUDED, only for the same RP",
            PRESENCE,
            exclude_list
        ),
        (
            "mc-09",
            "unknown extensions are ignored",
            PRESENCE,
            unknown_extension_ignored
        ),
        (
            "mc-10",
            "unknown options are ignored",
            PRESENCE,
            unknown_option_ignored
        ),
        (
            "mc-11",
            "credProtect 2 is echoed in the authData extension outputs",
            PRESENCE,
            cred_protect_echo
        ),
        (
            "mc-12",
            "uv=true without built-in UV is INVALID_OPTION",
            PRESENCE,
            uv_option_without_uv
        ),
        (
            "mc-13",
            "zero-length pinUvAuthParam without a PIN is PIN_NOT_SET",
            PRESENCE,
            zero_length_pin_auth
        ),
        (
            "mc-14",
            "missing clientDataHash is MISSING_PARAMETER",
            PRESENCE,
            missing_cdh
        ),
        (
            "mc-15",
            "missing rp is MISSING_PARAMETER",
            PRESENCE,
            missing_rp
        ),
        (
            "mc-16",
            "missing user is MISSING_PARAMETER",
            PRESENCE,
            missing_user
        ),
        (
            "mc-17",
            "missing pubKeyCredParams is MISSING_PARAMETER",
            PRESENCE,
            missing_params
        ),
        (
            "mc-18",
            "clientDataHash as text is CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            cdh_is_text
        ),
        (
            "mc-19",
            "rp.id as an integer is CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            rp_id_is_int
        ),
        (
            "mc-20",
            "user.id as text is CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            user_id_is_text
        ),
        (
            "mc-21",
            "only RS256 offered is UNSUPPORTED_ALGORITHM",
            PRESENCE,
            only_rs256
        ),
        (
            "mc-22",
            "no algorithm offered is UNSUPPORTED_ALGORITHM",
            PRESENCE,
            empty_params
        ),
        (
            "mc-23",
            "a parameter without alg is MISSING_PARAMETER",
            PRESENCE,
            param_without_alg
        ),
        ("mc-24", "up=false is INVALID_OPTION", PRESENCE, up_false),
        (
            "mc-25",
            "a non-boolean option is CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            option_not_bool
        ),
        (
            "mc-26",
            "excludeList not an array is CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            exclude_not_array
        ),
        (
            "mc-27",
            "excludeList item without id is MISSING_PARAMETER",
            PRESENCE,
            exclude_item_without_id
        ),
        (
            "mc-28",
            "pinUvAuthParam without protocol is MISSING_PARAMETER",
            PRESENCE,
            pin_auth_without_protocol
        ),
        (
            "mc-29",
            "an unknown pinUvAuthProtocol is INVALID_PARAMETER",
            PRESENCE,
            pin_protocol_unknown
        ),
        (
            "mc-30",
            "extensions not a map is CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            extensions_not_map
        ),
        (
            "mc-31",
            "truncated CBOR is INVALID_CBOR",
            PRESENCE,
            truncated
        ),
        (
            "mc-32",
            "unsorted map keys are INVALID_CBOR",
            PRESENCE,
            unsorted
        ),
        (
            "mc-33",
            "an indefinite-length map is INVALID_CBOR",
            PRESENCE,
            indefinite
        ),
        (
            "mc-34",
            "trailing bytes are INVALID_CBOR",
            PRESENCE,
            trailing
        ),
        (
            "mc-35",
            "parameters that are not a map are CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            not_a_map
        ),
        (
            "mc-36",
            "a non-shortest integer is INVALID_CBOR",
            PRESENCE,
            non_shortest_int
        ),
        (
            "mc-37",
            "an rk=false credential is not discoverable",
            PRESENCE,
            not_resident_not_discoverable
        ),
        (
            "mc-38",
            "the first supported algorithm in pubKeyCredParams is chosen",
            PRESENCE,
            algorithm_preference
        ),
        (
            "mc-39",
            "an excludeList of unknown IDs does not prevent creation",
            PRESENCE,
            exclude_list_unknown_id
        ),
        (
            "mc-40",
            "packed self attestation: attStmt is exactly {alg, sig} over authData || clientDataHash",
            PRESENCE,
            packed_statement_shape
        ),
        (
            "mc-41",
            "rp without id is MISSING_PARAMETER",
            PRESENCE,
            rp_without_id
        ),
        (
            "mc-42",
            "user without id is MISSING_PARAMETER",
            PRESENCE,
            user_without_id
        ),
        (
            "mc-43",
            "a text alg is CBOR_UNEXPECTED_TYPE",
            PRESENCE,
            alg_is_text
        ),
        (
            "mc-44",
            "a discoverable credential for the same user replaces the old one",
            PRESENCE,
            rk_same_user_replaced
        ),
        (
            "mc-45",
            "excludeList ignores a credProtect=3 credential without UV",
            PRESENCE,
            exclude_list_skips_uv_required
        ),
        (
            "mc-46",
            "a request of exactly maxMsgSize bytes is accepted",
            PRESENCE,
            request_of_max_msg_size
        ),
        (
            "mc-47",
            "attestationFormatsPreference [none, packed] gives none",
            PRESENCE,
            none_on_request
        ),
    ]
}
