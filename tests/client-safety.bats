#!/usr/bin/env bats
# usmtp-client against servers that misbehave (tests/fake-server.py):
# server bytes never reach the terminal raw, a server that stops reading
# cannot hold the client past --timeout, and a certificate not made for a
# server is refused.

load helpers

setup() {
	client_setup
	FAKE="$PY $TOP/tests/fake-server.py $KEYS/server.key $KEYS/server.pem"
}

# fake [CLIENT OPTIONS] -- ARGS...: the client in batch mode against
# fake-server.py ARGS.
fake() {
	local opts=()
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	echo body | timeout 60 usmtp-client --ca "$KEYS/ca.pem" \
		-u alice@example.org --password-file "$T/pw" -t bob@example.org \
		"${opts[@]}" --exec "exec $FAKE $* 2>>$T/fake.log"
}

# no_escapes TEXT: fails if TEXT holds an ESC or BEL byte.
no_escapes() {
	! printf '%s' "$1" | grep -q "$(printf '[\033\007]')"
}

@test "a refusal of the hello is shown escaped, not sent to the terminal raw" {
	run -69 --separate-stderr fake -- --hello "'503 \\x1b]0;owned\\x07\\x1b[2J'"
	no_escapes "$stderr"
	[[ $stderr == *'handshake refused: 503 \x1b]0;owned\x07\x1b[2J'* ]]
}

@test "a refused login is shown escaped, and -v escapes every reply" {
	run -77 --separate-stderr fake -v -- \
		"'111 Send your e-mail adress'" "'112 Send your password'" \
		"'401 \\x1b[31mWrong\\x1b[0m'"
	no_escapes "$stderr"
	[[ $stderr == *'server said: 401 \x1b[31mWrong\x1b[0m'* ]]
	[[ $stderr == *'<- 401 \x1b[31mWrong\x1b[0m'* ]]
}

@test "a server that stops reading cannot hold the client past --timeout" {
	head -c 20000000 /dev/urandom >"$T/big"
	SECONDS=0
	run -75 --separate-stderr fake --timeout 5 -a "$T/big" -- \
		"'111 a'" "'112 b'" "'210 c'" "'121 d'" "'200 e|122 f'" \
		"'200 g|123 h'" "'200 i|124 j'" "'200 k|125 l'" "'200 m|126 n'" \
		"'200 o'" @stall
	# the fake server stalls for a minute: 5 s and its start-up, not that
	[ "$SECONDS" -lt 30 ]
	[[ $stderr == *"sending $T/big: write timed out"* ]]
}

# leaf_cert NAME EXT: a certificate for localhost signed by the test CA
# with the extension lines EXT, in $T/NAME.pem (key $T/NAME.key, 0600).
leaf_cert() {
	openssl req -new -newkey rsa:2048 -nodes -keyout "$T/$1.key" \
		-subj /CN=localhost -out "$T/$1.csr" 2>/dev/null
	printf '%s\n' "$2" "subjectAltName=DNS:localhost" >"$T/$1.ext"
	openssl x509 -req -in "$T/$1.csr" -CA "$KEYS/ca.pem" \
		-CAkey "$KEYS/ca.key" -CAcreateserial -CAserial "$T/ca.srl" \
		-days 30 -sha256 -extfile "$T/$1.ext" -out "$T/$1.pem" 2>/dev/null
	chmod 600 "$T/$1.key"
}

@test "a certificate whose key usage is not serverAuth is refused (78)" {
	leaf_cert client "extendedKeyUsage=clientAuth"
	leaf_cert mail "extendedKeyUsage=emailProtection"
	leaf_cert server "extendedKeyUsage=clientAuth,serverAuth"
	for c in client mail; do
		run -78 --separate-stderr timeout 30 usmtp-client \
			--ca "$KEYS/ca.pem" -u alice@example.org \
			--password-file "$T/pw" -t bob@example.org </dev/null \
			--exec "exec usmtp-handler --cert $T/$c.pem --key $T/$c.key --users $T/none.db --log-stderr 2>>$HLOG"
		[[ $stderr == *"not trusted: unsuitable certificate purpose"* ]]
	done
	# the same CA, serverAuth among the usages: the handshake goes on
	# (and fails later only for want of a users database)
	run --separate-stderr timeout 30 usmtp-client --ca "$KEYS/ca.pem" \
		-u alice@example.org --password-file "$T/pw" -t bob@example.org \
		</dev/null \
		--exec "exec usmtp-handler --cert $T/server.pem --key $T/server.key --users $T/none.db --log-stderr 2>>$HLOG"
	[[ $stderr != *"certificate"* ]]
	grep -q 'handshake result=ok' "$HLOG"
}
