//! A real nginx from Debian as the Ingress controller of the HTTP probe's tests: TLS
//! termination with a certificate per SNI name, a 404 default backend, a 502 from a closed
//! upstream and a 503 for a backend without endpoints, on loopback ports of its own.
//!
//! [`Lab::start`] generates the PKI ([`pki`]), writes `nginx.conf` and the certificates into a
//! temporary directory, starts `nginx` (`daemon off; master_process off;`: one process, no
//! root needed) and waits until it accepts connections. Dropping the lab kills nginx by its
//! PID and removes the directory, also when an assertion fails; a failing test prints nginx's
//! error log. Nothing is sent outside 127.0.0.0/8 and `[::1]`. A test binary that loads this
//! module loads `support` too (for its `TempDir`).
//!
//! | server name                 | certificate          | answers                       |
//! |-----------------------------|----------------------|-------------------------------|
//! | (default server)            | `*.example.test`     | 404 "default backend - 404"   |
//! | `ok.example.test localhost` | valid                | 200 "ok"                      |
//! | `soon.example.test`         | expires in 5 days    | 200                           |
//! | `expired.example.test`      | expired 10 days ago  | 200                           |
//! | `wrong.example.test`        | `other.example.test` | 200                           |
//! | `unknown-ca.example.test`   | signed by another CA | 200                           |
//! | `future.example.test`       | valid in 10 days     | 200                           |
//! | `chain.example.test`        | via an intermediate  | 200                           |
//! | `bad-gateway.example.test`  | valid                | proxy to a closed port: 502   |
//! | `no-endpoints.example.test` | valid                | 503                           |
//!
//! | `app.example.test`          | valid                | the request checks, below     |
//! | `mtls.example.test`         | valid                | 200 only with a client certificate from [`openssl::ClientPki`] (`ssl_verify_client on`), else nginx's 400 |
//!
//! Every server also listens for plain HTTP on [`Lab::http`]. [`Lab::h2`] is one more TLS port
//! whose `listen` has `http2`, so nginx offers `h2` by ALPN there (and only there): it serves
//! `app.example.test` too.
//!
//! `app.example.test` answers `/token` 200 only with `X-Probe-Token: s3cret` (else 403),
//! `/body` with `hello hopwatch build=42`, `/redirect` with a 302 to `/body`, `/redirect-http`
//! with a 301 to `/body` on plain HTTP, `/redirect-away` with a 302 to another host
//! (`127.0.0.1`, the plain HTTP port), `/loop` with a 302 to itself, and `/post-only` 200 to
//! a `POST` (else 405). Its requests are logged apart ([`Lab::app_logged`]): method, URI,
//! status, protocol, the `X-Probe-Token` header and the `Content-Length`.

#![allow(
    dead_code,
    reason = "shared by several test binaries; each uses a part"
)]

pub mod openssl;
pub mod pki;

use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::support::TempDir;
use pki::{Leaf, Pki};

pub const OK: &str = "ok.example.test";
pub const SOON: &str = "soon.example.test";
pub const EXPIRED: &str = "expired.example.test";
pub const WRONG: &str = "wrong.example.test";
pub const UNKNOWN_CA: &str = "unknown-ca.example.test";
pub const FUTURE: &str = "future.example.test";
pub const CHAIN: &str = "chain.example.test";
pub const BAD_GATEWAY: &str = "bad-gateway.example.test";
pub const NO_ENDPOINTS: &str = "no-endpoints.example.test";
/// A name no server block has: the default server answers.
pub const NOBODY: &str = "nobody.example.test";
pub const APP: &str = "app.example.test";
pub const MTLS: &str = "mtls.example.test";
/// The token `/token` wants in `X-Probe-Token`.
pub const TOKEN: &str = "s3cret";

/// One request as nginx logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The SNI name, `-` for none (plain HTTP).
    pub sni: String,
    /// The `Host` header without its port.
    pub host: String,
    pub status: u16,
    /// The `Connection` header.
    pub connection: String,
}

/// A running nginx with its PKI. Fields drop in order: nginx first, the directory last.
pub struct Lab {
    nginx: Nginx,
    /// Bound but not listening: connects to it are refused for as long as the lab lives.
    closed: tokio::net::TcpSocket,
    pub pki: Pki,
    /// The Unix second the PKI's dates are relative to.
    pub now: i64,
    pub https: SocketAddr,
    pub http: SocketAddr,
    /// TLS with `h2` offered by ALPN: `app.example.test` only.
    pub h2: SocketAddr,
    /// The trusted CA, as a PEM file.
    pub ca_file: PathBuf,
    /// Client certificates made by openssl, for `mtls.example.test`.
    pub clients: openssl::ClientPki,
    dir: TempDir,
}

