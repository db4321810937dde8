"""Object store with etcd-like semantics: one global resourceVersion, per-kind event history,
compaction, consistent paginated lists, and watch sessions that replay history.

Every write happens under one Condition: it bumps the global resourceVersion, stores the object
serialized once (lists and watches only concatenate those bytes), appends an event to the kind's
history and wakes the watch threads.
"""

import base64
import itertools
import json
import random
import string
import threading
import time
import uuid
from collections import OrderedDict

import kpatch
import kresources
from kmodel import (  # noqa: F401 (re-exported for khandler and tests)
    ADDED, DELETED, MODIFIED, ApiError, Bucket, Entry, Event, ListResult, Selection, WatchSession, bool_param,
    int_param, parse_rv, already_exists, bad_request, conflict, dumps, expired, not_found, now_rfc3339,
)

SNAPSHOT_LIMIT, SNAPSHOT_TTL_S = 256, 600.0  # paginated lists in flight, and how long a page waits


class Store:
    """All kinds, the global resourceVersion, and the fault-injection state."""

    def __init__(self, history_limit=10000, require_namespaces=False, start_rv=1000):
        self.cond = threading.Condition()
        self.history_limit = history_limit
        self.require_namespaces = require_namespaces
        self.rv = start_rv
        self.compacted = 0  # continue tokens and Exact lists older than this get 410
        self.buckets = {r.key: Bucket(r) for r in kresources.RESOURCES}
        self.snapshots = OrderedDict()
        self.ids = itertools.count(1)
        self.watch_epoch, self.drop_mode = 0, "close"
        self.watches = {}
        self.unavailable_until, self.unavailable_mode = 0.0, "503"

    def bucket(self, res):
        return self.buckets[res.key]

    # ------------------------------------------------------------ writes

    def _commit(self, bucket, kind, obj, prev):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        entry = Entry(bucket.res, obj, self.rv)
        key = (entry.ns, entry.name)
        if kind == DELETED:
            del bucket.objects[key]
        else:
            bucket.objects[key] = entry
        if kind != MODIFIED:
            bucket._sorted = None
        bucket.history.append(Event(self.rv, kind, entry, prev))
        bucket.trim(self.history_limit)
        self.cond.notify_all()
        return entry

    def _name_and_ns(self, res, ns, md):
        name = md.get("name")
        if not name and md.get("generateName"):
            name = md["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        if not name:
            raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Required value: "
                                           "name or generateName is required")
        if not res.namespaced:
            return name, ""
        body_ns = md.get("namespace")
        if ns and body_ns and body_ns != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        ns = ns or body_ns or "default"
        if self.require_namespaces and ("", ns) not in self.buckets[("", "v1", "namespaces")].objects:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"})
        return name, ns

    def _stamp_kind(self, res, obj):
        if obj.get("kind") not in (None, "", res.kind) or obj.get("apiVersion") not in (None, "", res.api_version):
            raise bad_request(f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                              f"expected API version ({res.api_version}) or kind ({obj.get('kind')} != {res.kind})")
        md = obj.get("metadata", {})
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        return _with_kind(res, obj, md)

    def create(self, res, ns, obj, keep_identity=False):
        """POST: 409 AlreadyExists if present. `keep_identity` keeps a fixture's uid and timestamp."""
        with self.cond:
            if not isinstance(obj, dict):
                raise bad_request("the request body must be a JSON object")
            obj = self._stamp_kind(res, obj)
            md = obj["metadata"]
            name, ns = self._name_and_ns(res, ns, md)
            bucket = self.bucket(res)
            if (ns, name) in bucket.objects:
                raise already_exists(res, name)
            md["name"] = name
            if res.namespaced:
                md["namespace"] = ns
            else:
                md.pop("namespace", None)
            if not keep_identity or not md.get("uid"):
                md["uid"] = str(uuid.uuid4())
            if not keep_identity or not md.get("creationTimestamp"):
                md["creationTimestamp"] = now_rfc3339()
            md["generation"] = 1
            for transient in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
                md.pop(transient, None)
            kresources.apply_defaults(res, obj)
            return self._commit(bucket, ADDED, obj, None)

    def get(self, res, ns, name):
        with self.cond:
            entry = self.bucket(res).objects.get((ns, name))
            if entry is None:
                raise not_found(res, name)
            return entry

    def replace(self, res, ns, name, obj, subresource=None):
        """PUT: 404 if missing; a body resourceVersion is a precondition (409 Conflict)."""
        with self.cond:
            if not isinstance(obj, dict):
                raise bad_request("the request body must be a JSON object")
            existing = self.get(res, ns, name)
            md = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            if md.get("name") not in (None, name):
                raise bad_request(f"the name of the object ({md.get('name')}) does not match the name on the URL ({name})")
            return self._update(res, existing, obj, subresource)

    def patch(self, res, ns, name, content_type, body, subresource=None):
        with self.cond:
            existing = self.get(res, ns, name)
            try:
                patched = kpatch.apply(content_type, existing.obj(), body)
            except kpatch.PatchError as err:
                raise ApiError(422, "Invalid", str(err)) from None
            except ValueError:
                raise ApiError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted media types include: "
                               f"{kpatch.JSON_PATCH}, {kpatch.MERGE}, {kpatch.STRATEGIC}") from None
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", "the patched object is not a JSON object")
            return self._update(res, existing, patched, subresource)

    def _update(self, res, existing, new, subresource):
        old = existing.obj()
        old_md = old["metadata"]
        if subresource == "status":
            merged = dict(old, status=new.get("status"))
            md = dict(old_md, resourceVersion=(new.get("metadata") or {}).get("resourceVersion"))
        else:
            merged = dict(new)
            if res.status_subresource:
                merged["status"] = old.get("status")
            md = dict(new.get("metadata") or {})
        if merged.get("status") is None:
            merged.pop("status", None)
        rv = md.pop("resourceVersion", None)
        if rv not in (None, "") and str(rv) != str(existing.rv):
            raise conflict(res, existing.name)
        for keep in ("name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp"):
            if keep in old_md:
                md[keep] = old_md[keep]
        merged = _with_kind(res, merged, md)
        old_md.pop("resourceVersion", None)
        if merged == old:
            return existing  # a no-op update writes nothing and sends no event, as in Kubernetes
        if _spec_of(merged) != _spec_of(old):
            md["generation"] = int(old_md.get("generation") or 0) + 1
        bucket = self.bucket(res)
        if md.get("deletionTimestamp") and not md.get("finalizers"):
            return self._commit(bucket, DELETED, merged, existing)
        return self._commit(bucket, MODIFIED, merged, existing)

    def delete(self, res, ns, name, preconditions=None):
        """DELETE: returns the deleted object. Objects with finalizers only get a deletionTimestamp."""
        with self.cond:
            existing = self.get(res, ns, name)
            obj = existing.obj()
            md = obj["metadata"]
            pre = preconditions or {}
            if pre.get("resourceVersion") not in (None, "") and str(pre["resourceVersion"]) != str(existing.rv):
                raise conflict(res, name)
            if pre.get("uid") not in (None, "") and pre["uid"] != md.get("uid"):
                raise conflict(res, name)
            if md.get("finalizers"):
                if md.get("deletionTimestamp"):
                    return existing
                md["deletionTimestamp"], md["deletionGracePeriodSeconds"] = now_rfc3339(), 0
                return self._commit(self.bucket(res), MODIFIED, obj, existing)
            if res.kind == "Namespace":
                self._delete_namespace_contents(name)
            return self._commit(self.bucket(res), DELETED, obj, existing)

    def _delete_namespace_contents(self, ns):
        """The namespace controller's job, done at once: delete everything in the namespace."""
        for bucket in self.buckets.values():
            if bucket.res.namespaced:
                for entry in bucket.scope(ns):
                    self._commit(bucket, DELETED, entry.obj(), entry)

    def delete_collection(self, res, ns, label_selector, field_selector):
        with self.cond:
            sel = Selection(res, ns, label_selector, field_selector)
            doomed = [e for e in self.bucket(res).scope(ns) if sel.matches(e)]
            return [self.delete(res, e.ns, e.name) for e in doomed]

    def load(self, objects, source="fixtures"):
        """Create or replace every object of a List (or a bare array); returns how many."""
        with self.cond:
            for n, obj in enumerate(objects):
                res = kresources.by_kind(obj.get("apiVersion"), obj.get("kind")) if isinstance(obj, dict) else None
                if res is None:
                    kind = (obj.get("apiVersion"), obj.get("kind")) if isinstance(obj, dict) else type(obj).__name__
                    raise bad_request(f"{source}: item {n}: unsupported apiVersion/kind {kind}")
                md = obj.get("metadata") or {}
                ns = (md.get("namespace") or "default") if res.namespaced else ""
                if (ns, md.get("name")) in self.bucket(res).objects:
                    obj.setdefault("metadata", {}).pop("resourceVersion", None)
                    self.replace(res, ns, md.get("name"), obj)
                else:
                    self.create(res, ns, obj, keep_identity=True)
            return len(objects)

    # ------------------------------------------------------------ lists

    def list(self, res, ns, q):
        """A list request; `q` maps query parameter names to single values."""
        sel = Selection(res, ns, q.get("labelSelector"), q.get("fieldSelector"))
        limit = int_param(q, "limit")
        with self.cond:
            if q.get("continue"):
                entries, rv, offset = self._continued(res, ns, q)
            else:
                (entries, rv), offset = self._list_start(res, ns, q), 0
            items, i = [], offset
            while i < len(entries) and (not limit or len(items) < limit):
                if sel.matches(entries[i]):
                    items.append(entries[i])
                i += 1
            cont, remaining = None, None
            if limit and i < len(entries):
                cont = self._continue_token(res, ns, entries, rv, i)
                remaining = None if sel.filtered else len(entries) - i
            return ListResult(items, rv, cont, remaining)

    def _list_start(self, res, ns, q):
        """Entries and list resourceVersion for a first page ("" / "0" = any, N = not older than N)."""
        rv_param, match = q.get("resourceVersion") or "", q.get("resourceVersionMatch") or ""
        if match and not rv_param:
            raise bad_request("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                              "resourceVersion is provided")
        if match not in ("", "NotOlderThan", "Exact"):
            raise bad_request(f'resourceVersionMatch: Unsupported value: "{match}"')
        if match == "Exact" and rv_param == "0":
            raise bad_request('resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden '
                              'for resourceVersion "0"')
        if rv_param in ("", "0"):
            return self.bucket(res).scope(ns), self.rv
        wanted = parse_rv(rv_param)
        if wanted > self.rv:
            raise ApiError(504, "Timeout", f"Too large resource version: {wanted}, current: {self.rv}",
                           {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                            "retryAfterSeconds": 1})
        if match != "Exact":
            return self.bucket(res).scope(ns), self.rv
        return self._state_at(self.bucket(res), ns, wanted), wanted

    def _state_at(self, bucket, ns, rv):
        """The kind's objects as they were at `rv`, rebuilt by undoing newer history."""
        if rv < max(bucket.oldest, self.compacted):
            raise expired(f"The resourceVersion for the provided list is too old. ({rv} < {bucket.oldest})")
        state = dict(bucket.objects)
        for ev in reversed(bucket.events_after(rv)):
            key = (ev.entry.ns, ev.entry.name)
            if ev.type == ADDED:
                state.pop(key, None)
            else:
                state[key] = ev.prev
        return [state[k] for k in sorted(state) if not ns or k[0] == ns]

    def _continue_token(self, res, ns, entries, rv, offset):
        snap = next((sid for sid, s in self.snapshots.items() if s["entries"] is entries), None)
        if snap is None:
            snap = next(self.ids)
            self.snapshots[snap] = {"entries": entries, "rv": rv, "res": res.key, "ns": ns, "at": time.monotonic()}
            while len(self.snapshots) > SNAPSHOT_LIMIT:
                self.snapshots.popitem(last=False)
        token = {"v": "meta.k8s.io/v1", "rv": rv, "snap": snap, "start": offset}
        return base64.urlsafe_b64encode(dumps(token)).decode()

    def _continued(self, res, ns, q):
        if q.get("resourceVersion") not in (None, "", "0"):
            raise bad_request("specifying resource version is not allowed when using continue")
        try:
            token = json.loads(base64.urlsafe_b64decode(q["continue"].encode()))
            snap_id, rv, start = int(token["snap"]), int(token["rv"]), int(token["start"])
        except (ValueError, KeyError, TypeError) as err:
            raise bad_request(f"continue key is not valid: {err}") from None
        snap = self.snapshots.get(snap_id)
        if snap is not None and time.monotonic() - snap["at"] > SNAPSHOT_TTL_S:
            del self.snapshots[snap_id]
            snap = None
        if snap is None or rv < self.compacted:
            raise expired("The provided continue parameter is too old to display a consistent list result. "
                          "You can start a new list without the continue parameter.")
        if snap["res"] != res.key or snap["ns"] != ns:
            raise bad_request("continue key is not valid: it belongs to another list")
        return snap["entries"], rv, start

    # ------------------------------------------------------------ watches

    def open_watch(self, res, ns, q):
        """Start a watch: validates parameters, prepares initial events or a 410 error."""
        sel = Selection(res, ns, q.get("labelSelector"), q.get("fieldSelector"))
        rv_param = q.get("resourceVersion") or ""
        send_initial = bool_param(q, "sendInitialEvents")
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise bad_request("resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
                              "resourceVersionMatch to NotOlderThan")
        if send_initial and not bool_param(q, "allowWatchBookmarks"):
            raise bad_request("allowWatchBookmarks: Forbidden: sendInitialEvents requires allowWatchBookmarks")
        with self.cond:
            bucket = self.bucket(res)
            session = WatchSession(next(self.ids), sel, self.rv, self.watch_epoch)
            if rv_param not in ("", "0"):
                wanted = parse_rv(rv_param)
                if wanted < bucket.oldest:
                    session.error = expired(f"too old resource version: {wanted} ({bucket.oldest})")
                elif wanted > self.rv:
                    session.error = ApiError(504, "Timeout", f"Too large resource version: {wanted}, current: {self.rv}")
                elif not send_initial:
                    session.cursor = wanted
            if session.error is None and (send_initial or (rv_param in ("", "0") and send_initial is None)):
                session.initial = [(ADDED, e) for e in bucket.scope(ns) if sel.matches(e)]
                session.initial_end = bool(send_initial)
            self.watches[session.id] = {"resource": res.plural, "namespace": ns,
                                        "labelSelector": q.get("labelSelector") or "",
                                        "fieldSelector": q.get("fieldSelector") or "",
                                        "resourceVersion": rv_param}
            return session

    def wait_events(self, session, until):
        """Block until events for this watch, `until` (monotonic), a drop or expiry.
        Returns (events, outcome): outcome is None, "dropped", or an ApiError (410: the watch
        fell behind the retained history)."""
        bucket = self.bucket(session.sel.res)
        with self.cond:
            while True:
                if session.epoch != self.watch_epoch:
                    return [], "dropped"
                if session.cursor < bucket.oldest:
                    return [], expired(f"too old resource version: {session.cursor} ({bucket.oldest})")
                pending = bucket.events_after(session.cursor)
                if pending:
                    break
                session.cursor = self.rv  # nothing for us up to here: bookmarks may say so
                left = until - time.monotonic()
                if left <= 0:
                    return [], None
                self.cond.wait(left)
            session.cursor = self.rv
        views = (session.sel.view(ev) for ev in pending)
        return [v for v in views if v is not None], None

    def close_watch(self, session):
        with self.cond:
            self.watches.pop(session.id, None)

    # ------------------------------------------------------------ fault injection

    def compact(self, rv=None):
        """Forget history up to `rv` (default: now), like an etcd compaction plus watch-cache expiry."""
        with self.cond:
            rv = self.rv if rv is None else min(rv, self.rv)
            self.compacted = max(self.compacted, rv)
            for bucket in self.buckets.values():
                bucket.trim_to(rv)
            return rv

    def drop_watches(self, mode="close"):
        with self.cond:
            self.watch_epoch += 1
            self.drop_mode = mode
            self.cond.notify_all()
            return len(self.watches)

    def set_unavailable(self, seconds, mode="503"):
        with self.cond:
            self.unavailable_until = time.monotonic() + seconds
            self.unavailable_mode = mode
        self.drop_watches("reset" if mode == "reset" else "close")

    def unavailable(self):
        """None when serving, else the mode ("503" or "reset")."""
        with self.cond:
            return self.unavailable_mode if time.monotonic() < self.unavailable_until else None

    def reset(self):
        """Empty every kind. The resourceVersion keeps counting and history is compacted, so clients
        holding an old resourceVersion relist instead of trusting a stale cache."""
        self.drop_watches("close")
        with self.cond:
            for key, old in self.buckets.items():
                self.buckets[key] = Bucket(old.res)
            self.snapshots.clear()
            self.unavailable_until = 0.0
        self.compact()

    def stats(self):
        with self.cond:
            kinds = {f"{b.res.api_version}/{b.res.plural}": {"objects": len(b.objects), "history": len(b.history),
                                                            "oldestResumableResourceVersion": b.oldest}
                     for b in self.buckets.values()}
            left = max(0.0, self.unavailable_until - time.monotonic())
            return {"resourceVersion": self.rv, "compactedResourceVersion": self.compacted,
                    "resources": kinds, "watches": list(self.watches.values()),
                    "unavailableSeconds": round(left, 3), "historyLimit": self.history_limit}


def _with_kind(res, obj, md):
    """A copy with kind, apiVersion and metadata first, as the apiserver serializes objects."""
    out = {"kind": res.kind, "apiVersion": res.api_version, "metadata": md}
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out


def _spec_of(obj):
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
