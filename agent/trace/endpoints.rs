//! The endpoints hop: the Service's ready, not-ready and terminating endpoints from its
//! EndpointSlices, and when none is ready, why: the selector against the namespace's pods,
//! or the readiness of the pods it does select.

use std::net::IpAddr;

use serde_json::json;

use super::api::{ApiError, Cluster};
use super::diagnose::{self, SelectorFinding};
use super::verdict::{Cause, Finding, kubectl};
use super::views::{PodView, ServiceView};
use super::{Hop, HopName};
use crate::discovery::ingress::BackendPort;
use crate::discovery::model::{ObjKey, ServicePort, SliceInfo, TargetPort, project_slice};

/// The Service the backend hops follow, as far as it is known.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub key: ObjKey,
    /// `None` when the Service could not be read.
    pub service: Option<ServiceView>,
    /// The port the walk follows, when the Service has it.
    pub port: Option<ServicePort>,
    /// The port as the Ingress rule or the target named it.
    pub wanted: Option<BackendPort>,
}

/// A ready endpoint to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyEndpoint {
    pub address: IpAddr,
    pub pod: Option<String>,
    /// `None` when no port could be worked out for it.
    pub port: Option<u16>,
}

/// The port of a slice's endpoints for the followed Service port: the slice port of the same
/// name (resolved per pod by the endpointslice controller), else a numeric targetPort.
pub fn endpoint_port(slice: &SliceInfo, backend: &Backend) -> Option<u16> {
    match (&backend.port, &backend.wanted) {
        (Some(port), _) => {
            diagnose::slice_port(std::slice::from_ref(slice), port).or(match port.target_port {
                TargetPort::Number(n) => Some(n),
                TargetPort::Name(_) => None,
            })
        }
        (None, Some(BackendPort::Name(name))) => slice
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.port),
        (None, _) => match slice.ports.as_slice() {
            [only] => Some(only.port),
            _ => None,
        },
    }
}

/// `(ready, not ready, terminating)` over every endpoint of the slices.
pub fn count(slices: &[SliceInfo]) -> (usize, usize, usize) {
    let all = slices.iter().flat_map(|s| s.endpoints.iter());
    let (mut ready, mut not_ready, mut terminating) = (0, 0, 0);
    for e in all {
        if e.terminating {
            terminating += 1;
        } else if e.ready {
            ready += 1;
        } else {
            not_ready += 1;
        }
    }
    (ready, not_ready, terminating)
}

/// The ready endpoints of the slices, with their ports, by pod name then address: the
/// endpointslice controller writes them in an order of its own, and the trace reads the same
/// whatever it was.
pub fn ready(slices: &[SliceInfo], backend: &Backend) -> Vec<ReadyEndpoint> {
    let mut ready: Vec<ReadyEndpoint> = slices
        .iter()
        .flat_map(|s| {
            let port = endpoint_port(s, backend);
            s.endpoints
                .iter()
                .filter(|e| e.ready && !e.terminating)
                .map(move |e| ReadyEndpoint {
                    address: e.address,
                    pod: e.pod.as_deref().map(str::to_string),
                    port,
                })
        })
        .collect();
    ready.sort_by(|a, b| (&a.pod, a.address).cmp(&(&b.pod, b.address)));
    ready
}

/// The endpoints hop, and the ready endpoints the pod hop connects to.
pub async fn hop(cluster: &Cluster, backend: &Backend) -> (Hop, Vec<ReadyEndpoint>) {
    let (ns, name) = (&backend.key.namespace, &backend.key.name);
    let started = std::time::Instant::now();
    let listed = cluster.slices(Some(ns), Some(name)).await;
    let hop = Hop::new(HopName::Endpoints);
    match listed {
        Ok(items) => {
            // The time of the list: what reading the endpoints costs the API server.
            let hop = hop.timed(started.elapsed());
            let slices: Vec<SliceInfo> = items
                .iter()
                .filter_map(|s| project_slice(s, |n| n.into()))
                .collect();
            from_slices(cluster, backend, hop, &slices).await
        }
        Err(err) => from_pods(cluster, backend, hop, err).await,
    }
}

