//! WebAuthn L3 JSON as pages and clients send it (proto's options and credential forms, the
//! relying party's `AuthenticationResponseJSON`), and the caller origin → RP ID rule the
//! bridge applies to it.
//!
//! Input: 1 selector byte, then the JSON (or, for the origin rule, `origin NUL rpId`).
//! Checks: no panic; what parses serialises to JSON that parses to the same value; an RP ID
//! the bridge accepts is the origin's host or a parent domain of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passgate_proto::webauthn::{
    AuthenticationResponseJson, CreationOptions, RegistrationResponseJson, RequestOptions,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(json: &[u8]) {
    let Ok(first) = serde_json::from_slice::<T>(json) else {
        return;
    };
    let encoded = serde_json::to_vec(&first).expect("a parsed value serialises");
    let second: T = serde_json::from_slice(&encoded).expect("our JSON parses");
    assert_eq!(first, second);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => round_trip::<CreationOptions>(json),
        1 => round_trip::<RequestOptions>(json),
        2 => round_trip::<RegistrationResponseJson>(json),
        3 => round_trip::<AuthenticationResponseJson>(json),
        4 => {
            // The relying party's own form (read by sign-in and the verify API).
            use passgate_relying_party::verify::AuthenticationResponseJson as RpForm;
            if let Ok(first) = serde_json::from_slice::<RpForm>(json) {
                let encoded = serde_json::to_vec(&first).unwrap();
                let second: RpForm = serde_json::from_slice(&encoded).unwrap();
                assert_eq!(serde_json::to_vec(&second).unwrap(), encoded);
            }
        }
        _ => {
            let (origin, rp_id) = passgate_fuzz::split_once(json, 0);
            let (Ok(origin), Ok(rp_id)) = (std::str::from_utf8(origin), std::str::from_utf8(rp_id))
            else {
                return;
            };
            let Ok(caller) = passgate_bridge::origin::CallerOrigin::parse(origin) else {
                return;
            };
            let requested = (!rp_id.is_empty()).then_some(rp_id);
            if let Ok(accepted) = caller.rp_id_for(requested) {
                let host = caller.host();
                assert!(
                    host == accepted || host.ends_with(&format!(".{accepted}")),
                    "{origin:?} was given the RP ID {accepted:?}"
                );
            }
        }
    }
});
