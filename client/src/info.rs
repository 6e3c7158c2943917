//! [`AuthenticatorInfo`]: what authenticatorGetInfo (CTAP 2.1 §6.4) says, as a client needs it.

use ciborium::value::Value;

use crate::cbor::{int_key, integer, text, text_key};

/// What getInfo says about the authenticator: algorithms, extensions, options and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorInfo {
    /// The public-key algorithms (COSE identifiers); ES256 only when getInfo lists none.
    pub algorithms: Vec<i64>,
    /// The extension identifiers offered.
    pub extensions: Vec<String>,
    /// The `rk` option: discoverable credentials can be stored.
    pub rk: bool,
    /// The `uv` option: `None` without a built-in method, `Some(false)` with a sensor and
    /// nothing enrolled, `Some(true)` when it can verify now.
    pub uv: Option<bool>,
    /// The FIDO `uvModality` bits of the built-in method (fingerprint `0x02`).
    pub uv_modality: Option<u32>,
    /// The `clientPin` option: `None` without PIN support, else whether a PIN is set.
    pub client_pin: Option<bool>,
    /// The `alwaysUv` option: every makeCredential/getAssertion needs verification.
    pub always_uv: bool,
    /// The `makeCredUvNotRqd` option: non-discoverable credentials can be made without
    /// verification.
    pub make_cred_uv_not_rqd: bool,
    /// `maxCredentialCountInList` (1 when not said).
    pub max_list: usize,
    /// `maxCredentialIdLength` (1024 when not said).
    pub max_id_length: usize,
    /// The shortest PIN the authenticator accepts, `minPINLength` (4 when not said).
    pub min_pin_length: usize,
    /// The AAGUID (empty when not said): which authenticator model answered, e.g. to drop
    /// state kept for another one.
    pub aaguid: Vec<u8>,
}

impl AuthenticatorInfo {
    /// Reads a getInfo response map; what is missing or malformed takes the CTAP default.
    pub fn parse(v: &Value) -> Self {
        let option = |name: &str| match int_key(v, 4).and_then(|o| text_key(o, name)) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        };
        let algorithms = match int_key(v, 10) {
            Some(Value::Array(items)) => items
                .iter()
                .filter(|i| text(text_key(i, "type")) == Some("public-key"))
                .filter_map(|i| integer(text_key(i, "alg")))
                .collect(),
            // CTAP 2.1 §6.4: absent means ES256 only.
            _ => vec![-7],
        };
        let extensions = match int_key(v, 2) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| text(Some(i)).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let size = |key: i64, default: usize| {
            integer(int_key(v, key))
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        Self {
            algorithms,
            extensions,
            rk: option("rk").unwrap_or(false),
            uv: option("uv"),
            uv_modality: integer(int_key(v, 0x12)).and_then(|m| u32::try_from(m).ok()),
            client_pin: option("clientPin"),
            always_uv: option("alwaysUv").unwrap_or(false),
            make_cred_uv_not_rqd: option("makeCredUvNotRqd").unwrap_or(false),
            max_list: size(7, 1),
            max_id_length: size(8, 1024),
            // CTAP 2.1 §6.4: absent means the default minimum of 4.
            min_pin_length: size(0x0D, 4),
            aaguid: crate::cbor::bytes(int_key(v, 3))
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
        }
    }

    /// Whether the extension `name` is offered.
    pub fn has_extension(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e == name)
    }

    /// Whether the built-in method can verify the user now (`uv` is true).
    pub fn uv_builtin(&self) -> bool {
        self.uv == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::{int_map, text_map};

    #[test]
    fn an_empty_answer_takes_the_ctap_defaults() {
        let info = AuthenticatorInfo::parse(&Value::Map(Vec::new()));
        assert_eq!(info.algorithms, vec![-7]);
        assert!(info.extensions.is_empty());
        assert_eq!(
            (info.uv, info.client_pin, info.uv_modality),
            (None, None, None)
        );
        assert!(!info.rk && !info.always_uv && !info.make_cred_uv_not_rqd && !info.uv_builtin());
        assert_eq!(
            (info.max_list, info.max_id_length, info.min_pin_length),
            (1, 1024, 4)
        );
    }

    #[test]
    fn options_extensions_and_limits_are_read() {
        let answer = int_map(vec![
            (
                2,
                Value::Array(vec![
                    Value::Text("hmac-secret".into()),
                    Value::Text("credProtect".into()),
                ]),
            ),
            (
                4,
                text_map(vec![
                    ("rk", Value::Bool(true)),
                    ("uv", Value::Bool(false)),
                    ("clientPin", Value::Bool(true)),
                    ("makeCredUvNotRqd", Value::Bool(true)),
                ]),
            ),
            (7, Value::Integer(8.into())),
            (8, Value::Integer(128.into())),
            (
                10,
                Value::Array(vec![
                    text_map(vec![
                        ("alg", Value::Integer((-8).into())),
                        ("type", Value::Text("public-key".into())),
                    ]),
                    text_map(vec![
                        ("alg", Value::Integer((-7).into())),
                        ("type", Value::Text("other".into())),
                    ]),
                ]),
            ),
            (0x0D, Value::Integer(6.into())),
            (0x12, Value::Integer(2.into())),
        ]);
        let info = AuthenticatorInfo::parse(&answer);
        assert_eq!(info.algorithms, vec![-8]);
        assert!(info.has_extension("hmac-secret") && !info.has_extension("hmac-secret-mc"));
        assert_eq!((info.uv, info.client_pin), (Some(false), Some(true)));
        assert!(!info.uv_builtin());
        assert!(info.rk && info.make_cred_uv_not_rqd && !info.always_uv);
        assert_eq!(info.uv_modality, Some(2));
        assert_eq!(
            (info.max_list, info.max_id_length, info.min_pin_length),
            (8, 128, 6)
        );
    }
}
