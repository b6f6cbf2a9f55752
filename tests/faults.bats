#!/usr/bin/env bats
# Fault injection through the real handler: a session cut off at every
# byte, a sendmail that crashes or hangs, a broken user database, and
# bad bytes (garbage ciphertext, broken blocks, NULs, numbers that wrap)
# that the transcript suites do not already send.  The handler must never
# crash (exit 0 or 1, no signal), never deliver half a message, and never
# leave a file in a Maildir's tmp/.

load helpers

setup() {
	usmtp_setup
	add_test_users
	BOB=$MAIL/example.org/bob/Maildir
	printf '%s\n' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f > "$T/key.hex"
}

# encode SCRIPT OUT: the client bytes of SCRIPT (run in tests/transcripts)
# with the session key $T/key.hex.
encode() {
	(cd "$TRANSCRIPTS" && usmtp-script --encode "$2" \
		--cert "$KEYS/server.pem" --session-key "$T/key.hex" "$1")
}

# session2: a message with a two-line body and two attachments, then BYE.
session2() {
	mail_then "send subject: Two attachments" \
		'body data: Line one.\r\nLine two.' "send 2" \
		"attach files/hello.txt" "attach files/binary.bin" \
		"send BYE" > "$T/s2.in"
	encode "$T/s2.in" "$T/in.bin"
}

# delivered_without SCRIPT HEADER: SCRIPT's session gets 220 for its
# message, and the one message bob got passes mime-check.py (every header
# one it expects) and has no line starting HEADER.
delivered_without() {
	local f
	run -0 client_script "$1"
	[ "${lines[-2]}" = "220 Email was sent" ]
	f=$(the_message "$BOB")
	run -0 $PY "$TOP/tests/mime-check.py" "$f"
	run -1 grep -a "^$2" "$f"
}

# mail_min LINE...: a message with a one-letter subject and body, then
# LINE... (the attachment count onwards).
mail_min() {
	mail_then "send subject: s" "body data: b" "$@"
}


@test "a session cut off at any byte never crashes, delivers or leaves a tmp file" {
	# Every cut replays one recording: without this, the replay cache
	# would refuse all cuts past the key frame at the key.
	HANDLER="$HANDLER --replay-db none"
	session2
	len=$(stat -c %s "$T/in.bin")
	# the whole session delivers once: the control
	run -0 sh -c "$HANDLER < $T/in.bin > /dev/null 2>>$HLOG"
	[ "$(ls "$BOB/new" | wc -l)" -eq 1 ]
	rm -rf "$MAIL"
	# the message is complete once the BYE frame (16 + 4 bytes) is all
	# that is left: every cut before that must deliver nothing.  Every
	# offset; under valgrind every 29th, and around every terminator.
	last=$((len - 20 - 1))
	step=1
	[ "${USMTP_SANITIZER:-}" != valgrind ] || step=29
	cuts=$($PY - "$T/in.bin" "$last" "$step" <<-'EOP'
	import sys
	data = open(sys.argv[1], "rb").read()
	last, step = int(sys.argv[2]), int(sys.argv[3])
	cuts = set(range(0, last + 1, step))
	i = data.find(b"\r\n\r\n")
	while i != -1:
	    cuts.update(c for c in (i, i + 3, i + 4, i + 5) if c <= last)
	    i = data.find(b"\r\n\r\n", i + 1)
	print(" ".join(map(str, sorted(cuts))))
	EOP
	)
	n=0
	for c in $cuts; do
		rc=0
		head -c "$c" "$T/in.bin" | $HANDLER > /dev/null 2>>"$HLOG" || rc=$?
		if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
			echo "cut at $c of $len: exit $rc" >&2
			return 1
		fi
		n=$((n + 1))
	done
	echo "# $n cuts of $len bytes" >&3
	nothing_delivered "$MAIL"
	! grep -q 'result=ok.*where=' "$HLOG"
	grep -q 'end reason=truncated state=S_ATT_DATA' "$HLOG"
	grep -q 'end reason=truncated code=500 state=S_BODY' "$HLOG"
}

