#!/usr/bin/env bats
# usmtp-client end to end: batch mode through the real handler over a
# socket pair and over TCP (IPv4 and IPv6, systemd-socket-activate), what
# lands in the Maildir (checked with Python's email package), every exit
# status, the interactive mode on a terminal (tmux), and the progress
# bar.  The test harness has its own suite, script.bats.

load helpers

# ---- helpers of this file ------------------------------------------------

setup() {
	client_setup
	printf 'body\n' > "$T/body"
	SA_PID=
	TMUX_SOCK=
}

teardown() {
	stop_pid "$SA_PID"
	if [ -n "$TMUX_SOCK" ]; then
		tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true
	fi
}

# batch [client options]: batch mode as alice, through a handler started
# over a socket pair; the body comes from standard input.
batch() {
	timeout 60 usmtp-client --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-file "$T/pw" --exec "exec $HANDLER 2>>$HLOG" "$@"
}


# mail_parts FILE: what a real MIME parser sees in FILE: "from:", "to:",
# "subject:", "body:" (repr) lines, then "att: NAME SIZE SHA256" per
# attachment.
mail_parts() {
	$PY - "$1" <<'EOF'
import email, email.policy, hashlib, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"),
    policy=email.policy.default)
print("from:", m["From"])
print("to:", m["To"])
print("subject:", m["Subject"])
for part in m.walk():
    if part.is_multipart():
        continue
    data = part.get_payload(decode=True)
    name = part.get_filename()
    if name is None:
        print("body:", repr(data.decode("utf-8")))
    else:
        print("att:", name, len(data), hashlib.sha256(data).hexdigest())
EOF
}

# att_line FILE [NAME]: the "att:" line mail_parts prints for FILE.
att_line() {
	local name=${2:-$(basename "$1")}
	printf 'att: %s %s %s\n' "$name" "$(wc -c < "$1" | tr -d ' ')" \
		"$(sha256sum < "$1" | cut -d' ' -f1)"
}

# make_certs DIR MODE: a CA and a server certificate in DIR (ca.pem,
# server.pem, server.key) made with python3-cryptography.  MODE expired:
# valid 2020-2021, names localhost; othername: valid now, names only
# other.example.
make_certs() {
	mkdir -p "$1"
	$PY - "$1" "$2" <<'EOF'
import datetime, sys, ipaddress, os
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
d, mode = sys.argv[1], sys.argv[2]
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
now = datetime.datetime.utcnow()
cak, sk = key(), key()
caname = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client.bats CA")])
ca = (x509.CertificateBuilder().subject_name(caname).issuer_name(caname)
    .public_key(cak.public_key()).serial_number(1)
    .not_valid_before(now - datetime.timedelta(days=3650))
    .not_valid_after(now + datetime.timedelta(days=3650))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    .sign(cak, hashes.SHA256()))
if mode == "expired":
    nb, na = datetime.datetime(2020, 1, 1), datetime.datetime(2021, 1, 1)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
else:
    nb, na = now - datetime.timedelta(days=1), now + datetime.timedelta(days=365)
    san = [x509.DNSName("other.example")]
cert = (x509.CertificateBuilder()
    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "server")]))
    .issuer_name(caname).public_key(sk.public_key()).serial_number(2)
    .not_valid_before(nb).not_valid_after(na)
    .add_extension(x509.SubjectAlternativeName(san), False)
    .sign(cak, hashes.SHA256()))
open(os.path.join(d, "ca.pem"), "wb").write(ca.public_bytes(serialization.Encoding.PEM))
open(os.path.join(d, "server.pem"), "wb").write(cert.public_bytes(serialization.Encoding.PEM))
fd = os.open(os.path.join(d, "server.key"), os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, sk.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
os.close(fd)
EOF
}

# start_any PORT: the handler behind systemd-socket-activate on every
# address (IPv4 and IPv6); sets SA_PID.
start_any() {
	systemd-socket-activate --inetd -a -l "$1" \
		sh -c "exec $HANDLER 2>>$HLOG" 2>>"$T/sa.log" &
	SA_PID=$!
	wait_port "$1"
}

