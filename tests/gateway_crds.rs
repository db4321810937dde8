//! The Gateway API fields the agent reads exist, under those names and with those defaults, in
//! the real CRDs (standard channel of `sigs.k8s.io/gateway-api`, fetched by
//! tools/gateway-api/fetch from the Go module proxy): the hand-written types of
//! agent/discovery/gateway.rs cannot drift from the schema unnoticed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The CRD directory tools/gateway-api/fetch prints last; fails loudly without Go or network.
fn crds() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/gateway-api/fetch");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("the fetch prints the directory"),
    )
}

/// The `v1` schema of the CRD in `file`.
fn schema(dir: &Path, file: &str) -> Value {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let crd: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    let versions = crd["spec"]["versions"].as_array().expect("spec.versions");
    let v1 = versions
        .iter()
        .find(|v| v["name"] == "v1")
        .unwrap_or_else(|| panic!("{file}: no v1"));
    assert_eq!(v1["served"], true, "{file}: v1 served");
    v1["schema"]["openAPIV3Schema"].clone()
}

/// The schema at `path` (dot-separated properties; `[]` steps into list items).
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut node = schema;
    for step in path.split('.') {
        let (name, list) = match step.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (step, false),
        };
        node = &node["properties"][name];
        assert!(!node.is_null(), "no field {step} in {path}");
        if list {
            node = &node["items"];
            assert!(!node.is_null(), "{step} of {path} is not a list");
        }
    }
    node
}

#[test]
fn the_fields_the_agent_reads_are_in_the_v1_crds() {
    let dir = crds();
    let gateway = schema(&dir, "gateway.networking.k8s.io_gateways.yaml");
    for field in ["name", "hostname", "port", "protocol"] {
        at(&gateway, &format!("spec.listeners[].{field}"));
    }
    let address_type = at(&gateway, "status.addresses[].type");
    assert_eq!(
        address_type["default"], "IPAddress",
        "an address without a type is an IP address"
    );
    at(&gateway, "status.addresses[].value");

    let route = schema(&dir, "gateway.networking.k8s.io_httproutes.yaml");
    for field in ["group", "kind", "namespace", "name", "sectionName", "port"] {
        at(&route, &format!("spec.parentRefs[].{field}"));
    }
    assert_eq!(at(&route, "spec.parentRefs[].kind")["default"], "Gateway");
    assert_eq!(
        at(&route, "spec.parentRefs[].group")["default"],
        "gateway.networking.k8s.io"
    );
    at(&route, "spec.hostnames[]");
    let path = at(&route, "spec.rules[].matches[].path");
    assert_eq!(
        path["default"],
        serde_json::json!({"type": "PathPrefix", "value": "/"}),
        "a match without a path is PathPrefix /"
    );
    let types = at(&route, "spec.rules[].matches[].path.type");
    assert_eq!(types["default"], "PathPrefix");
    let mut names: Vec<&str> = types["enum"]
        .as_array()
        .expect("path.type enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Exact", "PathPrefix", "RegularExpression"]);
    let matches = at(&route, "spec.rules[].matches");
    assert_eq!(
        matches["default"],
        serde_json::json!([{"path": {"type": "PathPrefix", "value": "/"}}]),
        "a rule without matches is PathPrefix /"
    );
    for field in ["group", "kind", "name", "namespace", "port"] {
        at(&route, &format!("spec.rules[].backendRefs[].{field}"));
    }
    assert_eq!(
        at(&route, "spec.rules[].backendRefs[].kind")["default"],
        "Service"
    );
    assert_eq!(
        at(&route, "spec.rules[].backendRefs[].group")["default"],
        ""
    );
}
