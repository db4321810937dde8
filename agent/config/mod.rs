//! Configuration: YAML is parsed into raw serde structs, then validated once into the types
//! below, which cannot be invalid. Every field is documented in `config/README.md`.
//!
//! - `raw`: the serde structs the YAML is read into, and [`ConfigError`].
//! - `validate`: raw structs → [`Config`], defaults applied and cross-field rules checked.
//! - `kubernetes`: the same for the `kubernetes:` section, into [`KubernetesConfig`].
//! - `statics`: the same for the `http:` and `tcp:` target lists, and the settings they share
//!   with `kubernetes.ingress` (expected codes, CA file).
//! - `otlp`: the same for the `otlp:` section, into [`crate::otlp::Settings`].
//! - `canary`: the same for the `canary:` section, into [`CanaryConfig`].
//! - `http_options`: the request settings `http` targets and `kubernetes.ingress` share
//!   (method, headers, body, body patterns, client certificate, redirects).
//! - `fields`: pure checks of single values (names, addresses, durations).
//! - `net_fields`: pure checks of URLs, IP:PORT addresses, status codes and headers.
//! - `k8s_names`: pure checks of Kubernetes names (namespaces, Services, annotation keys).
//! - `locate`: the field path of a serde-saphyr error, which only knows the line.
//!
//! Errors name the file, line, column and field path; the first problem found is reported.

mod canary;
mod fields;
mod http_options;
mod k8s_names;
mod kubernetes;
mod locate;
mod net_fields;
mod otlp;
mod raw;
mod statics;
mod validate;

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::probe::dns::{Flavor, LookupOptions, QueryTypes, ResolvConf};
use crate::probe::http::{
    BodyPattern, CaBundle, ClientCert, Headers, HttpSpec, HttpTarget, HttpUrl, Resolver,
};
use crate::probe::tcp::ConnectTarget;
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
    /// HTTP(S) targets of the Ingress hop, in config order.
    pub http: Vec<StaticHttp>,
    /// TCP connect targets of the Service or Pod hop, in config order, one address each.
    pub tcp: Vec<ConnectTarget>,
    /// Kubernetes discovery; `None` when the file has no `kubernetes:` section, and then
    /// nothing is discovered.
    pub kubernetes: Option<KubernetesConfig>,
    /// Push of the metrics to an OTLP/HTTP endpoint; `None` when the file has no `otlp:`
    /// section.
    pub otlp: Option<crate::otlp::Settings>,
    /// The canary: this agent's responder and the Service judged as infrastructure; both off
    /// when the file has no `canary:` section.
    pub canary: CanaryConfig,
}

/// The validated `canary:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanaryConfig {
    /// Where the agent answers every `GET` with 200 and its node's name, on a port that is
    /// never the metrics port; `None`: it answers nothing.
    pub listen: Option<SocketAddr>,
    /// The Service in front of the agents' responders, whose path is the infrastructure
    /// reference of every other Service's verdict; `None`: no causes are exported.
    pub service: Option<crate::discovery::model::ObjKey>,
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
    /// Schedule of the sweep: the Service-hop connects of every Service port this node neither
    /// owns nor has in `always`, each once per `interval` (`kubernetes.connect.sweep_seconds`).
    pub sweep: Schedule,
    /// Whether Service-hop connects are timed in `hopwatch_probe_duration_seconds`; off, they
    /// are only counted.
    pub service_histogram: bool,
    /// Names looked up through the cluster DNS Service's ClusterIP and through each of its
    /// ready replicas directly. Never empty, no duplicates.
    pub dns_names: Vec<String>,
    pub dns_flavor: Flavor,
    pub dns_qtypes: QueryTypes,
    pub dns_resolv_conf: PathBuf,
    pub dns_schedule: Schedule,
    /// A NodeLocal DNSCache address to probe as one more server.
    pub node_local_dns: Option<SocketAddr>,
    /// The roots discovered Ingresses' certificates are verified against.
    pub ingress_ca: CaBundle,
    /// Complete the TLS handshake with discovered Ingresses whatever their certificate.
    pub ingress_insecure: bool,
    /// Response codes of discovered Ingresses that count as success; never empty.
    pub ingress_expected_status: Vec<RangeInclusive<u16>>,
    /// Schedule of the discovered Ingress and load-balancer probes.
    pub ingress_schedule: Schedule,
    /// Method, headers, body patterns, client certificate and redirects of every discovered
    /// Ingress rule's request; an Ingress's annotations may override the headers.
    pub ingress_request: HttpOptions,
    /// Whether Gateways and HTTPRoutes are watched and their rules probed like Ingress rules
    /// (`kubernetes.gateway_api.enabled`, default true; a cluster without the CRDs is fine).
    pub gateway_api: bool,
}

