//! Which key stores and user verifiers this build of `passgate` contains, for `passgate status`:
//! honest about the platform backends that exist as crates (`passgate-platform-apple`,
//! `passgate-platform-windows`) but are not wired into this binary.

/// The backends compiled into this binary, and those passgate has that it does not contain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildBackends {
    /// Key stores `--key-store` can select in this build.
    pub key_stores: Vec<&'static str>,
    /// User verifiers `--user-verifier` can select in this build (presence is always there).
    pub user_verifiers: Vec<&'static str>,
    /// Backends that exist in passgate's source but not in this binary, with why.
    pub not_in_this_build: Vec<MissingBackend>,
}

/// A backend passgate has that this binary does not contain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingBackend {
    /// Its name (`tpm`, `secure-enclave`, ...).
    pub name: &'static str,
    /// Why it is not in this build.
    pub why: &'static str,
}

/// This build's backends.
pub fn build_backends() -> BuildBackends {
    let mut key_stores = vec!["software"];
    let mut user_verifiers = vec!["presence"];
    let mut not_in_this_build = Vec::new();
    if cfg!(feature = "tpm") {
        key_stores.push("tpm");
    } else {
        not_in_this_build.push(MissingBackend {
            name: "tpm",
            why: "build with --features tpm",
        });
    }
    if cfg!(feature = "fprintd") {
        user_verifiers.push("fprintd");
    } else {
        not_in_this_build.push(MissingBackend {
            name: "fprintd",
            why: "built with --no-default-features",
        });
    }
    // The Apple and Windows crates are cross-checked in CI but not yet selectable here.
    for name in ["secure-enclave", "local-authentication"] {
        not_in_this_build.push(MissingBackend {
            name,
            why: "macOS/iOS backend (passgate-platform-apple), not wired into the binary; never run on Apple hardware",
        });
    }
    for name in ["windows-platform-crypto", "windows-hello"] {
        not_in_this_build.push(MissingBackend {
            name,
            why: "Windows backend (passgate-platform-windows), not wired into the binary; never run on Windows",
        });
    }
    BuildBackends {
        key_stores,
        user_verifiers,
        not_in_this_build,
    }
}

impl BuildBackends {
    /// The lines of plain `passgate status`.
    pub fn to_text(&self) -> String {
        let missing: Vec<&str> = self.not_in_this_build.iter().map(|m| m.name).collect();
        format!(
            "backends in this build: key stores {}; user verifiers {}\nnot in this build: {}",
            self.key_stores.join(", "),
            self.user_verifiers.join(", "),
            missing.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_lists_what_it_has_and_the_platform_backends_it_lacks() {
        let backends = build_backends();
        assert_eq!(backends.key_stores[0], "software");
        assert_eq!(backends.user_verifiers[0], "presence");
        assert_eq!(backends.key_stores.contains(&"tpm"), cfg!(feature = "tpm"));
        assert_eq!(
            backends.user_verifiers.contains(&"fprintd"),
            cfg!(feature = "fprintd")
        );
        let missing: Vec<&str> = backends.not_in_this_build.iter().map(|m| m.name).collect();
        for name in [
            "secure-enclave",
            "local-authentication",
            "windows-platform-crypto",
            "windows-hello",
        ] {
            assert!(missing.contains(&name), "{name}");
        }
        let json: serde_json::Value = serde_json::to_value(&backends).unwrap();
        assert_eq!(json["keyStores"][0], "software");
        assert_eq!(json["userVerifiers"][0], "presence");
        assert!(
            json["notInThisBuild"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["name"] == "secure-enclave")
        );
        assert!(backends.to_text().contains("not in this build: "));
    }
}
