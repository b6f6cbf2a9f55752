#!/usr/bin/env bats
# mailer.bats -- mailer.c alone, through tests/unit/mail-build: the message
# it builds (checked by Python's email package via tests/mime-check.py),
# Maildir delivery, the sendmail path (fake sendmails and real Postfix),
# write errors and the reasons that name what failed, and memory that
# does not grow with an attachment (usmtp-handler(8), Delivery).

load helpers
load postfix

MB=$TOP/tests/unit/mail-build
CHECK=$TOP/tests/mime-check.py
S1=$VECTORS/session-1

setup_file() {
	# Built by `make tests/unit/mail-build`; by hand until the rule exists.
	cd "$TOP"
	if grep -q '^tests/unit/mail-build:' Makefile; then
		make -s mailer.o tests/unit/mail-build
	else
		make -s mailer.o
		cc -std=c11 -Wall -Wextra -D_POSIX_C_SOURCE=200809L \
		    -D_DEFAULT_SOURCE -O2 -I. -o tests/unit/mail-build \
		    tests/unit/mail-build.c mailer.o -lcrypto
	fi
}

setup() {
	T=$BATS_TEST_TMPDIR
	MD=$T/mail/Maildir
	PF=
}

teardown() {
	pf_stop
}

# mb ARGS...: mail-build from alice to bob into $MD.
mb() {
	"$MB" -f alice@example.com -t bob@example.org -m "$MD" "$@"
}


# no_dac CMD...: runs CMD so that permission bits hold for it: as root,
# without the capabilities that override them (root ignores a 0555
# directory otherwise).
no_dac() {
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --bounding-set=-dac_override,-dac_read_search -- "$@"
	else
		"$@"
	fi
}


@test "a plain message has our headers and the body, 7bit, nothing else" {
	printf 'Second message, no attachments.' >"$T/body"
	run -0 mb -s 'Second vector message' -b "$T/body"
	f=$(the_message "$MD")
	[ "$output" = "$f $(stat -c %s "$f")" ]
	run -0 "$PY" "$CHECK" "$f"
	output_is <<-'EOF'
	from: 'alice@example.com'
	to: 'bob@example.org'
	subject: 'Second vector message'
	body: 'Second message, no attachments.\n'
	body-cte: 7bit
	attachments: 0
	EOF
	grep -q '^Received: from \[127.0.0.1\]$' "$f"
	grep -q '^	by test.example with USMTP id 0123456789abcdef;$' "$f"
	grep -Eq '^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}$' "$f"
	grep -Eq '^Message-ID: <[0-9a-f]{16}\.[0-9a-f]{16}@test\.example>$' "$f"
	grep -q '^Content-Type: text/plain; charset=UTF-8$' "$f"
}

@test "the vector message keeps its three body lines and both attachments byte for byte" {
	printf 'First line of the vector body.\n\nThird line, after the empty one.' >"$T/body"
	run -0 mb -s 'Vector subject' -b "$T/body" -a "$S1/note-a.txt" \
	    -n note-a.txt -a "$S1/note-b.txt" -n note-b.txt
	f=$(the_message "$MD")
	mkdir "$T/out"
	run -0 "$PY" "$CHECK" "$f" --save "$T/out"
	output_is <<-'EOF'
	from: 'alice@example.com'
	to: 'bob@example.org'
	subject: 'Vector subject'
	body: 'First line of the vector body.\n\nThird line, after the empty one.'
	body-cte: 7bit
	attachments: 2
	attachment 1: type=text/plain filename='note-a.txt' size=70 sha256=5815141263a50d6903c0c5dcd93d749160a85286eb5ec100cbb476f4f1b27299
	attachment 2: type=text/plain filename='note-b.txt' size=101 sha256=68825508fab5ff0b676be4979e81e7e8b6ef9c687f4c56997ef723001bafd7f3
	EOF
	cmp "$S1/note-a.txt" "$T/out/1"
	cmp "$S1/note-b.txt" "$T/out/2"
	grep -q '^Content-Type: multipart/mixed;$' "$f"
	grep -Eq '^	boundary="=_usmtp_[0-9a-f]{32}"$' "$f"
}

