"""A small client of the lab's fake API server, spoken over HTTPS with the lab CA and bearer
token from inside the API server's own pod namespace (127.0.0.1:6443 there), so it works
whatever state the node networking is in."""

import http.client
import json
import ssl
import time

from . import netns
from .netns import LabError

API_PORT = 6443


class Api:
    def __init__(self, ns, ca_file, token):
        self.ns, self.token = ns, token
        self.ctx = ssl.create_default_context(cafile=ca_file)

    def _conn(self, timeout):
        sock = netns.connect_in(self.ns, ("127.0.0.1", API_PORT), timeout)
        conn = http.client.HTTPSConnection("127.0.0.1", API_PORT, timeout=timeout, context=self.ctx)
        conn.sock = self.ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        return conn

    def request(self, method, path, body=None, content_type="application/json", timeout=10):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            conn = self._conn(timeout)
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            conn.close()
        except OSError as err:
            raise LabError(f"fake API {method} {path}: {err}") from None
        if resp.status >= 400:
            raise LabError(f"fake API {method} {path}: HTTP {resp.status}: {raw.decode(errors='replace')[:300]}")
        return json.loads(raw) if raw else None

    def list(self, path):
        return self.request("GET", path)["items"]

    def snapshot(self):
        """Every object the generators need, as the API serves them now."""
        return {
            "services": self.list("/api/v1/services"),
            "slices": self.list("/apis/discovery.k8s.io/v1/endpointslices"),
            "ingresses": self.list("/apis/networking.k8s.io/v1/ingresses"),
        }

    def slice(self, namespace, name):
        return self.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}")

    def put_slice(self, obj):
        md = obj["metadata"]
        md.pop("resourceVersion", None)
        path = f"/apis/discovery.k8s.io/v1/namespaces/{md['namespace']}/endpointslices/{md['name']}"
        return self.request("PUT", path, obj)

    def fake(self, op, query="", body=None):
        return self.request("POST", f"/_fake/{op}{'?' + query if query else ''}", body if body is not None else {})

    def wait_ready(self, seconds=15):
        deadline = time.monotonic() + seconds
        last = None
        while time.monotonic() < deadline:
            try:
                self.request("GET", "/version", timeout=2)
                return
            except LabError as err:
                last = err
                time.sleep(0.1)
        raise LabError(f"the fake API server did not answer in {seconds} s: {last}")
