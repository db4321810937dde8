//! Gateway API (`gateway.networking.k8s.io/v1`): what hopwatch keeps of Gateways and
//! HTTPRoutes, and how an HTTPRoute becomes the same edge rules an Ingress does
//! ([`IngressInfo`] of kind [`EdgeKind::HttpRoute`]), one per parent Gateway, so that its
//! targets, ids, sharding and verdict are the Ingress code paths.
//!
//! Each route hostname and path match is one request through the Gateway's status addresses:
//! `https://` when a listener of the Gateway that takes the route for that hostname is HTTPS,
//! else `http://`, on that listener's port. `Exact` and `PathPrefix` matches are probed (a
//! prefix as the prefix itself); `RegularExpression` matches and wildcard hostnames are not,
//! as for Ingresses: there is no single URL to ask for.
//!
//! The types are written here rather than taken from the `gateway-api` crate, which is built
//! on another kube and k8s-openapi major version than the agent and deserializes every field
//! of the CRDs; hopwatch reads a dozen.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::expected;
use super::ingress::{self, BackendPort, EdgeKind, IngressInfo, IngressPath};
use super::model::ObjKey;
use super::overrides::{self, Overrides};

const GROUP: &str = "gateway.networking.k8s.io";

/// Whether a wildcard hostname (`*.example.com`) matches `host`: any number of labels in
/// place of the `*`, never the bare suffix. Gateway API listeners and routes match so, and
/// so do ingress-nginx's wildcard servers (`trace` uses it for both).
pub fn wildcard_matches(pattern: &str, host: &str) -> bool {
    pattern.strip_prefix("*.").is_some_and(|suffix| {
        host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}"))
    })
}

/// A Gateway, as much of it as hopwatch reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Gateway {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: GatewaySpec,
    #[serde(default)]
    pub status: Option<GatewayStatus>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GatewaySpec {
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Listener {
    pub name: String,
    #[serde(default)]
    pub hostname: Option<String>,
    pub port: i32,
    pub protocol: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GatewayStatus {
    #[serde(default)]
    pub addresses: Vec<GatewayAddress>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GatewayAddress {
    /// `IPAddress` (the default), `Hostname`, or an implementation's own.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    pub value: String,
}

/// An HTTPRoute, as much of it as hopwatch reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpRoute {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HttpRouteSpec,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default)]
    pub section_name: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// None means one match of `PathPrefix /`.
    #[serde(default)]
    pub matches: Option<Vec<HttpRouteMatch>>,
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpRouteMatch {
    #[serde(default)]
    pub path: Option<PathMatch>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PathMatch {
    /// `Exact`, `PathPrefix` (the default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BackendRef {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
}

macro_rules! resource {
    ($ty:ty, $kind:literal, $plural:literal) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = "gateway.networking.k8s.io/v1";
            const GROUP: &'static str = GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = "v1";
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource!(Gateway, "Gateway", "gateways");
resource!(HttpRoute, "HTTPRoute", "httproutes");

/// The listener protocols an HTTPRoute attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

/// One HTTP or HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    pub name: String,
    /// Lowercase; `None` for any hostname.
    pub hostname: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

impl ListenerInfo {
    /// Whether the listener takes requests for `host`.
    fn takes(&self, host: &str) -> bool {
        match &self.hostname {
            None => true,
            Some(h) => h == host || wildcard_matches(h, host),
        }
    }
}

/// What hopwatch keeps of a Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayInfo {
    pub key: ObjKey,
    /// The HTTP and HTTPS listeners; the others take no HTTPRoute.
    pub listeners: Vec<ListenerInfo>,
    /// `status.addresses` of type `IPAddress`.
    pub addresses: Vec<IpAddr>,
    /// `status.addresses` of type `Hostname`, absolute.
    pub names: Vec<String>,
    /// The `hopwatch.io/expected-addresses` annotation of the Gateway, parsed.
    pub expected_annotation: Option<Result<expected::Expected, String>>,
}

/// Projects a Gateway; `None` for one without a name or namespace.
pub fn project_gateway(gw: &Gateway) -> Option<GatewayInfo> {
    let key = ObjKey::new(
        gw.metadata.namespace.as_deref()?,
        gw.metadata.name.as_deref()?,
    );
    let listeners = gw
        .spec
        .listeners
        .iter()
        .filter_map(|l| {
            let protocol = match l.protocol.as_str() {
                "HTTP" => Protocol::Http,
                "HTTPS" => Protocol::Https,
                _ => return None,
            };
            Some(ListenerInfo {
                name: l.name.clone(),
                hostname: l.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
                port: u16::try_from(l.port).ok()?,
                protocol,
            })
        })
        .collect();
    let addresses = gw.status.iter().flat_map(|s| s.addresses.iter());
    let (mut ips, mut names) = (Vec::new(), Vec::new());
    for a in addresses {
        match a.type_.as_deref().unwrap_or("IPAddress") {
            "IPAddress" => ips.extend(a.value.parse::<IpAddr>().ok()),
            "Hostname" => names.extend(expected::absolute_name(&a.value)),
            _ => {}
        }
    }
    Some(GatewayInfo {
        expected_annotation: ingress::annotated_expected(
            gw.metadata.annotations.as_ref(),
            &format!("Gateway {key}"),
        ),
        key,
        listeners,
        addresses: ips,
        names,
    })
}

/// A route's reference to a Gateway, and which of its listeners it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentInfo {
    pub gateway: ObjKey,
    pub section: Option<String>,
    pub port: Option<u16>,
}

/// One path match of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePath {
    /// `Exact` or `Prefix` (a `PathPrefix` match), as an Ingress path type.
    pub path_type: &'static str,
    pub path: String,
}

/// One rule: its probeable path matches and the Service it sends to first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    pub paths: Vec<RoutePath>,
    pub backend: Option<(ObjKey, BackendPort)>,
}

/// What hopwatch keeps of an HTTPRoute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub key: ObjKey,
    pub parents: Vec<ParentInfo>,
    /// Lowercase.
    pub hostnames: Vec<String>,
    pub rules: Vec<RouteRule>,
    pub probe_annotation: Option<String>,
    /// Path, expected status and headers by annotation, as on an Ingress.
    pub overrides: Overrides,
    pub override_errors: Vec<String>,
}

