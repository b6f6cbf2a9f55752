#!/usr/bin/env bats
# Delivery through the whole handler: real Postfix behind --sendmail, and
# a 100 MiB attachment streamed with bounded memory.

load helpers
load postfix

setup() {
	usmtp_setup
	add_user alice@usmtp.test "correct horse"
	add_user bob@usmtp.test bob-pw
}

teardown() {
	pf_stop
}

# script_to RCPT ATTACHMENT: a session that sends one message with one
# attachment from alice@usmtp.test to RCPT.
script_to() {
	cat <<-EOS
	handshake
	send 1.0 Hello
	send LOGIN
	send alice@usmtp.test
	send correct horse
	send SEND MAIL
	send mail from: alice@usmtp.test
	send mail to: $1
	send subject: Through the handler
	body data: Delivered by Postfix.
	send 1
	attach $2
	send BYE
	EOS
}

@test "with --sendmail, real Postfix delivers the message into the Maildir" {
	pf_start bob
	script_to bob@usmtp.test "$VECTORS/session-1/note-b.txt" > "$T/s.in"
	run -0 client_script "$T/s.in" --sendmail "$PF_SENDMAIL"
	[ "${lines[-2]}" = "220 Email was sent" ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
	f=$(pf_wait_new bob)
	run -0 $PY "$TOP/tests/mime-check.py" "$f" --mta --header delivered-to
	[ "${lines[0]}" = "from: 'alice@usmtp.test'" ]
	[ "${lines[2]}" = "subject: 'Through the handler'" ]
	[ "${lines[3]}" = "delivered-to: 'bob@usmtp.test'" ]
	[ "${lines[7]}" = "attachment 1: type=text/plain filename='note-b.txt' size=101 sha256=68825508fab5ff0b676be4979e81e7e8b6ef9c687f4c56997ef723001bafd7f3" ]
	grep -q '^Return-Path: <alice@usmtp.test>$' "$f"
	grep -q 'deliver from=alice@usmtp.test to=bob@usmtp.test size=[0-9]* attachments=1 where=sendmail result=ok' "$HLOG"
}

@test "Postfix refusing an over-size message gives 451 and nothing is delivered" {
	pf_start bob
	postconf -c "$PF/etc" -e message_size_limit=2000
	postfix -c "$PF/etc" reload >/dev/null 2>&1 || true
	head -c 4000 /dev/urandom > "$T/big.bin"
	script_to bob@usmtp.test "$T/big.bin" > "$T/s.in"
	run -0 client_script "$T/s.in" --sendmail "$PF_SENDMAIL"
	[ "${lines[-2]}" = "451 Message not delivered, nothing was sent" ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
	grep -q 'result=fail reason="sendmail exited with status' "$HLOG"
	[ -z "$(ls -A "$(pf_maildir bob)/new" 2>/dev/null)" ]
}

# rss_for SIZE: peak RSS (KiB) of the handler receiving a SIZE attachment
# into a Maildir; checks the attachment arrived whole.
rss_for() {
	local f=$T/att-$1
	head -c "$1" /dev/urandom > "$f"
	script_to bob@usmtp.test "$f" > "$T/s-$1.in"
	HANDLER="/usr/bin/time -f rss=%M -o $T/rss-$1 $HANDLER --max-attachment 200M"
	run -0 client_script "$T/s-$1.in"
	[ "${lines[-2]}" = "220 Email was sent" ] || return 1
	sed -n 's/^rss=//p' "$T/rss-$1"
}

@test "a 100 MiB attachment streams through with the memory of a 1 MiB one" {
	skip_if_sanitized
	small=$(rss_for 1048576)
	large=$(rss_for 104857600)
	echo "peak RSS: 1 MiB -> $small KiB, 100 MiB -> $large KiB" >&3
	[ "$small" -lt 8192 ]
	[ "$large" -lt 8192 ]
	[ $((large - small)) -lt 1024 ]
	# and the 100 MiB arrived byte for byte
	f=$(ls "$MAIL/usmtp.test/bob/Maildir/new/"* | sort -t Q -k 2n | tail -n 1)
	mkdir "$T/att"
	$PY "$TOP/tests/mime-check.py" "$f" --save "$T/att" >/dev/null
	cmp "$T/att/1" "$T/att-104857600"
}
