//! `fuzz/RESULTS.md`: the committed record of every `cargo xtask fuzz` run, one row per target
//! run (date, commit, seconds, executions, crashes, hangs, peak RSS), and per target the totals
//! recomputed from those rows. It is how the bar (≥ 10 million executions per target,
//! no crash, no hang over 1 s, RSS under 256 MiB) is shown across runs on different days.
//!
//! The rows are the data: the totals are rewritten from them on every run, so a row can be
//! added by hand (or a bad one removed) and the next run recomputes the table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};

use crate::fuzz::{RSS_LIMIT_MB, TARGETS, TargetRun};

/// Executions a target needs, without a failure since, to meet the bar.
pub const EXECUTIONS_BAR: u64 = 10_000_000;

const RUNS_HEADING: &str = "## Runs";

/// One target run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// When it ended, `YYYY-MM-DD HH:MM` UTC.
    pub date: String,
    /// The commit it ran (`git rev-parse --short HEAD`, `+dirty` when the tree had changes).
    pub commit: String,
    /// The target.
    pub target: String,
    /// The time asked for, seconds.
    pub seconds: u64,
    /// What libFuzzer reported.
    pub run: TargetRun,
}

impl Row {
    fn to_markdown(&self) -> String {
        let per_sec = self.run.executions / self.seconds.max(1);
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.date,
            self.commit,
            self.target,
            self.seconds,
            self.run.executions,
            per_sec,
            self.run.crashes,
            self.run.hangs,
            self.run.out_of_memory,
            self.run.peak_rss_mb,
            self.run.timeouts_not_reproduced
        )
    }

    fn parse(line: &str) -> Option<Row> {
        let cells: Vec<&str> = line
            .trim()
            .strip_prefix('|')?
            .strip_suffix('|')?
            .split('|')
            .map(str::trim)
            .collect();
        // Rows from before the last column existed have 10 cells.
        let (cells, not_reproduced) = match cells.as_slice() {
            [rest @ .., last] if rest.len() == 10 => (rest, *last),
            all => (all, "0"),
        };
        let [
            date,
            commit,
            target,
            seconds,
            executions,
            _per_sec,
            crashes,
            hangs,
            oom,
            rss,
        ] = cells
        else {
            return None;
        };
        let number = |text: &str| text.replace(',', "").parse::<u64>().ok();
        Some(Row {
            date: (*date).to_owned(),
            commit: (*commit).to_owned(),
            target: (*target).to_owned(),
            seconds: number(seconds)?,
            run: TargetRun {
                executions: number(executions)?,
                crashes: number(crashes)?,
                hangs: number(hangs)?,
                out_of_memory: number(oom)?,
                peak_rss_mb: number(rss)?,
                timeouts_not_reproduced: number(not_reproduced)?,
                artifact: None,
            },
        })
    }
}

/// A target's totals over its rows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Every execution recorded.
    pub executions: u64,
    /// Executions since the last run that failed (all of them if none did).
    pub clean_executions: u64,
    /// Runs recorded.
    pub runs: u64,
    /// Seconds fuzzed.
    pub seconds: u64,
    /// Crashes, hangs and out-of-memory stops, ever.
    pub crashes: u64,
    /// Inputs over the timeout, ever.
    pub hangs: u64,
    /// Stops over the RSS limit, ever.
    pub out_of_memory: u64,
    /// The highest peak RSS of any run, MiB.
    pub peak_rss_mb: u64,
}

impl Totals {
    /// Whether the target meets the bar: enough executions since its last failure, and its
    /// RSS within the budget in every run since.
    pub fn meets_bar(&self) -> bool {
        self.clean_executions >= EXECUTIONS_BAR && self.peak_rss_mb < RSS_LIMIT_MB
    }
}

/// Per target, in running order, the totals of `rows` (targets without rows included).
pub fn totals(rows: &[Row]) -> Vec<(String, Totals)> {
    let mut by_target: BTreeMap<&str, Totals> = BTreeMap::new();
    for row in rows {
        let totals = by_target.entry(row.target.as_str()).or_default();
        totals.executions += row.run.executions;
        totals.runs += 1;
        totals.seconds += row.seconds;
        totals.crashes += row.run.crashes;
        totals.hangs += row.run.hangs;
        totals.out_of_memory += row.run.out_of_memory;
        totals.peak_rss_mb = totals.peak_rss_mb.max(row.run.peak_rss_mb);
        if row.run.ok() {
            totals.clean_executions += row.run.executions;
        } else {
            totals.clean_executions = 0;
        }
    }
    let mut names: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    for name in by_target.keys() {
        if !names.iter().any(|n| n == name) {
            names.push((*name).to_owned());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let totals = by_target.get(name.as_str()).cloned().unwrap_or_default();
            (name, totals)
        })
        .collect()
}

