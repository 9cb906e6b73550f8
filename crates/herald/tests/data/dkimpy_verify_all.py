"""Verify the DKIM signature of every message file given, with dkimpy.

usage: dkimpy_verify_all.py DNS_NAME TXT_RECORD FILE...
Prints 'verified N of M'; exits 1 unless all verify.
"""
import sys

import dkim

name = sys.argv[1].rstrip(".").encode()
txt = sys.argv[2].encode()


def dnsfunc(qname, timeout=5):
    return txt if qname.rstrip(b".") == name else None


files = sys.argv[3:]
ok = sum(1 for f in files if dkim.verify(open(f, "rb").read(), dnsfunc=dnsfunc))
print(f"verified {ok} of {len(files)}")
sys.exit(0 if ok == len(files) and files else 1)
