# deb.bats -- the Debian packages: "make deb" builds usmtp and
# usmtp-client, lintian finds nothing, and installing them on this
# machine gives the usmtp user, /etc/usmtp with keys and an empty user
# database, /var/lib/usmtp, and an enabled usmtp.socket; one session
# through the installed unit's command line delivers a mail sent with the
# installed client; remove keeps the configuration and purge leaves
# nothing.
#
# It installs packages and creates a system user on this machine, so it
# runs only as root on a machine without usmtp (CI's throwaway machine);
# elsewhere every test is skipped and says why.  teardown_file purges the
# packages and deletes the user even when a test fails.  Other suites put
# the build tree first in PATH: installed programs are called by their
# absolute paths.

load helpers

# The tests run in order: each looks at what the ones before it left.
export BATS_NO_PARALLELIZE_WITHIN_FILE=true

CONF=/etc/usmtp
STATE=/var/lib/usmtp
UNITS=/lib/systemd/system
# the mail domain of the session test; its spool is made and removed here
DOM=deb-test.example

# not_here REASON: records why this machine cannot run the suite.
not_here() {
	echo "$1" >"$BATS_FILE_TMPDIR/skip"
}

# on_disk PKG...: succeeds when dpkg has any PKG in some state other than
# not-installed (installed, half-installed, config-files...).
on_disk() {
	local p s
	for p; do
		s=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) || continue
		case $s in ?n*|'') ;; *) return 0 ;; esac
	done
	return 1
}

# usmtp_paths: every path under /etc, /usr, /lib and /var whose name
# has "usmtp" in it, sorted.
usmtp_paths() {
	find /etc /usr /lib /var -xdev -name '*usmtp*' 2>/dev/null | sort
}

setup_file() {
	export DEBIAN_FRONTEND=noninteractive
	local F=$BATS_FILE_TMPDIR
	if [ "$(id -u)" -ne 0 ]; then
		not_here "needs root: installs packages and creates a system user"
		return 0
	fi
	if [ -n "${USMTP_SANITIZER:-}" ]; then
		not_here "the packages are built without sanitizers; USMTP_SANITIZER=$USMTP_SANITIZER"
		return 0
	fi
	if on_disk usmtp usmtp-client; then
		not_here "a usmtp package is on this machine; the suite would purge it"
		return 0
	fi
	if [ -e "$CONF" ] || [ -e "$STATE" ] || [ -e "/var/mail/$DOM" ] ||
	    getent passwd usmtp >/dev/null || getent group usmtp >/dev/null; then
		not_here "$CONF, $STATE, /var/mail/$DOM or a usmtp user or group exists; the suite would remove it"
		return 0
	fi
	touch "$F/owned"
	[ -e "$TOP/dist" ] || touch "$F/rm-dist"
	usmtp_paths >"$F/paths.before"
	(cd "$TOP" && git status --porcelain 2>/dev/null) >"$F/git.before" || true

	make -C "$TOP" deb >"$F/build.log" 2>&1 ||
	    { tail -40 "$F/build.log"; return 1; }
	SERVER_DEB=$(echo "$TOP"/dist/usmtp_*.deb)
	CLIENT_DEB=$(echo "$TOP"/dist/usmtp-client_*.deb)

	apt-get install -y --no-install-recommends "$SERVER_DEB" "$CLIENT_DEB" \
	    >"$F/install.log" 2>&1 || { cat "$F/install.log"; return 1; }
}

teardown_file() {
	local F=$BATS_FILE_TMPDIR
	[ -e "$F/owned" ] || return 0
	if on_disk usmtp usmtp-client; then
		dpkg --purge usmtp usmtp-client >/dev/null 2>&1 || true
	fi
	rm -rf "/var/mail/$DOM" "$CONF" "$STATE"
	# man-db's cat pages of usmtp's man pages (systemd-analyze verify
	# formats the units' Documentation= pages)
	usmtp_paths | comm -13 "$F/paths.before" - | sed -n '\|^/var/cache/man/|p' |
	    xargs -r rm -f
	if getent passwd usmtp >/dev/null; then userdel usmtp || true; fi
	if getent group usmtp >/dev/null; then groupdel usmtp || true; fi
	if [ -e "$F/rm-dist" ]; then rm -rf "$TOP/dist"; fi
}