@test "a binary attachment with NULs and trailing spaces survives, in 76-column base64" {
	printf 'bin\0ary\0\377\376\r\n  \0trailing   ' >"$T/bin"
	head -c 5000 /dev/urandom >>"$T/bin"
	printf 'spaces at the end   ' >>"$T/bin"
	mkdir "$T/out"
	# Odd chunk sizes exercise the carry of 1 or 2 bytes between writes;
	# 56, 57 and 58 a base64 line (57 bytes) begun in one write and
	# ended in the next, or not.
	for c in 1 7 56 57 58 65536; do
		rm -rf "$MD" "$T/out"/*
		run -0 mb -s bin -b /dev/null -a "$T/bin" -n data.bin -c $c
		f=$(the_message "$MD")
		run -0 "$PY" "$CHECK" "$f" --save "$T/out"
		[[ "${lines[6]}" == "attachment 1: type=application/octet-stream filename='data.bin' size=$(stat -c %s "$T/bin") "* ]]
		cmp "$T/bin" "$T/out/1"
	done
}

@test "an empty attachment is an empty part" {
	: >"$T/empty"
	run -0 mb -s empty -b /dev/null -a "$T/empty" -n empty.txt
	f=$(the_message "$MD")
	run -0 "$PY" "$CHECK" "$f"
	[ "${lines[6]}" = "attachment 1: type=text/plain filename='empty.txt' size=0 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" ]
}

@test "a non-ASCII subject and file name come back intact through RFC 2047 and 2231" {
	subj='Zażółć gęślą jaźń — привет, 日本語の件名がとても長い場合でも正しく折り返されるか'
	name='Résumé — 履歴書 «final».pdf'
	printf 'x' >"$T/f"
	run -0 mb -s "$subj" -b /dev/null -a "$T/f" -n "$name"
	f=$(the_message "$MD")
	run -0 "$PY" "$CHECK" "$f"
	[ "${lines[2]}" = "subject: '$subj'" ]
	[[ "${lines[6]}" == "attachment 1: type=application/pdf filename='$name' size=1 "* ]]
	grep -q '^Subject: =?UTF-8?B?' "$f"
	grep -q "filename\*0\*=UTF-8''R%C3%A9sum" "$f"
	# RFC 2047 2: no encoded-word line over 76 columns.
	run ! grep -q '.\{77\}' <(sed -n '/^Subject:/,/^[^ ]/p' "$f")
}

@test "invalid UTF-8 in the subject becomes U+FFFD" {
	run -0 mb -s 'bad \xff\xc3 end' -b /dev/null
	run -0 "$PY" "$CHECK" "$(the_message "$MD")"
	[ "${lines[2]}" = "subject: 'bad �� end'" ]
}

@test "a long ASCII subject is encoded, folded, and decodes to itself" {
	subj=$(printf 'word%.0s ' {1..40})end
	run -0 mb -s "$subj" -b /dev/null
	f=$(the_message "$MD")
	run -0 "$PY" "$CHECK" "$f"
	[ "${lines[2]}" = "subject: '$subj'" ]
	[ "$(grep -c '^ =?UTF-8?B?' "$f")" -ge 2 ]
}

@test "CR and LF in the subject make one line: no header can be injected" {
	run -0 mb -s 'hi\r\nBcc: evil@example.net\r\n\r\nbody?' -b /dev/null
	f=$(the_message "$MD")
	run ! grep -qi '^bcc:' "$f"
	run -0 "$PY" "$CHECK" "$f"	# checks the exact header set
	[ "${lines[2]}" = "subject: 'hi Bcc: evil@example.net body?'" ]
	[ "${lines[3]}" = "body: ''" ]
}

@test "NUL, TAB and other controls in the subject become spaces" {
	run -0 mb -s 'a\0b\tc\x1bd\x7fe' -b /dev/null
	run -0 "$PY" "$CHECK" "$(the_message "$MD")"
	[ "${lines[2]}" = "subject: 'a b c d e'" ]
}

@test "file names keep only a safe last component" {
	printf 'x' >"$T/f"
	run -0 mb -s names -b /dev/null \
	    -a "$T/f" -n '../../etc/passwd' \
	    -a "$T/f" -n 'C:\\Users\\me\\a\\b' \
	    -a "$T/f" -n 'say "hi"\r\nContent-Type: evil.txt' \
	    -a "$T/f" -n 'nul\0and\x01ctl\x7f.bin' \
	    -a "$T/f" -n 'evil\xe2\x80\xaetxt.exe'
	f=$(the_message "$MD")
	run -0 "$PY" "$CHECK" "$f"
	[[ "${lines[6]}" == "attachment 1: type=application/octet-stream filename='passwd' "* ]]
	[[ "${lines[7]}" == "attachment 2: type=application/octet-stream filename='b' "* ]]
	[[ "${lines[8]}" == "attachment 3: type=text/plain filename='say \"hi\"__Content-Type: evil.txt' "* ]]
	[[ "${lines[9]}" == "attachment 4: type=application/octet-stream filename='nul_and_ctl_.bin' "* ]]
	[[ "${lines[10]}" == "attachment 5: type=application/octet-stream filename='evil_txt.exe' "* ]]
	# Only our three part headers, each once per attachment.
	[ "$(grep -c '^Content-Type:' "$f")" -eq 7 ]
	run ! grep -q '"hi"' "$f"
	run ! grep -q 'passwd.*/' "$f"
}

