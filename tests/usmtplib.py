"""usmtplib.py -- what the test tools written in Python share: USMTP
1.0's frames (usmtp(7), Framing: a plaintext frame ends in "\\r\\n\\r\\n";
an encrypted one is AES-256-ECB over the text padded with spaces to a
multiple of 16 bytes, then that terminator), a reader of frames from a
socket or a file descriptor, a handler started over a socket pair, and
the relay between standard input and output and such a handler.  The
tools beside it import it; it is no tool itself.
"""
import os
import select
import socket
import subprocess

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CRLF2 = b"\r\n\r\n"
# RSA-OAEP with SHA-256, as the 1.0 handshake wraps the session key.
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                    algorithm=hashes.SHA256(), label=None)


def write_all(fd, data):
    """Writes all of data to file descriptor fd."""
    while data:
        data = data[os.write(fd, data):]


def encrypt(key, data):
    """data (a multiple of 16 bytes) encrypted with AES-256-ECB."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def decrypt(key, data):
    """data (a multiple of 16 bytes) decrypted with AES-256-ECB."""
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def frame(key, text, term=CRLF2):
    """text (str or bytes) as an encrypted frame ending in term."""
    if isinstance(text, str):
        text = text.encode()
    return encrypt(key, text + b" " * (16 - len(text) % 16)) + term


class Reader:
    """Frames from recv, a function like socket.recv that returns b""
    at the end of input; EOFError when input ends before a frame does."""

    def __init__(self, recv):
        self.recv = recv
        self.buf = b""   # read, not yet taken

    def more(self):
        d = self.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def plain(self):
        """The next plaintext frame, less its terminator."""
        while CRLF2 not in self.buf:
            self.more()
        i = self.buf.index(CRLF2)
        f, self.buf = self.buf[:i], self.buf[i + 4:]
        return f

    def count(self, n):
        """The next n bytes."""
        while len(self.buf) < n:
            self.more()
        f, self.buf = self.buf[:n], self.buf[n:]
        return f

    def cipher(self, key, terms=(CRLF2,)):
        """The next encrypted frame, ending in one of terms, decrypted,
        its padding stripped (bytes)."""
        while True:
            k = 16
            while k + 4 <= len(self.buf):
                for term in terms:
                    if self.buf[k:k + len(term)] == term:
                        text = decrypt(key, self.buf[:k])
                        self.buf = self.buf[k + len(term):]
                        return text.rstrip(b" ")
                k += 16
            self.more()


def fd_reader(fd):
    """A Reader of file descriptor fd (0: standard input)."""
    return Reader(lambda n: os.read(fd, n))


def start_handler(cmd):
    """Starts cmd (an argument list) with the far end of a socket pair as
    its standard input and output; returns our end and the process."""
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(cmd, stdin=theirs, stdout=theirs)
    theirs.close()
    return ours, proc


def relay(sock, to_server=lambda d: d, to_client=lambda d: d):
    """Copies standard input to sock and sock to standard output, each
    piece passed through to_server or to_client on its way, until the
    handler closes sock (or nothing comes for 120 s).  At the end of
    standard input sock is shut for writing; once standard output is
    gone, what the handler sends is read and dropped."""
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
                sock.sendall(to_server(d))
        if sock in r:
            try:
                d = sock.recv(65536)
            except ConnectionResetError:
                d = b""
            if not d:
                return
            try:
                write_all(1, to_client(d))
            except BrokenPipeError:
                pass
