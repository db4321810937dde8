#!/usr/bin/env python3
"""Loopback doors into the lab: listens on 127.0.0.1 in the root network namespace and relays
each connection to an address inside one of the lab's namespaces, so that a browser, curl or
a test on the machine reaches Prometheus, the agents and the API server without any link or
route into the lab. The upstream socket is created inside the target namespace (setns(2) on
the relaying thread, through ctypes), then the thread returns to the root namespace.

    portal.py NAME=LISTEN_PORT:NETNS:IP:PORT ...     (LISTEN_PORT 0 picks a free port)

Prints one JSON line {"NAME": port, ...} once every port listens.
"""

import ctypes
import ctypes.util
import json
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def socket_in(netns):
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            return socket.socket()
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                os._exit(3)  # a thread stuck in the wrong namespace must not serve anything
    finally:
        os.close(target)
        os.close(own)


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def relay(client, netns, address):
    try:
        upstream = socket_in(netns)
        upstream.settimeout(5)
        upstream.connect(address)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
    back.start()
    pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(listener, netns, address):
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, netns, address), daemon=True).start()


def main():
    ports, listeners = {}, []
    for spec in sys.argv[1:]:
        name, rest = spec.split("=", 1)
        listen, netns, ip, port = rest.split(":")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", int(listen)))
        except OSError as err:
            sys.exit(f"portal: cannot listen on 127.0.0.1:{listen} for {name}: {err.strerror}")
        s.listen(64)
        ports[name] = s.getsockname()[1]
        listeners.append((s, netns, (ip, int(port))))
    for s, netns, address in listeners:
        threading.Thread(target=serve, args=(s, netns, address), daemon=True).start()
    print(json.dumps(ports), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
