#!/usr/bin/env bats
# usmtp(7), Login: the LOGIN dialog against the GDBM user database.

load helpers

setup() {
	usmtp_setup
	add_test_users
}

@test "a good login gets 210" {
	golden login-good
	grep -q 'login user=alice@example.org result=ok' "$HLOG"
}

@test "bad address syntax gets 301 and the client re-sends; case is ignored" {
	golden login-syntax
}

@test "a wrong password gets 401, then 111 again" {
	golden login-wrong
	grep -q 'login user=alice@example.org result=fail' "$HLOG"
}

@test "an unknown address gets the same 401 as a wrong password" {
	golden login-unknown
	grep -q 'login user=mallory@example.org result=fail' "$HLOG"
}

@test "the sixth error of mixed kinds gets 510 and the connection closes" {
	golden login-510
	grep -q 'login user=alice@example.org result=locked errors=6' "$HLOG"
	grep -q 'end reason=login-errors code=510' "$HLOG"
}

@test "LOGIN while logged in gets 130" {
	golden login-130
}

@test "passwords never reach the log" {
	run -0 client_script login-wrong
	run -1 grep -E 'horse' "$HLOG"
}

@test "a 401 leaves in a write of its own, the 111 after it in the next" {
	# LeakSanitizer cannot stop a process strace traces: no leak check
	printf '%s\n' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f > "$T/key.hex"
	(cd "$TRANSCRIPTS" && timeout 60 usmtp-script --ca "$KEYS/ca.pem" \
		--session-key "$T/key.hex" \
		--exec "exec env ASAN_OPTIONS=\${ASAN_OPTIONS:-}:detect_leaks=0 strace -xx -s 65536 -e trace=write,sendto -o $T/strace $HANDLER 2>>$HLOG" \
		login-wrong.in) > "$T/out"
	diff -u "$TRANSCRIPTS/login-wrong.out" "$T/out"
	$PY "$TOP/tests/writes.py" "$T/strace" "$T/key.hex" > "$T/writes"
	# usmtp(7), Framing: the write that carries the 401 ends with it, and
	# the 111 after it starts the next write
	grep -qE '(^| )401$' "$T/writes"
	run -1 grep -E '401 ' "$T/writes"
	[ "$(grep -A1 -E '(^| )401$' "$T/writes" | tail -n 1 | cut -c1-3)" = 111 ]
}

@test "a missing user database is a 500 and a clear log line" {
	rm -f "$DB"
	run -0 client_script login-good
	[ "${lines[4]}" = "500 Connection error" ]
	[ "${lines[5]}" = "[handler exit 78]" ]
	grep -q "error users=$DB op=open reason=\"$DB: " "$HLOG"
}

@test "a client that does not log in within --login-timeout is cut off with 500" {
	golden login-timeout --login-timeout 1
	grep -q 'end reason=login-timeout code=500 state=S_COMMAND' "$HLOG"
}

@test "after 210 the login deadline no longer applies" {
	golden login-timeout-after --login-timeout 1
}
