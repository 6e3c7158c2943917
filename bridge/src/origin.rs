//! The caller's origin and the RP ID it may use (WebAuthn L3 §5.1.3 step 7-8, §5.1.4.1 step
//! 6-7, and "is a registrable domain suffix of or is equal to" from the HTML standard).
//!
//! The origin is supplied by the host (the extension's background page reads it from the
//! sender's tab, a webview from its navigation state): it is never taken from page data.

use url::{Host, Url};

use crate::error::BridgeError;

/// A caller's origin, checked to be one that may use WebAuthn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerOrigin {
    /// The ASCII serialisation (`https://example.com`, `http://localhost:8080`).
    serialized: String,
    /// The host, lowercase ASCII (punycode for IDNs).
    host: String,
    /// `localhost` or a name under `.localhost`.
    localhost: bool,
}

impl CallerOrigin {
    /// Parses and checks an origin: `https://HOST[:PORT]`, or `http://localhost[:PORT]` and
    /// `http://NAME.localhost[:PORT]` for development. IP addresses, other schemes, paths,
    /// queries, fragments and credentials are `SecurityError`.
    pub fn parse(origin: &str) -> Result<Self, BridgeError> {
        let url = Url::parse(origin)
            .map_err(|e| BridgeError::security(format!("{origin:?} is not an origin ({e})")))?;
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || url.path() != "/"
        {
            return Err(BridgeError::security(format!(
                "{origin:?} is a URL, not an origin"
            )));
        }
        let host = match url.host() {
            Some(Host::Domain(d)) if !d.ends_with('.') => d.to_ascii_lowercase(),
            Some(Host::Domain(_)) => {
                return Err(BridgeError::security(format!(
                    "{origin:?}: a host with a trailing dot is another origin than its RP ID"
                )));
            }
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => {
                return Err(BridgeError::security(format!(
                    "{origin:?}: an IP address cannot be an RP ID"
                )));
            }
            None => {
                return Err(BridgeError::security(format!("{origin:?} has no host")));
            }
        };
        let localhost = host == "localhost" || host.ends_with(".localhost");
        match url.scheme() {
            "https" => {}
            "http" if localhost => {}
            "http" => {
                return Err(BridgeError::security(format!(
                    "{origin:?}: WebAuthn needs https (plain http only for localhost)"
                )));
            }
            other => {
                return Err(BridgeError::security(format!(
                    "{origin:?}: the scheme {other:?} cannot use WebAuthn"
                )));
            }
        }
        Ok(Self {
            serialized: url.origin().ascii_serialization(),
            host,
            localhost,
        })
    }

    /// The serialised origin, as it goes into clientDataJSON.
    pub fn as_str(&self) -> &str {
        &self.serialized
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The RP ID this origin uses for `rp_id` (or its host when `None`): it must equal the
    /// host or be a registrable domain suffix of it, and must not be a public suffix.
    pub fn rp_id_for(&self, rp_id: Option<&str>) -> Result<String, BridgeError> {
        let Some(requested) = rp_id else {
            if !self.localhost && psl::domain(self.host.as_bytes()).is_none() {
                return Err(BridgeError::security(format!(
                    "{:?} is a public suffix and cannot be an RP ID",
                    self.host
                )));
            }
            return Ok(self.host.clone());
        };
        let rp_id = normalize_rp_id(requested)?;
        let suffix_of_host = self.host == rp_id
            || self
                .host
                .strip_suffix(rp_id.as_str())
                .is_some_and(|head| head.ends_with('.'));
        if !suffix_of_host {
            return Err(BridgeError::security(format!(
                "the RP ID {requested:?} is not {:?} or a parent domain of it",
                self.host
            )));
        }
        let is_localhost = rp_id == "localhost" || rp_id.ends_with(".localhost");
        if is_localhost {
            return Ok(rp_id);
        }
        if psl::domain(rp_id.as_bytes()).is_none() {
            return Err(BridgeError::security(format!(
                "the RP ID {requested:?} is a public suffix"
            )));
        }
        Ok(rp_id)
    }
}

/// An RP ID as a lowercase ASCII domain (IDNs to punycode); IP addresses and anything that is
/// not a domain are `SecurityError`.
fn normalize_rp_id(rp_id: &str) -> Result<String, BridgeError> {
    if rp_id.is_empty() || rp_id.len() > 253 || rp_id.ends_with('.') {
        return Err(BridgeError::security(format!(
            "{rp_id:?} is not a valid RP ID"
        )));
    }
    match Host::parse(rp_id) {
        Ok(Host::Domain(d)) => {
            if d.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                || d.split('.').any(str::is_empty)
            {
                return Err(BridgeError::security(format!(
                    "{rp_id:?} is not a valid RP ID"
                )));
            }
            Ok(d.to_ascii_lowercase())
        }
        Ok(Host::Ipv4(_) | Host::Ipv6(_)) => Err(BridgeError::security(format!(
            "{rp_id:?}: an IP address cannot be an RP ID"
        ))),
        Err(e) => Err(BridgeError::security(format!(
            "{rp_id:?} is not a valid RP ID ({e})"
        ))),
    }
}

/// The longest tab title kept, in bytes.
pub const MAX_TAB_TITLE_BYTES: usize = 120;

/// A caller: its origin and, for a nested browsing context, the top-level origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The origin of the calling document.
    pub origin: CallerOrigin,
    /// The top-level origin when it differs from `origin` (a cross-origin iframe).
    pub top_origin: Option<String>,
    /// The requesting tab's title as the page gives it (`"tab"` beside the options), so that
    /// a person with two tabs of one site open knows which one asks. Untrusted: the prompt
    /// cleans it and says it is the page's own name.
    pub tab_title: Option<String>,
}

