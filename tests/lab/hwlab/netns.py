"""Network namespaces: `ip` and `iptables` inside them, processes started inside them, and
sockets opened inside them from this (root-namespace) process.

A socket belongs to the namespace of the thread that created it, so `connect_in(ns, addr)`
moves the calling thread into `ns` with setns(2) (through ctypes: Python 3.11 has no
os.setns), creates the socket, and moves back before connecting. Nothing is ever created in
the root namespace.
"""

import ctypes
import ctypes.util
import os
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_lock = threading.Lock()


class LabError(Exception):
    """A lab step failed; the message says which and why."""


def run(argv, input_text=None, check=True, env=None):
    """Runs a command to completion; raises LabError with its output when it fails."""
    try:
        done = subprocess.run(argv, input=input_text, capture_output=True, text=True, env=env, timeout=60)
    except FileNotFoundError:
        raise LabError(f"`{argv[0]}` is not installed") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` did not finish in 60 s") from None
    if check and done.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed ({done.returncode}): {(done.stderr + done.stdout).strip()}")
    return done


def ip(ns, *args, check=True):
    return run(["ip", "-n", ns, *args] if ns else ["ip", *args], check=check)


def exec_in(ns, argv, input_text=None, check=True):
    return run(["ip", "netns", "exec", ns, *argv], input_text=input_text, check=check)


def install_forward_chain(ns, chain, rules):
    """Fills chain CHAIN of namespace NS's mangle table with RULES (argument lists after
    `-A CHAIN`) and jumps to it first thing in mangle's FORWARD. Running it again replaces the
    rules. The mangle table sees forwarded packets before the filter table, where kube-router
    accepts every packet a NetworkPolicy allows and keeps its own jump first."""
    ipt = ["iptables", "-w", "-t", "mangle"]
    exec_in(ns, ipt + ["-N", chain], check=False)
    exec_in(ns, ipt + ["-F", chain])
    for rule in rules:
        exec_in(ns, ipt + ["-A", chain] + rule)
    if exec_in(ns, ipt + ["-C", "FORWARD", "-j", chain], check=False).returncode != 0:
        exec_in(ns, ipt + ["-I", "FORWARD", "1", "-j", chain])


def remove_forward_chain(ns, chain):
    """Undoes install_forward_chain; quiet when the chain is not there."""
    ipt = ["iptables", "-w", "-t", "mangle"]
    while exec_in(ns, ipt + ["-D", "FORWARD", "-j", chain], check=False).returncode == 0:
        pass
    exec_in(ns, ipt + ["-F", chain], check=False)
    exec_in(ns, ipt + ["-X", chain], check=False)


def sysctl(ns, key, value):
    path = "/proc/sys/" + key.replace(".", "/")
    exec_in(ns, ["sh", "-c", f"echo {value} > {path}"])


def list_netns():
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def spawn(ns, argv, log_path, env=None, cwd=None):
    """Starts argv inside `ns` in its own session (so Ctrl-C on the lab command does not reach
    it), output to `log_path`. `ip netns exec` execs the program, so the PID is the program's."""
    log = open(log_path, "ab")
    try:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=cwd)
    except FileNotFoundError:
        raise LabError(f"`{argv[0]}` is not installed") from None
    finally:
        log.close()
    return p


def spawn_root(argv, log_path, env=None):
    """Starts argv in the root namespace (the port portal only)."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    finally:
        log.close()


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise LabError(f"setns: {os.strerror(err)}")


def socket_in(ns, family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A socket created inside network namespace `ns`."""
    with _lock:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        except OSError as err:
            os.close(own)
            raise LabError(f"namespace {ns}: {err.strerror}") from None
        try:
            _setns(target)
            try:
                return socket.socket(family, kind)
            finally:
                _setns(own)
        finally:
            os.close(target)
            os.close(own)


def connect_in(ns, address, timeout=3.0):
    s = socket_in(ns)
    s.settimeout(timeout)
    try:
        s.connect(address)
    except OSError:
        s.close()
        raise
    return s


def tcp_open(ns, address, timeout=0.5):
    try:
        connect_in(ns, address, timeout).close()
        return True
    except OSError:
        return False
