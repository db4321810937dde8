//! The protected metrics endpoint, end to end: `hopwatch run --web.config.file` scraped by curl.
//!
//! Certificates come from the real `openssl` command, bcrypt hashes from Apache's `htpasswd`,
//! and the client is `curl`: nothing on the client side shares code with the agent. Everything
//! listens on 127.0.0.1.

#[path = "support/tempdir.rs"]
mod tempdir;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempdir::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_hopwatch");

const PASSWORD: &str = "correct horse battery staple";
const TOKEN: &str = "tok-7f3a9c1e5b2d4860a1c3e5f7";

/// Runs a command that must succeed, failing loudly (it is a test dependency) otherwise.
fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (tests/run installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A CA, and certificates it signs, made by the `openssl` command in `dir`.
struct Pki<'a> {
    dir: &'a Path,
}

impl Pki<'_> {
    fn ca(&self, name: &str) {
        let subject = format!("/CN=hopwatch test {name}");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            self.dir,
        );
    }

    /// A leaf `name` signed by `ca`, for `usage` (serverAuth or clientAuth).
    fn leaf(&self, name: &str, ca: &str, usage: &str) {
        let ext = format!("{name}.ext");
        let text = format!(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n\
             basicConstraints=critical,CA:FALSE\n"
        );
        std::fs::write(self.dir.join(&ext), text).unwrap();
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
            self.dir,
        );
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &ext,
            ],
            self.dir,
        );
    }
}

/// `user:$2y$...` from `htpasswd -nbB`, cost 5 to keep the test quick.
fn bcrypt_hash(user: &str, password: &str, dir: &Path) -> String {
    let out = run("htpasswd", &["-nbB", "-C", "5", user, password], dir);
    let line = String::from_utf8(out.stdout).unwrap();
    let (_, hash) = line
        .trim()
        .split_once(':')
        .expect("htpasswd prints user:hash");
    assert!(hash.starts_with("$2y$05$"), "{hash}");
    hash.to_string()
}

