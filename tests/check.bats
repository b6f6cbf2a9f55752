#!/usr/bin/env bats
# check.bats -- usmtp-handler --check (usmtp-handler(8), Checking the
# configuration): a good setup passes quietly and -v lists what was
# checked; every problem is provoked for real (missing, unreadable,
# readable, mismatched keys, certificates out of date made with openssl,
# a missing or foreign users database, a Maildir base missing or closed,
# a sendmail that cannot run, a missing throttle directory, --recipients
# any with Maildir delivery) and gives its one line and 78.  Checks that
# depend on permissions run as user nobody in a directory of their own,
# since root may write anywhere.

load helpers

setup() {
	usmtp_setup
	add_test_users
	mkdir -p "$MAIL"
	K=$T/keys
	mkdir "$K"
	cp "$KEYS"/server.pem "$KEYS"/server.key "$KEYS"/server-x25519.pem \
	    "$KEYS"/server-x25519.key "$K/"
	CHECK="usmtp-handler --check --cert $K/server.pem --key $K/server.key --users $DB --maildir $MAIL/%d/%u/Maildir --throttle-db $T/throttle.db --replay-db $T/replay.db --slot-file $T/slots --noise-cert none --noise-key none"
	W=
}

teardown() {
	if [ -n "$W" ]; then rm -rf "$W"; fi
}

# nobody_setup: a complete set-up in $W (a fresh directory in /tmp that
# user nobody can reach), owned as the README says, for nobody; sets
# NCHECK, --check run as nobody on it.  Tests then break one thing.
nobody_setup() {
	W=$(mktemp -d /tmp/usmtp-check.XXXXXX)
	chmod 755 "$W"
	install -d -m 0750 -g nogroup "$W/etc"
	cp "$KEYS/server.pem" "$KEYS/server.key" "$W/etc/"
	chown nobody "$W/etc/server.key"
	cp "$DB" "$W/etc/users.db"
	chgrp nogroup "$W/etc/users.db"
	chmod 640 "$W/etc/users.db"
	install -d "$W/mail"
	install -d -o nobody -g nogroup "$W/mail/example.org"
	install -d -m 0700 -o nobody -g nogroup "$W/state"
	NCHECK="setpriv --reuid=nobody --regid=nogroup --clear-groups -- usmtp-handler --check --cert $W/etc/server.pem --key $W/etc/server.key --users $W/etc/users.db --maildir $W/mail/%d/%u/Maildir --throttle-db $W/state/throttle.db --replay-db $W/state/replay.db --slot-file $W/state/slots --noise-cert none --noise-key none"
}

# openssl_ca_cert NAME START END: a self-signed RSA-2048 certificate
# $T/NAME.pem valid from START to END (YYYYMMDDHHMMSSZ) and its key
# $T/NAME.key (0600), made with openssl ca, which takes any dates.
openssl_ca_cert() {
	local d=$T/ca-$1
	mkdir "$d"
	: >"$d/index.txt"
	echo 01 >"$d/serial"
	cat >"$d/ca.cnf" <<-EOF
	[ca]
	default_ca = x
	[x]
	database = $d/index.txt
	new_certs_dir = $d
	serial = $d/serial
	default_md = sha256
	policy = p
	[p]
	commonName = supplied
	EOF
	openssl req -new -newkey rsa:2048 -nodes -keyout "$T/$1.key" \
	    -subj /CN=localhost -out "$d/req.csr" 2>/dev/null
	chmod 600 "$T/$1.key"
	openssl ca -batch -config "$d/ca.cnf" -selfsign -keyfile "$T/$1.key" \
	    -in "$d/req.csr" -startdate "$2" -enddate "$3" -notext \
	    -out "$T/$1.pem" 2>/dev/null
}

# refused LINE COMMAND...: the --check command line COMMAND exits 78, and
# its stderr is the one line LINE.
refused() {
	local line=$1
	shift
	run -78 --separate-stderr "$@"
	diff -u <(printf '%s\n' "$line") <(printf '%s\n' "$stderr")
}

