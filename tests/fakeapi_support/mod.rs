//! Test guard for the fake Kubernetes API server (`tests/fakeapi/fake_apiserver.py`).
//!
//! [`FakeApi`] starts the server on a free loopback port, writes a kubeconfig for it in a private
//! temp dir, and gives tests a small blocking HTTP/1.1 client (plain or TLS) for writes, raw
//! watches and the `/_fake/` fault-injection endpoints. Dropping it kills the process by PID and
//! removes the temp dir, also when the test panics (the server log is printed then). A test
//! binary that loads this module loads `support` too (for its `TempDir`).

#![allow(dead_code)] // shared by several test binaries; each uses a subset

mod wire;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::support::TempDir;
use wire::{Conn, Wire, header};
pub use wire::{WatchEnd, WatchItem, WatchStream};

/// The server script, located relative to the crate so tests work from any cwd.
pub const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fakeapi/fake_apiserver.py"
);
/// The synthetic cluster generator next to it.
pub const GENERATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fakeapi/gen_cluster.py");

const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start the fake apiserver.
#[derive(Default)]
pub struct FakeApiBuilder {
    args: Vec<String>,
    fixtures: Option<Value>,
    tls: bool,
    token: Option<String>,
}

impl FakeApiBuilder {
    /// Objects (a `List` or an array) loaded before the server starts listening.
    pub fn fixtures(mut self, list: Value) -> Self {
        self.fixtures = Some(list);
        self
    }

    /// A fixture file (e.g. from [`generate_cluster`]) loaded before the server listens.
    pub fn fixtures_file(self, path: &Path) -> Self {
        self.arg("--fixtures").arg(&path.to_string_lossy())
    }

    /// Seconds between BOOKMARK events on watches that allow them (server default: 5).
    pub fn bookmark_interval(self, seconds: f64) -> Self {
        self.arg("--bookmark-interval").arg(&seconds.to_string())
    }

    /// Watch events kept per kind before older resourceVersions get 410.
    pub fn history(self, events: usize) -> Self {
        self.arg("--history").arg(&events.to_string())
    }

    /// Serve HTTPS with a fresh CA and a leaf for 127.0.0.1; the kubeconfig trusts the CA.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Require `Authorization: Bearer TOKEN` on API requests; the kubeconfig carries it.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    /// Any other command-line argument of fake_apiserver.py.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Starts the server and waits until it listens.
    pub fn start(self) -> FakeApi {
        let dir = TempDir::new("hopwatch-fakeapi");
        let kubeconfig = dir.path().join("kubeconfig");
        let log = dir.path().join("fakeapi.log");
        let mut cmd = Command::new("python3");
        cmd.arg(SCRIPT)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .arg("--write-kubeconfig")
            .arg(&kubeconfig);
        cmd.args(&self.args);
        if let Some(fixtures) = &self.fixtures {
            let path = dir.path().join("fixtures.json");
            fs::write(&path, fixtures.to_string()).expect("write fixtures");
            cmd.arg("--fixtures").arg(path);
        }
        if let Some(token) = &self.token {
            let path = dir.path().join("token");
            fs::write(&path, token).expect("write token file");
            cmd.arg("--token").arg(path);
        }
        let tls = self.tls.then(|| write_pki(dir.path(), &mut cmd));
        let log_file = fs::File::create(&log).expect("create fakeapi.log");
        cmd.env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install Python 3.10+ (apt-get install python3) to run fake-apiserver tests")
        });
        let addr = read_listening_line(&mut child, &log);
        FakeApi {
            child,
            addr,
            tls,
            token: self.token,
            kubeconfig,
            log,
            dir,
        }
    }
}

/// Reads `listening HOST:PORT` from the server's stdout; keeps draining stdout afterwards.
fn read_listening_line(child: &mut Child, log: &Path) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    match rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(line) if line.starts_with("listening ") => line["listening ".len()..].trim().to_string(),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let text = fs::read_to_string(log).unwrap_or_default();
            panic!("fake apiserver did not start ({other:?}); its log:\n{text}")
        }
    }
}

