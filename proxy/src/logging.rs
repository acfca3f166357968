//! Where log lines go and how they look: stderr, filtered by `RUST_LOG` (default `info`), as
//! text for people or as one flat JSON object per line for Loki, Elasticsearch and the like.
//!
//! JSON lines put the event's fields next to `timestamp`, `level` and `target` (no nested
//! `fields` object, so a pipeline indexes `status` rather than `fields.status`), and carry no
//! span lists: the proxy's lines say everything in their own fields.
use std::io::IsTerminal as _;

use tracing_subscriber::{
    EnvFilter,
    fmt::{
        MakeWriter, SubscriberBuilder,
        format::{DefaultFields, Format, Full, Json, JsonFields},
    },
};

use crate::cli::LogFormat;

/// Installs the process's logger. Called once, first thing in `main`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // Only fails when a logger is already set, which nothing else does.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => json(builder).try_init(),
    };
}

/// The JSON shape of the log: flat fields, no spans.
pub fn json<F, W>(
    builder: SubscriberBuilder<DefaultFields, Format<Full>, F, W>,
) -> SubscriberBuilder<JsonFields, Format<Json>, F, W>
where
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    builder
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
}

#[cfg(test)]
pub(crate) mod capture {
    //! A logger that writes JSON lines into memory, for tests of what a line says.
    use std::{
        io,
        sync::{Arc, Mutex, PoisonError},
    };

    use serde_json::{Map, Value};
    use tracing_subscriber::fmt::MakeWriter;

    /// The lines written so far.
    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// Every line written so far, parsed.
        pub fn lines(&self) -> Vec<Map<String, Value>> {
            let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(|line| match serde_json::from_str(line) {
                    Ok(Value::Object(map)) => map,
                    other => panic!("not a JSON object: {line:?} ({other:?})"),
                })
                .collect()
        }
    }

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            bytes.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// Runs `f` with the production JSON format logging every level into the returned lines.
    pub fn json_lines<T>(f: impl FnOnce() -> T) -> (T, Captured) {
        filtered_json_lines("trace", f)
    }

    /// [`json_lines`] with the `RUST_LOG`-style `filter`.
    pub fn filtered_json_lines<T>(filter: &str, f: impl FnOnce() -> T) -> (T, Captured) {
        let captured = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(captured.clone());
        let subscriber = super::json(builder).finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        (out, captured)
    }
}

#[cfg(test)]
mod tests {
    use super::capture::json_lines;

    #[test]
    fn json_lines_are_flat_with_integer_durations() {
        let ((), captured) = json_lines(|| {
            let span = tracing::info_span!("connection", peer = "x");
            let _entered = span.enter();
            tracing::info!(target: "access", status = 200u16, duration_us = 6544u64, path = "/a");
            tracing::warn!(error = "boom", "request not forwarded");
        });
        let lines = captured.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let access = &lines[0];
        assert!(!access.contains_key("fields"), "{access:?}");
        assert!(!access.contains_key("span") && !access.contains_key("spans"));
        assert_eq!(access["target"], "access");
        assert_eq!(access["level"], "INFO");
        assert!(
            access["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        assert_eq!(access["status"].as_u64(), Some(200));
        assert_eq!(access["duration_us"].as_u64(), Some(6544));
        assert!(access["duration_us"].is_u64(), "an integer, not a float");
        assert_eq!(access["path"], "/a");
        assert_eq!(lines[1]["message"], "request not forwarded");
        assert_eq!(lines[1]["error"], "boom");
    }
}
