//! The container image as built (tools/image/build: deploy/Dockerfile, buildah, an OCI archive),
//! run by a real container runtime, podman, the way a kubelet would run it: read-only root
//! filesystem, no capabilities, no new privileges, the image's own user. It must answer
//! `/healthz`, run as uid and gid 65532, and be unable to write to `/`.
//!
//! The container's network is a namespace this test creates, with only loopback in it, so the
//! agent can reach nothing outside the machine. Its config probes the agent itself: by
//! address over TCP, and over HTTP by two names through getaddrinfo, `localhost` from the
//! `/etc/hosts` podman mounts (as a kubelet does) and `hopwatch.image.test` from a DNS server
//! on 127.0.0.1:53 in the namespace (podman's `--dns`, as a pod's resolv.conf names the cluster
//! DNS). Both succeed: the static binary's glibc resolves through its built-in `files` and
//! `dns` modules, with nothing but the image's files and no shared library. A target with
//! `ca_file: /etc/ssl/certs/ca-certificates.crt` shows the image's CA bundle reads as a
//! certificate file (the config is rejected otherwise).
//!
//! The image is `$HOPWATCH_IMAGE` (tests/run sets it), else what `tools/image/build --path`
//! names; the test fails if it is missing rather than building it (minutes: a release build).
//! podman keeps its storage in a temporary directory of its own: nothing touches
//! /var/lib/containers. Needs root, podman, runc and ip.

#[path = "kube_support/dns.rs"]
#[allow(dead_code, reason = "the query counter is the lab's")]
mod dns;
mod netns_support;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netns_support::Netns;
use support::TempDir;
use support::process::http_get;

/// The image's user and group: distroless's `nonroot`.
const NONROOT: &str = "65532";
/// EROFS: what writing to a read-only mount returns, to root as to anyone.
const EROFS: i32 = 30;
const TEST: &str = "image_runs_read_only_as_nonroot";
/// The config's targets that probe the agent itself: they must succeed.
const SELF_PROBES: [&str; 3] = ["self-tcp", "self-by-name", "self-by-dns"];
/// The name the DNS server in the namespace answers, with 127.0.0.1.
const DNS_NAME: &str = "hopwatch.image.test.";

const CONFIG: &str = "\
listen: \"0.0.0.0:9808\"
defaults:
  interval_seconds: 1
  timeout_seconds: 0.5
  jitter_seconds: 0
tcp:
  - address: 127.0.0.1:9808
    id: self-tcp
http:
  - url: http://localhost:9808/healthz
    id: self-by-name
  - url: http://hopwatch.image.test:9808/healthz
    id: self-by-dns
  - url: https://127.0.0.1:9808/
    id: ca-bundle
    ca_file: /etc/ssl/certs/ca-certificates.crt
    interval_seconds: 60
    timeout_seconds: 1
";

/// What the image's config says, as `podman image inspect` shows it.
const IMAGE_CONFIG: &str = "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.ExposedPorts}}";
const EXPECTED_IMAGE_CONFIG: &str =
    r#"65532:65532|["/usr/local/bin/hopwatch"]|["run"]|{"9808/tcp":{}}"#;

