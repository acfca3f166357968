//! Which text format a scrape gets, chosen by its `Accept` header, and the encoding in it.
//!
//! OpenMetrics names a counter's family without `_total` in `# HELP`/`# TYPE` and ends with
//! `# EOF`; the Prometheus 0.0.4 text format names it by its sample (`_total`), has no `info`
//! type and no `# EOF`. Tools that read only 0.0.4 (`promtool check metrics`, older scrapers)
//! see an OpenMetrics counter as a family without help. prometheus-client writes both
//! (`encoding::text` and `encoding::prometheus_text`): this module only picks one.
use mediatype::{MediaType, MediaTypeList, ReadParams as _, names};
use prometheus_client::{encoding, registry::Registry};

/// The Content-Type of an OpenMetrics answer.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text: the default, what Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain`).
    Prometheus,
}

impl Format {
    /// The format `accept` prefers (highest `q`, the first on a tie); OpenMetrics when the
    /// header is absent, does not parse, or names neither format.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::OpenMetrics;
        };
        let mut best: Option<(u16, Self)> = None;
        // A media range that does not parse is skipped: the others still say what is wanted.
        for range in MediaTypeList::new(accept).flatten() {
            let Some(format) = Self::named_by(&range) else {
                continue;
            };
            let q = quality(&range);
            if q > 0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
        best.map_or(Self::OpenMetrics, |(_, format)| format)
    }

    /// The format a media range names, if it names one of the two (`*/*` names neither:
    /// the default answers it).
    fn named_by(range: &MediaType<'_>) -> Option<Self> {
        let (ty, subty) = (range.ty.as_str(), range.subty.as_str());
        if ty.eq_ignore_ascii_case("application") && subty.eq_ignore_ascii_case("openmetrics-text")
        {
            Some(Self::OpenMetrics)
        } else if ty.eq_ignore_ascii_case("text") && subty.eq_ignore_ascii_case("plain") {
            Some(Self::Prometheus)
        } else {
            None
        }
    }

    /// The Content-Type of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS,
            Self::Prometheus => encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    /// Every metric of `registry` in this format.
    pub fn encode(self, registry: &Registry) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        match self {
            Self::OpenMetrics => encoding::text::encode(&mut out, registry)?,
            Self::Prometheus => encoding::prometheus_text::encode(&mut out, registry)?,
        }
        Ok(out)
    }
}

/// A media range's `q` in thousandths (1000 when absent; 0 when it does not parse, as a
/// range that cannot be weighed should not win).
fn quality(range: &MediaType<'_>) -> u16 {
    let Some(q) = range.get_param(names::Q) else {
        return 1000;
    };
    match q.as_str().parse::<f32>() {
        Ok(q) if (0.0..=1.0).contains(&q) => (q * 1000.0).round() as u16,
        _ => 0,
    }
}

#[cfg(test)]
pub(super) mod tests;
