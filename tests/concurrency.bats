#!/usr/bin/env bats
# concurrency.bats -- handlers and usmtp-users at the same time:
# a handler started while the user database is being rewritten still logs
# in; many sessions at once over TCP through systemd-socket-activate; the
# login over TCP on IPv4 and IPv6 loopback with the client checking the
# host name against the certificate.

load helpers

SESSIONS=20

setup() {
	usmtp_setup
	add_test_users
	SA_PID= ADDER=
}

teardown() {
	stop_pid "$ADDER"
	stop_pid "$SA_PID"
}

# start_adder: adds users (cheapest KDF) in the background until
# $T/stop exists or 2000 are added, each add a whole rewrite of the
# database (auth_update: copy, fsync, rename); sets ADDER.  Waits for the
# first add, so that the sessions run while it writes.
start_adder() {
	(
		i=0
		while [ ! -e "$T/stop" ] && [ $i -lt 2000 ]; do
			printf 'pw%d\n' $i | usmtp-users --db "$DB" add \
			    "user$i@example.net" --password-stdin --cost 1 ||
			    echo "add $i failed" >>"$T/adder.err"
			i=$((i + 1))
			echo $i >"$T/added"
		done
	) &
	ADDER=$!
	wait_until 5 test -s "$T/added"
}

# stop_adder: stops the writer, checks it never failed and added some.
stop_adder() {
	touch "$T/stop"
	wait "$ADDER"
	ADDER=
	[ ! -e "$T/adder.err" ] || { cat "$T/adder.err"; false; }
	echo "users added meanwhile: $(cat "$T/added")"
	[ "$(cat "$T/added")" -gt 0 ]
}



@test "$SESSIONS handlers started one after another while usmtp-users rewrites the database all log in" {
	start_adder
	local i
	for i in $(seq "$SESSIONS"); do
		golden login-good
	done
	stop_adder
	[ "$(grep -c 'login user=alice@example.org result=ok' "$HLOG")" -eq "$SESSIONS" ]
	run -1 grep -E 'error users=' "$HLOG"
}

@test "$SESSIONS concurrent sessions over TCP log in while users are being added" {
	local port i pids=()
	port=$(free_port)
	start_socket_activate "$port" 127.0.0.1
	start_adder
	for i in $(seq "$SESSIONS"); do
		tcp_script login-good 127.0.0.1 "$port" >"$T/out.$i" 2>"$T/err.$i" &
		pids+=($!)
	done
	for i in $(seq "$SESSIONS"); do
		wait "${pids[$((i - 1))]}" || { echo "session $i failed"; cat "$T/err.$i"; false; }
	done
	stop_adder
	for i in $(seq "$SESSIONS"); do
		golden_tcp login-good "$(cat "$T/out.$i")"
	done
	[ "$(grep -c 'login user=alice@example.org result=ok' "$HLOG")" -eq "$SESSIONS" ]
	# one handler process per connection
	[ "$(grep -o 'usmtp-handler\[[0-9]*\]' "$HLOG" | sort -u | wc -l)" -eq "$SESSIONS" ]
}

@test "a login over TCP on 127.0.0.1 through systemd-socket-activate matches the golden transcript" {
	local port
	port=$(free_port)
	start_socket_activate "$port" 127.0.0.1
	tcp_golden login-good 127.0.0.1 "$port"
	grep -q 'peer=127\.0\.0\.1:[0-9]* login user=alice@example.org result=ok' "$HLOG"
}

@test "a login over TCP on [::1] through systemd-socket-activate matches the golden transcript" {
	local port
	port=$(free_port)
	start_socket_activate "$port" "[::1]"
	tcp_golden login-good ::1 "$port"
	grep -q 'peer=\[::1\]:[0-9]* login user=alice@example.org result=ok' "$HLOG"
}

@test "the client refuses a host name the certificate does not name" {
	local port
	port=$(free_port)
	# the certificate names localhost, 127.0.0.1 and ::1; 127.0.0.2 is
	# loopback too, but not in it
	start_socket_activate "$port" 127.0.0.2
	run -78 tcp_script login-good 127.0.0.2 "$port"
	run -1 grep -q ' login ' "$HLOG"
}
