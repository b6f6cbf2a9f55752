#!/usr/bin/env bats
# haproxy.bats -- --proxy-protocol behind a real HAProxy (Debian package
# haproxy), run by the tests in the foreground with the shipped
# examples/haproxy.cfg, changed only in its addresses, ports and logging:
# one frontend on loopback in front of two "hosts", each a handler with
# --proxy-protocol behind systemd-socket-activate with its own log and
# throttle file.  Clients connect from 127.0.0.9 (socat binds it) and
# both hosts must see 127.0.0.9, not HAProxy's 127.0.0.1, in their logs,
# the Received: header and the throttle.  Then the PROXY header without
# HAProxy: connections that lack it, and the option off.  The parser
# itself is tested in tests/unit/proxy-test.c.

load helpers

CLIENT_ADDR=127.0.0.9

setup() {
	usmtp_setup
	add_test_users
	BASE=$HANDLER
	SA1= SA2= HA_PID=
}

teardown() {
	stop_pid "$HA_PID"
	stop_pid "$SA1"
	stop_pid "$SA2"
}

# need_haproxy: skips, saying why, when HAProxy or socat cannot run.
need_haproxy() {
	command -v haproxy >/dev/null ||
	    skip "haproxy not installed (Debian package haproxy)"
	command -v socat >/dev/null ||
	    skip "socat not installed (Debian package socat)"
	haproxy -v >/dev/null 2>&1 || skip "haproxy does not run"
}

# hosts [handler options]: two handlers with --proxy-protocol, host 1
# on 127.0.0.1:$B1 logging to $H1LOG, host 2 on $B2 to $H2LOG, each with
# its own throttle file $T/throttle1.db, $T/throttle2.db.
hosts() {
	B1=$(free_port)
	HANDLER="$BASE --proxy-protocol --throttle-db $T/throttle1.db $*"
	HLOG=$T/host1.log
	start_socket_activate "$B1" 127.0.0.1
	SA1=$SA_PID
	B2=$(free_port)
	HANDLER="$BASE --proxy-protocol --throttle-db $T/throttle2.db $*"
	HLOG=$T/host2.log
	start_socket_activate "$B2" 127.0.0.1
	SA2=$SA_PID
	H1LOG=$T/host1.log H2LOG=$T/host2.log
	touch "$H1LOG" "$H2LOG"
}

# haproxy_start [sed expressions...]: examples/haproxy.cfg with the
# frontend on 127.0.0.1:$FPORT and [::1]:$FPORT, the hosts at $B1 and
# $B2, no chroot, user or daemon, logging to stderr ($T/haproxy.log),
# then the given sed expressions; HAProxy in the foreground (HA_PID).
haproxy_start() {
	local e args=()
	FPORT=$(free_port)
	for e in "$@"; do args+=(-e "$e"); done
	sed -e '/^[[:space:]]*\(chroot\|user\|group\|daemon\)\b/d' \
	    -e 's|^\([[:space:]]*log\) /dev/log .*|\1 stderr format short local0 info|' \
	    -e "s|bind :::1338 |bind ::1:$FPORT |" \
	    -e "s|bind :1338\$|bind 127.0.0.1:$FPORT|" \
	    -e "s|192\.0\.2\.11:1338|127.0.0.1:$B1|" \
	    -e "s|192\.0\.2\.12:1338|127.0.0.1:$B2|" \
	    ${args[@]+"${args[@]}"} \
	    "$TOP/examples/haproxy.cfg" >"$T/haproxy.cfg"
	run haproxy -c -f "$T/haproxy.cfg"
	[ "$status" -eq 0 ] || skip "haproxy -c refuses the test's configuration: $output"
	haproxy -db -f "$T/haproxy.cfg" >>"$T/haproxy.log" 2>&1 &
	HA_PID=$!
	wait_port "$FPORT" || { cat "$T/haproxy.log"; return 1; }
}

# via NAME [socat address]: runs tests/transcripts/NAME.in through
# HAProxy from $CLIENT_ADDR (or over the given socat address).  The
# "[handler exit N]" line the client adds is socat's status here, and
# is left out.
via() {
	local to=${2:-TCP:127.0.0.1:$FPORT,bind=$CLIENT_ADDR}
	(set -o pipefail; cd "$TRANSCRIPTS" && timeout 30 usmtp-script \
	    --ca "$KEYS/ca.pem" --exec "exec socat - $to" \
	    "$TRANSCRIPTS/$1.in" | grep -v '^\[handler exit')
}


# wait_log FILE REGEX: waits (10 s at most) for a line in FILE.
wait_log() {
	wait_until 10 grep -q -s -E -- "$2" "$1" && return 0
	echo "no line matching $2 in $1:"; cat "$1"
	return 1
}

