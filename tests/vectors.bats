#!/usr/bin/env bats
# The reference client's recorded sessions (tests/vectors; where they
# come from: tests/vectors/README.md) piped through the real handler in
# one go, checked with the vectors' own check-replies.py and a real MIME
# parser.

load helpers

setup() {
	usmtp_setup
	vector_setup
}

# pipe_session N [STATUS]: session-N's client bytes piped into the
# handler in one go, as run does, its exit status STATUS (default 0); the
# replies go to $T/out.bin, its log to $HLOG.
pipe_session() {
	run -"${2:-0}" sh -c "$VHANDLER < $VECTORS/session-$1/client.bin > $T/out.bin 2>>$HLOG"
}

@test "session-1 of the reference client gets the 40 replies usmtp(7) owes it" {
	pipe_session 1
	vector_replies 1 40
	grep -q 'handshake result=ok dialect=reference' "$HLOG"
	grep -q 'end reason=bye' "$HLOG"
}

@test "session-1 delivers both messages intact, and nothing else" {
	pipe_session 1
	md=$MAIL/wp.pl/testprotokolu2/Maildir
	run -0 delivered "$md"
	[ "${#lines[@]}" -eq 2 ]
	for f in "${lines[@]}"; do $PY "$TOP/tests/mime-check.py" "$f"; done > "$T/mime.txt"
	diff -u "$TOP/tests/golden/vector-1.mime" "$T/mime.txt"
	[ -z "$(ls -A "$md/tmp")" ]
	# nobody else got anything
	[ "$(find "$MAIL" -type f | wc -l)" -eq 2 ]
}

@test "session-1 attachments decode to note-a.txt and note-b.txt byte for byte" {
	pipe_session 1
	f=$(delivered "$MAIL/wp.pl/testprotokolu2/Maildir" | head -n 1)
	mkdir "$T/att"
	$PY "$TOP/tests/mime-check.py" "$f" --save "$T/att" >/dev/null
	cmp "$T/att/1" "$VECTORS/session-1/note-a.txt"
	cmp "$T/att/2" "$VECTORS/session-1/note-b.txt"
}

@test "session-2: unpadded 16-byte address and password log in, nothing is delivered" {
	pipe_session 2
	vector_replies 2 7
	grep -q 'login user=aligned16@abc.pl result=ok' "$HLOG"
	nothing_delivered
}

@test "the handler log never holds a password" {
	pipe_session 1
	pipe_session 2
	run -1 grep -E 'example123|sixteen-chars-pw' "$HLOG"
}

@test "a handler whose key file others can read refuses to use it" {
	chmod 644 "$VK/server.key"
	pipe_session 2 78
	grep -q 'key=.*group or others may read it' "$HLOG"
}
