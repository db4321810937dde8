//! Which Ingress rule a request for a host and path reaches, decided twice: as ingress-nginx
//! routes it and as a Gateway API implementation routes the same rules (an Ingress converted
//! to an HTTPRoute, as ingress2gateway does). The two disagree more often than people expect,
//! which is worth saying when they do.
//!
//! # ingress-nginx
//!
//! Rules become `server` blocks per host and `location` blocks per path
//! (`internal/ingress/controller/controller.go`, `updateServerLocations`, and the template's
//! `buildLocation`):
//!
//! - The host picks one server: an exact `server_name`, else the longest matching wildcard
//!   (`*.example.com` matches any number of labels, as nginx does), else the default server,
//!   where rules without a host go. Only that server's rules compete; there is no fall-through.
//! - `Exact /api` is `location = /api`.
//! - `Prefix /api` becomes `location /api/` plus `location = /api`: it matches `/api` and
//!   `/api/x`, not `/apiv2`. `Prefix /api/` becomes `location /api/` and `= /api/` only, so it
//!   does **not** match `/api`.
//! - `ImplementationSpecific /api` is `location /api`, a character prefix: it matches `/apiv2`.
//! - An exact location wins, else the longest prefix.
//! - When any Ingress of the host sets `nginx.ingress.kubernetes.io/use-regex: "true"` or a
//!   `rewrite-target`, every location of the host becomes the case-insensitive regex
//!   `~* "^PATH"`, `Exact` ones included, tried longest first: then `/api` matches `/APIv2`.
//!   Paths with regex syntax are not evaluated here (no regex engine); they are reported.
//!
//! # Gateway API
//!
//! - `Prefix` and `ImplementationSpecific` are `PathPrefix`: element-wise, trailing slash
//!   ignored, so `/api` and `/api/` both match `/api` and `/api/x`, never `/apiv2`.
//! - Every rule whose hostname matches competes: exact hostname, wildcard (`*.example.com`
//!   matches `a.example.com` and `a.b.example.com`, not `example.com`), or none. Precedence:
//!   the most characters in a matching non-wildcard hostname, then in a matching hostname, then
//!   an exact path over a prefix, then the longest path; remaining ties go to the first rule
//!   in list order (the API lists by namespace and name).
//!
//! An Ingress's `defaultBackend` is a rule without a host for `Prefix /`, tried last.

use std::cmp::Reverse;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use crate::discovery::gateway::wildcard_matches;
use crate::discovery::ingress::BackendPort;
use crate::discovery::model::ObjKey;

/// Annotations that make ingress-nginx treat every path of a host as a regex.
const USE_REGEX: &str = "nginx.ingress.kubernetes.io/use-regex";
const REWRITE_TARGET: &str = "nginx.ingress.kubernetes.io/rewrite-target";

/// How a rule's path is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

impl PathType {
    pub fn as_str(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }

    fn parse(text: &str) -> PathType {
        match text {
            "Exact" => PathType::Exact,
            "Prefix" => PathType::Prefix,
            // The API requires a pathType; anything else is treated as the controller's own.
            _ => PathType::ImplementationSpecific,
        }
    }
}

/// The Service a rule sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub service: String,
    pub port: BackendPort,
}

/// One path of one Ingress rule, or an Ingress's default backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub ingress: ObjKey,
    /// Lowercase; `None` for a rule without a host (any host).
    pub host: Option<String>,
    pub path: String,
    pub path_type: PathType,
    /// `None` for a resource backend, or a Service backend without a port.
    pub backend: Option<Backend>,
    /// The Ingress asks ingress-nginx for regex locations (`use-regex` or `rewrite-target`).
    pub nginx_regex: bool,
    /// The Ingress's `spec.defaultBackend`, not a rule.
    pub default_backend: bool,
}

impl Rule {
    /// `shop.example.com /api (Prefix)`, `* / (default backend)`.
    pub fn describe(&self) -> String {
        let host = self.host.as_deref().unwrap_or("*");
        if self.default_backend {
            return format!("{host} (default backend)");
        }
        format!("{host} {} ({})", self.path, self.path_type.as_str())
    }
}

/// Whose routing rules are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    IngressNginx,
    GatewayApi,
}

impl Semantics {
    pub const ALL: [Semantics; 2] = [Semantics::IngressNginx, Semantics::GatewayApi];

