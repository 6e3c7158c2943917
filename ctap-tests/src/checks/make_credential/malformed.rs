//! makeCredential requests of the wrong shape: missing or mistyped parameters and
//! non-canonical CBOR, each with the exact status CTAP 2.1 §6.1.2 and §8 ask for.

use ciborium::value::Value;

use crate::cbor::{as_int, bytes, imap, int, text, tmap};
use crate::{Ctx, expect_status, mc_request};

fn without(rp: &str, key: i64) -> Value {
    let Value::Map(m) = mc_request(rp, b"u", false, vec![]) else {
        return Value::Null;
    };
    Value::Map(
        m.into_iter()
            .filter(|(k, _)| as_int(Some(k)) != Some(i128::from(key)))
            .collect(),
    )
}

fn es256_only() -> Value {
    Value::Array(vec![tmap(vec![
        ("alg", int(-7)),
        ("type", text("public-key")),
    ])])
}

pub(super) fn zero_length_pin_auth(ctx: &mut Ctx) -> Result<(), String> {
    if ctx.option("clientPin")? != Some(false) {
        return Err(crate::skip("the target does not offer this feature")); // Only meaningful when a PIN is supported but not set.
    }
    let rp = ctx.rp();
    let (status, _) = ctx.channel()?.ctap(
        0x01,
        Some(&mc_request(
            &rp,
            b"u",
            false,
            vec![(8, bytes(&[])), (9, int(1))],
        )),
    )?;
    expect_status(status, 0x35)
}

status_check!(missing_cdh, 0x01, |rp| without(rp, 1), 0x14);
status_check!(missing_rp, 0x01, |rp| without(rp, 2), 0x14);
status_check!(missing_user, 0x01, |rp| without(rp, 3), 0x14);
status_check!(missing_params, 0x01, |rp| without(rp, 4), 0x14);
status_check!(
    cdh_is_text,
    0x01,
    |rp| mc_request(rp, b"u", false, vec![(1, text("hash"))]),
    0x11
);
status_check!(
    rp_id_is_int,
    0x01,
    |rp| {
        let _ = rp;
        imap(vec![
            (1, bytes(&[0; 32])),
            (2, tmap(vec![("id", int(5))])),
            (3, tmap(vec![("id", bytes(b"u"))])),
            (4, es256_only()),
        ])
    },
    0x11
);
status_check!(
    user_id_is_text,
    0x01,
    |rp| mc_request(rp, b"u", false, vec![(3, tmap(vec![("id", text("u"))]))]),
    0x11
);
status_check!(
    only_rs256,
    0x01,
    |rp| mc_request(
        rp,
        b"u",
        false,
        vec![(
            4,
            Value::Array(vec![tmap(vec![
                ("alg", int(-257)),
                ("type", text("public-key"))
            ])])
        )]
    ),
    0x26
);
status_check!(
    empty_params,
    0x01,
    |rp| mc_request(rp, b"u", false, vec![(4, Value::Array(vec![]))]),
    0x26
);
status_check!(
    param_without_alg,
    0x01,
    |rp| mc_request(
        rp,
        b"u",
        false,
        vec![(
            4,
            Value::Array(vec![tmap(vec![("type", text("public-key"))])])
        )]
    ),
    0x14
);
status_check!(
    rp_without_id,
    0x01,
    |rp| {
        let _ = rp;
        mc_request(
            "unused",
            b"u",
            false,
            vec![(2, tmap(vec![("name", text("No ID"))]))],
        )
    },
    0x14
);
status_check!(
    user_without_id,
    0x01,
    |rp| mc_request(
        rp,
        b"u",
        false,
        vec![(3, tmap(vec![("name", text("nobody"))]))]
    ),
    0x14
);
status_check!(
    alg_is_text,
    0x01,
    |rp| mc_request(
        rp,
        b"u",
        false,
        vec![(
            4,
            Value::Array(vec![tmap(vec![
                ("alg", text("ES256")),
                ("type", text("public-key"))
            ])])
        )]
    ),
    0x11
);
status_check!(
    up_false,
    0x01,
    |rp| mc_request(
        rp,
        b"u",
        false,
        vec![(7, tmap(vec![("up", Value::Bool(false))]))]
    ),
    0x2c
);
status_check!(
    option_not_bool,
    0x01,
    |rp| mc_request(rp, b"u", false, vec![(7, tmap(vec![("rk", int(1))]))]),
    0x11
);
status_check!(
    exclude_not_array,
    0x01,
    |rp| mc_request(rp, b"u", false, vec![(5, int(1))]),
    0x11
);
status_check!(
    exclude_item_without_id,
    0x01,
    |rp| mc_request(
        rp,
        b"u",
        false,
        vec![(
            5,
            Value::Array(vec![tmap(vec![("type", text("public-key"))])])
        )]
    ),
    0x14
);
status_check!(
    pin_auth_without_protocol,
    0x01,
    |rp| mc_request(rp, b"u", false, vec![(8, bytes(&[0; 16]))]),
    0x14
);
status_check!(
    pin_protocol_unknown,
    0x01,
    |rp| mc_request(rp, b"u", false, vec![(8, bytes(&[0; 16])), (9, int(99))]),
    0x02
);
status_check!(
    extensions_not_map,
    0x01,
    |rp| mc_request(rp, b"u", false, vec![(6, int(1))]),
    0x11
);
raw_check!(truncated, [0x01, 0xa2, 0x01, 0x58, 0x20, 0x00], 0x12);
raw_check!(unsorted, [0x01, 0xa2, 0x02, 0xa0, 0x01, 0x40], 0x12);
raw_check!(indefinite, [0x01, 0xbf, 0xff], 0x12);
raw_check!(trailing, [0x01, 0xa0, 0x00], 0x12);
raw_check!(not_a_map, [0x01, 0x80], 0x11);
raw_check!(non_shortest_int, [0x01, 0xa1, 0x18, 0x01, 0x40], 0x12);
