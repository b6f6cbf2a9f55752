#!/usr/bin/env bats
# users.bats -- usmtp-users(8): every subcommand, every refusal with its
# exit status and message, the file mode, list output, what is stored
# (the parameter record too), options before and after the command, and
# handlers' reads (usmtp-users check) while another add runs.

load helpers

# users ARGS...: usmtp-users on the test's database.
users() {
	usmtp-users --db "$DB" "$@"
}

# check_pw ADDRESS PASSWORD: usmtp-users check, PASSWORD on standard
# input.
check_pw() {
	users check "$1" --password-stdin <<<"$2"
}

# set_pw ADDRESS PASSWORD: usmtp-users passwd at cost 1, PASSWORD on
# standard input.
set_pw() {
	users passwd "$1" --password-stdin --cost 1 <<<"$2"
}

# rec_of KEY: prints the database's bytes for KEY's password record, key
# first.  Key and value sit side by side in a GDBM bucket and records one
# after the other, so each match ends where a 32-byte hash does; awk cuts
# off what came before the key.
rec_of() {
	grep -a -o -E '[^$[:cntrl:]]*\$scrypt\$[^$]*\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]{43}=' "$DB" |
	    awk -v k="$1" '{ i = index($0, k "$scrypt"); if (i) print substr($0, i) }'
}

setup() {
	T=$BATS_TEST_TMPDIR
	DB=$T/users.db
}

@test "--help lists every subcommand and the cost range and exits 0" {
	run -0 --separate-stderr usmtp-users --help
	for w in init add passwd del list check lockouts unlock --db \
	    --maildir --password-stdin '--cost N' '1..18' --throttle-db \
	    /var/lib/usmtp/throttle.db -h -V; do
		[[ $output == *"$w"* ]] || { echo "missing: $w"; return 1; }
	done
	[ -z "$stderr" ]
}

@test "--version prints the version" {
	run -0 usmtp-users --version
	[ "$output" = "usmtp-users 1.0.0" ]
}

@test "-V prints the version and -h the usage, on standard output" {
	run -0 --separate-stderr usmtp-users -V
	[ "$output" = "usmtp-users 1.0.0" ] && [ -z "$stderr" ]
	run -0 --separate-stderr usmtp-users -h
	[[ ${lines[0]} == "usage: usmtp-users [--db FILE] init"* ]]
	[ -z "$stderr" ]
}

@test "options may come before or after the command, also with POSIXLY_CORRECT" {
	run -0 usmtp-users add --cost 1 --db "$DB" a@b --password-stdin <<<"pw"
	run -0 usmtp-users --password-stdin --db="$DB" check a@b <<<"pw"
	POSIXLY_CORRECT=1 run -0 usmtp-users check a@b --db "$DB" \
	    --password-stdin <<<"pw"
	run -0 usmtp-users list --db "$DB"
	[ "$output" = a@b ]
	# "--" ends the options: an address may then start with "-"
	run -0 users add --password-stdin --cost 1 -- -x@b <<<"pw"
	run -0 users list
	[ "$output" = "$(printf '%s\n' -x@b a@b)" ]
}

@test "init creates an empty database with mode 0640 and the parameter record" {
	run -0 --separate-stderr users init
	[ -z "$output" ] && [ -z "$stderr" ]
	run -0 stat -c %a "$DB"
	[ "$output" = 640 ]
	run -0 users list
	[ -z "$output" ]
	run -0 rec_of @params
	[[ $output == '@params$scrypt$ln=14,r=8,p=1$'* ]]
	run -1 check_pw a@b "pw"
}

@test "init of an existing database says so, exits 0 and changes nothing" {
	add_user alice@example.com apw
	cp "$DB" "$T/before"
	run -0 --separate-stderr users init --cost 5
	[ "$output" = "usmtp-users: $DB: a database already, left as it is" ]
	[ -z "$stderr" ]
	cmp "$DB" "$T/before"
	run -0 check_pw alice@example.com "apw"
}

@test "init of a file that is no database fails with 74 and leaves it" {
	echo "not a gdbm file" >"$DB"
	run -74 --separate-stderr users init
	[[ $stderr == "usmtp-users: $DB: "* ]]
	[ "$(cat "$DB")" = "not a gdbm file" ]
}

