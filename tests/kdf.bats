#!/usr/bin/env bats
# kdf.bats -- memory under concurrent logins (--max-kdf, --slot-file):
# at most N password KDF runs at once on the host, the others waiting
# their turn until the login deadline.  The slots are held here by
# tests/unit/limit-test --hold, another process as a handler would be;
# the slot file itself is tested in tests/unit/limit-test.c.

load helpers

setup() {
	usmtp_setup
	add_test_users
	SLOTS=$T/slots
	HOLD_PID=
}

teardown() {
	stop_pid "$HOLD_PID"
}

# hold_kdf N: another process takes N of N KDF slots in $SLOTS and keeps
# them until stop_pid "$HOLD_PID".
hold_kdf() {
	"$TOP/tests/unit/limit-test" --hold "$SLOTS" kdf "$1" >"$T/hold.out" 2>&1 &
	HOLD_PID=$!
	wait_until 5 grep -q '^held$' "$T/hold.out"
}

# login_timed_out: $output is login-good's session cut off at the
# password: its replies up to 112, then 500 and the handler's exit 1.
login_timed_out() {
	diff -u <(sed '/^112 /q' "$TRANSCRIPTS/login-good.out"
		printf '%s\n' "500 Connection error" "[handler exit 1]") \
	    - <<<"$output"
}

@test "while every KDF slot is held a login waits, and goes on once one is freed" {
	hold_kdf 1
	client_script login-good --max-kdf 1 >"$T/out" &
	local cpid=$!
	wait_until 5 grep -qs ' handshake result=ok' "$HLOG" || true
	# Unlimited, the login (at --cost 1) would be over in milliseconds.
	sleep 1
	run -1 grep -q ' login user=' "$HLOG"
	stop_pid "$HOLD_PID"
	HOLD_PID=
	wait "$cpid"
	diff -u "$TRANSCRIPTS/login-good.out" "$T/out"
	grep -q 'login user=alice@example.org result=ok' "$HLOG"
}

@test "a login still waiting for a KDF slot at the login deadline gets 500" {
	hold_kdf 1
	run -0 client_script login-good --max-kdf 1 --login-timeout 2
	login_timed_out
	grep -q ' login user=alice@example.org result=timeout reason=kdf-wait$' "$HLOG"
	grep -q ' end reason=login-timeout code=500 state=S_LOGIN_PASS ' "$HLOG"
}

@test "by default there are as many KDF slots as CPUs" {
	local n
	n=$(nproc)
	hold_kdf "$n"
	run -0 client_script login-good --login-timeout 2
	login_timed_out
	stop_pid "$HOLD_PID"
	HOLD_PID=
	if [ "$n" -gt 1 ]; then
		hold_kdf $((n - 1))
	fi
	golden login-good --login-timeout 2
}

@test "--max-kdf 0 never waits" {
	hold_kdf 1
	golden login-good --max-kdf 0 --login-timeout 2
}

@test "--slot-file none turns the KDF limit off" {
	hold_kdf 1
	golden login-good --slot-file none --max-kdf 1 --login-timeout 2
}

@test "an unusable slot file lets logins go on and says why" {
	golden login-good --slot-file "$T/no-such-dir/slots" --max-kdf 1
	grep -q "error slots=$T/no-such-dir/slots reason=\"No such file or directory\"" "$HLOG"
}

@test "the slot file is made empty, mode 0600, and stays empty" {
	golden login-good --max-kdf 1
	[ -f "$SLOTS" ] && [ ! -s "$SLOTS" ]
	[ "$(stat -c %a "$SLOTS")" = 600 ]
}

@test "--max-kdf works from a configuration file" {
	printf 'max-kdf = 1\n' >"$T/usmtp.conf"
	hold_kdf 1
	run -0 client_script login-good --config "$T/usmtp.conf" --login-timeout 2
	login_timed_out
}

@test "bad --max-kdf values exit 64" {
	run -64 usmtp-handler --max-kdf x
	run -64 usmtp-handler --max-kdf -1
	run -64 usmtp-handler --max-kdf 1025
}
