/*
 * replay.c -- the replay cache (usmtp(7), CAVEATS): the client alone
 * picks the session key, so the bytes of a recorded session make a valid
 * session again.  A fixed-size state file shared by every handler
 * process under flock(2) remembers a keyed fingerprint of each accepted
 * RSA key block, at least the REPLAY_RING most recent ones; the handler
 * refuses a block it finds there.  Never prints or exits: callers fail
 * open on -1.
 *
 * File layout (native byte order, the file never leaves the host):
 *	header, REPLAY_HDR_BYTES: magic "USMTPRP1", ring and index sizes,
 *	    fingerprint and header sizes (uint32 each), 32 random salt
 *	    bytes, the count of blocks recorded (uint64), zeros;
 *	ring, REPLAY_RING fingerprints in the order recorded: the next one
 *	    goes to position count % REPLAY_RING, over the oldest;
 *	index, REPLAY_INDEX slots: the same fingerprints in an open-addressed
 *	    hash table (linear probing from the fingerprint's low bits;
 *	    0 is an empty slot).
 * A fingerprint is the first 8 bytes of SHA-256(salt || block), never 0.
 * The index holds exactly the fingerprints in the ring: recording one
 * removes the one it overwrites in the ring from the index (by shifting
 * the cluster back, no tombstones), so the table stays at most half
 * full, whatever the traffic, and a lookup reads one or two 512-byte
 * windows of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "usmtp.h"

#define REPLAY_MAGIC		"USMTPRP1"
#define REPLAY_HDR_BYTES	4096	/* the ring starts on a page */
#define REPLAY_FP_BYTES		8
#define REPLAY_RING_OFF		((off_t)REPLAY_HDR_BYTES)
#define REPLAY_INDEX_OFF	(REPLAY_RING_OFF + \
	    (off_t)REPLAY_RING * REPLAY_FP_BYTES)
#define REPLAY_MASK		((uint64_t)REPLAY_INDEX - 1)
#define REPLAY_SALT_BYTES	32
#define REPLAY_WIN_SLOTS	64	/* index slots read at once: 512 B */
#define REPLAY_WINS		4	/* windows kept during one update */
#define REPLAY_LOCK_WAIT_MS	1000	/* then give up: fail open */
#define REPLAY_LOCK_STEP_MS	2
#define REPLAY_TRIES		4	/* opens, if replaced meanwhile */

struct rhdr {
	char		magic[8];
	uint32_t	ring, index;	/* REPLAY_RING, REPLAY_INDEX */
	uint32_t	fpbytes, hdrbytes;
	unsigned char	salt[REPLAY_SALT_BYTES];
	uint64_t	count;		/* blocks recorded since made */
};

/* A cached run of index slots, written back when dirty. */
struct win {
	uint64_t	base;		/* first slot, n * WIN_SLOTS */
	int		used, dirty;
	uint64_t	slot[REPLAY_WIN_SLOTS];
};

struct rdb {
	int		fd;
	struct rhdr	h;
	struct win	w[REPLAY_WINS];
	unsigned	next;		/* window to reuse next */
};

static int	rdb_open(const char *path, struct rdb *db,
		    const char **damage, const char **why);
static int	rdb_lock(int fd, const char **why);
static int	rdb_create(const char *path, int replace, const char **why);
static int	record(struct rdb *db, const void *block, size_t len,
		    int *seen, const char **why);
static int	fingerprint(const struct rdb *db, const void *block,
		    size_t len, uint64_t *fp, const char **why);
static int	find(struct rdb *db, uint64_t fp, uint64_t *at,
		    const char **why);
static int	erase(struct rdb *db, uint64_t i, const char **why);
static struct win *window(struct rdb *db, uint64_t i, const char **why);
static int	win_write(struct rdb *db, struct win *w, const char **why);
static int	flush(struct rdb *db, const char **why);
static int	io_error(ssize_t n, size_t want, const char **why);

