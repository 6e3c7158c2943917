//! A full disk (`ENOSPC`) and I/O errors (`EIO`) injected into the atomic writes (`fs::faults`)
//! while the authenticator stores a credential, the PIN state and the counter epoch: the
//! command fails with a precise status, nothing stored before is lost, no temp file is left,
//! and the next start on the same directory is clean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::path::Path;
use std::sync::{Arc, Mutex};

use passgate_authenticator::Authenticator;
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

#[test]
fn a_start_whose_counter_epoch_cannot_be_written_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    drop(auto_presence_authenticator(dir.path(), 32));
    let epoch = std::fs::read(dir.path().join("counter.epoch")).unwrap();
    {
        let _fault = faults::inject(Op::Rename, 1, ENOSPC);
        let key = passgate_authenticator::software::DeviceKey::load_or_create(dir.path()).unwrap();
        let err = passgate_authenticator::software::FileCredentialStore::open(dir.path(), &key, 32)
            .unwrap_err();
        assert!(err.to_string().contains("No space left on device"), "{err}");
    }
    assert_eq!(
        std::fs::read(dir.path().join("counter.epoch")).unwrap(),
        epoch
    );
    assert!(temp_files(dir.path()).is_empty());
    let _: Authenticator = auto_presence_authenticator(dir.path(), 32);
}
