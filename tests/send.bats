#!/usr/bin/env bats
# usmtp(7), Sending a message, Attachments and Delivery, through the
# real handler: the SEND MAIL dialog in both dialects, every reply code,
# attachments, limits, rollback; what lands in the Maildir is read back
# with Python's email package (mime-check.py).

load helpers

setup() {
	usmtp_setup
	add_test_users
	BOB=$MAIL/example.org/bob/Maildir
	ALICE=$MAIL/example.org/alice/Maildir
}



# mime FILE [mime-check options]: the parsed summary of a message.
mime() {
	$PY "$TOP/tests/mime-check.py" "$@"
}

@test "a message without attachments is delivered before the 220" {
	golden send-plain
	# the_message: one message in new/, nothing left in tmp/
	run -0 mime "$(the_message "$BOB")"
	output_is <<-\EOF
	from: 'alice@example.org'
	to: 'bob@example.org'
	subject: 'Hello Bob'
	body: 'Hi Bob,\n\nthis is the body.\n-- \nAlice\n'
	body-cte: 7bit
	attachments: 0
	EOF
	grep -q "deliver from=alice@example.org to=bob@example.org size=[0-9]* attachments=0 where=$BOB/new/.* result=ok" "$HLOG"
}

@test "prefixes are optional, addresses may be bracketed and in any case" {
	golden send-noprefix
	run -0 mime "$(delivered "$BOB")"
	[ "${lines[2]}" = "subject: 'No prefix here'" ]
	[ "${lines[3]}" = "body: 'Body without a prefix.\n'" ]
}

@test "SEND MAIL before LOGIN gets 520 and the session ends" {
	golden send-not-logged-in
	nothing_delivered
}

@test "a forged sender gets 520 and nothing is delivered" {
	golden send-forged
	grep -q 'reason=forged-sender from=mail\\x20from:\\x20bob@example.org' "$HLOG"
	nothing_delivered
}

@test "unknown recipient 402, bad syntax and two addresses 301, then a good one" {
	golden send-rcpt
	[ "$(delivered "$BOB" | wc -l)" -eq 1 ]
	[ ! -e "$MAIL/example.org/nobody" ]
}

@test "the sixth rejected recipient of a message ends the session with 500" {
	golden send-rcpt-bound
	nothing_delivered
}

@test "document dialect: four attachments, a 200 after each content, byte-identical" {
	golden send-attach-doc
	mkdir "$T/att"
	run -0 mime "$(delivered "$BOB")" --save "$T/att"
	[ "${lines[5]}" = "attachments: 4" ]
	[[ "${lines[6]}" == "attachment 1: type=text/plain filename='hello.txt' size=36 "* ]]
	[[ "${lines[7]}" == "attachment 2: type=application/octet-stream filename='binary.bin' size=24 "* ]]
	[[ "${lines[8]}" == *"filename='spaces.txt' size=19 "* ]]
	[[ "${lines[9]}" == *"filename='empty.txt' size=0 "* ]]
	cmp "$T/att/1" "$TRANSCRIPTS/files/hello.txt"
	cmp "$T/att/2" "$TRANSCRIPTS/files/binary.bin"
	cmp "$T/att/3" "$TRANSCRIPTS/files/spaces.txt"
	cmp "$T/att/4" "$TRANSCRIPTS/files/empty.txt"
}

@test "reference dialect: no 200 after content; without Size: trailing spaces go" {
	golden send-attach-ref
	mkdir "$T/att"
	run -0 mime "$(delivered "$BOB")" --save "$T/att"
	cmp "$T/att/1" "$TRANSCRIPTS/files/hello.txt"
	[ "$(cat "$T/att/2")" = "ends with spaces" ]
	[ "$(wc -c < "$T/att/2")" -eq 16 ]
}

@test "a bare-length header is accepted and the file is named attachment-1" {
	golden send-bare-length
	run -0 mime "$(delivered "$BOB")"
	[[ "${lines[6]}" == "attachment 1: type=application/octet-stream filename='attachment-1' size=36 "* ]]
}

@test "six attachments, or a count that is not 0..5, get 521 and close" {
	golden send-six
	golden send-count-garbage
	nothing_delivered
}

@test "malformed attachment headers get 403 and the client re-sends" {
	golden send-bad-header
	[ "$(delivered "$BOB" | wc -l)" -eq 1 ]
}

@test "the sixth malformed header of an attachment ends the session with 500" {
	golden send-bad-header-bound
	nothing_delivered
}

@test "counted content that does not end in CRLFCRLF gets 500, nothing delivered" {
	golden send-bad-tail
	nothing_delivered
	grep -q 'reason=attachment-framing' "$HLOG"
}

