#!/usr/bin/python3
"""writes.py STRACE-OUT KEY.hex -- the reply codes in each write(1, ...)
or sendto(1, ...) of a handler traced with `strace -xx -s 65536 -e
trace=write,sendto`, one write
per line, decrypted with the session key: shows which replies left
together (usmtp(7), Framing: when replies leave)."""
import re
import sys

from usmtplib import CRLF2, decrypt

key = bytes.fromhex(open(sys.argv[2]).read().strip())
# write(1, ...) from a pipe's handler, sendto(1, ..., MSG_DONTWAIT...)
# from a socket's
pat = re.compile(r'(?:write|sendto)\(1, "((?:\\x[0-9a-f]{2})*)", \d+(?:, [^)]*)?\) = (\d+)')
for line in open(sys.argv[1]):
    m = pat.search(line)
    if not m:
        continue
    data = bytes.fromhex(m.group(1).replace("\\x", ""))
    codes = []
    pos = 0
    while pos < len(data):
        if not codes and data[pos:pos + 1].isdigit() and CRLF2 in data[pos:]:
            # plaintext handshake reply
            end = data.index(CRLF2, pos)
            codes.append(data[pos:pos + 3].decode())
            pos = end + 4
            continue
        k = 16
        while pos + k + 4 <= len(data) and data[pos + k:pos + k + 4] != CRLF2:
            k += 16
        text = decrypt(key, data[pos:pos + k])
        codes.append(text[:3].decode("ascii", "replace"))
        pos += k + 4
    print(" ".join(codes))