/// Projects an HTTPRoute; `None` for one without a name or namespace.
pub fn project_route(route: &HttpRoute, annotation: &str) -> Option<RouteInfo> {
    let namespace = route.metadata.namespace.as_deref()?;
    let key = ObjKey::new(namespace, route.metadata.name.as_deref()?);
    let spec = &route.spec;
    let parents = spec
        .parent_refs
        .iter()
        .filter(|p| {
            p.group.as_deref().unwrap_or(GROUP) == GROUP
                && p.kind.as_deref().unwrap_or("Gateway") == "Gateway"
        })
        .map(|p| ParentInfo {
            gateway: ObjKey::new(p.namespace.as_deref().unwrap_or(namespace), &p.name),
            section: p.section_name.clone(),
            port: p.port.and_then(|n| u16::try_from(n).ok()),
        })
        .collect();
    let rules = spec.rules.iter().map(|r| rule(r, namespace)).collect();
    let (overrides, override_errors) =
        overrides::parse(route.metadata.annotations.as_ref(), "HTTPRoute", &key);
    Some(RouteInfo {
        overrides,
        override_errors,
        parents,
        hostnames: spec
            .hostnames
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        rules,
        probe_annotation: route
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotation))
            .cloned(),
        key,
    })
}

fn rule(r: &HttpRouteRule, namespace: &str) -> RouteRule {
    let default = [HttpRouteMatch::default()];
    let matches = r.matches.as_deref().unwrap_or(&default);
    let paths = matches
        .iter()
        .filter_map(|m| {
            let path = m.path.as_ref();
            let value = path.and_then(|p| p.value.clone());
            let path_type = match path.and_then(|p| p.type_.as_deref()) {
                None | Some("PathPrefix") => "Prefix",
                Some("Exact") => "Exact",
                _ => return None,
            };
            Some(RoutePath {
                path_type,
                path: value.unwrap_or_else(|| "/".to_string()),
            })
        })
        .collect();
    let backend = r.backend_refs.iter().find_map(|b| {
        let service = b.group.as_deref().unwrap_or_default().is_empty()
            && b.kind.as_deref().unwrap_or("Service") == "Service";
        let port = u16::try_from(b.port?).ok()?;
        service.then(|| {
            let ns = b.namespace.as_deref().unwrap_or(namespace);
            (ObjKey::new(ns, &b.name), BackendPort::Number(port))
        })
    });
    RouteRule { paths, backend }
}

/// The listeners of `gw` that `parent` lets the route attach to.
fn attached<'a>(gw: &'a GatewayInfo, parent: &ParentInfo) -> Vec<&'a ListenerInfo> {
    gw.listeners
        .iter()
        .filter(|l| parent.section.as_ref().is_none_or(|s| *s == l.name))
        .filter(|l| parent.port.is_none_or(|p| p == l.port))
        .collect()
}

