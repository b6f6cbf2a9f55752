/*
 * limit.c -- host-wide slots shared by every handler process: at most N
 * password KDF runs at once (the rest wait their turn), and a count of
 * live sessions (stress mode, usmtp-handler(8)).  A slot is a one-byte
 * lock (fcntl(2) open file description locks, F_OFD_SETLK) on one small
 * file in the state directory: the kernel drops a process's locks when
 * it exits, however it dies, so no slot is ever leaked and nothing needs
 * cleaning up.  The file holds no data and stays empty.  Waiting polls
 * with short sleeps, bounded by the caller's deadline: no signals.
 * Never prints or exits.
 */
#define _GNU_SOURCE	/* F_OFD_SETLK and friends, sched_getaffinity */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "usmtp.h"

/* Byte i of the file is KDF slot i; byte LIMIT_SESSION_OFF + j is session
 * slot j.  The gap keeps the two kinds from ever touching. */
#define LIMIT_SESSION_OFF	(2 * LIMIT_KDF_MAX)
#define LIMIT_POLL_MS		10	/* a KDF run takes ~50 ms */

static int	slot_lock(int fd, off_t byte, int type);
static int	slot_busy(int fd, off_t byte);
static int	take(struct limit *l, off_t base, unsigned max, int *slot,
		    const char **why);

int
limit_open(struct limit *l, const char *path, const char **why)
{
	struct stat	st;
	int		fd;

	l->fd = l->kdf = l->session = -1;
	/* O_NONBLOCK: a FIFO put in its place must not hang us. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK, 0600);
	if (fd == -1) {
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		close(fd);
		return -1;
	}
	l->fd = fd;
	return 0;
}

void
limit_close(struct limit *l)
{
	if (l->fd != -1)
		close(l->fd);	/* drops every slot held */
	l->fd = l->kdf = l->session = -1;
}

unsigned
limit_cpus(void)
{
	cpu_set_t	set;
	long		n;

	/* The CPUs we may run on (taskset, cpusets), else all online. */
	if (sched_getaffinity(0, sizeof(set), &set) == 0 &&
	    (n = CPU_COUNT(&set)) > 0)
		return (unsigned)n;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

int
limit_kdf_take(struct limit *l, unsigned max, long deadline_ms,
    const char **why)
{
	struct timespec	ts;
	long		left;
	int		r;

	if (max == 0)
		return 1;	/* no limit */
	if (l->kdf != -1)
		return 1;
	if (max > LIMIT_KDF_MAX)
		max = LIMIT_KDF_MAX;
	for (;;) {
		if ((r = take(l, 0, max, &l->kdf, why)) != 0)
			return r;
		left = LIMIT_POLL_MS;
		if (deadline_ms != 0) {
			if ((left = deadline_ms - clock_ms()) <= 0)
				return 0;
			if (left > LIMIT_POLL_MS)
				left = LIMIT_POLL_MS;
		}
		ts.tv_sec = 0;
		ts.tv_nsec = left * 1000000L;
		nanosleep(&ts, NULL);
	}
}

void
limit_kdf_release(struct limit *l)
{
	if (l->fd != -1 && l->kdf != -1)
		(void)slot_lock(l->fd, l->kdf, F_UNLCK);
	l->kdf = -1;
}

int
limit_session_take(struct limit *l, unsigned max, const char **why)
{
	if (l->session != -1)
		return 1;
	if (max > LIMIT_SESSIONS_MAX)
		max = LIMIT_SESSIONS_MAX;
	return take(l, LIMIT_SESSION_OFF, max, &l->session, why);
}

int
limit_sessions(struct limit *l, unsigned max, unsigned *busy,
    const char **why)
{
	unsigned	j;
	int		r;

	*busy = 0;
	if (max > LIMIT_SESSIONS_MAX)
		max = LIMIT_SESSIONS_MAX;
	for (j = 0; j < max; j++) {
		/* Our own lock conflicts with nothing of ours: count it. */
		if ((int)j == l->session) {
			(*busy)++;
			continue;
		}
		r = slot_busy(l->fd, LIMIT_SESSION_OFF + (off_t)j);
		if (r == -1) {
			*why = strerror(errno);
			return -1;
		}
		*busy += (unsigned)r;
	}
	return 0;
}

int
limit_stressed(unsigned busy, unsigned max)
{
	/* at least LIMIT_STRESS_NUM / LIMIT_STRESS_DEN of the slots */
	return max > 0 && (unsigned long long)busy * LIMIT_STRESS_DEN >=
	    (unsigned long long)max * LIMIT_STRESS_NUM;
}

/*
 * Tries each of the max slots from base on once, starting at one picked
 * by our pid so that processes do not all queue on slot 0.  1 and *slot
 * when one was free, 0 when all were busy, -1 (*why).
 */
static int
take(struct limit *l, off_t base, unsigned max, int *slot, const char **why)
{
	unsigned	i, k, start;

	if (l->fd == -1) {
		*why = "slot file not open";
		return -1;
	}
	if (max == 0)
		return 0;
	start = (unsigned)getpid() % max;
	for (k = 0; k < max; k++) {
		i = (start + k) % max;
		if (slot_lock(l->fd, base + (off_t)i, F_WRLCK) == 0) {
			*slot = (int)i;
			return 1;
		}
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			*why = strerror(errno);
			return -1;
		}
	}
	return 0;
}

/* Locks (F_WRLCK) or unlocks (F_UNLCK) one byte, never waiting. */
static int
slot_lock(int fd, off_t byte, int type)
{
	struct flock	fl;

	memset(&fl, 0, sizeof(fl));	/* l_pid must be 0 for OFD locks */
	fl.l_type = (short)type;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	return fcntl(fd, F_OFD_SETLK, &fl);
}

/* 1 when another open file description holds the byte, 0 if not, -1. */
static int
slot_busy(int fd, off_t byte)
{
	struct flock	fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	if (fcntl(fd, F_OFD_GETLK, &fl) == -1)
		return -1;
	return fl.l_type != F_UNLCK;
}
