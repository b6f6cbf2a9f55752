# postfix.bash -- a private, throwaway Postfix instance for tests of the
# sendmail path (usmtp(7), Delivery).  Load after helpers:
#	load helpers
#	load postfix
#
# The instance has its own configuration, queue and data directories
# under $PF (a fresh directory in /tmp), listens on no port
# (master_service_disable = inet), relays nothing, and delivers the one
# domain usmtp.test with the virtual(8) agent into Maildirs under
# $PF/mail, as user nobody.  The system's /etc/postfix is read, never
# written: Postfix's sendmail and its setgid postdrop are pointed at the
# instance with MAIL_CONFIG, which root may do without listing the
# directory in alternate_config_directories.  Needs root and the Debian
# package postfix (postfix, postmap, sendmail, postdrop).

PF_DOMAIN=usmtp.test

# pf_start USER...: configures and starts the instance; USER@usmtp.test
# get Maildirs $PF/mail/USER/ (see pf_maildir).  Sets PF and exports
# MAIL_CONFIG, and PF_SENDMAIL, a path to give as the sendmail program.
pf_start() {
	local u
	[ "$(id -u)" -eq 0 ] || skip "needs root: a private Postfix instance"
	PF=$(mktemp -d /tmp/usmtp-postfix.XXXXXX)
	# virtual(8) runs as nobody: it must be able to reach $PF/mail.
	chmod 755 "$PF"
	mkdir "$PF/etc" "$PF/spool" "$PF/data" "$PF/mail"
	chown postfix "$PF/data"
	chown 65534:65534 "$PF/mail"
	cp /etc/postfix/master.cf "$PF/etc/master.cf"
	cat >"$PF/etc/main.cf" <<-EOF
	compatibility_level = 3.6
	queue_directory = $PF/spool
	data_directory = $PF/data
	mail_owner = postfix
	setgid_group = postdrop
	myhostname = pf.usmtp.test
	mydomain = usmtp.test
	myorigin = \$myhostname
	mydestination =
	inet_interfaces = loopback-only
	inet_protocols = ipv4
	master_service_disable = inet
	alias_maps =
	alias_database =
	local_recipient_maps =
	relayhost =
	default_transport = error:usmtp test instance: no relaying
	relay_transport = error:usmtp test instance: no relaying
	virtual_mailbox_domains = $PF_DOMAIN
	virtual_mailbox_base = $PF/mail
	virtual_mailbox_maps = hash:$PF/etc/vmailbox
	virtual_uid_maps = static:65534
	virtual_gid_maps = static:65534
	virtual_minimum_uid = 1000
	maillog_file = $PF/maillog
	maillog_file_prefixes = $PF
	biff = no
	smtputf8_enable = no
	EOF
	: >"$PF/etc/vmailbox"
	for u in "$@"; do
		# A trailing slash makes virtual(8) deliver in Maildir form.
		printf '%s@%s %s/\n' "$u" "$PF_DOMAIN" "$u" >>"$PF/etc/vmailbox"
	done
	postmap "$PF/etc/vmailbox"
	# Debian runs some services chrooted in the queue directory, which
	# our fresh queue cannot hold (no etc/, no lib/).
	postconf -c "$PF/etc" -F '*/*/chroot = n'
	export MAIL_CONFIG=$PF/etc
	# postfix check creates the queue directories with their owners.
	postfix -c "$PF/etc" check
	postfix -c "$PF/etc" start 2>>"$PF/start.log"
	cat >"$PF/sendmail" <<-EOF
	#!/bin/sh
	# Postfix's own sendmail, aimed at the test instance.
	MAIL_CONFIG=$PF/etc exec /usr/sbin/sendmail "\$@"
	EOF
	chmod 755 "$PF/sendmail"
	PF_SENDMAIL=$PF/sendmail
	pf_wait_master
}

# pf_wait_master: waits (5 s at most) until the instance's master runs.
pf_wait_master() {
	local i=0
	while [ $i -lt 100 ]; do
		postfix -c "$PF/etc" status 2>/dev/null && return 0
		sleep 0.05; i=$((i + 1))
	done
	echo "postfix did not start; see $PF/maillog $PF/start.log" >&2
	return 1
}

# pf_maildir USER: prints the Maildir of USER@usmtp.test.
pf_maildir() {
	printf '%s\n' "$PF/mail/$1"
}

# pf_wait_new USER [SECONDS]: waits (default 20 s) until a file shows up
# in USER's Maildir new/ and prints its path.  Postfix delivers
# asynchronously after sendmail returns: we wait for the file itself.
pf_wait_new() {
	local dir i=0 n=$(( ${2:-20} * 20 )) f
	dir=$(pf_maildir "$1")/new
	while [ $i -lt $n ]; do
		for f in "$dir"/*; do
			if [ -f "$f" ]; then
				printf '%s\n' "$f"
				return 0
			fi
		done
		sleep 0.05; i=$((i + 1))
	done
	echo "nothing delivered to $1; maillog:" >&2
	cat "$PF/maillog" >&2 2>/dev/null
	return 1
}

# pf_stop: stops the instance (safe to call when it never started) and
# waits until its master has exited.  The directory $PF is left for
# post-mortems; it is small.
pf_stop() {
	local pid i=0
	[ -n "${PF:-}" ] && [ -d "$PF/etc" ] || return 0
	pid=$(sed -n '1s/ //gp' "$PF/spool/pid/master.pid" 2>/dev/null)
	postfix -c "$PF/etc" stop 2>/dev/null || true
	if [ -n "$pid" ]; then
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.05; i=$((i + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			postfix -c "$PF/etc" abort 2>/dev/null || true
		fi
	fi
	unset MAIL_CONFIG
}