setup() {
	if [ -e "$BATS_FILE_TMPDIR/skip" ]; then skip "$(cat "$BATS_FILE_TMPDIR/skip")"; fi
	T=$BATS_TEST_TMPDIR
	F=$BATS_FILE_TMPDIR
}

# mode_of PATH: "owner:group mode" of PATH.
mode_of() {
	stat -c '%U:%G %a' "$1"
}

@test "make deb leaves usmtp and usmtp-client in dist/ and the tree as git had it" {
	run -0 find "$TOP/dist" -maxdepth 1 -name '*.deb' -printf '%f\n'
	[[ $output == *usmtp_1.0.0-1_*.deb* ]]
	[[ $output == *usmtp-client_1.0.0-1_*.deb* ]]
	[ ! -e "$TOP/dist/build" ]
	if [ -d "$TOP/.git" ] || [ -f "$TOP/.git" ]; then
		(cd "$TOP" && git status --porcelain) >"$T/git.after"
		diff -u "$F/git.before" "$T/git.after"
	fi
}

@test "lintian finds no error and no warning in the packages" {
	run -0 --separate-stderr lintian --tag-display-limit 0 \
	    "$TOP"/dist/usmtp_*.deb "$TOP"/dist/usmtp-client_*.deb
	echo "$output"
	run -1 grep -E '^[EW]: ' <<<"$output"
}

@test "the handler is linked with the shared libcrypto" {
	run -0 ldd /usr/sbin/usmtp-handler
	[[ $output == *libcrypto.so.3* ]]
}

@test "usmtp has the server's files and usmtp-client the client's" {
	dpkg -L usmtp | sort >"$T/server"
	dpkg -L usmtp-client | sort >"$T/client"
	for f in /usr/sbin/usmtp-handler /usr/sbin/usmtp-users \
	    /usr/share/usmtp/mkcerts $CONF/usmtp.conf \
	    $UNITS/usmtp.socket $UNITS/usmtp@.service \
	    /usr/share/doc/usmtp/examples/usmtp.xinetd \
	    /usr/share/doc/usmtp/examples/inetd.conf \
	    /usr/share/doc/usmtp/examples/usmtp-sendmail.conf \
	    /usr/share/doc/usmtp/copyright \
	    /usr/share/man/man7/usmtp.7.gz \
	    /usr/share/man/man8/usmtp-handler.8.gz \
	    /usr/share/man/man8/usmtp-users.8.gz; do
		grep -qxF "$f" "$T/server" || { echo "usmtp lacks $f"; false; }
	done
	for f in /usr/bin/usmtp-client /usr/share/man/man1/usmtp-client.1.gz \
	    /usr/bin/usmtp-sendmail /usr/share/man/man1/usmtp-sendmail.1.gz \
	    /usr/share/doc/usmtp-client/copyright; do
		grep -qxF "$f" "$T/client" || { echo "usmtp-client lacks $f"; false; }
	done
	# the server package has no client, the client package no server
	run -1 grep '^/usr/bin/.' "$T/server"
	run -1 grep -E '^/(usr/sbin|etc|lib)/.' "$T/client"
	run -0 dpkg-query -W -f='${Conffiles}' usmtp
	[[ $output == *" $CONF/usmtp.conf "* ]]
	cmp "$TOP/etc/usmtp.conf.example" "$CONF/usmtp.conf"
}

@test "the usmtp system user and group have no shell and no home" {
	run -0 getent passwd usmtp
	IFS=: read -r _ _ uid gid _ home shell <<<"$output"
	[ "$uid" -lt 1000 ]
	[ "$home" = /nonexistent ]
	[ ! -e /nonexistent ]
	[ "$shell" = /usr/sbin/nologin ]
	run -0 getent group usmtp
	[ "$(cut -d: -f3 <<<"$output")" = "$gid" ]
}

