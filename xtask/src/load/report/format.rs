//! Numbers and notes as the tables write them: ratios, milliseconds, MiB,
//! thousands separators, and the ⚠ marks of runs that do not count.

use std::fmt::Write as _;

use crate::load::wrk::WrkResult;

pub(super) fn valid(results: &[&WrkResult]) -> bool {
    results.iter().all(|r| r.warning().is_none())
}

pub(super) fn flag(result: &WrkResult) -> &'static str {
    if result.warning().is_some() {
        " ⚠"
    } else {
        ""
    }
}

pub(super) fn note(notes: &mut Vec<String>, who: &str, at: &str, result: &WrkResult) {
    if let Some(warning) = result.warning() {
        notes.push(format!(
            "⚠ {who} at {at}: {warning}; this point is not a result"
        ));
    }
}

/// `64 connections, round 2`, or without the round when there is only one.
pub(super) fn at(connections: u32, round: usize, rounds: u32) -> String {
    format!("{connections} connections{}", round_suffix(round, rounds))
}

/// `, round 2` for the second of several rounds; empty when there is only one.
pub(super) fn round_suffix(round: usize, rounds: u32) -> String {
    if rounds > 1 {
        format!(", round {}", round + 1)
    } else {
        String::new()
    }
}

pub(super) fn finish_table(out: &mut String, notes: &[String]) {
    out.push('\n');
    for line in notes {
        let _ = writeln!(out, "{line}\n");
    }
}

/// `ours` over `base`; not a number when `base` is not positive (shown as `–`).
pub(super) fn ratio(ours: f64, base: f64) -> f64 {
    if base > 0.0 { ours / base } else { f64::NAN }
}

/// The ratios the report is made of, of one run over its baseline run.
impl WrkResult {
    /// Throughput over `base`'s.
    pub fn throughput_over(&self, base: &WrkResult) -> f64 {
        ratio(self.requests_per_sec(), base.requests_per_sec())
    }

    /// p99 over `base`'s.
    pub fn p99_over(&self, base: &WrkResult) -> f64 {
        ratio(self.p99_us, base.p99_us)
    }
}

/// A ratio without the `×`, for the all-rounds columns.
pub(super) fn number(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}")
    } else {
        "–".to_owned()
    }
}

pub(super) fn times(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}×")
    } else {
        "–".to_owned()
    }
}

pub(super) fn percentiles(result: &WrkResult) -> String {
    format!(
        "{} / {} / {}",
        ms(result.p50_us),
        ms(result.p99_us),
        ms(result.p999_us)
    )
}

pub(super) fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(super) fn minutes(secs: u64) -> String {
    if secs < 60 {
        format!("{secs} s")
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

/// `41234.6` as `41,235`.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "–".to_owned();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < -0.5 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(thousands(41_234.6), "41,235");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(times(0.5), "0.50×");
        assert_eq!(times(ratio(1.0, 0.0)), "–");
        assert_eq!(minutes(59), "59 s");
    }
}
