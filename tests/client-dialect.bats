#!/usr/bin/env bats
# usmtp-client --dialect against a stand-in for the protocol authors'
# reference server (tests/reference-server.py): it refuses the document's
# spelling of the algorithms line (and the secure offer) with its plaintext
# 502 and a close, and hands the reference spelling to the real handler.

load helpers

setup() {
	client_setup
	REF="$PY $TOP/tests/reference-server.py $T/offers.log -- $HANDLER"
}

# ref [client options]: alice sends to bob through the stand-in; the body
# comes from standard input.
ref() {
	timeout 60 usmtp-client --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-file "$T/pw" -s dialect "$@" \
		--exec "exec $REF 2>>$HLOG" bob@example.org
}

@test "by default the client reconnects twice and the third connection, in the reference spelling, delivers" {
	run -0 --separate-stderr ref -v <<<"through the reference dialect"
	diff -u - "$T/offers.log" <<-'EOF'
	offer: support noise-nk-25519-aesgcm-sha256?
	offer: support asymmetric-rsa2048 symmetric-aes-256-ecb?
	offer: support asymetric-rsa-2048 symetric-aes-256-ecb?
	EOF
	# -v shows each refusal, the reconnection, and what was used
	[ "$(grep -c '^<- 502 not supported symetric algorithm' <<<"$stderr")" -eq 2 ]
	[[ $stderr == *"trying again with a new connection: USMTP 1.0, document dialect"* ]]
	[[ $stderr == *"trying again with a new connection: USMTP 1.0, reference dialect"* ]]
	[[ $stderr == *"usmtp-client: USMTP 1.0, reference dialect"* ]]
	[[ $stderr == *"this session is protected by USMTP 1.0 only"* ]]
	[ "$(delivered_count)" -eq 1 ]
	grep -q 'handshake result=ok dialect=reference security=1.0' "$HLOG"
}

@test "the reference dialect carries attachments byte for byte (no 200 after the content)" {
	head -c 100000 /dev/urandom >"$T/bin"
	printf 'trailing spaces   ' >"$T/spaces"
	run -0 --separate-stderr ref -a "$T/bin" -a "$T/spaces" <<<"two files"
	f=$(ls "$MAIL"/example.org/bob/Maildir/new/*)
	$PY - "$f" "$T/bin" "$T/spaces" <<-'EOF'
	import email, email.policy, sys
	m = email.message_from_binary_file(open(sys.argv[1], "rb"),
	    policy=email.policy.default)
	got = [p.get_payload(decode=True) for p in m.walk()
	       if p.get_filename() is not None]
	want = [open(f, "rb").read() for f in sys.argv[2:]]
	assert got == want, [len(g) for g in got]
	EOF
}

@test "--secure off --dialect reference takes one connection" {
	run -0 --separate-stderr ref --secure off --dialect reference -v <<<"one"
	[ "$(wc -l <"$T/offers.log")" -eq 1 ]
	grep -qx 'offer: support asymetric-rsa-2048 symetric-aes-256-ecb?' "$T/offers.log"
	[[ $stderr == *"usmtp-client: USMTP 1.0, reference dialect"* ]]
	[ "$(delivered_count)" -eq 1 ]
}

@test "--dialect document against the reference server fails with 69 and says why" {
	run -69 --separate-stderr ref --secure off --dialect document <<<"no"
	[ "$stderr" = "usmtp-client: algorithms refused: the server refused the algorithms line (502) (--dialect document)" ]
	[ "$(delivered_count)" -eq 0 ]
}

@test "--dialect reference against our handler works too: it takes every spelling" {
	run -0 --separate-stderr timeout 60 usmtp-client --ca "$KEYS/ca.pem" \
		-u alice@example.org --password-file "$T/pw" -s ours -v \
		--secure off --dialect reference \
		--exec "exec $HANDLER 2>>$HLOG" bob@example.org <<<"ours"
	[[ $stderr == *"usmtp-client: USMTP 1.0, reference dialect"* ]]
	grep -q 'handshake result=ok dialect=reference security=1.0' "$HLOG"
}

@test "the stand-in refuses as the reference server does: a plaintext 502 and a close" {
	# what the client is tested against, checked on its own
	run -0 $PY - "$TOP/tests/reference-server.py" "$T/o.log" <<-'EOF'
	import subprocess, sys
	p = subprocess.run([sys.executable, sys.argv[1], sys.argv[2], "--",
	    "false"], input=b"hello ssl1.0?\r\n\r\n"
	    b"support asymmetric-rsa2048 symmetric-aes-256-ecb?\r\n\r\n",
	    capture_output=True, timeout=30)
	assert p.stdout == (b"201 ssl valid\r\n\r\n"
	    b"502 not supported symetric algorithm.\r\n\r\n"), p.stdout
	EOF
}
