//! The `cross-targets` suite: `cargo check` and `cargo clippy -D warnings` of the platform
//! backends for the operating systems they are written for (macOS, iOS, Windows), from Linux,
//! so that code which never runs here still compiles and stays lint-clean.
//!
//! The backends depend only on the C-free seams crate and on Rust bindings to the OS
//! frameworks, so no C cross-compiler or SDK is needed: only the Rust standard library for
//! each target, which this suite installs with `rustup target add` when it is missing. Each
//! (target, check or clippy) pair counts as one test in the totals.

use std::path::Path;
use std::time::Duration;

use crate::parse::TestCounts;
use crate::run::Step;
use crate::suites::{Context, SuiteResult};
use crate::{cargo, locked_flag};

/// The crates checked for Apple targets.
const APPLE_PACKAGES: [&str; 2] = ["passgate-platform-api", "passgate-platform-apple"];
/// The crates checked for Windows targets.
const WINDOWS_PACKAGES: [&str; 2] = ["passgate-platform-api", "passgate-platform-windows"];

/// Each target and the crates built for it.
const TARGETS: [(&str, &[&str]); 4] = [
    ("aarch64-apple-darwin", &APPLE_PACKAGES),
    ("x86_64-apple-darwin", &APPLE_PACKAGES),
    ("aarch64-apple-ios", &APPLE_PACKAGES),
    ("x86_64-pc-windows-msvc", &WINDOWS_PACKAGES),
];

/// One cargo invocation of the suite.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CrossCheck {
    /// What is printed for it: `clippy aarch64-apple-ios`.
    label: String,
    /// The cargo arguments.
    args: Vec<String>,
}

/// The cargo invocations: for every target, `check` then `clippy -D warnings`, both with
/// `--all-targets` (the unit tests compile for the target too).
fn plan(locked: &[&str]) -> Vec<CrossCheck> {
    let mut checks = Vec::new();
    for (target, packages) in TARGETS {
        for command in ["check", "clippy"] {
            let mut args = vec![command.to_owned()];
            for package in packages {
                args.extend(["-p".to_owned(), (*package).to_owned()]);
            }
            args.extend(["--target", target, "--all-targets"].map(str::to_owned));
            args.extend(locked.iter().map(|s| (*s).to_owned()));
            if command == "clippy" {
                args.extend(["--", "-D", "warnings"].map(str::to_owned));
            }
            checks.push(CrossCheck {
                label: format!("{command} {target}"),
                args,
            });
        }
    }
    checks
}

/// The targets of [`TARGETS`] missing from `rustup target list --installed` output.
fn missing_targets(installed: &str) -> Vec<&'static str> {
    TARGETS
        .iter()
        .map(|(target, _)| *target)
        .filter(|target| !installed.lines().any(|line| line.trim() == *target))
        .collect()
}

/// Installs the missing targets' standard libraries.
fn ensure_targets(root: &Path) -> Result<(), String> {
    let listed = Step::new("rustup", &["target", "list", "--installed"], root)
        .run()
        .map_err(|e| format!("could not run rustup: {e:#}"))?;
    if !listed.success {
        return Err(format!("`rustup target list` {}", listed.status_text()));
    }
    let installed: Vec<&str> = listed.lines().collect();
    let missing = missing_targets(&installed.join("\n"));
    if missing.is_empty() {
        return Ok(());
    }
    let mut args = vec!["target", "add"];
    args.extend(missing.iter().copied());
    let added = Step::new("rustup", &args, root)
        .run()
        .map_err(|e| format!("could not run rustup: {e:#}"))?;
    if added.success {
        Ok(())
    } else {
        Err(format!(
            "`rustup target add {}` {}",
            missing.join(" "),
            added.status_text()
        ))
    }
}

/// Runs the suite.
pub(crate) fn run(ctx: &mut Context<'_>) -> SuiteResult {
    let root = ctx.root;
    if let Err(note) = ensure_targets(root) {
        return SuiteResult {
            ok: false,
            counts: None,
            note,
            elapsed: Duration::ZERO,
        };
    }
    let cargo = cargo();
    let mut counts = TestCounts::default();
    let mut failed: Vec<String> = Vec::new();
    for check in plan(&locked_flag()) {
        let args: Vec<&str> = check.args.iter().map(String::as_str).collect();
        let ok = Step::new(&cargo, &args, root)
            .run()
            .is_ok_and(|captured| captured.success);
        if ok {
            counts.passed = counts.passed.saturating_add(1);
        } else {
            counts.failed = counts.failed.saturating_add(1);
            failed.push(check.label);
        }
    }
    SuiteResult {
        ok: failed.is_empty(),
        counts: Some(counts),
        note: if failed.is_empty() {
            String::new()
        } else {
            format!("failed: {}", failed.join(", "))
        },
        elapsed: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_gets_check_then_clippy_of_its_backends() {
        let checks = plan(&[]);
        assert_eq!(checks.len(), 8);
        assert_eq!(checks[0].label, "check aarch64-apple-darwin");
        assert_eq!(
            checks[0].args.join(" "),
            "check -p passgate-platform-api -p passgate-platform-apple \
             --target aarch64-apple-darwin --all-targets"
        );
        assert_eq!(checks[1].label, "clippy aarch64-apple-darwin");
        assert_eq!(
            checks[1].args.join(" "),
            "clippy -p passgate-platform-api -p passgate-platform-apple \
             --target aarch64-apple-darwin --all-targets -- -D warnings"
        );
        assert_eq!(
            checks[7].args.join(" "),
            "clippy -p passgate-platform-api -p passgate-platform-windows \
             --target x86_64-pc-windows-msvc --all-targets -- -D warnings"
        );
        let labels: Vec<&str> = checks.iter().map(|c| c.label.as_str()).collect();
        assert!(labels.contains(&"check aarch64-apple-ios"));
        assert!(labels.contains(&"clippy x86_64-apple-darwin"));
        // --locked goes before the `--` that starts clippy's own arguments.
        let locked = plan(&["--locked"]);
        assert!(
            locked[1]
                .args
                .join(" ")
                .ends_with("--locked -- -D warnings")
        );
    }

    #[test]
    fn only_missing_targets_are_installed() {
        let installed = "x86_64-unknown-linux-gnu\naarch64-apple-darwin\nx86_64-pc-windows-msvc\n";
        assert_eq!(
            missing_targets(installed),
            vec!["x86_64-apple-darwin", "aarch64-apple-ios"]
        );
        let all =
            "aarch64-apple-darwin\nx86_64-apple-darwin\naarch64-apple-ios\nx86_64-pc-windows-msvc";
        assert!(missing_targets(all).is_empty());
        assert_eq!(missing_targets("").len(), 4);
    }
}
