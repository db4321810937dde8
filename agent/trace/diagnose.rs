//! The pure reasoning behind a broken Service: does its selector pick any pod, and if not, which
//! label is off; which port a backend reference, a named targetPort and an endpoint resolve
//! to; and whether the pod declares the port its Service targets.

use std::collections::BTreeMap;

use super::views::PodView;
use crate::discovery::ingress::BackendPort;
use crate::discovery::model::{ServicePort, SliceInfo, TargetPort};

/// How a Service's selector compares with the labels of its namespace's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorFinding {
    /// These pods carry every label of the selector.
    Matches(Vec<String>),
    /// No pod matches, but these pods match all labels but `key`, whose value they have
    /// (`None`: they lack the label).
    OffByOne {
        key: String,
        expected: String,
        actual: Option<String>,
        pods: Vec<String>,
    },
    /// The closest pods still miss several labels: these keys.
    Partial {
        keys: Vec<String>,
        pods: Vec<String>,
    },
    /// No pod carries any label of the selector.
    NoneCarries,
    /// The namespace has no pods.
    NoPods,
}

/// Compares `selector` with every pod's labels. Kubernetes Service selectors are equality
/// only, so a pod either carries `key=value` or it does not.
pub fn compare_selector(selector: &BTreeMap<String, String>, pods: &[PodView]) -> SelectorFinding {
    if pods.is_empty() {
        return SelectorFinding::NoPods;
    }
    let misses = |pod: &PodView| -> Vec<&String> {
        selector
            .iter()
            .filter(|(k, v)| pod.labels.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect()
    };
    let fewest = pods.iter().map(|p| misses(p).len()).min().unwrap_or(0);
    let closest: Vec<&PodView> = pods.iter().filter(|p| misses(p).len() == fewest).collect();
    let names = |ps: &[&PodView]| ps.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    let first_miss = |p: &PodView| misses(p)[0].clone();
    match fewest {
        0 => SelectorFinding::Matches(names(&closest)),
        1 if selector.len() > 1 => off_by_one(selector, &closest, first_miss),
        // One key: the pods that carry it with another value are the ones meant.
        1 => {
            let carriers: Vec<&PodView> = closest
                .into_iter()
                .filter(|p| selector.keys().all(|k| p.labels.contains_key(k)))
                .collect();
            if carriers.is_empty() {
                SelectorFinding::NoneCarries
            } else {
                off_by_one(selector, &carriers, first_miss)
            }
        }
        n if n == selector.len() => SelectorFinding::NoneCarries,
        _ => SelectorFinding::Partial {
            keys: misses(closest[0]).into_iter().cloned().collect(),
            pods: names(&closest),
        },
    }
}

/// Among pods that miss exactly one label, the `(key, actual value)` closest to what the
/// selector asks (fewest edits: `app=carts` is meant for the `app=cart` pods, not for the
/// more numerous `app=web` ones), then the most common.
fn off_by_one(
    selector: &BTreeMap<String, String>,
    pods: &[&PodView],
    missed: impl Fn(&PodView) -> String,
) -> SelectorFinding {
    let mut groups: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
    for pod in pods {
        let key = missed(pod);
        let actual = pod.labels.get(&key).cloned();
        groups
            .entry((key, actual))
            .or_default()
            .push(pod.name.clone());
    }
    let closeness = |(key, actual): &(String, Option<String>), pods: &Vec<String>| {
        let expected = selector.get(key).map_or("", String::as_str);
        let edits = edit_distance(actual.as_deref().unwrap_or(""), expected);
        (edits, std::cmp::Reverse(pods.len()))
    };
    let ((key, actual), pods) = groups
        .into_iter()
        .min_by_key(|(group, pods)| closeness(group, pods))
        .unwrap_or_default();
    SelectorFinding::OffByOne {
        expected: selector.get(&key).cloned().unwrap_or_default(),
        key,
        actual,
        pods,
    }
}

/// Levenshtein distance over characters: how many insertions, deletions and substitutions
/// turn `a` into `b`. Label values are short (at most 63 characters).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

impl SelectorFinding {
    /// One sentence for people, e.g. `selector app=payments-api, pods carry app=payments
    /// (payments-1, payments-2)`.
    pub fn describe(&self, selector: &str) -> String {
        match self {
            SelectorFinding::Matches(pods) => {
                format!("selector {selector} matches pods {}", list(pods))
            }
            SelectorFinding::OffByOne {
                key,
                expected,
                actual: Some(actual),
                pods,
            } => format!(
                "selector {key}={expected}, pods carry {key}={actual} ({})",
                list(pods)
            ),
            SelectorFinding::OffByOne {
                key,
                expected,
                actual: None,
                pods,
            } => format!(
                "selector {key}={expected}, but pods {} have no {key} label",
                list(pods)
            ),
            SelectorFinding::Partial { keys, pods } => format!(
                "selector {selector}: the closest pods ({}) differ in {}",
                list(pods),
                keys.join(", ")
            ),
            SelectorFinding::NoneCarries => {
                format!("no pod in the namespace carries the selector's labels ({selector})")
            }
            SelectorFinding::NoPods => "the namespace has no pods".to_string(),
        }
    }
}

/// At most five names, then a count of the rest.
pub fn list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out += &format!(" and {} more", names.len() - SHOWN);
    }
    out
}