@test "empty, dot and dot-dot names become attachment-N" {
	printf 'x' >"$T/f"
	run -0 mb -s names -b /dev/null -a "$T/f" -n '' -a "$T/f" -n '.' \
	    -a "$T/f" -n 'dir/..' -a "$T/f" -n 'dir/' -a "$T/f" -n '   '
	run -0 "$PY" "$CHECK" "$(the_message "$MD")"
	for i in 1 2 3 4 5; do
		[[ "${lines[$((5 + i))]}" == "attachment $i: type=application/octet-stream filename='attachment-$i' "* ]]
	done
}

@test "a very long file name is cut to 200 bytes, keeping its extension" {
	printf 'x' >"$T/f"
	long=$(printf 'é%.0s' {1..150})
	run -0 mb -s long -b /dev/null -a "$T/f" -n "$long.pdf"
	f=$(the_message "$MD")
	run -0 "$PY" "$CHECK" "$f"
	want="$(printf 'é%.0s' {1..98}).pdf"
	[[ "${lines[6]}" == "attachment 1: type=application/pdf filename='$want' "* ]]
	# RFC 2231 continuations keep each header line short.
	grep -q "filename\*1\*=" "$f"
	run ! grep -q '.\{79\}' <(sed -n '/^Content-Disposition/,/^$/p' "$f")
}

@test "an 8-bit body, lone CR, long line and CRLF go quoted-printable and back" {
	{
		printf 'caf\303\251 line\r\n'
		printf 'lone\rCR and trailing space \n'
		printf 'From the start\n'
		head -c 1200 /dev/zero | tr '\0' 'x'
		printf '\n=end\t'
	} >"$T/body"
	run -0 mb -s qp -b "$T/body"
	f=$(the_message "$MD")
	run -0 "$PY" "$CHECK" "$f"
	# CRLF -> LF, and a single-part message ends with a line end.
	want=$("$PY" -c 'import sys; print(repr(open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n").decode() + "\n"))' "$T/body")
	[ "${lines[3]}" = "body: $want" ]
	[ "${lines[4]}" = "body-cte: quoted-printable" ]
	grep -q '^=46rom the start$' "$f"
}

@test "the Maildir and its missing parents are created 0700, the file 0600 named the qmail way" {
	umask 022
	MD=$T/a/b/c/Maildir
	run -0 mb -s x -b /dev/null
	f=$(the_message "$MD")
	for d in "$T/a" "$T/a/b" "$T/a/b/c" "$MD" "$MD/tmp" "$MD/new" "$MD/cur"; do
		[ "$(stat -c %a "$d")" = 700 ]
	done
	[ "$(stat -c %a "$f")" = 600 ]
	[[ "$(basename "$f")" =~ ^[0-9]+\.M[0-9]+P[0-9]+Q[0-9]+\.test\.example$ ]]
}