async fn from_slices(
    cluster: &Cluster,
    backend: &Backend,
    hop: Hop,
    slices: &[SliceInfo],
) -> (Hop, Vec<ReadyEndpoint>) {
    let (ready_n, not_ready, terminating) = count(slices);
    let mut summary = format!("{ready_n} ready, {not_ready} not ready, {terminating} terminating");
    if slices.is_empty() {
        summary += " (no EndpointSlice)";
    }
    let mut hop = hop
        .with("slices", json!(slices.len()))
        .with("ready", json!(ready_n))
        .with("not_ready", json!(not_ready))
        .with("terminating", json!(terminating));
    for s in slices {
        for e in &s.endpoints {
            let state = if e.terminating {
                "terminating"
            } else if e.ready {
                "ready"
            } else {
                "not ready"
            };
            hop = hop.fact(format!(
                "{} {} {state}",
                e.address,
                e.pod.as_deref().unwrap_or("-")
            ));
        }
    }
    if ready_n > 0 {
        return (hop.ok(summary), ready(slices, backend));
    }
    let pods = match &backend.service {
        Some(svc) if !svc.selector.is_empty() => {
            Some(list_pods(cluster, &backend.key.namespace).await)
        }
        _ => None,
    };
    let (finding, compared) = explain(backend, pods.as_ref());
    if let (Some(svc), Some(compared)) = (&backend.service, &compared) {
        hop = hop.with("selector", selector_json(&svc.selector_text(), compared));
    }
    (hop.broken(summary, finding), Vec::new())
}

/// The selector and how it compares with the pods, for `--json`: `{"selector": "app=carts",
/// "result": "off_by_one", "key": "app", "expected": "carts", "actual": "cart", "pods":
/// ["cart-1"]}`.
pub fn selector_json(selector: &str, finding: &SelectorFinding) -> serde_json::Value {
    let mut out = match finding {
        SelectorFinding::Matches(pods) => json!({"result": "matches", "pods": pods}),
        SelectorFinding::OffByOne {
            key,
            expected,
            actual,
            pods,
        } => json!({
            "result": "off_by_one",
            "key": key,
            "expected": expected,
            "actual": actual,
            "pods": pods,
        }),
        SelectorFinding::Partial { keys, pods } => {
            json!({"result": "partial", "keys": keys, "pods": pods})
        }
        SelectorFinding::NoneCarries => json!({"result": "none_carries"}),
        SelectorFinding::NoPods => json!({"result": "no_pods"}),
    };
    if let serde_json::Value::Object(map) = &mut out {
        map.insert("selector".into(), json!(selector));
    }
    out
}

async fn list_pods(cluster: &Cluster, ns: &str) -> Result<Vec<PodView>, ApiError> {
    let pods = cluster.pods(ns, None).await?;
    Ok(pods.iter().filter_map(PodView::project).collect())
}

/// The EndpointSlices could not be read: the hop is unknown, and the pods the selector picks
/// stand in for the endpoints, so the pod hop can still run.
async fn from_pods(
    cluster: &Cluster,
    backend: &Backend,
    hop: Hop,
    err: ApiError,
) -> (Hop, Vec<ReadyEndpoint>) {
    let hop = hop.unknown(err.text(), err.finding());
    let Some(svc) = backend.service.as_ref().filter(|s| !s.selector.is_empty()) else {
        return (hop, Vec::new());
    };
    let Ok(pods) = cluster
        .pods(&backend.key.namespace, Some(&svc.selector_text()))
        .await
    else {
        return (hop, Vec::new());
    };
    let ready: Vec<ReadyEndpoint> = pods
        .iter()
        .filter_map(PodView::project)
        .filter(|p| p.ready() == Some(true) && !p.terminating)
        .filter_map(|p| {
            let target = backend.port.as_ref().map(|sp| &sp.target_port);
            Some(ReadyEndpoint {
                address: p.ip?,
                port: target.and_then(|t| diagnose::pod_port(t, &p)),
                pod: Some(p.name),
            })
        })
        .collect();
    let hop = hop.fact(format!(
        "instead, from the pods the selector picks: {} ready",
        ready.len()
    ));
    (hop, ready)
}

/// Why a Service has no ready endpoint, from its selector and the namespace's pods (`pods`
/// is `None` when the Service has no selector, or could not be read).
pub fn no_ready(backend: &Backend, pods: Option<&Result<Vec<PodView>, ApiError>>) -> Finding {
    explain(backend, pods).0
}

