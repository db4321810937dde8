//! Kubernetes in the running agent: starts discovery, turns each new state of its stores into
//! targets for the scheduler, readiness series and the Service memberships verdicts are
//! judged by.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{DnsTarget, KubernetesConfig, Schedule};
use crate::discovery::model::ObjKey;
use crate::discovery::targets::{self, Derived};
use crate::discovery::watch::{self, ClientError, Discovery, Synced, WatchEvents};
use crate::metrics::Metrics;
use crate::metrics::cluster::{OPTIONAL_RESOURCES, RESOURCES};
use crate::policy::{self, Denial, SelfPod};
use crate::probe::dns::{DnsCheck, LookupOptions, ResolvConf};
use crate::probe::http::{HttpSpec, HttpTarget, HttpUrl, LbExpected, LbTarget, Resolver};
use crate::probe::tcp::ConnectTarget;
use crate::probe::{Hop, Target, TargetKey};
use crate::verdict::{Membership, key};

/// The `server` label of a configured NodeLocal DNSCache.
const NODE_LOCAL_DNS: &str = "node-local-dns";

/// This node's name, from the downward API (`NODE_NAME`), else the host name.
pub fn node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

impl WatchEvents for Metrics {
    fn restarted(&self, resource: &'static str) {
        self.cluster.watch_restarted(resource);
    }
}

/// Starts the watchers for `config`.
pub async fn start(
    config: &KubernetesConfig,
    metrics: Arc<Metrics>,
) -> Result<Discovery, ClientError> {
    let client = watch::client(config.kubeconfig.as_deref()).await?;
    let annotation = config.discovery.selection.annotation.clone();
    Ok(Discovery::start(
        client,
        annotation,
        config.gateway_api,
        metrics,
    ))
}

/// Whether going from `old` to `new` needs the watches started again: only what [`start`]
/// reads (the kubeconfig, the selection annotation, which the stores keep per Service, and
/// whether the Gateway API is watched) does. Every other setting takes effect when the next plan is derived from the same stores.
pub fn watches_change(old: Option<&KubernetesConfig>, new: Option<&KubernetesConfig>) -> bool {
    match (old, new) {
        (Some(old), Some(new)) => {
            old.kubeconfig != new.kubeconfig
                || old.discovery.selection.annotation != new.discovery.selection.annotation
                || old.gateway_api != new.gateway_api
        }
        (None, None) => false,
        _ => true,
    }
}

/// Exports which resources are listed.
pub fn export_synced(metrics: &Metrics, synced: Synced) {
    for (resource, done) in RESOURCES.into_iter().zip([
        synced.services,
        synced.slices,
        synced.nodes,
        synced.ingresses,
        synced.policies,
        synced.namespaces,
    ]) {
        metrics.cluster.set_synced(resource, done);
    }
    for (resource, presence) in OPTIONAL_RESOURCES
        .into_iter()
        .zip([synced.gateways, synced.httproutes])
    {
        metrics.cluster.set_presence(resource, presence);
    }
}

/// What one state of the stores means for this node.
#[derive(Debug, Default)]
pub struct Plan {
    pub targets: Vec<Target>,
    pub members: BTreeMap<ObjKey, Membership>,
    /// Lookups through the cluster DNS Service's ClusterIP, which every verdict depends on.
    pub cluster_dns: Vec<TargetKey>,
    /// Targets the NetworkPolicies deny to the agent (empty until policies and namespaces are
    /// listed, and outside a pod).
    pub denials: BTreeMap<TargetKey, Denial>,
    /// Why annotations of selected Ingresses were not understood, one message each.
    pub invalid: BTreeSet<String>,
    /// Service-hop targets of the sweep: counted in `hopwatch_service_sweep_connects_total`,
    /// judged in the verdict, without series of their own.
    pub sweep: BTreeSet<TargetKey>,
    /// Service-hop targets connected to every interval without being owned (the `always`
    /// Services on every node): counted, not timed, so that their histograms come from
    /// `service_probe_nodes` nodes rather than from all.
    pub untimed: BTreeSet<TargetKey>,
}

impl Plan {
    /// Drops the discovered targets whose key a `configured` (static) target already has, and
    /// returns those keys. The configured target is the one probed: it was written on
    /// purpose, and the scheduler runs one target per key.
    pub fn drop_shadowed(&mut self, configured: &[Target]) -> BTreeSet<TargetKey> {
        let taken: BTreeSet<TargetKey> = configured.iter().map(Target::key).collect();
        let mut shadowed = BTreeSet::new();
        self.targets.retain(|target| {
            let key = target.key();
            let keep = !taken.contains(&key);
            if !keep {
                shadowed.insert(key);
            }
            keep
        });
        shadowed
    }
}

