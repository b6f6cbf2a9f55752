/*
 * throttle-test.c -- unit tests of throttle.c, TAP on stdout: keys of
 * IPv4, mapped and IPv6 peers and of prefixes; counting, expiry and the
 * limits per address, per /24 and /48, and the account delay; the file's
 * fixed size under a flood of addresses and who gets evicted; no lost
 * counts with many writer processes, on a new and on a damaged file;
 * damaged files replaced (and the caller told), foreign and unusable
 * ones left alone; a creation that fails leaves nothing behind; listing
 * and clearing entries.
 */

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usmtp.h"
#include "tap.h"

#define FILE_BYTES	(64 + THROTTLE_SLOTS * 32)
#define FLOOD		30000	/* distinct addresses, 3.7 x the slots */
#define WRITERS		8	/* processes counting at once */
#define WRITES		200	/* failures each */
#define WINDOW		900
#define T0		1700000000

static char dir[] = "/tmp/throttle-test.XXXXXX";

static void	peer(const char *, int, const char *, const char *);
static void	parse(const char *, int, int, const char *);
static void	fake(unsigned, struct throttle_key *);
static void	conf(struct throttle *, const char *);
static off_t	size_of(const char *);
static int	temps(void);
static void	put_file(const char *, int, const void *, size_t);
static unsigned	fails(struct throttle *, const struct throttle_key *, time_t);
static int	check1(struct throttle *, const struct throttle_key *, time_t,
		    unsigned *);
static void	test_keys(void);
static void	test_count(void);
static void	test_net(void);
static void	test_account(void);
static void	test_flood(void);
static void	test_all_throttled(void);
static void	test_writers(const char *, int);
static void	test_bad_files(void);
static void	test_repair(void);
static void	test_create_fails(void);
static void	test_list(void);
static void	test_admin_busy(void);

/* peer gives r, and the key texts addr and net when r is 1. */
static void
peer(const char *p, int r, const char *addr, const char *net)
{
	struct throttle_key	a, n;
	int			got;

	got = throttle_peer(p, &a, &n);
	ok(got == r && (r == 0 || (strcmp(a.text, addr) == 0 &&
	    strcmp(n.text, net) == 0 && a.kind == THROTTLE_ADDR &&
	    n.kind == THROTTLE_NET)), "keys of %s: %s %s (got %d %s %s)", p,
	    r ? addr : "none", r ? net : "", got, got ? a.text : "",
	    got ? n.text : "");
}

/* s parses to r, and to a key of kind with text want when r is 0. */
static void
parse(const char *s, int r, int kind, const char *want)
{
	struct throttle_key	k;
	int			got;

	got = throttle_parse(s, &k);
	ok(got == r && (r == -1 || (k.kind == kind &&
	    strcmp(k.text, want) == 0)), "parse %s: %s (got %d %s)", s,
	    r == 0 ? want : "refused", got, got == 0 ? k.text : "");
}

/* A distinct IPv4 address key for each n (10.x.y.z). */
static void
fake(unsigned n, struct throttle_key *k)
{
	struct throttle_key	net;
	char			p[32];

	snprintf(p, sizeof(p), "%u.%u.%u.%u:1", 10 + (n >> 24),
	    (n >> 16) & 255, (n >> 8) & 255, n & 255);
	if (throttle_peer(p, k, &net) != 1)
		abort();
}

/* t for the file name under dir: max 3, net max 12, WINDOW. */
static void
conf(struct throttle *t, const char *name)
{
	static char	path[20][256];
	static int	next;

	memset(t, 0, sizeof(*t));
	snprintf(path[next], sizeof(path[next]), "%s/%s", dir, name);
	t->path = path[next];
	next = (next + 1) % 20;
	t->max = 3;
	t->net_max = 12;
	t->window = WINDOW;
}

static off_t
size_of(const char *path)
{
	struct stat	st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Files of dir with ".tmp" in their name: half-made state files. */
static int
temps(void)
{
	struct dirent	*de;
	DIR		*d;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".tmp") != NULL)
			n++;
	closedir(d);
	return n;
}

static void
put_file(const char *path, int mode, const void *p, size_t len)
{
	int	fd;

	unlink(path);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)) == -1 ||
	    fchmod(fd, mode) == -1 ||
	    (len > 0 && write(fd, p, len) != (ssize_t)len))
		abort();
	close(fd);
}

