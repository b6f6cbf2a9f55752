# helpers.bash -- shared set-up for the bats suites.  Load with
#	load helpers
# in each .bats file.  Every helper is documented where it is defined.

bats_require_minimum_version 1.5.0

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
TRANSCRIPTS=$TOP/tests/transcripts
# The reference client's recorded sessions (tests/vectors/README.md).
VECTORS=$TOP/tests/vectors
# The programs, and the test harness tests/usmtp-script (never installed).
PATH=$TOP:$TOP/tests:$PATH
export PATH

# Debian's python, which has python3-cryptography and the email package.
# The test tools import tests/usmtplib.py; no __pycache__ is left beside it.
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1

# wait_until SECONDS COMMAND...: runs COMMAND every 0.05 s until it
# succeeds, for SECONDS at most; fails when it never did.  For servers
# and files that come into being: never a bare sleep.
wait_until() {
	local i=0 n=$(($1 * 20))
	shift
	until "$@"; do
		[ $i -lt $n ] || return 1
		sleep 0.05; i=$((i + 1))
	done
}

# usmtp_keys: make (once per bats run) a CA, server key and certificate in
# $KEYS with ssl/mkcerts.  Safe to call from every setup().
usmtp_keys() {
	KEYS=$BATS_RUN_TMPDIR/keys
	if mkdir "$BATS_RUN_TMPDIR/keys.lock" 2>/dev/null; then
		"$TOP/ssl/mkcerts" "$KEYS" >/dev/null
		touch "$BATS_RUN_TMPDIR/keys.done"
	fi
	wait_until 30 test -e "$BATS_RUN_TMPDIR/keys.done"
}

# usmtp_setup: per-test scratch state.  Sets T (scratch dir), DB (user
# database), MAIL (Maildir root), HLOG (handler log), HANDLER (the handler
# command line, logging to stderr, with its own throttle file, replay
# cache and slot file, and secure mode's key, as ssl/mkcerts sets a
# server up) and HANDLER10 (the same without secure mode: a USMTP 1.0
# server), and makes keys.  USMTP_WRAP, when set, is put in front of
# both: "make check-valgrind" runs the handler under valgrind that way.
usmtp_setup() {
	usmtp_keys
	T=$BATS_TEST_TMPDIR
	DB=$T/users.db
	MAIL=$T/mail
	HLOG=$T/handler.log
	HANDLER10="${USMTP_WRAP:+$USMTP_WRAP }usmtp-handler --cert $KEYS/server.pem --key $KEYS/server.key --users $DB --maildir $MAIL/%d/%u/Maildir --throttle-db $T/throttle.db --replay-db $T/replay.db --slot-file $T/slots --timeout 10 --log-stderr --noise-cert none --noise-key none"
	HANDLER="$HANDLER10 --noise-cert $KEYS/server-x25519.pem --noise-key $KEYS/server-x25519.key"
}

# skip_if_sanitized: skips a test that measures memory or time, whose
# numbers mean nothing under a sanitizer or valgrind.  USMTP_SANITIZER
# (asan, valgrind) is set by "make check-asan" and "make check-valgrind";
# the skip says so in the TAP output, never silently.
skip_if_sanitized() {
	if [ -n "${USMTP_SANITIZER:-}" ]; then
		skip "measures memory or time; USMTP_SANITIZER=$USMTP_SANITIZER"
	fi
}

# add_user ADDRESS PASSWORD [usmtp-users add options]: adds a user with the
# cheapest KDF cost (tests and benchmarks only).
add_user() {
	local addr=$1 pw=$2
	shift 2
	printf '%s\n' "$pw" | usmtp-users --db "$DB" add "$addr" --password-stdin --cost 1 "$@"
}

