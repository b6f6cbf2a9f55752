/*
 * auth-test.c -- unit tests of auth.c, TAP on stdout: address syntax
 * (usmtp(7), Login; Maildir path tricks), password records, the database
 * life cycle, equal work for unknown users (the parameter record at the
 * newest user's cost), auth_init, and readers opening the database while
 * usmtp-users rewrites it.  Run from the top of the tree
 * (it runs ./usmtp-users, or $USMTP_USERS, when that exists).
 */

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usmtp.h"
#include "tap.h"

#define READS		100	/* opens while the writer runs */
#define WRITES_MAX	2000	/* the writer stops after this many */
#define TIMING_ROUNDS	5

static volatile sig_atomic_t stop;
static char dir[] = "/tmp/auth-test.XXXXXX";

static void	good_addr(const char *, const char *);
static void	bad_addr(const char *, size_t, const char *);
static void	test_addr(void);
static void	test_hash(void);
static void	test_db(void);
static void	test_timing(void);
static void	test_params(void);
static void	test_params_timing(void);
static void	test_init(void);
static int	params_cost(const char *);
static void	put_raw(const char *, const char *, const char *);
static void	test_concurrent(void);
static void	test_locked(void);
static double	now_ms(void);
static double	check_ms(struct userdb *, const char *, const char *);
static void	fastest_checks(struct userdb *, const char *const [3][2],
		    double [3]);
static int	count_user(void *, const char *, const char *);
static void	writer(const char *, const char *);
static void	onterm(int);

static void
good_addr(const char *in, const char *want)
{
	char out[ADDR_MAX + 1];
	int r;

	r = addr_normalize(in, strlen(in), out, sizeof(out));
	ok(r == 0 && strcmp(out, want) == 0, "valid address %.40s%s", in,
	    strlen(in) > 40 ? "..." : "");
}

static void
bad_addr(const char *in, size_t len, const char *what)
{
	char out[ADDR_MAX + 1];

	ok(addr_normalize(in, len, out, sizeof(out)) == -1,
	    "invalid address: %s", what);
}

static void
test_addr(void)
{
	char buf[512], label[64], out[ADDR_MAX + 1];
	int n;

	good_addr("alice@example.com", "alice@example.com");
	good_addr("Alice.Smith@Example.COM", "alice.smith@example.com");
	good_addr("a+tag@x-y.example", "a+tag@x-y.example");
	good_addr("!#$%&'*+-=?^_`{|}~@d.example",
	    "!#$%&'*+-=?^_`{|}~@d.example");
	good_addr("u@localhost", "u@localhost");
	good_addr("u@0.9", "u@0.9");

	memset(label, 'a', 63);
	label[63] = '\0';
	n = snprintf(buf, sizeof(buf), "u@%s.com", label);
	ok(n > 0, "snprintf");
	good_addr(buf, buf);
	/* 254 bytes: "u@" + 3 x (63 + ".") + 60 */
	n = snprintf(buf, sizeof(buf), "u@%s.%s.%s.%.60s", label, label,
	    label, label);
	ok(n == ADDR_MAX, "254-byte address built (%d)", n);
	good_addr(buf, buf);
	n = snprintf(buf, sizeof(buf), "u@%s.%s.%s.%.61s", label, label,
	    label, label);
	bad_addr(buf, strlen(buf), "255 bytes");
	n = snprintf(buf, sizeof(buf), "u@%sa.com", label);
	bad_addr(buf, strlen(buf), "64-byte label");

	bad_addr("", 0, "empty");
	bad_addr("@", 1, "only @");
	bad_addr("alice", 5, "no @");
	bad_addr("alice@", 6, "no domain");
	bad_addr("@example.com", 12, "no local part");
	bad_addr("a@@b", 4, "two @ in a row");
	bad_addr("a@b@c", 5, "two @");
	bad_addr("a b@c", 5, "space in local part");
	bad_addr("a@b c", 5, "space in domain");
	bad_addr(" a@b", 4, "leading space");
	bad_addr("a@b ", 4, "trailing space");
	bad_addr("a\t@b", 4, "tab");
	bad_addr("a\r\n@b", 5, "CRLF");
	bad_addr("a\x7f@b", 4, "DEL");
	bad_addr("\xc3\xa4@b", 4, "non-ASCII");
	bad_addr("a\"b@c", 5, "quote");
	bad_addr("a(b)@c", 6, "comment parens");
	bad_addr("a,b@c", 5, "comma");
	bad_addr("a/b@c", 5, "slash in local part");
	bad_addr("../etc@c", 8, "../ in local part");
	bad_addr("..@c", 4, "local part ..");
	bad_addr(".@c", 3, "local part .");
	bad_addr(".a@c", 4, "local part starts with a dot");
	bad_addr("a.@c", 4, "local part ends with a dot");
	bad_addr("a..b@c", 6, "double dot in local part");
	bad_addr("a@b/c", 5, "slash in domain");
	bad_addr("a@..", 4, "domain ..");
	bad_addr("a@.b", 4, "domain starts with a dot");
	bad_addr("a@b.", 4, "domain ends with a dot");
	bad_addr("a@b..c", 6, "empty label");
	bad_addr("a@-b.c", 6, "label starts with -");
	bad_addr("a@b-.c", 6, "label ends with -");
	bad_addr("a@b.c-", 6, "last label ends with -");
	bad_addr("a@b_c", 5, "underscore in domain");
	bad_addr("a@[127.0.0.1]", 13, "address literal");
	bad_addr("a\0b@c", 5, "NUL in local part");
	bad_addr("a@bc\0", 5, "NUL at the end");
	bad_addr("a@b\0.evil", 9, "NUL in domain");
	ok(addr_normalize("a@b", 3, out, 3) == -1, "output buffer too small");
	ok(addr_normalize("a@bxx", 3, out, sizeof(out)) == 0 &&
	    strcmp(out, "a@b") == 0, "only inlen bytes are read");
}

