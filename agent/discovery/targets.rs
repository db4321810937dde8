//! From the stores to what this node probes and reports. Pure: the same stores, settings and
//! node name always give the same result, so it is tested on JSON fixtures.
//!
//! Every item is shared out by rendezvous hashing over the node list, so the work and the
//! series of one node stay flat as the cluster grows:
//! - the Service hop: each Service port's ClusterIP from `service_probe_nodes` nodes every
//!   interval, from every node for the `always` Services; every other (node, port) pair once
//!   per sweep, so each node's kube-proxy is still checked for every ClusterIP;
//! - the Pod hop: each Service port's ready endpoints from `pod_probe_nodes` nodes;
//! - each kube-dns replica from `pod_probe_nodes` nodes;
//! - each Ingress (and HTTPRoute) rule and load-balancer host from `edge_probe_nodes` nodes;
//! - each Service's readiness (series about the cluster, not the node) from one node, its
//!   owner.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use super::gateway;
use super::ingress::{self, IngressInfo, IngressTarget, LoadBalancerTarget};
use super::model::{Address, ObjKey, ServiceInfo, ServicePort, SliceInfo, TargetPort};
use super::rendezvous;
use super::scope;
use super::select::Selection;
use super::store::Stores;

/// What discovery is told by the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub selection: Selection,
    /// How many nodes connect to each Service port's endpoints directly.
    pub pod_probe_nodes: usize,
    /// How many nodes connect to each Service port's ClusterIP every interval; the others
    /// reach it in the sweep.
    pub service_probe_nodes: usize,
    /// How many nodes probe each Ingress rule and load-balancer host.
    pub edge_probe_nodes: usize,
    /// The cluster's DNS domain, e.g. `cluster.local`.
    pub cluster_domain: String,
    /// The cluster DNS Service.
    pub dns_service: ObjKey,
    /// Only Ingresses of these IngressClasses; empty means every Ingress.
    pub ingress_classes: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            selection: Selection::default(),
            pod_probe_nodes: 3,
            service_probe_nodes: 3,
            edge_probe_nodes: 3,
            cluster_domain: "cluster.local".to_string(),
            dns_service: ObjKey::new("kube-system", "kube-dns"),
            ingress_classes: Vec::new(),
        }
    }
}

/// A Service port reached through its ClusterIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTarget {
    pub service: ObjKey,
    /// `namespace/service:port`, the `target` label.
    pub id: String,
    pub address: SocketAddr,
    /// Among the port's `service_probe_nodes`: connected to every interval and timed.
    pub owner: bool,
    /// Connected to once per sweep rather than every interval: neither in `always` nor
    /// among the port's `service_probe_nodes`.
    pub sweep: bool,
}

/// A Service port's ready endpoints that this node connects to directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    pub service: ObjKey,
    pub id: String,
    pub endpoints: Vec<SocketAddr>,
}

/// Why a Service that should have backends has none ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EmptyReason {
    /// No endpoints at all: the selector matches no pod.
    NoEndpoints,
    /// Endpoints exist, none is Ready.
    NoneReady,
}

impl EmptyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EmptyReason::NoEndpoints => "no_endpoints",
            EmptyReason::NoneReady => "none_ready",
        }
    }
}

/// Endpoint counts of one Service, from its EndpointSlices, each address counted once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Readiness {
    pub ready: u32,
    pub serving: u32,
    pub terminating: u32,
    /// Endpoints not Ready, terminating ones included.
    pub not_ready: u32,
    pub empty: Option<EmptyReason>,
    /// Annotated critical.
    pub critical: bool,
}

/// A nameserver to probe directly, with the bounded `server` label naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsServer {
    pub label: String,
    pub address: SocketAddr,
}

/// A headless Service whose DNS answer must equal its ready endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headless {
    pub service: ObjKey,
    /// `service.namespace.svc.<domain>.`
    pub fqdn: String,
    pub expected: Vec<IpAddr>,
}

/// Everything derived for one node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Derived {
    pub services: Vec<ServiceTarget>,
    pub pods: Vec<PodTarget>,
    pub readiness: BTreeMap<ObjKey, Readiness>,
    /// The Services whose readiness this node exports: one node per Service.
    pub owned: BTreeSet<ObjKey>,
    pub dns_servers: Vec<DnsServer>,
    pub headless: Vec<Headless>,
    pub load_balancers: Vec<LoadBalancerTarget>,
    pub ingresses: Vec<IngressTarget>,
    /// Why a selected Ingress's annotation was not understood, one message each, saying what
    /// is probed meanwhile.
    pub invalid: Vec<String>,
}

