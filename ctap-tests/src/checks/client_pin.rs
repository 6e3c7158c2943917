//! authenticatorClientPIN checks (CTAP 2.1 §6.5), for protocols 1 and 2. Each check resets
//! the authenticator first.

use ciborium::value::Value;

use super::checks;
use crate::cbor::{as_int, bytes, get, imap, int, text};
use crate::hid::Channel;
use crate::needs::{PRESENCE, RESET};
use crate::pin::{SharedSecret, agree, authenticate, padded, pin_hash};
use crate::{Check, Ctx, ensure, expect_status, ga_request, make, mc_request};

const BOTH: u8 = PRESENCE | RESET;
pub(crate) const PIN: &str = "314159";

pub(crate) fn shared(ch: &mut Channel, protocol: u8) -> Result<SharedSecret, String> {
    let (status, body) = ch.ctap(
        0x06,
        Some(&imap(vec![(1, int(i64::from(protocol))), (2, int(2))])),
    )?;
    expect_status(status, 0)?;
    agree(
        protocol,
        get(body.as_ref().ok_or("no body")?, 1).ok_or("no keyAgreement")?,
    )
}

pub(crate) fn set_pin(ch: &mut Channel, protocol: u8, pin: &str) -> Result<u8, String> {
    let s = shared(ch, protocol)?;
    let enc = s.encrypt(&padded(pin));
    let auth = s.authenticate(&enc);
    let req = imap(vec![
        (1, int(i64::from(protocol))),
        (2, int(3)),
        (3, s.platform_key.clone()),
        (4, bytes(&auth)),
        (5, bytes(&enc)),
    ]);
    Ok(ch.ctap(0x06, Some(&req))?.0)
}

/// Gets a token: `permissions` None uses getPinToken (0x05), else 0x09.
pub(crate) fn token(
    ch: &mut Channel,
    protocol: u8,
    pin: &str,
    permissions: Option<i64>,
    rp: Option<&str>,
) -> Result<Result<Vec<u8>, u8>, String> {
    let s = shared(ch, protocol)?;
    let mut entries = vec![
        (1, int(i64::from(protocol))),
        (3, s.platform_key.clone()),
        (6, bytes(&s.encrypt(&pin_hash(pin)))),
    ];
    match permissions {
        None => entries.push((2, int(5))),
        Some(p) => {
            entries.push((2, int(9)));
            entries.push((9, int(p)));
        }
    }
    if let Some(rp) = rp {
        entries.push((10, text(rp)));
    }
    let (status, body) = ch.ctap(0x06, Some(&imap(entries)))?;
    if status != 0 {
        return Ok(Err(status));
    }
    let enc = get(body.as_ref().ok_or("no body")?, 2)
        .and_then(Value::as_bytes)
        .ok_or("no token")?;
    Ok(Ok(s.decrypt(enc)?))
}

fn retries(ch: &mut Channel) -> Result<i128, String> {
    let (status, body) = ch.ctap(0x06, Some(&imap(vec![(1, int(1)), (2, int(1))])))?;
    expect_status(status, 0)?;
    as_int(get(body.as_ref().ok_or("no body")?, 3)).ok_or_else(|| "no pinRetries".into())
}

pub(crate) fn fresh(ctx: &mut Ctx) -> Result<Channel, String> {
    ctx.reset()?;
    ctx.channel()
}

fn pin_supported(ctx: &mut Ctx) -> Result<bool, String> {
    Ok(ctx.option("clientPin")?.is_some())
}

fn retries_start_at_eight(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    // No PIN yet: nothing to count (python-fido2's device suite expects PIN_NOT_SET).
    let (status, _) = ch.ctap(0x06, Some(&imap(vec![(1, int(1)), (2, int(1))])))?;
    ensure!(
        status == 0x35,
        "getPINRetries without a PIN is 0x{status:02x}, not PIN_NOT_SET"
    );
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    ensure!(
        retries(&mut ch)? == 8,
        "pinRetries is not 8 after the first setPIN"
    );
    Ok(())
}

fn key_agreement_cose(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = ctx.channel()?;
    let (status, body) = ch.ctap(0x06, Some(&imap(vec![(1, int(2)), (2, int(2))])))?;
    expect_status(status, 0)?;
    let key = get(body.as_ref().ok_or("no body")?, 1).ok_or("no keyAgreement")?;
    ensure!(
        as_int(get(key, 3)) == Some(-25),
        "keyAgreement alg is not -25"
    );
    ensure!(
        as_int(get(key, -1)) == Some(1),
        "keyAgreement curve is not P-256"
    );
    Ok(())
}

