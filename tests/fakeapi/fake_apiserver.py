#!/usr/bin/env python3
"""Fake Kubernetes API server with real list/watch semantics, standing in for kube-apiserver in
tests and the lab (no apiserver can run on this machine). Python 3.11 standard library only.

    fake_apiserver.py --port 0 [--fixtures cluster.json] [--write-kubeconfig KUBECONFIG]
                      [--tls-cert C --tls-key K --ca-cert CA] [--token FILE]

Prints `listening HOST:PORT` as the first stdout line; requests are logged to stderr.
Fault injection lives under /_fake/ (see README.md next to this file).
"""

import argparse
import json
import os
import random
import socket
import ssl
import sys
import threading
from http.server import ThreadingHTTPServer

if sys.version_info < (3, 10):
    sys.exit("fake_apiserver.py needs Python 3.10 or newer (bisect with key=)")
sys.dont_write_bytecode = True  # keep the source tree free of __pycache__

import gen_cluster  # noqa: E402
import kresources  # noqa: E402
import kstore  # noqa: E402
from khandler import Handler, fixture_items, resource_by_path  # noqa: E402
from kstore import ApiError  # noqa: E402


class Churner:
    """Background writer modifying a percentage of one kind's objects per minute."""

    def __init__(self, store):
        self.store = store
        self.lock = threading.Lock()
        self.stop_event = None
        self.info = {"running": False, "modified": 0}

    def start(self, res, percent, seed):
        with self.lock:
            if self.stop_event is not None:
                self.stop_event.set()
                self.stop_event = None
            self.info = {"running": percent > 0, "resource": res.plural, "percentPerMinute": percent,
                         "modified": 0}
            if percent > 0:
                self.stop_event = threading.Event()
                args = (res, percent, random.Random(seed), self.stop_event)
                threading.Thread(target=self._run, args=args, daemon=True).start()
            return dict(self.info)

    def _run(self, res, percent, rng, stop_event):
        carry, tick = 0.0, 0.5
        while not stop_event.wait(tick):
            with self.store.cond:
                keys = self.store.bucket(res).sorted_keys()
                carry += len(keys) * percent / 100.0 / 60.0 * tick
                count = min(int(carry), len(keys))
                carry -= count
                stamp = kstore.now_rfc3339()
                for ns, name in rng.sample(keys, count):
                    obj = gen_cluster.churn(self.store.get(res, ns, name).obj(), rng, stamp)
                    obj["metadata"].pop("resourceVersion", None)
                    self.store.replace(res, ns, name, obj)
            with self.lock:
                self.info["modified"] += count


class App:
    """Shared state behind every request handler."""

    def __init__(self, args, store):
        self.store = store
        self.churner = Churner(store)
        self.bookmark_interval = args.bookmark_interval
        # Resource names answered 403, as RBAC without the permission; only to the tokens in
        # forbidden_tokens when that is not empty (one identity loses a permission).
        self.forbidden, self.forbidden_tokens = set(), set()
        self.quiet = args.quiet
        self.token, self.tokens = None, []
        if args.token:
            with open(args.token, encoding="utf-8") as f:
                self.tokens = [line.strip() for line in f if line.strip()]
            if not self.tokens:
                raise SystemExit(f"--token {args.token}: file is empty")
            self.token = self.tokens[0]
        self.address = ""