@test "slash and colon in the host name are escaped in the Maildir name" {
	run -0 mb -s x -b /dev/null -H 'we/ird:host'
	f=$(the_message "$MD")
	[[ "$(basename "$f")" == *'.we\057ird\072host' ]]
}

@test "the template expands %u %d %a and %%; the user's own Maildir wins" {
	run -0 "$MB" -f a@example.com -t bob@example.org -m "$T/%d/%u/%a/100%%" -s x -b /dev/null
	[ -n "$(ls -A "$T/example.org/bob/bob@example.org/100%/new")" ]
	run -0 "$MB" -f a@example.com -t bob@example.org -m "$T/tmpl" -r "$T/own" -s x -b /dev/null
	[ -n "$(ls -A "$T/own/new")" ]
	[ ! -e "$T/tmpl" ]
}

@test "an unknown escape in the template is an error that names the template" {
	run -1 "$MB" -f a@example.com -t bob@example.org -m "$T/%x" -s x -b /dev/null
	[ "$output" = "mail-build: Maildir template $T/%x: bad template: % takes u, d, a or %" ]
}

@test "a Maildir base that cannot be written: the reason names the directory and mkdir" {
	mkdir -m 0555 "$T/base"
	run -1 no_dac "$MB" -f a@example.com -t bob@example.org -m "$T/base/%d/%u/Maildir" -s x -b /dev/null
	[ "$output" = "mail-build: Maildir mkdir $T/base/example.org: Permission denied" ]
	[ -z "$(ls -A "$T/base")" ]
}

@test "a Maildir under a file: the reason names the path that is not a directory" {
	: >"$T/file"
	run -1 "$MB" -f a@example.com -t bob@example.org -m "$T/file/%u" -s x -b /dev/null
	[ "$output" = "mail-build: Maildir mkdir $T/file/bob: Not a directory" ]
}

@test "odd bytes of a configured path are escaped in the reason, and a long one is cut before the error" {
	: >"$T/file"
	run -1 "$MB" -f a@example.com -t bob@example.org -m "$T/file/a\"b c\\d"$'\x01\xc3\xa9'"/%u" -s x -b /dev/null
	[ "$output" = "mail-build: Maildir mkdir $T/file/a\\x22b\\x20c\\x5cd\\x01\\xc3\\xa9: Not a directory" ]
	long=$(head -c 2000 /dev/zero | tr '\0' '"')
	run -1 "$MB" -f a@example.com -t bob@example.org -m "$T/file/$long/%u" -s x -b /dev/null
	[[ "$output" == "mail-build: Maildir mkdir $T/file/\\x22\\x22"*"\\x22...: Not a directory" ]]
	[ "${#output}" -lt 1100 ]
}

@test "a full disk (file size limit) fails, names the file, and leaves nothing in new/ or tmp/" {
	head -c 1048576 /dev/urandom >"$T/big"
	run -1 bash -c 'ulimit -f 64; exec "$0" -f a@example.com -t b@example.org -m "$1" -s x -b /dev/null -a "$2"' "$MB" "$MD" "$T/big"
	[[ "$output" =~ ^"mail-build: Maildir write $MD/tmp/"[0-9]+\.M[0-9]+P[0-9]+Q[0-9]+\.test\.example": File too large"$ ]]
	[ -d "$MD/new" ]
	nothing_delivered "$MD"
}

