//! A cluster on loopback for the Kubernetes discovery tests: the fake API server holding the
//! objects, real TCP listeners at the ClusterIPs and pod IPs those objects name, a cluster DNS
//! server at the kube-dns ClusterIP and replica, and `hopwatch run` as a child process pointed
//! at all of it.
//!
//! Every test gets a /24 of 127.0.0.0/8 of its own ([`Net`]), so tests run in parallel without
//! sharing an address, and every port is picked free at bind time. Nothing needs root.
//!
//! - [`objects`]: Service, EndpointSlice and Node manifests.
//! - [`listen`]: TCP listeners that count connections and refuse them once dropped.
//! - [`dns`]: the cluster DNS server.
//! - [`Agent`]: the agent under test; the functions of `series` read its scrapes.

mod agent;
pub mod dns;
pub mod listen;
pub mod objects;
mod series;

pub use agent::{Agent, AgentOptions};
pub use series::{lines_naming, of_service, path_status, probes, series_set, verdict_is};

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use serde_json::Value;

use crate::fakeapi_support::{FakeApi, FakeApiBuilder};
use crate::support::TempDir;
use dns::DnsServer;
use listen::Listener;
use objects::{Service, Slice};

/// The nodes of every test cluster.
pub const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// The pod resolv.conf kubelet writes for a pod in namespace `shop`. Its nameserver is never
/// used by the cluster lookups, which go to the kube-dns ClusterIP and replicas; the edge hops
/// resolve public names with it (see [`AgentOptions::public_nameserver`]).
const RESOLV_CONF: &str = "nameserver 127.0.0.1\n\
     search shop.svc.cluster.local svc.cluster.local cluster.local\n\
     options ndots:5 attempts:1 timeout:1\n";

/// The name every agent looks up through the cluster DNS.
pub const DNS_NAME: &str = "kubernetes.default";

/// A /24 of the loopback network owned by one test: `127.A.B.0/24`.
#[derive(Debug, Clone, Copy)]
pub struct Net([u8; 2]);

impl Net {
    /// A fresh /24, distinct from every other one this process hands out and, through the
    /// process id, most likely from those of another test process running at the same time.
    pub fn new() -> Net {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id() as usize;
        Net([(100 + pid % 100) as u8, (1 + n % 250) as u8])
    }

    /// `127.A.B.host`.
    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.0[0], self.0[1], host)
    }
}

/// A Service whose ClusterIP and endpoints are real listeners.
pub struct Backend {
    pub service: Service,
    pub slice: Slice,
    /// The listener at the ClusterIP; `None` for a headless Service, or to make the ClusterIP
    /// refuse connections as a node whose kube-proxy lost the Service's rules would.
    pub vip: Option<Listener>,
    /// One listener per endpoint, in endpoint order.
    pub pods: Vec<Listener>,
    /// The Service port, which is also the port of the ClusterIP listener.
    pub port: u16,
}

impl Backend {
    /// `namespace/name` at ClusterIP `.vip_host`, with a ready endpoint at each of
    /// `.pod_hosts`, spread over the nodes.
    pub fn new(net: &Net, namespace: &str, name: &str, vip_host: u8, pod_hosts: &[u8]) -> Backend {
        let vip = Listener::on(net.ip(vip_host), 0);
        let service = Service::cluster_ip(namespace, name, net.ip(vip_host));
        Backend::with(net, service, Some(vip), pod_hosts)
    }

    /// A headless `namespace/name` with a ready endpoint at each of `.pod_hosts`.
    pub fn headless(net: &Net, namespace: &str, name: &str, pod_hosts: &[u8]) -> Backend {
        Backend::with(net, Service::headless(namespace, name), None, pod_hosts)
    }

    fn with(net: &Net, service: Service, vip: Option<Listener>, pod_hosts: &[u8]) -> Backend {
        assert!(!pod_hosts.is_empty(), "a Backend has at least one pod");
        let ips: Vec<Ipv4Addr> = pod_hosts.iter().map(|h| net.ip(*h)).collect();
        let pods = listen::same_port(&ips);
        let target_port = pods[0].port();
        let port = vip.as_ref().map_or(target_port, Listener::port);
        let name = service.name.clone();
        let mut slice = Slice::new(&service.namespace, &format!("{name}-abcde"), &name)
            .port("http", target_port);
        for (i, ip) in ips.iter().enumerate() {
            slice = slice.endpoint(*ip, true, NODES[i % NODES.len()]);
        }
        Backend {
            service: service.port("http", port, target_port),
            slice,
            vip,
            pods,
            port,
        }
    }

    /// The `target` label of its Service and Pod hops: `namespace/name:port`.
    pub fn target(&self) -> String {
        format!(
            "{}/{}:{}",
            self.service.namespace, self.service.name, self.port
        )
    }

