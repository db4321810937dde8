//! Likely causes, the kubectl commands that confirm them, and the verdict: the first broken
//! hop of the walk. Pure: the hops decide, this only orders.

use super::{Hop, HopName, Status};

/// Why a hop is broken, or could not be checked. A closed set; `as_str` is the JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// No DNS server answered any query of the lookup.
    DnsTimeout,
    /// The name does not exist.
    DnsNxdomain,
    /// The lookup failed another way: SERVFAIL, REFUSED, no address.
    DnsFailed,
    /// The public name answers with a pod's IP instead of the load balancer's.
    DnsPodIp,
    /// The public name answers with addresses that are not the Ingress's load balancer.
    DnsNotLoadBalancer,
    /// The Service's name answers with something other than its ClusterIP.
    DnsNotClusterIp,
    /// No Ingress has a rule for the host.
    NoIngress,
    /// The Ingress has no `status.loadBalancer` address and DNS gave none either.
    NoLoadBalancerAddress,
    /// The load balancer did not accept a connection.
    LoadBalancerUnreachable,
    TlsExpired,
    TlsNotYetValid,
    TlsHostnameMismatch,
    TlsUnknownCa,
    TlsHandshake,
    /// The host has rules, but none matches the path.
    NoRuleMatch,
    /// The matching rule sends to something that is not a Service port.
    NoServiceBackend,
    /// The Ingress answered 502, 503 or 504: its upstream failed.
    UpstreamError,
    /// The Ingress answered with another unexpected status.
    HttpStatus,
    /// No HTTP response: the connection closed or stalled after TLS.
    HttpFailed,
    ServiceNotFound,
    /// The Service has no port the backend names.
    ServicePortMissing,
    /// The ClusterIP did not accept a connection.
    ServiceUnreachable,
    /// ExternalName or headless: there is no ClusterIP to connect to.
    NoClusterIp,
    /// A Service without a selector and without endpoints.
    NoSelector,
    NoPods,
    SelectorMismatch,
    NoPodCarriesSelector,
    PodsNotReady,
    /// Pods match and are ready, yet the Service has no ready endpoint.
    NoEndpoints,
    /// The targetPort is not a port the pod declares.
    PortMismatch,
    /// A ready endpoint did not accept a connection.
    PodUnreachable,
    /// The NetworkPolicies deny the source this connection (a [`super::Status::Denied`] hop:
    /// expected, not broken).
    PolicyDenied,
    /// The NetworkPolicies deny the source port 53 of the cluster DNS pods (its egress, or
    /// their ingress).
    DnsPolicyDenied,
    /// No source to decide the NetworkPolicies for: no `--from`, and trace runs outside a pod.
    SourceUnknown,
    /// The Kubernetes API refused a read (401, 403).
    ApiForbidden,
    /// The Kubernetes API could not be reached, or answered with an error.
    ApiUnavailable,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::DnsTimeout => "dns_timeout",
            Cause::DnsNxdomain => "dns_nxdomain",
            Cause::DnsFailed => "dns_failed",
            Cause::DnsPodIp => "dns_pod_ip",
            Cause::DnsNotLoadBalancer => "dns_not_load_balancer",
            Cause::DnsNotClusterIp => "dns_not_cluster_ip",
            Cause::NoIngress => "no_ingress",
            Cause::NoLoadBalancerAddress => "no_load_balancer_address",
            Cause::LoadBalancerUnreachable => "load_balancer_unreachable",
            Cause::TlsExpired => "tls_expired",
            Cause::TlsNotYetValid => "tls_not_yet_valid",
            Cause::TlsHostnameMismatch => "tls_hostname_mismatch",
            Cause::TlsUnknownCa => "tls_unknown_ca",
            Cause::TlsHandshake => "tls_handshake",
            Cause::NoRuleMatch => "no_rule_match",
            Cause::NoServiceBackend => "no_service_backend",
            Cause::UpstreamError => "upstream_error",
            Cause::HttpStatus => "http_status",
            Cause::HttpFailed => "http_failed",
            Cause::ServiceNotFound => "service_not_found",
            Cause::ServicePortMissing => "service_port_missing",
            Cause::ServiceUnreachable => "service_unreachable",
            Cause::NoClusterIp => "no_cluster_ip",
            Cause::NoSelector => "no_selector",
            Cause::NoPods => "no_pods",
            Cause::SelectorMismatch => "selector_mismatch",
            Cause::NoPodCarriesSelector => "no_pod_carries_selector",
            Cause::PodsNotReady => "pods_not_ready",
            Cause::NoEndpoints => "no_endpoints",
            Cause::PortMismatch => "port_mismatch",
            Cause::PodUnreachable => "pod_unreachable",
            Cause::PolicyDenied => "policy_denied",
            Cause::DnsPolicyDenied => "dns_policy_denied",
            Cause::SourceUnknown => "source_unknown",
            Cause::ApiForbidden => "api_forbidden",
            Cause::ApiUnavailable => "api_unavailable",
        }
    }
}

