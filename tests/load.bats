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

# xinetd_start: as tests/xinetd.bats starts it -- the shipped service
# file (xinetd/usmtp.in, paths substituted as the Makefile does) changed
# only in port, user and group, under a real xinetd in the foreground;
# per_source is set to XI_PER_SOURCE when that is set.  Sets XPORT and
# XI_PID.
xinetd_start() {
	XPORT=$(free_port)
	mkdir -p "$T/xinetd.d" "$T/etc/usmtp"
	cat >"$T/etc/usmtp/usmtp.conf" <<-EOC
	cert = $KEYS/server.pem
	key = $KEYS/server.key
	users = $DB
	maildir = $MAIL/%d/%u/Maildir
	timeout = 10
	EOC
	sed -e "s|@SBINDIR@|$TOP|g" -e "s|@BINDIR@|$TOP|g" \
	    -e "s|@SYSCONFDIR@|$T/etc|g" -e 's|@LOCALSTATEDIR@|/var|g' \
	    -e "s|^\([[:space:]]*port[[:space:]]*=\).*|\1 $XPORT|" \
	    -e "s|^\([[:space:]]*user[[:space:]]*=\).*|\1 $(id -un)|" \
	    -e "s|^\([[:space:]]*group[[:space:]]*=\).*|\1 $(id -gn)|" \
	    -e "${XI_PER_SOURCE:+s|^\([[:space:]]*per_source[[:space:]]*=\).*|\1 $XI_PER_SOURCE|}" \
	    "$TOP/xinetd/usmtp.in" >"$T/xinetd.d/usmtp"
	printf 'defaults\n{\n}\nincludedir %s\n' "$T/xinetd.d" >"$T/xinetd.conf"
	xinetd -dontfork -f "$T/xinetd.conf" -filelog "$T/xinetd.log" \
	    -pidfile "$T/xinetd.pid" 2>>"$T/xinetd.log" &
	XI_PID=$!
	wait_port "$XPORT" || { cat "$T/xinetd.log"; return 1; }
}

@test "512 sessions from 16 parallel clients through systemd-socket-activate all deliver, each message once and intact" {
	local port
	port=$(free_port)
	start_socket_activate "$port" 127.0.0.1
	load_run "$port" 127.0.0.1
}

# The shipped file allows 8 sessions per client address (per_source, as
# usmtp.socket's MaxConnectionsPerSource), and all 16 clients here come
# from 127.0.0.1 (usmtp-client cannot choose its source address): that
# one bound is raised to CLIENTS, the rest (instances, cps) are shipped.
@test "512 sessions from 16 parallel clients through xinetd with the shipped file (per_source 16) all deliver, each message once and intact" {
	XI_PER_SOURCE=$CLIENTS xinetd_start
	load_run "$XPORT" 127.0.0.1
}
