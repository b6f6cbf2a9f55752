/*
 * replay-test.c -- unit tests of replay.c, TAP on stdout: a block is new
 * once and seen after that; of more than REPLAY_RING blocks the last
 * REPLAY_RING are all remembered and the oldest forgotten in order, a
 * fresh block is not seen, and the file's size never changes; writer
 * processes at once lose no block, and of processes offering the same
 * block exactly one records it; damaged files are replaced and foreign
 * ones left alone.
 */

#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usmtp.h"
#include "tap.h"

#define BLOCK_BYTES	RSA_CIPHER_BYTES
#define EXTRA		100000	/* blocks beyond REPLAY_RING */
#define SIZE_EVERY	65536	/* check the file size this often */
#define WRITERS		4	/* processes recording at once */
#define WRITES		25000	/* blocks each */
#define RACERS		8	/* processes offering one block */

static char	dir[] = "/tmp/replay-test.XXXXXX";
static char	db[sizeof(dir) + 16];
static unsigned char tail[BLOCK_BYTES];

static void	block(uint64_t n, unsigned char *b);
static int	offer(const char *path, uint64_t n, int *seen,
		    const char **why);
static off_t	size_of(const char *path);
static int	count_files(void);
static void	test_basic(void);
static void	test_flood(void);
static void	test_writers(void);
static void	test_race(void);
static void	test_damaged(void);
static void	test_foreign(void);

/* Block number n: n in its first 8 bytes, the same random tail. */
static void
block(uint64_t n, unsigned char *b)
{
	memcpy(b, tail, BLOCK_BYTES);
	memcpy(b, &n, sizeof(n));
}

static int
offer(const char *path, uint64_t n, int *seen, const char **why)
{
	unsigned char	b[BLOCK_BYTES];

	block(n, b);
	return replay_check_insert(path, b, sizeof(b), seen, why);
}