macro_rules! per_protocol {
    ($name1:ident, $name2:ident, $body:ident) => {
        fn $name1(ctx: &mut Ctx) -> Result<(), String> {
            $body(ctx, 1)
        }
        fn $name2(ctx: &mut Ctx) -> Result<(), String> {
            $body(ctx, 2)
        }
    };
}

fn set_and_token(ctx: &mut Ctx, p: u8) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, p, PIN)?, 0)?;
    ctx.info = None;
    ensure!(
        ctx.option("clientPin")? == Some(true),
        "clientPin not true after setPIN"
    );
    let t = token(&mut ch, p, PIN, None, None)?
        .map_err(|s| format!("getPinToken failed with 0x{s:02x}"))?;
    ensure!(t.len() == 32, "token is {} bytes", t.len());
    Ok(())
}
per_protocol!(set_and_token_1, set_and_token_2, set_and_token);

fn set_twice(ctx: &mut Ctx, p: u8) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, p, PIN)?, 0)?;
    expect_status(set_pin(&mut ch, p, "271828")?, 0x33)
}
per_protocol!(set_twice_1, set_twice_2, set_twice);

fn too_short(ctx: &mut Ctx, p: u8) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, p, "12")?, 0x37)
}
per_protocol!(too_short_1, too_short_2, too_short);

fn set_bad_auth(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    let s = shared(&mut ch, 2)?;
    let enc = s.encrypt(&padded(PIN));
    let req = imap(vec![
        (1, int(2)),
        (2, int(3)),
        (3, s.platform_key.clone()),
        (4, bytes(&[0; 32])),
        (5, bytes(&enc)),
    ]);
    expect_status(ch.ctap(0x06, Some(&req))?.0, 0x33)
}

fn wrong_pin(ctx: &mut Ctx, p: u8) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, p, PIN)?, 0)?;
    ensure!(
        token(&mut ch, p, "000000", None, None)? == Err(0x31),
        "wrong PIN is not PIN_INVALID"
    );
    ensure!(retries(&mut ch)? == 7, "retries did not drop to 7");
    token(&mut ch, p, PIN, None, None)?.map_err(|s| format!("right PIN refused: 0x{s:02x}"))?;
    ensure!(retries(&mut ch)? == 8, "retries not restored to 8");
    Ok(())
}
per_protocol!(wrong_pin_1, wrong_pin_2, wrong_pin);

fn three_wrong(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    let codes: Vec<Result<Vec<u8>, u8>> = (0..3)
        .map(|_| token(&mut ch, 2, "000000", None, None))
        .collect::<Result<_, _>>()?;
    ensure!(
        codes == vec![Err(0x31), Err(0x31), Err(0x34)],
        "codes {codes:?}"
    );
    ensure!(
        token(&mut ch, 2, PIN, None, None)? == Err(0x34),
        "correct PIN accepted before a power cycle"
    );
    Ok(())
}

fn change_pin(ctx: &mut Ctx, p: u8) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, p, PIN)?, 0)?;
    let s = shared(&mut ch, p)?;
    let new_enc = s.encrypt(&padded("27182818"));
    let hash_enc = s.encrypt(&pin_hash(PIN));
    let auth = s.authenticate(&[new_enc.as_slice(), &hash_enc].concat());
    let req = imap(vec![
        (1, int(i64::from(p))),
        (2, int(4)),
        (3, s.platform_key.clone()),
        (4, bytes(&auth)),
        (5, bytes(&new_enc)),
        (6, bytes(&hash_enc)),
    ]);
    expect_status(ch.ctap(0x06, Some(&req))?.0, 0)?;
    ensure!(
        token(&mut ch, p, PIN, None, None)? == Err(0x31),
        "old PIN still accepted"
    );
    token(&mut ch, p, "27182818", None, None)?
        .map_err(|s| format!("new PIN refused: 0x{s:02x}"))?;
    Ok(())
}
per_protocol!(change_pin_1, change_pin_2, change_pin);

fn token_without_pin(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    ensure!(
        token(&mut ch, 2, PIN, None, None)? == Err(0x35),
        "getPinToken without a PIN is not PIN_NOT_SET"
    );
    Ok(())
}

fn permissions_zero(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    ensure!(
        token(&mut ch, 2, PIN, Some(0), None)? == Err(0x02),
        "permissions 0 accepted"
    );
    Ok(())
}

