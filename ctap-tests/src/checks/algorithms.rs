//! Credential algorithms beyond ES256 (COSE EdDSA -8 and ES384 -35): when getInfo lists one, a
//! credential made with it carries the right COSE key and its assertions verify with it.

use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_ASN1, ED25519, UnparsedPublicKey, VerificationAlgorithm,
};
use ciborium::value::Value;

use super::checks;
use crate::cbor::{as_int, get, int, text, tmap};
use crate::needs::PRESENCE;
use crate::{Check, Ctx, ensure, expect_status, ga_request, mc_request};

fn offered(ctx: &mut Ctx, alg: i64) -> Result<bool, String> {
    let info = ctx.info()?;
    Ok(matches!(get(&info, 10), Some(Value::Array(list))
    if list.iter().any(|entry| {
        as_int(crate::cbor::tget(entry, "alg")) == Some(i128::from(alg))
    })))
}

/// Makes a credential with `alg` only and checks one assertion's signature with its key.
fn round_trip(
    ctx: &mut Ctx,
    alg: i64,
    expected_cose: &[(i64, i128)],
    verification: &'static dyn VerificationAlgorithm,
) -> Result<(), String> {
    if !offered(ctx, alg)? {
        return Err(crate::skip("the target does not offer this feature"));
    }
    let rp = ctx.rp();
    let mut ch = ctx.channel()?;
    let mut request = mc_request(&rp, b"alg-user", false, vec![]);
    if let Value::Map(entries) = &mut request {
        for (key, value) in entries.iter_mut() {
            if *key == int(4) {
                *value = Value::Array(vec![tmap(vec![
                    ("alg", int(alg)),
                    ("type", text("public-key")),
                ])]);
            }
        }
    }
    let (status, body) = ch.ctap(0x01, Some(&request))?;
    expect_status(status, 0)?;
    let body = body.ok_or("makeCredential returned no body")?;
    let auth_data = get(&body, 2)
        .and_then(Value::as_bytes)
        .ok_or("no authData")?;
    ensure!(auth_data.len() >= 55, "authData too short");
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data
        .get(55..55 + len)
        .ok_or("credential ID overruns")?;
    let mut reader = auth_data.get(55 + len..).ok_or("no COSE key")?;
    let key: Value = ciborium::de::from_reader(&mut reader).map_err(|e| format!("COSE: {e}"))?;
    for (label, value) in expected_cose {
        ensure!(
            as_int(get(&key, *label)) == Some(*value),
            "COSE key label {label} is {:?}, expected {value}",
            as_int(get(&key, *label))
        );
    }
    let x = get(&key, -2).and_then(Value::as_bytes).ok_or("no x")?;
    let public_key = match get(&key, -3).and_then(Value::as_bytes) {
        Some(y) => [&[4u8][..], x, y].concat(),
        None => x.clone(),
    };
    let (status, body) = ch.ctap(0x02, Some(&ga_request(&rp, &[id], vec![])))?;
    expect_status(status, 0)?;
    let body = body.ok_or("getAssertion returned no body")?;
    let ga_auth_data = get(&body, 2)
        .and_then(Value::as_bytes)
        .ok_or("no authData")?;
    let signature = get(&body, 3)
        .and_then(Value::as_bytes)
        .ok_or("no signature")?;
    // ga_request's clientDataHash.
    let message = [ga_auth_data.as_slice(), &[0x22; 32]].concat();
    ensure!(
        UnparsedPublicKey::new(verification, &public_key)
            .verify(&message, signature)
            .is_ok(),
        "the assertion signature does not verify with the credential's COSE key"
    );
    Ok(())
}

fn eddsa(ctx: &mut Ctx) -> Result<(), String> {
    // {1: 1 (OKP), 3: -8, -1: 6 (Ed25519)}; EdDSA signs the message itself.
    round_trip(ctx, -8, &[(1, 1), (3, -8), (-1, 6)], &ED25519)
}

fn es384(ctx: &mut Ctx) -> Result<(), String> {
    // {1: 2 (EC2), 3: -35, -1: 2 (P-384)}; ECDSA with SHA-384, DER.
    round_trip(
        ctx,
        -35,
        &[(1, 2), (3, -35), (-1, 2)],
        &ECDSA_P384_SHA384_ASN1,
    )
}

/// The algorithm checks.
pub fn checks() -> Vec<Check> {
    checks![
        (
            "alg-01",
            "EdDSA (Ed25519), when offered: OKP COSE key, assertions verify",
            PRESENCE,
            eddsa
        ),
        (
            "alg-02",
            "ES384, when offered: EC2 P-384 COSE key, assertions verify with SHA-384",
            PRESENCE,
            es384
        ),
    ]
}