/// Derives this node's plan from the stores and records readiness. Pure but for metrics.
pub fn plan(
    discovery: &Discovery,
    config: &KubernetesConfig,
    node: &str,
    me: Option<&SelfPod>,
    metrics: &Metrics,
) -> Plan {
    let synced = *discovery.synced.borrow();
    let stores = discovery
        .stores
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let derived = targets::derive(&stores, &config.discovery, node);
    let now = std::time::Instant::now();
    for (svc, readiness) in &derived.readiness {
        let flips = stores.transitions.get(svc).copied().unwrap_or(0);
        let owned = derived.owned.contains(svc);
        metrics
            .cluster
            .set_readiness(svc, readiness, flips, owned, now);
    }
    let denials = match me {
        Some(me) if synced.policies && synced.namespaces => policy::denials(&stores, me, &derived),
        _ => BTreeMap::new(),
    };
    drop(stores);
    Plan {
        denials,
        ..build(&derived, config)
    }
}

/// Turns derived targets into scheduler targets and Service memberships.
pub fn build(derived: &Derived, config: &KubernetesConfig) -> Plan {
    let mut plan = Plan {
        invalid: derived.invalid.iter().cloned().collect(),
        ..Plan::default()
    };
    for (svc, readiness) in &derived.readiness {
        let membership = Membership {
            empty: readiness.empty.is_some(),
            ..Membership::default()
        };
        plan.members.insert(svc.clone(), membership);
    }
    for s in &derived.services {
        let schedule = if s.sweep {
            config.sweep
        } else {
            config.connect
        };
        let target = connect(Hop::Service, &s.id, vec![s.address], schedule);
        if s.sweep {
            plan.sweep.insert(target.key.clone());
        } else if !s.owner {
            plan.untimed.insert(target.key.clone());
        }
        let m = member(&mut plan, &s.service);
        m.detailed |= !s.sweep;
        m.service_targets.push(target.key.clone());
        plan.targets.push(Target::Connect(target));
    }
    for p in &derived.pods {
        let target = connect(Hop::Pod, &p.id, p.endpoints.clone(), config.connect);
        let m = member(&mut plan, &p.service);
        m.detailed = true;
        m.pod_targets.push(target.key.clone());
        plan.targets.push(Target::Connect(target));
    }
    let mut servers: Vec<(String, SocketAddr)> = derived
        .dns_servers
        .iter()
        .map(|s| (s.label.clone(), s.address))
        .collect();
    if let Some(address) = config.node_local_dns {
        servers.push((NODE_LOCAL_DNS.to_string(), address));
    }
    let vip = derived
        .dns_servers
        .first()
        .filter(|s| s.label == config.discovery.dns_service.name);
    for (label, address) in &servers {
        for name in &config.dns_names {
            let check = dns_check(
                &format!("{name}@{label}"),
                name,
                label,
                Some(*address),
                None,
                config,
            );
            if vip.is_some_and(|v| v.label == *label) {
                plan.cluster_dns.push(check.target.key());
            }
            plan.targets.push(Target::Dns(check));
        }
    }
    let resolver = edge_resolver(config);
    for lb in &derived.load_balancers {
        let target = LbTarget {
            key: key(Hop::LoadBalancer, &lb.id),
            host: lb.host.clone(),
            port: lb.port,
            expected: LbExpected {
                addresses: lb.expected.addresses.clone(),
                names: lb.expected.names.clone(),
            },
            resolver: resolver.clone(),
            schedule: config.ingress_schedule,
        };
        for svc in &lb.backends {
            if let Some(m) = plan.members.get_mut(svc) {
                m.detailed = true;
                m.lb_targets.push(target.key.clone());
            }
        }
        plan.targets.push(Target::LoadBalancer(target));
    }
    for ing in &derived.ingresses {
        let Ok(url) = HttpUrl::parse(&ing.url) else {
            continue;
        };
        let port = url.port;
        let spec = HttpSpec {
            connect_to: ing.dial.map(|ip| SocketAddr::new(ip, port)),
            expected_status: ing
                .expected_status
                .clone()
                .unwrap_or_else(|| config.ingress_expected_status.clone()),
            insecure: config.ingress_insecure,
            ca: config.ingress_ca.clone(),
            resolver: resolver.clone(),
            ..HttpSpec::new(url)
        };
        let mut spec = config.ingress_request.apply(spec);
        // The Ingress's author controls its `Location`: only its own host is followed.
        spec.cross_host_redirects = false;
        if let Some(headers) = &ing.headers {
            spec.headers = spec.headers.merged(headers);
        }
        let target = HttpTarget {
            key: key(Hop::Ingress, &ing.id),
            spec,
            schedule: config.ingress_schedule,
        };
        if let Some(m) = ing
            .backend
            .as_ref()
            .and_then(|svc| plan.members.get_mut(svc))
        {
            m.detailed = true;
            m.ingress_targets.push(target.key.clone());
        }
        plan.targets.push(Target::Http(target));
    }
    for h in &derived.headless {
        let label = vip.map_or("resolv.conf", |v| v.label.as_str());
        let check = dns_check(
            &h.service.to_string(),
            &h.fqdn,
            label,
            vip.map(|v| v.address),
            Some(h.expected.clone()),
            config,
        );
        let m = member(&mut plan, &h.service);
        m.detailed = true;
        m.dns_target = Some(check.target.key());
        plan.targets.push(Target::Dns(check));
    }
    plan
}