    pub fn as_str(self) -> &'static str {
        match self {
            Semantics::IngressNginx => "ingress-nginx",
            Semantics::GatewayApi => "gateway-api",
        }
    }

    pub fn parse(text: &str) -> Option<Semantics> {
        Semantics::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Where a request lands under one semantics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routing {
    /// The index of the winning rule.
    pub rule: Option<usize>,
    /// The rules that applied to the host (ingress-nginx: the chosen server's).
    pub candidates: Vec<usize>,
    /// Candidate rules with regex syntax that could not be evaluated.
    pub unevaluated: Vec<usize>,
}

/// The rules of one Ingress, in spec order, then its default backend.
pub fn rules(ing: &Ingress) -> Vec<Rule> {
    let key = ObjKey::new(
        ing.metadata.namespace.as_deref().unwrap_or_default(),
        ing.metadata.name.as_deref().unwrap_or_default(),
    );
    let annotations = ing.metadata.annotations.clone().unwrap_or_default();
    let nginx_regex = annotations.get(USE_REGEX).is_some_and(|v| v == "true")
        || annotations
            .get(REWRITE_TARGET)
            .is_some_and(|v| !v.is_empty());
    let spec = ing.spec.as_ref();
    let mut out = Vec::new();
    for rule in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten() {
        let host = rule.host.as_ref().map(|h| h.to_ascii_lowercase());
        for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
            out.push(Rule {
                ingress: key.clone(),
                host: host.clone().filter(|h| !h.is_empty()),
                path: p.path.clone().unwrap_or_else(|| "/".to_string()),
                path_type: PathType::parse(&p.path_type),
                backend: backend(&p.backend),
                nginx_regex,
                default_backend: false,
            });
        }
    }
    if let Some(default) = spec.and_then(|s| s.default_backend.as_ref()) {
        out.push(Rule {
            ingress: key,
            host: None,
            path: "/".to_string(),
            path_type: PathType::Prefix,
            backend: backend(default),
            nginx_regex,
            default_backend: true,
        });
    }
    out
}

fn backend(b: &IngressBackend) -> Option<Backend> {
    let svc = b.service.as_ref()?;
    let port = svc.port.as_ref()?;
    let port = match (port.number, &port.name) {
        (Some(n), _) => BackendPort::Number(u16::try_from(n).ok()?),
        (None, Some(name)) => BackendPort::Name(name.clone()),
        (None, None) => return None,
    };
    Some(Backend {
        service: svc.name.clone(),
        port,
    })
}

/// Routes `host` and `path` (query ignored) through `rules` as `semantics` does.
pub fn route(rules: &[Rule], host: &str, path: &str, semantics: Semantics) -> Routing {
    let host = host.to_ascii_lowercase();
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    match semantics {
        Semantics::IngressNginx => nginx(rules, &host, path),
        Semantics::GatewayApi => gateway(rules, &host, path),
    }
}

/// Whether a rule claims `host` at all (under either semantics), ignoring rules without one.
pub fn claims_host(rule: &Rule, host: &str) -> bool {
    rule.host
        .as_deref()
        .is_some_and(|h| h == host || wildcard_matches(h, host))
}

fn nginx(rules: &[Rule], host: &str, path: &str) -> Routing {
    let candidates = nginx_server(rules, host);
    let regex = candidates.iter().any(|&i| rules[i].nginx_regex);
    let mut routing = Routing::default();
    let mut best: Option<(usize, (bool, usize, bool))> = None;
    for &i in &candidates {
        let rule = &rules[i];
        if regex && has_regex_syntax(&rule.path) {
            routing.unevaluated.push(i);
            continue;
        }
        let Some(priority) = nginx_location(rule, path, regex) else {
            continue;
        };
        if best.is_none_or(|(_, b)| priority > b) {
            best = Some((i, priority));
        }
    }
    routing.rule = best.map(|(i, _)| i);
    routing.candidates = candidates;
    routing
}

/// The rules of the one server block that answers `host`.
fn nginx_server(rules: &[Rule], host: &str) -> Vec<usize> {
    let of = |want: &dyn Fn(&Rule) -> bool| -> Vec<usize> {
        (0..rules.len()).filter(|&i| want(&rules[i])).collect()
    };
    let exact = of(&|r| r.host.as_deref() == Some(host));
    if !exact.is_empty() {
        return exact;
    }
    let wildcard = rules
        .iter()
        .filter_map(|r| r.host.as_deref())
        .filter(|h| wildcard_matches(h, host))
        .max_by_key(|h| h.len());
    match wildcard {
        Some(w) => of(&|r| r.host.as_deref() == Some(w)),
        None => of(&|r| r.host.is_none()),
    }
}

/// `(exact, length, declared Exact)` of the location a rule's path becomes when it matches
/// `path`. A declared `Exact` outranks the exact location a `Prefix` adds for the same path,
/// which ingress-nginx does not add when an `Exact` one exists.
fn nginx_location(rule: &Rule, path: &str, regex: bool) -> Option<(bool, usize, bool)> {
    let p = rule.path.as_str();
    if regex {
        let hit = path
            .to_ascii_lowercase()
            .starts_with(&p.to_ascii_lowercase());
        return hit.then_some((false, p.len(), false));
    }
    match rule.path_type {
        PathType::Exact => (path == p).then_some((true, p.len(), true)),
        PathType::Prefix if p == "/" => Some((false, 1, false)),
        PathType::Prefix if path == p => Some((true, p.len(), false)),
        PathType::Prefix => {
            let location = if p.ends_with('/') {
                p.to_string()
            } else {
                format!("{p}/")
            };
            path.starts_with(&location)
                .then_some((false, location.len(), false))
        }
        PathType::ImplementationSpecific => path.starts_with(p).then_some((false, p.len(), false)),
    }
}

