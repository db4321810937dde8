//! The OTLP resource: which process on which node the pushed metrics come from.
//!
//! The attributes follow the OpenTelemetry semantic conventions, so a collector's
//! `k8sattributes` processor and Prometheus' OTLP receiver (`job` from `service.name`,
//! `instance` from `service.instance.id`, the rest in `target_info`) understand them.

use super::proto::{KeyValue, key_value};

/// What the downward API and the kernel say about where hopwatch runs. Read once, at the edge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Environment {
    /// `POD_NAME`.
    pub pod_name: Option<String>,
    /// `POD_NAMESPACE`.
    pub pod_namespace: Option<String>,
    /// `POD_IP`.
    pub pod_ip: Option<String>,
    /// `NODE_NAME`.
    pub node_name: Option<String>,
    /// The kernel's host name: the pod's name in a pod, the node's with `hostNetwork`.
    pub host_name: Option<String>,
}

impl Environment {
    /// Reads the variables the DaemonSet sets from the downward API, and the host name.
    pub fn current() -> Environment {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| var("HOSTNAME"));
        Environment {
            pod_name: var("POD_NAME"),
            pod_namespace: var("POD_NAMESPACE"),
            pod_ip: var("POD_IP"),
            node_name: var("NODE_NAME"),
            host_name,
        }
    }
}

/// The resource attributes: `service.name`, `service.version`, `service.instance.id` (pod
/// name, else host name), `host.name` and the `k8s.*` ones that are known, then `extra` in
/// order. An `extra` key that is already there replaces its value in place: OTLP keys are
/// unique.
pub fn attributes(env: &Environment, extra: &[(String, String)]) -> Vec<KeyValue> {
    let instance = env.pod_name.clone().or_else(|| env.host_name.clone());
    let known = [
        ("service.name", Some("hopwatch".to_string())),
        ("service.version", Some(crate::VERSION.to_string())),
        ("service.instance.id", instance),
        ("host.name", env.host_name.clone()),
        ("k8s.node.name", env.node_name.clone()),
        ("k8s.pod.name", env.pod_name.clone()),
        ("k8s.namespace.name", env.pod_namespace.clone()),
        ("k8s.pod.ip", env.pod_ip.clone()),
    ];
    let mut pairs: Vec<(String, String)> = known
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_string(), value?)))
        .collect();
    for (key, value) in extra {
        match pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1.clone_from(value),
            None => pairs.push((key.clone(), value.clone())),
        }
    }
    pairs.iter().map(|(k, v)| key_value(k, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::{AnyValue, Value};

    fn pairs(attributes: Vec<KeyValue>) -> Vec<(String, String)> {
        let text = |kv: KeyValue| match kv.value {
            Some(AnyValue {
                value: Some(Value::StringValue(s)),
            }) => (kv.key, s),
            other => panic!("{other:?}"),
        };
        attributes.into_iter().map(text).collect()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn in_a_pod_the_instance_is_the_pod_and_the_downward_api_is_reported() {
        let env = Environment {
            pod_name: Some("hopwatch-x7k2p".into()),
            pod_namespace: Some("monitoring".into()),
            pod_ip: Some("10.244.1.7".into()),
            node_name: Some("node-1".into()),
            host_name: Some("hopwatch-x7k2p".into()),
        };
        let extra = owned(&[("k8s.cluster.name", "prod"), ("service.name", "probe")]);
        let expected = owned(&[
            ("service.name", "probe"),
            ("service.version", crate::VERSION),
            ("service.instance.id", "hopwatch-x7k2p"),
            ("host.name", "hopwatch-x7k2p"),
            ("k8s.node.name", "node-1"),
            ("k8s.pod.name", "hopwatch-x7k2p"),
            ("k8s.namespace.name", "monitoring"),
            ("k8s.pod.ip", "10.244.1.7"),
            ("k8s.cluster.name", "prod"),
        ]);
        assert_eq!(pairs(attributes(&env, &extra)), expected);
    }

    #[test]
    fn outside_a_pod_the_instance_is_the_host() {
        let env = Environment {
            host_name: Some("laptop".into()),
            ..Environment::default()
        };
        let expected = owned(&[
            ("service.name", "hopwatch"),
            ("service.version", crate::VERSION),
            ("service.instance.id", "laptop"),
            ("host.name", "laptop"),
        ]);
        assert_eq!(pairs(attributes(&env, &[])), expected);
    }
}
