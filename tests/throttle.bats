#!/usr/bin/env bats
# throttle.bats -- failed logins across connections (usmtp-handler(8),
# Login throttling; --throttle-*): real TCP peers through
# systemd-socket-activate on 127.0.0.1 and [::1], and peers named by
# REMOTE_ADDR over a socket pair; the limits per address and per /48 and
# /24, the window, other addresses, the account delay, local peers, a
# damaged state file replaced, one that cannot be made, and a broken one
# never locking anyone out.  The file's bound, its eviction rules and its
# locking are tested in tests/unit/throttle-test.c.

load helpers

# 64-byte header + 8192 slots of 32 bytes (throttle.c)
THROTTLE_FILE_BYTES=262208

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
	if [ -n "${FULL:-}" ]; then umount "$FULL" 2>/dev/null || true; fi
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



# from ADDR NAME [handler options]: runs tests/transcripts/NAME.in over a
# socket pair, the handler told by REMOTE_ADDR that the peer is ADDR.
from() {
	local addr=$1
	shift
	REMOTE_ADDR=$addr client_script "$@"
}


# from_golden ADDR NAME: from ADDR NAME, as run -0 does, its replies
# compared with NAME.out less the handler's exit line (golden_tcp):
# throttle-limit.out and throttle-refused.out, used over TCP too, have
# none.
from_golden() {
	run -0 from "$1" "$2"
	golden_tcp "$2"
}

# lock_out HOST PORT: the failure that reaches the limit gets 510 and
# ends its session (throttle-limit), and the next session is refused at
# LOGIN (throttle-refused), each with its transcript's replies.
lock_out() {
	tcp_golden throttle-limit "$1" "$2"
	tcp_golden throttle-refused "$1" "$2"
}

# lock_out_from ADDR: lock_out over a socket pair, from peer ADDR.
lock_out_from() {
	from_golden "$1" throttle-limit
	from_golden "$1" throttle-refused
}

# ms: milliseconds of the monotonic clock... of date, good enough here.
ms() {
	echo $(($(date +%s%N) / 1000000))
}

# two_failures HOST PORT: two connections, each with one wrong password
# and then the right one (210: a good login does not clear the count).
two_failures() {
	tcp_golden login-wrong "$1" "$2"
	tcp_golden login-wrong "$1" "$2"
}

@test "failures over several connections: the one reaching --throttle-max gets 510, then a good login gets 510 at LOGIN" {
	listen4
	two_failures 127.0.0.1 "$P4"
	grep -q 'login user=alice@example.org result=fail key=127.0.0.1 failures=2' "$HLOG"
	tcp_golden throttle-limit 127.0.0.1 "$P4"
	grep -q 'login user=alice@example.org result=throttled key=127.0.0.1 failures=3' "$HLOG"
	tcp_golden throttle-refused 127.0.0.1 "$P4"
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
	lock_out 127.0.0.1 "$P4"
	# --throttle-window 2: bounded wait, about 2 s
	local i=0
	while [ $i -lt 50 ]; do
		run -0 tcp_script login-good 127.0.0.1 "$P4"
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
	lock_out 127.0.0.1 "$P4"
	tcp_golden login-good ::1 "$P6"
	grep -q 'peer=\[::1\]:[0-9]* login user=alice@example.org result=ok' "$HLOG"
}

@test "an IPv6 peer is counted by its /64" {
	listen6
	two_failures ::1 "$P6"
	grep -q 'login user=alice@example.org result=fail key=::/64 failures=2' "$HLOG"
	lock_out ::1 "$P6"
}

@test "a state file that cannot be made locks nobody out, and says why" {
	HANDLER="$BASE --throttle-db $T/no-such-dir/throttle.db --throttle-max 1 --throttle-window 60"
	listen4
	two_failures 127.0.0.1 "$P4"
	tcp_golden login-good 127.0.0.1 "$P4"
	grep -q "error throttle=$T/no-such-dir/throttle.db op=update reason=\"the directory $T/no-such-dir does not exist; run: install -d -m 0700 -o root -g root $T/no-such-dir\"" "$HLOG"
	run -1 grep -q 'result=throttled' "$HLOG"
}

@test "a damaged state file locks nobody out and is left as it was" {
	head -c "$THROTTLE_FILE_BYTES" /dev/urandom >"$TDB"
	cp "$TDB" "$T/junk"
	HANDLER="$BASE --throttle-db $TDB --throttle-max 1 --throttle-window 60"
	listen4
	two_failures 127.0.0.1 "$P4"
	tcp_golden login-good 127.0.0.1 "$P4"
	grep -q "error throttle=$TDB op=read reason=\"not a usmtp throttle file" "$HLOG"
	cmp "$TDB" "$T/junk"
}

