# load.bats -- many sessions at once over TCP on loopback: 16 clients in
# parallel, 32 sessions each (512 in all), each session one message with
# a 32 KiB attachment of its own client, through systemd-socket-activate
# and through xinetd with the shipped service file.  Every session must
# succeed and every message must be delivered exactly once, attachment
# intact (tests/load-check.py parses them with Python's email package).
# Bounded: a deadline for the whole run, a timeout on every client.
# Correctness under load, not speed: tools/bench measures speed.

load helpers

CLIENTS=16
SESSIONS=32		# per client
LOAD_DEADLINE_SEC=100	# the whole run; the rest are reported as failed

setup() {
	usmtp_setup
	add_user alice@example.org alice-pw
	add_user bob@example.org bob-pw
	mkdir "$T/att"
	local c
	for ((c = 0; c < CLIENTS; c++)); do
		head -c 32768 /dev/urandom >"$T/att/$c"
	done
	printf 'A message sent under load.\n' >"$T/body"
	: >"$T/fail"
}

teardown() {
	stop_pid "${SA_PID:-}"
	stop_pid "${XI_PID:-}"
}

# load_client C HOST PORT DEADLINE: client C's sessions one after the
# other, subject "load C S"; a session that fails, or is not started by
# DEADLINE (bash SECONDS), is recorded in $T/fail.
load_client() {
	local c=$1 host=$2 port=$3 deadline=$4 s rc
	for ((s = 0; s < SESSIONS; s++)); do
		if ((SECONDS > deadline)); then
			echo "load $c $s..: not run, deadline passed" >>"$T/fail"
			return 0
		fi
		rc=0
		USMTP_PASSWORD=alice-pw timeout 30 usmtp-client -H "$host" \
		    -p "$port" --ca "$KEYS/ca.pem" -u alice@example.org \
		    -t bob@example.org -s "load $c $s" -a "$T/att/$c" \
		    <"$T/body" 2>>"$T/client.err" || rc=$?
		((rc == 0)) || echo "load $c $s: exit $rc" >>"$T/fail"
	done
}

# load_run PORT HOST...: runs the CLIENTS clients in parallel, client C
# connecting to the (C mod count)th HOST, waits for all, and checks that no session failed and that Bob's Maildir holds
# exactly the CLIENTS * SESSIONS messages sent, each intact.
load_run() {
	local port=$1 c pids=() deadline=$((SECONDS + LOAD_DEADLINE_SEC))
	shift
	local hosts=("$@")
	for ((c = 0; c < CLIENTS; c++)); do
		load_client "$c" "${hosts[c % ${#hosts[@]}]}" "$port" \
		    "$deadline" &
		pids+=($!)
	done
	for c in "${pids[@]}"; do
		wait "$c"
	done
	if [ -s "$T/fail" ]; then
		echo "$(wc -l <"$T/fail") sessions failed:" >&2
		head -20 "$T/fail" "$T/client.err" >&2
		return 1
	fi
	local new=$MAIL/example.org/bob/Maildir/new
	run -0 find "$new" -type f
	[ "${#lines[@]}" -eq $((CLIENTS * SESSIONS)) ]
	run -0 timeout 60 "$PY" "$TOP/tests/load-check.py" "$new" "$T/att" \
	    "$CLIENTS" "$SESSIONS"
	[ "$output" = "ok $((CLIENTS * SESSIONS)) messages" ]
}


@test "512 sessions from 16 parallel clients through systemd-socket-activate all deliver, each message once and intact" {
	local port
	port=$(free_port)
	start_socket_activate "$port" 127.0.0.1
	load_run "$port" 127.0.0.1
}

# All 16 clients come from 127.0.0.1: the shipped per_source (16, as
# usmtp.socket's MaxConnectionsPerSource) must let them all in at once.
@test "512 sessions from 16 parallel clients through xinetd with the shipped file all deliver, each message once and intact" {
	xinetd_start
	load_run "$XPORT" 127.0.0.1
}
