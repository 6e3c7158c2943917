//! The test suites `cargo xtask test` runs: one table, [`SUITES`], in running order.
//!
//! Adding a suite is one entry in [`SUITES`] (its name, the Debian packages it needs — each
//! described once in [`crate::deps::APT_PACKAGES`] —, whether it needs the Python venv, which
//! suites must run before it) and one `fn(&mut Context) -> SuiteResult` that runs it and
//! counts its tests. The driver in `main.rs` installs what the selected suites need, runs
//! them, times them and adds their counts to the final `N passed, N failed` line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::lints;
use crate::parse::{self, TestCounts, cargo_test_counts, pytest_counts};
use crate::run::{Captured, Step};
use crate::{cargo, deps, locked_flag, target_dir};

/// One test suite.
#[derive(Debug)]
pub struct Suite {
    /// Its name in `--only` and in the summary.
    pub name: &'static str,
    /// Other names `--only` accepts for it.
    pub aliases: &'static [&'static str],
    /// Suites that run before it whenever it is selected (the interop tests need the binary).
    pub requires: &'static [&'static str],
    /// The Debian packages it needs (names in [`deps::APT_PACKAGES`]).
    pub packages: &'static [&'static str],
    /// Whether it needs the Python venv with the pinned interop-test requirements.
    pub venv: bool,
    /// Runs it.
    pub run: fn(&mut Context<'_>) -> SuiteResult,
}

/// Packages every build of the workspace with `--all-features` needs: the TPM key store links
/// libtss2 (tss-esapi finds it with pkg-config).
const BUILD_PACKAGES: &[&str] = &["libtss2-dev", "pkg-config"];

/// Every suite, in the order they run.
pub const SUITES: &[Suite] = &[
    Suite {
        name: "fmt",
        aliases: &[],
        requires: &[],
        packages: &[],
        venv: false,
        run: fmt,
    },
    Suite {
        name: "clippy",
        aliases: &[],
        requires: &[],
        packages: BUILD_PACKAGES,
        venv: false,
        run: clippy,
    },
    Suite {
        name: "rust-tests",
        aliases: &["rust", "cargo-test", "unit"],
        requires: &[],
        packages: &[
            "libtss2-dev",
            "pkg-config",
            // The TPM key store tests start their own swtpm and set its DA parameters.
            "swtpm",
            "swtpm-tools",
            "tpm2-tools",
            // The bridge and binary tests run a scripted pinentry.
            "python3",
        ],
        venv: false,
        run: rust_tests,
    },
    Suite {
        name: "build",
        aliases: &[],
        requires: &[],
        packages: BUILD_PACKAGES,
        venv: false,
        run: build,
    },
    Suite {
        name: "python-interop",
        aliases: &["python", "interop"],
        requires: &["build"],
        packages: &[
            "python3",
            "python3-venv",
            "swtpm",
            "swtpm-tools",
            "tpm2-tools",
            "dbus",
            "fprintd",
            "python3-dbusmock",
            "python3-gi",
            "postgresql",
            // test_tpm_attestation.py verifies with SimpleWebAuthn (node, npm ci of
            // relying-party/loadtest's pinned @simplewebauthn/server);
            // test_seed_soter_fingerprint.py drives the SOTER snippets in Chromium.
            "nodejs",
            "npm",
            "chromium",
        ],
        venv: true,
        run: python,
    },
    Suite {
        name: "device-suite",
        aliases: &["device"],
        requires: &["build"],
        // test_bioenroll.py runs on the real fprintd, like the python interop tests.
        packages: &[
            "python3",
            "python3-venv",
            "dbus",
            "fprintd",
            "python3-dbusmock",
            "python3-gi",
        ],
        venv: true,
        run: device,
    },
    Suite {
        name: "browser",
        aliases: &["chromium"],
        requires: &["build"],
        packages: &["python3", "chromium", "nodejs", "npm", "postgresql"],
        venv: false,
        run: browser,
    },
    Suite {
        name: "tauri",
        aliases: &[],
        requires: &["build"],
        packages: &[
            "python3",
            "nodejs",
            "npm",
            "libwebkit2gtk-4.1-dev",
            "webkit2gtk-driver",
            "xvfb",
            // The plugin's in-process TPM key store (built with the `tpm` feature), and the
            // journeys keeping keys in a swtpm.
            "libtss2-dev",
            "swtpm",
            "swtpm-tools",
        ],
        venv: false,
        run: crate::tauri::run,
    },
    Suite {
        // `cargo check` and `cargo clippy -D warnings` of the platform backends for macOS,
        // iOS and Windows targets (see `cross.rs`); needs only rustup's target libraries.
        name: "cross-targets",
        aliases: &["cross"],
        requires: &[],
        packages: &[],
        venv: false,
        run: crate::cross::run,
    },
    Suite {
        name: "vm-test",
        aliases: &["vm", "uhid"],
        requires: &["build"],
        packages: &[
            "qemu-system-x86",
            "linux-image-amd64",
            "busybox-static",
            "udev",
            "fido2-tools",
            "openssh-server",
            "python3",
            "python3-venv",
        ],
        venv: true,
        run: vm_test,
    },
    Suite {
        // Every cargo-fuzz target in fuzz/ for up to 30 s each (see `fuzz.rs`): one passed
        // or failed result per target.
        name: "fuzz",
        aliases: &["fuzzing"],
        requires: &[],
        // libFuzzer is C++, built by libfuzzer-sys.
        packages: &["g++"],
        venv: false,
        run: fuzz,
    },
];

