/*
 * check.c -- usmtp-handler --check: everything a session needs of the
 * configuration, looked at as the user the process runs as, without
 * serving one (usmtp-handler(8), Checking the configuration): the key
 * pairs, the certificates' dates, the users database, where mail goes
 * and the throttle file.  Also the diagnosis of a key, certificate or
 * database a session failed to read, for the handler's log line.
 *
 * Reports through the caller's function and prints nothing; the handler
 * formats the lines and picks the exit status.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "usmtp.h"

#define TEXT_BYTES	(2 * PATH_MAX + 256)	/* one reported line */
#define NAME_BYTES	64	/* a user or group name, or a number */
#define DAY_SEC		86400
#define SEEN_MAX	64	/* directories reported once each */

/* One run: the caller's report function, counts, the names to suggest. */
struct run {
	void		(*report)(void *, enum check_level, const char *,
			    const char *);
	void		*arg;
	int		 problems;
	char		 user[NAME_BYTES], group[NAME_BYTES];
	char		*seen[SEEN_MAX];	/* directories reported */
	size_t		 nseen;
};

/* What the Maildir check gathers over the users. */
struct mdwalk {
	struct run		*r;
	const struct check_conf	*c;
	unsigned long		 users, bad;
};

static void	 say(struct run *, enum check_level, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static void	 names(struct run *);
static void	 idname(char *, size_t, const char *, unsigned long);
static int	 dir_of(const char *, char *, size_t);
static const char *closed_dir(const char *, char *, size_t);
static const char *file_why(const char *, const char *, enum check_file,
		    const char *, const char *, char *, size_t);
static const char *state_why(const char *, const char *, const char *,
		    char *, size_t);
static int	 seen(struct run *, const char *);
static int	 writable_dir(struct run *, const char *, const char *,
		    int);
static X509	*load_cert(struct run *, const char *, const char *,
		    enum keykind, time_t);
static void	 check_pair(struct run *, const char *, const char *,
		    const char *, const char *, enum keykind, time_t);
static struct userdb *check_users(struct run *, const char *);
static int	 count_user(void *, const char *, const char *);
static int	 template_ok(const char *, const char **);
static int	 maildir_user(void *, const char *, const char *);
static void	 check_delivery(struct run *, const struct check_conf *,
		    struct userdb *);
static int	 check_state(struct run *, const char *, const char *,
		    const char *);
static int	 no_entry(void *, const struct throttle_entry *);

/* Formats one line and hands it to the caller; counts problems. */
static void
say(struct run *r, enum check_level level, const char *path,
    const char *fmt, ...)
{
	char	text[TEXT_BYTES];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (level == CHECK_PROBLEM)
		r->problems++;
	r->report(r->arg, level, path, text);
}

/* The effective user's and group's names, or their numbers. */
static void
names(struct run *r)
{
	struct passwd	*pw = getpwuid(geteuid());
	struct group	*gr = getgrgid(getegid());

	idname(r->user, sizeof(r->user), pw ? pw->pw_name : NULL, geteuid());
	idname(r->group, sizeof(r->group), gr ? gr->gr_name : NULL,
	    getegid());
}

/* name into buf when it fits, else the number. */
static void
idname(char *buf, size_t sz, const char *name, unsigned long id)
{
	if (name != NULL && strlen(name) < sz)
		snprintf(buf, sz, "%s", name);
	else
		snprintf(buf, sz, "%lu", id);
}

/* The directory path lies in ("." for a bare name).  0, or -1. */
static int
dir_of(const char *path, char *dir, size_t dirsz)
{
	const char	*slash = strrchr(path, '/');
	int		 n;

	if (slash == NULL)
		n = snprintf(dir, dirsz, ".");
	else if (slash == path)
		n = snprintf(dir, dirsz, "/");
	else
		n = snprintf(dir, dirsz, "%.*s", (int)(slash - path), path);
	return n < 0 || (size_t)n >= dirsz ? -1 : 0;
}

/*
 * The first directory on the way to path that this user may not enter
 * (search permission), copied into buf; NULL when there is none.
 */
static const char *
closed_dir(const char *path, char *buf, size_t bufsz)
{
	char	*p;
	int	 n;

	n = snprintf(buf, bufsz, "%s", path);
	if (n < 0 || (size_t)n >= bufsz)
		return NULL;
	for (p = buf + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (faccessat(AT_FDCWD, buf, X_OK, AT_EACCESS) == -1 &&
		    errno == EACCES)
			return buf;
		*p = '/';
	}
	return NULL;
}

const char *
check_file(const char *path, const char *option, enum check_file kind,
    char *buf, size_t bufsz)
{
	struct run	r;

	memset(&r, 0, sizeof(r));
	names(&r);
	return file_why(path, option, kind, r.user, r.group, buf, bufsz);
}

/*
 * Why this user cannot use path, a file of kind given with --option, as
 * far as stat(2) and access checks tell; the fix after a semicolon.
 * NULL when nothing is wrong that way.
 */
static const char *
file_why(const char *path, const char *option, enum check_file kind,
    const char *user, const char *group, char *buf, size_t bufsz)
{
	char		 dir[PATH_MAX];
	struct stat	 st;
	const char	*what;
	int		 e;

	what = kind == CHECK_FILE_USERS ? "users database" :
	    kind == CHECK_FILE_KEY ? "key" : "certificate";
	if (kind == CHECK_FILE_STATE)
		return state_why(path, user, group, buf, bufsz);
	if (stat(path, &st) == -1) {
		e = errno;
		if (e == ENOENT && dir_of(path, dir, sizeof(dir)) == 0 &&
		    access(dir, F_OK) == -1 && errno == ENOENT)
			snprintf(buf, bufsz, "the directory %s does not "
			    "exist; fix --%s, or create %s and put the %s "
			    "there", dir, option, dir, what);
		else if (e == ENOENT && kind == CHECK_FILE_USERS)
			snprintf(buf, bufsz, "no such file; fix --%s, or "
			    "make an empty database: usmtp-users --db %s "
			    "init", option, path);
		else if (e == ENOENT)
			snprintf(buf, bufsz, "no such file; fix --%s, or "
			    "make the %s with mkcerts (README, Setting up a "
			    "server)", option, what);
		else if (e == EACCES &&
		    closed_dir(path, dir, sizeof(dir)) != NULL)
			snprintf(buf, bufsz, "user %s may not enter %s; "
			    "run: chgrp %s %s && chmod g+x %s", user, dir,
			    group, dir, dir);
		else
			snprintf(buf, bufsz, "%s", strerror(e));
		return buf;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(buf, bufsz, "not a regular file; fix --%s", option);
		return buf;
	}
	if (kind == CHECK_FILE_KEY && (st.st_mode & 077) != 0) {
		/* root reads any file: then chmod is the whole fix */
		if (geteuid() != 0 && st.st_uid != geteuid())
			snprintf(buf, bufsz, "group or others may read it; "
			    "run: chown %s %s && chmod 600 %s", user, path,
			    path);
		else
			snprintf(buf, bufsz, "group or others may read it; "
			    "run: chmod 600 %s", path);
		return buf;
	}
	if (faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) == -1) {
		e = errno;
		if (e != EACCES)
			snprintf(buf, bufsz, "%s", strerror(e));
		else if (kind == CHECK_FILE_KEY)
			snprintf(buf, bufsz, "user %s may not read it; run: "
			    "chown %s %s", user, user, path);
		else if (kind == CHECK_FILE_USERS)
			snprintf(buf, bufsz, "user %s may not read it; run: "
			    "chgrp %s %s && chmod 640 %s", user, group, path,
			    path);
		else
			snprintf(buf, bufsz, "user %s may not read it; run: "
			    "chmod 644 %s", user, path);
		return buf;
	}
	return NULL;
}