/* One failure of k alone; its count, or 0 on an error. */
static unsigned
fails(struct throttle *t, const struct throttle_key *k, time_t now)
{
	const char	*why;
	unsigned	 n;

	return throttle_fail(t, k, 1, now, &n, &why) == -1 ? 0 : n;
}

static int
check1(struct throttle *t, const struct throttle_key *k, time_t now,
    unsigned *n)
{
	const char	*why;

	return throttle_check(t, k, 1, now, n, &why);
}

static void
test_keys(void)
{
	struct throttle_key	a, b, n;

	peer("192.0.2.1:4711", 1, "192.0.2.1", "192.0.2.0/24");
	peer("192.0.2.1", 1, "192.0.2.1", "192.0.2.0/24");
	peer("[::ffff:192.0.2.1]:4711", 1, "192.0.2.1", "192.0.2.0/24");
	peer("[2001:db8:1:2:aaaa::1]:4711", 1, "2001:db8:1:2::/64",
	    "2001:db8:1::/48");
	peer("[2001:db8:1:2:ffff:ffff:ffff:ffff]", 1, "2001:db8:1:2::/64",
	    "2001:db8:1::/48");
	peer("[::1]:4711", 1, "::/64", "::/48");
	peer("local", 0, "", "");
	peer("", 0, "", "");
	peer("[", 0, "", "");
	peer("[::1", 0, "", "");
	peer("1.2.3.4.5:1", 0, "", "");
	peer("1.2.3.4/24", 0, "", "");
	peer("not-an-address:1", 0, "", "");
	throttle_peer("[::ffff:192.0.2.1]:1", &a, &n);
	throttle_peer("192.0.2.1:2", &b, &n);
	ok(memcmp(a.id, b.id, 16) == 0,
	    "an IPv4 peer mapped into IPv6 has the IPv4 key");
	throttle_peer("[2001:db8:1:2::1]:1", &a, &n);
	throttle_peer("[2001:db8:1:3::1]:1", &b, &n);
	ok(memcmp(a.id, b.id, 16) != 0,
	    "neighbouring IPv6 /64s have different keys");
	throttle_peer("127.0.0.1:1", &a, &n);
	throttle_peer("[::1]:1", &b, &n);
	ok(memcmp(a.id, b.id, 16) != 0,
	    "127.0.0.1 and ::1 have different keys");

	parse("192.0.2.1", 0, THROTTLE_ADDR, "192.0.2.1");
	parse("192.0.2.1/32", 0, THROTTLE_ADDR, "192.0.2.1");
	parse("192.0.2.77/24", 0, THROTTLE_NET, "192.0.2.0/24");
	parse("2001:db8:1:2::5", 0, THROTTLE_ADDR, "2001:db8:1:2::/64");
	parse("2001:db8:1:2::/64", 0, THROTTLE_ADDR, "2001:db8:1:2::/64");
	parse("2001:db8:1:2::/48", 0, THROTTLE_NET, "2001:db8:1::/48");
	parse("::ffff:192.0.2.9/24", 0, THROTTLE_NET, "192.0.2.0/24");
	parse("192.0.2.1/16", -1, 0, "");
	parse("2001:db8::/56", -1, 0, "");
	parse("192.0.2.1/", -1, 0, "");
	parse("192.0.2.1/-24", -1, 0, "");
	parse("alice@example.org", -1, 0, "");
	parse("", -1, 0, "");
	ok(throttle_account("alice@example.org", &a) == 0 &&
	    a.kind == THROTTLE_ACCOUNT &&
	    strcmp(a.text, "alice@example.org") == 0, "an account key");
}