/// What an HTTP probe sends beyond its URL, and what it follows and checks.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    pub method: hyper::Method,
    /// Values are never logged or exported.
    pub headers: Headers,
    pub body: bytes::Bytes,
    /// Patterns the body must all match; empty: the body is not read.
    pub expected_body: Vec<BodyPattern>,
    pub client_cert: Option<ClientCert>,
    /// Default `true`, as blackbox_exporter.
    pub follow_redirects: bool,
}

impl Default for HttpOptions {
    /// A `GET` without headers, body or client certificate, following redirects.
    fn default() -> HttpOptions {
        HttpOptions {
            method: hyper::Method::GET,
            headers: Headers::default(),
            body: bytes::Bytes::new(),
            expected_body: Vec::new(),
            client_cert: None,
            follow_redirects: true,
        }
    }
}

impl HttpOptions {
    /// `spec` with these settings.
    pub fn apply(&self, spec: HttpSpec) -> HttpSpec {
        HttpSpec {
            method: self.method.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            expected_body: self.expected_body.clone(),
            client_cert: self.client_cert.clone(),
            follow_redirects: self.follow_redirects,
            ..spec
        }
    }
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

/// An entry of `http:`: one request, on a fresh connection each time, to an Ingress or any URL.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticHttp {
    /// The `target` label value: the configured `id`, or the URL as written.
    pub id: String,
    pub url: HttpUrl,
    /// Dial this address instead of resolving the URL's host.
    pub connect_to: Option<SocketAddr>,
    /// Codes that count as success; never empty.
    pub expected_status: Vec<RangeInclusive<u16>>,
    /// Complete the handshake whatever the certificate; its verdict is still reported.
    pub insecure: bool,
    /// The roots the certificate is verified against, loaded when the file is read.
    pub ca: CaBundle,
    /// How the URL's host is resolved: `None` = the system resolver (`getaddrinfo`).
    pub resolver: Option<StubResolver>,
    pub schedule: Schedule,
    pub request: HttpOptions,
}

/// The emulated stub resolver an `http` target resolves its host with.
#[derive(Debug, Clone, PartialEq)]
pub struct StubResolver {
    pub resolv_conf: PathBuf,
    pub flavor: Flavor,
    pub qtypes: QueryTypes,
}

impl StaticHttp {
    pub fn key(&self) -> TargetKey {
        TargetKey {
            hop: Hop::Ingress,
            id: self.id.clone(),
        }
    }

    /// The target the scheduler runs. An emulated resolver's resolv.conf is read now, so a
    /// change to it applies at the next reload; an unreadable one leaves the resolver's
    /// defaults (a nameserver on 127.0.0.1), and the DNS phase then fails visibly.
    pub fn target(&self) -> HttpTarget {
        let resolver = match &self.resolver {
            None => Resolver::System,
            Some(stub) => {
                let text = std::fs::read_to_string(&stub.resolv_conf).unwrap_or_default();
                Resolver::Emulated(Box::new(LookupOptions {
                    conf: ResolvConf::parse(&text, stub.flavor),
                    flavor: stub.flavor,
                    qtypes: stub.qtypes,
                    server: None,
                }))
            }
        };
        let spec = HttpSpec {
            connect_to: self.connect_to,
            expected_status: self.expected_status.clone(),
            insecure: self.insecure,
            ca: self.ca.clone(),
            resolver,
            ..HttpSpec::new(self.url.clone())
        };
        HttpTarget {
            key: self.key(),
            spec: self.request.apply(spec),
            schedule: self.schedule,
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
