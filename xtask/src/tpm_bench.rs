//! The TPM benchmarks (`cargo bench -p passgate-authenticator --bench tpm --features tpm`,
//! swtpm, release): `cargo xtask bench tpm` runs only them, and with
//! [`TSS_LIB_ENV`] set both `bench` and `bench tpm` run them a second time against the
//! tpm2-tss libraries in that directory (a private build, e.g. a newer release than the
//! system's, same sonames) and print both sets of figures.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

/// A directory holding another tpm2-tss build's libraries (`libtss2-esys.so.0`, …): the TPM
/// benchmarks run once more with it first on `LD_LIBRARY_PATH`.
pub const TSS_LIB_ENV: &str = "PASSGATE_BENCH_TSS_LIB";

/// The benchmark's line naming the `libtss2-esys` it loaded (from its `/proc/self/maps`).
const LOADED_PREFIX: &str = "tss2-esys loaded: ";

/// Runs the TPM benchmark in release mode, with `tss_lib` first on `LD_LIBRARY_PATH` when
/// given; prints and returns its standard output.
pub(crate) fn run_tpm_bench(root: &Path, tss_lib: Option<&Path>) -> Result<String> {
    let mut command = Command::new(crate::cargo());
    command
        .args([
            "bench",
            "-p",
            "passgate-authenticator",
            "--bench",
            "tpm",
            "--features",
            "tpm",
        ])
        .current_dir(root);
    if let Some(dir) = tss_lib {
        // cargo puts its own directories in front of this and keeps it; the benchmark
        // reports the library it really loaded.
        command.env("LD_LIBRARY_PATH", dir);
    }
    let output = command
        .output()
        .context("running cargo bench for the TPM")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        anyhow::bail!("cargo bench --bench tpm failed");
    }
    Ok(stdout)
}

/// The `libtss2-esys` the benchmark reported loading, as a line to print.
pub(crate) fn loaded_tss(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(LOADED_PREFIX))
        .map_or_else(
            || "the benchmark did not say which libtss2-esys it loaded".to_owned(),
            |path| format!("TPM benchmarks ran with {path}"),
        )
}

/// The directory named by [`TSS_LIB_ENV`], if set and not empty.
fn other_tss() -> Result<Option<PathBuf>> {
    let Some(dir) = std::env::var_os(TSS_LIB_ENV).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let dir = PathBuf::from(dir);
    anyhow::ensure!(
        dir.join("libtss2-esys.so.0").exists(),
        "{TSS_LIB_ENV}={}: no libtss2-esys.so.0 there",
        dir.display()
    );
    Ok(Some(dir))
}

/// With [`TSS_LIB_ENV`] set: the TPM benchmarks again against that tpm2-tss, then their table
/// and the two TPM ratios, marked informational (the targets are checked against the
/// system's tpm2-tss, the one passgate is built and shipped with). Overwrites the TPM
/// benchmarks' criterion figures: call it after everything that reads them.
pub(crate) fn tss_comparison(root: &Path, target_dir: &Path) -> Result<()> {
    let Some(dir) = other_tss()? else {
        return Ok(());
    };
    let stdout = run_tpm_bench(root, Some(&dir))?;
    println!(
        "\nThe TPM benchmarks again, {TSS_LIB_ENV}={} ({}):",
        dir.display(),
        loaded_tss(&stdout)
    );
    crate::bench::print_tpm_targets(target_dir, &format!(" [tpm2-tss from {}]", dir.display()))?;
    crate::bench::tpm_table(target_dir)
}

/// `cargo xtask bench tpm`: only the TPM benchmarks, their table and targets (and the
/// [`TSS_LIB_ENV`] comparison); fails when a target is missed.
pub fn run(root: &Path, target_dir: &Path) -> Result<ExitCode> {
    let stdout = run_tpm_bench(root, None)?;
    println!("\nTPM benchmark targets ({}):", loaded_tss(&stdout));
    let missed = crate::bench::print_tpm_targets(target_dir, "")?;
    crate::bench::tpm_table(target_dir)?;
    tss_comparison(root, target_dir)?;
    Ok(if missed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
