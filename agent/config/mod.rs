//! Configuration: YAML is parsed into raw serde structs, then validated once into the types
//! below, which cannot be invalid. Every field is documented in `config/README.md`.
//!
//! - `raw`: the serde structs the YAML is read into, and [`ConfigError`].
//! - `validate`: raw structs → [`Config`], defaults applied and cross-field rules checked.
//! - `kubernetes`: the same for the `kubernetes:` section, into [`KubernetesConfig`].
//! - `fields`: pure checks of single values (names, addresses, durations).
//! - `k8s_names`: pure checks of Kubernetes names (namespaces, Services, annotation keys).
//! - `locate`: the field path of a serde-saphyr error, which only knows the line.
//!
//! Errors name the file, line, column and field path; the first problem found is reported.

mod fields;
mod k8s_names;
mod kubernetes;
mod locate;
mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::probe::dns::{Flavor, QueryTypes};
use crate::probe::{Hop, TargetKey};

pub use raw::ConfigError;

/// The embedded default configuration, used by `hopwatch run` when no `--config` is given.
/// `agent.rs` adapts it to the machine (in a cluster or not) before use.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.yaml");

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the HTTP server listens on (`/metrics`, `/healthz`, `/readyz`).
    pub listen: SocketAddr,
    /// At most this many probes run at the same time.
    pub max_concurrency: usize,
    /// DNS targets, in config order.
    pub dns: Vec<DnsTarget>,
    /// Kubernetes discovery; `None` when the file has no `kubernetes:` section, and then
    /// nothing is discovered.
    pub kubernetes: Option<KubernetesConfig>,
}

/// The validated `kubernetes:` section: how to reach the API server, which Services to
/// probe, and the schedules and settings of the probes discovery creates.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesConfig {
    /// Explicit kubeconfig; `None` = `$KUBECONFIG`, `~/.kube/config`, then the in-cluster
    /// service account.
    pub kubeconfig: Option<PathBuf>,
    /// Selection, `pod_probe_nodes`, `cluster_domain` (without a trailing dot) and the
    /// cluster DNS Service.
    pub discovery: crate::discovery::targets::Settings,
    /// Schedule of the Service (ClusterIP) and Pod (direct) TCP connect probes.
    pub connect: Schedule,
    /// Names looked up through the cluster DNS Service's ClusterIP and through each of its
    /// ready replicas directly. Never empty, no duplicates.
    pub dns_names: Vec<String>,
    pub dns_flavor: Flavor,
    pub dns_qtypes: QueryTypes,
    pub dns_resolv_conf: PathBuf,
    pub dns_schedule: Schedule,
    /// A NodeLocal DNSCache address to probe as one more server.
    pub node_local_dns: Option<SocketAddr>,
}

/// When and for how long a target is probed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub interval: Duration,
    /// Always below `interval`.
    pub timeout: Duration,
    /// Each start is moved by a random amount in `[0, jitter]`. Always below `interval`.
    pub jitter: Duration,
}

/// A name looked up the way a pod's stub resolver would.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsTarget {
    /// The `target` label value: the configured `id`, or the name as written.
    pub id: String,
    /// The name to look up, as an application would pass it to getaddrinfo.
    pub name: String,
    pub flavor: Flavor,
    pub qtypes: QueryTypes,
    /// The resolv.conf whose search list, ndots and options are emulated.
    pub resolv_conf: PathBuf,
    /// Send every query to this server instead of the resolv.conf nameservers.
    pub server: Option<SocketAddr>,
    pub schedule: Schedule,
}

impl DnsTarget {
    pub fn key(&self) -> TargetKey {
        TargetKey {
            hop: Hop::Dns,
            id: self.id.clone(),
        }
    }
}

impl Config {
    /// Parses and validates YAML text. `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        raw::parse(text, origin)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
        Config::parse(&text, &path.display().to_string())
    }
}
