//! Per-Ingress overrides of the Ingress hop's request, by annotation, named as hopwatch's other
//! annotations are (`hopwatch.io/expected-addresses`, `hopwatch.io/critical`):
//!
//! | annotation                   | value                                   | replaces                                |
//! |------------------------------|-----------------------------------------|-----------------------------------------|
//! | `hopwatch.io/path`           | a path and query, `/healthz?full=1`     | each rule's path: one request per host  |
//! | `hopwatch.io/expected-status`| codes and ranges, `200, 301-302`        | `kubernetes.ingress.expected_status`    |
//! | `hopwatch.io/headers`        | one `Name: value` per line              | configured headers of the same name     |
//!
//! A value that does not parse is left out (the rule is probed with the configured settings)
//! and its message names the Ingress and the annotation, never a header's value. Pure: strings
//! in, plain data and messages out.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use super::model::ObjKey;
use crate::probe::http::Headers;

pub const PATH_ANNOTATION: &str = "hopwatch.io/path";
pub const STATUS_ANNOTATION: &str = "hopwatch.io/expected-status";
pub const HEADERS_ANNOTATION: &str = "hopwatch.io/headers";

/// The overrides an Ingress's annotations ask for; `None` where it asks nothing, or where the
/// value did not parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub path: Option<String>,
    pub expected_status: Option<Vec<RangeInclusive<u16>>>,
    pub headers: Option<Headers>,
}

/// Reads the three annotations of the Ingress (or, with `kind` "HTTPRoute", the HTTPRoute)
/// `key`; the messages say why a value was left out.
pub fn parse(
    annotations: Option<&BTreeMap<String, String>>,
    kind: &str,
    key: &ObjKey,
) -> (Overrides, Vec<String>) {
    let mut errors = Vec::new();
    let Some(annotations) = annotations else {
        return (Overrides::default(), errors);
    };
    let overrides = Overrides {
        path: read(annotations, PATH_ANNOTATION, (kind, key), path, &mut errors),
        expected_status: read(
            annotations,
            STATUS_ANNOTATION,
            (kind, key),
            status_list,
            &mut errors,
        ),
        headers: read(
            annotations,
            HEADERS_ANNOTATION,
            (kind, key),
            headers,
            &mut errors,
        ),
    };
    (overrides, errors)
}

/// The annotation `name` parsed by `parse`; `None` when absent or bad, a message when bad.
fn read<T>(
    annotations: &BTreeMap<String, String>,
    name: &str,
    (kind, key): (&str, &ObjKey),
    parse: fn(&str) -> Result<T, String>,
    errors: &mut Vec<String>,
) -> Option<T> {
    let value = annotations.get(name)?;
    parse(value)
        .map_err(|err| {
            errors.push(format!(
                "{kind} {key}: annotation {name}: {err}; its rules are probed with the configured settings until it is fixed"
            ));
        })
        .ok()
}

/// An absolute path, optionally with a query: what one URL of the host asks for.
fn path(value: &str) -> Result<String, String> {
    let value = value.trim();
    let bad = |why: &str| Err(format!("`{value}` {why}"));
    if !value.starts_with('/') {
        return bad("is not a path starting with `/`");
    }
    if value.contains('#') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("holds a space, a control character or a `#`");
    }
    match value.parse::<hyper::http::uri::PathAndQuery>() {
        Ok(_) => Ok(value.to_string()),
        Err(_) => bad("is not a valid path and query"),
    }
}

/// `200, 301-302`: codes and ranges of 100 to 599, separated by commas.
fn status_list(value: &str) -> Result<Vec<RangeInclusive<u16>>, String> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim) {
        let code = |s: &str| match s.trim().parse::<u16>() {
            Ok(n) if (100..=599).contains(&n) => Ok(n),
            _ => Err(format!(
                "`{entry}` is not a status code from 100 to 599 or a range such as 200-299"
            )),
        };
        let range = match entry.split_once('-') {
            Some((low, high)) => code(low)?..=code(high)?,
            None => code(entry)?..=code(entry)?,
        };
        if range.start() > range.end() {
            return Err(format!("`{entry}`: the range ends below its start"));
        }
        out.push(range);
    }
    Ok(out)
}

/// One `Name: value` per line; blank lines are ignored. A bad line is named by its number.
fn headers(value: &str) -> Result<Headers, String> {
    let mut pairs = Vec::new();
    for (number, line) in value.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("line {}: not `Name: value`", number + 1));
        };
        pairs.push((name.trim(), value.trim()));
    }
    if pairs.is_empty() {
        return Err("no `Name: value` line".to_string());
    }
    Headers::parse(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(pairs: &[(&str, &str)]) -> (Overrides, Vec<String>) {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(Some(&map), "Ingress", &ObjKey::new("shop", "front"))
    }

    #[test]
    fn good_values_override() {
        let (o, errors) = of(&[
            (PATH_ANNOTATION, "/healthz?full=1"),
            (STATUS_ANNOTATION, "200, 301-302"),
            (
                HEADERS_ANNOTATION,
                "X-Probe: 1\n\nAuthorization: Bearer s3cret\n",
            ),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(o.path.as_deref(), Some("/healthz?full=1"));
        assert_eq!(o.expected_status, Some(vec![200..=200, 301..=302]));
        let names: Vec<&str> = o
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["x-probe", "authorization"]);
        assert_eq!(of(&[]), (Overrides::default(), Vec::new()));
    }

    #[test]
    fn bad_values_are_left_out_and_named_without_header_values() {
        let (o, errors) = of(&[
            (PATH_ANNOTATION, "healthz"),
            (STATUS_ANNOTATION, "200, 3xx"),
            (HEADERS_ANNOTATION, "Authorization Bearer s3cret"),
        ]);
        assert_eq!(o, Overrides::default());
        let tail = "; its rules are probed with the configured settings until it is fixed";
        assert_eq!(
            errors,
            [
                format!(
                    "Ingress shop/front: annotation hopwatch.io/path: `healthz` is not a path starting with `/`{tail}"
                ),
                format!(
                    "Ingress shop/front: annotation hopwatch.io/expected-status: `3xx` is not a status code from 100 to 599 or a range such as 200-299{tail}"
                ),
                format!(
                    "Ingress shop/front: annotation hopwatch.io/headers: line 1: not `Name: value`{tail}"
                ),
            ]
        );
        assert!(errors.iter().all(|e| !e.contains("s3cret")));
        let (_, errors) = of(&[(HEADERS_ANNOTATION, "Host: other.test")]);
        assert!(
            errors[0].contains("header \"Host\": set by the probe itself"),
            "{errors:?}"
        );
        let (_, errors) = of(&[(STATUS_ANNOTATION, "399-200")]);
        assert!(
            errors[0].contains("`399-200`: the range ends below its start"),
            "{errors:?}"
        );
    }
}
