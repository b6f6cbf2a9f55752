#!/usr/bin/python3
"""mkmsg.py CASE DIR -- builds a test message with Python's email package
(the MIME producer most mail tools resemble) and writes DIR/msg, the
message, and DIR/expect, what tests/unit/msgin-dump must print for it,
computed from what was put in: the subject, the addresses, SHA-256 of the
body text and of every attachment's bytes, their names and types.
Hostile cases write DIR/msg only.  "mkmsg.py list" names the cases;
"mkmsg.py seeds DIR" writes the small ones as seeds of
tests/fuzz/fuzz-msgin (a limits byte, then the message).
"""

import email.policy
import hashlib
import random
import sys
from email.header import Header
from email.message import EmailMessage

LF = email.policy.default
CRLF = email.policy.SMTP
MiB = 1024 * 1024


def data(n, seed):
    return random.Random(seed).randbytes(n)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def normal_text(s):
    """The text as Python's set_content stores it: lines joined by LF,
    and a final LF."""
    return "\n".join(s.splitlines()) + "\n"


class Expect:
    """What msgin-dump prints, built from what went into the message."""

    def __init__(self, subject="", frm="-"):
        self.subject, self.frm = subject, frm
        self.rcpt, self.atts, self.dropped = [], [], []
        self.body, self.charset, self.utf8 = b"", "us-ascii", 1
        self.alt = 0

    def att(self, name, type_, content):
        self.atts.append((name, type_, content))

    def text(self):
        out = ["subject: " + self.subject, "from: " + self.frm]
        out += ["rcpt: %s %s" % r for r in self.rcpt]
        out.append("body: charset=%s utf8=%d bytes=%d sha256=%s" % (
            self.charset, self.utf8, len(self.body), sha(self.body)))
        for name, type_, content in self.atts:
            out.append("att: %s type=%s size=%d read=%d links=0 sha256=%s"
                       % (name, type_, len(content), len(content),
                          sha(content)))
        out.append("dropped:" + "".join(" " + d for d in self.dropped))
        out.append("alternatives-dropped: %d" % self.alt)
        return "\n".join(out) + "\n"


def base(subject="Test", text="Hello\n", **kw):
    m = EmailMessage()
    m["From"] = "Alice Example <alice@example.org>"
    m["To"] = "bob@example.org"
    m["Subject"] = subject
    m["Date"] = "Wed, 25 Nov 2026 10:00:00 +0000"
    m["Message-ID"] = "<1@example.org>"
    if text is not None:
        m.set_content(text, **kw)
    e = Expect(subject, "alice@example.org")
    e.rcpt.append(("to", "bob@example.org"))
    e.dropped.append("Message-ID")
    if text is not None:
        e.body = normal_text(text).encode()
        e.charset = m.get_content_charset() if not m.is_multipart() \
            else e.charset
    return m, e


def case_plain():
    """A message without MIME, written by hand, LF line ends."""
    body = "Hello Bob,\n\nno MIME here.\n-- \nAlice\n"
    msg = ("From: alice@example.org\nTo: Bob <bob@example.org>\n"
           "Subject: plain\nX-Mailer: hand\n\n" + body).encode()
    e = Expect("plain", "alice@example.org")
    e.rcpt.append(("to", "bob@example.org"))
    e.body = body.encode()
    e.dropped.append("X-Mailer")
    return msg, e


def case_plain_crlf():
    msg, e = case_plain()
    return msg.replace(b"\n", b"\r\n"), e


def case_simple():
    m, e = base(text="Hello Bob,\nhow are you?\n")
    e.charset = "utf-8"
    return m.as_bytes(policy=LF), e


def case_qp_body():
    text = ("Gr\u00fc\u00dfe aus K\u00f6ln, = sign, trailing spaces   \n"
            + "a long line " * 20 + "\n\ttab line\n")
    m, e = base("qp body", text, cte="quoted-printable")
    e.charset = "utf-8"
    return m.as_bytes(policy=LF), e


def case_b64_body():
    text = "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\n" * 30
    m, e = base("b64 body", text, cte="base64")
    e.charset = "utf-8"
    return m.as_bytes(policy=LF), e


def case_latin1_body():
    text = "Gr\u00fc\u00dfe, \u00e0 bient\u00f4t\n"
    m, e = base("latin1", text, charset="iso-8859-1",
                cte="quoted-printable")
    e.charset = "iso-8859-1"
    return m.as_bytes(policy=LF), e