/// Suites a plain `cargo xtask test` leaves out; `--only NAME` or `--only all` runs them.
///
/// None today. `fuzz` was here while its cold build was thought not to fit CI's 45 minutes; its
/// smoke build (`cargo fuzz build --dev`, see `fuzz::Profile`) takes about 8.6 CPU-minutes
/// (518 s measured), and the 12 targets × 30 s, two at a time, 3 more (see
/// `docs/src/security/fuzzing.md`).
pub const OPT_IN: &[&str] = &[];

/// Names that select several suites.
pub const GROUPS: &[(&str, &[&str])] = &[("lint", &["fmt", "clippy"])];

/// The suite called `name` (or one of its aliases).
pub fn find(name: &str) -> Option<&'static Suite> {
    SUITES
        .iter()
        .find(|s| s.name == name || s.aliases.contains(&name))
}

/// What a suite runs with.
#[derive(Debug)]
pub struct Context<'a> {
    /// The workspace root.
    pub root: &'a Path,
    /// The `passgate` binary, once the build suite made it.
    pub binary: Option<PathBuf>,
    /// Why installing this suite's packages or venv failed, if it did.
    pub setup_error: Option<String>,
    /// Only tests whose name contains this run (suites without tests ignore it).
    pub filter: Option<&'a str>,
}

/// The outcome of one suite.
#[derive(Debug)]
pub struct SuiteResult {
    /// Whether it passed.
    pub ok: bool,
    /// Test counts, for suites that run tests.
    pub counts: Option<TestCounts>,
    /// A short human explanation (why it failed, what was counted).
    pub note: String,
    /// Its wall time (filled in by the driver).
    pub elapsed: Duration,
}

impl SuiteResult {
    fn passed(note: String) -> Self {
        Self {
            ok: true,
            counts: None,
            note,
            elapsed: Duration::ZERO,
        }
    }

    fn failed(note: String) -> Self {
        Self {
            ok: false,
            counts: None,
            note,
            elapsed: Duration::ZERO,
        }
    }
}

/// Runs a cargo sub-command whose only outcome is success or failure.
fn cargo_check(root: &Path, args: &[&str]) -> SuiteResult {
    match Step::new(&cargo(), args, root).run() {
        Ok(captured) if captured.success => SuiteResult::passed(String::new()),
        Ok(captured) => SuiteResult::failed(format!(
            "`cargo {}` {}",
            args.join(" "),
            captured.status_text()
        )),
        Err(err) => SuiteResult::failed(format!("could not run cargo: {err:#}")),
    }
}

