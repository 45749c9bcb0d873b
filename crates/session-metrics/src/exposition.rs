//! Encoding a registry for a scrape, in the format the scraper asked for.

use prometheus_client::registry::Registry;

/// The content type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|value| {
        value
            .windows(b"application/openmetrics-text".len())
            .any(|window| window.eq_ignore_ascii_case(b"application/openmetrics-text"))
    })
}

/// The registry encoded: OpenMetrics text when `openmetrics`, else the
/// Prometheus text format. Returns the body and its content type.
pub fn encode(
    registry: &Registry,
    openmetrics: bool,
) -> Result<(String, &'static str), std::fmt::Error> {
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    if openmetrics {
        return Ok((text, OPENMETRICS));
    }
    Ok((to_prometheus_text(&text), PROMETHEUS_TEXT))
}

/// OpenMetrics text as the Prometheus text format (0.0.4): a counter family
/// is named by its samples' `_total` name there, and `# UNIT` and `# EOF`
/// lines do not exist. Everything else reads the same.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# TYPE ", "# HELP "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_sample_name_and_openmetrics_lines_go() {
        let om = "# HELP hits Hits.\n# TYPE hits counter\nhits_total 3\n# HELP t T.\n# TYPE t gauge\n# UNIT t seconds\nt 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total 3\n# HELP t T.\n# TYPE t gauge\nt 1\n"
        );
    }

    #[test]
    fn accept_negotiation() {
        assert!(wants_openmetrics(Some(
            b"application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
        )));
        assert!(!wants_openmetrics(Some(b"text/plain")));
        assert!(!wants_openmetrics(None));
    }
}