fn has_regex_syntax(path: &str) -> bool {
    path.contains(|c: char| "()[]{}*+?|^$\\".contains(c))
}

fn gateway(rules: &[Rule], host: &str, path: &str) -> Routing {
    let candidates: Vec<usize> = (0..rules.len())
        .filter(|&i| gateway_host(&rules[i], host).is_some())
        .collect();
    let rule = candidates
        .iter()
        .filter_map(|&i| {
            let host_rank = gateway_host(&rules[i], host)?;
            let path_rank = gateway_path(&rules[i], path)?;
            Some((i, (host_rank, path_rank, !rules[i].default_backend)))
        })
        // max_by_key keeps the last of equals; ranking by Reverse(index) keeps the first.
        .max_by_key(|&(i, rank)| (rank, Reverse(i)))
        .map(|(i, _)| i);
    Routing {
        rule,
        candidates,
        unevaluated: Vec::new(),
    }
}

/// `(characters of a matching non-wildcard hostname, characters of the matching hostname)`.
fn gateway_host(rule: &Rule, host: &str) -> Option<(usize, usize)> {
    match rule.host.as_deref() {
        None => Some((0, 0)),
        Some(h) if h == host => Some((h.len(), h.len())),
        Some(h) if wildcard_matches(h, host) => Some((0, h.len())),
        Some(_) => None,
    }
}