# tmux_start COMMAND: runs COMMAND in a detached terminal 150x50.
tmux_start() {
	TMUX_SOCK=$T/tmux.sock
	tmux -S "$TMUX_SOCK" -f /dev/null new-session -d -x 150 -y 50 \
		"cd '$T' && env -u USMTP_PASSWORD PATH='$PATH' $1; echo EXIT=\$?; sleep 60"
}

# screen: the terminal's text now.
screen() {
	tmux -S "$TMUX_SOCK" capture-pane -p -S -200
}

# shows REGEX: the terminal shows REGEX.
shows() {
	screen | grep -Eq -- "$1"
}

# wait_screen REGEX: waits (10 s at most) until the terminal shows REGEX.
wait_screen() {
	wait_until 10 shows "$1" && return 0
	echo "timed out waiting for /$1/ on:" >&2
	cat "$HLOG" >&2
	screen >&2
	return 1
}

# keys TEXT...: types into the terminal.
keys() {
	tmux -S "$TMUX_SOCK" send-keys "$@"
}

# login_typed: at the Command: prompt of a client started with -u
# alice@example.org, types LOGIN, Enter for the address it offers in
# brackets, and alice's password; returns once the server's 210 shows.
login_typed() {
	keys LOGIN Enter
	wait_screen '^E-mail address \[alice@example.org\]:$'
	keys Enter
	wait_screen 'Password for alice@example.org:'
	keys 'correct horse' Enter
	wait_screen 'server: 210 '
}

# ---- batch mode -------------------------------------------------------------

@test "batch: a body-only mail is delivered as sent" {
	printf 'Hello Bob,\n\nthe body.\n' | {
		run -0 --separate-stderr batch -t bob@example.org -s "body only"
		[ -z "$output" ] && [ -z "$stderr" ]
	}
	run -0 mail_parts "$(the_message)"
	output_is <<-\EOF
	from: alice@example.org
	to: bob@example.org
	subject: body only
	body: 'Hello Bob,\n\nthe body.\n'
	EOF
}

@test "batch: five attachments arrive byte for byte (binary, NULs, trailing spaces, empty, non-ASCII name)" {
	printf 'plain text\nsecond line\n' > "$T/a.txt"
	{ head -c 70000 /dev/urandom; printf '\0\0\0'; printf 'end   '; } > "$T/b.bin"
	printf 'spaces at the end   ' > "$T/c.txt"
	: > "$T/empty"
	printf 'non-ASCII name\n' > "$T/zażółć gęślą.txt"
	run -0 --separate-stderr batch -t bob@example.org -s five \
		-a "$T/a.txt" -a "$T/b.bin" -a "$T/c.txt" -a "$T/empty" \
		-a "$T/zażółć gęślą.txt" < "$T/body"
	[ -z "$stderr" ]
	run -0 mail_parts "$(delivered)"
	[ "${lines[2]}" = "subject: five" ]
	[ "${lines[4]}" = "$(att_line "$T/a.txt")" ]
	[ "${lines[5]}" = "$(att_line "$T/b.bin")" ]
	[ "${lines[6]}" = "$(att_line "$T/c.txt")" ]
	[ "${lines[7]}" = "$(att_line "$T/empty")" ]
	[ "${lines[8]}" = "$(att_line "$T/zażółć gęślą.txt")" ]
}

@test "batch: the body can come from -b and the password from USMTP_PASSWORD" {
	printf 'from a file\n' > "$T/body"
	USMTP_PASSWORD="correct horse" run -0 timeout 60 usmtp-client \
		--ca "$KEYS/ca.pem" -u alice@example.org -t bob@example.org \
		-s env -b "$T/body" --exec "exec $HANDLER 2>>$HLOG" < /dev/null
	run -0 mail_parts "$(delivered)"
	[ "${lines[3]}" = "body: 'from a file\\n'" ]
}

