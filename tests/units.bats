# units.bats -- the systemd units and the sendmail drop-in: they load
# cleanly, their sandbox scores as intended, and the drop-in gives
# Postfix's sendmail exactly what it needs.  No systemd runs as PID 1
# here: systemd-analyze checks the files, and the Postfix test rebuilds
# the relevant part of the sandbox by hand (mount namespace, setpriv).

load helpers

# make_units DIR: substitutes the .in templates into DIR the way the
# Makefile does, with the handler at its real built path (verify checks
# that ExecStart= names an executable).
make_units() {
	local dir=$1 f
	mkdir -p "$dir"
	for f in usmtp.socket usmtp@.service; do
		sed -e "s|@SBINDIR@|$TOP|g" -e "s|@BINDIR@|$TOP|g" \
		    -e 's|@SYSCONFDIR@|/etc|g' -e 's|@LOCALSTATEDIR@|/var|g' \
		    "$TOP/systemd/$f.in" >"$dir/$f"
	done
}

# man_tree DIR: a MANPATH in which the units' Documentation= pages exist.
man_tree() {
	local dir=$1 p
	for p in "$TOP"/man/*.[1-8]; do
		mkdir -p "$dir/man${p##*.}"
		ln -sf "$p" "$dir/man${p##*.}/"
	done
}

# exposure ROOT: prints the offline exposure score of usmtp@.service
# installed under ROOT/etc/systemd/system.
exposure() {
	systemd-analyze security --offline=true --root="$1" usmtp@.service 2>&1 |
	    sed -n 's/.*Overall exposure level for usmtp@[^:]*: \([0-9.]*\).*/\1/p'
}

# below LIMIT SCORE: succeeds when SCORE < LIMIT (decimals).
below() {
	awk -v l="$1" -v s="$2" 'BEGIN { exit !(s != "" && s + 0 < l + 0) }'
}

setup() {
	T=$BATS_TEST_TMPDIR
}

@test "usmtp.socket and usmtp@.service pass systemd-analyze verify without a warning" {
	make_units "$T/units"
	man_tree "$T/man"
	cd "$T/units"
	MANPATH=$T/man run -0 --separate-stderr \
	    systemd-analyze verify ./usmtp.socket ./usmtp@.service
	[ -z "$stderr" ] || { echo "$stderr"; false; }
}

@test "usmtp@.service with the sendmail drop-in passes systemd-analyze verify without a warning" {
	make_units "$T/units"
	mkdir "$T/units/usmtp@.service.d"
	cp "$TOP/systemd/usmtp-sendmail.conf" "$T/units/usmtp@.service.d/sendmail.conf"
	SYSTEMD_UNIT_PATH=$T/units: run -0 --separate-stderr \
	    systemd-analyze verify --man=no usmtp@1.service
	[ -z "$stderr" ] || { echo "$stderr"; false; }
}

@test "the exposure score of usmtp@.service is below 2.0" {
	make_units "$T/units"
	mkdir -p "$T/root/etc/systemd/system"
	cp "$T/units/usmtp@.service" "$T/root/etc/systemd/system/"
	score=$(exposure "$T/root")
	echo "exposure: $score"
	below 2.0 "$score"
}

@test "the exposure score with the sendmail drop-in is below 2.0" {
	make_units "$T/units"
	mkdir -p "$T/root/etc/systemd/system/usmtp@.service.d"
	cp "$T/units/usmtp@.service" "$T/root/etc/systemd/system/"
	cp "$TOP/systemd/usmtp-sendmail.conf" \
	    "$T/root/etc/systemd/system/usmtp@.service.d/sendmail.conf"
	score=$(exposure "$T/root")
	echo "exposure: $score"
	below 2.0 "$score"
	# and the drop-in was really read: it adds a supplementary group
	run -0 systemd-analyze security --offline=true --root="$T/root" usmtp@.service
	[[ $output == *"✗ SupplementaryGroups="* ]]
}

@test "usmtp.socket accepts per connection on one dual-stack port with the trigger limit off" {
	make_units "$T/units"
	run -0 grep -E '^(ListenStream|BindIPv6Only|Accept|MaxConnections|MaxConnectionsPerSource|TriggerLimitIntervalSec|TriggerLimitBurst)=' \
	    "$T/units/usmtp.socket"
	[ "${lines[0]}" = "ListenStream=1338" ]
	[ "${lines[1]}" = "BindIPv6Only=both" ]
	[ "${lines[2]}" = "Accept=yes" ]
	[[ ${lines[3]} == MaxConnections=[1-9]* ]]
	[[ ${lines[4]} == MaxConnectionsPerSource=[1-9]* ]]
	[ "${lines[5]}" = "TriggerLimitIntervalSec=0" ]
	[ "${lines[6]}" = "TriggerLimitBurst=0" ]
}

# postfix_sandbox SECONDS GROUPS MAILDROP: runs (for SECONDS at most) Postfix's sendmail the way the
# unit with the drop-in would: no new privileges, no capabilities, an
# unprivileged user with supplementary GROUPS, the whole file system
# read-only except MAILDROP, mounted over Postfix's maildrop directory
# (so the real queue never sees the test message).  The message is read
# from stdin.
postfix_sandbox() {
	local secs=$1 groups=$2 maildrop=$3
	timeout "$secs" unshare -m sh -c '
		set -e
		mount --make-rprivate /
		mount --bind / /
		mount --bind "$2" /var/spool/postfix/maildrop
		mount -o remount,bind,ro /
		exec setpriv --reuid=65534 --regid=65534 --groups="$1" \
		    --no-new-privs --inh-caps=-all --bounding-set=-all \
		    sendmail -i -f alice@example.com -- bob@example.com
	' sh "$groups" "$maildrop"
}

# fake_maildrop DIR: an empty directory like Postfix's maildrop.
fake_maildrop() {
	mkdir "$1"
	chown postfix:postdrop "$1"
	chmod 1730 "$1"
}

@test "with the drop-in's group and path Postfix's sendmail queues a message without new privileges" {
	[ "$(id -u)" -eq 0 ] || skip "needs root (mount namespace, setpriv)"
	fake_maildrop "$T/maildrop"
	printf 'Subject: drop-in test\n\nhello\n' >"$T/msg"
	run -0 postfix_sandbox 20 "$(getent group postdrop | cut -d: -f3)" \
	    "$T/maildrop" <"$T/msg"
	run -0 find "$T/maildrop" -type f
	[ "${#lines[@]}" -eq 1 ]
}

@test "without the postdrop group Postfix's sendmail cannot queue under no-new-privileges" {
	[ "$(id -u)" -eq 0 ] || skip "needs root (mount namespace, setpriv)"
	fake_maildrop "$T/maildrop"
	printf 'Subject: drop-in test\n\nhello\n' >"$T/msg"
	# postdrop retries for ever: the handler's bounded wait is what ends it
	run -124 postfix_sandbox 5 65534 "$T/maildrop" <"$T/msg"
	run -0 find "$T/maildrop" -type f
	[ -z "$output" ]
}
