//! clientDataJSON: the bridge's serialiser (CollectedClientData, §5.8.1.2) and the relying
//! party's reader of it.
//!
//! Input: 1 selector byte; then either raw clientDataJSON for the reader, or
//! `challenge NUL origin [NUL topOrigin]` for the writer. Checks: no panic; what the bridge
//! writes, the relying party reads back as the same type, challenge and origin, and it is
//! JSON with exactly those members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passgate_bridge::client_data::{CeremonyType, client_data_json};
use passgate_proto::b64;
use passgate_relying_party::verify::client_data_summary;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let _ = client_data_summary(&b64::encode(rest));
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = client_data_summary(text);
        }
        return;
    }
    let (challenge, rest) = passgate_fuzz::split_once(rest, 0);
    let (origin, top) = passgate_fuzz::split_once(rest, 0);
    let Ok(origin) = std::str::from_utf8(origin) else {
        return;
    };
    let top = std::str::from_utf8(top).ok().filter(|_| which & 2 != 0);
    let kind = if which & 4 == 0 {
        CeremonyType::Create
    } else {
        CeremonyType::Get
    };
    let json = client_data_json(kind, challenge, origin, top);
    let parsed: serde_json::Value = serde_json::from_slice(&json).expect("the bridge writes JSON");
    assert_eq!(parsed["type"], kind.as_str());
    assert_eq!(parsed["crossOrigin"], top.is_some());
    let summary = client_data_summary(&b64::encode(&json)).expect("the relying party reads it");
    assert_eq!(summary.type_, kind.as_str());
    assert_eq!(summary.challenge, challenge);
    assert_eq!(summary.origin, origin);
});
