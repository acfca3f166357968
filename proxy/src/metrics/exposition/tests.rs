use std::collections::{BTreeMap, BTreeSet};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info},
    registry::Registry,
};

use super::*;

/// The Accept header Prometheus 2.x sends (OpenMetrics first, then 0.0.4, then anything).
const PROMETHEUS_SCRAPER: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[test]
fn the_accept_header_picks_the_format() {
    use Format::{OpenMetrics as Om, Prometheus as P};
    let cases: &[(Option<&str>, Format)] = &[
        (None, Om),
        (Some(""), Om),
        (Some("*/*"), Om),
        (Some("text/html"), Om),
        (Some("text/plain;version=0.0.4"), P),
        (Some("text/plain; version=0.0.4; charset=utf-8"), P),
        (Some("text/plain"), P),
        (Some("Text/Plain"), P),
        (Some("application/openmetrics-text"), Om),
        (
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Om,
        ),
        (Some(PROMETHEUS_SCRAPER), Om),
        // Prometheus with OpenMetrics scraping turned off, and older scrapers.
        (Some("text/plain;version=0.0.4;q=1,*/*;q=0.1"), P),
        // The higher q wins whatever the order; on a tie, the first.
        (Some("application/openmetrics-text;q=0.2, text/plain"), P),
        (
            Some("text/plain;q=0.5, application/openmetrics-text;q=0.5"),
            P,
        ),
        // q=0 means "not this".
        (Some("text/plain;q=0, application/json"), Om),
        // A range that does not parse is skipped, the rest still counts.
        (Some("%%%, text/plain"), P),
        (Some("text/plain;q=abc"), Om),
    ];
    for (accept, wanted) in cases {
        assert_eq!(Format::negotiate(*accept), *wanted, "Accept: {accept:?}");
    }
}

#[test]
fn each_format_has_its_content_type() {
    assert_eq!(
        Format::Prometheus.content_type(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        Format::OpenMetrics.content_type(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: u16,
}

/// A registry with one metric of each kind flowproxy uses.
fn sample_registry() -> Registry {
    let mut registry = Registry::default();
    let requests = Family::<Code, Counter>::default();
    requests.get_or_create(&Code { code: 200 }).inc_by(2);
    registry.register("demo_requests", "Requests", requests);
    let open = Gauge::<i64>::default();
    open.set(3);
    registry.register("demo_open", "Open connections", open);
    let durations = Histogram::new([0.1, 1.0]);
    durations.observe(0.05);
    durations.observe(0.5);
    registry.register("demo_duration_seconds", "Durations", durations);
    registry.register("demo_build", "Build", Info::new([("version", "1.2.3")]));
    registry
}

#[test]
fn the_004_format_names_families_by_their_samples() {
    let text = Format::Prometheus.encode(&sample_registry()).unwrap();
    let expected = "\
# HELP demo_requests_total Requests.
# TYPE demo_requests_total counter
demo_requests_total{code=\"200\"} 2
# HELP demo_open Open connections.
# TYPE demo_open gauge
demo_open 3
# HELP demo_duration_seconds Durations.
# TYPE demo_duration_seconds histogram
demo_duration_seconds_bucket{le=\"0.1\"} 1
demo_duration_seconds_bucket{le=\"1\"} 2
demo_duration_seconds_bucket{le=\"+Inf\"} 2
demo_duration_seconds_sum 0.55
demo_duration_seconds_count 2
# HELP demo_build_info Build.
# TYPE demo_build_info gauge
demo_build_info{version=\"1.2.3\"} 1
";
    assert_eq!(text, expected);
    assert_eq!(lint_004(&text), Vec::<String>::new());
}

#[test]
fn openmetrics_names_families_without_suffixes_and_ends_with_eof() {
    let text = Format::OpenMetrics.encode(&sample_registry()).unwrap();
    for line in [
        "# TYPE demo_requests counter",
        "demo_requests_total{code=\"200\"} 2",
        "# TYPE demo_open gauge",
        "# TYPE demo_duration_seconds histogram",
        "demo_duration_seconds_count 2",
        "# TYPE demo_build info",
        "demo_build_info{version=\"1.2.3\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    // What 0.0.4 tools trip over is exactly this: the counter's family has no `_total`.
    assert!(!lint_004(&text).is_empty());
}

#[test]
fn neither_format_writes_created_samples() {
    // `_created` is OpenMetrics-only; in 0.0.4 it would be a family of its own without help.
    // prometheus-client writes none, and flowproxy registers nothing that would.
    for format in [Format::OpenMetrics, Format::Prometheus] {
        let text = format.encode(&sample_registry()).unwrap();
        assert!(!text.contains("_created"), "{format:?}:\n{text}");
    }
    let text = Format::Prometheus.encode(&sample_registry()).unwrap();
    assert!(!text.contains("# EOF"), "{text}");
}

#[test]
fn the_linter_finds_what_promtool_would() {
    let bad = "x 0\n# TYPE a counter\na_total 1\nb 2\n# HELP c_total x\n# TYPE c_total counter\n\
               c_total 1\nc_created 5\n# TYPE d gauge\nd 1\n# TYPE d gauge\n# EOF\n";
    assert_eq!(
        lint_004(bad),
        [
            "x: no # TYPE before it",
            "a_total: not a sample of the counter a",
            "b: not a sample of the counter a",
            "c_created: not a sample of the counter c_total",
            "d: no help",
            "d: described twice",
            "# EOF is OpenMetrics only",
        ]
    );
}

/// What `promtool check metrics` (which reads 0.0.4 only) would object to in `text`: a sample
/// before any `# TYPE`, one that is not a sample of the family its `# TYPE` names (a counter's
/// sample is the family's name, which ends in `_total`; a histogram's are its `_bucket`,
/// `_sum` and `_count`), a family without `# HELP`, a family described twice, and `# EOF`.
/// Shared with the registry's own test (`metrics/tests.rs`).
pub(in crate::metrics) fn lint_004(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut help = BTreeSet::new();
    let mut typed = BTreeMap::new();
    let mut family: Option<(&str, &str)> = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["#", "EOF"] => problems.push("# EOF is OpenMetrics only".to_owned()),
            ["#", "HELP", name, ..] => {
                help.insert(*name);
            }
            ["#", "TYPE", name, kind] => {
                if typed.insert(*name, *kind).is_some() {
                    problems.push(format!("{name}: described twice"));
                }
                family = Some((name, kind));
            }
            [] | [""] => {}
            [first, ..] if first.starts_with('#') => {}
            _ => {
                let sample = line.split(['{', ' ']).next().unwrap_or_default();
                let Some((name, kind)) = family else {
                    problems.push(format!("{sample}: no # TYPE before it"));
                    continue;
                };
                let belongs = match kind {
                    "counter" => sample == name && name.ends_with("_total"),
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| sample.strip_suffix(suffix) == Some(name)),
                    _ => sample == name,
                };
                if !belongs {
                    problems.push(format!("{sample}: not a sample of the {kind} {name}"));
                } else if !help.contains(name) {
                    problems.push(format!("{name}: no help"));
                }
            }
        }
    }
    problems.dedup();
    problems
}
