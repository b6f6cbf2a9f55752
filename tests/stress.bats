#!/usr/bin/env bats
# stress.bats -- overload: every connection slot held by stalled clients
# (the shipped per-source limit from 4 loopback addresses), and a
# legitimate client from a fifth address still gets a session through
# within the stress login deadline plus a few seconds (stress mode,
# usmtp-handler(8)).  systemd-socket-activate enforces neither
# MaxConnections= nor MaxConnectionsPerSource=, so the handler runs
# under the real xinetd with the shipped service file, whose instances
# and per_source are checked here to be usmtp.socket's two limits.

load helpers

STRESS_SEC=4		# stress-login-timeout in the test
SLACK_SEC=6		# stress mode checks once a second; start-up, login

setup() {
	usmtp_setup
	add_test_users
	STALL_PID=
	SYSLOG_PID=
	SYSLOG_WRAP=()
	syslog_start
	xinetd_start
	# Stalled sessions must not end by the idle timeout or the normal
	# login deadline within the test: only stress mode may cut them.
	cat >>"$T/etc/usmtp/usmtp.conf" <<-EOC
	timeout = 300
	login-timeout = 120
	max-sessions = $(shipped_limit MaxConnections)
	stress-login-timeout = $STRESS_SEC
	EOC
}

teardown() {
	stop_pid "$STALL_PID"
	stop_pid "${XI_PID:-}"
	syslog_stop
}

# shipped_limit NAME: NAME= from systemd/usmtp.socket.in.
shipped_limit() {
	sed -n "s/^$1=\([0-9]*\)$/\1/p" "$TOP/systemd/usmtp.socket.in"
}

# xinetd_limit NAME: "NAME = N" from xinetd/usmtp.in.
xinetd_limit() {
	sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\([0-9]*\)[[:space:]]*$/\1/p" \
	    "$TOP/xinetd/usmtp.in"
}

# stall SOURCES PER: PER connections from each of the SOURCES loopback
# addresses 127.0.0.2 onwards, each waiting for its 201 (a handler
# serves it), then silent until killed.  Sets STALL_PID; the script
# prints "held N" once all are up.
stall() {
	"$PY" - "$XPORT" "$1" "$2" >"$T/stall.out" 2>&1 <<-\EOP &
	import socket, sys, time
	port, sources, per = (int(a) for a in sys.argv[1:4])
	held = []
	for s in range(sources):
	    for i in range(per):
	        c = socket.socket()
	        c.bind(("127.0.0.%d" % (2 + s), 0))
	        c.settimeout(20)
	        c.connect(("127.0.0.1", port))
	        c.sendall(b"hello ssl1.0?\r\n\r\n")
	        r = b""
	        while not r.endswith(b"\r\n\r\n"):
	            d = c.recv(100)
	            if not d:
	                sys.exit("127.0.0.%d #%d: closed after %r" % (2 + s, i, r))
	            r += d
	        held.append(c)
	print("held %d" % len(held), flush=True)
	time.sleep(300)
	EOP
	STALL_PID=$!
	local i=0
	while ! grep -q '^held ' "$T/stall.out" && kill -0 "$STALL_PID" 2>/dev/null &&
	    [ $i -lt 600 ]; do
		sleep 0.1; i=$((i + 1))
	done
	cat "$T/stall.out"
	grep -q "^held $(( $1 * $2 ))$" "$T/stall.out"
}

# send_from ADDR SUBJECT: one message, alice to bob, over TCP from ADDR.
send_from() {
	USMTP_PASSWORD="correct horse" timeout 30 usmtp-client \
	    --secure off --exec "socat - TCP:127.0.0.1:$XPORT,bind=$1" \
	    --ca "$KEYS/ca.pem" \
	    -u alice@example.org -t bob@example.org -s "$2" <<<"through the stress"
}

@test "the xinetd service has usmtp.socket's limits" {
	[ "$(xinetd_limit instances)" = "$(shipped_limit MaxConnections)" ]
	[ "$(xinetd_limit per_source)" = "$(shipped_limit MaxConnectionsPerSource)" ]
}

@test "with every slot held by stalled clients from 4 addresses, a client from a fifth gets through within the stress deadline" {
	local max per sources start elapsed rc
	max=$(shipped_limit MaxConnections)
	per=$(shipped_limit MaxConnectionsPerSource)
	sources=$(( max / per ))
	[ "$sources" -ge 2 ] && [ "$sources" -le 4 ]
	stall "$sources" "$per"
	start=$SECONDS
	# Refused or cut off while the slots are full: try again.
	while :; do
		rc=0
		send_from 127.0.0.6 "under stress" >"$T/send.out" 2>&1 || rc=$?
		[ $rc -eq 0 ] && break
		[ $(( SECONDS - start )) -lt $(( STRESS_SEC + SLACK_SEC )) ] ||
		    { cat "$T/send.out"; false; }
		sleep 0.2
	done
	elapsed=$(( SECONDS - start ))
	echo "# got through after ${elapsed}s" >&3
	[ "$elapsed" -le $(( STRESS_SEC + SLACK_SEC )) ]
	grep -l -x 'Subject: under stress' "$MAIL"/example.org/bob/Maildir/new/*
	# the stalled sessions that made room were cut by stress mode
	grep -q 'login result=timeout reason=stress sessions=' "$T/syslog.log"
	grep -q 'end reason=stress code=500 state=S_ALGOS' "$T/syslog.log"
}