fn fmt(ctx: &mut Context<'_>) -> SuiteResult {
    cargo_check(ctx.root, &["fmt", "--all", "--", "--check"])
}

/// Builds every target of the workspace as the tests use it, with clippy's lints (see
/// `crate::lints`): the same lints as `cargo clippy --workspace --all-targets --all-features
/// -- -D warnings`, without a second compilation of the dependencies. Two builds: `cargo
/// test`'s own targets (what the rust-tests suite then runs without compiling anything;
/// examples built as examples), then the benchmarks. `--all-targets` would build the examples
/// as tests, a second kind of unit that `cargo test` does not reuse.
fn clippy(ctx: &mut Context<'_>) -> SuiteResult {
    if let Some(err) = &ctx.setup_error {
        return SuiteResult::failed(format!("not run: setup failed: {err}"));
    }
    let mut failures = Vec::new();
    for targets in [&[][..], &["--benches"][..]] {
        let args = test_build_args(targets);
        match lints::cargo(&args, ctx.root).run() {
            Ok(captured) => {
                if let Some(why) =
                    lints::verdict(captured.success, &captured.status_text(), captured.lines())
                {
                    failures.push(format!("`cargo {}`: {why}", args.join(" ")));
                }
            }
            Err(err) => failures.push(format!("could not run cargo: {err:#}")),
        }
    }
    if failures.is_empty() {
        SuiteResult::passed(String::new())
    } else {
        SuiteResult::failed(failures.join("; "))
    }
}

/// `cargo test --workspace --all-features --no-run` with `targets`: the workspace's test
/// build, which the clippy suite lints and whose `passgate` binary the build suite takes (both
/// must be the same command, or the second compiles again).
fn test_build_args(targets: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["test", "--workspace", "--all-features", "--no-run"];
    args.extend(targets);
    args.extend(locked_flag());
    args
}

/// The arguments of the workspace's `cargo test`, with the test-name filter after `--`.
fn rust_test_args(filter: Option<&str>) -> Vec<&str> {
    // --all-features: the TPM key store and its swtpm tests are part of every run.
    // --no-fail-fast: one failing test binary must not hide the results of the others.
    let mut args = vec!["test", "--workspace", "--all-features", "--no-fail-fast"];
    args.extend(locked_flag());
    if let Some(filter) = filter {
        args.extend(["--", filter]);
    }
    args
}

fn rust_tests(ctx: &mut Context<'_>) -> SuiteResult {
    if let Some(err) = &ctx.setup_error {
        return SuiteResult::failed(format!("not run: setup failed: {err}"));
    }
    let args = rust_test_args(ctx.filter);
    // Through the lint wrapper, as the clippy suite built them: nothing is compiled again.
    let captured = match lints::cargo(&args, ctx.root).run() {
        Ok(captured) => captured,
        Err(err) => return SuiteResult::failed(format!("could not run cargo: {err:#}")),
    };
    let counts = cargo_test_counts(captured.lines());
    let mut notes = Vec::new();
    if !captured.success && counts.failed == 0 {
        notes.push(format!(
            "`cargo test` {} without a failing test result (compile error?)",
            captured.status_text()
        ));
    } else if counts.failed > 0 {
        notes.push(format!("{} test(s) failed", counts.failed));
    }
    if let Some(filter) = ctx
        .filter
        .filter(|_| counts.passed == 0 && counts.failed == 0)
    {
        notes.push(format!("no test matched `{filter}`"));
    }
    SuiteResult {
        ok: notes.is_empty(),
        counts: Some(counts),
        note: notes.join("; "),
        elapsed: Duration::ZERO,
    }
}