@test "a good setup passes: nothing printed, exit 0" {
	run -0 --separate-stderr $CHECK
	[ -z "$output" ]
	[ -z "$stderr" ]
}

@test "-v lists each thing checked, with the number of users" {
	run -0 --separate-stderr $CHECK -v --noise-cert "$K/server-x25519.pem" \
	    --noise-key "$K/server-x25519.key"
	[ -z "$stderr" ]
	diff -u - <(sed 's/valid until [0-9-]* [0-9:]* UTC/valid until DATE/' <<<"$output") <<-EOF
	usmtp-handler: no --config file
	usmtp-handler: checking as user root, group root
	usmtp-handler: $K/server.pem: RSA-2048 certificate, valid until DATE
	usmtp-handler: $K/server.key: RSA-2048 key, closed to group and others, matches the certificate
	usmtp-handler: $K/server-x25519.pem: X25519 certificate, valid until DATE
	usmtp-handler: $K/server-x25519.key: X25519 key, closed to group and others, matches the certificate
	usmtp-handler: $DB: users database, 2 users
	usmtp-handler: $MAIL/%d/%u/Maildir: Maildir base $MAIL exists; the Maildirs of 2 users can be written or made
	usmtp-handler: $T/throttle.db: throttle file (not made yet); user root may write in its directory
	usmtp-handler: $T/replay.db: replay cache; user root may write in its directory
	usmtp-handler: $T/slots: slot file; user root may write in its directory
	usmtp-handler: no problems found
	EOF
}

@test "--check reads --config as a session does, and the command line wins" {
	cat >"$T/usmtp.conf" <<-EOF
	cert = $K/server.pem
	key = $T/nowhere.key
	users = $DB
	maildir = $MAIL/%d/%u/Maildir
	throttle-db = none
	replay-db = none
	slot-file = none
	noise-cert = none
	noise-key = none
	EOF
	refused "usmtp-handler: $T/nowhere.key: no such file; fix --key, or make the key with mkcerts (README, Setting up a server)" \
	    usmtp-handler --check --config "$T/usmtp.conf"
	run -0 --separate-stderr usmtp-handler --check -v --config "$T/usmtp.conf" --key "$K/server.key"
	[ "${lines[0]}" = "usmtp-handler: $T/usmtp.conf: read" ]
	[[ $output != *throttle* ]]
	[[ $output != *replay* ]]
	[ -z "$stderr" ]
}

@test "a --config file that is not there: its line, naming the option, and 78" {
	refused "usmtp-handler: --config $T/nowhere.conf: No such file or directory" \
	    usmtp-handler --check --config "$T/nowhere.conf"
}

@test "a missing key: its line and 78" {
	rm "$K/server.key"
	refused "usmtp-handler: $K/server.key: no such file; fix --key, or make the key with mkcerts (README, Setting up a server)" $CHECK
}

@test "a key group or others may read: its line with the chmod to run, and 78" {
	chmod 640 "$K/server.key"
	refused "usmtp-handler: $K/server.key: group or others may read it; run: chmod 600 $K/server.key" $CHECK
}

@test "a key that does not match the certificate: its line and 78" {
	openssl genrsa -out "$K/server.key" 2048 2>/dev/null
	refused "usmtp-handler: $K/server.key: does not match $K/server.pem; give --key the key made with that certificate" $CHECK
}

@test "a key that is no RSA-2048 key: its line and 78" {
	openssl genrsa -out "$K/server.key" 1024 2>/dev/null
	refused "usmtp-handler: $K/server.key: not an RSA-2048 key (usmtp(7), Handshake); fix --key" $CHECK
}

@test "an expired certificate made with openssl: its line and 78" {
	openssl_ca_cert old 20200101000000Z 20210101000000Z
	refused "usmtp-handler: $T/old.pem: expired on 2021-01-01 00:00:00 UTC: clients refuse it; make a new one with mkcerts (README, Setting up a server)" \
	    $CHECK --cert "$T/old.pem" --key "$T/old.key"
}

