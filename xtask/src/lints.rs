//! Clippy's lints on the build the tests use, instead of a second compilation.
//!
//! `cargo clippy` is `cargo check` with clippy-driver compiling the workspace's crates. Check
//! results are not a build's, so it type-checks every dependency a second time: on a cold CI
//! machine that pass cost about as much as a third of all the compiling of `cargo xtask test`.
//! clippy-driver is a drop-in rustc that adds clippy's lints, so the same lints run when it
//! compiles the workspace's crates for the tests: every cargo command of a workspace here sets
//! `RUSTC_WORKSPACE_WRAPPER=clippy-driver` (the dependencies are compiled by rustc as before,
//! once). The lints stay at their levels (the workspace's `[lints]` table and clippy's
//! defaults), so a warning does not stop the tests from building, and the lint step fails on
//! any warning, as `-D warnings` did. Cargo replays a fresh crate's warnings from its cache,
//! so a warning is reported on every run until it is fixed, not only on the run that compiled
//! it.

use std::path::Path;
use std::sync::OnceLock;

use crate::run::{Step, probe};

/// The compiler wrapper that adds clippy's lints.
const WRAPPER: &str = "clippy-driver";

/// Whether clippy-driver runs here (rustup's `clippy` component).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| probe(WRAPPER, &["--version"]))
}

/// `cargo ARGS` in `dir`, with clippy-driver compiling the workspace's crates when it is
/// installed (without it the commands still build and test, unlinted, and the lint step says
/// why it failed).
pub fn cargo(args: &[&str], dir: &Path) -> Step {
    let step = Step::new(&crate::cargo(), args, dir);
    if available() {
        step.env("RUSTC_WORKSPACE_WRAPPER", WRAPPER)
    } else {
        step
    }
}

/// Cargo's summary lines for the crates that got warnings: "warning: `xtask` (bin "xtask"
/// test) generated 2 warnings (run `cargo clippy --fix ...`)", one per crate target.
pub fn warned<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    lines
        .into_iter()
        .filter(|line| {
            line.strip_prefix("warning: `").is_some_and(|rest| {
                rest.split_once(" generated ")
                    .is_some_and(|(_, count)| count.contains(" warning"))
            })
        })
        .collect()
}

/// The verdict of a lint build: `None` when it compiled without a warning, otherwise why it
/// failed.
pub fn verdict<'a>(
    success: bool,
    status: &str,
    lines: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    if !available() {
        return Some(format!(
            "{WRAPPER} is not installed (`rustup component add clippy`)"
        ));
    }
    let warned = warned(lines);
    match (success, warned.is_empty()) {
        (true, true) => None,
        (true, false) => Some(format!(
            "warnings (clippy or rustc) in {} crate target(s): {}",
            warned.len(),
            warned
                .iter()
                .map(|line| line.trim_start_matches("warning: ").trim())
                .collect::<Vec<_>>()
                .join("; ")
        )),
        (false, _) => Some(format!("the build {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cargos_per_crate_warning_summaries_count() {
        let output = [
            "warning: length comparison to zero",
            "  --> xtask/src/main.rs:73:34",
            "warning: `xtask` (bin \"xtask\" test) generated 2 warnings (run `cargo clippy \
             --fix --bin \"xtask\" -p xtask --tests` to apply 2 suggestions)",
            "warning: `passgate-proto` (lib) generated 1 warning",
            "warning: unused manifest key: package.foo",
            "    Finished `test` profile [unoptimized + debuginfo] target(s) in 3m 19s",
        ];
        assert_eq!(
            warned(output),
            vec![
                output[2],
                "warning: `passgate-proto` (lib) generated 1 warning"
            ]
        );
        assert!(
            warned([
                "    Finished `test` profile",
                "warning: unused manifest key: x"
            ])
            .is_empty()
        );
    }
}