/// Public names are resolved as a pod on this node would: the emulated stub resolver over the
/// configured resolv.conf. An unreadable file leaves the resolver's defaults (127.0.0.1), and the
/// DNS phase then fails visibly.
fn edge_resolver(config: &KubernetesConfig) -> Resolver {
    let text = std::fs::read_to_string(&config.dns_resolv_conf).unwrap_or_default();
    Resolver::Emulated(Box::new(LookupOptions {
        conf: ResolvConf::parse(&text, config.dns_flavor),
        flavor: config.dns_flavor,
        qtypes: config.dns_qtypes,
        server: None,
    }))
}

fn member<'a>(plan: &'a mut Plan, svc: &ObjKey) -> &'a mut Membership {
    plan.members.entry(svc.clone()).or_default()
}

fn connect(hop: Hop, id: &str, addresses: Vec<SocketAddr>, schedule: Schedule) -> ConnectTarget {
    ConnectTarget {
        key: key(hop, id),
        addresses,
        schedule,
    }
}

fn dns_check(
    id: &str,
    name: &str,
    server_label: &str,
    server: Option<SocketAddr>,
    expect: Option<Vec<std::net::IpAddr>>,
    config: &KubernetesConfig,
) -> DnsCheck {
    let target = DnsTarget {
        id: id.to_string(),
        name: name.to_string(),
        flavor: config.dns_flavor,
        qtypes: config.dns_qtypes,
        resolv_conf: config.dns_resolv_conf.clone(),
        server,
        schedule: config.dns_schedule,
    };
    DnsCheck {
        target,
        server: server_label.to_string(),
        expect,
        conf: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tcp(hop: Hop, id: &str, port: u16) -> Target {
        Target::Connect(ConnectTarget {
            key: key(hop, id),
            addresses: vec![SocketAddr::from(([10, 0, 0, 1], port))],
            schedule: Schedule {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
                jitter: Duration::ZERO,
            },
        })
    }

    #[test]
    fn only_the_kubeconfig_and_the_annotation_restart_the_watches() {
        use crate::config::Config;
        let parse = |text: &str| {
            Config::parse(text, "k.yaml")
                .unwrap_or_else(|e| panic!("{e}"))
                .kubernetes
        };
        let base = parse("kubernetes: {}\n");
        let same_watches = [
            "kubernetes: {pod_probe_nodes: 5}\n",
            "kubernetes: {connect: {interval_seconds: 5, service_histogram: false}}\n",
            "kubernetes: {services: {namespaces: [shop]}}\n",
            "kubernetes: {dns: {names: [example.com]}}\n",
        ];
        for text in same_watches {
            assert!(
                !watches_change(base.as_ref(), parse(text).as_ref()),
                "{text}"
            );
        }
        let new_watches = [
            "kubernetes: {kubeconfig: /k}\n",
            "kubernetes: {services: {annotation: example.com/probe}}\n",
            "kubernetes: {gateway_api: {enabled: false}}\n",
            "dns: []\n",
        ];
        for text in new_watches {
            assert!(
                watches_change(base.as_ref(), parse(text).as_ref()),
                "{text}"
            );
        }
        assert!(watches_change(None, base.as_ref()));
        assert!(!watches_change(None, None));
    }

    #[test]
    fn a_configured_target_shadows_a_discovered_one_with_its_key() {
        let configured = [tcp(Hop::Service, "shop/web:80", 8080)];
        let mut plan = Plan {
            targets: vec![
                tcp(Hop::Service, "shop/web:80", 80),
                tcp(Hop::Pod, "shop/web:80", 80),
                tcp(Hop::Service, "shop/api:80", 80),
            ],
            ..Plan::default()
        };
        let shadowed = plan.drop_shadowed(&configured);
        assert_eq!(shadowed, BTreeSet::from([key(Hop::Service, "shop/web:80")]));
        let left: Vec<TargetKey> = plan.targets.iter().map(Target::key).collect();
        assert_eq!(
            left,
            [
                key(Hop::Pod, "shop/web:80"),
                key(Hop::Service, "shop/api:80")
            ],
            "same id on another hop is another target"
        );
    }
}
