//! The NetworkPolicy step's reads: the source pod and its namespace's labels, the policies of
//! the namespaces involved, the target Service's pods and the cluster DNS pods, each with the
//! port the connection reaches them on. What it cannot read leaves the step unknown.

use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::{EndPod, Ends, Inputs, Missing, Source};
use crate::discovery::ingress::BackendPort;
use crate::discovery::model::{Address, Labels, ObjKey, ServicePort, TargetPort};
use crate::discovery::netpol::{self, Policy, Protocol};
use crate::policy::SelfPod;
use crate::trace::api::{ApiError, Cluster};
use crate::trace::diagnose;
use crate::trace::verdict::{Cause, Finding, kubectl};
use crate::trace::views::{PodView, ServiceView};

/// The cluster DNS Service, whose pods every lookup of a pod reaches.
pub const DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");
/// The port of the cluster DNS, over UDP and TCP.
pub const DNS_PORT: u16 = 53;

/// Who the source is: the `--from` pod (already read), or trace's own pod.
pub enum SourceArg<'a> {
    From(&'a ObjKey, Box<Result<Pod, ApiError>>),
    Me(&'a SelfPod),
    Unknown,
}

/// What the step checks.
pub struct Request<'a> {
    pub source: SourceArg<'a>,
    /// Trace's own pod, whose connects the walk sent: is it the source?
    pub me: Option<&'a SelfPod>,
    /// The target Service and the port the walk followed.
    pub target: Option<(&'a ObjKey, Option<&'a BackendPort>)>,
    pub dns: bool,
}

/// Reads everything the step decides on.
pub async fn read(cluster: &Cluster, req: Request<'_>) -> Inputs {
    let (source, source_origin) = match req.source {
        SourceArg::From(key, pod) => (from_pod(cluster, key, *pod, req.me).await, "--from"),
        SourceArg::Me(me) => (own_pod(cluster, me).await, "trace's own pod"),
        SourceArg::Unknown => (Ok(None), "unknown"),
    };
    let mut namespaces: Vec<&str> = Vec::new();
    if let Ok(Some(s)) = &source {
        namespaces.push(&s.namespace);
    }
    if let Some((key, _)) = req.target {
        namespaces.push(&key.namespace);
    }
    if req.dns {
        namespaces.push(DNS_SERVICE.0);
    }
    namespaces.sort();
    namespaces.dedup();
    let (policies, unreadable) = match read_policies(cluster, &namespaces).await {
        Ok((p, u)) => (Ok(p), u),
        Err(err) => (Err(err.finding()), Vec::new()),
    };
    let target = match req.target {
        Some((key, port)) => Some(target(cluster, key, port).await),
        None => None,
    };
    let dns = if req.dns {
        Some(dns(cluster).await)
    } else {
        None
    };
    Inputs {
        source,
        source_origin,
        policies,
        unreadable,
        target,
        dns,
    }
}

async fn read_policies(
    cluster: &Cluster,
    namespaces: &[&str],
) -> Result<(Vec<Policy>, Vec<ObjKey>), ApiError> {
    let (mut policies, mut unreadable) = (Vec::new(), Vec::new());
    for ns in namespaces {
        for object in cluster.network_policies(ns).await? {
            match netpol::project(&object) {
                Some(p) => policies.push(p),
                None => unreadable.push(ObjKey::new(
                    ns,
                    object.metadata.name.as_deref().unwrap_or("?"),
                )),
            }
        }
    }
    policies.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((policies, unreadable))
}

/// A namespace's labels, with the name label the API server sets on every namespace.
async fn namespace_labels(cluster: &Cluster, name: &str) -> Result<Labels, Finding> {
    let ns: Namespace = cluster.namespace(name).await.map_err(|e| e.finding())?;
    let mut pairs: Vec<(String, String)> =
        ns.metadata.labels.unwrap_or_default().into_iter().collect();
    pairs.insert(0, ("kubernetes.io/metadata.name".into(), name.into()));
    Ok(pairs.into_iter().collect())
}

async fn from_pod(
    cluster: &Cluster,
    key: &ObjKey,
    pod: Result<Pod, ApiError>,
    me: Option<&SelfPod>,
) -> Result<Option<Source>, Finding> {
    let pod = pod.map_err(|e| e.finding())?;
    let view = PodView::project(&pod).ok_or_else(|| {
        Finding::new(
            Cause::SourceUnknown,
            format!("pod {key} has no name"),
            Vec::new(),
        )
    })?;
    let Some(ip) = view.ip else {
        let detail = format!(
            "pod {key} (--from) has no IP yet (phase {}): nothing to decide for",
            view.phase.as_deref().unwrap_or("unknown")
        );
        let confirm = vec![kubectl::describe_pod(&key.namespace, &key.name)];
        return Err(Finding::new(Cause::SourceUnknown, detail, confirm));
    };
    Ok(Some(Source {
        namespace: key.namespace.clone(),
        name: Some(key.name.clone()),
        ip,
        labels: view.labels.iter().collect(),
        labels_complete: true,
        namespace_labels: namespace_labels(cluster, &key.namespace).await?,
        connects_here: me.is_some_and(|m| m.namespace == key.namespace && m.ip == ip),
    }))
}