/// A cause with its evidence and the commands that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub cause: Cause,
    /// One or two sentences naming the objects and values involved.
    pub detail: String,
    /// kubectl commands, read-only, that show the same evidence.
    pub confirm: Vec<String>,
}

impl Finding {
    pub fn new(cause: Cause, detail: impl Into<String>, confirm: Vec<String>) -> Finding {
        Finding {
            cause,
            detail: detail.into(),
            confirm,
        }
    }
}

/// The outcome of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The hop blamed, when one is broken.
    pub broken: Option<HopName>,
    pub finding: Option<Finding>,
    /// Hops that could not be checked (API errors), with why; when nothing is broken or
    /// unknown, the hops that were skipped.
    pub unchecked: Vec<(HopName, String)>,
    /// Hops the NetworkPolicies deny to the source, as they are written to: expected, so they
    /// neither break the path nor spoil its health (the agent's `policy_denied`).
    pub denied: Vec<(HopName, Finding)>,
}

impl Verdict {
    /// Every hop worked.
    pub fn healthy(&self) -> bool {
        self.broken.is_none() && self.unchecked.is_empty()
    }
}

/// The first broken hop, in request order, with two corrections that keep the blame on the
/// cause rather than the symptom:
///
/// - An Ingress answering 502/503/504 is blamed only when nothing behind it is broken: an
///   upstream error is what a broken Service, endpoint set or pod looks like from the edge.
/// - A Service whose ClusterIP refuses is blamed on its endpoints when those are broken too
///   (kube-proxy rejects connections to a Service without ready endpoints), else on its pods
///   when a ready one refuses too (kube-proxy forwards the connect to a pod, whose refusal is
///   the ClusterIP's).
pub fn verdict(hops: &[Hop]) -> Verdict {
    let broken: Vec<&Hop> = hops.iter().filter(|h| h.status == Status::Broken).collect();
    let behind = |h: &&&Hop| matches!(h.name, HopName::Service | HopName::Endpoints | HopName::Pod);
    let mut blamed = broken.first().copied();
    if let Some(first) = blamed
        && first.cause() == Some(Cause::UpstreamError)
    {
        blamed = broken.iter().find(behind).copied().or(blamed);
    }
    if let Some(first) = blamed
        && first.name == HopName::Service
    {
        let broken_at = |name: HopName| broken.iter().find(|h| h.name == name).copied();
        let refused = first.cause() == Some(Cause::ServiceUnreachable);
        blamed = broken_at(HopName::Endpoints)
            .or_else(|| broken_at(HopName::Pod).filter(|_| refused))
            .or(blamed);
    }
    let listed = |status: Status| -> Vec<(HopName, String)> {
        hops.iter()
            .filter(|h| h.status == status)
            .map(|h| (h.name, h.summary.clone()))
            .collect()
    };
    // Hops skipped behind a broken or unknown one are its consequence, not news; alone,
    // they still keep the path from being called healthy.
    let mut unchecked = listed(Status::Unknown);
    if blamed.is_none() && unchecked.is_empty() {
        unchecked = listed(Status::Skipped);
    }
    let denied = hops
        .iter()
        .filter(|h| h.status == Status::Denied)
        .filter_map(|h| Some((h.name, h.finding.clone()?)))
        .collect();
    Verdict {
        broken: blamed.map(|h| h.name),
        finding: blamed.and_then(|h| h.finding.clone()),
        unchecked,
        denied,
    }
}

/// The kubectl commands the findings suggest. Read-only, copy-pasteable.
pub mod kubectl {
    /// `kubectl -n NS describe ingress NAME`.
    pub fn describe_ingress(ns: &str, name: &str) -> String {
        format!("kubectl -n {ns} describe ingress {name}")
    }

