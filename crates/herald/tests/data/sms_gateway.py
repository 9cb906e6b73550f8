"""A small HTTP SMS gateway for Herald's tests: it accepts POSTed JSON texts,
appends each (with its Authorization header) as a JSON line to LOG, and answers
202 with an id, or 400 for numbers ending in 999 (an "unknown number").

Usage: python3 sms_gateway.py PORT LOG. With PORT 0 the system picks a free port; the
port listened on is printed as the first line of stdout once the socket listens.
"""
import http.server
import json
import sys

PORT, LOG = int(sys.argv[1]), sys.argv[2]


class Gateway(http.server.BaseHTTPRequestHandler):
    count = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            text = json.loads(body)
        except ValueError:
            self.reply(400, {"error": "not JSON"})
            return
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "content_type": self.headers.get("Content-Type"),
                "sms": text,
            }) + "\n")
        if str(text.get("to", "")).endswith("999"):
            self.reply(400, {"error": "unknown number"})
        else:
            Gateway.count += 1
            self.reply(202, {"id": "msg-%d" % Gateway.count})

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Gateway)
print(server.server_address[1], flush=True)
server.serve_forever()
