/*
 * limit-test.c -- unit tests of limit.c, TAP on stdout: N KDF slots and
 * no more, a waiter that gives up at its deadline and one that gets a
 * slot as soon as it is freed, a slot freed by a holder's death, never
 * more than N holders among processes racing for them, session slots
 * counted across processes and the stress threshold, unusable paths.
 *
 * With arguments it is the bats suites' slot holder:
 *	limit-test --hold FILE kdf|session N
 * takes N slots of that kind (of N), prints "held" and waits until it
 * is killed.
 */

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usmtp.h"
#include "tap.h"

#define RACERS		8	/* processes racing for the KDF slots */
#define ROUNDS		40	/* slots each takes in turn */
#define RACE_SLOTS	2
#define SESSIONS	8

static char	dir[] = "/tmp/limit-test.XXXXXX";
static char	path[sizeof(dir) + 16];

static void	sleep_ms(long ms);
static pid_t	holder(int kind, unsigned max, long hold_ms, int *ready);
static void	test_kdf(void);
static void	test_death(void);
static void	test_release_wakes(void);
static void	test_race(void);
static void	test_sessions(void);
static void	test_bad_paths(void);
static int	hold(const char *file, const char *kind, const char *n);

static void
sleep_ms(long ms)
{
	struct timespec	ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * A child that takes a slot of kind (0 KDF, 1 session) of max, writes a
 * byte to *ready's pipe, and holds the slot hold_ms (-1: until killed).
 */
static pid_t
holder(int kind, unsigned max, long hold_ms, int *ready)
{
	struct limit	 l;
	const char	*why;
	int		 p[2];
	pid_t		 pid;
	char		 c = 'h';

	must(pipe(p) == 0, "pipe");
	must((pid = fork()) != -1, "fork");
	if (pid == 0) {
		close(p[0]);
		if (limit_open(&l, path, &why) == -1 ||
		    (kind == 0 ? limit_kdf_take(&l, max, 0, &why) :
		    limit_session_take(&l, max, &why)) != 1)
			_exit(1);
		if (write(p[1], &c, 1) != 1)
			_exit(1);
		if (hold_ms < 0)
			for (;;)
				pause();
		sleep_ms(hold_ms);
		limit_kdf_release(&l);
		sleep_ms(1000);	/* still alive: the release did it */
		_exit(0);
	}
	close(p[1]);
	*ready = p[0];
	must(read(p[0], &c, 1) == 1, "holder did not take its slot");
	return pid;
}

static void
test_kdf(void)
{
	struct limit	 a, b, c;
	struct stat	 st;
	const char	*why = "";
	long		 t0, dt;
	int		 r;

	r = limit_open(&a, path, &why);
	ok(r == 0, "the slot file is made (%s)", r == 0 ? "" : why);
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 &&
	    st.st_size == 0, "mode 0600, empty");
	must(limit_open(&b, path, &why) == 0 && limit_open(&c, path, &why) == 0,
	    "open");
	r = limit_kdf_take(&a, 2, 0, &why) == 1 &&
	    limit_kdf_take(&b, 2, 0, &why) == 1;
	ok(r && a.kdf != b.kdf, "two takers get the two slots of 2 (%d, %d)",
	    a.kdf, b.kdf);
	t0 = clock_ms();
	r = limit_kdf_take(&c, 2, t0 + 300, &why);
	dt = clock_ms() - t0;
	ok(r == 0 && c.kdf == -1 && dt >= 300,
	    "a third waits until its deadline, then gives up (r %d after "
	    "%ld ms)", r, dt);
	ok(limit_kdf_take(&c, 0, 0, &why) == 1 && c.kdf == -1,
	    "max 0 is no limit: at once, and no slot is taken");
	limit_kdf_release(&a);
	t0 = clock_ms();
	r = limit_kdf_take(&c, 2, t0 + 5000, &why);
	ok(r == 1 && c.kdf != -1 && c.kdf != b.kdf,
	    "once one is released, the third gets it (r %d slot %d)", r,
	    c.kdf);
	ok(limit_kdf_take(&a, 3, clock_ms() + 100, &why) == 1,
	    "with max 3 a third slot is there");
	limit_close(&b);
	r = limit_kdf_take(&b, 3, 0, &why);
	ok(r == -1, "a closed limit cannot take slots (%s)", why);
	must(limit_open(&b, path, &why) == 0, "open");
	ok(limit_kdf_take(&b, 3, clock_ms() + 2000, &why) == 1,
	    "closing released its slot");
	limit_close(&a);
	limit_close(&b);
	limit_close(&c);
	ok(limit_cpus() >= 1, "limit_cpus() is %u", limit_cpus());
}