# client_script NAME [handler options]: runs tests/transcripts/NAME.in
# (or NAME itself when it is a path to a script) with usmtp-script through
# a handler started over a socket pair; prints the decrypted replies and
# the handler's exit status.  Runs in tests/transcripts, so scripts name
# files/... relative to it.  The handler log goes to $HLOG.
client_script() {
	local name=$1 script
	shift
	case $name in
	*/*) script=$name ;;
	*) script=$TRANSCRIPTS/$name.in ;;
	esac
	(cd "$TRANSCRIPTS" && timeout 60 usmtp-script --ca "$KEYS/ca.pem" \
		--exec "exec $HANDLER $* 2>>$HLOG" "$script")
}

# add_test_users: alice@example.org ("correct horse") and bob@example.org
# ("bob-pw"), the users of the transcripts.
add_test_users() {
	add_user alice@example.org "correct horse"
	add_user bob@example.org bob-pw
}

# vector_setup: the vectors' public test key and certificate in $VK (the
# key made 0600: git does not keep the mode and the handler refuses a
# readable key), their users in $DB, and VHANDLER, the handler using them.
vector_setup() {
	VK=$T/vkeys
	mkdir -p "$VK"
	cp "$VECTORS/server.key" "$VECTORS/server.pem" "$VK/"
	chmod 600 "$VK/server.key"
	add_user testprotokolu1@wp.pl example123
	add_user testprotokolu2@wp.pl example123
	add_user aligned16@abc.pl sixteen-chars-pw
	VHANDLER="usmtp-handler --cert $VK/server.pem --key $VK/server.key --users $DB --maildir $MAIL/%d/%u/Maildir --throttle-db $T/throttle.db --replay-db $T/replay.db --slot-file $T/slots --log-stderr"
}

# client_setup: usmtp_setup and add_test_users for a suite of
# usmtp-client: alice's password in $T/pw (mode 0600, as the client
# demands), and no USMTP_PASSWORD from the environment the tests run in.
client_setup() {
	usmtp_setup
	add_test_users
	printf 'correct horse\n' >"$T/pw"
	chmod 600 "$T/pw"
	unset USMTP_PASSWORD
}

# alice_conf FILE: writes FILE (mode 0600), a client configuration for
# alice (client_setup) sending through the server on 127.0.0.1:$PORT.
alice_conf() {
	printf '%s\n' "host 127.0.0.1" "port $PORT" "ca $KEYS/ca.pem" \
		"user alice@example.org" "password-file $T/pw" >"$1"
	chmod 600 "$1"
}

# sendmail_link: the usmtp-sendmail link that make install puts beside
# usmtp-client, made in $T/bin; sets SM, its path.
sendmail_link() {
	mkdir -p "$T/bin"
	ln -s "$TOP/usmtp-client" "$T/bin/usmtp-sendmail"
	SM=$T/bin/usmtp-sendmail
}

# got USER: how many messages USER@example.org has (delivered_count of
# that Maildir).
got() {
	delivered_count "$MAIL/example.org/$1/Maildir"
}

# vector_replies N COUNT: the vectors' check-replies.py finds the replies
# in $T/out.bin to be session-N's expected codes, all COUNT of them.
vector_replies() {
	run -0 $PY "$VECTORS/check-replies.py" "$T/out.bin" \
		"$VECTORS/session-$1/session-key.hex" \
		"$VECTORS/session-$1/expected-codes.txt"
	[ "$output" = "$2 passed, 0 failed" ]
}

# login_then LINE...: the lines of a script that logs alice@example.org
# in (add_test_users), then the given LINEs.
login_then() {
	printf '%s\n' handshake "send 1.0 Hello" "send LOGIN" \
		"send alice@example.org" "send correct horse" "$@"
}

# mail_then LINE...: login_then, SEND MAIL from alice to bob, then LINEs.
mail_then() {
	login_then "send SEND MAIL" "send mail from: alice@example.org" \
		"send mail to: bob@example.org" "$@"
}

# delivered [MAILDIR]: prints the messages in MAILDIR's new/ (default
# bob@example.org's under $MAIL), one path a line, oldest first; fails,
# saying so, when MAILDIR's tmp/ holds a file: a message half written.
delivered() {
	local md=${1:-$MAIL/example.org/bob/Maildir}
	if [ -n "$(ls -A "$md/tmp" 2>/dev/null)" ]; then
		echo "delivered: $md/tmp is not empty" >&2
		return 1
	fi
	[ -d "$md/new" ] || return 0
	ls "$md/new" | sort -t. -k1,1n -k2,2V | sed "s|^|$md/new/|"
}

# delivered_count [MAILDIR]: how many messages delivered() lists.
delivered_count() {
	local list
	list=$(delivered "$@") || return 1
	[ -z "$list" ] && echo 0 || wc -l <<<"$list"
}

# the_message [MAILDIR]: prints the one message delivered there; fails
# unless there is exactly one.
the_message() {
	local list
	list=$(delivered "$@") || return 1
	if [ -z "$list" ] || [ "$(wc -l <<<"$list")" -ne 1 ]; then
		echo "the_message: not exactly one message in ${1:-the default Maildir}" >&2
		return 1
	fi
	printf '%s\n' "$list"
}

# nothing_delivered [DIR]: no file at all under DIR (default $MAIL): no
# message, and no temporary file left behind.
nothing_delivered() {
	local d=${1:-$MAIL}
	[ ! -e "$d" ] || [ -z "$(find "$d" -type f)" ]
}

# tcp_script NAME HOST PORT [usmtp-script options]: runs NAME
# (tests/transcripts/NAME.in, or a script's path) against HOST:PORT over
# TCP, in tests/transcripts; prints the decrypted replies.
tcp_script() {
	local name=$1 host=$2 port=$3 script
	shift 3
	case $name in
	*/*) script=$name ;;
	*) script=$TRANSCRIPTS/$name.in ;;
	esac
	(cd "$TRANSCRIPTS" && timeout 60 usmtp-script --ca "$KEYS/ca.pem" \
		-H "$host" -p "$port" "$@" "$script")
}