@test "configuration, database and state have their owners and modes" {
	[ "$(mode_of $CONF)" = "root:usmtp 750" ]
	[ "$(mode_of $CONF/usmtp.conf)" = "root:root 644" ]
	[ "$(mode_of $CONF/users.db)" = "root:usmtp 640" ]
	[ "$(mode_of $CONF/server.key)" = "usmtp:usmtp 600" ]
	[ "$(mode_of $CONF/server.pem)" = "root:root 644" ]
	[ "$(mode_of $CONF/server-x25519.key)" = "usmtp:usmtp 600" ]
	[ "$(mode_of $CONF/server-x25519.pem)" = "root:root 644" ]
	[ "$(mode_of $CONF/ca.key)" = "root:root 600" ]
	[ "$(mode_of $CONF/ca.pem)" = "root:root 644" ]
	[ "$(mode_of $STATE)" = "usmtp:usmtp 700" ]
	# every server key mkcerts made (secure mode adds more) is the handler's
	local k
	for k in $CONF/server*.key; do
		[ "$(mode_of "$k")" = "usmtp:usmtp 600" ] || { echo "$k"; false; }
	done
	# the database is there and empty
	run -0 /usr/sbin/usmtp-users --db $CONF/users.db list
	[ -z "$output" ]
}

@test "the server certificate is signed by the new CA, names this host and matches the key" {
	run -0 openssl verify -CAfile $CONF/ca.pem $CONF/server.pem
	[ "$output" = "$CONF/server.pem: OK" ]
	local fqdn
	fqdn=$(hostname --fqdn 2>/dev/null || hostname)
	run -0 openssl x509 -in $CONF/server.pem -noout -checkhost "$fqdn"
	[[ $output == *"does match certificate"* ]]
	run -0 openssl x509 -in $CONF/server.pem -noout -checkip 127.0.0.1
	[[ $output == *"does match certificate"* ]]
	diff <(openssl x509 -in $CONF/server.pem -noout -pubkey) \
	    <(openssl pkey -in $CONF/server.key -pubout)
	# and the administrator was told where the CA certificate is
	grep -F "$CONF/ca.pem" "$F/install.log"
}

@test "usmtp.socket is enabled and the usmtp@.service template is never started by itself" {
	[ -L /etc/systemd/system/sockets.target.wants/usmtp.socket ]
	[ "$(readlink /etc/systemd/system/sockets.target.wants/usmtp.socket)" = "$UNITS/usmtp.socket" ]
	run -1 grep -r 'usmtp@' /var/lib/dpkg/info/usmtp.postinst /var/lib/dpkg/info/usmtp.prerm
	run -0 find /etc/systemd -name 'usmtp@*'
	[ -z "$output" ]
	if [ -d /run/systemd/system ]; then
		run -0 systemctl is-active usmtp.socket
	fi
}

@test "the installed units pass systemd-analyze verify and stay below exposure 2.0" {
	run -0 --separate-stderr systemd-analyze verify \
	    $UNITS/usmtp.socket $UNITS/usmtp@.service
	[ -z "$stderr" ] || { echo "$stderr"; false; }
	run -0 systemd-analyze security --offline=true usmtp@.service
	local score
	score=$(sed -n 's/.*Overall exposure level for usmtp@[^:]*: \([0-9.]*\).*/\1/p' <<<"$output")
	echo "exposure: $score"
	awk -v s="$score" 'BEGIN { exit !(s != "" && s + 0 < 2.0) }'
}

@test "usmtp-handler --check accepts the package's configuration as user usmtp" {
	run -0 setpriv --reuid=usmtp --regid=usmtp --clear-groups -- \
	    /usr/sbin/usmtp-handler --config $CONF/usmtp.conf --check
}