int
replay_check_insert(const char *path, const void *block, size_t len,
    int *seen, const char **why)
{
	struct rdb	 db;
	const char	*damage = NULL;
	int		 r, tries;

	*seen = 0;
	for (tries = 0; tries < REPLAY_TRIES; tries++) {
		if ((r = rdb_open(path, &db, &damage, why)) == -1)
			return -1;
		if (r == 1)
			continue;	/* made or replaced: open it anew */
		r = record(&db, block, len, seen, why);
		if (r == -2 && damage == NULL) {
			/* The index is inconsistent beyond use: a new file.
			 * We still hold the old one's lock, so nobody else
			 * replaces it at the same time. */
			damage = *why;
			r = rdb_create(path, 1, why);
			close(db.fd);
			if (r == -1)
				return -1;
			continue;
		}
		close(db.fd);	/* drops the lock */
		if (r < 0)
			return -1;
		if (damage != NULL) {
			*why = damage;
			return 1;
		}
		return 0;
	}
	*why = "the file was replaced too often while we opened it";
	return -1;
}

/*
 * Opens the file, locks it exclusively and reads its header.  Returns 0
 * with db->fd open and locked; 1 when the file was missing and has been
 * made, or was damaged and has been replaced (*damage says how, once):
 * open it again; -1 (*why).
 */
static int
rdb_open(const char *path, struct rdb *db, const char **damage,
    const char **why)
{
	struct stat	 st;
	const char	*bad = NULL;
	ssize_t		 n;
	int		 fd, ours, r;

	memset(db, 0, sizeof(*db));
	db->fd = -1;
	/* O_NONBLOCK: a FIFO put in its place must not hang us. */
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1) {
		if (errno != ENOENT) {
			*why = strerror(errno);
			return -1;
		}
		return rdb_create(path, 0, why) == -1 ? -1 : 1;
	}
	if (rdb_lock(fd, why) == -1)
		goto fail;
	if (fstat(fd, &st) == -1) {
		*why = strerror(errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto fail;
	}
	/* Replaced (renamed over) while we waited for the lock?  Then
	 * take the new one.  No stat(path): one system call less. */
	if (st.st_nlink == 0) {
		close(fd);
		return 1;
	}
	n = pread(fd, &db->h, sizeof(db->h), 0);
	if (n == -1) {
		*why = strerror(errno);
		goto fail;
	}
	ours = n >= (ssize_t)sizeof(db->h.magic) &&
	    memcmp(db->h.magic, REPLAY_MAGIC, sizeof(db->h.magic)) == 0;
	if (!ours)
		bad = "damaged: not a replay file";
	else if (n != (ssize_t)sizeof(db->h) || db->h.ring != REPLAY_RING ||
	    db->h.index != REPLAY_INDEX || db->h.fpbytes != REPLAY_FP_BYTES ||
	    db->h.hdrbytes != REPLAY_HDR_BYTES)
		bad = "damaged: header";
	else if (st.st_size != REPLAY_FILE_BYTES)
		bad = "damaged: wrong size";
	if (bad == NULL) {
		db->fd = fd;
		return 0;
	}
	/*
	 * Replace only what can have been ours: our magic, our exact size,
	 * or empty.  Anything else may be some other file named by
	 * mistake, and is left alone.
	 */
	if ((ours || st.st_size == REPLAY_FILE_BYTES || st.st_size == 0) &&
	    *damage == NULL) {
		*damage = bad;
		r = rdb_create(path, 1, why);
		close(fd);
		return r == -1 ? -1 : 1;
	}
	*why = *damage != NULL ? *damage :
	    "not a usmtp replay file (left alone: remove it)";
fail:
	close(fd);
	return -1;
}

/* flock(2) with a bounded wait: a stuck holder must not stall sessions. */
static int
rdb_lock(int fd, const char **why)
{
	struct timespec	ts = { 0, REPLAY_LOCK_STEP_MS * 1000000L };
	long		start = clock_ms();

	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			*why = strerror(errno);
			return -1;
		}
		if (clock_ms() - start >= REPLAY_LOCK_WAIT_MS) {
			*why = "locked by another process for too long";
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	return 0;
}

/*
 * Makes a complete new file under a temporary name beside path (mode
 * 0600, a fresh salt, an empty ring and index, sparse), flushes it to
 * disk and puts it in place: with link(2) when path should not exist
 * (someone else's new file wins: fine), with rename(2) over a damaged
 * one.  Readers see the old file or the whole new one, never a part.
 */
