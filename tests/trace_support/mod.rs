//! A small cluster for `hopwatch trace` to walk, built from real parts on loopback:
//!
//! - the fake Kubernetes API server (`fakeapi_support`) holding the Service `shop/web`, its
//!   EndpointSlice, two pods and the Ingress `shop/front`;
//! - TCP listeners on loopback addresses of their own standing in for the ClusterIP (what
//!   kube-proxy would accept) and the two pod IPs;
//! - Knot (`support::knot`) serving the public names (`*.example.test` → the load balancer,
//!   127.0.0.1) and the cluster names (`web.shop.svc.cluster.local` → the ClusterIP);
//! - nginx with TLS (`nginx_support`) as the Ingress controller behind the load balancer.
//!
//! With `Spec::netpol`, also the debugging method's NetworkPolicies ([`netpol`]): `shop/db`
//! behind deny-all, the cluster DNS in `kube-system`, and a namespace whose DNS egress is
//! blocked.
//!
//! [`Spec`] says what to break. [`Forbid`] sits between the trace and the API server and
//! answers 403 for one resource, as RBAC would: the fake API server has no RBAC.
//! Everything is stopped and removed on drop, also when a test fails.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fakeapi_support::FakeApi;
use crate::nginx_support::{self, Lab};
use crate::support::knot::{Knot, Zone};
use crate::support::process::output_within;
use crate::support::{TempDir, loopback_ip};

pub mod netpol;

/// The search list of a pod in namespace `shop`, with one-second single tries so a dead
/// server costs seconds, not minutes.
pub const RESOLV_CONF: &str = "nameserver 127.0.0.1\n\
    search shop.svc.cluster.local svc.cluster.local cluster.local\n\
    options ndots:5 timeout:1 attempts:1\n";

/// What the test cluster looks like; `Spec::default()` is a healthy path.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The Ingress rule's host: one of nginx_support's names, whose certificate it serves.
    pub host: &'static str,
    /// The Ingress rule's path (`Prefix`).
    pub rule_path: &'static str,
    /// The Service's selector value for `app`.
    pub selector_app: &'static str,
    /// The pods' `app` label.
    pub pod_app: &'static str,
    pub pods_ready: bool,
    /// The Service's targetPort is a port the pods neither listen on nor declare.
    pub wrong_target_port: bool,
    /// The EndpointSlice exists (the endpointslice controller made one).
    pub slice: bool,
    /// Something accepts on the ClusterIP (kube-proxy with endpoints) or refuses (without).
    pub cluster_ip_accepts: bool,
    /// The public name answers a pod's IP instead of the load balancer's.
    pub dns_points_at_pod: bool,
    /// The NetworkPolicy scenario's objects too ([`netpol`]).
    pub netpol: bool,
    /// With `netpol`: something accepts on `shop/db`'s ClusterIP and pod (else both refuse).
    pub db_accepts: bool,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            host: nginx_support::OK,
            rule_path: "/api",
            selector_app: "web",
            pod_app: "web",
            pods_ready: true,
            wrong_target_port: false,
            slice: true,
            cluster_ip_accepts: true,
            dns_points_at_pod: false,
            netpol: false,
            db_accepts: true,
        }
    }
}

/// A running test cluster. Fields drop in order; listeners and sockets close last.
pub struct Scene {
    pub fake: FakeApi,
    pub knot: Knot,
    pub nginx: Lab,
    pub dir: TempDir,
    pub resolv_conf: PathBuf,
    /// The ClusterIP and Service port.
    pub cluster_ip: SocketAddr,
    /// The pods' IPs, `web-1` then `web-2`.
    pub pod_ips: [Ipv4Addr; 2],
    /// The port the pods listen on and declare.
    pub pod_port: u16,
    /// The Service's targetPort.
    pub target_port: u16,
    /// With `Spec::netpol`: the pods' addresses.
    pub netpol: Option<netpol::Addresses>,
    _listeners: Vec<TcpListener>,
    _bound: Vec<tokio::net::TcpSocket>,
}