static off_t
size_of(const char *path)
{
	struct stat	st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Files in dir: the replay file and any temporary left behind. */
static int
count_files(void)
{
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
test_basic(void)
{
	struct stat	 st;
	const char	*why = "";
	int		 seen = -1, r;

	r = offer(db, 1, &seen, &why);
	ok(r == 0 && seen == 0, "a first block is new and the file is made "
	    "(r %d seen %d: %s)", r, seen, why);
	ok(stat(db, &st) == 0 && (st.st_mode & 0777) == 0600,
	    "the file is mode 0600");
	ok(size_of(db) == REPLAY_FILE_BYTES, "the file is %lld bytes (got "
	    "%lld)",
	    (long long)REPLAY_FILE_BYTES, (long long)size_of(db));
	ok(count_files() == 1, "no temporary file is left beside it");
	r = offer(db, 1, &seen, &why);
	ok(r == 0 && seen == 1, "the same block again is seen (r %d seen %d)",
	    r, seen);
	r = offer(db, 2, &seen, &why);
	ok(r == 0 && seen == 0, "another block is new (r %d seen %d)", r, seen);
	r = offer(db, 1, &seen, &why);
	ok(r == 0 && seen == 1, "the first is still seen (r %d seen %d)", r,
	    seen);
	unlink(db);
}

/*
 * REPLAY_RING + EXTRA blocks: all new when recorded, then the last
 * REPLAY_RING all seen, a fresh one not, the oldest forgotten first.
 */
static void
test_flood(void)
{
	const char	*why = "";
	uint64_t	 n, total = REPLAY_RING + EXTRA, bad = 0, errs = 0;
	int		 seen, sizeok = 1;

	for (n = 0; n < total; n++) {
		if (offer(db, 100 + n, &seen, &why) != 0)
			errs++;
		else if (seen)
			bad++;
		if (n % SIZE_EVERY == 0 && size_of(db) != REPLAY_FILE_BYTES)
			sizeok = 0;
	}
	ok(errs == 0 && bad == 0, "%llu blocks recorded, none taken for "
	    "another (errors %llu, seen %llu: %s)", (unsigned long long)total,
	    (unsigned long long)errs, (unsigned long long)bad, why);
	ok(sizeok && size_of(db) == REPLAY_FILE_BYTES,
	    "the file size never changed");
	bad = 0;
	for (n = total - REPLAY_RING; n < total; n++)
		if (offer(db, 100 + n, &seen, &why) != 0 || !seen)
			bad++;
	ok(bad == 0, "all of the last %d are still seen (%llu not)",
	    REPLAY_RING, (unsigned long long)bad);
	ok(offer(db, 1ULL << 40, &seen, &why) == 0 && !seen,
	    "a fresh block is not seen");
	/* The fresh block pushed out the oldest of those kept, and only
	 * it (checking a seen block records nothing). */
	ok(offer(db, 100 + total - REPLAY_RING + 1, &seen, &why) == 0 && seen,
	    "the second oldest kept is still seen");
	ok(offer(db, 100 + total - REPLAY_RING, &seen, &why) == 0 && !seen,
	    "the oldest kept was forgotten when the fresh one came");
	ok(offer(db, 100, &seen, &why) == 0 && !seen,
	    "the very first block was forgotten long ago");
	ok(size_of(db) == REPLAY_FILE_BYTES, "the file size is still %lld",
	    (long long)REPLAY_FILE_BYTES);
	unlink(db);
}

/* WRITERS processes record WRITES distinct blocks each, at once. */
static void
test_writers(void)
{
	const char	*why = "";
	pid_t		 pid[WRITERS];
	uint64_t	 n, missing = 0;
	int		 i, st, seen, fails = 0;

	for (i = 0; i < WRITERS; i++) {
		if ((pid[i] = fork()) == 0) {
			int	bad = 0;

			for (n = 0; n < WRITES; n++)
				if (offer(db, ((uint64_t)(i + 1) << 32) + n,
				    &seen, &why) != 0 || seen)
					bad = 1;
			_exit(bad);
		}
	}
	for (i = 0; i < WRITERS; i++)
		if (pid[i] == -1 || waitpid(pid[i], &st, 0) == -1 ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fails++;
	ok(fails == 0, "%d processes recorded %d blocks each at once "
	    "(%d failed)", WRITERS, WRITES, fails);
	for (i = 0; i < WRITERS; i++)
		for (n = 0; n < WRITES; n++)
			if (offer(db, ((uint64_t)(i + 1) << 32) + n, &seen,
			    &why) != 0 || !seen)
				missing++;
	ok(missing == 0, "none of the %d blocks was lost (%llu missing)",
	    WRITERS * WRITES, (unsigned long long)missing);
	unlink(db);
}

/* RACERS processes offer one block at the same moment: one records it. */
static void
test_race(void)
{
	const char	*why = "";
	pid_t		 pid[RACERS];
	char		 c;
	int		 go[2], i, st, seen, news = 0, seens = 0;

	if (pipe(go) == -1)
		abort();
	for (i = 0; i < RACERS; i++) {
		if ((pid[i] = fork()) == 0) {
			close(go[1]);
			/* until the parent closes its end */
			if (read(go[0], &c, 1) == -1)
				_exit(2);
			if (offer(db, 7, &seen, &why) != 0)
				_exit(2);
			_exit(seen);
		}
	}
	close(go[0]);
	close(go[1]);
	for (i = 0; i < RACERS; i++)
		if (pid[i] != -1 && waitpid(pid[i], &st, 0) != -1 &&
		    WIFEXITED(st)) {
			news += WEXITSTATUS(st) == 0;
			seens += WEXITSTATUS(st) == 1;
		}
	ok(news == 1 && seens == RACERS - 1, "of %d processes offering one "
	    "block at once (the file made meanwhile), one recorded it "
	    "(%d new, %d seen)", RACERS, news, seens);
	ok(count_files() == 1, "no temporary file is left by the ones that "
	    "lost the race to make the file");
	unlink(db);
}

/* Damaged files: replaced (1, why), then working. */
static void
test_damaged(void)
{
	static unsigned char	 junk[1 << 16];
	const char		*why = "";
	size_t			 i;
	off_t			 off;
	int			 fd, r, seen = -1;

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 2654435761U >> 13);
	/* random bytes of exactly our size */
	must((fd = open(db, O_WRONLY | O_CREAT | O_TRUNC, 0600)) != -1,
	    "open");
	for (off = 0; off < REPLAY_FILE_BYTES; off += sizeof(junk))
		must(write(fd, junk, sizeof(junk)) == sizeof(junk), "write");
	must(ftruncate(fd, REPLAY_FILE_BYTES) == 0, "ftruncate");
	close(fd);
	r = offer(db, 1, &seen, &why);
	ok(r == 1 && seen == 0 && strstr(why, "damaged") != NULL,
	    "junk of our size is replaced (r %d seen %d: %s)", r, seen, why);
	r = offer(db, 1, &seen, &why);
	ok(r == 0 && seen == 1, "the new file works (r %d seen %d)", r, seen);
	ok(size_of(db) == REPLAY_FILE_BYTES && count_files() == 1,
	    "it has our size, and nothing is left beside it");

	/* ours, cut short */
	must(truncate(db, 1 << 20) == 0, "truncate");
	r = offer(db, 2, &seen, &why);
	ok(r == 1 && seen == 0 && size_of(db) == REPLAY_FILE_BYTES,
	    "a file of ours cut short is replaced (r %d: %s)", r, why);

	/* empty */
	must(truncate(db, 0) == 0, "truncate");
	r = offer(db, 3, &seen, &why);
	ok(r == 1 && seen == 0 && size_of(db) == REPLAY_FILE_BYTES,
	    "an empty file is replaced (r %d: %s)", r, why);

	/* a good header over an index with no empty slot */
	must((fd = open(db, O_WRONLY)) != -1, "open");
	memset(junk, 0xa5, sizeof(junk));
	for (off = 4096 + 8 * (off_t)REPLAY_RING; off < REPLAY_FILE_BYTES;
	    off += sizeof(junk))
		must(pwrite(fd, junk, sizeof(junk), off) == sizeof(junk),
		    "pwrite");
	close(fd);
	r = offer(db, 4, &seen, &why);
	ok(r == 1 && seen == 0 && strstr(why, "index") != NULL,
	    "an index with no empty slot is replaced (r %d: %s)", r, why);
	r = offer(db, 4, &seen, &why);
	ok(r == 0 && seen == 1, "and the block offered then was recorded in "
	    "the new file");
	unlink(db);
}

/* Foreign or unusable paths: -1, nothing changed. */
static void
test_foreign(void)
{
	static const char	 text[] = "alice@example.org\tsecret\n";
	char			 buf[sizeof(text)], path[sizeof(dir) + 32];
	const char		*why = "";
	int			 fd, r, seen;

	must((fd = open(db, O_WRONLY | O_CREAT | O_TRUNC, 0600)) != -1,
	    "open");
	must(write(fd, text, sizeof(text) - 1) == sizeof(text) - 1, "write");
	close(fd);
	r = offer(db, 1, &seen, &why);
	ok(r == -1 && strstr(why, "not a usmtp replay file") != NULL,
	    "another file of another size fails (%s)", why);
	fd = open(db, O_RDONLY);
	memset(buf, 0, sizeof(buf));
	ok(read(fd, buf, sizeof(buf)) == (ssize_t)sizeof(text) - 1 &&
	    memcmp(buf, text, sizeof(text) - 1) == 0 &&
	    size_of(db) == (off_t)sizeof(text) - 1,
	    "and is left as it was");
	close(fd);
	unlink(db);

	must(mkdir(db, 0700) == 0, "mkdir");
	r = offer(db, 1, &seen, &why);
	ok(r == -1, "a directory fails (%s)", why);
	rmdir(db);

	snprintf(path, sizeof(path), "%s/nodir/replay.db", dir);
	r = offer(path, 1, &seen, &why);
	ok(r == -1 && strcmp(why, strerror(ENOENT)) == 0,
	    "a missing directory fails (%s)", why);

	snprintf(path, sizeof(path), "%s/elsewhere", dir);
	must(symlink(path, db) == 0, "symlink");
	r = offer(db, 1, &seen, &why);
	ok(r == -1 && size_of(path) == -1, "a symbolic link is not followed "
	    "(%s)", why);
	unlink(db);
}

int
main(void)
{
	FILE	*f;

	must(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(db, sizeof(db), "%s/replay.db", dir);
	if ((f = fopen("/dev/urandom", "rb")) == NULL ||
	    fread(tail, 1, sizeof(tail), f) != sizeof(tail))
		abort();
	fclose(f);
	test_basic();
	test_race();
	test_writers();
	test_damaged();
	test_foreign();
	test_flood();
	remove_tree(dir);
	return tap_done();
}