static void
test_count(void)
{
	struct throttle		 t;
	struct throttle_key	 a, b, n;
	unsigned		 c = 99, i;
	time_t			 now = T0;
	struct stat		 st;
	int			 r;

	conf(&t, "count.db");
	throttle_peer("192.0.2.1:1", &a, &n);
	throttle_peer("198.51.100.2:1", &b, &n);
	r = check1(&t, &a, now, &c);
	ok(r == 0 && c == 0 && size_of(t.path) == -1,
	    "no file: nobody is throttled and no file is made");
	for (i = 1; i <= 3; i++) {
		ok(fails(&t, &a, now + i) == i, "failure %u counted", i);
		r = check1(&t, &a, now + i, &c);
		ok(r == (i >= 3) && c == i, "check after %u failures: %d",
		    i, r);
	}
	ok(size_of(t.path) == FILE_BYTES, "the file has its fixed size");
	ok(stat(t.path, &st) == 0 && (st.st_mode & 077) == 0,
	    "the file is private to its owner (mode %03o)",
	    (unsigned)st.st_mode & 0777);
	ok(check1(&t, &b, now + 3, &c) == 0 && c == 0,
	    "another address is not throttled");
	ok(check1(&t, &a, now + 3 + WINDOW - 1, &c) == 1,
	    "still throttled one second before the window ends");
	r = check1(&t, &a, now + 3 + WINDOW, &c);
	ok(r == 0 && c == 0, "free once the window has passed since the "
	    "last failure");
	ok(fails(&t, &a, now + 3 + WINDOW) == 1,
	    "a failure after the window starts a new count");
	t.max = 0;
	ok(check1(&t, &a, now + 3 + WINDOW, &c) == 0 && c == 1,
	    "max 0 never throttles");
	t.max = 1;
	/* the clock stepped back far: the entry counts as expired */
	ok(check1(&t, &a, now - 3600, &c) == 0 && c == 0,
	    "failures from the future do not count");
	ok(t.repaired == NULL, "nothing was repaired");
}

/* The looser second limit: one /48 or one /24 shares a budget. */
static void
test_net(void)
{
	struct throttle		 t;
	struct throttle_key	 k[2], other[2];
	const char		*why = NULL;
	char			 p[64];
	unsigned		 c[2], i;
	time_t			 now = T0;
	int			 r, errs = 0;

	conf(&t, "net.db");
	/* 12 /64s of one /48, each with 1 failure: its net_max */
	for (i = 1; i <= 12; i++) {
		snprintf(p, sizeof(p), "[2001:db8:77:%x::1]:1", i);
		throttle_peer(p, &k[0], &k[1]);
		if (throttle_fail(&t, k, 2, now, c, &why) == -1 ||
		    c[0] != 1 || c[1] != i)
			errs++;
	}
	ok(errs == 0, "each /64 has 1 failure, the /48 has 12");
	throttle_peer("[2001:db8:77:ffff::9]:1", &k[0], &k[1]);
	r = throttle_check(&t, k, 2, now, c, &why);
	ok(r == 1 && c[0] == 0 && c[1] == 12, "a fresh /64 of that /48 is "
	    "refused (%d, %u %u)", r, c[0], c[1]);
	ok(throttle_limited(&t, k[1].kind, c[1]) &&
	    !throttle_limited(&t, k[0].kind, c[0]),
	    "because of its /48, not of its /64");
	throttle_peer("[2001:db8:78::1]:1", &other[0], &other[1]);
	ok(throttle_check(&t, other, 2, now, c, &why) == 0,
	    "the next /48 is not");
	ok(throttle_check(&t, k, 2, now + WINDOW, c, &why) == 0,
	    "the /48 is free when the window has passed");

	conf(&t, "net4.db");
	for (i = 1, errs = 0; i <= 12; i++) {
		snprintf(p, sizeof(p), "192.0.2.%u:1", i);
		throttle_peer(p, &k[0], &k[1]);
		if (throttle_fail(&t, k, 2, now, c, &why) == -1)
			errs++;
	}
	throttle_peer("192.0.2.200:1", &k[0], &k[1]);
	ok(errs == 0 && throttle_check(&t, k, 2, now, c, &why) == 1 &&
	    c[1] == 12, "12 addresses of one /24: a fresh one is refused");
	throttle_peer("192.0.3.1:1", &k[0], &k[1]);
	ok(throttle_check(&t, k, 2, now, c, &why) == 0,
	    "the next /24 is not");
	t.net_max = 0;
	throttle_peer("192.0.2.200:1", &k[0], &k[1]);
	ok(throttle_check(&t, k, 2, now, c, &why) == 0,
	    "net max 0: no limit per network");
}

