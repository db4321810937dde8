"""HTTP side of the fake apiserver: routing of API paths, content negotiation (JSON, Table,
PartialObjectMetadata), chunked watch streams, and the /_fake/ control endpoints.
"""

import hmac
import json
import select
import socket
import ssl
import struct
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

import kresources
import kstore
from kstore import ApiError

DEFAULT_WATCH_TIMEOUT_S = 1800  # the apiserver's --min-request-timeout
EVENTS_PER_WRITE = 256


def parse_resource_path(parts):
    """/api/v1/... or /apis/G/V/... -> (resource, namespace, name, subresource, watch) or None."""
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch = rest[:1] == ["watch"]
    rest = rest[1:] if watch else rest
    ns = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        inner = kresources.lookup(group, version, rest[2])
        if inner is not None and inner.namespaced:
            ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    res = kresources.lookup(group, version, rest[0])
    if res is None or (res.namespaced and not ns and len(rest) > 1):
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and (sub != "status" or not res.status_subresource):
        return None
    return res, ns, name, sub, watch


def negotiate(accept):
    """Pick the response form from an Accept header: ("json"|"table"|"meta", version) or None (406)."""
    if not accept:
        return "json", None
    for media_range in accept.split(","):
        fields = [f.strip() for f in media_range.split(";")]
        media, params = fields[0].lower(), dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if media not in ("application/json", "application/*", "*/*"):
            continue
        shape, group = params.get("as"), params.get("g")
        if shape is None:
            return "json", None
        if group == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            if shape == "Table":
                return "table", params["v"]
            if shape in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return "meta", params["v"]
    return None