/// Derives this node's targets and the readiness of every selected Service.
pub fn derive(stores: &Stores, settings: &Settings, node: &str) -> Derived {
    let slices = slices_by_service(stores);
    let nodes = node_list(stores, node);
    let mut derived = Derived {
        dns_servers: dns_servers(stores, settings, &slices, node, &nodes),
        ..Derived::default()
    };
    for svc in stores.services.values().filter(|s| {
        let namespace = stores.namespace_labels(&s.key.namespace);
        settings.selection.selects(s, namespace)
    }) {
        if svc.address == Address::ExternalName {
            continue;
        }
        let own = slices.get(&svc.key).map(Vec::as_slice).unwrap_or_default();
        let key = svc.key.to_string();
        if rendezvous::chosen(node, &key, &nodes, 1) {
            derived.owned.insert(svc.key.clone());
        }
        derived.readiness.insert(
            svc.key.clone(),
            Readiness {
                critical: svc.critical,
                ..readiness(own)
            },
        );
        let always = settings.selection.always.contains(&svc.key);
        for port in svc.ports.iter().filter(|p| p.tcp) {
            let id = format!("{key}:{}", port.port);
            let chosen = |k| rendezvous::chosen(node, &id, &nodes, k);
            if let Address::ClusterIp(ip) = svc.address {
                let owner = chosen(settings.service_probe_nodes);
                derived.services.push(ServiceTarget {
                    service: svc.key.clone(),
                    id: id.clone(),
                    address: SocketAddr::new(ip, port.port),
                    owner,
                    sweep: !always && !owner,
                });
            }
            if chosen(settings.pod_probe_nodes) {
                derived.pods.push(PodTarget {
                    service: svc.key.clone(),
                    endpoints: ready_endpoints(own, port),
                    id,
                });
            }
        }
        if svc.address == Address::Headless && svc.has_selector() {
            derived
                .headless
                .push(headless(svc, own, &settings.cluster_domain));
        }
    }
    for ing in stores.ingresses.values() {
        if scope::class_selected(&settings.ingress_classes, ing.class.as_deref()) {
            edge(&mut derived, stores, settings, ing, node, &nodes);
        }
    }
    for route in stores.routes.values() {
        for info in gateway::edges(route, &stores.gateways) {
            edge(&mut derived, stores, settings, &info, node, &nodes);
        }
    }
    derived
}

/// The edge targets of one Ingress, or of one HTTPRoute through one parent Gateway, that
/// rendezvous hashing gives this node, if the object is selected.
fn edge(
    derived: &mut Derived,
    stores: &Stores,
    settings: &Settings,
    ing: &IngressInfo,
    node: &str,
    nodes: &[&str],
) {
    let namespace = stores.namespace_labels(&ing.key.namespace);
    if !settings
        .selection
        .selects_ingress(&ing.key, ing.probe_annotation.as_deref(), namespace)
    {
        return;
    }
    let (hosts, requests) = ingress::targets(ing);
    derived.invalid.extend(ing.annotation_errors());
    let mine = |id: &str| rendezvous::chosen(node, id, nodes, settings.edge_probe_nodes);
    derived
        .load_balancers
        .extend(hosts.into_iter().filter(|t| mine(&t.id)));
    derived
        .ingresses
        .extend(requests.into_iter().filter(|t| mine(&t.id)));
}

fn slices_by_service(stores: &Stores) -> HashMap<&ObjKey, Vec<&SliceInfo>> {
    let mut map: HashMap<&ObjKey, Vec<&SliceInfo>> = HashMap::new();
    for slice in stores.slices.values() {
        map.entry(&slice.service).or_default().push(slice);
    }
    for list in map.values_mut() {
        list.sort_by(|a, b| a.key.cmp(&b.key));
    }
    map
}

/// The nodes rendezvous hashing chooses from: the watched Node list, or, when Nodes cannot be
/// listed, the nodes named by endpoints. This node is always on it. An agent whose node the
/// listed Nodes do not name runs outside the DaemonSet (from a laptop, or one agent for the
/// cluster): it has no peers to share with, and takes every item.
fn node_list<'a>(stores: &'a Stores, node: &'a str) -> Vec<&'a str> {
    if !stores.nodes.is_empty() && !stores.nodes.contains(node) {
        return vec![node];
    }
    let mut nodes: BTreeSet<&str> = stores.nodes.iter().map(String::as_str).collect();
    if nodes.is_empty() {
        let named = stores
            .slices
            .values()
            .flat_map(|s| s.endpoints.iter())
            .filter_map(|e| e.node.as_deref());
        nodes.extend(named);
    }
    nodes.insert(node);
    nodes.into_iter().collect()
}

