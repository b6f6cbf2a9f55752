/*
 * throttle.c -- failed logins across connections (usmtp(7), Login, the
 * throttle extension; the protocol limits one connection only), counted
 * per client address, per network and per account in a fixed-size state
 * file shared by every handler process, locked with flock(2).  The
 * handler decides what a failure is and what to answer, usmtp-users lists
 * and clears entries; this file only counts, and never prints or exits.
 * Callers fail open on -1.
 *
 * File layout (native byte order, the file never leaves the host):
 *	header, THROTTLE_HDR_BYTES: magic "USMTPTH2", slot count, slot
 *	    size, 16 random salt bytes, the limits of the handler that last
 *	    counted a failure (max, net_max, window: for usmtp-users), zeros;
 *	THROTTLE_SLOTS slots of THROTTLE_SLOT_BYTES: kind (1 byte; 0 empty),
 *	    3 zero bytes, failures (uint32), time of the last one (int64,
 *	    seconds since the epoch), id (16 bytes: the address or prefix,
 *	    zeros past it, or the account's salted hash).
 * An entry lives in one of THROTTLE_PROBE slots after the salted hash of
 * its kind and id; a new one takes, in this order, an empty slot, an
 * expired one, the least recent of those still counting, and only when
 * all of them are throttled the least recent throttled one.  So the file
 * never grows past its fixed size, whatever the number of keys.
 *
 * The file is made whole under a temporary name and linked into place,
 * so no process ever sees half of one; one found damaged (wrong size,
 * zero-filled header, bad magic) is replaced the same way when it looks
 * like ours (no access for group or others, not larger than ours), and
 * the caller is told (struct throttle, repaired) so that it logs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "usmtp.h"

#define THROTTLE_MAGIC		"USMTPTH2"
#define THROTTLE_HDR_BYTES	64
#define THROTTLE_SLOT_BYTES	32
#define THROTTLE_FILE_BYTES	(THROTTLE_HDR_BYTES + \
	    (off_t)THROTTLE_SLOTS * THROTTLE_SLOT_BYTES)
#define THROTTLE_LOCK_WAIT_MS	1000	/* then give up: fail open */
#define THROTTLE_LOCK_STEP_MS	5
#define THROTTLE_SKEW_SEC	60	/* a last failure this far in the
					 * future: clock stepped back */
#define THROTTLE_OPEN_TRIES	5	/* replaced under us this often: give up */
#define ZERO_CHUNK_BYTES	8192
#define CHUNK_SLOTS		512	/* read at once to list or clear */
#define WHY_BYTES		256

/* tdb_open() flags */
#define TDB_WRITE		0x1	/* exclusive lock, read-write */
#define TDB_CREATE		0x2	/* make a missing file */
#define TDB_REPAIR		0x4	/* replace a damaged file of ours */

/* tdb_try() results */
enum { T_OK, T_NOFILE, T_DAMAGED, T_RACE, T_ERROR };

struct hdr {
	char		magic[8];
	uint32_t	slots, slotsize;
	unsigned char	salt[16];
	uint32_t	max, net_max, window;
	unsigned char	pad[THROTTLE_HDR_BYTES - 44];
};

struct slot {
	uint8_t		kind;
	uint8_t		zero[3];
	uint32_t	count;
	int64_t		last;
	unsigned char	id[16];
};

_Static_assert(sizeof(struct hdr) == THROTTLE_HDR_BYTES, "header size");
_Static_assert(sizeof(struct slot) == THROTTLE_SLOT_BYTES, "slot size");
_Static_assert(THROTTLE_SLOTS % CHUNK_SLOTS == 0, "whole chunks");

static char whybuf[WHY_BYTES];

static int	make_key(int, const unsigned char *, int, struct throttle_key *);
static int	is_v4(const unsigned char *);
static int	tdb_open(struct throttle *, int, int *, struct hdr *,
		    const char **);
static int	tdb_try(const char *, int, int *, struct hdr *, const char **,
		    const char **);
static const char *tdb_damage(int, const struct stat *, struct hdr *);
static int	tdb_ours(const struct stat *);
static int	tdb_repair(const char *, const char **, const char **);
static int	tdb_create(const char *, const struct stat *, const char **);
static int	tdb_fill(int, const char **);
static int	tdb_lock(int, int, const char **);
static int	same_file(const char *, int);
static uint64_t	mix(uint64_t);
static uint64_t	le64(const unsigned char *);
static uint64_t	siphash(const unsigned char *, const unsigned char *, size_t);
static void	key_id(const struct hdr *, const struct throttle_key *,
		    unsigned char *);
