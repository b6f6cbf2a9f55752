#!/usr/bin/env bats
# What an attacker can still try against a session, and what the handler
# guarantees (usmtp-handler(8), SECURITY CONSIDERATIONS): a client that stops reading,
# one that keeps the input full before logging in, a termination signal
# in the middle of an attachment, no core dumps, and nothing of a
# configuration error reaching a client under inetd.

load helpers

setup() {
	usmtp_setup
	add_test_users
	SYSLOG_PID=
	SYSLOG_WRAP=()
}

teardown() {
	syslog_stop
}

# hostile MODE CMD [ARGS]: tests/hostile-client.py, for 60 s at most.
hostile() {
	timeout 60 $PY "$TOP/tests/hostile-client.py" "$@"
}

# took WHAT MIN MAX: $output is "WHAT after N.N..." (hostile's last
# line), N from MIN to MAX whole seconds.
took() {
	local s
	[[ $output == "$1 after "* ]]
	s=$(sed -n "s/^$1 after \([0-9]*\)\..*/\1/p" <<<"$output")
	[ "$s" -ge "$2" ] && [ "$s" -le "$3" ]
}

# tmp_written: a file in bob's Maildir's tmp/.
tmp_written() {
	[ -n "$(ls "$MAIL"/example.org/bob/Maildir/tmp/ 2>/dev/null)" ]
}

# stall_attachment: hostile stall-attachment as coprocess HC: alice logs
# in and stops inside an attachment to bob; sets PID, the handler's.
stall_attachment() {
	local word
	coproc HC { hostile stall-attachment "exec $HANDLER 2>>$HLOG" \
		alice@example.org "correct horse" bob@example.org; }
	read -r -t 30 word PID <&"${HC[0]}"
	[ "$word" = stalled ]
}

@test "a client that stops reading is cut off at the login deadline" {
	run -0 hostile noread "exec $HANDLER --login-timeout 3 2>>$HLOG" 4000000
	took "exit 1" 2 6
	grep -q 'end reason=login-timeout code=500' "$HLOG"
}

@test "a client that stops reading is cut off at the idle timeout" {
	run -0 hostile noread \
		"exec ${HANDLER/--timeout 10/--timeout 2} --login-timeout 0 2>>$HLOG" \
		4000000
	took "exit 1" 1 5
	grep -q 'end reason=timeout code=500' "$HLOG"
}

@test "a client that keeps the input full is served only until the login deadline" {
	run -0 hostile flood "exec $HANDLER --login-timeout 2 2>>$HLOG"
	took closed 1 4
	# (the 500 may not reach the flooder: a socket closed with unread
	# input resets the connection; the log says what happened and when)
	grep -q 'end reason=login-timeout code=500 state=S_COMMAND duration=[0-3]\.' "$HLOG"
}

@test "SIGTERM in the middle of an attachment leaves no file behind and logs end reason=signal" {
	stall_attachment
	# the message is being written: a file in tmp/, none in new/
	wait_until 5 tmp_written
	kill -TERM "$PID"
	read -r -t 30 line <&"${HC[0]}"
	[[ $line == "exit 1 after "* ]]
	[ -z "$(ls "$MAIL"/example.org/bob/Maildir/tmp/)" ]
	[ -z "$(ls "$MAIL"/example.org/bob/Maildir/new/)" ]
	grep -q 'end reason=signal state=S_ATT_DATA' "$HLOG"
}

@test "the handler allows itself no core dump" {
	stall_attachment
	run grep '^Max core file size' "/proc/$PID/limits"
	kill -TERM "$PID"
	[[ $output == *" 0 "*" 0 "* ]]
}

# inetd_run ARGS...: runs the handler as inetd would, standard input,
# output and error all one socket, and prints what the client received.
inetd_run() {
	$PY - "$@" <<-'EOF'
	import socket, subprocess, sys
	ours, theirs = socket.socketpair()
	p = subprocess.Popen(sys.argv[1:], stdin=theirs, stdout=theirs,
	    stderr=theirs)
	theirs.close()
	ours.settimeout(20)
	data = b""
	while True:
	    d = ours.recv(65536)
	    if not d:
	        break
	    data += d
	p.wait()
	print("status %d, %d bytes: %r" % (p.returncode, len(data), data))
	EOF
}

@test "under inetd a bad option or configuration reaches syslog, never the client" {
	syslog_start
	run -0 inetd_run "${SYSLOG_WRAP[@]}" usmtp-handler --no-such-option
	[ "$output" = "status 64, 0 bytes: b''" ]
	printf 'timeout = soon\n' >"$T/bad.conf"
	run -0 inetd_run "${SYSLOG_WRAP[@]}" usmtp-handler --config "$T/bad.conf"
	[ "$output" = "status 78, 0 bytes: b''" ]
	run -0 inetd_run "${SYSLOG_WRAP[@]}" usmtp-handler --log-stderr --config /nonexistent
	[ "$output" = "status 78, 0 bytes: b''" ]
	grep -q 'usmtp-handler.*bad command line' "$T/syslog.log"
	grep -q "usmtp-handler.*$T/bad.conf:1: timeout: bad value" "$T/syslog.log"
	grep -q 'usmtp-handler.*/nonexistent: No such file' "$T/syslog.log"
}

@test "outside inetd a bad option is still explained on standard error" {
	run -64 --separate-stderr usmtp-handler --no-such-option
	[[ $stderr == *"usage: usmtp-handler"* ]]
}
