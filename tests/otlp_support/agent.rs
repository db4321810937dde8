//! `hopwatch run` as a child process with an `otlp:` section, for the end-to-end tests.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use super::samples::{Sample, text_samples};
use crate::support::net::Blackhole;
use crate::support::process::{Process, http_get};
use crate::support::{POD_RESOLV_CONF, TempDir};

/// `hopwatch run` with a DNS target that never gets an answer and an `otlp:` section.
pub struct Agent {
    pub listen: SocketAddr,
    pub process: Process,
    _blackhole: Blackhole,
    _dir: TempDir,
}

impl Agent {
    /// Starts the agent pushing to `endpoint` every `push_seconds`, and waits until it serves
    /// `/metrics`.
    pub fn start(endpoint: &str, push_seconds: u32) -> Agent {
        let dir = TempDir::new("otlp");
        let blackhole = Blackhole::start();
        let listen = crate::support::free_tcp_addr();
        let resolv_conf = dir.file("resolv.conf", POD_RESOLV_CONF);
        let config = format!(
            "listen: \"{listen}\"\n\
             dns:\n  - name: web.example.\n    resolv_conf: {}\n    server: \"{}\"\n    \
             interval_seconds: 1\n    timeout_seconds: 0.5\n\
             otlp:\n  endpoint: {endpoint}\n  interval_seconds: {push_seconds}\n  \
             headers:\n    Authorization: Bearer e2e\n  resource:\n    k8s.cluster.name: lab\n",
            resolv_conf.display(),
            blackhole.addr(),
        );
        let path = dir.file("config.yaml", &config);
        let mut command = Command::new(env!("CARGO_BIN_EXE_hopwatch"));
        command
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .env("POD_NAME", "hopwatch-e2e")
            .env("NODE_NAME", "node-e2e")
            .env("POD_IP", "127.0.0.1");
        let process = Process::spawn("hopwatch run", command, dir.path().join("agent.log"));
        let mut agent = Agent {
            listen,
            process,
            _blackhole: blackhole,
            _dir: dir,
        };
        agent.wait_until("serve /metrics", |a| http_get(a.listen, "/metrics").is_ok());
        agent
    }

    /// Polls `done` every 50 ms; fails the test with the agent's log after 20 s.
    pub fn wait_until(&mut self, what: &str, done: impl Fn(&Agent) -> bool) {
        let give_up = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            self.process.assert_running();
            let log = self.process.log();
            assert!(
                Instant::now() < give_up,
                "the agent did not {what} in 20 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn scrape(&mut self) -> Vec<Sample> {
        self.process.assert_running();
        let response = http_get(self.listen, "/metrics")
            .unwrap_or_else(|e| panic!("/metrics: {e}\n{}", self.process.log()));
        text_samples(&response.body)
    }

    /// Sends SIGTERM, as Kubernetes does, and waits for the process to exit.
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.process.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -TERM failed");
        self.wait_until("exit on SIGTERM", Agent::exited);
    }

    /// Whether the process has exited: gone, or a zombie waiting for the guard to reap it.
    fn exited(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.process.pid()));
        // The state follows the parenthesised command name, which may contain spaces.
        let state = stat.ok().and_then(|s| {
            let rest = s.rsplit_once(')')?.1.trim_start().to_string();
            rest.chars().next()
        });
        matches!(state, None | Some('Z' | 'X'))
    }
}
