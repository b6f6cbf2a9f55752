#!/usr/bin/env bats
# Secure mode (usmtp(7), SECURE MODE): whole sessions between the real
# client and handler over a socket pair and over TCP, attachments around
# the record size, a man in the middle (tests/tamper-proxy.py) changing,
# dropping and reordering records or the plaintext negotiation, a
# recorded session replayed, and the fallback to 1.0.

load helpers

setup() {
	client_setup
	SHANDLER=$HANDLER	# with secure mode; HANDLER10 without
	SA_PID=
}

teardown() {
	stop_pid "$SA_PID"
	[ -z "${MADE_ETC:-}" ] || rm -rf /etc/usmtp
}

# send [client options]: alice sends a mail to bob in batch mode; the
# body comes from standard input.
send() {
	timeout 120 usmtp-client --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-file "$T/pw" -t bob@example.org -s secure "$@"
}


# attachment_sha FILE: the SHA-256 of the one attachment in FILE, parsed
# by Python's email package.
attachment_sha() {
	$PY - "$1" <<-'EOF'
	import email, email.policy, hashlib, sys
	m = email.message_from_binary_file(open(sys.argv[1], "rb"),
	    policy=email.policy.default)
	for part in m.walk():
	    if part.get_filename() is not None:
	        print(hashlib.sha256(part.get_payload(decode=True)).hexdigest())
	EOF
}