impl Lab {
    /// Generates the PKI, starts nginx and waits until it accepts connections.
    pub fn start() -> Lab {
        let binary = nginx_binary();
        let now = unix_now();
        let pki = Pki::generate(now);
        let dir = TempDir::new("nginx");
        let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
        let (https, http, h2) = (free_port(v6), free_port(v6), free_port(false));
        let closed = closed_port();
        let clients = openssl::ClientPki::generate(dir.path());
        let conf = Conf {
            dir: dir.path(),
            https,
            http,
            h2,
            v6,
            upstream: closed.local_addr().unwrap().port(),
        };
        let conf_path = dir.file("nginx.conf", &conf.render(&pki));
        let ca_file = dir.file("ca.pem", &pki.ca_pem);
        let mut nginx = Nginx::spawn(&binary, &conf_path, dir.path());
        let mut listening = vec![
            ([127, 0, 0, 1], https).into(),
            ([127, 0, 0, 1], http).into(),
            ([127, 0, 0, 1], h2).into(),
        ];
        if v6 {
            listening.push((Ipv6Addr::LOCALHOST, https).into());
        }
        nginx.wait_until_listening(&listening);
        Lab {
            nginx,
            closed,
            pki,
            now,
            https: listening[0],
            http: listening[1],
            h2: listening[2],
            ca_file,
            clients,
            dir,
        }
    }

    /// A file the lab wrote: `valid.crt` and `valid.key` (ok, app, mtls hosts), the
    /// client PKI's files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A loopback address where nothing listens.
    pub fn closed(&self) -> SocketAddr {
        self.closed.local_addr().unwrap()
    }

    /// The requests nginx has logged, once there are at least `count` (waits up to 5 s: nginx
    /// logs a request after sending the response the probe stopped reading at its head).
    pub fn logged(&self, count: usize) -> Vec<Logged> {
        self.log_lines("access.log", count)
            .iter()
            .map(|l| parse_logged(l))
            .collect()
    }

    /// The requests `app.example.test` and `mtls.example.test` logged, as
    /// `METHOD|URI|STATUS|PROTOCOL|X-Probe-Token|Content-Length|client verify`, once there are
    /// at least `count`.
    pub fn app_logged(&self, count: usize) -> Vec<String> {
        self.log_lines("app.log", count)
    }

