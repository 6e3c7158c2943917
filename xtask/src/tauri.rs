//! The Tauri suite: the plugin's unit tests and clippy, then the example app built against
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
    let outcome = crate::target_dir(ctx.root).and_then(|target| {
        let locked = crate::locked_flag();
        journeys(ctx.root, &binary, &target, &locked, ctx.filter)
    });
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

/// Builds and runs everything; the counts (unit tests + journeys) and notes.
fn journeys(
    root: &Path,
    binary: &Path,
    target: &Path,
    locked: &[&str],
    filter: Option<&str>,
) -> Result<(TestCounts, Vec<String>)> {
    let driver = ensure_tauri_driver()?;
    let example = root.join(EXAMPLE);
    let manifest = example.join("Cargo.toml");
    let manifest_arg = manifest.to_string_lossy().into_owned();
    let target_arg = target.to_string_lossy().into_owned();
    let tests_dir = example.join("tests");
    npm_ci(&tests_dir)?;
    vendor_guest_js(&example)?;

    let mut notes = Vec::new();
    let mut counts = TestCounts::default();
    let cargo = crate::cargo();
    let plugins = [
        "-p",
        "tauri-plugin-passgate",
        "-p",
        "tauri-plugin-passgate-biometric",
    ];

    // The plugins' unit tests and lints, then the app.
    let mut test_args = vec![
        "test",
        "--manifest-path",
        &manifest_arg,
        "--target-dir",
        &target_arg,
    ];
    test_args.extend(plugins);
    test_args.extend(locked);
    let unit = Step::new(&cargo, &test_args, root).run()?;
    let unit_counts = cargo_test_counts(unit.lines());
    counts.add(unit_counts);
    if !unit.success {
        notes.push(format!("plugin unit tests {}", unit.status_text()));
        if unit_counts.failed == 0 {
            counts.failed = counts.failed.saturating_add(1);
        }
    }
    let mut clippy_args = vec![
        "clippy",
        "--manifest-path",
        &manifest_arg,
        "--target-dir",
        &target_arg,
    ];
    clippy_args.extend(["--workspace", "--all-targets"]);
    clippy_args.extend(locked);
    clippy_args.extend(["--", "-D", "warnings"]);
    let clippy = Step::new(&cargo, &clippy_args, root).run()?;
    if !clippy.success {
        notes.push(format!("clippy {}", clippy.status_text()));
        counts.failed = counts.failed.saturating_add(1);
    }
    let mut build_args = vec![
        "build",
        "--manifest-path",
        &manifest_arg,
        "--target-dir",
        &target_arg,
    ];
    build_args.extend(locked);
    let build = Step::new(&cargo, &build_args, root).run()?;
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
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (
        modified(&dir.join("package-lock.json")),
        modified(&dir.join("node_modules").join(".package-lock.json")),
    ) {
        (Some(lock), Some(installed)) => installed < lock,
        _ => true,
    };
    if stale {
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
