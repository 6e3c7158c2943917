//! Server configuration: a TOML file, then `PASSGATE_RP_*` environment overrides, then flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::verify::CounterPolicy;

/// Everything `passgate rp` needs. Every field has a default that runs a development server on
/// localhost with an SQLite file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://USER:PASS@HOST/DB`.
    pub database: String,
    /// The RP ID (a registrable domain, or `localhost`).
    pub rp_id: String,
    /// The RP name shown by authenticators.
    pub rp_name: String,
    /// Exact origins accepted in clientDataJSON: `https://example.com`,
    /// `android:apk-key-hash:<base64url sha256 of the signing cert>`, `http://localhost:8080`.
    pub origins: Vec<String>,
    /// Require the UV flag (biometric or PIN) on every registration and sign-in.
    pub require_user_verification: bool,
    /// What a signature counter that did not increase does.
    pub counter_policy: CounterPolicy,
    /// How long a challenge stays valid, seconds.
    pub challenge_ttl_secs: u64,
    /// How long a session lasts, seconds.
    pub session_ttl_secs: u64,
    /// How recent a verification must be for step-up protected actions, seconds.
    pub step_up_max_age_secs: u64,
    /// Mark cookies `Secure` (browsers accept that on http://localhost too).
    pub secure_cookies: bool,
    /// Largest request body accepted, bytes.
    pub body_limit_bytes: usize,
    /// Option endpoints: burst size per client address.
    pub rate_limit_burst: u32,
    /// Option endpoints: sustained requests per second per client address (0 disables).
    pub rate_limit_per_sec: u32,
    /// Bearer tokens that may call `POST /api/verify/assertion` (kept as given; compared in
    /// constant time).
    pub api_tokens: Vec<String>,
    /// The server's receipt-signing key (PKCS#8, created 0600 if missing). All instances of one
    /// deployment share it. Defaults to `receipt-key.p8` beside an SQLite database.
    pub receipt_key: Option<PathBuf>,
    /// A directory of static pages to serve at `/` (the web demo).
    pub static_dir: Option<PathBuf>,
    /// Accept `crossOrigin: true` in clientDataJSON.
    pub allow_cross_origin: bool,
    /// Most client connections open at once on the main port (lowered to fit the open-files
    /// limit). When full, the oldest idle connection is closed to admit a new one.
    pub max_connections: usize,
    /// Seconds a connection may take to send a complete request head, counted from when it
    /// waits for one: also the keep-alive idle timeout.
    pub header_timeout_secs: u64,
    /// Seconds a request may take to send its whole body.
    pub body_timeout_secs: u64,
    /// The local bridge the demo pages pair with (`http://127.0.0.1:PORT`), served at
    /// `GET /api/local-bridge` so that the pairing dialog names the address in use, not a
    /// guess (`passgate demo` sets it; a plain relying party has none).
    pub local_bridge: Option<String>,
}

impl Default for RpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: "sqlite://passgate-rp.sqlite3".into(),
            rp_id: "localhost".into(),
            rp_name: "passgate".into(),
            origins: vec!["http://localhost:8080".into()],
            require_user_verification: true,
            counter_policy: CounterPolicy::Reject,
            challenge_ttl_secs: 300,
            session_ttl_secs: 12 * 3600,
            step_up_max_age_secs: 300,
            secure_cookies: true,
            body_limit_bytes: 64 * 1024,
            rate_limit_burst: 30,
            rate_limit_per_sec: 10,
            api_tokens: Vec::new(),
            receipt_key: None,
            static_dir: None,
            allow_cross_origin: false,
            max_connections: 4096,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            local_bridge: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid configuration in {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key).
        message: String,
    },
    /// An environment override has a bad value.
    #[error("invalid value for {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// Why.
        message: String,
    },
    /// The settings contradict each other or WebAuthn.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl RpConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Applies `PASSGATE_RP_<FIELD>` variables (upper-case field names; lists comma-separated).
    pub fn apply_env<I>(&mut self, vars: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.to_owned(),
                message: e.to_string(),
            })
        }
        fn list(value: &str) -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }
        for (name, value) in vars {
            let Some(field) = name.strip_prefix("PASSGATE_RP_") else {
                continue;
            };
            match field {
                "LISTEN" => self.listen = parse(&name, &value)?,
                "DATABASE" => self.database = value,
                "RP_ID" => self.rp_id = value,
                "RP_NAME" => self.rp_name = value,
                "ORIGINS" => self.origins = list(&value),
                "REQUIRE_USER_VERIFICATION" => {
                    self.require_user_verification = parse(&name, &value)?
                }
                "COUNTER_POLICY" => {
                    self.counter_policy = match value.as_str() {
                        "reject" => CounterPolicy::Reject,
                        "report" => CounterPolicy::Report,
                        _ => {
                            return Err(ConfigError::Env {
                                name,
                                message: "expected reject or report".into(),
                            });
                        }
                    }
                }
                "CHALLENGE_TTL_SECS" => self.challenge_ttl_secs = parse(&name, &value)?,
                "SESSION_TTL_SECS" => self.session_ttl_secs = parse(&name, &value)?,
                "STEP_UP_MAX_AGE_SECS" => self.step_up_max_age_secs = parse(&name, &value)?,
                "SECURE_COOKIES" => self.secure_cookies = parse(&name, &value)?,
                "BODY_LIMIT_BYTES" => self.body_limit_bytes = parse(&name, &value)?,
                "RATE_LIMIT_BURST" => self.rate_limit_burst = parse(&name, &value)?,
                "RATE_LIMIT_PER_SEC" => self.rate_limit_per_sec = parse(&name, &value)?,
                "API_TOKENS" => self.api_tokens = list(&value),
                "RECEIPT_KEY" => self.receipt_key = Some(PathBuf::from(value)),
                "STATIC_DIR" => self.static_dir = Some(PathBuf::from(value)),
                "ALLOW_CROSS_ORIGIN" => self.allow_cross_origin = parse(&name, &value)?,
                "MAX_CONNECTIONS" => self.max_connections = parse(&name, &value)?,
                "HEADER_TIMEOUT_SECS" => self.header_timeout_secs = parse(&name, &value)?,
                "BODY_TIMEOUT_SECS" => self.body_timeout_secs = parse(&name, &value)?,
                _ => {
                    return Err(ConfigError::Env {
                        name,
                        message: "unknown setting".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks the settings against each other and against WebAuthn's rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rp_id.is_empty() || self.rp_id.contains(['/', ':', ' ']) {
            return Err(ConfigError::Invalid(format!(
                "rp_id {:?} must be a bare domain such as example.com or localhost",
                self.rp_id
            )));
        }
        if self.origins.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one origin is required".into(),
            ));
        }
        for origin in &self.origins {
            origin_matches_rp_id(origin, &self.rp_id)?;
        }
        if self.challenge_ttl_secs == 0 || self.session_ttl_secs == 0 {
            return Err(ConfigError::Invalid("TTLs must be positive".into()));
        }
        if self.max_connections == 0 || self.header_timeout_secs == 0 || self.body_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "max_connections, header_timeout_secs and body_timeout_secs must be positive"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The main port's connection limits.
    pub fn connection_limits(&self) -> crate::http::connections::ConnectionLimits {
        crate::http::connections::ConnectionLimits {
            max_connections: self.max_connections,
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
        }
    }

    /// Where the receipt key lives.
    pub fn receipt_key_path(&self) -> PathBuf {
        if let Some(path) = &self.receipt_key {
            return path.clone();
        }
        let sqlite_path = self
            .database
            .strip_prefix("sqlite://")
            .or_else(|| self.database.strip_prefix("sqlite:"))
            .map(|p| p.split('?').next().unwrap_or(p));
        match sqlite_path.map(Path::new).and_then(Path::parent) {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("receipt-key.p8"),
            _ => PathBuf::from("receipt-key.p8"),
        }
    }
}

