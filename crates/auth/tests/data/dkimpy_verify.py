"""Verify the first DKIM signature of a message with dkimpy, an independent verifier.

usage: dkimpy_verify.py MESSAGE_FILE DNS_NAME TXT_RECORD
The TXT record is served for DNS_NAME only, so no DNS server is needed.
Exit 0 when the signature verifies, 1 when it does not (dkimpy's log on stderr).
"""
import logging
import sys

import dkim

message = open(sys.argv[1], "rb").read()
name = sys.argv[2].rstrip(".").encode()
txt = sys.argv[3].encode()


def dnsfunc(qname, timeout=5):
    return txt if qname.rstrip(b".") == name else None


logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
ok = dkim.verify(message, logger=logging.getLogger("dkim"), dnsfunc=dnsfunc)
print("dkimpy: pass" if ok else "dkimpy: fail")
sys.exit(0 if ok else 1)