/// [`no_ready`], with how the selector compared with the pods when they could be read.
fn explain(
    backend: &Backend,
    pods: Option<&Result<Vec<PodView>, ApiError>>,
) -> (Finding, Option<SelectorFinding>) {
    let (ns, name) = (backend.key.namespace.as_str(), backend.key.name.as_str());
    let mut confirm = vec![kubectl::endpointslices(ns, name)];
    let Some(svc) = &backend.service else {
        let detail = format!("Service {} has no ready endpoint", backend.key);
        return (Finding::new(Cause::NoEndpoints, detail, confirm), None);
    };
    let pods = match pods {
        None => {
            let detail = format!(
                "Service {} has no selector, and its EndpointSlices list no ready endpoint: whoever manages them has added none",
                svc.key
            );
            confirm.push(kubectl::service(ns, name));
            return (Finding::new(Cause::NoSelector, detail, confirm), None);
        }
        Some(Err(err)) => {
            let detail = format!("Service {} has no ready endpoint ({})", svc.key, err.text());
            return (Finding::new(Cause::NoEndpoints, detail, confirm), None);
        }
        Some(Ok(pods)) => pods,
    };
    confirm.push(kubectl::pods_labels(ns));
    confirm.push(kubectl::service_selector(ns, name));
    let selector = svc.selector_text();
    let finding = diagnose::compare_selector(&svc.selector, pods);
    let cause = match &finding {
        SelectorFinding::Matches(names) => {
            return (selected(backend, svc, pods, names), Some(finding.clone()));
        }
        SelectorFinding::OffByOne { .. } | SelectorFinding::Partial { .. } => {
            Cause::SelectorMismatch
        }
        SelectorFinding::NoneCarries => Cause::NoPodCarriesSelector,
        SelectorFinding::NoPods => Cause::NoPods,
    };
    let detail = match &finding {
        SelectorFinding::NoPods => format!(
            "namespace {ns} has no pods for Service {} to select ({selector})",
            svc.key
        ),
        other => format!(
            "Service {} selects nothing: {}",
            svc.key,
            other.describe(&selector)
        ),
    };
    (Finding::new(cause, detail, confirm), Some(finding))
}

