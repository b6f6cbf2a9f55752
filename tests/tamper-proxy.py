#!/usr/bin/python3
"""tamper-proxy.py [OPTIONS] -- CMD... -- a man in the middle for tests of
secure mode (usmtp(7), SECURE MODE).  Run it as the client's --exec
command: its standard input and output are the client's connection; it
starts CMD (a handler) over a socket pair and relays the bytes both ways,
changing them as told.  Each direction is two plaintext frames (hello and
support from the client, 201 and 202 from the server), then records: a
2-byte length and a Noise message.  Record 0 of a direction is its
handshake message; records 1, 2, ... are transport messages.

  --record FILE      also write every byte the client sent to FILE
  --flip DIR N OFF   flip the low bit of byte OFF (of the Noise message,
                     after the length; cut to its last byte) of record N
                     of direction DIR (c: client to server, s: server to
                     client)
  --drop DIR N       do not pass record N of DIR on
  --swap DIR N       pass record N+1 of DIR before record N
  --upcase-algos     send the client's support line in capitals: the
                     server accepts it, but the prologues then differ
"""
import sys

from usmtplib import relay, start_handler


class Stream:
    """One direction: parses frames and records, applies the changes."""

    def __init__(self, name, opts, record=None):
        self.name, self.opts, self.record = name, opts, record
        self.buf = b""
        self.plain_left = 2
        self.n = 0          # index of the next record
        self.held = None    # a record kept back by --swap

    def feed(self, data):
        if self.record:
            self.record.write(data)
            self.record.flush()
        self.buf += data
        out = b""
        while True:
            if self.plain_left:
                term = b".\r\n\r\n" if (self.name == "s" and
                                         self.plain_left == 1) else b"\r\n\r\n"
                i = self.buf.find(term)
                if i < 0:
                    return out
                frame, self.buf = self.buf[:i + len(term)], self.buf[i + len(term):]
                if self.name == "c" and self.plain_left == 1 and \
                        self.opts.get("upcase"):
                    frame = frame.upper()
                self.plain_left -= 1
                out += frame
                continue
            if len(self.buf) < 2:
                return out
            rl = int.from_bytes(self.buf[:2], "big")
            if len(self.buf) < 2 + rl:
                return out
            rec, self.buf = self.buf[:2 + rl], self.buf[2 + rl:]
            out += self.change(rec)
            self.n += 1

    def change(self, rec):
        n, o = self.n, self.opts
        if o.get("flip") and o["flip"][0] == self.name and o["flip"][1] == n:
            off = min(o["flip"][2], len(rec) - 3) + 2
            rec = rec[:off] + bytes([rec[off] ^ 1]) + rec[off + 1:]
        if o.get("drop") == (self.name, n):
            return b""
        if o.get("swap") == (self.name, n):
            self.held = rec
            return b""
        if self.held is not None and o.get("swap") == (self.name, n - 1):
            rec, self.held = rec + self.held, None
        return rec


def main():
    args = sys.argv[1:]
    opts, record = {}, None
    while args and args[0] != "--":
        a = args.pop(0)
        if a == "--record":
            record = open(args.pop(0), "wb")
        elif a == "--flip":
            opts["flip"] = (args.pop(0), int(args.pop(0)), int(args.pop(0)))
        elif a == "--drop":
            opts["drop"] = (args.pop(0), int(args.pop(0)))
        elif a == "--swap":
            opts["swap"] = (args.pop(0), int(args.pop(0)))
        elif a == "--upcase-algos":
            opts["upcase"] = True
        else:
            sys.exit("tamper-proxy: unknown option " + a)
    cmd = args[1:]
    ours, proc = start_handler(cmd)
    c2s, s2c = Stream("c", opts, record), Stream("s", opts)
    relay(ours, c2s.feed, s2c.feed)
    ours.close()
    sys.exit(proc.wait())


main()
