//! authenticatorGetInfo checks (CTAP 2.1 §6.4).

use ciborium::value::Value;

use super::checks;
use crate::cbor::{as_int, get};
use crate::needs::NOTHING;
use crate::{Check, Ctx, ensure, expect_status};

fn texts(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_text().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn versions(ctx: &mut Ctx) -> Result<(), String> {
    let info = ctx.info()?;
    let v = texts(get(&info, 1));
    ensure!(
        v.iter().any(|x| x == "FIDO_2_1"),
        "versions {v:?} lack FIDO_2_1"
    );
    ensure!(
        v.iter().any(|x| x == "FIDO_2_0"),
        "versions {v:?} lack FIDO_2_0"
    );
    Ok(())
}

fn aaguid(ctx: &mut Ctx) -> Result<(), String> {
    let info = ctx.info()?;
    let a = get(&info, 3).and_then(Value::as_bytes).ok_or("no aaguid")?;
    ensure!(a.len() == 16, "aaguid is {} bytes", a.len());
    Ok(())
}

fn options_are_bools(ctx: &mut Ctx) -> Result<(), String> {
    let info = ctx.info()?;
    let Some(Value::Map(options)) = get(&info, 4) else {
        return Err("options missing or not a map".into());
    };
    for (k, v) in options {
        ensure!(
            k.is_text() && v.is_bool(),
            "option {k:?} = {v:?} is not text → bool"
        );
    }
    Ok(())
}

fn max_msg_size(ctx: &mut Ctx) -> Result<(), String> {
    let info = ctx.info()?;
    let n = as_int(get(&info, 5)).unwrap_or(1024);
    ensure!(n >= 1024, "maxMsgSize {n} < 1024");
    Ok(())
}

fn es256(ctx: &mut Ctx) -> Result<(), String> {
    let info = ctx.info()?;
    let Some(Value::Array(algs)) = get(&info, 10) else {
        return Ok(()); // Absent means ES256 only (§6.4).
    };
    let has = algs
        .iter()
        .any(|a| as_int(crate::cbor::tget(a, "alg")) == Some(-7));
    ensure!(has, "algorithms lack ES256");
    Ok(())
}

fn with_body(ctx: &mut Ctx) -> Result<(), String> {
    let (status, _) = ctx.channel()?.ctap_raw(&[0x04, 0xa0])?;
    ensure!(status != 0, "getInfo with a parameter map was accepted");
    Ok(())
}

fn protocols_with_pin(ctx: &mut Ctx) -> Result<(), String> {
    let info = ctx.info()?;
    if ctx.option("clientPin")?.is_some() || ctx.option("uv")?.is_some() {
        let Some(Value::Array(p)) = get(&info, 6) else {
            return Err("clientPin/uv advertised without pinUvAuthProtocols".into());
        };
        ensure!(!p.is_empty(), "empty pinUvAuthProtocols");
        ensure!(
            p.iter().all(|x| matches!(as_int(Some(x)), Some(1 | 2))),
            "unknown protocol in {p:?}"
        );
    }
    Ok(())
}

fn extensions_texts(ctx: &mut Ctx) -> Result<(), String> {
    let info = ctx.info()?;
    if let Some(e) = get(&info, 2) {
        let Value::Array(a) = e else {
            return Err("extensions is not an array".into());
        };
        ensure!(
            a.iter().all(Value::is_text),
            "extensions holds a non-text entry"
        );
    }
    Ok(())
}

fn uints(ctx: &mut Ctx) -> Result<(), String> {
    let info = ctx.info()?;
    for key in [7, 8, 11, 13, 14, 15, 16, 20] {
        if let Some(v) = get(&info, key) {
            ensure!(
                as_int(Some(v)).is_some_and(|n| n >= 0),
                "key {key} = {v:?} is not an unsigned integer"
            );
        }
    }
    Ok(())
}

fn selection_basic(ctx: &mut Ctx) -> Result<(), String> {
    let (status, _) = ctx.channel()?.ctap(0x0b, None)?;
    expect_status(status, 0)
}

fn unknown_ctap_command(ctx: &mut Ctx) -> Result<(), String> {
    let (status, _) = ctx.channel()?.ctap_raw(&[0x55])?;
    expect_status(status, 0x01)
}

fn transports(ctx: &mut Ctx) -> Result<(), String> {
    let info = ctx.info()?;
    if let Some(t) = get(&info, 9) {
        let Value::Array(a) = t else {
            return Err("transports is not an array".into());
        };
        ensure!(
            a.iter().all(Value::is_text),
            "transports holds a non-text entry"
        );
    }
    Ok(())
}

fn canonical_response(ctx: &mut Ctx) -> Result<(), String> {
    // §8 (CTAP2 canonical CBOR): re-encode canonically with this suite's own encoder and
    // compare byte for byte; keys are unsigned integers in ascending order.
    let mut ch = ctx.channel()?;
    let m = ch.request(crate::hid::cmd::CBOR, &[0x04])?;
    ensure!(
        m.command == crate::hid::cmd::CBOR,
        "getInfo answered with command 0x{:02x}",
        m.command
    );
    let (&status, body) = m.payload.split_first().ok_or("empty getInfo response")?;
    expect_status(status, 0)?;
    let value = crate::cbor::decode(body)?;
    let canonical = crate::cbor::encode(&value);
    ensure!(
        canonical == body,
        "getInfo response is not canonical CBOR ({} bytes, canonical form {} bytes)",
        body.len(),
        canonical.len()
    );
    let Value::Map(entries) = &value else {
        return Err("getInfo response is not a map".into());
    };
    let keys: Vec<Option<i128>> = entries.iter().map(|(k, _)| as_int(Some(k))).collect();
    ensure!(
        keys.iter().all(|k| k.is_some_and(|k| k > 0)),
        "getInfo keys {keys:?} are not all positive integers"
    );
    for required in [1, 3] {
        ensure!(
            keys.contains(&Some(required)),
            "required getInfo member 0x{required:02x} missing"
        );
    }
    Ok(())
}

/// The getInfo checks.
pub fn checks() -> Vec<Check> {
    checks![
        (
            "info-01",
            "versions include FIDO_2_0 and FIDO_2_1",
            NOTHING,
            versions
        ),
        ("info-02", "aaguid is 16 bytes", NOTHING, aaguid),
        (
            "info-03",
            "options map text keys to booleans",
            NOTHING,
            options_are_bools
        ),
        (
            "info-04",
            "maxMsgSize is at least 1024",
            NOTHING,
            max_msg_size
        ),
        ("info-05", "algorithms include ES256", NOTHING, es256),
        (
            "info-06",
            "getInfo refuses a parameter map",
            NOTHING,
            with_body
        ),
        (
            "info-07",
            "pinUvAuthProtocols accompany clientPin/uv",
            NOTHING,
            protocols_with_pin
        ),
        (
            "info-08",
            "extensions is an array of text",
            NOTHING,
            extensions_texts
        ),
        (
            "info-09",
            "numeric fields are unsigned integers",
            NOTHING,
            uints
        ),
        (
            "info-10",
            "transports is an array of text",
            NOTHING,
            transports
        ),
        (
            "info-11",
            "an unknown CTAP command is CTAP1_ERR_INVALID_COMMAND",
            NOTHING,
            unknown_ctap_command
        ),
        (
            "info-12",
            "selection succeeds with presence",
            crate::needs::PRESENCE,
            selection_basic
        ),
        (
            "info-13",
            "the getInfo response is canonical CBOR with versions and aaguid",
            NOTHING,
            canonical_response
        ),
    ]
}
