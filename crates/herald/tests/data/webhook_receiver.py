#!/usr/bin/env python3
"""A webhook receiver for Herald's tests (issue 14): verifies every delivery's
Standard Webhooks signature with its own implementation (HMAC-SHA256 over
`id.timestamp.body`, keyed with the base64 bytes after `whsec_`; any `v1,`
signature of the space-separated list may match), and logs one JSON line per
request to LOG: {"id", "timestamp", "valid", "status", "events": [event ids],
"sequence"}. What it answers is read from CONTROL before each request: a
status code (default 200).

usage: webhook_receiver.py PORT SECRETS_FILE CONTROL LOG
SECRETS_FILE holds the accepted secrets, one per line (read per request).
"""
import base64
import hashlib
import hmac
import http.server
import json
import sys

PORT, SECRETS, CONTROL, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def valid(headers, body):
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    sigs = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split(" ") if s.startswith("v1,")]
    signed = f"{msg_id}.{ts}.".encode() + body
    for secret in read(SECRETS).splitlines():
        key = base64.b64decode(secret.strip().removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, s) for s in sigs):
            return True
    return False


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        status = int(read(CONTROL, "200") or "200")
        try:
            events = [e["id"] for e in json.loads(body)]
        except Exception:
            events = None
        line = {
            "id": self.headers.get("webhook-id"),
            "timestamp": self.headers.get("webhook-timestamp"),
            "sequence": self.headers.get("herald-sequence"),
            "valid": valid(self.headers, body),
            "status": status,
            "events": events,
        }
        with open(LOG, "a") as f:
            f.write(json.dumps(line) + "\n")
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "120")
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok" if status < 300 else b"not now")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