class Server(ThreadingHTTPServer):
    """Threading HTTP server; TLS handshakes happen in the connection's own thread."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address, app, tls_context):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)
        self.app, self.tls = app, tls_context

    def finish_request(self, request, client_address):
        if self.tls is None:
            return super().finish_request(request, client_address)
        try:
            request.settimeout(10)
            conn = self.tls.wrap_socket(request, server_side=True)
            conn.settimeout(None)
        except (ssl.SSLError, OSError) as err:
            if not self.app.quiet:
                sys.stderr.write(f"TLS handshake with {client_address[0]} failed: {err}\n")
            return None
        try:
            return super().finish_request(conn, client_address)
        finally:
            conn.close()


def load_fixture_file(store, path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as err:
        raise SystemExit(f"--fixtures {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"--fixtures {path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    try:
        return store.load(fixture_items(doc, path), path)
    except ApiError as err:
        raise SystemExit(f"--fixtures {path}: {err.message}") from None


def kubeconfig_text(url, ca_file, token):
    """A kubeconfig for kubectl and kube-rs; strings are JSON-quoted, which YAML accepts."""
    q = json.dumps
    lines = ["apiVersion: v1", "kind: Config", "clusters:", "- name: fakeapi", "  cluster:", f"    server: {q(url)}"]
    if ca_file:
        lines.append(f"    certificate-authority: {q(os.path.abspath(ca_file))}")
    lines += ["contexts:", "- name: fakeapi", "  context:", "    cluster: fakeapi", "    user: fakeapi",
              "    namespace: default", "current-context: fakeapi", "users:", "- name: fakeapi", "  user:"]
    lines.append(f"    token: {q(token)}" if token else "    {}")
    return "\n".join(lines).replace("  user:\n    {}", "  user: {}") + "\n"


def tls_context(args):
    if not (args.tls_cert and args.tls_key):
        if args.tls_cert or args.tls_key:
            raise SystemExit("--tls-cert and --tls-key go together")
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as err:
        raise SystemExit(f"--tls-cert {args.tls_cert} / --tls-key {args.tls_key}: {err}") from None
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    ap.add_argument("--fixtures", action="append", default=[], metavar="FILE",
                    help="JSON List of objects to load at startup (repeatable)")
    ap.add_argument("--write-kubeconfig", metavar="PATH", help="write a kubeconfig pointing at this server")
    ap.add_argument("--advertise-host", metavar="HOST",
                    help="host for the kubeconfig and /api (default: --host, or 127.0.0.1 for a wildcard --host)")
    ap.add_argument("--tls-cert", metavar="PEM")
    ap.add_argument("--tls-key", metavar="PEM")
    ap.add_argument("--ca-cert", metavar="PEM", help="CA for the kubeconfig (default: --tls-cert)")
    ap.add_argument("--token", metavar="FILE", help="require 'Authorization: Bearer <token>', a token per line (the first goes in --kubeconfig)")
    ap.add_argument("--bookmark-interval", type=float, default=5.0, metavar="SECONDS")
    ap.add_argument("--history", type=int, default=10000, metavar="EVENTS",
                    help="watch events kept per kind; older resourceVersions get 410 Expired")
    ap.add_argument("--require-namespaces", action="store_true",
                    help="reject namespaced creates in a namespace that does not exist (NamespaceLifecycle)")
    ap.add_argument("--churn-percent", type=float, default=0.0, help="percent of --churn-resource modified per minute")
    ap.add_argument("--churn-resource", default="discovery.k8s.io/v1/endpointslices")
    ap.add_argument("--gateway-api", action="store_true",
                    help="serve gateway.networking.k8s.io/v1 gateways and httproutes (as if their CRDs were installed)")
    ap.add_argument("--quiet", action="store_true", help="do not log requests")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.gateway_api:
        kresources.serve_gateway_api()
    store = kstore.Store(history_limit=args.history, require_namespaces=args.require_namespaces)
    app = App(args, store)
    for path in args.fixtures:
        count = load_fixture_file(store, path)
        sys.stderr.write(f"loaded {count} objects from {path}\n")
    tls = tls_context(args)
    server = Server((args.host, args.port), app, tls)
    port = server.server_address[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    advertise = args.advertise_host or {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(args.host, args.host)
    advertise = f"[{advertise}]" if ":" in advertise else advertise
    app.address = f"{advertise}:{port}"
    if args.write_kubeconfig:
        url = f"{'https' if tls else 'http'}://{advertise}:{port}"
        with open(args.write_kubeconfig, "w", encoding="utf-8") as f:
            f.write(kubeconfig_text(url, args.ca_cert or (args.tls_cert if tls else None), app.token))
    if args.churn_percent > 0:
        try:
            app.churner.start(resource_by_path(args.churn_resource), args.churn_percent, 1)
        except ApiError as err:
            raise SystemExit(f"--churn-resource: {err.message}") from None
    print(f"listening {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
