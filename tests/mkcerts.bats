#!/usr/bin/env bats
# ssl/mkcerts: the CA, the RSA-2048 server pair of USMTP 1.0 and the X25519
# server pair of secure mode (usmtp(7), SECURE MODE): modes, chains, names,
# key usages, keys matching their certificates, never overwriting, and
# --x25519-only on an existing CA.

load helpers

setup() {
	T=$BATS_TEST_TMPDIR
}

# names FILE: the certificate's subject and subjectAltNames, one line.
names() {
	openssl x509 -in "$1" -noout -subject -ext subjectAltName |
	    tr -s ' \n' ' '
}

@test "mkcerts makes six files: keys 0600, certificates 0644" {
	run -0 "$TOP/ssl/mkcerts" "$T/k" mail.example.org 192.0.2.7
	[[ $output == "mkcerts: wrote $T/k/ca.pem "*"$T/k/server-x25519.key (DNS:localhost,IP:127.0.0.1,IP:::1,DNS:mail.example.org,IP:192.0.2.7)" ]]
	run -0 ls "$T/k"
	[ "${#lines[@]}" -eq 6 ]
	cd "$T/k"
	run -0 stat -c '%a %n' ca.key ca.pem server.key server.pem \
	    server-x25519.key server-x25519.pem
	output_is <<-EOF
	600 ca.key
	644 ca.pem
	600 server.key
	644 server.pem
	600 server-x25519.key
	644 server-x25519.pem
	EOF
}

@test "both server certificates verify against the CA as TLS server certificates" {
	"$TOP/ssl/mkcerts" "$T/k" >/dev/null
	run -0 openssl verify -purpose sslserver -CAfile "$T/k/ca.pem" \
	    "$T/k/server.pem" "$T/k/server-x25519.pem"
	[ "${lines[0]}" = "$T/k/server.pem: OK" ]
	[ "${lines[1]}" = "$T/k/server-x25519.pem: OK" ]
}

@test "the X25519 certificate holds the X25519 key of server-x25519.key" {
	"$TOP/ssl/mkcerts" "$T/k" >/dev/null
	run -0 openssl x509 -in "$T/k/server-x25519.pem" -noout -text
	[[ $output == *"Public Key Algorithm: X25519"* ]]
	openssl pkey -in "$T/k/server-x25519.key" -pubout >"$T/from-key"
	openssl x509 -in "$T/k/server-x25519.pem" -noout -pubkey >"$T/from-cert"
	diff -u "$T/from-key" "$T/from-cert"
	run -0 openssl pkey -in "$T/k/server-x25519.key" -noout -text
	[[ $output == "X25519 Private-Key:"* ]]
}

@test "the X25519 certificate has the RSA certificate's subject and names" {
	"$TOP/ssl/mkcerts" "$T/k" mail.example.org 2001:db8::25 >/dev/null
	rsa=$(names "$T/k/server.pem")
	x=$(names "$T/k/server-x25519.pem")
	echo "rsa: $rsa"
	echo "x25519: $x"
	[ "$rsa" = "$x" ]
	[[ $x == *"CN = mail.example.org"* ]]
	[[ $x == *"DNS:mail.example.org"* ]]
	[[ $x == *"IP Address:2001:DB8:0:0:0:0:0:25"* ]]
	openssl x509 -in "$T/k/server-x25519.pem" -noout \
	    -checkhost mail.example.org | grep -q 'does match'
}

@test "both server certificates carry extendedKeyUsage serverAuth and the right key usage" {
	"$TOP/ssl/mkcerts" "$T/k" >/dev/null
	run -0 openssl x509 -in "$T/k/server.pem" -noout \
	    -ext extendedKeyUsage,keyUsage
	[[ $output == *"TLS Web Server Authentication"* ]]
	[[ $output == *"Digital Signature, Key Encipherment"* ]]
	run -0 openssl x509 -in "$T/k/server-x25519.pem" -noout \
	    -ext extendedKeyUsage,keyUsage,basicConstraints
	[[ $output == *"TLS Web Server Authentication"* ]]
	[[ $output == *"Key Agreement"* ]]
	[[ $output == *"CA:FALSE"* ]]
	[[ $output != *"Digital Signature"* ]]
}

@test "mkcerts never overwrites: an existing server-x25519.key stops it before anything is written" {
	mkdir "$T/k"
	echo keep >"$T/k/server-x25519.key"
	run -73 "$TOP/ssl/mkcerts" "$T/k"
	[[ $output == *"server-x25519.key exists; not overwriting"* ]]
	run -0 ls "$T/k"
	[ "$output" = server-x25519.key ]
	[ "$(cat "$T/k/server-x25519.key")" = keep ]
}

@test "--x25519-only adds an X25519 pair signed by the existing CA, once" {
	"$TOP/ssl/mkcerts" "$T/k" mail.example.org >/dev/null
	rm "$T/k/server-x25519.pem" "$T/k/server-x25519.key"
	sum=$(cat "$T/k/ca.pem" "$T/k/ca.key" "$T/k/server.pem" "$T/k/server.key" | sha256sum)
	run -0 "$TOP/ssl/mkcerts" --x25519-only "$T/k" mail.example.org
	[ "$output" = "mkcerts: wrote $T/k/server-x25519.pem $T/k/server-x25519.key (DNS:localhost,IP:127.0.0.1,IP:::1,DNS:mail.example.org)" ]
	[ "$(cat "$T/k/ca.pem" "$T/k/ca.key" "$T/k/server.pem" "$T/k/server.key" | sha256sum)" = "$sum" ]
	openssl verify -CAfile "$T/k/ca.pem" "$T/k/server-x25519.pem"
	[ "$(names "$T/k/server.pem")" = "$(names "$T/k/server-x25519.pem")" ]
	[ "$(stat -c %a "$T/k/server-x25519.key")" = 600 ]
	run -73 "$TOP/ssl/mkcerts" --x25519-only "$T/k"
}

@test "--x25519-only without a CA is refused and writes nothing" {
	run -66 "$TOP/ssl/mkcerts" --x25519-only "$T/none"
	[[ $output == *"ca.pem missing"* ]]
	[ ! -e "$T/none" ]
}