impl Caller {
    /// Checks `origin` and `top_origin` as the host supplied them. A top origin equal to the
    /// origin means "not cross-origin".
    pub fn new(origin: &str, top_origin: Option<&str>) -> Result<Self, BridgeError> {
        let origin = CallerOrigin::parse(origin)?;
        let top_origin = match top_origin {
            None => None,
            Some(top) => {
                let top = CallerOrigin::parse(top)?;
                (top.as_str() != origin.as_str()).then(|| top.as_str().to_owned())
            }
        };
        Ok(Self {
            origin,
            top_origin,
            tab_title: None,
        })
    }

    /// The caller with the tab title a request carries (its `"tab"`: a string; anything else, or
    /// an empty one, is no title). Over [`MAX_TAB_TITLE_BYTES`] it is cut at a character
    /// boundary: a title is a label, not a message.
    pub fn with_tab_title(mut self, tab: Option<&serde_json::Value>) -> Self {
        self.tab_title = tab
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                let mut end = t.len().min(MAX_TAB_TITLE_BYTES);
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                t.get(..end).unwrap_or_default().to_owned()
            });
        self
    }

    /// Whether the caller is nested in a document of another origin.
    pub fn cross_origin(&self) -> bool {
        self.top_origin.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorName;

    /// (origin, requested RP ID, expected RP ID or None for SecurityError)
    const TABLE: &[(&str, Option<&str>, Option<&str>)] = &[
        ("https://example.com", None, Some("example.com")),
        (
            "https://example.com",
            Some("example.com"),
            Some("example.com"),
        ),
        (
            "https://login.example.com",
            Some("example.com"),
            Some("example.com"),
        ),
        (
            "https://a.b.example.com:8443",
            Some("b.example.com"),
            Some("b.example.com"),
        ),
        (
            "https://Example.COM",
            Some("EXAMPLE.com"),
            Some("example.com"),
        ),
        ("https://example.com", Some("login.example.com"), None),
        ("https://notexample.com", Some("example.com"), None),
        ("https://example.com.evil.net", Some("example.com"), None),
        ("https://evil.example", Some("localhost"), None),
        (
            "https://www.example.co.uk",
            Some("example.co.uk"),
            Some("example.co.uk"),
        ),
        ("https://www.example.co.uk", Some("co.uk"), None),
        ("https://example.co.uk", Some("uk"), None),
        (
            "https://alice.github.io",
            Some("alice.github.io"),
            Some("alice.github.io"),
        ),
        ("https://alice.github.io", Some("github.io"), None),
        ("https://github.io", None, None),
        ("https://co.uk", None, None),
        ("https://example.com", Some("com"), None),
        ("https://example.com.", Some("example.com"), None),
        ("http://localhost", None, Some("localhost")),
        (
            "http://localhost:8080",
            Some("localhost"),
            Some("localhost"),
        ),
        ("https://localhost:8443", None, Some("localhost")),
        (
            "http://app.localhost:3000",
            Some("localhost"),
            Some("localhost"),
        ),
        ("http://app.localhost:3000", None, Some("app.localhost")),
        ("http://example.com", None, None),
        ("http://example.com:8080", Some("example.com"), None),
        ("https://127.0.0.1", None, None),
        ("https://127.0.0.1:8443", Some("127.0.0.1"), None),
        ("http://127.0.0.1:8080", None, None),
        ("https://[::1]", None, None),
        ("https://example.com", Some("93.184.216.34"), None),
        ("ftp://example.com", None, None),
        ("chrome-extension://abcdefghijklmnop", None, None),
        ("https://example.com/path", None, None),
        ("https://user@example.com", None, None),
        ("https://example.com?q=1", None, None),
        ("not an origin", None, None),
        ("https://example.com", Some(""), None),
        ("https://example.com", Some("example.com."), None),
        ("https://example.com", Some("exa mple.com"), None),
        (
            "https://xn--bcher-kva.example",
            Some("bücher.example"),
            Some("xn--bcher-kva.example"),
        ),
    ];

    #[test]
    fn rp_id_table() {
        for &(origin, requested, expected) in TABLE {
            let got = CallerOrigin::parse(origin).and_then(|o| o.rp_id_for(requested));
            match (expected, got) {
                (Some(want), Ok(rp)) => assert_eq!(rp, want, "{origin} {requested:?}"),
                (None, Err(e)) => {
                    assert_eq!(e.name, ErrorName::SecurityError, "{origin} {requested:?}");
                }
                (want, got) => panic!("{origin} {requested:?}: wanted {want:?}, got {got:?}"),
            }
        }
        assert!(TABLE.len() >= 15);
    }

    #[test]
    fn origins_are_serialised_as_browsers_do() {
        for (input, serialized) in [
            ("https://Example.com", "https://example.com"),
            ("https://example.com/", "https://example.com"),
            ("https://example.com:443", "https://example.com"),
            ("https://example.com:8443", "https://example.com:8443"),
            ("http://localhost:8080", "http://localhost:8080"),
        ] {
            assert_eq!(CallerOrigin::parse(input).unwrap().as_str(), serialized);
        }
    }

    #[test]
    fn top_origin_only_when_cross_origin() {
        let same = Caller::new("https://example.com", Some("https://example.com/")).unwrap();
        assert!(!same.cross_origin());
        assert_eq!(same.top_origin, None);
        let nested = Caller::new("https://pay.example", Some("https://shop.example")).unwrap();
        assert!(nested.cross_origin());
        assert_eq!(nested.top_origin.as_deref(), Some("https://shop.example"));
        assert_eq!(
            Caller::new("https://pay.example", Some("http://shop.example"))
                .unwrap_err()
                .name,
            ErrorName::SecurityError
        );
    }
}
