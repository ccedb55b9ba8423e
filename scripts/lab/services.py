#!/usr/bin/env python3
"""The lab's protected services: HTTP on :8080 and a UDP echo on :9000."""
import argparse
import http.server
import socket
import threading

ap = argparse.ArgumentParser()
ap.add_argument("--bind", default="0.0.0.0")
args = ap.parse_args()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"levee lab: ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def udp_echo():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.bind, 9000))
    while True:
        data, peer = s.recvfrom(2048)
        try:
            s.sendto(data, peer)
        except OSError:
            pass  # a spoofed or unroutable peer (attack traffic hits this port too)


threading.Thread(target=udp_echo, daemon=True).start()
http.server.ThreadingHTTPServer((args.bind, 8080), Handler).serve_forever()
