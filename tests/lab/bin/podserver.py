#!/usr/bin/env python3
"""A workload pod of the lab: answers every GET with its pod name, the path and the Host
header. `/status/NNN` answers with that code.   podserver.py POD_NAME PORT"""

import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        name = self.server.pod_name
        body = f"{name} path={self.path} host={self.headers.get('Host')}\n".encode()
        code = 200
        if self.path.startswith("/status/") and self.path[8:11].isdigit():
            code = int(self.path[8:11])
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        sys.exit("usage: podserver.py POD_NAME PORT")
    server = http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), Handler)
    server.daemon_threads = True
    server.pod_name = sys.argv[1]
    print(f"{sys.argv[1]} serving on :{sys.argv[2]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
