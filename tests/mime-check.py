#!/usr/bin/python3
"""mime-check.py -- parse a delivered message with Python's email package
(a real MIME parser, not our code), check its form, and print a summary.

usage: mime-check.py FILE [--save DIR] [--header NAME]... [--mta]

Checks (exit 1 with a reason on stderr when one fails):
  - LF line ends only (no CR at all), no NUL, no line over 998 bytes
    (RFC 5322 2.1.1), the header section pure printable ASCII plus
    folding (RFC 5322 2.2; 8-bit text must be RFC 2047/2231 encoded);
  - exactly the top-level headers mailer.c writes, each once: no extra
    header can have been injected;
  - the parser reports no defects, in any part;
  - Date parses with a numeric zone; Message-ID is <x@y>.
Prints, one item a line, values as Python repr():
  from, to, subject, body (the text part, decoded), body-cte, then for
  each attachment: type, filename, size and sha256 of the decoded bytes.
--save DIR writes attachment N's bytes to DIR/N (1-based).
--header NAME prints header NAME (decoded) too.
--mta allows what an MTA adds on delivery: Return-Path, X-Original-To,
Delivered-To and more Received lines, above ours.
"""
import email
import email.policy
import email.utils
import hashlib
import os
import re
import sys

TOP = ["received", "date", "from", "to", "subject", "message-id",
       "mime-version", "content-type"]
TOP_SINGLE = TOP + ["content-transfer-encoding"]


def die(why):
    print("mime-check: " + why, file=sys.stderr)
    sys.exit(1)


def check_raw(raw):
    if b"\r" in raw:
        die("CR in the message (line ends must be LF)")
    if b"\0" in raw:
        die("NUL in the message")
    for i, line in enumerate(raw.split(b"\n")):
        if len(line) > 998:
            die("line %d is %d bytes long" % (i + 1, len(line)))
    head = raw.split(b"\n\n", 1)[0]
    for line in head.split(b"\n"):
        if re.search(rb"[^\t\x20-\x7e]", line):
            die("header line not printable ASCII: %r" % line)
        if not (line[:1] in (b" ", b"\t") or re.match(rb"[!-9;-~]+:", line)):
            die("not a header line: %r" % line)


def check_defects(part, where):
    if part.defects:
        die("%s: parser defects %r" % (where, part.defects))


def main():
    args = sys.argv[1:]
    if not args:
        die("usage: mime-check.py FILE [--save DIR] [--header NAME]...")
    path = args.pop(0)
    save = None
    extra = []
    mta = False
    while args:
        opt = args.pop(0)
        if opt == "--save" and args:
            save = args.pop(0)
        elif opt == "--mta":
            mta = True
        elif opt == "--header" and args:
            extra.append(args.pop(0))
        else:
            die("unknown option " + opt)
    with open(path, "rb") as f:
        raw = f.read()
    check_raw(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    check_defects(msg, "message")
    names = [k.lower() for k in msg.keys()]
    want = TOP if msg.is_multipart() else TOP_SINGLE
    if mta:
        # Drop the MTA's lines above ours; our own Received stays.
        while names and (names[0] in ("return-path", "x-original-to",
                                      "delivered-to") or
                         (names[0] == "received" and
                          names.count("received") > 1)):
            names.pop(0)
    if sorted(names) != sorted(want):
        die("headers %r, want %r" % (names, want))
    d = email.utils.parsedate_to_datetime(str(msg["Date"]))
    if d.tzinfo is None:
        die("Date without a zone: %r" % str(msg["Date"]))
    if not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(msg["Message-ID"])):
        die("bad Message-ID %r" % str(msg["Message-ID"]))
    if str(msg["MIME-Version"]) != "1.0":
        die("bad MIME-Version")
    print("from: %r" % str(msg["From"]))
    print("to: %r" % str(msg["To"]))
    print("subject: %r" % str(msg["Subject"]))
    for h in extra:
        print("%s: %r" % (h.lower(), str(msg[h])))

    if msg.is_multipart():
        if msg.get_content_type() != "multipart/mixed":
            die("top type " + msg.get_content_type())
        parts = list(msg.iter_parts())
        if not parts:
            die("no parts")
        text, atts = parts[0], parts[1:]
    else:
        text, atts = msg, []
    check_defects(text, "text part")
    if text.get_content_type() != "text/plain" or \
            text.get_content_charset() != "utf-8":
        die("text part is %r" % text["Content-Type"])
    if text.is_attachment():
        die("text part is an attachment")
    print("body: %r" % text.get_content())
    print("body-cte: %s" % text["Content-Transfer-Encoding"])
    print("attachments: %d" % len(atts))
    for i, part in enumerate(atts, 1):
        check_defects(part, "part %d" % i)
        if part.is_multipart():
            die("part %d is multipart" % i)
        if part["Content-Transfer-Encoding"] != "base64":
            die("part %d is not base64" % i)
        if part.get_content_disposition() != "attachment":
            die("part %d is not an attachment" % i)
        lines = part.get_payload().rstrip("\n").split("\n")
        for n, line in enumerate(lines, 1):
            # ours: 76 columns exactly, but for the last line
            if len(line) > 76 or (n < len(lines) and len(line) != 76):
                die("part %d: base64 line %d of %d" % (i, n, len(line)))
        data = part.get_payload(decode=True)
        print("attachment %d: type=%s filename=%r size=%d sha256=%s" % (
            i, part.get_content_type(), part.get_filename(), len(data),
            hashlib.sha256(data).hexdigest()))
        if save is not None:
            with open(os.path.join(save, str(i)), "wb") as f:
                f.write(data)


main()
