"""alerts/alertmanager.yaml in a real Alertmanager (Debian's prometheus-alertmanager): amtool
accepts it, and with an expired certificate's two alerts posted, the TLS one is inhibited by
the certificate one, while a TLS failure of another kind, or of another target, is not.

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


def alert(name, **labels):
    return {"labels": {"alertname": name, "severity": "critical", **labels},
            "annotations": {"summary": name}, "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


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
        shop, api_host = "shop/front/shop.example.com/", "shop/front/api.example.com/"
        api(base, "/alerts", [
            alert("HopwatchCertificateExpiryImminent", target=shop),
            alert("HopwatchTLSVerificationFailing", hop="ingress", target=shop, result="tls_expired"),
            alert("HopwatchTLSVerificationFailing", hop="ingress", target=shop, result="tls_hostname_mismatch"),
            alert("HopwatchTLSVerificationFailing", hop="ingress", target=api_host, result="tls_expired"),
        ])
        want = {
            ("HopwatchCertificateExpiryImminent", shop, None): "active",
            ("HopwatchTLSVerificationFailing", shop, "tls_expired"): "suppressed",
            ("HopwatchTLSVerificationFailing", shop, "tls_hostname_mismatch"): "active",
            ("HopwatchTLSVerificationFailing", api_host, "tls_expired"): "active",
        }
        deadline = time.monotonic() + 20
        while True:
            got = {(a["labels"]["alertname"], a["labels"]["target"], a["labels"].get("result")): a["status"]["state"]
                   for a in api(base, "/alerts")}
            if got == want:
                break
            if time.monotonic() > deadline:
                sys.exit(f"inhibition: got {got}, want {want}")
            time.sleep(0.2)
        print("alertmanager: an expired certificate pages once; other TLS failures still page")
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