@test "a certificate not yet valid: its line and 78" {
	openssl_ca_cert new 20991231000000Z 21000101000000Z
	refused "usmtp-handler: $T/new.pem: not valid before 2099-12-31 00:00:00 UTC: clients refuse it; check the clock, or make a new one with mkcerts" \
	    $CHECK --cert "$T/new.pem" --key "$T/new.key"
}

@test "a certificate ending within 30 days: a warning line, and still 0" {
	openssl req -x509 -newkey rsa:2048 -nodes -days 10 -subj /CN=localhost \
	    -keyout "$T/soon.key" -out "$T/soon.pem" 2>/dev/null
	chmod 600 "$T/soon.key"
	run -0 --separate-stderr $CHECK --cert "$T/soon.pem" --key "$T/soon.key"
	[[ $stderr == "usmtp-handler: warning: $T/soon.pem: expires on "*", in 10 days; make a new one with mkcerts before then" ]]
	[ -z "$output" ]
}

@test "secure mode: --noise-cert without --noise-key, and an RSA key given as the X25519 one" {
	refused "usmtp-handler: $K/server-x25519.pem: --noise-cert without --noise-key: secure mode needs both (or neither)" \
	    $CHECK --noise-cert "$K/server-x25519.pem"
	refused "usmtp-handler: $K/server.key: not an X25519 key (usmtp(7), SECURE MODE); fix --noise-key" \
	    $CHECK --noise-cert "$K/server-x25519.pem" --noise-key "$K/server.key"
}

@test "a missing users database: its line, with the command that makes one, and 78" {
	rm "$DB"
	refused "usmtp-handler: $DB: no such file; fix --users, or make an empty database: usmtp-users --db $DB init" $CHECK
}

@test "a file that is not a users database is called that, and 78" {
	head -c 8192 /dev/urandom >"$DB"
	refused "usmtp-handler: $DB: not a users database (GDBM: Bad magic number); check the path, or move the file away and run usmtp-users init" $CHECK
}

@test "a missing Maildir base directory: its line and 78" {
	rmdir "$MAIL"
	refused "usmtp-handler: $MAIL: the Maildir base directory of --maildir $MAIL/%d/%u/Maildir does not exist; run: install -d -o root -g root $MAIL" $CHECK
}

@test "a bad Maildir template: its line and 78" {
	refused "usmtp-handler: $MAIL/%x/Maildir: bad Maildir template: only %u, %d, %a and %% may follow a %; fix --maildir" \
	    $CHECK --maildir "$MAIL/%x/Maildir"
}

@test "a sendmail that is not executable: its line and 78; an executable one passes" {
	printf '#!/bin/sh\nexit 0\n' >"$T/sendmail"
	chmod 644 "$T/sendmail"
	refused "usmtp-handler: $T/sendmail: user root may not run it (not an executable file); fix --sendmail" \
	    $CHECK --sendmail "$T/sendmail"
	refused "usmtp-handler: $T/no-sendmail: no such file; fix --sendmail (Postfix's is /usr/sbin/sendmail)" \
	    $CHECK --sendmail "$T/no-sendmail"
	chmod 755 "$T/sendmail"
	run -0 --separate-stderr $CHECK --sendmail "$T/sendmail" --recipients any -v
	[[ $output == *"usmtp-handler: $T/sendmail: sendmail program, recipients any"* ]]
	[ -z "$stderr" ]
}

@test "a missing throttle directory: its line and 78" {
	refused "usmtp-handler: $T/no-such-dir: no such directory (throttle file, --throttle-db); run: install -d -m 0700 -o root -g root $T/no-such-dir" \
	    $CHECK --throttle-db "$T/no-such-dir/throttle.db"
}

@test "a throttle file that is none is named, and left as it was" {
	head -c 4096 /dev/zero | tr '\0' x >"$T/throttle.db"
	chmod 600 "$T/throttle.db"
	cp "$T/throttle.db" "$T/before"
	refused "usmtp-handler: $T/throttle.db: damaged or not a usmtp throttle file (bad magic); fix --throttle-db (the handler replaces only a damaged file of its own)" $CHECK
	cmp "$T/before" "$T/throttle.db"
}