static size_t	home(const struct hdr *, int, const unsigned char *);
static int	chunk_read(int, size_t, struct slot *, const char **);
static int	put(int, const void *, size_t, off_t, const char **);
static int	clear_one(int, const struct hdr *, const struct throttle_key *,
		    unsigned *, const char **);
static int	clear_all(int, unsigned *, const char **);
static int	slot_write(int, size_t, const struct slot *, const char **);
static int	probe_read(int, size_t, struct slot *, const char **);
static int	probe_find(const struct slot *, int, const unsigned char *,
		    size_t *);
static int	slot_find(int, const struct hdr *, int, const unsigned char *,
		    size_t *, struct slot *, const char **);
static int	slot_live(const struct slot *, unsigned, time_t);
static int	slot_rank(const struct throttle *, const struct slot *,
		    time_t);
static int	count_one(const struct throttle *, int, const struct hdr *,
		    const struct throttle_key *, time_t, unsigned *,
		    const char **);

/*
 * kind's key of the 16-byte address a (v4: ::ffff:a.b.c.d), cut to its
 * prefix: an IPv4 address as it is and its /24, an IPv6 address's /64
 * and /48.  Always 1.
 */
static int
make_key(int kind, const unsigned char *a, int v4, struct throttle_key *k)
{
	size_t	keep, n;

	memset(k, 0, sizeof(*k));
	k->kind = kind;
	if (v4)
		keep = kind == THROTTLE_NET ? 15 : 16;
	else
		keep = kind == THROTTLE_NET ? 6 : 8;
	memcpy(k->id, a, keep);
	if (v4) {
		inet_ntop(AF_INET, k->id + 12, k->text, sizeof(k->text));
		if (kind == THROTTLE_NET)
			strcat(k->text, "/24");
	} else {
		inet_ntop(AF_INET6, k->id, k->text, sizeof(k->text));
		n = strlen(k->text);
		snprintf(k->text + n, sizeof(k->text) - n, "/%d",
		    kind == THROTTLE_NET ? 48 : 64);
	}
	return 1;
}

/* 1 when a 16-byte address is IPv4, mapped into IPv6 (::ffff:a.b.c.d). */
static int
is_v4(const unsigned char *a)
{
	static const unsigned char	mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};

	return memcmp(a, mapped, sizeof(mapped)) == 0;
}

int
throttle_peer(const char *peer, struct throttle_key *addr,
    struct throttle_key *net)
{
	char		 host[INET6_ADDRSTRLEN];
	const char	*end;
	size_t		 n;

	if (peer[0] == '[') {
		peer++;
		if ((end = strchr(peer, ']')) == NULL)
			return 0;
	} else if ((end = strchr(peer, ':')) == NULL)
		end = peer + strlen(peer);
	n = (size_t)(end - peer);
	if (n == 0 || n >= sizeof(host))
		return 0;
	memcpy(host, peer, n);
	host[n] = '\0';
	if (strchr(host, '/') != NULL || throttle_parse(host, addr) == -1)
		return 0;
	return make_key(THROTTLE_NET, addr->id, is_v4(addr->id), net);
}

int
throttle_parse(const char *s, struct throttle_key *k)
{
	unsigned char	 a[16];
	char		 host[INET6_ADDRSTRLEN], *end;
	const char	*slash;
	long		 bits = -1;
	size_t		 n;
	int		 v4, kind;

	if ((slash = strchr(s, '/')) != NULL) {
		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (errno != 0 || end == slash + 1 || *end != '\0' ||
		    !(slash[1] >= '0' && slash[1] <= '9'))
			return -1;
		n = (size_t)(slash - s);
	} else
		n = strlen(s);
	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, a + 12) == 1) {
		memset(a, 0, 10);
		a[10] = a[11] = 0xff;
		v4 = 1;
	} else if (inet_pton(AF_INET6, host, a) == 1)
		/* An IPv4 client of a dual-stack socket is keyed as IPv4;
		 * a native IPv6 client by its /64, the usual end site's
		 * smallest network: one host can pick any address in it. */
		v4 = is_v4(a);
	else
		return -1;
	if (bits == -1)
		kind = THROTTLE_ADDR;
	else if (bits == (v4 ? 32 : 64))
		kind = THROTTLE_ADDR;
	else if (bits == (v4 ? 24 : 48))
		kind = THROTTLE_NET;
	else
		return -1;
	return make_key(kind, a, v4, k) == 1 ? 0 : -1;
}

