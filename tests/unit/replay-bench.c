/*
 * replay-bench.c -- "make bench" driver: what one replay check costs a
 * session.  Fills a fresh replay cache at FILE past REPLAY_RING blocks,
 * then times single replay_check_insert() calls, each the whole of what
 * a handler does (open, lock, look up, record, close): fresh blocks
 * with the cache full (each pushes out the oldest), blocks just recorded
 * (a replay), and fresh blocks with the file's pages dropped from the
 * page cache first (a cold cache: every page read from the disk).
 * Prints one line: the fill's seconds, then microseconds: fresh median
 * and 99th percentile, replay median, cold median and 99th percentile.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usmtp.h"

#define BLOCK_BYTES	RSA_CIPHER_BYTES
#define FILL		(REPLAY_RING + 4096)
#define TIMED		10000	/* warm calls timed, each kind */
#define COLD		200	/* cold calls timed */

static unsigned char	tail[BLOCK_BYTES];

static double	now_us(void);
static int	offer(const char *path, uint64_t n, int *seen);
static int	cmp_double(const void *a, const void *b);
static double	pct(double *v, size_t n, double p);
static void	drop_cache(const char *path);
static int	fail(const char *what, uint64_t n);

static double
now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
offer(const char *path, uint64_t n, int *seen)
{
	unsigned char	 b[BLOCK_BYTES];
	const char	*why;

	memcpy(b, tail, sizeof(b));
	memcpy(b, &n, sizeof(n));
	if (replay_check_insert(path, b, sizeof(b), seen, &why) != 0) {
		fprintf(stderr, "replay-bench: %s: %s\n", path, why);
		exit(1);
	}
	return *seen;
}

static int
fail(const char *what, uint64_t n)
{
	fprintf(stderr, "replay-bench: %s (block %llu)\n", what,
	    (unsigned long long)n);
	return 1;
}

static int
cmp_double(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile of v[0..n), sorting v. */
static double
pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(p / 100 * (double)(n - 1))];
}

/* Writes the file's dirty pages out, then drops all of its pages. */
static void
drop_cache(const char *path)
{
	int	fd;

	if ((fd = open(path, O_RDONLY)) == -1 || fdatasync(fd) == -1 ||
	    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
		fprintf(stderr, "replay-bench: %s: %s\n", path,
		    strerror(errno));
		exit(1);
	}
	close(fd);
}

int
main(int argc, char *argv[])
{
	static double	 fresh[TIMED], replay[TIMED], cold[COLD];
	const char	*path;
	double		 t0, fill;
	uint64_t	 n, next = 0;
	size_t		 i;
	FILE		*f;
	int		 seen;

	if (argc != 2) {
		fprintf(stderr, "usage: replay-bench FILE\n");
		return 64;
	}
	path = argv[1];
	unlink(path);
	if ((f = fopen("/dev/urandom", "rb")) == NULL ||
	    fread(tail, 1, sizeof(tail), f) != sizeof(tail))
		return 1;
	fclose(f);
	t0 = now_us();
	for (n = 0; n < FILL; n++)
		if (offer(path, next++, &seen))
			return fail("a fresh block was seen", next - 1);
	fill = (now_us() - t0) / 1e6;
	for (i = 0; i < TIMED; i++) {
		t0 = now_us();
		if (offer(path, next++, &seen))
			return fail("a fresh block was seen", next - 1);
		fresh[i] = now_us() - t0;
	}
	for (i = 0; i < TIMED; i++) {
		t0 = now_us();
		if (!offer(path, next - 1 - i, &seen))
			return fail("a recorded block was not seen",
			    next - 1 - i);
		replay[i] = now_us() - t0;
	}
	for (i = 0; i < COLD; i++) {
		drop_cache(path);
		t0 = now_us();
		if (offer(path, next++, &seen))
			return fail("a fresh block was seen", next - 1);
		cold[i] = now_us() - t0;
	}
	printf("%.1f %.1f %.1f %.1f %.1f %.1f\n", fill,
	    pct(fresh, TIMED, 50), pct(fresh, TIMED, 99),
	    pct(replay, TIMED, 50), pct(cold, COLD, 50), pct(cold, COLD, 99));
	return 0;
}
