//! Ingresses: what hopwatch keeps of them, and the edge targets they give: one load-balancer
//! probe per host, one request per rule host and path.
//!
//! A rule is probed as `https://host/path` when a TLS block covers its host, else `http://`.
//! Rules without a host, wildcard hosts and regex paths are not probed: there is no single
//! URL to ask for (documented in docs/METRICS.md).

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::Ingress;

use super::model::ObjKey;

/// A Service port an Ingress path routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendPort {
    Number(u16),
    Name(String),
}

/// One path of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPath {
    pub host: String,
    pub path: String,
    /// `Exact`, `Prefix` or `ImplementationSpecific`.
    pub path_type: String,
    pub backend: Option<(ObjKey, BackendPort)>,
}

/// What hopwatch keeps of an Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressInfo {
    pub key: ObjKey,
    pub class: Option<String>,
    pub paths: Vec<IngressPath>,
    pub tls_hosts: BTreeSet<String>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer: Vec<IpAddr>,
    pub probe_annotation: Option<String>,
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
    let load_balancer = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect();
    Some(IngressInfo {
        key,
        class: spec.and_then(|s| s.ingress_class_name.clone()),
        paths,
        tls_hosts,
        load_balancer,
        probe_annotation: ing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotation))
            .cloned(),
    })
}

/// A host behind a load balancer: resolve it, check the answer, connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerTarget {
    /// `namespace/ingress/host`.
    pub id: String,
    pub host: String,
    pub port: u16,
    pub addresses: Vec<IpAddr>,
    pub backends: Vec<ObjKey>,
}

/// One rule host and path, requested through the load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressTarget {
    /// `namespace/ingress/host/path`.
    pub id: String,
    pub url: String,
    /// The load balancer address to dial, if the Ingress has one.
    pub dial: Option<IpAddr>,
    pub backend: Option<ObjKey>,
}

fn probeable_host(host: &str) -> bool {
    !host.starts_with('*') && !host.is_empty()
}

/// A path that names one URL: no regex characters.
fn probeable_path(path: &str) -> bool {
    path.starts_with('/') && !path.contains(|c: char| "()[]{}*+?|^$\\".contains(c))
}

/// The edge targets of one selected Ingress.
pub fn targets(ing: &IngressInfo) -> (Vec<LoadBalancerTarget>, Vec<IngressTarget>) {
    let mut hosts: Vec<LoadBalancerTarget> = Vec::new();
    let mut requests = Vec::new();
    for p in ing
        .paths
        .iter()
        .filter(|p| probeable_host(&p.host) && probeable_path(&p.path))
    {
        let tls = ing.tls_hosts.contains(&p.host);
        let scheme = if tls { "https" } else { "http" };
        let backend = p.backend.as_ref().map(|(svc, _)| svc.clone());
        requests.push(IngressTarget {
            id: format!("{}/{}{}", ing.key, p.host, p.path),
            url: format!("{scheme}://{}{}", p.host, p.path),
            dial: ing.load_balancer.first().copied(),
            backend: backend.clone(),
        });
        let id = format!("{}/{}", ing.key, p.host);
        match hosts.iter_mut().find(|h| h.id == id) {
            Some(h) => h
                .backends
                .extend(backend.filter(|b| !h.backends.contains(b))),
            None => hosts.push(LoadBalancerTarget {
                id,
                host: p.host.clone(),
                port: if tls { 443 } else { 80 },
                addresses: ing.load_balancer.clone(),
                backends: backend.into_iter().collect(),
            }),
        }
    }
    (hosts, requests)
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
        assert_eq!(info.probe_annotation.as_deref(), Some("true"));
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