/*
 * file_why() for a state file the handler makes itself: its directory
 * must exist and be open to this user; the file, if there, readable and
 * writable.
 */
static const char *
state_why(const char *path, const char *user, const char *group, char *buf,
    size_t bufsz)
{
	char	dir[PATH_MAX];

	if (dir_of(path, dir, sizeof(dir)) == -1)
		return NULL;
	if (access(dir, F_OK) == -1 && errno == ENOENT)
		snprintf(buf, bufsz, "the directory %s does not exist; run: "
		    "install -d -m 0700 -o %s -g %s %s", dir, user, group, dir);
	else if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == -1)
		snprintf(buf, bufsz, "user %s may not write in %s; run: "
		    "chown %s:%s %s", user, dir, user, group, dir);
	else if (access(path, F_OK) == 0 &&
	    faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) == -1)
		snprintf(buf, bufsz, "user %s may not read and write it; "
		    "run: chown %s %s && chmod 600 %s", user, user, path,
		    path);
	else
		return NULL;
	return buf;
}

/* 1 when dir was reported before (else it is noted now), so each
 * directory is named once however many users it concerns. */
static int
seen(struct run *r, const char *dir)
{
	size_t	i;

	for (i = 0; i < r->nseen; i++)
		if (strcmp(r->seen[i], dir) == 0)
			return 1;
	if (r->nseen < SEEN_MAX && (r->seen[r->nseen] = strdup(dir)) != NULL)
		r->nseen++;
	return 0;
}

