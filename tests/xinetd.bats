# xinetd.bats -- the shipped xinetd service file, run by a real xinetd in
# the foreground on a loopback port: one service, IPv4 and IPv6 clients,
# a whole message delivered through it.

load helpers

# with_subject SUBJECT: prints the messages delivered to bob@example.org
# with that subject; fails when there is none.
with_subject() {
	local list
	list=$(delivered) || return 1
	[ -n "$list" ] && grep -l -F -x "Subject: $1" $list
}


# send_mail HOST SUBJECT: batch-mode client, alice to bob, body on stdin.
send_mail() {
	USMTP_PASSWORD="correct horse" timeout 30 usmtp-client -H "$1" \
	    -p "$XPORT" --ca "$KEYS/ca.pem" -u alice@example.org \
	    -t bob@example.org -s "$2"
}


setup() {
	usmtp_setup
	add_test_users
	xinetd_start
}

teardown() {
	stop_pid "${XI_PID:-}"
}

@test "xinetd listens on one IPv6 socket that serves both families" {
	run -0 ss -Hltn "sport = :$XPORT"
	[ "${#lines[@]}" -eq 1 ]
	# ss shows an IPv6 socket that also takes IPv4 as *:PORT, a
	# v6-only one as [::]:PORT
	[[ ${lines[0]} == *" *:$XPORT "* ]]
}

@test "a message sent over IPv4 through xinetd lands in the recipient's Maildir" {
	run -0 --separate-stderr send_mail 127.0.0.1 "over IPv4" <<<"hello over IPv4"
	run -0 with_subject "over IPv4"
	[ "${#lines[@]}" -eq 1 ]
	grep -q -F "hello over IPv4" "${lines[0]}"
}

@test "a message sent over IPv6 through xinetd lands in the recipient's Maildir" {
	run -0 --separate-stderr send_mail ::1 "over IPv6" <<<"hello over IPv6"
	run -0 with_subject "over IPv6"
	[ "${#lines[@]}" -eq 1 ]
	grep -q -F "hello over IPv6" "${lines[0]}"
}

# The shipped limits, with connections held open (back-to-back sessions
# would race xinetd's count of ended ones): per_source = 16 lets 16
# sessions from one address run at once and closes a 17th at once.
@test "the shipped per_source lets 16 sessions from one address in at once and closes a 17th" {
	run -0 timeout 60 "$PY" - "$XPORT" <<-\EOP
	import socket, sys
	port = int(sys.argv[1])
	def greet():
	    """Connects and says hello; the reply, b"" if closed at once."""
	    s = socket.create_connection(("127.0.0.1", port), timeout=10)
	    buf = b""
	    try:
	        s.sendall(b"hello ssl1.0?\r\n\r\n")
	        while not buf.endswith(b"\r\n\r\n"):
	            d = s.recv(100)
	            if not d:
	                break
	            buf += d
	    except ConnectionError:
	        pass
	    return s, buf
	held = []
	for i in range(16):
	    s, r = greet()
	    if r != b"201 ssl valid\r\n\r\n":
	        sys.exit("session %d: %r" % (i + 1, r))
	    held.append(s)
	s, r = greet()
	print("17th: %r" % r)
	held[0].close()
	EOP
	[ "${lines[-1]}" = "17th: b''" ]
}

@test "a scripted login through xinetd gets every reply in order and ends on BYE" {
	run -0 --separate-stderr tcp_script login-good 127.0.0.1 "$XPORT"
	golden_tcp login-good
}

@test "a wrong password through xinetd is refused (client exit 77) and nothing is delivered" {
	USMTP_PASSWORD=wrong run -77 --separate-stderr timeout 30 usmtp-client \
	    -H 127.0.0.1 -p "$XPORT" --ca "$KEYS/ca.pem" -u alice@example.org \
	    -t bob@example.org -s "wrong password" <<<"never"
	run -1 with_subject "wrong password"
}