int
throttle_account(const char *account, struct throttle_key *k)
{
	size_t	n = strlen(account);

	memset(k, 0, sizeof(*k));
	if (n == 0 || n >= sizeof(k->text))
		return -1;
	k->kind = THROTTLE_ACCOUNT;
	memcpy(k->text, account, n + 1);
	return 0;
}

int
throttle_limited(const struct throttle *t, int kind, unsigned failures)
{
	switch (kind) {
	case THROTTLE_ADDR:
		return t->max > 0 && failures >= t->max;
	case THROTTLE_NET:
		return t->net_max > 0 && failures >= t->net_max;
	case THROTTLE_ACCOUNT:
		return throttle_delay_ms(failures) > 0;
	default:
		return 0;
	}
}

unsigned
throttle_delay_ms(unsigned failures)
{
	unsigned	ms = THROTTLE_DELAY_FIRST_MS;

	if (failures < THROTTLE_ACCOUNT_FREE)
		return 0;
	for (failures -= THROTTLE_ACCOUNT_FREE; failures > 0 &&
	    ms < THROTTLE_DELAY_MAX_MS; failures--)
		ms *= 2;
	return ms < THROTTLE_DELAY_MAX_MS ? ms : THROTTLE_DELAY_MAX_MS;
}

int
throttle_check(struct throttle *t, const struct throttle_key *keys,
    size_t n, time_t now, unsigned *failures, const char **why)
{
	unsigned char	 id[16];
	struct hdr	 h;
	struct slot	 sl;
	size_t		 i, at;
	int		 fd, r, rv = -1, limited = 0;

	for (i = 0; i < n; i++)
		failures[i] = 0;
	if ((r = tdb_open(t, TDB_REPAIR, &fd, &h, why)) <= 0)
		return r;	/* no file yet: nobody has failed */
	for (i = 0; i < n; i++) {
		key_id(&h, &keys[i], id);
		if ((r = slot_find(fd, &h, keys[i].kind, id, &at, &sl,
		    why)) == -1)
			goto out;
		if (r == 1 && slot_live(&sl, t->window, now))
			failures[i] = sl.count;
		if (keys[i].kind != THROTTLE_ACCOUNT &&
		    throttle_limited(t, keys[i].kind, failures[i]))
			limited = 1;
	}
	rv = limited;
out:
	close(fd);	/* drops the lock */
	return rv;
}

int
throttle_fail(struct throttle *t, const struct throttle_key *keys,
    size_t n, time_t now, unsigned *failures, const char **why)
{
	struct hdr	 h;
	size_t		 i;
	int		 fd, rv = -1;

	for (i = 0; i < n; i++)
		failures[i] = 0;
	if (tdb_open(t, TDB_WRITE | TDB_CREATE | TDB_REPAIR, &fd, &h,
	    why) == -1)
		return -1;
	/* The limits in force, for usmtp-users lockouts. */
	if (h.max != t->max || h.net_max != t->net_max ||
	    h.window != t->window) {
		h.max = t->max;
		h.net_max = t->net_max;
		h.window = t->window;
		if (put(fd, &h, sizeof(h), 0, why) == -1)
			goto out;
	}
	for (i = 0; i < n; i++)
		if (count_one(t, fd, &h, &keys[i], now, &failures[i],
		    why) == -1)
			goto out;
	rv = 0;
out:
	close(fd);
	return rv;
}

