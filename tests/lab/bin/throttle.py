#!/usr/bin/env python3
"""Starves one process the way the CFS bandwidth controller does at a container's CPU limit:
it is stopped (SIGSTOP) for STOP_S seconds, then runs (SIGCONT) for RUN_S seconds, over and
over. The kernel's throttling slices are 100 ms; longer ones make an agent's probes start
over a second late, which is what HopwatchScheduleLagHigh looks for.

    throttle.py PID START_TIME STOP_S RUN_S

START_TIME is field 22 of /proc/PID/stat when the lab recorded the process: a PID reused by
another process is never signalled. SIGTERM (or the process exiting) ends the cycle with the
process running. Prints "ready" once the first cycle starts.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hwlab.state import start_time  # noqa: E402  (the lab's package sits one folder up)


def main():
    pid, start, stop_s, run_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    done = []
    signal.signal(signal.SIGTERM, lambda *_: done.append(True))
    print("ready", flush=True)
    try:
        while not done and start_time(pid) == start:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(stop_s)
            os.kill(pid, signal.SIGCONT)
            time.sleep(run_s)
    except ProcessLookupError:
        return 0
    finally:
        if start_time(pid) == start:
            os.kill(pid, signal.SIGCONT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
