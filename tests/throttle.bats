#!/usr/bin/env bats
# throttle.bats -- failed logins per source address across connections
# (--throttle-*, usmtp-handler(8)): real TCP peers through
# systemd-socket-activate on 127.0.0.1 and [::1]; the limit, the window,
# other addresses, local peers, and a broken state file never locking
# anyone out.  The file's bound and its locking are tested in
# tests/unit/throttle-test.c.

load helpers

# 64-byte header + 4096 slots of 32 bytes (throttle.c)
THROTTLE_FILE_BYTES=131136

setup() {
	usmtp_setup
	add_test_users
	TDB=$T/throttle.db
	BASE=$HANDLER
	HANDLER="$BASE --throttle-db $TDB --throttle-max 3 --throttle-window 2"
	SA4= SA6=
}

teardown() {
	stop_pid "$SA4"
	stop_pid "$SA6"
}

# listen4 / listen6: the handler ($HANDLER as it is now) behind
# systemd-socket-activate on 127.0.0.1:P4 / [::1]:P6.
listen4() {
	P4=$(free_port)
	start_socket_activate "$P4" 127.0.0.1
	SA4=$SA_PID
}
listen6() {
	P6=$(free_port)
	start_socket_activate "$P6" "[::1]"
	SA6=$SA_PID
}

# tcp NAME HOST PORT: runs tests/transcripts/NAME.in over TCP.
tcp() {
	(cd "$TRANSCRIPTS" && timeout 30 usmtp-script --ca "$KEYS/ca.pem" \
		-H "$2" -p "$3" "$TRANSCRIPTS/$1.in")
}

# golden_tcp NAME: compares $output with NAME.out less the handler's exit
# status, which a TCP client cannot see.
golden_tcp() {
	diff -u <(grep -v '^\[handler exit' "$TRANSCRIPTS/$1.out") - <<<"$output"
}

# two_failures HOST PORT: two connections, each with one wrong password
# and then the right one (210: a good login does not clear the count).
two_failures() {
	run -0 tcp login-wrong "$1" "$2"
	golden_tcp login-wrong
	run -0 tcp login-wrong "$1" "$2"
	golden_tcp login-wrong
}

@test "failures over several connections: the one reaching --throttle-max gets 510, then a good login gets 510 at LOGIN" {
	listen4
	two_failures 127.0.0.1 "$P4"
	grep -q 'login user=alice@example.org result=fail key=127.0.0.1 failures=2' "$HLOG"
	run -0 tcp throttle-limit 127.0.0.1 "$P4"
	golden_tcp throttle-limit
	grep -q 'login user=alice@example.org result=throttled key=127.0.0.1 failures=3' "$HLOG"
	run -0 tcp throttle-refused 127.0.0.1 "$P4"
	golden_tcp throttle-refused
	grep -q ' login result=throttled key=127.0.0.1 failures=3$' "$HLOG"
	grep -q 'end reason=throttled code=510 state=S_COMMAND' "$HLOG"
	# no password was checked in the refused session
	[ "$(grep -c ' login user=.* result=ok' "$HLOG")" -eq 2 ]
	[ "$(stat -c %s "$TDB")" -eq "$THROTTLE_FILE_BYTES" ]
	[ "$(stat -c %a "$TDB")" = 600 ]
}

@test "once the window has passed since the last failure, login works again" {
	listen4
	two_failures 127.0.0.1 "$P4"
	run -0 tcp throttle-limit 127.0.0.1 "$P4"
	run -0 tcp throttle-refused 127.0.0.1 "$P4"
	golden_tcp throttle-refused
	# --throttle-window 2: bounded wait, about 2 s
	local i=0
	while [ $i -lt 50 ]; do
		run -0 tcp login-good 127.0.0.1 "$P4"
		[[ $output == *"210 Authentication successful"* ]] && break
		sleep 0.2; i=$((i + 1))
	done
	golden_tcp login-good
	[ $i -gt 0 ]
}

@test "another source address is not affected: [::1] logs in while 127.0.0.1 is throttled" {
	listen4
	listen6
	two_failures 127.0.0.1 "$P4"
	run -0 tcp throttle-limit 127.0.0.1 "$P4"
	run -0 tcp throttle-refused 127.0.0.1 "$P4"
	golden_tcp throttle-refused
	run -0 tcp login-good ::1 "$P6"
	golden_tcp login-good
	grep -q 'peer=\[::1\]:[0-9]* login user=alice@example.org result=ok' "$HLOG"
}

@test "an IPv6 peer is counted by its /64" {
	listen6
	two_failures ::1 "$P6"
	grep -q 'login user=alice@example.org result=fail key=::/64 failures=2' "$HLOG"
	run -0 tcp throttle-limit ::1 "$P6"
	golden_tcp throttle-limit
	run -0 tcp throttle-refused ::1 "$P6"
	golden_tcp throttle-refused
}

@test "a state file that cannot be made locks nobody out, and says why" {
	HANDLER="$BASE --throttle-db $T/no-such-dir/throttle.db --throttle-max 1 --throttle-window 60"
	listen4
	two_failures 127.0.0.1 "$P4"
	run -0 tcp login-good 127.0.0.1 "$P4"
	golden_tcp login-good
	grep -q "error throttle=$T/no-such-dir/throttle.db reason=\"No such file or directory\"" "$HLOG"
	run -1 grep -q 'result=throttled' "$HLOG"
}

@test "a damaged state file locks nobody out and is left as it was" {
	head -c "$THROTTLE_FILE_BYTES" /dev/urandom >"$TDB"
	cp "$TDB" "$T/junk"
	HANDLER="$BASE --throttle-db $TDB --throttle-max 1 --throttle-window 60"
	listen4
	two_failures 127.0.0.1 "$P4"
	run -0 tcp login-good 127.0.0.1 "$P4"
	golden_tcp login-good
	grep -q "error throttle=$TDB reason=\"not a usmtp throttle file" "$HLOG"
	cmp "$TDB" "$T/junk"
}

@test "a local peer (socket pair, no address) is never throttled" {
	HANDLER="$HANDLER --throttle-max 1"
	run -0 client_script login-wrong
	run -0 client_script login-wrong
	run -0 client_script login-good
	check_golden login-good
	grep -q 'peer=local login user=alice@example.org result=fail$' "$HLOG"
	[ ! -e "$TDB" ]
}

@test "--throttle-db none turns throttling off" {
	HANDLER="$BASE --throttle-db none --throttle-max 1"
	listen4
	two_failures 127.0.0.1 "$P4"
	run -0 tcp login-good 127.0.0.1 "$P4"
	golden_tcp login-good
	grep -q 'login user=alice@example.org result=fail$' "$HLOG"
}

@test "the throttle options work from a configuration file" {
	printf 'throttle-db = %s\nthrottle-max = 2\nthrottle-window = 60\n' \
	    "$TDB" >"$T/usmtp.conf"
	HANDLER="$BASE --config $T/usmtp.conf"
	listen4
	run -0 tcp login-wrong 127.0.0.1 "$P4"
	run -0 tcp throttle-limit 127.0.0.1 "$P4"
	golden_tcp throttle-limit
	run -0 tcp throttle-refused 127.0.0.1 "$P4"
	golden_tcp throttle-refused
	[ -s "$TDB" ]
}

@test "bad throttle option values exit 64" {
	run -64 usmtp-handler --throttle-max x
	run -64 usmtp-handler --throttle-max -1
	run -64 usmtp-handler --throttle-window 0
	run -64 usmtp-handler --throttle-window 1w
}
