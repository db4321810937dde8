//! The hops behind the edge: the Service (its port, targetPort and a connect to its
//! ClusterIP), its endpoints ([`super::endpoints`]), then a connect to every ready pod, with
//! the pod's declared ports when one refuses.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use serde_json::json;
use tokio::time::Instant;

use super::api::{ApiError, ApiFailure, Cluster};
use super::diagnose;
use super::endpoints::{self, Backend, ReadyEndpoint};
use super::verdict::{Cause, Finding, kubectl};
use super::views::{PodView, ServiceView};
use super::{Hop, HopName};
use crate::discovery::ingress::BackendPort;
use crate::discovery::model::{Address, ObjKey, TargetPort};
use crate::probe::{Failure, result_label, tcp};

/// The Service, endpoints and pod hops for Service `key`, read as `service` (already
/// fetched), following port `wanted` (the first TCP port when `None`). `via` says who sends
/// there, for findings: `Ingress shop/front`.
pub async fn hops(
    cluster: &Cluster,
    key: &ObjKey,
    service: Result<Service, ApiError>,
    wanted: Option<BackendPort>,
    via: Option<&ObjKey>,
    timeout: Duration,
) -> Vec<Hop> {
    let view = service.as_ref().ok().and_then(ServiceView::project);
    let port = view
        .as_ref()
        .and_then(|v| diagnose::service_port(&v.ports, wanted.as_ref()).cloned());
    let backend = Backend {
        key: key.clone(),
        service: view,
        port,
        wanted,
    };
    let service_hop = service_hop(&backend, service.err(), via, timeout).await;
    if let Some(svc) = backend
        .service
        .as_ref()
        .filter(|s| s.address == Address::ExternalName)
    {
        let alias = svc.external_name.as_deref().unwrap_or("?");
        return vec![service_hop.ok(format!(
            "ExternalName Service: a DNS alias for {alias}, no endpoints"
        ))];
    }
    let (endpoints_hop, ready) = endpoints::hop(cluster, &backend).await;
    let pod_hop = pod_hop(cluster, &backend, &ready, timeout).await;
    vec![service_hop, endpoints_hop, pod_hop]
}

