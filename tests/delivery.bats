#!/usr/bin/env bats
# Delivery through the whole handler: real Postfix behind --sendmail,
# fake sendmails that are slow, fail or hang, delivery errors logged with
# the path or program and what failed, and a 100 MiB attachment streamed
# with bounded memory.

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
	grep -qF "result=fail reason=\"sendmail $PF_SENDMAIL: exit status " "$HLOG"
	[ -z "$(ls -A "$(pf_maildir bob)/new" 2>/dev/null)" ]
}

# fails_with REASON [handler options]: one message from alice to bob
# gets 451, the session goes on to BYE, and the handler logs the failed
# delivery with exactly REASON.
fails_with() {
	local reason=$1
	shift
	script_to bob@usmtp.test "$VECTORS/session-1/note-b.txt" > "$T/s.in"
	run -0 client_script "$T/s.in" "$@"
	[ "${lines[-2]}" = "451 Message not delivered, nothing was sent" ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
	grep -qF "deliver from=alice@usmtp.test to=bob@usmtp.test attachments=1 result=fail reason=\"$reason\"" "$HLOG"
}

@test "a Maildir base the handler cannot write: 451, and the log names the directory and mkdir" {
	mkdir -m 0555 "$MAIL"
	# As root, without the capabilities that override permission bits.
	if [ "$(id -u)" -eq 0 ]; then
		HANDLER="setpriv --bounding-set=-dac_override,-dac_read_search -- $HANDLER"
	fi
	fails_with "Maildir mkdir $MAIL/usmtp.test: Permission denied"
	[ -z "$(ls -A "$MAIL")" ]
}

@test "a missing sendmail: 451, and the log names the program and why it could not run" {
	fails_with "sendmail $T/no-such-sendmail: cannot execute: No such file or directory" \
	    --sendmail "$T/no-such-sendmail"
}

@test "a sendmail that exits 75: 451, and the log names the program and the status" {
	printf '#!/bin/sh\ncat >/dev/null\nexit 75\n' > "$T/sm"
	chmod +x "$T/sm"
	fails_with "sendmail $T/sm: exit status 75 (temporary failure)" --sendmail "$T/sm"
}

@test "a sendmail killed by a signal: 451, and the log names the program and the signal" {
	printf '#!/bin/sh\ncat >/dev/null\nkill -KILL $$\n' > "$T/sm"
	chmod +x "$T/sm"
	fails_with "sendmail $T/sm: killed by signal 9 (Killed)" --sendmail "$T/sm"
}

@test "a sendmail that hangs is killed soon after --sendmail-timeout 1, never before; the log says so" {
	printf '#!/bin/sh\nexec sleep 60\n' > "$T/sm"
	chmod +x "$T/sm"
	start=$(date +%s%N)
	fails_with "sendmail $T/sm: timed out after 1000 ms, killed" \
	    --sendmail "$T/sm" --sendmail-timeout 1
	ms=$((($(date +%s%N) - start) / 1000000))
	echo "# the whole session took $ms ms" >&3
	# the session (handshake, login, message) plus the 1000 ms bound;
	# under a sanitizer or valgrind the session alone may take seconds
	[ "$ms" -ge 1000 ]
	[ -n "${USMTP_SANITIZER:-}" ] || [ "$ms" -lt 3000 ]
}

# slow_sendmail FILE SECONDS: writes a fake sendmail to FILE that reads
# the message, sleeps SECONDS, then delivers it as a file of its own in
# $T/out/, and appends the fraction of the monotonic second in which it
# started to $T/starts.
slow_sendmail() {
	mkdir -p "$T/out"
	cat >"$1" <<-EOF
	#!$PY
	import os, sys, time
	start = time.clock_gettime(time.CLOCK_MONOTONIC)
	msg = sys.stdin.buffer.read()
	time.sleep($2)
	with open("$T/out/%d" % os.getpid(), "wb") as f:
	    f.write(msg)
	with open("$T/starts", "a") as f:
	    f.write("%.3f\\n" % (start % 1))
	EOF
	chmod +x "$1"
}

@test "a 0.3 s sendmail under --sendmail-timeout 1 delivers once every time, also across a second boundary" {
	# A timeout in whole seconds fired as soon as the monotonic clock's
	# second ticked over: a sendmail started in the last 0.3 s of a
	# second was killed (451) and a client retry could deliver twice.
	# At least 5 runs, and on until one sendmail started in that part of
	# a second.
	slow_sendmail "$T/sm" 0.3
	script_to bob@usmtp.test "$VECTORS/session-1/note-b.txt" > "$T/s.in"
	runs=0 late=0
	while [ $runs -lt 40 ] && { [ $late -lt 1 ] || [ $runs -lt 5 ]; }; do
		runs=$((runs + 1))
		run -0 client_script "$T/s.in" --sendmail "$T/sm" --sendmail-timeout 1
		[ "${lines[-2]}" = "220 Email was sent" ]
		[ "$(find "$T/out" -type f | wc -l)" -eq $runs ]
		late=$(awk '$1 > 0.7' "$T/starts" | wc -l)
	done
	echo "# $runs runs, $late started after x.7 s" >&3
	[ $late -ge 1 ]
	[ "$(grep -c 'deliver .* where=sendmail result=ok' "$HLOG")" -eq $runs ]
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
