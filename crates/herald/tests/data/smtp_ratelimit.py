#!/usr/bin/env python3
"""A small SMTP server for Herald's back-off test (issue 13): it answers the
first REFUSE transactions' MAIL FROM with `421 4.7.0 Rate limit exceeded, try
again later` and closes, then accepts mail. It logs each connection (with the
client's address) and each accepted message (recipient, client's address), with
the time, to LOG.

usage: smtp_ratelimit.py HOST PORT REFUSE LOG
"""
import socketserver
import sys
import threading
import time

HOST, PORT, REFUSE, LOG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
refused = 0


def log(line):
    with lock, open(LOG, "a") as f:
        f.write(f"{time.time():.3f} {line}\n")


class Handler(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write((text + "\r\n").encode())
        self.wfile.flush()

    def handle(self):
        global refused
        peer = self.client_address[0]
        log(f"connection {peer}")
        self.reply("220 ratelimit.test ESMTP")
        rcpt = ""
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            verb = cmd.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 ratelimit.test")
            elif verb == "MAIL":
                with lock:
                    refuse = refused < REFUSE
                    if refuse:
                        refused += 1
                if refuse:
                    log("refused")
                    self.reply("421 4.7.0 Rate limit exceeded, try again later")
                    return
                self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                rcpt = cmd.split(":", 1)[-1].strip()
                self.reply("250 2.1.5 Ok")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                while True:
                    body = self.rfile.readline()
                    if not body or body in (b".\r\n", b".\n"):
                        break
                log(f"message {rcpt} {peer}")
                self.reply("250 2.0.0 Ok: queued")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            elif verb in ("RSET", "NOOP"):
                self.reply("250 2.0.0 Ok")
            else:
                self.reply("502 5.5.2 Error: command not recognized")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


with Server((HOST, PORT), Handler) as server:
    server.serve_forever()