@test "the parameter record takes the cost of the newest password set, and is no user" {
	run -0 users init --cost 9
	run -0 rec_of @params
	[[ $output == '@params$scrypt$ln=9,'* ]]
	add_user a@example.com pw
	run -0 rec_of @params
	[[ $output == '@params$scrypt$ln=1,'* ]]
	run -0 users passwd a@example.com --password-stdin --cost 3 <<<"pw2"
	run -0 rec_of @params
	[[ $output == '@params$scrypt$ln=3,'* ]]
	run -0 users list
	[ "$output" = a@example.com ]
	run -65 check_pw @params "pw"
}

@test "add with --password-stdin creates the database with mode 0640" {
	run -0 --separate-stderr add_user alice@example.com "alice pw"
	[ -z "$output" ] && [ -z "$stderr" ]
	run -0 stat -c %a "$DB"
	[ "$output" = 640 ]
}

@test "list prints lower-cased addresses sorted, the Maildir after a tab" {
	add_user Zed@Example.COM zpw
	add_user alice@example.com apw --maildir /srv/mail/alice/Maildir
	add_user bob@example.org bpw
	run -0 --separate-stderr users list
	[ "$output" = "$(printf '%s\n' \
	    $'alice@example.com\t/srv/mail/alice/Maildir' \
	    bob@example.org zed@example.com)" ]
}

@test "list of an empty database prints nothing" {
	add_user a@b pw
	run -0 users del a@b
	run -0 users list
	[ -z "$output" ]
}

@test "check exits 0 for the right password and prints nothing" {
	add_user alice@example.com 'alice pw'
	run -0 --separate-stderr check_pw ALICE@example.com "alice pw"
	[ -z "$output" ] && [ -z "$stderr" ]
}

@test "check exits 1 for a wrong password, with the unknown-user message" {
	add_user alice@example.com 'alice pw'
	run -1 --separate-stderr check_pw alice@example.com "wrong pw"
	[ "$stderr" = "usmtp-users: wrong password or unknown address" ]
	[[ $stderr != *"wrong pw"* ]]
}

@test "check exits 1 for an unknown address, with the same message" {
	add_user alice@example.com 'alice pw'
	run -1 --separate-stderr check_pw nobody@example.com "alice pw"
	[ "$stderr" = "usmtp-users: wrong password or unknown address" ]
}

@test "--password-stdin strips a CRLF line end" {
	run -0 users add crlf@example.com --password-stdin --cost 1 \
	    < <(printf 'pw\r\n')
	run -0 check_pw crlf@example.com "pw"
	run -1 users check crlf@example.com --password-stdin \
	    < <(printf 'pw\r\r\n')
}

@test "passwd changes the password and keeps the Maildir" {
	add_user alice@example.com old --maildir /srv/alice
	run -0 --separate-stderr set_pw alice@example.com "new"
	[ -z "$stderr" ]
	run -0 check_pw alice@example.com "new"
	run -1 check_pw alice@example.com "old"
	run -0 users list
	[ "$output" = $'alice@example.com\t/srv/alice' ]
}

@test "del removes the user" {
	add_user alice@example.com apw
	add_user bob@example.com bpw
	run -0 --separate-stderr users del Alice@Example.com
	[ -z "$stderr" ]
	run -0 users list
	[ "$output" = bob@example.com ]
	run -1 check_pw alice@example.com "apw"
}

@test "a duplicate add is refused with 73, case-insensitively" {
	add_user alice@example.com apw
	run -73 --separate-stderr add_user ALICE@example.com "other"
	[ "$stderr" = "usmtp-users: alice@example.com: already exists" ]
	run -0 check_pw alice@example.com "apw"
}

@test "passwd of an unknown user is refused with 67" {
	add_user alice@example.com apw
	run -67 --separate-stderr set_pw bob@example.com "pw"
	[ "$stderr" = "usmtp-users: bob@example.com: no such user" ]
}

@test "del of an unknown user is refused with 67" {
	add_user alice@example.com apw
	run -67 --separate-stderr users del bob@example.com
	[ "$stderr" = "usmtp-users: bob@example.com: no such user" ]
	run -0 users list
	[ "$output" = alice@example.com ]
}

