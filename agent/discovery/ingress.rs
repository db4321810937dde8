//! Ingresses: what hopwatch keeps of them, and the edge targets they give: one load-balancer
//! probe per host, one request per rule host and path. HTTPRoutes become the same edge rules
//! (`super::gateway`), told apart by their [`EdgeKind`], and give their targets here too.
//!
//! A rule is probed as `https://host/path` when a TLS block covers its host, else `http://`.
//! Rules without a host, wildcard hosts and regex paths are not probed: there is no single
//! URL to ask for (documented in docs/METRICS.md). An Ingress annotated `hopwatch.io/path`
//! has one request per host, for that path, whatever its rules' paths ([`overrides`]).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use k8s_openapi::api::networking::v1::Ingress;

use super::expected::{self, EXPECTED_ANNOTATION, Expected};
use super::model::ObjKey;
use super::overrides::{self, Overrides};
use crate::probe::http::Headers;

/// A Service port an Ingress path routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendPort {
    Number(u16),
    Name(String),
}

/// What an edge rule comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EdgeKind {
    #[default]
    Ingress,
    /// A `gateway.networking.k8s.io/v1` HTTPRoute, through one of its parent Gateways.
    HttpRoute,
}

impl EdgeKind {
    /// The start of the target ids of `key`'s rules: `namespace/ingress` for an Ingress,
    /// `namespace/httproute:route` for an HTTPRoute (no Ingress name has a colon, so the two
    /// never collide). The namespace stays first: it is the series' `namespace` label.
    pub fn id_prefix(self, key: &ObjKey) -> String {
        match self {
            EdgeKind::Ingress => key.to_string(),
            EdgeKind::HttpRoute => format!("{}/httproute:{}", key.namespace, key.name),
        }
    }

    /// `Ingress`, `HTTPRoute`: how messages name the object.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Ingress => "Ingress",
            EdgeKind::HttpRoute => "HTTPRoute",
        }
    }
}

/// One path of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPath {
    pub host: String,
    pub path: String,
    /// `Exact`, `Prefix` or `ImplementationSpecific`.
    pub path_type: String,
    pub backend: Option<(ObjKey, BackendPort)>,
    /// The port the edge listens on for this host; `None` for the scheme's (an Ingress's).
    pub port: Option<u16>,
}

