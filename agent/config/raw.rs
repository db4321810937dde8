//! The config file as serde reads it, and the error a config that cannot be used gives.
//!
//! Parsing is two steps: serde-saphyr reads the YAML into the raw structs below (shape, types,
//! unknown fields), then [`super::validate`] checks values and turns them into [`Config`].
//! Every leaf is a [`Spanned`] so that a value that parses but is invalid still has its line.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::{Config, locate, validate};

/// A config that cannot be used: where (file, line, column, field path) and why.
///
/// `Display` gives the one-line form `file:line:column: path: message`, for example
/// `config.yaml:12:7: dns[1].timeout_seconds: 40 must be below interval_seconds (30)`.
/// Parts that are not known (no line for an unreadable file, no path for a YAML syntax
/// error) are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name, or whatever the caller passed as origin.
    pub origin: String,
    /// 1-based line of the offending value, key or syntax error.
    pub line: Option<u64>,
    /// 1-based column, in characters.
    pub column: Option<u64>,
    /// The field, like `dns[1].timeout_seconds`; empty when the error is not about one field.
    pub path: String,
    /// What is wrong, in one line.
    pub message: String,
}

impl ConfigError {
    /// The file at `path` could not be read.
    pub fn io(path: &Path, err: &std::io::Error) -> ConfigError {
        ConfigError {
            origin: path.display().to_string(),
            line: None,
            column: None,
            path: String::new(),
            message: format!("cannot read the file: {err}"),
        }
    }

    fn new(origin: &str, problem: Problem) -> ConfigError {
        let known = problem.at.filter(|at| at.line() > 0);
        ConfigError {
            origin: origin.to_string(),
            line: known.map(|at| at.line()),
            column: known.map(|at| at.column()),
            path: problem.path,
            message: problem.message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = self.column {
            write!(f, ":{column}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A [`ConfigError`] before it knows which file it is about.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Problem {
    pub at: Option<Location>,
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(
        at: Option<Location>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            at,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A value with the place in the file it came from.
pub(super) type S<T> = Spanned<T>;

/// The whole file. Every field is optional: an empty file means all defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<S<String>>,
    pub max_concurrency: Option<S<i64>>,
    pub defaults: Option<RawDefaults>,
    pub dns: Option<Vec<RawDnsTarget>>,
    pub http: Option<Vec<RawHttpTarget>>,
    pub tcp: Option<Vec<RawTcpTarget>>,
    pub kubernetes: Option<RawKubernetes>,
    pub otlp: Option<RawOtlp>,
    pub canary: Option<RawCanary>,
}

/// Settings every target inherits unless it sets its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub interval_seconds: Option<S<f64>>,
    pub timeout_seconds: Option<S<f64>>,
    pub jitter_seconds: Option<S<f64>>,
    pub dns: Option<RawDnsDefaults>,
}

/// Defaults of the DNS-specific settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnsDefaults {
    pub flavor: Option<S<String>>,
    pub qtypes: Option<S<Vec<S<String>>>>,
    pub resolv_conf: Option<S<String>>,
}

/// One entry of `dns:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnsTarget {
    pub name: S<String>,
    pub id: Option<S<String>>,
    pub server: Option<S<String>>,
    pub flavor: Option<S<String>>,
    pub qtypes: Option<S<Vec<S<String>>>>,
    pub resolv_conf: Option<S<String>>,
    pub interval_seconds: Option<S<f64>>,
    pub timeout_seconds: Option<S<f64>>,
    pub jitter_seconds: Option<S<f64>>,
}

/// One entry of `http:`: a request to an Ingress (or any URL).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttpTarget {
    pub url: S<String>,
    pub id: Option<S<String>>,
    pub connect_to: Option<S<String>>,
    /// Codes (`200`) and ranges (`"200-299"`); a number is read as its text.
    pub expected_status: Option<S<Vec<S<String>>>>,
    pub insecure: Option<S<bool>>,
    pub ca_file: Option<S<String>>,
    pub resolv_conf: Option<S<String>>,
    pub flavor: Option<S<String>>,
    pub qtypes: Option<S<Vec<S<String>>>>,
    pub interval_seconds: Option<S<f64>>,
    pub timeout_seconds: Option<S<f64>>,
    pub jitter_seconds: Option<S<f64>>,
    pub method: Option<S<String>>,
    pub headers: Option<S<Pairs>>,
    pub body: Option<S<String>>,
    pub expected_body: Option<S<Vec<S<String>>>>,
    pub cert_file: Option<S<String>>,
    pub key_file: Option<S<String>>,
    pub follow_redirects: Option<S<bool>>,
}

/// One entry of `tcp:`: a connect to a fixed address.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcpTarget {
    pub address: S<String>,
    pub id: Option<S<String>>,
    pub hop: Option<S<String>>,
    pub interval_seconds: Option<S<f64>>,
    pub timeout_seconds: Option<S<f64>>,
    pub jitter_seconds: Option<S<f64>>,
}