/* Records auth_verify must refuse (-1): the empty one, and well-formed
 * ones changed in one place. */
#define DUMMY_SALT	"dXNtdHAgZHVtbXkgc2FsdA=="
#define DUMMY_HASH	"dXNtdHAgZHVtbXkgaGFzaDogbmV2ZXIgYSBtYXRjaCE="
static const struct {
	const char *rec, *what;
} bad_rec[] = {
	{ "", "empty record malformed" },
	{ "$scrypt$ln=0,r=8,p=1$" DUMMY_SALT "$" DUMMY_HASH, "ln=0 malformed" },
	{ "$scrypt$ln=40,r=8,p=1$" DUMMY_SALT "$" DUMMY_HASH, "ln=40 refused" },
	{ "$scrypt$ln=1,r=8,p=1$dXNtdHAgZHVtbXkgc2FsdA=$" DUMMY_HASH,
	    "bad base64 salt" },
	{ "$scrypt$ln=1,r=8,p=1$" DUMMY_SALT
	    "$dXNtdHAgZHVtbXkgaGFzaDogbm!2ZXIgYSBtYXRjaCE=", "bad base64 hash" },
	{ "$pbkdf2$ln=1,r=8,p=1$" DUMMY_SALT "$" DUMMY_HASH,
	    "unknown algorithm" },
};

static void
test_hash(void)
{
	char rec[AUTH_HASH_MAX + 1], rec2[AUTH_HASH_MAX + 1];
	const char *why;
	size_t i;

	ok(auth_hash("secret", 6, 1, rec, sizeof(rec), &why) == 0,
	    "auth_hash cost 1");
	ok(strncmp(rec, "$scrypt$ln=1,r=8,p=1$", 21) == 0,
	    "record is self-describing: %s", rec);
	ok(strlen(rec) == 21 + 24 + 1 + 44, "16-byte salt, 32-byte hash");
	ok(strstr(rec, "secret") == NULL, "record does not hold the password");
	ok(auth_verify(rec, "secret", 6, &why) == 1, "right password");
	ok(auth_verify(rec, "secreT", 6, &why) == 0, "wrong password");
	ok(auth_verify(rec, "secret", 5, &why) == 0, "prefix of password");
	ok(auth_hash("secret", 6, 1, rec2, sizeof(rec2), &why) == 0 &&
	    strcmp(rec, rec2) != 0, "salt differs between records");
	ok(auth_hash("secret", 6, 0, rec, sizeof(rec), &why) == -1,
	    "cost 0 refused");
	ok(auth_hash("secret", 6, AUTH_COST_MAX + 1, rec, sizeof(rec),
	    &why) == -1, "cost above maximum refused");
	ok(auth_hash("secret", 6, 1, rec, 40, &why) == -1,
	    "small buffer refused");
	ok(auth_verify("secret", "secret", 6, &why) == -1,
	    "bare password is not a record");
	for (i = 0; i < sizeof(bad_rec) / sizeof(bad_rec[0]); i++)
		ok(auth_verify(bad_rec[i].rec, "x", 1, &why) == -1, "%s",
		    bad_rec[i].what);
}

