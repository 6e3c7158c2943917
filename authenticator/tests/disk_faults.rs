//! A full disk (`ENOSPC`) and I/O errors (`EIO`) injected into the atomic writes (`fs::faults`)
//! while the authenticator stores a credential, the PIN state and a signature-counter block: the
//! command fails with a precise status, nothing stored before is lost, no temp file is left,
//! and the next start on the same directory is clean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::path::Path;
use std::sync::{Arc, Mutex};

use passgate_authenticator::api::user_verifier::Interaction;
use passgate_authenticator::fs::faults::{self, Op};
use passgate_client::CtapClient;
use passgate_proto::ctap::data::{RpEntity, UserEntity};
use passgate_proto::ctap::{StatusCode, get_assertion, make_credential};
use passgate_testkit::{PIN, auto_presence_authenticator};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;
const RP: &str = "faults.example";

fn client(dir: &Path) -> CtapClient {
    CtapClient::in_process(Arc::new(Mutex::new(auto_presence_authenticator(dir, 32))))
}

fn register(client: &CtapClient, user: u8) -> Result<Vec<u8>, passgate_client::ClientError> {
    let mut request = make_credential::Request::new(
        &[user; 32],
        RpEntity {
            id: RP.into(),
            name: Some("Faults".into()),
        },
        UserEntity {
            id: vec![user; 8],
            name: Some(format!("user{user}")),
            display_name: None,
        },
        &[-7],
    );
    request.options.rk = Some(true);
    let response = client.make_credential(&request, &Interaction::new())?;
    let data = passgate_proto::AuthenticatorData::parse(&response.auth_data).unwrap();
    Ok(data.attested_credential_data.unwrap().credential_id)
}

/// The user handles of the discoverable credentials for [`RP`] (empty when there are none).
fn users(client: &CtapClient) -> Vec<Vec<u8>> {
    let request = get_assertion::Request::new(RP, &[9; 32]);
    let first = match client.get_assertion(&request, &Interaction::new()) {
        Ok(first) => first,
        Err(e) if e.is(StatusCode::NoCredentials) => return Vec::new(),
        Err(e) => panic!("getAssertion: {e}"),
    };
    let count = first.number_of_credentials.unwrap_or(1);
    let mut users = vec![first.user.unwrap().id];
    for _ in 1..count {
        let next: get_assertion::Response = client
            .send(&get_assertion::GetNextAssertion, &Interaction::new())
            .unwrap();
        users.push(next.user.unwrap().id);
    }
    users.sort();
    users
}

/// Every file under `dir` whose name says it is a temp file.
fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(passgate_authenticator::fs::TEMP_PREFIX)
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_credential_write_that_fails_loses_nothing_and_says_why() {
    for (op, errno, status) in [
        (Op::Write, ENOSPC, StatusCode::KeyStoreFull),
        (Op::Fsync, ENOSPC, StatusCode::KeyStoreFull),
        (Op::Rename, ENOSPC, StatusCode::KeyStoreFull),
        (Op::Write, EIO, StatusCode::Other),
        (Op::Fsync, EIO, StatusCode::Other),
        (Op::Rename, EIO, StatusCode::Other),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path());
        register(&client, 1).unwrap();
        register(&client, 2).unwrap();
        let before = users(&client);
        assert_eq!(before, vec![vec![1; 8], vec![2; 8]]);
        {
            let fault = faults::inject(op, 1, errno);
            let err = register(&client, 3).unwrap_err();
            assert!(err.is(status), "{op:?} errno {errno}: {err}");
            assert!(fault.fired() >= 1, "{op:?}: the fault never fired");
        }
        assert_eq!(users(&client), before, "{op:?} errno {errno}");
        assert!(
            temp_files(dir.path()).is_empty(),
            "{:?}",
            temp_files(dir.path())
        );
        // The next start on the same directory reads the same credentials and can store again.
        drop(client);
        let client = self::client(dir.path());
        assert_eq!(users(&client), before);
        register(&client, 3).unwrap();
        assert_eq!(users(&client).len(), 3);
    }
}

#[test]
fn a_pin_change_that_fails_keeps_the_old_state() {
    for (op, errno) in [(Op::Rename, ENOSPC), (Op::Fsync, EIO), (Op::Write, EIO)] {
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path());
        {
            let fault = faults::inject(op, 1, errno);
            let err = client.set_pin(PIN).unwrap_err();
            assert!(
                err.is(StatusCode::Other) || err.is(StatusCode::KeyStoreFull),
                "{op:?}: {err}"
            );
            assert!(fault.fired() >= 1);
        }
        // No PIN was stored, in memory or on disk: it can be set now, then it is the one.
        assert_eq!(client.info().unwrap().client_pin, Some(false), "{op:?}");
        client.set_pin(PIN).unwrap();
        assert!(temp_files(dir.path()).is_empty());
        drop(client);
        let client = self::client(dir.path());
        assert_eq!(client.info().unwrap().client_pin, Some(true));
        assert_eq!(client.pin_retries().unwrap(), 8);
        client
            .pin_token(
                PIN,
                passgate_proto::ctap::Permissions::MAKE_CREDENTIAL,
                RP,
                &Interaction::new(),
            )
            .unwrap();
    }
}

/// The signature counter of a sign-in at [`RP`].
fn sign_in_counter(client: &CtapClient) -> Result<u32, passgate_client::ClientError> {
    let request = get_assertion::Request::new(RP, &[7; 32]);
    let response = client.get_assertion(&request, &Interaction::new())?;
    Ok(
        passgate_proto::AuthenticatorData::parse(&response.auth_data)
            .unwrap()
            .sign_count,
    )
}

#[test]
fn a_sign_in_whose_counter_cannot_be_reserved_fails_and_no_value_repeats() {
    use passgate_authenticator::software::COUNTER_BLOCK;
    for (op, errno) in [(Op::Rename, ENOSPC), (Op::Fsync, EIO), (Op::Write, EIO)] {
        let dir = tempfile::tempdir().unwrap();
        let client = client(dir.path());
        register(&client, 1).unwrap();
        // A new passkey counts 1, 2, 3, … up to the first reserved block.
        for n in 1..=COUNTER_BLOCK {
            assert_eq!(sign_in_counter(&client).unwrap(), n);
        }
        {
            // The next sign-in must reserve a block first: when that write fails, the
            // sign-in fails and hands out nothing.
            let fault = faults::inject(op, 1, errno);
            let err = sign_in_counter(&client).unwrap_err();
            assert!(
                err.is(StatusCode::Other) || err.is(StatusCode::KeyStoreFull),
                "{op:?}: {err}"
            );
            assert!(fault.fired() >= 1, "{op:?}");
        }
        assert!(temp_files(dir.path()).is_empty());
        assert_eq!(sign_in_counter(&client).unwrap(), COUNTER_BLOCK + 1);
        // A crash (no clean shutdown) and a new start: strictly above every value handed out,
        // and by at most a block.
        drop(client);
        let client = self::client(dir.path());
        let after = sign_in_counter(&client).unwrap();
        assert!(
            after > COUNTER_BLOCK + 1 && after <= 2 * COUNTER_BLOCK + 1,
            "{op:?}: {after}"
        );
    }
}