/* A holder killed with SIGKILL: the kernel frees its slot. */
static void
test_death(void)
{
	struct limit	 l;
	const char	*why = "";
	pid_t		 pid;
	int		 ready, st;

	pid = holder(0, 1, -1, &ready);
	must(limit_open(&l, path, &why) == 0, "open");
	ok(limit_kdf_take(&l, 1, clock_ms() + 100, &why) == 0,
	    "another process holds the only slot");
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	close(ready);
	ok(limit_kdf_take(&l, 1, clock_ms() + 100, &why) == 1,
	    "it was killed: the slot is free");
	limit_close(&l);
}

/* A waiter gets the slot soon after another process releases it. */
static void
test_release_wakes(void)
{
	struct limit	 l;
	const char	*why = "";
	long		 t0, dt;
	pid_t		 pid;
	int		 ready, r, st;

	pid = holder(0, 1, 300, &ready);
	must(limit_open(&l, path, &why) == 0, "open");
	t0 = clock_ms();
	r = limit_kdf_take(&l, 1, t0 + 5000, &why);
	dt = clock_ms() - t0;
	ok(r == 1 && dt >= 200 && dt < 1000, "a waiter gets the slot when "
	    "the holder releases it after 300 ms (r %d after %ld ms)", r, dt);
	limit_close(&l);
	waitpid(pid, &st, 0);
	close(ready);
}

/*
 * RACERS processes each take a slot of RACE_SLOTS ROUNDS times and count
 * themselves in a shared counter while they hold it: never more than
 * RACE_SLOTS at once.
 */