@test "--recipients any with Maildir delivery: its line and 78" {
	refused "usmtp-handler: --recipients any needs --sendmail: Maildir delivery can only deliver to users in the database; set recipients = local, or deliver with --sendmail" \
	    $CHECK --recipients any
}

@test "every problem gets its own line" {
	rm "$K/server.key" "$DB"
	rmdir "$MAIL"
	run -78 --separate-stderr $CHECK --throttle-db "$T/no-such-dir/throttle.db"
	[ "${#stderr_lines[@]}" -eq 4 ]
	[[ ${stderr_lines[0]} == "usmtp-handler: $K/server.key: no such file;"* ]]
	[[ ${stderr_lines[1]} == "usmtp-handler: $DB: no such file;"* ]]
	[[ ${stderr_lines[2]} == "usmtp-handler: $MAIL: the Maildir base directory"* ]]
	[[ ${stderr_lines[3]} == "usmtp-handler: $T/no-such-dir: no such directory"* ]]
}

@test "--verbose without --check is a usage error" {
	run -64 --separate-stderr usmtp-handler --verbose
	[[ $stderr == "usmtp-handler: --verbose goes with --check"* ]]
}

@test "as the service's user: the README's set-up passes" {
	nobody_setup
	run -0 --separate-stderr $NCHECK -v
	[ -z "$stderr" ]
	[ "${lines[1]}" = "usmtp-handler: checking as user nobody, group nogroup" ]
	[[ $output == *"users database, 2 users"* ]]
}

@test "as the service's user: a key it may not read" {
	nobody_setup
	chown root "$W/etc/server.key"
	refused "usmtp-handler: $W/etc/server.key: user nobody may not read it; run: chown nobody $W/etc/server.key" $NCHECK
}

@test "as the service's user: a readable key owned by another user needs chown and chmod" {
	nobody_setup
	chown root "$W/etc/server.key"
	chmod 644 "$W/etc/server.key"
	refused "usmtp-handler: $W/etc/server.key: group or others may read it; run: chown nobody $W/etc/server.key && chmod 600 $W/etc/server.key" $NCHECK
}

@test "as the service's user: a configuration directory it may not enter" {
	nobody_setup
	chgrp root "$W/etc"
	run -78 --separate-stderr $NCHECK
	[ "${stderr_lines[0]}" = "usmtp-handler: $W/etc/server.pem: user nobody may not enter $W/etc; run: chgrp nogroup $W/etc && chmod g+x $W/etc" ]
	[ "${#stderr_lines[@]}" -eq 3 ]
}

@test "as the service's user: a users database it may not read" {
	nobody_setup
	chgrp root "$W/etc/users.db"
	refused "usmtp-handler: $W/etc/users.db: user nobody may not read it; run: chgrp nogroup $W/etc/users.db && chmod 640 $W/etc/users.db" $NCHECK
}

@test "as the service's user: a Maildir base it may not write, a domain without its directory" {
	nobody_setup
	rmdir "$W/mail/example.org"
	run -78 --separate-stderr $NCHECK
	# one line for the directory, naming the first user met (database order)
	[[ $stderr == "usmtp-handler: $W/mail: user nobody may not create $W/mail/example.org in it ("@(alice|bob)"@example.org's Maildir); run: install -d -o nobody -g nogroup $W/mail/example.org" ]]
}

@test "as the service's user: a Maildir it may not write in" {
	nobody_setup
	install -d -o nobody "$W/mail/example.org/bob"
	install -d -o nobody "$W/mail/example.org/bob/Maildir"
	install -d -o root -m 0755 "$W/mail/example.org/bob/Maildir/tmp"
	refused "usmtp-handler: $W/mail/example.org/bob/Maildir/tmp: user nobody may not write in it (bob@example.org's Maildir); run: chown nobody:nogroup $W/mail/example.org/bob/Maildir/tmp" $NCHECK
}

@test "as the service's user: a throttle directory it may not write in" {
	nobody_setup
	chown root "$W/state"
	refused "usmtp-handler: $W/state: user nobody may not write in it (throttle file, --throttle-db); run: chown nobody:nogroup $W/state" $NCHECK
}
