//! The host-channel router: message shapes, errors for malformed requests, events carried in
//! replies, and callers kept apart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Rig, Touch};
use passgate_app_api::router::{AppRouter, MESSAGE_TYPES};
use serde_json::{Value, json};

const PAGE: &str = "https://shop.example";

fn call(router: &AppRouter, caller: &str, message: Value) -> Value {
    serde_json::from_str(&router.handle(caller, &message.to_string())).unwrap()
}

#[test]
fn every_message_type_routes_and_bad_requests_get_precise_errors() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let router = AppRouter::new(Arc::clone(&rig.platform));
    assert_eq!(MESSAGE_TYPES.len(), 27);
    for kind in MESSAGE_TYPES {
        let reply = call(&router, PAGE, json!({"type": kind, "unexpected": true}));
        if let Some(api) = kind.strip_prefix("soter.") {
            // SOTER answers malformed requests as WeChat does: with an errCode (here the
            // required member that is missing, else the unknown one).
            let expected = match api {
                "startSoterAuthentication" => (90004, "challenge error"),
                "checkIsSoterEnrolledInDevice" => (90003, "no corresponding mode"),
                _ => (90007, "invalid request"),
            };
            assert_eq!(
                (&reply["error"]["errCode"], &reply["error"]["errMsg"]),
                (
                    &json!(expected.0),
                    &json!(format!("{api}:fail {}", expected.1))
                ),
                "{kind}: unknown members are refused: {reply}"
            );
            continue;
        }
        assert_eq!(
            reply["error"]["code"], "invalidRequest",
            "{kind}: unknown members are refused: {reply}"
        );
    }
    let soter_error = |request: Value| call(&router, PAGE, request)["error"]["errCode"].clone();
    assert_eq!(
        soter_error(
            json!({"type": "soter.startSoterAuthentication", "requestAuthModes": ["fingerPrint"]})
        ),
        json!(90004),
        "no challenge"
    );
    assert_eq!(
        soter_error(
            json!({"type": "soter.startSoterAuthentication", "challenge": 7, "requestAuthModes": ["fingerPrint"]})
        ),
        json!(90004),
        "a challenge that is not a string"
    );
    assert_eq!(
        soter_error(
            json!({"type": "soter.startSoterAuthentication", "challenge": "c", "requestAuthModes": "fingerPrint"})
        ),
        json!(90003)
    );
    assert_eq!(
        soter_error(
            json!({"type": "soter.startSoterAuthentication", "challenge": "c", "requestAuthModes": ["fingerPrint"], "authContent": 1})
        ),
        json!(90005)
    );
    assert_eq!(
        soter_error(json!({"type": "soter.checkIsSoterEnrolledInDevice"})),
        json!(90003)
    );
    assert_eq!(
        soter_error(
            json!({"type": "soter.checkIsSoterEnrolledInDevice", "checkAuthMode": "fingerPrint", "x": 1})
        ),
        json!(90007),
        "an unknown member beside the required ones"
    );
    assert_eq!(
        rig.sensor.scans(),
        0,
        "no malformed request reached the sensor"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&router.handle(PAGE, "{not json")).unwrap()["error"]["code"],
        "invalidRequest"
    );
    assert_eq!(
        call(&router, PAGE, json!({}))["error"]["code"],
        "invalidRequest"
    );
    assert_eq!(
        call(&router, PAGE, json!({"type": "vault.nope"}))["error"]["code"],
        "unknownType"
    );
    assert_eq!(
        call(&router, "", json!({"type": "biometric.checkStatus"}))["error"]["code"],
        "invalidRequest"
    );
    assert_eq!(
        call(
            &router,
            PAGE,
            json!({"type": "vault.getKeys", "vaultId": "x"})
        )["error"]["code"],
        "InvalidArguments",
        "a vault must be opened first"
    );
    assert_eq!(
        call(
            &router,
            PAGE,
            json!({"type": "vault.open", "vaultId": "x", "username": "u", "authMode": "FaceOnly"})
        )["error"]["code"],
        "InvalidAuthMode"
    );
    assert_eq!(
        call(&router, PAGE, json!({"type": "biometric.checkStatus"})),
        json!({"result": {"isAvailable": true, "biometryType": "Fingerprint"}})
    );
    let soter = call(
        &router,
        PAGE,
        json!({"type": "soter.startSoterAuthentication", "challenge": "", "requestAuthModes": ["fingerPrint"]}),
    );
    assert_eq!(soter["error"]["errCode"], 90004);
    assert_eq!(
        soter["error"]["errMsg"],
        "startSoterAuthentication:fail challenge error"
    );
}