    pub fn ingresses() -> String {
        "kubectl get ingress -A".to_string()
    }

    pub fn ingress_status(ns: &str, name: &str) -> String {
        format!("kubectl -n {ns} get ingress {name} -o jsonpath='{{.status.loadBalancer.ingress}}'")
    }

    pub fn ingress_tls(ns: &str, name: &str) -> String {
        format!("kubectl -n {ns} get ingress {name} -o jsonpath='{{.spec.tls}}'")
    }

    /// Decodes the certificate of a TLS Secret and prints its dates and names.
    pub fn secret_cert(ns: &str, secret: &str) -> String {
        format!(
            "kubectl -n {ns} get secret {secret} -o jsonpath='{{.data.tls\\.crt}}' | base64 -d | openssl x509 -noout -subject -dates -ext subjectAltName"
        )
    }

    pub fn ingress_classes() -> String {
        "kubectl get ingressclass".to_string()
    }

    pub fn pod_by_ip(ip: &str) -> String {
        format!("kubectl get pods -A -o wide --field-selector status.podIP={ip}")
    }

    pub fn cluster_dns() -> Vec<String> {
        vec![
            "kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide".to_string(),
            "kubectl -n kube-system get endpointslices -l kubernetes.io/service-name=kube-dns"
                .to_string(),
        ]
    }

    pub fn service(ns: &str, name: &str) -> String {
        format!("kubectl -n {ns} get service {name} -o wide")
    }

    pub fn services(ns: &str) -> String {
        format!("kubectl -n {ns} get services")
    }

    pub fn service_ports(ns: &str, name: &str) -> String {
        format!("kubectl -n {ns} get service {name} -o jsonpath='{{.spec.ports}}'")
    }

    pub fn service_selector(ns: &str, name: &str) -> String {
        format!("kubectl -n {ns} get service {name} -o jsonpath='{{.spec.selector}}'")
    }

    pub fn endpointslices(ns: &str, service: &str) -> String {
        format!("kubectl -n {ns} get endpointslices -l kubernetes.io/service-name={service}")
    }

    pub fn pods_labels(ns: &str) -> String {
        format!("kubectl -n {ns} get pods --show-labels")
    }

    pub fn pods_selected(ns: &str, selector: &str) -> String {
        format!("kubectl -n {ns} get pods -l {selector} -o wide")
    }

    pub fn describe_pod(ns: &str, pod: &str) -> String {
        format!("kubectl -n {ns} describe pod {pod}")
    }

    pub fn pod_ports(ns: &str, pod: &str) -> String {
        format!("kubectl -n {ns} get pod {pod} -o jsonpath='{{.spec.containers[*].ports}}'")
    }

    pub fn logs(ns: &str, pod: &str) -> String {
        format!("kubectl -n {ns} logs {pod}")
    }

    /// The NetworkPolicies of a namespace.
    pub fn networkpolicies(ns: &str) -> String {
        format!("kubectl -n {ns} get networkpolicy")
    }

    /// One policy's selector and rules, as kubectl words them.
    pub fn describe_networkpolicy(ns: &str, name: &str) -> String {
        format!("kubectl -n {ns} describe networkpolicy {name}")
    }

