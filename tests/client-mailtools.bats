#!/usr/bin/env bats
# Real mail tools sending through usmtp-sendmail as they would through
# msmtp: git send-email (Debian package git-email) and s-nail, a mailx.
# Each finds the server through the user's configuration file; the
# server is the real handler behind systemd-socket-activate on a loopback
# port.  What arrives is checked: subjects, the patch byte for byte, an
# attachment byte for byte, the exit status on a failure.

load helpers

setup() {
	client_setup
	sendmail_link
	mkdir -p "$T/home/.config/usmtp"
	export HOME=$T/home
	# s-nail hands its helpers the password database's HOME, not ours:
	# XDG_CONFIG_HOME passes through
	export XDG_CONFIG_HOME=$HOME/.config
	PORT=$(free_port)
	start_socket_activate "$PORT" 127.0.0.1
	alice_conf "$HOME/.config/usmtp/client.conf"
}

teardown() {
	stop_pid "$SA_PID"
}

# bob_message: the one message in bob's Maildir.
bob_message() {
	local f
	f=$(ls "$MAIL"/example.org/bob/Maildir/new/*)
	[ "$(wc -w <<<"$f")" -eq 1 ] && echo "$f"
}

# body_of FILE: the text body Python's email package finds in FILE.
body_of() {
	$PY - "$1" <<-'EOF'
	import email, email.policy, sys
	m = email.message_from_binary_file(open(sys.argv[1], "rb"),
	    policy=email.policy.default)
	sys.stdout.write(m.get_body(("plain",)).get_content())
	EOF
}

@test "git send-email --sendmail-cmd=usmtp-sendmail delivers a patch whole" {
	git init -q "$T/repo"
	cd "$T/repo"
	git config user.name Alice
	git config user.email alice@example.org
	printf 'hello\n' >greeting
	git add greeting
	git commit -qm init
	printf 'hello, world\n' >greeting
	git commit -qam 'greeting: say hello to the world'
	git format-patch -q -1 -o "$T"
	run -0 timeout 60 git send-email --sendmail-cmd="$SM" \
		--to=bob@example.org --from="Alice <alice@example.org>" \
		--confirm=never --suppress-cc=all "$T"/0001-*.patch </dev/null
	[[ $output == *"Result: OK"* ]]
	f=$(bob_message)
	grep -qx 'Subject: \[PATCH\] greeting: say hello to the world' "$f"
	# the patch as git wrote it, from its blank line after the header on
	sed '1,/^$/d' "$T"/0001-*.patch >"$T/patch-body"
	diff -u "$T/patch-body" <(body_of "$f")
	# and it applies
	git reset -q --hard HEAD~1
	git am -q <"$f"
	[ "$(cat greeting)" = "hello, world" ]
}

@test "git send-email sees usmtp-sendmail's failure: an unknown recipient is not 'OK'" {
	git init -q "$T/repo"
	cd "$T/repo"
	git config user.name Alice
	git config user.email alice@example.org
	printf 'x\n' >f
	git add f
	git commit -qm one
	git format-patch -q -1 -o "$T"
	run timeout 60 git send-email --sendmail-cmd="$SM" \
		--to=nobody@example.org --from=alice@example.org \
		--confirm=never --suppress-cc=all "$T"/0001-*.patch </dev/null
	[ "$status" -ne 0 ]
	[[ $output == *"nobody@example.org: recipient unknown"* ]]
}

@test "s-nail with mta=usmtp-sendmail sends a subject, a body and an attachment" {
	head -c 50000 /dev/urandom >"$T/photo.bin"
	printf 'Hello Bob,\n\nthe photo.\n' >"$T/text"
	run -0 timeout 60 s-nail -n -# -S mta="$SM" -S sendwait \
		-S DEAD="$T/dead.letter" \
		-r alice@example.org -s 'from s-nail' -a "$T/photo.bin" \
		bob@example.org <"$T/text"
	f=$(bob_message)
	grep -qx 'Subject: from s-nail' "$f"
	[ "$(body_of "$f")" = "$(cat "$T/text")" ]
	$PY - "$f" "$T/photo.bin" <<-'EOF'
	import email, email.policy, sys
	m = email.message_from_binary_file(open(sys.argv[1], "rb"),
	    policy=email.policy.default)
	got = [(p.get_filename(), p.get_payload(decode=True)) for p in m.walk()
	       if p.get_filename() is not None]
	assert got == [("photo.bin", open(sys.argv[2], "rb").read())], got
	EOF
}

@test "s-nail -r with an address other than the login: usmtp-sendmail refuses, s-nail says so" {
	run timeout 60 s-nail -n -# -S mta="$SM" -S sendwait \
		-S DEAD="$T/dead.letter" \
		-r mallory@example.org -s 'forged' bob@example.org <<<"x"
	[ "$status" -ne 0 ]
	[[ $output == *"USMTP sends as the login address"* ]]
	[ -z "$(ls "$MAIL"/example.org/bob/Maildir/new/ 2>/dev/null)" ]
}