    /// The Service and its slice, to load into the fake API.
    pub fn objects(&self) -> Vec<Value> {
        vec![self.service.json(), self.slice.json()]
    }

    /// Creates the Service and its slice through the API.
    pub fn create(&self, fake: &FakeApi) {
        fake.create(&self.service.collection(), &self.service.json());
        fake.create(&self.slice.collection(), &self.slice.json());
    }
}

/// The fake API server with the objects every cluster has (three Nodes, `kube-system/kube-dns`
/// and `default/kubernetes`, each backed by listeners), and the cluster DNS server.
pub struct Cluster {
    pub net: Net,
    pub fake: FakeApi,
    pub dns: DnsServer,
    _dir: TempDir,
    resolv_conf: PathBuf,
    _listeners: Vec<Listener>,
    next_agent: AtomicU8,
}

impl Cluster {
    /// A cluster holding `objects` besides the standard ones, loaded before the API listens.
    pub fn start(net: Net, objects: Vec<Value>) -> Cluster {
        Cluster::start_with(net, objects, FakeApi::builder())
    }

    /// As [`Cluster::start`], with the fake API server configured by `builder`.
    pub fn start_with(net: Net, objects: Vec<Value>, builder: FakeApiBuilder) -> Cluster {
        let (dns_port, dns_tcp) = dns_listeners(&net);
        let dns = DnsServer::start(&[
            SocketAddr::from((net.ip(53), dns_port)),
            SocketAddr::from((net.ip(54), dns_port)),
        ]);
        let api_vip = Listener::on(net.ip(10), 0);
        let api_pod = Listener::on(net.ip(9), 0);
        dns.set(&format!("{DNS_NAME}.svc.cluster.local."), &[net.ip(10)]);
        dns.set("kube-dns.kube-system.svc.cluster.local.", &[net.ip(53)]);
        let mut items: Vec<Value> = NODES.iter().map(|n| objects::node(n)).collect();
        items.extend(kube_dns(&net, dns_port));
        items.extend(kubernetes(&net, api_vip.port(), api_pod.port()));
        items.extend(objects);
        let fake = builder.fixtures(objects::list(items)).start();
        let dir = TempDir::new("kube");
        let resolv_conf = dir.file("resolv.conf", RESOLV_CONF);
        let mut listeners = dns_tcp;
        listeners.extend([api_vip, api_pod]);
        Cluster {
            net,
            fake,
            dns,
            _dir: dir,
            resolv_conf,
            _listeners: listeners,
            next_agent: AtomicU8::new(2),
        }
    }

    /// A fresh loopback address for an agent's HTTP server.
    fn agent_ip(&self) -> Ipv4Addr {
        self.net.ip(self.next_agent.fetch_add(1, Ordering::Relaxed))
    }
}

/// A port free for UDP and TCP on both kube-dns addresses (`.53`, the ClusterIP, and `.54`,
/// the replica), with the TCP listeners for the Service's `dns-tcp` port.
fn dns_listeners(net: &Net) -> (u16, Vec<Listener>) {
    for _ in 0..20 {
        let port = UdpSocket::bind((net.ip(53), 0))
            .and_then(|s| s.local_addr())
            .expect("bind a UDP socket on loopback")
            .port();
        let tcp: Result<Vec<Listener>, _> = [53, 54]
            .iter()
            .map(|h| Listener::bind(net.ip(*h), port))
            .collect();
        let udp_free = UdpSocket::bind((net.ip(54), port)).is_ok();
        if let (Ok(tcp), true) = (tcp, udp_free) {
            return (port, tcp);
        }
    }
    panic!("no port free for DNS on {} and {}", net.ip(53), net.ip(54));
}

/// `kube-system/kube-dns`: ClusterIP `.53`, one CoreDNS replica at `.54`.
fn kube_dns(net: &Net, port: u16) -> Vec<Value> {
    let service = Service::cluster_ip("kube-system", "kube-dns", net.ip(53))
        .udp_port("dns", port, port)
        .port("dns-tcp", port, port)
        .label("k8s-app", "kube-dns");
    let slice = Slice::new("kube-system", "kube-dns-x7k2p", "kube-dns")
        .udp_port("dns", port)
        .port("dns-tcp", port)
        .endpoint(net.ip(54), true, NODES[0]);
    vec![service.json(), slice.json()]
}

/// `default/kubernetes`: ClusterIP `.10`, the API server's endpoint at `.9`, no selector.
fn kubernetes(net: &Net, port: u16, target_port: u16) -> Vec<Value> {
    let service = Service::cluster_ip("default", "kubernetes", net.ip(10))
        .port("https", port, target_port)
        .without_selector();
    let slice = Slice::new("default", "kubernetes", "kubernetes")
        .port("https", target_port)
        .endpoint(net.ip(9), true, NODES[0]);
    vec![service.json(), slice.json()]
}