fn readiness(slices: &[&SliceInfo]) -> Readiness {
    let mut seen = BTreeMap::new();
    for e in slices.iter().flat_map(|s| s.endpoints.iter()) {
        seen.entry(e.address).or_insert(e);
    }
    let count =
        |f: fn(&&super::model::Endpoint) -> bool| seen.values().filter(|e| f(e)).count() as u32;
    let mut r = Readiness {
        ready: count(|e| e.ready),
        serving: count(|e| e.serving),
        terminating: count(|e| e.terminating),
        not_ready: count(|e| !e.ready),
        empty: None,
        critical: false,
    };
    if r.ready == 0 {
        r.empty = Some(if seen.is_empty() {
            EmptyReason::NoEndpoints
        } else {
            EmptyReason::NoneReady
        });
    }
    r
}

/// The slice port a Service port maps to: slices name their ports after the Service's.
fn slice_port(slice: &SliceInfo, port: &ServicePort) -> Option<u16> {
    let by_name = slice
        .ports
        .iter()
        .find(|p| p.name == port.name && p.tcp)
        .map(|p| p.port);
    by_name.or(match (&port.target_port, slice.ports.len()) {
        (TargetPort::Number(n), 0) => Some(*n),
        _ => None,
    })
}

/// Every ready endpoint of `port`, each once. A Service port's endpoints go to the same
/// nodes together, so that a node's Pod-hop series name a handful of Services, not one per
/// endpoint it was given.
fn ready_endpoints(slices: &[&SliceInfo], port: &ServicePort) -> Vec<SocketAddr> {
    let mut out = BTreeSet::new();
    for slice in slices {
        let Some(number) = slice_port(slice, port) else {
            continue;
        };
        for e in slice.endpoints.iter().filter(|e| e.ready) {
            out.insert(SocketAddr::new(e.address, number));
        }
    }
    out.into_iter().collect()
}

/// The cluster DNS Service's ClusterIP, labelled with its name, and the ready replicas
/// rendezvous hashing gives this node, labelled with their pod name (or address when the
/// slice names no pod). Like every other endpoint, each replica is queried directly by
/// `pod_probe_nodes` nodes, not by all: its load from hopwatch stays flat as nodes are added,
/// and a CoreDNS rollout brings new series on those nodes only.
fn dns_servers(
    stores: &Stores,
    settings: &Settings,
    slices: &HashMap<&ObjKey, Vec<&SliceInfo>>,
    node: &str,
    nodes: &[&str],
) -> Vec<DnsServer> {
    let mut servers = Vec::new();
    let Some(svc) = stores.services.get(&settings.dns_service) else {
        return servers;
    };
    let dns_port = svc
        .ports
        .iter()
        .find(|p| !p.tcp || p.port == 53)
        .map_or(53, |p| p.port);
    if let Address::ClusterIp(ip) = svc.address {
        servers.push(DnsServer {
            label: svc.key.name.clone(),
            address: SocketAddr::new(ip, dns_port),
        });
    }
    let mut replicas = BTreeMap::new();
    for slice in slices.get(&svc.key).into_iter().flatten() {
        let port = slice
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some("dns") || !p.tcp)
            .map_or(53, |p| p.port);
        let mine = |address: &IpAddr| {
            let item = SocketAddr::new(*address, port).to_string();
            rendezvous::chosen(node, &item, nodes, settings.pod_probe_nodes)
        };
        for e in slice
            .endpoints
            .iter()
            .filter(|e| e.ready && mine(&e.address))
        {
            let label = e
                .pod
                .as_deref()
                .map_or_else(|| e.address.to_string(), str::to_string);
            replicas
                .entry(label)
                .or_insert(SocketAddr::new(e.address, port));
        }
    }
    servers.extend(
        replicas
            .into_iter()
            .map(|(label, address)| DnsServer { label, address }),
    );
    servers
}