/* Accounts: counted from anywhere, slowed down, never refused. */
static void
test_account(void)
{
	static const unsigned	 want[] = { 0, 0, 0, 0, 0, 250, 500, 1000,
				    2000, 4000, 4000, 4000 };
	struct throttle		 t;
	struct throttle_key	 k[3], bob;
	const char		*why = NULL;
	char			 p[64], buf[FILE_BYTES];
	unsigned		 c[3], i, good = 1;
	time_t			 now = T0;
	int			 fd, r, errs = 0;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (throttle_delay_ms(i) != want[i]) {
			good = 0;
			printf("# delay after %u failures: %u ms, want %u\n",
			    i, throttle_delay_ms(i), want[i]);
		}
	ok(good, "no delay for %d failures, then 250 ms doubling to 4 s",
	    THROTTLE_ACCOUNT_FREE);
	ok(throttle_delay_ms(1000000) == THROTTLE_DELAY_MAX_MS &&
	    throttle_delay_ms(~0U) == THROTTLE_DELAY_MAX_MS,
	    "the delay stays at its cap");

	conf(&t, "account.db");
	throttle_account("alice@example.org", &k[0]);
	throttle_account("bob@example.org", &bob);
	/* 7 failures of alice, each from another /24 */
	for (i = 1; i <= 7; i++) {
		snprintf(p, sizeof(p), "10.%u.0.1:1", i);
		throttle_peer(p, &k[1], &k[2]);
		if (throttle_fail(&t, k, 3, now + i, c, &why) == -1 ||
		    c[0] != i || c[1] != 1 || c[2] != 1)
			errs++;
	}
	ok(errs == 0, "the account counts failures from every address");
	r = throttle_check(&t, k, 1, now + 7, c, &why);
	ok(r == 0 && c[0] == 7 && throttle_delay_ms(c[0]) == 1000,
	    "an account is never refused, its logins wait %u ms",
	    throttle_delay_ms(c[0]));
	ok(throttle_limited(&t, THROTTLE_ACCOUNT, c[0]),
	    "it counts as throttled");
	ok(throttle_check(&t, &bob, 1, now + 7, c, &why) == 0 && c[0] == 0,
	    "another account is not slowed down");
	ok(throttle_check(&t, k, 1, now + 7 + WINDOW, c, &why) == 0 &&
	    c[0] == 0, "the count ends with the window");
	if ((fd = open(t.path, O_RDONLY)) == -1 ||
	    read(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		abort();
	close(fd);
	for (i = 0; i + 5 <= sizeof(buf) && memcmp(buf + i, "alice", 5) != 0;
	    i++)
		;
	ok(i + 5 > sizeof(buf),
	    "the file holds no account name, only salted hashes");
}

/*
 * FLOOD fresh addresses, each failing once after one was throttled:
 * the throttled one stays (before, ~3000 fresh keys pushed it out).
 */
static void
test_flood(void)
{
	struct throttle		 t;
	struct throttle_key	 k, victim, n;
	unsigned		 c, i, errors = 0;
	time_t			 now = T0;

	conf(&t, "flood.db");
	throttle_peer("[2001:db8::1]:1", &victim, &n);
	for (i = 0; i < 3; i++)
		if (fails(&t, &victim, now) == 0)
			errors++;
	for (i = 0; i < FLOOD; i++) {
		fake(i, &k);
		if (fails(&t, &k, now + 1) != 1)
			errors++;
	}
	ok(errors == 0, "%u distinct addresses recorded without error",
	    FLOOD);
	ok(size_of(t.path) == FILE_BYTES, "the file stays at %d bytes (%lld)",
	    FILE_BYTES, (long long)size_of(t.path));
	ok(check1(&t, &victim, now + 1, &c) == 1 && c == 3,
	    "the throttled address survives a flood of newer failures");
	fake(FLOOD - 1, &k);
	ok(check1(&t, &k, now + 1, &c) == 0 && c == 1,
	    "the last address of the flood is there");
	fake(0, &k);
	ok(check1(&t, &k, now + 1, &c) == 0 && c == 0,
	    "the first address of the flood was evicted");
	/* a new round after the window: expired entries make room, but
	 * never the throttled one failing again meanwhile */
	if (fails(&t, &victim, now + WINDOW) != 1 ||
	    fails(&t, &victim, now + WINDOW) != 2 ||
	    fails(&t, &victim, now + WINDOW) != 3)
		errors++;
	for (i = 0; i < THROTTLE_SLOTS / 2; i++) {
		fake(FLOOD + i, &k);
		if (fails(&t, &k, now + WINDOW + 1) != 1)
			errors++;
	}
	ok(errors == 0, "after the window every address starts at 1");
	for (i = 0, n.kind = 0; i < THROTTLE_SLOTS / 2; i++) {
		fake(FLOOD + i, &k);
		if (check1(&t, &k, now + WINDOW + 1, &c) == 0 && c == 1)
			n.kind++;
	}
	/* half the table, each address in one of 8 slots of its own:
	 * (nearly) all must still be there, expired entries evicted first */
	ok(n.kind >= THROTTLE_SLOTS / 2 - THROTTLE_SLOTS / 64,
	    "%d of %d fresh addresses kept over expired ones", n.kind,
	    THROTTLE_SLOTS / 2);
	ok(check1(&t, &victim, now + WINDOW + 1, &c) == 1 && c == 3,
	    "and the throttled one is still there");
}

/*
 * max 1: every entry is throttled.  Once the table is full, a new key
 * takes the slot of the least recent throttled entry in its probe set.
 */
static void
test_all_throttled(void)
{
	struct throttle		 t;
	struct throttle_key	 k;
	unsigned		 c, i, errors = 0, kept = 0;
	time_t			 now = T0;

	conf(&t, "full.db");
	t.max = 1;
	for (i = 0; i < 2 * THROTTLE_SLOTS; i++) {
		fake(i, &k);
		if (fails(&t, &k, now + (time_t)(i / 1024)) != 1)
			errors++;
	}
	ok(errors == 0 && size_of(t.path) == FILE_BYTES,
	    "twice as many throttled addresses as slots, the file's size "
	    "fixed");
	for (i = 2 * THROTTLE_SLOTS - 1024; i < 2 * THROTTLE_SLOTS; i++) {
		fake(i, &k);
		if (check1(&t, &k, now + 16, &c) == 1)
			kept++;
	}
	ok(kept == 1024, "the newest are all kept (%u of 1024)", kept);
	for (i = 0, kept = 0; i < 1024; i++) {
		fake(i, &k);
		if (check1(&t, &k, now + 16, &c) == 1)
			kept++;
	}
	ok(kept < 64, "the oldest went first (%u of 1024 left)", kept);
}

/*
 * WRITERS processes count failures of one address at once, on a file
 * that is missing (all race to make it) or damaged (all race to replace
 * it): no count is lost, exactly one of them replaced it, nothing is
 * left under a temporary name.
 */
static void
test_writers(const char *name, int damaged)
{
	static char		 zero[FILE_BYTES];
	struct throttle		 t;
	struct throttle_key	 k, n;
	const char		*why = NULL;
	unsigned		 c;
	pid_t			 pids[WRITERS];
	int			 i, j, st, good = 1, repairs = 0;
	time_t			 now = time(NULL);

	conf(&t, name);
	if (damaged)
		put_file(t.path, 0600, zero, sizeof(zero));
	throttle_peer("198.51.100.7:1", &k, &n);
	for (i = 0; i < WRITERS; i++) {
		if ((pids[i] = fork()) == -1)
			abort();
		if (pids[i] == 0) {
			for (j = 0; j < WRITES; j++)
				if (throttle_fail(&t, &k, 1, now, &c,
				    &why) == -1)
					_exit(100);
			_exit(t.repaired != NULL);
		}
	}
	for (i = 0; i < WRITERS; i++) {
		if (waitpid(pids[i], &st, 0) == -1 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) > 1)
			good = 0;
		else
			repairs += WEXITSTATUS(st);
	}
	ok(good, "%d processes wrote at once to a %s file without an error",
	    WRITERS, damaged ? "damaged" : "missing");
	check1(&t, &k, now, &c);
	ok(c == WRITERS * WRITES, "no failure was lost: %u of %d", c,
	    WRITERS * WRITES);
	ok(repairs == damaged, "%d of them replaced it", repairs);
	ok(size_of(t.path) == FILE_BYTES && temps() == 0,
	    "one file of the fixed size, no temporary file left");
}

static void
test_bad_files(void)
{
	static char		 junk[FILE_BYTES];
	struct throttle		 t;
	struct throttle_key	 k, n;
	char			 sub[300];
	const char		*why;
	unsigned		 c;
	int			 fd, r;
	time_t			 now = T0;

	throttle_peer("203.0.113.9:1", &k, &n);

	/* not ours: others may read it */
	conf(&t, "junk.db");
	memset(junk, 'x', sizeof(junk));
	put_file(t.path, 0644, junk, sizeof(junk));
	why = NULL;
	r = check1(&t, &k, now, &c);
	ok(r == -1 && why == NULL, "a foreign file is an error to check");
	why = NULL;
	r = throttle_fail(&t, &k, 1, now, &c, &why);
	ok(r == -1 && why != NULL && strstr(why, "not a usmtp throttle "
	    "file") != NULL, "and to record (%s)", why ? why : "");
	if ((fd = open(t.path, O_RDONLY)) == -1 ||
	    read(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk))
		abort();
	close(fd);
	ok(junk[0] == 'x' && junk[100] == 'x' && junk[FILE_BYTES - 1] == 'x' &&
	    t.repaired == NULL, "a foreign file is never overwritten");

	conf(&t, "big.db");
	memset(junk, 0, sizeof(junk));
	put_file(t.path, 0600, junk, sizeof(junk));
	if (truncate(t.path, FILE_BYTES + 1) == -1)
		abort();
	ok(throttle_fail(&t, &k, 1, now, &c, &why) == -1 &&
	    size_of(t.path) == FILE_BYTES + 1,
	    "nor is a private one larger than ours");

	conf(&t, "short.db");
	put_file(t.path, 0644, "USM", 3);
	ok(throttle_fail(&t, &k, 1, now, &c, &why) == -1 &&
	    size_of(t.path) == 3, "nor a short foreign one");

	conf(&t, "no/such/dir/t.db");
	why = NULL;
	ok(throttle_fail(&t, &k, 1, now, &c, &why) == -1 && why != NULL,
	    "a missing directory is an error to record (%s)",
	    why ? why : "");
	ok(check1(&t, &k, now, &c) == 0,
	    "and no throttling when checking");

	snprintf(sub, sizeof(sub), "%s/adir", dir);
	if (mkdir(sub, 0700) == -1)
		abort();
	t.path = sub;
	ok(throttle_fail(&t, &k, 1, now, &c, &why) == -1 &&
	    check1(&t, &k, now, &c) == -1, "a directory is refused");
	snprintf(sub, sizeof(sub), "%s/fifo", dir);
	if (mkfifo(sub, 0600) == -1)
		abort();
	ok(throttle_fail(&t, &k, 1, now, &c, &why) == -1 &&
	    check1(&t, &k, now, &c) == -1,
	    "a FIFO is refused without hanging");
	conf(&t, "link");
	snprintf(sub, sizeof(sub), "%s/count.db", dir);
	if (symlink(sub, t.path) == -1)
		abort();
	ok(throttle_fail(&t, &k, 1, now, &c, &why) == -1,
	    "a symbolic link is not followed");
	ok(temps() == 0, "no temporary file is left");
}

/*
 * Damaged files of ours are replaced by empty ones, the caller is told,
 * and throttling works at once.
 */
static void
test_repair(void)
{
	static const struct {
		const char	*name, *damage;
		int		 mode;
		off_t		 size;	/* -1: a whole file of ours, cut */
		const char	*head;
	} cases[] = {
		{ "zero.db", "zero-filled header", 0600, FILE_BYTES, NULL },
		{ "zerohalf.db", "zero-filled header", 0600, 4096, NULL },
		{ "cut.db", "wrong size", 0600, -1, NULL },
		{ "empty.db", "empty", 0644, 0, NULL },
		{ "magic.db", "bad magic", 0600, FILE_BYTES, "NOTOURS!" },
		{ "v1.db", "older format", 0600, 64 + 4096 * 32, "USMTPTH1" },
		{ "tiny.db", "shorter than a header", 0600, 3, "USM" }
	};
	static char		 buf[FILE_BYTES];
	struct throttle		 t, good;
	struct throttle_key	 k, n;
	const char		*why;
	unsigned		 c, i;
	time_t			 now = T0;
	int			 fd, r;

	throttle_peer("203.0.113.10:1", &k, &n);
	conf(&good, "good.db");
	fails(&good, &k, now);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		conf(&t, cases[i].name);
		memset(buf, 0, sizeof(buf));
		if (cases[i].size == -1) {
			if ((fd = open(good.path, O_RDONLY)) == -1 ||
			    read(fd, buf, sizeof(buf)) != sizeof(buf))
				abort();
			close(fd);
			put_file(t.path, 0600, buf, 64 + 32);
		} else {
			if (cases[i].head != NULL)
				memcpy(buf, cases[i].head,
				    strlen(cases[i].head));
			put_file(t.path, cases[i].mode, buf,
			    (size_t)cases[i].size);
		}
		/* the check (at LOGIN) repairs as the count does */
		why = NULL;
		r = i % 2 ? check1(&t, &k, now, &c) :
		    throttle_fail(&t, &k, 1, now, &c, &why);
		ok(r == 0 && t.repaired != NULL &&
		    strcmp(t.repaired, cases[i].damage) == 0 &&
		    size_of(t.path) == FILE_BYTES,
		    "%s (%s) is replaced by a %s and the caller told (%s)",
		    cases[i].name, cases[i].damage, i % 2 ? "check" : "failure",
		    t.repaired ? t.repaired : why ? why : "");
		t.repaired = NULL;
		fails(&t, &k, now);
		fails(&t, &k, now);
		fails(&t, &k, now);
		ok(check1(&t, &k, now, &c) == 1 && t.repaired == NULL,
		    "then throttling works, with no more repairs");
	}
	ok(temps() == 0, "no temporary file is left");
}