# sessions FILE: the number of real (not health check) sessions logged.
sessions() {
	grep -c ' connect via=.* proxy=v[12]$' "$1" || true
}

@test "round robin: sessions from $CLIENT_ADDR land on both hosts, which log the client and HAProxy as via=" {
	need_haproxy
	hosts
	haproxy_start 's|balance source|balance roundrobin|'
	run -0 via login-good
	golden_tcp login-good
	run -0 via login-good
	golden_tcp login-good
	[ "$(sessions "$H1LOG")" -eq 1 ]
	[ "$(sessions "$H2LOG")" -eq 1 ]
	for f in "$H1LOG" "$H2LOG"; do
		grep -q -E "peer=127\.0\.0\.9:[0-9]+ connect via=127\.0\.0\.1:[0-9]+ proxy=v2\$" "$f"
		grep -q -E "peer=127\.0\.0\.9:[0-9]+ login user=alice@example.org result=ok\$" "$f"
		grep -q -E "peer=127\.0\.0\.9:[0-9]+ end reason=bye " "$f"
		# HAProxy's address only as via=, and in its own checks
		run -1 grep -E 'peer=127\.0\.0\.1:[0-9]+ (handshake|login)' "$f"
	done
}

@test "a message through HAProxy has the client's address in its Received: header" {
	need_haproxy
	hosts
	haproxy_start
	run -0 via send-plain
	golden_tcp send-plain
	run -0 ls "$MAIL/example.org/bob/Maildir/new"
	[ "${#lines[@]}" -eq 1 ]
	f=$MAIL/example.org/bob/Maildir/new/${lines[0]}
	grep -q -E '^Received: from 127\.0\.0\.9(:[0-9]+)?' "$f"
	run -1 grep -q '127\.0\.0\.1' "$f"
}

@test "round robin: failed logins from $CLIENT_ADDR lock out $CLIENT_ADDR on each host, not HAProxy's address" {
	need_haproxy
	hosts --throttle-max 2 --throttle-window 60
	haproxy_start 's|balance source|balance roundrobin|'
	# one failure on each host, then the second on each reaches the limit
	run -0 via login-wrong
	golden_tcp login-wrong
	run -0 via login-wrong
	golden_tcp login-wrong
	run -0 via throttle-limit
	golden_tcp throttle-limit
	run -0 via throttle-limit
	golden_tcp throttle-limit
	run -0 via throttle-refused
	golden_tcp throttle-refused
	run -0 via throttle-refused
	golden_tcp throttle-refused
	for f in "$H1LOG" "$H2LOG"; do
		grep -q 'result=throttled key=127.0.0.9 failures=2' "$f"
		grep -q ' login result=throttled key=127.0.0.9 failures=2$' "$f"
		run -1 grep -q 'key=127\.0\.0\.1 ' "$f"
	done
	[ -s "$T/throttle1.db" ] && [ -s "$T/throttle2.db" ]
	# a client from HAProxy's own address, through HAProxy, on each host
	CLIENT_ADDR=127.0.0.1
	run -0 via login-good
	golden_tcp login-good
	run -0 via login-good
	golden_tcp login-good
}

@test "balance source (the example's): all of $CLIENT_ADDR's sessions meet one host, so its throttle limit is the farm's" {
	need_haproxy
	hosts --throttle-max 2 --throttle-window 60
	haproxy_start
	run -0 via login-wrong
	golden_tcp login-wrong
	run -0 via throttle-limit
	golden_tcp throttle-limit
	run -0 via throttle-refused
	golden_tcp throttle-refused
	n1=$(sessions "$H1LOG") n2=$(sessions "$H2LOG")
	[ $((n1 + n2)) -eq 3 ] && [ $((n1 * n2)) -eq 0 ]
}

@test "send-proxy (v1): the hosts see $CLIENT_ADDR" {
	need_haproxy
	hosts
	haproxy_start 's|send-proxy-v2|send-proxy|'
	grep -q ' send-proxy check' "$T/haproxy.cfg"
	run -0 via login-good
	golden_tcp login-good
	cat "$H1LOG" "$H2LOG" >"$T/both.log"
	grep -q -E "peer=127\.0\.0\.9:[0-9]+ connect via=127\.0\.0\.1:[0-9]+ proxy=v1\$" "$T/both.log"
	grep -q -E "peer=127\.0\.0\.9:[0-9]+ login user=alice@example.org result=ok\$" "$T/both.log"
}