def case_koi8_body():
    text = "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440\n"
    m, e = base("koi8", text, charset="koi8-r", cte="base64")
    e.charset = "koi8-r"
    return m.as_bytes(policy=LF), e


def sized(policy):
    m, e = base("sizes", "See the attachments.\n")
    e.charset = "utf-8"
    for i, n in enumerate((0, 1, 57, 76, MiB + 1)):
        b = data(n, i)
        name = "file-%d.bin" % n
        m.add_attachment(b, maintype="application",
                         subtype="octet-stream", filename=name)
        e.att(name, "application/octet-stream", b)
    return m.as_bytes(policy=policy), e


def case_sizes():
    return sized(LF)


def case_sizes_crlf():
    return sized(CRLF)


def case_names():
    """Non-ASCII subject and names: RFC 2047 subject, RFC 2231 names
    (with continuations), RFC 2047 in quotes, Content-Type name=."""
    subj = "Gr\u00fc\u00dfe \u2013 \u65e5\u672c\u8a9e \u20ac and more"
    m, e = base(subj, "names\n")
    e.charset = "utf-8"
    b1 = data(100, 1)
    n1 = "r\u00e9sum\u00e9.pdf"
    m.add_attachment(b1, maintype="application", subtype="pdf",
                     filename=n1)
    e.att(n1, "application/pdf", b1)
    b2 = data(200, 2)
    n2 = ("\u00fcber lange Namen mit Leerzeichen und Umlauten \u00e4\u00f6"
          "\u00fc, die fortgesetzt werden.png")
    m.add_attachment(b2, maintype="image", subtype="png", filename=n2)
    e.att(n2, "image/png", b2)
    # As Thunderbird and Outlook write it: RFC 2047 inside the quotes.
    b3 = data(300, 3)
    n3 = "\u0444\u0430\u0439\u043b.txt"
    enc = Header(n3, "utf-8").encode()
    m.add_attachment(b3, maintype="application", subtype="octet-stream")
    part = m.get_payload()[-1]
    del part["Content-Disposition"]
    part["Content-Disposition"] = 'attachment; filename="%s"' % enc
    e.att(n3, "application/octet-stream", b3)
    # Only Content-Type's name=, in ISO-8859-1 by RFC 2231.
    b4 = data(10, 4)
    m.add_attachment(b4, maintype="application", subtype="zip")
    part = m.get_payload()[-1]
    del part["Content-Disposition"]
    del part["Content-Type"]
    part["Content-Type"] = "application/zip; name*=iso-8859-1''%E9t%E9.zip"
    part["Content-Disposition"] = "attachment"
    e.att("\u00e9t\u00e9.zip", "application/zip", b4)
    return m.as_bytes(policy=LF), e


def case_paths():
    """Names with directories keep their last component only."""
    m, e = base("paths", "paths\n")
    e.charset = "utf-8"
    for i, (given, kept) in enumerate((
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\x\\evil.exe", "evil.exe"),
            ("..", "attachment-3.bin"),
            ("a\tb.txt", "a_b.txt"))):
        b = data(5 + i, 10 + i)
        m.add_attachment(b, maintype="application",
                         subtype="octet-stream")
        part = m.get_payload()[-1]
        del part["Content-Disposition"]
        part["Content-Disposition"] = 'attachment; filename="%s"' % \
            given.replace("\\", "\\\\")
        e.att(kept, "application/octet-stream", b)
    return m.as_bytes(policy=LF), e


def case_noname():
    """Attachments without a file name get one from their type."""
    m, e = base("noname", "noname\n")
    e.charset = "utf-8"
    b1, b2 = data(64, 5), data(32, 6)
    m.add_attachment(b1, maintype="application", subtype="octet-stream")
    m.add_attachment(b2, maintype="image", subtype="jpeg")
    m.add_attachment("a text part\n", subtype="csv")
    e.att("attachment-1.bin", "application/octet-stream", b1)
    e.att("attachment-2.jpg", "image/jpeg", b2)
    e.att("attachment-3.csv", "text/csv", b"a text part\n")
    return m.as_bytes(policy=LF), e


