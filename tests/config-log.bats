#!/usr/bin/env bats
# config-log.bats -- a session that fails on the configuration logs a line
# that points at the fix (usmtp-handler(8), LOGGING, the error event):
# the file, the operation, what is wrong and what to do, for a missing,
# readable or unreadable key, a missing certificate, a file that is not
# a users database, a database whose directory is missing, and a throttle
# file whose directory is missing.

load helpers

setup() {
	usmtp_setup
	add_test_users
	K=$T/keys
	mkdir "$K"
	cp "$KEYS/server.pem" "$KEYS/server.key" "$K/"
	HANDLER="${HANDLER/--cert $KEYS\/server.pem --key $KEYS\/server.key/--cert $K/server.pem --key $K/server.key}"
	W=
}

teardown() {
	if [ -n "$W" ]; then rm -rf "$W"; fi
}

# session_78: runs login-good, which fails on the configuration: 500 and
# the handler's exit 78.
session_78() {
	run client_script login-good
	[ "${lines[-1]}" = "[handler exit 78]" ]
	[[ $output == *"500 Connection error"* ]]
}

@test "a missing key: the log names the key, the operation and what to do" {
	rm "$K/server.key"
	session_78
	grep -q -F "error key=$K/server.key op=load reason=\"no such file; fix --key, or make the key with mkcerts (README, Setting up a server)\"" "$HLOG"
}

@test "a key others may read: the log gives the chmod to run" {
	chmod 644 "$K/server.key"
	session_78
	grep -q -F "error key=$K/server.key op=load reason=\"group or others may read it; run: chmod 600 $K/server.key\"" "$HLOG"
}

@test "a key the handler's user may not read: the log gives the chown to run" {
	W=$(mktemp -d /tmp/usmtp-log.XXXXXX)
	chmod 755 "$W"
	cp "$K/server.pem" "$K/server.key" "$W/"
	HANDLER="setpriv --reuid=nobody --regid=nogroup --clear-groups -- ${HANDLER//$K/$W}"
	session_78
	grep -q -F "error key=$W/server.key op=load reason=\"user nobody may not read it; run: chown nobody $W/server.key\"" "$HLOG"
}

@test "a missing certificate: the log names it, the operation and what to do" {
	rm "$K/server.pem"
	session_78
	grep -q -F "error cert=$K/server.pem op=read reason=\"no such file; fix --cert, or make the certificate with mkcerts (README, Setting up a server)\"" "$HLOG"
}

@test "a file that is not a users database is logged as that, not as GDBM's bad magic number" {
	head -c 8192 /dev/zero | tr '\0' x >"$DB"
	session_78
	grep -q -F "error users=$DB op=open reason=\"$DB: not a users database (GDBM: Bad magic number); check the path, or move the file away and run usmtp-users init\"" "$HLOG"
}

@test "a users database in a missing directory: the log names the directory" {
	HANDLER="$HANDLER --users $T/gone/users.db"
	session_78
	grep -q -F "error users=$T/gone/users.db op=open reason=\"$T/gone/users.db: the directory $T/gone does not exist; create it first (install -d $T/gone)\"" "$HLOG"
}

@test "a missing users database: the log says how to make one" {
	rm "$DB"
	session_78
	grep -q -F "error users=$DB op=open reason=\"$DB: no such file (usmtp-users init makes an empty users database)\"" "$HLOG"
}

@test "a throttle file whose directory is missing: the log names the directory and how to make it" {
	run -0 client_script login-wrong --throttle-db "$T/no-such-dir/throttle.db"
	grep -q -F "error throttle=$T/no-such-dir/throttle.db op=update reason=\"the directory $T/no-such-dir does not exist; run: install -d -m 0700 -o root -g root $T/no-such-dir\"" "$HLOG"
}
