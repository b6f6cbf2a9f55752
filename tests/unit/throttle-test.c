/*
 * throttle-test.c -- unit tests of throttle.c, TAP on stdout: keys of
 * IPv4, mapped and IPv6 peers; counting, expiry and the limit; the file's
 * fixed size under a flood of addresses and who gets evicted; no lost
 * counts with many writer processes; damaged, foreign and unusable files
 * fail (so the handler fails open) and are never overwritten.
 */

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usmtp.h"
#include "tap.h"

#define FILE_BYTES	(64 + THROTTLE_SLOTS * 32)
#define FLOOD		100000	/* distinct addresses */
#define WRITERS		8	/* processes counting at once */
#define WRITES		200	/* failures each */
#define WINDOW		900

static char dir[] = "/tmp/throttle-test.XXXXXX";

static void	key(const char *, int, const char *);
static void	fake(unsigned, struct throttle_key *);
static off_t	size_of(const char *);
static void	test_keys(void);
static void	test_count(void);
static void	test_flood(void);
static void	test_writers(void);
static void	test_bad_files(void);
static void	cleanup(void);

/* peer gives r, and the key text want when r is 1. */
static void
key(const char *peer, int r, const char *want)
{
	struct throttle_key	k;
	int			got;

	got = throttle_key(peer, &k);
	ok(got == r && (r == 0 || strcmp(k.text, want) == 0),
	    "key of %s is %s (got %d %s)", peer, r ? want : "none", got,
	    got ? k.text : "");
}

/* A distinct IPv4 key for each n (10.x.y.z). */
static void
fake(unsigned n, struct throttle_key *k)
{
	char	peer[32];

	snprintf(peer, sizeof(peer), "%u.%u.%u.%u:1", 10 + (n >> 24),
	    (n >> 16) & 255, (n >> 8) & 255, n & 255);
	if (throttle_key(peer, k) != 1)
		abort();
}

