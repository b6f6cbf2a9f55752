#!/usr/bin/env bats
# usmtp-client's configuration file (usmtp-client(1), CONFIGURATION FILE):
# where it is found, accounts and defaults, the command line winning,
# files others may read refused with the chmod to run, passwords from a
# file or a command, an empty password refused before any connection,
# errors that name file and line; and -p's range.  The server is the real
# handler behind systemd-socket-activate on a loopback port, as a user's
# would be.

load helpers

setup() {
	client_setup
	export XDG_CONFIG_HOME=$T/xdg
	mkdir -p "$XDG_CONFIG_HOME/usmtp"
	CONF=$XDG_CONFIG_HOME/usmtp/client.conf
	SA_PID=
	PORT=
}

teardown() {
	stop_pid "$SA_PID"
}

# listen: the handler behind systemd-socket-activate on 127.0.0.1:$PORT.
listen() {
	PORT=$(free_port)
	start_socket_activate "$PORT" 127.0.0.1
}

# conf LINE...: writes the configuration file, mode 0600.
conf() {
	printf '%s\n' "$@" >"$CONF"
	chmod 600 "$CONF"
}

# refused STATUS [OPTION...]: usmtp-client, with OPTIONs, sending
# bob@example.org a message exits STATUS and never starts the server (an
# --exec that would leave $T/started); its stderr is in $stderr.
refused() {
	local status=$1
	shift
	run -"$status" --separate-stderr usmtp-client "$@" \
		--exec "touch $T/started" -s x bob@example.org <<<"b"
	[ ! -e "$T/started" ]
}

