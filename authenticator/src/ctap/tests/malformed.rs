//! Malformed requests of every command, each with its exact CTAP status.

use super::*;

/// Malformed and invalid requests, each with its exact CTAP status.
#[test]
fn malformed_requests_get_exact_status_codes() {
    let rp = || text_map([("id", Some(text("example.com")))]);
    let user = || text_map([("id", Some(Value::Bytes(vec![1])))]);
    let cdh = || Value::Bytes(vec![0; 32]);
    let mc = |entries: Vec<(i64, Value)>| request(command::MAKE_CREDENTIAL, entries);
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("empty request", vec![], 0x03),
        ("unknown command", vec![0x55], 0x01),
        ("getInfo with a body", vec![0x04, 0xa0], 0x03),
        ("truncated CBOR", vec![0x01, 0xa1, 0x01], 0x12),
        ("trailing bytes", vec![0x01, 0xa0, 0x00], 0x12),
        (
            "non-shortest integer key",
            vec![0x01, 0xa1, 0x18, 0x01, 0x00],
            0x12,
        ),
        (
            "indefinite-length map",
            vec![0x01, 0xbf, 0x01, 0x00, 0xff],
            0x12,
        ),
        (
            "unsorted keys",
            vec![0x01, 0xa2, 0x02, 0x00, 0x01, 0x00],
            0x12,
        ),
        (
            "duplicate keys",
            vec![0x01, 0xa2, 0x01, 0x00, 0x01, 0x00],
            0x12,
        ),
        ("float", vec![0x01, 0xfa, 0x3f, 0x80, 0x00, 0x00], 0x12),
        ("parameters not a map", vec![0x01, 0x80], 0x11),
        ("makeCredential empty map", mc(vec![]), 0x14),
        (
            "clientDataHash is text",
            mc(vec![(1, text("x")), (2, rp()), (3, user()), (4, es256())]),
            0x11,
        ),
        (
            "rp missing",
            mc(vec![(1, cdh()), (3, user()), (4, es256())]),
            0x14,
        ),
        (
            "rp.id missing",
            mc(vec![
                (1, cdh()),
                (2, text_map([("name", Some(text("x")))])),
                (3, user()),
                (4, es256()),
            ]),
            0x14,
        ),
        (
            "rp.id not text",
            mc(vec![
                (1, cdh()),
                (2, text_map([("id", Some(int(1)))])),
                (3, user()),
                (4, es256()),
            ]),
            0x11,
        ),
        (
            "user missing",
            mc(vec![(1, cdh()), (2, rp()), (4, es256())]),
            0x14,
        ),
        (
            "user.id 65 bytes",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, text_map([("id", Some(Value::Bytes(vec![1; 65])))])),
                (4, es256()),
            ]),
            0x02,
        ),
        (
            "pubKeyCredParams missing",
            mc(vec![(1, cdh()), (2, rp()), (3, user())]),
            0x14,
        ),
        (
            "only RS256",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (
                    4,
                    Value::Array(vec![text_map([
                        ("alg", Some(int(-257))),
                        ("type", Some(text("public-key"))),
                    ])]),
                ),
            ]),
            0x26,
        ),
        (
            "param without alg",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (
                    4,
                    Value::Array(vec![text_map([("type", Some(text("public-key")))])]),
                ),
            ]),
            0x14,
        ),
        (
            "clientDataHash 31 bytes",
            mc(vec![
                (1, Value::Bytes(vec![0; 31])),
                (2, rp()),
                (3, user()),
                (4, es256()),
            ]),
            0x02,
        ),
        (
            "up=false on makeCredential",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (7, text_map([("up", Some(Value::Bool(false)))])),
            ]),
            0x2c,
        ),
        (
            "uv=true without a verifier",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (7, text_map([("uv", Some(Value::Bool(true)))])),
            ]),
            0x2c,
        ),
        (
            "option not a bool",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (7, text_map([("rk", Some(int(1)))])),
            ]),
            0x11,
        ),
        (
            "pinUvAuthParam without protocol",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (8, Value::Bytes(vec![0; 16])),
            ]),
            0x14,
        ),
        (
            "pinUvAuthParam with unsupported protocol",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (8, Value::Bytes(vec![0; 16])),
                (9, int(3)),
            ]),
            0x02,
        ),
        (
            "pinUvAuthParam without a token",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (8, Value::Bytes(vec![0; 16])),
                (9, int(1)),
            ]),
            0x33,
        ),
        (
            "zero-length pinUvAuthParam, no PIN set",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (8, Value::Bytes(vec![])),
                (9, int(1)),
            ]),
            0x35,
        ),
        (
            "clientPIN without subCommand",
            request(0x06, vec![(1, int(2))]),
            0x14,
        ),
        (
            "clientPIN unknown subCommand",
            request(0x06, vec![(1, int(2)), (2, int(0x42))]),
            0x3e,
        ),
        (
            "clientPIN getPinToken without a PIN",
            request(
                0x06,
                vec![
                    (1, int(2)),
                    (2, int(5)),
                    (3, int_map([])),
                    (6, Value::Bytes(vec![0; 32])),
                ],
            ),
            0x35,
        ),
        (
            "clientPIN getKeyAgreement protocol 7",
            request(0x06, vec![(1, int(7)), (2, int(2))]),
            0x02,
        ),
        (
            "clientPIN getPinUvAuthTokenUsingUv without UV",
            request(
                0x06,
                vec![(1, int(2)), (2, int(6)), (3, int_map([])), (9, int(1))],
            ),
            0x3e,
        ),
        (
            "enterprise attestation",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (10, int(1)),
            ]),
            0x02,
        ),
        (
            "credProtect 4",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (6, text_map([("credProtect", Some(int(4)))])),
            ]),
            0x02,
        ),
        (
            "excludeList not an array",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (5, int(1)),
            ]),
            0x11,
        ),
        (
            "excludeList descriptor without id",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (
                    5,
                    Value::Array(vec![text_map([("type", Some(text("public-key")))])]),
                ),
            ]),
            0x14,
        ),
        (
            "excludeList of 65",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (
                    5,
                    Value::Array(vec![
                        text_map([
                            ("id", Some(Value::Bytes(vec![1]))),
                            ("type", Some(text("public-key")))
                        ]);
                        65
                    ]),
                ),
            ]),
            0x15,
        ),
        (
            "getAssertion rpId missing",
            request(command::GET_ASSERTION, vec![(2, cdh())]),
            0x14,
        ),
        (
            "getAssertion rk option",
            request(
                command::GET_ASSERTION,
                vec![
                    (1, text("example.com")),
                    (2, cdh()),
                    (5, text_map([("rk", Some(Value::Bool(true)))])),
                ],
            ),
            0x2b,
        ),
        (
            "getAssertion no credentials",
            request(
                command::GET_ASSERTION,
                vec![(1, text("example.com")), (2, cdh())],
            ),
            0x2e,
        ),
        (
            "getAssertion allowList item not a map",
            request(
                command::GET_ASSERTION,
                vec![
                    (1, text("example.com")),
                    (2, cdh()),
                    (3, Value::Array(vec![int(1)])),
                ],
            ),
            0x11,
        ),
        (
            "credMgmt without a token",
            request(0x0a, vec![(1, int(1))]),
            0x36,
        ),
        (
            "credMgmt token param without protocol",
            request(0x0a, vec![(1, int(1)), (4, Value::Bytes(vec![0; 32]))]),
            0x14,
        ),
        (
            "credMgmt with a param but no token",
            request(
                0x0a,
                vec![(1, int(1)), (3, int(2)), (4, Value::Bytes(vec![0; 32]))],
            ),
            0x33,
        ),
        (
            "credMgmt unknown subCommand",
            request(0x0a, vec![(1, int(0x33))]),
            0x3e,
        ),
        (
            "credMgmt next RP without begin",
            request(0x0a, vec![(1, int(3))]),
            0x30,
        ),
        (
            "credMgmt next credential without begin",
            request(0x41, vec![(1, int(5))]),
            0x30,
        ),
        (
            "getNextAssertion without getAssertion",
            vec![command::GET_NEXT_ASSERTION],
            0x30,
        ),
        (
            "deeply nested",
            {
                let mut v = int(0);
                for _ in 0..40 {
                    v = Value::Array(vec![v]);
                }
                let mut r = vec![0x01];
                r.extend(encode(&int_map([(1, Some(v))])));
                r
            },
            0x12,
        ),
    ];
    let mut a = authenticator(10);
    for (name, req, expected) in cases {
        assert_eq!(a.handle(&req), vec![expected], "{name}");
    }
}