impl Scene {
    /// Starts nginx, Knot and the fake API server, and the listeners `spec` asks for.
    pub fn start(spec: &Spec) -> Scene {
        let nginx = Lab::start();
        let dir = TempDir::new("trace");
        let pod_ips = [loopback_ip(), loopback_ip()];
        let (pod_listeners, pod_port) = listen_on_both(pod_ips);
        let mut bound = Vec::new();
        let target_port = if spec.wrong_target_port {
            let (sockets, port) = bind_on_both(pod_ips);
            bound.extend(sockets);
            port
        } else {
            pod_port
        };
        let cip = loopback_ip();
        let mut listeners = pod_listeners;
        let cluster_ip = if spec.cluster_ip_accepts {
            let l = TcpListener::bind((cip, 0)).expect("bind the ClusterIP listener");
            let addr = l.local_addr().expect("address");
            listeners.push(l);
            addr
        } else {
            let s = bind_closed(cip, 0).expect("bind the ClusterIP");
            let addr = s.local_addr().expect("address");
            bound.push(s);
            addr
        };
        let answer: IpAddr = if spec.dns_points_at_pod {
            pod_ips[0].into()
        } else {
            [127, 0, 0, 1].into()
        };
        let scenario = spec
            .netpol
            .then(|| netpol::Addresses::bind(spec.db_accepts, &mut listeners, &mut bound));
        let knot = Knot::with_zones(&zones(answer, cluster_ip.ip(), scenario.as_ref()));
        let mut objects = objects(spec, cluster_ip, pod_ips, pod_port, target_port);
        if let (Some(a), Some(items)) = (&scenario, objects["items"].as_array_mut()) {
            items.extend(netpol::objects(a));
        }
        let fake = FakeApi::builder().fixtures(objects).arg("--quiet").start();
        let resolv_conf = dir.file("resolv.conf", RESOLV_CONF);
        Scene {
            fake,
            knot,
            nginx,
            dir,
            resolv_conf,
            cluster_ip,
            pod_ips,
            pod_port,
            target_port,
            netpol: scenario,
            _listeners: listeners,
            _bound: bound,
        }
    }

    /// `https://HOST:PORT/PATH` through nginx's HTTPS port.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.nginx.https.port())
    }

    /// The trace's arguments: kubeconfig, resolv.conf, Knot, the lab's CA, short timeouts.
    pub fn args(&self, target: &str, kubeconfig: &std::path::Path) -> Vec<String> {
        [
            "trace",
            target,
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--resolv-conf",
            &self.resolv_conf.display().to_string(),
            "--server",
            &self.knot.addr().to_string(),
            "--ca-file",
            &self.nginx.ca_file.display().to_string(),
            "--timeout-seconds",
            "3",
        ]
        .map(str::to_string)
        .to_vec()
    }
}

/// Runs `hopwatch ARGS`: exit status, stdout, stderr. Fails the test after 60 s.
pub fn hopwatch(args: &[String]) -> (i32, String, String) {
    hopwatch_in_pod(args, &[])
}

