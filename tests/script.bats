#!/usr/bin/env bats
# script.bats -- tests/usmtp-script, the protocol test harness the other
# suites drive: its three modes (a live script over --exec or TCP,
# --encode, --decode), what it prints for replies that are not plain
# frames, its command line and its exit statuses.

load helpers

setup() {
	usmtp_setup
	add_test_users
	SA_PID=
}

teardown() {
	stop_pid "$SA_PID"
}

# untouched [usmtp-script options]: usmtp-script whose --exec server only
# leaves $T/started behind: a test that it never started.
untouched() {
	usmtp-script --exec "touch $T/started" "$@"
}

# against SERVER [usmtp-script options]: runs the script $T/s.txt with
# usmtp-script (30 s at most) against SERVER, a shell command run as its
# --exec server.
against() {
	local server=$1
	shift
	timeout 30 usmtp-script "$@" --exec "$server" "$T/s.txt"
}

# ---- --encode and --decode --------------------------------------------------

@test "--encode rebuilds session-1's client bytes, the session key block aside" {
	V=$VECTORS/session-1
	sed "s|@V@|$V|" > "$T/s1.txt" <<'EOF'
handshake ref
send-ref 1.0 Hello
send-ref LOGIN
send-ref testprotokolu1@wp.pl
send-ref bad-example123
send-ref testprotokolu1@wp.pl
send-ref example123
send-ref NOOP
send-ref LOGIN
send-ref SEND MAIL
send-ref mail from: testprotokolu1@wp.pl
send-ref mail to: nobody@example.com
send-ref mail to: not-an-address
send-ref mail to: testprotokolu2@wp.pl
send-ref subject: Vector subject
body data: First line of the vector body.\n\nThird line, after the empty one.
send-ref 2
attach-ref @V@/note-a.txt
attach-ref @V@/note-b.txt
send-ref SEND MAIL
send-ref mail from: testprotokolu1@wp.pl
send-ref mail to: testprotokolu2@wp.pl
send-ref subject: Second vector message
body data: Second message, no attachments.
send-ref 0
send-ref BYE
EOF
	run -0 usmtp-script --encode "$T/s1.bin" --cert "$VECTORS/server.pem" \
		--session-key "$V/session-key.hex" "$T/s1.txt"
	cmp <(head -c 69 "$T/s1.bin") <(head -c 69 "$V/client.bin")
	cmp <(tail -c +330 "$T/s1.bin") <(tail -c +330 "$V/client.bin")
	[ "$(wc -c < "$T/s1.bin")" -eq "$(wc -c < "$V/client.bin")" ]
	# the key block: 256 bytes of RSA-OAEP (SHA-256) around our key
	dd if="$T/s1.bin" bs=1 skip=69 count=256 status=none |
		openssl pkeyutl -decrypt -inkey "$VECTORS/server.key" \
		-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 \
		-pkeyopt rsa_mgf1_md:sha256 | od -An -tx1 | tr -d ' \n' > "$T/key"
	[ "$(cat "$T/key")" = "$(tr -d ' \n' < "$V/session-key.hex")" ]
}

@test "--encode writes nothing after eof, and a key needs --cert" {
	printf 'raw a\neof\nraw b\n' > "$T/e.txt"
	run -0 usmtp-script --encode "$T/e.bin" "$T/e.txt"
	[ "$(cat "$T/e.bin")" = a ]
	printf 'hello\nkey\n' > "$T/k.txt"
	run -64 --separate-stderr usmtp-script --encode "$T/k.bin" "$T/k.txt"
	[[ $stderr == *"script line 2: key: --encode needs --cert"* ]]
}

@test "--decode splits the reference server's replies into session-1's codes" {
	V=$VECTORS/session-1
	run -0 usmtp-script --decode "$V/reference-replies.bin" \
		--session-key "$V/session-key.hex"
	diff -u "$V/expected-codes.txt" <(cut -c1-3 <<<"$output")
	[ "${lines[1]}" = "202 algos valid" ]
	[ "${lines[3]}" = "100 Hello supported_protocols usmtp supported_versions 1.0" ]
}

