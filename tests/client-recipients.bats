#!/usr/bin/env bats
# usmtp-client's recipients, as mail(1) takes them: operands (and -t),
# one SEND MAIL per recipient in one session, one line per recipient that
# failed, the status of the first failure, no BYE while the server waits
# for an address; and the usage errors with a sentence.

load helpers

setup() {
	client_setup
	add_user carol@example.org carol-pw
	add_user dave@example.org dave-pw
}

# send [client options and operands]: alice sends, the body on standard
# input, through a handler over a socket pair (HOPTS: more handler
# options).
send() {
	timeout 60 usmtp-client --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-file "$T/pw" -s recipients \
		--exec "exec $HANDLER ${HOPTS:-} 2>>$HLOG" "$@"
}

@test "three recipients as operands: three SEND MAILs in one session" {
	run -0 --separate-stderr send bob@example.org carol@example.org \
		dave@example.org <<<"to three"
	[ -z "$stderr" ]
	[ "$(got bob)" -eq 1 ] && [ "$(got carol)" -eq 1 ] && [ "$(got dave)" -eq 1 ]
	[ "$(grep -c ' connect$' "$HLOG")" -eq 1 ]
	[ "$(grep -c ' deliver .*result=ok' "$HLOG")" -eq 3 ]
	grep -q 'end reason=bye state=S_COMMAND' "$HLOG"
	# each message has one recipient, its own
	grep -q '^To: carol@example.org' "$MAIL"/example.org/carol/Maildir/new/*
}

@test "-t still works, also with operands, and an address given twice gets one message" {
	run -0 --separate-stderr send -t bob@example.org carol@example.org \
		-t BOB@example.org <<<"t"
	[ "$(got bob)" -eq 1 ] && [ "$(got carol)" -eq 1 ]
}

@test "an unknown recipient gets one line, naming it; the others still get the message; exit 67" {
	run -67 --separate-stderr send bob@example.org nobody@example.org \
		carol@example.org <<<"one unknown"
	[ "$stderr" = "usmtp-client: nobody@example.org: recipient unknown: server said: 402 Recipient not found" ]
	[ "$(got bob)" -eq 1 ] && [ "$(got carol)" -eq 1 ]
	# carol took nobody's place in the same SEND MAIL: one session
	[ "$(grep -c ' connect$' "$HLOG")" -eq 1 ]
	[ "$(grep -c ' deliver .*result=ok' "$HLOG")" -eq 2 ]
}

@test "after a refused last recipient the client closes without BYE, which the server would take for an address" {
	run -67 --separate-stderr send bob@example.org nobody@example.org <<<"x"
	[ "$(got bob)" -eq 1 ]
	# a BYE would have been a second recipient: a 301 in the log
	[ "$(grep -c 'reply code=' "$HLOG")" -eq 1 ]
	grep -q 'reply code=402 state=S_TO' "$HLOG"
	grep -q 'end reason=eof state=S_TO' "$HLOG"
}

@test "several failures: one line each, the status of the first (402 before 301)" {
	run -67 --separate-stderr send nobody@example.org bob@exa_mple.org \
		bob@example.org <<<"two bad"
	[ "${#stderr_lines[@]}" -eq 2 ]
	[ "${stderr_lines[0]}" = "usmtp-client: nobody@example.org: recipient unknown: server said: 402 Recipient not found" ]
	[ "${stderr_lines[1]}" = "usmtp-client: bob@exa_mple.org: bad address syntax: server said: 301 Wrong e-mail syntax" ]
	[ "$(got bob)" -eq 1 ]
	run -65 --separate-stderr send bob@exa_mple.org nobody@example.org <<<"the other way"
}

@test "a recipient whose delivery fails (451) gets one line and 75; the session goes on to the next" {
	cat >"$T/sendmail" <<-EOF
	#!/bin/sh
	# fails for carol only; keeps the others' messages
	for a; do last=\$a; done
	[ "\$last" = carol@example.org ] && exit 75
	cat >"$T/sent.\$last"
	EOF
	chmod +x "$T/sendmail"
	HOPTS="--sendmail $T/sendmail"
	run -75 --separate-stderr send bob@example.org carol@example.org \
		dave@example.org <<<"451 for carol"
	[ "$stderr" = "usmtp-client: carol@example.org: not delivered, try again later (451)" ]
	[ -s "$T/sent.bob@example.org" ] && [ -s "$T/sent.dave@example.org" ]
	[ ! -e "$T/sent.carol@example.org" ]
}

@test "a failure that ends the session names the recipient and lists those not sent to" {
	HOPTS="--max-body 10"
	run -65 --separate-stderr send bob@example.org carol@example.org \
		dave@example.org <<<"a body over ten bytes"
	[ "${#stderr_lines[@]}" -eq 3 ]
	[[ ${stderr_lines[0]} == "usmtp-client: bob@example.org: body: too large: "* ]]
	[ "${stderr_lines[1]}" = "usmtp-client: carol@example.org: not sent: the session ended" ]
	[ "${stderr_lines[2]}" = "usmtp-client: dave@example.org: not sent: the session ended" ]
	[ "$(got bob)" -eq 0 ] && [ "$(got carol)" -eq 0 ] && [ "$(got dave)" -eq 0 ]
}

@test "an operand that is not an address is a usage error with a sentence, before anything starts" {
	for bad in body.txt 'bob@' '@example.org' 'a@b@c' 'bob@example..org' 'two words@x.org'; do
		run -64 --separate-stderr usmtp-client -u alice@example.org \
			--exec "touch $T/started" -s x bob@example.org "$bad" <<<"b"
		[ "$stderr" = "usmtp-client: operand '$bad' is not an e-mail address (a recipient looks like bob@example.org)" ]
	done
	run -64 --separate-stderr usmtp-client -u alice@example.org \
		--exec "touch $T/started" -t not-an-address <<<"b"
	[ "$stderr" = "usmtp-client: -t 'not-an-address' is not an e-mail address (a recipient looks like bob@example.org)" ]
	[ ! -e "$T/started" ]
}

@test "-s, -b or -a without a recipient is a usage error with a sentence, not interactive mode" {
	: >"$T/f"
	for o in "-s x" "-b $T/f" "-a $T/f"; do
		run -64 --separate-stderr usmtp-client -u alice@example.org \
			--exec "touch $T/started" $o </dev/null
		[ "$stderr" = "usmtp-client: no recipient: give one or more addresses as operands (usmtp-client -s subject bob@example.org)" ]
	done
	[ ! -e "$T/started" ]
}

@test "-b - is standard input, -b FILE a file" {
	run -0 --separate-stderr send -b - bob@example.org <<<"from stdin"
	printf 'from a file\n' >"$T/body"
	run -0 --separate-stderr send -b "$T/body" carol@example.org </dev/null
	grep -q '^from stdin' "$MAIL"/example.org/bob/Maildir/new/*
	grep -q '^from a file' "$MAIL"/example.org/carol/Maildir/new/*
}

@test "an attachment goes to every recipient, byte for byte" {
	head -c 200000 /dev/urandom >"$T/att"
	run -0 --separate-stderr send -a "$T/att" bob@example.org carol@example.org <<<"att"
	for u in bob carol; do
		$PY - "$MAIL"/example.org/$u/Maildir/new/* "$T/att" <<-'EOF'
		import email, email.policy, sys
		m = email.message_from_binary_file(open(sys.argv[1], "rb"),
		    policy=email.policy.default)
		got = [p.get_payload(decode=True) for p in m.walk()
		       if p.get_filename() is not None]
		assert got == [open(sys.argv[2], "rb").read()]
		EOF
	done
}
