#!/usr/bin/python3
"""syslog-listen.py SOCKET OUT -- a stand-in syslog daemon for tests:
binds a Unix datagram socket at SOCKET (syslog(3) writes to /dev/log)
and appends every message it receives to OUT, one per line, flushed.
Prints "ready" once bound; runs until killed."""
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
print("ready", flush=True)
with open(out, "ab", buffering=0) as f:
    while True:
        msg = s.recv(65536)
        f.write(msg.rstrip(b"\0\n") + b"\n")
