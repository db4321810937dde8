"""alerts/alertmanager.yaml in a real Alertmanager (Debian's prometheus-alertmanager): amtool
accepts it, and with the alerts the rules raise posted, exactly what should page is left:

- `lab`: five faults at once (kube-proxy rules gone for one Service on node n1, a Service
  with no ready pod behind an Ingress, DNS blocked from node n2's pods, a Service whose pods
  refuse on their targetPort, an expired certificate), each with every alert it raises, labelled as the rules label them: one page
  per fault, each with its node, Service or host; every other alert inhibited. And each
  fault alone, in a cluster of its own (`alone-1` …), where no other fault's alert can do
  the inhibiting: one page.
- `tls`: an expired certificate's TLS alert is inhibited by the certificate one, while a TLS
  failure of another kind, or of another target, is not.
- `diffuse`: a burn rate with nothing more precise firing still pages.

Starts Alertmanager on a free loopback port with its own storage directory, and stops it
whatever happens. Exits non-zero, saying what was wrong, when a check fails."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "..", "alerts", "alertmanager.yaml")
BINARIES = ("prometheus-alertmanager", "alertmanager")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"},
                                 method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=5) as resp:
        text = resp.read().decode()
        return json.loads(text) if text else None


def alert(name, severity="critical", **labels):
    return {"labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": name}, "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def burn(hop, cluster):
    name = {"dns": "DNS", "loadbalancer": "LoadBalancer"}.get(hop, hop.capitalize())
    return alert(f"Hopwatch{name}ErrorBudgetBurn", cluster=cluster, hop=hop)


CERT = "shop/front/pay.example.com/"


def lab_faults(cluster):
    """fault -> (the alerts it raises in `cluster`, the one that must page)."""
    c = {"cluster": cluster}
    return {
        "kube-proxy rules gone for shop/cart on n1": (
            [alert("HopwatchClusterIPFailingOnNode", node="n1", **c), burn("service", cluster)],
            alert("HopwatchClusterIPFailingOnNode", node="n1", **c)),
        "no ready pod for shop/web, behind an Ingress": (
            [alert("HopwatchServiceNoReadyEndpoints", namespace="shop", service="web", reason="no_endpoints", **c),
             alert("HopwatchServiceNoReadyEndpoints", "warning", namespace="shop", service="web",
                   reason="no_endpoints", **c),
             burn("ingress", cluster)],
            alert("HopwatchServiceNoReadyEndpoints", namespace="shop", service="web", reason="no_endpoints", **c)),
        # HopwatchServiceEndpointsUnreachable for kube-system/kube-dns is not raised: the rule
        # counts unreachable endpoints only where the verdict is `pod`, and on n2 it is `dns`.
        "DNS blocked from n2's pods": (
            [alert("HopwatchDNSFailingOnNode", node="n2", **c),
             alert("HopwatchDNSResolverTimeouts", "warning", node="n2", server="kube-dns", **c)]
            + [burn(h, cluster) for h in ("dns", "loadbalancer", "ingress", "service", "pod")],
            alert("HopwatchDNSFailingOnNode", node="n2", **c)),
        # HopwatchServiceEndpointsUnreachable for shop/api is raised (the verdict is service
        # or pod on every node) and inhibited by the Service's page.
        "shop/api's pods refuse on their targetPort": (
            [alert("HopwatchServiceFailingEverywhere", namespace="shop", service="api", **c),
             alert("HopwatchServiceEndpointsUnreachable", "warning", namespace="shop", service="api", **c),
             burn("service", cluster), burn("pod", cluster)],
            alert("HopwatchServiceFailingEverywhere", namespace="shop", service="api", **c)),
        "expired certificate of pay.example.com": (
            [alert("HopwatchCertificateExpiryImminent", namespace="shop", target=CERT, **c),
             alert("HopwatchTLSVerificationFailing", hop="ingress", namespace="shop", target=CERT,
                   result="tls_expired", **c),
             burn("ingress", cluster)],
            alert("HopwatchCertificateExpiryImminent", namespace="shop", target=CERT, **c)),
    }


def tls_cases():
    """(alert, expected state) of the `tls` cluster."""
    c = {"cluster": "tls", "namespace": "shop"}
    shop, api_host = "shop/front/shop.example.com/", "shop/front/api.example.com/"
    return [
        (alert("HopwatchCertificateExpiryImminent", target=shop, **c), "active"),
        (alert("HopwatchTLSVerificationFailing", hop="ingress", target=shop, result="tls_expired", **c), "suppressed"),
        (alert("HopwatchTLSVerificationFailing", hop="ingress", target=shop, result="tls_hostname_mismatch", **c),
         "active"),
        (alert("HopwatchTLSVerificationFailing", hop="ingress", target=api_host, result="tls_expired", **c), "active"),
    ]


def key(a):
    return tuple(sorted(a["labels"].items()))


def show(k):
    labels = dict(k)
    rest = ", ".join(f"{n}={v}" for n, v in k if n not in ("alertname", "cluster"))
    return f"{labels.get('cluster')}: {labels['alertname']}{{{rest}}}"


def main():
    check = subprocess.run(["amtool", "check-config", CONFIG], capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"amtool check-config {CONFIG}: {check.stdout}{check.stderr}")
    binary = next((shutil.which(b) for b in BINARIES if shutil.which(b)), None)
    if binary is None:
        sys.exit("no Alertmanager binary (apt-get install prometheus-alertmanager)")
    port, cluster = free_port(), free_port()
    storage = tempfile.mkdtemp(prefix="hopwatch-am-")
    proc = subprocess.Popen([binary, f"--config.file={CONFIG}", f"--storage.path={storage}",
                             f"--web.listen-address=127.0.0.1:{port}",
                             f"--cluster.listen-address=127.0.0.1:{cluster}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/api/v2"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                api(base, "/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"Alertmanager did not start: {proc.stderr.read() if proc.poll() is not None else 'timeout'}")
                time.sleep(0.1)
        faults = lab_faults("lab")
        alone = [lab_faults(f"alone-{i}")[name] for i, name in enumerate(faults, 1)]
        posted = [a for raised, _ in faults.values() for a in raised]
        posted += [a for raised, _ in alone for a in raised]
        posted += [a for a, _ in tls_cases()]
        posted += [burn("pod", "diffuse")]
        api(base, "/alerts", posted)
        scenarios = list(faults.values()) + alone
        pages = {key(page) for _, page in scenarios}
        want = {key(a): ("active" if key(a) in pages else "suppressed")
                for raised, _ in scenarios for a in raised}
        want.update({key(a): state for a, state in tls_cases()})
        want[key(burn("pod", "diffuse"))] = "active"
        deadline = time.monotonic() + 20
        while True:
            got = {key(a): a["status"]["state"] for a in api(base, "/alerts")}
            if got == want:
                break
            if time.monotonic() > deadline:
                wrong = sorted(f"{show(k)}: got {got.get(k)}, want {want.get(k)}"
                               for k in set(got) | set(want) if got.get(k) != want.get(k))
                sys.exit("inhibition:\n  " + "\n  ".join(wrong))
            time.sleep(0.2)
        lab_active = sorted(show(k) for k, state in got.items() if state == "active" and dict(k)["cluster"] == "lab")
        if len(lab_active) != len(faults):
            sys.exit(f"{len(faults)} faults, {len(lab_active)} pages: {lab_active}")
        for k in (k for k, state in got.items() if state == "active" and dict(k)["cluster"] == "lab"):
            labels = dict(k)
            if not ("node" in labels or {"namespace", "service"} <= set(labels) or "target" in labels):
                sys.exit(f"{show(k)} pages without a node, a Service or a host")
        print(f"alertmanager: {len(faults)} faults, {len(posted)} alerts, one page each: "
              + "; ".join(lab_active))
        print("alertmanager: an expired certificate pages once; other TLS failures still page; "
              "a burn nothing explains still pages")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