@test "batch over TCP, IPv4 and IPv6, behind systemd-socket-activate" {
	for addr in 127.0.0.1 '[::1]'; do
		port=$(free_port)
		start_socket_activate "$port" "$addr"
		run -0 --separate-stderr timeout 60 usmtp-client \
			-H "$addr" -p "$port" --ca "$KEYS/ca.pem" \
			-u alice@example.org --password-file "$T/pw" \
			-t bob@example.org -s "tcp $addr" < "$T/body"
		[ -z "$stderr" ]
		stop_pid "$SA_PID"
		SA_PID=
	done
	[ "$(delivered_count)" -eq 2 ]
	grep -q '^Subject: tcp 127.0.0.1' $(delivered)
	grep -q '^Subject: tcp \[::1\]' $(delivered)
}

@test "no progress output when standard error is not a terminal" {
	head -c 3000000 /dev/urandom > "$T/big"
	run -0 --separate-stderr batch -t bob@example.org -s big -a "$T/big" < "$T/body"
	[ -z "$stderr" ]
	[ -z "$output" ]
	run -0 mail_parts "$(delivered)"
	[ "${lines[4]}" = "$(att_line "$T/big")" ]
}

# ---- exit statuses ----------------------------------------------------------

@test "a wrong password exits 77" {
	printf 'not it\n' > "$T/pw"
	run -77 --separate-stderr batch -t bob@example.org -s x < "$T/body"
	[[ $stderr == *"authentication failed"* ]]
	[ -z "$(delivered)" ]
}

@test "an unknown recipient exits 67" {
	run -67 --separate-stderr batch -t nobody@example.org -s x < "$T/body"
	[[ $stderr == *"recipient unknown"* ]]
}

@test "a recipient the server finds malformed (301) exits 65, without BYE" {
	run -65 --separate-stderr batch -s x bob@exa_mple.org < "$T/body"
	[ "$stderr" = "usmtp-client: bob@exa_mple.org: bad address syntax: server said: 301 Wrong e-mail syntax" ]
	# the server waited for another address: BYE would have been one
	! grep -q 'mail to: BYE\|rcpt.*BYE' "$HLOG"
	grep -q 'end reason=eof' "$HLOG"
}

@test "six attachments exit 64 before anything starts" {
	: > "$T/f"
	run -64 --separate-stderr timeout 10 usmtp-client \
		--ca "$KEYS/ca.pem" -u alice@example.org --password-file "$T/pw" \
		-t bob@example.org -a "$T/f" -a "$T/f" -a "$T/f" -a "$T/f" \
		-a "$T/f" -a "$T/f" --exec "touch $T/started" < "$T/body"
	[ ! -e "$T/started" ]
}

@test "a missing attachment exits 66 before anything is sent" {
	run -66 --separate-stderr timeout 10 usmtp-client \
		--ca "$KEYS/ca.pem" -u alice@example.org --password-file "$T/pw" \
		-t bob@example.org -a "$T/nonexistent" --exec "touch $T/started" < "$T/body"
	[[ $stderr == *"nonexistent: No such file or directory"* ]]
	[ ! -e "$T/started" ]
}

@test "a server certificate from another CA exits 78 and the password is never sent" {
	mkdir "$T/other" && "$TOP/ssl/mkcerts" "$T/other" >/dev/null
	run -78 --separate-stderr timeout 30 usmtp-client \
		--ca "$T/other/ca.pem" -u alice@example.org --password-file "$T/pw" \
		-t bob@example.org --exec "exec $HANDLER 2>>$HLOG" < "$T/body"
	[[ $stderr == *"not trusted"* ]]
	! grep -q 'login' "$HLOG"
}

@test "an expired server certificate exits 78" {
	make_certs "$T/exp" expired
	run -78 --separate-stderr timeout 30 usmtp-client \
		--ca "$T/exp/ca.pem" -u alice@example.org --password-file "$T/pw" \
		-t bob@example.org --exec "exec usmtp-handler --cert $T/exp/server.pem --key $T/exp/server.key --users $DB --maildir $MAIL/%d/%u/Maildir --log-stderr 2>>$HLOG" < "$T/body"
	[[ $stderr == *"certificate has expired"* ]]
}

@test "a certificate not issued for the host name exits 78" {
	port=$(free_port)
	start_any "$port"
	run -78 --separate-stderr timeout 30 usmtp-client \
		-H 127.0.0.2 -p "$port" --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-file "$T/pw" -t bob@example.org < "$T/body"
	[[ $stderr == *"not valid for 127.0.0.2"* ]]
	# the same server by a name in the certificate is fine
	run -0 timeout 30 usmtp-client -H localhost -p "$port" \
		--ca "$KEYS/ca.pem" -u alice@example.org --password-file "$T/pw" \
		-t bob@example.org < "$T/body"
}