class Handler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection: API requests, discovery, and /_fake/ control calls."""

    protocol_version = "HTTP/1.1"
    server_version = "fakeapi/1"

    @property
    def app(self):
        return self.server.app

    def log_message(self, format, *args):  # noqa: A002 (signature fixed by http.server)
        if not self.app.quiet and not self.path.startswith("/_fake/state"):  # tests poll it
            sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.address_string()} {format % args}\n")

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    # ------------------------------------------------------------ plumbing

    def dispatch(self, method):
        try:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.split("/") if p]
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            body = self.read_body()
            if parts[:1] == ["_fake"]:
                return self.control(method, parts[1:], query, body)
            self.check_auth()
            mode = self.app.store.unavailable()
            if mode == "reset":
                return self.abort("reset")
            if mode:
                raise ApiError(503, "ServiceUnavailable", "the apiserver is unavailable (fault injected via /_fake/unavailable)")
            self.check_rbac(method, parts, query)
            self.route(method, parts, query, body)
        except ApiError as err:
            self.send_status(err)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception:  # a bug in the fake: say so loudly, keep serving
            traceback.print_exc()
            self.send_status(ApiError(500, "InternalError", "fake apiserver bug: " + traceback.format_exc(limit=1)))

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def check_auth(self):
        if self.app.token is None:
            return
        given = self.headers.get("Authorization", "").encode()
        if not any(hmac.compare_digest(given, f"Bearer {t}".encode()) for t in self.app.tokens):
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def check_rbac(self, method, parts, query):
        """403 for a resource /_fake/forbid names, worded as the real authorizer words it."""
        denied = [p for p in parts if p in self.app.forbidden]
        if not denied:
            return
        given = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.app.forbidden_tokens and given not in self.app.forbidden_tokens:
            return
        verb = {"GET": "watch" if query.get("watch") in ("true", "1") else "list"}.get(method, method.lower())
        group = parts[1] if parts[:1] == ["apis"] and len(parts) > 1 else ""
        raise ApiError(403, "Forbidden", f'{denied[0]}{"." + group if group else ""} is forbidden: User '
                       f'"system:serviceaccount:hopwatch:hopwatch" cannot {verb} resource "{denied[0]}" in API group '
                       f'"{group}" at the cluster scope')

    def send_bytes(self, code, data, ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, code, obj):
        self.send_bytes(code, kstore.dumps(obj))

    def send_status(self, err):
        extra = [("Retry-After", "1")] if err.code in (503, 504) else []
        self.send_bytes(err.code, kstore.dumps(err.status()), extra=extra)

    def abort(self, mode):
        """End the connection without a proper HTTP ending: FIN ("close") or RST ("reset")."""
        self.close_connection = True
        try:
            if mode == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def parse_json(self, body):
        try:
            return json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise kstore.bad_request(f"the request body is not valid JSON: {err}") from None

    # ------------------------------------------------------------ API routes

    def route(self, method, parts, q, body):
        if method == "GET" and self.serve_discovery(parts):
            return
        target = parse_resource_path(parts)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if q.get("dryRun"):
            raise kstore.bad_request("dryRun is not supported by the fake apiserver")
        res, ns, name, sub, watch_path = target
        store = self.app.store
        form = negotiate(self.headers.get("Accept", ""))
        if form is None:
            raise ApiError(406, "NotAcceptable", "only application/json (optionally as=Table or "
                                                 "as=PartialObjectMetadata) is served")
        if method == "GET" and name is None:
            if watch_path or (q.get("watch") or "").lower() in ("true", "1"):
                return self.serve_watch(res, ns, q, form)
            return self.send_list(res, store.list(res, ns, q), form, q)
        if method == "GET" and watch_path:
            q = dict(q, fieldSelector=f"metadata.name={name}")
            return self.serve_watch(res, ns, q, form)
        if method == "GET":
            return self.send_entry(200, res, store.get(res, ns, name), form, q)
        if method == "POST" and name is None:
            if res.namespaced and not ns:
                raise ApiError(405, "MethodNotAllowed", "create needs a namespace in the path")
            return self.send_entry(201, res, store.create(res, ns, self.parse_json(body)), form, q)
        if method == "PUT" and name:
            return self.send_entry(200, res, store.replace(res, ns, name, self.parse_json(body), sub), form, q)
        if method == "PATCH" and name:
            entry = store.patch(res, ns, name, self.headers.get("Content-Type"), self.parse_json(body), sub)
            return self.send_entry(200, res, entry, form, q)
        if method == "DELETE" and name:
            opts = self.parse_json(body) or {}
            pre = opts.get("preconditions") if isinstance(opts, dict) else None
            return self.send_entry(200, res, store.delete(res, ns, name, pre), form, q)
        if method == "DELETE":
            gone = store.delete_collection(res, ns, q.get("labelSelector"), q.get("fieldSelector"))
            return self.send_list(res, kstore.ListResult(gone, store.rv, None, None), form, q)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on this path")

    def serve_discovery(self, parts):
        doc = None
        if parts == ["api"]:
            doc = kresources.api_versions(self.app.address)
        elif parts == ["api", "v1"]:
            doc = kresources.api_resource_list("", "v1")
        elif parts == ["apis"]:
            doc = kresources.api_group_list()
        elif len(parts) == 2 and parts[0] == "apis":
            doc = kresources.api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = kresources.api_resource_list(parts[1], parts[2])
        elif parts == ["version"]:
            doc = kresources.VERSION
        elif parts[:1] in (["healthz"], ["livez"], ["readyz"]):
            self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
            return True
        if doc is None:
            return False
        self.send_json(200, doc)
        return True

    # ------------------------------------------------------------ rendering

    def send_entry(self, code, res, entry, form, q):
        kind, version = form
        if kind == "json":
            return self.send_bytes(code, entry.raw)
        if kind == "meta":
            return self.send_json(code, _meta(entry.obj(), "PartialObjectMetadata", version))
        table = _table(res, [entry], version, q, {"resourceVersion": str(entry.rv)})
        return self.send_json(code, table)

    def send_list(self, res, result, form, q):
        md = {"resourceVersion": str(result.rv)}
        if result.cont:
            md["continue"] = result.cont
        if result.remaining is not None:
            md["remainingItemCount"] = result.remaining
        kind, version = form
        if kind == "table":
            return self.send_json(200, _table(res, result.entries, version, q, md))
        if kind == "meta":
            items = [_meta(e.obj(), "PartialObjectMetadata", version) for e in result.entries]
            return self.send_json(200, {"kind": "PartialObjectMetadataList", "apiVersion": f"meta.k8s.io/{version}",
                                        "metadata": md, "items": items})
        head = {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": md}
        data = kstore.dumps(head)[:-1] + b',"items":[' + b",".join(e.raw for e in result.entries) + b"]}"
        self.send_bytes(200, data)

    def event_line(self, res, kind, entry, form, q):
        shape, version = form
        if shape == "json":
            obj = entry.raw
        elif shape == "meta":
            obj = kstore.dumps(_meta(entry.obj(), "PartialObjectMetadata", version))
        else:
            obj = kstore.dumps(_table(res, [entry], version, q, {"resourceVersion": str(entry.rv)}))
        return b'{"type":"' + kind.encode() + b'","object":' + obj + b"}\n"

    def bookmark_line(self, res, rv, form, initial_end=False):
        shape, version = form
        kind, api = (res.kind, res.api_version) if shape != "meta" else ("PartialObjectMetadata", f"meta.k8s.io/{version}")
        md = {"resourceVersion": str(rv)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return kstore.dumps({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api, "metadata": md}}) + b"\n"

    # ------------------------------------------------------------ watch

    def write_chunks(self, lines):
        for i in range(0, len(lines), EVENTS_PER_WRITE):
            batch = lines[i:i + EVENTS_PER_WRITE]
            self.wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in batch))

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def serve_watch(self, res, ns, q, form):
        store = self.app.store
        timeout = kstore.int_param(q, "timeoutSeconds") or DEFAULT_WATCH_TIMEOUT_S
        session = store.open_watch(res, ns, q)  # bad parameters raise before the 200
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            if session.error is not None:
                self.write_chunks([kstore.dumps({"type": "ERROR", "object": session.error.status()}) + b"\n"])
                return self.end_stream()
            lines = [self.event_line(res, t, e, form, q) for t, e in session.initial]
            if session.initial_end:
                lines.append(self.bookmark_line(res, session.cursor, form, initial_end=True))
            self.write_chunks(lines)
            self.watch_loop(res, session, q, form, time.monotonic() + timeout)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            store.close_watch(session)

    def watch_loop(self, res, session, q, form, deadline):
        store = self.app.store
        bookmarks = kstore.bool_param(q, "allowWatchBookmarks")
        next_bookmark = time.monotonic() + self.app.bookmark_interval
        while True:
            until = min(deadline, time.monotonic() + 1.0, next_bookmark if bookmarks else deadline)
            events, outcome = store.wait_events(session, until)
            if outcome == "dropped":
                return self.abort(store.drop_mode)
            self.write_chunks([self.event_line(res, t, e, form, q) for t, e in events])
            if isinstance(outcome, ApiError):
                self.write_chunks([kstore.dumps({"type": "ERROR", "object": outcome.status()}) + b"\n"])
                return self.end_stream()
            now = time.monotonic()
            if now >= deadline:
                return self.end_stream()
            if bookmarks and now >= next_bookmark:
                self.write_chunks([self.bookmark_line(res, session.cursor, form)])
                next_bookmark = now + self.app.bookmark_interval
            if self.client_gone():
                self.close_connection = True
                return None

    def client_gone(self):
        """A plain-TCP client that closed its end (TLS clients are noticed on the next write)."""
        sock = self.connection
        if isinstance(sock, ssl.SSLSocket):
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # ------------------------------------------------------------ /_fake/ control

    def control(self, method, parts, q, body):
        store, op = self.app.store, "/".join(parts)
        if method == "GET" and op == "state":
            state = store.stats()
            state.update(bookmarkIntervalSeconds=self.app.bookmark_interval, churn=self.app.churner.info)
            return self.send_json(200, state)
        if method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"/_fake/{op}: use POST")
        if op == "load":
            if (q.get("replace") or "").lower() in ("true", "1"):
                store.reset()
            loaded = store.load(fixture_items(self.parse_json(body), "request body"), "request body")
            return self.send_json(200, {"loaded": loaded, "resourceVersion": str(store.rv)})
        if op == "compact":
            rv = store.compact(kstore.parse_rv(q["resourceVersion"]) if q.get("resourceVersion") else None)
            return self.send_json(200, {"compactedResourceVersion": str(rv)})
        if op == "drop-watches":
            mode = _choice(q, "mode", ("close", "reset"))
            return self.send_json(200, {"dropped": store.drop_watches(mode), "mode": mode})
        if op == "unavailable":
            seconds = float(q.get("seconds") or "0")
            mode = _choice(q, "mode", ("503", "reset"))
            store.set_unavailable(seconds, mode)
            return self.send_json(200, {"unavailableSeconds": seconds, "mode": mode})
        if op == "reset":
            store.reset()
            return self.send_json(200, {"resourceVersion": str(store.rv)})
        if op == "forbid":
            cfg = self.parse_json(body) or {}
            resources, tokens = cfg.get("resources") or [], cfg.get("tokens") or []
            if not all(isinstance(x, list) and all(isinstance(v, str) for v in x) for x in (resources, tokens)):
                raise ApiError(400, "BadRequest", '/_fake/forbid: body {"resources": ["ingresses", …], "tokens": […]}')
            self.app.forbidden, self.app.forbidden_tokens = set(resources), set(tokens)
            return self.send_json(200, {"forbidden": sorted(self.app.forbidden)})
        if op == "config":
            return self.send_json(200, self.configure(self.parse_json(body) or {}))
        if op == "churn":
            return self.send_json(200, self.start_churn(self.parse_json(body) or {}))
        raise ApiError(404, "NotFound", f"unknown control endpoint /_fake/{op}")

    def configure(self, cfg):
        if "bookmarkIntervalSeconds" in cfg:
            self.app.bookmark_interval = max(0.05, float(cfg["bookmarkIntervalSeconds"]))
        if "historyLimit" in cfg:
            self.app.store.history_limit = max(0, int(cfg["historyLimit"]))
        return {"bookmarkIntervalSeconds": self.app.bookmark_interval, "historyLimit": self.app.store.history_limit}

    def start_churn(self, cfg):
        res = resource_by_path(str(cfg.get("resource", "discovery.k8s.io/v1/endpointslices")))
        return self.app.churner.start(res, float(cfg.get("percentPerMinute", 0)), int(cfg.get("seed", 1)))


def _choice(q, name, allowed):
    value = q.get(name) or allowed[0]
    if value not in allowed:
        raise kstore.bad_request(f"{name} must be one of {', '.join(allowed)}")
    return value


def _meta(obj, kind, version):
    return {"kind": kind, "apiVersion": f"meta.k8s.io/{version}", "metadata": obj.get("metadata") or {}}


def _table(res, entries, version, q, md):
    now = kresources.now_utc()
    include = q.get("includeObject") or "Metadata"
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": md,
            "columnDefinitions": kresources.table_columns(res),
            "rows": [kresources.table_row(res, e.obj(), now, include) for e in entries]}


def resource_by_path(text):
    """"v1/services" or "discovery.k8s.io/v1/endpointslices" -> Resource."""
    parts = text.strip("/").split("/")
    res = kresources.lookup("", parts[0], parts[1]) if len(parts) == 2 else (
        kresources.lookup(*parts) if len(parts) == 3 else None)
    if res is None:
        raise kstore.bad_request(f"unknown resource {text!r}: use v1/PLURAL or GROUP/VERSION/PLURAL")
    return res


def fixture_items(doc, source):
    """Objects of a fixture document: a List (`items`), a bare array, or one object."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        return doc["items"]
    if isinstance(doc, dict) and doc.get("kind"):
        return [doc]
    raise kstore.bad_request(f"{source}: expected a List with items, an array, or one object")