/// Pods match the selector, yet no endpoint is ready: not Ready, terminating, or (when they
/// are Ready) a named targetPort they do not declare.
fn selected(backend: &Backend, svc: &ServiceView, pods: &[PodView], names: &[String]) -> Finding {
    let ns = svc.key.namespace.as_str();
    let chosen: Vec<&PodView> = pods.iter().filter(|p| names.contains(&p.name)).collect();
    let mut confirm = vec![
        kubectl::endpointslices(ns, &svc.key.name),
        kubectl::pods_selected(ns, &svc.selector_text()),
    ];
    let unready: Vec<String> = chosen
        .iter()
        .filter(|p| p.ready() != Some(true) || p.terminating)
        .map(|p| p.readiness_text())
        .collect();
    if let Some(first) = chosen.first() {
        confirm.push(kubectl::describe_pod(ns, &first.name));
    }
    if unready.len() == chosen.len() {
        let detail = format!(
            "pods match the selector of Service {}, but none is Ready: {}",
            svc.key,
            unready.join("; ")
        );
        return Finding::new(Cause::PodsNotReady, detail, confirm);
    }
    let mismatch = backend.port.as_ref().and_then(|sp| {
        let pod = chosen.iter().find(|p| p.ready() == Some(true))?;
        diagnose::port_mismatch(
            &sp.target_port,
            diagnose::pod_port(&sp.target_port, pod),
            pod,
        )
    });
    let detail = match mismatch {
        Some(m) => format!(
            "Ready pods match Service {}, but list no endpoint for its port: {m}",
            svc.key
        ),
        None => format!(
            "Ready pods match Service {} ({}), but its EndpointSlices list no ready endpoint: is the endpointslice controller running?",
            svc.key,
            diagnose::list(names)
        ),
    };
    Finding::new(Cause::NoEndpoints, detail, confirm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::model::{Address, Endpoint, SlicePort};
    use crate::trace::views::Condition;
    use std::collections::BTreeMap;

    fn backend(selector: &[(&str, &str)]) -> Backend {
        let port = ServicePort {
            name: Some("http".into()),
            port: 80,
            tcp: true,
            target_port: TargetPort::Number(8080),
        };
        Backend {
            key: ObjKey::new("shop", "web"),
            service: Some(ServiceView {
                key: ObjKey::new("shop", "web"),
                address: Address::ClusterIp("10.96.0.20".parse().unwrap()),
                external_name: None,
                ports: vec![port.clone()],
                selector: selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            port: Some(port),
            wanted: Some(BackendPort::Number(80)),
        }
    }

    fn pod(name: &str, app: &str, ready: &str) -> PodView {
        PodView {
            name: name.into(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            ip: Some("10.244.1.7".parse().unwrap()),
            phase: Some("Running".into()),
            terminating: false,
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                reason: (ready == "False").then(|| "ContainersNotReady".into()),
                message: None,
            }],
            containers: Vec::new(),
        }
    }

    fn endpoint(ip: &str, ready: bool, terminating: bool) -> Endpoint {
        Endpoint {
            address: ip.parse().unwrap(),
            ready,
            serving: ready,
            terminating,
            node: None,
            pod: Some(format!("pod-{ip}").into_boxed_str()),
        }
    }

    #[test]
    fn endpoints_are_counted_and_ready_ones_get_the_slice_port() {
        let slice = SliceInfo {
            key: ObjKey::new("shop", "web-x"),
            service: ObjKey::new("shop", "web"),
            ports: vec![SlicePort {
                name: Some("http".into()),
                port: 8081,
                tcp: true,
            }],
            endpoints: vec![
                endpoint("10.0.0.1", true, false),
                endpoint("10.0.0.2", false, false),
                endpoint("10.0.0.3", false, true),
            ],
        };
        let slices = [slice];
        assert_eq!(count(&slices), (1, 1, 1));
        let got = ready(&slices, &backend(&[("app", "web")]));
        assert_eq!(
            got,
            vec![ReadyEndpoint {
                address: "10.0.0.1".parse().unwrap(),
                pod: Some("pod-10.0.0.1".into()),
                port: Some(8081)
            }]
        );
    }

    #[test]
    fn no_ready_endpoint_is_explained_by_selector_or_readiness() {
        let b = backend(&[("app", "payments-api")]);
        let pods = Ok(vec![pod("payments-1", "payments", "True")]);
        let f = no_ready(&b, Some(&pods));
        assert_eq!(f.cause, Cause::SelectorMismatch);
        assert_eq!(
            f.detail,
            "Service shop/web selects nothing: selector app=payments-api, pods carry app=payments (payments-1)"
        );
        assert!(
            f.confirm
                .contains(&"kubectl -n shop get pods --show-labels".to_string())
        );
        let b = backend(&[("app", "web")]);
        let pods = Ok(vec![pod("web-1", "web", "False")]);
        let f = no_ready(&b, Some(&pods));
        assert_eq!(f.cause, Cause::PodsNotReady);
        assert_eq!(
            f.detail,
            "pods match the selector of Service shop/web, but none is Ready: web-1 Ready=False (ContainersNotReady)"
        );
        let f = no_ready(&b, Some(&Ok(Vec::new())));
        assert_eq!(f.cause, Cause::NoPods);
        let f = no_ready(&b, None);
        assert_eq!(f.cause, Cause::NoSelector);
        let ready_pods = Ok(vec![pod("web-1", "web", "True")]);
        assert_eq!(no_ready(&b, Some(&ready_pods)).cause, Cause::NoEndpoints);
    }

    #[test]
    fn the_selector_comparison_is_data_too() {
        let b = backend(&[("app", "carts")]);
        let pods = Ok(vec![
            pod("web-1", "web", "True"),
            pod("web-2", "web", "True"),
            pod("cart-1", "cart", "True"),
        ]);
        let (finding, compared) = explain(&b, Some(&pods));
        assert_eq!(finding.cause, Cause::SelectorMismatch);
        assert_eq!(
            selector_json("app=carts", &compared.unwrap()),
            json!({"selector": "app=carts", "result": "off_by_one", "key": "app",
                   "expected": "carts", "actual": "cart", "pods": ["cart-1"]})
        );
        assert_eq!(
            selector_json("app=web", &SelectorFinding::NoPods),
            json!({"selector": "app=web", "result": "no_pods"})
        );
    }
}