/* One more failure of k, in its slot or in the one it takes. */
static int
count_one(const struct throttle *t, int fd, const struct hdr *h,
    const struct throttle_key *k, time_t now, unsigned *failures,
    const char **why)
{
	unsigned char	id[16];
	struct slot	p[THROTTLE_PROBE], sl;
	size_t		i, idx, at;
	int		r, best = -1, rank;

	key_id(h, k, id);
	idx = home(h, k->kind, id);
	if (probe_read(fd, idx, p, why) == -1)
		return -1;
	r = probe_find(p, k->kind, id, &i);
	if (r == 1 && slot_live(&p[i], t->window, now)) {
		sl = p[i];
		sl.count = sl.count == UINT32_MAX ? UINT32_MAX : sl.count + 1;
	} else {
		if (r == 0) {
			/* The victim: the lowest rank, then the least recent
			 * failure.  A throttled entry goes only when all the
			 * slots hold throttled entries. */
			for (i = 0, at = 0; at < THROTTLE_PROBE; at++) {
				rank = slot_rank(t, &p[at], now);
				if (best == -1 || rank < best ||
				    (rank == best && p[at].last < p[i].last)) {
					best = rank;
					i = at;
				}
			}
		}
		memset(&sl, 0, sizeof(sl));
		sl.kind = (uint8_t)k->kind;
		memcpy(sl.id, id, sizeof(sl.id));
		sl.count = 1;
	}
	sl.last = (int64_t)now;
	if (slot_write(fd, (idx + i) % THROTTLE_SLOTS, &sl, why) == -1)
		return -1;
	*failures = sl.count;
	return 0;
}

int
throttle_list(struct throttle *t, time_t now, const char *const *names,
    size_t nnames, int (*fn)(void *, const struct throttle_entry *),
    void *arg, const char **why)
{
	static struct slot	 chunk[CHUNK_SLOTS];
	struct throttle_key	 acct;
	struct throttle_entry	 e;
	unsigned char		(*ids)[16] = NULL;
	struct hdr		 h;
	struct slot		 sl;
	size_t			 i, j;
	int			 fd, r, rv = -1;

	if ((r = tdb_open(t, 0, &fd, &h, why)) <= 0)
		return r;
	t->max = h.max;
	t->net_max = h.net_max;
	t->window = h.window;
	if (nnames > 0 && (ids = calloc(nnames, sizeof(*ids))) == NULL) {
		*why = "out of memory";
		goto out;
	}
	for (j = 0; j < nnames; j++)
		if (throttle_account(names[j], &acct) == 0)
			key_id(&h, &acct, ids[j]);
	for (i = 0; i < THROTTLE_SLOTS; i++) {
		if (i % CHUNK_SLOTS == 0 && chunk_read(fd, i, chunk, why) == -1)
			goto out;
		sl = chunk[i % CHUNK_SLOTS];
		if (sl.kind < THROTTLE_ADDR || sl.kind > THROTTLE_ACCOUNT ||
		    !slot_live(&sl, t->window, now) ||
		    !throttle_limited(t, sl.kind, sl.count))
			continue;
		memset(&e, 0, sizeof(e));
		if (sl.kind == THROTTLE_ACCOUNT) {
			e.key.kind = THROTTLE_ACCOUNT;
			memcpy(e.key.id, sl.id, sizeof(e.key.id));
			for (j = 0; j < nnames; j++)
				if (memcmp(ids[j], sl.id, 16) == 0) {
					snprintf(e.key.text,
					    sizeof(e.key.text), "%s",
					    names[j]);
					break;
				}
		} else
			make_key(sl.kind, sl.id, is_v4(sl.id), &e.key);
		e.failures = sl.count;
		e.last = (time_t)sl.last;
		e.left = (unsigned)(sl.last + (int64_t)t->window - now);
		if (fn(arg, &e) == -1) {
			*why = "stopped";
			goto out;
		}
	}
	rv = 0;
out:
	free(ids);
	close(fd);
	return rv;
}

int
throttle_clear(struct throttle *t, const struct throttle_key *k,
    unsigned *cleared, const char **why)
{
	struct hdr	 h;
	int		 fd, r;

	*cleared = 0;
	if ((r = tdb_open(t, TDB_WRITE, &fd, &h, why)) <= 0)
		return r;
	r = k != NULL ? clear_one(fd, &h, k, cleared, why) :
	    clear_all(fd, cleared, why);
	close(fd);	/* drops the lock */
	return r;
}