@test "an unusable CA file exits 78" {
	run -78 --separate-stderr batch --ca /nonexistent -t bob@example.org < "$T/body"
	[[ $stderr == *"CA file /nonexistent"* ]]
}

@test "no server listening exits 75, as msmtp does: a queue may try again" {
	port=$(free_port)
	run -75 --separate-stderr timeout 30 usmtp-client \
		-H 127.0.0.1 -p "$port" --ca "$KEYS/ca.pem" -u alice@example.org \
		--password-file "$T/pw" -t bob@example.org < "$T/body"
	[[ $stderr == *"cannot connect"* ]]
}

@test "a server that goes away exits 69" {
	run -69 --separate-stderr timeout 30 usmtp-client \
		--ca "$KEYS/ca.pem" -u alice@example.org --password-file "$T/pw" \
		-t bob@example.org --exec "exit 0" < "$T/body"
	[[ $stderr == *"closed the connection"* ]]
}

@test "a failed delivery (451) exits 75" {
	run -75 --separate-stderr timeout 60 usmtp-client \
		--ca "$KEYS/ca.pem" -u alice@example.org --password-file "$T/pw" \
		-t bob@example.org --exec "exec $HANDLER --sendmail /bin/false 2>>$HLOG" < "$T/body"
	[[ $stderr == *"451"* ]]
}

@test "no password (no terminal, no file, no USMTP_PASSWORD) exits 64 before connecting" {
	run -64 --separate-stderr setsid -w timeout 10 usmtp-client \
		--ca "$KEYS/ca.pem" -u alice@example.org -t bob@example.org \
		--exec "touch $T/started" < "$T/body"
	[[ $stderr == *"no password"* ]]
	[ ! -e "$T/started" ]
}

@test "batch mode without -u exits 64" {
	run -64 --separate-stderr usmtp-client -t bob@example.org \
		--exec "touch $T/started" < "$T/body"
	[ ! -e "$T/started" ]
}

@test "--help names every option of the man page, and the exit statuses" {
	run -0 usmtp-client --help
	# the test harness is tests/usmtp-script, no client option
	for o in --script --encode --decode --session-key --cert; do
		[[ $output != *"$o"* ]] || { echo "harness option $o"; false; }
	done
	for o in $(grep -o '^\.It Fl [-a-zA-Z]*' "$TOP/man/usmtp-client.1" | awk '{print $3}'); do
		[[ $output == *"-$o"* ]] || { echo "missing -$o"; false; }
	done
	for s in 64 65 66 67 69 70 74 75 76 77 78; do
		[[ $output == *" $s "* ]]
		grep -q "^\.It $s" "$TOP/man/usmtp-client.1"
	done
	run -0 usmtp-client --version
	[[ $output == "usmtp-client "[0-9]* ]]
}

# ---- on a terminal ----------------------------------------------------------

@test "interactive: login with the password not echoed, a mail with a re-typed recipient and an attachment, BYE" {
	tmux_start "usmtp-client --ca $KEYS/ca.pem -u alice@example.org --exec 'exec $HANDLER 2>>$HLOG'"
	wait_screen '^Command:'
	login_typed
	keys 'SEND MAIL' Enter
	wait_screen '^To:'
	keys nobody@example.org Enter
	wait_screen 'server: 402 '
	keys bob@example.org Enter
	wait_screen '^Subject:'
	keys 'typed subject' Enter
	wait_screen 'end it with a line'
	keys 'first line' Enter 'second line' Enter . Enter
	wait_screen 'Number of attachments'
	keys 1 Enter
	wait_screen 'Attachment file'
	keys 'missing.txt' Enter
	wait_screen 'missing.txt: No such file'
	printf 'attached\n' > "$T/att.txt"
	keys 'att.txt' Enter
	wait_screen 'server: 220 '
	keys BYE Enter
	wait_screen '^EXIT=0'
	! screen | grep -q 'correct horse'
	run -0 mail_parts "$(delivered)"
	[ "${lines[2]}" = "subject: typed subject" ]
	# the lines joined with LF, as the reference client does
	[ "${lines[3]}" = "body: 'first line\\nsecond line'" ]
	[ "${lines[4]}" = "$(att_line "$T/att.txt")" ]
}

