//! The `otlp:` section → [`Settings`]: where the metrics are pushed, how often, and the
//! headers and resource attributes sent with them.

use super::fields::show;
use super::net_fields;
use super::raw::{Pairs, Problem, RawOtlp, S};
use super::validate::{Computed, Timing, check, check_opt, schedule, timing};
use crate::otlp::Settings;

const DEFAULT_INTERVAL_SECONDS: f64 = 60.0;
const DEFAULT_TIMEOUT_SECONDS: f64 = 10.0;

/// A push every minute, given ten seconds; jitter is not a setting of this section.
const OTLP_DEFAULTS: Computed = Computed {
    interval: DEFAULT_INTERVAL_SECONDS,
    timeout: default_timeout,
    jitter: no_jitter,
};

/// The timeout when none is configured: 10 s, or 80 % of an interval of 10 s or less.
fn default_timeout(interval: f64) -> f64 {
    if interval > DEFAULT_TIMEOUT_SECONDS {
        DEFAULT_TIMEOUT_SECONDS
    } else {
        0.8 * interval
    }
}

fn no_jitter(_interval: f64) -> f64 {
    0.0
}

/// The whole section.
pub(super) fn section(raw: RawOtlp) -> Result<Settings, Problem> {
    let endpoint = check(&raw.endpoint, "otlp.endpoint", |s| endpoint(s))?;
    // Stricter than a probe's interval; checked first so that its message wins.
    check_opt(
        raw.interval_seconds.as_ref(),
        "otlp.interval_seconds",
        |&v| net_fields::otlp_interval(v),
    )?;
    let own = timing(
        "otlp",
        raw.interval_seconds.as_ref(),
        raw.timeout_seconds.as_ref(),
        None,
    )?;
    let schedule = schedule(&own, &Timing::default(), &OTLP_DEFAULTS)?;
    Ok(Settings {
        endpoint,
        interval: schedule.interval,
        timeout: schedule.timeout,
        headers: headers(raw.headers.as_ref())?,
        resource: resource(raw.resource.as_ref())?,
    })
}

/// `endpoint`: the full URL the metrics are posted to, kept as written.
fn endpoint(s: &str) -> Result<String, String> {
    let url = net_fields::url(s)?;
    if url.path == "/" {
        return Err(format!(
            "{} has no path; write the full metrics URL, such as `http://otel-collector:4318/v1/metrics`",
            show(s)
        ));
    }
    Ok(s.to_string())
}

/// `headers`: names are checked at `otlp.headers`, values at `otlp.headers.NAME`; a name may
/// appear once, whatever its case, as HTTP does not tell `Authorization` from `authorization`.
fn headers(raw: Option<&S<Pairs>>) -> Result<Vec<(String, String)>, Problem> {
    let pairs = pairs(raw, "otlp.headers", net_fields::header_name, |s| {
        net_fields::header_value(s)
    })?;
    let written = raw.map_or(&[][..], |r| r.value.0.as_slice());
    for (i, (name, _)) in written.iter().enumerate() {
        let mut earlier = written[..i].iter().map(|(other, _)| other);
        if let Some(first) = earlier.find(|o| o.value.eq_ignore_ascii_case(&name.value)) {
            let message = format!(
                "duplicate header {}: {} is set too, and header names ignore case",
                show(&name.value),
                show(&first.value)
            );
            return Err(Problem::new(Some(name.referenced), "otlp.headers", message));
        }
    }
    Ok(pairs)
}

/// `resource`: attribute keys are checked at `otlp.resource`, values at `otlp.resource.KEY`.
fn resource(raw: Option<&S<Pairs>>) -> Result<Vec<(String, String)>, Problem> {
    pairs(raw, "otlp.resource", net_fields::attribute_key, |s| {
        net_fields::attribute_value(s)
    })
}

/// Each key checked by `key`, each value by `value`, in the order written.
fn pairs(
    raw: Option<&S<Pairs>>,
    path: &str,
    key: fn(&str) -> Result<String, String>,
    value: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<(String, String)>, Problem> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.value
        .0
        .iter()
        .map(|(k, v)| {
            let name = check(k, path, |s| key(s))?;
            let value = check(v, &format!("{path}.{name}"), |s| value(s))?;
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timeout_stays_below_the_interval() {
        assert_eq!(default_timeout(60.0), 10.0);
        assert_eq!(default_timeout(10.0), 8.0);
        assert_eq!(default_timeout(1.0), 0.8);
    }

    #[test]
    fn the_endpoint_is_a_full_url() {
        let ok = "https://otlp.example.com/v1/metrics";
        assert_eq!(endpoint(ok), Ok(ok.to_string()));
        assert_eq!(
            endpoint("http://otel-collector:4318"),
            Err("`http://otel-collector:4318` has no path; write the full metrics URL, such as `http://otel-collector:4318/v1/metrics`".into())
        );
        assert_eq!(
            endpoint("grpc://otel-collector:4317/"),
            Err("`grpc://otel-collector:4317/` is not an http:// or https:// URL".into())
        );
    }
}
