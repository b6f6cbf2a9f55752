#!/usr/bin/env bats
# What usmtp-client says: -v's trace of the dialogue both ways (address,
# certificate, every frame, the password and contents never shown), -vv's
# sizes, padding and records; a server that is not USMTP; the messages of
# 401, 510 and 552; BYE only at the command prompt.

load helpers

setup() {
	client_setup
	SHANDLER=$HANDLER	# with secure mode; HANDLER10 without
	FAKE="$PY $TOP/tests/fake-server.py $KEYS/server.key $KEYS/server.pem"
	SA_PID=
}

teardown() {
	stop_pid "$SA_PID"
}

# send [client options]: alice to bob, the body on standard input.
send() {
	timeout 60 usmtp-client --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-file "$T/pw" -s trace "$@" bob@example.org
}

@test "-v over TCP: the address, the certificate and its check, then every frame both ways" {
	HANDLER=$SHANDLER
	port=$(free_port)
	start_socket_activate "$port" 127.0.0.1
	printf 'secret attachment text\n' >"$T/a.txt"
	run -0 --separate-stderr send -v -H 127.0.0.1 -p "$port" \
		-a "$T/a.txt" <<<"secret body text"
	diff -u - <(grep -v '^usmtp-client: certificate' <<<"$stderr") <<-EOF
	usmtp-client: connecting to 127.0.0.1 port $port
	usmtp-client: connected to 127.0.0.1 port $port
	-> hello ssl1.0?
	<- 201 ssl valid
	-> support noise-nk-25519-aesgcm-sha256?
	<- 202 algos valid [a certificate, $(wc -c <"$KEYS/server-x25519.pem") bytes]
	-> [Noise message 1: e, es; 1.0 Hello]
	<- [Noise message 2: e, ee; 100 Hello supported_protocols usmtp supported_versions 1.0]
	usmtp-client: secure mode
	-> LOGIN
	<- 111 Send your e-mail adress
	-> alice@example.org
	<- 112 Send your password
	-> ********
	<- 210 Authentication successful
	-> SEND MAIL
	<- 121 Send sender adress
	-> mail from: alice@example.org
	<- 200 OK
	<- 122 Send recipient adress
	-> mail to: bob@example.org
	<- 200 OK
	<- 123 Send subject
	-> subject: trace
	<- 200 OK
	<- 124 Send data, ending with one blank line and END
	-> data: [the body, 17 bytes]
	<- 200 OK
	<- 125 Send number of attachments
	-> 1
	<- 200 OK
	<- 126 Send attachment number 1
	-> Content-Length: 23\r\nFilename: a.txt\r\nSize: 23
	<- 200 OK
	-> [the content of a.txt, 23 bytes]
	<- 200 OK
	<- 220 Email was sent
	usmtp-client: bob@example.org: sent
	-> BYE
	EOF
	grep -q "^usmtp-client: certificate: subject CN = localhost; names DNS:localhost IP:127.0.0.1 IP:::1; issuer CN = .*; valid from .* until .* GMT$" <<<"$stderr"
	grep -qx "usmtp-client: certificate verified: signed by a CA of $KEYS/ca.pem, valid now, issued for 127.0.0.1" <<<"$stderr"
	# never the password, the body or the attachment's content
	! grep -q 'correct horse\|secret' <<<"$stderr"
}

@test "-vv adds each frame's size: pad spaces in 1.0, records in secure mode" {
	run -0 --separate-stderr send -vv --secure off \
		--exec "exec $HANDLER 2>>$HLOG" <<<"x"
	grep -qxF -- '-> hello ssl1.0?  [17 bytes on the wire]' <<<"$stderr"
	# 5 bytes, 11 spaces to 16, CR LF CR LF
	grep -qxF -- '-> LOGIN  [5 bytes + 11 pad, 20 on the wire]' <<<"$stderr"
	grep -qxF -- '-> 1.0 Hello  [9 bytes + 7 pad, 20 on the wire]' <<<"$stderr"
	# a 16-byte text gets 16 spaces (usmtp(7), Framing, always pad)
	grep -qxF -- '-> mail to: bob@example.org  [24 bytes + 8 pad, 36 on the wire]' <<<"$stderr"
	grep -qxF -- '<- 200 OK  [6 bytes + 10 pad, 20 on the wire]' <<<"$stderr"
	# the body ends with .CR LF CR LF
	grep -qxF -- '-> data: [the body, 2 bytes]  [8 bytes + 8 pad, 21 on the wire]' <<<"$stderr"
	run -0 --separate-stderr send -vv --exec "exec $SHANDLER 2>>$HLOG" <<<"x"
	# 2-byte length, flag, 5 bytes, 16-byte tag
	grep -qxF -- '-> LOGIN  [5 bytes, 1 record, 24 on the wire]' <<<"$stderr"
	grep -qxF -- '<- 200 OK  [6 bytes, 1 record, 25 on the wire]' <<<"$stderr"
	grep -qxF -- '-> [Noise message 1: e, es; 1.0 Hello]  [59 bytes on the wire]' <<<"$stderr"
}