/// The rows already in `text` (a `RESULTS.md`).
pub fn parse(text: &str) -> Vec<Row> {
    text.split_once(RUNS_HEADING)
        .map(|(_, runs)| runs.lines().filter_map(Row::parse).collect())
        .unwrap_or_default()
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The whole file for `rows`.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "# Fuzzing results\n\n\
         Written by `cargo xtask fuzz` (see `xtask/src/fuzz_results.rs`): one row per target run \
         under **Runs**, appended; the totals are recomputed from the rows on every run. Every \
         run is seeded from `fuzz/corpus/TARGET` and limited to 256 MiB RSS and 1 s per input.\n\n\
         The bar (issue 19): at least 10,000,000 executions per target with no crash, no hang \
         and no run over the RSS limit since; peak RSS under 256 MiB. \
         *Clean executions* counts the executions since the target's last failed run. \
         libFuzzer's timeout is wall time, so on a loaded machine a starved process can trip it: \
         an input it stopped at is run again alone three times, and counts as a hang only if it \
         goes over 1 s again (as a crash if it crashes); otherwise it is listed under *timeouts \
         not reproduced* and the run stopped early but did not fail.\n\n\
         ## Totals\n\n\
         | target | executions | clean executions | runs | seconds | crashes | hangs | out of memory | peak RSS (MiB) | bar |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for (target, t) in totals(rows) {
        out.push_str(&format!(
            "| {target} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            grouped(t.executions),
            grouped(t.clean_executions),
            t.runs,
            t.seconds,
            t.crashes,
            t.hangs,
            t.out_of_memory,
            t.peak_rss_mb,
            if t.meets_bar() { "met" } else { "not yet" }
        ));
    }
    out.push('\n');
    out.push_str(RUNS_HEADING);
    out.push_str(
        "\n\n\
         | date (UTC) | commit | target | seconds | executions | exec/s | crashes | hangs | out of memory | peak RSS (MiB) | timeouts not reproduced |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for row in rows {
        out.push_str(&row.to_markdown());
        out.push('\n');
    }
    out
}

/// Where the record lives.
pub fn path(root: &Path) -> PathBuf {
    root.join("fuzz/RESULTS.md")
}

/// Appends `row` to `fuzz/RESULTS.md` and rewrites its totals.
pub fn record(root: &Path, row: Row) -> Result<()> {
    let path = path(root);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut rows = parse(&text);
    rows.push(row);
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, render(&rows)).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// The commit being fuzzed: short hash, `+dirty` when the tree has uncommitted changes.
pub fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let hash = git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    // Only the code under test counts: changed docs, a changed RESULTS.md or corpus are not
    // "dirty".
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":!*.md",
        ":!docs",
        ":!fuzz/corpus",
    ])
    .is_some_and(|s| !s.is_empty());
    if dirty { format!("{hash}+dirty") } else { hash }
}

/// Now, as `YYYY-MM-DD HH:MM` UTC.
pub fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM` UTC (the proleptic Gregorian calendar, from
/// the number of days: Howard Hinnant's `civil_from_days`).
pub fn format_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let minutes = (secs % 86_400) / 60;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        minutes / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str, executions: u64, crashes: u64, rss: u64) -> Row {
        Row {
            date: "2026-12-07 17:00".to_owned(),
            commit: "abcdef1234".to_owned(),
            target: target.to_owned(),
            seconds: 60,
            run: TargetRun {
                executions,
                crashes,
                peak_rss_mb: rss,
                ..TargetRun::default()
            },
        }
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_utc(1_796_662_800), "2026-12-07 17:00");
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }

    #[test]
    fn rows_survive_the_file_and_totals_accumulate() {
        let rows = vec![
            row("cose_key", 6_000_000, 0, 40),
            row("ctap_command", 100, 1, 50),
            row("cose_key", 5_000_000, 0, 45),
            row("ctap_command", 700, 0, 30),
        ];
        let text = render(&rows);
        assert_eq!(parse(&text), rows);
        let totals = totals(&rows);
        assert_eq!(totals.len(), TARGETS.len());
        let get = |name: &str| totals.iter().find(|(t, _)| t == name).unwrap().1.clone();
        let cose = get("cose_key");
        assert_eq!(cose.executions, 11_000_000);
        assert_eq!(cose.runs, 2);
        assert_eq!(cose.seconds, 120);
        assert_eq!(cose.peak_rss_mb, 45);
        assert!(cose.meets_bar());
        let ctap = get("ctap_command");
        assert_eq!(ctap.executions, 800);
        assert_eq!(ctap.clean_executions, 700, "counted from after the crash");
        assert_eq!(ctap.crashes, 1);
        assert!(!ctap.meets_bar());
        assert_eq!(get("soter_json"), Totals::default());
        assert!(
            text.contains(
                "| cose_key | 11,000,000 | 11,000,000 | 2 | 120 | 0 | 0 | 0 | 45 | met |"
            )
        );
    }

    #[test]
    fn a_run_over_the_rss_budget_breaks_the_clean_count() {
        let rows = vec![
            row("cose_key", 20_000_000, 0, 40),
            row("cose_key", 10, 0, 300),
        ];
        let cose = totals(&rows).remove(5).1;
        assert_eq!(cose.clean_executions, 0);
        assert!(!cose.meets_bar());
    }

    #[test]
    fn the_timeouts_column_is_read_and_older_rows_lack_it() {
        let mut with = row("cose_key", 5, 0, 40);
        with.run.timeouts_not_reproduced = 2;
        assert_eq!(parse(&render(&[with.clone()])), vec![with]);
        let old =
            "## Runs\n| 2026-12-07 17:00 | abc | cose_key | 30 | 1,000 | 33 | 0 | 0 | 0 | 41 |\n";
        assert_eq!(parse(old)[0].run.timeouts_not_reproduced, 0);
    }

    #[test]
    fn text_around_the_rows_is_ignored() {
        let text = "# Fuzzing results\n\nprose | with | bars\n\n## Runs\n\n| date |\n| --- |\n\
                    | 2026-12-07 17:00 | abc | cose_key | 30 | 1,000 | 33 | 0 | 0 | 0 | 41 |\n";
        let rows = parse(text);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].run.executions, 1_000);
        assert_eq!(rows[0].run.peak_rss_mb, 41);
    }
}
