/*
 * throttle.c -- failed logins per source address across connections
 * (issue 7; PROTOCOL.md 5 limits only one connection): a fixed-size
 * state file shared by every handler process, locked with flock(2).
 * The handler decides what a failure is and what to answer; this file
 * only counts, and never prints or exits.  Callers fail open on -1.
 *
 * File layout (native byte order, the file never leaves the host):
 *	header, THROTTLE_HDR_BYTES: magic "USMTPTH1", slot count, slot
 *	    size, 16 random salt bytes, zeros;
 *	THROTTLE_SLOTS slots of THROTTLE_SLOT_BYTES: key (16 bytes), time
 *	    of the last failure (int64, seconds since the epoch; 0: empty),
 *	    failures (uint32), reserved (uint32).
 * An address lives in one of THROTTLE_PROBE slots after its salted hash;
 * a new one takes an empty or expired slot there, else the one whose
 * last failure is oldest.  So the file never grows past its fixed size,
 * whatever the number of addresses.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "usmtp.h"

#define THROTTLE_MAGIC		"USMTPTH1"
#define THROTTLE_HDR_BYTES	64
#define THROTTLE_SLOT_BYTES	32
#define THROTTLE_FILE_BYTES	(THROTTLE_HDR_BYTES + \
	    (off_t)THROTTLE_SLOTS * THROTTLE_SLOT_BYTES)
#define THROTTLE_LOCK_WAIT_MS	1000	/* then give up: fail open */
#define THROTTLE_LOCK_STEP_MS	5
#define THROTTLE_SKEW_SEC	60	/* a last failure this far in the
					 * future: clock stepped back */

struct hdr {
	char		magic[8];
	uint32_t	slots, slotsize;
	unsigned char	salt[16];
	unsigned char	pad[THROTTLE_HDR_BYTES - 32];
};

struct slot {
	unsigned char	key[16];
	int64_t		last;
	uint32_t	count;
	uint32_t	reserved;
};

static int	tdb_open(const char *path, int write, int *fdp,
		    struct hdr *h, const char **why);
static int	tdb_lock(int fd, int op, const char **why);
static int	tdb_init(int fd, struct hdr *h, const char **why);
static uint64_t	mix(uint64_t x);
static size_t	home(const struct hdr *h, const unsigned char key[16]);
static int	slot_read(int fd, size_t idx, struct slot *sl,
		    const char **why);
static int	slot_live(const struct slot *sl, unsigned window, time_t now);

int
throttle_key(const char *peer, struct throttle_key *k)
{
	static const unsigned char mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};
	char		 host[INET6_ADDRSTRLEN];
	const char	*end;
	size_t		 n;
	struct in_addr	 a4;
	struct in6_addr	 a6;

	memset(k, 0, sizeof(*k));
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
	if (inet_pton(AF_INET, host, &a4) == 1) {
		memcpy(k->addr, mapped, sizeof(mapped));
		memcpy(k->addr + 12, &a4, 4);
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		memcpy(k->addr, &a6, 16);
		/* An IPv4 client of a dual-stack socket is keyed as IPv4;
		 * a native IPv6 client by its /64, the usual end site's
		 * smallest network: one host can pick any address in it. */
		if (memcmp(k->addr, mapped, sizeof(mapped)) != 0)
			memset(k->addr + 8, 0, 8);
	} else
		return 0;
	if (memcmp(k->addr, mapped, sizeof(mapped)) == 0)
		inet_ntop(AF_INET, k->addr + 12, k->text, sizeof(k->text));
	else {
		inet_ntop(AF_INET6, k->addr, k->text, sizeof(k->text) - 3);
		strcat(k->text, "/64");
	}
	return 1;
}

int
throttle_check(const char *path, const struct throttle_key *k,
    unsigned max, unsigned window, time_t now, unsigned *failures,
    const char **why)
{
	struct hdr	 h;
	struct slot	 sl;
	size_t		 i, idx;
	int		 fd, r, rv = -1;

	*failures = 0;
	if ((r = tdb_open(path, 0, &fd, &h, why)) <= 0)
		return r;	/* no file yet: nobody has failed */
	idx = home(&h, k->addr);
	for (i = 0; i < THROTTLE_PROBE; i++) {
		if (slot_read(fd, (idx + i) % THROTTLE_SLOTS, &sl, why) == -1)
			goto out;
		if (memcmp(sl.key, k->addr, 16) == 0 &&
		    slot_live(&sl, window, now)) {
			*failures = sl.count;
			break;
		}
	}
	rv = max > 0 && *failures >= max;
out:
	close(fd);	/* drops the lock */
	return rv;
}

