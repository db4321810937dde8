//! What the cluster's Ingresses say about one URL: the rule each semantics routes it to, the
//! Ingress that claims the host, its load balancer and its TLS entry. Pure, from the listed
//! objects.

use std::net::IpAddr;

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};

use super::api::ApiError;
use super::ingress_match::{self, Routing, Rule, Semantics};
use crate::discovery::expected::Expected;
use crate::discovery::ingress::{self, BackendPort};
use crate::discovery::model::ObjKey;

/// The parts of an Ingress the edge hops report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressView {
    pub key: ObjKey,
    /// `status.loadBalancer.ingress[].ip`.
    pub lb_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].hostname` (cloud load balancers named by DNS).
    pub lb_hostnames: Vec<String>,
    /// `hopwatch.io/expected-addresses`, parsed: what the host resolves to when a CDN or WAF
    /// stands in front of the load balancer. The error names the Ingress and the annotation.
    pub expected_annotation: Option<Result<Expected, String>>,
    /// `spec.tls`: the hosts of each entry and its Secret.
    pub tls: Vec<(Vec<String>, Option<String>)>,
}

impl IngressView {
    fn project(ing: &Ingress) -> IngressView {
        let entries = ing
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default();
        let tls = ing
            .spec
            .as_ref()
            .and_then(|s| s.tls.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let hosts = t.hosts.unwrap_or_default();
                (
                    hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
                    t.secret_name,
                )
            })
            .collect();
        let key = ObjKey::new(
            ing.metadata.namespace.as_deref().unwrap_or_default(),
            ing.metadata.name.as_deref().unwrap_or_default(),
        );
        IngressView {
            expected_annotation: ingress::expected_annotation(ing, &key),
            key,
            lb_ips: entries
                .iter()
                .filter_map(|e| e.ip.as_deref()?.parse().ok())
                .collect(),
            lb_hostnames: entries.iter().filter_map(|e| e.hostname.clone()).collect(),
            tls,
        }
    }

    /// The Secret of the TLS entry that covers `host`, `Some(None)` for an entry without
    /// one (the controller's default certificate), `None` when no entry covers it.
    pub fn tls_secret(&self, host: &str) -> Option<Option<&str>> {
        self.tls
            .iter()
            .find(|(hosts, _)| hosts.iter().any(|h| h == host || covers(h, host)))
            .map(|(_, secret)| secret.as_deref())
    }
}

/// Whether a certificate or TLS name covers `host`: equal, or a wildcard for one label.
pub fn covers(name: &str, host: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name == host {
        return true;
    }
    match (name.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((_, rest))) => suffix == rest,
        _ => false,
    }
}

/// The routing of one URL through every Ingress of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Routes {
    /// The list failed: nothing below is known.
    pub error: Option<ApiError>,
    pub ingresses: Vec<IngressView>,
    pub rules: Vec<Rule>,
    pub nginx: Routing,
    pub gateway: Routing,
    /// Whose routing the walk follows to a Service.
    pub semantics: Semantics,
}

impl Routes {
    /// Routes `host` and `path` through the listed Ingresses (or records why there are none).
    pub fn new(
        listed: Result<Vec<Ingress>, ApiError>,
        host: &str,
        path: &str,
        semantics: Semantics,
    ) -> Routes {
        let (ingresses, error) = match listed {
            Ok(items) => (items, None),
            Err(err) => (Vec::new(), Some(err)),
        };
        let rules: Vec<Rule> = ingresses.iter().flat_map(ingress_match::rules).collect();
        Routes {
            error,
            nginx: ingress_match::route(&rules, host, path, Semantics::IngressNginx),
            gateway: ingress_match::route(&rules, host, path, Semantics::GatewayApi),
            ingresses: ingresses.iter().map(IngressView::project).collect(),
            rules,
            semantics,
        }
    }

    pub fn routing(&self, semantics: Semantics) -> &Routing {
        match semantics {
            Semantics::IngressNginx => &self.nginx,
            Semantics::GatewayApi => &self.gateway,
        }
    }

    /// The rule the walk follows.
    pub fn chosen(&self) -> Option<&Rule> {
        self.routing(self.semantics).rule.map(|i| &self.rules[i])
    }

    /// The rule `semantics` picks, if any.
    pub fn winner(&self, semantics: Semantics) -> Option<&Rule> {
        self.routing(semantics).rule.map(|i| &self.rules[i])
    }

    /// The two semantics send the request to different rules.
    pub fn differ(&self) -> bool {
        self.nginx.rule != self.gateway.rule
    }

    /// The Ingress that claims the host: the chosen rule's, else the first with a rule for
    /// the host (exact or wildcard).
    pub fn claiming(&self, host: &str) -> Option<&IngressView> {
        let key = match self.chosen() {
            Some(rule) => &rule.ingress,
            None => {
                &self
                    .rules
                    .iter()
                    .find(|r| ingress_match::claims_host(r, host))?
                    .ingress
            }
        };
        self.ingresses.iter().find(|i| &i.key == key)
    }

    /// The Service and port the chosen rule sends to.
    pub fn backend(&self) -> Option<(ObjKey, BackendPort)> {
        let rule = self.chosen()?;
        let backend = rule.backend.as_ref()?;
        Some((
            ObjKey::new(&rule.ingress.namespace, &backend.service),
            backend.port.clone(),
        ))
    }

    /// The rules the chosen semantics considered for the host, described.
    pub fn candidates(&self) -> Vec<String> {
        let routing = self.routing(self.semantics);
        routing
            .candidates
            .iter()
            .map(|&i| rule_text(&self.rules[i]))
            .collect()
    }

    /// `shop/front shop.example.com /api (Prefix) → web:80`.
    pub fn describe(&self, semantics: Semantics) -> String {
        match self.winner(semantics) {
            Some(rule) => rule_text(rule),
            None => "no rule matches".to_string(),
        }
    }

    /// The routing under both semantics, for `--json`.
    pub fn to_json(&self) -> Value {
        let rule = |s: Semantics| self.winner(s).map(rule_json);
        json!({
            "semantics": self.semantics.as_str(),
            "ingress-nginx": rule(Semantics::IngressNginx),
            "gateway-api": rule(Semantics::GatewayApi),
            "differ": self.differ(),
            "unevaluated": self.nginx.unevaluated.iter().map(|&i| rule_text(&self.rules[i])).collect::<Vec<_>>(),
        })
    }
}

fn backend_text(rule: &Rule) -> String {
    match &rule.backend {
        Some(b) => match &b.port {
            BackendPort::Number(n) => format!("{}:{n}", b.service),
            BackendPort::Name(name) => format!("{}:{name}", b.service),
        },
        None => "a non-Service backend".to_string(),
    }
}

fn rule_text(rule: &Rule) -> String {
    format!(
        "{} {} → {}",
        rule.ingress,
        rule.describe(),
        backend_text(rule)
    )
}

fn rule_json(rule: &Rule) -> Value {
    json!({
        "ingress": rule.ingress.to_string(),
        "host": rule.host,
        "path": rule.path,
        "path_type": rule.path_type.as_str(),
        "default_backend": rule.default_backend,
        "backend": rule.backend.as_ref().map(|_| backend_text(rule)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress() -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "front"},
            "spec": {
                "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                "rules": [{"host": "shop.example.com", "http": {"paths": [
                    {"path": "/api", "pathType": "ImplementationSpecific",
                     "backend": {"service": {"name": "api", "port": {"number": 80}}}},
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
                ]}}]
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}, {"hostname": "lb.example.net"}]}}
        }))
        .unwrap()
    }

    #[test]
    fn a_url_is_routed_and_its_ingress_found() {
        let routes = Routes::new(
            Ok(vec![ingress()]),
            "shop.example.com",
            "/apiv2",
            Semantics::IngressNginx,
        );
        assert!(routes.differ());
        assert_eq!(
            routes.describe(Semantics::IngressNginx),
            "shop/front shop.example.com /api (ImplementationSpecific) → api:80"
        );
        assert_eq!(
            routes.describe(Semantics::GatewayApi),
            "shop/front shop.example.com / (Prefix) → web:http"
        );
        assert_eq!(
            routes.backend(),
            Some((ObjKey::new("shop", "api"), BackendPort::Number(80)))
        );
        let claiming = routes.claiming("shop.example.com").unwrap();
        assert_eq!(
            claiming.lb_ips,
            vec!["203.0.113.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(claiming.lb_hostnames, vec!["lb.example.net".to_string()]);
        assert_eq!(
            claiming.tls_secret("shop.example.com"),
            Some(Some("shop-tls"))
        );
        assert_eq!(claiming.tls_secret("api.example.com"), None);
        assert_eq!(routes.to_json()["differ"], true);
    }

    #[test]
    fn names_cover_hosts_like_certificates_do() {
        assert!(covers("shop.example.com", "shop.example.com"));
        assert!(covers("*.example.com", "shop.example.com"));
        assert!(!covers("*.example.com", "a.shop.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(covers("*.Example.com", "shop.example.com"));
    }
}