static off_t
size_of(const char *path)
{
	struct stat	st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void
test_keys(void)
{
	struct throttle_key	a, b;

	key("192.0.2.1:4711", 1, "192.0.2.1");
	key("192.0.2.1", 1, "192.0.2.1");
	key("[::ffff:192.0.2.1]:4711", 1, "192.0.2.1");
	key("[2001:db8:1:2:aaaa::1]:4711", 1, "2001:db8:1:2::/64");
	key("[2001:db8:1:2:ffff:ffff:ffff:ffff]", 1, "2001:db8:1:2::/64");
	key("[::1]:4711", 1, "::/64");
	key("local", 0, "");
	key("", 0, "");
	key("[", 0, "");
	key("[::1", 0, "");
	key("1.2.3.4.5:1", 0, "");
	key("not-an-address:1", 0, "");
	throttle_key("[::ffff:192.0.2.1]:1", &a);
	throttle_key("192.0.2.1:2", &b);
	ok(memcmp(a.addr, b.addr, 16) == 0,
	    "an IPv4 peer mapped into IPv6 has the IPv4 key");
	throttle_key("[2001:db8:1:2::1]:1", &a);
	throttle_key("[2001:db8:1:3::1]:1", &b);
	ok(memcmp(a.addr, b.addr, 16) != 0,
	    "neighbouring IPv6 /64s have different keys");
	throttle_key("127.0.0.1:1", &a);
	throttle_key("[::1]:1", &b);
	ok(memcmp(a.addr, b.addr, 16) != 0,
	    "127.0.0.1 and ::1 have different keys");
}

static void
test_count(void)
{
	struct throttle_key	 a, b;
	char			 path[256];
	const char		*why = NULL;
	unsigned		 n = 99, i;
	time_t			 t = 1700000000;
	int			 r;

	snprintf(path, sizeof(path), "%s/count.db", dir);
	throttle_key("192.0.2.1:1", &a);
	throttle_key("192.0.2.2:1", &b);
	r = throttle_check(path, &a, 3, WINDOW, t, &n, &why);
	ok(r == 0 && n == 0 && size_of(path) == -1,
	    "no file: nobody is throttled and no file is made");
	for (i = 1; i <= 3; i++) {
		r = throttle_fail(path, &a, WINDOW, t + i, &n, &why);
		ok(r == 0 && n == i, "failure %u counted (%u)", i, n);
		r = throttle_check(path, &a, 3, WINDOW, t + i, &n, &why);
		ok(r == (i >= 3) && n == i, "check after %u failures: %d",
		    i, r);
	}
	ok(size_of(path) == FILE_BYTES, "the file has its fixed size");
	{
		struct stat st;
		ok(stat(path, &st) == 0 && (st.st_mode & 077) == 0,
		    "the file is private to its owner (mode %03o)",
		    (unsigned)st.st_mode & 0777);
	}
	r = throttle_check(path, &b, 3, WINDOW, t + 3, &n, &why);
	ok(r == 0 && n == 0, "another address is not throttled");
	r = throttle_check(path, &a, 3, WINDOW, t + 3 + WINDOW - 1, &n, &why);
	ok(r == 1, "still throttled one second before the window ends");
	r = throttle_check(path, &a, 3, WINDOW, t + 3 + WINDOW, &n, &why);
	ok(r == 0 && n == 0, "free once the window has passed since the "
	    "last failure");
	r = throttle_fail(path, &a, WINDOW, t + 3 + WINDOW, &n, &why);
	ok(r == 0 && n == 1, "a failure after the window starts a new count");
	r = throttle_check(path, &a, 0, WINDOW, t + 3 + WINDOW, &n, &why);
	ok(r == 0 && n == 1, "max 0 never throttles");
	/* the clock stepped back far: the entry counts as expired */
	r = throttle_check(path, &a, 1, WINDOW, t - 3600, &n, &why);
	ok(r == 0 && n == 0, "failures from the future do not count");
}

static void
test_flood(void)
{
	struct throttle_key	 k, recent;
	char			 path[256];
	const char		*why = NULL;
	unsigned		 i, n, errors = 0;
	time_t			 t = 1700000000;

	snprintf(path, sizeof(path), "%s/flood.db", dir);
	throttle_key("[2001:db8::1]:1", &recent);
	if (throttle_fail(path, &recent, WINDOW, t + 10, &n, &why) == -1 ||
	    throttle_fail(path, &recent, WINDOW, t + 10, &n, &why) == -1)
		errors++;
	for (i = 0; i < FLOOD; i++) {
		fake(i, &k);
		if (throttle_fail(path, &k, WINDOW, t, &n, &why) == -1)
			errors++;
	}
	ok(errors == 0, "%u distinct addresses recorded without error",
	    FLOOD);
	ok(size_of(path) == FILE_BYTES, "the file stays at %d bytes (%lld)",
	    FILE_BYTES, (long long)size_of(path));
	ok(throttle_check(path, &recent, 2, WINDOW, t + 10, &n, &why) == 1 &&
	    n == 2, "the most recent failures survive the flood of older "
	    "ones");
	fake(FLOOD - 1, &k);
	ok(throttle_check(path, &k, 1, WINDOW, t, &n, &why) == 1,
	    "the last address of the flood is there");
	fake(0, &k);
	ok(throttle_check(path, &k, 1, WINDOW, t, &n, &why) == 0,
	    "the first address of the flood was evicted");
	/* a new round after the window: expired entries make room */
	for (i = 0; i < THROTTLE_SLOTS / 2; i++) {
		fake(FLOOD + i, &k);
		if (throttle_fail(path, &k, WINDOW, t + 2 * WINDOW, &n,
		    &why) == -1 || n != 1)
			errors++;
	}
	ok(errors == 0, "after the window every address starts at 1");
	for (i = 0, n = 0; i < THROTTLE_SLOTS / 2; i++) {
		unsigned	m;

		fake(FLOOD + i, &k);
		if (throttle_check(path, &k, 1, WINDOW, t + 2 * WINDOW, &m,
		    &why) == 1)
			n++;
	}
	/* half the table, each address in one of 8 slots of its own:
	 * (nearly) all must still be there, expired entries evicted first */
	ok(n >= THROTTLE_SLOTS / 2 - THROTTLE_SLOTS / 64,
	    "%u of %d fresh addresses kept over expired ones", n,
	    THROTTLE_SLOTS / 2);
}

static void
test_writers(void)
{
	struct throttle_key	 k;
	char			 path[256];
	const char		*why = NULL;
	unsigned		 n;
	pid_t			 pids[WRITERS];
	int			 i, j, st, good = 1;
	time_t			 t = time(NULL);

	snprintf(path, sizeof(path), "%s/writers.db", dir);
	throttle_key("198.51.100.7:1", &k);
	for (i = 0; i < WRITERS; i++) {
		if ((pids[i] = fork()) == -1)
			abort();
		if (pids[i] == 0) {
			for (j = 0; j < WRITES; j++)
				if (throttle_fail(path, &k, WINDOW, t, &n,
				    &why) == -1)
					_exit(1);
			_exit(0);
		}
	}
	for (i = 0; i < WRITERS; i++)
		if (waitpid(pids[i], &st, 0) == -1 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			good = 0;
	ok(good, "%d processes wrote at once without an error", WRITERS);
	throttle_check(path, &k, 1, WINDOW, t, &n, &why);
	ok(n == WRITERS * WRITES, "no failure was lost: %u of %d", n,
	    WRITERS * WRITES);
	ok(size_of(path) == FILE_BYTES, "one file of the fixed size");
}

static void
test_bad_files(void)
{
	static char		 junk[FILE_BYTES];
	struct throttle_key	 k;
	char			 path[256], sub[300];
	const char		*why;
	unsigned		 n;
	int			 fd, r;
	time_t			 t = 1700000000;

	throttle_key("203.0.113.9:1", &k);

	snprintf(path, sizeof(path), "%s/junk.db", dir);
	memset(junk, 'x', sizeof(junk));
	if ((fd = open(path, O_WRONLY | O_CREAT, 0600)) == -1 ||
	    write(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk))
		abort();
	close(fd);
	why = NULL;
	r = throttle_check(path, &k, 1, WINDOW, t, &n, &why);
	ok(r == -1 && why != NULL, "a damaged file is an error to check "
	    "(%s)", why ? why : "");
	why = NULL;
	r = throttle_fail(path, &k, WINDOW, t, &n, &why);
	ok(r == -1 && why != NULL, "and to record");
	if ((fd = open(path, O_RDONLY)) == -1 ||
	    read(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk))
		abort();
	close(fd);
	ok(junk[0] == 'x' && junk[100] == 'x' && junk[FILE_BYTES - 1] == 'x',
	    "a damaged file is never overwritten");

	snprintf(path, sizeof(path), "%s/short.db", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT, 0600)) == -1 ||
	    write(fd, "USM", 3) != 3)
		abort();
	close(fd);
	ok(throttle_fail(path, &k, WINDOW, t, &n, &why) == -1,
	    "a foreign file shorter than a header is an error");

	snprintf(path, sizeof(path), "%s/empty.db", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT, 0600)) == -1)
		abort();
	close(fd);
	ok(throttle_check(path, &k, 1, WINDOW, t, &n, &why) == 0,
	    "an empty file throttles nobody");
	ok(throttle_fail(path, &k, WINDOW, t, &n, &why) == 0 && n == 1 &&
	    size_of(path) == FILE_BYTES, "an empty file is made a throttle "
	    "file");
	/* ours, cut short: the missing slots are empty */
	if (truncate(path, 64 + 32) == -1)
		abort();
	r = throttle_check(path, &k, 5, WINDOW, t, &n, &why);
	ok(r == 0 || r == 1, "a cut-short file of ours is still read");
	ok(throttle_fail(path, &k, WINDOW, t, &n, &why) == 0 &&
	    size_of(path) == FILE_BYTES, "and grown back when written");

	snprintf(path, sizeof(path), "%s/no/such/dir/t.db", dir);
	why = NULL;
	ok(throttle_fail(path, &k, WINDOW, t, &n, &why) == -1 && why != NULL,
	    "a missing directory is an error to record (%s)",
	    why ? why : "");
	ok(throttle_check(path, &k, 1, WINDOW, t, &n, &why) == 0,
	    "and no throttling when checking");

	snprintf(sub, sizeof(sub), "%s/adir", dir);
	if (mkdir(sub, 0700) == -1)
		abort();
	ok(throttle_fail(sub, &k, WINDOW, t, &n, &why) == -1 &&
	    throttle_check(sub, &k, 1, WINDOW, t, &n, &why) == -1,
	    "a directory is refused");
	snprintf(sub, sizeof(sub), "%s/fifo", dir);
	if (mkfifo(sub, 0600) == -1)
		abort();
	ok(throttle_fail(sub, &k, WINDOW, t, &n, &why) == -1 &&
	    throttle_check(sub, &k, 1, WINDOW, t, &n, &why) == -1,
	    "a FIFO is refused without hanging");
	snprintf(path, sizeof(path), "%s/link", dir);
	snprintf(sub, sizeof(sub), "%s/empty.db", dir);
	if (symlink(sub, path) == -1)
		abort();
	ok(throttle_fail(path, &k, WINDOW, t, &n, &why) == -1,
	    "a symbolic link is not followed");
}

static void
cleanup(void)
{
	char	cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "throttle-test: could not remove %s\n", dir);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("throttle-test: mkdtemp");
		return 1;
	}
	test_keys();
	test_count();
	test_flood();
	test_writers();
	test_bad_files();
	cleanup();
	return tap_done();
}