/// Builds the `passgate` binary; later suites find it in [`Context::binary`].
///
/// It is the binary the workspace's test build makes for the binary's own integration tests
/// (`target/debug/passgate`), so it costs nothing after the clippy and rust-tests suites. A
/// `cargo build --bin passgate` would resolve the dependencies' features without the
/// dev-dependencies (they add `std`/`alloc` implementations and test-only APIs such as rsa's
/// `hazmat` and rustix's `pty`) and so compile about a third of the dependency graph a second
/// time: several minutes on a cold CI machine.
fn build(ctx: &mut Context<'_>) -> SuiteResult {
    if let Some(err) = &ctx.setup_error {
        return SuiteResult::failed(format!("not run: setup failed: {err}"));
    }
    let args = test_build_args(&[]);
    let outcome = lints::cargo(&args, ctx.root).run().and_then(|captured| {
        if !captured.success {
            bail!("`cargo {}` {}", args.join(" "), captured.status_text());
        }
        let binary = target_dir(ctx.root)?.join("debug").join("passgate");
        if !binary.is_file() {
            bail!(
                "the build succeeded but {} does not exist",
                binary.display()
            );
        }
        Ok(binary)
    });
    match outcome {
        Ok(binary) => {
            let note = binary.display().to_string();
            ctx.binary = Some(binary);
            SuiteResult::passed(note)
        }
        Err(err) => SuiteResult::failed(format!("{err:#}")),
    }
}

/// The binary a suite drives, or why it cannot run.
pub(crate) fn ready_binary(ctx: &Context<'_>) -> Result<PathBuf, SuiteResult> {
    if let Some(err) = &ctx.setup_error {
        return Err(SuiteResult::failed(format!("not run: setup failed: {err}")));
    }
    ctx.binary
        .clone()
        .ok_or_else(|| SuiteResult::failed("not run: the passgate binary was not built".to_owned()))
}

/// python-fido2's own device suite (see `crate::device_suite`).
fn device(ctx: &mut Context<'_>) -> SuiteResult {
    let binary = match ready_binary(ctx) {
        Ok(binary) => binary,
        Err(result) => return result,
    };
    let outcome = target_dir(ctx.root)
        .and_then(|target| crate::device_suite::run(ctx.root, &target, &binary, ctx.filter));
    match outcome {
        Ok(outcome) => SuiteResult {
            ok: outcome.ok(),
            counts: Some(outcome.counts),
            note: outcome.note(),
            elapsed: Duration::ZERO,
        },
        Err(err) => SuiteResult::failed(format!("{err:#}")),
    }
}

fn python(ctx: &mut Context<'_>) -> SuiteResult {
    let binary = match ready_binary(ctx) {
        Ok(binary) => binary,
        Err(result) => return result,
    };
    let root = ctx.root;
    let python = deps::venv_python(root);
    let tests_dir = root.join("ctap-tests").join("python");
    let tests_arg = tests_dir.to_string_lossy().into_owned();
    let mut args = vec![
        "-m",
        "pytest",
        tests_arg.as_str(),
        "-v",
        "-ra",
        "-p",
        "no:cacheprovider",
    ];
    if let Some(filter) = ctx.filter {
        args.extend(["-k", filter]);
    }
    let python_str = python.to_string_lossy().into_owned();
    let captured: Captured = match Step::new(&python_str, &args, root)
        .env("PASSGATE_BIN", binary.as_os_str())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .run()
    {
        Ok(captured) => captured,
        Err(err) => return SuiteResult::failed(format!("could not run pytest: {err:#}")),
    };
    let Some(counts) = pytest_counts(captured.lines()) else {
        return SuiteResult::failed(format!(
            "pytest {} and printed no summary line",
            captured.status_text()
        ));
    };
    let mut notes = Vec::new();
    if counts.skipped > 0 {
        notes.push(format!(
            "{} test(s) skipped: every interop test must run",
            counts.skipped
        ));
    }
    if counts.passed == 0 && counts.failed == 0 {
        notes.push("no tests ran".to_owned());
    }
    // pytest exits 5 when `-k` deselects everything; "no tests ran" already says so.
    if !captured.success {
        notes.push(format!("pytest {}", captured.status_text()));
    }
    let ok = captured.success && counts.failed == 0 && counts.skipped == 0 && counts.passed > 0;
    SuiteResult {
        ok,
        counts: Some(TestCounts {
            passed: counts.passed,
            // A skipped interop test hides a missing feature: count it as a failure.
            failed: counts.failed.saturating_add(counts.skipped),
        }),
        note: notes.join("; "),
        elapsed: Duration::ZERO,
    }
}