/*
 * Whether this user can write in the directory path or, when it does
 * not exist and create is set, make it (mkdir -p): the deepest existing
 * directory on the way must then be writable.  0, or -1 after one
 * problem named after that directory (once per directory); what says
 * what the directory is for.
 */
static int
writable_dir(struct run *r, const char *path, const char *what, int create)
{
	char		 at[PATH_MAX], next[PATH_MAX], closed[PATH_MAX];
	struct stat	 st;
	int		 n, e;

	n = snprintf(at, sizeof(at), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(at)) {
		say(r, CHECK_PROBLEM, path, "path too long");
		return -1;
	}
	next[0] = '\0';
	while (stat(at, &st) == -1) {
		e = errno;
		if (e == EACCES && closed_dir(at, closed,
		    sizeof(closed)) != NULL) {
			if (!seen(r, closed))
				say(r, CHECK_PROBLEM, closed, "user %s may not "
				    "enter it, so not reach %s (%s); run: "
				    "chgrp %s %s && chmod g+x %s", r->user,
				    path, what, r->group, closed, closed);
			return -1;
		}
		if (e != ENOENT || strcmp(at, "/") == 0 ||
		    strcmp(at, ".") == 0) {
			if (!seen(r, at))
				say(r, CHECK_PROBLEM, at, "%s (%s)",
				    strerror(e), what);
			return -1;
		}
		if (!create) {
			if (!seen(r, at))
				say(r, CHECK_PROBLEM, at, "no such directory "
				    "(%s); run: install -d -m 0700 -o %s -g %s "
				    "%s", what, r->user, r->group, at);
			return -1;
		}
		snprintf(next, sizeof(next), "%s", at);
		if (dir_of(next, at, sizeof(at)) == -1)
			return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (!seen(r, at))
			say(r, CHECK_PROBLEM, at, "not a directory (%s)",
			    what);
		return -1;
	}
	if (faccessat(AT_FDCWD, at, W_OK | X_OK, AT_EACCESS) == -1) {
		if (seen(r, at))
			return -1;
		if (errno == EROFS)
			say(r, CHECK_PROBLEM, at, "on a read-only file system "
			    "(%s)", what);
		else if (next[0] != '\0')
			say(r, CHECK_PROBLEM, at, "user %s may not create "
			    "%s in it (%s); run: install -d -o %s -g %s %s",
			    r->user, next, what, r->user, r->group, next);
		else
			say(r, CHECK_PROBLEM, at, "user %s may not write in "
			    "it (%s); run: chown %s:%s %s", r->user, what,
			    r->user, r->group, at);
		return -1;
	}
	return 0;
}

/*
 * Reads the certificate a session sends (the first PEM block of path,
 * as the handler reads it), checks its key's kind and its dates at now.
 * Returns it, or NULL after reporting a problem.
 */
static X509 *
load_cert(struct run *r, const char *path, const char *option,
    enum keykind kind, time_t now)
{
	char		 buf[TEXT_BYTES], from[32], until[32];
	const char	*why, *want;
	char		*pem;
	size_t		 len;
	BIO		*bio;
	X509		*x = NULL;
	EVP_PKEY	*pub;
	struct tm	 tb, ta;
	time_t		 nb, na;

