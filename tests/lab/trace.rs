//! `hopwatch trace` in the lab, run where a pod would run it: inside the agent pod of node-1
//! (`ip netns exec hwl-hopwatch-node-1`), with that pod's resolv.conf, a kubeconfig bound to
//! deploy/'s `hopwatch-trace` ClusterRole (the API server through the `default/kubernetes`
//! ClusterIP) and the lab CA. Each fault must
//! be named by the hop it breaks and its cause in the `--json` verdict, and the Service faults
//! by the label or port that is off, read from the lab's Pod objects.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{DOMAIN, Lab, eventually, prefix, run_dir};
use crate::{WAIT, all_healthy};

/// The namespace of the pod the traces run in: the agent pod of node-1.
fn pod_netns() -> String {
    format!("{}hopwatch-node-1", prefix())
}

/// `hopwatch trace URL --json` (plus `extra`) inside [`pod_netns`]: exit code and verdict.
fn trace(url: &str, extra: &[&str]) -> (Option<i32>, Value) {
    trace_env(url, extra, &[])
}

/// [`trace`] with environment variables, such as the downward API's `POD_NAMESPACE`,
/// `POD_IP` and `HOPWATCH_POD_LABELS_FILE` that tell trace which pod it runs in.
pub(crate) fn trace_env(url: &str, extra: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Value) {
    let pod_netns = pod_netns();
    let resolv = format!("/etc/netns/{pod_netns}/resolv.conf");
    let kubeconfig = format!("{}/agents/trace.kubeconfig", run_dir());
    let ca = format!("{}/pki/ca.crt", run_dir());
    let out = Command::new("ip")
        .args(["netns", "exec", &pod_netns, &crate::harness::agent_binary()])
        .args(["trace", url, "--json", "--timeout-seconds", "3"])
        .args(["--kubeconfig", &kubeconfig, "--resolv-conf", &resolv])
        .args(["--ca-file", &ca, "--cluster-domain", DOMAIN])
        .args(extra)
        .envs(env.iter().copied())
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

/// The hop called `name` of a trace's JSON.
fn hop<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["hops"]
        .as_array()
        .and_then(|hops| hops.iter().find(|h| h["name"] == name))
        .unwrap_or_else(|| panic!("no hop {name} in {doc:#}"))
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

    // kube-controller-manager is down and web's EndpointSlice is gone with nothing to write it
    // again, while its Pods stay Ready and carry app=web. Trace reads them, finds that the
    // selector does match, and so blames what lists the endpoints, not the selector.
    lab.fault(&["controller-down", "--service", "shop/web"]);
    let empty = eventually("trace: no endpoints", WAIT, || {
        verdict_is(SHOP, &[], "endpoints".into(), "no_endpoints".into())
    });
    assert_eq!(
        empty["verdict"]["detail"],
        "Ready pods match Service shop/web (web-1, web-2, web-3), but its EndpointSlices \
         list no ready endpoint: is the endpointslice controller running?"
    );
    lab.heal(&["controller-down", "--service", "shop/web"]);

    // cart selects app=carts; its only pod carries app=cart (and the web, api and db pods,
    // more numerous, carry app too): the label that is off is named, with its pod.
    lab.fault(&[
        "selector",
        "--service",
        "shop/cart",
        "--selector",
        "app=carts",
    ]);
    let mismatch = eventually("trace: selector mismatch", WAIT, || {
        verdict_is(
            "svc/shop/cart",
            &[],
            "endpoints".into(),
            "selector_mismatch".into(),
        )
    });
    assert_eq!(
        mismatch["verdict"]["detail"],
        "Service shop/cart selects nothing: selector app=carts, pods carry app=cart (cart-1)"
    );
    assert_eq!(
        hop(&mismatch, "endpoints")["data"]["selector"],
        json!({"selector": "app=carts", "result": "off_by_one", "key": "app",
               "expected": "carts", "actual": "cart", "pods": ["cart-1"]})
    );
    // kube-proxy rejects the empty Service's ClusterIP: the symptom, not the blame.
    assert_eq!(hop(&mismatch, "service")["status"], "broken");
    assert_eq!(hop(&mismatch, "pod")["status"], "skipped");
    lab.heal(&["selector", "--service", "shop/cart"]);

    // web's targetPort becomes 8081; its pods listen on and declare 8080. The endpoints stay
    // Ready, kube-proxy DNATs to 8081, every pod refuses, nginx answers 502: the refusing
    // pods are blamed, with the port dialled and the port their container declares.
    lab.fault(&["target-port", "--service", "shop/web", "--port", "8081"]);
    let ports = eventually("trace: targetPort mismatch", WAIT, || {
        verdict_is(SHOP, &[], "pod".into(), "port_mismatch".into())
    });
    assert_eq!(
        ports["verdict"]["detail"],
        "pod shop/web-1 is Ready but 10.244.1.11:8081 refused: targetPort 8081, container web \
         declares 8080/TCP"
    );
    let pod = hop(&ports, "pod");
    assert_eq!(
        pod["summary"],
        "0 of 3 ready endpoints accept connections on 8081"
    );
    assert_eq!(
        pod["data"]["refused_pod"],
        json!({"pod": "web-1", "port": 8081, "declared": [
            {"container": "web", "name": "http", "port": 8080, "protocol": "TCP"}]})
    );
    assert_eq!(hop(&ports, "ingress")["data"]["status"], 502);
    assert_eq!(hop(&ports, "service")["data"]["result"], "refused");
    assert_eq!(hop(&ports, "endpoints")["status"], "ok");
    lab.heal(&["target-port", "--service", "shop/web", "--port", "8081"]);

    lab.fault(&["dns-down"]);
    eventually("trace: DNS down", WAIT, || {
        verdict_is(SHOP, &[], "dns".into(), "dns_timeout".into())
    });
    lab.heal(&["dns-down"]);
    for target in [SHOP, "svc/shop/cart"] {
        eventually("trace: healthy again", WAIT, || {
            verdict_is(target, &[], Value::Null, Value::Null)
        });
    }
}
