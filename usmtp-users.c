/*
 * usmtp-users.c -- main of the user administration tool: init, add,
 * passwd, del, list and check users of the GDBM database usmtp-handler
 * reads, and list and lift the login throttle's lockouts.  Address
 * syntax, the record format and safe updates are auth.c's, the throttle
 * file throttle.c's; this file parses the command line, reads passwords
 * (terminal without echo, or one line of standard input) and reports
 * with sysexits(3) codes.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "usmtp.h"

#define PROG			"usmtp-users"
#define DEFAULT_DB		"/etc/usmtp/users.db"
#define PW_MAX			1024	/* bytes, without the line end */
#define EXIT_WRONG		1	/* check: wrong password or unknown */
#define SHOW_MAX		64	/* bytes of a bad argument we echo */

enum cmd {
	C_NONE, C_INIT, C_ADD, C_PASSWD, C_DEL, C_LIST, C_CHECK, C_LOCKOUTS,
	C_UNLOCK
};

/* Long options without a short form: values past any character. */
enum {
	O_DB = 256, O_MAILDIR, O_PASSWORD_STDIN, O_COST, O_THROTTLE_DB
};

/* What each command takes: an operand, and which options. */
#define OK_MAILDIR	0x01
#define OK_PWSTDIN	0x02
#define OK_COST		0x04
#define OK_THROTTLE_DB	0x08
#define UNLOCK_WHAT	"ADDRESS|PREFIX|ACCOUNT|all"

static const struct command {
	const char	*name;
	const char	*operand;	/* NULL: none */
	unsigned	 opts;
} commands[] = {
	[C_NONE] = { "", NULL, 0 },
	[C_INIT] = { "init", NULL, OK_COST },
	[C_ADD] = { "add", "ADDRESS", OK_MAILDIR | OK_PWSTDIN | OK_COST },
	[C_PASSWD] = { "passwd", "ADDRESS", OK_PWSTDIN | OK_COST },
	[C_DEL] = { "del", "ADDRESS", 0 },
	[C_LIST] = { "list", NULL, 0 },
	[C_CHECK] = { "check", "ADDRESS", OK_PWSTDIN },
	[C_LOCKOUTS] = { "lockouts", NULL, OK_THROTTLE_DB },
	[C_UNLOCK] = { "unlock", UNLOCK_WHAT, OK_THROTTLE_DB }
};
#define NCOMMANDS	(sizeof(commands) / sizeof(commands[0]))

struct args {
	enum cmd	 cmd;
	const char	*db, *operand, *maildir, *tdb;
	int		 pwstdin, cost, costset;
};

/* The entries usmtp-users lockouts prints. */
struct locks {
	struct throttle_entry	*v;
	size_t			 n, cap;
};

struct entry {
	char	*addr;
	char	*maildir;
};

struct list {
	struct entry	*v;
	size_t		 n, cap;
};

static void	usage(FILE *);
static int	usage_error(const char *, const char *);
static int	flushed(void);
static const char *shown(const char *);
static int	read_tty(const char *, char *, size_t, size_t *);
static int	get_password(int, int, char *, size_t, size_t *);
static int	user_state(const char *, const char *);
static int	collect(void *, const char *, const char *);
static int	cmp_entry(const void *, const void *);
static int	set_password(const char *, enum auth_op, const char *,
		    const char *, int, int);
