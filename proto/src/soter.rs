//! WeChat SOTER's JSON: the signed `resultJSON` a device returns after a biometric check, and
//! the key's `keyJson` (`SoterPubKeyModel`). The app API writes them, the relying party reads
//! them; both sign and verify the exact bytes, so these types are for reading, not re-encoding.

use serde::{Deserialize, Serialize};

/// The fields of a SOTER `resultJSON` (all required, no duplicates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultJson {
    /// The challenge.
    pub raw: String,
    /// The biometric that verified.
    pub fid: String,
    /// The device counter.
    pub counter: u64,
    /// TEE name.
    pub tee_n: String,
    /// TEE version.
    pub tee_v: String,
    /// Sensor name.
    pub fp_n: String,
    /// Sensor version.
    pub fp_v: String,
    /// The device.
    pub cpu_id: String,
    /// The app.
    pub uid: String,
}

/// SOTER's key format (`SoterPubKeyModel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyJson {
    /// The public key, PEM `-----BEGIN PUBLIC KEY-----`.
    pub pub_key: String,
    /// The device.
    pub cpu_id: String,
    /// The device counter when the key was made.
    pub counter: u64,
    /// The app.
    pub uid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_field_is_required() {
        let full = r#"{"raw":"c","fid":"1","counter":7,"tee_n":"t","tee_v":"1","fp_n":"f","fp_v":"1","cpu_id":"d","uid":"u"}"#;
        let parsed: ResultJson = serde_json::from_str(full).unwrap();
        assert_eq!(parsed.counter, 7);
        assert_eq!(parsed.cpu_id, "d");
        let missing = full.replace(r#","uid":"u""#, "");
        assert!(serde_json::from_str::<ResultJson>(&missing).is_err());
        let duplicate = full.replace(r#""raw":"c","#, r#""raw":"c","raw":"d","#);
        assert!(serde_json::from_str::<ResultJson>(&duplicate).is_err());
        let key: KeyJson =
            serde_json::from_str(r#"{"pub_key":"P","cpu_id":"d","counter":1,"uid":"u"}"#).unwrap();
        assert_eq!(key.pub_key, "P");
    }
}