/// A running `hopwatch run`, killed by PID on drop; stderr collected line by line.
struct Agent {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(dir: &Path, extra: &[&str]) -> Agent {
        let config = dir.join("agent.yaml");
        std::fs::write(&config, "listen: 127.0.0.1:0\n").unwrap();
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, address) = mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving metrics on ").nth(1) {
                    let url = rest.split(['"', ' ']).next().unwrap_or_default();
                    let _ = found.send(url.trim_end_matches("/metrics").to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let mut agent = Agent {
            child,
            addr: String::new(),
            log,
        };
        match address.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => agent.addr = addr,
            Err(_) => panic!(
                "no \"serving metrics on\" line; stderr:\n{}",
                agent.stderr()
            ),
        }
        agent
    }

    fn stderr(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then waits for the exit, so that every log line is in.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        self.stderr()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What curl got: its exit code, the status, the headers (lower-cased) and the raw body.
struct Scrape {
    exit: i32,
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// One request with curl; `args` add auth, client certificates or headers.
fn curl(dir: &Path, url: &str, args: &[&str]) -> Scrape {
    let head = dir.join("curl.head");
    let body = dir.join("curl.body");
    let _ = std::fs::remove_file(&head);
    let _ = std::fs::remove_file(&body);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&head)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl (tests/run installs it)");
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Scrape {
        exit: out.status.code().unwrap_or(-1),
        status: code.parse().unwrap_or(0),
        head: std::fs::read_to_string(&head)
            .unwrap_or_default()
            .to_lowercase(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn text(scrape: &Scrape) -> String {
    String::from_utf8_lossy(&scrape.body).into_owned()
}

/// The `# HELP` and `# TYPE` lines: the same for two expositions of the same agent.
fn families(exposition: &str) -> Vec<&str> {
    exposition.lines().filter(|l| l.starts_with('#')).collect()
}

struct Setup {
    dir: TempDir,
    web: PathBuf,
}

/// A server certificate from a CA, a client CA and a client certificate, and a web config.
fn setup(label: &str, web_config: impl Fn(&str) -> String) -> Setup {
    let dir = TempDir::new(label);
    let pki = Pki { dir: dir.path() };
    pki.ca("ca");
    pki.leaf("server", "ca", "serverAuth");
    pki.ca("client-ca");
    pki.leaf("client", "client-ca", "clientAuth");
    pki.leaf("stranger", "ca", "clientAuth");
    dir.file("token", &format!("{TOKEN}\n"));
    let hash = bcrypt_hash("prometheus", PASSWORD, dir.path());
    let web = dir.file("web.yaml", &web_config(&hash));
    Setup { dir, web }
}

fn tls_with_auth(hash: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
         basic_auth_users:\n  prometheus: '{hash}'\nbearer_token_file: token\n"
    )
}

#[test]
fn tls_with_basic_auth_bearer_token_and_gzip() {
    let s = setup("auth", tls_with_auth);
    let dir = s.dir.path();
    let web = s.web.to_str().unwrap();
    let agent = Agent::start(dir, &["--web.config.file", web]);
    assert!(
        agent.addr.starts_with("https://127.0.0.1:"),
        "{}",
        agent.addr
    );
    let url = format!("{}/metrics", agent.addr);
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let user = format!("prometheus:{PASSWORD}");

    let ok = curl(dir, &url, &["--cacert", ca, "-u", &user]);
    assert_eq!((ok.exit, ok.status), (0, 200), "{}", agent.stderr());
    let plain = text(&ok);
    assert!(plain.contains("hopwatch_build_info{revision=\""), "{plain}");
    assert!(ok.head.contains("vary: accept-encoding"), "{}", ok.head);

    let wrong = curl(dir, &url, &["--cacert", ca, "-u", "prometheus:wrong"]);
    assert_eq!(wrong.status, 401);
    assert!(
        wrong
            .head
            .contains("www-authenticate: basic realm=\"hopwatch\""),
        "{}",
        wrong.head
    );
    assert!(
        wrong
            .head
            .contains("www-authenticate: bearer realm=\"hopwatch\""),
        "{}",
        wrong.head
    );
    assert!(!text(&wrong).contains("hopwatch_"), "a 401 leaks nothing");
    let unknown = curl(
        dir,
        &url,
        &["--cacert", ca, "-u", &format!("grafana:{PASSWORD}")],
    );
    assert_eq!(unknown.status, 401);
    assert_eq!(curl(dir, &url, &["--cacert", ca]).status, 401);

    let bearer = format!("Authorization: Bearer {TOKEN}");
    assert_eq!(
        curl(dir, &url, &["--cacert", ca, "-H", &bearer]).status,
        200
    );
    let bad = format!("Authorization: Bearer {TOKEN}x");
    assert_eq!(curl(dir, &url, &["--cacert", ca, "-H", &bad]).status, 401);

    let health = curl(dir, &format!("{}/healthz", agent.addr), &["--cacert", ca]);
    assert_eq!(
        (health.status, text(&health).as_str()),
        (200, "ok\n"),
        "open to kubelet"
    );

    let zipped = curl(
        dir,
        &url,
        &["--cacert", ca, "-u", &user, "-H", "Accept-Encoding: gzip"],
    );
    assert_eq!(zipped.status, 200);
    assert!(
        zipped.head.contains("content-encoding: gzip"),
        "{}",
        zipped.head
    );
    assert_eq!(&zipped.body[..2], &[0x1f, 0x8b], "a gzip member");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(zipped.body.as_slice())
        .read_to_string(&mut unzipped)
        .expect("the body gunzips");
    assert_eq!(families(&unzipped), families(&plain));
    assert!(
        unzipped.contains("hopwatch_build_info{revision=\""),
        "{unzipped}"
    );
    assert!(
        zipped.body.len() * 3 < unzipped.len(),
        "gzip shrinks the exposition"
    );
    let refused = curl(
        dir,
        &url,
        &[
            "--cacert",
            ca,
            "-u",
            &user,
            "-H",
            "Accept-Encoding: gzip;q=0",
        ],
    );
    assert!(
        !refused.head.contains("content-encoding"),
        "{}",
        refused.head
    );

    let cleartext = curl(dir, &url.replace("https://", "http://"), &["-u", &user]);
    assert_ne!(cleartext.status, 200, "no plain HTTP on a TLS port");

    // A rotated token is in force within seconds, without a restart or a signal.
    std::fs::write(dir.join("token"), "rotated-token\n").unwrap();
    let rotated = "Authorization: Bearer rotated-token";
    let start = Instant::now();
    while curl(dir, &url, &["--cacert", ca, "-H", rotated]).status != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        curl(dir, &url, &["--cacert", ca, "-H", &bearer]).status,
        401
    );
    let log = agent.stop();
    assert!(log.contains("web config reloaded"), "{log}");
    for secret in [PASSWORD, TOKEN, "rotated-token", "wrong"] {
        assert!(!log.contains(secret), "{secret:?} logged:\n{log}");
    }
}

#[test]
fn mutual_tls_requires_a_certificate_from_the_client_ca() {
    let s = setup("mtls", |_| {
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n  \
         min_version: TLS13\n"
            .to_string()
    });
    let dir = s.dir.path();
    let agent = Agent::start(dir, &["--web.config.file", s.web.to_str().unwrap()]);
    let url = format!("{}/metrics", agent.addr);
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let with = |name: &str, extra: &[&str]| {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let mut args = vec!["--cacert", ca, "--cert", cert, "--key", key];
        args.extend_from_slice(extra);
        curl(dir, &url, &args)
    };

    let ok = with("client", &[]);
    assert_eq!((ok.exit, ok.status), (0, 200), "{}", agent.stderr());
    assert!(text(&ok).contains("hopwatch_build_info"));
    let none = curl(dir, &url, &["--cacert", ca]);
    assert_ne!(none.status, 200, "no client certificate");
    assert_ne!(none.exit, 0);
    let stranger = with("stranger", &[]);
    assert_ne!(stranger.status, 200, "a client certificate from another CA");
    assert_eq!(with("client", &["--tls-max", "1.3"]).status, 200);
    let old = with("client", &["--tls-max", "1.2"]);
    assert_ne!(old.status, 200, "min_version TLS13 refuses TLS 1.2");
}

/// `hopwatch run` with the web config `text`: its exit code and stderr. It must exit.
fn refused(dir: &Path, name: &str, text: &str) -> (i32, String) {
    let web = dir.join(name);
    std::fs::write(&web, text).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("agent.yaml"))
        .arg("--web.config.file")
        .arg(&web)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_web_config_stops_the_start_naming_the_file_and_field() {
    let dir = TempDir::new("badweb");
    let d = dir.path();
    dir.file("agent.yaml", "listen: 127.0.0.1:0\n");
    let pki = Pki { dir: d };
    pki.ca("ca");
    pki.leaf("server", "ca", "serverAuth");
    let tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    let cases = [
        (
            "basic_auth_users:\n  prometheus: plain-text-secret\n",
            "basic_auth_users.prometheus: not a bcrypt hash",
        ),
        (
            &format!("{tls}  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
            "tls_server_config.cipher_suites: not supported by hopwatch",
        ),
        (
            &format!("{tls}  client_allowed_sans: [a.example]\n"),
            "tls_server_config.client_allowed_sans: not supported by hopwatch",
        ),
        (
            &format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
            "tls_server_config.client_auth_type: RequireAndVerifyClientCert needs client_ca_file",
        ),
        (
            &format!("{tls}  client_auth_type: RequireAnyClientCert\n"),
            "tls_server_config.client_auth_type: RequireAnyClientCert accepts certificates nobody verifies",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: missing.key\n",
            "tls_server_config.key_file: cannot read",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: ca.key\n",
            "tls_server_config.key_file: does not go with tls_server_config.cert_file",
        ),
        (
            &format!("{tls}  min_version: TLS11\n"),
            "tls_server_config.min_version: TLS 1.0 and 1.1",
        ),
        ("basic_auth_user:\n  x: y\n", "basic_auth_user: unknown key"),
        (
            "rate_limit:\n  interval: 1s\n",
            "rate_limit: not supported by hopwatch",
        ),
        (
            "bearer_token_file: nothing-here\n",
            "bearer_token_file: cannot read",
        ),
    ];
    for (i, (text, wanted)) in cases.iter().enumerate() {
        let name = format!("web{i}.yaml");
        let (code, stderr) = refused(d, &name, text);
        assert_eq!(code, 1, "{text}\n{stderr}");
        let file = d.join(&name);
        let expected = format!("{}: {wanted}", file.display());
        assert!(
            stderr.contains(&expected),
            "want {expected:?} in:\n{stderr}"
        );
    }
    let check = Command::new(BIN)
        .arg("check-config")
        .arg(d.join("agent.yaml"))
        .arg("--web.config.file")
        .arg(d.join("web0.yaml"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("web0.yaml: basic_auth_users.prometheus: not a bcrypt hash"),
        "{stderr}"
    );
    let good = dir.file("good.yaml", tls);
    let check = Command::new(BIN)
        .arg("check-config")
        .arg(d.join("agent.yaml"))
        .arg("--web.config.file")
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{}: ok (TLS, no auth)", good.display())),
        "{stdout}"
    );
    let (_, stderr) = refused(
        d,
        "secret.yaml",
        "basic_auth_users:\n  prometheus: plain-text-secret\n",
    );
    assert!(
        !stderr.contains("plain-text-secret"),
        "a rejected secret is not echoed:\n{stderr}"
    );
}

#[test]
fn json_logs_carry_fields_and_no_secrets() {
    let s = setup("logs", tls_with_auth);
    let dir = s.dir.path();
    std::fs::write(
        dir.join("agent.yaml"),
        "listen: 127.0.0.1:0\ntcp:\n  - address: 127.0.0.1:9\n    id: closed\n    interval_seconds: 1\n    timeout_seconds: 0.5\n",
    )
    .unwrap();
    let config = dir.join("agent.yaml");
    let mut child = Command::new(BIN)
        .args(["run", "--log.format=json", "--log.level=debug", "--config"])
        .arg(&config)
        .arg("--web.config.file")
        .arg(&s.web)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut addr = None;
    let mut probed = false;
    let start = Instant::now();
    while !(probed && addr.is_some()) && start.elapsed() < Duration::from_secs(30) {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if let Some(url) = value["msg"]
            .as_str()
            .and_then(|m| m.strip_prefix("serving metrics on "))
        {
            addr = Some(url.to_string());
        }
        probed |= value["msg"] == "probe finished" && value["target"] == "closed";
        lines.push(value);
    }
    let url = addr.expect("a serving line");
    let ca = dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let good = format!("prometheus:{PASSWORD}");
    for args in [
        vec!["-u", "prometheus:wrong-password-1"],
        vec!["-u", good.as_str()],
        vec!["-H", "Authorization: Bearer wrong-token-2"],
    ] {
        let mut all = vec!["--cacert", ca];
        all.extend(args.iter().copied());
        let _ = curl(dir, &url, &all);
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = child.wait();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        lines.push(value);
    }
    let all: Vec<String> = lines.iter().map(ToString::to_string).collect();
    let log = all.join("\n");
    assert!(probed, "no probe line in 30 s:\n{log}");
    for line in &lines {
        for key in ["ts", "level", "module", "msg"] {
            assert!(line[key].is_string(), "no {key} in {line}");
        }
    }
    let probe = lines
        .iter()
        .find(|l| l["msg"] == "probe finished" && l["target"] == "closed")
        .unwrap();
    assert_eq!(probe["hop"], "service", "{probe}");
    assert_eq!(probe["level"], "debug", "--log.level wins over RUST_LOG");
    assert!(probe["result"].is_string(), "{probe}");
    assert!(log.contains("\"msg\":\"shutting down\""), "{log}");
    for secret in [
        PASSWORD,
        TOKEN,
        "wrong-password-1",
        "wrong-token-2",
        "Authorization",
    ] {
        assert!(!log.contains(secret), "{secret:?} logged:\n{log}");
    }
}

#[test]
fn logfmt_lines_are_key_value_pairs() {
    let dir = TempDir::new("logfmt");
    let config = dir.file("agent.yaml", "listen: 127.0.0.1:0\n");
    let mut child = Command::new(BIN)
        .args(["run", "--log.format", "logfmt", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("serving metrics") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stderr ended");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("ts=20"), "{line}");
    assert!(
        line.contains(
            " level=info module=hopwatch::agent msg=\"serving metrics on http://127.0.0.1:"
        ),
        "{line}"
    );
    let bad = Command::new(BIN)
        .args(["run", "--log.format", "xml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected text, logfmt or json"));
}
