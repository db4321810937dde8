//! `hopwatch trace` in the lab, run where a pod would run it: inside the agent pod of node-1
//! (`ip netns exec hwl-hopwatch-node-1`), with that pod's resolv.conf, the agents' kubeconfig
//! (the API server through the `default/kubernetes` ClusterIP) and the lab CA. Each fault must
//! be named by the hop it breaks and its cause in the `--json` verdict.

use std::process::Command;

use serde_json::Value;

use crate::harness::{DOMAIN, Lab, RUN_DIR, eventually};
use crate::{WAIT, all_healthy};

/// The pod the traces run in.
const POD_NETNS: &str = "hwl-hopwatch-node-1";

/// `hopwatch trace URL --json` (plus `extra`) inside [`POD_NETNS`]: exit code and verdict.
fn trace(url: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let resolv = format!("/etc/netns/{POD_NETNS}/resolv.conf");
    let kubeconfig = format!("{RUN_DIR}/agents/kubeconfig");
    let ca = format!("{RUN_DIR}/pki/ca.crt");
    let out = Command::new("ip")
        .args(["netns", "exec", POD_NETNS, env!("CARGO_BIN_EXE_hopwatch")])
        .args(["trace", url, "--json", "--timeout-seconds", "3"])
        .args(["--kubeconfig", &kubeconfig, "--resolv-conf", &resolv])
        .args(["--ca-file", &ca, "--cluster-domain", DOMAIN])
        .args(extra)
        .output()
        .expect("run ip netns exec hopwatch trace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "trace {url}: not JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), doc)
}

/// Ok when the trace of `url` ends with `broken_hop` and `cause` (both null when healthy).
fn verdict_is(url: &str, extra: &[&str], hop: Value, cause: Value) -> Result<Value, String> {
    let (code, doc) = trace(url, extra);
    let v = &doc["verdict"];
    let want_code = if hop.is_null() { 0 } else { 1 };
    if v["broken_hop"] == hop && v["cause"] == cause && code == Some(want_code) {
        Ok(doc)
    } else {
        Err(format!(
            "exit {code:?}, verdict {v}; want {hop} {cause}, exit {want_code}"
        ))
    }
}

const SHOP: &str = "https://shop.example.com/";

#[test]
fn trace_names_the_broken_hop_and_cause_of_each_fault() {
    let lab = Lab::up();
    eventually("healthy", WAIT, || all_healthy(&lab));
    let healthy = verdict_is(SHOP, &[], Value::Null, Value::Null).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(healthy["ok"], true);

    // A host no Ingress rule names, sent to the load balancer (the default certificate does
    // not cover it, hence --insecure: the handshake's verdict is still reported).
    let insecure = ["--connect-to", "10.250.0.10:443", "--insecure"];
    verdict_is(
        "https://www.example.org/",
        &insecure,
        "ingress".into(),
        "no_ingress".into(),
    )
    .unwrap_or_else(|e| panic!("no Ingress rule: {e}"));

    lab.fault(&["cert", "--host", "shop.example.com", "--kind", "expired"]);
    eventually("trace: expired certificate", WAIT, || {
        verdict_is(SHOP, &[], "tls".into(), "tls_expired".into())
    });
    lab.heal(&["cert", "--host", "shop.example.com"]);

    // The fault empties the EndpointSlice as if web's selector matched no pod; the lab's API
    // server serves no Pod objects, so trace finds no pod in the namespace to select.
    lab.fault(&["no-endpoints", "--service", "shop/web"]);
    eventually("trace: no endpoints", WAIT, || {
        verdict_is(SHOP, &[], "endpoints".into(), "no_pods".into())
    });
    lab.heal(&["no-endpoints", "--service", "shop/web"]);

    lab.fault(&["dns-down"]);
    eventually("trace: DNS down", WAIT, || {
        verdict_is(SHOP, &[], "dns".into(), "dns_timeout".into())
    });
    lab.heal(&["dns-down"]);
    eventually("trace: healthy again", WAIT, || {
        verdict_is(SHOP, &[], Value::Null, Value::Null)
    });
}
