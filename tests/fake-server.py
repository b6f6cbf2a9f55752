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
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CRLF2 = b"\r\n\r\n"
buf = b""


class Out:
    """Writes whole buffers to standard output (a socket)."""

    @staticmethod
    def write(data):
        while data:
            data = data[os.write(1, data):]


out = Out()


def unescape(text):
    return codecs.escape_decode(text.encode())[0]


def more():
    global buf
    d = os.read(0, 65536)
    if not d:
        sys.exit(0)
    buf += d


def read_plain():
    global buf
    while CRLF2 not in buf:
        more()
    i = buf.index(CRLF2)
    f, buf = buf[:i], buf[i + 4:]
    return f


def read_count(n):
    global buf
    while len(buf) < n:
        more()
    f, buf = buf[:n], buf[n:]
    return f


def read_cipher(key):
    global buf
    while True:
        k = 16
        while k + 4 <= len(buf):
            for term in (CRLF2, b"." + CRLF2):
                if buf[k:k + len(term)] == term:
                    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
                    text = dec.update(buf[:k]) + dec.finalize()
                    buf = buf[k + len(term):]
                    return text.rstrip(b" ")
            k += 16
        more()


def send_cipher(key, text):
    pad = 16 - len(text) % 16
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out.write(enc.update(text + b" " * pad) + enc.finalize() + CRLF2)


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
    read_plain()
    if hello is not None:
        out.write(hello + CRLF2)
        return
    out.write(b"201 ssl valid" + CRLF2)
    if b"noise" in read_plain().lower():
        # a USMTP 1.0 server: the secure offer is an unknown algorithm
        out.write(b"502 Unsupported encryption algorithm." + CRLF2)
        return
    if algos is not None:
        out.write(algos + b"." + CRLF2)
        return
    out.write(b"202 algos valid" + pem + b"." + CRLF2)
    block = read_count(256 + 4)[:256]
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                        algorithm=hashes.SHA256(), label=None)
    key = priv.decrypt(block, oaep)
    out.write(b"203 symetric key decryption done" + CRLF2)
    send_cipher(key, b"100 Hello supported_protocols usmtp supported_versions 1.0")
    read_cipher(key)
    for step in steps:
        if step == "@stall":
            time.sleep(60)
            return
        if step == "@close":
            return
        sys.stderr.write("fake-server: got %r\n" % read_cipher(key))
        for text in step.split("|"):
            send_cipher(key, unescape(text))


main()
