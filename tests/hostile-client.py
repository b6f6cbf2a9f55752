#!/usr/bin/python3
"""hostile-client.py MODE CMD [ARGS] -- a USMTP 1.0 client that misbehaves
on purpose, against a handler started as `sh -c CMD` over a socket pair
(or, with CMD "tcp:HOST:PORT", over TCP).  It does the handshake of
usmtp(7) properly, then, by MODE:

  noread BYTES     sends BYTES worth of NOOP frames and never reads a
                   reply; prints "exit STATUS after SECONDS" when the
                   handler has ended
  flood            sends NOOPs without pause from one thread and reads
                   every 300 in another, never logging in; prints "closed after SECONDS, N replies,
                   last: TEXT" when the server ends the session
  stall-attachment USER PASSWORD RCPT
                   logs in, starts a message whose one attachment
                   announces 16 MiB, sends 1 MiB of it and stops; prints
                   "stalled PID" (the handler's pid) and waits until the
                   handler exits, then "exit STATUS after SECONDS"

The handler's certificate is not checked: this is a test tool.
"""
import os
import socket
import sys
import threading
import time

from cryptography import x509

from usmtplib import CRLF2, OAEP, Reader, encrypt, frame, start_handler


class Peer:
    def __init__(self, cmd):
        self.proc = None
        if cmd.startswith("tcp:"):
            host, port = cmd[4:].rsplit(":", 1)
            self.sock = socket.create_connection((host.strip("[]"), int(port)))
        else:
            self.sock, self.proc = start_handler(["/bin/sh", "-c", cmd])
        self.reader = Reader(self.sock.recv)
        self.key = None

    def send(self, data):
        self.sock.sendall(data)

    def frame(self, text, term=CRLF2):
        return frame(self.key, text, term)

    def read_plain(self):
        return self.reader.plain()

    def read_cipher(self):
        return self.reader.cipher(self.key).decode("ascii", "replace")

    def handshake(self):
        self.send(b"hello ssl1.0?" + CRLF2)
        assert self.read_plain().startswith(b"201")
        self.send(b"support asymmetric-rsa2048 symmetric-aes-256-ecb?" + CRLF2)
        f = self.read_plain()
        pem = f[f.index(b"-----BEGIN"):].rstrip(b".")
        pub = x509.load_pem_x509_certificate(pem).public_key()
        self.key = os.urandom(32)
        self.send(pub.encrypt(self.key, OAEP) + CRLF2)
        assert self.read_plain().startswith(b"203")
        assert self.read_cipher().startswith("100 ")
        self.send(self.frame("1.0 Hello"))

    def wait_exit(self, start):
        if self.proc is None:
            while self.sock.recv(65536):
                pass
            status = "-"
        else:
            status = self.proc.wait()
        print("exit %s after %.1f" % (status, time.monotonic() - start),
              flush=True)


def main():
    mode, cmd = sys.argv[1], sys.argv[2]
    p = Peer(cmd)
    p.handshake()
    start = time.monotonic()
    if mode == "noread":
        noop = p.frame("NOOP")
        total = int(sys.argv[3])
        p.sock.setblocking(False)
        sent = 0
        chunk = noop * 1024
        deadline = start + 120
        while sent < total and time.monotonic() < deadline:
            try:
                sent += p.sock.send(chunk)
            except BlockingIOError:
                if p.proc is not None and p.proc.poll() is not None:
                    break
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                break
        p.sock.setblocking(True)
        p.wait_exit(start)
    elif mode == "flood":
        # One thread writes NOOPs without pause, the other reads every
        # reply: the handler always finds a frame waiting.
        noop = p.frame("NOOP") * 256
        stop = threading.Event()

        def writer():
            try:
                while not stop.is_set():
                    p.send(noop)
            except OSError:
                pass

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        n, last = 0, ""
        try:
            while time.monotonic() < start + 60:
                last = p.read_cipher()
                n += 1
                if not last.startswith("300"):
                    break
        except (EOFError, ConnectionResetError):
            pass
        stop.set()
        print("closed after %.1f, %d replies, last: %s" %
              (time.monotonic() - start, n, last), flush=True)
    elif mode == "stall-attachment":
        user, pw, rcpt = sys.argv[3:6]
        for line, want in (("LOGIN", "111"), (user, "112"), (pw, "210"),
                           ("SEND MAIL", "121"), ("mail from: " + user, "200"),
                           ("", "122"), ("mail to: " + rcpt, "200"),
                           ("", "123"), ("subject: stalled", "200"),
                           ("", "124")):
            if line:
                p.send(p.frame(line))
            got = p.read_cipher()
            assert got.startswith(want), (line, got)
        p.send(p.frame("data: body", b"." + CRLF2))
        for want in ("200", "125"):
            assert p.read_cipher().startswith(want)
        p.send(p.frame("1"))
        for want in ("200", "126"):
            assert p.read_cipher().startswith(want)
        n = 16 * 1024 * 1024
        p.send(p.frame("Content-Length: %d\r\nFilename: big.bin\r\nSize: %d"
                       % (n + 4, n)))
        assert p.read_cipher().startswith("200")
        p.send(encrypt(p.key, b"x" * (1024 * 1024)))
        print("stalled %d" % (p.proc.pid if p.proc else -1), flush=True)
        p.wait_exit(start)
    else:
        sys.exit("unknown mode " + mode)


main()