@test "a local peer (socket pair, no address) is never refused, and is counted by account only" {
	HANDLER="$HANDLER --throttle-max 1"
	run -0 client_script login-wrong
	run -0 client_script login-wrong
	golden login-good
	grep -q 'peer=local login user=alice@example.org result=fail account_failures=1$' "$HLOG"
	grep -q 'peer=local login user=alice@example.org result=fail account_failures=2$' "$HLOG"
	run -1 grep -q 'result=throttled' "$HLOG"
}

@test "many /64s of one /48 get locked out together; the next /48 does not" {
	HANDLER="$BASE --throttle-db $TDB --throttle-max 3 --throttle-net-max 6 --throttle-window 60"
	local i
	for i in 1 2 3 4 5; do
		from_golden "2001:db8:1:$i::1" login-wrong
	done
	grep -q 'result=fail key=2001:db8:1:5::/64 failures=1 net=2001:db8:1::/48 net_failures=5 ' "$HLOG"
	# the sixth failure reaches the /48's limit and ends its session
	from_golden "2001:db8:1:6::1" throttle-limit
	grep -q 'result=throttled key=2001:db8:1::/48 failures=6' "$HLOG"
	# a /64 of that /48 that never failed is refused at LOGIN
	from_golden "2001:db8:1:ffff::77" throttle-refused
	grep -q ' login result=throttled key=2001:db8:1::/48 failures=6$' "$HLOG"
	run -0 from "2001:db8:2::1" login-good
	check_golden login-good
}

@test "many addresses of one IPv4 /24 get locked out together, by default at 4 x --throttle-max" {
	HANDLER="$BASE --throttle-db $TDB --throttle-max 3 --throttle-window 60"
	local i
	for i in $(seq 11); do
		run -0 from "192.0.2.$i" login-wrong
	done
	from_golden 192.0.2.12 throttle-limit
	grep -q 'result=throttled key=192.0.2.0/24 failures=12' "$HLOG"
	from_golden 192.0.2.200 throttle-refused
	run -0 from 192.0.3.1 login-good
	check_golden login-good
}

@test "an account under attack from many addresses answers slower, but the right password still logs in" {
	HANDLER="$BASE --throttle-db $TDB --throttle-max 3 --throttle-window 60"
	local i t0 t1
	# one failure from each of 6 networks: no address or network limit
	# is reached, the account has 6 failures
	for i in 1 2 3 4 5 6; do
		from_golden "10.$i.0.1" login-wrong
	done
	grep -q 'result=fail key=10.6.0.1 failures=1 net=10.6.0.0/24 net_failures=1 account_failures=6' "$HLOG"
	t0=$(ms)
	run -0 from 10.99.0.1 login-good
	t1=$(ms)
	check_golden login-good
	# 5 failures are free, the 6th makes it 500 ms, right password or not
	grep -q 'peer=10.99.0.1 login user=alice@example.org result=ok delay=500$' "$HLOG"
	echo "login took $((t1 - t0)) ms"
	[ $((t1 - t0)) -ge 500 ]
	# bob is not slowed down
	printf '%s\n' handshake "send 1.0 Hello" "send LOGIN" \
	    "send bob@example.org" "send bob-pw" "send BYE" >"$T/login-bob.in"
	run -0 from 10.99.0.2 "$T/login-bob.in"
	grep -q 'peer=10.99.0.2 login user=bob@example.org result=ok$' "$HLOG"
}

@test "the account delay never goes past the login deadline" {
	HANDLER="$BASE --throttle-db $TDB --throttle-max 3 --throttle-window 60"
	local i d
	for i in 1 2 3 4 5 6 7 8; do
		run -0 from "10.$i.0.1" login-wrong
	done
	# 8 failures: 2000 ms, but --login-timeout 1 leaves less than 1000
	# (none at all on a machine so loaded that the handshake took 1 s)
	run -0 from 10.99.0.1 login-good --login-timeout 1
	check_golden login-good
	grep -E 'peer=10.99.0.1 login user=alice@example.org result=ok( delay=[0-9]+)?$' "$HLOG"
	d=$(grep -o -E 'peer=10.99.0.1 login .* delay=[0-9]+$' "$HLOG" | sed 's/.*delay=//')
	[ "${d:-0}" -lt 1000 ]
	grep -E 'peer=10.99.0.1 end reason=bye state=S_COMMAND duration=(0|1)\.' "$HLOG"
}

