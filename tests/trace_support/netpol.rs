//! The NetworkPolicy scenario of the debugging method, as objects for the fake API server:
//!
//! - in `shop`: the Service `db` (port 8080, selecting `app=db`) with its pod `db-1` and
//!   EndpointSlice, the pod `api-1` (`app=api`), and the policies `default-deny-ingress`
//!   (`podSelector: {}`, `policyTypes: [Ingress]`) and `allow-api-to-db` (`app=db` accepts
//!   `app=api` on TCP 8080); `web-1` (`app=web`) is the base scene's;
//! - in `kube-system`: the cluster DNS, Service `kube-dns` (53/UDP `dns`, 53/TCP `dns-tcp`)
//!   and its pod `coredns-1`, declaring the ports by those names;
//! - in `blocked`: the pod `app-1` and `deny-dns-egress`, an egress policy that allows TCP 443
//!   and nothing else.
//!
//! The pods' addresses are loopback addresses of their own. `db-1` and `db`'s ClusterIP listen
//! on 8080 when the scene asks (else they refuse); the others only need an IP.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use serde_json::{Value, json};

use super::bind_closed;
use crate::support::loopback_ip;

/// The port of `db`, its pod and the policy's rule.
pub const DB_PORT: u16 = 8080;

/// The scenario's pod IPs and `db`'s ClusterIP.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub db_cluster_ip: Ipv4Addr,
    pub db: Ipv4Addr,
    pub api: Ipv4Addr,
    pub coredns: Ipv4Addr,
    pub app: Ipv4Addr,
}

impl Addresses {
    /// New addresses; `db`'s ClusterIP and pod accept on [`DB_PORT`] or refuse.
    pub fn bind(
        accept: bool,
        listeners: &mut Vec<TcpListener>,
        bound: &mut Vec<tokio::net::TcpSocket>,
    ) -> Addresses {
        let a = Addresses {
            db_cluster_ip: loopback_ip(),
            db: loopback_ip(),
            api: loopback_ip(),
            coredns: loopback_ip(),
            app: loopback_ip(),
        };
        for ip in [a.db_cluster_ip, a.db] {
            let addr = SocketAddr::from((ip, DB_PORT));
            if accept {
                listeners.push(TcpListener::bind(addr).expect("listen on db's port 8080"));
            } else {
                bound.push(bind_closed(ip, DB_PORT).expect("bind db's port 8080"));
            }
        }
        a
    }
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn pod(ns: &str, name: &str, labels: Value, ip: Ipv4Addr, ports: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "x:1", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}],
                   "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

fn policy(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"namespace": ns, "name": name}, "spec": spec})
}

/// Every object of the scenario.
pub fn objects(a: &Addresses) -> Vec<Value> {
    let http = json!([{"name": "http", "containerPort": DB_PORT, "protocol": "TCP"}]);
    let dns_ports = json!([{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                           {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]);
    vec![
        namespace("kube-system"),
        namespace("blocked"),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "shop", "name": "db"},
            "spec": {"type": "ClusterIP", "clusterIP": a.db_cluster_ip.to_string(),
                     "clusterIPs": [a.db_cluster_ip.to_string()], "selector": {"app": "db"},
                     "ports": [{"name": "http", "protocol": "TCP", "port": DB_PORT, "targetPort": DB_PORT}]}
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "shop", "name": "db-abcde",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": DB_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a.db.to_string()],
                           "conditions": {"ready": true, "serving": true, "terminating": false},
                           "targetRef": {"kind": "Pod", "namespace": "shop", "name": "db-1"}}]
        }),
        pod("shop", "db-1", json!({"app": "db"}), a.db, http.clone()),
        pod("shop", "api-1", json!({"app": "api"}), a.api, json!([])),
        policy(
            "shop",
            "default-deny-ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        policy(
            "shop",
            "allow-api-to-db",
            json!({"podSelector": {"matchLabels": {"app": "db"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                                "ports": [{"protocol": "TCP", "port": DB_PORT}]}]}),
        ),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "kube-system", "name": "kube-dns"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "selector": {"k8s-app": "kube-dns"},
                     "ports": [{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53},
                               {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 53}]}
        }),
        pod(
            "kube-system",
            "coredns-1",
            json!({"k8s-app": "kube-dns"}),
            a.coredns,
            dns_ports,
        ),
        pod("blocked", "app-1", json!({"app": "app"}), a.app, json!([])),
        policy(
            "blocked",
            "deny-dns-egress",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
                   "egress": [{"ports": [{"protocol": "TCP", "port": 443}]}]}),
        ),
    ]
}