static void
test_race(void)
{
	volatile int	*shared;
	int		*mem;
	pid_t		 pid[RACERS];
	int		 i, st, fails = 0;

	mem = mmap(NULL, 2 * sizeof(int), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	must(mem != MAP_FAILED, "mmap");
	shared = mem;
	shared[0] = shared[1] = 0;	/* holders now, most ever */
	for (i = 0; i < RACERS; i++) {
		must((pid[i] = fork()) != -1, "fork");
		if (pid[i] == 0) {
			struct limit	 l;
			const char	*why;
			int		 k, now;

			if (limit_open(&l, path, &why) == -1)
				_exit(1);
			for (k = 0; k < ROUNDS; k++) {
				if (limit_kdf_take(&l, RACE_SLOTS,
				    clock_ms() + 30000, &why) != 1)
					_exit(1);
				now = __atomic_add_fetch(&shared[0], 1,
				    __ATOMIC_SEQ_CST);
				if (now > shared[1])
					shared[1] = now;
				sleep_ms(1);
				__atomic_sub_fetch(&shared[0], 1,
				    __ATOMIC_SEQ_CST);
				limit_kdf_release(&l);
			}
			_exit(0);
		}
	}
	for (i = 0; i < RACERS; i++)
		if (waitpid(pid[i], &st, 0) == -1 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			fails++;
	ok(fails == 0, "%d processes took a slot %d times each (%d failed)",
	    RACERS, ROUNDS, fails);
	ok(shared[1] >= 1 && shared[1] <= RACE_SLOTS,
	    "never more than %d held at once (most: %d)", RACE_SLOTS,
	    shared[1]);
	munmap(mem, 2 * sizeof(int));
}

static void
test_sessions(void)
{
	struct limit	 l[SESSIONS + 1], watcher;
	const char	*why = "";
	unsigned	 busy = 99;
	pid_t		 pid;
	int		 i, ready, st, r, took = 1;

	must(limit_open(&watcher, path, &why) == 0, "open");
	r = limit_sessions(&watcher, SESSIONS, &busy, &why);
	ok(r == 0 && busy == 0, "no sessions at first (%u)", busy);
	for (i = 0; i < 5; i++) {
		must(limit_open(&l[i], path, &why) == 0, "open");
		took &= limit_session_take(&l[i], SESSIONS, &why) == 1;
	}
	r = limit_sessions(&watcher, SESSIONS, &busy, &why);
	ok(took && r == 0 && busy == 5, "5 taken, 5 counted by an onlooker "
	    "(%u)", busy);
	r = limit_sessions(&l[0], SESSIONS, &busy, &why);
	ok(r == 0 && busy == 5, "and by one of them, itself included (%u)",
	    busy);
	ok(!limit_stressed(5, SESSIONS), "5 of %d is not stress", SESSIONS);
	pid = holder(1, SESSIONS, -1, &ready);
	r = limit_sessions(&watcher, SESSIONS, &busy, &why);
	ok(r == 0 && busy == 6, "another process's slot counts (%u)", busy);
	ok(limit_stressed(6, SESSIONS), "6 of %d is stress", SESSIONS);
	ok(limit_stressed(48, 64) && !limit_stressed(47, 64) &&
	    !limit_stressed(0, 0), "48 of 64 is stress, 47 is not, max 0 "
	    "never");
	for (i = 5; i < SESSIONS - 1; i++) {
		must(limit_open(&l[i], path, &why) == 0, "open");
		took &= limit_session_take(&l[i], SESSIONS, &why) == 1;
	}
	ok(took, "slots up to %d are taken", SESSIONS);
	must(limit_open(&l[SESSIONS], path, &why) == 0, "open");
	r = limit_session_take(&l[SESSIONS], SESSIONS, &why);
	ok(r == 0 && l[SESSIONS].session == -1,
	    "with all %d held there is none left (r %d)", SESSIONS, r);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	close(ready);
	r = limit_sessions(&watcher, SESSIONS, &busy, &why);
	ok(r == 0 && busy == SESSIONS - 1, "a killed session's slot is free "
	    "(%u)", busy);
	ok(limit_session_take(&l[SESSIONS], SESSIONS, &why) == 1,
	    "and can be taken");
	limit_close(&l[2]);
	r = limit_sessions(&watcher, SESSIONS, &busy, &why);
	ok(r == 0 && busy == SESSIONS - 1, "limit_close frees one (%u)", busy);
	for (i = 0; i <= SESSIONS; i++)
		limit_close(&l[i]);
	r = limit_sessions(&watcher, SESSIONS, &busy, &why);
	ok(r == 0 && busy == 0, "all closed: none (%u)", busy);
	limit_close(&watcher);
}

static void
test_bad_paths(void)
{
	struct limit	 l;
	char		 p[sizeof(dir) + 32];
	const char	*why = "";
	int		 r;

	snprintf(p, sizeof(p), "%s/nodir/slots", dir);
	r = limit_open(&l, p, &why);
	ok(r == -1 && l.fd == -1, "a missing directory fails (%s)", why);
	snprintf(p, sizeof(p), "%s/adir", dir);
	must(mkdir(p, 0700) == 0, "mkdir");
	r = limit_open(&l, p, &why);
	ok(r == -1, "a directory fails (%s)", why);
	rmdir(p);
}

/* The bats suites' holder: N slots of a kind, until killed. */
static int
hold(const char *file, const char *kind, const char *n)
{
	struct limit	*l;
	const char	*why = "";
	int		 i, max = atoi(n), r;

	if (max <= 0 || (l = calloc((size_t)max, sizeof(*l))) == NULL)
		return 64;
	for (i = 0; i < max; i++) {
		if (limit_open(&l[i], file, &why) == -1) {
			fprintf(stderr, "limit-test: %s: %s\n", file, why);
			return 1;
		}
		r = strcmp(kind, "kdf") == 0 ?
		    limit_kdf_take(&l[i], (unsigned)max, 0, &why) :
		    limit_session_take(&l[i], (unsigned)max, &why);
		if (r != 1) {
			fprintf(stderr, "limit-test: slot %d: %s\n", i,
			    r == 0 ? "none free" : why);
			return 1;
		}
	}
	printf("held\n");
	fflush(stdout);
	for (;;)
		pause();
}

int
main(int argc, char *argv[])
{
	if (argc == 5 && strcmp(argv[1], "--hold") == 0)
		return hold(argv[2], argv[3], argv[4]);
	if (argc != 1) {
		fprintf(stderr,
		    "usage: limit-test [--hold FILE kdf|session N]\n");
		return 64;
	}
	must(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/slots", dir);
	test_kdf();
	test_death();
	test_release_wakes();
	test_race();
	test_sessions();
	test_bad_paths();
	unlink(path);
	rmdir(dir);
	return tap_done();
}
