#!/usr/bin/env bats
# msgin.bats -- the sendmail interface's message reader (msgin.c), through
# its driver tests/unit/msgin-dump.  Messages are built by Python's email
# package (tests/mkmsg.py), which also says what must come out: subject,
# addresses, and the body and attachments byte for byte (SHA-256).
# Hostile input must fail with a reason and exit 65, in bounded memory.

load helpers

setup() {
	T=$BATS_TEST_TMPDIR
	DUMP=$TOP/tests/unit/msgin-dump
}

# mk CASE: builds tests/mkmsg.py's CASE into $T/msg (and $T/expect).
mk() {
	$PY "$TOP/tests/mkmsg.py" "$1" "$T"
}

# same CASE [msgin-dump options]: what the driver prints is $T/expect.
same() {
	local c=$1
	shift
	mk "$c"
	run -0 --separate-stderr "$DUMP" "$@" <"$T/msg"
	diff -u "$T/expect" - <<<"$output"
}

# refused CASE REASON [msgin-dump options]: tests/mkmsg.py's CASE is
# refused: exit 65, "msgin-dump: data: REASON" on standard error and
# nothing on standard output.
refused() {
	local reason=$2
	mk "$1"
	shift 2
	run -65 --separate-stderr "$DUMP" "$@" <"$T/msg"
	[ "$stderr" = "msgin-dump: data: $reason" ]
	[ -z "$output" ]
}

# dump_saved: msgin-dump of $T/msg, as run -0 does, the body and the
# attachments saved in $T/out.
dump_saved() {
	mkdir -p "$T/out"
	run -0 --separate-stderr "$DUMP" --save "$T/out" <"$T/msg"
}

@test "a message without MIME: its whole body, the headers not carried named" {
	same plain
}

@test "a message without MIME with CRLF line ends: the body with LF" {
	same plain_crlf
}

@test "a 7bit text body" {
	same simple
}

@test "a quoted-printable body: soft breaks, = signs, encoded blanks" {
	same qp_body
}

@test "a base64 body" {
	same b64_body
}

@test "an ISO-8859-1 body comes out in UTF-8" {
	same latin1_body
}

@test "a KOI8-R body comes out in UTF-8 (iconv)" {
	same koi8_body
}

@test "attachments of 0, 1, 57, 76 and 1 MiB + 1 bytes come out byte for byte" {
	same sizes
}

@test "the same message with CRLF line ends gives the same bytes" {
	same sizes_crlf
}

@test "non-ASCII subject and names: RFC 2047, RFC 2231 with continuations and charsets" {
	same names
}

@test "directories in attachment names are cut off" {
	same paths
}

@test "attachments without a name get one from their type" {
	same noname
}

@test "multipart/alternative: the text/plain is the body, the html is dropped" {
	same alternative
}

@test "nested multiparts, a text attachment, a message/rfc822 attachment, CRLF" {
	same nested
}

@test "an HTML-only message: empty body, the html as message.html" {
	same html_only
}

@test "an alternative without text/plain keeps its parts as attachments" {
	same html_alt_only
}

@test "addresses: display names, groups, comments, routes, quoted local parts, Cc and Bcc" {
	same addresses
}

@test "encoded words: blanks between them go, a character split across two survives" {
	same subjects
}

@test "a missing close delimiter is forgiven" {
	same no_end_boundary
}

@test "a body line of 1 MiB is body, not a problem" {
	same long_body_line
}

@test "edge cases: mbox From line, lenient quoted-printable, blanks after a delimiter, a part with a header only" {
	printf '%s\n' 'From alice Wed Nov 25 10:00:00 2026' \
	    'From: alice@example.org' 'Subject: edge' \
	    'Content-Type: multipart/mixed; boundary="b1"' '' 'preamble' \
	    '--b1  ' 'Content-Type: text/plain; charset=utf-8' \
	    'Content-Transfer-Encoding: quoted-printable' '' \
	    'a=3Db =ZZ soft=' ' break=20' 'lower =c3=a4 end=4' '--b1' \
	    'Content-Type: application/octet-stream' \
	    'Content-Disposition: attachment; filename=my file.txt' '' \
	    '--b1--' 'epilogue' >"$T/msg"
	dump_saved
	printf 'a=b =ZZ soft break \nlower \303\244 end=4' | cmp - "$T/out/body"
	[[ $output == *"att: my file.txt type=application/octet-stream size=0 "* ]]
	[[ $output == *"dropped:"$'\n'* ]]
}

