//! `cargo xtask bench`'s uhid figures: one CTAPHID getAssertion round trip over uhid next to
//! the same over loopback TCP, both measured by the criterion benchmark
//! `ctap-tests/benches/roundtrip.rs` (the same software authenticator served in the
//! benchmark's process on each transport).
//!
//! This machine has no `/dev/uhid`, so the uhid round trip runs in the `vm-test` guest (see
//! `crate::vm`), beside passgate on loopback TCP in the same guest: the same kernel and the
//! same emulated CPU, which makes their difference the fair measure of what uhid adds (TCG
//! emulation slows everything in the guest several times over). The host's loopback TCP round
//! trip is printed too, and libfido2's own timing: a whole `fido2-assert -G` in the guest.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bench::mean_ns;
use crate::vm;

/// The criterion group of `ctap-tests/benches/roundtrip.rs`.
const GROUP: &str = "roundtrip_get_assertion";
/// What uhid may add to a round trip, in nanoseconds (the issue's target: 1 ms).
const UHID_OVERHEAD_LIMIT_NS: f64 = 1e6;
/// How long the bench guest may run.
const BENCH_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs the host and guest benchmarks; prints the figures and returns whether the uhid
/// target was missed.
pub fn run(root: &Path, target: &Path) -> Result<bool> {
    let bench = bench_executable(root)?;
    let status = Command::new(&bench)
        .arg("--bench")
        .env("CRITERION_HOME", target.join("criterion"))
        .status()
        .context("running the roundtrip benchmark on the host")?;
    if !status.success() {
        bail!("the roundtrip benchmark on the host {status}");
    }
    let command = format!(
        "/bin/bash {} {}",
        vm::shell_quote(&root.join("xtask").join("vm").join("bench.sh")),
        vm::shell_quote(&bench)
    );
    let guest = vm::boot(
        target,
        "bench-results",
        &command,
        &["criterion"],
        BENCH_TIMEOUT,
    )?;
    if !guest.problems.is_empty() {
        bail!("the bench guest: {}", guest.problems.join("; "));
    }
    // mean_ns reads DIR/criterion/ID: the guest's CRITERION_HOME is the share's criterion/.
    let uhid = mean_ns(&guest.results, &format!("{GROUP}/uhid"))?;
    let tcp = mean_ns(&guest.results, &format!("{GROUP}/tcp"))?;
    let host = mean_ns(target, &format!("{GROUP}/tcp"))?;
    let libfido2 = fs::read_to_string(guest.results.join("fido2-assert.txt"))
        .ok()
        .and_then(|text| median_us(&text));
    let added = uhid - tcp;
    let missed = added > UHID_OVERHEAD_LIMIT_NS;
    println!("\nuhid (same run; guest = QEMU TCG, emulated CPU):");
    println!(
        "  {} getAssertion round trip over uhid minus over loopback TCP, in the guest: {:.1} µs - {:.1} µs = {:.1} µs ({:.2}x; target: uhid adds <= {:.1} ms)",
        if missed { "MISS" } else { "MET " },
        uhid / 1000.0,
        tcp / 1000.0,
        added / 1000.0,
        uhid / tcp,
        UHID_OVERHEAD_LIMIT_NS / 1e6
    );
    println!(
        "  INFO getAssertion round trip over loopback TCP on the host: {:.1} µs (the guest's TCP is {:.1}x slower: emulation)",
        host / 1000.0,
        tcp / host
    );
    match libfido2 {
        Some(us) => println!(
            "  INFO libfido2 `fido2-assert -G` on the uhid device in the guest, whole process (exec, open, INIT, getInfo, getAssertion): median {:.1} ms",
            us / 1000.0
        ),
        None => println!("  INFO libfido2 `fido2-assert -G`: no timing (see the guest log)"),
    }
    Ok(missed)
}

/// The median of one number per line.
fn median_us(text: &str) -> Option<f64> {
    let mut values: Vec<f64> = text
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Builds the roundtrip benchmark and returns its executable (run directly in the guest).
fn bench_executable(root: &Path) -> Result<PathBuf> {
    let output = Command::new(crate::cargo())
        .args([
            "bench",
            "-p",
            "passgate-ctap-tests",
            "--bench",
            "roundtrip",
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("building the roundtrip benchmark")?;
    if !output.status.success() {
        bail!("cargo bench --no-run -p passgate-ctap-tests failed");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter(|l| l.contains("\"name\":\"roundtrip\""))
        .find_map(json_executable)
        .context("cargo printed no executable for the roundtrip benchmark")
}

/// The `"executable":"…"` of one line of cargo's JSON messages.
fn json_executable(line: &str) -> Option<PathBuf> {
    let key = "\"executable\":\"";
    let start = line.find(key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(PathBuf::from(&line[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_json_names_the_executable_and_the_median_is_the_middle_value() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"roundtrip"},"executable":"/t/release/deps/roundtrip-abc","fresh":true}"#;
        assert_eq!(
            json_executable(line),
            Some(PathBuf::from("/t/release/deps/roundtrip-abc"))
        );
        assert_eq!(json_executable(r#"{"executable":null}"#), None);
        assert_eq!(median_us("300\n100\nnot a number\n200\n"), Some(200.0));
        assert_eq!(median_us(""), None);
    }
}
