#!/usr/bin/env bats
# usmtp(7), Framing, Handshake and Greeting and commands, through the
# real handler: the handshake with both spellings, every handshake error,
# the version check, unknown commands, BYE, limits, truncation and the
# idle timeout.

load helpers

setup() {
	usmtp_setup
	add_test_users
}

# long_command N REPLY STATUS: a session that sends, after the greeting,
# a command of N bytes ("xxx..."), then BYE; the reply to the command
# must be REPLY, and the handler's exit status STATUS.
long_command() {
	printf '%s\n' handshake "send 1.0 Hello" \
		"send $(head -c "$1" /dev/zero | tr '\0' x)" "send BYE" \
		>"$T/long.in"
	run -0 client_script "$T/long.in"
	[ "${lines[4]}" = "$2" ]
	[ "${lines[5]}" = "[handler exit $3]" ]
}

# big_body_script: prints a script that sends bob a message with a
# 2000-byte body, then BYE.
big_body_script() {
	mail_then "send subject: big" "body data: $(printf 'x%.0s' $(seq 2000))" \
	    "send 0" "send BYE"
}

@test "the document's spellings: handshake, greeting, unknown command, BYE exits 0" {
	golden hs-document
	grep -q 'handshake result=ok dialect=document' "$HLOG"
	grep -q 'end reason=bye state=S_COMMAND' "$HLOG"
}

@test "the reference client's spellings select the reference dialect" {
	golden hs-reference
	grep -q 'handshake result=ok dialect=reference' "$HLOG"
}

@test "hello and the algorithm tokens are case-insensitive and spellings mix" {
	golden hs-mixed-case
	grep -q 'dialect=document' "$HLOG"
}

@test "a wrong hello gets 503 and the handler exits 1" {
	golden hs-bad-hello
	grep -q 'end reason=handshake code=503 state=S_HELLO' "$HLOG"
}

@test "unknown algorithms get 502, dot-terminated" {
	golden hs-bad-algos
	# the frame itself ends with .CRLFCRLF (usmtp(7), Handshake)
	printf 'hello ssl1.0?\r\n\r\nsupport rsa1024?\r\n\r\n' |
		$HANDLER 2>/dev/null | od -An -c | tr -d ' \n' | grep -q 'algorithm.\\r\\n\\r\\n$'
}

@test "a garbage key frame gets 504 with the one fixed text" {
	golden hs-garbage-key
}

@test "a 16-byte session key gets 505" {
	golden hs-short-key
	grep -q 'code=505 keylen=16' "$HLOG"
}

@test "a key frame that is not 256 bytes and CRLFCRLF gets 504" {
	{ printf 'hello ssl1.0?\r\n\r\nsupport asymmetric-rsa2048 symmetric-aes-256-ecb?\r\n\r\n'
	  head -c 300 /dev/zero; } > "$T/in.bin"
	run -1 sh -c "$HANDLER < $T/in.bin > $T/out.bin 2>$HLOG"
	[[ "$(tail -c 40 "$T/out.bin")" == *"504 Session key decryption failed"* ]]
}

@test "a client that speaks no version 1.0 gets 501" {
	golden hs-bad-version
}

@test "input that ends in the middle of a frame gets 500 and exit 1" {
	golden hs-truncated
	grep -q 'end reason=truncated code=500 state=S_COMMAND' "$HLOG"
}

@test "end of input at a command prompt is a normal end (exit 0)" {
	golden hs-eof
	grep -q 'end reason=eof state=S_COMMAND' "$HLOG"
}

@test "an idle client is cut off with 500 after --timeout" {
	golden hs-idle --timeout 1
	grep -q 'end reason=timeout code=500' "$HLOG"
}

@test "a command frame over 4 KiB gets 500 and the session ends" {
	long_command 5000 "500 Connection error" 1
	grep -q 'end reason=too-big code=500' "$HLOG"
}

@test "a frame of exactly 4 KiB of ciphertext is still accepted" {
	# 4080 bytes of text pad to 4096 bytes of ciphertext
	long_command 4080 "300 Not recognized command" 0
}

@test "a whole session piped in at once from a file is served the same" {
	printf '%s\n' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f > "$T/key.hex"
	(cd "$TRANSCRIPTS" && usmtp-script --encode "$T/in.bin" \
		--cert "$KEYS/server.pem" --session-key "$T/key.hex" \
		"$TRANSCRIPTS/login-wrong.in")
	run -0 sh -c "$HANDLER < $T/in.bin > $T/out.bin 2>$HLOG"
	run -0 usmtp-script --decode "$T/out.bin" --session-key "$T/key.hex"
	diff -u <(sed '$d' "$TRANSCRIPTS/login-wrong.out") - <<<"$output"
}

@test "the handler refuses unknown options with exit 64" {
	run -64 usmtp-handler --no-such-option
	run -64 usmtp-handler --timeout soon
}

@test "--config sets an option the command line leaves alone" {
	printf '# comment\nmax-body = 1K\n' >"$T/usmtp.conf"
	big_body_script >"$T/big.in"
	# the file's 1K applies: a 2000-byte body is over it
	run -0 client_script "$T/big.in" --config "$T/usmtp.conf"
	[[ $output == *$'\n552 Size limit exceeded\n'* ]]
	[[ $output != *"220 "* ]]
	# without the file, the default 1M takes it
	run -0 client_script "$T/big.in"
	[[ $output == *$'\n220 Email was sent\n'* ]]
}

@test "the command line wins over --config, whatever their order" {
	printf 'max-body = 1K\n' >"$T/usmtp.conf"
	big_body_script >"$T/big.in"
	run -0 client_script "$T/big.in" --max-body 4K --config "$T/usmtp.conf"
	[[ $output == *$'\n220 Email was sent\n'* ]]
	run -0 client_script "$T/big.in" --config "$T/usmtp.conf" --max-body 4K
	[[ $output == *$'\n220 Email was sent\n'* ]]
	[[ $output != *"552 "* ]]
}

@test "a bad line in --config names the file and line, exit 78" {
	printf '# fine\nno-such = 1\n' >"$T/bad.conf"
	run -78 usmtp-handler --config "$T/bad.conf"
	[[ "$output" == *"bad.conf:2: no-such: unknown option"* ]]
}

@test "--help and --version" {
	run -0 usmtp-handler --help
	[[ "$output" == usage:* ]]
	run -0 usmtp-handler --version
	[[ "$output" == "usmtp-handler 1.0.0 (USMTP 1.0)" ]]
}