/// The Service port an Ingress backend or a `svc/NS/NAME:PORT` names; with no port given,
/// the first TCP port.
pub fn service_port<'a>(
    ports: &'a [ServicePort],
    want: Option<&BackendPort>,
) -> Option<&'a ServicePort> {
    match want {
        Some(BackendPort::Number(n)) => ports.iter().find(|p| p.port == *n),
        Some(BackendPort::Name(name)) => ports.iter().find(|p| p.name.as_deref() == Some(name)),
        None => ports.iter().find(|p| p.tcp),
    }
}

/// `80/TCP http`, for listing a Service's ports.
pub fn port_text(port: &ServicePort) -> String {
    let proto = if port.tcp { "TCP" } else { "UDP/SCTP" };
    match &port.name {
        Some(name) => format!("{}/{proto} {name}", port.port),
        None => format!("{}/{proto}", port.port),
    }
}

/// `8080` or `http`, as the Service spec writes the targetPort.
pub fn target_text(target: &TargetPort) -> String {
    match target {
        TargetPort::Number(n) => n.to_string(),
        TargetPort::Name(name) => name.clone(),
    }
}

/// The port endpoints of `port` listen on, as the EndpointSlices say: the slice port named
/// like the Service port (the endpointslice controller resolves named targetPorts per pod).
pub fn slice_port(slices: &[SliceInfo], port: &ServicePort) -> Option<u16> {
    slices
        .iter()
        .flat_map(|s| s.ports.iter())
        .find(|p| p.name == port.name)
        .map(|p| p.port)
}

/// The targetPort on one pod: a number as is, a name looked up in its containers' ports.
pub fn pod_port(target: &TargetPort, pod: &PodView) -> Option<u16> {
    match target {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(name) => pod
            .containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .find(|p| p.name.as_deref() == Some(name.as_str()) && p.protocol == "TCP")
            .map(|p| p.port),
    }
}

