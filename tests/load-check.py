#!/usr/bin/python3
"""load-check.py -- check what a load test delivered (tests/load.bats).

usage: load-check.py MAILDIR_NEW ATTACHDIR CLIENTS SESSIONS

Every file in MAILDIR_NEW must be one message whose subject is
"load C S" (client C in 0..CLIENTS-1, session S in 0..SESSIONS-1), each
pair exactly once, with exactly one attachment whose decoded bytes have
the SHA-256 of ATTACHDIR/C (each client sends its own file).  Parsed
with Python's email package, not with our code.  Prints "ok N messages"
or the first reasons (at most 10) on stderr and exits 1.
"""
import email
import email.policy
import hashlib
import os
import sys


def main():
    new, attdir, clients, sessions = sys.argv[1], sys.argv[2], \
        int(sys.argv[3]), int(sys.argv[4])
    want = {}
    for c in range(clients):
        with open(os.path.join(attdir, str(c)), 'rb') as f:
            want[c] = hashlib.sha256(f.read()).hexdigest()
    seen = {}
    bad = []
    names = sorted(os.listdir(new))
    for name in names:
        with open(os.path.join(new, name), 'rb') as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        subj = str(msg['Subject'])
        parts = subj.split()
        if len(parts) != 3 or parts[0] != 'load':
            bad.append('%s: subject %r' % (name, subj))
            continue
        c, s = int(parts[1]), int(parts[2])
        if (c, s) in seen:
            bad.append('%s: %r delivered twice (also %s)'
                       % (name, subj, seen[(c, s)]))
        seen[(c, s)] = name
        atts = list(msg.iter_attachments())
        if len(atts) != 1:
            bad.append('%s: %d attachments' % (name, len(atts)))
            continue
        got = hashlib.sha256(atts[0].get_content()).hexdigest()
        if c not in want or got != want[c]:
            bad.append('%s: attachment of %r differs from what was sent'
                       % (name, subj))
    for c in range(clients):
        for s in range(sessions):
            if (c, s) not in seen:
                bad.append('load %d %d: never delivered' % (c, s))
    if bad:
        for b in bad[:10]:
            print(b, file=sys.stderr)
        print('%d problems in %d messages' % (len(bad), len(names)),
              file=sys.stderr)
        return 1
    print('ok %d messages' % len(names))
    return 0


if __name__ == '__main__':
    sys.exit(main())