/* Empties k's slot, if it has one. */
static int
clear_one(int fd, const struct hdr *h, const struct throttle_key *k,
    unsigned *cleared, const char **why)
{
	static const struct slot empty;
	unsigned char	 id[16];
	struct slot	 sl;
	size_t		 at;
	int		 r;

	key_id(h, k, id);
	if ((r = slot_find(fd, h, k->kind, id, &at, &sl, why)) != 1)
		return r;
	if (slot_write(fd, at, &empty, why) == -1)
		return -1;
	*cleared = 1;
	return 0;
}

/* Empties every slot in use, a chunk at a time. */
static int
clear_all(int fd, unsigned *cleared, const char **why)
{
	static const struct slot empty;
	static struct slot	chunk[CHUNK_SLOTS];
	size_t		 i, j;
	unsigned	 n;

	for (i = 0; i < THROTTLE_SLOTS; i += CHUNK_SLOTS) {
		if (chunk_read(fd, i, chunk, why) == -1)
			return -1;
		for (j = 0, n = 0; j < CHUNK_SLOTS; j++)
			if (chunk[j].kind != 0 || chunk[j].count != 0) {
				chunk[j] = empty;
				n++;
			}
		if (n == 0)
			continue;
		if (put(fd, chunk, sizeof(chunk), THROTTLE_HDR_BYTES +
		    (off_t)i * THROTTLE_SLOT_BYTES, why) == -1)
			return -1;
		*cleared += n;
	}
	return 0;
}

/*
 * Opens and locks the file (shared, or exclusive with TDB_WRITE), making
 * it with TDB_CREATE and replacing a damaged one of ours with TDB_REPAIR
 * (t->repaired then says what was wrong).  Returns 1 with *fdp open and
 * locked and *h read; 0 when there is no file and none is to be made;
 * -1 (*why).
 */
static int
tdb_open(struct throttle *t, int flags, int *fdp, struct hdr *h,
    const char **why)
{
	const char	*damage = NULL;
	int		 tries, r;

	for (tries = 0; tries < THROTTLE_OPEN_TRIES; tries++) {
		switch (tdb_try(t->path, flags, fdp, h, &damage, why)) {
		case T_OK:
			return 1;
		case T_NOFILE:
			if (!(flags & TDB_CREATE))
				return 0;
			if (tdb_create(t->path, NULL, why) == -1)
				return -1;
			break;
		case T_DAMAGED:
			if (!(flags & TDB_REPAIR)) {
				snprintf(whybuf, sizeof(whybuf), "damaged "
				    "or not a usmtp throttle file (%s)",
				    damage);
				*why = whybuf;
				return -1;
			}
			if ((r = tdb_repair(t->path, &damage, why)) == -1)
				return -1;
			if (r == 1)
				t->repaired = damage;
			break;
		case T_RACE:
			break;	/* replaced meanwhile: open the new one */
		default:
			return -1;
		}
	}
	*why = "the file was replaced again and again while we opened it";
	return -1;
}

/*
 * One attempt of tdb_open(): T_OK (*fdp, *h), T_NOFILE, T_DAMAGED
 * (*damage says how), T_RACE (the name now points at another file, or
 * at none: a repair or a removal got in first), T_ERROR (*why).
 */
static int
tdb_try(const char *path, int flags, int *fdp, struct hdr *h,
    const char **damage, const char **why)
{
	struct stat	 st;
	int		 fd;

	/* O_NONBLOCK: a FIFO put in its place must not hang us. */
	fd = open(path, (flags & TDB_WRITE ? O_RDWR : O_RDONLY) | O_CLOEXEC |
	    O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT)
			return T_NOFILE;
		*why = strerror(errno);
		return T_ERROR;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto fail;
	}
	if (tdb_lock(fd, flags & TDB_WRITE ? LOCK_EX : LOCK_SH, why) == -1)
		goto fail;
	if (!same_file(path, fd)) {
		close(fd);
		return T_RACE;
	}
	/* Size again under the lock: another process may have made it. */
	if (fstat(fd, &st) == -1) {
		*why = strerror(errno);
		goto fail;
	}
	if ((*damage = tdb_damage(fd, &st, h)) != NULL) {
		close(fd);
		return T_DAMAGED;
	}
	*fdp = fd;
	return T_OK;
fail:
	close(fd);
	return T_ERROR;
}

/* NULL when fd (stat st) is a whole throttle file, its header in *h;
 * else what is wrong with it. */
