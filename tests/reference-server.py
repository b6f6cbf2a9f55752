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
import sys

from usmtplib import CRLF2, Reader, fd_reader, relay, start_handler, write_all

REF = b"support asymetric-rsa-2048 symetric-aes-256-ecb?"


def main():
    log, cmd = sys.argv[1], sys.argv[3:]
    client = fd_reader(0)
    try:
        hello = client.plain()
        write_all(1, b"201 ssl valid" + CRLF2)
        algos = client.plain()
    except EOFError:
        return 0
    with open(log, "a") as f:
        f.write("offer: %s\n" % algos.decode("ascii", "replace"))
    if algos != REF:
        write_all(1, b"502 not supported symetric algorithm." + CRLF2)
        return 0
    ours, proc = start_handler(cmd)
    ours.sendall(hello + CRLF2 + algos + CRLF2 + client.buf)
    # the handler's 201: the client has had ours
    handler = Reader(ours.recv)
    try:
        handler.plain()
    except EOFError:
        return proc.wait()
    if handler.buf:
        write_all(1, handler.buf)
    relay(ours)
    ours.close()
    return proc.wait()


sys.exit(main())