/*
 * A creation that fails half-way (a file size limit: the kernel refuses
 * the write past it, as a full disk would) leaves no file at all, and
 * the next one, with room, makes a whole one.
 */
static void
test_create_fails(void)
{
	struct throttle		 t;
	struct throttle_key	 k, n;
	struct rlimit		 rl;
	const char		*why = NULL;
	unsigned		 c;
	pid_t			 pid;
	int			 st;

	conf(&t, "limited.db");
	throttle_peer("203.0.113.11:1", &k, &n);
	fflush(stdout);
	if ((pid = fork()) == -1)
		abort();
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		rl.rlim_cur = rl.rlim_max = 64 * 1024;
		if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
			_exit(2);
		if (throttle_fail(&t, &k, 1, T0, &c, &why) != -1) {
			printf("# recorded?\n");
			_exit(3);
		}
		printf("# with a 64 KiB file size limit: %s\n", why);
		_exit(0);
	}
	ok(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0, "a creation that cannot finish fails");
	ok(size_of(t.path) == -1 && temps() == 0,
	    "and leaves no file, whole or half, and no temporary file");
	ok(throttle_fail(&t, &k, 1, T0, &c, &why) == 0 && c == 1 &&
	    size_of(t.path) == FILE_BYTES && t.repaired == NULL,
	    "the next one makes a whole file");
}