int
throttle_fail(const char *path, const struct throttle_key *k,
    unsigned window, time_t now, unsigned *failures, const char **why)
{
	struct hdr	 h;
	struct slot	 sl, cur;
	size_t		 i, idx, at = 0;
	int		 fd, found = 0, rv = -1, have = 0;

	*failures = 0;
	if (tdb_open(path, 1, &fd, &h, why) == -1)
		return -1;
	idx = home(&h, k->addr);
	for (i = 0; i < THROTTLE_PROBE; i++) {
		if (slot_read(fd, (idx + i) % THROTTLE_SLOTS, &cur, why) == -1)
			goto out;
		if (cur.count != 0 && memcmp(cur.key, k->addr, 16) == 0)
			found = 1;
		/* Else the victim: the first empty or expired slot, or
		 * failing that the one with the least recent failure. */
		else if (have && (!slot_live(&sl, window, now) ||
		    (slot_live(&cur, window, now) && cur.last >= sl.last)))
			continue;
		sl = cur;
		at = (idx + i) % THROTTLE_SLOTS;
		have = 1;
		if (found)
			break;
	}
	if (found && slot_live(&sl, window, now))
		sl.count = sl.count == UINT32_MAX ? UINT32_MAX : sl.count + 1;
	else {
		memset(&sl, 0, sizeof(sl));
		memcpy(sl.key, k->addr, 16);
		sl.count = 1;
	}
	sl.last = (int64_t)now;
	errno = 0;
	if (pwrite(fd, &sl, sizeof(sl), THROTTLE_HDR_BYTES +
	    (off_t)at * THROTTLE_SLOT_BYTES) != (ssize_t)sizeof(sl)) {
		*why = errno == 0 ? "short write" : strerror(errno);
		goto out;
	}
	*failures = sl.count;
	rv = 0;
out:
	close(fd);
	return rv;
}

/*
 * Opens and locks the file: shared to read, exclusive to write, which
 * also creates and initializes it.  Returns 1 with *fdp open and locked
 * and *h read; 0 when reading and there is no file yet; -1 (*why).
 */
static int
tdb_open(const char *path, int write, int *fdp, struct hdr *h,
    const char **why)
{
	struct stat	 st;
	ssize_t		 n;
	int		 fd;

	/* O_NONBLOCK: a FIFO put in its place must not hang us. */
	fd = open(path, (write ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC |
	    O_NOFOLLOW | O_NONBLOCK, 0600);
	if (fd == -1) {
		if (!write && errno == ENOENT)
			return 0;
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto fail;
	}
	if (tdb_lock(fd, write ? LOCK_EX : LOCK_SH, why) == -1)
		goto fail;
	/* Size again under the lock: another process may have made it. */
	if (fstat(fd, &st) == -1) {
		*why = strerror(errno);
		goto fail;
	}
	if (st.st_size == 0) {
		if (!write) {
			close(fd);
			return 0;
		}
		if (tdb_init(fd, h, why) == -1)
			goto fail;
		*fdp = fd;
		return 1;
	}
	n = pread(fd, h, sizeof(*h), 0);
	if (n != (ssize_t)sizeof(*h) ||
	    memcmp(h->magic, THROTTLE_MAGIC, sizeof(h->magic)) != 0 ||
	    h->slots != THROTTLE_SLOTS || h->slotsize != THROTTLE_SLOT_BYTES) {
		/* Never overwritten: it may be some other file named by
		 * mistake.  Removing it lets the next failure start anew. */
		*why = n == -1 ? strerror(errno) : "not a usmtp throttle file "
		    "(remove it to start afresh)";
		goto fail;
	}
	/* Ours but cut short (a crash while it was made): missing slots
	 * are empty ones. */
	if (write && st.st_size != THROTTLE_FILE_BYTES &&
	    ftruncate(fd, THROTTLE_FILE_BYTES) == -1) {
		*why = strerror(errno);
		goto fail;
	}
	*fdp = fd;
	return 1;
fail:
	close(fd);
	return -1;
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

/* A new, empty file: the header (with a fresh salt), then empty slots. */
static int
tdb_init(int fd, struct hdr *h, const char **why)
{
	struct timespec	ts;
	uint64_t	fallback[2];

	memset(h, 0, sizeof(*h));
	memcpy(h->magic, THROTTLE_MAGIC, sizeof(h->magic));
	h->slots = THROTTLE_SLOTS;
	h->slotsize = THROTTLE_SLOT_BYTES;
	if (getrandom(h->salt, sizeof(h->salt), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(h->salt)) {
		/* Only the spread of addresses over slots depends on it. */
		clock_gettime(CLOCK_REALTIME, &ts);
		fallback[0] = mix((uint64_t)ts.tv_nsec ^ (uint64_t)getpid());
		fallback[1] = mix((uint64_t)ts.tv_sec ^ fallback[0]);
		memcpy(h->salt, fallback, sizeof(h->salt));
	}
	errno = 0;
	if (ftruncate(fd, THROTTLE_FILE_BYTES) == -1 ||
	    pwrite(fd, h, sizeof(*h), 0) != (ssize_t)sizeof(*h)) {
		*why = errno == 0 ? "short write" : strerror(errno);
		return -1;
	}
	return 0;
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

static size_t
home(const struct hdr *h, const unsigned char key[16])
{
	uint64_t	k[2], s[2];

	memcpy(k, key, sizeof(k));
	memcpy(s, h->salt, sizeof(s));
	return (size_t)(mix(mix(k[0] ^ s[0]) ^ k[1] ^ s[1]) % THROTTLE_SLOTS);
}

/* Reads slot idx; past the end of a short file it is empty. */
static int
slot_read(int fd, size_t idx, struct slot *sl, const char **why)
{
	ssize_t	n;

	memset(sl, 0, sizeof(*sl));
	n = pread(fd, sl, sizeof(*sl), THROTTLE_HDR_BYTES +
	    (off_t)idx * THROTTLE_SLOT_BYTES);
	if (n == -1) {
		*why = strerror(errno);
		return -1;
	}
	if (n != (ssize_t)sizeof(*sl))
		memset(sl, 0, sizeof(*sl));
	return 0;
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