    /// Whether the caller may read a resource: `kubectl auth can-i list pods -n shop`.
    pub fn can_i(verb: &str, resource: &str, ns: Option<&str>) -> String {
        match ns {
            Some(ns) => format!("kubectl auth can-i {verb} {resource} -n {ns}"),
            None => format!("kubectl auth can-i {verb} {resource} -A"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(name: HopName, status: Status, cause: Option<Cause>) -> Hop {
        let mut hop = Hop::new(name);
        hop.status = status;
        hop.summary = format!("{} summary", name.as_str());
        hop.finding = cause.map(|c| Finding::new(c, c.as_str(), Vec::new()));
        hop
    }

    use HopName as N;
    use Status::{Broken as B, Ok as O, Skipped as S, Unknown as U};

    #[test]
    fn the_first_broken_hop_is_blamed_with_two_corrections() {
        type Row = (Vec<(HopName, Status, Option<Cause>)>, Option<HopName>);
        let table: Vec<Row> = vec![
            (vec![(N::Dns, O, None), (N::Pod, O, None)], None),
            (
                vec![
                    (N::Dns, B, Some(Cause::DnsTimeout)),
                    (N::Pod, B, Some(Cause::PodUnreachable)),
                ],
                Some(N::Dns),
            ),
            // A 503 from the Ingress is the symptom of the empty Service behind it.
            (
                vec![
                    (N::Ingress, B, Some(Cause::UpstreamError)),
                    (N::Service, B, Some(Cause::ServiceUnreachable)),
                    (N::Endpoints, B, Some(Cause::SelectorMismatch)),
                ],
                Some(N::Endpoints),
            ),
            // ... but it is the Ingress's own fault when everything behind it works.
            (
                vec![
                    (N::Ingress, B, Some(Cause::UpstreamError)),
                    (N::Pod, O, None),
                ],
                Some(N::Ingress),
            ),
            // A 404 is not an upstream error: the Ingress is blamed whatever follows.
            (
                vec![
                    (N::Ingress, B, Some(Cause::NoRuleMatch)),
                    (N::Pod, B, Some(Cause::PortMismatch)),
                ],
                Some(N::Ingress),
            ),
            (
                vec![
                    (N::Service, B, Some(Cause::ServiceUnreachable)),
                    (N::Endpoints, O, None),
                ],
                Some(N::Service),
            ),
            // The ClusterIP refuses because the pods behind it refuse: a wrong targetPort.
            (
                vec![
                    (N::Service, B, Some(Cause::ServiceUnreachable)),
                    (N::Endpoints, O, None),
                    (N::Pod, B, Some(Cause::PortMismatch)),
                ],
                Some(N::Pod),
            ),
            // Through the Ingress: its 502 is the pods' refusal, twice removed.
            (
                vec![
                    (N::Ingress, B, Some(Cause::UpstreamError)),
                    (N::Service, B, Some(Cause::ServiceUnreachable)),
                    (N::Endpoints, O, None),
                    (N::Pod, B, Some(Cause::PortMismatch)),
                ],
                Some(N::Pod),
            ),
            // Pods that answer leave the blame on the Service (kube-proxy's rules).
            (
                vec![
                    (N::Service, B, Some(Cause::ServiceUnreachable)),
                    (N::Endpoints, O, None),
                    (N::Pod, O, None),
                ],
                Some(N::Service),
            ),
            (
                vec![
                    (N::Endpoints, U, Some(Cause::ApiForbidden)),
                    (N::Pod, O, None),
                ],
                None,
            ),
        ];
        for (n, (hops, want)) in table.into_iter().enumerate() {
            let hops: Vec<Hop> = hops.into_iter().map(|(a, b, c)| hop(a, b, c)).collect();
            assert_eq!(verdict(&hops).broken, want, "row {n}");
        }
    }

    #[test]
    fn unchecked_hops_are_listed_and_spoil_health() {
        let hops = vec![
            hop(N::Dns, O, None),
            hop(N::Endpoints, U, Some(Cause::ApiForbidden)),
            hop(N::Pod, S, None),
        ];
        let v = verdict(&hops);
        assert!(!v.healthy());
        assert_eq!(v.broken, None);
        assert_eq!(
            v.unchecked,
            vec![(N::Endpoints, "endpoints summary".to_string())]
        );
        let behind_a_break = vec![
            hop(N::Endpoints, B, Some(Cause::NoPods)),
            hop(N::Pod, S, None),
        ];
        assert_eq!(verdict(&behind_a_break).unchecked, Vec::new());
        let alone = verdict(&[hop(N::Dns, O, None), hop(N::Pod, S, None)]);
        assert!(!alone.healthy());
        assert_eq!(alone.unchecked, vec![(N::Pod, "pod summary".to_string())]);
        assert!(verdict(&[hop(N::Dns, O, None)]).healthy());
    }

    #[test]
    fn causes_have_snake_case_names() {
        assert_eq!(Cause::SelectorMismatch.as_str(), "selector_mismatch");
        assert_eq!(
            kubectl::endpointslices("shop", "web"),
            "kubectl -n shop get endpointslices -l kubernetes.io/service-name=web"
        );
        assert_eq!(
            kubectl::pod_ports("shop", "web-1"),
            "kubectl -n shop get pod web-1 -o jsonpath='{.spec.containers[*].ports}'"
        );
    }
}
