//! Compact projections of the Kubernetes objects hopwatch reads. Full objects are never kept:
//! a full EndpointSlice costs about 20 times the heap of what the probes need from it.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Namespace and name of a namespaced object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(namespace: &str, name: &str) -> ObjKey {
        ObjKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How a Service is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A virtual IP programmed by kube-proxy (the first of `clusterIPs`).
    ClusterIp(IpAddr),
    /// `clusterIP: None`: DNS answers with the ready endpoints' addresses.
    Headless,
    /// `type: ExternalName`: a DNS alias, no endpoints, nothing for kube-proxy.
    ExternalName,
}

/// A Service port's target on the pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    /// Only TCP ports are probed.
    pub tcp: bool,
    pub target_port: TargetPort,
}

/// A Service's labels, sorted by key, in one boxed slice. A `BTreeMap` allocates a node of
/// 544 bytes for even one label, a slice 32 bytes a label: at 10,000 Services the difference is
/// about 4 MiB of the agent's resident memory (docs/PERFORMANCE.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let found = self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(&self.0[found].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

/// Any pairs, in any order; of a repeated key the last value wins, as in a map.
impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Labels {
        let mut all: Vec<(Box<str>, Box<str>)> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().into(), v.as_ref().into()))
            .collect();
        // Stable, so equal keys keep their order; then the last of each run is kept.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.reverse();
        all.dedup_by(|later, earlier| later.0 == earlier.0);
        all.reverse();
        Labels(all.into_boxed_slice())
    }
}

/// What hopwatch keeps of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub key: ObjKey,
    pub address: Address,
    pub ports: Vec<ServicePort>,
    /// The pod selector; empty for a Service whose endpoints someone else manages. Every pod
    /// behind the Service carries these labels, which is all the agent knows of its pods'
    /// labels (for NetworkPolicies).
    pub selector: Labels,
    pub labels: Labels,
    /// The value of the opt-in/opt-out annotation, if set.
    pub probe_annotation: Option<String>,
    /// Annotated `hopwatch.io/critical: "true"`: its empty endpoint list pages at once.
    pub critical: bool,
}

impl ServiceInfo {
    /// A Service without a selector has its endpoints managed by someone else.
    pub fn has_selector(&self) -> bool {
        !self.selector.is_empty()
    }
}

/// One endpoint of a slice, with its readiness conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: IpAddr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// Interned: many endpoints share a node.
    pub node: Option<Arc<str>>,
    /// The pod behind the endpoint, when the slice names one.
    pub pod: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    pub name: Option<String>,
    pub port: u16,
    pub tcp: bool,
}

/// What hopwatch keeps of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    pub key: ObjKey,
    /// The owning Service, from the `kubernetes.io/service-name` label.
    pub service: ObjKey,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<Endpoint>,
}

fn port(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p > 0)
}

fn is_tcp(protocol: Option<&String>) -> bool {
    protocol.is_none_or(|p| p == "TCP")
}

/// Marks a Service whose outage pages by itself (`hopwatch_service_critical`).
pub const CRITICAL_ANNOTATION: &str = "hopwatch.io/critical";

/// Projects a Service; `None` for an object without a name or namespace. `annotation` is the
/// opt-in/opt-out annotation key.
pub fn project_service(svc: &Service, annotation: &str) -> Option<ServiceInfo> {
    let key = ObjKey::new(
        svc.metadata.namespace.as_deref()?,
        svc.metadata.name.as_deref()?,
    );
    let spec = svc.spec.as_ref()?;
    let address = if spec.type_.as_deref() == Some("ExternalName") {
        Address::ExternalName
    } else {
        let ip = spec
            .cluster_ips
            .as_ref()
            .and_then(|ips| ips.first())
            .or(spec.cluster_ip.as_ref());
        match ip.map(String::as_str) {
            None | Some("None") | Some("") => Address::Headless,
            Some(ip) => Address::ClusterIp(ip.parse().ok()?),
        }
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let number = port(p.port)?;
            let target_port = match &p.target_port {
                None => TargetPort::Number(number),
                Some(IntOrString::Int(n)) => TargetPort::Number(port(*n)?),
                Some(IntOrString::String(name)) => TargetPort::Name(name.clone()),
            };
            Some(ServicePort {
                name: p.name.clone(),
                port: number,
                tcp: is_tcp(p.protocol.as_ref()),
                target_port,
            })
        })
        .collect();
    Some(ServiceInfo {
        key,
        address,
        ports,
        selector: spec.selector.iter().flatten().collect(),
        labels: svc.metadata.labels.iter().flatten().collect(),
        probe_annotation: svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotation))
            .cloned(),
        critical: svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CRITICAL_ANNOTATION))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
    })
}

/// Projects an EndpointSlice; `None` for FQDN slices and slices that name no Service.
/// `intern` shares node names between endpoints.
pub fn project_slice(
    slice: &EndpointSlice,
    mut intern: impl FnMut(&str) -> Arc<str>,
) -> Option<SliceInfo> {
    if slice.address_type == "FQDN" {
        return None;
    }
    let namespace = slice.metadata.namespace.as_deref()?;
    let key = ObjKey::new(namespace, slice.metadata.name.as_deref()?);
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(SlicePort {
                name: p.name.clone(),
                port: port(p.port?)?,
                tcp: is_tcp(p.protocol.as_ref()),
            })
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .flatten()
        .filter_map(|e| {
            let address = e.addresses.first()?.parse().ok()?;
            let conditions = e.conditions.clone().unwrap_or_default();
            // API semantics: ready and serving default to true, terminating to false.
            let ready = conditions.ready.unwrap_or(true);
            let pod = e
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| r.name.clone());
            Some(Endpoint {
                address,
                ready,
                serving: conditions.serving.unwrap_or(ready),
                terminating: conditions.terminating.unwrap_or(false),
                node: e.node_name.as_deref().map(&mut intern),
                pod: pod.map(String::into_boxed_str),
            })
        })
        .collect();
    Some(SliceInfo {
        key,
        service: ObjKey::new(namespace, service),
        ports,
        endpoints,
    })
}
