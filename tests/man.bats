# man.bats -- the manual pages: lint-clean mdoc, and every long option a
# program's --help prints is documented in its page.

load helpers

# options_documented PROG PAGE: every --option in "PROG --help" appears
# in man/PAGE; prints the missing ones.  A program the Makefile builds
# but that is missing is a failure, never a skip.
options_documented() {
	local prog=$1 page=$TOP/man/$2 opt missing=
	[ -x "$TOP/$prog" ] || { echo "$prog not built"; return 1; }
	[ -f "$page" ] || { echo "$page missing"; return 1; }
	"$TOP/$prog" --help >"$BATS_TEST_TMPDIR/help" 2>&1 || true
	grep -o -E -- '--[a-z][a-z-]*' "$BATS_TEST_TMPDIR/help" | sort -u \
	    >"$BATS_TEST_TMPDIR/opts"
	[ -s "$BATS_TEST_TMPDIR/opts" ] || { echo "$prog --help lists no options"; return 1; }
	# mdoc writes "--config" as "Fl -config": look for either form
	while read -r opt; do
		grep -q -F -e "$opt" -e "Fl ${opt#-}" "$page" || missing="$missing $opt"
	done <"$BATS_TEST_TMPDIR/opts"
	[ -z "$missing" ] || { echo "not in $2:$missing"; return 1; }
}

@test "every manual page is lint-clean for mandoc -Tlint -W warning" {
	run -0 mandoc -Tlint -W warning "$TOP"/man/*.[1-8]
	[ -z "$output" ]
}

@test "the four manual pages exist" {
	for p in usmtp-handler.8 usmtp-client.1 usmtp-users.8 usmtp.7; do
		[ -f "$TOP/man/$p" ] || { echo "missing man/$p"; false; }
	done
}

@test "every long option of usmtp-handler --help is in usmtp-handler(8)" {
	run -0 options_documented usmtp-handler usmtp-handler.8
}

@test "every long option of usmtp-client --help is in usmtp-client(1)" {
	run -0 options_documented usmtp-client usmtp-client.1
}

@test "every long option of usmtp-users --help is in usmtp-users(8)" {
	run -0 options_documented usmtp-users usmtp-users.8
}

@test "the usmtp-handler(8) SYNOPSIS names every option of the fixed command line" {
	sed -n '/^\.Sh SYNOPSIS/,/^\.Sh DESCRIPTION/p' "$TOP/man/usmtp-handler.8" \
	    >"$BATS_TEST_TMPDIR/synopsis"
	for o in config cert key users maildir sendmail timeout max-body \
	    max-attachment log-stderr help version; do
		grep -q -E "Fl -$o( |$)" "$BATS_TEST_TMPDIR/synopsis" ||
		    { echo "--$o not in SYNOPSIS"; false; }
	done
}

@test "usmtp.conf.example names every long option of usmtp-handler except help, version, config, check and verbose" {
	"$TOP/usmtp-handler" --help 2>&1 | grep -o -E -- '--[a-z][a-z-]*' | sort -u |
	    sed 's/^--//' | grep -v -x -E 'help|version|config|check|verbose' >"$BATS_TEST_TMPDIR/opts"
	[ -s "$BATS_TEST_TMPDIR/opts" ]
	while read -r o; do
		grep -q -E "^#?$o = " "$TOP/etc/usmtp.conf.example" ||
		    { echo "$o missing"; false; }
	done <"$BATS_TEST_TMPDIR/opts"
}

@test "every manual page carries the same date" {
	run -0 sh -c "sed -n '1s/^\.Dd //p' '$TOP'/man/*.[1-8] | sort -u"
	[ "${#lines[@]}" -eq 1 ]
}

@test "no quoted list nests its quotes (one .Ql per line inside .Po/.Pc)" {
	run -1 grep -n 'Pq Ql [^,]* , Ql' "$TOP"/man/*.[1-8]
}