@test "passwd and del without a database are refused with 67 and create nothing" {
	run -67 users passwd a@b --password-stdin <<<"pw"
	run -67 users del a@b
	[ ! -e "$DB" ]
}

@test "invalid addresses are refused with 65" {
	local a
	for a in alice 'a@@b' 'a b@c' 'a@b c' '.a@b' 'a.@b' 'a..b@c' \
	    '../x@y' 'a/b@c' 'x@../y' 'a@-b' 'a@b-' 'a@b..c' 'a@b.' \
	    "$(printf 'a\tb@c')"; do
		run -65 --separate-stderr add_user "$a" "pw"
		[[ $stderr == "usmtp-users: "*": invalid address" ]]
	done
	run -65 --separate-stderr check_pw 'a@b@c' "pw"
	[ "$stderr" = "usmtp-users: a@b@c: invalid address" ]
	[ ! -e "$DB" ]
}

@test "an empty password is refused with 66" {
	run -66 --separate-stderr add_user alice@example.com ""
	[ "$stderr" = "usmtp-users: empty password refused" ]
	[ ! -e "$DB" ]
}

@test "a password ending in a space is refused with 66" {
	run -66 --separate-stderr add_user alice@example.com "pw "
	[[ $stderr == "usmtp-users: password ends with a space"* ]]
}

@test "no password on standard input is refused with 66" {
	run -66 --separate-stderr users add alice@example.com \
	    --password-stdin --cost 1 </dev/null
	[ "$stderr" = "usmtp-users: no password on standard input" ]
}

@test "without a terminal and without --password-stdin add fails with 66" {
	run -66 --separate-stderr setsid -w usmtp-users --db "$DB" add \
	    alice@example.com --cost 1 </dev/null
	[[ $stderr == "usmtp-users: /dev/tty: "*"(use --password-stdin)" ]]
}

@test "the stored record is an scrypt hash, not the password" {
	add_user alice@example.com 'Sup3rSecretPassw0rd'
	run -1 grep -c -a -F 'Sup3rSecretPassw0rd' "$DB"
	run -0 rec_of alice@example.com
	[[ $output =~ alice@example\.com\$scrypt\$ln=1,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$ ]]
}

@test "the default cost is ln=14, r=8, p=1" {
	run -0 users add alice@example.com --password-stdin <<<"pw"
	run -0 rec_of alice@example.com
	[[ $output == *'$scrypt$ln=14,r=8,p=1$'* ]]
}

@test "--cost outside 1..18 is a usage error (64)" {
	local c
	for c in 0 19 -1 abc 1x ''; do
		run -64 --separate-stderr users add a@b --password-stdin \
		    --cost "$c" <<<"pw"
		[ "$stderr" = "usmtp-users: --cost: $c: must be 1..18" ]
	done
	[ ! -e "$DB" ]
}

@test "command line mistakes are usage errors (64)" {
	run -64 --separate-stderr usmtp-users
	[[ $stderr == "usmtp-users: no command"* ]]
	run -64 --separate-stderr users frob
	[[ $stderr == "usmtp-users: unknown command: frob"* ]]
	run -64 --separate-stderr users add
	[[ $stderr == "usmtp-users: add: missing ADDRESS"* ]]
	run -64 --separate-stderr users del a@b c@d
	[[ $stderr == "usmtp-users: unexpected argument: c@d"* ]]
	run -64 --separate-stderr users passwd a@b --maildir /x
	[[ $stderr == "usmtp-users: --maildir: only with add"* ]]
	run -64 --separate-stderr users check a@b --cost 1
	[[ $stderr == "usmtp-users: --cost: only with init, add and passwd"* ]]
	run -64 --separate-stderr users list -x
	[[ $stderr == "usmtp-users: unknown option: -x"* ]]
	run -64 --separate-stderr users init a@b
	[[ $stderr == "usmtp-users: unexpected argument: a@b"* ]]
	run -64 --separate-stderr users list --throttle-db /x
	[[ $stderr == "usmtp-users: --throttle-db: only with lockouts and unlock"* ]]
	run -64 --separate-stderr users unlock
	[[ $stderr == "usmtp-users: unlock: missing ADDRESS|PREFIX|ACCOUNT|all"* ]]
	run -64 --separate-stderr users lockouts all
	[[ $stderr == "usmtp-users: unexpected argument: all"* ]]
	run -64 --separate-stderr users list --bogus
	[[ $stderr == "usmtp-users: unknown option: --bogus"* ]]
	run -64 --separate-stderr usmtp-users list --db
	[[ $stderr == "usmtp-users: --db: missing FILE"* ]]
}

