//! makeCredential/getAssertion ceremonies end to end: attestation formats, counters,
//! discoverable credentials, excludeList, credProtect, getInfo and reset.

use super::*;

#[test]
fn get_info_reports_versions_aaguid_and_options() {
    let mut a = authenticator(10);
    let info = ok_map(&a.handle(&[command::GET_INFO]));
    assert_eq!(
        info[&1],
        Value::Array(vec![text("FIDO_2_0"), text("FIDO_2_1")])
    );
    assert_eq!(
        info[&3],
        Value::Bytes(crate::ctap::PASSGATE_AAGUID.to_vec())
    );
    let Value::Map(options) = &info[&4] else {
        panic!()
    };
    assert!(options.contains(&(text("rk"), Value::Bool(true))));
    assert!(
        !options.iter().any(|(k, _)| *k == text("uv")),
        "no uv without a verifier"
    );
    assert_eq!(info[&5], int(7609));
    assert_eq!(info[&20], int(10));
    assert_eq!(
        info[&0x16],
        Value::Array(vec![text("packed")]),
        "attestationFormats: a store that cannot attest self-attests; none is implied, unlisted"
    );
}

#[test]
fn make_credential_packed_by_default_then_assert_with_increasing_counter() {
    let mut a = authenticator(10);
    let made = make(&mut a, "example.com", b"user-1", false, vec![]);
    assert_eq!(
        made.fmt, "packed",
        "security keys self-attest unless asked not to"
    );
    let Value::Map(stmt) = &made.att_stmt else {
        panic!("attStmt is not a map")
    };
    assert_eq!(stmt[0], (text("alg"), int(-7)));
    assert!(verify(
        &made.public_key,
        &made.auth_data,
        &[7; 32],
        stmt[1].1.as_bytes().unwrap()
    ));
    assert_eq!(made.id.len(), crate::ctap::CREDENTIAL_ID_LENGTH);
    assert_eq!(made.auth_data[32], 0x41, "UP|AT, no UV");
    assert_eq!(&made.auth_data[33..37], &[0, 0, 0, 0]);
    assert_eq!(
        &made.auth_data[..32],
        &crate::ctap::data::rp_id_hash("example.com")
    );

    let mut last = 0;
    for _ in 0..3 {
        let resp = ok_map(&a.handle(&get_assertion("example.com", Some(&made.id), None)));
        let auth_data = resp[&2].as_bytes().unwrap();
        assert_eq!(auth_data.len(), 37);
        assert_eq!(auth_data[32], 0x01);
        let counter = u32::from_be_bytes(auth_data[33..37].try_into().unwrap());
        assert!(counter > last);
        last = counter;
        assert!(verify(
            &made.public_key,
            auth_data,
            &[9; 32],
            resp[&3].as_bytes().unwrap()
        ));
        assert!(
            !resp.contains_key(&4),
            "no user entity for a non-discoverable credential"
        );
        assert!(!resp.contains_key(&5));
    }
    // Silent probe: no UP flag, no counter.
    let resp = ok_map(&a.handle(&get_assertion("example.com", Some(&made.id), Some(false))));
    let auth_data = resp[&2].as_bytes().unwrap();
    assert_eq!(auth_data[32], 0x00);
    assert_eq!(&auth_data[33..37], &[0, 0, 0, 0]);
    // Next real assertion continues above the last real counter.
    let resp = ok_map(&a.handle(&get_assertion("example.com", Some(&made.id), None)));
    let counter = u32::from_be_bytes(resp[&2].as_bytes().unwrap()[33..37].try_into().unwrap());
    assert_eq!(counter, last + 1);
    // Another RP cannot use it.
    assert_eq!(
        a.handle(&get_assertion("evil.example", Some(&made.id), None)),
        vec![0x2e]
    );
}

#[test]
fn none_attestation_when_the_client_prefers_it() {
    let mut a = authenticator(10);
    let made = make(
        &mut a,
        "example.com",
        b"u",
        false,
        vec![(0x0b, Value::Array(vec![text("none"), text("packed")]))],
    );
    assert_eq!(made.fmt, "none");
    assert_eq!(made.att_stmt, Value::Map(vec![]));
    // A format this key store cannot produce (`tpm`: software keys) does not hide a later
    // one it can.
    let made = make(
        &mut a,
        "example.com",
        b"v",
        false,
        vec![(0x0b, Value::Array(vec![text("tpm"), text("none")]))],
    );
    assert_eq!(made.fmt, "none");
}

#[test]
fn a_tpm_preference_the_key_store_cannot_meet_gets_the_default() {
    let mut a = authenticator(10);
    let made = make(
        &mut a,
        "example.com",
        b"u",
        false,
        vec![(0x0b, Value::Array(vec![text("tpm"), text("fido-u2f")]))],
    );
    assert_eq!(made.fmt, "packed", "the configured default");
    // A `tpm` default on a store that cannot attest: packed self-attestation.
    a.config_mut().default_attestation = crate::ctap::AttestationFormat::Tpm;
    let made = make(&mut a, "example.com", b"v", false, vec![]);
    assert_eq!(made.fmt, "packed");
}

