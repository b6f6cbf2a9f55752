#!/usr/bin/python3
"""fake-server.py KEY CERT STEP... -- a scripted USMTP 1.0 server on
standard input and output, for testing clients against replies a real
handler never sends (run it with `usmtp-client --exec`).

It does the 1.0 handshake of usmtp(7) with the given RSA key and
certificate (a secure-mode offer gets 502, as from any 1.0 server),
sends the 100 greeting and reads the client's version
line; then each STEP is one of
  TEXT[|TEXT...]   read one client frame, answer with these replies
  @stall           stop reading (the client's writes then block) and
                   sleep a minute
  @close           close the connection
TEXT may hold \\xNN escapes.  Two handshake answers can be replaced:
  --hello TEXT     instead of "201 ssl valid" (then it closes)
  --algos TEXT     instead of the 202 with the certificate (then it
                   closes); the reply ends with ".\\r\\n\\r\\n"
Each client frame read is logged on standard error, decrypted.
"""
import codecs
import sys
import time

from cryptography.hazmat.primitives import serialization

from usmtplib import CRLF2, OAEP, fd_reader, frame, write_all


def unescape(text):
    return codecs.escape_decode(text.encode())[0]


def out(data):
    write_all(1, data)


def main():
    args, hello, algos = [], None, None
    argv = sys.argv[1:]
    while argv:
        a = argv.pop(0)
        if a == "--hello":
            hello = unescape(argv.pop(0))
        elif a == "--algos":
            algos = unescape(argv.pop(0))
        else:
            args.append(a)
    keyfile, certfile, steps = args[0], args[1], args[2:]
    priv = serialization.load_pem_private_key(open(keyfile, "rb").read(), None)
    pem = open(certfile, "rb").read()
    client = fd_reader(0)
    client.plain()
    if hello is not None:
        out(hello + CRLF2)
        return
    out(b"201 ssl valid" + CRLF2)
    if b"noise" in client.plain().lower():
        # a USMTP 1.0 server: the secure offer is an unknown algorithm
        out(b"502 Unsupported encryption algorithm." + CRLF2)
        return
    if algos is not None:
        out(algos + b"." + CRLF2)
        return
    out(b"202 algos valid" + pem + b"." + CRLF2)
    key = priv.decrypt(client.count(256 + 4)[:256], OAEP)
    out(b"203 symetric key decryption done" + CRLF2)
    out(frame(key, b"100 Hello supported_protocols usmtp supported_versions 1.0"))
    terms = (CRLF2, b"." + CRLF2)
    client.cipher(key, terms)
    for step in steps:
        if step == "@stall":
            time.sleep(60)
            return
        if step == "@close":
            return
        sys.stderr.write("fake-server: got %r\n" % client.cipher(key, terms))
        for text in step.split("|"):
            out(frame(key, unescape(text)))


try:
    main()
except EOFError:
    pass    # the client closed the connection
