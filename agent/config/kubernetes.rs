//! The `kubernetes:` section → [`KubernetesConfig`]: which Services discovery selects, the
//! schedule of the connect probes, the lookups sent to the cluster DNS Service, and how
//! discovered Ingresses and load balancers are probed, each with its defaults applied and
//! checked as strictly as the static targets.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use super::fields;
use super::http_options;
use super::k8s_names;
use super::raw::{Problem, RawClusterDns, RawConnect, RawIngress, RawKubernetes, RawServices, S};
use super::statics;
use super::validate::{
    Computed, Defaults, PROBE_DEFAULTS, Timing, check, check_opt, qtypes, schedule, timing,
};
use super::{HttpOptions, KubernetesConfig, Schedule};
use crate::discovery::model::ObjKey;
use crate::discovery::select::{AnnotationMode, LabelSelector, Selection};
use crate::discovery::targets::Settings;
use crate::probe::dns::{Flavor, QueryTypes};
use crate::probe::http::{CaBundle, DEFAULT_EXPECTED_STATUS};

const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
const DEFAULT_POD_PROBE_NODES: usize = 3;
/// Nodes that connect to each Service port's ClusterIP every interval.
const DEFAULT_SERVICE_PROBE_NODES: usize = 3;
/// Nodes that probe each Ingress rule and load-balancer host.
const DEFAULT_EDGE_PROBE_NODES: usize = 3;
/// Every node connects to every Service port once in this period.
const DEFAULT_SWEEP_SECONDS: f64 = 600.0;
const DEFAULT_ANNOTATION: &str = "hopwatch.io/probe";
/// The cluster DNS Service; also probed whatever the filters say.
const DEFAULT_DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");
/// The API server's Service, which every cluster has.
const API_SERVICE: (&str, &str) = ("default", "kubernetes");
const DEFAULT_DNS_NAME: &str = "kubernetes.default";
const CONNECT_INTERVAL_SECONDS: f64 = 15.0;
const CONNECT_TIMEOUT_SECONDS: f64 = 3.0;

/// A TCP connect is quick or lost: its timeout is short and its interval shorter than a
/// lookup's.
const CONNECT_DEFAULTS: Computed = Computed {
    interval: CONNECT_INTERVAL_SECONDS,
    timeout: connect_timeout,
    jitter: fields::default_jitter,
};

/// The connect timeout when none is configured: 3 s, or 80 % of an interval of 3 s or less.
fn connect_timeout(interval: f64) -> f64 {
    if interval > CONNECT_TIMEOUT_SECONDS {
        CONNECT_TIMEOUT_SECONDS
    } else {
        0.8 * interval
    }
}

/// The whole section; `defaults` supplies what `kubernetes.dns` does not set.
pub(super) fn section(
    raw: RawKubernetes,
    defaults: &Defaults,
) -> Result<KubernetesConfig, Problem> {
    let kubeconfig = check_opt(raw.kubeconfig.as_ref(), "kubernetes.kubeconfig", |s| {
        fields::file_path(s)
    })?;
    let cluster_domain = check_opt(
        raw.cluster_domain.as_ref(),
        "kubernetes.cluster_domain",
        |s| k8s_names::cluster_domain(s),
    )?;
    let pod_probe_nodes = check_opt(
        raw.pod_probe_nodes.as_ref(),
        "kubernetes.pod_probe_nodes",
        |&n| k8s_names::probe_nodes(n),
    )?;
    let selection = services(raw.services.unwrap_or_default())?;
    let mut raw_connect = raw.connect.unwrap_or_default();
    let service_histogram = raw_connect
        .service_histogram
        .as_ref()
        .is_none_or(|b| b.value);
    let service_probe_nodes = check_opt(
        raw_connect.service_probe_nodes.as_ref(),
        "kubernetes.connect.service_probe_nodes",
        |&n| k8s_names::probe_nodes(n),
    )?;
    let sweep_seconds = raw_connect.sweep_seconds.take();
    let connect = connect(raw_connect)?;
    let sweep = sweep(sweep_seconds.as_ref(), connect)?;
    let dns = raw.dns.unwrap_or_default();
    let dns_service = check_opt(dns.service.as_ref(), "kubernetes.dns.service", |s| {
        k8s_names::service(s)
    })?;
    let discovery = Settings {
        selection,
        pod_probe_nodes: pod_probe_nodes.unwrap_or(DEFAULT_POD_PROBE_NODES),
        service_probe_nodes: service_probe_nodes.unwrap_or(DEFAULT_SERVICE_PROBE_NODES),
        edge_probe_nodes: DEFAULT_EDGE_PROBE_NODES,
        cluster_domain: cluster_domain.unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.to_string()),
        dns_service: dns_service.unwrap_or_else(|| key(DEFAULT_DNS_SERVICE)),
        ingress_classes: Vec::new(),
    };
    let dns = cluster_dns(&dns, defaults)?;
    let ingress = ingress(&raw.ingress.unwrap_or_default(), defaults)?;
    let discovery = Settings {
        ingress_classes: ingress.classes,
        edge_probe_nodes: ingress.probe_nodes,
        ..discovery
    };
    Ok(KubernetesConfig {
        kubeconfig,
        discovery,
        connect,
        sweep,
        service_histogram,
        dns_names: dns.names,
        dns_flavor: dns.flavor,
        dns_qtypes: dns.qtypes,
        dns_resolv_conf: dns.resolv_conf,
        dns_schedule: dns.schedule,
        node_local_dns: dns.node_local_dns,
        ingress_ca: ingress.ca,
        ingress_insecure: ingress.insecure,
        ingress_expected_status: ingress.expected_status,
        ingress_schedule: ingress.schedule,
        ingress_request: ingress.request,
        gateway_api: raw
            .gateway_api
            .and_then(|g| g.enabled)
            .is_none_or(|b| b.value),
    })
}