fn uv_token_registration(ctx: &mut Ctx, p: u8) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, p, PIN)?, 0)?;
    let t =
        token(&mut ch, p, PIN, Some(0x01), Some(&rp))?.map_err(|s| format!("token: 0x{s:02x}"))?;
    let made = make(
        &mut ch,
        &rp,
        b"u",
        true,
        vec![
            (8, bytes(&authenticate(p, &t, &[0x11; 32]))),
            (9, int(i64::from(p))),
        ],
    )?;
    ensure!(
        made.auth_data[32] & 0x05 == 0x05,
        "UP|UV not set with a PIN token"
    );
    let t =
        token(&mut ch, p, PIN, Some(0x02), Some(&rp))?.map_err(|s| format!("token: 0x{s:02x}"))?;
    let (status, body) = ch.ctap(
        0x02,
        Some(&ga_request(
            &rp,
            &[],
            vec![
                (6, bytes(&authenticate(p, &t, &[0x22; 32]))),
                (7, int(i64::from(p))),
            ],
        )),
    )?;
    expect_status(status, 0)?;
    let d = get(body.as_ref().ok_or("no body")?, 2)
        .and_then(Value::as_bytes)
        .ok_or("no authData")?;
    ensure!(d[32] & 0x05 == 0x05, "UP|UV not set on the assertion");
    Ok(())
}
per_protocol!(uv_token_1, uv_token_2, uv_token_registration);

fn rp_binding(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    let t =
        token(&mut ch, 2, PIN, Some(0x01), Some(&rp))?.map_err(|s| format!("token: 0x{s:02x}"))?;
    let other = format!("other.{rp}");
    let (status, _) = ch.ctap(
        0x01,
        Some(&mc_request(
            &other,
            b"u",
            true,
            vec![(8, bytes(&authenticate(2, &t, &[0x11; 32]))), (9, int(2))],
        )),
    )?;
    expect_status(status, 0x33)
}

fn wrong_permission(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    let t = token(&mut ch, 2, PIN, Some(0x02), None)?.map_err(|s| format!("token: 0x{s:02x}"))?;
    let (status, _) = ch.ctap(
        0x01,
        Some(&mc_request(
            &rp,
            b"u",
            true,
            vec![(8, bytes(&authenticate(2, &t, &[0x11; 32]))), (9, int(2))],
        )),
    )?;
    expect_status(status, 0x33)
}

fn puat_required(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    let (status, _) = ch.ctap(0x01, Some(&mc_request(&rp, b"u", true, vec![])))?;
    expect_status(status, 0x36)
}

fn zero_length_with_pin(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    let (status, _) = ch.ctap(
        0x01,
        Some(&mc_request(
            &rp,
            b"u",
            false,
            vec![(8, bytes(&[])), (9, int(2))],
        )),
    )?;
    expect_status(status, 0x31)
}

fn bad_token_mac(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 1, PIN)?, 0)?;
    token(&mut ch, 1, PIN, Some(0x01), None)?.map_err(|s| format!("token: 0x{s:02x}"))?;
    let (status, _) = ch.ctap(
        0x01,
        Some(&mc_request(
            &rp,
            b"u",
            false,
            vec![(8, bytes(&[0xaa; 16])), (9, int(1))],
        )),
    )?;
    expect_status(status, 0x33)
}

fn unknown_subcommand(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (status, _) = ctx
        .channel()?
        .ctap(0x06, Some(&imap(vec![(1, int(2)), (2, int(0x42))])))?;
    expect_status(status, 0x3e)
}

fn missing_subcommand(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (status, _) = ctx.channel()?.ctap(0x06, Some(&imap(vec![(1, int(2))])))?;
    expect_status(status, 0x14)
}

fn unknown_protocol(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let (status, _) = ctx
        .channel()?
        .ctap(0x06, Some(&imap(vec![(1, int(9)), (2, int(2))])))?;
    expect_status(status, 0x02)
}

fn get_pin_token_with_permissions(ctx: &mut Ctx) -> Result<(), String> {
    if !pin_supported(ctx)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let mut ch = fresh(ctx)?;
    expect_status(set_pin(&mut ch, 2, PIN)?, 0)?;
    let s = shared(&mut ch, 2)?;
    let req = imap(vec![
        (1, int(2)),
        (2, int(5)),
        (3, s.platform_key.clone()),
        (6, bytes(&s.encrypt(&pin_hash(PIN)))),
        (9, int(1)),
    ]);
    expect_status(ch.ctap(0x06, Some(&req))?.0, 0x02)
}

fn reset_erases(ctx: &mut Ctx) -> Result<(), String> {
    let rp = ctx.rp();
    let mut ch = fresh(ctx)?;
    let made = make(&mut ch, &rp, b"u", false, vec![])?;
    ctx.reset()?;
    let mut ch = ctx.channel()?;
    let (status, _) = ch.ctap(0x02, Some(&ga_request(&rp, &[&made.id], vec![])))?;
    expect_status(status, 0x2e)
}