/// `(exact, path length)` when the rule's path matches.
fn gateway_path(rule: &Rule, path: &str) -> Option<(bool, usize)> {
    let p = rule.path.as_str();
    if rule.path_type == PathType::Exact {
        return (path == p).then_some((true, p.len()));
    }
    let prefix = p.trim_end_matches('/');
    let hit = prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'));
    hit.then_some((false, p.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(host: Option<&str>, path: &str, path_type: PathType, svc: &str) -> Rule {
        Rule {
            ingress: ObjKey::new("shop", "front"),
            host: host.map(str::to_string),
            path: path.to_string(),
            path_type,
            backend: Some(Backend {
                service: svc.to_string(),
                port: BackendPort::Number(80),
            }),
            nginx_regex: false,
            default_backend: false,
        }
    }

    const H: Option<&str> = Some("shop.example.com");
    use PathType::{Exact, ImplementationSpecific as Impl, Prefix};

    fn winner(rules: &[Rule], host: &str, path: &str, s: Semantics) -> Option<String> {
        let routing = route(rules, host, path, s);
        routing
            .rule
            .and_then(|i| rules[i].backend.as_ref())
            .map(|b| b.service.clone())
    }

    /// Each row: rules, host, path, the Service ingress-nginx picks, the one Gateway API picks.
    #[test]
    fn both_semantics_table() {
        let api_prefix = vec![rule(H, "/api", Prefix, "api")];
        let api_slash = vec![rule(H, "/api/", Prefix, "api")];
        let api_impl = vec![rule(H, "/api", Impl, "api")];
        let api_exact = vec![rule(H, "/api", Exact, "api")];
        let root_and_api = vec![rule(H, "/", Prefix, "web"), rule(H, "/api", Prefix, "api")];
        let exact_vs_prefix = vec![
            rule(H, "/api", Prefix, "api"),
            rule(H, "/api", Exact, "exact"),
        ];
        let longest = vec![
            rule(H, "/api", Prefix, "api"),
            rule(H, "/api/v2", Prefix, "v2"),
        ];
        let mut regex = vec![rule(H, "/api", Prefix, "api"), rule(H, "/", Prefix, "web")];
        regex[0].nginx_regex = true;
        let host_vs_hostless = vec![
            rule(H, "/api", Prefix, "api"),
            rule(None, "/", Prefix, "any"),
        ];
        let wildcard = vec![rule(Some("*.example.com"), "/", Prefix, "wild")];
        let ties = vec![
            rule(H, "/api", Prefix, "first"),
            rule(H, "/api", Prefix, "second"),
        ];
        type Row<'a> = (
            &'a [Rule],
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
        );
        let host = "shop.example.com";
        let table: Vec<Row> = vec![
            (&api_prefix, host, "/api", Some("api"), Some("api")),
            (&api_prefix, host, "/api/", Some("api"), Some("api")),
            (&api_prefix, host, "/api/x", Some("api"), Some("api")),
            (&api_prefix, host, "/apiv2", None, None),
            (&api_prefix, host, "/api?x=1", Some("api"), Some("api")),
            (&api_prefix, host, "/API", None, None),
            (&api_prefix, "other.example.com", "/api", None, None),
            // ingress-nginx makes `location /api/` and `= /api/`: `/api` itself is not matched.
            (&api_slash, host, "/api", None, Some("api")),
            (&api_slash, host, "/api/x", Some("api"), Some("api")),
            // ImplementationSpecific is a character prefix in nginx, a PathPrefix in Gateway API.
            (&api_impl, host, "/apiv2", Some("api"), None),
            (&api_impl, host, "/api/x", Some("api"), Some("api")),
            (&api_exact, host, "/api", Some("api"), Some("api")),
            (&api_exact, host, "/api/", None, None),
            (&root_and_api, host, "/apiv2", Some("web"), Some("web")),
            (&root_and_api, host, "/api/x", Some("api"), Some("api")),
            (&exact_vs_prefix, host, "/api", Some("exact"), Some("exact")),
            (&exact_vs_prefix, host, "/api/x", Some("api"), Some("api")),
            (&longest, host, "/api/v2/x", Some("v2"), Some("v2")),
            (&longest, host, "/api/v3", Some("api"), Some("api")),
            // use-regex: every location of the host becomes `~* "^PATH"`.
            (&regex, host, "/APIv2", Some("api"), Some("web")),
            (&regex, host, "/other", Some("web"), Some("web")),
            // nginx picks the host's server; only Gateway API falls through to a hostless rule.
            (&host_vs_hostless, host, "/other", None, Some("any")),
            (
                &host_vs_hostless,
                "x.test",
                "/other",
                Some("any"),
                Some("any"),
            ),
            (
                &wildcard,
                "a.b.example.com",
                "/",
                Some("wild"),
                Some("wild"),
            ),
            (&wildcard, "example.com", "/", None, None),
            (&ties, host, "/api", Some("first"), Some("first")),
        ];
        for (n, (rules, host, path, nginx, gateway)) in table.into_iter().enumerate() {
            let got_nginx = winner(rules, host, path, Semantics::IngressNginx);
            let got_gateway = winner(rules, host, path, Semantics::GatewayApi);
            assert_eq!(got_nginx.as_deref(), nginx, "row {n}: nginx {host}{path}");
            assert_eq!(
                got_gateway.as_deref(),
                gateway,
                "row {n}: gateway {host}{path}"
            );
        }
    }

    #[test]
    fn gateway_prefers_the_most_specific_hostname_before_the_path() {
        let rules = vec![
            rule(None, "/api/v2", Prefix, "hostless"),
            rule(Some("*.example.com"), "/api", Prefix, "wild"),
            rule(H, "/", Prefix, "exact-host"),
        ];
        let got = winner(
            &rules,
            "shop.example.com",
            "/api/v2/x",
            Semantics::GatewayApi,
        );
        assert_eq!(got.as_deref(), Some("exact-host"));
        let got = winner(&rules, "a.example.com", "/api/v2/x", Semantics::GatewayApi);
        assert_eq!(got.as_deref(), Some("wild"));
    }

    #[test]
    fn regex_paths_are_reported_not_guessed() {
        let mut rules = vec![
            rule(H, "/v(1|2)/.*", Impl, "api"),
            rule(H, "/", Prefix, "web"),
        ];
        rules[0].nginx_regex = true;
        let routing = route(&rules, "shop.example.com", "/v1/x", Semantics::IngressNginx);
        assert_eq!(routing.unevaluated, vec![0]);
        assert_eq!(routing.rule, Some(1));
        assert_eq!(routing.candidates, vec![0, 1]);
    }

    #[test]
    fn rules_come_from_the_ingress_spec() {
        let ing: Ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "shop", "name": "front",
                         "annotations": {"nginx.ingress.kubernetes.io/use-regex": "true"}},
            "spec": {
                "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
                "rules": [
                    {"host": "Shop.Example.com", "http": {"paths": [
                        {"path": "/api", "pathType": "Prefix",
                         "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
                        {"pathType": "ImplementationSpecific",
                         "backend": {"resource": {"kind": "Bucket", "name": "b"}}}
                    ]}}
                ]
            }
        }))
        .unwrap();
        let got = rules(&ing);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].host.as_deref(), Some("shop.example.com"));
        assert_eq!(
            got[0].backend,
            Some(Backend {
                service: "api".into(),
                port: BackendPort::Number(8080)
            })
        );
        assert!(got[0].nginx_regex);
        assert_eq!((got[1].path.as_str(), got[1].backend.as_ref()), ("/", None));
        assert!(got[2].default_backend);
        assert_eq!(got[2].describe(), "* (default backend)");
        assert_eq!(got[0].describe(), "shop.example.com /api (Prefix)");
    }
}