/// `otlp:`: push the metrics to an OTLP/HTTP endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOtlp {
    pub endpoint: S<String>,
    pub interval_seconds: Option<S<f64>>,
    pub timeout_seconds: Option<S<f64>>,
    pub headers: Option<S<Pairs>>,
    pub resource: Option<S<Pairs>>,
}

/// `canary:`: the canary responder and the canary Service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    pub listen: Option<S<String>>,
    pub service: Option<S<String>>,
}

/// A mapping of strings to strings, in the order written, each key and value with its place.
/// (A `HashMap` would lose the order and a key's line.) Duplicate keys never get here: the
/// YAML read refuses them.
#[derive(Debug, Default)]
pub(super) struct Pairs(pub Vec<(S<String>, S<String>)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        d.deserialize_map(PairsVisitor)
    }
}

struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Pairs;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Pairs(pairs))
    }
}

/// `kubernetes:`: where the cluster is, which Services to probe, and how.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKubernetes {
    pub kubeconfig: Option<S<String>>,
    pub cluster_domain: Option<S<String>>,
    pub pod_probe_nodes: Option<S<i64>>,
    pub services: Option<RawServices>,
    pub connect: Option<RawConnect>,
    pub dns: Option<RawClusterDns>,
    pub ingress: Option<RawIngress>,
    pub gateway_api: Option<RawGatewayApi>,
}

/// `kubernetes.gateway_api`: whether Gateways and HTTPRoutes are watched. Their rules are
/// probed with the `kubernetes.ingress` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGatewayApi {
    pub enabled: Option<S<bool>>,
}

/// `kubernetes.services`: which Services are probed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServices {
    pub namespaces: Option<S<Vec<S<String>>>>,
    pub exclude_namespaces: Option<S<Vec<S<String>>>>,
    pub label_selector: Option<S<String>>,
    pub namespace_selector: Option<S<String>>,
    pub annotation: Option<S<String>>,
    pub annotation_mode: Option<S<String>>,
    pub always: Option<S<Vec<S<String>>>>,
}

/// `kubernetes.connect`: the schedule of the Service and Pod connect probes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnect {
    pub interval_seconds: Option<S<f64>>,
    pub timeout_seconds: Option<S<f64>>,
    pub jitter_seconds: Option<S<f64>>,
    pub service_histogram: Option<S<bool>>,
    pub service_probe_nodes: Option<S<i64>>,
    pub sweep_seconds: Option<S<f64>>,
}

/// `kubernetes.dns`: lookups sent to the cluster DNS Service and each of its replicas.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClusterDns {
    pub service: Option<S<String>>,
    pub names: Option<S<Vec<S<String>>>>,
    pub flavor: Option<S<String>>,
    pub qtypes: Option<S<Vec<S<String>>>>,
    pub resolv_conf: Option<S<String>>,
    pub interval_seconds: Option<S<f64>>,
    pub timeout_seconds: Option<S<f64>>,
    pub jitter_seconds: Option<S<f64>>,
    pub node_local_dns: Option<S<String>>,
}

/// `kubernetes.ingress`: which discovered Ingresses are probed (by class), and how, with their
/// load balancers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIngress {
    pub ca_file: Option<S<String>>,
    pub insecure: Option<S<bool>>,
    pub expected_status: Option<S<Vec<S<String>>>>,
    pub interval_seconds: Option<S<f64>>,
    pub timeout_seconds: Option<S<f64>>,
    pub jitter_seconds: Option<S<f64>>,
    pub classes: Option<S<Vec<S<String>>>>,
    pub probe_nodes: Option<S<i64>>,
    pub method: Option<S<String>>,
    pub headers: Option<S<Pairs>>,
    pub body: Option<S<String>>,
    pub expected_body: Option<S<Vec<S<String>>>>,
    pub cert_file: Option<S<String>>,
    pub key_file: Option<S<String>>,
    pub follow_redirects: Option<S<bool>>,
}

/// Parses and validates YAML text; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    // serde-saphyr skips a byte order mark but counts it in offsets; drop it so that the
    // offsets `locate` slices `text` with stay right.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let raw = read(text).map_err(|problem| ConfigError::new(origin, problem))?;
    validate::config(raw).map_err(|problem| ConfigError::new(origin, problem))
}

/// The YAML step: shape, types and field names.
fn read(text: &str) -> Result<RawConfig, Problem> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        emit_comments: false,
    };
    match serde_saphyr::from_str_with_options::<Option<RawConfig>>(text, options) {
        Ok(raw) => Ok(raw.unwrap_or_default()),
        Err(err) => Err(locate::problem(text, &err)),
    }
}
