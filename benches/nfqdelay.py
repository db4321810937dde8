#!/usr/bin/env python3
"""nfqdelay.py QUEUE_NUM DELAY_MS [JITTER_MS] [LOSS_PCT]

A stand-in for `tc qdisc ... netem delay` where the kernel has no sch_netem: holds every packet
that an `iptables ... -j NFQUEUE --queue-num N` rule hands it for DELAY_MS (+-JITTER_MS),
optionally drops LOSS_PCT %, then re-injects it. Standard library only: a raw NETLINK_NETFILTER
socket, no libnetfilter_queue. Run it in the same network namespace as the rule; it needs
CAP_NET_ADMIN. Prints one "nfqdelay: ..." line once bound; SIGTERM releases held packets.
Used by `benches/lab` (timing fidelity).
"""
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER, NFNL_SUBSYS_QUEUE = 12, 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_TIMESTAMP = 1, 2, 1, 2, 4
CMD_BIND, CMD_UNBIND, COPY_META = 1, 2, 1
NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR = 1, 4, 2
NF_DROP, NF_ACCEPT = 0, 1

queue, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000
jitter = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0
loss = float(sys.argv[4]) / 100 if len(sys.argv) > 4 else 0.0
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
sock.bind((0, 0))
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
# A socket asking for receive timestamps turns the kernel's packet timestamps on, so each
# queued packet carries the time it was queued (NFQA_TIMESTAMP) and the hold is counted from
# then, not from when this process got around to reading it.
stamps = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
stamps.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMP", 29), 1)  # 29 on Linux
seq = 0
reported = False
pending = []  # heap of (release time, packet id)


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def send(msg_type, attrs, flags=NLM_F_REQUEST):
    global seq
    seq += 1
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0)
    sock.send(header + body)


def verdict(packet_id, value):
    send(NFQNL_MSG_VERDICT, [attr(NFQA_VERDICT_HDR, struct.pack("!II", value, packet_id))])


def stop(*_):
    for _, packet_id in pending:
        verdict(packet_id, NF_ACCEPT)
    send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_CMD, struct.pack("!BBH", CMD_UNBIND, 0, 0))])
    sys.exit(0)


def handle(data):
    global reported
    off = 0
    while off + 16 <= len(data):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", data, off)
        if kind == NLMSG_ERROR:
            err = struct.unpack_from("=i", data, off + 16)[0]
            if err:
                sys.exit(f"nfqdelay: netlink error {os.strerror(-err)}")
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            packet_id, queued, stamped = None, time.monotonic(), "no"
            a = off + 20
            while a + 4 <= off + length:
                alen, akind = struct.unpack_from("=HH", data, a)
                if akind & 0x7FFF == NFQA_PACKET_HDR:
                    packet_id = struct.unpack_from("!I", data, a + 4)[0]
                elif akind & 0x7FFF == NFQA_TIMESTAMP:
                    sec, usec = struct.unpack_from("!QQ", data, a + 4)
                    # Wall-clock stamp to the monotonic clock the heap runs on.
                    at = sec + usec / 1e6 - (time.time() - time.monotonic())
                    queued, stamped = min(queued, at), "yes"
                a += (alen + 3) & ~3
            if not reported:
                reported = True
                print(f"nfqdelay: first packet carried its queueing time: {stamped}", file=sys.stderr, flush=True)
            if packet_id is None:
                pass
            elif loss and random.random() < loss:
                verdict(packet_id, NF_DROP)
            else:
                hold = max(0.0, delay + random.uniform(-jitter, jitter))
                heapq.heappush(pending, (queued + hold, packet_id))
        off += (length + 3) & ~3


send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_CMD, struct.pack("!BBH", CMD_BIND, 0, 0))], NLM_F_REQUEST | NLM_F_ACK)
send(NFQNL_MSG_CONFIG, [attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, COPY_META))], NLM_F_REQUEST | NLM_F_ACK)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
print(f"nfqdelay: queue {queue} delay {delay * 1000:.0f}ms jitter {jitter * 1000:.0f}ms loss {loss * 100:.0f}%", flush=True)
# A sleep can overshoot by the timer slack and the scheduler's latency: the last SPIN seconds
# before a release are spent polling instead, so the hold time is the delay to a few µs.
SPIN = 0.0015
while True:
    now = time.monotonic()
    while pending and pending[0][0] <= now:
        verdict(heapq.heappop(pending)[1], NF_ACCEPT)
    wait = max(0.0, pending[0][0] - now - SPIN) if pending else None
    ready, _, _ = select.select([sock], [], [], wait)
    if ready:
        handle(sock.recv(65536))
