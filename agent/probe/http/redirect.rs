//! Following redirects as blackbox_exporter does (it uses Go's `net/http` client): at most
//! [`MAX_REDIRECTS`] hops, each on a fresh connection, and the final response is the one
//! judged. Pure: a response code and a `Location` in, the next request out.
//!
//! - 301, 302, 303, 307 and 308 with a `Location` are followed; without one, the response is
//!   final.
//! - 301, 302 and 303 turn any method but `GET` and `HEAD` into a `GET`, and drop the body;
//!   307 and 308 keep the method and the body.
//! - A relative `Location` is resolved against the URL that answered.

use hyper::Method;

use super::HttpUrl;

/// Redirects followed before giving up with `http_too_many_redirects`; Go's default.
pub const MAX_REDIRECTS: usize = 10;

/// Whether `code` with a `Location` is followed.
pub fn is_redirect(code: u16) -> bool {
    matches!(code, 301 | 302 | 303 | 307 | 308)
}

/// The method of the next request, and whether it keeps the body.
pub fn next_method(code: u16, method: &Method) -> (Method, bool) {
    match code {
        301..=303 if *method == Method::GET || *method == Method::HEAD => (method.clone(), false),
        301..=303 => (Method::GET, false),
        _ => (method.clone(), true),
    }
}

/// The URL `location` points to from `base`; `None` when it is not an http(s) URL.
pub fn resolve(base: &HttpUrl, location: &str) -> Option<HttpUrl> {
    let location = location.trim();
    let location = location.split_once('#').map_or(location, |(l, _)| l);
    if location.contains("://") {
        return HttpUrl::parse(location).ok();
    }
    if let Some(rest) = location.strip_prefix("//") {
        return HttpUrl::parse(&format!("{}://{rest}", base.scheme.as_str())).ok();
    }
    let path = if location.starts_with('/') {
        location.to_string()
    } else if let Some(query) = location.strip_prefix('?') {
        let path = base
            .path
            .split_once('?')
            .map_or(base.path.as_str(), |(p, _)| p);
        format!("{path}?{query}")
    } else {
        let path = base
            .path
            .split_once('?')
            .map_or(base.path.as_str(), |(p, _)| p);
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{location}")
    };
    let text = format!("{}://{}{path}", base.scheme.as_str(), base.host_header());
    HttpUrl::parse(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_url_that_answered() {
        let base = HttpUrl::parse("http://a.test:8080/dir/page?x=1").unwrap();
        let cases = [
            ("https://b.test/next", "https://b.test/next"),
            ("//c.test/p", "http://c.test/p"),
            ("/abs?y=2", "http://a.test:8080/abs?y=2"),
            ("other", "http://a.test:8080/dir/other"),
            ("?y=2", "http://a.test:8080/dir/page?y=2"),
            ("/frag#part", "http://a.test:8080/frag"),
        ];
        for (location, want) in cases {
            let got = resolve(&base, location).map(|u| u.to_string());
            assert_eq!(got.as_deref(), Some(want), "{location}");
        }
        assert_eq!(resolve(&base, "ftp://x.test/"), None);
        assert_eq!(resolve(&base, "https://"), None);
    }

    #[test]
    fn methods_change_as_go_changes_them() {
        assert_eq!(next_method(303, &Method::POST), (Method::GET, false));
        assert_eq!(next_method(303, &Method::HEAD), (Method::HEAD, false));
        assert_eq!(next_method(302, &Method::POST), (Method::GET, false));
        assert_eq!(next_method(301, &Method::PUT), (Method::GET, false));
        assert_eq!(next_method(307, &Method::POST), (Method::POST, true));
        assert_eq!(next_method(308, &Method::GET), (Method::GET, true));
        assert!(is_redirect(308) && !is_redirect(304) && !is_redirect(300));
    }
}