static int	do_init(const char *, int);
static int	do_del(const char *, const char *);
static int	do_list(const char *);
static int	do_check(const char *, const char *, int);
static int	user_names(const char *, struct list *);
static void	free_list(struct list *);
static int	collect_lock(void *, const struct throttle_entry *);
static int	cmp_lock(const void *, const void *);
static void	print_lock(const struct throttle_entry *);
static int	do_lockouts(const char *, const char *);
static int	unlock_target(const char *, struct throttle_key *);
static int	do_unlock(const char *, const char *);
static int	parse_args(int, char *[], struct args *);
static int	operand(struct args *, const char *);
static int	only_with(const char *, unsigned);
static int	check_args(const struct args *);

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: " PROG " [--db FILE] init [--cost N]\n"
"       " PROG " [--db FILE] add ADDRESS [--maildir PATH] [--password-stdin]\n"
"                   [--cost N]\n"
"       " PROG " [--db FILE] passwd ADDRESS [--password-stdin] [--cost N]\n"
"       " PROG " [--db FILE] del ADDRESS\n"
"       " PROG " [--db FILE] list\n"
"       " PROG " [--db FILE] check ADDRESS [--password-stdin]\n"
"       " PROG " [--throttle-db FILE] [--db FILE] lockouts\n"
"       " PROG " [--throttle-db FILE] unlock " UNLOCK_WHAT "\n"
"       " PROG " -h | --help | -V | --version\n"
"\n"
"Options may come before or after the command.\n"
"\n"
"  --db FILE          user database (default " DEFAULT_DB ")\n"
"  --maildir PATH     the user's own Maildir, an absolute path (default:\n"
"                     none, the handler's --maildir template is used)\n"
"  --password-stdin   read the password as one line of standard input\n"
"                     instead of asking twice on the terminal\n"
"  --cost N           scrypt cost, log2 of N, %d..%d (default %d: 16 MiB\n"
"                     of memory and tens of milliseconds per check;\n"
"                     each step doubles both; 1 is for tests only)\n"
"  --throttle-db FILE the handler's login throttle file (default\n"
"                     " THROTTLE_DB_DEFAULT ")\n"
"  -h, --help         print this help and exit\n"
"  -V, --version      print the version and exit\n"
"\n"
"init makes an empty database, and leaves an existing one as it is.\n"
"lockouts lists the addresses and networks refused and the accounts\n"
"slowed down by the handler's login throttle; unlock clears one address\n"
"(IPv6: its /64), prefix (a.b.c.0/24, x:y:z::/48), account (by address,\n"
"or by the #HASH lockouts shows), or all of them.\n"
"\n"
"Exit status: 0 done; 1 check: wrong password or unknown address,\n"
"unlock: nothing recorded for it;\n"
"64 usage; 65 invalid address, prefix or Maildir; 66 no usable password;\n"
"67 no such user; 73 user already exists; 74 database error;\n"
"70 internal error; 71 out of memory.\n",
	    AUTH_COST_MIN, AUTH_COST_MAX, AUTH_COST_DEFAULT);
}

static int
usage_error(const char *what, const char *detail)
{
	fprintf(stderr, PROG ": %s%s%s (see " PROG " --help)\n", what,
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	return EX_USAGE;
}

/* A bad argument as we may print it: printable ASCII, cut short. */
/* Standard output flushed: 0, or EX_IOERR (said on standard error). */
static int
flushed(void)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, PROG ": standard output: %s\n",
		    strerror(errno));
		return EX_IOERR;
	}
	return 0;
}

