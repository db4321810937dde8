"""The lab's run directory and its state file: every namespace and process the lab creates is
written down *before* (namespaces) or right after (processes) it exists, so that `lab down`
can remove exactly those, even after a crash or an interrupted `up`.

state.json:
    params      what `up` was called with (domain, nodes, binary, ports…)
    netns       namespaces created, in creation order
    procs       [{name, pid, netns, start}]: `start` is the process start time from
                /proc/PID/stat, so a PID reused by an unrelated process is never killed
    faults      active faults, {name: args}
    files       files created outside the run directory (/etc/netns/<ns>/resolv.conf)
"""

import json
import os
import signal
import time

from .plan import PREFIX  # noqa: F401  (lab.py and `lab` read it from here)

DEFAULT_DIR = "/run/hopwatch-lab"


def run_dir():
    return os.path.abspath(os.environ.get("HOPWATCH_LAB_DIR") or DEFAULT_DIR)



def write_atomic(path, text):
    """Writes `text` to `path` through a temporary file in the same directory and a rename:
    a process reading `path` (an agent starting or reloading, Prometheus, kube-proxy) sees the
    old file or the new one, never half of one."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)

class State:
    """state.json of one run directory; every change is written at once (atomically)."""

    def __init__(self, directory):
        self.dir = directory
        self.path = os.path.join(directory, "state.json")
        self.data = {"params": {}, "netns": [], "procs": [], "faults": {}, "files": []}
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.data.update(json.load(f))

    def exists(self):
        return os.path.exists(self.path)

    def save(self):
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True))

    def file(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def params(self):
        return self.data["params"]

    def add_netns(self, name):
        if name not in self.data["netns"]:
            self.data["netns"].append(name)
            self.save()

    def add_file(self, path):
        if path not in self.data["files"]:
            self.data["files"].append(path)
            self.save()

    def add_proc(self, name, pid, netns):
        self.data["procs"].append({"name": name, "pid": pid, "netns": netns, "start": start_time(pid)})
        self.save()

    def procs(self, name=None):
        return [p for p in self.data["procs"] if name is None or p["name"] == name]

    def proc(self, name):
        found = self.procs(name)
        return found[-1] if found else None

    def drop_proc(self, rec):
        self.data["procs"] = [p for p in self.data["procs"] if p is not rec and p != rec]
        self.save()

    def set_fault(self, name, args):
        self.data["faults"][name] = args
        self.save()

    def clear_fault(self, name):
        self.data["faults"].pop(name, None)
        self.save()


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def start_time(pid):
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None when the PID is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[19])


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()[0]


def alive(rec):
    """The recorded process still runs (same PID *and* start time, not a zombie)."""
    if rec.get("start") is None or start_time(rec["pid"]) != rec["start"]:
        return False
    return proc_state(rec["pid"]) not in (None, "Z", "X")


def signal_proc(rec, sig):
    if alive(rec):
        try:
            os.kill(rec["pid"], sig)
        except ProcessLookupError:
            pass


def stop_procs(recs, grace=3.0):
    """SIGTERM, then SIGKILL whatever still runs after `grace` seconds. A stopped (SIGSTOP)
    process gets SIGCONT too, or it would never act on SIGTERM."""
    recs = [r for r in recs if alive(r)]
    for r in recs:
        signal_proc(r, signal.SIGTERM)
        signal_proc(r, signal.SIGCONT)
    deadline = time.monotonic() + grace
    while any(alive(r) for r in recs) and time.monotonic() < deadline:
        time.sleep(0.02)
        reap()
    for r in recs:
        signal_proc(r, signal.SIGKILL)
    deadline = time.monotonic() + 2
    while any(alive(r) for r in recs) and time.monotonic() < deadline:
        time.sleep(0.02)
        reap()
    return [r for r in recs if alive(r)]


def reap():
    """Collects exited children of this process (those started by this very invocation)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
