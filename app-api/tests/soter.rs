//! SOTER-compatible signing on a real in-process authenticator with a scripted sensor; the
//! results are checked with the relying party's SOTER verifier (RSASSA-PSS, salt 20).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{Rig, Touch};
use passgate_app_api::soter::{self, StartRequest};
use passgate_app_api::{AppDevice, CallerId, NoPasscode, Platform};
use passgate_authenticator::api::user_verifier::Interaction;
use passgate_relying_party::soter::{
    KeyJson, ResultJson, decode_base64, pem_to_spki, rsa_2048, verify_pss20,
};
use serde_json::json;

fn caller() -> CallerId {
    CallerId::new("wx-app-10206").unwrap()
}

fn start(challenge: &str) -> StartRequest {
    StartRequest {
        challenge: challenge.into(),
        request_auth_modes: vec!["fingerPrint".into()],
        auth_content: "Use your fingerprint to pay".into(),
    }
}

fn i() -> Interaction {
    Interaction::new()
}

#[test]
fn support_and_enrollment_follow_the_sensor() {
    let rig = Rig::new();
    assert_eq!(
        soter::check_is_support_soter_authentication(&rig.platform),
        json!({"supportMode": ["fingerPrint"], "errMsg": "checkIsSupportSoterAuthentication:ok"})
    );
    assert_eq!(
        soter::check_is_soter_enrolled_in_device(&rig.platform, "fingerPrint").unwrap()["isEnrolled"],
        false
    );
    rig.sensor.enroll("right-index");
    assert_eq!(
        soter::check_is_soter_enrolled_in_device(&rig.platform, "fingerPrint").unwrap(),
        json!({"isEnrolled": true, "errMsg": "checkIsSoterEnrolledInDevice:ok"})
    );
    assert_eq!(
        soter::check_is_soter_enrolled_in_device(&rig.platform, "facial").unwrap()["isEnrolled"],
        false
    );
    assert_eq!(
        soter::check_is_soter_enrolled_in_device(&rig.platform, "iris")
            .unwrap_err()
            .err_code,
        90003
    );
    rig.sensor.unplug();
    assert_eq!(
        soter::check_is_support_soter_authentication(&rig.platform)["supportMode"],
        json!([])
    );
    let err =
        soter::start_soter_authentication(&rig.platform, &caller(), &start("c"), &i()).unwrap_err();
    assert_eq!(err.err_code, 90001);
    assert_eq!(
        err.err_msg,
        "startSoterAuthentication:fail not support soter"
    );
}

#[test]
fn a_prepared_key_signs_results_the_relying_party_verifier_accepts() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let err =
        soter::start_soter_authentication(&rig.platform, &caller(), &start("c"), &i()).unwrap_err();
    assert_eq!(
        (err.err_code, err.err_msg.as_str()),
        (90007, "startSoterAuthentication:fail auth key update error")
    );
    rig.sensor.touch(&[Touch::Match]);
    let auth_key = soter::prepare_auth_key(&rig.platform, &caller(), &i()).unwrap();
    assert_eq!(auth_key.key_store, "software");
    assert_eq!(
        soter::get_auth_key(&rig.platform, &caller()).unwrap(),
        auth_key
    );
    let key_json: KeyJson = serde_json::from_str(&auth_key.key_json).unwrap();
    assert!(
        auth_key
            .key_json
            .starts_with(r#"{"pub_key":"-----BEGIN PUBLIC KEY-----\n"#)
    );
    assert_eq!(key_json.uid, "wx-app-10206");
    assert_eq!(key_json.cpu_id.len(), 32);
    assert_eq!(key_json.counter, 1);
    let public = rsa_2048(&pem_to_spki(&key_json.pub_key).unwrap()).unwrap();
    let key_sig = decode_base64(&auth_key.key_json_signature).unwrap();
    assert_eq!(key_sig.len(), 256);
    assert!(verify_pss20(
        &public,
        auth_key.key_json.as_bytes(),
        &key_sig
    ));

    let mut counters = Vec::new();
    for challenge in ["order-4711", "order-4712"] {
        rig.sensor.touch(&[Touch::Match]);
        let result =
            soter::start_soter_authentication(&rig.platform, &caller(), &start(challenge), &i())
                .unwrap();
        assert_eq!(result.auth_mode, "fingerPrint");
        assert_eq!(result.err_code, 0);
        assert_eq!(result.err_msg, "startSoterAuthentication:ok");
        let positions: Vec<usize> = [
            "raw", "fid", "counter", "tee_n", "tee_v", "fp_n", "fp_v", "cpu_id", "uid",
        ]
        .iter()
        .map(|k| result.result_json.find(&format!("\"{k}\":")).unwrap())
        .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "SOTER's members, in SOTER's order: {}",
            result.result_json
        );
        assert!(
            result
                .result_json
                .starts_with(&format!("{{\"raw\":\"{challenge}\","))
        );
        let parsed: ResultJson = serde_json::from_str(&result.result_json).unwrap();
        assert_eq!(parsed.raw, challenge);
        assert_eq!(parsed.cpu_id, key_json.cpu_id);
        assert_eq!(parsed.uid, key_json.uid);
        assert_eq!(parsed.fp_n, "fprintd");
        assert_eq!(parsed.fid.len(), 16);
        let signature = decode_base64(&result.result_json_signature).unwrap();
        assert!(verify_pss20(
            &public,
            result.result_json.as_bytes(),
            &signature
        ));
        let mut tampered = result.result_json.clone().into_bytes();
        tampered[9] ^= 1;
        assert!(!verify_pss20(&public, &tampered, &signature));
        counters.push(parsed.counter);
    }
    assert_eq!(
        counters,
        vec![2, 3],
        "strictly increasing, after the key's own"
    );

    // The counter is durable: a new process (platform) on the same state continues it.
    let platform = Platform::new(
        AppDevice::in_process(Arc::clone(&rig.authenticator)),
        &rig.app_dir(),
        Box::new(NoPasscode),
    )
    .unwrap();
    rig.sensor.touch(&[Touch::Match]);
    let next = soter::start_soter_authentication(&platform, &caller(), &start("x"), &i()).unwrap();
    let parsed: ResultJson = serde_json::from_str(&next.result_json).unwrap();
    assert_eq!(parsed.counter, 4);
    // Nothing on disk holds the private key in the clear.
    for (path, mode) in common::files(&rig.app_dir()) {
        assert_eq!(mode, 0o600, "{}", path.display());
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(!text.contains("PRIVATE KEY"), "{}", path.display());
    }
}