# exec_start: the installed usmtp@.service's ExecStart= command line,
# without systemd's prefix characters, one word a line.  Fails when it
# holds anything this simple split cannot take (quotes, specifiers).
exec_start() {
	local line
	line=$(sed -n 's/^ExecStart=//p' $UNITS/usmtp@.service)
	[ -n "$line" ] && [ "$(wc -l <<<"$line")" -eq 1 ] || return 1
	while [[ $line == [-@:+!]* ]]; do line=${line:1}; done
	case $line in *[\"\'\\%\$]*) return 1 ;; esac
	printf '%s\n' $line
}

teardown() {
	stop_pid "${SA_PID:-}"
}

@test "a mail sent with the installed client through the unit's command line, run as usmtp, is delivered" {
	local port argv
	run -0 exec_start
	mapfile -t argv <<<"$output"
	[ "${argv[0]}" = /usr/sbin/usmtp-handler ]
	printf 'pw-a\n' | /usr/sbin/usmtp-users --db $CONF/users.db \
	    add "alice@$DOM" --password-stdin --cost 1
	printf 'pw-b\n' | /usr/sbin/usmtp-users --db $CONF/users.db \
	    add "bob@$DOM" --password-stdin --cost 1
	[ "$(mode_of $CONF/users.db)" = "root:usmtp 640" ]
	install -d -o usmtp -g usmtp "/var/mail/$DOM"

	port=$(free_port)
	(umask 077; exec setpriv --reuid=usmtp --regid=usmtp --clear-groups -- \
	    systemd-socket-activate --inetd -a -l "127.0.0.1:$port" "${argv[@]}") \
	    2>>"$T/sa.log" &
	SA_PID=$!
	wait_port "$port" || { cat "$T/sa.log"; false; }

	printf 'Hello Bob,\nfrom the package.\n' >"$T/body"
	# --secure require: the package's keys include secure mode's pair,
	# which the handler takes from /etc/usmtp by default
	USMTP_PASSWORD=pw-a run -0 timeout 60 /usr/bin/usmtp-client \
	    -H 127.0.0.1 -p "$port" --ca $CONF/ca.pem -u "alice@$DOM" \
	    -t "bob@$DOM" -s "deb test" -b "$T/body" --secure require
	run -0 find "/var/mail/$DOM/bob/Maildir/new" -type f
	[ "${#lines[@]}" -eq 1 ] || { cat "$T/sa.log"; false; }
	local msg=${lines[0]}
	[ "$(stat -c '%U %a' "$msg")" = "usmtp 600" ]
	grep -qx 'Subject: deb test' "$msg"
	grep -qx "From: alice@$DOM" "$msg"
	grep -qx 'from the package.' "$msg"
}

@test "reinstalling keeps the keys, the users and a changed usmtp.conf" {
	echo 'timeout = 60' >>$CONF/usmtp.conf
	sha256sum $CONF/usmtp.conf $CONF/users.db $CONF/*.key $CONF/*.pem >"$T/before"
	stat -c '%U:%G %a %n' $CONF $CONF/* $STATE >>"$T/before"
	run -0 apt-get install -y --reinstall "$TOP"/dist/usmtp_*.deb
	sha256sum $CONF/usmtp.conf $CONF/users.db $CONF/*.key $CONF/*.pem >"$T/after"
	stat -c '%U:%G %a %n' $CONF $CONF/* $STATE >>"$T/after"
	diff -u "$T/before" "$T/after"
	[[ $output != *"made a CA"* ]]
}

@test "apt-get remove keeps the configuration, keys, user database and state" {
	run -0 apt-get remove -y usmtp usmtp-client
	[ ! -e /usr/sbin/usmtp-handler ]
	[ ! -e /usr/bin/usmtp-client ]
	[ ! -e $UNITS/usmtp.socket ]
	for f in usmtp.conf users.db server.key server.pem ca.key ca.pem; do
		[ -e "$CONF/$f" ] || { echo "remove deleted $CONF/$f"; false; }
	done
	[ -d "$STATE" ]
	run -0 dpkg-query -W -f='${db:Status-Abbrev}' usmtp
	[[ $output == rc* ]]
}

@test "apt-get purge leaves no file of usmtp behind, only the system user" {
	run -0 apt-get purge -y usmtp usmtp-client
	[ ! -e "$CONF" ]
	[ ! -e "$STATE" ]
	run -1 on_disk usmtp usmtp-client
	# /var/mail/$DOM holds mail, delivered as usmtp: purge keeps it
	[ -d "/var/mail/$DOM/bob/Maildir" ]
	rm -rf "/var/mail/$DOM"
	# (man-db's cache of the pages, made by systemd-analyze verify, is the
	# test's: teardown_file removes it)
	usmtp_paths | sed '\|^/var/cache/man/|d' >"$T/paths.after"
	diff -u "$F/paths.before" "$T/paths.after"
	getent passwd usmtp
}