/// The hostnames the route is served under by `listeners`: each route hostname a listener
/// takes, a wildcard one narrowed to a listener's exact hostname it covers; without route
/// hostnames, the listeners' own.
fn hostnames(route: &RouteInfo, listeners: &[&ListenerInfo]) -> BTreeSet<String> {
    let own = listeners.iter().filter_map(|l| l.hostname.clone());
    if route.hostnames.is_empty() {
        return own.collect();
    }
    let mut out = BTreeSet::new();
    for h in &route.hostnames {
        if listeners.iter().any(|l| l.takes(h)) {
            out.insert(h.clone());
        }
        out.extend(own.clone().filter(|l| wildcard_matches(h, l)));
    }
    out
}

/// The edge rules of `route`, one per parent Gateway found in `gateways`, in the order of
/// its `parentRefs`. Hosts no listener takes give none; a host an earlier parent gave is not
/// given again (the target ids name the route, not the Gateway): the first parent's wins.
pub fn edges(route: &RouteInfo, gateways: &BTreeMap<ObjKey, GatewayInfo>) -> Vec<IngressInfo> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for parent in &route.parents {
        let Some(gw) = gateways.get(&parent.gateway) else {
            continue;
        };
        let listeners = attached(gw, parent);
        let mut info = IngressInfo {
            key: route.key.clone(),
            kind: EdgeKind::HttpRoute,
            class: None,
            paths: Vec::new(),
            tls_hosts: BTreeSet::new(),
            load_balancer: gw.addresses.clone(),
            load_balancer_names: gw.names.clone(),
            expected_annotation: gw.expected_annotation.clone(),
            probe_annotation: route.probe_annotation.clone(),
            overrides: route.overrides.clone(),
            override_errors: route.override_errors.clone(),
        };
        for host in hostnames(route, &listeners) {
            if !seen.insert(host.clone()) {
                continue;
            }
            let taking: Vec<&&ListenerInfo> = listeners.iter().filter(|l| l.takes(&host)).collect();
            // An HTTPS listener for the host is what its users reach; else the HTTP one.
            let Some(listener) = taking
                .iter()
                .find(|l| l.protocol == Protocol::Https)
                .or(taking.first())
            else {
                continue;
            };
            if listener.protocol == Protocol::Https {
                info.tls_hosts.insert(host.clone());
            }
            for r in &route.rules {
                info.paths.extend(r.paths.iter().map(|p| IngressPath {
                    host: host.clone(),
                    path: p.path.clone(),
                    path_type: p.path_type.to_string(),
                    backend: r.backend.clone(),
                    port: Some(listener.port),
                }));
            }
        }
        out.push(info);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gateway(addresses: serde_json::Value) -> GatewayInfo {
        let gw: Gateway = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"namespace": "infra", "name": "edge"},
            "spec": {"gatewayClassName": "nginx", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"},
                {"name": "https", "port": 8443, "protocol": "HTTPS", "hostname": "*.example.com",
                 "tls": {"mode": "Terminate", "certificateRefs": [{"name": "wild"}]}},
                {"name": "tcp", "port": 5432, "protocol": "TCP"}
            ]},
            "status": {"addresses": addresses}
        }))
        .unwrap();
        project_gateway(&gw).unwrap()
    }

    fn route(spec: serde_json::Value) -> RouteInfo {
        let r: HttpRoute = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "shop", "name": "front"},
            "spec": spec,
        }))
        .unwrap();
        project_route(&r, "hopwatch.io/probe").unwrap()
    }

    fn shop() -> RouteInfo {
        route(json!({
            "parentRefs": [{"name": "edge", "namespace": "infra"}],
            "hostnames": ["Shop.example.com", "plain.example.org", "*.example.net"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}},
                             {"path": {"type": "Exact", "value": "/health"}},
                             {"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"}}],
                 "backendRefs": [{"name": "web", "port": 80}, {"name": "other", "port": 80}]},
                {"matches": [{"path": {"value": "/api"}}],
                 "backendRefs": [{"kind": "Bucket", "group": "storage.example", "name": "b"},
                                 {"name": "api", "namespace": "backend", "port": 8080}]},
                {"backendRefs": [{"name": "web", "port": 80}]}
            ]
        }))
    }

    fn gateways(gw: GatewayInfo) -> BTreeMap<ObjKey, GatewayInfo> {
        [(gw.key.clone(), gw)].into_iter().collect()
    }

    #[test]
    fn a_route_overrides_its_requests_by_annotation_as_an_ingress_does() {
        let r: HttpRoute = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "shop", "name": "front", "annotations": {
                "hopwatch.io/path": "/healthz",
                "hopwatch.io/expected-status": "nope"
            }},
            "spec": {"parentRefs": [{"name": "edge", "namespace": "infra"}],
                     "hostnames": ["shop.example.com"],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
        }))
        .unwrap();
        let route = project_route(&r, "hopwatch.io/probe").unwrap();
        let gw = gateways(gateway(
            json!([{"type": "IPAddress", "value": "203.0.113.10"}]),
        ));
        let edges = edges(&route, &gw);
        let (_, requests) = ingress::targets(&edges[0]);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].url, "https://shop.example.com:8443/healthz");
        assert_eq!(requests[0].expected_status, None, "a bad value is left out");
        let errors: Vec<String> = edges[0].annotation_errors().collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("HTTPRoute shop/front: annotation hopwatch.io/expected-status"),
            "{errors:?}"
        );
    }

    #[test]
    fn projects_listeners_and_both_address_types() {
        let gw = gateway(json!([
            {"type": "IPAddress", "value": "203.0.113.10"},
            {"value": "203.0.113.11"},
            {"type": "Hostname", "value": "LB.example.net"},
            {"type": "example.com/pool", "value": "blue"}
        ]));
        assert_eq!(gw.listeners.len(), 2, "the TCP listener takes no HTTPRoute");
        assert_eq!(gw.listeners[1].hostname.as_deref(), Some("*.example.com"));
        assert_eq!(gw.listeners[1].port, 8443);
        assert_eq!(
            gw.addresses,
            ["203.0.113.10", "203.0.113.11"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        assert_eq!(gw.names, ["lb.example.net."]);
    }

    #[test]
    fn projects_matches_defaults_and_the_first_service_backend() {
        let r = shop();
        assert_eq!(
            r.parents,
            [ParentInfo {
                gateway: ObjKey::new("infra", "edge"),
                section: None,
                port: None
            }]
        );
        let paths: Vec<(&str, &str)> = r
            .rules
            .iter()
            .flat_map(|r| r.paths.iter().map(|p| (p.path_type, p.path.as_str())))
            .collect();
        assert_eq!(
            paths,
            [
                ("Prefix", "/"),
                ("Exact", "/health"),
                ("Prefix", "/api"),
                ("Prefix", "/")
            ],
            "no regex; a match without a type is a PathPrefix, a rule without matches is /"
        );
        assert_eq!(
            r.rules[1].backend,
            Some((ObjKey::new("backend", "api"), BackendPort::Number(8080)))
        );
        assert_eq!(
            r.rules[0].backend,
            Some((ObjKey::new("shop", "web"), BackendPort::Number(80)))
        );
    }

    #[test]
    fn each_hostname_and_path_is_a_request_through_the_gateway() {
        let gw = gateway(json!([{"type": "IPAddress", "value": "203.0.113.10"}]));
        let edges = edges(&shop(), &gateways(gw));
        assert_eq!(edges.len(), 1);
        let (hosts, requests) = ingress::targets(&edges[0]);
        let got: Vec<(&str, &str)> = requests
            .iter()
            .map(|r| (r.id.as_str(), r.url.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "shop/httproute:front/plain.example.org/",
                    "http://plain.example.org/"
                ),
                (
                    "shop/httproute:front/plain.example.org/health",
                    "http://plain.example.org/health"
                ),
                (
                    "shop/httproute:front/plain.example.org/api",
                    "http://plain.example.org/api"
                ),
                (
                    "shop/httproute:front/shop.example.com/",
                    "https://shop.example.com:8443/"
                ),
                (
                    "shop/httproute:front/shop.example.com/health",
                    "https://shop.example.com:8443/health"
                ),
                (
                    "shop/httproute:front/shop.example.com/api",
                    "https://shop.example.com:8443/api"
                ),
            ],
            "the wildcard hostname is not probed; the HTTPS listener wins for its hosts; \
             the second / is the first's target"
        );
        assert_eq!(requests[0].dial, Some("203.0.113.10".parse().unwrap()));
        assert_eq!(requests[2].backend, Some(ObjKey::new("backend", "api")));
        let lbs: Vec<(&str, u16)> = hosts.iter().map(|h| (h.id.as_str(), h.port)).collect();
        assert_eq!(
            lbs,
            [
                ("shop/httproute:front/plain.example.org", 80),
                ("shop/httproute:front/shop.example.com", 8443)
            ]
        );
        assert_eq!(hosts[0].expected.addresses, edges[0].load_balancer);
    }

    #[test]
    fn a_hostname_address_is_resolved_like_an_ingress_lb_name() {
        let gw = gateway(json!([{"type": "Hostname", "value": "lb.example.net"}]));
        let edges = edges(&shop(), &gateways(gw));
        let (hosts, requests) = ingress::targets(&edges[0]);
        assert_eq!(requests[0].dial, None, "the public name is resolved");
        assert_eq!(hosts[0].expected.names, ["lb.example.net."]);
    }

    #[test]
    fn section_and_port_pick_the_listeners() {
        let gw = gateways(gateway(json!([])));
        let via = |parent: serde_json::Value| {
            let mut spec = json!({"hostnames": ["shop.example.com"], "rules": [{}]});
            spec["parentRefs"] = json!([parent]);
            let edges = edges(&route(spec), &gw);
            let (_, requests) = ingress::targets(&edges[0]);
            requests.iter().map(|r| r.url.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            via(json!({"name": "edge", "namespace": "infra", "sectionName": "http"})),
            ["http://shop.example.com/"]
        );
        assert_eq!(
            via(json!({"name": "edge", "namespace": "infra", "port": 8443})),
            ["https://shop.example.com:8443/"]
        );
        assert!(
            via(json!({"name": "edge", "namespace": "infra", "sectionName": "tcp"})).is_empty()
        );
    }

    #[test]
    fn without_hostnames_the_listener_hostnames_are_used_and_wildcards_narrowed() {
        let gw: Gateway = serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "edge"},
            "spec": {"listeners": [
                {"name": "a", "port": 80, "protocol": "HTTP", "hostname": "a.example.com"},
                {"name": "any", "port": 80, "protocol": "HTTP", "hostname": "*.example.org"}
            ]}
        }))
        .unwrap();
        let gw = gateways(project_gateway(&gw).unwrap());
        let hosts = |spec: serde_json::Value| {
            let (_, requests) = ingress::targets(&edges(&route(spec), &gw)[0]);
            requests.iter().map(|r| r.url.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            hosts(json!({"parentRefs": [{"name": "edge"}], "rules": [{}]})),
            ["http://a.example.com/"],
            "the wildcard listener gives no host to probe"
        );
        assert_eq!(
            hosts(
                json!({"parentRefs": [{"name": "edge"}], "hostnames": ["*.example.com"], "rules": [{}]})
            ),
            ["http://a.example.com/"]
        );
        assert_eq!(
            hosts(
                json!({"parentRefs": [{"name": "edge"}], "hostnames": ["x.example.net"], "rules": [{}]})
            ),
            Vec::<String>::new(),
            "no listener takes the host"
        );
    }

    #[test]
    fn a_host_through_two_gateways_is_probed_through_the_first() {
        let mut second = gateway(json!([{"value": "203.0.113.20"}]));
        second.key = ObjKey::new("shop", "edge");
        let mut gws = gateways(gateway(json!([{"value": "203.0.113.10"}])));
        gws.insert(second.key.clone(), second);
        let r = route(json!({
            "parentRefs": [{"name": "edge", "namespace": "infra"}, {"name": "edge"}],
            "hostnames": ["shop.example.com"], "rules": [{}]
        }));
        let edges = edges(&r, &gws);
        assert_eq!(edges.len(), 2);
        assert_eq!(ingress::targets(&edges[0]).1.len(), 1);
        assert!(ingress::targets(&edges[1]).1.is_empty());
        assert_eq!(
            ingress::targets(&edges[0]).1[0].dial,
            Some("203.0.113.10".parse().unwrap())
        );
    }

    #[test]
    fn missing_gateways_and_other_parent_kinds_give_nothing() {
        let r = route(json!({
            "parentRefs": [{"name": "edge"}, {"kind": "Service", "group": "", "name": "web"}],
            "hostnames": ["shop.example.com"], "rules": [{}]
        }));
        assert_eq!(
            r.parents.len(),
            1,
            "a mesh parent (Service) is not a Gateway"
        );
        assert!(edges(&r, &gateways(gateway(json!([])))).is_empty());
    }

    #[test]
    fn wildcards_match_one_or_more_labels() {
        assert!(wildcard_matches("*.example.com", "a.example.com"));
        assert!(wildcard_matches("*.example.com", "a.b.example.com"));
        assert!(!wildcard_matches("*.example.com", "example.com"));
        assert!(!wildcard_matches("example.com", "example.com"));
    }
}