#[test]
fn a_vault_through_the_router_reports_its_events_and_callers_are_isolated() {
    let rig = Rig::new();
    rig.sensor.enroll("right-index");
    let router = AppRouter::new(Arc::clone(&rig.platform));
    let opened = call(
        &router,
        PAGE,
        json!({"type": "vault.open", "vaultId": "s", "username": "alice", "lockAfter": 200}),
    );
    assert_eq!(
        opened["result"],
        json!({"config": {"vaultId": "s", "username": "alice",
                          "descriptor": {"vaultId": "s", "username": "alice"},
                          "authMode": "BiometricAndPasscode", "lockAfter": 200, "maxAttempts": 5,
                          "hideScreenOnBackground": false, "isBiometricsEnabled": true,
                          "isPasscodeEnabled": true, "isPasscodeSetupNeeded": false,
                          "hasAppPasscode": false},
               "isLocked": false, "isInUse": false, "remainingAttempts": 5}),
        "Identity Vault's default mode, BiometricAndPasscode"
    );
    rig.sensor.touch(&[Touch::Match]);
    let stored = call(
        &router,
        PAGE,
        json!({"type": "vault.storeValue", "vaultId": "s", "key": "token", "value": {"t": 1}}),
    );
    assert_eq!(stored["result"], Value::Null);
    assert_eq!(
        stored["events"],
        json!([{"event": "unlock", "vaultId": "s", "username": "alice",
                "config": opened["result"]["config"]}])
    );
    let got = call(
        &router,
        PAGE,
        json!({"type": "vault.getValue", "vaultId": "s", "key": "token"}),
    );
    assert_eq!(got, json!({"result": {"t": 1}}), "no events this time");

    // Another origin opening the same vault ID gets its own, empty vault.
    let other = call(
        &router,
        "https://evil.example",
        json!({"type": "vault.open", "vaultId": "s", "username": "mallory"}),
    );
    assert_eq!(other["result"]["isInUse"], false);
    assert_eq!(
        call(
            &router,
            "https://evil.example",
            json!({"type": "vault.getKeys", "vaultId": "s"})
        )["result"],
        json!([])
    );

    std::thread::sleep(Duration::from_millis(500));
    let idle = call(
        &router,
        PAGE,
        json!({"type": "vault.isLocked", "vaultId": "s"}),
    );
    assert_eq!(idle["result"], true);
    assert_eq!(
        idle["events"],
        json!([{"event": "lock", "vaultId": "s", "username": "alice", "timeout": true, "saved": true}])
    );
    assert_eq!(
        call(
            &router,
            PAGE,
            json!({"type": "vault.getValue", "vaultId": "s", "key": "token"})
        )["error"]["code"],
        "VaultLocked"
    );
    rig.sensor.touch(&[Touch::Match]);
    call(
        &router,
        PAGE,
        json!({"type": "vault.unlock", "vaultId": "s"}),
    );
    let changed = call(
        &router,
        PAGE,
        json!({"type": "vault.updateConfig", "vaultId": "s", "authMode": "BiometricAndPasscode", "lockAfter": 0}),
    );
    assert_eq!(changed["result"]["lockAfter"], 0);
    assert_eq!(
        changed["events"],
        json!([{"event": "configChanged", "config": changed["result"]}])
    );
    assert_eq!(
        call(
            &router,
            PAGE,
            json!({"type": "vault.close", "vaultId": "s"})
        )["result"],
        Value::Null
    );
    assert_eq!(
        call(
            &router,
            PAGE,
            json!({"type": "vault.isLocked", "vaultId": "s"})
        )["error"]["code"],
        "InvalidArguments"
    );
}
