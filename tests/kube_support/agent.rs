//! `hopwatch run` as a child process watching a [`Cluster`], with its config written from
//! [`AgentOptions`], scraped over HTTP and killed by PID when its guard drops.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Cluster, DNS_NAME};
use crate::support::TempDir;
use crate::support::process::{Process, http_get};
use crate::support::prom::Exposition;

const BIN: &str = env!("CARGO_BIN_EXE_hopwatch");

/// The node name of an agent the cluster's Node list does not name.
pub const OUTSIDE: &str = "outside-the-cluster";

/// How an agent is run.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// `NODE_NAME`. By default [`OUTSIDE`]: a node the cluster does not list, so the one agent
    /// under test takes every item, as one run from outside the DaemonSet does; a test of the
    /// sharding gives each agent one of [`super::NODES`].
    pub node: String,
    pub pod_probe_nodes: usize,
    /// The `kubernetes.services` mapping as YAML lines indented by four spaces, if any.
    pub services: Option<String>,
    /// More `kubernetes` keys, as YAML lines indented by two spaces.
    pub kubernetes: String,
    /// `kubernetes.connect.service_histogram`.
    pub service_histogram: bool,
    /// The nameserver of the resolv.conf the edge hops resolve public names with; `None`
    /// keeps the cluster's, whose nameserver answers nothing.
    pub public_nameserver: Option<Ipv4Addr>,
    /// `kubernetes.kubeconfig`, instead of the fake API server's.
    pub kubeconfig: Option<String>,
    /// More top-level keys, as YAML lines (e.g. a `canary:` section).
    pub top_level: String,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            node: OUTSIDE.to_string(),
            pod_probe_nodes: 3,
            services: None,
            kubernetes: String::new(),
            service_histogram: true,
            public_nameserver: None,
            kubeconfig: None,
            top_level: String::new(),
        }
    }
}

/// `hopwatch run` watching a [`Cluster`]; killed by PID on drop.
pub struct Agent {
    pub listen: SocketAddr,
    process: Process,
    dir: TempDir,
}

impl Agent {
    /// Starts an agent and waits until it serves `/metrics`.
    pub fn start(cluster: &Cluster, options: &AgentOptions) -> Agent {
        let dir = TempDir::new(&format!("agent-{}", options.node));
        let listen = free_addr(cluster.agent_ip());
        let config = config(cluster, listen, options, &dir);
        let path = dir.file("config.yaml", &config);
        let mut command = Command::new(BIN);
        command
            .args(["run", "--config"])
            .arg(&path)
            .env("NODE_NAME", &options.node)
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("RUST_LOG", "info");
        let log = dir.path().join("agent.log");
        let process = Process::spawn(&format!("hopwatch ({})", options.node), command, log);
        let mut agent = Agent {
            listen,
            process,
            dir,
        };
        agent.wait_for(Duration::from_secs(20), "serve /metrics", |_| true);
        agent
    }

    /// Rewrites the agent's config file for `options` (same listen address) and waits until
    /// the agent has applied it: the file watch reloads it.
    pub fn reconfigure(&mut self, cluster: &Cluster, options: &AgentOptions) {
        let applied =
            |e: &Exposition| e.value("hopwatch_config_reloads_total", &[("result", "success")]);
        let before = applied(&self.scrape());
        self.dir.file(
            "config.yaml",
            &config(cluster, self.listen, options, &self.dir),
        );
        self.wait_for(Duration::from_secs(10), "apply the new config", |e| {
            applied(e) > before
        });
    }

    /// What the agent logged so far.
    #[allow(
        dead_code,
        reason = "tests/kube_ingress.rs reads it, tests/kube_discovery.rs not"
    )]
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The status of `GET /readyz`.
    pub fn readyz(&mut self) -> u16 {
        self.process.assert_running();
        http_get(self.listen, "/readyz")
            .unwrap_or_else(|e| panic!("/readyz on {}: {e}", self.listen))
            .status
    }

    /// Polls `/readyz` until it answers 200.
    pub fn wait_ready(&mut self, limit: Duration) {
        let give_up = Instant::now() + limit;
        while self.readyz() != 200 {
            assert!(
                Instant::now() < give_up,
                "/readyz still not 200 after {limit:?}:\n{}",
                summary(&self.text())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exposition text of `GET /metrics`, `None` while the server does not answer.
    fn try_text(&self) -> Option<String> {
        let response = http_get(self.listen, "/metrics").ok()?;
        assert_eq!(response.status, 200, "/metrics: {}", response.body);
        Some(response.body)
    }

    /// One scrape, as text.
    pub fn text(&mut self) -> String {
        self.process.assert_running();
        self.try_text()
            .unwrap_or_else(|| panic!("/metrics on {} stopped answering", self.listen))
    }

    /// One scrape, parsed.
    pub fn scrape(&mut self) -> Exposition {
        parse(&self.text())
    }

    /// Scrapes every 100 ms until `done` holds, and returns that scrape. Fails the test after
    /// `limit` with the last scrape's hopwatch series (the agent's log follows from its drop).
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Exposition) -> bool,
    ) -> Exposition {
        let give_up = Instant::now() + limit;
        loop {
            self.process.assert_running();
            let text = self.try_text();
            if let Some(e) = text.as_deref().map(parse)
                && done(&e)
            {
                return e;
            }
            if Instant::now() >= give_up {
                panic!(
                    "the agent did not {what} within {limit:?}; last scrape:\n{}",
                    summary(text.as_deref().unwrap_or("(no answer)"))
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// An address on `ip` with a port that was free a moment ago.
fn free_addr(ip: Ipv4Addr) -> SocketAddr {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("cannot bind {ip}: {e}"))
}

fn config(cluster: &Cluster, listen: SocketAddr, options: &AgentOptions, dir: &TempDir) -> String {
    let resolv = match options.public_nameserver {
        Some(ip) => dir.file(
            "resolv.conf",
            &super::RESOLV_CONF.replace("nameserver 127.0.0.1", &format!("nameserver {ip}")),
        ),
        None => cluster.resolv_conf.clone(),
    };
    let services = options
        .services
        .as_ref()
        .map(|yaml| format!("  services:\n{yaml}"))
        .unwrap_or_default();
    format!(
        "listen: \"{listen}\"\n\
         kubernetes:\n  \
           kubeconfig: \"{kubeconfig}\"\n  \
           pod_probe_nodes: {k}\n\
         {services}  \
           connect: {{interval_seconds: 1, timeout_seconds: 0.5, service_histogram: {timed}}}\n  \
           dns:\n    \
             names: [{DNS_NAME}]\n    \
             interval_seconds: 1\n    \
             timeout_seconds: 0.8\n    \
             resolv_conf: \"{resolv}\"\n\
         {extra}\
         {top_level}",
        extra = options.kubernetes,
        top_level = options.top_level,
        kubeconfig = options.kubeconfig.clone().unwrap_or_else(|| cluster
            .fake
            .kubeconfig()
            .display()
            .to_string()),
        k = options.pod_probe_nodes,
        timed = options.service_histogram,
        resolv = resolv.display(),
    )
}

fn parse(text: &str) -> Exposition {
    Exposition::parse(text).unwrap_or_else(|e| panic!("/metrics is not exposition text: {e}"))
}

/// The hopwatch series of a scrape without histogram buckets, for failure messages.
fn summary(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("hopwatch_") && !l.contains("_bucket{"))
        .collect::<Vec<_>>()
        .join("\n")
}