    fn log_lines(&self, file: &str, count: usize) -> Vec<String> {
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= count || Instant::now() > give_up {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn parse_logged(line: &str) -> Logged {
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields.len(), 4, "access log line {line:?}");
    Logged {
        sni: fields[0].to_string(),
        host: fields[1].to_string(),
        status: fields[2].parse().unwrap(),
        connection: fields[3].to_string(),
    }
}

/// The nginx binary, or a failed test saying what to install.
pub fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/local/sbin".into()]);
    for dir in dirs {
        let candidate = dir.join("nginx");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("this test needs nginx: apt-get install nginx-light (or nginx)");
}

/// The generated configuration.
struct Conf<'a> {
    dir: &'a Path,
    https: u16,
    http: u16,
    h2: u16,
    v6: bool,
    upstream: u16,
}

impl Conf<'_> {
    fn render(&self, pki: &Pki) -> String {
        let d = self.dir.display();
        let mut out = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 128; }}\nhttp {{\n\
             log_format probe '$ssl_server_name|$host|$status|$http_connection';\n\
             log_format app '$request_method|$request_uri|$status|$server_protocol|\
             $http_x_probe_token|$content_length|$ssl_client_verify';\n\
             access_log {d}/access.log probe;\n\
             client_body_temp_path {d}/tmp-body; proxy_temp_path {d}/tmp-proxy;\n\
             fastcgi_temp_path {d}/tmp-fastcgi; uwsgi_temp_path {d}/tmp-uwsgi; \
             scgi_temp_path {d}/tmp-scgi;\n\
             default_type text/plain;\nssl_protocols TLSv1.2 TLSv1.3;\n\
             proxy_connect_timeout 2s; proxy_read_timeout 5s;\n"
        );
        let sites: [(&str, &str, &Leaf, String); 10] = [
            (
                "_",
                "wildcard",
                &pki.wildcard,
                ret(404, "default backend - 404"),
            ),
            (
                "ok.example.test localhost",
                "valid",
                &pki.valid,
                ret(200, "ok"),
            ),
            (SOON, "soon", &pki.soon, ret(200, "ok")),
            (EXPIRED, "expired", &pki.expired, ret(200, "ok")),
            (WRONG, "wrong", &pki.wrong, ret(200, "ok")),
            (UNKNOWN_CA, "unknown-ca", &pki.unknown_ca, ret(200, "ok")),
            (FUTURE, "future", &pki.future, ret(200, "ok")),
            (CHAIN, "chained", &pki.chained, ret(200, "ok")),
            (BAD_GATEWAY, "valid", &pki.valid, self.proxy()),
            (NO_ENDPOINTS, "valid", &pki.valid, "return 503;".to_string()),
        ];
        for (index, (names, file, leaf, action)) in sites.iter().enumerate() {
            let default = if index == 0 { " default_server" } else { "" };
            write_pem(self.dir, file, leaf);
            out.push_str(&format!(
                "server {{\n{}  server_name {names};\n  ssl_certificate {d}/{file}.crt;\n  \
                 ssl_certificate_key {d}/{file}.key;\n  {action}\n}}\n",
                self.listens(default)
            ));
        }
        out.push_str(&self.app());
        out.push_str("}\n");
        out
    }

    /// `app.example.test` on every port (with `h2` offered on [`Lab::h2`]), and
    /// `mtls.example.test`, which wants a client certificate.
    fn app(&self) -> String {
        let d = self.dir.display();
        let tls = format!(
            "  ssl_certificate {d}/valid.crt;\n  ssl_certificate_key {d}/valid.key;\n  \
             access_log {d}/app.log app;\n"
        );
        let locations = format!(
            "  location = /token {{ if ($http_x_probe_token != \"{TOKEN}\") {{ return 403 \"no token\\n\"; }} return 200 \"token ok\\n\"; }}\n\
               location = /body {{ return 200 \"hello hopwatch build=42\\n\"; }}\n\
               location = /redirect {{ return 302 /body; }}\n\
               location = /redirect-http {{ return 301 http://{APP}:{}/body; }}\n\
               location = /redirect-away {{ return 302 http://127.0.0.1:{}/body; }}\n\
               location = /loop {{ return 302 /loop; }}\n\
               location = /post-only {{ if ($request_method != POST) {{ return 405; }} return 200 \"posted\\n\"; }}\n\
               location / {{ return 200 \"app\\n\"; }}\n",
            self.http, self.http
        );
        format!(
            "server {{\n{}  server_name {APP};\n{tls}{locations}}}\n\
             server {{\n  listen 127.0.0.1:{} ssl http2;\n  server_name {APP};\n{tls}{locations}}}\n\
             server {{\n{}  server_name {MTLS};\n{tls}  ssl_verify_client on;\n  \
             ssl_client_certificate {d}/client-ca.pem;\n  \
             location / {{ return 200 \"client $ssl_client_s_dn\\n\"; }}\n}}\n",
            self.listens(""),
            self.h2,
            self.listens(""),
        )
    }

    fn listens(&self, default: &str) -> String {
        let mut out = format!(
            "  listen 127.0.0.1:{} ssl{default};\n  listen 127.0.0.1:{}{default};\n",
            self.https, self.http
        );
        if self.v6 {
            out.push_str(&format!(
                "  listen [::1]:{} ssl{default};\n  listen [::1]:{}{default};\n",
                self.https, self.http
            ));
        }
        out
    }

    /// A backend whose only endpoint refuses connections: nginx answers 502.
    fn proxy(&self) -> String {
        format!(
            "location / {{ proxy_pass http://127.0.0.1:{}; }}",
            self.upstream
        )
    }
}

fn ret(code: u16, body: &str) -> String {
    format!("return {code} \"{body}\\n\";")
}

fn write_pem(dir: &Path, file: &str, leaf: &Leaf) {
    std::fs::write(dir.join(format!("{file}.crt")), &leaf.chain_pem).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), &leaf.key_pem).unwrap();
}

/// A port free on 127.0.0.1, and on [::1] too when `v6`.
fn free_port(v6: bool) -> u16 {
    for _ in 0..50 {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        if !v6 || TcpListener::bind((Ipv6Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.1 and [::1] after 50 tries");
}

fn closed_port() -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// nginx as a child process, killed by its PID and reaped on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    fn spawn(binary: &Path, conf: &Path, dir: &Path) -> Nginx {
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Nginx {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    /// Returns once every address accepts a connection; fails the test with nginx's log if
    /// nginx exits or 10 s pass first.
    fn wait_until_listening(&mut self, addresses: &[SocketAddr]) {
        let give_up = Instant::now() + Duration::from_secs(10);
        for address in addresses {
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("nginx exited ({status}):\n{}", self.log());
                }
                if TcpStream::connect_timeout(address, Duration::from_millis(200)).is_ok() {
                    break;
                }
                assert!(
                    Instant::now() < give_up,
                    "nginx did not listen on {address} within 10 s:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- nginx error log ---\n{}", self.log());
        }
    }
}
