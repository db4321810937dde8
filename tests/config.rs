//! Configuration loading: the shipped examples validate, every invalid fixture fails with
//! its exact message, and defaults and overrides land where they should.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hopwatch::config::{
    CanaryConfig, Config, ConfigError, DnsTarget, EMBEDDED_DEFAULT, HttpOptions, KubernetesConfig,
    Schedule, StaticHttp, StubResolver,
};
use hopwatch::discovery::model::ObjKey;
use hopwatch::discovery::select::{AnnotationMode, LabelSelector, Selection};
use hopwatch::discovery::targets::Settings;
use hopwatch::probe::dns::{Flavor, QueryTypes};
use hopwatch::probe::http::{CaBundle, ClientCert, HttpUrl, Resolver};
use hopwatch::probe::tcp::ConnectTarget;
use hopwatch::probe::{Hop, Target, TargetKey};
use hyper::Method;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn fixture(name: &str) -> String {
    let path = repo("tests/fixtures/config").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a fixture with its file name as origin, so that messages do not carry a checkout path.
fn parse_fixture(name: &str) -> Result<Config, ConfigError> {
    Config::parse(&fixture(name), name)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn schedule(interval: f64, timeout: f64, jitter: f64) -> Schedule {
    Schedule {
        interval: secs(interval),
        timeout: secs(timeout),
        jitter: secs(jitter),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Each invalid fixture and the exact error it must give.
const INVALID: &[(&str, &str)] = &[
    (
        "invalid-unknown-top-level-field.yaml",
        "invalid-unknown-top-level-field.yaml:3:1: unknown field `interval_seconds`, expected one of `listen`, `max_concurrency`, `defaults`, `dns`, `http`, `tcp`, `kubernetes`, `otlp`, `canary`",
    ),
    (
        "invalid-unknown-nested-field.yaml",
        "invalid-unknown-nested-field.yaml:4:5: defaults.dns: unknown field `flavour`, expected one of `flavor`, `qtypes`, `resolv_conf`",
    ),
    (
        "invalid-unknown-target-field.yaml",
        "invalid-unknown-target-field.yaml:5:5: dns[1]: unknown field `ndots`, expected one of `name`, `id`, `server`, `flavor`, `qtypes`, `resolv_conf`, `interval_seconds`, `timeout_seconds`, `jitter_seconds`",
    ),
    (
        "invalid-wrong-type-interval.yaml",
        "invalid-wrong-type-interval.yaml:2:21: defaults.interval_seconds: expected a number of seconds, found `thirty`",
    ),
    (
        "invalid-wrong-type-dns.yaml",
        "invalid-wrong-type-dns.yaml:3:3: dns: expected a list of DNS targets, found a mapping",
    ),
    (
        "invalid-wrong-type-qtypes.yaml",
        "invalid-wrong-type-qtypes.yaml:3:13: dns[0].qtypes: expected a list of record types such as `[A, AAAA]`, found `AAAA`",
    ),
    (
        "invalid-wrong-type-target.yaml",
        "invalid-wrong-type-target.yaml:2:5: dns[0]: expected a mapping with at least `name`, found `example.com`",
    ),
    (
        "invalid-top-level-list.yaml",
        "invalid-top-level-list.yaml:1:1: expected a mapping of settings, found a list",
    ),
    (
        "invalid-timeout-defaults.yaml",
        "invalid-timeout-defaults.yaml:3:20: defaults.timeout_seconds: 40 must be below interval_seconds (30, the default)",
    ),
    (
        "invalid-timeout-inherited.yaml",
        "invalid-timeout-inherited.yaml:6:23: dns[0].interval_seconds: 10 must be above timeout_seconds (25, from defaults.timeout_seconds)",
    ),
    (
        "invalid-timeout-target.yaml",
        "invalid-timeout-target.yaml:5:22: dns[1].timeout_seconds: 40 must be below interval_seconds (30)",
    ),
    (
        "invalid-timeout-equal-interval.yaml",
        "invalid-timeout-equal-interval.yaml:4:22: dns[0].timeout_seconds: 5 must be below interval_seconds (5)",
    ),
    (
        "invalid-timeout-zero.yaml",
        "invalid-timeout-zero.yaml:2:20: defaults.timeout_seconds: 0 must be at least 0.001",
    ),
    (
        "invalid-jitter-target.yaml",
        "invalid-jitter-target.yaml:4:21: dns[0].jitter_seconds: 0.5 must be below interval_seconds (0.5)",
    ),
    (
        "invalid-jitter-inherited.yaml",
        "invalid-jitter-inherited.yaml:5:23: dns[0].interval_seconds: 0.5 must be above jitter_seconds (1, from defaults.jitter_seconds)",
    ),
    (
        "invalid-jitter-negative.yaml",
        "invalid-jitter-negative.yaml:2:19: defaults.jitter_seconds: -1 must be at least 0",
    ),
    (
        "invalid-interval-zero.yaml",
        "invalid-interval-zero.yaml:3:23: dns[0].interval_seconds: 0 must be between 0.001 and 86400",
    ),
    (
        "invalid-interval-negative.yaml",
        "invalid-interval-negative.yaml:2:21: defaults.interval_seconds: -30 must be between 0.001 and 86400",
    ),
    (
        "invalid-interval-too-long.yaml",
        "invalid-interval-too-long.yaml:2:21: defaults.interval_seconds: 86401 must be between 0.001 and 86400",
    ),
    (
        "invalid-interval-nan.yaml",
        "invalid-interval-nan.yaml:2:21: defaults.interval_seconds: NaN must be between 0.001 and 86400",
    ),
    (
        "invalid-flavor.yaml",
        "invalid-flavor.yaml:3:13: dns[0].flavor: unknown flavor `alpine`, expected one of `glibc`, `musl`, `musl-legacy`, `go`",
    ),
    (
        "invalid-qtypes-empty.yaml",
        "invalid-qtypes-empty.yaml:3:13: defaults.dns.qtypes: must list at least one of `A`, `AAAA`",
    ),
    (
        "invalid-qtypes-duplicate.yaml",
        "invalid-qtypes-duplicate.yaml:3:23: dns[0].qtypes[2]: duplicate record type `A`",
    ),
    (
        "invalid-qtypes-unknown.yaml",
        "invalid-qtypes-unknown.yaml:3:17: dns[0].qtypes[1]: unknown record type `MX`, expected `A` or `AAAA`",
    ),
    (
        "invalid-duplicate-id.yaml",
        "invalid-duplicate-id.yaml:5:9: dns[1].id: duplicate id `web`, dns[0] has it too",
    ),
    (
        "invalid-duplicate-name.yaml",
        "invalid-duplicate-name.yaml:4:11: dns[1].name: duplicate id `example.com` (the name, as no `id` is set), dns[0] has it too; set `id` to tell them apart",
    ),
    (
        "invalid-missing-name.yaml",
        "invalid-missing-name.yaml:3:5: dns[1]: missing field `name`",
    ),
    (
        "invalid-name-null.yaml",
        "invalid-name-null.yaml:2:9: dns[0].name: expected a DNS name, found null",
    ),
    (
        "invalid-name-label-too-long.yaml",
        "invalid-name-label-too-long.yaml:2:11: dns[0].name: label `a-label-of-sixty-four-characters-is-one-more-than-dns-allows-xyz` is 64 characters long, at most 63 are allowed",
    ),
    (
        "invalid-name-bad-char.yaml",
        "invalid-name-bad-char.yaml:2:11: dns[0].name: `exa mple.com` contains ` `; labels allow letters, digits, `-` and `_`",
    ),
    (
        "invalid-name-empty-label.yaml",
        "invalid-name-empty-label.yaml:2:11: dns[0].name: `example..com` has an empty label",
    ),
    (
        "invalid-name-too-long.yaml",
        "invalid-name-too-long.yaml:2:11: dns[0].name: name is 255 characters long, at most 253 are allowed",
    ),
    (
        "invalid-id-whitespace.yaml",
        "invalid-id-whitespace.yaml:3:9: dns[0].id: `example com` contains whitespace or a control character",
    ),
    (
        "invalid-server.yaml",
        "invalid-server.yaml:3:13: dns[0].server: `10.96.0.300` is not an IP address, `IP:PORT` or `[IPv6]:PORT`",
    ),
    (
        "invalid-server-port-zero.yaml",
        "invalid-server-port-zero.yaml:3:13: dns[0].server: `10.96.0.10:0`: port 0 cannot be sent to",
    ),
    (
        "invalid-listen.yaml",
        "invalid-listen.yaml:1:9: listen: `localhost:9808` is not an address and port such as `0.0.0.0:9808` or `[::]:9808`",
    ),
    (
        "invalid-canary-listen.yaml",
        "invalid-canary-listen.yaml:2:11: canary.listen: `localhost:9809` is not an address and port such as `0.0.0.0:9808` or `[::]:9808`",
    ),
    (
        "invalid-canary-metrics-port.yaml",
        "invalid-canary-metrics-port.yaml:3:11: canary.listen: port 9808 is the metrics port of `listen`: the canary needs a port of its own, so that its Service never exposes /metrics",
    ),
    (
        "invalid-canary-service-no-kubernetes.yaml",
        "invalid-canary-service-no-kubernetes.yaml:2:12: canary.service: `hopwatch/hopwatch-canary` needs a `kubernetes:` section: the canary is a discovered Service",
    ),
    (
        "invalid-canary-service.yaml",
        "invalid-canary-service.yaml:3:12: canary.service: `hopwatch-canary` is not `namespace/name`, such as `kube-system/kube-dns`",
    ),
    (
        "invalid-canary-unknown-field.yaml",
        "invalid-canary-unknown-field.yaml:3:3: canary: unknown field `port`, expected one of `listen`, `service`",
    ),
    (
        "invalid-max-concurrency-zero.yaml",
        "invalid-max-concurrency-zero.yaml:1:18: max_concurrency: 0 must be between 1 and 10000",
    ),
    (
        "invalid-max-concurrency-too-big.yaml",
        "invalid-max-concurrency-too-big.yaml:1:18: max_concurrency: 100000 must be between 1 and 10000",
    ),
    (
        "invalid-max-concurrency-float.yaml",
        "invalid-max-concurrency-float.yaml:1:18: max_concurrency: expected a whole number from 1 to 10000, found `2.5`",
    ),
    (
        "invalid-resolv-conf-empty.yaml",
        "invalid-resolv-conf-empty.yaml:3:18: defaults.dns.resolv_conf: must not be empty",
    ),
    (
        "invalid-syntax.yaml",
        "invalid-syntax.yaml:4:4: while parsing a block collection, did not find expected '-' indicator",
    ),
    (
        "invalid-tab-indent.yaml",
        "invalid-tab-indent.yaml:2:2: tabs disallowed within this context (block indentation)",
    ),
    (
        "invalid-duplicate-key.yaml",
        "invalid-duplicate-key.yaml:3:1: duplicate key `listen`",
    ),
    (
        "invalid-multiple-documents.yaml",
        "invalid-multiple-documents.yaml:3:1: only single YAML document expected but multiple found",
    ),
    (
        "invalid-kubernetes-unknown-field.yaml",
        "invalid-kubernetes-unknown-field.yaml:4:3: kubernetes: unknown field `kube_config`, expected one of `kubeconfig`, `cluster_domain`, `pod_probe_nodes`, `services`, `connect`, `dns`, `ingress`, `gateway_api`",
    ),
    (
        "invalid-kubernetes-unknown-services-field.yaml",
        "invalid-kubernetes-unknown-services-field.yaml:4:5: kubernetes.services: unknown field `namespace`, expected one of `namespaces`, `exclude_namespaces`, `label_selector`, `namespace_selector`, `annotation`, `annotation_mode`, `always`",
    ),
    (
        "invalid-kubernetes-unknown-connect-field.yaml",
        "invalid-kubernetes-unknown-connect-field.yaml:5:5: kubernetes.connect: unknown field `timeout`, expected one of `interval_seconds`, `timeout_seconds`, `jitter_seconds`, `service_histogram`, `service_probe_nodes`, `sweep_seconds`",
    ),
    (
        "invalid-kubernetes-sweep-too-short.yaml",
        "invalid-kubernetes-sweep-too-short.yaml:5:20: kubernetes.connect.sweep_seconds: 10 is shorter than the connect interval (30 s): the sweep covers what is not probed every interval, so it cannot be faster",
    ),
    (
        "invalid-kubernetes-ingress-probe-nodes-zero.yaml",
        "invalid-kubernetes-ingress-probe-nodes-zero.yaml:4:18: kubernetes.ingress.probe_nodes: 0 must be between 1 and 1000",
    ),
    (
        "invalid-kubernetes-unknown-dns-field.yaml",
        "invalid-kubernetes-unknown-dns-field.yaml:5:5: kubernetes.dns: unknown field `server`, expected one of `service`, `names`, `flavor`, `qtypes`, `resolv_conf`, `interval_seconds`, `timeout_seconds`, `jitter_seconds`, `node_local_dns`",
    ),
    (
        "invalid-kubernetes-wrong-type.yaml",
        "invalid-kubernetes-wrong-type.yaml:3:3: kubernetes: expected a mapping of Kubernetes settings, found a list",
    ),
    (
        "invalid-kubernetes-wrong-type-namespaces.yaml",
        "invalid-kubernetes-wrong-type-namespaces.yaml:3:17: kubernetes.services.namespaces: expected a list of namespace names, found `shop`",
    ),
    (
        "invalid-kubernetes-cluster-domain.yaml",
        "invalid-kubernetes-cluster-domain.yaml:2:19: kubernetes.cluster_domain: `cluster..local` has an empty label",
    ),
    (
        "invalid-kubernetes-pod-probe-nodes-zero.yaml",
        "invalid-kubernetes-pod-probe-nodes-zero.yaml:2:20: kubernetes.pod_probe_nodes: 0 must be between 1 and 1000",
    ),
    (
        "invalid-kubernetes-pod-probe-nodes-type.yaml",
        "invalid-kubernetes-pod-probe-nodes-type.yaml:2:20: kubernetes.pod_probe_nodes: expected a whole number from 1 to 1000, found `three`",
    ),
    (
        "invalid-kubernetes-service-histogram-type.yaml",
        "invalid-kubernetes-service-histogram-type.yaml:4:24: kubernetes.connect.service_histogram: expected `true` or `false`, found `sometimes`",
    ),
    (
        "invalid-kubernetes-namespace.yaml",
        "invalid-kubernetes-namespace.yaml:4:24: kubernetes.services.namespaces[1]: namespace `Payments` contains `P`; only lowercase letters, digits and `-` are allowed",
    ),
    (
        "invalid-kubernetes-exclude-namespace-empty.yaml",
        "invalid-kubernetes-exclude-namespace-empty.yaml:3:39: kubernetes.services.exclude_namespaces[1]: namespace must not be empty",
    ),
    (
        "invalid-kubernetes-label-selector.yaml",
        "invalid-kubernetes-label-selector.yaml:4:21: kubernetes.services.label_selector: cannot read label requirement \"env in prod\"",
    ),
    (
        "invalid-kubernetes-namespace-selector.yaml",
        "invalid-kubernetes-namespace-selector.yaml:4:25: kubernetes.services.namespace_selector: cannot read label requirement \"env within (prod)\"",
    ),
    (
        "invalid-kubernetes-namespace-selector-mapping.yaml",
        "invalid-kubernetes-namespace-selector-mapping.yaml:5:7: kubernetes.services.namespace_selector: expected a label selector such as `team=shop,env in (prod,staging)`, found a mapping",
    ),
    (
        "invalid-kubernetes-annotation.yaml",
        "invalid-kubernetes-annotation.yaml:3:17: kubernetes.services.annotation: `Hopwatch.io/probe`: prefix `Hopwatch.io` is not a lowercase DNS name such as `hopwatch.io`",
    ),
    (
        "invalid-kubernetes-annotation-mode.yaml",
        "invalid-kubernetes-annotation-mode.yaml:3:22: kubernetes.services.annotation_mode: unknown annotation mode `optin`, expected `opt-out` or `opt-in`",
    ),
    (
        "invalid-kubernetes-always-no-slash.yaml",
        "invalid-kubernetes-always-no-slash.yaml:6:9: kubernetes.services.always[1]: `kube-dns` is not `namespace/name`, such as `kube-system/kube-dns`",
    ),
    (
        "invalid-kubernetes-always-empty-part.yaml",
        "invalid-kubernetes-always-empty-part.yaml:3:14: kubernetes.services.always[0]: `kube-system/` has an empty Service name; write `namespace/name`",
    ),
    (
        "invalid-kubernetes-always-duplicate.yaml",
        "invalid-kubernetes-always-duplicate.yaml:3:56: kubernetes.services.always[2]: duplicate Service `kube-system/kube-dns`, kubernetes.services.always[0] has it too",
    ),
    (
        "invalid-kubernetes-connect-timeout.yaml",
        "invalid-kubernetes-connect-timeout.yaml:4:22: kubernetes.connect.timeout_seconds: 5 must be below interval_seconds (5)",
    ),
    (
        "invalid-kubernetes-connect-jitter-default-interval.yaml",
        "invalid-kubernetes-connect-jitter-default-interval.yaml:6:21: kubernetes.connect.jitter_seconds: 20 must be below interval_seconds (15, the default)",
    ),
    (
        "invalid-kubernetes-dns-timeout-inherited.yaml",
        "invalid-kubernetes-dns-timeout-inherited.yaml:6:23: kubernetes.dns.interval_seconds: 10 must be above timeout_seconds (25, from defaults.timeout_seconds)",
    ),
    (
        "invalid-kubernetes-dns-service.yaml",
        "invalid-kubernetes-dns-service.yaml:3:14: kubernetes.dns.service: Service name `CoreDNS` contains `C`; only lowercase letters, digits and `-` are allowed",
    ),
    (
        "invalid-kubernetes-names-empty.yaml",
        "invalid-kubernetes-names-empty.yaml:3:12: kubernetes.dns.names: must list at least one name; leave `names` out for the default",
    ),
    (
        "invalid-kubernetes-names-duplicate.yaml",
        "invalid-kubernetes-names-duplicate.yaml:6:9: kubernetes.dns.names[2]: duplicate name `kubernetes.default`, kubernetes.dns.names[0] has it too",
    ),
    (
        "invalid-kubernetes-node-local-dns.yaml",
        "invalid-kubernetes-node-local-dns.yaml:3:21: kubernetes.dns.node_local_dns: `169.254.20.300` is not an IP address, `IP:PORT` or `[IPv6]:PORT`",
    ),
    (
        "invalid-http-ca-file-missing.yaml",
        "invalid-http-ca-file-missing.yaml:3:14: http[0].ca_file: cannot read CA file /nonexistent/hopwatch/private-ca.pem: No such file or directory (os error 2)",
    ),
    (
        "invalid-http-ca-file-device.yaml",
        "invalid-http-ca-file-device.yaml:3:14: http[0].ca_file: CA file /dev/zero: larger than 8388608 bytes; a CA bundle is a few hundred KiB",
    ),
    (
        "invalid-http-ca-file-not-pem.yaml",
        "invalid-http-ca-file-not-pem.yaml:4:14: http[0].ca_file: CA file tests/fixtures/config/valid-tcp.yaml: no CERTIFICATE block",
    ),
    (
        "invalid-http-ca-file-plain-http.yaml",
        "invalid-http-ca-file-plain-http.yaml:3:14: http[0].ca_file: `ca_file` applies to https:// URLs only, and `url` is http://",
    ),
    (
        "invalid-http-connect-to.yaml",
        "invalid-http-connect-to.yaml:4:17: http[0].connect_to: `lb.example.com` is not an IP address or `IP:PORT`, such as `203.0.113.10` or `[fd00::1]:443`",
    ),
    (
        "invalid-http-duplicate-id.yaml",
        "invalid-http-duplicate-id.yaml:5:9: http[1].id: duplicate id `shop`, http[0] has it too",
    ),
    (
        "invalid-http-duplicate-url.yaml",
        "invalid-http-duplicate-url.yaml:4:10: http[1].url: duplicate id `https://shop.example.com/` (the url, as no `id` is set), http[0] has it too; set `id` to tell them apart",
    ),
    (
        "invalid-http-insecure-plain-http.yaml",
        "invalid-http-insecure-plain-http.yaml:3:15: http[0].insecure: `insecure: true` applies to https:// URLs only, and `url` is http://",
    ),
    (
        "invalid-http-insecure-type.yaml",
        "invalid-http-insecure-type.yaml:3:15: http[0].insecure: expected `true` or `false`, found `sometimes`",
    ),
    (
        "invalid-http-missing-url.yaml",
        "invalid-http-missing-url.yaml:3:5: http[1]: missing field `url`",
    ),
    (
        "invalid-http-resolver-connect-to.yaml",
        "invalid-http-resolver-connect-to.yaml:5:13: http[0].flavor: has no effect: `connect_to` is dialled instead of resolving the host",
    ),
    (
        "invalid-http-resolver-ip-url.yaml",
        "invalid-http-resolver-ip-url.yaml:3:18: http[0].resolv_conf: has no effect: the URL names an IP address, which is never resolved",
    ),
    (
        "invalid-http-status-code.yaml",
        "invalid-http-status-code.yaml:3:28: http[0].expected_status[1]: 600 is not a status code: codes are 100 to 599",
    ),
    (
        "invalid-http-status-empty.yaml",
        "invalid-http-status-empty.yaml:3:22: http[0].expected_status: must list at least one code or range; leave `expected_status` out for the default (200-399)",
    ),
    (
        "invalid-http-status-range.yaml",
        "invalid-http-status-range.yaml:3:23: http[0].expected_status[0]: `299-200`: the range ends before it starts",
    ),
    (
        "invalid-http-status-text.yaml",
        "invalid-http-status-text.yaml:3:23: http[0].expected_status[0]: `2xx` is not a status code or a range such as `200-299`",
    ),
    (
        "invalid-http-timeout-inherited.yaml",
        "invalid-http-timeout-inherited.yaml:5:23: http[0].interval_seconds: 5 must be above timeout_seconds (10, from defaults.timeout_seconds)",
    ),
    (
        "invalid-http-unknown-field.yaml",
        "invalid-http-unknown-field.yaml:3:5: http[0]: unknown field `verb`, expected one of `url`, `id`, `connect_to`, `expected_status`, `insecure`, `ca_file`, `resolv_conf`, `flavor`, `qtypes`, `interval_seconds`, `timeout_seconds`, `jitter_seconds`, `method`, `headers`, `body`, `expected_body`, `cert_file`, `key_file`, `follow_redirects`",
    ),
    (
        "invalid-http-url.yaml",
        "invalid-http-url.yaml:3:10: http[0].url: `shop.example.com/healthz` is not an http:// or https:// URL",
    ),
    (
        "invalid-http-wrong-type.yaml",
        "invalid-http-wrong-type.yaml:2:3: http: expected a list of HTTP targets, found a mapping",
    ),
    (
        "invalid-kubernetes-ingress-ca-file.yaml",
        "invalid-kubernetes-ingress-ca-file.yaml:3:14: kubernetes.ingress.ca_file: cannot read CA file /nonexistent/hopwatch/ingress-ca.pem: No such file or directory (os error 2)",
    ),
    (
        "invalid-kubernetes-ingress-status.yaml",
        "invalid-kubernetes-ingress-status.yaml:3:28: kubernetes.ingress.expected_status[1]: 99 is not a status code: codes are 100 to 599",
    ),
    (
        "invalid-kubernetes-ingress-timeout-inherited.yaml",
        "invalid-kubernetes-ingress-timeout-inherited.yaml:5:23: kubernetes.ingress.interval_seconds: 10 must be above timeout_seconds (25, from defaults.timeout_seconds)",
    ),
    (
        "invalid-kubernetes-ingress-unknown-field.yaml",
        "invalid-kubernetes-ingress-unknown-field.yaml:4:5: kubernetes.ingress: unknown field `verify`, expected one of `ca_file`, `insecure`, `expected_status`, `interval_seconds`, `timeout_seconds`, `jitter_seconds`, `classes`, `probe_nodes`, `method`, `headers`, `body`, `expected_body`, `cert_file`, `key_file`, `follow_redirects`",
    ),
    (
        "invalid-kubernetes-ingress-class-empty.yaml",
        "invalid-kubernetes-ingress-class-empty.yaml:4:22: kubernetes.ingress.classes[1]: IngressClass name must not be empty",
    ),
    (
        "invalid-kubernetes-ingress-class.yaml",
        "invalid-kubernetes-ingress-class.yaml:4:15: kubernetes.ingress.classes[0]: `Nginx` is not an IngressClass name: lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters",
    ),
    (
        "invalid-kubernetes-ingress-class-duplicate.yaml",
        "invalid-kubernetes-ingress-class-duplicate.yaml:6:9: kubernetes.ingress.classes[2]: duplicate IngressClass `nginx`, kubernetes.ingress.classes[0] has it too",
    ),
    (
        "invalid-kubernetes-ingress-classes-type.yaml",
        "invalid-kubernetes-ingress-classes-type.yaml:3:14: kubernetes.ingress.classes: expected a list of IngressClass names, found `nginx`",
    ),
    (
        "invalid-kubernetes-gateway-api-unknown-field.yaml",
        "invalid-kubernetes-gateway-api-unknown-field.yaml:3:5: kubernetes.gateway_api: unknown field `enable`, expected one of `enabled`",
    ),
    (
        "invalid-kubernetes-gateway-api-enabled.yaml",
        "invalid-kubernetes-gateway-api-enabled.yaml:3:14: kubernetes.gateway_api.enabled: expected `true` or `false`, found `auto`",
    ),
    (
        "invalid-otlp-endpoint-no-path.yaml",
        "invalid-otlp-endpoint-no-path.yaml:2:13: otlp.endpoint: `http://otel-collector:4318` has no path; write the full metrics URL, such as `http://otel-collector:4318/v1/metrics`",
    ),
    (
        "invalid-otlp-endpoint-scheme.yaml",
        "invalid-otlp-endpoint-scheme.yaml:3:13: otlp.endpoint: `grpc://otel-collector:4317` is not an http:// or https:// URL",
    ),
    (
        "invalid-otlp-header-duplicate.yaml",
        "invalid-otlp-header-duplicate.yaml:5:5: otlp.headers: duplicate header `authorization`: `Authorization` is set too, and header names ignore case",
    ),
    (
        "invalid-otlp-header-name.yaml",
        "invalid-otlp-header-name.yaml:4:5: otlp.headers: header name `X Scope OrgID` contains ` `; names allow letters, digits and any of !#$%&'*+-.^_`|~",
    ),
    (
        "invalid-otlp-header-reserved.yaml",
        "invalid-otlp-header-reserved.yaml:4:5: otlp.headers: header `Content-Type` is set by the HTTP client and cannot be configured",
    ),
    (
        "invalid-otlp-header-value.yaml",
        "invalid-otlp-header-value.yaml:4:20: otlp.headers.Authorization: header value contains `\\t`; only printable ASCII characters are allowed",
    ),
    (
        "invalid-otlp-headers-type.yaml",
        "invalid-otlp-headers-type.yaml:3:12: otlp.headers: expected a mapping of header names to values, found a list",
    ),
    (
        "invalid-otlp-interval-too-short.yaml",
        "invalid-otlp-interval-too-short.yaml:3:21: otlp.interval_seconds: 0.5 must be between 1 and 86400",
    ),
    (
        "invalid-otlp-missing-endpoint.yaml",
        "invalid-otlp-missing-endpoint.yaml:2:3: otlp: missing field `endpoint`",
    ),
    (
        "invalid-otlp-resource-key.yaml",
        "invalid-otlp-resource-key.yaml:4:5: otlp.resource: an attribute key must not be empty",
    ),
    (
        "invalid-otlp-timeout-default-interval.yaml",
        "invalid-otlp-timeout-default-interval.yaml:3:20: otlp.timeout_seconds: 90 must be below interval_seconds (60, the default)",
    ),
    (
        "invalid-otlp-timeout-interval.yaml",
        "invalid-otlp-timeout-interval.yaml:4:20: otlp.timeout_seconds: 30 must be below interval_seconds (30)",
    ),
    (
        "invalid-otlp-unknown-field.yaml",
        "invalid-otlp-unknown-field.yaml:3:3: otlp: unknown field `compression`, expected one of `endpoint`, `interval_seconds`, `timeout_seconds`, `headers`, `resource`",
    ),
    (
        "invalid-tcp-address-no-port.yaml",
        "invalid-tcp-address-no-port.yaml:2:14: tcp[0].address: `10.96.0.10` is not an IP address and port such as `10.96.0.10:53` or `[fd00::10]:53`",
    ),
    (
        "invalid-tcp-address.yaml",
        "invalid-tcp-address.yaml:3:14: tcp[0].address: `kube-dns.kube-system:53` is not an IP address and port such as `10.96.0.10:53` or `[fd00::10]:53`",
    ),
    (
        "invalid-tcp-duplicate-address.yaml",
        "invalid-tcp-duplicate-address.yaml:3:14: tcp[1].address: duplicate id `10.96.0.10:53` (the address, as no `id` is set), tcp[0] has it too; set `id` to tell them apart",
    ),
    (
        "invalid-tcp-duplicate-id.yaml",
        "invalid-tcp-duplicate-id.yaml:5:9: tcp[1].id: duplicate id `dns`, tcp[0] has it too",
    ),
    (
        "invalid-tcp-hop.yaml",
        "invalid-tcp-hop.yaml:3:10: tcp[0].hop: unknown hop `ingress`, expected `service` or `pod`",
    ),
    (
        "invalid-tcp-missing-address.yaml",
        "invalid-tcp-missing-address.yaml:2:5: tcp[0]: missing field `address`",
    ),
    (
        "invalid-http-method.yaml",
        "invalid-http-method.yaml:3:13: http[0].method: `get` is not a method the probe sends; use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    ),
    (
        "invalid-http-body-get.yaml",
        "invalid-http-body-get.yaml:3:11: http[0].body: a GET request sends no body; set `method` to POST, PUT, PATCH, DELETE or OPTIONS",
    ),
    (
        "invalid-http-header-reserved.yaml",
        "invalid-http-header-reserved.yaml:5:7: http[0].headers: header \"Host\": set by the probe itself and cannot be configured",
    ),
    (
        "invalid-http-header-value.yaml",
        "invalid-http-header-value.yaml:4:16: http[0].headers.X-Token: header value contains `→`; only printable ASCII characters are allowed",
    ),
    (
        "invalid-http-headers-type.yaml",
        "invalid-http-headers-type.yaml:3:14: http[0].headers: expected a mapping of header names to values, found a list",
    ),
    (
        "invalid-http-expected-body-regex.yaml",
        "invalid-http-expected-body-regex.yaml:3:27: http[0].expected_body[1]: not a valid regular expression: unclosed character class",
    ),
    (
        "invalid-http-expected-body-head.yaml",
        "invalid-http-expected-body-head.yaml:4:20: http[0].expected_body: a response to HEAD has no body to match; use another `method`",
    ),
    (
        "invalid-http-expected-body-empty.yaml",
        "invalid-http-expected-body-empty.yaml:3:20: http[0].expected_body: must list at least one pattern; leave `expected_body` out to not read the body",
    ),
    (
        "invalid-http-cert-without-key.yaml",
        "invalid-http-cert-without-key.yaml:3:16: http[0].cert_file: needs `key_file`, the private key of the certificate",
    ),
    (
        "invalid-http-key-mismatch.yaml",
        "invalid-http-key-mismatch.yaml:4:15: http[0].key_file: tests/fixtures/config/other.key is not the private key of the certificate in tests/fixtures/config/client.crt",
    ),
    (
        "invalid-http-cert-missing.yaml",
        "invalid-http-cert-missing.yaml:3:16: http[0].cert_file: cannot read tests/fixtures/config/no-such-client.crt: No such file or directory (os error 2)",
    ),
    (
        "invalid-http-cert-plain-http.yaml",
        "invalid-http-cert-plain-http.yaml:3:16: http[0].cert_file: `cert_file` applies to https:// URLs only, and `url` is http://",
    ),
    (
        "invalid-http-follow-redirects-type.yaml",
        "invalid-http-follow-redirects-type.yaml:3:23: http[0].follow_redirects: expected `true` or `false`, found `sometimes`",
    ),
    (
        "invalid-kubernetes-ingress-method.yaml",
        "invalid-kubernetes-ingress-method.yaml:3:13: kubernetes.ingress.method: `FETCH` is not a method the probe sends; use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    ),
    (
        "invalid-kubernetes-ingress-key-without-cert.yaml",
        "invalid-kubernetes-ingress-key-without-cert.yaml:3:15: kubernetes.ingress.key_file: needs `cert_file`, the certificate the key belongs to",
    ),
    (
        "invalid-tcp-unknown-field.yaml",
        "invalid-tcp-unknown-field.yaml:3:5: tcp[0]: unknown field `port`, expected one of `address`, `id`, `hop`, `interval_seconds`, `timeout_seconds`, `jitter_seconds`",
    ),
];

#[test]
fn every_invalid_fixture_gives_its_exact_message() {
    let mut wrong = Vec::new();
    for (name, want) in INVALID {
        match parse_fixture(name) {
            Ok(config) => wrong.push(format!("{name}: parsed, but must fail: {config:?}")),
            Err(err) if err.to_string() != *want => {
                wrong.push(format!("{name}:\n   got: {err}\n  want: {want}"))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn every_invalid_fixture_is_in_the_table() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo("tests/fixtures/config"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("invalid-"))
        .collect();
    let listed: BTreeSet<String> = INVALID.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(on_disk, listed, "fixtures on disk and in INVALID differ");
}

#[test]
fn errors_carry_their_parts() {
    let err = parse_fixture("invalid-timeout-target.yaml").unwrap_err();
    assert_eq!(err.origin, "invalid-timeout-target.yaml");
    assert_eq!((err.line, err.column), (Some(5), Some(22)));
    assert_eq!(err.path, "dns[1].timeout_seconds");
    assert_eq!(err.message, "40 must be below interval_seconds (30)");
}

#[test]
fn shipped_examples_validate() {
    let dir = repo("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.dns.is_empty(), "{}: no DNS targets", path.display());
            seen += 1;
        }
    }
    assert!(
        seen >= 3,
        "expected default.yaml, daemonset.yaml and standalone.yaml in {}",
        dir.display()
    );
}

#[test]
fn embedded_default_is_the_out_of_cluster_config() {
    let config = Config::parse(EMBEDDED_DEFAULT, "embedded").unwrap();
    assert_eq!(config, Config::load(&repo("config/default.yaml")).unwrap());
    assert_eq!(config.listen, addr("0.0.0.0:9808"));
    assert_eq!(config.max_concurrency, 64);
    let names: Vec<&str> = config.dns.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["example.com", "kubernetes.io"]);
    for t in &config.dns {
        assert_eq!(t.id, t.name);
        assert_eq!(t.flavor, Flavor::Glibc);
        assert_eq!(t.qtypes, QueryTypes::Both);
        assert_eq!(t.resolv_conf, Path::new("/etc/resolv.conf"));
        assert_eq!(t.server, None);
        assert_eq!(t.schedule, schedule(30.0, 25.0, 1.0));
    }
}

#[test]
fn daemonset_example_covers_the_flavors_a_server_and_discovery() {
    let config = Config::load(&repo("config/daemonset.yaml")).unwrap();
    let flavors: BTreeSet<Flavor> = config.dns.iter().map(|t| t.flavor).collect();
    assert!(
        flavors.is_superset(&[Flavor::Glibc, Flavor::Musl, Flavor::Go].into()),
        "{flavors:?}"
    );
    assert!(
        config
            .dns
            .iter()
            .any(|t| t.server == Some(addr("10.96.0.10:53")))
    );
    for name in [
        "kubernetes.default",
        "kube-dns.kube-system.svc.cluster.local",
        "api.stripe.com",
    ] {
        assert!(config.dns.iter().any(|t| t.name == name), "{name} missing");
    }
    let k = config
        .kubernetes
        .expect("daemonset.yaml has a kubernetes section");
    assert_eq!(k.kubeconfig, None, "a pod uses its service account");
    assert_eq!(
        k.discovery.selection.exclude_namespaces,
        ["kube-public", "kube-node-lease"]
    );
    assert_eq!(k.connect, schedule(15.0, 3.0, 1.0));
    assert_eq!(k.dns_schedule, schedule(30.0, 10.0, 2.0));
    assert_eq!(k.ingress_ca, CaBundle::WebPki);
    assert!(!k.ingress_insecure);
    assert_eq!(k.ingress_expected_status, [200..=399]);
    assert_eq!(k.ingress_schedule, schedule(30.0, 10.0, 2.0));
    assert_eq!(config.otlp, None, "commented out");
}

#[test]
fn standalone_example_has_every_static_kind() {
    let config = Config::load(&repo("config/standalone.yaml")).unwrap();
    assert_eq!(config.http.len(), 1);
    assert_eq!(config.http[0].expected_status, [200..=200]);
    assert_eq!(config.tcp.len(), 1);
    assert_eq!(config.tcp[0].key.hop, Hop::Service);
    assert_eq!(config.otlp, None, "commented out");
    let targets = hopwatch::agent::targets(&config);
    assert_eq!(
        targets.len(),
        config.dns.len() + 2,
        "check-config counts them all"
    );
}

#[test]
fn an_empty_document_means_all_defaults() {
    let want = Config {
        listen: addr("0.0.0.0:9808"),
        max_concurrency: 64,
        dns: vec![],
        http: vec![],
        tcp: vec![],
        kubernetes: None,
        otlp: None,
        canary: CanaryConfig::default(),
    };
    for text in [
        "",
        "\n",
        "# nothing but a comment\n",
        "---\n",
        "~\n",
        "\u{feff}",
        "dns: []\n",
        "defaults: {}\n",
        "kubernetes:\n",
        "http: []\ntcp: []\n",
        "otlp:\n",
        "canary:\n",
        "canary: {}\n",
    ] {
        assert_eq!(
            Config::parse(text, "empty.yaml"),
            Ok(want.clone()),
            "{text:?}"
        );
    }
}

#[test]
fn every_canary_field_lands_where_it_should() {
    let text = "listen: 0.0.0.0:9808\nkubernetes: {}\ncanary:\n  listen: 0.0.0.0:9809\n  service: hopwatch/hopwatch-canary\n";
    let config = Config::parse(text, "canary.yaml").unwrap_or_else(|e| panic!("{e}"));
    let want = CanaryConfig {
        listen: Some(addr("0.0.0.0:9809")),
        service: Some(ObjKey::new("hopwatch", "hopwatch-canary")),
    };
    assert_eq!(config.canary, want);
    // Each half on its own; port 0 (any free port) never clashes with the metrics port.
    let only_listen = Config::parse("listen: 127.0.0.1:0\ncanary: {listen: 127.0.0.1:0}\n", "x");
    assert_eq!(
        only_listen.unwrap().canary.listen,
        Some(addr("127.0.0.1:0"))
    );
    let only_service = Config::parse("kubernetes: {}\ncanary: {service: a/b}\n", "x").unwrap();
    assert_eq!(only_service.canary.listen, None);
    assert_eq!(only_service.canary.service, Some(ObjKey::new("a", "b")));
}

#[test]
fn defaults_apply_and_overrides_win() {
    let config = parse_fixture("valid-overrides.yaml").unwrap();
    assert_eq!(config.listen, addr("127.0.0.1:9100"));
    assert_eq!(config.max_concurrency, 16);
    let inherited = DnsTarget {
        id: "kubernetes.default".into(),
        name: "kubernetes.default".into(),
        flavor: Flavor::Musl,
        qtypes: QueryTypes::Aaaa,
        resolv_conf: "/run/hopwatch/resolv.conf".into(),
        server: None,
        schedule: schedule(20.0, 5.0, 0.5),
    };
    let overridden = DnsTarget {
        id: "example-fqdn".into(),
        name: "example.com.".into(),
        flavor: Flavor::Go,
        qtypes: QueryTypes::Both,
        resolv_conf: "/etc/resolv.conf".into(),
        server: Some(addr("[fd00::10]:5353")),
        schedule: schedule(0.5, 0.25, 0.0),
    };
    let interval_only = DnsTarget {
        id: "svc".into(),
        name: "svc_1.example".into(),
        server: Some(addr("10.96.0.10:53")),
        schedule: schedule(60.0, 5.0, 0.5),
        ..inherited.clone()
    };
    assert_eq!(config.dns.len(), 3);
    assert_eq!(config.dns[0], inherited);
    assert_eq!(config.dns[1], overridden);
    assert_eq!(config.dns[2], interval_only);
}

#[test]
fn unset_timeout_and_jitter_follow_each_targets_interval() {
    let config = parse_fixture("valid-computed-defaults.yaml").unwrap();
    let schedules: Vec<Schedule> = config.dns.iter().map(|t| t.schedule).collect();
    assert_eq!(
        schedules,
        [
            schedule(10.0, 8.0, 1.0),
            schedule(2.0, 1.6, 0.2),
            schedule(300.0, 25.0, 1.0),
            schedule(10.0, 8.0, 1.0),
        ]
    );
    assert_eq!(config.dns[3].qtypes, QueryTypes::A);
    assert_eq!(config.dns[0].flavor, Flavor::Glibc);
}

/// What `kubernetes: {}` means, under a file without `defaults`.
fn kubernetes_defaults() -> KubernetesConfig {
    KubernetesConfig {
        kubeconfig: None,
        discovery: Settings {
            selection: Selection {
                namespaces: vec![],
                exclude_namespaces: vec![],
                label_selector: LabelSelector::default(),
                namespace_selector: LabelSelector::default(),
                annotation: "hopwatch.io/probe".into(),
                mode: AnnotationMode::OptOut,
                always: vec![
                    ObjKey::new("kube-system", "kube-dns"),
                    ObjKey::new("default", "kubernetes"),
                ],
            },
            pod_probe_nodes: 3,
            service_probe_nodes: 3,
            edge_probe_nodes: 3,
            cluster_domain: "cluster.local".into(),
            dns_service: ObjKey::new("kube-system", "kube-dns"),
            ingress_classes: vec![],
        },
        connect: schedule(15.0, 3.0, 1.0),
        sweep: schedule(600.0, 3.0, 1.0),
        service_histogram: true,
        dns_names: vec!["kubernetes.default".into()],
        dns_flavor: Flavor::Glibc,
        dns_qtypes: QueryTypes::Both,
        dns_resolv_conf: "/etc/resolv.conf".into(),
        dns_schedule: schedule(30.0, 25.0, 1.0),
        node_local_dns: None,
        ingress_ca: CaBundle::WebPki,
        ingress_insecure: false,
        ingress_expected_status: vec![200..=399],
        ingress_schedule: schedule(30.0, 25.0, 1.0),
        ingress_request: HttpOptions::default(),
        gateway_api: true,
    }
}

#[test]
fn without_a_kubernetes_section_nothing_is_discovered() {
    for text in ["", "dns: []\n", "kubernetes:\n", "kubernetes: ~\n"] {
        let config = Config::parse(text, "k.yaml").unwrap();
        assert_eq!(config.kubernetes, None, "{text:?}");
    }
    for file in ["config/default.yaml", "config/standalone.yaml"] {
        assert_eq!(
            Config::load(&repo(file)).unwrap().kubernetes,
            None,
            "{file}"
        );
    }
}

#[test]
fn an_empty_kubernetes_section_means_all_defaults() {
    for text in [
        "kubernetes: {}\n",
        "kubernetes:\n  services:\n  connect: {}\n  dns:\n",
        "kubernetes:\n  services: {always: [kube-system/kube-dns, default/kubernetes]}\n",
    ] {
        let config = Config::parse(text, "k.yaml").unwrap();
        assert_eq!(config.kubernetes, Some(kubernetes_defaults()), "{text:?}");
    }
}

#[test]
fn the_gateway_api_is_watched_unless_turned_off() {
    for (text, watched) in [
        ("kubernetes: {gateway_api: {}}\n", true),
        ("kubernetes: {gateway_api: {enabled: true}}\n", true),
        ("kubernetes: {gateway_api: {enabled: false}}\n", false),
    ] {
        let config = Config::parse(text, "k.yaml").unwrap();
        assert_eq!(config.kubernetes.unwrap().gateway_api, watched, "{text:?}");
    }
}

#[test]
fn cluster_dns_inherits_defaults_and_connect_does_not() {
    let text = "defaults:\n  interval_seconds: 60\n  timeout_seconds: 10\n  jitter_seconds: 4\n  dns:\n    flavor: go\n    qtypes: [A]\n    resolv_conf: /r.conf\nkubernetes: {}\n";
    let k = Config::parse(text, "k.yaml").unwrap().kubernetes.unwrap();
    assert_eq!(k.connect, schedule(15.0, 3.0, 1.0));
    assert_eq!(k.dns_schedule, schedule(60.0, 10.0, 4.0));
    assert_eq!(
        (k.dns_flavor, k.dns_qtypes, k.dns_resolv_conf.as_path()),
        (Flavor::Go, QueryTypes::A, Path::new("/r.conf"))
    );
    let short = "kubernetes:\n  connect: {interval_seconds: 2}\n  dns: {interval_seconds: 5}\n";
    let k = Config::parse(short, "k.yaml").unwrap().kubernetes.unwrap();
    assert_eq!(
        k.connect,
        schedule(2.0, 1.6, 0.2),
        "computed from the interval"
    );
    assert_eq!(k.dns_schedule, schedule(5.0, 4.0, 0.5));
    assert_eq!(
        k.ingress_schedule,
        schedule(30.0, 25.0, 1.0),
        "no defaults: the computed ones"
    );
}

#[test]
fn ingress_probes_inherit_the_defaults_schedule() {
    let text = "defaults:\n  interval_seconds: 60\n  timeout_seconds: 10\n  jitter_seconds: 4\nkubernetes:\n  ingress:\n    timeout_seconds: 2\n";
    let k = Config::parse(text, "k.yaml").unwrap().kubernetes.unwrap();
    assert_eq!(k.ingress_schedule, schedule(60.0, 2.0, 4.0));
    assert_eq!(k.ingress_ca, CaBundle::WebPki);
    assert!(!k.ingress_insecure);
    assert_eq!(k.ingress_expected_status, [200..=399]);
}

#[test]
fn every_kubernetes_field_lands_where_it_should() {
    let k = parse_fixture("valid-kubernetes.yaml")
        .unwrap()
        .kubernetes
        .unwrap();
    assert_eq!(
        k.kubeconfig,
        Some(PathBuf::from("/etc/hopwatch/kubeconfig"))
    );
    let d = &k.discovery;
    assert_eq!(d.cluster_domain, "cluster.example");
    assert_eq!(d.pod_probe_nodes, 1000);
    assert_eq!(d.service_probe_nodes, 5);
    assert_eq!(d.edge_probe_nodes, 2);
    assert_eq!(k.sweep, schedule(120.0, 1.6, 0.0));
    assert_eq!(d.dns_service, ObjKey::new("kube-system", "coredns"));
    let sel = &d.selection;
    assert_eq!(sel.namespaces, ["shop", "payments", "0-legacy"]);
    assert_eq!(sel.exclude_namespaces, ["kube-public"]);
    assert_eq!(
        sel.label_selector,
        LabelSelector::parse("app in (web,api),tier!=cache").unwrap()
    );
    assert_eq!(
        sel.namespace_selector,
        LabelSelector::parse("team=shop,env notin (dev),!legacy").unwrap()
    );
    assert_eq!(d.ingress_classes, ["nginx", "alb.example.com"]);
    assert_eq!(sel.annotation, "example.com/hopwatch-probe");
    assert_eq!(sel.mode, AnnotationMode::OptIn);
    assert_eq!(sel.always, [ObjKey::new("default", "kubernetes")]);
    assert_eq!(k.connect, schedule(2.0, 1.6, 0.0));
    assert!(!k.service_histogram);
    assert_eq!(
        k.dns_names,
        [
            "kubernetes.default",
            "kube-dns.kube-system.svc.cluster.example."
        ]
    );
    assert_eq!(k.dns_flavor, Flavor::Musl, "from defaults");
    assert_eq!(k.dns_qtypes, QueryTypes::A, "its own");
    assert_eq!(k.dns_resolv_conf, Path::new("/run/hopwatch/resolv.conf"));
    assert_eq!(k.dns_schedule, schedule(20.0, 5.0, 0.25));
    assert_eq!(k.node_local_dns, Some(addr("169.254.20.10:53")));
    assert_eq!(k.ingress_ca, ca());
    assert!(k.ingress_insecure);
    assert_eq!(k.ingress_expected_status, [200..=200, 300..=308]);
    assert_eq!(
        k.ingress_schedule,
        schedule(45.0, 5.0, 3.0),
        "the timeout from defaults"
    );
    assert!(!k.gateway_api);
}

#[test]
fn empty_kubernetes_lists_mean_all_and_none() {
    let k = parse_fixture("valid-kubernetes-empty-lists.yaml")
        .unwrap()
        .kubernetes
        .unwrap();
    let want = Selection {
        always: vec![],
        ..kubernetes_defaults().discovery.selection
    };
    assert_eq!(k.discovery.selection, want);
    assert_eq!(k.node_local_dns, Some(addr("[fd00::a]:5353")));
}

/// The CA bundle of the fixtures, which name it relative to the package directory (the
/// working directory of integration tests).
fn ca() -> CaBundle {
    CaBundle::from_file(&repo("tests/fixtures/config/ca.pem")).unwrap()
}

fn url(text: &str) -> HttpUrl {
    HttpUrl::parse(text).unwrap()
}

#[test]
fn every_http_field_lands_where_it_should() {
    let config = parse_fixture("valid-http.yaml").unwrap();
    let every_field = StaticHttp {
        id: "shop".into(),
        url: url("https://shop.example.com:8443/healthz?full=1"),
        connect_to: Some(addr("203.0.113.10:8443")),
        expected_status: vec![200..=200, 301..=301, 200..=299, 404..=410],
        insecure: true,
        ca: ca(),
        resolver: None,
        schedule: schedule(10.0, 2.0, 0.0),
        request: HttpOptions::default(),
    };
    let url_only = StaticHttp {
        id: "http://api.example.com/".into(),
        url: url("http://api.example.com/"),
        connect_to: None,
        expected_status: vec![200..=399],
        insecure: false,
        ca: CaBundle::WebPki,
        resolver: None,
        schedule: schedule(20.0, 5.0, 0.5),
        request: HttpOptions::default(),
    };
    let resolver = StaticHttp {
        id: "www-go".into(),
        url: url("https://www.example.com/"),
        resolver: Some(StubResolver {
            resolv_conf: "/etc/hopwatch/resolv.conf".into(),
            flavor: Flavor::Go,
            qtypes: QueryTypes::Both,
        }),
        ..url_only.clone()
    };
    let inherited = StaticHttp {
        id: "www-musl".into(),
        url: url("https://www.example.com/"),
        expected_status: vec![500..=599],
        resolver: Some(StubResolver {
            resolv_conf: "/run/hopwatch/resolv.conf".into(),
            flavor: Flavor::MuslLegacy,
            qtypes: QueryTypes::Aaaa,
        }),
        schedule: schedule(60.0, 5.0, 0.5),
        ..url_only.clone()
    };
    assert_eq!(config.http, [every_field, url_only, resolver, inherited]);
}

#[test]
fn every_request_field_lands_where_it_should() {
    let config = parse_fixture("valid-http-request.yaml").unwrap();
    let client = ClientCert::from_files(
        &repo("tests/fixtures/config/client.crt"),
        &repo("tests/fixtures/config/client.key"),
    )
    .unwrap();
    let search = &config.http[0].request;
    assert_eq!(search.method, Method::POST);
    assert_eq!(&search.body[..], br#"{"q": "probe"}"#);
    let headers: Vec<(&str, &[u8])> = search
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    assert_eq!(
        headers,
        [
            ("content-type", &b"application/json"[..]),
            ("authorization", b"Bearer s3cret")
        ]
    );
    let patterns: Vec<&str> = search.expected_body.iter().map(|p| p.as_str()).collect();
    assert_eq!(patterns, ["\"results\":", "build=[0-9]+"]);
    assert_eq!(search.client_cert.as_ref(), Some(&client));
    assert!(!search.follow_redirects);
    // The spec the scheduler runs carries them.
    let spec = config.http[0].target().spec;
    assert_eq!(spec.method, Method::POST);
    assert_eq!(spec.headers, search.headers);
    assert!(!spec.follow_redirects);
    // Nothing set: blackbox_exporter's defaults.
    assert_eq!(config.http[1].request, HttpOptions::default());
    assert!(config.http[1].target().spec.follow_redirects);
    let ingress = config.kubernetes.unwrap().ingress_request;
    assert_eq!(ingress.method, Method::HEAD);
    assert_eq!(ingress.client_cert, Some(client));
    assert!(!ingress.follow_redirects);
    // Header values never show in the config's Debug output.
    assert!(!format!("{:?}", config.http).contains("s3cret"));
}

#[test]
fn every_tcp_field_lands_where_it_should() {
    let config = parse_fixture("valid-tcp.yaml").unwrap();
    let target = |hop, id: &str, address: &str, schedule| ConnectTarget {
        key: TargetKey {
            hop,
            id: id.to_string(),
        },
        addresses: vec![addr(address)],
        schedule,
    };
    let inherited = schedule(20.0, 5.0, 1.0);
    assert_eq!(
        config.tcp,
        [
            target(
                Hop::Pod,
                "kube-dns-tcp",
                "10.96.0.10:53",
                schedule(5.0, 1.0, 0.25)
            ),
            target(Hop::Service, "[fd00::10]:443", "[fd00::10]:443", inherited),
            target(Hop::Service, "10.96.0.1:443", "10.96.0.1:443", inherited),
        ]
    );
}

#[test]
fn every_otlp_field_lands_where_it_should() {
    let otlp = parse_fixture("valid-otlp.yaml").unwrap().otlp.unwrap();
    assert_eq!(otlp.endpoint, "https://otlp.example.com:4318/v1/metrics");
    assert_eq!(otlp.interval, secs(30.0));
    assert_eq!(otlp.timeout, secs(5.0));
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        otlp.headers,
        pairs(&[
            ("Authorization", "Bearer c2VjcmV0"),
            ("X-Scope-OrgID", "42")
        ])
    );
    assert_eq!(
        otlp.resource,
        pairs(&[
            ("k8s.cluster.name", "prod-eu-1"),
            ("deployment.environment", "production"),
            ("service.version", "1.10"),
        ]),
        "in the order written, numbers as written"
    );
}

#[test]
fn otlp_defaults_and_a_short_interval() {
    let endpoint = "otlp:\n  endpoint: http://127.0.0.1:4318/v1/metrics\n";
    let otlp = Config::parse(endpoint, "o.yaml").unwrap().otlp.unwrap();
    assert_eq!((otlp.interval, otlp.timeout), (secs(60.0), secs(10.0)));
    assert_eq!((otlp.headers.len(), otlp.resource.len()), (0, 0));
    let short = format!("{endpoint}  interval_seconds: 5\n");
    let otlp = Config::parse(&short, "o.yaml").unwrap().otlp.unwrap();
    assert_eq!(
        (otlp.interval, otlp.timeout),
        (secs(5.0), secs(4.0)),
        "the default timeout stays below the interval"
    );
}

#[test]
fn static_targets_are_the_dns_http_and_tcp_entries() {
    let text = "dns:\n  - name: example.com\nhttp:\n  - url: https://shop.example.com/\n    flavor: musl\n    qtypes: [A]\n    resolv_conf: tests/fixtures/config/resolv.conf\n  - url: http://10.0.0.1/\ntcp:\n  - address: 10.96.0.10:53\n    hop: pod\n";
    let config = Config::parse(text, "t.yaml").unwrap();
    let targets = hopwatch::agent::targets(&config);
    let keys: Vec<String> = targets.iter().map(|t| t.key().to_string()).collect();
    assert_eq!(
        keys,
        [
            "dns/example.com",
            "ingress/https://shop.example.com/",
            "ingress/http://10.0.0.1/",
            "pod/10.96.0.10:53",
        ]
    );
    let Target::Http(shop) = &targets[1] else {
        panic!("{:?}", targets[1])
    };
    let Resolver::Emulated(opts) = &shop.spec.resolver else {
        panic!("{:?}", shop.spec.resolver)
    };
    assert_eq!((opts.flavor, opts.qtypes), (Flavor::Musl, QueryTypes::A));
    assert_eq!(
        opts.conf.search,
        ["svc.cluster.local", "cluster.local"],
        "read from the file"
    );
    assert_eq!(opts.conf.ndots, 5);
    let Target::Http(ip) = &targets[2] else {
        panic!("{:?}", targets[2])
    };
    assert_eq!(ip.spec.resolver, Resolver::System);
    assert_eq!(ip.spec.expected_status, [200..=399]);
    assert_eq!(
        targets[3],
        Target::Connect(config.tcp[0].clone()),
        "a tcp target runs as configured"
    );
}

#[test]
fn an_unreadable_file_names_the_file() {
    let path = repo("tests/fixtures/config/no-such-file.yaml");
    let err = Config::load(&path).unwrap_err();
    assert_eq!((err.line, err.column, err.path.as_str()), (None, None, ""));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot read the file: No such file or directory (os error 2)",
            path.display()
        )
    );
}

/// Cheap deterministic pseudo-random numbers, so that the mangling below is reproducible.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn mangled_input_gives_an_error_not_a_panic() {
    const SPLICES: &[&str] = &[
        "\t",
        "\n",
        ": ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        "&a ",
        "*a",
        "<<: ",
        "~",
        ".nan",
        "-.inf",
        "1e999",
        "99999999999999999999999999",
        "-0",
        "0x1F",
        "\"",
        "'",
        "? ",
        "!!binary ",
        "---\n",
        "\u{0}",
        "é",
        "\u{feff}",
        "#",
        "%YAML 1.2\n",
        "|\n",
        ">-\n",
    ];
    let mut rng = Lcg(0x5eed);
    let mut texts = vec![
        fixture("valid-overrides.yaml"),
        EMBEDDED_DEFAULT.to_string(),
        fixture("valid-kubernetes.yaml"),
    ];
    for (name, _) in INVALID.iter().take(12) {
        texts.push(fixture(name));
    }
    let mut errors = 0;
    for text in &texts {
        let chars: Vec<char> = text.chars().collect();
        for _ in 0..150 {
            let at = rng.below(chars.len() + 1);
            let mut mangled: String = chars[..at].iter().collect();
            match rng.below(3) {
                0 => {} // truncated
                1 => {
                    mangled.push_str(SPLICES[rng.below(SPLICES.len())]);
                    mangled.extend(&chars[at..]);
                }
                _ => mangled.extend(chars.iter().skip(at + 1 + rng.below(8))),
            }
            if let Err(err) = Config::parse(&mangled, "m.yaml") {
                let line = err.to_string();
                assert!(line.starts_with("m.yaml"), "{line}");
                assert!(!line.contains('\n'), "not one line: {line:?}");
                errors += 1;
            }
        }
    }
    assert!(
        errors > 100,
        "only {errors} of the mangled inputs failed; the mangling is too gentle"
    );
}