/// An origin is acceptable for an RP ID when it is an app origin (Android APK key hash, or any
/// non-web scheme the operator lists), or a web origin whose host is the RP ID or a subdomain of
/// it, over https (http only for localhost).
fn origin_matches_rp_id(origin: &str, rp_id: &str) -> Result<(), ConfigError> {
    if origin.starts_with("android:apk-key-hash:") {
        return Ok(());
    }
    let url = url::Url::parse(origin)
        .map_err(|e| ConfigError::Invalid(format!("origin {origin:?} is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    let local = host == "localhost" || host == "127.0.0.1" || host == "[::1]";
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        "http" => {
            return Err(ConfigError::Invalid(format!(
                "origin {origin:?} must use https (http is allowed only for localhost)"
            )));
        }
        _ => return Ok(()), // An app scheme: matched exactly, nothing to relate to the RP ID.
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(ConfigError::Invalid(format!(
            "origin {origin:?} must be scheme://host[:port] without a path"
        )));
    }
    if host == rp_id || host.ends_with(&format!(".{rp_id}")) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "origin {origin:?} is not within RP ID {rp_id:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_then_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rp.toml");
        std::fs::write(
            &path,
            "rp_id = \"example.com\"\norigins = [\"https://example.com\", \"android:apk-key-hash:abc\"]\nlisten = \"127.0.0.1:9000\"\n",
        )
        .unwrap();
        let mut config = RpConfig::from_file(&path).unwrap();
        assert_eq!(config.rp_id, "example.com");
        assert_eq!(config.listen.port(), 9000);
        config
            .apply_env([
                ("PASSGATE_RP_LISTEN".to_owned(), "127.0.0.1:9100".to_owned()),
                ("PASSGATE_RP_COUNTER_POLICY".to_owned(), "report".to_owned()),
                ("HOME".to_owned(), "/root".to_owned()),
            ])
            .unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.counter_policy, CounterPolicy::Report);
        config.validate().unwrap();

        std::fs::write(&path, "rp_idd = \"x\"\n").unwrap();
        let err = RpConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("rp_idd"), "{err}");
        let err = config
            .apply_env([("PASSGATE_RP_LISTEN".to_owned(), "nope".to_owned())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("PASSGATE_RP_LISTEN"), "{err}");
    }

    #[test]
    fn origins_must_fit_the_rp_id() {
        for (origin, rp_id, ok) in [
            ("https://example.com", "example.com", true),
            ("https://login.example.com", "example.com", true),
            ("https://badexample.com", "example.com", false),
            ("http://example.com", "example.com", false),
            ("http://localhost:8080", "localhost", true),
            (
                "android:apk-key-hash:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
                "example.com",
                true,
            ),
            ("https://example.com/path", "example.com", false),
        ] {
            assert_eq!(
                origin_matches_rp_id(origin, rp_id).is_ok(),
                ok,
                "{origin} {rp_id}"
            );
        }
    }
}
