"""The ingress controller: nginx in its own pod, configured like ingress-nginx from the Ingress
objects the API server serves. Each rule host gets a server block terminating TLS (when a TLS
block covers the host) with that host's certificate, and each path proxies to the backend
Service's ClusterIP. A backend Service without a Ready endpoint answers 503, as ingress-nginx
does; an unknown host gets the default backend's 404.

Which certificate a host presents is switchable (the `cert` fault): valid, expired, expiring
in 10 days, or one issued for another host.
"""

import os

from .objects import ready
from .netns import LabError, run
from .pki import WRONG_HOST
from .state import read_text

# `expiring`: valid, but for 10 more days only (inside the 14-day warning, outside the 3-day one).
EXPIRING_DAYS = 10
CERT_KINDS = ("valid", "expired", "wrong-host", "expiring")


def cert_files(pki, host, kind):
    """The (certificate, key) files nginx presents for `host` with certificate kind `kind`."""
    if kind == "valid":
        crt = pki.leaf(f"ingress-{host}", [f"DNS:{host}"])
    elif kind == "expired":
        crt = pki.expired(f"expired-{host}", [f"DNS:{host}"])
    elif kind == "expiring":
        crt = pki.leaf(f"expiring-{host}", [f"DNS:{host}"], days=EXPIRING_DAYS)
    elif kind == "wrong-host":
        crt = pki.leaf("wrong-host", [f"DNS:{WRONG_HOST}"])
    else:
        raise LabError(f"no certificate kind {kind!r}: use one of {', '.join(CERT_KINDS)}")
    return crt, crt[:-4] + ".key"


def backends(snapshot):
    """{(namespace, service): (cluster IP, {port number or name: port}, has ready endpoints)}."""
    ready_count = {}
    for s in snapshot["slices"]:
        md = s["metadata"]
        svc = (md.get("labels") or {}).get("kubernetes.io/service-name")
        n = sum(len(ep.get("addresses") or []) for ep in s.get("endpoints") or [] if ready(ep))
        ready_count[(md["namespace"], svc)] = ready_count.get((md["namespace"], svc), 0) + n
    out = {}
    for svc in snapshot["services"]:
        md, spec = svc["metadata"], svc.get("spec") or {}
        ports = {}
        for p in spec.get("ports") or []:
            ports[p["port"]] = p["port"]
            if p.get("name"):
                ports[p["name"]] = p["port"]
        key = (md["namespace"], md["name"])
        out[key] = (spec.get("clusterIP"), ports, ready_count.get(key, 0) > 0)
    return out


def location(path, backend, services):
    kind = path.get("pathType", "Prefix")
    where = path.get("path") or "/"
    head = f"location = {where}" if kind == "Exact" else f"location {where}"
    svc = (backend.get("service") or {})
    port = (svc.get("port") or {})
    ip, ports, has_ready = services.get(backend["key"], (None, {}, False))
    target = ports.get(port.get("number") or port.get("name"))
    if not ip or ip == "None" or target is None or not has_ready:
        return f"    {head} {{ return 503; }}"
    return (f"    {head} {{ proxy_pass http://{ip}:{target}; proxy_set_header Host $host; "
            f"proxy_set_header X-Forwarded-Proto $scheme; }}")


def config(st, pki, snapshot, certs):
    """nginx.conf text for the current objects; `certs` maps a host to its certificate kind."""
    run_dir = st.file("nginx")
    services = backends(snapshot)
    default_crt, default_key = pki.leaf("ingress-default", ["DNS:ingress.local"]), pki.path("ingress-default.key")
    servers = []
    for ing in sorted(snapshot["ingresses"], key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"])):
        ns = ing["metadata"]["namespace"]
        spec = ing.get("spec") or {}
        tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
        for rule in spec.get("rules") or []:
            host = rule.get("host")
            if not host:
                continue
            lines = [f"  server {{ server_name {host}; listen 80;"]
            if host in tls_hosts:
                crt, key = cert_files(pki, host, certs.get(host, "valid"))
                lines.append(f"    listen 443 ssl; ssl_certificate {crt}; ssl_certificate_key {key};")
            for p in (rule.get("http") or {}).get("paths") or []:
                backend = dict(p.get("backend") or {})
                backend["key"] = (ns, (backend.get("service") or {}).get("name"))
                lines.append(location(p, backend, services))
            lines.append("  }")
            servers.append("\n".join(lines))
    return "\n".join([
        "daemon off;", "master_process on;", "worker_processes 1;", "user root;",
        f"pid {run_dir}/nginx.pid;", f"error_log {run_dir}/error.log warn;",
        "events { worker_connections 512; }",
        "http {",
        f"  access_log {run_dir}/access.log;",
        *[f"  {kind}_temp_path {run_dir}/tmp-{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")],
        "  proxy_connect_timeout 2s; proxy_read_timeout 5s;",
        "  ssl_protocols TLSv1.2 TLSv1.3;",
        f"  server {{ listen 80 default_server; listen 443 ssl default_server; ssl_certificate {default_crt}; "
        f"ssl_certificate_key {default_key}; return 404 \"default backend - 404\\n\"; }}",
        *servers,
        "}",
    ]) + "\n"


def write(st, pki, snapshot, certs):
    """Writes nginx.conf when it changed and checks it; returns whether it changed."""
    directory = st.file("nginx")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "nginx.conf")
    text = config(st, pki, snapshot, certs)
    if read_text(path) == text:
        return False
    with open(path + ".new", "w", encoding="utf-8") as f:
        f.write(text)
    check = run(["nginx", "-t", "-q", "-p", directory, "-c", path + ".new"], check=False)
    if check.returncode != 0:
        raise LabError(f"generated nginx config is invalid: {check.stderr.strip()}")
    os.replace(path + ".new", path)
    return True
