//! What the trace reads of Services and Pods: the fields a diagnosis names, nothing more.
//! EndpointSlices use the agent's own projection ([`crate::discovery::model::project_slice`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

use crate::discovery::model::{self, Address, ObjKey, ServicePort};

/// A Service: how it is reached, its ports and the selector that picks its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub key: ObjKey,
    pub address: Address,
    /// `spec.externalName` of an ExternalName Service.
    pub external_name: Option<String>,
    pub ports: Vec<ServicePort>,
    /// Empty when the Service has no selector (its endpoints are managed by someone else).
    pub selector: BTreeMap<String, String>,
}

impl ServiceView {
    /// `None` for an object without a name, namespace or spec.
    pub fn project(svc: &Service) -> Option<ServiceView> {
        let info = model::project_service(svc, "")?;
        let spec = svc.spec.as_ref()?;
        Some(ServiceView {
            key: info.key,
            address: info.address,
            external_name: spec.external_name.clone(),
            ports: info.ports,
            selector: spec.selector.clone().unwrap_or_default(),
        })
    }

    /// `app=web,tier=front`, as kubectl's `-l` takes it.
    pub fn selector_text(&self) -> String {
        labels_text(&self.selector)
    }
}

/// `k=v,k2=v2` in key order.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

/// One condition of a pod's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// A port a container declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: String,
}

/// A container and the ports it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPorts {
    pub name: String,
    pub ports: Vec<DeclaredPort>,
}

/// A Pod: its labels, address, readiness and declared ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ip: Option<IpAddr>,
    pub phase: Option<String>,
    /// Being deleted (`metadata.deletionTimestamp` set).
    pub terminating: bool,
    pub conditions: Vec<Condition>,
    pub containers: Vec<ContainerPorts>,
}

impl PodView {
    /// `None` for an object without a name.
    pub fn project(pod: &Pod) -> Option<PodView> {
        let status = pod.status.as_ref();
        let conditions = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| Condition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone().filter(|r| !r.is_empty()),
                message: c.message.clone().filter(|m| !m.is_empty()),
            })
            .collect();
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(container).collect())
            .unwrap_or_default();
        Some(PodView {
            name: pod.metadata.name.clone()?,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ip: status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
            phase: status.and_then(|s| s.phase.clone()),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            conditions,
            containers,
        })
    }

    /// The `Ready` condition's status: `Some(true)` only for `"True"`; `None` when absent.
    pub fn ready(&self) -> Option<bool> {
        self.condition("Ready").map(|c| c.status == "True")
    }

    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// `web-1 Ready=False (ContainersNotReady: containers with unready status: [web])`, or
    /// `web-1 phase Pending, no Ready condition`.
    pub fn readiness_text(&self) -> String {
        match self.condition("Ready") {
            Some(c) => {
                let why = match (&c.reason, &c.message) {
                    (Some(r), Some(m)) => format!(" ({r}: {m})"),
                    (Some(r), None) => format!(" ({r})"),
                    (None, Some(m)) => format!(" ({m})"),
                    (None, None) => String::new(),
                };
                format!("{} Ready={}{why}", self.name, c.status)
            }
            None => format!(
                "{} phase {}, no Ready condition",
                self.name,
                self.phase.as_deref().unwrap_or("unknown")
            ),
        }
    }
}

fn container(c: &Container) -> ContainerPorts {
    let ports = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(DeclaredPort {
                name: p.name.clone(),
                port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
            })
        })
        .collect();
    ContainerPorts {
        name: c.name.clone(),
        ports,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_projected_with_readiness_and_ports() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "web", "ports": [{"name": "http", "containerPort": 80}]},
                {"name": "sidecar"}
            ]},
            "status": {"phase": "Running", "podIP": "10.244.1.7", "conditions": [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                 "message": "containers with unready status: [web]"}
            ]}
        }))
        .unwrap();
        let view = PodView::project(&pod).unwrap();
        assert_eq!(view.ip, Some("10.244.1.7".parse().unwrap()));
        assert_eq!(view.ready(), Some(false));
        assert_eq!(
            view.readiness_text(),
            "web-1 Ready=False (ContainersNotReady: containers with unready status: [web])"
        );
        assert_eq!(view.containers[0].ports[0].protocol, "TCP");
        assert!(view.containers[1].ports.is_empty());
        assert!(!view.terminating);
    }

    #[test]
    fn a_service_keeps_its_selector() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.20", "selector": {"tier": "front", "app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
        }))
        .unwrap();
        let view = ServiceView::project(&svc).unwrap();
        assert_eq!(view.selector_text(), "app=web,tier=front");
        assert_eq!(
            view.address,
            Address::ClusterIp("10.96.0.20".parse().unwrap())
        );
        assert_eq!(
            view.ports[0].target_port,
            model::TargetPort::Name("http".into())
        );
    }
}