@test "a sendmail that dies of SIGSEGV gets 451, and the session goes on" {
	printf '#!/bin/sh\ncat >/dev/null\nkill -SEGV $$\n' > "$T/segv"
	chmod +x "$T/segv"
	run -0 client_script send-two --sendmail "$T/segv"
	[ "$(grep -c '^451 ' <<<"$output")" -eq 2 ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
	grep -q 'result=fail reason="sendmail .*signal' "$HLOG"
}

@test "a sendmail that hangs is given up after --sendmail-timeout with 451" {
	printf '#!/bin/sh\nexec sleep 60\n' > "$T/hang"
	chmod +x "$T/hang"
	start=$(date +%s)
	run -0 client_script send-plain --sendmail "$T/hang" --sendmail-timeout 2
	end=$(date +%s)
	[ "${lines[-2]}" = "451 Message not delivered, nothing was sent" ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
	[ $((end - start)) -lt 20 ]
	grep -q 'result=fail reason=' "$HLOG"
}

@test "a user database of random bytes gets 500 and a clear log line" {
	head -c 8192 /dev/urandom > "$DB"
	run -0 client_script login-good
	[ "${lines[4]}" = "500 Connection error" ]
	[ "${lines[5]}" = "[handler exit 78]" ]
	grep -q "error users=$DB op=open reason=\"$DB: " "$HLOG"
	grep -q 'end reason=config code=500' "$HLOG"
}

@test "an empty or cut-short user database gets 500, not a crash" {
	head -c 1000 "$DB" > "$T/cut.db"
	mv "$T/cut.db" "$DB"
	run -0 client_script login-good
	[ "${lines[4]}" = "500 Connection error" ]
	[[ "${lines[5]}" == "[handler exit 78]" ]]
	: > "$DB"
	run -0 client_script login-good
	[ "${lines[4]}" = "500 Connection error" ]
	grep -q "error users=$DB op=open reason=\"$DB: " "$HLOG"
}

@test "garbage ciphertext is an unknown command and the session goes on" {
	login_then "rawhex 00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f00d0a0d0a" \
		"send LOGIN" "send BYE" > "$T/g.in"
	run -0 client_script "$T/g.in"
	[ "${lines[7]}" = "300 Not recognized command" ]
	[ "${lines[8]}" = "130 You are currently logged in" ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
}

@test "a garbage login address (random ciphertext) gets 301" {
	printf '%s\n' handshake "send 1.0 Hello" "send LOGIN" \
		"rawhex 00112233445566778899aabbccddeeff0d0a0d0a" "send BYE" > "$T/g.in"
	run -0 client_script "$T/g.in"
	[ "${lines[5]}" = "301 Wrong e-mail syntax" ]
}

@test "ciphertext that is not whole blocks never ends a frame: 500 at end of input" {
	printf '%s\n' handshake "send 1.0 Hello" \
		"rawhex 0011223344556677889900112233445566770d0a0d0a" eof > "$T/b.in"
	run -0 client_script "$T/b.in"
	[ "${lines[4]}" = "500 Connection error" ]
	[ "${lines[5]}" = "[handler exit 1]" ]
	grep -q 'end reason=truncated code=500 state=S_COMMAND' "$HLOG"
}

@test "a CRLFCRLF at the start of a cipher frame does not end it (usmtp(7), Framing)" {
	printf '%s\n' handshake "send 1.0 Hello" "rawhex 0d0a0d0a" "send BYE" > "$T/e.in"
	run -0 client_script "$T/e.in"
	# 4 + 16 bytes then CRLFCRLF: no terminator at a multiple of 16
	[ "${lines[4]}" = "500 Connection error" ]
	[ "${lines[5]}" = "[handler exit 1]" ]
}

@test "a NUL in a command, address, version or count is refused" {
	login_then 'send LOGIN\x00' 'send SEND\x00MAIL' "send BYE" > "$T/n1.in"
	run -0 client_script "$T/n1.in"
	[ "${lines[7]}" = "300 Not recognized command" ]
	[ "${lines[8]}" = "300 Not recognized command" ]
	printf '%s\n' handshake "send 1.0 Hello" "send LOGIN" \
		'send alice@example.org\x00bob@example.org' "send BYE" > "$T/n2.in"
	run -0 client_script "$T/n2.in"
	[ "${lines[5]}" = "301 Wrong e-mail syntax" ]
	printf '%s\n' handshake 'send 1.0\x00 Hello' > "$T/n3.in"
	run -0 client_script "$T/n3.in"
	[ "${lines[4]}" = "501 Wrong protocol version" ]
	mail_min 'send 1\x00' > "$T/n4.in"
	run -0 client_script "$T/n4.in"
	[ "${lines[-2]}" = "521 Wrong number of attachments" ]
	nothing_delivered "$MAIL"
}

@test "a NUL in the sender is a forged sender (520), in the recipient a 301" {
	login_then "send SEND MAIL" 'send mail from: alice@example.org\x00' > "$T/f.in"
	run -0 client_script "$T/f.in"
	[ "${lines[-2]}" = "520 Unauthorised attempt to send mail" ]
	login_then "send SEND MAIL" "send mail from: alice@example.org" \
		'send mail to: bob@example.org\x00x' eof > "$T/t.in"
	run -0 client_script "$T/t.in"
	[ "${lines[-2]}" = "301 Wrong e-mail syntax" ]
	nothing_delivered "$MAIL"
}

@test "NUL bytes in the subject and body are delivered, none reaches a header" {
	login_then "send SEND MAIL" "send mail from: alice@example.org" \
		"send mail to: bob@example.org" 'send subject: a\x00b\r\nBcc: x@example.org' \
		'body data: one\x00two\r\n.\r\nthree' "send 0" "send BYE" > "$T/s.in"
	delivered_without "$T/s.in" Bcc:
}

@test "a NUL in an attachment's file name is a malformed header (403)" {
	mail_min "send 1" 'send Content-Length: 52\r\nFilename: a\x00b' \
		"attach files/hello.txt" "send BYE" > "$T/a.in"
	run -0 client_script "$T/a.in"
	grep -q '^403 Malformed attachment header$' <<<"$output"
	[ "${lines[-2]}" = "220 Email was sent" ]
}

@test "CR/LF and quotes in a Filename: line make no header" {
	mail_min "send 1" 'send Content-Length: 52\r\nFilename: "x.txt"; X-Evil=1\rX-Injected: 1' \
		"content files/hello.txt" "send BYE" > "$T/c.in"
	delivered_without "$T/c.in" X-Injected
}

@test "a Content-Length near 2^64 gets 552, not a wrapped small length" {
	mail_min "send 1" "send Content-Length: 18446744073709551604" > "$T/w.in"
	run -0 client_script "$T/w.in"
	[ "${lines[-2]}" = "552 Size limit exceeded" ]
	[ "${lines[-1]}" = "[handler exit 1]" ]
	mail_min "send 1" "send Content-Length: 99999999999999999999999" \
		"send 4" eof > "$T/o.in"
	run -0 client_script "$T/o.in"
	[ "$(grep -c '^403 ' <<<"$output")" -eq 2 ]
	nothing_delivered "$MAIL"
}

@test "a Size: larger than the content, or far smaller, is a 403" {
	mail_min "send 1" 'send Content-Length: 52\r\nSize: 18446744073709551615' \
		'send Content-Length: 52\r\nSize: 1' eof > "$T/z.in"
	run -0 client_script "$T/z.in"
	[ "$(grep -c '^403 ' <<<"$output")" -eq 2 ]
	nothing_delivered "$MAIL"
}

@test "a client that hangs up before reading never kills the handler with SIGPIPE" {
	session2
	# stdout is a pipe whose reader is already gone: the writes fail
	# with EPIPE (a signal death would be exit 256-13 here)
	run $PY -c '
import os, subprocess, sys
r, w = os.pipe()
os.close(r)
sys.exit(subprocess.call(sys.argv[1], shell=True, stdout=w))' "$HANDLER < $T/in.bin 2>>$HLOG"
	[ "$status" -eq 0 ] || [ "$status" -eq 1 ]
	grep -q ' end reason=' "$HLOG"
	nothing_delivered "$BOB/tmp"
}

@test "--config lines with numbers and flags leak nothing (valgrind)" {
	# an ASan build cannot run under valgrind; LeakSanitizer checks it there
	[ "${USMTP_SANITIZER:-}" != asan ] || skip "ASan build: LeakSanitizer checks this"
	printf 'timeout = 1\nmax-body = 1K\nlog-stderr = yes\n' > "$T/c.conf"
	run -0 valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite usmtp-handler --config "$T/c.conf" --version
	[[ "$output" == *"usmtp-handler 1.0.0"* ]]
}