async fn service_hop(
    backend: &Backend,
    error: Option<ApiError>,
    via: Option<&ObjKey>,
    timeout: Duration,
) -> Hop {
    let hop = Hop::new(HopName::Service).with("service", json!(backend.key.to_string()));
    let (ns, name) = (&backend.key.namespace, &backend.key.name);
    if let Some(err) = error {
        if err.failure != ApiFailure::NotFound {
            return hop.unknown(err.text(), err.finding());
        }
        let who = via.map_or_else(String::new, |i| format!("Ingress {i} routes to it, but "));
        let detail = format!("{who}Service {} does not exist", backend.key);
        let mut confirm = vec![kubectl::services(ns)];
        if let Some(i) = via {
            confirm.push(kubectl::describe_ingress(&i.namespace, &i.name));
        }
        let finding = Finding::new(Cause::ServiceNotFound, detail, confirm);
        return hop.broken(format!("Service {} not found", backend.key), finding);
    }
    let Some(svc) = &backend.service else {
        return hop.skip("the Service could not be read");
    };
    let Some(port) = &backend.port else {
        return hop.broken("no such port", missing_port(backend, svc));
    };
    let target = diagnose::target_text(&port.target_port);
    let hop = hop
        .with("port", json!(port.port))
        .with("target_port", json!(target))
        .fact(format!(
            "ports: {}",
            svc.ports
                .iter()
                .map(diagnose::port_text)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .fact(format!(
            "selector: {}",
            if svc.selector.is_empty() {
                "none".to_string()
            } else {
                svc.selector_text()
            }
        ));
    let head = format!("{} port {} → targetPort {target}", svc.key, port.port);
    let ip = match svc.address {
        Address::ClusterIp(ip) => ip,
        Address::Headless => {
            return hop.ok(format!(
                "{head}: headless, clients connect to the pods directly"
            ));
        }
        Address::ExternalName => return hop,
    };
    let address = SocketAddr::new(ip, port.port);
    let report = tcp::connect(address, Instant::now() + timeout).await;
    let hop = hop
        .timed(report.duration)
        .with("address", json!(address.to_string()))
        .with("result", json!(result_label(&report.result)));
    match report.result {
        Ok(()) => hop.ok(format!("{head}: ClusterIP {address} accepts connections")),
        Err(failure) => {
            let detail = format!(
                "the ClusterIP {address} of Service {} did not accept a connection: {failure}",
                svc.key
            );
            let confirm = vec![
                kubectl::service(ns, name),
                kubectl::endpointslices(ns, name),
            ];
            let finding = Finding::new(Cause::ServiceUnreachable, detail, confirm);
            hop.broken(format!("{head}: ClusterIP {address} {failure}"), finding)
        }
    }
}

fn missing_port(backend: &Backend, svc: &ServiceView) -> Finding {
    let wanted = match &backend.wanted {
        Some(BackendPort::Number(n)) => format!("port {n}"),
        Some(BackendPort::Name(name)) => format!("a port named {name}"),
        None => "a TCP port".to_string(),
    };
    let ports: Vec<String> = svc.ports.iter().map(diagnose::port_text).collect();
    let detail = format!(
        "Service {} has no {wanted}; its ports: {}",
        svc.key,
        if ports.is_empty() {
            "none".to_string()
        } else {
            ports.join(", ")
        }
    );
    let confirm = vec![kubectl::service_ports(&svc.key.namespace, &svc.key.name)];
    Finding::new(Cause::ServicePortMissing, detail, confirm)
}

/// One connect to a ready endpoint.
struct Dial {
    endpoint: ReadyEndpoint,
    address: SocketAddr,
    report: tcp::TcpReport,
}

async fn pod_hop(
    cluster: &Cluster,
    backend: &Backend,
    ready: &[ReadyEndpoint],
    timeout: Duration,
) -> Hop {
    if ready.is_empty() {
        return Hop::skipped(HopName::Pod, "no ready endpoint to connect to");
    }
    let deadline = Instant::now() + timeout;
    let targets: Vec<(ReadyEndpoint, SocketAddr)> = ready
        .iter()
        .filter_map(|e| Some((e.clone(), SocketAddr::new(e.address, e.port?))))
        .collect();
    if targets.is_empty() {
        return Hop::skipped(HopName::Pod, "no port known for the ready endpoints");
    }
    let dials: Vec<Dial> =
        futures::future::join_all(targets.into_iter().map(|(endpoint, address)| async move {
            let report = tcp::connect(address, deadline).await;
            Dial {
                endpoint,
                address,
                report,
            }
        }))
        .await;
    let mut hop = Hop::new(HopName::Pod)
        .timed(
            dials
                .iter()
                .map(|d| d.report.duration)
                .max()
                .unwrap_or_default(),
        )
        .with(
            "endpoints",
            json!(dials.iter().map(dial_json).collect::<Vec<_>>()),
        );
    for d in &dials {
        hop = hop.fact(format!(
            "{} {} {} in {:.2} ms",
            d.endpoint.pod.as_deref().unwrap_or("-"),
            d.address,
            result_label(&d.report.result),
            d.report.duration.as_secs_f64() * 1e3
        ));
    }
    let ok = dials.iter().filter(|d| d.report.result.is_ok()).count();
    let ports: Vec<String> = dedup(dials.iter().map(|d| d.address.port().to_string()));
    let summary = format!(
        "{ok} of {} ready endpoints accept connections on {}",
        dials.len(),
        ports.join(", ")
    );
    match dials.iter().find(|d| d.report.result.is_err()) {
        None => hop.ok(summary),
        Some(failed) => {
            let (finding, declared) = refused(cluster, backend, failed).await;
            if let Some(declared) = declared {
                hop = hop.with("refused_pod", declared);
            }
            hop.broken(summary, finding)
        }
    }
}

fn dial_json(d: &Dial) -> serde_json::Value {
    json!({
        "pod": d.endpoint.pod,
        "address": d.address.to_string(),
        "result": result_label(&d.report.result),
        "duration_seconds": d.report.duration.as_secs_f64(),
    })
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The pod of an endpoint that refused, the port dialled and the ports its containers
/// declare, for `--json`.
fn declared_json(pod: &PodView, port: u16) -> serde_json::Value {
    let declared: Vec<serde_json::Value> = pod
        .containers
        .iter()
        .flat_map(|c| {
            c.ports.iter().map(|p| {
                json!({"container": c.name, "name": p.name, "port": p.port, "protocol": p.protocol})
            })
        })
        .collect();
    json!({"pod": pod.name, "port": port, "declared": declared})
}

/// Why a ready endpoint did not accept: the pod's declared ports against the targetPort,
/// else what the failure says; with the pod's declared ports when it could be read.
async fn refused(
    cluster: &Cluster,
    backend: &Backend,
    dial: &Dial,
) -> (Finding, Option<serde_json::Value>) {
    let ns = backend.key.namespace.as_str();
    let failure = dial.report.result.err().unwrap_or(Failure::ConnectError);
    let Some(name) = dial.endpoint.pod.as_deref() else {
        let detail = format!(
            "the ready endpoint {} did not accept a connection: {failure}",
            dial.address
        );
        let confirm = vec![kubectl::endpointslices(ns, &backend.key.name)];
        return (Finding::new(Cause::PodUnreachable, detail, confirm), None);
    };
    let mut confirm = vec![
        kubectl::pod_ports(ns, name),
        kubectl::service_ports(ns, &backend.key.name),
    ];
    let head = format!("pod {ns}/{name} is Ready but {} {failure}", dial.address);
    let pod = cluster
        .pod(ns, name)
        .await
        .ok()
        .and_then(|p| PodView::project(&p));
    let target = backend
        .port
        .as_ref()
        .map_or(TargetPort::Number(dial.address.port()), |p| {
            p.target_port.clone()
        });
    let mismatch = pod
        .as_ref()
        .and_then(|p| diagnose::port_mismatch(&target, Some(dial.address.port()), p));
    let declared = pod.as_ref().map(|p| declared_json(p, dial.address.port()));
    if let Some(mismatch) = mismatch {
        let finding = Finding::new(Cause::PortMismatch, format!("{head}: {mismatch}"), confirm);
        return (finding, declared);
    }
    confirm.push(kubectl::logs(ns, name));
    let why = match failure {
        Failure::Refused => {
            "nothing listens on that port, though the pod declares it (does its readiness probe check another port?)"
        }
        Failure::Timeout => "no answer: a NetworkPolicy or the network drops the connection",
        _ => "the network between this machine and the pod fails",
    };
    let finding = Finding::new(Cause::PodUnreachable, format!("{head}: {why}"), confirm);
    (finding, declared)
}