@test "a large message is written out to disk as it is built: the closing fsync waits only for the tail" {
	truncate -s 12M "$T/f"
	# LeakSanitizer cannot stop a process strace traces: no leak check
	run -0 env ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
	    strace -qq -e trace=sync_file_range,fsync -o "$T/st" \
	    "$MB" -f a@example.com -t b@example.org -m "$MD" -s x -b /dev/null -a "$T/f"
	f=$(the_message "$MD")
	size=$(stat -c %s "$f")
	# sync_file_range(FD, OFF, LEN, SYNC_FILE_RANGE_WRITE) over
	# consecutive ranges of at least 4 MiB from 0, then the fsyncs
	run -0 awk -F'[(, )]+' -v size="$size" '
	    /^sync_file_range/ {
		if ($3 != next_off || $4 < 4194304 || $5 != "SYNC_FILE_RANGE_WRITE" || synced)
			bad = 1
		next_off = $3 + $4; n++; next }
	    /^fsync/ { synced++ }
	    END { print n, next_off, synced
		exit !(!bad && n >= 3 && next_off < size && size - next_off < 4194304 + 16384 && synced == 2) }' next_off=0 "$T/st"
}

@test "an aborted message leaves nothing behind" {
	head -c 100000 /dev/urandom >"$T/f"
	run -0 mb -s x -b /dev/null -a "$T/f" -A
	[ "$output" = aborted ]
	nothing_delivered "$MD"
}

@test "sendmail gets -i -f SENDER -- RCPT and the message on stdin, and its output goes nowhere" {
	cat >"$T/sendmail" <<-EOF
	#!/bin/sh
	printf '%s\n' "\$@" >"$T/argv"
	cat >"$T/stdin"
	echo "noise on stdout"
	echo "noise on stderr" >&2
	ls -l /proc/self/fd/ >"$T/fds"
	exit 0
	EOF
	chmod +x "$T/sendmail"
	printf 'hello\n' >"$T/body"
	run -0 --separate-stderr "$MB" -f alice@example.com -t bob@example.org -S "$T/sendmail" -s hi -b "$T/body"
	[ "$output" = "sendmail $(stat -c %s "$T/stdin")" ]
	[ -z "$stderr" ]
	diff -u - "$T/argv" <<-'EOF'
	-i
	-f
	alice@example.com
	--
	bob@example.org
	EOF
	run -0 "$PY" "$CHECK" "$T/stdin"
	[ "${lines[3]}" = "body: 'hello\n'" ]
	# stdin, stdout, stderr, and ls's own directory fd: nothing leaked.
	[ "$(grep -c ' -> ' "$T/fds")" -le 4 ]
}

@test "sendmail starts with no signal blocked, whatever mail-build's caller blocked" {
	# Not a shell script: dash unblocks every signal when it starts.
	cat >"$T/sendmail" <<-EOF
	#!$PY
	import re, sys
	sys.stdin.buffer.read()
	status = open("/proc/self/status").read()
	open("$T/sigblk", "w").write(re.search(r"SigBlk:\\s*(\\S+)", status)[1])
	EOF
	chmod +x "$T/sendmail"
	run -0 "$PY" -c 'import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP})
os.execv(sys.argv[1], sys.argv[1:])' "$MB" -f a@example.com -t b@example.org -S "$T/sendmail" -s x -b /dev/null
	[ "$(cat "$T/sigblk")" = 0000000000000000 ]
}

# sendmail_fails LINE REASON: a fake sendmail that reads the message,
# then runs the shell LINE; mail-build must fail with exactly
# "sendmail $T/sendmail: REASON".
sendmail_fails() {
	printf '#!/bin/sh\ncat >/dev/null\n%s\n' "$1" >"$T/sendmail"
	chmod +x "$T/sendmail"
	run -1 "$MB" -f a@example.com -t b@example.org -S "$T/sendmail" -s x -b /dev/null
	[ "$output" = "mail-build: sendmail $T/sendmail: $2" ]
}

@test "a sendmail that exits 75 is a failure that names it and the status" {
	sendmail_fails 'exit 75' 'exit status 75 (temporary failure)'
}

@test "a sendmail that cannot be run is a failure that names it and why" {
	run -1 "$MB" -f a@example.com -t b@example.org -S "$T/no-such-sendmail" -s x -b /dev/null
	[ "$output" = "mail-build: sendmail $T/no-such-sendmail: cannot execute: No such file or directory" ]
	: >"$T/not-executable"
	run -1 "$MB" -f a@example.com -t b@example.org -S "$T/not-executable" -s x -b /dev/null
	[ "$output" = "mail-build: sendmail $T/not-executable: cannot execute: Permission denied" ]
}