fn key((namespace, name): (&str, &str)) -> ObjKey {
    ObjKey::new(namespace, name)
}

/// `kubernetes.services`.
fn services(raw: RawServices) -> Result<Selection, Problem> {
    let at = |field: &str| format!("kubernetes.services.{field}");
    let namespace = |s: &String| k8s_names::namespace(s).map(|()| s.clone());
    let namespaces = unique(
        raw.namespaces.as_ref(),
        &at("namespaces"),
        "namespace",
        namespace,
    )?;
    let exclude_namespaces = unique(
        raw.exclude_namespaces.as_ref(),
        &at("exclude_namespaces"),
        "namespace",
        namespace,
    )?;
    let label_selector = check_opt(raw.label_selector.as_ref(), &at("label_selector"), |s| {
        k8s_names::label_selector(s)
    })?;
    let namespace_selector = check_opt(
        raw.namespace_selector.as_ref(),
        &at("namespace_selector"),
        |s| k8s_names::label_selector(s),
    )?;
    let annotation = check_opt(raw.annotation.as_ref(), &at("annotation"), |s| {
        k8s_names::annotation_key(s)
    })?;
    let mode = check_opt(raw.annotation_mode.as_ref(), &at("annotation_mode"), |s| {
        k8s_names::annotation_mode(s)
    })?;
    let always = unique(raw.always.as_ref(), &at("always"), "Service", |s| {
        k8s_names::service(s)
    })?;
    Ok(Selection {
        namespaces: namespaces.unwrap_or_default(),
        exclude_namespaces: exclude_namespaces.unwrap_or_default(),
        label_selector: label_selector.unwrap_or_else(LabelSelector::default),
        namespace_selector: namespace_selector.unwrap_or_else(LabelSelector::default),
        annotation: annotation.unwrap_or_else(|| DEFAULT_ANNOTATION.to_string()),
        mode: mode.unwrap_or(AnnotationMode::OptOut),
        always: always.unwrap_or_else(|| vec![key(DEFAULT_DNS_SERVICE), key(API_SERVICE)]),
    })
}

/// A list of strings, each checked by `f` and written at most once; `what` names an entry
/// in the message about a duplicate.
fn unique<T>(
    list: Option<&S<Vec<S<String>>>>,
    path: &str,
    what: &str,
    f: impl Fn(&String) -> Result<T, String>,
) -> Result<Option<Vec<T>>, Problem> {
    let Some(list) = list else { return Ok(None) };
    let mut out = Vec::with_capacity(list.value.len());
    for (i, entry) in list.value.iter().enumerate() {
        let item = format!("{path}[{i}]");
        out.push(check(entry, &item, &f)?);
        if let Some(first) = list.value[..i].iter().position(|e| e.value == entry.value) {
            let message = format!(
                "duplicate {what} {}, {path}[{first}] has it too",
                fields::show(&entry.value)
            );
            return Err(Problem::new(Some(entry.referenced), item, message));
        }
    }
    Ok(Some(out))
}

/// `kubernetes.connect`: its own defaults, nothing inherited from `defaults`.
fn connect(raw: RawConnect) -> Result<Schedule, Problem> {
    let own = timing(
        "kubernetes.connect",
        raw.interval_seconds.as_ref(),
        raw.timeout_seconds.as_ref(),
        raw.jitter_seconds.as_ref(),
    )?;
    schedule(&own, &Timing::default(), &CONNECT_DEFAULTS)
}

/// `kubernetes.connect.sweep_seconds`: how long every node takes to connect once to every
/// Service port it does not probe every interval. Not shorter than the connect interval.
fn sweep(raw: Option<&S<f64>>, connect: Schedule) -> Result<Schedule, Problem> {
    let path = "kubernetes.connect.sweep_seconds";
    let every = connect.interval.as_secs_f64();
    let seconds = check_opt(raw, path, |&v| {
        let v = fields::interval(v)?;
        if v < every {
            return Err(format!(
                "{v} is shorter than the connect interval ({every} s): the sweep covers what \
                 is not probed every interval, so it cannot be faster"
            ));
        }
        Ok(v)
    })?
    .unwrap_or(DEFAULT_SWEEP_SECONDS.max(every));
    Ok(Schedule {
        interval: std::time::Duration::from_secs_f64(seconds),
        ..connect
    })
}