static struct throttle_key hashed;	/* the last account listed by hash */

static int
collect(void *arg, const struct throttle_entry *e)
{
	char	*out = arg;
	size_t	 len = strlen(out);

	if (e->key.kind == THROTTLE_ACCOUNT && e->key.text[0] == '\0')
		hashed = e->key;
	snprintf(out + len, 1024 - len, "%d %s %u %u;", e->key.kind,
	    e->key.text[0] ? e->key.text : "#", e->failures, e->left);
	return 0;
}

/* What usmtp-users lockouts and unlock build on. */
static void
test_list(void)
{
	static const char *const names[] = { "bob@example.org",
					     "alice@example.org" };
	struct throttle		 t, u;
	struct throttle_key	 k[3], ak, nk;
	const char		*why = NULL;
	char			 out[1024];
	unsigned		 c[3], i, cleared;
	time_t			 now = T0;

	conf(&t, "list.db");
	conf(&u, "list.db");
	u.max = u.net_max = u.window = 0;
	out[0] = '\0';
	ok(throttle_list(&u, now, names, 2, collect, out, &why) == 0 &&
	    out[0] == '\0', "no file: nothing to list");
	ok(throttle_clear(&u, NULL, &cleared, &why) == 0 && cleared == 0 &&
	    size_of(u.path) == -1, "nor to clear, and no file is made");
	throttle_account("alice@example.org", &k[0]);
	throttle_peer("192.0.2.1:1", &k[1], &k[2]);
	for (i = 0; i < 5; i++)
		throttle_fail(&t, k, 3, now, c, &why);
	throttle_account("eve@example.org", &k[0]);
	throttle_peer("192.0.2.2:1", &k[1], &k[2]);
	for (i = 0; i < 5; i++)
		throttle_fail(&t, k, 3, now, c, &why);
	throttle_peer("192.0.2.3:1", &k[1], &k[2]);
	throttle_fail(&t, k, 3, now, c, &why);
	out[0] = '\0';
	ok(throttle_list(&u, now + 100, names, 2, collect, out, &why) == 0,
	    "list: %s", out);
	ok(u.max == 3 && u.net_max == 12 && u.window == WINDOW,
	    "the limits the handler wrote are read back");
	ok(strstr(out, "1 192.0.2.1 5 800;") != NULL &&
	    strstr(out, "1 192.0.2.2 5 800;") != NULL &&
	    strstr(out, "192.0.2.3") == NULL,
	    "the refused addresses are listed, one still counting is not");
	ok(strstr(out, "2 192.0.2.0/24 11 800;") == NULL,
	    "nor the /24 below its limit");
	ok(strstr(out, "3 alice@example.org 5 800;") != NULL,
	    "a slowed-down account among the names given is named");
	ok(strstr(out, "3 # 6 800;") != NULL,
	    "one not among them is listed by its hash");

	throttle_parse("192.0.2.1", &ak);
	ok(throttle_clear(&u, &ak, &cleared, &why) == 0 && cleared == 1 &&
	    throttle_check(&t, &ak, 1, now + 100, c, &why) == 0 &&
	    c[0] == 0, "clearing an address frees it");
	ok(throttle_clear(&u, &ak, &cleared, &why) == 0 && cleared == 0,
	    "clearing it again clears nothing");
	throttle_account("alice@example.org", &ak);
	ok(throttle_clear(&u, &ak, &cleared, &why) == 0 && cleared == 1 &&
	    throttle_check(&t, &ak, 1, now + 100, c, &why) == 0 &&
	    c[0] == 0, "clearing an account by name frees it");
	/* eve, by the hash the listing gave */
	out[0] = '\0';
	throttle_list(&u, now + 100, NULL, 0, collect, out, &why);
	ok(strstr(out, "3 # 6 800;") != NULL, "eve is listed by hash");
	ok(throttle_clear(&u, &hashed, &cleared, &why) == 0 && cleared == 1,
	    "and cleared by it");
	throttle_account("eve@example.org", &nk);
	ok(throttle_check(&t, &nk, 1, now + 100, c, &why) == 0 && c[0] == 0,
	    "which frees eve");
	ok(throttle_clear(&u, NULL, &cleared, &why) == 0 && cleared >= 3,
	    "clearing all clears every entry (%u)", cleared);
	out[0] = '\0';
	ok(throttle_list(&u, now + 100, names, 2, collect, out, &why) == 0 &&
	    out[0] == '\0', "and then nothing is listed");
	ok(size_of(u.path) == FILE_BYTES, "the file keeps its size");
}