	want = kind == KEY_RSA2048 ? "RSA-2048" : "X25519";
	if ((why = file_why(path, option, CHECK_FILE_CERT, r->user, r->group,
	    buf, sizeof(buf))) != NULL) {
		say(r, CHECK_PROBLEM, path, "%s", why);
		return NULL;
	}
	if ((pem = crypto_read_cert_pem(path, &len, &why)) == NULL) {
		say(r, CHECK_PROBLEM, path, "%s; fix --%s", why, option);
		return NULL;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL)
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	free(pem);
	ERR_clear_error();
	if (x == NULL) {
		say(r, CHECK_PROBLEM, path, "its first PEM certificate cannot "
		    "be read; fix --%s", option);
		return NULL;
	}
	pub = X509_get0_pubkey(x);
	if (pub == NULL || (kind == KEY_RSA2048 && (!EVP_PKEY_is_a(pub,
	    "RSA") || EVP_PKEY_get_bits(pub) != 2048)) ||
	    (kind == KEY_X25519 && !EVP_PKEY_is_a(pub, "X25519"))) {
		say(r, CHECK_PROBLEM, path, "its key is not %s (usmtp(7), %s); "
		    "make a certificate with mkcerts", want,
		    kind == KEY_RSA2048 ? "Handshake" : "SECURE MODE");
		X509_free(x);
		return NULL;
	}
	if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tb) != 1 ||
	    ASN1_TIME_to_tm(X509_get0_notAfter(x), &ta) != 1) {
		say(r, CHECK_PROBLEM, path, "its dates cannot be read");
		X509_free(x);
		return NULL;
	}
	nb = timegm(&tb);
	na = timegm(&ta);
	strftime(from, sizeof(from), "%Y-%m-%d %H:%M:%S UTC", &tb);
	strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S UTC", &ta);
	if (now < nb)
		say(r, CHECK_PROBLEM, path, "not valid before %s: clients "
		    "refuse it; check the clock, or make a new one with "
		    "mkcerts", from);
	else if (now > na)
		say(r, CHECK_PROBLEM, path, "expired on %s: clients refuse "
		    "it; make a new one with mkcerts (README, Setting up a "
		    "server)", until);
	else if (na - now < CHECK_CERT_WARN_SEC)
		say(r, CHECK_WARN, path, "expires on %s, in %lld days; make a "
		    "new one with mkcerts before then", until,
		    (long long)((na - now + DAY_SEC - 1) / DAY_SEC));
	else
		say(r, CHECK_OK, path, "%s certificate, valid until %s", want,
		    until);
	return x;
}

/*
 * A certificate and its key (--cert/--key or --noise-cert/--noise-key):
 * both load as a session loads them, the key is private enough and
 * matches the certificate.
 */
static void
check_pair(struct run *r, const char *cert, const char *key,
    const char *copt, const char *kopt, enum keykind kind, time_t now)
{
	char		 buf[TEXT_BYTES];
	const char	*why;
	X509		*x;
	EVP_PKEY	*pk = NULL;

	x = load_cert(r, cert, copt, kind, now);
	if ((why = file_why(key, kopt, CHECK_FILE_KEY, r->user, r->group, buf,
	    sizeof(buf))) != NULL)
		say(r, CHECK_PROBLEM, key, "%s", why);
	else if ((pk = crypto_load_key(key, kind, &why)) == NULL)
		say(r, CHECK_PROBLEM, key, "%s; fix --%s", why, kopt);
	else if (x != NULL && EVP_PKEY_eq(X509_get0_pubkey(x), pk) != 1)
		say(r, CHECK_PROBLEM, key, "does not match %s; give --%s the "
		    "key made with that certificate", cert, kopt);
	else
		say(r, CHECK_OK, key, "%s key, closed to group and others%s",
		    kind == KEY_RSA2048 ? "RSA-2048" : "X25519",
		    x != NULL ? ", matches the certificate" : "");
	EVP_PKEY_free(pk);
	X509_free(x);
	ERR_clear_error();
}

static int
count_user(void *arg, const char *addr, const char *maildir)
{
	(void)addr;
	(void)maildir;
	(*(unsigned long *)arg)++;
	return 0;
}

/* The users database opens as a session opens it; its users counted. */
static struct userdb *
check_users(struct run *r, const char *path)
{
	char		 buf[TEXT_BYTES];
	const char	*why;
	struct userdb	*db;
	unsigned long	 n = 0;

	if ((why = file_why(path, "users", CHECK_FILE_USERS, r->user,
	    r->group, buf, sizeof(buf))) != NULL) {
		say(r, CHECK_PROBLEM, path, "%s", why);
		return NULL;
	}
	/* auth.c's reasons start with the path */
	if ((db = auth_open(path, &why)) == NULL) {
		say(r, CHECK_PROBLEM, NULL, "%s", why);
		return NULL;
	}
	if (auth_usable(db, &why) == -1 ||
	    auth_foreach(db, count_user, &n, &why) == -1) {
		say(r, CHECK_PROBLEM, NULL, "%s", why);
		auth_close(db);
		return NULL;
	}
	say(r, CHECK_OK, path, "users database, %lu user%s", n,
	    n == 1 ? "" : "s");
	return db;
}