/// `kubernetes.dns`, validated.
struct ClusterDns {
    names: Vec<String>,
    flavor: Flavor,
    qtypes: QueryTypes,
    resolv_conf: PathBuf,
    schedule: Schedule,
    node_local_dns: Option<SocketAddr>,
}

/// `kubernetes.dns`, with `defaults` inherited as a DNS target inherits them.
fn cluster_dns(raw: &RawClusterDns, defaults: &Defaults) -> Result<ClusterDns, Problem> {
    let at = |field: &str| format!("kubernetes.dns.{field}");
    let names = unique(raw.names.as_ref(), &at("names"), "name", |s| {
        fields::dns_name(s).map(|()| s.clone())
    })?;
    if let Some(list) = raw.names.as_ref().filter(|l| l.value.is_empty()) {
        let message = "must list at least one name; leave `names` out for the default";
        return Err(Problem::new(Some(list.referenced), at("names"), message));
    }
    let flavor = check_opt(raw.flavor.as_ref(), &at("flavor"), |s| fields::flavor(s))?;
    let qtypes = raw
        .qtypes
        .as_ref()
        .map(|v| qtypes(v, &at("qtypes")))
        .transpose()?;
    let resolv_conf = check_opt(raw.resolv_conf.as_ref(), &at("resolv_conf"), |s| {
        fields::file_path(s)
    })?;
    let own = timing(
        "kubernetes.dns",
        raw.interval_seconds.as_ref(),
        raw.timeout_seconds.as_ref(),
        raw.jitter_seconds.as_ref(),
    )?;
    let schedule = schedule(&own, &defaults.timing, &PROBE_DEFAULTS)?;
    let node_local_dns = check_opt(raw.node_local_dns.as_ref(), &at("node_local_dns"), |s| {
        fields::server(s)
    })?;
    Ok(ClusterDns {
        names: names.unwrap_or_else(|| vec![DEFAULT_DNS_NAME.to_string()]),
        flavor: flavor.unwrap_or(defaults.flavor),
        qtypes: qtypes.unwrap_or(defaults.qtypes),
        resolv_conf: resolv_conf.unwrap_or_else(|| defaults.resolv_conf.clone()),
        schedule,
        node_local_dns,
    })
}

/// `kubernetes.ingress`, validated.
struct Ingress {
    ca: CaBundle,
    insecure: bool,
    expected_status: Vec<RangeInclusive<u16>>,
    schedule: Schedule,
    /// Only Ingresses of these classes; empty for all.
    classes: Vec<String>,
    /// Nodes probing each Ingress rule and load-balancer host.
    probe_nodes: usize,
    request: HttpOptions,
}

/// `kubernetes.ingress`: which Ingresses by class, and the settings of an `http` target for
/// each; the schedule, inherited from `defaults`, is also the load-balancer hop's.
fn ingress(raw: &RawIngress, defaults: &Defaults) -> Result<Ingress, Problem> {
    let at = |field: &str| format!("kubernetes.ingress.{field}");
    let ca = statics::ca_file(raw.ca_file.as_ref(), &at("ca_file"))?;
    let expected_status = raw
        .expected_status
        .as_ref()
        .map(|list| statics::expected_status(list, &at("expected_status")))
        .transpose()?;
    let classes = unique(raw.classes.as_ref(), &at("classes"), "IngressClass", |s| {
        k8s_names::ingress_class(s)
    })?;
    let probe_nodes = check_opt(raw.probe_nodes.as_ref(), &at("probe_nodes"), |&n| {
        k8s_names::probe_nodes(n)
    })?;
    let own = timing(
        "kubernetes.ingress",
        raw.interval_seconds.as_ref(),
        raw.timeout_seconds.as_ref(),
        raw.jitter_seconds.as_ref(),
    )?;
    Ok(Ingress {
        ca: ca.unwrap_or(CaBundle::WebPki),
        insecure: raw.insecure.as_ref().is_some_and(|b| b.value),
        expected_status: expected_status.unwrap_or_else(|| vec![DEFAULT_EXPECTED_STATUS]),
        schedule: schedule(&own, &defaults.timing, &PROBE_DEFAULTS)?,
        classes: classes.unwrap_or_default(),
        probe_nodes: probe_nodes.unwrap_or(DEFAULT_EDGE_PROBE_NODES),
        request: http_options::options("kubernetes.ingress", &http_options::raw_options!(raw))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_defaults_stay_below_the_interval() {
        assert_eq!(connect_timeout(15.0), 3.0);
        assert_eq!(connect_timeout(2.5), 2.0);
        assert_eq!(connect_timeout(2.0), 1.6);
        for i in [
            fields::MIN_SECONDS,
            0.5,
            3.0,
            3.001,
            15.0,
            fields::MAX_INTERVAL_SECONDS,
        ] {
            assert!(connect_timeout(i) < i && connect_timeout(i) > 0.0, "{i}");
        }
    }
}
