/*
 * clientconf.c -- the client's configuration file, after msmtp's:
 * "key value" lines in "defaults" and "account NAME" sections, the account
 * to use picked out of them, and the password got from a password file or
 * a command.  It reads and checks only: the client merges the result with
 * its command line (which wins) and reports the errors, which name the
 * file and the line.  usmtp.h gives the format, under clientconf.c.
 */
#define _GNU_SOURCE		/* pipe2(2) */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "usmtp.h"

#define MSG_BYTES		1024	/* a formatted reason */
#define PWCMD_POLL_MS		20	/* how often a finished child is seen */
#define PWCMD_CHUNK_BYTES	4096

/* The keys; the bit of each in struct acct's "set". */
enum key {
	K_HOST, K_PORT, K_CA, K_USER, K_PWFILE, K_PWCMD, K_TIMEOUT,
	K_DIALECT, K_SECURE, NKEYS
};

static const char *const keyname[NKEYS] = {
	"host", "port", "ca", "user", "password-file", "password-command",
	"timeout", "dialect", "secure"
};

/* One section: the defaults (name NULL) or an account. */
struct acct {
	char		*name;
	int		 line;		/* its "account" line */
	unsigned	 set;		/* 1 << K_*: given here or by ": A" */
	int		 keyline[NKEYS];	/* its lines in this section */
	char		*host, *ca, *user, *pwfile, *pwcmd;
	int		 port, timeout;
	enum conf_dialect dialect;
	enum conf_secure secure;
};

struct parser {
	const char	*path;
	int		 line;
	struct acct	 defaults;
	struct acct	*acc;		/* accounts in file order */
	size_t		 nacc, capacc;
	struct acct	*cur;		/* the section being read, or NULL */
};

static char	msg[MSG_BYTES];

static const char *fail(const char *fmt, ...)
		    __attribute__((format(printf, 1, 2)));