@test "a client on [::1] through HAProxy is logged as [::1], HAProxy as via=127.0.0.1" {
	need_haproxy
	hosts
	haproxy_start
	run -0 via login-good "TCP6:[::1]:$FPORT"
	golden_tcp login-good
	cat "$H1LOG" "$H2LOG" >"$T/both.log"
	grep -q -E 'peer=\[::1\]:[0-9]+ connect via=127\.0\.0\.1:[0-9]+ proxy=v2$' "$T/both.log"
	grep -q -E 'peer=\[::1\]:[0-9]+ login user=alice@example.org result=ok$' "$T/both.log"
}

@test "HAProxy's health checks are LOCAL sessions that end after 201 and never count as failed logins" {
	need_haproxy
	hosts --throttle-max 1
	haproxy_start 's|inter 10s|inter 100ms|'
	for f in "$H1LOG" "$H2LOG"; do
		wait_log "$f" 'end reason=eof state=S_ALGOS'
		grep -q -E 'peer=(127\.0\.0\.1:[0-9]+|local) connect via=(127\.0\.0\.1:[0-9]+|local) proxy=local$' "$f"
		run -1 grep -q -E ' (login|reply) ' "$f"
	done
	[ ! -e "$T/throttle1.db" ] && [ ! -e "$T/throttle2.db" ]
	# and HAProxy has both hosts up
	run -0 via login-good
	golden_tcp login-good
}

@test "a connection straight to a host that expects the header is closed without a reply, and logged" {
	hosts
	tcp_script hs-document 127.0.0.1 "$B1" >"$T/out" 2>&1 || true
	[ ! -s "$T/out" ]
	wait_log "$H1LOG" 'end reason=proxy state=S_HELLO'
	grep -q -E '^usmtp-handler\[[0-9]+\]: [0-9a-f]{8} peer=127\.0\.0\.1:[0-9]+ proxy result=fail reason="not a PROXY protocol header"$' "$H1LOG"
	run -1 grep -q -E ' (connect|handshake|reply) ' "$H1LOG"
}

@test "a connection that sends nothing is closed after 5 s without a reply" {
	hosts
	run -0 $PY - "$B1" <<-'EOF'
	import socket, sys, time
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
	t0 = time.monotonic()
	got = s.recv(100)
	print(len(got), round(time.monotonic() - t0))
	EOF
	[ "$output" = "0 5" ]
	wait_log "$H1LOG" 'end reason=proxy state=S_HELLO'
	grep -q 'proxy result=fail reason="no PROXY header in time"$' "$H1LOG"
}

# Without HAProxy: the handler over a socket pair, the header written by
# the client's raw directive.

# script_with HEADER LINE...: a client script that sends HEADER raw,
# then LINEs; prints its path.
script_with() {
	local f=$T/script.$RANDOM
	printf 'raw %s\n' "$1" >"$f"
	shift
	printf '%s\n' "$@" >>"$f"
	echo "$f"
}

@test "without --proxy-protocol a PROXY line is only a bad hello: 503" {
	s=$(script_with 'PROXY TCP4 192.0.2.1 192.0.2.2 4711 1338\r\n' hello)
	run -0 client_script "$s"
	[ "$output" = "$(printf '503 Wrong ssl version\n[handler exit 1]')" ]
	grep -q 'peer=local handshake result=fail code=503 hello=PROXY\\x20TCP4' "$HLOG"
	run -1 grep -q 'via=' "$HLOG"
}

@test "proxy-protocol = yes in the configuration file: the v1 header's client is the peer, also for the throttle" {
	printf 'proxy-protocol = yes\nthrottle-max = 5\n' >"$T/usmtp.conf"
	HANDLER="$BASE --config $T/usmtp.conf"
	mapfile -t body < <(grep -v '^#' "$TRANSCRIPTS/login-wrong.in")
	s=$(script_with 'PROXY TCP6 2001:db8::9 2001:db8::1 4711 1338\r\n' \
	    "${body[@]}")
	run -0 client_script "$s"
	check_golden login-wrong
	grep -q 'peer=\[2001:db8::9\]:4711 connect via=local proxy=v1$' "$HLOG"
	grep -q 'peer=\[2001:db8::9\]:4711 login user=alice@example.org result=fail key=2001:db8::/64 failures=1 net=2001:db8::/48 ' "$HLOG"
	[ -s "$T/throttle.db" ]
}

@test "a v2 LOCAL header keeps the connection's own address" {
	# signature, LOCAL, UNSPEC, length 0
	s=$(script_with '\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00' hello)
	run -0 client_script "$s" --proxy-protocol
	[ "${lines[0]}" = "201 ssl valid" ]
	grep -q 'peer=local connect via=local proxy=local$' "$HLOG"
}

@test "bad proxy-protocol values are refused" {
	run -78 usmtp-handler --config <(printf 'proxy-protocol = maybe\n')
	[[ $output == *"proxy-protocol: bad value"* ]]
	run -64 usmtp-handler --proxy-protocol=yes
}