static int
count_entries(void *arg, const struct throttle_entry *e)
{
	(void)e;
	(*(unsigned *)arg)++;
	return 0;
}

/*
 * usmtp-users lists and clears while handlers count: the same locks, so
 * no call fails and the file stays whole.
 */
static void
test_admin_busy(void)
{
	struct throttle		 t, u;
	struct throttle_key	 k[2];
	const char		*why = NULL;
	char			 p[32];
	unsigned		 c[2], n, i, errs = 0;
	pid_t			 pid;
	int			 st, j;

	conf(&t, "busy.db");
	t.max = 1;
	conf(&u, "busy.db");
	throttle_peer("10.1.1.1:1", &k[0], &k[1]);
	fails(&t, k, T0);
	fflush(stdout);
	if ((pid = fork()) == -1)
		abort();
	if (pid == 0) {
		for (j = 0; j < 2000; j++) {
			snprintf(p, sizeof(p), "10.0.%d.%d:1", (j >> 8) & 255,
			    j & 255);
			throttle_peer(p, &k[0], &k[1]);
			if (throttle_fail(&t, k, 2, time(NULL), c, &why) == -1) {
				printf("# %s\n", why);
				_exit(1);
			}
		}
		_exit(0);
	}
	for (i = 0; i < 200; i++) {
		n = 0;
		if (throttle_list(&u, time(NULL), NULL, 0, count_entries, &n,
		    &why) == -1 || (i % 10 == 0 && throttle_clear(&u, NULL,
		    &n, &why) == -1))
			errs++;
	}
	ok(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0, "a handler's failures all counted");
	ok(errs == 0, "200 listings and 20 clearings meanwhile, no error%s%s",
	    errs ? ": " : "", errs ? why : "");
	ok(size_of(t.path) == FILE_BYTES && t.repaired == NULL &&
	    u.repaired == NULL, "the file is whole and was never replaced");
}

int
main(void)
{
	must(mkdtemp(dir) != NULL, "mkdtemp");
	test_keys();
	test_count();
	test_net();
	test_account();
	test_flood();
	test_all_throttled();
	test_writers("writers.db", 0);
	test_writers("writers-damaged.db", 1);
	test_bad_files();
	test_repair();
	test_create_fails();
	test_list();
	test_admin_busy();
	remove_tree(dir);
	return tap_done();
}
