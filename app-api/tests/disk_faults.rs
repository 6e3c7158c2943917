//! A full disk (`ENOSPC`) and I/O errors (`EIO`) injected into the atomic writes
//! (`passgate_authenticator::fs::faults`) of the identity vault and of the SOTER counter: the
//! call fails with the app error, nothing stored before is lost, no temp file is left, and
//! the next start is clean.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Rig, Touch};
use passgate_app_api::CallerId;
use passgate_app_api::fs::faults::{self, Op};
use passgate_app_api::soter::{self, StartRequest};
use passgate_app_api::vault::{AuthMode, Vault, VaultDescriptor, VaultErrorCode, VaultOptions};
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_relying_party::soter::ResultJson;
use serde_json::json;

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

fn i() -> Interaction {
    Interaction::new()
}

fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    common::files(dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(passgate_app_api::fs::TEMP_PREFIX)
        })
        .collect()
}

fn open_vault(rig: &Rig) -> Vault {
    Vault::open(
        Arc::clone(&rig.platform),
        CallerId::new("https://bank.example").unwrap(),
        &VaultDescriptor {
            vault_id: "v".into(),
            username: "alice".into(),
        },
        VaultOptions {
            auth_mode: AuthMode::BiometricOnly,
            ..VaultOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn a_vault_write_that_fails_keeps_the_old_values() {
    for (op, errno, text) in [
        (Op::Write, ENOSPC, "No space left on device"),
        (Op::Rename, ENOSPC, "No space left on device"),
        (Op::Fsync, EIO, "Input/output error"),
    ] {
        let rig = Rig::new();
        rig.sensor.enroll("right-index");
        let vault = open_vault(&rig);
        rig.sensor.touch(&[Touch::Match]);
        vault.store_value("k", &json!("old"), &i()).unwrap();
        {
            let fault = faults::inject(op, 1, errno);
            let err = vault.store_value("k", &json!("new"), &i()).unwrap_err();
            assert_eq!(err.code, VaultErrorCode::VaultUnavailable, "{op:?}");
            assert!(err.message.contains(text), "{op:?}: {}", err.message);
            assert!(fault.fired() >= 1);
        }
        assert_eq!(vault.get_value("k").unwrap(), Some(json!("old")), "{op:?}");
        assert!(temp_files(&rig.app_dir()).is_empty(), "{op:?}");
        // The next start reads the old vault and can write again.
        drop(vault);
        let vault = open_vault(&rig);
        rig.sensor.touch(&[Touch::Match]);
        vault.unlock(false, &i()).unwrap();
        assert_eq!(vault.get_value("k").unwrap(), Some(json!("old")), "{op:?}");
        vault.store_value("k", &json!("newer"), &i()).unwrap();
        assert_eq!(vault.get_value("k").unwrap(), Some(json!("newer")));
    }
}

#[test]
fn a_soter_counter_that_cannot_be_written_signs_nothing_and_is_never_reused() {
    for (op, errno) in [(Op::Rename, ENOSPC), (Op::Write, EIO), (Op::Fsync, ENOSPC)] {
        let rig = Rig::new();
        rig.sensor.enroll("right-index");
        let caller = CallerId::new("wx-app-10206").unwrap();
        let start = |challenge: &str| StartRequest {
            challenge: challenge.into(),
            request_auth_modes: vec!["fingerPrint".into()],
            auth_content: "Pay".into(),
        };
        rig.sensor.touch(&[Touch::Match]);
        soter::prepare_auth_key(&rig.platform, &caller, &i()).unwrap();
        rig.sensor.touch(&[Touch::Match]);
        let first =
            soter::start_soter_authentication(&rig.platform, &caller, &start("a"), &i()).unwrap();
        let first: ResultJson = serde_json::from_str(&first.result_json).unwrap();
        let counter_file = rig.platform.state_dir().join("soter-counter.json");
        let stored = std::fs::read(&counter_file).unwrap();
        {
            let _fault = faults::inject(op, 1, errno);
            rig.sensor.touch(&[Touch::Match]);
            let err = soter::start_soter_authentication(&rig.platform, &caller, &start("b"), &i())
                .unwrap_err();
            assert_eq!(err.err_code, 90007, "{op:?}: {err:?}");
        }
        assert_eq!(std::fs::read(&counter_file).unwrap(), stored, "{op:?}");
        assert!(temp_files(rig.platform.state_dir()).is_empty(), "{op:?}");
        rig.sensor.touch(&[Touch::Match]);
        let next =
            soter::start_soter_authentication(&rig.platform, &caller, &start("c"), &i()).unwrap();
        let next: ResultJson = serde_json::from_str(&next.result_json).unwrap();
        assert!(
            next.counter > first.counter,
            "{op:?}: {} then {}",
            first.counter,
            next.counter
        );
    }
}