/* The Maildir template: absolute, and only %u %d %a %% in it. */
static int
template_ok(const char *t, const char **why)
{
	if (*t != '/') {
		*why = "not an absolute path: it would depend on the "
		    "service's working directory";
		return -1;
	}
	for (; *t != '\0'; t++)
		if (*t == '%' && (t[1] == '\0' || strchr("uda%", t[1]) ==
		    NULL)) {
			*why = "only %u, %d, %a and %% may follow a %";
			return -1;
		} else if (*t == '%')
			t++;
	return 0;
}

/* One user's Maildir: its tmp/, new/ and cur/ can be written or made. */
static int
maildir_user(void *arg, const char *addr, const char *maildir)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	struct mdwalk	*w = arg;
	char		 dir[PATH_MAX], what[ADDR_MAX + 32], path[PATH_MAX];
	size_t		 i;
	int		 n;

	w->users++;
	snprintf(what, sizeof(what), "%s's Maildir", addr);
	if (*maildir != '\0')
		n = snprintf(dir, sizeof(dir), "%s", maildir);
	else
		n = mail_maildir_expand(w->c->maildir, addr, dir,
		    sizeof(dir)) != 0 ? -1 : 0;
	if (n < 0 || (size_t)n >= sizeof(dir)) {
		say(w->r, CHECK_PROBLEM, NULL, "%s: path too long", what);
		w->bad++;
		return 0;
	}
	for (i = 0; i < 3; i++) {
		n = snprintf(path, sizeof(path), "%s/%s", dir, sub[i]);
		if (n < 0 || (size_t)n >= sizeof(path) ||
		    writable_dir(w->r, path, what, 1) == -1) {
			w->bad++;
			break;
		}
	}
	return 0;
}

/*
 * Where mail goes: the sendmail program runs, or the Maildir template's
 * fixed part exists and every user's Maildir can be written or made.
 */
static void
check_delivery(struct run *r, const struct check_conf *c, struct userdb *db)
{
	struct mdwalk	 w;
	struct stat	 st;
	char		 base[PATH_MAX];
	const char	*why, *pct;

	if (c->sendmail != NULL) {
		if (stat(c->sendmail, &st) == -1)
			say(r, CHECK_PROBLEM, c->sendmail, "%s; fix --sendmail "
			    "(Postfix's is /usr/sbin/sendmail)",
			    errno == ENOENT ? "no such file" : strerror(errno));
		else if (!S_ISREG(st.st_mode) || faccessat(AT_FDCWD,
		    c->sendmail, X_OK, AT_EACCESS) == -1)
			say(r, CHECK_PROBLEM, c->sendmail, "user %s may not "
			    "run it (not an executable file); fix --sendmail",
			    r->user);
		else
			say(r, CHECK_OK, c->sendmail, "sendmail program, "
			    "recipients %s", c->recipients_any ? "any" :
			    "local");
		return;
	}
	if (c->recipients_any)
		say(r, CHECK_PROBLEM, NULL, "--recipients any needs "
		    "--sendmail: Maildir delivery can only deliver to users in the "
		    "database; set recipients = local, or deliver with "
		    "--sendmail");
	if (template_ok(c->maildir, &why) == -1) {
		say(r, CHECK_PROBLEM, c->maildir, "bad Maildir template: %s; "
		    "fix --maildir", why);
		return;
	}
	/* The fixed part: up to the last '/' before the first '%' (the
	 * template is absolute); a template without one is a single
	 * Maildir, which the handler makes in its directory. */
	snprintf(base, sizeof(base), "%s", c->maildir);
	if ((pct = strchr(c->maildir, '%')) != NULL)
		base[pct - c->maildir] = '\0';
	*strrchr(base, '/') = '\0';
	if (base[0] == '\0')
		snprintf(base, sizeof(base), "/");
	if (stat(base, &st) == -1 || !S_ISDIR(st.st_mode)) {
		say(r, CHECK_PROBLEM, base, "the Maildir base directory of "
		    "--maildir %s does not exist; run: install -d -o %s -g %s "
		    "%s", c->maildir, r->user, r->group, base);
		return;
	}
	if (pct == NULL && writable_dir(r, c->maildir, "the Maildir", 1) ==
	    -1)
		return;
	memset(&w, 0, sizeof(w));
	w.r = r;
	w.c = c;
	if (db == NULL) {
		say(r, CHECK_OK, c->maildir, "Maildir base %s exists; users' "
		    "Maildirs not checked (no users database)", base);
		return;
	}
	if (auth_foreach(db, maildir_user, &w, &why) == -1) {
		say(r, CHECK_PROBLEM, NULL, "%s", why);
		return;
	}
	if (w.bad == 0)
		say(r, CHECK_OK, c->maildir, "Maildir base %s exists; the "
		    "Maildirs of %lu user%s can be written or made", base,
		    w.users, w.users == 1 ? "" : "s");
}

