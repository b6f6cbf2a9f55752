/*
 * tap.h -- the TAP reporting the C unit tests share: ok() prints one
 * "ok N - what" line per check, tap_done() the plan and a summary line
 * and returns the exit status, must() bails out of the whole test when a
 * set-up step fails, remove_tree() removes the test's scratch directory.
 * Include once, in the test's one file.
 */
#ifndef TAP_H
#define TAP_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	ntest, nfail;

static void	ok(int, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	tap_done(void);
static void	must(int, const char *) __attribute__((unused));
static void	remove_tree(const char *) __attribute__((unused));

static void
ok(int cond, const char *fmt, ...)
{
	va_list ap;

	ntest++;
	if (!cond)
		nfail++;
	printf("%sok %d - ", cond ? "" : "not ", ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);	/* before any fork of the test */
}

/*
 * A set-up step (what) that cannot fail unless the machine is broken:
 * when cond is false, "Bail out!" with errno's text, and exit 1.
 */
static void
must(int cond, const char *what)
{
	if (!cond) {
		printf("Bail out! %s: %s\n", what, strerror(errno));
		exit(1);
	}
}

/* Removes dir and all in it; a comment line says so when it cannot. */
static void
remove_tree(const char *dir)
{
	char	cmd[300];

	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) >=
	    (int)sizeof(cmd) || system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

static int
tap_done(void)
{
	printf("1..%d\n# %d passed, %d failed\n", ntest, ntest - nfail, nfail);
	return nfail != 0;
}

#endif /* TAP_H */
