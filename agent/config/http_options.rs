//! The request settings an `http` target and `kubernetes.ingress` share → [`HttpOptions`]:
//! method, body, headers, body patterns, client certificate and redirects, each with
//! blackbox_exporter's default (`GET`, no body, follow redirects).

use hyper::Method;

use super::HttpOptions;
use super::net_fields;
use super::raw::{Pairs, Problem, S};
use super::validate::{check, check_opt};
use crate::probe::http::{BodyPattern, ClientCert, ClientCertError, Headers};

/// The methods a probe may send.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The raw settings, borrowed from whichever block writes them.
pub(super) struct RawOptions<'a> {
    pub method: Option<&'a S<String>>,
    pub headers: Option<&'a S<Pairs>>,
    pub body: Option<&'a S<String>>,
    pub expected_body: Option<&'a S<Vec<S<String>>>>,
    pub cert_file: Option<&'a S<String>>,
    pub key_file: Option<&'a S<String>>,
    pub follow_redirects: Option<&'a S<bool>>,
}

/// Borrows the fields of `$raw` (a `RawHttpTarget` or `RawIngress`, which write the same).
macro_rules! raw_options {
    ($raw:expr) => {
        $crate::config::http_options::RawOptions {
            method: $raw.method.as_ref(),
            headers: $raw.headers.as_ref(),
            body: $raw.body.as_ref(),
            expected_body: $raw.expected_body.as_ref(),
            cert_file: $raw.cert_file.as_ref(),
            key_file: $raw.key_file.as_ref(),
            follow_redirects: $raw.follow_redirects.as_ref(),
        }
    };
}
pub(super) use raw_options;

/// Checks the settings of the block at `at` (`http[2]`, `kubernetes.ingress`).
pub(super) fn options(at: &str, raw: &RawOptions) -> Result<HttpOptions, Problem> {
    let field = |name: &str| format!("{at}.{name}");
    let method = check_opt(raw.method, &field("method"), |s| method(s))?;
    let method = method.unwrap_or(Method::GET);
    if let Some(body) = raw
        .body
        .filter(|_| method == Method::GET || method == Method::HEAD)
    {
        let message = format!(
            "a {method} request sends no body; set `method` to POST, PUT, PATCH, DELETE or OPTIONS"
        );
        return Err(Problem::new(Some(body.referenced), field("body"), message));
    }
    let expected_body = match raw.expected_body {
        Some(list) => expected_body(list, &field("expected_body"), &method)?,
        None => Vec::new(),
    };
    Ok(HttpOptions {
        headers: headers(raw.headers, &field("headers"))?,
        body: raw.body.map(|b| b.value.clone().into()).unwrap_or_default(),
        expected_body,
        client_cert: client_cert(raw, at)?,
        follow_redirects: raw.follow_redirects.is_none_or(|b| b.value),
        method,
    })
}

fn method(s: &str) -> Result<Method, String> {
    if !METHODS.contains(&s) {
        return Err(format!(
            "{} is not a method the probe sends; use one of {}",
            super::fields::show(s),
            METHODS.join(", ")
        ));
    }
    Method::from_bytes(s.as_bytes()).map_err(|_| format!("{s:?} is not a method"))
}

/// `headers`: a name is checked where it is written, its value at `headers.NAME`. No value is
/// ever quoted in an error.
fn headers(raw: Option<&S<Pairs>>, path: &str) -> Result<Headers, Problem> {
    let Some(raw) = raw else {
        return Ok(Headers::default());
    };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (name, value) in &raw.value.0 {
        let (n, v) = (name.value.as_str(), value.value.as_str());
        check(value, &format!("{path}.{n}"), |s| {
            net_fields::header_value(s).map(|_| ())
        })?;
        pairs.push((n, v));
        // Each name on its own first, so that the error points at its line.
        check(name, path, |_| {
            Headers::parse(pairs.iter().copied()).map(|_| ())
        })?;
    }
    Headers::parse(pairs).map_err(|message| Problem::new(Some(raw.referenced), path, message))
}

/// `expected_body`: a non-empty list of patterns that must all match; a `HEAD` has no body.
fn expected_body(
    list: &S<Vec<S<String>>>,
    path: &str,
    method: &Method,
) -> Result<Vec<BodyPattern>, Problem> {
    if list.value.is_empty() {
        let message =
            "must list at least one pattern; leave `expected_body` out to not read the body";
        return Err(Problem::new(Some(list.referenced), path, message));
    }
    if *method == Method::HEAD {
        let message = "a response to HEAD has no body to match; use another `method`";
        return Err(Problem::new(Some(list.referenced), path, message));
    }
    list.value
        .iter()
        .enumerate()
        .map(|(i, p)| check(p, &format!("{path}[{i}]"), |s| BodyPattern::new(s)))
        .collect()
}

/// `cert_file` and `key_file`: both or neither, read and matched now.
fn client_cert(raw: &RawOptions, at: &str) -> Result<Option<ClientCert>, Problem> {
    let (cert, key) = match (raw.cert_file, raw.key_file) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(cert), None) => {
            let message = "needs `key_file`, the private key of the certificate";
            return Err(Problem::new(
                Some(cert.referenced),
                format!("{at}.cert_file"),
                message,
            ));
        }
        (None, Some(key)) => {
            let message = "needs `cert_file`, the certificate the key belongs to";
            return Err(Problem::new(
                Some(key.referenced),
                format!("{at}.key_file"),
                message,
            ));
        }
    };
    let cert_path = check(cert, &format!("{at}.cert_file"), |s| {
        super::fields::file_path(s)
    })?;
    let key_path = check(key, &format!("{at}.key_file"), |s| {
        super::fields::file_path(s)
    })?;
    ClientCert::from_files(&cert_path, &key_path)
        .map(Some)
        .map_err(|err| {
            let blame_key = match &err {
                ClientCertError::Read { file, .. } => *file == key_path.display().to_string(),
                ClientCertError::NoKey { .. } | ClientCertError::Mismatch { .. } => true,
                ClientCertError::NoCertificate { .. } | ClientCertError::Pem { .. } => false,
            };
            let (value, name) = if blame_key {
                (key, "key_file")
            } else {
                (cert, "cert_file")
            };
            let message = super::fields::one_line(&err.to_string());
            Problem::new(Some(value.referenced), format!("{at}.{name}"), message)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_the_usual_ones_in_capitals() {
        assert_eq!(method("HEAD"), Ok(Method::HEAD));
        assert_eq!(
            method("get"),
            Err("`get` is not a method the probe sends; use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS".into())
        );
    }
}