/*
 * A state file the handler keeps (what, --option): its directory exists
 * and this user may write in it (the file is made there, and replaced
 * through a temporary name); the file, if there, may be read and
 * written.
 */
static int
check_state(struct run *r, const char *path, const char *option,
    const char *what)
{
	char	dir[PATH_MAX], role[128];

	snprintf(role, sizeof(role), "%s, --%s", what, option);
	if (dir_of(path, dir, sizeof(dir)) == -1) {
		say(r, CHECK_PROBLEM, path, "path too long");
		return -1;
	}
	if (writable_dir(r, dir, role, 0) == -1)
		return -1;
	if (access(path, F_OK) == 0 &&
	    faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) == -1) {
		say(r, CHECK_PROBLEM, path, "user %s may not read and write "
		    "it; run: chown %s %s && chmod 600 %s", r->user, r->user,
		    path, path);
		return -1;
	}
	return 0;
}

static int
no_entry(void *arg, const struct throttle_entry *e)
{
	(void)arg;
	(void)e;
	return 0;
}

int
check_config(const struct check_conf *c, time_t now,
    void (*report)(void *arg, enum check_level level, const char *path,
    const char *text), void *arg)
{
	struct run	 r;
	struct userdb	*db;
	struct throttle	 t;
	const char	*why;
	size_t		 i;

	memset(&r, 0, sizeof(r));
	r.report = report;
	r.arg = arg;
	names(&r);
	say(&r, CHECK_OK, NULL, "checking as user %s, group %s", r.user,
	    r.group);
	check_pair(&r, c->cert, c->key, "cert", "key", KEY_RSA2048, now);
	if ((c->noise_cert == NULL) != (c->noise_key == NULL))
		say(&r, CHECK_PROBLEM, c->noise_cert ? c->noise_cert :
		    c->noise_key, "--%s without --%s: secure mode needs both "
		    "(or neither)", c->noise_cert ? "noise-cert" : "noise-key",
		    c->noise_cert ? "noise-key" : "noise-cert");
	else if (c->noise_cert != NULL)
		check_pair(&r, c->noise_cert, c->noise_key, "noise-cert",
		    "noise-key", KEY_X25519, now);
	db = check_users(&r, c->users);
	check_delivery(&r, c, db);
	auth_close(db);
	if (c->throttle_db != NULL &&
	    check_state(&r, c->throttle_db, "throttle-db", "throttle file") ==
	    0) {
		/* read-only: a damaged file is named, never replaced here */
		memset(&t, 0, sizeof(t));
		t.path = c->throttle_db;
		if (throttle_list(&t, now, NULL, 0, no_entry, NULL, &why) == -1)
			say(&r, CHECK_PROBLEM, c->throttle_db, "%s; fix "
			    "--throttle-db (the handler replaces only a "
			    "damaged file of its own)", why);
		else
			say(&r, CHECK_OK, c->throttle_db, "throttle file%s; "
			    "user %s may write in its directory",
			    access(c->throttle_db, F_OK) == 0 ? "" :
			    " (not made yet)", r.user);
	}
	if (c->replay_db != NULL &&
	    check_state(&r, c->replay_db, "replay-db", "replay cache") == 0)
		say(&r, CHECK_OK, c->replay_db, "replay cache; user %s may "
		    "write in its directory", r.user);
	if (c->slot_file != NULL &&
	    check_state(&r, c->slot_file, "slot-file", "slot file") == 0)
		say(&r, CHECK_OK, c->slot_file, "slot file; user %s may write "
		    "in its directory", r.user);
	for (i = 0; i < r.nseen; i++)
		free(r.seen[i]);
	return r.problems;
}