@test "a relative Maildir path is refused with 65" {
	run -65 --separate-stderr users add a@b --maildir Maildir \
	    --password-stdin --cost 1 <<<"pw"
	[[ $stderr == "usmtp-users: Maildir: invalid Maildir path"* ]]
	[ ! -e "$DB" ]
}

@test "list of a missing database fails with 74, says how to make one, and does not create it" {
	run -74 --separate-stderr users list
	[ "$stderr" = "usmtp-users: $DB: no such file (usmtp-users init makes an empty users database)" ]
	[ ! -e "$DB" ]
}

@test "check against a missing database fails with 74" {
	run -74 --separate-stderr check_pw a@b "pw"
	[ "$stderr" = "usmtp-users: $DB: no such file (usmtp-users init makes an empty users database)" ]
}

@test "a corrupt database fails with 74" {
	echo "not a gdbm file" >"$DB"
	run -74 --separate-stderr users list
	[[ $stderr == "usmtp-users: $DB: "* ]]
	run -74 add_user a@b "pw"
}

@test "a file that is not a users database is called that, not GDBM's bad magic number alone" {
	head -c 8192 /dev/zero | tr '\0' x >"$DB"
	run -74 --separate-stderr users list
	[ "$stderr" = "usmtp-users: $DB: not a users database (GDBM: Bad magic number); check the path, or move the file away and run usmtp-users init" ]
	run -74 --separate-stderr add_user a@b "pw"
	[[ $stderr == "usmtp-users: $DB: not a users database (GDBM: Bad magic number);"* ]]
	: >"$DB"
	run -74 --separate-stderr users list
	[ "$stderr" = "usmtp-users: $DB: an empty file, not a users database; remove it and run usmtp-users init" ]
}

@test "a database in a missing directory names the directory, not its lock file" {
	run -74 --separate-stderr usmtp-users --db "$T/etc/usmtp/users.db" \
	    add a@b --password-stdin --cost 1 <<<"pw"
	[ "$stderr" = "usmtp-users: $T/etc/usmtp/users.db: the directory $T/etc/usmtp does not exist; create it first (install -d $T/etc/usmtp)" ]
	run -74 --separate-stderr usmtp-users --db "$T/etc/usmtp/users.db" init
	[[ $stderr == *"the directory $T/etc/usmtp does not exist"* ]]
	run -74 --separate-stderr usmtp-users --db "$T/etc/usmtp/users.db" list
	[[ $stderr == *"the directory $T/etc/usmtp does not exist"* ]]
	[ ! -e "$T/etc" ]
}

@test "--db=FILE works like --db FILE" {
	run -0 usmtp-users --db="$DB" add a@b --password-stdin --cost=1 <<<"pw"
	run -0 users list
	[ "$output" = a@b ]
}

@test "100 checks all succeed while another usmtp-users adds in a loop" {
	add_user reader@example.com rpw
	(
		i=0
		while [ ! -e "$T/stop" ] && [ $i -lt 500 ]; do
			add_user "w$i@example.com" wpw || exit 1
			i=$((i + 1))
		done
		echo "$i" >"$T/writes"
	) &
	local wpid=$! i fails=0
	for i in $(seq 100); do
		check_pw reader@example.com "rpw" ||
		    fails=$((fails + 1))
	done
	touch "$T/stop"
	wait "$wpid"
	echo "writes: $(cat "$T/writes"), failed checks: $fails"
	[ "$fails" -eq 0 ]
	[ "$(cat "$T/writes")" -gt 1 ]
	run -0 users list
	[ "${#lines[@]}" -eq $(($(cat "$T/writes") + 1)) ]
}

@test "no temporary files are left beside the database" {
	add_user a@b pw
	add_user c@d pw
	run -0 users del a@b
	run -0 ls -A "$T"
	[ "$output" = "$(printf '%s\n' users.db users.db.lock)" ]
}