@test "interactive: a wrong password is shown and asked again" {
	tmux_start "usmtp-client --ca $KEYS/ca.pem --exec 'exec $HANDLER 2>>$HLOG'"
	wait_screen '^Command:'
	keys LOGIN Enter
	wait_screen 'E-mail address'
	keys alice@example.org Enter
	wait_screen 'Password for'
	keys 'wrong one' Enter
	wait_screen 'server: 401 '
	wait_screen 'server: 111 '
	keys alice@example.org Enter
	wait_screen 'server: 112 .*'
	keys 'correct horse' Enter
	wait_screen 'server: 210 '
	keys BYE Enter
	wait_screen '^EXIT=0'
	! screen | grep -q 'wrong one'
}

@test "a progress bar is drawn while an attachment is sent to a terminal" {
	head -c 5000000 /dev/urandom > "$T/big"
	tmux_start "echo body | usmtp-client --ca $KEYS/ca.pem -u alice@example.org --password-file $T/pw -t bob@example.org -s bar -a $T/big --exec 'exec $HANDLER 2>>$HLOG'"
	wait_screen '^EXIT='
	screen | grep -q 'big .*100%'
	screen | grep -q '^EXIT=0'
}

@test "interactive: the address in brackets, taken on Enter; help answered locally; body lines without a prompt" {
	tmux_start "usmtp-client --ca $KEYS/ca.pem -u alice@example.org --exec 'exec $HANDLER 2>>$HLOG'"
	wait_screen '^Command:'
	keys help Enter
	wait_screen 'answered by usmtp-client, not the server'
	login_typed
	keys 'SEND MAIL' Enter
	wait_screen '^To:'
	keys bob@example.org Enter
	wait_screen '^Subject:'
	keys 'no prompts' Enter
	wait_screen 'end it with a line'
	keys 'first body line' Enter 'second body line' Enter . Enter
	wait_screen 'Number of attachments \(0-5\) \[0\]:'
	keys Enter
	wait_screen 'server: 220 '
	keys BYE Enter
	wait_screen '^EXIT=0'
	# the body's lines as typed, no ": " before them
	screen | grep -qx 'first body line'
	screen | grep -qx 'second body line'
	! screen | grep -q '^: '
	# help never reached the server (it would have answered 300)
	! grep -q 'reply code=300' "$HLOG"
	grep -q 'end reason=bye state=S_COMMAND' "$HLOG"
	run -0 mail_parts "$(the_message)"
	[ "${lines[3]}" = "body: 'first body line\\nsecond body line\\n'" ]
}

@test "interactive: the configured password once for the configured address, then the terminal" {
	mkdir -p "$T/xdg/usmtp"
	printf 'not it\n' >"$T/wrong"
	chmod 600 "$T/wrong"
	printf '%s\n' "ca $KEYS/ca.pem" "user alice@example.org" \
		"password-file $T/wrong" >"$T/xdg/usmtp/client.conf"
	chmod 600 "$T/xdg/usmtp/client.conf"
	tmux_start "XDG_CONFIG_HOME=$T/xdg usmtp-client --exec 'exec $HANDLER 2>>$HLOG'"
	wait_screen '^Command:'
	keys LOGIN Enter
	wait_screen '^E-mail address \[alice@example.org\]:'
	keys Enter
	# the file's password, wrong: 401, then the address again
	wait_screen 'server: 401 '
	wait_screen 'server: 111 '
	keys Enter
	wait_screen 'Password for alice@example.org:'
	keys Enter
	wait_screen 'An empty password is never sent'
	keys 'correct horse' Enter
	wait_screen 'server: 210 '
	keys BYE Enter
	wait_screen '^EXIT=0'
	[ "$(grep -c 'login user=alice@example.org result=fail' "$HLOG")" -eq 1 ]
}