/// Boots a real kernel in QEMU and drives passgate on uhid there (see `crate::vm`).
fn vm_test(ctx: &mut Context<'_>) -> SuiteResult {
    let binary = match ready_binary(ctx) {
        Ok(binary) => binary,
        Err(result) => return result,
    };
    let outcome =
        target_dir(ctx.root).and_then(|target| crate::vm::run(ctx.root, &target, &binary));
    match outcome {
        Ok((counts, note)) => SuiteResult {
            ok: counts.failed == 0 && counts.passed > 0,
            counts: Some(counts),
            note,
            elapsed: Duration::ZERO,
        },
        Err(err) => SuiteResult::failed(format!("{err:#}")),
    }
}

/// The npm projects whose `npm test` runs headless Chromium against the built binary.
const BROWSER_TEST_DIRS: &[&str] = &["relying-party/browser", "web-demo"];

/// For each of [`BROWSER_TEST_DIRS`] that exists: `npm ci` (when `node_modules` is missing or
/// older than the lockfile) and `npm test`; the tests print TAP, whose `# pass N` / `# fail N`
/// lines are counted and summed.
fn browser(ctx: &mut Context<'_>) -> SuiteResult {
    let binary = match ready_binary(ctx) {
        Ok(binary) => binary,
        Err(result) => return result,
    };
    let mut total = TestCounts::default();
    let mut notes = Vec::new();
    let mut ok = true;
    for dir in BROWSER_TEST_DIRS {
        let dir_path = ctx.root.join(dir);
        if !dir_path.join("package.json").exists() {
            continue;
        }
        match npm_test(&dir_path, &binary, ctx.filter) {
            Ok((counts, success)) => {
                total.add(counts);
                if !success || counts.failed > 0 {
                    ok = false;
                    notes.push(format!("{dir}: npm test failed"));
                }
            }
            Err(note) => {
                ok = false;
                total.failed = total.failed.saturating_add(1);
                notes.push(format!("{dir}: {note}"));
            }
        }
    }
    if total.passed == 0 {
        ok = false;
        notes.push("no browser tests ran".to_owned());
    }
    SuiteResult {
        ok,
        counts: Some(total),
        note: notes.join("; "),
        elapsed: Duration::ZERO,
    }
}

/// `npm ci` when needed, then `npm test --silent` with `PASSGATE_BIN` (and the test-name
/// filter in `PASSGATE_TEST_NAME_PATTERN`, which the `test` scripts hand to node as
/// `--test-name-pattern`); the TAP totals and whether npm succeeded.
fn npm_test(
    dir: &Path,
    binary: &Path,
    filter: Option<&str>,
) -> std::result::Result<(TestCounts, bool), String> {
    if deps::npm_is_stale(dir) {
        match Step::new("npm", &["ci", "--no-audit", "--no-fund"], dir).run() {
            Ok(c) if c.success => {}
            Ok(c) => return Err(format!("`npm ci` {}", c.status_text())),
            Err(err) => return Err(format!("could not run npm: {err:#}")),
        }
    }
    let captured = Step::new("npm", &["test", "--silent"], dir)
        .env("PASSGATE_BIN", binary.as_os_str())
        .env("PASSGATE_TEST_NAME_PATTERN", filter.unwrap_or_default())
        .run()
        .map_err(|err| format!("could not run npm test: {err:#}"))?;
    let counts = parse::tap_counts(captured.lines()).ok_or_else(|| {
        format!(
            "npm test {} and printed no TAP summary",
            captured.status_text()
        )
    })?;
    Ok((counts, captured.success))
}

