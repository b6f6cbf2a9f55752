#!/usr/bin/env bats
# recipients.bats -- --recipients local|any (usmtp-handler(8); usmtp(7),
# Sending a message): local, the default, takes only users in the
# database (402 for others); any takes every valid address and hands it
# to sendmail, checked with a fake sendmail that records its arguments
# and input and with a real Postfix instance; any with Maildir delivery
# is refused at start-up.

load helpers
load postfix

setup() {
	usmtp_setup
	add_test_users
	# records its arguments, one a line, and the message
	cat >"$T/sendmail" <<-EOF
	#!/bin/sh
	printf '%s\n' "\$@" >"$T/argv"
	cat >"$T/stdin"
	EOF
	chmod 755 "$T/sendmail"
}

teardown() {
	pf_stop
}

# to RCPT...: a session that logs alice@example.org in and sends one
# message, trying each RCPT in turn as the recipient.
to() {
	local r
	printf '%s\n' handshake "send 1.0 Hello" "send LOGIN" \
	    "send alice@example.org" "send correct horse" "send SEND MAIL" \
	    "send mail from: alice@example.org"
	for r in "$@"; do printf 'send mail to: %s\n' "$r"; done
	printf '%s\n' "send subject: Outside" "body data: Hello out there." \
	    "send 0" "send BYE"
}

@test "--recipients any with --sendmail: an address that is no user is accepted and handed to sendmail" {
	to carol@elsewhere.example >"$T/s.in"
	run -0 client_script "$T/s.in" --sendmail "$T/sendmail" --recipients any
	[ "${lines[-2]}" = "220 Email was sent" ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
	diff -u - "$T/argv" <<-EOF
	-i
	-f
	alice@example.org
	--
	carol@elsewhere.example
	EOF
	grep -q '^To: <\?carol@elsewhere.example>\?$' "$T/stdin"
	grep -q '^Subject: Outside$' "$T/stdin"
	grep -q '^Hello out there\.$' "$T/stdin"
	grep -q 'deliver from=alice@example.org to=carol@elsewhere.example .*where=sendmail result=ok' "$HLOG"
}

@test "--recipients any still refuses a bad address (301) and keeps the sender the logged-in user" {
	to not-an-address carol@elsewhere.example >"$T/s.in"
	run -0 client_script "$T/s.in" --sendmail "$T/sendmail" --recipients any
	[ "${lines[9]}" = "122 Send recipient adress" ]
	[ "${lines[10]}" = "301 Wrong e-mail syntax" ]
	[ "${lines[11]}" = "200 OK" ]
	[ "${lines[-2]}" = "220 Email was sent" ]
	[ "$(tail -n 1 "$T/argv")" = carol@elsewhere.example ]
}

@test "--recipients local, the default, with --sendmail: an address that is no user gets 402, a user goes through" {
	to carol@elsewhere.example bob@example.org >"$T/s.in"
	run -0 client_script "$T/s.in" --sendmail "$T/sendmail"
	[ "${lines[10]}" = "402 Recipient not found" ]
	[ "${lines[-2]}" = "220 Email was sent" ]
	[ "$(tail -n 1 "$T/argv")" = bob@example.org ]
	run -0 client_script "$T/s.in" --sendmail "$T/sendmail" --recipients local
	[ "${lines[10]}" = "402 Recipient not found" ]
}

@test "the recipients setting works from the configuration file, and the command line wins" {
	printf 'recipients = any\n' >"$T/usmtp.conf"
	to carol@elsewhere.example bob@example.org >"$T/s.in"
	run -0 client_script "$T/s.in" --config "$T/usmtp.conf" --sendmail "$T/sendmail"
	[ "${lines[10]}" = "200 OK" ]
	run -0 client_script "$T/s.in" --config "$T/usmtp.conf" --sendmail "$T/sendmail" --recipients local
	[ "${lines[10]}" = "402 Recipient not found" ]
}

@test "--recipients any with Maildir delivery: exit 78 at start-up, with a line naming the option" {
	run -78 --separate-stderr $HANDLER --recipients any </dev/null
	[ "$stderr" = "usmtp-handler: --recipients any needs --sendmail: with Maildir delivery the recipient must be a user in the database; set recipients = local, or deliver with --sendmail" ]
	[ -z "$output" ]
	# --maildir after --sendmail: Maildir delivery wins, and is refused
	printf 'recipients = any\n' >"$T/usmtp.conf"
	run -78 --separate-stderr $HANDLER --config "$T/usmtp.conf" \
	    --sendmail "$T/sendmail" --maildir "$MAIL/%d/%u/Maildir" </dev/null
	[[ $stderr == "usmtp-handler: --recipients any needs --sendmail"* ]]
}

@test "a bad --recipients value is a usage error" {
	run -64 --separate-stderr $HANDLER --recipients all </dev/null
	[[ $stderr == "usmtp-handler: --recipients all: local or any"* ]]
}

@test "--recipients any: real Postfix delivers to an address it knows and usmtp's database does not" {
	pf_start carol
	printf '%s\n' handshake "send 1.0 Hello" "send LOGIN" \
	    "send alice@example.org" "send correct horse" "send SEND MAIL" \
	    "send mail from: alice@example.org" "send mail to: carol@usmtp.test" \
	    "send subject: Relayed" "body data: Through Postfix." "send 0" \
	    "send BYE" >"$T/s.in"
	run -0 client_script "$T/s.in" --sendmail "$PF_SENDMAIL"
	[ "${lines[10]}" = "402 Recipient not found" ]
	run -0 client_script "$T/s.in" --sendmail "$PF_SENDMAIL" --recipients any
	[ "${lines[10]}" = "200 OK" ]
	[ "${lines[-2]}" = "220 Email was sent" ]
	f=$(pf_wait_new carol)
	grep -q '^Subject: Relayed$' "$f"
	grep -q '^Delivered-To: carol@usmtp.test$' "$f"
	grep -q '^Return-Path: <alice@example.org>$' "$f"
}