@test "odd but real: unknown charset and encoding, a digest, mutt's inline file, a header-only part" {
	printf '%s\n' 'from: alice@example.org' \
	    'subject: =?x-unknown?q?raw?= and =?utf-8?q?=E2=82=AC?=' \
	    'content-type: Multipart/Mixed; Boundary=outer' '' \
	    '--outer' 'Content-Type: text/plain' '' 'the body' \
	    '--outer' 'Content-Type: text/plain; name="notes.txt"' \
	    'Content-Disposition: inline' '' 'an inline file' \
	    '--outer' 'Content-Type: application/octet-stream' \
	    'Content-Transfer-Encoding: x-uuencode' '' 'begin 644 x' '`' 'end' \
	    '--outer' 'Content-Type: multipart/digest; boundary=dig' '' \
	    '--dig' '' 'Subject: digested' '' 'one' '--dig--' \
	    '--outer' 'Content-Disposition: attachment; filename=empty.dat' \
	    '--outer--' >"$T/msg"
	dump_saved
	[[ ${lines[0]} == "subject: =?x-unknown?q?raw?= and €" ]]
	printf 'the body' | cmp - "$T/out/body"
	printf 'an inline file' | cmp - "$T/out/att-1"
	printf 'begin 644 x\n`\nend' | cmp - "$T/out/att-2"
	printf 'Subject: digested\n\none' | cmp - "$T/out/att-3"
	[[ $output == *"att: notes.txt type=text/plain size=14 "* ]]
	[[ $output == *"att: attachment-2.bin type=application/octet-stream size=17 "* ]]
	[[ $output == *"att: attachment-3.eml type=message/rfc822 size=22 "* ]]
	[[ $output == *"att: empty.dat type=text/plain size=0 "* ]]
}

@test "a line that is no header field ends the header and starts the body" {
	printf 'From: a@example.org\nnot a header\nmore\n' >"$T/msg"
	dump_saved
	printf 'not a header\nmore\n' | cmp - "$T/out/body"
}

@test "a boundary of 200 characters is refused (RFC 2046 allows 70)" {
	refused long_boundary "a MIME boundary is longer than 70 characters (RFC 2046)"
}

@test "10,000 header fields are refused at the limit" {
	refused many_headers "more than 1000 header fields in one header"
	run -0 --separate-stderr "$DUMP" --header-count-max 10001 <"$T/msg"
	[[ $output == *" X-H9999"$'\n'* ]]
}

@test "a header field of 1 MiB is refused at the limit" {
	refused long_header "a header field is over 65536 bytes"
}

@test "six attachments are refused, and the error says how many" {
	refused six "the message has 6 attachments; at most 5 can be sent"
	run -0 --separate-stderr "$DUMP" --attach-count 6 <"$T/msg"
	[ "$(grep -c '^att: ' <<<"$output")" -eq 6 ]
}

@test "an attachment over the limit is refused and named; one at the limit passes" {
	refused big_attachment "attachment 1 (big.bin) is over 1000 bytes" \
	    --attach-max 1000
	run -0 --separate-stderr "$DUMP" --attach-max 1001 <"$T/msg"
	[[ $output == *"att: big.bin type=application/octet-stream size=1001 "* ]]
}

@test "a body over the limit is refused; one at the limit passes" {
	refused simple "the body is over 23 bytes" --body-max 23
	run -0 --separate-stderr "$DUMP" --body-max 24 <"$T/msg"
}

@test "multiparts nested 20 deep are refused" {
	refused deep "multipart parts nested deeper than 16"
}

@test "more recipients than the limit are refused" {
	refused addresses "more than 7 recipients in To, Cc and Bcc" --rcpt-max 7
}

@test "attachments are unlinked files in TMPDIR: nothing is left there" {
	mkdir "$T/tmp"
	TMPDIR=$T/tmp same sizes
	[ -z "$(ls -A "$T/tmp")" ]
}

@test "a TMPDIR that cannot be used is a temporary failure (75)" {
	mk sizes
	TMPDIR=$T/none run -75 --separate-stderr "$DUMP" <"$T/msg"
	[[ $stderr == "msgin-dump: temp: a temporary file in $T/none: No such file or directory" ]]
}

@test "a read error is an I/O error (74)" {
	run -74 --separate-stderr "$DUMP" <"$T"
	[ "$stderr" = "msgin-dump: io: reading the message: Is a directory" ]
}

@test "a 64 MiB attachment is extracted in under 16 MiB of memory" {
	skip_if_sanitized
	mk huge
	run -0 --separate-stderr /usr/bin/time -f 'maxrss=%M' "$DUMP" \
	    --attach-max 100000000 <"$T/msg"
	diff -u "$T/expect" - <<<"$output"
	rss=${stderr##*maxrss=}
	echo "max RSS: $rss KiB"
	[ "$rss" -lt 16384 ]
}
