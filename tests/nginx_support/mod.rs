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
//! Every server also listens for plain HTTP on [`Lab::http`].

#![allow(
    dead_code,
    reason = "shared by several test binaries; each uses a part"
)]

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
    /// The trusted CA, as a PEM file.
    pub ca_file: PathBuf,
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
        let (https, http) = (free_port(v6), free_port(v6));
        let closed = closed_port();
        let conf = Conf {
            dir: dir.path(),
            https,
            http,
            v6,
            upstream: closed.local_addr().unwrap().port(),
        };
        let conf_path = dir.file("nginx.conf", &conf.render(&pki));
        let ca_file = dir.file("ca.pem", &pki.ca_pem);
        let mut nginx = Nginx::spawn(&binary, &conf_path, dir.path());
        let mut listening = vec![
            ([127, 0, 0, 1], https).into(),
            ([127, 0, 0, 1], http).into(),
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
            ca_file,
            dir,
        }
    }

    /// A loopback address where nothing listens.
    pub fn closed(&self) -> SocketAddr {
        self.closed.local_addr().unwrap()
    }

    /// The requests nginx has logged, once there are at least `count` (waits up to 5 s: nginx
    /// logs a request after sending the response the probe stopped reading at its head).
    pub fn logged(&self, count: usize) -> Vec<Logged> {
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            let text =
                std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
            let lines: Vec<Logged> = text.lines().map(parse_logged).collect();
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
        out.push_str("}\n");
        out
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