static int
rdb_create(const char *path, int replace, const char **why)
{
	struct rhdr	h;
	char		tmp[PATH_MAX];
	ssize_t		n;
	size_t		got;
	int		fd, n2;

	n2 = snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
	if (n2 < 0 || (size_t)n2 >= sizeof(tmp)) {
		*why = "path too long";
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		*why = strerror(errno);
		return -1;
	}
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, REPLAY_MAGIC, sizeof(h.magic));
	h.ring = REPLAY_RING;
	h.index = REPLAY_INDEX;
	h.fpbytes = REPLAY_FP_BYTES;
	h.hdrbytes = REPLAY_HDR_BYTES;
	/* The salt keeps slots unpredictable: nobody can choose blocks
	 * that crowd one part of the index.  No weak fallback. */
	for (got = 0; got < sizeof(h.salt); got += (size_t)n) {
		n = getrandom(h.salt + got, sizeof(h.salt) - got, 0);
		if (n == -1 && errno == EINTR)
			n = 0;
		else if (n == -1) {
			*why = "no random salt";
			goto fail;
		}
	}
	if (ftruncate(fd, REPLAY_FILE_BYTES) == -1 ||
	    io_error(pwrite(fd, &h, sizeof(h), 0), sizeof(h), why) == -1 ||
	    fsync(fd) == -1) {
		if (errno != 0)
			*why = strerror(errno);
		goto fail;
	}
	close(fd);
	fd = -1;
	if (replace) {
		if (rename(tmp, path) == -1) {
			*why = strerror(errno);
			goto fail;
		}
		return 0;
	}
	if (link(tmp, path) == -1 && errno != EEXIST) {
		*why = strerror(errno);
		goto fail;
	}
	unlink(tmp);
	return 0;
fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

/*
 * Looks the block up and records it when new.  0 (*seen), -1 (*why) on
 * an I/O error, -2 (*why) when the index is damaged beyond use.
 */
static int
record(struct rdb *db, const void *block, size_t len, int *seen,
    const char **why)
{
	struct win	*w;
	uint64_t	 fp, old, at, where, pos;
	ssize_t		 n;
	int		 r;

	if (fingerprint(db, block, len, &fp, why) == -1)
		return -1;
	if ((r = find(db, fp, &at, why)) < 0)
		return r;
	if (r == 1) {
		*seen = 1;	/* not recorded again: it keeps its age */
		return 0;
	}
	pos = db->h.count % REPLAY_RING;
	if (db->h.count >= REPLAY_RING) {
		/* The ring is full: the oldest at pos goes, from both. */
		n = pread(db->fd, &old, sizeof(old), REPLAY_RING_OFF +
		    (off_t)(pos * REPLAY_FP_BYTES));
		if (io_error(n, sizeof(old), why) == -1)
			return -1;
		/* Not in the index: a process died halfway; nothing to do. */
		if (old != 0 && (r = find(db, old, &where, why)) != 0) {
			if (r < 0)
				return r;
			if ((r = erase(db, where, why)) < 0)
				return r;
			/* the cluster moved: fp's free slot may have too */
			if ((r = find(db, fp, &at, why)) < 0)
				return r;
		}
	}
	if ((w = window(db, at, why)) == NULL)
		return -1;
	w->slot[at % REPLAY_WIN_SLOTS] = fp;
	w->dirty = 1;
	if (flush(db, why) == -1)
		return -1;
	n = pwrite(db->fd, &fp, sizeof(fp), REPLAY_RING_OFF +
	    (off_t)(pos * REPLAY_FP_BYTES));
	if (io_error(n, sizeof(fp), why) == -1)
		return -1;
	db->h.count++;
	n = pwrite(db->fd, &db->h.count, sizeof(db->h.count),
	    offsetof(struct rhdr, count));
	if (io_error(n, sizeof(db->h.count), why) == -1)
		return -1;
	*seen = 0;
	return 0;
}

static int
fingerprint(const struct rdb *db, const void *block, size_t len,
    uint64_t *fp, const char **why)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	EVP_MD_CTX	*ctx;
	int		 ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		*why = "out of memory";
		return -1;
	}
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, db->h.salt, sizeof(db->h.salt)) == 1 &&
	    EVP_DigestUpdate(ctx, block, len) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		*why = "SHA-256 failed";
		return -1;
	}
	memcpy(fp, md, sizeof(*fp));
	if (*fp == 0)
		*fp = 1;	/* 0 marks an empty slot */
	return 0;
}