def case_alternative():
    """mixed { alternative { plain, html }, attachment }"""
    m, e = base("alt", "the plain text\n")
    e.charset = "utf-8"
    m.add_alternative("<p>the <b>html</b></p>\n", subtype="html")
    b = data(1000, 7)
    m.add_attachment(b, maintype="application", subtype="pdf",
                     filename="doc.pdf")
    e.att("doc.pdf", "application/pdf", b)
    e.alt = 1
    return m.as_bytes(policy=LF), e


def case_nested():
    """mixed { alternative { plain, related { html, image } }, text
    attachment (QP), message/rfc822 }, CRLF line ends"""
    m, e = base("nested", "plain version\n")
    e.charset = "utf-8"
    m.add_alternative("<p>html <img src=\"cid:img1\"></p>\n",
                      subtype="html")
    html = m.get_payload()[1]
    html.add_related(data(500, 8), maintype="image", subtype="png",
                     cid="<img1>")
    note = "notes line 1\nnotes \u00e4 line 2 with = sign\n"
    m.add_attachment(note, subtype="plain", filename="notes.txt",
                     cte="quoted-printable")
    e.att("notes.txt", "text/plain", note.encode())
    inner = EmailMessage()
    inner["Subject"] = "inner"
    inner.set_content("inner body\n")
    m.add_attachment(inner)
    # a message/rfc822 part is kept whole, its line ends local (LF)
    e.att("attachment-2.eml", "message/rfc822",
          inner.as_bytes(policy=LF).rstrip(b"\n") + b"\n")
    e.alt = 1
    return m.as_bytes(policy=CRLF), e


def case_html_only():
    m, e = base("html only", None)
    html = "<html><body><p>only html</p></body></html>\n"
    m.set_content(html, subtype="html")
    e.att("message.html", "text/html", html.encode())
    return m.as_bytes(policy=LF), e


def case_html_alt_only():
    """alternative { html, enriched }: no text/plain at all"""
    m, e = base("html alt", None)
    html = "<p>html</p>\n"
    m.set_content(html, subtype="html")
    m.add_alternative("<bold>rich</bold>\n", subtype="enriched")
    e.att("message.html", "text/html", html.encode())
    e.att("attachment-2.txt", "text/enriched", b"<bold>rich</bold>\n")
    return m.as_bytes(policy=LF), e


def case_addresses():
    """Display names, groups, comments, quoted local parts; Cc and Bcc."""
    m = EmailMessage()
    m["From"] = '"Example, Alice" <alice@example.org> (work)'
    m["To"] = ('Bob <bob@example.org>, "Smith, Carol" <carol@example.org>,'
               ' dave@example.org (Dave), team: erin@example.org,'
               ' Frank <frank@example.org>;, undisclosed-recipients:;')
    m["Cc"] = '"grace.hopper"@example.org, <@route.example:heidi@example.org>'
    m["Bcc"] = "ivan@example.org, BOB@example.org"
    m["Subject"] = "addresses"
    m["In-Reply-To"] = "<0@example.org>"
    m["References"] = "<0@example.org>"
    m.set_content("addresses\n")
    e = Expect("addresses", "alice@example.org")
    e.rcpt += [("to", a) for a in ("bob@example.org", "carol@example.org",
                                   "dave@example.org", "erin@example.org",
                                   "frank@example.org")]
    e.rcpt += [("cc", "grace.hopper@example.org"),
               ("cc", "heidi@example.org"), ("bcc", "ivan@example.org")]
    e.dropped += ["Cc", "In-Reply-To", "References"]
    e.body, e.charset = b"addresses\n", "utf-8"
    return m.as_bytes(policy=LF), e


def case_subjects():
    """An ISO-8859-1 Q word, text, a KOI8-R B word after a fold, and a
    UTF-8 character cut in two words: blanks between two words go
    (RFC 2047 6.2), blanks next to text stay."""
    s1 = "caf\u00e9 cr\u00e8me"
    s2 = "\u043f\u0440\u0438\u0432\u0435\u0442"
    w1 = Header(s1, "iso-8859-1").encode()
    w2 = Header(s2, "koi8-r").encode()
    euro = "\u20ac".encode()
    import base64
    cut = "=?utf-8?b?%s?= =?utf-8?b?%s?=" % (
        base64.b64encode(b"x" + euro[:1]).decode(),
        base64.b64encode(euro[1:]).decode())
    msg = ("From: alice@example.org\nTo: bob@example.org\n"
           "Subject: %s and\n %s %s\n\nbody\n" % (w1, w2, cut)).encode()
    e = Expect("%s and %sx\u20ac" % (s1, s2), "alice@example.org")
    e.rcpt.append(("to", "bob@example.org"))
    e.body = b"body\n"
    return msg, e