@test "a zero-filled or cut-short state file is replaced, the handler says so at LOG_ERR, and throttling works again" {
	HANDLER="$BASE --throttle-db $TDB --throttle-max 3 --throttle-window 60"
	local damage
	for damage in zero cut; do
		rm -f "$TDB" "$HLOG"
		if [ $damage = zero ]; then
			head -c "$THROTTLE_FILE_BYTES" /dev/zero >"$TDB"
		else
			run -0 from 198.51.100.1 login-wrong
			truncate -s 4096 "$TDB"
		fi
		chmod 600 "$TDB"
		run -0 from 192.0.2.1 login-wrong
		run -0 from 192.0.2.1 login-wrong
		lock_out_from 192.0.2.1
		[ "$(stat -c %s "$TDB")" -eq "$THROTTLE_FILE_BYTES" ]
		[ "$(grep -c "error throttle=$TDB reason=\"damaged file replaced by an empty one: " "$HLOG")" -eq 1 ]
	done
	grep -q 'replaced by an empty one: wrong size"' "$HLOG"
	run -0 ls -A "$T"
	[[ $output != *tmp* ]]
}

@test "a state file that cannot be made for want of room leaves no half file, and is made once there is room" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
	FULL=$T/full
	mkdir "$FULL"
	mount -t tmpfs -o size=64k tmpfs "$FULL" 2>/dev/null ||
	    { FULL=; skip "mount -t tmpfs is not allowed here"; }
	HANDLER="$BASE --throttle-db $FULL/throttle.db --throttle-max 2 --throttle-window 60"
	run -0 from 192.0.2.1 login-wrong
	run -0 from 192.0.2.1 login-wrong
	run -0 from 192.0.2.1 login-good
	check_golden login-good
	grep -q "error throttle=$FULL/throttle.db op=update reason=\"No space left on device\"" "$HLOG"
	run -0 ls -A "$FULL"
	[ -z "$output" ]
	mount -o remount,size=1m "$FULL"
	run -0 from 192.0.2.1 login-wrong
	lock_out_from 192.0.2.1
	run -0 ls -A "$FULL"
	[ "$output" = throttle.db ]
}

@test "--throttle-db none turns throttling off" {
	HANDLER="$BASE --throttle-db none --throttle-max 1"
	listen4
	two_failures 127.0.0.1 "$P4"
	tcp_golden login-good 127.0.0.1 "$P4"
	grep -q 'login user=alice@example.org result=fail$' "$HLOG"
}

@test "the throttle options work from a configuration file" {
	printf 'throttle-db = %s\nthrottle-max = 2\nthrottle-window = 60\n' \
	    "$TDB" >"$T/usmtp.conf"
	HANDLER="$BASE --config $T/usmtp.conf"
	listen4
	run -0 tcp_script login-wrong 127.0.0.1 "$P4"
	lock_out 127.0.0.1 "$P4"
	[ -s "$TDB" ]
}

@test "bad throttle option values exit 64" {
	run -64 usmtp-handler --throttle-max x
	run -64 usmtp-handler --throttle-max -1
	run -64 usmtp-handler --throttle-net-max x
	run -64 usmtp-handler --throttle-net-max -1
	run -64 usmtp-handler --throttle-window 0
	run -64 usmtp-handler --throttle-window 1w
}

# lockouts: usmtp-users lockouts on this test's files.
lockouts() {
	usmtp-users --throttle-db "$TDB" --db "$DB" lockouts
}

@test "usmtp-users lockouts lists an address the handler locked out, unlock frees it, and login works again" {
	HANDLER="$BASE --throttle-db $TDB --throttle-max 3 --throttle-window 600"
	listen4
	two_failures 127.0.0.1 "$P4"
	lock_out 127.0.0.1 "$P4"
	run -0 --separate-stderr lockouts
	[[ $output =~ ^address\ 127\.0\.0\.1\ failures=3\ left=(59[0-9]|600)s\ refused$ ]]
	[ -z "$stderr" ]
	run -0 --separate-stderr usmtp-users --throttle-db "$TDB" unlock 127.0.0.1
	[ -z "$output" ] && [ -z "$stderr" ]
	run -0 lockouts
	[ -z "$output" ]
	tcp_golden login-good 127.0.0.1 "$P4"
	# nothing left to unlock
	run -1 --separate-stderr usmtp-users --throttle-db "$TDB" unlock 127.0.0.1
	[ "$stderr" = "usmtp-users: 127.0.0.1: nothing recorded" ]
}