@test "a client that disconnects inside an attachment leaves nothing behind" {
	golden send-cut-content
	nothing_delivered
	grep -q 'end reason=truncated state=S_ATT_DATA' "$HLOG"
}

@test "two messages in one session are both delivered" {
	golden send-two
	[ "$(delivered "$BOB" | wc -l)" -eq 1 ]
	[ "$(delivered "$ALICE" | wc -l)" -eq 1 ]
}

@test "an attachment over --max-attachment gets 552 and the session ends" {
	run -0 client_script send-attach-doc --max-attachment 20
	[ "${lines[17]}" = "126 Send attachment number 1" ]
	[ "${lines[18]}" = "552 Size limit exceeded" ]
	[ "${lines[19]}" = "[handler exit 1]" ]
	nothing_delivered
}

@test "a body over --max-body gets 552 and the session ends" {
	run -0 client_script send-plain --max-body 16
	[ "${lines[13]}" = "124 Send data, ending with one blank line and END" ]
	[ "${lines[14]}" = "552 Size limit exceeded" ]
	nothing_delivered
}

@test "a failing sendmail gets 451, nothing is delivered, the session goes on" {
	run -0 client_script send-two --sendmail /bin/false
	[ "$(grep -c '^451 ' <<<"$output")" -eq 2 ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
	grep -q 'deliver from=alice@example.org to=bob@example.org attachments=1 result=fail reason=' "$HLOG"
}

@test "a write error (file size limit) gets 451 with nothing in new/ or tmp/" {
	limited() { ulimit -f 1; client_script "$@"; }
	run -0 limited send-attach-doc
	[ "$(grep -c '^451 ' <<<"$output")" -eq 1 ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
	[ -z "$(ls -A "$BOB/new")" ]
	[ -z "$(ls -A "$BOB/tmp")" ]
}

@test "non-ASCII subject and file name arrive decoded" {
	mail_then 'send subject: Zażółć gęślą jaźń' \
		'body data: Treść wiadomości.' \
		'send 1' \
		'attach files/hello.txt naïve-résumé.txt' \
		'send BYE' > "$T/utf8.in"
	run -0 client_script "$T/utf8.in"
	[ "${lines[-2]}" = "220 Email was sent" ]
	run -0 mime "$(delivered "$BOB")"
	[ "${lines[2]}" = "subject: 'Zażółć gęślą jaźń'" ]
	[ "${lines[3]}" = "body: 'Treść wiadomości.'" ]
	[[ "${lines[6]}" == "attachment 1: type=text/plain filename='naïve-résumé.txt' size=36 "* ]]
}

@test "CR/LF in the subject and path tricks in file names make no header" {
	mail_then 'send subject: Hi\r\nBcc: victim@example.org\nX-Evil: 1' \
		'body data: body' \
		'send 3' \
		'attach files/hello.txt ../../etc/passwd' \
		'attach files/hello.txt a"b\r\nX-Injected: 1.txt' \
		'attach files/hello.txt C:\\Windows\\evil\x01\x7f.exe' \
		'send BYE' > "$T/inject.in"
	run -0 client_script "$T/inject.in"
	[ "${lines[-2]}" = "220 Email was sent" ]
	f=$(delivered "$BOB")
	# mime-check fails on any header it did not expect
	run -0 mime "$f"
	[[ "${lines[2]}" == "subject: 'Hi Bcc: victim@example.org X-Evil: 1'" ]]
	[[ "${lines[6]}" == *"filename='passwd'"* ]]
	run -1 grep -E '^(Bcc|X-Evil|X-Injected):' "$f"
	run -0 mime "$f"
	# the last path component only, control characters replaced
	[[ "${lines[7]}" == *"filename='a\"b' "* ]]
	[[ "${lines[8]}" == *"filename='evil__.exe' "* ]]
}

@test "NUL bytes: a space in the subject, kept (quoted-printable) in the body, 300 in a command" {
	mail_then 'send subject: a\x00b' \
		'body data: x\x00y' \
		'send 0' \
		'send LOG\x00IN' \
		'send BYE' > "$T/nul.in"
	run -0 client_script "$T/nul.in"
	[ "${lines[-3]}" = "220 Email was sent" ]
	[ "${lines[-2]}" = "300 Not recognized command" ]
	run -0 mime "$(delivered "$BOB")"
	[ "${lines[2]}" = "subject: 'a b'" ]
	[ "${lines[3]}" = "body: 'x\x00y\n'" ]
	[ "${lines[4]}" = "body-cte: quoted-printable" ]
}