/// CA + server certificate for 127.0.0.1, written as PEM; returns the client TLS config.
fn write_pki(dir: &Path, cmd: &mut Command) -> Arc<rustls::ClientConfig> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("leaf");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    for (name, pem) in [
        ("ca.crt", ca_cert.pem()),
        ("tls.crt", leaf.pem()),
        ("tls.key", leaf_key.serialize_pem()),
    ] {
        fs::write(dir.join(name), pem).expect("write PEM");
    }
    cmd.arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"));
    cmd.arg("--ca-cert").arg(dir.join("ca.crt"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).expect("trust CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A running fake apiserver; killed (by PID) and cleaned up on drop.
pub struct FakeApi {
    child: Child,
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: Option<String>,
    kubeconfig: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

/// A complete HTTP response.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body bytes (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (panics with the body text if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response {} is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl FakeApi {
    /// Plain-HTTP server with default settings.
    pub fn start() -> FakeApi {
        FakeApiBuilder::default().start()
    }

    /// A builder for fixtures, TLS, token and other options.
    pub fn builder() -> FakeApiBuilder {
        FakeApiBuilder::default()
    }

    /// `HOST:PORT` the server listens on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Base URL, `http://` or `https://`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls.is_some() { "https" } else { "http" },
            self.addr
        )
    }

    /// The kubeconfig written for this server.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The private temp dir (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's request log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// PID of the python process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A kube-rs client configured from the written kubeconfig.
    pub async fn kube_client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    }

    // ------------------------------------------------------------ HTTP

    fn connect(&self) -> Conn {
        let tcp =
            TcpStream::connect(&self.addr).unwrap_or_else(|e| panic!("connect {}: {e}", self.addr));
        tcp.set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        tcp.set_nodelay(true).expect("nodelay");
        match &self.tls {
            None => Conn::Plain(tcp),
            Some(config) => {
                let name =
                    rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
                let session =
                    rustls::ClientConnection::new(config.clone(), name).expect("TLS session");
                Conn::Tls(Box::new(rustls::StreamOwned::new(session, tcp)))
            }
        }
    }

    /// Sends one request (`Connection: close`); `headers` may override `Accept`.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Wire {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            head.push_str("Accept: application/json\r\n");
        }
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut conn = self.connect();
        let sent = conn
            .write_all(head.as_bytes())
            .and_then(|_| conn.write_all(body));
        sent.and_then(|_| conn.flush()).expect("send request");
        Wire {
            conn,
            buf: Vec::new(),
        }
    }

    /// Any request; the body is sent with `content_type` when given.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Response {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| ("Content-Type", ct))
            .into_iter()
            .collect();
        self.exchange(method, path, &headers, body)
    }

    /// GET with an `Accept` header, e.g. `application/json;as=Table;v=v1;g=meta.k8s.io`.
    pub fn get_as(&self, path: &str, accept: &str) -> Response {
        self.exchange("GET", path, &[("Accept", accept)], b"")
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut wire = self.send(method, path, headers, body);
        let (status, headers) = wire.read_head().expect("response head");
        let body = wire.read_body(&headers).expect("response body");
        Response { status, body }
    }

    fn expect_json(
        &self,
        method: &str,
        path: &str,
        ct: Option<&str>,
        body: &[u8],
        want: u16,
    ) -> Value {
        let resp = self.request(method, path, ct, body);
        assert_eq!(resp.status, want, "{method} {path}: {}", resp.text());
        resp.json()
    }

    /// GET, expecting 200.
    pub fn get(&self, path: &str) -> Value {
        self.expect_json("GET", path, None, b"", 200)
    }

    /// POST to a collection path, expecting 201 Created.
    pub fn create(&self, collection: &str, obj: &Value) -> Value {
        self.expect_json(
            "POST",
            collection,
            Some("application/json"),
            obj.to_string().as_bytes(),
            201,
        )
    }

    /// PUT, expecting 200.
    pub fn replace(&self, path: &str, obj: &Value) -> Value {
        self.expect_json(
            "PUT",
            path,
            Some("application/json"),
            obj.to_string().as_bytes(),
            200,
        )
    }

    /// JSON merge patch, expecting 200.
    pub fn patch(&self, path: &str, patch: &Value) -> Value {
        let ct = Some("application/merge-patch+json");
        self.expect_json("PATCH", path, ct, patch.to_string().as_bytes(), 200)
    }

    /// DELETE, expecting 200 and the deleted object.
    pub fn delete(&self, path: &str) -> Value {
        self.expect_json("DELETE", path, None, b"", 200)
    }

    /// Opens a watch; `path` carries the query (`watch=true` is added when missing).
    pub fn watch(&self, path: &str) -> WatchStream {
        let sep = if path.contains('?') { '&' } else { '?' };
        let path = if path.contains("watch=") {
            path.to_string()
        } else {
            format!("{path}{sep}watch=true")
        };
        let mut wire = self.send("GET", &path, &[], b"");
        let (status, headers) = wire.read_head().expect("watch response head");
        if status != 200 {
            let body = wire.read_body(&headers).unwrap_or_default();
            panic!(
                "watch {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        assert!(
            header(&headers, "transfer-encoding")
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        );
        WatchStream::new(wire)
    }

    // ------------------------------------------------------------ /_fake/ control

    fn control(&self, op: &str, body: &Value) -> Value {
        let bytes = body.to_string();
        self.expect_json(
            "POST",
            &format!("/_fake/{op}"),
            Some("application/json"),
            bytes.as_bytes(),
            200,
        )
    }

    /// Server state: resourceVersion, object counts, open watches.
    pub fn state(&self) -> Value {
        self.get("/_fake/state")
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state()["resourceVersion"]
            .as_u64()
            .expect("resourceVersion in state")
    }

    /// Number of open watch connections.
    pub fn open_watches(&self) -> usize {
        self.state()["watches"].as_array().map_or(0, Vec::len)
    }

    /// Loads a List (or array) of objects, creating or replacing each (events are sent).
    pub fn load(&self, list: &Value) -> Value {
        self.control("load", list)
    }

    /// Compacts all history up to now: watches from older resourceVersions get 410 Expired.
    pub fn compact(&self) -> u64 {
        let out = self.control("compact", &json!({}));
        out["compactedResourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("compacted RV")
    }

    /// Closes every open watch mid-stream (TCP FIN without the final chunk).
    pub fn drop_watches(&self) -> u64 {
        self.control("drop-watches", &json!({}))["dropped"]
            .as_u64()
            .expect("dropped count")
    }

    /// Resets every open watch connection (TCP RST).
    pub fn reset_watches(&self) -> u64 {
        self.control("drop-watches?mode=reset", &json!({}))["dropped"]
            .as_u64()
            .expect("dropped count")
    }

    /// Drops watches and answers 503 to every API request for `seconds`.
    pub fn unavailable(&self, seconds: f64) {
        self.control(&format!("unavailable?seconds={seconds}"), &json!({}));
    }

    /// Drops watches and resets every API connection for `seconds`.
    pub fn unavailable_reset(&self, seconds: f64) {
        self.control(
            &format!("unavailable?seconds={seconds}&mode=reset"),
            &json!({}),
        );
    }

    /// Empties the store (resourceVersion keeps counting; history is compacted).
    pub fn reset(&self) {
        self.control("reset", &json!({}));
    }

    /// Changes the bookmark interval of running and future watches.
    pub fn set_bookmark_interval(&self, seconds: f64) {
        self.control("config", &json!({"bookmarkIntervalSeconds": seconds}));
    }

    /// Starts (or with 0, stops) server-side churn: `percent` of `resource`
    /// (`GROUP/VERSION/PLURAL` or `v1/PLURAL`) modified per minute.
    pub fn churn(&self, resource: &str, percent: f64) -> Value {
        self.control(
            "churn",
            &json!({"resource": resource, "percentPerMinute": percent}),
        )
    }

    /// Polls `cond` every 20 ms until it holds or `timeout` passes.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&FakeApi) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- fake apiserver log (last 60 lines) ---\n{}",
                tail.join("\n")
            );
        }
    }
}

/// Runs `python3 gen_cluster.py generate ARGS -o OUT` and returns OUT.
pub fn generate_cluster(dir: &Path, args: &[&str]) -> PathBuf {
    let out = dir.join("cluster.json");
    let status = Command::new("python3")
        .arg(GENERATOR)
        .arg("generate")
        .args(args)
        .arg("-o")
        .arg(&out)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install Python 3.10+"));
    assert!(status.success(), "gen_cluster.py {args:?} failed: {status}");
    out
}

/// A minimal Service manifest.
pub fn service(ns: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    })
}

/// An EndpointSlice manifest for `svc` with (address, ready) endpoints.
pub fn endpoint_slice(ns: &str, name: &str, svc: &str, endpoints: &[(&str, bool)]) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready, "serving": ready, "terminating": false}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps
    })
}