@test "--decode reports bytes that end no frame" {
	V=$VECTORS/session-2
	{ cat "$V/reference-replies.bin"; printf 'xyz'; } > "$T/r.bin"
	run -0 usmtp-script --decode "$T/r.bin" --session-key "$V/session-key.hex"
	[ "${lines[-1]}" = "[3 trailing bytes]" ]
}

@test "--decode without the session key counts the encrypted replies" {
	V=$VECTORS/session-1
	run -0 usmtp-script --decode "$V/reference-replies.bin"
	[ "${lines[2]}" = "203 symetric key decryption done" ]
	[[ "${lines[3]}" =~ ^\[[0-9]+\ encrypted\ bytes,\ no\ key\]$ ]]
	[ "${#lines[@]}" -eq "$(wc -l < "$V/expected-codes.txt")" ]
}

# ---- live scripts -----------------------------------------------------------

@test "a script escapes what it prints and sends raw bytes and pauses" {
	cat > "$T/s.txt" <<'EOF'
# comment, then a blank line

handshake
send 1.0 Hello
pause 50
send NO\x01OP\\
send BYE
EOF
	run -0 --separate-stderr against "exec $HANDLER 2>>$HLOG" --ca "$KEYS/ca.pem"
	[ "${lines[0]}" = "201 ssl valid" ]
	[ "${lines[1]}" = "202 algos valid" ]
	[ "${lines[3]}" = "100 Hello supported_protocols usmtp supported_versions 1.0" ]
	[ "${lines[4]:0:4}" = "300 " ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
}

@test "a script over TCP (IPv6) prints the replies until the server closes" {
	port=$(free_port)
	start_socket_activate "$port" "[::1]"
	printf 'handshake\nsend 1.0 Hello\nsend BYE\n' > "$T/s.txt"
	run -0 --separate-stderr timeout 30 usmtp-script --ca "$KEYS/ca.pem" \
		-H ::1 -p "$port" "$T/s.txt"
	[ "${#lines[@]}" -eq 4 ]
	[ "${lines[3]}" = "100 Hello supported_protocols usmtp supported_versions 1.0" ]
}

@test "a script stops at an untrusted certificate with 78 and sends no key" {
	mkdir "$T/other" && "$TOP/ssl/mkcerts" "$T/other" >/dev/null
	printf 'handshake\nsend 1.0 Hello\n' > "$T/s.txt"
	run -78 --separate-stderr against "exec $HANDLER 2>>$HLOG" --ca "$T/other/ca.pem"
	[ "$output" = $'201 ssl valid\n202 algos valid' ]
	[[ $stderr == *"server certificate not trusted"* ]]
	! grep -q 'handshake result=ok' "$HLOG"
}

@test "a script whose algorithms are refused sends no key and ends with the server" {
	printf 'hello\nalgos support rsa1024?\nkey\nsend 1.0 Hello\n' > "$T/s.txt"
	run -0 --separate-stderr against "exec $HANDLER 2>>$HLOG" --ca "$KEYS/ca.pem"
	[ "${lines[0]}" = "201 ssl valid" ]
	[ "${lines[1]:0:4}" = "502 " ]
	[ "${lines[2]}" = "[handler exit 1]" ]
	[ "${#lines[@]}" -eq 3 ]
	[[ $stderr == *"script line 3: no server certificate"* ]]
}

@test "an 8 MiB attachment goes through whole, and one over the limit ends in 552" {
	head -c 8388608 /dev/urandom > "$T/big.bin"
	mail_then "send subject: big" "body data: b" "send 1" \
		"attach $T/big.bin" "send BYE" > "$T/big.in"
	run -0 client_script "$T/big.in"
	[ "${lines[-2]}" = "220 Email was sent" ]
	[ "${lines[-1]}" = "[handler exit 0]" ]
	# the handler stops reading at the header: the tool must not hang
	run -0 client_script "$T/big.in" --max-attachment 1K
	[ "${lines[-2]}" = "552 Size limit exceeded" ]
	[ "${lines[-1]}" = "[handler exit 1]" ]
}

@test "what a server says while a long send blocks is kept, not a deadlock" {
	# the server writes 4 MB before it reads anything: with both sides
	# writing, only reading while waiting to write gets through
	head -c 8388608 /dev/zero > "$T/big.bin"
	printf 'content %s\neof\n' "$T/big.bin" > "$T/s.txt"
	run -0 against "head -c 4000000 /dev/zero; exec cat >/dev/null"
	# no frame in it: counted once a reply outgrows any frame
	[ "$output" = $'[4000000 trailing bytes]\n[handler exit 0]' ]
}

@test "a handler killed by a signal, and one that never answers, are reported" {
	printf 'hello\nsend x\n' > "$T/s.txt"
	run -0 against "printf '201 x\r\n\r\n'; kill -TERM \$\$"
	[ "$output" = $'201 x\n[handler signal 15]' ]
	run -75 against "exec cat >/dev/null" --timeout 1
	[ "$output" = $'[timeout]\n[handler exit 0]' ]
}

@test "an encrypted reply with no key to read it is counted" {
	printf 'hello\nsend x\n' > "$T/s.txt"
	run -0 against "printf '203 go\r\n\r\n0123456789abcdef\r\n\r\n'"
	[ "$output" = $'203 go\n[16 encrypted bytes, no key]\n[handler exit 0]' ]
}

# ---- command line -----------------------------------------------------------

@test "--help names the modes, every directive and the exit statuses" {
	run -0 --separate-stderr usmtp-script --help
	[ -z "$stderr" ]
	for o in --exec --host --port --ca --timeout --session-key --encode \
	    --cert --decode --help --version; do
		[[ $output == *"$o"* ]] || { echo "missing $o"; false; }
	done
	for d in hello algos handshake key send send-ref body attach \
	    attach-ref content raw rawhex eof pause; do
		grep -q "^  $d " <<<"$output" || { echo "missing $d"; false; }
	done
	for s in 64 65 66 69 70 71 73 74 75 76 78; do
		[[ $output == *" $s "* ]] || { echo "missing $s"; false; }
	done
	run -0 usmtp-script --version
	[[ $output == "usmtp-script "[0-9]* ]]
}

@test "bad command lines exit 64 before anything starts" {
	printf 'hello\n' > "$T/s.txt"
	run -64 --separate-stderr untouched
	run -64 --separate-stderr usmtp-script "$T/s.txt"
	run -64 --separate-stderr untouched -H ::1 "$T/s.txt"
	run -64 --separate-stderr usmtp-script --decode "$T/s.txt" "$T/s.txt"
	run -64 --separate-stderr untouched --encode "$T/o" "$T/s.txt"
	run -64 --separate-stderr untouched --timeout soon "$T/s.txt"
	[ ! -e "$T/started" ]
}

@test "a bad script exits 65 with its line, a missing file 66, before anything starts" {
	printf 'hello\nsend ok\nsned typo\n' > "$T/bad.txt"
	run -65 --separate-stderr untouched "$T/bad.txt"
	[[ $stderr == *"bad.txt:3: unknown directive"* ]]
	printf 'rawhex 0g\n' > "$T/hex.txt"
	run -65 --separate-stderr untouched "$T/hex.txt"
	[[ $stderr == *"hex.txt:1: rawhex needs pairs of hex digits"* ]]
	printf 'attach %s\n' "$T/nonexistent" > "$T/att.txt"
	run -66 --separate-stderr untouched "$T/att.txt"
	[[ $stderr == *"line 1: $T/nonexistent: No such file or directory"* ]]
	run -66 --separate-stderr untouched "$T/none.txt"
	printf 'zz\n' > "$T/key.hex"
	printf 'hello\n' > "$T/s.txt"
	run -65 --separate-stderr untouched --session-key "$T/key.hex" "$T/s.txt"
	[[ $stderr == *"not 64 hex digits"* ]]
	[ ! -e "$T/started" ]
}
