"""Building blocks of the fake apiserver's store: metav1.Status errors, stored object versions,
history events, per-kind buckets, selections (namespace + selectors) and query parameter parsing.
"""

import bisect
import json
import time

import kresources
import kselectors

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ApiError(Exception):
    """An error the apiserver reports as a metav1.Status with this code and reason."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def _qualified(res):
    return f"{res.plural}.{res.group}" if res.group else res.plural


def not_found(res, name):
    return ApiError(404, "NotFound", f'{_qualified(res)} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.plural})


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", f'{_qualified(res)} "{name}" already exists',
                    {"name": name, "group": res.group, "kind": res.plural})


def conflict(res, name):
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(res)} "{name}": the '
                    "object has been modified; please apply your changes to the latest version and try again",
                    {"name": name, "group": res.group, "kind": res.plural})


def expired(message):
    return ApiError(410, "Expired", message)


class Entry:
    """One stored version of an object: its JSON bytes plus what selectors need."""

    __slots__ = ("raw", "rv", "ns", "name", "labels", "fields")

    def __init__(self, res, obj, rv):
        md = obj["metadata"]
        self.raw = dumps(obj)
        self.rv, self.ns, self.name = rv, md.get("namespace", ""), md["name"]
        self.labels = dict(md.get("labels") or {})
        self.fields = kresources.field_values(res, obj)

    def obj(self):
        return json.loads(self.raw)


class Event:
    """One history record; `prev` is the version before the write (None for ADDED)."""

    __slots__ = ("rv", "type", "entry", "prev", "_restamped")

    def __init__(self, rv, kind, entry, prev):
        self.rv, self.type, self.entry, self.prev = rv, kind, entry, prev
        self._restamped = None

    def prev_at_event_rv(self, res):
        """The previous object stamped with this event's RV (sent as DELETED when it leaves a selector)."""
        if self._restamped is None:
            obj = self.prev.obj()
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._restamped = Entry(res, obj, self.rv)
        return self._restamped


class Bucket:
    """Objects and event history of one kind."""

    def __init__(self, res):
        self.res = res
        self.objects = {}  # (namespace, name) -> Entry
        self.history = []  # Events, ascending rv
        self.oldest = 0  # a watch may resume from rv N only if N >= oldest
        self._sorted = None

    def sorted_keys(self):
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted

    def scope(self, ns):
        """Current entries in etcd key order, optionally limited to one namespace."""
        return [self.objects[k] for k in self.sorted_keys() if not ns or k[0] == ns]

    def events_after(self, rv):
        return self.history[bisect.bisect_right(self.history, rv, key=lambda e: e.rv):]

    def trim_to(self, rv):
        """Forget events with rv <= `rv`: watches from older RVs now get 410 Expired."""
        self.history = self.history[bisect.bisect_right(self.history, rv, key=lambda e: e.rv):]
        self.oldest = max(self.oldest, rv)

    def trim(self, limit):
        if len(self.history) > limit + max(limit // 4, 16):
            self.trim_to(self.history[len(self.history) - limit - 1].rv)


class Selection:
    """Namespace plus parsed label and field selectors of a list or watch request."""

    def __init__(self, res, ns, label_selector, field_selector):
        try:
            self.labels = kselectors.parse_labels(label_selector)
            self.fields = kselectors.parse_fields(field_selector, res.selectable_fields())
        except kselectors.SelectorError as err:
            raise bad_request(str(err)) from None
        self.ns = ns
        self.res = res

    @property
    def filtered(self):
        return self.labels is not None or self.fields is not None

    def matches(self, entry):
        return ((not self.ns or entry.ns == self.ns)
                and kselectors.match_labels(self.labels, entry.labels)
                and kselectors.match_fields(self.fields, entry.fields))

    def view(self, ev):
        """How a watcher with this selection sees a history event: (type, entry) or None.
        An object that starts or stops matching is ADDED or DELETED, as with the apiserver's
        watch cache."""
        if self.ns and ev.entry.ns != self.ns:
            return None
        if not self.filtered:
            return ev.type, ev.entry
        now = self.matches(ev.entry)
        if ev.type != MODIFIED:
            return (ev.type, ev.entry) if now else None
        before = self.matches(ev.prev)
        if now:
            return (MODIFIED if before else ADDED), ev.entry
        return (DELETED, ev.prev_at_event_rv(self.res)) if before else None


class ListResult:
    def __init__(self, entries, rv, cont, remaining):
        self.entries, self.rv, self.cont, self.remaining = entries, rv, cont, remaining


class WatchSession:
    """Server side of one watch: what to send first and where in the history it stands."""

    def __init__(self, wid, sel, cursor, epoch):
        self.id, self.sel, self.cursor, self.epoch = wid, sel, cursor, epoch
        self.initial = []  # (type, entry) sent before live events
        self.initial_end = False  # send the k8s.io/initial-events-end bookmark after `initial`
        self.error = None  # ApiError to send as an ERROR event, after which the watch ends


def parse_rv(text):
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f'resourceVersion: Invalid value: "{text}": must be an integer') from None
    if value < 0:
        raise bad_request(f'resourceVersion: Invalid value: "{text}": must be non-negative')
    return value


def int_param(q, name):
    text = q.get(name) or "0"
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f'{name}: Invalid value: "{text}": must be an integer') from None
    return max(value, 0)


def bool_param(q, name):
    """None when absent, else the boolean the apiserver would parse."""
    text = q.get(name)
    if text is None:
        return None
    return text.lower() in ("true", "1", "yes")