async fn own_pod(cluster: &Cluster, me: &SelfPod) -> Result<Option<Source>, Finding> {
    Ok(Some(Source {
        namespace: me.namespace.clone(),
        name: None,
        ip: me.ip,
        labels: me.labels.clone(),
        labels_complete: me.labels_complete,
        namespace_labels: namespace_labels(cluster, &me.namespace).await?,
        connects_here: true,
    }))
}

/// The target Service's pods on the port the walk followed (its first TCP port by default).
async fn target(
    cluster: &Cluster,
    key: &ObjKey,
    port: Option<&BackendPort>,
) -> Result<Ends, Missing> {
    let service = service_view(cluster, key).await?;
    let Some(port) = diagnose::service_port(&service.ports, port).cloned() else {
        return Err(Missing::Nothing(format!("Service {key} has no such port")));
    };
    ends(cluster, &service, &port, Protocol::Tcp).await
}

/// The cluster DNS pods on 53/UDP and 53/TCP.
async fn dns(cluster: &Cluster) -> Result<[Ends; 2], Missing> {
    let key = ObjKey::new(DNS_SERVICE.0, DNS_SERVICE.1);
    let service = service_view(cluster, &key).await?;
    let port = |tcp: bool| {
        let declared = service
            .ports
            .iter()
            .find(|p| p.tcp == tcp && p.port == DNS_PORT);
        declared.cloned().unwrap_or(ServicePort {
            name: None,
            port: DNS_PORT,
            tcp,
            target_port: TargetPort::Number(DNS_PORT),
        })
    };
    let udp = ends(cluster, &service, &port(false), Protocol::Udp).await?;
    let tcp = ends(cluster, &service, &port(true), Protocol::Tcp).await?;
    Ok([udp, tcp])
}

async fn service_view(cluster: &Cluster, key: &ObjKey) -> Result<ServiceView, Missing> {
    let service = cluster
        .service(&key.namespace, &key.name)
        .await
        .map_err(|e| Missing::Failed(e.finding()))?;
    let view = ServiceView::project(&service)
        .ok_or_else(|| Missing::Nothing(format!("Service {key} could not be read")))?;
    if view.address == Address::ExternalName || view.selector.is_empty() {
        let why = format!("Service {key} selects no pods (no selector): no pods to decide for");
        return Err(Missing::Nothing(why));
    }
    Ok(view)
}

/// The pods the Service's selector picks, with an IP, each on the port `port` reaches.
async fn ends(
    cluster: &Cluster,
    service: &ServiceView,
    port: &ServicePort,
    protocol: Protocol,
) -> Result<Ends, Missing> {
    let ns = &service.key.namespace;
    let pods = cluster
        .pods(ns, Some(&service.selector_text()))
        .await
        .map_err(|e| Missing::Failed(e.finding()))?;
    let pods: Vec<EndPod> = pods
        .iter()
        .filter_map(PodView::project)
        .filter_map(|pod| end_pod(&pod, &port.target_port, protocol))
        .collect();
    if pods.is_empty() {
        let why = format!(
            "Service {} selects no running pod with an IP and the port",
            service.key
        );
        return Err(Missing::Nothing(why));
    }
    Ok(Ends {
        service: service.key.clone(),
        namespace_labels: namespace_labels(cluster, ns)
            .await
            .map_err(Missing::Failed)?,
        protocol,
        pods,
    })
}

/// One pod on the targetPort: a number as is, a name looked up in its containers' ports; with
/// the name a container gives that port, which a rule's named port would match.
fn end_pod(pod: &PodView, target: &TargetPort, protocol: Protocol) -> Option<EndPod> {
    let declared = || pod.containers.iter().flat_map(|c| c.ports.iter());
    let port = match target {
        TargetPort::Number(n) => *n,
        TargetPort::Name(name) => {
            declared()
                .find(|p| p.name.as_deref() == Some(name) && p.protocol == protocol.as_str())?
                .port
        }
    };
    let port_name = declared()
        .find(|p| p.port == port && p.protocol == protocol.as_str())
        .and_then(|p| p.name.clone());
    Some(EndPod {
        name: pod.name.clone(),
        labels: pod.labels.iter().collect(),
        ip: pod.ip?,
        port,
        port_name,
    })
}
