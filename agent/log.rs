//! Log lines as logfmt or JSON (`--log.format`), one event per line, for log pipelines.
//!
//! Every line has `ts` (RFC 3339, UTC), `level`, `module` (where in hopwatch it was logged) and
//! `msg`, then the event's own fields, such as `target`, `hop` and `result` for a probe. The
//! human format (`text`, the default) is tracing-subscriber's. No format adds anything the
//! event does not carry: what is logged is decided where it is logged, and no call site logs a
//! header, a token, a password or a key.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// tracing-subscriber's human-readable lines.
    Text,
    Logfmt,
    Json,
}

/// Formats events as logfmt or JSON lines.
#[derive(Debug, Clone, Copy)]
pub struct Structured {
    pub json: bool,
}

impl<S, N> FormatEvent<S, N> for Structured
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = meta.level().as_str().to_ascii_lowercase();
        let mut pairs = vec![
            ("ts".to_string(), Value::String(rfc3339(SystemTime::now()))),
            ("level".to_string(), Value::String(level)),
            (
                "module".to_string(),
                Value::String(meta.target().to_string()),
            ),
            ("msg".to_string(), Value::String(fields.message)),
        ];
        pairs.extend(fields.others);
        let line = if self.json {
            json_line(pairs)
        } else {
            logfmt_line(&pairs)
        };
        writeln!(writer, "{line}")
    }
}

/// An event's message and fields, numbers and booleans kept as such.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(String, Value)>,
}

impl Fields {
    fn add(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.others.push((field.name().to_string(), value));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.add(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, Value::Bool(value));
    }
}

/// One JSON object; a field named like one before it (`msg`, say) is kept as `field_msg`.
fn json_line(pairs: Vec<(String, Value)>) -> String {
    let mut map = Map::new();
    for (key, value) in pairs {
        let key = if map.contains_key(&key) {
            format!("field_{key}")
        } else {
            key
        };
        map.insert(key, value);
    }
    Value::Object(map).to_string()
}

/// `key=value` pairs; values with spaces, quotes, `=` or nothing at all are quoted.
fn logfmt_line(pairs: &[(String, Value)]) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push(' ');
        }
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let bare = !text.is_empty()
            && !text
                .chars()
                .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
        if bare {
            out.push_str(&format!("{key}={text}"));
        } else {
            // A JSON string literal is a valid logfmt quoted value.
            out.push_str(&format!("{key}={}", Value::String(text)));
        }
    }
    out
}

/// `2026-12-08T01:37:21.123Z`.
fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The calendar date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_694_241_123);
        assert_eq!(rfc3339(at), "2026-12-08T01:44:01.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn logfmt_quotes_only_what_needs_it() {
        let pairs = vec![
            ("level".to_string(), Value::from("info")),
            ("msg".to_string(), Value::from("probe \"done\"")),
            ("target".to_string(), Value::from("web@127.0.0.1:53")),
            ("empty".to_string(), Value::from("")),
            ("seconds".to_string(), Value::from(0.25)),
        ];
        assert_eq!(
            logfmt_line(&pairs),
            r#"level=info msg="probe \"done\"" target=web@127.0.0.1:53 empty="" seconds=0.25"#
        );
    }

    #[test]
    fn json_keeps_a_clashing_field_apart() {
        let pairs = vec![
            ("msg".to_string(), Value::from("hello")),
            ("msg".to_string(), Value::from("field")),
            ("n".to_string(), Value::from(3u64)),
        ];
        assert_eq!(
            json_line(pairs),
            r#"{"field_msg":"field","msg":"hello","n":3}"#
        );
    }
}