@test "lockouts names slowed-down users' accounts and shows others by hash; unlock takes either" {
	HANDLER="$BASE --throttle-db $TDB --throttle-max 3 --throttle-window 600"
	local i hash
	for i in 1 2 3 4 5 6; do
		run -0 from "10.$i.0.1" login-wrong
	done
	for i in 1 2 3 4 5; do
		run -0 from "10.$((i + 10)).0.1" login-unknown
	done
	run -0 --separate-stderr lockouts
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} =~ ^account\ alice@example\.org\ failures=6\ left=[0-9]+s\ delay=500ms$ ]]
	[[ ${lines[1]} =~ ^account\ \#[0-9a-f]{32}\ failures=5\ left=[0-9]+s\ delay=250ms$ ]]
	hash=$(echo "${lines[1]}" | cut -d' ' -f2)
	# the file holds the account's salted hash, not its name
	run -1 grep -a -q mallory "$TDB"
	run -0 usmtp-users --throttle-db "$TDB" unlock ALICE@example.org
	run -0 lockouts
	[[ $output == "account $hash failures=5 "* ]]
	run -0 from 10.99.0.1 login-good
	grep -q 'peer=10.99.0.1 login user=alice@example.org result=ok$' "$HLOG"
	run -0 usmtp-users --throttle-db "$TDB" unlock "$hash"
	run -0 lockouts
	[ -z "$output" ]
}

@test "unlock of an address whose network is still refused says so; unlock of the prefix frees it" {
	HANDLER="$BASE --throttle-db $TDB --throttle-max 3 --throttle-net-max 4 --throttle-window 600"
	local i
	for i in 1 2 3 4; do
		run -0 from "2001:db8:1:$i::1" login-wrong
	done
	run -0 lockouts
	[[ $output =~ ^network\ 2001:db8:1::/48\ failures=4\ left=[0-9]+s\ refused$ ]]
	run -0 --separate-stderr usmtp-users --throttle-db "$TDB" unlock 2001:db8:1:1::99
	[ "$stderr" = "usmtp-users: 2001:db8:1::/48 is still refused: unlock 2001:db8:1::/48 too" ]
	from_golden 2001:db8:1:1::1 throttle-refused
	run -0 usmtp-users --throttle-db "$TDB" unlock 2001:db8:1::/48
	run -0 from 2001:db8:1:1::1 login-good
	check_golden login-good
}

@test "unlock all clears every entry while the file stays in use" {
	HANDLER="$BASE --throttle-db $TDB --throttle-max 1 --throttle-window 600"
	run -0 from 192.0.2.1 throttle-limit
	run -0 from 198.51.100.1 throttle-limit
	run -0 lockouts
	[ "${#lines[@]}" -eq 2 ]
	run -0 usmtp-users --throttle-db "$TDB" unlock all
	# two addresses, two networks, one account
	[ "$output" = "5 entries cleared" ]
	run -0 lockouts
	[ -z "$output" ]
	[ "$(stat -c %s "$TDB")" -eq "$THROTTLE_FILE_BYTES" ]
	run -0 from 192.0.2.1 login-good
	check_golden login-good
}

@test "lockouts and unlock: no file, a foreign file, bad targets" {
	run -0 --separate-stderr lockouts
	[ -z "$output" ] && [ -z "$stderr" ]
	run -1 usmtp-users --throttle-db "$TDB" unlock 192.0.2.1
	run -0 usmtp-users --throttle-db "$TDB" unlock all
	[ "$output" = "0 entries cleared" ]
	[ ! -e "$TDB" ]
	head -c "$THROTTLE_FILE_BYTES" /dev/urandom >"$TDB"
	chmod 644 "$TDB"
	run -74 --separate-stderr lockouts
	[[ $stderr == "usmtp-users: $TDB: damaged or not a usmtp throttle file (bad magic)" ]]
	run -74 usmtp-users --throttle-db "$TDB" unlock all
	local bad
	for bad in 192.0.2.0/16 2001:db8::/56 nonsense '#abc' a@b@c ''; do
		run -65 --separate-stderr usmtp-users --throttle-db "$TDB" unlock "$bad"
		[[ $stderr == "usmtp-users: "*": not an address, a /24, /32, /48 or /64 prefix, an account or a #hash" ]]
	done
}
