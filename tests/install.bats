# install.bats -- make install / uninstall: the exact file list under
# DESTDIR, modes, substituted paths, and an uninstall that leaves nothing.

load helpers

setup() {
	T=$BATS_TEST_TMPDIR
	D=$T/dest
}

# do_install: make install into $D with PREFIX=/usr.
do_install() {
	make -s -C "$TOP" install DESTDIR="$D" PREFIX=/usr >"$T/make.log" 2>&1 ||
	    { cat "$T/make.log"; return 1; }
}

@test "make install puts exactly the expected files under DESTDIR" {
	do_install
	(cd "$D" && find . -type f | sort) >"$T/actual"
	cat >"$T/expect" <<-\EOF
	./usr/bin/usmtp-client
	./usr/lib/systemd/system/usmtp.socket
	./usr/lib/systemd/system/usmtp@.service
	./usr/sbin/usmtp-handler
	./usr/sbin/usmtp-users
	./usr/share/doc/usmtp/examples/haproxy.cfg
	./usr/share/doc/usmtp/examples/inetd.conf
	./usr/share/doc/usmtp/examples/mkcerts
	./usr/share/doc/usmtp/examples/usmtp-sendmail.conf
	./usr/share/doc/usmtp/examples/usmtp.conf.example
	./usr/share/doc/usmtp/examples/usmtp.xinetd
	./usr/share/man/man1/usmtp-client.1
	./usr/share/man/man7/usmtp.7
	./usr/share/man/man8/usmtp-handler.8
	./usr/share/man/man8/usmtp-users.8
	EOF
	diff -u "$T/expect" "$T/actual"
}

@test "make install installs nothing into /etc and nothing but regular files, directories and the sendmail links" {
	do_install
	[ ! -e "$D/etc" ]
	run -0 find "$D" ! -type f ! -type d ! -type l
	[ -z "$output" ]
}

@test "make install links usmtp-sendmail and its page to usmtp-client, relative, in the same directories" {
	do_install
	(cd "$D" && find . -type l -printf '%p -> %l\n' | sort) >"$T/actual"
	cat >"$T/expect" <<-\EOF
	./usr/bin/usmtp-sendmail -> usmtp-client
	./usr/share/man/man1/usmtp-sendmail.1 -> usmtp-client.1
	EOF
	diff -u "$T/expect" "$T/actual"
	# the link works: the program knows it is the sendmail interface
	run -64 "$D/usr/bin/usmtp-sendmail" -bp
	[[ $output == *"usmtp-sendmail: -bp: only -bm"* ]]
}

@test "installed programs are mode 0755 and everything else 0644" {
	do_install
	(cd "$D" && find . -type f -exec stat -c '%a %n' {} + | sort -k2) >"$T/actual"
	cat >"$T/expect" <<-\EOF
	755 ./usr/bin/usmtp-client
	644 ./usr/lib/systemd/system/usmtp.socket
	644 ./usr/lib/systemd/system/usmtp@.service
	755 ./usr/sbin/usmtp-handler
	755 ./usr/sbin/usmtp-users
	644 ./usr/share/doc/usmtp/examples/haproxy.cfg
	644 ./usr/share/doc/usmtp/examples/inetd.conf
	755 ./usr/share/doc/usmtp/examples/mkcerts
	644 ./usr/share/doc/usmtp/examples/usmtp-sendmail.conf
	644 ./usr/share/doc/usmtp/examples/usmtp.conf.example
	644 ./usr/share/doc/usmtp/examples/usmtp.xinetd
	644 ./usr/share/man/man1/usmtp-client.1
	644 ./usr/share/man/man7/usmtp.7
	644 ./usr/share/man/man8/usmtp-handler.8
	644 ./usr/share/man/man8/usmtp-users.8
	EOF
	diff -u "$T/expect" "$T/actual"
}

@test "installed units and service files carry the install paths and no placeholder" {
	do_install
	# text files only: the binaries may hold such bytes by chance
	run -1 grep -rIn '@[A-Z]*@' "$D"
	run -0 grep -x 'ExecStart=-/usr/sbin/usmtp-handler --config /etc/usmtp/usmtp.conf' \
	    "$D/usr/lib/systemd/system/usmtp@.service"
	run -0 grep -x 'ReadWritePaths=/var/mail' "$D/usr/lib/systemd/system/usmtp@.service"
	run -0 grep -E '^[[:space:]]*server[[:space:]]*= /usr/sbin/usmtp-handler$' \
	    "$D/usr/share/doc/usmtp/examples/usmtp.xinetd"
	run -0 grep -c -P '\t/usr/sbin/usmtp-handler\tusmtp-handler --config /etc/usmtp/usmtp.conf$' \
	    "$D/usr/share/doc/usmtp/examples/inetd.conf"
	[ "$output" = 2 ]
}

@test "make install with another PREFIX regenerates the units with that PREFIX" {
	do_install
	make -s -C "$TOP" install DESTDIR="$T/dest2" PREFIX=/opt/usmtp >"$T/make.log" 2>&1
	run -0 grep -x 'ExecStart=-/opt/usmtp/sbin/usmtp-handler --config /etc/usmtp/usmtp.conf' \
	    "$T/dest2/opt/usmtp/lib/systemd/system/usmtp@.service"
}

@test "make uninstall removes every file make install put" {
	do_install
	run -0 make -s -C "$TOP" uninstall DESTDIR="$D" PREFIX=/usr
	run -0 find "$D" ! -type d
	[ -z "$output" ]
	[ ! -e "$D/usr/share/doc/usmtp" ]
}

@test "make uninstall leaves files it did not install alone" {
	do_install
	mkdir -p "$D/usr/share/man/man8"
	echo keep >"$D/usr/share/man/man8/other.8"
	run -0 make -s -C "$TOP" uninstall DESTDIR="$D" PREFIX=/usr
	[ "$(cat "$D/usr/share/man/man8/other.8")" = keep ]
}