/// What hopwatch keeps of an Ingress, or of an HTTPRoute through one parent Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressInfo {
    pub key: ObjKey,
    pub kind: EdgeKind,
    pub class: Option<String>,
    pub paths: Vec<IngressPath>,
    pub tls_hosts: BTreeSet<String>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].hostname`, absolute (AWS ELB/NLB and others publish a
    /// name rather than an IP).
    pub load_balancer_names: Vec<String>,
    /// The [`EXPECTED_ANNOTATION`], parsed; the error names the Ingress and the annotation.
    pub expected_annotation: Option<Result<Expected, String>>,
    pub probe_annotation: Option<String>,
    /// Path, expected status and headers by annotation ([`overrides`]).
    pub overrides: Overrides,
    /// Why an override annotation was left out, one message each.
    pub override_errors: Vec<String>,
}

impl IngressInfo {
    /// What the public names must resolve to: the annotation's list when there is one, else
    /// the load balancer of the status. Empty when neither says (no status yet, or an
    /// annotation that does not parse): the load-balancer hop is then `unknown`.
    pub fn expected(&self) -> Expected {
        match &self.expected_annotation {
            Some(Ok(listed)) => listed.clone(),
            Some(Err(_)) => Expected::default(),
            None => Expected {
                addresses: self.load_balancer.clone(),
                names: self.load_balancer_names.clone(),
            },
        }
    }

    /// The annotation's error, if its value does not parse.
    pub fn annotation_error(&self) -> Option<&str> {
        self.expected_annotation
            .as_ref()?
            .as_ref()
            .err()
            .map(String::as_str)
    }

    /// Every annotation value of this Ingress that does not parse, each message saying what
    /// is probed meanwhile.
    pub fn annotation_errors(&self) -> impl Iterator<Item = String> + '_ {
        let expected = self
            .annotation_error()
            .map(|e| format!("{e}; its load-balancer hop is unknown until it is fixed"));
        expected
            .into_iter()
            .chain(self.override_errors.iter().cloned())
    }
}

/// Projects an Ingress; `None` for one without a name or namespace.
pub fn project(ing: &Ingress, annotation: &str) -> Option<IngressInfo> {
    let namespace = ing.metadata.namespace.as_deref()?;
    let key = ObjKey::new(namespace, ing.metadata.name.as_deref()?);
    let spec = ing.spec.as_ref();
    let mut paths = Vec::new();
    for rule in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten() {
        let Some(host) = rule.host.as_ref() else {
            continue;
        };
        for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let backend = p.backend.service.as_ref().and_then(|svc| {
                let port = svc.port.as_ref()?;
                let port = match (port.number, &port.name) {
                    (Some(n), _) => BackendPort::Number(u16::try_from(n).ok()?),
                    (None, Some(name)) => BackendPort::Name(name.clone()),
                    (None, None) => return None,
                };
                Some((ObjKey::new(namespace, &svc.name), port))
            });
            paths.push(IngressPath {
                host: host.to_ascii_lowercase(),
                path: p.path.clone().unwrap_or_else(|| "/".to_string()),
                path_type: p.path_type.clone(),
                backend,
                port: None,
            });
        }
    }
    let tls_hosts = spec
        .and_then(|s| s.tls.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten())
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let status: Vec<_> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .collect();
    let annotations = ing.metadata.annotations.as_ref();
    let expected_annotation = expected_annotation(ing, &key);
    let (overrides, override_errors) = overrides::parse(annotations, "Ingress", &key);
    Some(IngressInfo {
        kind: EdgeKind::Ingress,
        class: spec.and_then(|s| s.ingress_class_name.clone()),
        paths,
        tls_hosts,
        load_balancer: status
            .iter()
            .filter_map(|i| i.ip.as_deref()?.parse().ok())
            .collect(),
        load_balancer_names: status
            .iter()
            .filter_map(|i| expected::absolute_name(i.hostname.as_deref()?))
            .collect(),
        expected_annotation,
        probe_annotation: annotations.and_then(|a| a.get(annotation)).cloned(),
        overrides,
        override_errors,
        key,
    })
}

/// The Ingress's [`EXPECTED_ANNOTATION`], parsed; the error names the Ingress (`key`) and the
/// annotation. The agent and `trace` both read it through here.
pub fn expected_annotation(ing: &Ingress, key: &ObjKey) -> Option<Result<Expected, String>> {
    annotated_expected(ing.metadata.annotations.as_ref(), &format!("Ingress {key}"))
}

/// The [`EXPECTED_ANNOTATION`] among `annotations`, parsed; the error starts with `object`
/// (`Ingress shop/front`, `Gateway shop/edge`).
pub fn annotated_expected(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    object: &str,
) -> Option<Result<Expected, String>> {
    let value = annotations?.get(EXPECTED_ANNOTATION)?;
    Some(
        expected::parse(value)
            .map_err(|err| format!("{object}: annotation {EXPECTED_ANNOTATION}: {err}")),
    )
}

/// A host behind a load balancer: resolve it, check the answer, connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerTarget {
    /// `namespace/ingress/host` (`namespace/httproute:route/host`).
    pub id: String,
    pub host: String,
    pub port: u16,
    /// What the host must resolve to ([`IngressInfo::expected`]); empty when nothing says.
    pub expected: Expected,
    pub backends: Vec<ObjKey>,
}

/// One rule host and path, requested through the load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressTarget {
    /// `namespace/ingress/host/path` (`namespace/httproute:route/host/path`).
    pub id: String,
    pub url: String,
    /// The load balancer address to dial, if the Ingress has one.
    pub dial: Option<IpAddr>,
    pub backend: Option<ObjKey>,
    /// `hopwatch.io/expected-status`, replacing the configured codes.
    pub expected_status: Option<Vec<RangeInclusive<u16>>>,
    /// `hopwatch.io/headers`, added to the configured headers (replacing same names).
    pub headers: Option<Headers>,
}

fn probeable_host(host: &str) -> bool {
    !host.starts_with('*') && !host.is_empty()
}

/// A path that names one URL: no regex characters.
fn probeable_path(path: &str) -> bool {
    path.starts_with('/') && !path.contains(|c: char| "()[]{}*+?|^$\\".contains(c))
}

/// `host`, or `host:port` when `port` is not the scheme's.
fn authority(host: &str, port: u16, tls: bool) -> String {
    match (port, tls) {
        (443, true) | (80, false) => host.to_string(),
        _ => format!("{host}:{port}"),
    }
}

/// The edge targets of one selected Ingress (or HTTPRoute through one Gateway).
pub fn targets(ing: &IngressInfo) -> (Vec<LoadBalancerTarget>, Vec<IngressTarget>) {
    let mut hosts: Vec<LoadBalancerTarget> = Vec::new();
    let mut requests: Vec<IngressTarget> = Vec::new();
    let expected = ing.expected();
    let fixed = ing.overrides.path.as_deref();
    let prefix = ing.kind.id_prefix(&ing.key);
    for p in ing
        .paths
        .iter()
        .filter(|p| probeable_host(&p.host) && (fixed.is_some() || probeable_path(&p.path)))
    {
        let tls = ing.tls_hosts.contains(&p.host);
        let scheme = if tls { "https" } else { "http" };
        let port = p.port.unwrap_or(if tls { 443 } else { 80 });
        let backend = p.backend.as_ref().map(|(svc, _)| svc.clone());
        let path = fixed.unwrap_or(&p.path);
        let id = format!("{prefix}/{}{path}", p.host);
        // The same host and path twice (an Exact and a prefix match of it, or every path under
        // the `hopwatch.io/path` annotation): one target, the first, as the id does not tell
        // them apart.
        if !requests.iter().any(|r| r.id == id) {
            requests.push(IngressTarget {
                url: format!("{scheme}://{}{path}", authority(&p.host, port, tls)),
                dial: ing.load_balancer.first().copied(),
                backend: match fixed {
                    Some(fixed) => routed(ing, &p.host, fixed),
                    None => backend.clone(),
                },
                expected_status: ing.overrides.expected_status.clone(),
                headers: ing.overrides.headers.clone(),
                id,
            });
        }
        let id = format!("{prefix}/{}", p.host);
        match hosts.iter_mut().find(|h| h.id == id) {
            Some(h) => h
                .backends
                .extend(backend.filter(|b| !h.backends.contains(b))),
            None => hosts.push(LoadBalancerTarget {
                id,
                host: p.host.clone(),
                port,
                expected: expected.clone(),
                backends: backend.into_iter().collect(),
            }),
        }
    }
    (hosts, requests)
}

/// The Service a request for `path` on `host` reaches among this Ingress's rules: an `Exact`
/// path equal to it, else the longest prefix that matches (element-wise for `Prefix`, by
/// characters otherwise, as ingress-nginx does); regex paths are not evaluated.
fn routed(ing: &IngressInfo, host: &str, path: &str) -> Option<ObjKey> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let matches = |p: &IngressPath| match p.path_type.as_str() {
        "Exact" => p.path == path,
        "Prefix" => {
            let prefix = p.path.trim_end_matches('/');
            path == prefix || path.starts_with(&format!("{prefix}/"))
        }
        _ => probeable_path(&p.path) && path.starts_with(&p.path),
    };
    let candidates = ing.paths.iter().filter(|p| p.host == host && matches(p));
    let best = candidates.max_by_key(|p| (p.path_type == "Exact", p.path.len()))?;
    best.backend.as_ref().map(|(svc, _)| svc.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress() -> Ingress {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": "shop", "name": "front", "annotations": {"hopwatch.io/probe": "true"}},
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                "rules": [
                    {"host": "shop.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
                        {"path": "/v(1|2)/.*", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "api", "port": {"number": 80}}}}
                    ]}},
                    {"host": "plain.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                    ]}},
                    {"host": "*.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                    ]}},
                    {"http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                    ]}}
                ]
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}, {"hostname": "lb.example.net"}]}}
        }))
        .unwrap()
    }

    #[test]
    fn projects_rules_tls_and_status() {
        let info = project(&ingress(), "hopwatch.io/probe").unwrap();
        assert_eq!(info.key, ObjKey::new("shop", "front"));
        assert_eq!(info.class.as_deref(), Some("nginx"));
        assert_eq!(info.paths.len(), 5, "the rule without a host is dropped");
        assert_eq!(
            info.paths[1].backend,
            Some((ObjKey::new("shop", "api"), BackendPort::Name("http".into())))
        );
        assert_eq!(
            info.load_balancer,
            vec!["203.0.113.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            info.load_balancer_names,
            vec!["lb.example.net.".to_string()]
        );
        assert_eq!(info.probe_annotation.as_deref(), Some("true"));
        assert_eq!(info.expected_annotation, None);
        assert_eq!(info.overrides, Overrides::default());
    }

    #[test]
    fn a_path_annotation_gives_one_request_per_host_to_the_service_it_routes_to() {
        let annotations = serde_json::json!({
            "hopwatch.io/path": "/api/healthz",
            "hopwatch.io/expected-status": "204",
            "hopwatch.io/headers": "X-Probe: 1",
        });
        let info = with(lb(serde_json::json!([{"ip": "203.0.113.10"}])), annotations);
        assert_eq!(info.annotation_errors().count(), 0);
        let (hosts, requests) = targets(&info);
        let urls: Vec<&str> = requests.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://shop.example.com/api/healthz",
                "http://plain.example.com/api/healthz"
            ]
        );
        assert_eq!(requests[0].id, "shop/front/shop.example.com/api/healthz");
        assert_eq!(
            requests[0].backend,
            Some(ObjKey::new("shop", "api")),
            "Prefix /api"
        );
        assert_eq!(requests[1].backend, None, "Exact / does not match");
        assert_eq!(requests[0].expected_status, Some(vec![204..=204]));
        assert!(requests[0].headers.is_some());
        assert_eq!(hosts.len(), 2, "the load-balancer hop is unchanged");
        assert_eq!(hosts[0].backends.len(), 2);
    }

    #[test]
    fn bad_override_annotations_are_reported_and_the_rules_probed_as_configured() {
        let annotations = serde_json::json!({"hopwatch.io/expected-status": "ok"});
        let info = with(lb(serde_json::json!([{"ip": "203.0.113.10"}])), annotations);
        let errors: Vec<String> = info.annotation_errors().collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("Ingress shop/front: annotation hopwatch.io/expected-status: ")
        );
        let (_, requests) = targets(&info);
        assert_eq!(requests.len(), 3);
        assert!(requests.iter().all(|r| r.expected_status.is_none()));
    }

    /// The test Ingress with `status` and `annotations` replaced.
    fn with(status: serde_json::Value, annotations: serde_json::Value) -> IngressInfo {
        let mut json = serde_json::to_value(ingress()).unwrap();
        json["status"] = status;
        json["metadata"]["annotations"] = annotations;
        project(&serde_json::from_value(json).unwrap(), "hopwatch.io/probe").unwrap()
    }

    fn lb(entries: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"loadBalancer": {"ingress": entries}})
    }

    fn expected_of(info: &IngressInfo) -> Vec<Expected> {
        targets(info).0.into_iter().map(|h| h.expected).collect()
    }

    #[test]
    fn a_hostname_only_status_expects_the_name() {
        let elb = "a1b2-123.eu-west-1.elb.amazonaws.com";
        let info = with(
            lb(serde_json::json!([{"hostname": elb}])),
            serde_json::json!({}),
        );
        assert!(info.load_balancer.is_empty());
        let want = Expected {
            addresses: Vec::new(),
            names: vec![format!("{elb}.")],
        };
        assert_eq!(expected_of(&info), [want.clone(), want]);
        let (_, requests) = targets(&info);
        assert_eq!(
            requests[0].dial, None,
            "the Ingress hop resolves the public name"
        );
    }

    #[test]
    fn a_mixed_status_expects_both() {
        let entries = serde_json::json!([{"ip": "203.0.113.10"}, {"hostname": "LB.example.net"}]);
        let info = with(lb(entries), serde_json::json!({}));
        assert_eq!(
            info.expected(),
            Expected {
                addresses: vec!["203.0.113.10".parse().unwrap()],
                names: vec!["lb.example.net.".into()],
            }
        );
    }

    #[test]
    fn no_status_expects_nothing_and_the_hosts_are_still_targets() {
        for status in [
            serde_json::json!(null),
            serde_json::json!({}),
            lb(serde_json::json!([])),
        ] {
            let info = with(status.clone(), serde_json::json!({}));
            assert!(info.expected().is_empty(), "{status}");
            assert_eq!(expected_of(&info).len(), 2, "{status}");
            assert!(
                expected_of(&info).iter().all(Expected::is_empty),
                "{status}"
            );
        }
    }

    #[test]
    fn the_annotation_replaces_the_status() {
        let annotations = serde_json::json!({EXPECTED_ANNOTATION: "198.51.100.7, cdn.example.net"});
        let info = with(lb(serde_json::json!([{"ip": "203.0.113.10"}])), annotations);
        assert_eq!(info.annotation_error(), None);
        assert_eq!(
            info.expected(),
            Expected {
                addresses: vec!["198.51.100.7".parse().unwrap()],
                names: vec!["cdn.example.net.".into()],
            }
        );
        let (_, requests) = targets(&info);
        assert_eq!(
            requests[0].dial,
            Some("203.0.113.10".parse().unwrap()),
            "the Ingress hop still dials the load balancer"
        );
    }

    #[test]
    fn a_bad_annotation_names_the_ingress_and_expects_nothing() {
        let annotations = serde_json::json!({EXPECTED_ANNOTATION: "198.51.100.7; cdn"});
        let info = with(lb(serde_json::json!([{"ip": "203.0.113.10"}])), annotations);
        assert_eq!(
            info.annotation_error(),
            Some(
                "Ingress shop/front: annotation hopwatch.io/expected-addresses: `198.51.100.7; cdn` \
                 is neither an IP address nor a DNS name such as cdn.example.com"
            )
        );
        assert!(
            info.expected().is_empty(),
            "the hop is unknown, not a mismatch"
        );
    }

    #[test]
    fn targets_per_host_and_path() {
        let info = project(&ingress(), "hopwatch.io/probe").unwrap();
        let (hosts, requests) = targets(&info);
        let urls: Vec<&str> = requests.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://shop.example.com/",
                "https://shop.example.com/api",
                "http://plain.example.com/"
            ]
        );
        assert_eq!(requests[1].id, "shop/front/shop.example.com/api");
        assert_eq!(requests[0].dial, Some("203.0.113.10".parse().unwrap()));
        let ids: Vec<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "shop/front/shop.example.com",
                "shop/front/plain.example.com"
            ]
        );
        assert_eq!(hosts[0].port, 443);
        assert_eq!(
            hosts[0].backends,
            vec![ObjKey::new("shop", "web"), ObjKey::new("shop", "api")]
        );
        assert_eq!(hosts[1].port, 80);
    }
}