/// The Debian packages `suites` need, each once, in table order.
pub fn packages_of<'a>(suites: impl IntoIterator<Item = &'a Suite>) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for suite in suites {
        for name in suite.packages {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    names
}

/// Checks the table: every required suite and package exists, and runs earlier.
pub fn check_table() -> Result<()> {
    for (index, suite) in SUITES.iter().enumerate() {
        for required in suite.requires {
            let Some(position) = SUITES.iter().position(|s| s.name == *required) else {
                bail!("suite {} requires unknown suite {required}", suite.name);
            };
            if position >= index {
                bail!("suite {} requires {required}, which runs later", suite.name);
            }
        }
        for package in suite.packages {
            if !deps::APT_PACKAGES.iter().any(|p| p.name == *package) {
                bail!(
                    "suite {} needs package {package}, which is not described in deps::APT_PACKAGES",
                    suite.name
                );
            }
        }
    }
    Ok(())
}

/// Builds the fuzz targets and runs each for [`crate::fuzz::ci_seconds`] (30 s, less after a
/// slow build so the suite stays within its budget), [`crate::fuzz::CI_JOBS`] at a time; a
/// target counts as passed when it ends with no crash, no hang and its RSS within the budget.
fn fuzz(ctx: &mut Context<'_>) -> SuiteResult {
    use crate::fuzz;
    if let Some(err) = &ctx.setup_error {
        return SuiteResult::failed(format!("not run: setup failed: {err}"));
    }
    let build_time = match fuzz::build(ctx.root, fuzz::Profile::Smoke) {
        Ok(time) => time,
        Err(err) => return SuiteResult::failed(format!("{err:#}")),
    };
    let targets: Vec<&'static str> = fuzz::TARGETS
        .iter()
        .copied()
        .filter(|target| ctx.filter.is_none_or(|f| target.contains(f)))
        .collect();
    let seconds = fuzz::ci_seconds(build_time, targets.len(), fuzz::CI_JOBS);
    let mut counts = TestCounts::default();
    let mut failures = Vec::new();
    fuzz::run_many(
        ctx.root,
        fuzz::Profile::Smoke,
        &targets,
        seconds,
        fuzz::CI_JOBS,
        |target, result| match result {
            Ok(run) => {
                println!("{}", fuzz::summary_line(target, &run));
                if run.ok() {
                    counts.passed += 1;
                } else {
                    counts.failed += 1;
                    failures.push(target);
                }
            }
            Err(err) => {
                println!("{target}: {err:#}");
                counts.failed += 1;
                failures.push(target);
            }
        },
    );
    let mut note = format!(
        "build {:.0} s, {seconds} s per target, {} at a time",
        build_time.as_secs_f64(),
        fuzz::CI_JOBS
    );
    if !failures.is_empty() {
        note.push_str(&format!("; failed: {}", failures.join(", ")));
    }
    SuiteResult {
        ok: failures.is_empty(),
        counts: Some(counts),
        note,
        elapsed: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        check_table().unwrap();
    }

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen: Vec<&str> = Vec::new();
        for suite in SUITES {
            for name in std::iter::once(&suite.name).chain(suite.aliases) {
                assert!(!seen.contains(name), "{name} names two suites");
                seen.push(name);
            }
        }
        for (group, _) in GROUPS {
            assert!(!seen.contains(group), "{group} is a suite and a group");
        }
    }

    #[test]
    fn rust_tests_and_clippy_install_libtss2() {
        for name in ["rust", "clippy", "build"] {
            let suite = find(name).unwrap();
            assert!(suite.packages.contains(&"libtss2-dev"), "{name}");
            assert!(suite.packages.contains(&"pkg-config"), "{name}");
        }
        assert!(find("fmt").unwrap().packages.is_empty());
    }

    #[test]
    fn packages_are_listed_once() {
        let packages = packages_of([find("clippy").unwrap(), find("rust").unwrap()]);
        assert_eq!(
            packages,
            vec![
                "libtss2-dev",
                "pkg-config",
                "swtpm",
                "swtpm-tools",
                "tpm2-tools",
                "python3"
            ]
        );
    }

    #[test]
    fn the_filter_goes_after_the_double_dash() {
        let args = rust_test_args(Some("ctap::make"));
        let dash = args.iter().position(|a| *a == "--").unwrap();
        assert_eq!(args.get(dash + 1), Some(&"ctap::make"));
        assert!(!rust_test_args(None).contains(&"--"));
    }
}