#[test]
fn image_runs_read_only_as_nonroot() {
    match netns_support::role().as_deref() {
        Some("dns") => return serve_dns(),
        Some(role) => return scrape(role),
        None => {}
    }
    netns_support::require_root_and(&[("podman", "podman"), ("runc", "runc"), ("ip", "iproute2")]);
    let image = image_archive();
    let dir = TempDir::new("image");
    let config = dir.file("hopwatch.yaml", CONFIG);
    let podman = Podman::new(dir.path());

    let id = podman.run(&["load", "--quiet", "--input", path_str(&image)]);
    let reference = id.trim().rsplit(' ').next().unwrap_or_default().to_string();
    assert_eq!(
        podman
            .run(&["image", "inspect", "--format", IMAGE_CONFIG, &reference])
            .trim(),
        EXPECTED_IMAGE_CONFIG,
        "the image's config (user, entrypoint, cmd, ports)"
    );

    let ns = Netns::new("image");
    let _dns = ns.spawn_self(TEST, "dns");
    let container = podman.start(&ns, &reference, &config);
    let pid = container.pid();

    let lines = ns.run_self(TEST, "scrape", Duration::from_secs(60));
    assert_eq!(
        lines.first().map(String::as_str),
        Some("healthz 200 ok"),
        "/healthz of the agent in the image: {lines:?}\n{}",
        container.logs()
    );
    for target in SELF_PROBES {
        assert!(
            succeeded(&lines, target),
            "no successful probe of {target} in /metrics: {lines:?}\n{}",
            container.logs()
        );
    }

    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let ids = [NONROOT; 4].join("\t");
    assert_eq!(
        field(&status, "Uid:"),
        ids,
        "real, effective, saved, fs uid of pid {pid}"
    );
    assert_eq!(
        field(&status, "Gid:"),
        ids,
        "real, effective, saved, fs gid of pid {pid}"
    );
    assert_eq!(
        field(&status, "CapEff:"),
        "0000000000000000",
        "capabilities of pid {pid}"
    );
    // Supplementary groups: podman, like a kubelet, adds the primary group; never root's.
    let groups = field(&status, "Groups:");
    assert!(
        groups.split_whitespace().all(|g| g == NONROOT),
        "groups {groups} of pid {pid}"
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("its executable");
    assert_eq!(exe, Path::new("/usr/local/bin/hopwatch"), "pid {pid} runs");

    // The container's `/`, seen through the process's own root: even root cannot write there.
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    assert!(root.join("etc/ssl/certs/ca-certificates.crt").is_file());
    for file in ["written-by-the-test", "etc/written-by-the-test"] {
        let err = std::fs::write(root.join(file), "x")
            .expect_err(&format!("writing /{file} in the container must fail"));
        assert_eq!(err.raw_os_error(), Some(EROFS), "writing /{file}: {err}");
    }
}

/// Inside the container's network namespace: a DNS server on 127.0.0.1:53 (glibc's resolver
/// knows no other port) until the parent kills it.
fn serve_dns() {
    let server = dns::DnsServer::start(&["127.0.0.1:53".parse().unwrap()]);
    server.set(DNS_NAME, &[std::net::Ipv4Addr::LOCALHOST]);
    netns_support::say("ready");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Inside the container's network namespace: `/healthz`, then the probe counters once both
/// self-probes have succeeded (or after 20 s, for the parent to report).
fn scrape(role: &str) {
    assert_eq!(role, "scrape");
    let agent: SocketAddr = "127.0.0.1:9808".parse().unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let health = loop {
        match http_get(agent, "/healthz") {
            Ok(response) => break response,
            Err(e) if Instant::now() > until => panic!("no /healthz from the container: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    netns_support::say(&format!("healthz {} {}", health.status, health.body.trim()));
    loop {
        let metrics = http_get(agent, "/metrics")
            .map(|r| r.body)
            .unwrap_or_default();
        let probes: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("hopwatch_probes_total{"))
            .collect();
        if SELF_PROBES.iter().all(|t| succeeded(&probes, t)) || Instant::now() > until {
            probes.iter().for_each(|l| netns_support::say(l));
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of a `/proc/PID/status` line such as `Uid:`, trimmed.
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

/// Whether a `hopwatch_probes_total` line counts successes of `target` (the agent exports
/// the success series at 0 before the first probe).
fn succeeded(lines: &[impl AsRef<str>], target: &str) -> bool {
    let label = format!("target=\"{target}\"");
    lines.iter().map(AsRef::as_ref).any(|l| {
        l.starts_with("hopwatch_probes_total{")
            && l.contains(&label)
            && l.contains("result=\"success\"")
            && l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v > 0.0)
    })
}

fn image_archive() -> PathBuf {
    let path = match std::env::var_os("HOPWATCH_IMAGE") {
        Some(path) => PathBuf::from(path),
        None => {
            let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/image/build");
            let out = Command::new(&build)
                .arg("--path")
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", build.display()));
            assert!(out.status.success(), "{} --path failed", build.display());
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    assert!(
        path.is_file(),
        "no image at {}: build it with tools/image/build (tests/run does)",
        path.display()
    );
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// podman with its storage, run state and events in a directory of the test's.
struct Podman {
    global: Vec<String>,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        let global = [
            ("--root", "storage"),
            ("--runroot", "run"),
            ("--tmpdir", "tmp"),
        ]
        .iter()
        .flat_map(|(flag, sub)| [flag.to_string(), path_str(&dir.join(sub)).to_string()])
        .chain(
            [
                "--storage-driver=vfs",
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
                // crun 1.8 refuses hybrid cgroup hierarchies (v1 with a v2 mount beside it),
                // which CI containers have; runc runs on either.
                "--runtime=runc",
            ]
            .map(String::from),
        )
        .collect();
        Podman { global }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman");
        command.args(&self.global).args(args);
        command
    }

    /// Runs podman to completion; panics with its stderr if it fails. Returns stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = support::process::output_within(self.command(args), Duration::from_secs(120));
        assert!(
            out.status.success(),
            "podman {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the image detached in `ns`, as a kubelet would run it with the DaemonSet's
    /// securityContext, the config mounted read-only.
    fn start<'a>(&'a self, ns: &Netns, image: &str, config: &Path) -> Container<'a> {
        let name = format!("hwt-{}-image", std::process::id());
        let network = format!("ns:/run/netns/{}", ns.name());
        let volume = format!("{}:/etc/hopwatch/hopwatch.yaml:ro", path_str(config));
        self.run(&[
            "run",
            "--detach",
            "--name",
            &name,
            "--network",
            &network,
            "--dns=127.0.0.1",
            "--read-only",
            "--read-only-tmpfs=false",
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            // podman raises these limits to the maximum by default, which a test run in a
            // container (no CAP_SYS_RESOURCE) may not.
            "--ulimit=nofile=4096:4096",
            "--ulimit=nproc=4096:4096",
            "--volume",
            &volume,
            image,
            "run",
            "--config",
            "/etc/hopwatch/hopwatch.yaml",
        ]);
        let container = Container { podman: self, name };
        let pid = container.inspect("{{.State.Pid}}");
        assert!(
            pid.parse::<u32>().is_ok_and(|p| p > 0),
            "container {} has no process ({pid:?}):\n{}",
            container.name,
            container.logs()
        );
        container
    }
}

/// A running container, removed (killed first) on drop.
struct Container<'a> {
    podman: &'a Podman,
    name: String,
}

impl Container<'_> {
    fn inspect(&self, format: &str) -> String {
        self.podman
            .run(&["inspect", "--format", format, &self.name])
            .trim()
            .to_string()
    }

    fn pid(&self) -> u32 {
        self.inspect("{{.State.Pid}}").parse().expect("a PID")
    }

    fn logs(&self) -> String {
        let out = self
            .podman
            .command(&["logs", &self.name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_else(|e| format!("podman logs: {e}"));
        format!("--- container log ---\n{out}")
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        // Not `run`: panicking while a failed test unwinds would abort and hide its message.
        match self
            .podman
            .command(&["rm", "--force", "--time", "0", &self.name])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "podman rm {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("podman rm {}: {e}", self.name),
        }
    }
}
