//! Which origin a page has, from the webview's URL (the host's knowledge, never the page's).

use url::Url;

/// The origins the plugin answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    /// The origin the app's own pages get (they are served by Tauri's custom protocol, whose
    /// `tauri://localhost` no WebAuthn client accepts).
    pub app_origin: String,
    /// Other origins (remote pages the app's capabilities let call the plugin).
    pub allowed: Vec<String>,
}

impl Default for OriginPolicy {
    fn default() -> Self {
        Self {
            app_origin: "http://tauri.localhost".into(),
            allowed: Vec::new(),
        }
    }
}

/// The caller's origin for a page at `url`, or why it gets no answer.
pub fn caller_origin(url: &Url, policy: &OriginPolicy) -> Result<String, String> {
    // Tauri serves the app's bundled pages from `tauri://localhost` (Linux, macOS) or
    // `http(s)://tauri.localhost` (Windows, Android): all of them are the app itself.
    let own = match (url.scheme(), url.host_str()) {
        ("tauri", Some("localhost")) => true,
        ("http" | "https", Some("tauri.localhost")) => url.port().is_none(),
        _ => false,
    };
    if own {
        return Ok(policy.app_origin.clone());
    }
    let origin = url.origin();
    if !origin.is_tuple() {
        return Err(format!("{} has an opaque origin", redact(url)));
    }
    let serialized = origin.ascii_serialization();
    if policy
        .allowed
        .iter()
        .any(|a| a.trim_end_matches('/') == serialized)
    {
        Ok(serialized)
    } else {
        Err(format!(
            "pages of {serialized} may not use passgate in this app (not among its allowed origins)"
        ))
    }
}

/// The URL without path, query or credentials, for messages.
fn redact(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OriginPolicy {
        OriginPolicy {
            app_origin: "https://app.example".into(),
            allowed: vec!["http://localhost:8080".into()],
        }
    }

    #[test]
    fn the_apps_own_pages_get_the_app_origin() {
        for url in [
            "tauri://localhost/index.html",
            "http://tauri.localhost/",
            "https://tauri.localhost/a?b#c",
        ] {
            let url = Url::parse(url).unwrap();
            assert_eq!(
                caller_origin(&url, &policy()).as_deref(),
                Ok("https://app.example")
            );
        }
    }

    #[test]
    fn allowed_origins_pass_and_everything_else_is_refused() {
        let ok = Url::parse("http://localhost:8080/app.html?x=1").unwrap();
        assert_eq!(
            caller_origin(&ok, &policy()).as_deref(),
            Ok("http://localhost:8080")
        );
        for url in [
            "http://localhost:8081/",
            "http://127.0.0.1:8080/",
            "https://evil.example/",
            "tauri://evil/",
            "http://tauri.localhost:9000/",
            "data:text/html,hi",
            "about:blank",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(caller_origin(&url, &policy()).is_err(), "{url}");
        }
    }
}