@test "-vv counts the records of a large attachment in secure mode" {
	head -c 200000 /dev/urandom >"$T/big"
	run -0 --separate-stderr send -vv -a "$T/big" \
		--exec "exec $SHANDLER 2>>$HLOG" <<<"x"
	# 65518 bytes a record: 4 records, each 19 bytes more
	grep -qxF -- '-> [the content of big, 200000 bytes]  [200000 bytes, 4 records, 200076 on the wire]' <<<"$stderr"
}

@test "an SMTP server: 'not a USMTP server (it said: 220 ...)', at once, not after the timeout" {
	SECONDS=0
	run -76 --separate-stderr send --timeout 30 --exec \
		"printf '220 mail.example.org ESMTP Postfix\\r\\n'; cat >/dev/null"
	[ "$SECONDS" -lt 10 ]
	[ "$stderr" = "usmtp-client: not a USMTP server (it said: 220 mail.example.org ESMTP Postfix)" ]
}

@test "a web server: 'not a USMTP server', its bytes escaped" {
	run -76 --separate-stderr send --exec \
		"printf 'HTTP/1.1 400 Bad \\033[2JRequest\\r\\nServer: x\\r\\n\\r\\n'; cat >/dev/null"
	[ "$stderr" = 'usmtp-client: not a USMTP server (it said: HTTP/1.1 400 Bad \x1b[2JRequest\r\nServer: x)' ]
}

@test "a wrong password: 77, and no BYE, which the server would read as an address" {
	printf 'wrong\n' >"$T/pw"
	run -77 --separate-stderr send --exec "exec $SHANDLER 2>>$HLOG" <<<"x"
	[[ $stderr == "usmtp-client: alice@example.org: authentication failed (wrong password or unknown user): server said: 401 "* ]]
	# the client may close before the server's 111 is out: eof or error
	grep -Eq 'end reason=(eof|error) state=S_LOGIN_ADDR' "$HLOG"
	! grep -q 'reply code=301' "$HLOG"
}

@test "510: the client says the address is locked out for a while (77)" {
	HANDLER="$HANDLER --throttle-max 1"
	port=$(free_port)
	start_socket_activate "$port" 127.0.0.1
	printf 'wrong\n' >"$T/wrong"
	chmod 600 "$T/wrong"
	run -77 --separate-stderr send --secure off -H 127.0.0.1 -p "$port" \
		--password-file "$T/wrong" <<<"x"
	run -77 --separate-stderr send --secure off -H 127.0.0.1 -p "$port" <<<"x"
	[[ $stderr == *"login: too many failed logins: logins from this address are refused for a while; try again later: server said: 510 "* ]]
}

@test "552 names the limit when the server's reply gives it, and says so when not" {
	run -65 --separate-stderr send --exec "exec $SHANDLER --max-body 10 2>>$HLOG" <<<"more than ten bytes"
	[ "$stderr" = "usmtp-client: body: too large: over the server's size limit: server said: 552 Size limit exceeded" ]
	run -65 --separate-stderr send --exec "exec $FAKE \
		'111 a' '112 b' '210 c' '121 d' '200 e|122 f' '200 g|123 h' \
		'552 body over 1048576 bytes'" <<<"x"
	[[ $stderr == *"usmtp-client: subject: too large: the server's limit is 1048576 bytes: server said: 552 body over 1048576 bytes" ]]
	run -65 --separate-stderr send --exec "exec $FAKE \
		'111 a' '112 b' '210 c' '121 d' '200 e|122 f' '200 g|123 h' \
		'552 limit 25M'" <<<"x"
	[[ $stderr == *"too large: the server's limit is 25M: server said: 552 limit 25M" ]]
}