@test "a sendmail killed by a signal is a failure that names it and the signal" {
	sendmail_fails 'kill -SEGV $$' 'killed by signal 11 (Segmentation fault)'
}

@test "a temporary directory that cannot be written: the reason names it" {
	run -1 env TMPDIR="$T/none" "$MB" -f a@example.com -t b@example.org -S /bin/true -s x -b /dev/null
	[ "$output" = "mail-build: temporary file in $T/none: No such file or directory" ]
}

@test "a hanging sendmail is killed, with its children, within the bound" {
	cat >"$T/sendmail" <<-EOF
	#!/bin/sh
	echo \$\$ >"$T/pids"
	sleep 1000 &
	echo \$! >>"$T/pids"
	wait
	EOF
	chmod +x "$T/sendmail"
	start=$(date +%s%N)
	run -1 timeout 20 "$MB" -f a@example.com -t b@example.org -S "$T/sendmail" -T 1 -s x -b /dev/null
	ms=$((($(date +%s%N) - start) / 1000000))
	echo "# killed after the bound: mail-build ran $ms ms" >&3
	[ "$output" = "mail-build: sendmail $T/sendmail: timed out after 1000 ms, killed" ]
	# Never before the bound (the wait starts after mail-build's own
	# start-up), and soon after it: the kill itself comes 1-4 ms after
	# the bound (strace); the rest is start-up on a busy machine, or
	# under a sanitizer.
	[ "$ms" -ge 1000 ]
	[ -n "${USMTP_SANITIZER:-}" ] || [ "$ms" -lt 2000 ]
	# Killed and reaped, or at worst a zombie waiting for init.
	for p in $(cat "$T/pids"); do
		run ps -o stat= -p "$p"
		[ -z "$output" ] || [[ "$output" == Z* ]]
	done
}

@test "real Postfix sendmail delivers the message into a Maildir" {
	pf_start bob
	printf 'Through Postfix.\n' >"$T/body"
	run -0 "$MB" -f alice@usmtp.test -t bob@usmtp.test -S "$PF_SENDMAIL" \
	    -T 30 -s 'Postfix path' -b "$T/body" -a "$S1/note-b.txt" -n note-b.txt
	[[ "$output" =~ ^sendmail\ [0-9]+$ ]]
	f=$(pf_wait_new bob)
	run -0 "$PY" "$CHECK" "$f" --mta --header delivered-to
	output_is <<-'EOF'
	from: 'alice@usmtp.test'
	to: 'bob@usmtp.test'
	subject: 'Postfix path'
	delivered-to: 'bob@usmtp.test'
	body: 'Through Postfix.\n'
	body-cte: 7bit
	attachments: 1
	attachment 1: type=text/plain filename='note-b.txt' size=101 sha256=68825508fab5ff0b676be4979e81e7e8b6ef9c687f4c56997ef723001bafd7f3
	EOF
	grep -q '^Return-Path: <alice@usmtp.test>$' "$f"
	pf_stop
}

@test "peak RSS does not grow with the attachment: 1 MiB vs 100 MiB" {
	skip_if_sanitized
	truncate -s 1M "$T/small"
	truncate -s 100M "$T/large"
	/usr/bin/time -f %M -o "$T/rss1" "$MB" -f a@example.com -t b@example.org -m "$T/m1" -s x -b /dev/null -a "$T/small" >/dev/null
	/usr/bin/time -f %M -o "$T/rss100" "$MB" -f a@example.com -t b@example.org -m "$T/m100" -s x -b /dev/null -a "$T/large" >/dev/null
	r1=$(tail -1 "$T/rss1")
	r100=$(tail -1 "$T/rss100")
	echo "# peak RSS KiB: 1 MiB $r1, 100 MiB $r100" >&3
	f=$(find "$T/m100/new" -type f)
	# 100 MiB in base64 lines of 76: 139810136 + 1839608 bytes, plus headers.
	[ "$(stat -c %s "$f")" -gt 141649744 ]
	[ $((r100 - r1)) -lt 1024 ]
	[ "$r100" -lt 8192 ]
}