static int
count_user(void *arg, const char *addr, const char *maildir)
{
	(void)addr;
	(void)maildir;
	(*(int *)arg)++;
	return 0;
}

static void
test_db(void)
{
	/* auth_check of alice ("alice pw") and bob ("bob pw"): 1 or 0 */
	static const struct {
		const char *addr, *pw;
		size_t len;
		int want;
		const char *what;
	} checks[] = {
		{ "alice@example.com", "alice pw", 8, 1,
		    "check alice, right password" },
		{ "alice@example.com", "bob pw", 6, 0,
		    "check alice, wrong password" },
		{ "alice@example.com", "alice pw\0", 9, 0,
		    "check alice, right password plus a NUL" },
		{ "alice@example.com", "alice p", 7, 0,
		    "check alice, password prefix" },
		{ "bob@example.com", "bob pw", 6, 1, "check bob, right password" },
		{ "nobody@example.com", "bob pw", 6, 0, "check unknown address" },
	};
	char db[256], rec[AUTH_HASH_MAX + 1], md[AUTH_MAILDIR_MAX + 1];
	struct userdb *udb;
	struct stat st;
	const char *why = NULL;
	size_t i;
	int fd, count;

	snprintf(db, sizeof(db), "%s/users.db", dir);
	udb = auth_open(db, &why);
	ok(udb == NULL && why != NULL && strstr(why, "no such file") != NULL,
	    "missing database: %s", why ? why : "(no reason)");
	ok(stat(db, &st) == -1 && errno == ENOENT,
	    "opening a missing database does not create it");
	auth_hash("a pw", 4, 1, rec, sizeof(rec), &why);
	ok(auth_update(db, AUTH_PASSWD, "a@b", rec, NULL, &why) == 1,
	    "passwd on a missing database: unknown");
	ok(auth_update(db, AUTH_DEL, "a@b", NULL, NULL, &why) == 1,
	    "del on a missing database: unknown");

	auth_hash("alice pw", 8, 1, rec, sizeof(rec), &why);
	ok(auth_update(db, AUTH_ADD, "alice@example.com", rec,
	    "/srv/mail/alice/Maildir", &why) == 0, "add alice");
	ok(stat(db, &st) == 0 && (st.st_mode & 07777) == 0640,
	    "database mode 0640 (%o)", (unsigned)(st.st_mode & 07777));
	ok(auth_update(db, AUTH_ADD, "alice@example.com", rec, NULL,
	    &why) == 1, "adding alice again: exists");
	auth_hash("bob pw", 6, 1, rec, sizeof(rec), &why);
	ok(auth_update(db, AUTH_ADD, "bob@example.com", rec, NULL,
	    &why) == 0, "add bob without a Maildir");
	ok(auth_update(db, AUTH_ADD, "carol@example.com", rec, "rel/path",
	    &why) == -1, "relative Maildir refused");
	ok(auth_update(db, AUTH_ADD, "carol@example.com", rec, "/a\nb",
	    &why) == -1, "Maildir with a newline refused");

	udb = auth_open(db, &why);
	ok(udb != NULL, "auth_open");
	if (udb == NULL)
		return;
	ok(auth_lookup(udb, "alice@example.com", md, sizeof(md), &why) == 1 &&
	    strcmp(md, "/srv/mail/alice/Maildir") == 0, "lookup alice: %s",
	    md);
	ok(auth_lookup(udb, "bob@example.com", md, sizeof(md), &why) == 1 &&
	    md[0] == '\0', "lookup bob: no Maildir");
	ok(auth_lookup(udb, "alice@example.com", md, 5, &why) == -1,
	    "lookup with a small Maildir buffer");
	ok(auth_lookup(udb, "nobody@example.com", md, sizeof(md), &why) == 0,
	    "lookup unknown");
	for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		ok(auth_check(udb, checks[i].addr, checks[i].pw, checks[i].len,
		    &why) == checks[i].want, "%s", checks[i].what);
	count = 0;
	ok(auth_foreach(udb, count_user, &count, &why) == 0 && count == 2,
	    "foreach sees 2 users (%d)", count);
	auth_close(udb);

	auth_hash("alice new", 9, 1, rec, sizeof(rec), &why);
	ok(auth_update(db, AUTH_PASSWD, "alice@example.com", rec, NULL,
	    &why) == 0, "passwd alice");
	ok(auth_update(db, AUTH_PASSWD, "nobody@example.com", rec, NULL,
	    &why) == 1, "passwd unknown");
	ok(auth_update(db, AUTH_DEL, "bob@example.com", NULL, NULL,
	    &why) == 0, "del bob");
	ok(auth_update(db, AUTH_DEL, "bob@example.com", NULL, NULL,
	    &why) == 1, "del bob again: unknown");
	udb = auth_open(db, &why);
	ok(udb != NULL, "auth_open after changes");
	if (udb == NULL)
		return;
	ok(auth_check(udb, "alice@example.com", "alice new", 9, &why) == 1,
	    "new password works");
	ok(auth_check(udb, "alice@example.com", "alice pw", 8, &why) == 0,
	    "old password fails");
	ok(auth_lookup(udb, "alice@example.com", md, sizeof(md), &why) == 1 &&
	    strcmp(md, "/srv/mail/alice/Maildir") == 0,
	    "passwd keeps the Maildir");
	ok(auth_lookup(udb, "bob@example.com", md, sizeof(md), &why) == 0,
	    "bob is gone");
	auth_close(udb);

	snprintf(db, sizeof(db), "%s/garbage.db", dir);
	fd = open(db, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	if (fd != -1) {
		ok(write(fd, "this is not a gdbm file at all\n", 31) == 31,
		    "write garbage");
		close(fd);
	}
	why = NULL;
	ok(auth_open(db, &why) == NULL && why != NULL,
	    "corrupt database refused: %s", why ? why : "(no reason)");
	snprintf(db, sizeof(db), "%s/empty.db", dir);
	fd = open(db, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	if (fd != -1)
		close(fd);
	why = NULL;
	ok(auth_open(db, &why) == NULL && why != NULL,
	    "empty file refused: %s", why ? why : "(no reason)");
	if (geteuid() != 0) {
		snprintf(db, sizeof(db), "%s/users.db", dir);
		chmod(db, 0);
		why = NULL;
		ok(auth_open(db, &why) == NULL && why != NULL,
		    "unreadable database refused: %s", why ? why : "");
		chmod(db, 0640);
	} else
		printf("# running as root: unreadable-file case skipped\n");
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One check, in milliseconds. */
static double
check_ms(struct userdb *udb, const char *addr, const char *pw)
{
	const char *why;
	double t;

	t = now_ms();
	auth_check(udb, addr, pw, strlen(pw), &why);
	return now_ms() - t;
}

/*
 * The fastest of TIMING_ROUNDS checks of each of three (address,
 * password) pairs, in milliseconds; each round checks all three, so
 * load on the machine hits all alike.
 */
static void
fastest_checks(struct userdb *udb, const char *const check[3][2],
    double ms[3])
{
	double t;
	int i, j;

	for (j = 0; j < 3; j++)
		ms[j] = 1e12;
	for (i = 0; i < TIMING_ROUNDS; i++)
		for (j = 0; j < 3; j++) {
			t = check_ms(udb, check[j][0], check[j][1]);
			if (t < ms[j])
				ms[j] = t;
		}
}

static void
test_timing(void)
{
	char db[256], rec[AUTH_HASH_MAX + 1];
	static const char *const check[3][2] = {
		{ "dave@example.com", "pw" },		/* right */
		{ "dave@example.com", "wrong" },	/* wrong */
		{ "nobody@example.com", "wrong" },	/* unknown */
	};
	struct userdb *udb;
	const char *why;
	double ms[3], right, wrong, unknown, t;

	snprintf(db, sizeof(db), "%s/timing.db", dir);
	t = now_ms();
	ok(auth_hash("pw", 2, AUTH_COST_DEFAULT, rec, sizeof(rec), &why) == 0,
	    "hash at the default cost (%d)", AUTH_COST_DEFAULT);
	printf("# one scrypt at ln=%d: %.1f ms\n", AUTH_COST_DEFAULT,
	    now_ms() - t);
	ok(auth_update(db, AUTH_ADD, "dave@example.com", rec, NULL, &why) == 0,
	    "add a user at the default cost");
	if ((udb = auth_open(db, &why)) == NULL) {
		ok(0, "auth_open: %s", why);
		return;
	}
	fastest_checks(udb, check, ms);
	right = ms[0], wrong = ms[1], unknown = ms[2];
	printf("# check: right %.1f ms, wrong %.1f ms, unknown %.1f ms\n",
	    right, wrong, unknown);
	ok(unknown < 3 * wrong && wrong < 3 * unknown,
	    "unknown address costs about as much as a wrong password");
	ok(right < 3 * wrong && wrong < 3 * right,
	    "right password costs about as much as a wrong one");
	auth_close(udb);
}

/*
 * The cost (ln=) of the parameter record "@params" of the database at
 * path, read with gdbm itself; -1 when there is none, -2 when it is not
 * a password record.
 */
static int
params_cost(const char *path)
{
	GDBM_FILE dbf;
	datum key, val;
	char buf[AUTH_HASH_MAX + 1];
	int cost = -1;

	if ((dbf = gdbm_open(path, 0, GDBM_READER, 0, NULL)) == NULL)
		return -1;
	key.dptr = (char *)"@params";
	key.dsize = 7;
	val = gdbm_fetch(dbf, key);
	if (val.dptr != NULL) {
		snprintf(buf, sizeof(buf), "%.*s", val.dsize, val.dptr);
		if (sscanf(buf, "$scrypt$ln=%d,r=8,p=1$", &cost) != 1)
			cost = -2;
		free(val.dptr);
	}
	gdbm_close(dbf);
	return cost;
}

/* Stores key = value in the database at path with gdbm itself. */
static void
put_raw(const char *path, const char *k, const char *v)
{
	GDBM_FILE dbf;
	datum key, val;

	if ((dbf = gdbm_open(path, 0, GDBM_WRCREAT, 0640, NULL)) == NULL)
		abort();
	key.dptr = (char *)(uintptr_t)k;
	key.dsize = (int)strlen(k);
	val.dptr = (char *)(uintptr_t)v;
	val.dsize = (int)strlen(v);
	if (gdbm_store(dbf, key, val, GDBM_REPLACE) != 0)
		abort();
	gdbm_close(dbf);
}

/*
 * The parameter record: written by every add and passwd with the cost
 * of the record written, kept by del, never shown as a user.
 */
static void
test_params(void)
{
	char db[256], rec[AUTH_HASH_MAX + 1], md[AUTH_MAILDIR_MAX + 1];
	struct userdb *udb;
	const char *why = NULL;
	int count;

	snprintf(db, sizeof(db), "%s/params.db", dir);
	auth_hash("pw", 2, 1, rec, sizeof(rec), &why);
	ok(auth_update(db, AUTH_ADD, "a@example.com", rec, NULL, &why) == 0,
	    "add a user at cost 1");
	ok(params_cost(db) == 1, "add writes the parameter record at the "
	    "user's cost, 1 (%d)", params_cost(db));
	auth_hash("pw", 2, 5, rec, sizeof(rec), &why);
	auth_update(db, AUTH_ADD, "b@example.com", rec, NULL, &why);
	ok(params_cost(db) == 5, "the newest record's cost wins: 5 (%d)",
	    params_cost(db));
	auth_hash("pw", 2, 3, rec, sizeof(rec), &why);
	auth_update(db, AUTH_PASSWD, "a@example.com", rec, NULL, &why);
	ok(params_cost(db) == 3, "passwd sets it too: 3 (%d)",
	    params_cost(db));
	auth_update(db, AUTH_DEL, "b@example.com", NULL, NULL, &why);
	ok(params_cost(db) == 3, "del keeps it (%d)", params_cost(db));
	ok(auth_update(db, AUTH_ADD, "@params", rec, NULL, &why) == -1,
	    "the parameter record's key is refused as an address");
	ok(auth_update(db, AUTH_ADD, "c@example.com", "$scrypt$ln=1,r=8",
	    NULL, &why) == -1, "a malformed password record is refused");

	if ((udb = auth_open(db, &why)) == NULL) {
		ok(0, "auth_open: %s", why);
		return;
	}
	count = 0;
	ok(auth_foreach(udb, count_user, &count, &why) == 0 && count == 1,
	    "foreach does not count it as a user (%d)", count);
	ok(auth_lookup(udb, "@params", md, sizeof(md), &why) == 0,
	    "a lookup does not find it");
	ok(auth_check(udb, "@params", "pw", 2, &why) == 0,
	    "a check does not accept it");
	ok(auth_check(udb, "a@example.com", "pw", 2, &why) == 1 &&
	    auth_check(udb, "nobody@example.com", "pw", 2, &why) == 0,
	    "users still check, unknown addresses still fail");
	auth_close(udb);

	/* made before the parameter record existed */
	snprintf(db, sizeof(db), "%s/old.db", dir);
	auth_hash("pw", 2, 1, rec, sizeof(rec), &why);
	put_raw(db, "old@example.com", rec);
	udb = auth_open(db, &why);
	ok(udb != NULL && auth_check(udb, "old@example.com", "pw", 2,
	    &why) == 1 && auth_check(udb, "new@example.com", "pw", 2,
	    &why) == 0, "a database without one still works");
	auth_close(udb);

	/* damaged: every check fails alike, lookups work, passwd mends */
	put_raw(db, "@params", "$scrypt$ln=99,r=8,p=1$x$y");
	udb = auth_open(db, &why);
	ok(udb != NULL, "a malformed parameter record does not fail the "
	    "open");
	if (udb == NULL)
		return;
	why = NULL;
	ok(auth_check(udb, "old@example.com", "pw", 2, &why) == -1 &&
	    auth_check(udb, "new@example.com", "pw", 2, &why) == -1 &&
	    why != NULL && strstr(why, "parameter record") != NULL,
	    "but fails every check, known or not (%s)", why ? why : "");
	ok(auth_lookup(udb, "old@example.com", md, sizeof(md), &why) == 1,
	    "lookups still work");
	auth_close(udb);
	ok(auth_update(db, AUTH_PASSWD, "old@example.com", rec, NULL,
	    &why) == 0 && params_cost(db) == 1, "passwd rewrites it");
	udb = auth_open(db, &why);
	ok(udb != NULL && auth_check(udb, "old@example.com", "pw", 2,
	    &why) == 1, "and checks work again");
	auth_close(udb);
}

/*
 * An unknown address costs what a check of the newest user costs, also
 * when that is not the default cost (it was always the default).
 */
static void
test_params_timing(void)
{
	char db[256], rec[AUTH_HASH_MAX + 1];
	static const char *const check[3][2] = {
		{ "new@example.com", "no" },		/* known, cost 11 */
		{ "nobody@example.com", "no" },		/* unknown */
		{ "old@example.com", "no" },		/* cheap, cost 1 */
	};
	struct userdb *udb;
	const char *why;
	double ms[3], known, unknown, cheap;

	snprintf(db, sizeof(db), "%s/cost.db", dir);
	auth_hash("pw", 2, 1, rec, sizeof(rec), &why);
	auth_update(db, AUTH_ADD, "old@example.com", rec, NULL, &why);
	auth_hash("pw", 2, 11, rec, sizeof(rec), &why);
	ok(auth_update(db, AUTH_ADD, "new@example.com", rec, NULL,
	    &why) == 0 && params_cost(db) == 11, "users at cost 1 and 11, "
	    "the parameter record at 11 (%d)", params_cost(db));
	if ((udb = auth_open(db, &why)) == NULL) {
		ok(0, "auth_open: %s", why);
		return;
	}
	fastest_checks(udb, check, ms);
	known = ms[0], unknown = ms[1], cheap = ms[2];
	printf("# check: cost 11 user %.2f ms, unknown %.2f ms, cost 1 user "
	    "%.2f ms\n", known, unknown, cheap);
	/* the default cost (14) is 8 times the work of cost 11: a margin
	 * of 3 for a loaded machine still tells them apart */
	ok(unknown < 3 * known && known < 3 * unknown,
	    "an unknown address costs what the newest user costs");
	ok(cheap * 8 < known, "an older user at cost 1 is checked at its own "
	    "cost");
	auth_close(udb);
}

static void
test_init(void)
{
	char db[256], rec[AUTH_HASH_MAX + 1];
	struct userdb *udb;
	struct stat st;
	const char *why = NULL;
	int count = 0, fd;

	snprintf(db, sizeof(db), "%s/init.db", dir);
	ok(auth_init(db, 9, &why) == 0, "init makes a database");
	ok(stat(db, &st) == 0 && (st.st_mode & 07777) == 0640,
	    "mode 0640 (%o)", (unsigned)(st.st_mode & 07777));
	ok(params_cost(db) == 9, "with the parameter record at the cost "
	    "given (%d)", params_cost(db));
	udb = auth_open(db, &why);
	ok(udb != NULL && auth_foreach(udb, count_user, &count, &why) == 0 &&
	    count == 0, "and no user (%d)", count);
	ok(udb != NULL && auth_check(udb, "a@b", "pw", 2, &why) == 0,
	    "an unknown address checks");
	auth_close(udb);
	auth_hash("pw", 2, 1, rec, sizeof(rec), &why);
	auth_update(db, AUTH_ADD, "a@b", rec, NULL, &why);
	ok(auth_init(db, 9, &why) == 1 && params_cost(db) == 1,
	    "init of an existing database changes nothing");
	ok(auth_init(db, 0, &why) == -1 && auth_init(db, AUTH_COST_MAX + 1,
	    &why) == -1, "a cost out of range is refused");
	snprintf(db, sizeof(db), "%s/init-garbage.db", dir);
	if ((fd = open(db, O_WRONLY | O_CREAT | O_TRUNC, 0640)) == -1 ||
	    write(fd, "not gdbm\n", 9) != 9)
		abort();
	close(fd);
	why = NULL;
	ok(auth_init(db, 9, &why) == -1 && why != NULL,
	    "init of a file that is no database fails (%s)", why ? why : "");
}

static void
onterm(int sig)
{
	(void)sig;
	stop = 1;
}

/* Adds users until SIGTERM or WRITES_MAX, with usmtp-users when tool is
 * set, else with auth_update. */
static void
writer(const char *db, const char *tool)
{
	char addr[64], rec[AUTH_HASH_MAX + 1];
	const char *why;
	pid_t pid;
	int i, p[2], status;

	for (i = 0; i < WRITES_MAX && !stop; i++) {
		snprintf(addr, sizeof(addr), "w%d@example.com", i);
		if (tool == NULL) {
			if (auth_hash("w", 1, 1, rec, sizeof(rec),
			    &why) == -1 || auth_update(db, AUTH_ADD, addr,
			    rec, NULL, &why) != 0)
				_exit(1);
			continue;
		}
		if (pipe(p) == -1 || write(p[1], "w\n", 2) != 2)
			_exit(1);
		close(p[1]);
		if ((pid = fork()) == -1)
			_exit(1);
		if (pid == 0) {
			dup2(p[0], 0);
			close(p[0]);
			execl(tool, tool, "--db", db, "add", addr,
			    "--password-stdin", "--cost", "1", (char *)NULL);
			_exit(127);
		}
		close(p[0]);
		while (waitpid(pid, &status, 0) == -1)
			if (errno != EINTR)
				_exit(1);
		if (!WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			_exit(1);
	}
	_exit(0);
}

static void
test_concurrent(void)
{
	char db[256], rec[AUTH_HASH_MAX + 1], md[AUTH_MAILDIR_MAX + 1];
	struct timespec ms = { 0, 2000000L };
	struct userdb *udb;
	const char *why = "", *tool;
	pid_t pid;
	int i, opened = 0, found = 0, last = -1, versions = 0, n, status;

	tool = getenv("USMTP_USERS");
	if (tool == NULL)
		tool = "./usmtp-users";
	if (access(tool, X_OK) == -1) {
		printf("# %s not found: the writer calls auth_update\n", tool);
		tool = NULL;
	} else
		printf("# writer: %s add in a loop\n", tool);
	snprintf(db, sizeof(db), "%s/busy.db", dir);
	auth_hash("r", 1, 1, rec, sizeof(rec), &why);
	ok(auth_update(db, AUTH_ADD, "reader@example.com", rec, NULL,
	    &why) == 0, "add the reader's user");
	fflush(stdout);
	signal(SIGTERM, onterm);	/* the child has it from the start */
	if ((pid = fork()) == -1) {
		ok(0, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0)
		writer(db, tool);
	signal(SIGTERM, SIG_DFL);
	for (i = 0; i < READS; i++) {
		if ((udb = auth_open(db, &why)) == NULL) {
			printf("# open %d: %s\n", i, why);
			continue;
		}
		opened++;
		if (auth_lookup(udb, "reader@example.com", md, sizeof(md),
		    &why) == 1)
			found++;
		n = 0;
		auth_foreach(udb, count_user, &n, &why);
		if (n != last)
			versions++;
		last = n;
		auth_close(udb);
		nanosleep(&ms, NULL);
	}
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	ok(opened == READS, "%d of %d opens during writes succeeded", opened,
	    READS);
	ok(found == READS, "%d of %d lookups found the user", found, READS);
	ok(versions > 1, "the readers saw %d versions of the file", versions);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "every write succeeded");
}

/* A gdbm writer on the live file (gdbmtool, say) delays readers. */
static void
test_locked(void)
{
	char db[256], rec[AUTH_HASH_MAX + 1];
	struct timespec hold = { 0, 400000000L };
	struct userdb *udb;
	const char *why = "";
	GDBM_FILE dbf;
	double t;
	pid_t pid;
	int p[2], status;
	char c;

	snprintf(db, sizeof(db), "%s/locked.db", dir);
	auth_hash("pw", 2, 1, rec, sizeof(rec), &why);
	ok(auth_update(db, AUTH_ADD, "a@b", rec, NULL, &why) == 0,
	    "make a database to lock");
	if (pipe(p) == -1 || (pid = fork()) == -1) {
		ok(0, "pipe/fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		dbf = gdbm_open(db, 0, GDBM_WRITER, 0, NULL);
		if (write(p[1], dbf != NULL ? "y" : "n", 1) != 1)
			_exit(1);
		nanosleep(&hold, NULL);
		if (dbf != NULL)
			gdbm_close(dbf);
		_exit(0);
	}
	close(p[1]);
	ok(read(p[0], &c, 1) == 1 && c == 'y', "a gdbm writer holds the file");
	close(p[0]);
	t = now_ms();
	udb = auth_open(db, &why);
	t = now_ms() - t;
	ok(udb != NULL, "auth_open waits for the writer: %s",
	    udb != NULL ? "opened" : why);
	ok(t > 100 && t < 2000, "it waited %.0f ms", t);
	auth_close(udb);
	waitpid(pid, &status, 0);
}

int
main(void)
{
	must(mkdtemp(dir) != NULL, "mkdtemp");
	test_addr();
	test_hash();
	test_db();
	test_timing();
	test_params();
	test_params_timing();
	test_init();
	test_concurrent();
	test_locked();
	remove_tree(dir);
	return tap_done();
}