# golden_tcp NAME [OUTPUT]: compares OUTPUT (default $output) with
# tests/transcripts/NAME.out, both less the "[handler exit N]" line: a
# client over TCP has no handler to reap.
golden_tcp() {
	diff -u <(grep -v '^\[handler exit' "$TRANSCRIPTS/$1.out") \
	    <(grep -v '^\[handler exit' <<<"${2-$output}")
}

# output_is: compares $output with the lines on standard input (a
# here-document of what is expected), as diff -u: a failure shows what
# changed.
output_is() {
	diff -u - <(printf '%s\n' "$output")
}

# tcp_golden NAME HOST PORT: runs NAME with tcp_script against HOST:PORT,
# as run -0 does, and compares the replies with NAME.out (golden_tcp).
tcp_golden() {
	run -0 tcp_script "$@"
	golden_tcp "$1"
}

# check_golden NAME: compares $output with tests/transcripts/NAME.out.
check_golden() {
	diff -u "$TRANSCRIPTS/$1.out" - <<<"$output"
}

# golden NAME [handler options]: runs tests/transcripts/NAME.in with
# client_script, as run -0 does (output, lines and status are set), and
# compares the replies with NAME.out.
golden() {
	run -0 client_script "$@"
	check_golden "$1"
}

# free_port: prints a TCP port nobody listens on (loopback).
free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# listening PORT: something listens on TCP port PORT.
listening() {
	[ -n "$(ss -Hltn "sport = :$1")" ]
}

# wait_port PORT [HOST]: waits (5 s at most) until something listens.
wait_port() {
	wait_until 5 listening "$1"
}

# start_socket_activate PORT ADDR: runs the handler behind
# systemd-socket-activate on ADDR:PORT; sets SA_PID.
start_socket_activate() {
	local port=$1 addr=$2
	systemd-socket-activate --inetd -a -l "$addr:$port" \
		sh -c "exec $HANDLER 2>>$HLOG" 2>>"$T/sa.log" &
	SA_PID=$!
	wait_port "$port"
}

