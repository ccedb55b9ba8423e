#!/usr/bin/env python3
"""A local server that follows AbuseIPDB's documented v2 API for levee's tests:
POST /api/v2/report (Key header, form fields ip, categories, comment,
timestamp), GET /api/v2/check; 401 for a wrong key, 422 for bad fields, 429
for an IP reported in the last 15 minutes, 429 with Retry-After once the daily
limit is used. --throttle-first N answers the first N reports 429 with
Retry-After --retry-after. One JSON line per request goes to --log.
Prints the port it listens on (127.0.0.1 only).
"""
import argparse
import http.server
import ipaddress
import json
import threading
import time
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--key", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--daily-limit", type=int, default=1000)
ap.add_argument("--throttle-first", type=int, default=0)
ap.add_argument("--retry-after", type=int, default=1)
args = ap.parse_args()
lock = threading.Lock()
reported = {}  # ip -> time of the last accepted report
accepted = 0
requests = 0


def error(status, detail):
    return status, {"errors": [{"detail": detail, "status": status}]}


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log(self, record):
        with open(args.log, "a") as f:
            f.write(json.dumps(record) + "\n")

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/api/v2/check":
            return self.reply(*error(404, "not found"))
        if self.headers.get("Key") != args.key:
            return self.reply(*error(401, "Authentication failed. Your API key is either missing, incorrect, or revoked."))
        ip = urllib.parse.parse_qs(url.query).get("ipAddress", [""])[0]
        with lock:
            self.log({"at": time.time(), "path": url.path, "ip": ip})
        self.reply(200, {"data": {"ipAddress": ip, "abuseConfidenceScore": 0}})

    def do_POST(self):
        global accepted, requests
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
        if self.path != "/api/v2/report":
            return self.reply(*error(404, "not found"))
        with lock:
            requests += 1
            now = time.time()
            record = {"at": now, "path": self.path, "form": form, "accept": self.headers.get("Accept")}
            headers = []
            if self.headers.get("Key") != args.key:
                status, reply = error(401, "Authentication failed. Your API key is either missing, incorrect, or revoked.")
            elif requests <= args.throttle_first:
                status, reply = error(429, "Too Many Requests")
                headers = [("Retry-After", str(args.retry_after))]
            elif accepted >= args.daily_limit:
                status, reply = error(429, "Daily rate limit of %d requests exceeded for this endpoint." % args.daily_limit)
                headers = [("Retry-After", "3600"), ("X-RateLimit-Remaining", "0")]
            else:
                try:
                    ip = str(ipaddress.ip_address(form.get("ip", "")))
                    cats = [int(c) for c in form.get("categories", "").split(",")]
                    assert all(1 <= c <= 23 for c in cats)
                except (ValueError, AssertionError):
                    ip = None
                if ip is None:
                    status, reply = error(422, "The ip and categories fields are required and must be valid.")
                elif now - reported.get(ip, 0) < 900:
                    status, reply = error(429, "You can only report the same IP address (`%s`) once in 15 minutes." % ip)
                else:
                    reported[ip] = now
                    accepted += 1
                    status, reply = 200, {"data": {"ipAddress": ip, "abuseConfidenceScore": 52}}
            record["status"] = status
            self.log(record)
        self.reply(status, reply, headers)

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
