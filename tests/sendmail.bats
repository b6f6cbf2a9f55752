#!/usr/bin/env bats
# usmtp-sendmail, the sendmail interface (usmtp-client(1), SENDMAIL
# INTERFACE): messages built by Python's email package go through the
# link, a configuration file and the real handler behind
# systemd-socket-activate on a loopback port, as a user's would; what is
# delivered is parsed again by Python and compared byte for byte.

load helpers

setup() {
	client_setup
	add_user carol@example.org carol-pw
	add_user dave@example.org dave-pw
	sendmail_link
	export XDG_CONFIG_HOME=$T/xdg
	mkdir -p "$XDG_CONFIG_HOME/usmtp"
	CONF=$XDG_CONFIG_HOME/usmtp/client.conf
	SA_PID=
}

teardown() {
	stop_pid "$SA_PID"
}

# listen [handler options]: the handler behind systemd-socket-activate on
# a free loopback port, and a configuration file for alice that points
# at it.
listen() {
	HANDLER="$HANDLER $*"
	PORT=$(free_port)
	start_socket_activate "$PORT" 127.0.0.1
	alice_conf "$CONF"
}

# build CASE: writes $T/msg, a message Python's email package makes, and
# $T/expect, what must arrive: the subject, the body and every attachment
# (name, size, SHA-256).
build() {
	$PY - "$1" "$T" <<-'EOF'
	import hashlib, os, random, sys
	from email.message import EmailMessage
	case, d = sys.argv[1], sys.argv[2]
	rnd = random.Random(13)
	m = EmailMessage()
	m["From"] = "Alice <alice@example.org>"
	m["To"] = "Bob <bob@example.org>"
	m["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
	m["Message-ID"] = "<1@example.org>"
	atts = []
	if case == "attachments":
	    m["Subject"] = "Zażółć gęślą jaźń: three files"
	    body = "Dzień dobry,\n\nthree files follow.\n"
	    atts = [("data.bin", rnd.randbytes(300000), "application", "octet-stream"),
	            ("notes.txt", b"text with trailing spaces   \n", "text", "plain"),
	            ("żółw.png", rnd.randbytes(5000), "image", "png")]
	elif case == "six":
	    m["Subject"] = "six"
	    body = "six files\n"
	    atts = [("f%d.bin" % i, rnd.randbytes(10), "application",
	             "octet-stream") for i in range(6)]
	elif case == "headers":
	    m["Subject"] = "headers"
	    m["Cc"] = "carol@example.org"
	    m["Bcc"] = "dave@example.org"
	    m["In-Reply-To"] = "<0@example.org>"
	    m["References"] = "<0@example.org>"
	    m["X-Mailer"] = "mkmsg"
	    body = "to, cc and bcc\n"
	elif case == "bigbody":
	    m["Subject"] = "big body"
	    body = "x" * 2000 + "\n"
	elif case == "bigatt":
	    m["Subject"] = "big attachment"
	    body = "one big file\n"
	    atts = [("big.bin", rnd.randbytes(3000), "application", "octet-stream")]
	m.set_content(body)
	for name, data, mt, st in atts:
	    m.add_attachment(data, maintype=mt, subtype=st, filename=name)
	open(os.path.join(d, "msg"), "wb").write(bytes(m))
	with open(os.path.join(d, "expect"), "w") as f:
	    f.write("subject: %s\n" % m["Subject"])
	    f.write("body: %r\n" % body)
	    for name, data, mt, st in atts:
	        f.write("att: %s %d %s\n" % (name, len(data),
	                hashlib.sha256(data).hexdigest()))
	EOF
}

# parts_of FILE: what Python's email package finds in a delivered
# message, in build()'s $T/expect format.
parts_of() {
	$PY - "$1" <<-'EOF'
	import email, email.policy, hashlib, sys
	m = email.message_from_binary_file(open(sys.argv[1], "rb"),
	    policy=email.policy.default)
	print("subject: %s" % m["Subject"])
	for p in m.walk():
	    if p.is_multipart():
	        continue
	    data = p.get_payload(decode=True)
	    if p.get_filename() is None:
	        print("body: %r" % data.decode("utf-8"))
	    else:
	        print("att: %s %d %s" % (p.get_filename(), len(data),
	              hashlib.sha256(data).hexdigest()))
	EOF
}

@test "a message with a non-ASCII subject and three attachments arrives byte for byte" {
	listen
	build attachments
	run -0 --separate-stderr "$SM" -i bob@example.org <"$T/msg"
	[ -z "$stderr" ]
	[ "$(got bob)" -eq 1 ]
	diff -u "$T/expect" <(parts_of "$MAIL"/example.org/bob/Maildir/new/*)
}

@test "-t: To, Cc and Bcc each get the message once, and the Bcc address shows to nobody" {
	listen
	build headers
	run -0 --separate-stderr "$SM" -t -i bob@example.org <"$T/msg"
	[ "$(got bob)" -eq 1 ] && [ "$(got carol)" -eq 1 ] && [ "$(got dave)" -eq 1 ]
	! grep -q 'dave' "$MAIL"/example.org/bob/Maildir/new/* \
		"$MAIL"/example.org/carol/Maildir/new/*
	# one session for the three
	[ "$(grep -c ' connect$' "$HLOG")" -eq 1 ]
}

@test "without -t only the operands get it; -v lists the header fields dropped" {
	listen
	build headers
	run -0 --separate-stderr "$SM" -v -i bob@example.org <"$T/msg"
	[ "$(got bob)" -eq 1 ] && [ "$(got carol)" -eq 0 ] && [ "$(got dave)" -eq 0 ]
	for f in Message-ID Cc In-Reply-To References X-Mailer; do
		grep -qx "usmtp-sendmail: header field $f dropped: USMTP cannot carry it" <<<"$stderr"
	done
	grep -qx -- '-> subject: headers' <<<"$stderr"
	# what the server wrote instead
	! grep -qi '^In-Reply-To:' "$MAIL"/example.org/bob/Maildir/new/*
}

@test "six attachments: exit 65 and nothing sent, no connection made" {
	listen
	build six
	run -65 --separate-stderr "$SM" -i bob@example.org <"$T/msg"
	[[ $stderr == "usmtp-sendmail: the message was not sent: "* ]]
	[[ $stderr == *"attachments"* ]]
	! grep -q ' connect$' "$HLOG" 2>/dev/null
}

@test "a body or attachment over the server's limit: 552, exit 65, nothing delivered" {
	listen --max-body 1000 --max-attachment 2000
	build bigbody
	run -65 --separate-stderr "$SM" -i bob@example.org carol@example.org <"$T/msg"
	[[ ${stderr_lines[0]} == "usmtp-sendmail: bob@example.org: body: too large: "* ]]
	[ "${stderr_lines[1]}" = "usmtp-sendmail: carol@example.org: not sent: the session ended" ]
	build bigatt
	run -65 --separate-stderr "$SM" -i bob@example.org <"$T/msg"
	[[ $stderr == "usmtp-sendmail: big.bin: too large: "* ]]
	[ "$(got bob)" -eq 0 ] && [ "$(got carol)" -eq 0 ]
}

@test "-f must be the login address; without a configured user it is the login" {
	listen
	build attachments
	run -0 --separate-stderr "$SM" -f alice@example.org -i bob@example.org <"$T/msg"
	run -0 --separate-stderr "$SM" -f '<ALICE@example.org>' -i bob@example.org <"$T/msg"
	run -64 --separate-stderr "$SM" -f mallory@example.org -i bob@example.org <"$T/msg"
	[ "$stderr" = "usmtp-sendmail: -f mallory@example.org: USMTP sends as the login address, alice@example.org; the sender cannot be another" ]
	[ "$(got bob)" -eq 2 ]
	# no user in the file: -f names it (and -u would too)
	sed -i '/^user /d' "$CONF"
	run -0 --separate-stderr "$SM" -f alice@example.org -i bob@example.org <"$T/msg"
	run -64 --separate-stderr "$SM" -i bob@example.org <"$T/msg"
	[ "$stderr" = "usmtp-sendmail: no sender: set user in the configuration file, or give -u or -f ADDRESS" ]
	[ "$(got bob)" -eq 3 ]
}

@test "the options mail tools pass are taken: -i, -oi, -oem, -odi, -F, -bm, -N, -R, -V" {
	listen
	build attachments
	run -0 --separate-stderr "$SM" -oi -oem -odi -F 'Alice Example' -bm \
		-N never -R hdrs -V envid -i -- bob@example.org <"$T/msg"
	[ -z "$stderr" ]
	[ "$(got bob)" -eq 1 ]
	# other modes are not ours
	for m in -bs -bp -bd -bi; do
		run -64 --separate-stderr "$SM" "$m" <"$T/msg"
		[ "$stderr" = "usmtp-sendmail: $m: only -bm, send a message, is supported" ]
	done
}

@test "recipients as sendmail's callers write them: lists, names in angle brackets" {
	listen
	build attachments
	run -0 --separate-stderr "$SM" -i 'Bob <bob@example.org>, carol@example.org' \
		'"Dave D." <dave@example.org>' <"$T/msg"
	[ "$(got bob)" -eq 1 ] && [ "$(got carol)" -eq 1 ] && [ "$(got dave)" -eq 1 ]
}

@test "no recipient is a usage error (64), -t without any address a data error (65)" {
	listen
	build attachments
	run -64 --separate-stderr "$SM" -i <"$T/msg"
	[ "$stderr" = "usmtp-sendmail: no recipient: name them as operands, or give -t to take them from the To, Cc and Bcc header fields" ]
	printf 'Subject: none\n\nbody\n' >"$T/none"
	run -65 --separate-stderr "$SM" -t -i <"$T/none"
	[ "$stderr" = "usmtp-sendmail: the message has no To, Cc or Bcc address (-t)" ]
}

@test "usmtp-client --sendmail and a link named sendmail are the same interface" {
	listen
	build attachments
	run -0 --separate-stderr usmtp-client --sendmail -t -i <"$T/msg"
	ln -s "$TOP/usmtp-client" "$T/bin/sendmail"
	run -0 --separate-stderr "$T/bin/sendmail" -t -oi <"$T/msg"
	[ "$(got bob)" -eq 2 ]
	diff -u "$T/expect" <(parts_of "$(ls "$MAIL"/example.org/bob/Maildir/new/* | head -n 1)")
}

@test "a server that cannot be reached: 75, as sendmail's callers expect for 'try later'" {
	listen
	stop_pid "$SA_PID"
	SA_PID=
	build attachments
	run -75 --separate-stderr "$SM" -i bob@example.org <"$T/msg"
	[[ $stderr == "usmtp-sendmail: cannot connect to 127.0.0.1 port $PORT: Connection refused" ]]
}

@test "a plain message without MIME, CRLF line ends: its whole body" {
	listen
	printf 'From: alice@example.org\r\nTo: bob@example.org\r\nSubject: plain\r\n\r\nline one\r\nline two\r\n' >"$T/plain"
	run -0 --separate-stderr "$SM" -t <"$T/plain"
	run -0 parts_of "$MAIL"/example.org/bob/Maildir/new/*
	[ "$output" = $'subject: plain\nbody: \'line one\\nline two\\n\'' ]
}
