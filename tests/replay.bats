#!/usr/bin/env bats
# replay.bats -- whole-session replay (usmtp(7), CAVEATS; --replay-db):
# a recorded session's client bytes piped into a new handler a second
# time get 504 and deliver nothing; without the cache they deliver
# twice.  A damaged cache is rebuilt and logged, an unusable one never
# stops mail.  The cache's horizon, its fixed size and its locking are
# tested in tests/unit/replay-test.c.

load helpers

# 4096-byte header + 2^20 ring entries + 2^21 index slots of 8 bytes
REPLAY_FILE_BYTES=25169920

setup() {
	usmtp_setup
	add_test_users
	RDB=$T/replay.db
	printf '%s\n' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f >"$T/key.hex"
}

# record OUT: the client's bytes of one whole session (handshake, login,
# one message to bob, BYE) into OUT, as an eavesdropper would see them.
record() {
	mail_then "send subject: replayed?" "body data: one copy only" \
	    "send 0" "send BYE" >"$T/session.script"
	(cd "$TRANSCRIPTS" && usmtp-script --encode "$1" \
	    --cert "$KEYS/server.pem" --session-key "$T/key.hex" "$T/session.script")
}

# pipe_in IN OUT: IN into a new handler ($HANDLER), its output to OUT.
pipe_in() {
	sh -c "$HANDLER < $1 > $2 2>>$HLOG"
}

# decoded OUT: the replies in the handler's output OUT.
decoded() {
	usmtp-script --decode "$1" --session-key "$T/key.hex"
}

@test "a recorded session piped into a new handler again gets 504 and delivers nothing" {
	record "$T/in.bin"
	run -0 pipe_in "$T/in.bin" "$T/out1.bin"
	run -0 decoded "$T/out1.bin"
	[ "${lines[-1]}" = "220 Email was sent" ]
	[ "$(delivered_count)" -eq 1 ]
	run -1 pipe_in "$T/in.bin" "$T/out2.bin"
	run -0 decoded "$T/out2.bin"
	output_is <<-\EOX
	201 ssl valid
	202 algos valid
	504 Session key decryption failed
	EOX
	[ "$(delivered_count)" -eq 1 ]
	grep -q ' handshake result=fail code=504 reason=replay$' "$HLOG"
	grep -q ' end reason=replay code=504 state=S_KEY ' "$HLOG"
	# a third time, from yet another handler: still refused
	run -1 pipe_in "$T/in.bin" "$T/out3.bin"
	[ "$(delivered_count)" -eq 1 ]
	[ "$(grep -c 'reason=replay$' "$HLOG")" -eq 2 ]
}

@test "with --replay-db none the same recording is delivered twice" {
	HANDLER="$HANDLER --replay-db none"
	record "$T/in.bin"
	run -0 pipe_in "$T/in.bin" "$T/out1.bin"
	run -0 pipe_in "$T/in.bin" "$T/out2.bin"
	run -0 decoded "$T/out2.bin"
	[ "${lines[-1]}" = "220 Email was sent" ]
	[ "$(delivered_count)" -eq 2 ]
	[ ! -e "$RDB" ]
}

@test "two sessions with the same session key are no replay: each key block is new" {
	record "$T/a.bin"
	record "$T/b.bin"
	run -1 cmp -s "$T/a.bin" "$T/b.bin"
	run -0 pipe_in "$T/a.bin" "$T/out1.bin"
	run -0 pipe_in "$T/b.bin" "$T/out2.bin"
	[ "$(delivered_count)" -eq 2 ]
	run -1 grep -q 'reason=replay' "$HLOG"
}

@test "the replay cache is made at its fixed size, mode 0600, and stays that size" {
	[ ! -e "$RDB" ]
	record "$T/a.bin"
	record "$T/b.bin"
	run -0 pipe_in "$T/a.bin" "$T/out1.bin"
	[ "$(stat -c %s "$RDB")" -eq "$REPLAY_FILE_BYTES" ]
	[ "$(stat -c %a "$RDB")" = 600 ]
	[ "$(head -c 8 "$RDB")" = USMTPRP1 ]
	run -0 pipe_in "$T/b.bin" "$T/out2.bin"
	run -1 pipe_in "$T/a.bin" "$T/out3.bin"
	[ "$(stat -c %s "$RDB")" -eq "$REPLAY_FILE_BYTES" ]
	# nothing left beside it
	[ "$(ls "$T" | grep -c '^replay\.db')" -eq 1 ]
}

@test "a damaged replay cache is rebuilt, logged, and refuses replays again" {
	head -c 4096 /dev/urandom >"$RDB"
	truncate -s "$REPLAY_FILE_BYTES" "$RDB"
	record "$T/in.bin"
	run -0 pipe_in "$T/in.bin" "$T/out1.bin"
	[ "$(delivered_count)" -eq 1 ]
	grep -q "error replay=$RDB reason=\"damaged: not a replay file\" action=rebuilt" "$HLOG"
	[ "$(head -c 8 "$RDB")" = USMTPRP1 ]
	[ "$(stat -c %s "$RDB")" -eq "$REPLAY_FILE_BYTES" ]
	run -1 pipe_in "$T/in.bin" "$T/out2.bin"
	[ "$(delivered_count)" -eq 1 ]
	grep -q 'reason=replay$' "$HLOG"
}

@test "an unusable replay cache never stops mail: logged, and the session goes on" {
	HANDLER="$HANDLER --replay-db $T/no-such-dir/replay.db"
	record "$T/in.bin"
	run -0 pipe_in "$T/in.bin" "$T/out1.bin"
	run -0 pipe_in "$T/in.bin" "$T/out2.bin"
	[ "$(delivered_count)" -eq 2 ]
	grep -q "error replay=$T/no-such-dir/replay.db reason=\"No such file or directory\"" "$HLOG"
}

@test "a file that is not a replay cache is left alone, and the session goes on" {
	printf 'not ours\n' >"$RDB"
	cp "$RDB" "$T/copy"
	record "$T/in.bin"
	run -0 pipe_in "$T/in.bin" "$T/out1.bin"
	[ "$(delivered_count)" -eq 1 ]
	cmp "$RDB" "$T/copy"
	grep -q "error replay=$RDB reason=\"not a usmtp replay file" "$HLOG"
}

@test "--replay-db works from a configuration file" {
	printf 'replay-db = %s\n' "$T/conf-replay.db" >"$T/usmtp.conf"
	HANDLER="$HANDLER --config $T/usmtp.conf"
	# the command line wins over the file: drop helpers' --replay-db
	HANDLER=${HANDLER/--replay-db $RDB /}
	record "$T/in.bin"
	run -0 pipe_in "$T/in.bin" "$T/out1.bin"
	run -1 pipe_in "$T/in.bin" "$T/out2.bin"
	[ -s "$T/conf-replay.db" ]
	[ ! -e "$RDB" ]
}