/// Runs `hopwatch ARGS` with the downward API's variables `env` (`POD_NAMESPACE`, `POD_IP`,
/// `HOPWATCH_POD_LABELS_FILE`), as inside a pod; none of them without.
pub fn hopwatch_in_pod(args: &[String], env: &[(&str, String)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hopwatch"));
    command.args(args).env("RUST_LOG", "warn");
    for name in [
        "POD_NAMESPACE",
        "POD_IP",
        "POD_NAME",
        "HOPWATCH_POD_LABELS_FILE",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let out = output_within(command, Duration::from_secs(60));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the trace with `--json`: exit status and the parsed object.
pub fn trace_json(args: Vec<String>) -> (i32, Value) {
    trace_json_in_pod(args, &[])
}

/// [`trace_json`] with the downward API's variables, as [`hopwatch_in_pod`].
pub fn trace_json_in_pod(mut args: Vec<String>, env: &[(&str, String)]) -> (i32, Value) {
    args.push("--json".to_string());
    let (code, stdout, stderr) = hopwatch_in_pod(&args, env);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    (code, json)
}

/// The hop named `name` of a `--json` trace.
pub fn hop<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["hops"]
        .as_array()
        .and_then(|hops| hops.iter().find(|h| h["name"] == name))
        .unwrap_or_else(|| panic!("no hop {name} in {trace:#}"))
}

/// The hop names and statuses in order: `[("dns", "ok"), …]`.
pub fn statuses(trace: &Value) -> Vec<(String, String)> {
    trace["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap_or("").to_string(),
                h["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Listeners on the same free port of both addresses.
fn listen_on_both(ips: [Ipv4Addr; 2]) -> (Vec<TcpListener>, u16) {
    for _ in 0..50 {
        let first = TcpListener::bind((ips[0], 0)).expect("bind a pod listener");
        let port = first.local_addr().expect("address").port();
        if let Ok(second) = TcpListener::bind((ips[1], port)) {
            return (vec![first, second], port);
        }
    }
    panic!("no port free on both {} and {}", ips[0], ips[1]);
}

/// Sockets bound, not listening, on the same port of both addresses: connects are refused.
fn bind_on_both(ips: [Ipv4Addr; 2]) -> (Vec<tokio::net::TcpSocket>, u16) {
    for _ in 0..50 {
        let first = bind_closed(ips[0], 0).expect("bind a closed port");
        let port = first.local_addr().expect("address").port();
        if let Ok(second) = bind_closed(ips[1], port) {
            return (vec![first, second], port);
        }
    }
    panic!("no port free on both {} and {}", ips[0], ips[1]);
}

pub fn bind_closed(ip: Ipv4Addr, port: u16) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((ip, port)))?;
    Ok(socket)
}

fn zones(answer: IpAddr, cluster_ip: IpAddr, scenario: Option<&netpol::Addresses>) -> Vec<Zone> {
    let db = scenario.map_or(String::new(), |a| {
        format!("db.shop.svc A {}\n", a.db_cluster_ip)
    });
    let public = format!(
        "$ORIGIN example.test.\n$TTL 30\n\
         @ SOA ns.example.test. hostmaster.example.test. 1 7200 1800 86400 5\n\
         @ NS ns.example.test.\nns A 127.0.0.1\n\
         ok A {answer}\nexpired A 127.0.0.1\nnobody A 127.0.0.1\n"
    );
    let cluster = format!(
        "$ORIGIN cluster.local.\n$TTL 30\n\
         @ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5\n\
         @ NS ns.dns.cluster.local.\nns.dns A 10.96.0.10\n\
         web.shop.svc A {cluster_ip}\n{db}"
    );
    vec![
        Zone::new("example.test", &public),
        Zone::new("cluster.local", &cluster),
    ]
}

/// The Service, its EndpointSlice, two pods and the Ingress, as the API server holds them.
fn objects(
    spec: &Spec,
    cluster_ip: SocketAddr,
    pod_ips: [Ipv4Addr; 2],
    pod_port: u16,
    target_port: u16,
) -> Value {
    let mut items = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip.ip().to_string(),
                     "clusterIPs": [cluster_ip.ip().to_string()],
                     "selector": {"app": spec.selector_app},
                     "ports": [{"name": "http", "protocol": "TCP", "port": cluster_ip.port(), "targetPort": target_port}]}
        }),
        ingress(spec, cluster_ip.port()),
    ];
    for (i, ip) in pod_ips.iter().enumerate() {
        items.push(pod(&format!("web-{}", i + 1), spec, *ip, pod_port));
    }
    if spec.slice {
        items.push(slice(spec, pod_ips, target_port));
    }
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

