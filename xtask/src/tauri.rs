//! The Tauri suite: the plugins' unit tests and lints, then the example app built against
//! Debian's WebKitGTK and driven in a real webview (tauri-driver + WebKitWebDriver under Xvfb)
//! by `examples/tauri-app/tests` (webdriverio, TAP).
//!
//! Tauri is ~260 crates, so it lives in its own workspace (`examples/tauri-app`, with the
//! plugin crates as members); it builds into the main target directory, where the
//! dependencies both workspaces share are already built.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::parse::{self, TestCounts, cargo_test_counts};
use crate::run::{Step, probe};
use crate::suites::{Context, SuiteResult, ready_binary};

/// The tauri-driver release the tests are written against.
const TAURI_DRIVER_VERSION: &str = "2.1.0";

/// The example workspace, relative to the repository root.
const EXAMPLE: &str = "examples/tauri-app";

/// The suite: the plugins' unit tests and clippy, the app's build, the WebDriver journeys.
pub fn run(ctx: &mut Context<'_>) -> SuiteResult {
    let binary = match ready_binary(ctx) {
        Ok(binary) => binary,
        Err(result) => return result,
    };
    let outcome = crate::target_dir(ctx.root)
        .and_then(|target| journeys(ctx.root, &binary, &target, ctx.filter));
    match outcome {
        Ok((counts, notes)) => SuiteResult {
            ok: counts.failed == 0 && counts.passed > 0,
            counts: Some(counts),
            note: notes.join("; "),
            elapsed: Duration::ZERO,
        },
        Err(err) => SuiteResult {
            ok: false,
            counts: None,
            note: format!("{err:#}"),
            elapsed: Duration::ZERO,
        },
    }
}

/// The example's three cargo commands, each through the lint wrapper (see `crate::lints`):
/// every target of the example's workspace built with clippy's lints (`--no-run`), the
/// workspace's unit tests (the plugins'), the app's build.
fn cargo_commands(root: &Path, target: &Path) -> [Vec<String>; 3] {
    let manifest = root.join(EXAMPLE).join("Cargo.toml");
    let common = |command: &str| {
        vec![
            command.to_owned(),
            "--manifest-path".to_owned(),
            manifest.to_string_lossy().into_owned(),
            "--target-dir".to_owned(),
            target.to_string_lossy().into_owned(),
        ]
    };
    let locked: Vec<String> = crate::locked_flag()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut lint = common("test");
    // The example's workspace has no examples or benchmarks: `cargo test`'s targets are all.
    lint.extend(["--workspace", "--no-run"].map(str::to_owned));
    lint.extend(locked.iter().cloned());
    // The whole workspace, as the lint build: one feature set, nothing compiled again (the
    // app itself has no unit tests; the plugins' run).
    let mut test = common("test");
    test.push("--workspace".to_owned());
    test.extend(locked.iter().cloned());
    let mut build = common("build");
    build.extend(locked);
    [lint, test, build]
}

fn cargo_step(root: &Path, args: &[String]) -> Step {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::lints::cargo(&args, root)
}

/// Builds and runs everything; the counts (unit tests + journeys) and notes.
fn journeys(
    root: &Path,
    binary: &Path,
    target: &Path,
    filter: Option<&str>,
) -> Result<(TestCounts, Vec<String>)> {
    let driver = ensure_tauri_driver()?;
    let example = root.join(EXAMPLE);
    let tests_dir = example.join("tests");
    npm_ci(&tests_dir)?;
    vendor_guest_js(&example)?;

    let mut notes = Vec::new();
    let mut counts = TestCounts::default();
    let [lint_args, test_args, build_args] = cargo_commands(root, target);

    // The lint build (every target, clippy's lints), the plugins' unit tests, then the app.
    let lint = cargo_step(root, &lint_args).run()?;
    if let Some(why) = crate::lints::verdict(lint.success, &lint.status_text(), lint.lines()) {
        notes.push(format!("clippy: {why}"));
        counts.failed = counts.failed.saturating_add(1);
    }
    let unit = cargo_step(root, &test_args).run()?;
    let unit_counts = cargo_test_counts(unit.lines());
    counts.add(unit_counts);
    if !unit.success {
        notes.push(format!("plugin unit tests {}", unit.status_text()));
        if unit_counts.failed == 0 {
            counts.failed = counts.failed.saturating_add(1);
        }
    }
    let build = cargo_step(root, &build_args).run()?;
    if !build.success {
        bail!("building the example app {}", build.status_text());
    }
    let app = target.join("debug").join("passgate-tauri-example");

    let journeys = Step::new("npm", &["test", "--silent"], &tests_dir)
        .env("PASSGATE_BIN", binary.as_os_str())
        .env("PASSGATE_TEST_NAME_PATTERN", filter.unwrap_or_default())
        .env("TAURI_EXAMPLE_BIN", app.as_os_str())
        .env("TAURI_DRIVER", driver.as_os_str())
        .env(
            "SCREENSHOT_DIR",
            root.join("web-demo").join("test-output").join("tauri"),
        )
        .run()?;
    match parse::tap_counts(journeys.lines()) {
        Some(c) => {
            counts.add(c);
            if !journeys.success && c.failed == 0 {
                counts.failed = counts.failed.saturating_add(1);
                notes.push(format!("journeys {}", journeys.status_text()));
            }
        }
        None => {
            counts.failed = counts.failed.saturating_add(1);
            notes.push(format!(
                "journeys {} and printed no TAP summary",
                journeys.status_text()
            ));
        }
    }
    Ok((counts, notes))
}

/// `tauri-driver` at the pinned version, installed with cargo when missing.
fn ensure_tauri_driver() -> Result<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let driver = home.join("bin").join("tauri-driver");
    let current = probe(&driver.to_string_lossy(), &["--version"])
        && std::process::Command::new(&driver)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(TAURI_DRIVER_VERSION));
    if !current {
        let version = format!("={TAURI_DRIVER_VERSION}");
        let captured = Step::new(
            &crate::cargo(),
            &["install", "tauri-driver", "--version", &version, "--locked"],
            Path::new("."),
        )
        .run()?;
        if !captured.success {
            bail!("cargo install tauri-driver {}", captured.status_text());
        }
    }
    Ok(driver)
}

/// `npm ci` when `node_modules` is missing or older than the lockfile.
fn npm_ci(dir: &Path) -> Result<()> {
    if crate::deps::npm_is_stale(dir) {
        let captured = Step::new("npm", &["ci", "--no-audit", "--no-fund"], dir).run()?;
        if !captured.success {
            bail!("npm ci in {} {}", dir.display(), captured.status_text());
        }
    }
    Ok(())
}

/// Copies the pinned `@tauri-apps/api` and `@tauri-apps/plugin-biometric` ES modules into the
/// example's `dist/vendor/` (git-ignored), where its import map finds them: the official
/// package runs unmodified, only its import specifier is resolved by the page.
fn vendor_guest_js(example: &Path) -> Result<()> {
    let modules = example
        .join("tests")
        .join("node_modules")
        .join("@tauri-apps");
    let vendor = example.join("dist").join("vendor");
    copy_tree(&modules.join("api"), &vendor.join("tauri-apps-api"))?;
    copy_tree(
        &modules.join("plugin-biometric").join("dist-js"),
        &vendor.join("tauri-apps-plugin-biometric"),
    )
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&path, &dest)?;
        } else if path.extension().is_some_and(|e| e == "js") {
            std::fs::copy(&path, &dest)
                .with_context(|| format!("copying {} to {}", path.display(), dest.display()))?;
        }
    }
    Ok(())
}