@test "with the file in \$XDG_CONFIG_HOME, a recipient and a subject are all it takes" {
	listen
	alice_conf "$CONF"
	run -0 --separate-stderr timeout 60 usmtp-client -s configured \
		bob@example.org <<<"body"
	[ -z "$stderr" ]
	[ "$(delivered_count)" -eq 1 ]
	grep -q '^Subject: configured' "$MAIL"/example.org/bob/Maildir/new/*
	grep -q 'login user=alice@example.org result=ok' "$HLOG"
}

@test "without XDG_CONFIG_HOME the file is ~/.config/usmtp/client.conf" {
	listen
	unset XDG_CONFIG_HOME
	export HOME=$T/home
	mkdir -p "$HOME/.config/usmtp"
	CONF=$HOME/.config/usmtp/client.conf
	# ~/ in ca and password-file is the home directory
	cp "$KEYS/ca.pem" "$HOME/ca.pem"
	cp "$T/pw" "$HOME/pw"
	conf "host 127.0.0.1" "port $PORT" "ca ~/ca.pem" \
		"user alice@example.org" "password-file ~/pw"
	run -0 --separate-stderr timeout 60 usmtp-client -s home bob@example.org <<<"b"
	[ "$(delivered_count)" -eq 1 ]
}

@test "accounts: defaults inherited, 'default' chosen, -A and --account pick another, -v names it" {
	listen
	add_user carol@example.org carol-pw
	printf 'carol-pw\n' >"$T/carol-pw"
	chmod 600 "$T/carol-pw"
	conf "# shared by every account" "defaults" "host 127.0.0.1" \
		"port $PORT" "ca $KEYS/ca.pem" "" \
		"account carol" "user carol@example.org" \
		"password-file $T/carol-pw" "" \
		"account default" "user alice@example.org" \
		"password-file $T/pw"
	run -0 --separate-stderr timeout 60 usmtp-client -v -s one bob@example.org <<<"1"
	[[ $stderr == *"usmtp-client: configuration $CONF, account default (line 11)"* ]]
	grep -q 'login user=alice@example.org result=ok' "$HLOG"
	run -0 --separate-stderr timeout 60 usmtp-client -A carol -s two bob@example.org <<<"2"
	run -0 --separate-stderr timeout 60 usmtp-client --account carol -s three bob@example.org <<<"3"
	[ "$(grep -c 'login user=carol@example.org result=ok' "$HLOG")" -eq 2 ]
	[ "$(delivered_count)" -eq 3 ]
}

@test "without an account named default the first account is used" {
	listen
	conf "defaults" "ca $KEYS/ca.pem" "account first" "host 127.0.0.1" \
		"port $PORT" "user alice@example.org" "password-file $T/pw" \
		"account second" "host 127.0.0.1" "port 1" "user bob@example.org"
	run -0 --separate-stderr timeout 60 usmtp-client -s first bob@example.org <<<"b"
	grep -q 'login user=alice@example.org result=ok' "$HLOG"
}

@test "the command line wins over every key of the file" {
	listen
	printf 'bob-pw\n' >"$T/bob-pw"
	chmod 600 "$T/bob-pw"
	# everything in the file is wrong but the CA
	conf "host 192.0.2.1" "port 9" "ca $KEYS/ca.pem" \
		"user carol@example.org" "password-command false" \
		"timeout 1" "secure require" "dialect reference"
	run -0 --separate-stderr timeout 60 usmtp-client -H 127.0.0.1 \
		-p "$PORT" -u bob@example.org --password-file "$T/bob-pw" \
		--timeout 30 --secure off --dialect document -v -s cli \
		alice@example.org <<<"b"
	grep -q 'login user=bob@example.org result=ok' "$HLOG"
	grep -q 'handshake result=ok dialect=document security=1.0' "$HLOG"
	[[ $stderr == *"usmtp-client: USMTP 1.0, document dialect"* ]]
}

@test "--config names another file; missing, it is an error (78)" {
	listen
	alice_conf "$T/other.conf"
	conf "host 192.0.2.1"
	run -0 --separate-stderr timeout 60 usmtp-client --config "$T/other.conf" \
		-s other bob@example.org <<<"b"
	[ "$(delivered_count)" -eq 1 ]
	refused 78 --config "$T/none.conf"
	[ "$stderr" = "usmtp-client: $T/none.conf: No such file or directory" ]
}

@test "an unknown account is an error (78), also without a file" {
	conf "account a" "host 127.0.0.1"
	refused 78 -A b
	[ "$stderr" = "usmtp-client: $CONF: no account b" ]
	rm "$CONF"
	refused 78 -A b
	[ "$stderr" = "usmtp-client: $CONF: no such file, so no account b" ]
}

@test "errors in the file name the file and the line, and nothing is sent" {
	conf "# comment" "host 127.0.0.1" "hots example.org"
	refused 78
	[ "$stderr" = "usmtp-client: $CONF:3: unknown key 'hots'" ]
	conf "defaults" "port 99999"
	refused 78
	[[ $stderr == "usmtp-client: $CONF:2: port must be a number from 1 to 65535"* ]]
	conf "secure maybe"
	refused 78
	[[ $stderr == "usmtp-client: $CONF:1: secure must be prefer, require or off"* ]]
}

@test "a configuration file others may read is refused with the chmod to run" {
	conf "host 127.0.0.1"
	chmod 644 "$CONF"
	refused 78
	[ "$stderr" = "usmtp-client: $CONF: group or others may access it (mode 0644); run: chmod 600 $CONF" ]
}

@test "a password file others may read is refused with the chmod to run (66), before connecting" {
	chmod 640 "$T/pw"
	conf "ca $KEYS/ca.pem" "user alice@example.org" "password-file $T/pw"
	refused 66
	[ "$stderr" = "usmtp-client: $T/pw: group or others may access it (mode 0640); run: chmod 600 $T/pw" ]
	# the same from the command line
	refused 66 --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-file "$T/pw"
	[[ $stderr == *"run: chmod 600 $T/pw" ]]
}

@test "password-command: the first line of its output is the password" {
	conf "ca $KEYS/ca.pem" "user alice@example.org" \
		"password-command printf 'correct horse\\nsecond line\\n'"
	run -0 --separate-stderr timeout 60 usmtp-client -s cmd \
		--exec "exec $HANDLER 2>>$HLOG" bob@example.org <<<"b"
	grep -q 'login user=alice@example.org result=ok' "$HLOG"
	[ "$(delivered_count)" -eq 1 ]
}

@test "a password command that fails: 66, the file named, nothing sent" {
	conf "ca $KEYS/ca.pem" "user alice@example.org" "password-command exit 3"
	refused 66
	[ "$stderr" = "usmtp-client: $CONF: password-command exited with status 3" ]
	# --password-command on the command line, the same
	refused 66 --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-command "exit 4"
	[ "$stderr" = "usmtp-client: password-command exited with status 4" ]
}

@test "an empty password is refused before connecting: file, command, USMTP_PASSWORD" {
	: >"$T/empty"
	chmod 600 "$T/empty"
	refused 66 --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-file "$T/empty"
	[[ $stderr == *"the password (the first line) is empty"* ]]
	refused 66 --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-command "echo"
	[[ $stderr == *"empty"* ]]
	USMTP_PASSWORD= refused 64 --ca "$KEYS/ca.pem" -u alice@example.org
	[ "$stderr" = "usmtp-client: USMTP_PASSWORD is empty: an empty password is never sent" ]
	[ ! -e "$T/throttle.db" ]
}

@test "USMTP_PASSWORD wins over the file's password, the command line over both" {
	conf "ca $KEYS/ca.pem" "user alice@example.org" "password-command exit 1"
	USMTP_PASSWORD="correct horse" run -0 --separate-stderr timeout 60 \
		usmtp-client -s env --exec "exec $HANDLER 2>>$HLOG" bob@example.org <<<"b"
	USMTP_PASSWORD="wrong" run -0 --separate-stderr timeout 60 \
		usmtp-client --password-file "$T/pw" -s file \
		--exec "exec $HANDLER 2>>$HLOG" bob@example.org <<<"b"
	[ "$(delivered_count)" -eq 2 ]
}

@test "the file's secure, dialect and timeout are used" {
	conf "ca $KEYS/ca.pem" "user alice@example.org" "password-file $T/pw" \
		"secure off" "dialect reference" "timeout 3"
	run -0 --separate-stderr timeout 60 usmtp-client -v -s keys \
		--exec "exec $PY $TOP/tests/reference-server.py $T/offers.log -- $HANDLER 2>>$HLOG" \
		bob@example.org <<<"b"
	[ "$(cat "$T/offers.log")" = "offer: support asymetric-rsa-2048 symetric-aes-256-ecb?" ]
	# a server that never answers: the file's 3 s (once), not the
	# default 60
	SECONDS=0
	run -75 --separate-stderr timeout 60 usmtp-client -s slow \
		--exec "sleep 30" bob@example.org <<<"b"
	[ "$SECONDS" -ge 3 ] && [ "$SECONDS" -lt 6 ]
	[[ $stderr == *"no reply from the server in time"* ]]
}

@test "-p takes 1 to 65535 only: anything else is a usage error before connecting" {
	for p in 0 65536 99999 -1 12x ''; do
		refused 64 -p "$p" -u a@example.org
		[ "$stderr" = "usmtp-client: -p $p: a port is a number from 1 to 65535" ]
	done
}
