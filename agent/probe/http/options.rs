//! What a request may carry beyond its URL: configured headers, whose values are never
//! shown, and the patterns its body must match. Checked where they are configured, so the
//! probe only meets values it can send.

use std::fmt;

use hyper::header::{HeaderName, HeaderValue};

/// Headers the probe sets itself or that would change how the connection is used: `Host`
/// comes from the URL, and the rest are hop-by-hop or framing headers (illegal in HTTP/2).
const RESERVED: [&str; 8] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "keep-alive",
    "proxy-connection",
];

/// Headers that do not follow a redirect to another host, as Go's client (blackbox_exporter's)
/// drops them.
const CREDENTIALS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "cookie",
    "cookie2",
];

/// Configured request headers, in the order given, each name once. `Debug` shows the names
/// only: values are often tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(HeaderName, HeaderValue)>);

impl Headers {
    /// Checks each name and value. The error names the header, never its value.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Headers, String> {
        let mut out: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for (name, value) in pairs {
            let parsed = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("header {name:?}: not a valid header name"))?;
            if RESERVED.contains(&parsed.as_str()) {
                return Err(format!(
                    "header {name:?}: set by the probe itself and cannot be configured"
                ));
            }
            if out.iter().any(|(n, _)| *n == parsed) {
                return Err(format!("header {name:?}: given twice"));
            }
            let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
                format!("header {name:?}: the value holds characters a header cannot carry")
            })?;
            // Kept out of HTTP/2's header compression tables.
            value.set_sensitive(true);
            out.push((parsed, value));
        }
        Ok(Headers(out))
    }

    pub fn iter(&self) -> impl Iterator<Item = &(HeaderName, HeaderValue)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These headers with `more` added, replacing those of the same name.
    pub fn merged(&self, more: &Headers) -> Headers {
        let kept = self
            .0
            .iter()
            .filter(|(n, _)| more.0.iter().all(|(m, _)| m != n));
        Headers(kept.chain(more.0.iter()).cloned().collect())
    }

    /// The headers that follow a redirect to another host: all but credentials.
    pub(super) fn for_other_host(&self) -> Headers {
        let kept = self
            .0
            .iter()
            .filter(|(n, _)| !CREDENTIALS.contains(&n.as_str()));
        Headers(kept.cloned().collect())
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.0.iter().map(|(n, _)| (n.as_str(), "<hidden>"));
        f.debug_map().entries(names).finish()
    }
}

/// A pattern the response body must match (blackbox_exporter's
/// `fail_if_body_not_matches_regexp`), on bytes, so a body need not be UTF-8.
#[derive(Clone)]
pub struct BodyPattern(regex::bytes::Regex);

impl BodyPattern {
    /// Compiles `pattern` (Rust `regex` syntax, which is RE2's, as Go's is).
    pub fn new(pattern: &str) -> Result<BodyPattern, String> {
        regex::bytes::Regex::new(pattern)
            .map(BodyPattern)
            .map_err(|err| format!("not a valid regular expression: {}", one_line(&err)))
    }

    pub fn is_match(&self, body: &[u8]) -> bool {
        self.0.is_match(body)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

fn one_line(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text.lines().rev().find(|l| !l.trim().is_empty());
    last.unwrap_or("invalid")
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

impl PartialEq for BodyPattern {
    fn eq(&self, other: &BodyPattern) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for BodyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BodyPattern({:?})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_hidden_and_errors_name_the_header_only() {
        let headers = Headers::parse([("X-Token", "s3cret"), ("Accept", "text/plain")]).unwrap();
        let shown = format!("{headers:?}");
        assert_eq!(shown, r#"{"x-token": "<hidden>", "accept": "<hidden>"}"#);
        assert!(!shown.contains("s3cret"));
        let cases = [
            (
                ("Host", "a"),
                "header \"Host\": set by the probe itself and cannot be configured",
            ),
            (
                ("bad name", "a"),
                "header \"bad name\": not a valid header name",
            ),
            (
                ("X-A", "line\nbreak s3cret"),
                "header \"X-A\": the value holds characters a header cannot carry",
            ),
        ];
        for (pair, want) in cases {
            assert_eq!(Headers::parse([pair]), Err(want.to_string()));
        }
        assert_eq!(
            Headers::parse([("x-a", "1"), ("X-A", "2")]),
            Err("header \"X-A\": given twice".to_string())
        );
    }

    #[test]
    fn merged_headers_replace_by_name() {
        let base = Headers::parse([("X-A", "1"), ("X-B", "2")]).unwrap();
        let more = Headers::parse([("x-b", "3"), ("X-C", "4")]).unwrap();
        let merged = base.merged(&more);
        let pairs: Vec<(&str, &[u8])> = merged
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(pairs, [("x-a", &b"1"[..]), ("x-b", b"3"), ("x-c", b"4")]);
    }

    #[test]
    fn credentials_do_not_follow_to_another_host() {
        let headers = Headers::parse([("Authorization", "Bearer t"), ("X-Probe", "1")]).unwrap();
        let kept = headers.for_other_host();
        let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-probe"]);
    }

    #[test]
    fn body_patterns_compile_or_say_why() {
        let ok = BodyPattern::new("build=[0-9]+").unwrap();
        assert!(ok.is_match(b"hello build=42\n"));
        assert!(!ok.is_match(b"hello\n"));
        assert_eq!(format!("{ok:?}"), r#"BodyPattern("build=[0-9]+")"#);
        let err = BodyPattern::new("a(").unwrap_err();
        assert!(err.starts_with("not a valid regular expression: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