static const char *
tdb_damage(int fd, const struct stat *st, struct hdr *h)
{
	static const struct hdr	zero;

	if (st->st_size == 0)
		return "empty";
	if (pread(fd, h, sizeof(*h), 0) != (ssize_t)sizeof(*h))
		return "shorter than a header";
	if (memcmp(h, &zero, sizeof(*h)) == 0)
		return "zero-filled header";
	if (memcmp(h->magic, "USMTPTH1", sizeof(h->magic)) == 0)
		return "older format";
	if (memcmp(h->magic, THROTTLE_MAGIC, sizeof(h->magic)) != 0)
		return "bad magic";
	if (h->slots != THROTTLE_SLOTS || h->slotsize != THROTTLE_SLOT_BYTES)
		return "other slot count or size";
	if (st->st_size != THROTTLE_FILE_BYTES)
		return "wrong size";
	return NULL;
}

/*
 * 1 when a damaged file may be replaced: it is empty, or it is no larger
 * than ours and neither group nor others may use it (the handler makes
 * its file 0600), so it is not some other file named by mistake.
 */
static int
tdb_ours(const struct stat *st)
{
	if (st->st_size == 0)
		return 1;
	return (st->st_mode & 077) == 0 && st->st_size <= THROTTLE_FILE_BYTES;
}

/*
 * Replaces the damaged file at path with a fresh one, holding its
 * exclusive lock meanwhile, so that every process waiting for it finds
 * the new file in its place.  1 when replaced (*damage: what was wrong);
 * 0 when someone else got there first; -1 (*why).
 */
static int
tdb_repair(const char *path, const char **damage, const char **why)
{
	struct stat	 st;
	struct hdr	 h;
	int		 fd, rv = -1;

	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto out;
	}
	if (tdb_lock(fd, LOCK_EX, why) == -1)
		goto out;
	if (!same_file(path, fd) || fstat(fd, &st) == -1 ||
	    (*damage = tdb_damage(fd, &st, &h)) == NULL) {
		rv = 0;
		goto out;
	}
	if (!tdb_ours(&st)) {
		snprintf(whybuf, sizeof(whybuf), "not a usmtp throttle file "
		    "(%s; group or others may use it, or it is larger: left "
		    "as it is, remove it to start afresh)", *damage);
		*why = whybuf;
		goto out;
	}
	if (tdb_create(path, &st, why) == -1)
		goto out;
	rv = 1;
out:
	close(fd);	/* waiters now see the new file at path */
	return rv;
}

/*
 * Makes a whole new file under a temporary name beside path (the header
 * with a fresh salt, then every slot empty, written out so that a full
 * disk shows now and not at the first failure), fsyncs it, and puts it
 * in place: linked when old is NULL (never over a file another process
 * made meanwhile), renamed over path otherwise, keeping old's owner and
 * group when we may.  Nothing is left under the temporary name.  0 or -1.
 */
static int
tdb_create(const char *path, const struct stat *old, const char **why)
{
	char		 tmp[4096];
	struct hdr	 h;
	struct timespec	 ts;
	uint64_t	 fallback[2];
	int		 fd, n, rv = -1;

	n = snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		*why = "path too long";
		return -1;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		*why = strerror(errno);
		return -1;
	}
	if (fchmod(fd, 0600) == -1) {
		*why = strerror(errno);
		goto out;
	}
	if (old != NULL && fchown(fd, old->st_uid, old->st_gid) == -1) {
		/* not permitted: the new file is ours */
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, THROTTLE_MAGIC, sizeof(h.magic));
	h.slots = THROTTLE_SLOTS;
	h.slotsize = THROTTLE_SLOT_BYTES;
	if (getrandom(h.salt, sizeof(h.salt), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(h.salt)) {
		/* Only the spread of keys over slots depends on it. */
		clock_gettime(CLOCK_REALTIME, &ts);
		fallback[0] = mix((uint64_t)ts.tv_nsec ^ (uint64_t)getpid());
		fallback[1] = mix((uint64_t)ts.tv_sec ^ fallback[0]);
		memcpy(h.salt, fallback, sizeof(h.salt));
	}
	if (put(fd, &h, sizeof(h), 0, why) == -1 || tdb_fill(fd, why) == -1)
		goto out;
	if (fsync(fd) == -1) {
		*why = strerror(errno);
		goto out;
	}
	if (old == NULL) {
		/* EEXIST: another process made one meanwhile; use it */
		if (link(tmp, path) == -1 && errno != EEXIST) {
			*why = strerror(errno);
			goto out;
		}
	} else if (rename(tmp, path) == -1) {
		*why = strerror(errno);
		goto out;
	} else
		tmp[0] = '\0';		/* it is path now */
	/* best effort: the file is whole whether or not this holds */
	sync_dir(path);
	rv = 0;
out:
	close(fd);
	if (tmp[0] != '\0')
		unlink(tmp);
	return rv;
}