#[test]
fn failures_carry_soter_error_codes() {
    let rig = Rig::with(2, |p| p);
    rig.sensor.enroll("right-index");
    rig.sensor.touch(&[Touch::Match]);
    soter::prepare_auth_key(&rig.platform, &caller(), &i()).unwrap();
    let code = |req: &StartRequest| {
        soter::start_soter_authentication(&rig.platform, &caller(), req, &i())
            .map(|_| 0)
            .unwrap_or_else(|e| e.err_code)
    };
    assert_eq!(code(&start("")), 90004);
    assert_eq!(code(&start(&"x".repeat(513))), 90004);
    let mut long = start("c");
    long.auth_content = "y".repeat(43);
    assert_eq!(code(&long), 90005);
    let mut facial = start("c");
    facial.request_auth_modes = vec!["facial".into()];
    assert_eq!(code(&facial), 90003);
    assert_eq!(rig.sensor.scans(), 1, "bad requests never reach the sensor");
    rig.sensor.touch(&[Touch::Cancel]);
    assert_eq!(code(&start("c")), 90008);
    rig.sensor.touch(&[Touch::NoMatch]);
    assert_eq!(code(&start("c")), 90009);
    rig.sensor.touch(&[Touch::NoMatch]);
    assert_eq!(
        code(&start("c")),
        90010,
        "the second failed scan locks the sensor out"
    );
    assert_eq!(code(&start("c")), 90010);
}

#[test]
fn an_enrollment_change_invalidates_the_auth_key_until_it_is_prepared_again() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    rig.sensor.touch(&[Touch::Match]);
    let first = soter::prepare_auth_key(&rig.platform, &caller(), &i()).unwrap();
    rig.sensor.enroll("left-thumb");
    let err =
        soter::start_soter_authentication(&rig.platform, &caller(), &start("c"), &i()).unwrap_err();
    assert_eq!(err.err_code, 90007);
    assert!(
        err.detail.contains("prepare the auth key again"),
        "{}",
        err.detail
    );
    rig.sensor.touch(&[Touch::Match, Touch::Match]);
    let second = soter::prepare_auth_key(&rig.platform, &caller(), &i()).unwrap();
    assert_ne!(first.key_json, second.key_json, "a new key");
    soter::start_soter_authentication(&rig.platform, &caller(), &start("c"), &i()).unwrap();
}

