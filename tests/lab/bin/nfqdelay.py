#!/usr/bin/env python3
"""Adds a fixed delay to packets, standing in for `tc qdisc ... netem delay` (sch_netem is
not built into this kernel). An iptables rule `-j NFQUEUE --queue-num N --queue-bypass`
hands packets to this process over a NETLINK_NETFILTER socket; each one is held DELAY_MS and
then accepted. Run it in the namespace of the rule: queues are per network namespace.

    nfqdelay.py QUEUE_NUM DELAY_MS

Standard library only; needs CAP_NET_ADMIN. SIGTERM accepts every held packet, unbinds and
exits. Prints "ready" once bound.
"""

import heapq
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
CFG_CMD, CFG_PARAMS = 1, 2
ATTR_PACKET_HDR, ATTR_VERDICT_HDR = 1, 2
CMD_BIND, CMD_UNBIND = 1, 2
COPY_META = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_ACCEPT = 1


class Queue:
    def __init__(self, number):
        self.number, self.seq = number, 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    @staticmethod
    def attr(kind, payload):
        length = 4 + len(payload)
        return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)

    def send(self, msg_type, attrs, flags=NLM_F_REQUEST):
        self.seq += 1
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(self.number)) + b"".join(attrs)
        header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, self.seq, 0)
        self.sock.send(header + body)

    def command(self, cmd):
        self.send(MSG_CONFIG, [self.attr(CFG_CMD, struct.pack("!BBH", cmd, 0, 0))], NLM_F_REQUEST | NLM_F_ACK)

    def bind(self):
        self.command(CMD_BIND)
        self.send(MSG_CONFIG, [self.attr(CFG_PARAMS, struct.pack("!IB", 0, COPY_META))], NLM_F_REQUEST | NLM_F_ACK)

    def accept(self, packet_id):
        self.send(MSG_VERDICT, [self.attr(ATTR_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))])

    def packet_ids(self, data):
        """Packet ids in one netlink datagram; exits on a netlink error."""
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
            if length < 16:
                return
            if kind == NLMSG_ERROR:
                err = struct.unpack_from("=i", data, offset + 16)[0]
                if err:
                    sys.exit(f"nfqdelay: netlink error {err}")
            elif kind == (NFNL_SUBSYS_QUEUE << 8) | MSG_PACKET:
                at = offset + 20
                while at + 4 <= offset + length:
                    alen, akind = struct.unpack_from("=HH", data, at)
                    if alen < 4:
                        break
                    if akind & 0x7FFF == ATTR_PACKET_HDR:
                        yield struct.unpack_from("!I", data, at + 4)[0]
                    at += (alen + 3) & ~3
            offset += (length + 3) & ~3


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: nfqdelay.py QUEUE_NUM DELAY_MS")
    queue, delay = Queue(int(sys.argv[1])), float(sys.argv[2]) / 1000.0
    try:  # waking up late adds to the delay: ask for a real-time slot (it sleeps in select)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (AttributeError, OSError):
        pass  # best effort: at normal priority the delay only gets noisier
    queue.bind()
    held = []  # (release time, packet id)

    def stop(*_):
        for _, packet_id in held:
            queue.accept(packet_id)
        queue.command(CMD_UNBIND)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        while held and held[0][0] <= now:
            queue.accept(heapq.heappop(held)[1])
        wait = max(0.0, held[0][0] - now) if held else None
        readable, _, _ = select.select([queue.sock], [], [], wait)
        if readable:
            data = queue.sock.recv(65536)
            arrived = time.monotonic()
            for packet_id in queue.packet_ids(data):
                heapq.heappush(held, (arrived + delay, packet_id))


if __name__ == "__main__":
    main()