fn reset_with_body(ctx: &mut Ctx) -> Result<(), String> {
    let (status, _) = ctx.channel()?.ctap_raw(&[0x07, 0xa0])?;
    ensure!(status != 0, "reset with a parameter map was accepted");
    Ok(())
}

/// The clientPIN and reset checks.
pub fn checks() -> Vec<Check> {
    checks![
        (
            "pin-01",
            "getPINRetries is PIN_NOT_SET after reset, 8 once a PIN is set",
            BOTH,
            retries_start_at_eight
        ),
        (
            "pin-02",
            "getKeyAgreement returns an ECDH-ES+HKDF-256 P-256 key",
            PRESENCE,
            key_agreement_cose
        ),
        (
            "pin-03",
            "setPIN then getPinToken (protocol 1)",
            BOTH,
            set_and_token_1
        ),
        (
            "pin-04",
            "setPIN then getPinToken (protocol 2)",
            BOTH,
            set_and_token_2
        ),
        (
            "pin-05",
            "setPIN twice is PIN_AUTH_INVALID (protocol 1)",
            BOTH,
            set_twice_1
        ),
        (
            "pin-06",
            "setPIN twice is PIN_AUTH_INVALID (protocol 2)",
            BOTH,
            set_twice_2
        ),
        (
            "pin-07",
            "a 2-character PIN is PIN_POLICY_VIOLATION (protocol 1)",
            BOTH,
            too_short_1
        ),
        (
            "pin-08",
            "a 2-character PIN is PIN_POLICY_VIOLATION (protocol 2)",
            BOTH,
            too_short_2
        ),
        (
            "pin-09",
            "setPIN with a bad pinUvAuthParam is PIN_AUTH_INVALID",
            BOTH,
            set_bad_auth
        ),
        (
            "pin-10",
            "a wrong PIN is PIN_INVALID and costs a retry (protocol 1)",
            BOTH,
            wrong_pin_1
        ),
        (
            "pin-11",
            "a wrong PIN is PIN_INVALID and costs a retry (protocol 2)",
            BOTH,
            wrong_pin_2
        ),
        (
            "pin-12",
            "three wrong PINs in a row: PIN_AUTH_BLOCKED until power cycle",
            BOTH,
            three_wrong
        ),
        (
            "pin-13",
            "changePIN replaces the PIN (protocol 1)",
            BOTH,
            change_pin_1
        ),
        (
            "pin-14",
            "changePIN replaces the PIN (protocol 2)",
            BOTH,
            change_pin_2
        ),
        (
            "pin-15",
            "getPinToken without a PIN is PIN_NOT_SET",
            BOTH,
            token_without_pin
        ),
        (
            "pin-16",
            "permissions 0 is INVALID_PARAMETER",
            BOTH,
            permissions_zero
        ),
        (
            "pin-17",
            "a PIN token gives UP|UV in makeCredential and getAssertion (protocol 1)",
            BOTH,
            uv_token_1
        ),
        (
            "pin-18",
            "a PIN token gives UP|UV in makeCredential and getAssertion (protocol 2)",
            BOTH,
            uv_token_2
        ),
        (
            "pin-19",
            "a token bound to one RP is refused for another",
            BOTH,
            rp_binding
        ),
        (
            "pin-20",
            "a token without the mc permission is refused for makeCredential",
            BOTH,
            wrong_permission
        ),
        (
            "pin-21",
            "a discoverable credential without a token is PUAT_REQUIRED once a PIN is set",
            BOTH,
            puat_required
        ),
        (
            "pin-22",
            "zero-length pinUvAuthParam with a PIN set is PIN_INVALID",
            BOTH,
            zero_length_with_pin
        ),
        (
            "pin-23",
            "a forged pinUvAuthParam is PIN_AUTH_INVALID",
            BOTH,
            bad_token_mac
        ),
        (
            "pin-24",
            "an unknown subCommand is INVALID_SUBCOMMAND",
            PRESENCE,
            unknown_subcommand
        ),
        (
            "pin-25",
            "a missing subCommand is MISSING_PARAMETER",
            PRESENCE,
            missing_subcommand
        ),
        (
            "pin-26",
            "an unknown pinUvAuthProtocol is INVALID_PARAMETER",
            PRESENCE,
            unknown_protocol
        ),
        (
            "pin-27",
            "getPinToken with permissions is INVALID_PARAMETER",
            BOTH,
            get_pin_token_with_permissions
        ),
        ("rst-01", "reset erases credentials", BOTH, reset_erases),
        (
            "rst-02",
            "reset with a parameter map is refused",
            PRESENCE,
            reset_with_body
        ),
    ]
}