fn pod(name: &str, spec: &Spec, ip: Ipv4Addr, port: u16) -> Value {
    let ready = if spec.pods_ready { "True" } else { "False" };
    let mut condition = json!({"type": "Ready", "status": ready});
    if !spec.pods_ready {
        condition["reason"] = json!("ContainersNotReady");
        condition["message"] = json!("containers with unready status: [web]");
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": "shop", "name": name, "labels": {"app": spec.pod_app}},
        "spec": {"containers": [{"name": "web", "image": "web:1",
                                 "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}],
                   "conditions": [condition]}
    })
}

fn slice(spec: &Spec, pod_ips: [Ipv4Addr; 2], port: u16) -> Value {
    let endpoints: Vec<Value> = pod_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            json!({"addresses": [ip.to_string()],
                   "conditions": {"ready": spec.pods_ready, "serving": spec.pods_ready, "terminating": false},
                   "targetRef": {"kind": "Pod", "namespace": "shop", "name": format!("web-{}", i + 1)}})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "shop", "name": "web-abcde",
                     "labels": {"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}

fn ingress(spec: &Spec, service_port: u16) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": "shop", "name": "front"},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [spec.host], "secretName": "front-tls"}],
            "rules": [{"host": spec.host, "http": {"paths": [
                {"path": spec.rule_path, "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": service_port}}}}
            ]}}]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
    })
}

/// A proxy in front of the API server that answers 403 Forbidden, as RBAC would, to every
/// request for one resource, and passes the rest through. Stopped on drop.
pub struct Forbid {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// A kubeconfig pointing at the proxy instead of the API server.
    pub kubeconfig: PathBuf,
}

impl Forbid {
    /// Forbids `resource` (a plural, e.g. `endpointslices`) on the way to `fake`.
    pub fn start(fake: &FakeApi, resource: &'static str, dir: &TempDir) -> Forbid {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("address");
        let upstream = fake.addr().to_string();
        let text = std::fs::read_to_string(fake.kubeconfig()).expect("read the kubeconfig");
        let rewritten = text.replace(&format!("http://{upstream}"), &format!("http://{addr}"));
        assert_ne!(
            text, rewritten,
            "the kubeconfig does not name http://{upstream}"
        );
        let kubeconfig = dir.file("forbid.kubeconfig", &rewritten);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    let upstream = upstream.clone();
                    std::thread::spawn(move || relay(conn, &upstream, resource));
                }
            }
        });
        Forbid {
            addr,
            stop,
            thread: Some(thread),
            kubeconfig,
        }
    }
}

impl Drop for Forbid {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request: 403 for the forbidden resource, else forwarded with `Connection: close` so
/// that every request comes through here on its own connection.
fn relay(mut client: TcpStream, upstream: &str, resource: &str) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(head) = read_head(&mut client) else {
        return;
    };
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let route = path.split('?').next().unwrap_or("");
    if route.split('/').any(|segment| segment == resource) {
        let _ = client.write_all(forbidden(resource, &path).as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = server.set_read_timeout(Some(Duration::from_secs(10)));
    if server.write_all(closing(&head).as_bytes()).is_err() {
        return;
    }
    // The response says `Connection: close` too, or the client would pool the connection.
    if let Some(response) = read_head(&mut server)
        && client.write_all(closing(&response).as_bytes()).is_ok()
    {
        let _ = std::io::copy(&mut server, &mut client);
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// A message head with its `Connection` headers replaced by `Connection: close`.
fn closing(head: &str) -> String {
    let lines: String = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:") && !line.is_empty())
        .map(|line| format!("{line}\r\n"))
        .collect();
    format!("{lines}Connection: close\r\n\r\n")
}

fn read_head(conn: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    String::from_utf8(buf).ok()
}

/// The apiserver's 403 for a list by a service account without the RBAC to do it.
fn forbidden(resource: &str, path: &str) -> String {
    let ns = path
        .split("/namespaces/")
        .nth(1)
        .and_then(|rest| rest.split('/').next());
    let scope = match ns {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let group = if resource == "endpointslices" {
        "discovery.k8s.io"
    } else {
        ""
    };
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{qualified} is forbidden: User \"system:serviceaccount:default:hopwatch\" cannot list resource \"{resource}\" in API group \"{group}\" {scope}"),
        "reason": "Forbidden", "details": {"group": group, "kind": resource}, "code": 403
    })
    .to_string();
    format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
