//! Kubernetes objects as JSON, shaped like what the apiserver and the endpointslice controller
//! store: Services, EndpointSlices and Nodes, with the API path of each.

use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How a Service is reached.
#[derive(Debug, Clone)]
enum Address {
    ClusterIp(Ipv4Addr),
    Headless,
    ExternalName(String),
}

/// A Service manifest, built up field by field.
#[derive(Debug, Clone)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    address: Address,
    ports: Vec<Value>,
    selector: Option<Value>,
    labels: Map<String, Value>,
    annotations: Map<String, Value>,
}

impl Service {
    fn new(namespace: &str, name: &str, address: Address) -> Service {
        Service {
            namespace: namespace.to_string(),
            name: name.to_string(),
            address,
            ports: Vec::new(),
            selector: Some(json!({ "app": name })),
            labels: Map::new(),
            annotations: Map::new(),
        }
    }

    /// A ClusterIP Service selecting pods labelled `app: NAME`.
    pub fn cluster_ip(namespace: &str, name: &str, ip: Ipv4Addr) -> Service {
        Service::new(namespace, name, Address::ClusterIp(ip))
    }

    /// `clusterIP: None`, selecting pods labelled `app: NAME`.
    pub fn headless(namespace: &str, name: &str) -> Service {
        Service::new(namespace, name, Address::Headless)
    }

    /// `type: ExternalName`, an alias of `host`.
    pub fn external_name(namespace: &str, name: &str, host: &str) -> Service {
        let mut svc = Service::new(namespace, name, Address::ExternalName(host.to_string()));
        svc.selector = None;
        svc
    }

    /// A TCP port forwarding to `target_port` on the pods.
    pub fn port(self, name: &str, port: u16, target_port: u16) -> Service {
        self.port_with(name, port, target_port, "TCP")
    }

    /// A UDP port forwarding to `target_port` on the pods.
    pub fn udp_port(self, name: &str, port: u16, target_port: u16) -> Service {
        self.port_with(name, port, target_port, "UDP")
    }

    fn port_with(mut self, name: &str, port: u16, target_port: u16, protocol: &str) -> Service {
        self.ports.push(json!({
            "name": name, "port": port, "targetPort": target_port, "protocol": protocol
        }));
        self
    }

    /// No selector: the endpoints are managed by someone else (like `default/kubernetes`).
    pub fn without_selector(mut self) -> Service {
        self.selector = None;
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Service {
        self.labels.insert(key.to_string(), json!(value));
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Service {
        self.annotations.insert(key.to_string(), json!(value));
        self
    }

    /// The manifest.
    pub fn json(&self) -> Value {
        let mut spec = json!({ "ports": self.ports, "sessionAffinity": "None" });
        match &self.address {
            Address::ClusterIp(ip) => {
                spec["type"] = json!("ClusterIP");
                spec["clusterIP"] = json!(ip.to_string());
                spec["clusterIPs"] = json!([ip.to_string()]);
            }
            Address::Headless => {
                spec["type"] = json!("ClusterIP");
                spec["clusterIP"] = json!("None");
                spec["clusterIPs"] = json!(["None"]);
            }
            Address::ExternalName(host) => {
                spec["type"] = json!("ExternalName");
                spec["externalName"] = json!(host);
            }
        }
        if let Some(selector) = &self.selector {
            spec["selector"] = selector.clone();
        }
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": self.labels,
                "annotations": self.annotations,
            },
            "spec": spec,
        })
    }

    /// The collection the Service is created in.
    pub fn collection(&self) -> String {
        format!("/api/v1/namespaces/{}/services", self.namespace)
    }

    /// The Service's own path.
    pub fn path(&self) -> String {
        format!("{}/{}", self.collection(), self.name)
    }
}

/// One endpoint of a slice and its conditions.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub ready: bool,
    pub terminating: bool,
    pub node: Option<String>,
    pub pod: Option<String>,
}

/// An EndpointSlice manifest as the endpointslice controller writes it.
#[derive(Debug, Clone)]
pub struct Slice {
    pub namespace: String,
    pub name: String,
    pub service: String,
    ports: Vec<Value>,
    pub endpoints: Vec<Endpoint>,
}

impl Slice {
    /// An empty slice of `service` (its selector matches no pod).
    pub fn new(namespace: &str, name: &str, service: &str) -> Slice {
        Slice {
            namespace: namespace.to_string(),
            name: name.to_string(),
            service: service.to_string(),
            ports: Vec::new(),
            endpoints: Vec::new(),
        }
    }

    /// A TCP port, named like the Service port it serves.
    pub fn port(mut self, name: &str, port: u16) -> Slice {
        self.ports
            .push(json!({ "name": name, "port": port, "protocol": "TCP" }));
        self
    }

    /// A UDP port, named like the Service port it serves.
    pub fn udp_port(mut self, name: &str, port: u16) -> Slice {
        self.ports
            .push(json!({ "name": name, "port": port, "protocol": "UDP" }));
        self
    }

    /// An endpoint on `node`, backed by a pod named after the slice and its address.
    pub fn endpoint(mut self, ip: Ipv4Addr, ready: bool, node: &str) -> Slice {
        let pod = format!("{}-{}", self.service, ip.octets()[3]);
        self.endpoints.push(Endpoint {
            ip,
            ready,
            terminating: false,
            node: Some(node.to_string()),
            pod: Some(pod),
        });
        self
    }

    /// Sets the Ready condition of the endpoint at `ip` (serving follows it).
    pub fn set_ready(&mut self, ip: Ipv4Addr, ready: bool) {
        let endpoint = self
            .endpoints
            .iter_mut()
            .find(|e| e.ip == ip)
            .unwrap_or_else(|| panic!("no endpoint {ip} in slice {}", self.name));
        endpoint.ready = ready;
    }

    /// The manifest.
    pub fn json(&self) -> Value {
        let endpoints: Vec<Value> = self
            .endpoints
            .iter()
            .map(|e| endpoint_json(e, &self.namespace))
            .collect();
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {
                    SERVICE_NAME_LABEL: self.service,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
            },
            "addressType": "IPv4",
            "ports": self.ports,
            "endpoints": endpoints,
        })
    }

    /// The collection the slice is created in.
    pub fn collection(&self) -> String {
        format!(
            "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices",
            self.namespace
        )
    }

    /// The slice's own path.
    pub fn path(&self) -> String {
        format!("{}/{}", self.collection(), self.name)
    }
}

fn endpoint_json(e: &Endpoint, namespace: &str) -> Value {
    let mut out = json!({
        "addresses": [e.ip.to_string()],
        "conditions": {
            "ready": e.ready && !e.terminating,
            "serving": e.ready,
            "terminating": e.terminating,
        },
    });
    if let Some(node) = &e.node {
        out["nodeName"] = json!(node);
    }
    if let Some(pod) = &e.pod {
        out["targetRef"] = json!({ "kind": "Pod", "name": pod, "namespace": namespace });
    }
    out
}

/// A Node manifest.
pub fn node(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name } },
        "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
    })
}

/// A `List` of objects, as fixtures and `/_fake/load` take it.
pub fn list(items: Vec<Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": "List", "items": items })
}