# stop_pid PID: kills and reaps a background process started by a test.
stop_pid() {
	[ -n "${1:-}" ] || return 0
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# xinetd_start: runs the real xinetd in the foreground with the shipped
# service file (xinetd/usmtp.in, paths substituted as the Makefile does),
# changed only in port, user and group, and a usmtp.conf pointing at the
# test's keys, users and Maildirs.  Sets XPORT and XI_PID; the log is
# $T/xinetd.log.  The handler logs through syslog there: under xinetd its
# stderr is the connection (after syslog_start, to $T/syslog.log).
xinetd_start() {
	XPORT=$(free_port)
	mkdir -p "$T/xinetd.d" "$T/etc/usmtp"
	cat >"$T/etc/usmtp/usmtp.conf" <<-EOC
	cert = $KEYS/server.pem
	key = $KEYS/server.key
	noise-cert = $KEYS/server-x25519.pem
	noise-key = $KEYS/server-x25519.key
	users = $DB
	maildir = $MAIL/%d/%u/Maildir
	throttle-db = $T/throttle.db
	replay-db = $T/replay.db
	slot-file = $T/slots
	timeout = 10
	EOC
	sed -e "s|@SBINDIR@|$TOP|g" -e "s|@BINDIR@|$TOP|g" \
	    -e "s|@SYSCONFDIR@|$T/etc|g" -e 's|@LOCALSTATEDIR@|/var|g' \
	    -e "s|^\([[:space:]]*port[[:space:]]*=\).*|\1 $XPORT|" \
	    -e "s|^\([[:space:]]*user[[:space:]]*=\).*|\1 $(id -un)|" \
	    -e "s|^\([[:space:]]*group[[:space:]]*=\).*|\1 $(id -gn)|" \
	    "$TOP/xinetd/usmtp.in" >"$T/xinetd.d/usmtp"
	printf 'defaults\n{\n}\nincludedir %s\n' "$T/xinetd.d" >"$T/xinetd.conf"
	"${SYSLOG_WRAP[@]}" xinetd -dontfork -f "$T/xinetd.conf" \
	    -filelog "$T/xinetd.log" \
	    -pidfile "$T/xinetd.pid" 2>>"$T/xinetd.log" &
	XI_PID=$!
	wait_port "$XPORT" || { cat "$T/xinetd.log"; return 1; }
}

# syslog_start: a stand-in syslog daemon (tests/syslog-listen.py) whose
# lines land in $T/syslog.log; sets SYSLOG_PID.  syslog(3) writes to
# /dev/log: when the machine has none, the listener takes that name (and
# syslog_stop removes it) and SYSLOG_WRAP is empty; when it has one,
# SYSLOG_WRAP is the command prefix that runs a program in a private
# mount namespace where the listener's socket is bound over /dev/log.
# Put "${SYSLOG_WRAP[@]}" in front of a program (not a shell function):
# it execs, so the program keeps the pid it is started with.
syslog_start() {
	SYSLOG_OWN=
	SYSLOG_WRAP=()
	if [ -e /dev/log ]; then
		SYSLOG_SOCK=$T/log.sock
		SYSLOG_WRAP=(unshare -m sh -c \
		    'mount --bind "$0" /dev/log && exec "$@"' "$SYSLOG_SOCK")
	else
		SYSLOG_SOCK=/dev/log
		SYSLOG_OWN=1
	fi
	: >"$T/syslog.log"
	$PY "$TOP/tests/syslog-listen.py" "$SYSLOG_SOCK" "$T/syslog.log" >"$T/syslog.ready" &
	SYSLOG_PID=$!
	wait_until 5 grep -qs ready "$T/syslog.ready"
}

# syslog_stop: stops the listener (and removes /dev/log if it made it).
syslog_stop() {
	stop_pid "${SYSLOG_PID:-}"
	SYSLOG_PID=
	if [ -n "${SYSLOG_OWN:-}" ]; then
		rm -f /dev/log
	fi
}