/* Writes the empty slots after the header. */
static int
tdb_fill(int fd, const char **why)
{
	static const unsigned char	zero[ZERO_CHUNK_BYTES];
	off_t				off;
	size_t				want;

	for (off = THROTTLE_HDR_BYTES; off < THROTTLE_FILE_BYTES;
	    off += (off_t)want) {
		want = THROTTLE_FILE_BYTES - off < (off_t)sizeof(zero) ?
		    (size_t)(THROTTLE_FILE_BYTES - off) : sizeof(zero);
		if (put(fd, zero, want, off, why) == -1)
			return -1;
	}
	return 0;
}

/* flock(2) with a bounded wait: a stuck holder must not stall logins. */
static int
tdb_lock(int fd, int op, const char **why)
{
	struct timespec	ts = { 0, THROTTLE_LOCK_STEP_MS * 1000000L };
	int		waited = 0;

	while (flock(fd, op | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			*why = strerror(errno);
			return -1;
		}
		if (waited >= THROTTLE_LOCK_WAIT_MS) {
			*why = "locked by another process for too long";
			return -1;
		}
		nanosleep(&ts, NULL);
		waited += THROTTLE_LOCK_STEP_MS;
	}
	return 0;
}


/* 1 when path still names the file open on fd. */
static int
same_file(const char *path, int fd)
{
	struct stat	a, b;

	return fstat(fd, &a) == 0 && lstat(path, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* splitmix64's finalizer: spreads the (salted) key over the slots. */
static uint64_t
mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t
le64(const unsigned char *p)
{
	uint64_t	v = 0;
	int		i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND	do {						\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);	\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);	\
} while (0)

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of m under a 16-byte key. */
static uint64_t
siphash(const unsigned char *key, const unsigned char *m, size_t len)
{
	uint64_t	k0 = le64(key), k1 = le64(key + 8);
	uint64_t	v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t	v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t	v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t	v3 = 0x7465646279746573ULL ^ k1;
	uint64_t	b = (uint64_t)len << 56, mi;
	size_t		i, end = len - len % 8;

	for (i = 0; i < end; i += 8) {
		mi = le64(m + i);
		v3 ^= mi;
		SIPROUND;
		SIPROUND;
		v0 ^= mi;
	}
	for (i = 0; i < len % 8; i++)
		b |= (uint64_t)m[end + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * The 16 bytes k is stored under: an address or prefix as it is; an
 * account's name as two SipHashes keyed with the file's salt (a name
 * cannot be read back from the file; given the salt, one can be tested),
 * or the id as given when the name is "" (an entry usmtp-users listed).
 */
static void
key_id(const struct hdr *h, const struct throttle_key *k, unsigned char *id)
{
	unsigned char	buf[1 + sizeof(k->text)];
	uint64_t	a, b;
	size_t		n;

	if (k->kind != THROTTLE_ACCOUNT || k->text[0] == '\0') {
		memcpy(id, k->id, 16);
		return;
	}
	n = strlen(k->text);
	memcpy(buf + 1, k->text, n);
	buf[0] = 1;
	a = siphash(h->salt, buf, n + 1);
	buf[0] = 2;
	b = siphash(h->salt, buf, n + 1);
	memcpy(id, &a, 8);
	memcpy(id + 8, &b, 8);
}

static size_t
home(const struct hdr *h, int kind, const unsigned char *id)
{
	uint64_t	k[2], s[2];

	memcpy(k, id, sizeof(k));
	memcpy(s, h->salt, sizeof(s));
	return (size_t)(mix(mix(k[0] ^ s[0] ^ (uint64_t)kind) ^ k[1] ^ s[1]) %
	    THROTTLE_SLOTS);
}

/* Reads CHUNK_SLOTS slots from idx on. */
static int
chunk_read(int fd, size_t idx, struct slot *p, const char **why)
{
	ssize_t	n;

	n = pread(fd, p, CHUNK_SLOTS * sizeof(*p), THROTTLE_HDR_BYTES +
	    (off_t)idx * THROTTLE_SLOT_BYTES);
	if (n != (ssize_t)(CHUNK_SLOTS * sizeof(*p))) {
		*why = n == -1 ? strerror(errno) : "short read";
		return -1;
	}
	return 0;
}

/*
 * pwrite(2) of all n bytes at off: a short write is retried, so that a
 * full disk is reported as ENOSPC, not as "short write".  0, or -1 (*why).
 */
static int
put(int fd, const void *p, size_t n, off_t off, const char **why)
{
	const unsigned char	*b = p;
	ssize_t			 w;

	while (n > 0) {
		errno = 0;
		if ((w = pwrite(fd, b, n, off)) <= 0) {
			if (w == -1 && errno == EINTR)
				continue;
			*why = errno == 0 ? "short write" : strerror(errno);
			return -1;
		}
		b += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

static int
slot_write(int fd, size_t idx, const struct slot *sl, const char **why)
{
	return put(fd, sl, sizeof(*sl), THROTTLE_HDR_BYTES +
	    (off_t)idx * THROTTLE_SLOT_BYTES, why);
}

/* Reads the THROTTLE_PROBE slots from idx on, wrapping, into p. */
static int
probe_read(int fd, size_t idx, struct slot *p, const char **why)
{
	size_t	n = THROTTLE_SLOTS - idx < THROTTLE_PROBE ?
		    THROTTLE_SLOTS - idx : THROTTLE_PROBE;
	size_t	want = n * sizeof(*p);
	ssize_t	r;

	r = pread(fd, p, want, THROTTLE_HDR_BYTES +
	    (off_t)idx * THROTTLE_SLOT_BYTES);
	if (r == (ssize_t)want && n < THROTTLE_PROBE) {
		want = (THROTTLE_PROBE - n) * sizeof(*p);
		r = pread(fd, p + n, want, THROTTLE_HDR_BYTES);
	}
	if (r != (ssize_t)want) {
		*why = r == -1 ? strerror(errno) : "short read";
		return -1;
	}
	return 0;
}

/* 1 and *i when p holds the entry of kind and id, else 0. */
static int
probe_find(const struct slot *p, int kind, const unsigned char *id,
    size_t *i)
{
	for (*i = 0; *i < THROTTLE_PROBE; (*i)++)
		if (p[*i].kind == kind && p[*i].count != 0 &&
		    memcmp(p[*i].id, id, 16) == 0)
			return 1;
	return 0;
}

/*
 * Looks for the entry of kind and id among its THROTTLE_PROBE slots:
 * 1 with *at and *sl, 0 when there is none, -1 (*why).
 */
static int
slot_find(int fd, const struct hdr *h, int kind, const unsigned char *id,
    size_t *at, struct slot *sl, const char **why)
{
	struct slot	p[THROTTLE_PROBE];
	size_t		i, idx = home(h, kind, id);

	if (probe_read(fd, idx, p, why) == -1)
		return -1;
	if (!probe_find(p, kind, id, &i))
		return 0;
	*at = (idx + i) % THROTTLE_SLOTS;
	*sl = p[i];
	return 1;
}

/*
 * 1 when the slot holds failures that still count: the last one less
 * than window seconds ago.  A time far in the future (the clock was
 * stepped back, or the file is damaged) counts as expired: fail open.
 */
static int
slot_live(const struct slot *sl, unsigned window, time_t now)
{
	if (sl->count == 0 || sl->last <= 0)
		return 0;
	if (sl->last > (int64_t)now + THROTTLE_SKEW_SEC)
		return 0;
	return (int64_t)now - sl->last < (int64_t)window;
}

/* How much a slot is worth keeping: 0 empty, 1 expired, 2 counting,
 * 3 throttled (refused, or an account being slowed down). */
static int
slot_rank(const struct throttle *t, const struct slot *sl, time_t now)
{
	if (sl->kind == 0 || sl->count == 0)
		return 0;
	if (!slot_live(sl, t->window, now))
		return 1;
	return throttle_limited(t, sl->kind, sl->count) ? 3 : 2;
}