/// When no container of `pod` declares the port `target` resolves to (`port`): e.g.
/// `targetPort 8080, container web declares 80/TCP`. `None` when a container declares it.
/// Declaring ports is optional, so a pod that declares none is no evidence: `None` too.
pub fn port_mismatch(target: &TargetPort, port: Option<u16>, pod: &PodView) -> Option<String> {
    let declared = |c: &super::views::ContainerPorts| {
        c.ports
            .iter()
            .map(|p| format!("{}/{}", p.port, p.protocol))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let with_ports: Vec<String> = pod
        .containers
        .iter()
        .filter(|c| !c.ports.is_empty())
        .map(|c| format!("container {} declares {}", c.name, declared(c)))
        .collect();
    if with_ports.is_empty() {
        return None;
    }
    let found = pod
        .containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .any(|p| Some(p.port) == port && p.protocol == "TCP");
    if found {
        return None;
    }
    let target = match target {
        TargetPort::Number(n) => format!("targetPort {n}"),
        TargetPort::Name(name) => match port {
            Some(n) => format!("targetPort {name} ({n})"),
            None => format!(
                "targetPort {name}, which no container of {} names",
                pod.name
            ),
        },
    };
    Some(format!("{target}, {}", with_ports.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::model::ObjKey;
    use crate::discovery::model::SlicePort;
    use crate::trace::views::{ContainerPorts, DeclaredPort};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod(name: &str, pairs: &[(&str, &str)]) -> PodView {
        PodView {
            name: name.to_string(),
            labels: labels(pairs),
            ip: None,
            phase: Some("Running".into()),
            terminating: false,
            conditions: Vec::new(),
            containers: vec![ContainerPorts {
                name: "web".into(),
                ports: vec![DeclaredPort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: "TCP".into(),
                }],
            }],
        }
    }

    #[test]
    fn the_mismatching_label_is_named() {
        let selector = labels(&[("app", "payments-api"), ("tier", "backend")]);
        let pods = [
            pod("payments-1", &[("app", "payments"), ("tier", "backend")]),
            pod("payments-2", &[("app", "payments"), ("tier", "backend")]),
            pod("db-0", &[("app", "db")]),
        ];
        let finding = compare_selector(&selector, &pods);
        assert_eq!(
            finding,
            SelectorFinding::OffByOne {
                key: "app".into(),
                expected: "payments-api".into(),
                actual: Some("payments".into()),
                pods: vec!["payments-1".into(), "payments-2".into()],
            }
        );
        assert_eq!(
            finding.describe("app=payments-api,tier=backend"),
            "selector app=payments-api, pods carry app=payments (payments-1, payments-2)"
        );
    }

    #[test]
    fn missing_labels_partial_matches_and_no_match() {
        let selector = labels(&[("app", "web"), ("tier", "front"), ("track", "stable")]);
        let lacking = [pod("web-1", &[("app", "web"), ("tier", "front")])];
        assert_eq!(
            compare_selector(&selector, &lacking).describe(""),
            "selector track=stable, but pods web-1 have no track label"
        );
        let partial = [pod("web-1", &[("app", "web")])];
        assert_eq!(
            compare_selector(&selector, &partial),
            SelectorFinding::Partial {
                keys: vec!["tier".into(), "track".into()],
                pods: vec!["web-1".into()]
            }
        );
        let one_key = labels(&[("app", "payments-api")]);
        let pods = [
            pod("payments-1", &[("app", "payments")]),
            pod("x", &[("run", "x")]),
        ];
        assert_eq!(
            compare_selector(&one_key, &pods).describe("app=payments-api"),
            "selector app=payments-api, pods carry app=payments (payments-1)"
        );
        // The closest value wins over the most common one.
        let carts = labels(&[("app", "carts")]);
        let shop = [
            pod("web-1", &[("app", "web")]),
            pod("web-2", &[("app", "web")]),
            pod("web-3", &[("app", "web")]),
            pod("cart-1", &[("app", "cart")]),
        ];
        assert_eq!(
            compare_selector(&carts, &shop).describe("app=carts"),
            "selector app=carts, pods carry app=cart (cart-1)"
        );
        let unlabelled = [pod("x", &[("run", "x")])];
        assert_eq!(
            compare_selector(&one_key, &unlabelled),
            SelectorFinding::NoneCarries
        );
        let strangers = [pod("db-0", &[("app", "db")])];
        assert_eq!(
            compare_selector(&selector, &strangers),
            SelectorFinding::NoneCarries
        );
        assert_eq!(
            compare_selector(&selector, &strangers).describe("app=web"),
            "no pod in the namespace carries the selector's labels (app=web)"
        );
        assert_eq!(compare_selector(&selector, &[]), SelectorFinding::NoPods);
        let fine = [pod(
            "web-1",
            &[("app", "web"), ("tier", "front"), ("track", "stable")],
        )];
        assert_eq!(
            compare_selector(&selector, &fine),
            SelectorFinding::Matches(vec!["web-1".into()])
        );
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("cart", "carts"), 1);
        assert_eq!(edit_distance("web", "carts"), 5);
        assert_eq!(edit_distance("payments", "payments-api"), 4);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    fn sp(name: Option<&str>, port: u16, target: TargetPort) -> ServicePort {
        ServicePort {
            name: name.map(str::to_string),
            port,
            tcp: true,
            target_port: target,
        }
    }

    #[test]
    fn ports_resolve_by_number_name_or_first_tcp() {
        let ports = [
            sp(Some("metrics"), 9090, TargetPort::Number(9090)),
            sp(Some("http"), 80, TargetPort::Name("http".into())),
        ];
        let by_number = service_port(&ports, Some(&BackendPort::Number(80)));
        assert_eq!(by_number.map(|p| p.port), Some(80));
        let by_name = service_port(&ports, Some(&BackendPort::Name("metrics".into())));
        assert_eq!(by_name.map(|p| p.port), Some(9090));
        assert_eq!(service_port(&ports, None).map(|p| p.port), Some(9090));
        assert_eq!(service_port(&ports, Some(&BackendPort::Number(81))), None);
        assert_eq!(port_text(&ports[1]), "80/TCP http");
    }

    #[test]
    fn named_target_ports_resolve_on_the_pod_and_in_slices() {
        let web = pod("web-1", &[]);
        assert_eq!(pod_port(&TargetPort::Name("http".into()), &web), Some(80));
        assert_eq!(pod_port(&TargetPort::Name("grpc".into()), &web), None);
        assert_eq!(pod_port(&TargetPort::Number(8080), &web), Some(8080));
        let slice = SliceInfo {
            key: ObjKey::new("shop", "web-abc"),
            service: ObjKey::new("shop", "web"),
            ports: vec![SlicePort {
                name: Some("http".into()),
                port: 8080,
                tcp: true,
            }],
            endpoints: Vec::new(),
        };
        let port = sp(Some("http"), 80, TargetPort::Name("http".into()));
        assert_eq!(slice_port(&[slice], &port), Some(8080));
    }

    #[test]
    fn a_target_port_no_container_declares_is_named() {
        let web = pod("web-1", &[]);
        assert_eq!(
            port_mismatch(&TargetPort::Number(8080), Some(8080), &web).as_deref(),
            Some("targetPort 8080, container web declares 80/TCP")
        );
        assert_eq!(port_mismatch(&TargetPort::Number(80), Some(80), &web), None);
        assert_eq!(
            port_mismatch(&TargetPort::Name("grpc".into()), None, &web).as_deref(),
            Some(
                "targetPort grpc, which no container of web-1 names, container web declares 80/TCP"
            )
        );
        let mut silent = web.clone();
        silent.containers[0].ports.clear();
        assert_eq!(
            port_mismatch(&TargetPort::Number(8080), Some(8080), &silent),
            None
        );
    }
}