#[test]
fn packed_self_attestation_on_request() {
    let mut a = authenticator(10);
    let made = make(
        &mut a,
        "example.com",
        b"u",
        false,
        vec![(0x0b, Value::Array(vec![text("tpm"), text("packed")]))],
    );
    assert_eq!(made.fmt, "packed");
    let Value::Map(stmt) = &made.att_stmt else {
        panic!()
    };
    assert_eq!(stmt[0], (text("alg"), int(-7)));
    let sig = stmt[1].1.as_bytes().unwrap();
    assert!(verify(&made.public_key, &made.auth_data, &[7; 32], sig));
    assert_eq!(stmt.len(), 2, "self attestation has no x5c");
}

#[test]
fn discoverable_credentials_and_get_next_assertion() {
    let mut a = authenticator(10);
    let first = make(&mut a, "example.com", b"alice", true, vec![]);
    let second = make(&mut a, "example.com", b"bob", true, vec![]);
    make(&mut a, "other.example", b"carol", true, vec![]);
    let resp = ok_map(&a.handle(&get_assertion("example.com", None, None)));
    assert_eq!(resp[&5], int(2));
    assert_eq!(
        resp[&4],
        text_map([("id", Some(Value::Bytes(b"bob".to_vec())))]),
        "newest first, no name without UV"
    );
    assert_eq!(
        resp[&1],
        text_map([
            ("id", Some(Value::Bytes(second.id.clone()))),
            ("type", Some(text("public-key")))
        ])
    );
    let next = ok_map(&a.handle(&[command::GET_NEXT_ASSERTION]));
    assert_eq!(
        next[&4],
        text_map([("id", Some(Value::Bytes(b"alice".to_vec())))])
    );
    assert!(!next.contains_key(&5));
    assert!(verify(
        &first.public_key,
        next[&2].as_bytes().unwrap(),
        &[9; 32],
        next[&3].as_bytes().unwrap()
    ));
    assert_eq!(a.handle(&[command::GET_NEXT_ASSERTION]), vec![0x30]);
    // Re-registering the same user replaces the credential.
    make(&mut a, "example.com", b"alice", true, vec![]);
    let resp = ok_map(&a.handle(&get_assertion("example.com", None, None)));
    assert_eq!(resp[&5], int(2));
    // Another command in between ends the getNextAssertion sequence.
    a.handle(&[command::GET_INFO]);
    assert_eq!(a.handle(&[command::GET_NEXT_ASSERTION]), vec![0x30]);
}

#[test]
fn creation_order_strictly_increases_under_a_coarse_clock() {
    // FixedClock never advances: the authenticator itself keeps the order strict (ga-29).
    let mut a = authenticator(10);
    make(&mut a, "example.com", b"alice", true, vec![]);
    make(&mut a, "example.com", b"bob", true, vec![]);
    let records = a.env.credentials.discoverable("example.com").unwrap();
    let [newer, older] = &records[..] else {
        panic!("two credentials");
    };
    assert_eq!(newer.user_id, b"bob");
    assert_eq!(older.created_ns, 1_700_000_000_000_000_000);
    assert_eq!(newer.created_ns, older.created_ns + 1);
    assert_eq!(newer.created_at, 1_700_000_000);
}

#[test]
fn exclude_list_and_store_full() {
    let mut a = authenticator(1);
    let made = make(&mut a, "example.com", b"u", false, vec![]);
    let excl = Value::Array(vec![text_map([
        ("id", Some(Value::Bytes(made.id.clone()))),
        ("type", Some(text("public-key"))),
    ])]);
    assert_eq!(
        a.handle(&make_credential_request(
            "example.com",
            b"u",
            false,
            vec![(5, excl.clone())]
        )),
        vec![0x19]
    );
    // The same credential does not exclude registration at another RP; but the store is full.
    assert_eq!(
        a.handle(&make_credential_request(
            "other.example",
            b"u",
            false,
            vec![(5, excl)]
        )),
        vec![0x28]
    );
}

#[test]
fn cred_protect_required_hides_credential_without_uv() {
    let mut a = authenticator(10);
    let made = make(
        &mut a,
        "example.com",
        b"u",
        true,
        vec![(6, text_map([("credProtect", Some(int(3)))]))],
    );
    assert_eq!(made.auth_data[32] & 0x80, 0x80, "extension data present");
    assert_eq!(
        a.handle(&get_assertion("example.com", None, None)),
        vec![0x2e]
    );
    assert_eq!(
        a.handle(&get_assertion("example.com", Some(&made.id), None)),
        vec![0x2e]
    );
    let level2 = make(
        &mut a,
        "two.example",
        b"u",
        true,
        vec![(6, text_map([("credProtect", Some(int(2)))]))],
    );
    assert_eq!(
        a.handle(&get_assertion("two.example", None, None)),
        vec![0x2e]
    );
    assert_eq!(
        a.handle(&get_assertion("two.example", Some(&level2.id), None))[0],
        0
    );
}

#[test]
fn reset_erases_credentials() {
    let mut a = authenticator(10);
    let made = make(&mut a, "example.com", b"u", true, vec![]);
    assert_eq!(a.handle(&[command::RESET]), vec![0]);
    assert_eq!(
        a.handle(&get_assertion("example.com", Some(&made.id), None)),
        vec![0x2e]
    );
    assert_eq!(a.handle(&[command::SELECTION]), vec![0]);
}