def case_no_end_boundary():
    """The close delimiter and the epilogue cut off."""
    msg, e = case_alternative()
    cut = msg.rstrip(b"\n")
    cut = cut[:cut.rfind(b"\n")] + b"\n"
    assert not cut.rstrip().endswith(b"--")
    return cut, e


# ---- hostile input: DIR/msg only ----

def hostile_long_boundary():
    m, e = base("long boundary", "x\n")
    m.add_attachment(b"abc", maintype="application", subtype="octet-stream")
    m.set_boundary("b" * 200)
    return m.as_bytes(policy=LF), None


def hostile_many_headers():
    head = "".join("X-H%d: %d\n" % (i, i) for i in range(10000))
    return ("From: a@example.org\n" + head + "\nbody\n").encode(), None


def hostile_long_header():
    return (b"From: a@example.org\nSubject: " + b"x" * MiB +
            b"\n\nbody\n"), None


def case_long_body_line():
    """A body line of 1 MiB (no header limit applies to it)."""
    line = "y" * MiB
    msg = ("From: a@example.org\nSubject: long line\n\n" + line +
           "\n").encode()
    e = Expect("long line", "a@example.org")
    e.body = (line + "\n").encode()
    return msg, e


def hostile_six():
    m, e = base("six", "six\n")
    for i in range(6):
        m.add_attachment(data(10, i), maintype="application",
                         subtype="octet-stream", filename="f%d" % i)
    return m.as_bytes(policy=LF), None


def hostile_big_attachment():
    m, e = base("big", "big\n")
    m.add_attachment(data(1001, 1), maintype="application",
                     subtype="octet-stream", filename="big.bin")
    return m.as_bytes(policy=LF), None


def hostile_deep():
    inner = EmailMessage()
    inner.set_content("deep\n")
    for i in range(20):
        outer = EmailMessage()
        outer.make_mixed()
        outer.attach(inner)
        inner = outer
    inner["Subject"] = "deep"
    return inner.as_bytes(policy=LF), None


def case_huge():
    """64 MiB in one attachment: the memory test.  Python's email package
    takes half a minute to encode that much, so the attachment's part is
    written here, base64 in 76-column lines as the package writes it."""
    import base64
    m, e = base("huge", "huge\n")
    e.charset = "utf-8"
    m.add_attachment(b"", maintype="application", subtype="octet-stream",
                     filename="huge.bin")
    m.set_boundary("huge-boundary")
    b = data(64 * MiB, 9)
    e.att("huge.bin", "application/octet-stream", b)
    msg = m.as_bytes(policy=LF)
    head, tail = msg.split(b"\n\n\n--huge-boundary--")
    return head + b"\n\n" + base64.encodebytes(b) + \
        b"\n--huge-boundary--" + tail, e


CASES = {n[5:]: f for n, f in globals().items()
         if n.startswith(("case_",))}
CASES.update({n[8:]: f for n, f in globals().items()
              if n.startswith("hostile_")})


SEEDS = ("plain", "plain_crlf", "simple", "qp_body", "b64_body",
         "latin1_body", "koi8_body", "names", "paths", "noname",
         "alternative", "nested", "html_only", "html_alt_only", "addresses",
         "subjects", "no_end_boundary", "deep")


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "list":
        print("\n".join(sorted(CASES)))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "seeds":
        for name in SEEDS:
            msg, _ = CASES[name]()
            # limits: 1 MiB sizes (3), 3 attachments (3 << 2)
            with open("%s/%s" % (sys.argv[2], name), "wb") as f:
                f.write(b"\x0f" + msg)
        return 0
    if len(sys.argv) != 3 or sys.argv[1] not in CASES:
        sys.stderr.write("usage: mkmsg.py CASE DIR | list\n")
        return 64
    msg, expect = CASES[sys.argv[1]]()
    with open(sys.argv[2] + "/msg", "wb") as f:
        f.write(msg)
    if expect is not None:
        with open(sys.argv[2] + "/expect", "w", encoding="utf-8") as f:
            f.write(expect.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
