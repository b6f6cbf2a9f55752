/*
 * util.c -- the few helpers every program and module shares: the
 * monotonic clock, a buffer grower that never leaves a secret behind,
 * reading one line without a stdio copy, the terminal password prompt,
 * making a rename durable, and escaping bytes for a log or a terminal.  Calls only libc and OPENSSL_cleanse; never prints to stdout
 * or stderr, never exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "usmtp.h"

static volatile sig_atomic_t gotsig;

static void	onsig(int);

long
clock_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
buf_grow(unsigned char **buf, size_t *cap, size_t need, int secret)
{
	unsigned char	*n;
	size_t		 ncap;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 256;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -1;
		ncap *= 2;
	}
	if (!secret) {
		if ((n = realloc(*buf, ncap)) == NULL)
			return -1;
	} else {
		/* realloc could leave the old copy behind unwiped. */
		if ((n = malloc(ncap)) == NULL)
			return -1;
		if (*buf != NULL) {
			memcpy(n, *buf, *cap);
			OPENSSL_cleanse(*buf, *cap);
			free(*buf);
		}
	}
	*buf = n;
	*cap = ncap;
	return 0;
}

int
sync_dir(const char *path)
{
	char		 dir[4096];
	const char	*slash = strrchr(path, '/');
	int		 fd, n, rv;

	if (slash == NULL)
		n = snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		n = snprintf(dir, sizeof(dir), "/");
	else
		n = snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path),
		    path);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return -1;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rv = fsync(fd);
	close(fd);
	return rv;
}

size_t
esc_bytes(char *dst, size_t dstsz, const void *p, size_t n, int how)
{
	const unsigned char	*s = p;
	char			 x[5];
	size_t			 i, k, o = 0;

	if (dstsz == 0)
		return 0;
	for (i = 0; i < n; i++) {
		x[0] = (char)s[i];
		k = 1;
		if (how == ESC_LOG) {
			if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '"' ||
			    s[i] == '\\')
				k = (size_t)snprintf(x, sizeof(x), "\\x%02x",
				    s[i]);
		} else if (s[i] == '\r' || s[i] == '\n' || s[i] == '\t' ||
		    s[i] == '\\') {
			x[0] = '\\';
			x[1] = s[i] == '\r' ? 'r' : s[i] == '\n' ? 'n' :
			    s[i] == '\t' ? 't' : '\\';
			k = 2;
		} else if (s[i] < ' ' || s[i] >= 0x7f)
			k = (size_t)snprintf(x, sizeof(x), "\\x%02x", s[i]);
		if (o + k + sizeof("...") > dstsz) {
			/* cut: "..." says so, where it fits */
			if (o + sizeof("...") <= dstsz) {
				memcpy(dst + o, "...", sizeof("...") - 1);
				o += sizeof("...") - 1;
			}
			break;
		}
		memcpy(dst + o, x, k);
		o += k;
	}
	dst[o] = '\0';
	return o;
}

const char *
esc_text(const void *p, size_t n, size_t max, int how)
{
	static char	buf[2][ESC_TEXT_MAX_BYTES * 4 + 8];
	static int	which;
	char		*o = buf[which ^= 1];
	size_t		 k;

	if (max > ESC_TEXT_MAX_BYTES)
		max = ESC_TEXT_MAX_BYTES;
	k = esc_bytes(o, sizeof(buf[0]) - 3, p, n < max ? n : max, how);
	if (n > max)
		memcpy(o + k, "...", 4);
	return o;
}

static void
onsig(int sig)
{
	gotsig = sig;
}

int
read_line_fd(int fd, char *buf, size_t bufsz, size_t *len)
{
	size_t	n = 0;
	ssize_t	r;
	char	c;
	int	toolong = 0;

	for (;;) {
		r = read(fd, &c, 1);
		if (r == -1 && errno == EINTR && !gotsig)
			continue;
		if (r == -1)
			return -1;
		if (r == 0) {
			if (n == 0 && !toolong) {
				errno = 0;
				return -1;
			}
			break;
		}
		if (c == '\n')
			break;
		if (n + 1 < bufsz)
			buf[n++] = c;
		else
			toolong = 1;
	}
	c = 0;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len = n;
	return toolong ? -2 : 0;
}

int
tty_read_secret(const char *prompt, char *buf, size_t bufsz, size_t *len,
    const char **why)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
	struct sigaction sa, osa[sizeof(sigs) / sizeof(sigs[0])];
	struct termios	 old, quiet;
	size_t		 i;
	int		 fd, rv;

	*len = 0;
	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1) {
		*why = "no terminal to ask on";
		return -1;
	}
	if (tcgetattr(fd, &old) == -1) {
		*why = "not a terminal";
		close(fd);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = onsig;	/* no SA_RESTART: read() returns EINTR */
	sigemptyset(&sa.sa_mask);
	gotsig = 0;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, &osa[i]);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL | ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) == -1 ||
	    write(fd, prompt, strlen(prompt)) == -1) {
		*why = "cannot use the terminal";
		rv = -1;
	} else if ((rv = read_line_fd(fd, buf, bufsz, len)) == -1)
		*why = errno != 0 ? "cannot read the terminal" :
		    "end of input";
	else if (rv == -2)
		*why = "too long";
	tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &osa[i], NULL);
	if (rv != 0 || gotsig) {
		OPENSSL_cleanse(buf, bufsz);
		*len = 0;
	}
	if (gotsig) {
		/* The terminal is restored: now let the signal do what it
		 * would have done (its handler or the default action). */
		raise(gotsig);
		*why = "interrupted";
		return -1;
	}
	return rv;
}
