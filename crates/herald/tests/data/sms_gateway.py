"""A small HTTP SMS gateway for Herald's tests: it accepts POSTed JSON texts,
appends each (with its Authorization header and the status answered) as a JSON
line to LOG, and answers 202 with an id, or 400 for numbers ending in 999 (an
"unknown number").

Usage: python3 sms_gateway.py PORT LOG [FAIL_FIRST [REPORT_TOKEN]]

- PORT 0: the system picks a free port; the port listened on is printed as
  the first line of stdout once the socket listens.
- FAIL_FIRST: the first FAIL_FIRST requests are answered 503 with
  `Retry-After: 1` (an overloaded gateway), before any is accepted.
- REPORT_TOKEN: after accepting a text that names a `report_url`, the gateway
  posts its delivery report there (`Authorization: Bearer REPORT_TOKEN`), as
  real gateways do: `delivered` with segments and cost, `failed` (absent
  subscriber) for numbers ending in 998, `delivered` then `opted_out` for
  numbers ending in 997. Every final report is posted twice, as gateways
  retry their callbacks, so the receiver must drop the repeat. Each report's
  HTTP status is logged as a line {"report": reference, "status": …}.
"""
import http.server
import json
import sys
import threading
import urllib.request

PORT, LOG = int(sys.argv[1]), sys.argv[2]
FAIL_FIRST = int(sys.argv[3]) if len(sys.argv) > 3 else 0
REPORT_TOKEN = sys.argv[4] if len(sys.argv) > 4 else None
LOCK = threading.Lock()


def log(line):
    with LOCK:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def post_report(url, report):
    data = json.dumps(report).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json",
        "Authorization": "Bearer %s" % REPORT_TOKEN,
    })
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError as e:
        status = str(e)
    log({"report": report["reference"], "status": status, "sent": report["status"]})


def reports_for(sms):
    ref, to, segments = sms.get("reference"), str(sms.get("to", "")), sms.get("segments", 1)
    if to.endswith("998"):
        final = [{"reference": ref, "status": "failed", "error": "absent subscriber"}]
    else:
        final = [{"reference": ref, "status": "delivered", "segments": segments,
                  "cost": "%.4f" % (0.045 * segments), "currency": "EUR"}]
    if to.endswith("997"):
        final.append({"reference": ref, "status": "opted_out"})
    # An intermediate status first, then each final report twice.
    return [{"reference": ref, "status": "buffered"}] + [r for r in final for _ in (0, 1)]


def send_reports(sms):
    for report in reports_for(sms):
        post_report(sms["report_url"], report)


class Gateway(http.server.BaseHTTPRequestHandler):
    count = 0
    requests = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            text = json.loads(body)
        except ValueError:
            self.reply(400, {"error": "not JSON"})
            return
        with LOCK:
            Gateway.requests += 1
            n = Gateway.requests
        if n <= FAIL_FIRST:
            status = 503
        elif str(text.get("to", "")).endswith("999"):
            status = 400
        else:
            status = 202
        log({
            "path": self.path,
            "authorization": self.headers.get("Authorization"),
            "content_type": self.headers.get("Content-Type"),
            "sms": text,
            "status": status,
        })
        if status == 503:
            self.reply(503, {"error": "overloaded"}, retry_after="1")
        elif status == 400:
            self.reply(400, {"error": "unknown number"})
        else:
            with LOCK:
                Gateway.count += 1
                id_ = "msg-%d" % Gateway.count
            self.reply(202, {"id": id_})
            if REPORT_TOKEN and text.get("report_url"):
                threading.Thread(target=send_reports, args=(text,), daemon=True).start()

    def reply(self, status, obj, retry_after=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Gateway)
print(server.server_address[1], flush=True)
server.serve_forever()
