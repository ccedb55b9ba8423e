#!/usr/bin/env python3
"""A webhook receiver for the lab and the tests. Checks levee's signatures with
Python's own hmac (an implementation independent of levee's), answers HTTP 500
to the first --fail-first attempts of each delivery (by X-Levee-Delivery), and
appends one JSON line per request to --log.
Prints the port it listens on (127.0.0.1 only), then serves until killed. With
--closed-until FILE the port is bound (so it is this receiver's) but refuses
connections until FILE exists: a receiver that is down, then comes back.
Misbehaving receivers, for the fault tests: --hang reads the request and never
answers; --redirect URL answers 307 to URL; --endless-body answers 200 with a
body that never ends.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--secret", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--fail-first", type=int, default=0)
ap.add_argument("--closed-until")
ap.add_argument("--hang", action="store_true")
ap.add_argument("--redirect")
ap.add_argument("--endless-body", action="store_true")
args = ap.parse_args()
lock = threading.Lock()
seen = 0
attempts = {}


def sign(message):
    return hmac.new(args.secret.encode(), message, hashlib.sha256).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ts = self.headers.get("X-Levee-Timestamp", "")
        stamped = dict(p.split("=", 1) for p in self.headers.get("X-Levee-Signature-Timestamped", "").split(",") if "=" in p)
        delivery = self.headers.get("X-Levee-Delivery")
        with lock:
            seen += 1
            n = seen
            attempts[delivery] = attempts.get(delivery, 0) + 1
            attempt = attempts[delivery]
        status = 500 if attempt <= args.fail_first else 200
        record = {
            "n": n,
            "attempt": attempt,
            "at": time.time(),
            "status": status,
            "event": self.headers.get("X-Levee-Event"),
            "delivery": delivery,
            "custom": self.headers.get("X-Team"),
            "valid": hmac.compare_digest(self.headers.get("X-Levee-Signature", ""), "sha256=" + sign(body)),
            "valid_timestamped": stamped.get("t") == ts
            and hmac.compare_digest(stamped.get("sha256", ""), sign(ts.encode() + b"." + body)),
            "body": json.loads(body or b"null"),
            "raw": base64.b64encode(body).decode(),
            "signature": self.headers.get("X-Levee-Signature", ""),
        }
        with lock, open(args.log, "a") as f:
            f.write(json.dumps(record) + "\n")
        if args.hang:
            while True:
                time.sleep(3600)
        if args.redirect:
            self.send_response(307)
            self.send_header("Location", args.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if args.endless_body:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while True:
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                return
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


http.server.ThreadingHTTPServer.daemon_threads = True
server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler, bind_and_activate=False)
server.server_bind()
print(server.server_address[1], flush=True)
if args.closed_until:
    # Bound, not listening: connections are refused (RST) until FILE appears.
    while not os.path.exists(args.closed_until):
        time.sleep(0.05)
server.server_activate()
server.serve_forever()
