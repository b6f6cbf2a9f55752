#!/usr/bin/env bats
# The handler over real TCP, behind systemd-socket-activate --inetd -a
# (the per-connection model of usmtp.socket with Accept=yes), on IPv4 and
# IPv6 loopback.

load helpers

setup() {
	usmtp_setup
	add_test_users
	PORT=$(free_port)
}

teardown() {
	stop_pid "${SA_PID:-}"
}


@test "handshake, greeting, unknown command and BYE over TCP on 127.0.0.1" {
	start_socket_activate "$PORT" 127.0.0.1
	tcp_golden hs-document 127.0.0.1 "$PORT"
	grep -q "peer=127.0.0.1:[0-9]* handshake result=ok dialect=document" "$HLOG"
	grep -q "peer=127.0.0.1:[0-9]* end reason=bye" "$HLOG"
}

@test "handshake, greeting, unknown command and BYE over TCP on [::1]" {
	start_socket_activate "$PORT" "[::1]"
	tcp_golden hs-document ::1 "$PORT"
	grep -q "peer=\[::1\]:[0-9]* handshake result=ok" "$HLOG"
}

@test "a login and a message with attachments over TCP (IPv4)" {
	start_socket_activate "$PORT" 127.0.0.1
	tcp_golden send-attach-doc 127.0.0.1 "$PORT"
	[ "$(ls "$MAIL/example.org/bob/Maildir/new" | wc -l)" -eq 1 ]
}

@test "the reference client's recorded session over TCP gets its 40 replies" {
	vector_setup
	HANDLER=$VHANDLER
	start_socket_activate "$PORT" 127.0.0.1
	# the recorded bytes, then all the handler sends until it closes
	# (shut-none: the connection stays open for writing, as a client's)
	timeout 20 socat -t 20 - "TCP:127.0.0.1:$PORT,shut-none" \
		<"$VECTORS/session-1/client.bin" >"$T/out.bin"
	vector_replies 1 40
	[ "$(ls "$MAIL/wp.pl/testprotokolu2/Maildir/new" | wc -l)" -eq 2 ]
}