static const char *
shown(const char *s)
{
	static char buf[SHOW_MAX + 4];
	size_t i;

	for (i = 0; s[i] != '\0' && i < SHOW_MAX; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	if (s[i] != '\0' && snprintf(buf + i, 4, "...") < 0)
		buf[i] = '\0';
	return buf;
}

/* Asks on the terminal with echo off; a message when that fails. */
static int
read_tty(const char *prompt, char *buf, size_t bufsz, size_t *len)
{
	const char	*why;
	int		 r;

	if ((r = tty_read_secret(prompt, buf, bufsz, len, &why)) == 0)
		return 0;
	if (r == -2)
		fprintf(stderr, PROG ": password longer than %d bytes\n",
		    PW_MAX);
	else
		fprintf(stderr, PROG ": /dev/tty: %s (use --password-stdin)\n",
		    why);
	return -1;
}

/*
 * Gets a password into pw (pwsz > PW_MAX): one line of standard input, or
 * from the terminal, twice when twice is set.  0, or an exit status after
 * a message.  pw is wiped on failure.
 */
static int
get_password(int from_stdin, int twice, char *pw, size_t pwsz,
    size_t *pwlen)
{
	char again[PW_MAX + 2];
	size_t againlen = 0;
	int r, rv = EX_NOINPUT;

	if (from_stdin) {
		r = read_line_fd(STDIN_FILENO, pw, pwsz, pwlen);
		if (r == -2) {
			fprintf(stderr,
			    PROG ": password longer than %d bytes\n", PW_MAX);
			goto out;
		}
		if (r == -1) {
			fprintf(stderr, PROG ": no password on standard "
			    "input%s%s\n", errno ? ": " : "",
			    errno ? strerror(errno) : "");
			goto out;
		}
	} else {
		if (read_tty("Password: ", pw, pwsz, pwlen) == -1)
			goto out;
		if (twice && *pwlen > 0) {
			if (read_tty("Password again: ", again, sizeof(again),
			    &againlen) == -1)
				goto out;
			if (againlen != *pwlen ||
			    CRYPTO_memcmp(again, pw, againlen) != 0) {
				fprintf(stderr,
				    PROG ": the passwords do not match\n");
				goto out;
			}
		}
	}
	if (*pwlen == 0) {
		fprintf(stderr, PROG ": empty password refused\n");
		goto out;
	}
	if (memchr(pw, '\0', *pwlen) != NULL) {
		fprintf(stderr, PROG ": password contains a NUL byte\n");
		goto out;
	}
	/* usmtp(7), Framing: the receiver strips a frame's trailing spaces */
	if (pw[*pwlen - 1] == ' ') {
		fprintf(stderr, PROG ": password ends with a space, which "
		    "USMTP cannot carry\n");
		goto out;
	}
	rv = 0;
out:
	OPENSSL_cleanse(again, sizeof(again));
	if (rv != 0) {
		OPENSSL_cleanse(pw, pwsz);
		*pwlen = 0;
	}
	return rv;
}

/*
 * Whether addr is in db, before we ask for a password: 1 yes, 0 no (or no
 * database yet), else an exit status after a message.
 */
static int
user_state(const char *db, const char *addr)
{
	char maildir[AUTH_MAILDIR_MAX + 1];
	struct userdb *udb;
	struct stat st;
	const char *why;
	int r;

	if (stat(db, &st) == -1 && errno == ENOENT)
		return 0;
	if ((udb = auth_open(db, &why)) == NULL) {
		fprintf(stderr, PROG ": %s\n", why);
		return EX_IOERR;
	}
	r = auth_lookup(udb, addr, maildir, sizeof(maildir), &why);
	auth_close(udb);
	if (r == -1) {
		fprintf(stderr, PROG ": %s\n", why);
		return EX_IOERR;
	}
	return r;
}

/*
 * add (op AUTH_ADD) or passwd (AUTH_PASSWD): asks for the password,
 * hashes it and writes the record.  The user must not exist for add and
 * must exist for passwd.
 */
static int
set_password(const char *db, enum auth_op op, const char *addr,
    const char *maildir, int from_stdin, int cost)
{
	char pw[PW_MAX + 2], rec[AUTH_HASH_MAX + 1];
	size_t pwlen = 0;
	const char *why;
	int r, rv, adding = op == AUTH_ADD;

	rec[0] = '\0';
	if ((r = user_state(db, addr)) == adding) {
		/* add of an existing user, passwd of an unknown one */
		goto refused;
	} else if (r != 0 && r != 1) {
		rv = r;
		goto out;
	}
	if ((rv = get_password(from_stdin, 1, pw, sizeof(pw), &pwlen)) != 0)
		goto out;
	rv = EX_SOFTWARE;
	r = auth_hash(pw, pwlen, cost, rec, sizeof(rec), &why);
	OPENSSL_cleanse(pw, sizeof(pw));
	if (r == -1) {
		fprintf(stderr, PROG ": %s\n", why);
		goto out;
	}
	r = auth_update(db, op, addr, rec, adding ? maildir : NULL, &why);
	if (r == 1)
		goto refused;	/* another writer got there first */
	if (r == -1) {
		fprintf(stderr, PROG ": %s\n", why);
		rv = EX_IOERR;
	} else
		rv = 0;
	goto out;
refused:
	fprintf(stderr, PROG ": %s: %s\n", addr,
	    adding ? "already exists" : "no such user");
	rv = adding ? EX_CANTCREAT : EX_NOUSER;
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(rec, sizeof(rec));
	return rv;
}

/* init: an empty database, or a word that there is one already. */
static int
do_init(const char *db, int cost)
{
	const char *why;
	int r;

	if ((r = auth_init(db, cost, &why)) == -1) {
		fprintf(stderr, PROG ": %s\n", why);
		return EX_IOERR;
	}
	if (r == 1) {
		printf(PROG ": %s: a database already, left as it is\n", db);
		return flushed();
	}
	return 0;
}

static int
do_del(const char *db, const char *addr)
{
	const char *why;
	int r;

	r = auth_update(db, AUTH_DEL, addr, NULL, NULL, &why);
	if (r == 1) {
		fprintf(stderr, PROG ": %s: no such user\n", addr);
		return EX_NOUSER;
	}
	if (r == -1) {
		fprintf(stderr, PROG ": %s\n", why);
		return EX_IOERR;
	}
	return 0;
}

static int
collect(void *arg, const char *addr, const char *maildir)
{
	struct list *l = arg;
	struct entry *v;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;

		if ((v = reallocarray(l->v, cap, sizeof(*v))) == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if ((l->v[l->n].addr = strdup(addr)) == NULL)
		return -1;
	if ((l->v[l->n].maildir = strdup(maildir)) == NULL) {
		free(l->v[l->n].addr);
		return -1;
	}
	l->n++;
	return 0;
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return strcmp(x->addr, y->addr);
}

static int
do_list(const char *db)
{
	struct list l = { NULL, 0, 0 };
	struct userdb *udb;
	const char *why;
	size_t i;
	int rv = EX_IOERR;

	if ((udb = auth_open(db, &why)) == NULL) {
		fprintf(stderr, PROG ": %s\n", why);
		return EX_IOERR;
	}
	if (auth_foreach(udb, collect, &l, &why) == -1) {
		if (strcmp(why, "stopped") == 0) {
			fprintf(stderr, PROG ": out of memory\n");
			rv = EX_OSERR;
		} else
			fprintf(stderr, PROG ": %s\n", why);
		goto out;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(l.v[0]), cmp_entry);
	for (i = 0; i < l.n; i++) {
		if (l.v[i].maildir[0] != '\0')
			printf("%s\t%s\n", l.v[i].addr, l.v[i].maildir);
		else
			printf("%s\n", l.v[i].addr);
	}
	rv = flushed();
out:
	free_list(&l);
	auth_close(udb);
	return rv;
}

static void
free_list(struct list *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].addr);
		free(l->v[i].maildir);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int
do_check(const char *db, const char *addr, int from_stdin)
{
	char pw[PW_MAX + 2];
	size_t pwlen = 0;
	struct userdb *udb;
	const char *why;
	int r, rv;

	if ((udb = auth_open(db, &why)) == NULL) {
		fprintf(stderr, PROG ": %s\n", why);
		return EX_IOERR;
	}
	if ((rv = get_password(from_stdin, 0, pw, sizeof(pw), &pwlen)) != 0)
		goto out;
	r = auth_check(udb, addr, pw, pwlen, &why);
	if (r == -1) {
		fprintf(stderr, PROG ": %s\n", why);
		rv = EX_IOERR;
	} else if (r == 0) {
		fprintf(stderr, PROG ": wrong password or unknown address\n");
		rv = EXIT_WRONG;
	} else
		rv = 0;
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	auth_close(udb);
	return rv;
}

/*
 * The users of db into *l, to name the accounts lockouts lists (the
 * throttle file keeps only their salted hashes).  0, or -1 after a
 * warning: the accounts are then shown by hash.
 */
static int
user_names(const char *db, struct list *l)
{
	struct userdb	*udb;
	const char	*why;
	int		 rv = 0;

	if ((udb = auth_open(db, &why)) == NULL) {
		fprintf(stderr, PROG ": %s: accounts are shown by hash\n", why);
		return -1;
	}
	if (auth_foreach(udb, collect, l, &why) == -1) {
		fprintf(stderr, PROG ": %s: accounts are shown by hash\n",
		    strcmp(why, "stopped") == 0 ? "out of memory" : why);
		free_list(l);
		rv = -1;
	}
	auth_close(udb);
	return rv;
}

static int
collect_lock(void *arg, const struct throttle_entry *e)
{
	struct locks		*l = arg;
	struct throttle_entry	*v;
	size_t			 cap;

	if (l->n == l->cap) {
		cap = l->cap ? 2 * l->cap : 64;
		if ((v = reallocarray(l->v, cap, sizeof(*v))) == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *e;
	return 0;
}

/* Addresses, then networks, then accounts; named before hashed. */
static int
cmp_lock(const void *a, const void *b)
{
	const struct throttle_entry *x = a, *y = b;

	if (x->key.kind != y->key.kind)
		return x->key.kind < y->key.kind ? -1 : 1;
	if ((x->key.text[0] == '\0') != (y->key.text[0] == '\0'))
		return x->key.text[0] == '\0' ? 1 : -1;
	if (x->key.text[0] == '\0')
		return memcmp(x->key.id, y->key.id, sizeof(x->key.id));
	return strcmp(x->key.text, y->key.text);
}

/*
 * "address 192.0.2.1 failures=10 left=840s refused", "network
 * 192.0.2.0/24 ...", "account alice@example.org failures=7 left=899s
 * delay=1000ms", an account not in the database as "#" and its hash.
 */
static void
print_lock(const struct throttle_entry *e)
{
	static const char *const kinds[] = {
		[THROTTLE_ADDR] = "address", [THROTTLE_NET] = "network",
		[THROTTLE_ACCOUNT] = "account"
	};
	char	hash[2 * sizeof(e->key.id) + 2];
	size_t	i;

	if (e->key.text[0] == '\0') {
		hash[0] = '#';
		for (i = 0; i < sizeof(e->key.id); i++)
			snprintf(hash + 1 + 2 * i, 3, "%02x", e->key.id[i]);
	}
	printf("%s %s failures=%u left=%us ", kinds[e->key.kind],
	    e->key.text[0] != '\0' ? e->key.text : hash, e->failures, e->left);
	if (e->key.kind == THROTTLE_ACCOUNT)
		printf("delay=%ums\n", throttle_delay_ms(e->failures));
	else
		printf("refused\n");
}

/* lockouts: what the throttle refuses or slows down now. */
static int
do_lockouts(const char *tdb, const char *db)
{
	struct throttle	 t = { tdb, 0, 0, 0, NULL };
	struct locks	 l = { NULL, 0, 0 };
	struct list	 users = { NULL, 0, 0 };
	const char	**names = NULL, *why;
	size_t		 i;
	int		 rv = EX_IOERR;

	if (user_names(db, &users) == 0 && users.n > 0 &&
	    (names = calloc(users.n, sizeof(*names))) == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		rv = EX_OSERR;
		goto out;
	}
	for (i = 0; names != NULL && i < users.n; i++)
		names[i] = users.v[i].addr;
	if (throttle_list(&t, time(NULL), names, names ? users.n : 0,
	    collect_lock, &l, &why) == -1) {
		if (strcmp(why, "stopped") == 0) {
			fprintf(stderr, PROG ": out of memory\n");
			rv = EX_OSERR;
		} else
			fprintf(stderr, PROG ": %s: %s\n", tdb, why);
		goto out;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(l.v[0]), cmp_lock);
	for (i = 0; i < l.n; i++)
		print_lock(&l.v[i]);
	rv = flushed();
out:
	free(names);
	free(l.v);
	free_list(&users);
	return rv;
}

/*
 * The key unlock names: an account when it has an '@' (normalized), a
 * hash as lockouts prints it ("#" and 32 hex digits), else an address
 * or prefix.  0, or -1 when it is none of these.
 */
static int
unlock_target(const char *s, struct throttle_key *k)
{
	char		addr[ADDR_MAX + 1];
	unsigned	byte;
	size_t		i;

	if (strchr(s, '@') != NULL)
		return addr_normalize(s, strlen(s), addr, sizeof(addr)) == -1 ?
		    -1 : throttle_account(addr, k);
	if (s[0] == '#') {
		if (strlen(s) != 1 + 2 * sizeof(k->id) ||
		    strspn(s + 1, "0123456789abcdefABCDEF") != 2 * sizeof(k->id))
			return -1;
		memset(k, 0, sizeof(*k));
		k->kind = THROTTLE_ACCOUNT;
		for (i = 0; i < sizeof(k->id); i++) {
			if (sscanf(s + 1 + 2 * i, "%2x", &byte) != 1)
				return -1;
			k->id[i] = (unsigned char)byte;
		}
		return 0;
	}
	return throttle_parse(s, k);
}

/* unlock: clears one entry, or all of them. */
static int
do_unlock(const char *tdb, const char *target)
{
	struct throttle		 t = { tdb, 0, 0, 0, NULL };
	struct throttle_key	 k, net;
	struct locks		 l = { NULL, 0, 0 };
	const char		*why;
	char			 prefix[sizeof(k.text) + 8];
	unsigned		 cleared;
	size_t			 i;
	int			 all = strcmp(target, "all") == 0;

	if (!all && unlock_target(target, &k) == -1) {
		fprintf(stderr, PROG ": %s: not an address, a /24, /32, /48 or "
		    "/64 prefix, an account or a #hash\n", shown(target));
		return EX_DATAERR;
	}
	if (throttle_clear(&t, all ? NULL : &k, &cleared, &why) == -1) {
		fprintf(stderr, PROG ": %s: %s\n", tdb, why);
		return EX_IOERR;
	}
	if (all) {
		printf("%u %s cleared\n", cleared, cleared == 1 ? "entry" :
		    "entries");
		return flushed();
	}
	if (cleared == 0) {
		fprintf(stderr, PROG ": %s: nothing recorded\n", shown(target));
		return EXIT_WRONG;
	}
	/* An address of a network still refused is refused still. */
	snprintf(prefix, sizeof(prefix), "%.*s/%d",
	    (int)strcspn(k.text, "/"), k.text, strchr(k.text, ':') ? 48 : 24);
	if (k.kind == THROTTLE_ADDR && throttle_parse(prefix, &net) == 0 &&
	    throttle_list(&t, time(NULL), NULL, 0, collect_lock, &l,
	    &why) == 0) {
		for (i = 0; i < l.n; i++)
			if (l.v[i].key.kind == THROTTLE_NET &&
			    memcmp(l.v[i].key.id, net.id, sizeof(net.id)) == 0)
				fprintf(stderr, PROG ": %s is still refused: "
				    "unlock %s too\n", net.text, net.text);
	}
	free(l.v);
	return 0;
}

/*
 * Reads the command line into *a: options anywhere, before or after the
 * command (getopt_long hands operands back in order), "--" ends them.
 * -1 when done, else an exit status (after --help and --version too).
 */
static int
parse_args(int argc, char *argv[], struct args *a)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, O_DB },
		{ "maildir", required_argument, NULL, O_MAILDIR },
		{ "password-stdin", no_argument, NULL, O_PASSWORD_STDIN },
		{ "cost", required_argument, NULL, O_COST },
		{ "throttle-db", required_argument, NULL, O_THROTTLE_DB },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	char	*end, shortopt[3];
	long	 l;
	int	 c, i, r;

	opterr = 0;
	/* "-": operands come back as 1, in order; ":": a missing value
	 * is ':', not '?' */
	while ((c = getopt_long(argc, argv, "-:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 1:
			if ((r = operand(a, optarg)) != -1)
				return r;
			break;
		case 'h':
			usage(stdout);
			return flushed();
		case 'V':
			printf(PROG " " USMTP_VERSION "\n");
			return flushed();
		case O_DB:
			a->db = optarg;
			break;
		case O_MAILDIR:
			a->maildir = optarg;
			break;
		case O_PASSWORD_STDIN:
			a->pwstdin = 1;
			break;
		case O_THROTTLE_DB:
			a->tdb = optarg;
			break;
		case O_COST:
			errno = 0;
			l = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    l < AUTH_COST_MIN || l > AUTH_COST_MAX) {
				fprintf(stderr, PROG ": --cost: %s: must be "
				    "%d..%d\n", shown(optarg), AUTH_COST_MIN,
				    AUTH_COST_MAX);
				return EX_USAGE;
			}
			a->cost = (int)l;
			a->costset = 1;
			break;
		case ':':
			return usage_error(argv[optind - 1], optopt == O_COST ?
			    "missing N" : optopt == O_MAILDIR ?
			    "missing PATH" : "missing FILE");
		default:
			if (optopt >= O_DB)
				return usage_error(shown(argv[optind - 1]),
				    "takes no value");
			if (optopt != 0) {
				snprintf(shortopt, sizeof(shortopt), "-%c",
				    optopt);
				return usage_error("unknown option", shortopt);
			}
			return usage_error("unknown option",
			    shown(argv[optind - 1]));
		}
	}
	for (i = optind; i < argc; i++)		/* after "--" */
		if ((r = operand(a, argv[i])) != -1)
			return r;
	return -1;
}

/* The command, then its operand.  -1, or an exit status. */
static int
operand(struct args *a, const char *arg)
{
	size_t c;

	if (a->cmd == C_NONE) {
		for (c = 1; c < NCOMMANDS; c++)
			if (strcmp(arg, commands[c].name) == 0)
				break;
		if (c == NCOMMANDS)
			return usage_error("unknown command", shown(arg));
		a->cmd = (enum cmd)c;
		return -1;
	}
	if (a->operand == NULL && commands[a->cmd].operand != NULL) {
		a->operand = arg;
		return -1;
	}
	return usage_error("unexpected argument", shown(arg));
}

/* "--cost: only with init, add and passwd": the commands taking it. */
static int
only_with(const char *opt, unsigned flag)
{
	char	list[128];
	size_t	c, n = 0, i = 0, len = 0;
	int	w;

	for (c = 1; c < NCOMMANDS; c++)
		if (commands[c].opts & flag)
			n++;
	for (c = 1; c < NCOMMANDS; c++) {
		if (!(commands[c].opts & flag))
			continue;
		i++;
		w = snprintf(list + len, sizeof(list) - len, "%s%s",
		    i == 1 ? "only with " : i == n ? " and " : ", ",
		    commands[c].name);
		if (w < 0 || (size_t)w >= sizeof(list) - len)
			break;
		len += (size_t)w;
	}
	return usage_error(opt, list);
}

/* What the command line asks for, checked as a whole.  -1 or a status. */
static int
check_args(const struct args *a)
{
	const struct command *c = &commands[a->cmd];

	if (a->cmd == C_NONE)
		return usage_error("no command", NULL);
	if (c->operand != NULL && a->operand == NULL) {
		fprintf(stderr, PROG ": %s: missing %s (see " PROG
		    " --help)\n", c->name, c->operand);
		return EX_USAGE;
	}
	if (a->maildir != NULL && !(c->opts & OK_MAILDIR))
		return only_with("--maildir", OK_MAILDIR);
	if (a->costset && !(c->opts & OK_COST))
		return only_with("--cost", OK_COST);
	if (a->pwstdin && !(c->opts & OK_PWSTDIN))
		return only_with("--password-stdin", OK_PWSTDIN);
	if (a->tdb != NULL && !(c->opts & OK_THROTTLE_DB))
		return only_with("--throttle-db", OK_THROTTLE_DB);
	return -1;
}

int
main(int argc, char *argv[])
{
	struct args	 a = { C_NONE, DEFAULT_DB, NULL, NULL, NULL, 0,
			    AUTH_COST_DEFAULT, 0 };
	char		 addr[ADDR_MAX + 1];
	int		 r;

	crypto_init(0);
	if ((r = parse_args(argc, argv, &a)) != -1 ||
	    (r = check_args(&a)) != -1)
		return r;
	if (commands[a.cmd].operand != NULL &&
	    strcmp(commands[a.cmd].operand, "ADDRESS") == 0 &&
	    addr_normalize(a.operand, strlen(a.operand), addr,
	    sizeof(addr)) == -1) {
		fprintf(stderr, PROG ": %s: invalid address\n",
		    shown(a.operand));
		return EX_DATAERR;
	}
	if (a.maildir != NULL && !auth_maildir_ok(a.maildir)) {
		fprintf(stderr, PROG ": %s: invalid Maildir path (absolute, "
		    "no control characters, at most %d bytes)\n",
		    shown(a.maildir), AUTH_MAILDIR_MAX);
		return EX_DATAERR;
	}

	switch (a.cmd) {
	case C_INIT:
		return do_init(a.db, a.cost);
	case C_ADD:
		return set_password(a.db, AUTH_ADD, addr, a.maildir,
		    a.pwstdin, a.cost);
	case C_PASSWD:
		return set_password(a.db, AUTH_PASSWD, addr, NULL,
		    a.pwstdin, a.cost);
	case C_DEL:
		return do_del(a.db, addr);
	case C_LIST:
		return do_list(a.db);
	case C_CHECK:
		return do_check(a.db, addr, a.pwstdin);
	case C_LOCKOUTS:
		return do_lockouts(a.tdb != NULL ? a.tdb : THROTTLE_DB_DEFAULT,
		    a.db);
	case C_UNLOCK:
		return do_unlock(a.tdb != NULL ? a.tdb : THROTTLE_DB_DEFAULT,
		    a.operand);
	default:
		return usage_error("no command", NULL);
	}
}