fn headless(svc: &ServiceInfo, slices: &[&SliceInfo], domain: &str) -> Headless {
    let expected: BTreeSet<IpAddr> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.ready)
        .map(|e| e.address)
        .collect();
    Headless {
        service: svc.key.clone(),
        fqdn: format!(
            "{}.{}.svc.{}.",
            svc.key.name,
            svc.key.namespace,
            domain.trim_end_matches('.')
        ),
        expected: expected.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{ingress, model};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::Ingress;
    use serde_json::Value;

    /// The stores as the watchers would fill them from `tests/fixtures/discovery/cluster.json`.
    fn stores() -> Stores {
        let list: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/discovery/cluster.json"))
                .unwrap();
        let mut stores = Stores::default();
        for item in list["items"].as_array().unwrap() {
            match item["kind"].as_str().unwrap() {
                "Service" => {
                    let svc: Service = serde_json::from_value(item.clone()).unwrap();
                    let info = model::project_service(&svc, "hopwatch.io/probe").unwrap();
                    stores.services.insert(info.key.clone(), info);
                }
                "EndpointSlice" => {
                    let slice: EndpointSlice = serde_json::from_value(item.clone()).unwrap();
                    let mut names = Stores::default();
                    let info = model::project_slice(&slice, |n| names.intern(n)).unwrap();
                    stores.apply_slice(info);
                }
                "Node" => {
                    stores
                        .nodes
                        .insert(item["metadata"]["name"].as_str().unwrap().to_string());
                }
                "Ingress" => {
                    let ing: Ingress = serde_json::from_value(item.clone()).unwrap();
                    let info = ingress::project(&ing, "hopwatch.io/probe").unwrap();
                    stores.ingresses.insert(info.key.clone(), info);
                }
                other => panic!("unexpected kind {other}"),
            }
        }
        stores
    }

    fn settings(k: usize) -> Settings {
        let mut s = Settings {
            pod_probe_nodes: k,
            ..Settings::default()
        };
        s.selection.exclude_namespaces = vec!["kube-public".to_string()];
        s
    }

    fn key(ns: &str, name: &str) -> ObjKey {
        ObjKey::new(ns, name)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn readiness_counts_each_address_once_and_names_why_a_service_is_empty() {
        let d = derive(&stores(), &settings(3), "node-a");
        let r = |ns, name| d.readiness[&key(ns, name)].clone();
        let web = r("shop", "web");
        assert_eq!(
            (
                web.ready,
                web.serving,
                web.terminating,
                web.not_ready,
                web.empty
            ),
            (3, 4, 1, 1, None)
        );
        assert_eq!(r("shop", "orphan").empty, Some(EmptyReason::NoEndpoints));
        let starting = r("shop", "starting");
        assert_eq!(
            (starting.not_ready, starting.empty),
            (2, Some(EmptyReason::NoneReady))
        );
        assert_eq!(r("kube-system", "kube-dns").ready, 2);
        assert_eq!(
            r("default", "kubernetes").ready,
            1,
            "selectorless Services are counted too"
        );
        let selected: Vec<String> = d.readiness.keys().map(ToString::to_string).collect();
        assert_eq!(
            selected,
            [
                "default/kubernetes",
                "kube-system/kube-dns",
                "shop/db",
                "shop/metrics",
                "shop/orphan",
                "shop/starting",
                "shop/web"
            ],
            "no ExternalName, no opted-out, no excluded namespace"
        );
    }

    #[test]
    fn every_tcp_port_of_a_clusterip_is_a_service_target() {
        let d = derive(&stores(), &settings(3), "node-a");
        let services: Vec<(&str, SocketAddr)> = d
            .services
            .iter()
            .map(|s| (s.id.as_str(), s.address))
            .collect();
        assert_eq!(
            services,
            [
                ("default/kubernetes:443", addr("10.96.0.1:443")),
                ("kube-system/kube-dns:53", addr("10.96.0.10:53")),
                ("shop/orphan:80", addr("10.96.10.2:80")),
                ("shop/starting:80", addr("10.96.10.3:80")),
                ("shop/web:80", addr("10.96.10.1:80")),
            ]
        );
    }

    #[test]
    fn pod_targets_resolve_named_target_ports_and_take_ready_endpoints_only() {
        let d = derive(&stores(), &settings(3), "node-a");
        let web = d.pods.iter().find(|p| p.id == "shop/web:80").unwrap();
        assert_eq!(
            web.endpoints,
            [
                addr("10.244.1.10:8080"),
                addr("10.244.1.11:8080"),
                addr("10.244.2.10:8080")
            ]
        );
        let api = d
            .pods
            .iter()
            .find(|p| p.id == "default/kubernetes:443")
            .unwrap();
        assert_eq!(api.endpoints, [addr("192.0.2.1:6443")]);
        let db = d.pods.iter().find(|p| p.id == "shop/db:5432").unwrap();
        assert_eq!(
            db.endpoints.len(),
            2,
            "headless Services have a Pod hop too"
        );
    }

    #[test]
    fn each_endpoint_is_probed_by_exactly_k_nodes() {
        let stores = stores();
        for k in [1, 2] {
            let mut seen: BTreeMap<SocketAddr, usize> = BTreeMap::new();
            for node in ["node-a", "node-b", "node-c"] {
                for p in derive(&stores, &settings(k), node).pods {
                    for e in p.endpoints {
                        *seen.entry(e).or_default() += 1;
                    }
                }
            }
            assert!(seen.len() >= 7, "{seen:?}");
            assert!(seen.values().all(|n| *n == k), "k={k}: {seen:?}");
        }
    }

    #[test]
    fn each_dns_replica_is_queried_by_exactly_k_nodes() {
        let all = ["node-a", "node-b", "node-c", "node-d", "node-e"];
        for k in 1..=3 {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for node in all {
                let mut s = stores();
                for n in all {
                    s.nodes.insert(n.to_string());
                }
                let d = derive(&s, &settings(k), node);
                assert_eq!(
                    d.dns_servers[0].label, "kube-dns",
                    "the ClusterIP, from every node"
                );
                for server in &d.dns_servers[1..] {
                    *seen.entry(server.label.clone()).or_default() += 1;
                }
            }
            assert_eq!(seen.len(), 2, "k={k}: {seen:?}");
            assert!(seen.values().all(|n| *n == k), "k={k}: {seen:?}");
        }
    }

    #[test]
    fn cluster_dns_servers_are_the_clusterip_and_each_ready_replica() {
        let d = derive(&stores(), &settings(3), "node-a");
        let servers: Vec<(&str, SocketAddr)> = d
            .dns_servers
            .iter()
            .map(|s| (s.label.as_str(), s.address))
            .collect();
        assert_eq!(
            servers,
            [
                ("kube-dns", addr("10.96.0.10:53")),
                ("coredns-5d78-aaaaa", addr("10.244.1.5:53")),
                ("coredns-5d78-bbbbb", addr("10.244.2.5:53")),
            ]
        );
    }

    #[test]
    fn headless_services_expect_their_ready_endpoints_in_dns() {
        let settings = Settings {
            cluster_domain: "cluster.lab".to_string(),
            ..settings(3)
        };
        let d = derive(&stores(), &settings, "node-a");
        assert_eq!(d.headless.len(), 1);
        assert_eq!(d.headless[0].fqdn, "db.shop.svc.cluster.lab.");
        let expected: Vec<IpAddr> = ["10.244.1.30", "10.244.2.30"]
            .map(|a| a.parse().unwrap())
            .to_vec();
        assert_eq!(d.headless[0].expected, expected);
    }

    #[test]
    fn ingresses_give_edge_targets() {
        let d = derive(&stores(), &settings(3), "node-a");
        assert_eq!(d.load_balancers.len(), 1);
        assert_eq!(d.load_balancers[0].id, "shop/front/shop.example.com");
        assert_eq!(d.ingresses[0].url, "https://shop.example.com/");
        assert_eq!(d.ingresses[0].backend, Some(key("shop", "web")));
    }

    /// A Gateway and an HTTPRoute to `shop/web`, as the watchers would store them.
    fn with_route(mut stores: Stores, route_annotations: Value) -> Stores {
        use crate::discovery::gateway::{self, Gateway, HttpRoute};
        let gw: Gateway = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "infra", "name": "edge"},
            "spec": {"listeners": [{"name": "https", "port": 443, "protocol": "HTTPS"}]},
            "status": {"addresses": [{"type": "IPAddress", "value": "203.0.113.20"}]}
        }))
        .unwrap();
        let route: HttpRoute = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "shop", "name": "front", "annotations": route_annotations},
            "spec": {
                "parentRefs": [{"name": "edge", "namespace": "infra"}],
                "hostnames": ["route.example.com"],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/cart"}}],
                           "backendRefs": [{"name": "web", "port": 80}]}]
            }
        }))
        .unwrap();
        let gw = gateway::project_gateway(&gw).unwrap();
        stores.gateways.insert(gw.key.clone(), gw);
        let route = gateway::project_route(&route, "hopwatch.io/probe").unwrap();
        stores.routes.insert(route.key.clone(), route);
        stores
    }

    #[test]
    fn httproutes_give_edge_targets_as_ingresses_do() {
        let d = derive(
            &with_route(stores(), serde_json::json!({})),
            &settings(3),
            "node-a",
        );
        let route = d
            .ingresses
            .iter()
            .find(|t| t.id == "shop/httproute:front/route.example.com/cart")
            .unwrap();
        assert_eq!(route.url, "https://route.example.com/cart");
        assert_eq!(route.dial, Some("203.0.113.20".parse().unwrap()));
        assert_eq!(route.backend, Some(key("shop", "web")));
        assert!(
            d.load_balancers
                .iter()
                .any(|l| l.id == "shop/httproute:front/route.example.com" && l.port == 443)
        );
        let opted_out = derive(
            &with_route(stores(), serde_json::json!({"hopwatch.io/probe": "false"})),
            &settings(3),
            "node-a",
        );
        assert!(
            opted_out
                .ingresses
                .iter()
                .all(|t| !t.id.contains("httproute")),
            "the annotation opts a route out as it does an Ingress"
        );
    }

    #[test]
    fn each_httproute_target_is_held_by_exactly_edge_probe_nodes() {
        let stores = with_route(stores(), serde_json::json!({}));
        for k in [1, 2] {
            let settings = Settings {
                edge_probe_nodes: k,
                ..settings(3)
            };
            let held: usize = ["node-a", "node-b", "node-c"]
                .iter()
                .map(|n| derive(&stores, &settings, n))
                .map(|d| {
                    let routes = d.ingresses.iter().filter(|t| t.id.contains("httproute:"));
                    let lbs = d
                        .load_balancers
                        .iter()
                        .filter(|t| t.id.contains("httproute:"));
                    routes.count() + lbs.count()
                })
                .sum();
            assert_eq!(held, 2 * k, "one path and its host, k={k}");
        }
    }

    /// Over the three nodes: each Service port is timed every interval by exactly
    /// `service_probe_nodes` nodes and reached by the others in the sweep, but the `always`
    /// Services never are; each Service's readiness has exactly one owner; each edge target
    /// is held by exactly `edge_probe_nodes` nodes.
    #[test]
    fn every_item_is_shared_out_to_exactly_its_k_nodes() {
        let stores = stores();
        let nodes = ["node-a", "node-b", "node-c"];
        for k in [1, 2] {
            let settings = Settings {
                service_probe_nodes: k,
                edge_probe_nodes: k,
                ..settings(3)
            };
            let all: Vec<Derived> = nodes
                .iter()
                .map(|n| derive(&stores, &settings, n))
                .collect();
            let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
            for d in &all {
                assert_eq!(
                    d.services.len(),
                    all[0].services.len(),
                    "every node, every port"
                );
                for s in &d.services {
                    *owners.entry(&s.id).or_default() += usize::from(s.owner);
                    let always = settings.selection.always.contains(&s.service);
                    assert_eq!(s.sweep, !always && !s.owner, "{}", s.id);
                }
            }
            assert!(owners.values().all(|n| *n == k), "k={k}: {owners:?}");
            for svc in all[0].readiness.keys() {
                let held = all.iter().filter(|d| d.owned.contains(svc)).count();
                assert_eq!(held, 1, "{svc}");
            }
            let edge: usize = all
                .iter()
                .map(|d| d.ingresses.len() + d.load_balancers.len())
                .sum();
            assert_eq!(edge, 2 * k, "one rule and its load balancer, k={k}");
        }
    }

    /// An agent whose node the Node list does not name runs outside the DaemonSet: nobody
    /// shares its work, so it takes every item.
    #[test]
    fn an_agent_outside_the_node_list_takes_every_item() {
        let one = Settings {
            service_probe_nodes: 1,
            pod_probe_nodes: 1,
            edge_probe_nodes: 1,
            ..settings(1)
        };
        let d = derive(&stores(), &one, "laptop");
        assert!(d.services.iter().all(|s| s.owner && !s.sweep));
        assert_eq!(d.owned.len(), d.readiness.len());
        assert_eq!(d.ingresses.len() + d.load_balancers.len(), 2);
        // As many Pod targets as a node of the three gets with pod_probe_nodes 3: all of them.
        assert_eq!(d.pods, derive(&stores(), &settings(3), "node-a").pods);
    }
}