/// Requests with two faults, or with values only a later step judges: the status is the one
/// the authenticator's steps meet first, as when each command parsed its own map (proto's
/// `decode_strict` keeps what a later step decides as sent).
#[test]
fn later_steps_judge_what_decoding_keeps() {
    let rp = || text_map([("id", Some(text("example.com")))]);
    let user = || text_map([("id", Some(Value::Bytes(vec![1])))]);
    let cdh = || Value::Bytes(vec![0; 32]);
    let up_false = || text_map([("up", Some(Value::Bool(false)))]);
    let mac = || Value::Bytes(vec![1; 16]);
    let mc = |entries: Vec<(i64, Value)>| request(command::MAKE_CREDENTIAL, entries);
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        (
            "a MAC without pinUvAuthProtocol is judged after options (up: false)",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (7, up_false()),
                (8, mac()),
            ]),
            0x2c,
        ),
        (
            "pinUvAuthProtocol 300 is judged after options (up: false)",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (4, es256()),
                (7, up_false()),
                (8, mac()),
                (9, Value::Integer(300.into())),
            ]),
            0x2c,
        ),
        (
            "a short clientDataHash before a malformed pubKeyCredParams",
            mc(vec![
                (1, Value::Bytes(vec![0; 16])),
                (2, rp()),
                (3, user()),
                (4, Value::Array(vec![Value::Integer(1.into())])),
            ]),
            0x02,
        ),
        (
            "only an algorithm no key store makes",
            mc(vec![
                (1, cdh()),
                (2, rp()),
                (3, user()),
                (
                    4,
                    Value::Array(vec![text_map([
                        ("alg", Some(Value::Integer((-65535).into()))),
                        ("type", Some(text("public-key"))),
                    ])]),
                ),
            ]),
            0x26,
        ),
        (
            "clientPIN permissions beyond one byte",
            request(
                command::CLIENT_PIN,
                vec![
                    (1, Value::Integer(2.into())),
                    (2, Value::Integer(6.into())),
                    (3, text_map([])),
                    (9, Value::Integer(0x100.into())),
                ],
            ),
            0x02,
        ),
        (
            "clientPIN subcommand beyond one byte",
            request(
                command::CLIENT_PIN,
                vec![
                    (1, Value::Integer(2.into())),
                    (2, Value::Integer(0x1_0001.into())),
                ],
            ),
            0x3e,
        ),
        (
            "credentialManagement subCommandParams are read after the token",
            request(
                command::CREDENTIAL_MANAGEMENT,
                vec![(1, Value::Integer(1.into())), (2, Value::Integer(1.into()))],
            ),
            0x36,
        ),
        (
            "setMinPINLength subCommandParams not a map",
            request(
                command::CONFIG,
                vec![(1, Value::Integer(3.into())), (2, Value::Integer(1.into()))],
            ),
            0x11,
        ),
    ];
    let mut a = authenticator(10);
    for (name, req, expected) in cases {
        assert_eq!(a.handle(&req), vec![expected], "{name}");
    }
}