@test "secure mode: attachments of 0, 1, 65518, 65519 and 10 MiB + 1 bytes arrive byte for byte" {
	for n in 0 1 65518 65519 10485761; do
		head -c "$n" /dev/urandom >"$T/att-$n"
		run -0 --separate-stderr send -a "$T/att-$n" \
			--exec "exec $SHANDLER 2>>$HLOG" <<<"size $n"
		[ -z "$stderr" ]
		f=$(ls -t "$MAIL"/example.org/bob/Maildir/new/* | head -n 1)
		[ "$(attachment_sha "$f")" = "$(sha256sum <"$T/att-$n" | cut -d' ' -f1)" ]
	done
	[ "$(delivered_count)" -eq 5 ]
	[ "$(grep -c 'handshake result=ok security=noise' "$HLOG")" -eq 5 ]
	! grep -q 'security=1.0' "$HLOG"
}

@test "secure mode over TCP, IPv4 and IPv6, behind systemd-socket-activate" {
	for addr in 127.0.0.1 ::1; do
		port=$(free_port)
		case $addr in *:*) start_socket_activate "$port" "[$addr]" ;;
		*) start_socket_activate "$port" "$addr" ;; esac
		run -0 --separate-stderr send -H "$addr" -p "$port" -v <<<"over $addr"
		[[ $stderr == *"usmtp-client: secure mode"* ]]
		stop_pid "$SA_PID"
		SA_PID=
	done
	[ "$(delivered_count)" -eq 2 ]
	[ "$(grep -c 'handshake result=ok security=noise' "$HLOG")" -eq 2 ]
}

@test "secure mode keeps trailing spaces and a body with .CRLFCRLF inside" {
	printf 'ends with spaces   ' >"$T/spaces"
	printf 'line\r\n.\r\n\r\nafter the dot line\n' >"$T/body"
	run -0 --separate-stderr send -a "$T/spaces" -b "$T/body" \
		--exec "exec $SHANDLER 2>>$HLOG" </dev/null
	f=$(ls "$MAIL"/example.org/bob/Maildir/new/*)
	[ "$(attachment_sha "$f")" = "$(sha256sum <"$T/spaces" | cut -d' ' -f1)" ]
	$PY - "$f" <<-'EOF'
	import email, email.policy, sys
	m = email.message_from_binary_file(open(sys.argv[1], "rb"),
	    policy=email.policy.default)
	body = m.get_body(("plain",)).get_content()
	assert "after the dot line" in body, repr(body)
	EOF
}

# tampered OPTIONS...: a session through tamper-proxy.py with OPTIONS,
# which must fail with nothing delivered and the handler saying why.
tampered() {
	head -c 300000 /dev/urandom >"$T/att"
	run --separate-stderr send -a "$T/att" --exec \
		"exec $PY $TOP/tests/tamper-proxy.py $* -- $SHANDLER 2>>$HLOG" \
		<<<"tampered"
	echo "client: $status $stderr"
	[ "$status" -ne 0 ]
	[ "$(delivered_count)" -eq 0 ]
}

@test "a flipped bit in a client record ends the session: nothing delivered, the handler says why" {
	for n in 1 3 9; do
		for off in 0 5 20; do
			tampered --flip c "$n" "$off"
		done
	done
	[ "$(grep -c 'record result=fail security=noise reason="record authentication failed"' "$HLOG")" -eq 9 ]
	! grep -q 'deliver ' "$HLOG"
}

@test "a flipped bit in the attachment's content ends the session and leaves no file" {
	# records 1-9 are the commands up to the attachment header; content
	# follows
	tampered --flip c 11 1000
	grep -q 'record result=fail security=noise reason="record authentication failed"' "$HLOG"
	grep -q 'end reason=record state=S_ATT_DATA' "$HLOG"
}

@test "a flipped bit in a server record: the client stops and says why" {
	for n in 1 4; do
		tampered --flip s "$n" 3
		[ "$status" -eq 76 ]
		[[ $stderr == *"record authentication failed: the connection may have been tampered with"* ]]
	done
}

@test "a dropped or reordered client record ends the session" {
	# records 11 to 15 carry the attachment's content, one after another
	tampered --drop c 12
	tampered --swap c 13
	[ "$(grep -c 'record result=fail security=noise reason="record authentication failed"' "$HLOG")" -eq 2 ]
}

@test "a changed byte in the plaintext negotiation breaks the handshake" {
	tampered --upcase-algos
	grep -q 'handshake result=fail security=noise' "$HLOG"
	[[ $stderr == *"secure mode: "* ]]
}

@test "a tampered handshake message ends the session without a reply" {
	tampered --flip c 0 40
	grep -q 'handshake result=fail security=noise' "$HLOG"
	tampered --flip s 0 40
	[[ $stderr == *"the handshake failed"* ]]
}

@test "a recorded secure session replayed to the handler delivers nothing" {
	run -0 --separate-stderr send --exec \
		"exec $PY $TOP/tests/tamper-proxy.py --record $T/rec.bin -- $SHANDLER 2>>$HLOG" \
		<<<"recorded"
	[ "$(delivered_count)" -eq 1 ]
	run -1 sh -c "$SHANDLER <$T/rec.bin >/dev/null 2>>$HLOG"
	[ "$(delivered_count)" -eq 1 ]
	grep -q 'record result=fail security=noise reason="record authentication failed"' "$HLOG"
}

@test "prefer falls back to 1.0 against a handler without secure mode, and says so" {
	run -0 --separate-stderr send --exec "exec $HANDLER10 2>>$HLOG" <<<"1.0"
	[[ $stderr == *"the server does not offer secure mode: this session is protected by USMTP 1.0 only"* ]]
	[ "$(delivered_count)" -eq 1 ]
	grep -q 'handshake result=fail code=502 offer=secure' "$HLOG"
	grep -q 'handshake result=ok dialect=document security=1.0' "$HLOG"
}

@test "require refuses a handler without secure mode; off speaks 1.0 to one that has it" {
	run -69 --separate-stderr send --secure require --exec "exec $HANDLER10 2>>$HLOG" <<<"x"
	[[ $stderr == *"does not offer secure mode (--secure require)"* ]]
	[ "$(delivered_count)" -eq 0 ]
	run -0 --separate-stderr send --secure off --exec "exec $SHANDLER 2>>$HLOG" <<<"off"
	[ -z "$stderr" ]
	grep -q 'handshake result=ok dialect=document security=1.0' "$HLOG"
	! grep -q 'security=noise' "$HLOG"
}

@test "the handler takes secure mode's key from /etc/usmtp when both files are there, and none turns it off" {
	[ ! -e /etc/usmtp ] || skip "/etc/usmtp exists on this machine; the test would change it"
	mkdir -p /etc/usmtp
	MADE_ETC=1
	cp "$KEYS/server-x25519.pem" "$KEYS/server-x25519.key" /etc/usmtp/
	H=${HANDLER10% --noise-cert none --noise-key none}
	run -0 --separate-stderr send --secure require --exec "exec $H 2>>$HLOG" <<<"defaults"
	run -69 --separate-stderr send --secure require --exec "exec $HANDLER10 2>>$HLOG" <<<"none"
	[ "$(delivered_count)" -eq 1 ]
	[ "$(grep -c 'handshake result=ok security=noise' "$HLOG")" -eq 1 ]
}
