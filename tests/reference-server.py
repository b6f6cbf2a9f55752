#!/usr/bin/python3
"""reference-server.py LOG -- CMD... -- a stand-in for the protocol
authors' reference server, for tests of the client's --dialect.  Run it
as the client's --exec command: its standard input and output are the
connection.

It answers the hello with "201 ssl valid", as the reference server does.
To an algorithms line other than the reference spelling,
"support asymetric-rsa-2048 symetric-aes-256-ecb?" (the document's
spelling, the offer of secure mode), it answers as that server does, in
plaintext, "502 not supported symetric algorithm.\\r\\n\\r\\n", and closes
the connection.  The reference spelling is handed to CMD (a real
handler, started over a socket pair): the hello and the line are passed
on, the handler's own 201 is swallowed, and from then on the bytes go
both ways unchanged.  Each connection appends "offer: LINE" to LOG.
"""
import os
import select
import socket
import subprocess
import sys

CRLF2 = b"\r\n\r\n"
REF = b"support asymetric-rsa-2048 symetric-aes-256-ecb?"
buf = b""


def read_frame(fd):
    """One plaintext frame from fd (with its terminator), or None at
    the end of input."""
    global buf
    while CRLF2 not in buf:
        d = os.read(fd, 65536)
        if not d:
            return None
        buf += d
    i = buf.index(CRLF2) + 4
    f, buf = buf[:i], buf[i:]
    return f


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def relay(sock):
    """Both ways until the handler closes its end."""
    client_open = True
    while True:
        fds = [sock] + ([0] if client_open else [])
        r, _, _ = select.select(fds, [], [], 120)
        if not r:
            return
        if 0 in r:
            d = os.read(0, 65536)
            if not d:
                client_open = False
                sock.shutdown(socket.SHUT_WR)
            else:
                sock.sendall(d)
        if sock in r:
            try:
                d = sock.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                return
            try:
                write_all(1, d)
            except BrokenPipeError:
                return


def main():
    log, cmd = sys.argv[1], sys.argv[3:]
    hello = read_frame(0)
    if hello is None:
        return 0
    write_all(1, b"201 ssl valid" + CRLF2)
    algos = read_frame(0)
    if algos is None:
        return 0
    with open(log, "a") as f:
        f.write("offer: %s\n" % algos[:-4].decode("ascii", "replace"))
    if algos[:-4] != REF:
        write_all(1, b"502 not supported symetric algorithm." + CRLF2)
        return 0
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(cmd, stdin=theirs, stdout=theirs)
    theirs.close()
    ours.sendall(hello + algos + buf)
    # the handler's 201: the client has had ours
    reply = b""
    while CRLF2 not in reply:
        d = ours.recv(65536)
        if not d:
            return proc.wait()
        reply += d
    rest = reply[reply.index(CRLF2) + 4:]
    if rest:
        write_all(1, rest)
    relay(ours)
    ours.close()
    return proc.wait()


sys.exit(main())