/*
 * Probes from fp's home slot.  1 and *at when fp is there; 0 and *at the
 * first empty slot when not; -1 (*why) on an I/O error; -2 when there is
 * no empty slot at all (only a damaged file can be that full).
 */
static int
find(struct rdb *db, uint64_t fp, uint64_t *at, const char **why)
{
	struct win	*w;
	uint64_t	 i, n, v;

	i = fp & REPLAY_MASK;
	for (n = 0; n < REPLAY_INDEX; n++) {
		if ((w = window(db, i, why)) == NULL)
			return -1;
		v = w->slot[i % REPLAY_WIN_SLOTS];
		if (v == 0 || v == fp) {
			*at = i;
			return v == fp;
		}
		i = (i + 1) & REPLAY_MASK;
	}
	*why = "damaged: index full";
	return -2;
}

/*
 * Empties slot i and moves later slots of its cluster back where their
 * home allows (linear probing's deletion, Knuth 6.4 algorithm R), so that
 * every fingerprint stays reachable from its home without tombstones.
 */
static int
erase(struct rdb *db, uint64_t i, const char **why)
{
	struct win	*wi, *wj;
	uint64_t	 j = i, k, n, v;

	for (n = 0; n < REPLAY_INDEX; n++) {
		j = (j + 1) & REPLAY_MASK;
		if ((wj = window(db, j, why)) == NULL)
			return -1;
		v = wj->slot[j % REPLAY_WIN_SLOTS];
		if (v != 0) {
			k = v & REPLAY_MASK;
			/* v may stay if its home k is cyclically in (i, j] */
			if (i <= j ? i < k && k <= j : i < k || k <= j)
				continue;
		}
		if ((wi = window(db, i, why)) == NULL)
			return -1;
		wi->slot[i % REPLAY_WIN_SLOTS] = v;
		wi->dirty = 1;
		if (v == 0)
			return 0;
		i = j;
	}
	*why = "damaged: index full";
	return -2;
}

/* The cached window holding slot i, read in if needed; NULL (*why). */
static struct win *
window(struct rdb *db, uint64_t i, const char **why)
{
	struct win	*w;
	uint64_t	 base = i - i % REPLAY_WIN_SLOTS;
	ssize_t		 n;
	size_t		 k;

	for (k = 0; k < REPLAY_WINS; k++)
		if (db->w[k].used && db->w[k].base == base)
			return &db->w[k];
	w = &db->w[db->next];
	db->next = (db->next + 1) % REPLAY_WINS;
	if (w->used && w->dirty && win_write(db, w, why) == -1)
		return NULL;
	w->used = 0;
	n = pread(db->fd, w->slot, sizeof(w->slot), REPLAY_INDEX_OFF +
	    (off_t)(base * REPLAY_FP_BYTES));
	if (io_error(n, sizeof(w->slot), why) == -1)
		return NULL;
	w->base = base;
	w->used = 1;
	w->dirty = 0;
	return w;
}

static int
win_write(struct rdb *db, struct win *w, const char **why)
{
	ssize_t	n;

	n = pwrite(db->fd, w->slot, sizeof(w->slot), REPLAY_INDEX_OFF +
	    (off_t)(w->base * REPLAY_FP_BYTES));
	if (io_error(n, sizeof(w->slot), why) == -1)
		return -1;
	w->dirty = 0;
	return 0;
}

static int
flush(struct rdb *db, const char **why)
{
	size_t	k;

	for (k = 0; k < REPLAY_WINS; k++)
		if (db->w[k].used && db->w[k].dirty &&
		    win_write(db, &db->w[k], why) == -1)
			return -1;
	return 0;
}

/* -1 (*why) unless a pread/pwrite moved exactly want bytes. */
static int
io_error(ssize_t n, size_t want, const char **why)
{
	if (n == (ssize_t)want)
		return 0;
	if (n == -1)
		*why = strerror(errno);
	else {
		*why = "short read or write";
		errno = 0;
	}
	return -1;
}
