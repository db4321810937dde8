"""A small client of the lab's kube-apiserver, spoken over HTTPS with the lab CA and the
admin's client certificate (group system:masters) from inside the API server's own pod
namespace (127.0.0.1:6443 there), so it works whatever state the node networking is in."""

import http.client
import json
import ssl
import time
import urllib.parse

from . import netns
from .netns import LabError

API_PORT = 6443

MERGE = "application/merge-patch+json"


class ApiError(LabError):
    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class Api:
    def __init__(self, ns, ca_file, cert_file, key_file):
        self.ns = ns
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.ctx.load_cert_chain(cert_file, key_file)

    def _conn(self, timeout):
        sock = netns.connect_in(self.ns, ("127.0.0.1", API_PORT), timeout)
        conn = http.client.HTTPSConnection("127.0.0.1", API_PORT, timeout=timeout, context=self.ctx)
        conn.sock = self.ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        return conn

    def raw(self, method, path, body=None, content_type="application/json", timeout=10, accept="application/json"):
        """(status, body bytes) of one request; raises only when the server cannot be reached."""
        headers = {"Accept": accept}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            conn = self._conn(timeout)
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            conn.close()
        except OSError as err:
            raise LabError(f"kube-apiserver {method} {path}: {err}") from None
        return resp.status, raw

    def request(self, method, path, body=None, content_type="application/json", timeout=10):
        status, raw = self.raw(method, path, body, content_type, timeout)
        if status >= 400:
            raise ApiError(f"kube-apiserver {method} {path}: HTTP {status}: {raw.decode(errors='replace')[:400]}",
                           status)
        return json.loads(raw) if raw else None

    def get(self, path):
        return self.request("GET", path)

    def list(self, path):
        return self.request("GET", path)["items"]

    def patch(self, path, body):
        return self.request("PATCH", path, body, content_type=MERGE)

    def create(self, obj):
        """Creates `obj`, or replaces the object of that name when it exists already."""
        path = collection_path(obj)
        try:
            return self.request("POST", path, obj)
        except ApiError as err:
            if err.status != 409:
                raise
        current = self.get(object_path(obj))
        obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=current["metadata"]["resourceVersion"]))
        return self.request("PUT", object_path(obj), obj)

    def delete(self, path):
        try:
            return self.request("DELETE", path)
        except ApiError as err:
            if err.status != 404:
                raise
            return None

    def snapshot(self):
        """Every object the generators need, as the API serves them now."""
        return {
            "services": self.list("/api/v1/services"),
            "slices": self.list("/apis/discovery.k8s.io/v1/endpointslices"),
            "ingresses": self.list("/apis/networking.k8s.io/v1/ingresses"),
        }

    def slices_of(self, namespace, service):
        selector = urllib.parse.quote(f"kubernetes.io/service-name={service}")
        return self.list(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices?labelSelector={selector}")

    def ready(self):
        try:
            return self.raw("GET", "/readyz", timeout=2, accept="text/plain")[0] == 200
        except LabError:
            return False

    def wait_ready(self, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.ready():
                return
            time.sleep(0.2)
        raise LabError(f"kube-apiserver was not ready in {seconds} s (see logs/kube-apiserver.log)")

    def metrics(self):
        status, raw = self.raw("GET", "/metrics", accept="text/plain")
        if status != 200:
            raise LabError(f"kube-apiserver /metrics: HTTP {status}")
        return raw.decode(errors="replace")


# The API group path and plural of every kind the lab writes.
KINDS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Node": ("/api/v1", "nodes", False),
    "Service": ("/api/v1", "services", True),
    "Pod": ("/api/v1", "pods", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "IngressClass": ("/apis/networking.k8s.io/v1", "ingressclasses", False),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
}


def collection_path(obj):
    try:
        base, plural, namespaced = KINDS[obj["kind"]]
    except KeyError:
        raise LabError(f"the lab cannot write a {obj.get('kind')!r}") from None
    if namespaced:
        return f"{base}/namespaces/{obj['metadata']['namespace']}/{plural}"
    return f"{base}/{plural}"


def object_path(obj):
    return f"{collection_path(obj)}/{obj['metadata']['name']}"