/// With SOTER keys in a TPM, the device counter is the TPM's NV counter: it only goes up,
/// across restarts of the TPM and when the state directory is rolled back to an older copy.
/// The TPM commands of one SOTER signature are counted on the bus.
#[cfg(feature = "tpm")]
#[test]
fn the_counter_of_tpm_keys_is_a_tpm_nv_counter_that_survives_state_rollback() {
    use passgate_app_api::soter::KeyBackend;
    use passgate_authenticator::tpm::capture::{TpmBusRecorder, command_names};

    let tpm_state = tempfile::tempdir().unwrap();
    let tpm = passgate_testkit::swtpm::Swtpm::start(tpm_state.path());
    let bus = TpmBusRecorder::start(tpm.port).unwrap();
    let rig = Rig::with(8, |p| {
        p.with_soter_keys(KeyBackend::Tpm { tcti: bus.tcti() })
    });
    rig.sensor.enroll("right-index");
    rig.sensor.touch(&[Touch::Match]);
    let auth_key = soter::prepare_auth_key(&rig.platform, &caller(), &i()).unwrap();
    assert_eq!(auth_key.key_store, "tpm");
    let key_json: KeyJson = serde_json::from_str(&auth_key.key_json).unwrap();
    let public = rsa_2048(&pem_to_spki(&key_json.pub_key).unwrap()).unwrap();
    let sign = |platform: &Platform, challenge: &str| -> u64 {
        rig.sensor.touch(&[Touch::Match]);
        let result =
            soter::start_soter_authentication(platform, &caller(), &start(challenge), &i())
                .unwrap();
        let signature = decode_base64(&result.result_json_signature).unwrap();
        assert!(verify_pss20(
            &public,
            result.result_json.as_bytes(),
            &signature
        ));
        serde_json::from_str::<ResultJson>(&result.result_json)
            .unwrap()
            .counter
    };

    // A copy of the state directory as it is now.
    let backup = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", from.display()))
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    copy(&rig.app_dir(), backup.path());

    bus.take();
    let first = sign(&rig.platform, "order-1");
    let exchanges = bus.take();
    println!(
        "TPM commands: SOTER sign (startSoterAuthentication, TPM part): {} ({})",
        exchanges.len(),
        command_names(&exchanges).join(", ")
    );
    let names = command_names(&exchanges);
    assert!(!names.contains(&"CreatePrimary"), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| **n == "NV_Increment").count(),
        1,
        "{names:?}"
    );
    assert!(
        first > key_json.counter,
        "{first} after {}",
        key_json.counter
    );
    let second = sign(&rig.platform, "order-2");
    assert!(second > first);

    // Roll the state directory back to the copy: the counter does not come back.
    std::fs::remove_dir_all(rig.app_dir()).unwrap();
    std::fs::create_dir(rig.app_dir()).unwrap();
    copy(backup.path(), &rig.app_dir());
    let after_rollback = sign(&rig.platform, "order-3");
    assert!(
        after_rollback > second,
        "{after_rollback} after {second}: a rolled-back state directory replays no counter"
    );

    // A restart of the TPM (same TPM state): still higher.
    drop(bus);
    drop(tpm);
    let tpm = passgate_testkit::swtpm::Swtpm::start(tpm_state.path());
    let platform = Platform::new(
        AppDevice::in_process(Arc::clone(&rig.authenticator)),
        &rig.app_dir(),
        Box::new(NoPasscode),
    )
    .unwrap()
    .with_soter_keys(KeyBackend::Tpm { tcti: tpm.tcti() });
    let after_restart = sign(&platform, "order-4");
    assert!(after_restart > after_rollback);
}

#[test]
fn fid_is_per_finger_stable_and_reveals_no_name() {
    let rig = Rig::new();
    let a = soter::finger_id(&rig.platform, Some("right-index-finger")).unwrap();
    let b = soter::finger_id(&rig.platform, Some("left-thumb")).unwrap();
    let unnamed = soter::finger_id(&rig.platform, None).unwrap();
    assert_eq!(a.len(), 16);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
    assert_ne!(a, unnamed);
    // The same finger, again: the same ID (the key is kept, 0600).
    assert_eq!(
        soter::finger_id(&rig.platform, Some("right-index-finger")).unwrap(),
        a
    );
    let key = rig.platform.state_dir().join("soter-fid.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Not a digest of the name alone: another device (another key) gives another ID.
    let other = Rig::new();
    assert_ne!(
        soter::finger_id(&other.platform, Some("right-index-finger")).unwrap(),
        a
    );
    // A damaged key is an error, not a silent new identity.
    std::fs::write(&key, b"short").unwrap();
    assert!(soter::finger_id(&rig.platform, Some("right-index-finger")).is_err());
}
