//! Parsing the summaries that cargo test and pytest print.

/// Passed and failed test counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TestCounts {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
}

impl TestCounts {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: Self) {
        self.passed = self.passed.saturating_add(other.passed);
        self.failed = self.failed.saturating_add(other.failed);
    }
}

/// pytest's final counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PytestCounts {
    /// `passed` (plus `xpassed`).
    pub passed: u64,
    /// `failed` plus `error(s)`.
    pub failed: u64,
    /// `skipped` plus `xfailed`: tests that did not really run.
    pub skipped: u64,
}

/// Sums every `test result: ok. N passed; M failed; ...` line that `cargo test` printed (one per
/// test binary and one per doc-test run).
pub fn cargo_test_counts<'a>(lines: impl IntoIterator<Item = &'a str>) -> TestCounts {
    let mut total = TestCounts::default();
    for line in lines {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        // `ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`
        let rest = rest.split_once(". ").map_or(rest, |(_, counts)| counts);
        for part in rest.split(';') {
            match count_and_word(part) {
                Some((n, "passed")) => total.passed = total.passed.saturating_add(n),
                Some((n, "failed")) => total.failed = total.failed.saturating_add(n),
                _ => {}
            }
        }
    }
    total
}

/// Reads the totals of node's TAP reporter (`# pass 5`, `# fail 1`; `# cancelled` counts as
/// failed). `None` when no `# pass` line was printed.
pub fn tap_counts<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<TestCounts> {
    let mut passed = None;
    let mut failed = 0u64;
    for line in lines {
        let Some(rest) = line.trim().strip_prefix("# ") else {
            continue;
        };
        let Some((word, n)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(n) = n.trim().parse::<u64>() else {
            continue;
        };
        match word {
            "pass" => passed = Some(n),
            "fail" | "cancelled" => failed = failed.saturating_add(n),
            _ => {}
        }
    }
    passed.map(|passed| TestCounts { passed, failed })
}

/// Finds pytest's last summary line (`=== 3 passed, 1 failed, 2 errors in 0.51s ===` or, with
/// `-q`, the same without the rulers) and returns its counts. `None` when there is none (pytest
/// crashed or was killed).
pub fn pytest_counts<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<PytestCounts> {
    let mut last = None;
    for line in lines {
        if let Some(counts) = pytest_summary_line(line) {
            last = Some(counts);
        }
    }
    last
}

fn pytest_summary_line(line: &str) -> Option<PytestCounts> {
    let inner = line.trim().trim_matches('=').trim();
    if inner == "no tests ran" || inner.starts_with("no tests ran in ") {
        return Some(PytestCounts::default());
    }
    // The counts come before the final ` in 1.23s` (which may be followed by ` (0:00:01)`).
    let (counts, duration) = inner.rsplit_once(" in ")?;
    if !duration
        .trim_start()
        .starts_with(|c: char| c.is_ascii_digit())
    {
        return None;
    }
    let mut result = PytestCounts::default();
    let mut any = false;
    for part in counts.split(',') {
        let (n, word) = count_and_word(part)?;
        any = true;
        match word {
            "passed" | "xpassed" => result.passed = result.passed.saturating_add(n),
            "failed" | "error" | "errors" => result.failed = result.failed.saturating_add(n),
            "skipped" | "xfailed" => result.skipped = result.skipped.saturating_add(n),
            // "deselected", "warning(s)", "rerun": not tests that ran or failed.
            "deselected" | "warning" | "warnings" | "rerun" | "reruns" => {}
            _ => return None,
        }
    }
    any.then_some(result)
}

/// `" 12 passed"` → `(12, "passed")`.
fn count_and_word(part: &str) -> Option<(u64, &str)> {
    let mut words = part.split_whitespace();
    let n = words.next()?.parse().ok()?;
    let word = words.next()?;
    if words.next().is_some() {
        return None;
    }
    Some((n, word))
}

/// Extracts a top-level string field from a JSON object without a JSON library: finds
/// `"key":"value"` and unescapes `\\`, `\"` and `\/`. Good enough for `cargo metadata`'s
/// `target_directory`.
pub fn json_string_field(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\":\"");
    let start = json.find(&needle)?.checked_add(needle.len())?;
    let mut value = String::new();
    let mut chars = json.get(start..)?.chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                c @ ('\\' | '"' | '/') => value.push(c),
                _ => return None,
            },
            c => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_test_result_lines_are_summed() {
        let output = "\
running 3 tests
test a ... ok
test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
     Running tests/x.rs
test result: FAILED. 10 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.50s
   Doc-tests passgate_authenticator
test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
some other line mentioning 5 passed; 7 failed
";
        assert_eq!(
            cargo_test_counts(output.lines()),
            TestCounts {
                passed: 13,
                failed: 2
            }
        );
    }

    #[test]
    fn no_cargo_result_lines_give_zero() {
        assert_eq!(
            cargo_test_counts(["error[E0425]: cannot find value"]),
            TestCounts::default()
        );
    }

    #[test]
    fn pytest_verbose_summary() {
        let lines = [
            "ctap-tests/python/test_x.py::test_a PASSED",
            "=========== 1 failed, 12 passed, 2 skipped, 3 warnings in 4.21s ===========",
        ];
        assert_eq!(
            pytest_counts(lines),
            Some(PytestCounts {
                passed: 12,
                failed: 1,
                skipped: 2
            })
        );
    }

    #[test]
    fn pytest_quiet_summary_with_errors_and_clock() {
        assert_eq!(
            pytest_counts(["3 passed, 2 errors in 61.00s (0:01:01)"]),
            Some(PytestCounts {
                passed: 3,
                failed: 2,
                skipped: 0
            })
        );
    }

    #[test]
    fn pytest_no_tests_and_missing_summary() {
        assert_eq!(
            pytest_counts(["============ no tests ran in 0.01s ============"]),
            Some(PytestCounts::default())
        );
        assert_eq!(pytest_counts(["Traceback (most recent call last):"]), None);
        // A test's own output that merely contains " in " is not a summary.
        assert_eq!(pytest_counts(["checking 3 passed in a box"]), None);
    }

    #[test]
    fn json_field_with_escapes() {
        let json = r#"{"packages":[],"target_directory":"/work/ta\"r\\get","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some(r#"/work/ta"r\get"#)
        );
        assert_eq!(json_string_field(json, "workspace_root"), None);
    }

    #[test]
    fn tap_totals_are_read_and_cancelled_counts_as_failed() {
        let out = [
            "ok 1 - a",
            "# tests 4",
            "# pass 2",
            "# fail 1",
            "# cancelled 1",
            "# todo 0",
        ];
        assert_eq!(
            tap_counts(out),
            Some(TestCounts {
                passed: 2,
                failed: 2
            })
        );
        assert_eq!(tap_counts(["# tests 0", "not ok 1"]), None);
    }
}