static const char *fail_at(struct parser *p, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 check_owner_mode(int fd, const char *path, const char **why);
static char	*home_dir(void);
static char	*expand_tilde(const char *s);
static int	 acct_copy(struct acct *dst, const struct acct *src);
static int	 acct_set(struct parser *p, struct acct *a, enum key k,
		    const struct acct *src, const char *value);
static void	 acct_free(struct acct *a);
static struct acct *acct_find(struct parser *p, const char *name);
static int	 parse_line(struct parser *p, char *line, const char **why);
static int	 parse_account(struct parser *p, char *arg, const char **why);
static int	 parse_key(struct parser *p, const char *key, char *value,
		    const char **why);
static int	 parse_int(const char *s, long lo, long hi, int *out);
static char	*trim(char *s);
static int	 read_all(int fd, const char *path, char **out, size_t *len,
		    const char **why);
static void	 pw_take(const char *p, size_t n, char *pw, size_t pwsz,
		    size_t *len, int *state);
static int	 pw_finish(char *pw, size_t *len);

/* Formats a reason into the static buffer; returns it. */
static const char *
fail(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return msg;
}

/* The same, prefixed "FILE:LINE: ". */
static const char *
fail_at(struct parser *p, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(msg, sizeof(msg), "%s:%d: ", p->path, p->line);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return msg;
	va_start(ap, fmt);
	(void)vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return msg;
}

/*
 * As msmtp: a file holding or leading to a secret must be the user's own
 * and readable by nobody else (checked on the open descriptor, so the
 * file checked is the file read).
 */
static int
check_owner_mode(int fd, const char *path, const char **why)
{
	struct stat	st;

	if (fstat(fd, &st) == -1) {
		*why = fail("%s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		*why = fail("%s: is a directory", path);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		*why = fail("%s: owned by uid %lu, not by you (uid %lu); "
		    "it must be your own file", path,
		    (unsigned long)st.st_uid, (unsigned long)geteuid());
		return -1;
	}
	if ((st.st_mode & (S_IXUSR | S_IRWXG | S_IRWXO)) != 0) {
		*why = fail("%s: group or others may access it (mode %04o); "
		    "run: chmod 600 %s", path,
		    (unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	return 0;
}

/* $HOME, else the password database's; malloc'd, NULL when neither. */
static char *
home_dir(void)
{
	const char	*h;
	struct passwd	*pw;

	if ((h = getenv("HOME")) != NULL && h[0] != '\0')
		return strdup(h);
	if ((pw = getpwuid(getuid())) != NULL && pw->pw_dir != NULL &&
	    pw->pw_dir[0] != '\0')
		return strdup(pw->pw_dir);
	return NULL;
}

/* "~" and "~/..." become the home directory (msmtp does the same). */
static char *
expand_tilde(const char *s)
{
	char	*home, *out;
	size_t	 n;

	if (s[0] != '~' || (s[1] != '\0' && s[1] != '/'))
		return strdup(s);
	if ((home = home_dir()) == NULL)
		return NULL;
	n = strlen(home) + strlen(s);
	if ((out = malloc(n)) != NULL)
		(void)snprintf(out, n, "%s%s", home, s + 1);
	free(home);
	return out;
}

char *
clientconf_path(const char **why)
{
	const char	*x;
	char		*home, *out;
	size_t		 n;

	/* XDG Base Directory: a relative $XDG_CONFIG_HOME is ignored. */
	if ((x = getenv("XDG_CONFIG_HOME")) != NULL && x[0] == '/') {
		n = strlen(x) + sizeof("/usmtp/client.conf");
		if ((out = malloc(n)) == NULL) {
			*why = "out of memory";
			return NULL;
		}
		(void)snprintf(out, n, "%s/usmtp/client.conf", x);
		return out;
	}
	if ((home = home_dir()) == NULL) {
		*why = "no home directory: HOME is not set and the user has "
		    "none in the password database";
		return NULL;
	}
	n = strlen(home) + sizeof("/.config/usmtp/client.conf");
	if ((out = malloc(n)) == NULL)
		*why = "out of memory";
	else
		(void)snprintf(out, n, "%s/.config/usmtp/client.conf", home);
	free(home);
	return out;
}

static void
acct_free(struct acct *a)
{
	free(a->name);
	free(a->host);
	free(a->ca);
	free(a->user);
	free(a->pwfile);
	free(a->pwcmd);
	memset(a, 0, sizeof(*a));
}

/* dst = src with its own copies of the strings; dst's mask cleared. */
static int
acct_copy(struct acct *dst, const struct acct *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->port = src->port;
	dst->timeout = src->timeout;
	dst->dialect = src->dialect;
	dst->secure = src->secure;
#define DUP(f) do { \
	if (src->f != NULL && (dst->f = strdup(src->f)) == NULL) \
		goto nomem; \
} while (0)
	DUP(host);
	DUP(ca);
	DUP(user);
	DUP(pwfile);
	DUP(pwcmd);
#undef DUP
	return 0;
nomem:
	acct_free(dst);
	return -1;
}

static struct acct *
acct_find(struct parser *p, const char *name)
{
	size_t	i;

	for (i = 0; i < p->nacc; i++)
		if (strcmp(p->acc[i].name, name) == 0)
			return &p->acc[i];
	return NULL;
}

/* Strips blanks, then one pair of enclosing double quotes (msmtp). */
static char *
trim(char *s)
{
	char	*e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	if (e - s >= 2 && s[0] == '"' && e[-1] == '"') {
		e[-1] = '\0';
		s++;
	}
	return s;
}

/* A whole decimal number in lo..hi. */
static int
parse_int(const char *s, long lo, long hi, int *out)
{
	char	*end;
	long	 v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

/*
 * Sets key k of a: from value (a line of the file), or, when src is not
 * NULL, from account src (the ": A" list).  An empty value unsets the key
 * (msmtp).  The password file and command exclude each other: setting one
 * unsets the other, and giving both in one section is an error.
 */
static int
acct_set(struct parser *p, struct acct *a, enum key k, const struct acct *src,
    const char *value)
{
	char	**sp = NULL, *v = NULL;
	int	  n;

	switch (k) {
	case K_HOST:	sp = &a->host; break;
	case K_CA:	sp = &a->ca; break;
	case K_USER:	sp = &a->user; break;
	case K_PWFILE:	sp = &a->pwfile; break;
	case K_PWCMD:	sp = &a->pwcmd; break;
	default:	break;
	}
	if (src != NULL) {
		switch (k) {
		case K_HOST:	value = src->host; break;
		case K_CA:	value = src->ca; break;
		case K_USER:	value = src->user; break;
		case K_PWFILE:	value = src->pwfile; break;
		case K_PWCMD:	value = src->pwcmd; break;
		case K_PORT:	a->port = src->port; break;
		case K_TIMEOUT:	a->timeout = src->timeout; break;
		case K_DIALECT:	a->dialect = src->dialect; break;
		case K_SECURE:	a->secure = src->secure; break;
		default:	break;
		}
		if (value == NULL)
			value = "";
	} else if (value[0] == '\0') {
		/* unset: back to the built-in default */
	} else if (k == K_PORT) {
		if (parse_int(value, 1, 65535, &n) == -1) {
			fail_at(p, "port must be a number from 1 to 65535, "
			    "not '%s'", value);
			return -1;
		}
		a->port = n;
	} else if (k == K_TIMEOUT) {
		if (parse_int(value, 0, CONF_TIMEOUT_MAX_SEC, &n) == -1) {
			fail_at(p, "timeout must be a number of seconds from "
			    "0 to %d, not '%s'", CONF_TIMEOUT_MAX_SEC, value);
			return -1;
		}
		a->timeout = n;
	} else if (k == K_DIALECT) {
		if ((a->dialect = clientconf_dialect(value)) ==
		    CONF_DIALECT_UNSET) {
			fail_at(p, "dialect must be auto, document or "
			    "reference, not '%s'", value);
			return -1;
		}
	} else if (k == K_SECURE) {
		if ((a->secure = clientconf_secure(value)) == CONF_SECURE_UNSET) {
			fail_at(p, "secure must be prefer, require or off, "
			    "not '%s'", value);
			return -1;
		}
	}
	if (src == NULL && value[0] == '\0') {
		switch (k) {
		case K_PORT:	a->port = 0; break;
		case K_TIMEOUT:	a->timeout = -1; break;
		case K_DIALECT:	a->dialect = CONF_DIALECT_UNSET; break;
		case K_SECURE:	a->secure = CONF_SECURE_UNSET; break;
		default:	break;
		}
	}
	if (sp != NULL) {
		if (value[0] == '\0')
			v = NULL;
		else if (src == NULL && (k == K_CA || k == K_PWFILE)) {
			if ((v = expand_tilde(value)) == NULL) {
				fail_at(p, "cannot expand '~' in '%s': no "
				    "home directory", value);
				return -1;
			}
		} else if ((v = strdup(value)) == NULL) {
			fail_at(p, "out of memory");
			return -1;
		}
		if (src == NULL && k == K_USER && v != NULL &&
		    strpbrk(v, " \t") != NULL) {
			free(v);
			fail_at(p, "user must be an address without "
			    "spaces, not '%s'", value);
			return -1;
		}
		free(*sp);
		*sp = v;
	}
	if (k == K_PWFILE || k == K_PWCMD) {
		enum key other = k == K_PWFILE ? K_PWCMD : K_PWFILE;

		char **op = other == K_PWFILE ? &a->pwfile : &a->pwcmd;

		if (src == NULL && value[0] != '\0' && *op != NULL &&
		    a->keyline[other] != 0) {
			fail_at(p, "password-file and password-command both "
			    "given in one section (the other on line %d)",
			    a->keyline[other]);
			return -1;
		}
		if (value[0] != '\0') {
			free(*op);
			*op = NULL;
			a->set &= ~(1u << other);
		}
	}
	a->set |= 1u << k;
	if (src == NULL)
		a->keyline[k] = p->line;
	return 0;
}

/* "account NAME" or "account NAME : A[, B...]" (msmtp). */
static int
parse_account(struct parser *p, char *arg, const char **why)
{
	struct acct	 a, *src, *grown;
	char		*name, *list, *item, *next, *colon;
	int		 k;

	if ((colon = strchr(arg, ':')) != NULL) {
		*colon = '\0';
		list = colon + 1;
	} else
		list = NULL;
	name = trim(arg);
	if (name[0] == '\0') {
		*why = fail_at(p, "account needs a name");
		return -1;
	}
	if (strchr(name, ',') != NULL || strpbrk(name, " \t") != NULL) {
		*why = fail_at(p, "an account name has no spaces or commas: "
		    "'%s'", name);
		return -1;
	}
	if ((src = acct_find(p, name)) != NULL) {
		if (src->line == 0)
			*why = fail_at(p, "account %s was already defined by "
			    "the keys before the first section", name);
		else
			*why = fail_at(p, "account %s was already defined on "
			    "line %d", name, src->line);
		return -1;
	}
	if (acct_copy(&a, &p->defaults) == -1 ||
	    (a.name = strdup(name)) == NULL) {
		acct_free(&a);
		*why = fail_at(p, "out of memory");
		return -1;
	}
	a.line = p->line;
	for (item = list; item != NULL; item = next) {
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		item = trim(item);
		if (item[0] == '\0' || (src = acct_find(p, item)) == NULL) {
			*why = item[0] == '\0' ?
			    fail_at(p, "an empty name in the list after ':'") :
			    fail_at(p, "account %s is not defined before "
			    "this line", item);
			acct_free(&a);
			return -1;
		}
		for (k = 0; k < NKEYS; k++)
			if ((src->set & (1u << k)) != 0 &&
			    acct_set(p, &a, (enum key)k, src, NULL) == -1) {
				*why = msg;
				acct_free(&a);
				return -1;
			}
	}
	if (p->nacc == p->capacc) {
		size_t ncap = p->capacc == 0 ? 8 : p->capacc * 2;

		if ((grown = reallocarray(p->acc, ncap, sizeof(*grown))) ==
		    NULL) {
			acct_free(&a);
			*why = fail_at(p, "out of memory");
			return -1;
		}
		p->acc = grown;
		p->capacc = ncap;
	}
	p->acc[p->nacc] = a;
	p->cur = &p->acc[p->nacc++];
	return 0;
}

static int
parse_key(struct parser *p, const char *key, char *value, const char **why)
{
	int	 k;

	for (k = 0; k < NKEYS; k++)
		if (strcmp(key, keyname[k]) == 0)
			break;
	if (k == NKEYS) {
		*why = fail_at(p, "unknown key '%s'", key);
		return -1;
	}
	if (value[0] == '=') {
		*why = fail_at(p, "write '%s VALUE', without '='", key);
		return -1;
	}
	if (acct_set(p, p->cur, (enum key)k, NULL, value) == -1) {
		*why = msg;
		return -1;
	}
	return 0;
}

static int
parse_line(struct parser *p, char *line, const char **why)
{
	char	*key, *rest, *eq;
	size_t	 n;

	while (*line == ' ' || *line == '\t')
		line++;
	if (line[0] == '\0' || line[0] == '#')
		return 0;
	n = strcspn(line, " \t");
	key = line;
	rest = line + n;
	if (*rest != '\0')
		*rest++ = '\0';
	rest = trim(rest);
	if ((eq = strchr(key, '=')) != NULL) {
		*eq = '\0';
		*why = fail_at(p, "write '%s VALUE', without '='", key);
		return -1;
	}
	if (strcmp(key, "defaults") == 0) {
		if (rest[0] != '\0') {
			*why = fail_at(p, "defaults takes no value");
			return -1;
		}
		p->cur = &p->defaults;
		return 0;
	}
	if (strcmp(key, "account") == 0)
		return parse_account(p, rest, why);
	if (p->cur == NULL) {
		/*
		 * msmtp: keys before any section make an account named
		 * "default", so that a file of a few keys is enough.
		 */
		char impl[] = "default";

		if (parse_account(p, impl, why) == -1)
			return -1;
		p->acc[p->nacc - 1].line = 0;
	}
	return parse_key(p, key, rest, why);
}

/* Reads a whole file of at most CONF_FILE_MAX_BYTES, NUL-terminated. */
static int
read_all(int fd, const char *path, char **out, size_t *len, const char **why)
{
	char	*b, *nb;
	size_t	 n = 0, cap = 4096;
	ssize_t	 r;

	if ((b = malloc(cap)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	for (;;) {
		if (n + 1 == cap) {
			if (cap > CONF_FILE_MAX_BYTES) {
				*why = fail("%s: over %d bytes: not a "
				    "configuration file", path,
				    CONF_FILE_MAX_BYTES);
				goto bad;
			}
			if ((nb = realloc(b, cap * 2)) == NULL) {
				*why = "out of memory";
				goto bad;
			}
			b = nb;
			cap *= 2;
		}
		r = read(fd, b + n, cap - 1 - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			*why = fail("%s: %s", path, strerror(errno));
			goto bad;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	*out = b;
	*len = n;
	return 0;
bad:
	free(b);
	return -1;
}

int
clientconf_load(struct clientconf *cf, const char *path, int required,
    const char *account, const char **why)
{
	struct parser	 p;
	struct acct	*a;
	char		*text = NULL, *line, *end;
	size_t		 len, i;
	int		 fd, rv = -1;

	memset(cf, 0, sizeof(*cf));
	cf->timeout = -1;
	memset(&p, 0, sizeof(p));
	p.path = path;
	p.defaults.timeout = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (errno == ENOENT && !required && account == NULL)
			return 1;
		if (errno == ENOENT && account != NULL)
			*why = fail("%s: no such file, so no account %s",
			    path, account);
		else
			*why = fail("%s: %s", path, strerror(errno));
		return -1;
	}
	if (check_owner_mode(fd, path, why) == -1 ||
	    read_all(fd, path, &text, &len, why) == -1) {
		close(fd);
		return -1;
	}
	close(fd);

	for (line = text; line < text + len; line = end + 1) {
		p.line++;
		if ((end = memchr(line, '\n', (size_t)(text + len - line))) ==
		    NULL)
			end = text + len;
		if (memchr(line, '\0', (size_t)(end - line)) != NULL) {
			*why = fail_at(&p, "a NUL byte: not a text file");
			goto out;
		}
		if ((size_t)(end - line) > CONF_LINE_MAX_BYTES) {
			*why = fail_at(&p, "line longer than %d bytes",
			    CONF_LINE_MAX_BYTES);
			goto out;
		}
		*end = '\0';
		if (end > line && end[-1] == '\r')
			end[-1] = '\0';
		if (parse_line(&p, line, why) == -1)
			goto out;
	}

	/* The account: the one asked for, else "default", else the first. */
	if (account != NULL) {
		if ((a = acct_find(&p, account)) == NULL) {
			*why = fail("%s: no account %s", path, account);
			goto out;
		}
	} else if ((a = acct_find(&p, "default")) == NULL)
		a = p.nacc > 0 ? &p.acc[0] : &p.defaults;

	if ((cf->path = strdup(path)) == NULL ||
	    (a->name != NULL && (cf->account = strdup(a->name)) == NULL)) {
		*why = "out of memory";
		goto out;
	}
	cf->account_line = a->line;
	/* The strings move from the section to cf. */
	cf->host = a->host;
	cf->ca = a->ca;
	cf->user = a->user;
	cf->password_file = a->pwfile;
	cf->password_command = a->pwcmd;
	a->host = a->ca = a->user = a->pwfile = a->pwcmd = NULL;
	cf->port = a->port;
	cf->timeout = a->timeout;
	cf->dialect = a->dialect;
	cf->secure = a->secure;
	rv = 0;
out:
	if (rv == -1)
		clientconf_free(cf);
	for (i = 0; i < p.nacc; i++)
		acct_free(&p.acc[i]);
	free(p.acc);
	acct_free(&p.defaults);
	free(text);
	return rv;
}

void
clientconf_free(struct clientconf *cf)
{
	free(cf->path);
	free(cf->account);
	free(cf->host);
	free(cf->ca);
	free(cf->user);
	free(cf->password_file);
	if (cf->password_command != NULL)
		OPENSSL_cleanse(cf->password_command,
		    strlen(cf->password_command));
	free(cf->password_command);
	memset(cf, 0, sizeof(*cf));
	cf->timeout = -1;
}

/*
 * Adds n bytes of a source's output to the password: the bytes up to the
 * first LF go to pw (CR before it cut later), the rest is counted only.
 * *state: 0 reading the first line, 1 past it, -1 the line is too long.
 */
static void
pw_take(const char *p, size_t n, char *pw, size_t pwsz, size_t *len,
    int *state)
{
	const char	*nl;
	size_t		 take;

	if (*state != 0)
		return;
	nl = memchr(p, '\n', n);
	take = nl != NULL ? (size_t)(nl - p) : n;
	if (take > pwsz - 1 - *len) {
		*state = -1;
		return;
	}
	memcpy(pw + *len, p, take);
	*len += take;
	if (nl != NULL)
		*state = 1;
}

/* Cuts a CR before the LF, NUL-terminates; -1 when empty. */
static int
pw_finish(char *pw, size_t *len)
{
	if (*len > 0 && pw[*len - 1] == '\r')
		(*len)--;
	pw[*len] = '\0';
	return *len == 0 ? -1 : 0;
}

int
clientconf_password_file(const char *path, char *pw, size_t pwsz,
    size_t *pwlen, const char **why)
{
	char	 chunk[PWCMD_CHUNK_BYTES];
	size_t	 len = 0;
	ssize_t	 r;
	int	 fd, state = 0, rv = -1;

	if (pwsz < 2) {
		*why = "no room for a password";
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		*why = fail("%s: %s", path, strerror(errno));
		return -1;
	}
	if (check_owner_mode(fd, path, why) == -1)
		goto out;
	/* read(2), not stdio: no unwiped copy in a FILE buffer. */
	while (state == 0) {
		r = read(fd, chunk, sizeof(chunk));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			*why = fail("%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		pw_take(chunk, (size_t)r, pw, pwsz, &len, &state);
	}
	if (state == -1) {
		*why = fail("%s: the password is longer than %zu bytes", path,
		    pwsz - 1);
		goto out;
	}
	if (pw_finish(pw, &len) == -1) {
		*why = fail("%s: the password (the first line) is empty",
		    path);
		goto out;
	}
	*pwlen = len;
	rv = 0;
out:
	OPENSSL_cleanse(chunk, sizeof(chunk));
	if (rv == -1)
		OPENSSL_cleanse(pw, pwsz);
	close(fd);
	return rv;
}

int
clientconf_password_command(const char *cmd, int timeout_ms, char *pw,
    size_t pwsz, size_t *pwlen, const char **why)
{
	char		 chunk[PWCMD_CHUNK_BYTES];
	struct pollfd	 pfd;
	size_t		 len = 0, total = 0;
	ssize_t		 r;
	long		 deadline, left;
	pid_t		 pid, w;
	int		 pipefd[2], devnull, status = 0, state = 0;
	int		 eof = 0, exited = 0, rv = -1;

	if (pwsz < 2) {
		*why = "no room for a password";
		return -1;
	}
	if (pipe2(pipefd, O_CLOEXEC) == -1) {
		*why = fail("password-command: pipe: %s", strerror(errno));
		return -1;
	}
	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		*why = fail("password-command: /dev/null: %s",
		    strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	deadline = clock_ms() + timeout_ms;
	if ((pid = fork()) == -1) {
		*why = fail("password-command: fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		close(devnull);
		return -1;
	}
	if (pid == 0) {
		/*
		 * Standard input is not the command's: under the sendmail
		 * interface it is the message.  Standard error stays, for
		 * the command's own complaints; nothing else is inherited.
		 */
		if (dup2(devnull, 0) == -1 || dup2(pipefd[1], 1) == -1)
			_exit(127);
		closefrom(3);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	close(devnull);
	(void)fcntl(pipefd[0], F_SETFL, O_NONBLOCK);

	/*
	 * Read until end of output and the child's exit.  When the child has
	 * exited, what is in the pipe now is all we take: a process it left
	 * behind may hold the pipe open for ever.
	 */
	while (!eof || !exited) {
		while (!eof) {
			r = read(pipefd[0], chunk, sizeof(chunk));
			if (r == -1 && errno == EINTR)
				continue;
			if (r == -1 && errno == EAGAIN)
				break;
			if (r == -1) {
				*why = fail("password-command: reading its "
				    "output: %s", strerror(errno));
				goto kill;
			}
			if (r == 0) {
				eof = 1;
				break;
			}
			total += (size_t)r;
			if (total > CONF_PWCMD_OUTPUT_MAX_BYTES) {
				*why = fail("password-command printed more "
				    "than %d bytes",
				    CONF_PWCMD_OUTPUT_MAX_BYTES);
				goto kill;
			}
			pw_take(chunk, (size_t)r, pw, pwsz, &len, &state);
		}
		if (exited)
			break;		/* drained after the exit */
		w = waitpid(pid, &status, WNOHANG);
		if (w == -1 && errno != EINTR) {
			*why = fail("password-command: waitpid: %s",
			    strerror(errno));
			goto kill;
		}
		if (w == pid) {
			exited = 1;
			continue;	/* one last drain */
		}
		left = PWCMD_POLL_MS;
		if (timeout_ms > 0) {
			if ((left = deadline - clock_ms()) <= 0) {
				*why = fail("password-command did not finish "
				    "within %d ms; it was killed", timeout_ms);
				goto kill;
			}
			if (left > PWCMD_POLL_MS)
				left = PWCMD_POLL_MS;
		}
		if (eof) {
			struct timespec ts = { 0, left * 1000000L };

			nanosleep(&ts, NULL);
		} else {
			pfd.fd = pipefd[0];
			pfd.events = POLLIN;
			(void)poll(&pfd, 1, (int)left);
		}
	}
	if (WIFSIGNALED(status)) {
		*why = fail("password-command was killed by signal %d",
		    WTERMSIG(status));
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		*why = fail("password-command exited with status %d%s",
		    WEXITSTATUS(status), WEXITSTATUS(status) == 127 ?
		    " (command not found?)" : "");
		goto out;
	}
	if (total == 0) {
		*why = "password-command printed nothing";
		goto out;
	}
	if (state == -1) {
		*why = fail("password-command: the password is longer than "
		    "%zu bytes", pwsz - 1);
		goto out;
	}
	if (pw_finish(pw, &len) == -1) {
		*why = "password-command printed an empty password (its "
		    "first line is empty)";
		goto out;
	}
	*pwlen = len;
	rv = 0;
	goto out;
kill:
	if (!exited) {
		(void)kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
	}
out:
	close(pipefd[0]);
	OPENSSL_cleanse(chunk, sizeof(chunk));
	if (rv == -1)
		OPENSSL_cleanse(pw, pwsz);
	return rv;
}

int
clientconf_password(const struct clientconf *cf, int timeout_ms, char *pw,
    size_t pwsz, size_t *pwlen, const char **why)
{
	const char	*w;
	int		 r;

	if (cf->password_file != NULL)
		r = clientconf_password_file(cf->password_file, pw, pwsz,
		    pwlen, &w);
	else if (cf->password_command != NULL)
		r = clientconf_password_command(cf->password_command,
		    timeout_ms, pw, pwsz, pwlen, &w);
	else
		return 1;
	if (r == -1) {
		char	tmp[MSG_BYTES];

		/* Name the file that named the command. */
		if (cf->password_file == NULL && cf->path != NULL) {
			(void)snprintf(tmp, sizeof(tmp), "%s", w);
			*why = fail("%s: %s", cf->path, tmp);
		} else
			*why = w;
		return -1;
	}
	return 0;
}

enum conf_dialect
clientconf_dialect(const char *s)
{
	if (strcmp(s, "auto") == 0)
		return CONF_DIALECT_AUTO;
	if (strcmp(s, "document") == 0)
		return CONF_DIALECT_DOCUMENT;
	if (strcmp(s, "reference") == 0)
		return CONF_DIALECT_REFERENCE;
	return CONF_DIALECT_UNSET;
}

enum conf_secure
clientconf_secure(const char *s)
{
	if (strcmp(s, "prefer") == 0)
		return CONF_SECURE_PREFER;
	if (strcmp(s, "require") == 0)
		return CONF_SECURE_REQUIRE;
	if (strcmp(s, "off") == 0)
		return CONF_SECURE_OFF;
	return CONF_SECURE_UNSET;
}
