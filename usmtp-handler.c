/*
 * usmtp-handler -- one USMTP 1.0 session on standard input and output,
 * started once per connection by systemd (Accept=yes), inetd or
 * systemd-socket-activate.  The session state machine of usmtp(7),
 * limits, timeouts, reply texts and logging live here; framing and
 * crypto are crypto.c's, users auth.c's, message building and delivery
 * mailer.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sysexits.h>

#include <openssl/crypto.h>

#include "usmtp.h"

#ifdef USMTP_FUZZ
/*
 * Fuzz builds (tests/fuzz): the session runs in-process, many times, so
 * the one exit longjmps back to the fuzz target, and the key exchange
 * takes a fixed session key instead of an RSA block.
 */
#include "tests/fuzz/fuzz.h"
jmp_buf		usmtp_fuzz_jmp;
#define main	usmtp_handler_main
#define session_exit(status)	longjmp(usmtp_fuzz_jmp, (status) + 1)
#else
#define session_exit(status)	exit(status)
#endif

/* Exit statuses: sysexits(3), and 1 for a session that ended in an
 * error (a 5xx reply, a timeout, a cut-off frame). */
#define EX_FAIL		1

#define DEF_CERT	"/etc/usmtp/server.pem"
#define DEF_KEY		"/etc/usmtp/server.key"
#define DEF_USERS	"/etc/usmtp/users.db"
#define DEF_NOISE_CERT	"/etc/usmtp/server-x25519.pem"	/* when both exist */
#define DEF_NOISE_KEY	"/etc/usmtp/server-x25519.key"
#define DEF_MAILDIR	"/var/mail/%d/%u/Maildir"
#define DEF_TIMEOUT_SEC	300		/* idle limit per read */
#define DEF_MAX_BODY	1048576		/* 1 MiB of body text */
#define DEF_MAX_ATT	26214400	/* 25 MiB per attachment */
#define DEF_SENDMAIL_SEC 120		/* sendmail must finish by then */
#define DEF_LOGIN_SEC	120		/* connect to 210, at most */
#define DEF_THROTTLE_DB	THROTTLE_DB_DEFAULT
#define DEF_THROTTLE_MAX 10		/* failed logins per address... */
#define DEF_THROTTLE_SEC 900		/* ...each within this of the last */
#define DEF_REPLAY_DB	"/var/lib/usmtp/replay.db"
#define DEF_SLOT_FILE	"/var/lib/usmtp/slots"
#define DEF_MAX_KDF	-1		/* KDF runs at once: the CPU count */
#define DEF_MAX_SESSIONS 64		/* usmtp.socket's MaxConnections */
#define DEF_STRESS_SEC	10		/* login deadline under stress */
#define STRESS_TICK_MS	1000		/* how often a waiting session
					 * looks at the load */
#define NOISE_HS_MAX_BYTES 4144		/* a handshake message: key, a
					 * command-sized payload, tag */
#define SECURE_ALGOS	"noise-nk-25519-aesgcm-sha256"
#define SECURE_PROLOGUE	"USMTP secure 1"
#define DEF_THROTTLE_NET 4		/* per /24 or /48: this x the above */
#define MAX_LOGIN_ERRORS 6		/* usmtp(7), Login: the 6th gets 510 */
#define MAX_RCPT_REJECTS 5		/* per message, then 500 */
#define MAX_BAD_HEADERS	5		/* 403s per attachment, then 500 */
#define LOG_STR_BYTES	64		/* client strings in logs are cut */
#define CONF_LINE_BYTES	1024

enum state {
	S_HELLO, S_ALGOS, S_KEY, S_NOISE, S_VERSION, S_COMMAND, S_LOGIN_ADDR,
	S_LOGIN_PASS, S_FROM, S_TO, S_SUBJECT, S_BODY, S_NATT, S_ATT_HEAD,
	S_ATT_DATA
};

static const char *const statenames[] = {
	"S_HELLO", "S_ALGOS", "S_KEY", "S_NOISE", "S_VERSION", "S_COMMAND",
	"S_LOGIN_ADDR", "S_LOGIN_PASS", "S_FROM", "S_TO", "S_SUBJECT",
	"S_BODY", "S_NATT", "S_ATT_HEAD", "S_ATT_DATA"
};

struct conf {
	const char	*cert, *key, *users, *maildir, *sendmail;
	long		 timeout, sendmail_timeout;
	unsigned long long max_body, max_attachment;
	int		 log_stderr;
	const char	*throttle_db;	/* NULL: no throttling */
	unsigned	 throttle_max, throttle_window;
	long		 login_timeout;	/* seconds from connect to 210 */
	int		 proxy_protocol;	/* a PROXY header comes first */
	const char	*noise_cert, *noise_key;	/* secure mode, or NULL */
	int		 noise_set;	/* given: no defaults then */
	unsigned	 throttle_net_max;	/* per /24, /48; 0: none */
	int		 throttle_net_set;	/* else DEF_THROTTLE_NET x max */
	int		 recipients_any;	/* --recipients any: relay */
	const char	*replay_db;	/* NULL: no replay cache */
	const char	*slot_file;	/* NULL: no host-wide slots */
	long		 max_kdf;	/* KDF runs at once, 0 any, -1 CPUs */
	unsigned	 max_sessions;	/* session slots, 0: no stress mode */
	long		 stress_timeout;	/* seconds, 0: no stress mode */
};

/* One SEND MAIL transaction; rolled back unless it ends in 220. */
struct message {
	char		 rcpt[ADDR_MAX + 1];
	char		 rcpt_maildir[PATH_MAX];
	char		*subject, *body;
	size_t		 subjectlen, bodylen;
	int		 nattach, cur, nrejects, nbadhead;
	struct mail	*mail;
	const char	*fail;		/* set: deliver nothing, answer 451 */
};

struct session {
	enum state	 state;
	struct frameio	 io;
	char		 id[9];
	char		 peer[INET6_ADDRSTRLEN + 16];
	/* --proxy-protocol: the connection's own peer (the balancer) */
	char		 via[INET6_ADDRSTRLEN + 16];
	int		 refdialect;	/* reference dialect: no 200 after
					 * attachment content (usmtp(7),
					 * Attachments) */
	int		 secure;	/* secure mode (usmtp(7), SECURE MODE) */
	unsigned	 stressed;	/* sessions busy when stress mode cut
					 * this one short, else 0 */
	char		 user[ADDR_MAX + 1];	/* "" until 210 */
	char		 addr[ADDR_MAX + 1];	/* address being logged in */
	int		 nerrors;	/* 301s + 401s of the login dialog */
	struct userdb	*db;
	struct message	 msg;
	struct mail_conf mconf;
	char		 hostname[256];
	struct timespec	 start;
};

/* The defaults; a fuzz build starts every session from them again. */
#define CONF_DEFAULTS { \
	.cert = DEF_CERT, .key = DEF_KEY, .users = DEF_USERS, \
	.timeout = DEF_TIMEOUT_SEC, .sendmail_timeout = DEF_SENDMAIL_SEC, \
	.max_body = DEF_MAX_BODY, .max_attachment = DEF_MAX_ATT, \
	.throttle_db = DEF_THROTTLE_DB, .throttle_max = DEF_THROTTLE_MAX, \
	.throttle_window = DEF_THROTTLE_SEC, .login_timeout = DEF_LOGIN_SEC, \
	.replay_db = DEF_REPLAY_DB, .slot_file = DEF_SLOT_FILE, \
	.max_kdf = DEF_MAX_KDF, .max_sessions = DEF_MAX_SESSIONS, \
	.stress_timeout = DEF_STRESS_SEC, \
}
static struct conf	 conf = CONF_DEFAULTS;
static struct session	*logsess;
static struct limit	 limits = { -1, -1, -1 };	/* --slot-file */
static int		 stderr_socket;	/* under inetd: the client */
static volatile sig_atomic_t got_signal;
static int		 check_mode;	/* --check: no session */
static int		 verbose;	/* --verbose: what --check checked */
static const char	*config_path;	/* --config's file, or NULL */
static sigset_t		 waitmask;	/* signals that end a session,
					 * allowed only while waiting */

static void	 usage(int status);
static void	 parse_args(int argc, char *argv[]);
static void	 session_start(struct session *s);
static void	 stress_start(struct session *s);
static void	 stress_tick(void *arg);
static void	 serve(struct session *s) __attribute__((noreturn));
static int	 set_option(const char *name, const char *val, const char **why);
static int	 read_config(const char *path);
static int	 parse_num(const char *s, unsigned long long max,
		    unsigned long long *out);
static void	 complain(const char *fmt, ...)
		    __attribute__((format(printf, 1, 2)));
static void	 on_signal(int sig);
static void	 harden(struct session *s);
static int	 parse_flag(const char *val);
static const char *path_or_none(const char *val);
static void	 log_init(void);
static void	 logx(int prio, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
static const char *esc(const void *p, size_t len);
static void	 find_peer(struct session *s);
static void	 proxy_peer(struct session *s);
static const char *reply_text(int code);
static void	 reply(struct session *s, int code);
static void	 reply_text_fmt(struct session *s, int code, const char *text);
static void	 enter(struct session *s, enum state next);
static void	 session_end(struct session *s, int status, const char *reason,
		    int code) __attribute__((noreturn));
static void	 session_fail(struct session *s, int code, const char *reason)
		    __attribute__((noreturn));
static void	 message_clear(struct message *m);
static char	*trim(char *p, size_t *len);
static int	 strip_prefix(char **p, size_t *len, const char *prefix);
static int	 parse_addr_line(char *p, size_t len, const char *prefix,
		    char *out);
static void	 st_hello(struct session *, char *, size_t);
static void	 st_algos(struct session *, char *, size_t);
static void	 st_key(struct session *, char *, size_t);
static void	 st_noise(struct session *, char *, size_t);
static int	 version_ok(char *p, size_t len);
static void	 st_version(struct session *, char *, size_t);
static void	 st_command(struct session *, char *, size_t);
static void	 st_login_addr(struct session *, char *, size_t);
static void	 st_login_pass(struct session *, char *, size_t);
static void	 st_from(struct session *, char *, size_t);
static void	 st_to(struct session *, char *, size_t);
static void	 st_subject(struct session *, char *, size_t);
static void	 st_body(struct session *, char *, size_t);
static void	 st_natt(struct session *, char *, size_t);
static void	 st_att_head(struct session *, char *, size_t);
static int	 parse_dec(const char *p, unsigned long long *out);
static void	 att_read(struct session *s, uint64_t n, int64_t size);
static int	 att_sink(void *arg, const unsigned char *p, size_t len);
static void	 next_attachment(struct session *s);
static void	 deliver(struct session *s);
static int	 login_error(struct session *s, int code);
static int	 throttle_conf(struct throttle *t);
static void	 throttle_repaired(const struct throttle *t);
static void	 throttle_error(const char *op, const char *why);
static void	 config_error(const char *name, const char *path,
		    const char *op, const char *option, enum check_file kind,
		    const char *why);
static void	 check_line(void *arg, enum check_level level,
		    const char *path, const char *text);
static int	 run_check(void);
static int	 throttle_refused(struct session *s);
static unsigned	 throttle_delay(struct session *s);
static size_t	 throttle_record(struct session *s, struct throttle *t,
		    struct throttle_key *k, unsigned *n);
static int	 replay_seen(const unsigned char *block, size_t len);
static int	 login_check(struct session *s, const char *pw, size_t pwlen,
		    const char **why);

/* What each state reads: frame kind and the size limit that applies. */
static const struct {
	enum ftype	 type;
	void		(*fn)(struct session *, char *, size_t);
} states[] = {
	[S_HELLO] =	 { FT_PLAIN, st_hello },
	[S_ALGOS] =	 { FT_PLAIN, st_algos },
	[S_KEY] =	 { FT_KEY, st_key },
	[S_NOISE] =	 { FT_RECORD, st_noise },
	[S_VERSION] =	 { FT_CIPHER, st_version },
	[S_COMMAND] =	 { FT_CIPHER, st_command },
	[S_LOGIN_ADDR] = { FT_CIPHER, st_login_addr },
	[S_LOGIN_PASS] = { FT_CIPHER, st_login_pass },
	[S_FROM] =	 { FT_CIPHER, st_from },
	[S_TO] =	 { FT_CIPHER, st_to },
	[S_SUBJECT] =	 { FT_CIPHER, st_subject },
	[S_BODY] =	 { FT_CIPHER_DOT, st_body },
	[S_NATT] =	 { FT_CIPHER, st_natt },
	[S_ATT_HEAD] =	 { FT_CIPHER, st_att_head },
	[S_ATT_DATA] =	 { FT_CIPHER, NULL },	/* att_read() reads it */
};

static const struct {
	int		 code;
	const char	*text;
} texts[] = {
	/* The reference server's words where it has some (usmtp(7), Reply codes). */
	{ 100, "Hello supported_protocols usmtp supported_versions 1.0" },
	{ 111, "Send your e-mail adress" },
	{ 112, "Send your password" },
	{ 121, "Send sender adress" },
	{ 122, "Send recipient adress" },
	{ 123, "Send subject" },
	{ 124, "Send data, ending with one blank line and END" },
	{ 125, "Send number of attachments" },
	{ 130, "You are currently logged in" },
	{ 200, "OK" },
	{ 201, "ssl valid" },
	{ 202, "algos valid" },
	{ 203, "symetric key decryption done" },
	{ 210, "Authentication successful" },
	{ 220, "Email was sent" },
	{ 300, "Not recognized command" },
	{ 301, "Wrong e-mail syntax" },
	{ 401, "Wrong password" },
	{ 402, "Recipient not found" },
	{ 403, "Malformed attachment header" },
	{ 451, "Message not delivered, nothing was sent" },
	{ 500, "Connection error" },
	{ 501, "Wrong protocol version" },
	{ 502, "Unsupported encryption algorithm" },
	{ 503, "Wrong ssl version" },
	{ 504, "Session key decryption failed" },
	{ 505, "Wrong session key length" },
	{ 510, "Multiple wrong login or password" },
	{ 520, "Unauthorised attempt to send mail" },
	{ 521, "Wrong number of attachments" },
	{ 552, "Size limit exceeded" },
};

static void
usage(int status)
{
	FILE	*f = status == 0 ? stdout : stderr;

	if (status != 0 && stderr_socket) {
		complain("bad command line (usmtp-handler --help lists the "
		    "options)");
		exit(status);
	}
	fprintf(f,
"usage: usmtp-handler [--config FILE] [--cert FILE] [--key FILE] [--users FILE]\n"
"                     [--noise-cert FILE --noise-key FILE]\n"
"                     [--maildir TEMPLATE | --sendmail PATH]\n"
"                     [--recipients local|any] [--timeout SECONDS]\n"
"                     [--sendmail-timeout SECONDS] [--login-timeout SECONDS]\n"
"                     [--max-body BYTES]\n"
"                     [--max-attachment BYTES] [--throttle-db FILE]\n"
"                     [--throttle-max N] [--throttle-net-max N]\n"
"                     [--throttle-window SECONDS] [--proxy-protocol]\n"
"                     [--replay-db FILE] [--slot-file FILE] [--max-kdf N]\n"
"                     [--max-sessions N] [--stress-login-timeout SECONDS]\n"
"                     [--log-stderr] [--help] [--version]\n"
"       usmtp-handler --check [--verbose] [options as above]\n"
"\n"
"Serves one USMTP 1.0 session on standard input and output.\n"
"\n"
"  --check                  check the configuration (keys, certificates,\n"
"                           users database, delivery, state files) as this\n"
"                           user, serve no session; one line per problem,\n"
"                           exit 78 (EX_CONFIG) if any\n"
"  -v, --verbose            with --check: also one line per thing checked\n"
"  --config FILE            read \"name = value\" lines (the long option names);\n"
"                           the command line wins\n"
"  --cert FILE              server certificate, PEM (" DEF_CERT ")\n"
"  --key FILE               its RSA-2048 private key, mode 0600 (" DEF_KEY ")\n"
"  --users FILE             GDBM user database (" DEF_USERS ")\n"
"  --noise-cert FILE        X25519 certificate for secure mode, PEM, or none\n"
"                           (" DEF_NOISE_CERT " if it and the key exist)\n"
"  --noise-key FILE         its X25519 private key, mode 0600\n"
"                           (" DEF_NOISE_KEY ")\n"
"  --maildir TEMPLATE       deliver to this Maildir unless the recipient has\n"
"                           one in the database; %%u local part, %%d domain,\n"
"                           %%a address, %%%% percent (%s)\n"
"  --sendmail PATH          deliver with PATH -i -f SENDER -- RECIPIENT instead;\n"
"                           of --maildir and --sendmail the last one wins\n"
"  --recipients local|any   local: the recipient must be a user in the\n"
"                           database (402 otherwise); any: any valid\n"
"                           address, only with --sendmail (local)\n"
"  --sendmail-timeout SECONDS  how long sendmail may take (%d)\n"
"  --timeout SECONDS        idle timeout of a read, 0 for none (%d)\n"
"  --login-timeout SECONDS  time from connection to login, 0 for none (%d)\n"
"  --max-body BYTES         largest message body (%d; K, M, G suffixes)\n"
"  --max-attachment BYTES   largest attachment (%d; K, M, G suffixes)\n"
"  --throttle-db FILE       failed logins per client address, shared by all\n"
"                           sessions; \"none\" or \"\" turns throttling off\n"
"                           (" DEF_THROTTLE_DB ")\n"
"  --throttle-max N         refuse LOGIN (510) from an address (IPv6: /64)\n"
"                           after N failed logins, 0 turns all throttling\n"
"                           off (%d)\n"
"  --throttle-net-max N     the same per IPv4 /24 and IPv6 /48, 0 never\n"
"                           (%d x --throttle-max)\n"
"  --throttle-window SECONDS  failures further apart start a new count; the\n"
"                           refusal lasts this long after the last (%d)\n"
"  --proxy-protocol         read a PROXY protocol header (v1 or v2) first and\n"
"                           take the client's address from it; every\n"
"                           connection must then come through the proxy\n"
"  --replay-db FILE         the key blocks of the last million sessions, so\n"
"                           that a recorded session replayed gets 504; \"none\"\n"
"                           or \"\" turns it off (" DEF_REPLAY_DB ")\n"
"  --slot-file FILE         the host-wide KDF slots (--max-kdf); \"none\" or\n"
"                           \"\" turns them off (" DEF_SLOT_FILE ")\n"
"  --max-kdf N              at most N password checks at once on the host,\n"
"                           the others wait their turn; 0 no limit (the\n"
"                           number of CPUs)\n"
"  --max-sessions N         the service's connection limit; when 3/4 of it\n"
"                           are busy, sessions not logged in get the stress\n"
"                           login timeout; 0 never (%d)\n"
"  --stress-login-timeout SECONDS  the login deadline under stress, from the\n"
"                           connection; 0 no stress mode (%d)\n"
"  --log-stderr             log to standard error instead of syslog\n"
"  -h, --help               show this help\n"
"  -V, --version            show the version\n"
"\n"
"Exit status: 0 after BYE or end of input at a command, 1 after an error\n"
"reply, a timeout or a cut-off frame, 64 (EX_USAGE) bad options, 78\n"
"(EX_CONFIG) bad configuration.\n",
	    DEF_MAILDIR, DEF_SENDMAIL_SEC, DEF_TIMEOUT_SEC, DEF_LOGIN_SEC,
	    DEF_MAX_BODY, DEF_MAX_ATT, DEF_THROTTLE_MAX, DEF_THROTTLE_NET,
	    DEF_THROTTLE_SEC, DEF_MAX_SESSIONS, DEF_STRESS_SEC);
	exit(status);
}

/* Accepts a decimal number with an optional K, M or G (binary) suffix. */
static int
parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long	 v, mul = 1;
	char			*end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case 'K': case 'k': mul = 1ULL << 10; end++; break;
	case 'M': case 'm': mul = 1ULL << 20; end++; break;
	case 'G': case 'g': mul = 1ULL << 30; end++; break;
	}
	if (*end != '\0' || v > max / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* yes, true, 1: 1; no, false, 0: 0; else -1. */
/* A file option's value: "" or "none" turns the feature off (NULL). */
static const char *
path_or_none(const char *val)
{
	return *val == '\0' || strcmp(val, "none") == 0 ? NULL : val;
}

static int
parse_flag(const char *val)
{
	if (strcmp(val, "yes") == 0 || strcmp(val, "true") == 0 ||
	    strcmp(val, "1") == 0)
		return 1;
	if (strcmp(val, "no") == 0 || strcmp(val, "false") == 0 ||
	    strcmp(val, "0") == 0)
		return 0;
	return -1;
}

/* Sets one option by its long name; used by argv and --config alike. */
static int
set_option(const char *name, const char *val, const char **why)
{
	unsigned long long	n;
	int			flag;

	*why = "bad value";
	if (strcmp(name, "cert") == 0)
		conf.cert = val;
	else if (strcmp(name, "key") == 0)
		conf.key = val;
	else if (strcmp(name, "users") == 0)
		conf.users = val;
	else if (strcmp(name, "noise-cert") == 0) {
		conf.noise_cert = path_or_none(val);
		conf.noise_set = 1;
	} else if (strcmp(name, "noise-key") == 0) {
		conf.noise_key = path_or_none(val);
		conf.noise_set = 1;
	}
	else if (strcmp(name, "maildir") == 0) {
		/* one delivery method: the last one named wins */
		conf.maildir = val;
		conf.sendmail = NULL;
	} else if (strcmp(name, "sendmail") == 0) {
		conf.sendmail = val;
		conf.maildir = NULL;
	}
	else if (strcmp(name, "timeout") == 0) {
		if (parse_num(val, 86400, &n) == -1)
			return -1;
		conf.timeout = (long)n;
	} else if (strcmp(name, "login-timeout") == 0) {
		if (parse_num(val, 86400, &n) == -1)
			return -1;
		conf.login_timeout = (long)n;
	} else if (strcmp(name, "sendmail-timeout") == 0) {
		if (parse_num(val, 86400, &n) == -1 || n == 0)
			return -1;
		conf.sendmail_timeout = (long)n;
	} else if (strcmp(name, "max-body") == 0) {
		if (parse_num(val, 1ULL << 30, &n) == -1 || n == 0)
			return -1;
		conf.max_body = n;
	} else if (strcmp(name, "max-attachment") == 0) {
		if (parse_num(val, 1ULL << 40, &n) == -1 || n == 0)
			return -1;
		conf.max_attachment = n;
	} else if (strcmp(name, "throttle-db") == 0) {
		conf.throttle_db = path_or_none(val);
	} else if (strcmp(name, "throttle-max") == 0) {
		if (parse_num(val, 1000000, &n) == -1)
			return -1;
		conf.throttle_max = (unsigned)n;
	} else if (strcmp(name, "throttle-net-max") == 0) {
		if (parse_num(val, 4000000, &n) == -1)
			return -1;
		conf.throttle_net_max = (unsigned)n;
		conf.throttle_net_set = 1;
	} else if (strcmp(name, "throttle-window") == 0) {
		if (parse_num(val, 7 * 86400, &n) == -1 || n == 0)
			return -1;
		conf.throttle_window = (unsigned)n;
	} else if (strcmp(name, "replay-db") == 0) {
		conf.replay_db = path_or_none(val);
	} else if (strcmp(name, "slot-file") == 0) {
		conf.slot_file = path_or_none(val);
	} else if (strcmp(name, "max-kdf") == 0) {
		if (parse_num(val, LIMIT_KDF_MAX, &n) == -1)
			return -1;
		conf.max_kdf = (long)n;
	} else if (strcmp(name, "max-sessions") == 0) {
		if (parse_num(val, LIMIT_SESSIONS_MAX, &n) == -1)
			return -1;
		conf.max_sessions = (unsigned)n;
	} else if (strcmp(name, "stress-login-timeout") == 0) {
		if (parse_num(val, 86400, &n) == -1)
			return -1;
		conf.stress_timeout = (long)n;
	} else if (strcmp(name, "log-stderr") == 0) {
		if ((flag = parse_flag(val)) == -1)
			return -1;
		conf.log_stderr = flag;
	} else if (strcmp(name, "proxy-protocol") == 0) {
		if ((flag = parse_flag(val)) == -1)
			return -1;
		conf.proxy_protocol = flag;
	} else if (strcmp(name, "recipients") == 0) {
		/* checked against the delivery method once all are read */
		if (strcmp(val, "local") == 0)
			conf.recipients_any = 0;
		else if (strcmp(val, "any") == 0)
			conf.recipients_any = 1;
		else {
			*why = "local or any";
			return -1;
		}
	} else {
		*why = "unknown option";
		return -1;
	}
	return 0;
}

/*
 * Reads "name = value" lines; '#' starts a comment.  Values are kept for
 * the life of the process (the strings conf points at).
 */
static int
read_config(const char *path)
{
	static char	**values;	/* every value read, kept */
	static size_t	  nvalues;
	char		**kept;
	FILE		*f;
	char		 line[CONF_LINE_BYTES], *name, *val, *eq, *copy;
	const char	*why;
	size_t		 len;
	int		 lineno = 0;

	if ((f = fopen(path, "re")) == NULL) {
		complain("--config %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			complain("%s:%d: line too long", path, lineno);
			goto fail;
		}
		if ((eq = strchr(line, '#')) != NULL)
			*eq = '\0';
		len = strlen(line);
		name = trim(line, &len);
		if (len == 0)
			continue;
		if ((eq = strchr(name, '=')) == NULL) {
			complain("%s:%d: expected name = value", path,
			    lineno);
			goto fail;
		}
		*eq = '\0';
		len = strlen(name);
		name = trim(name, &len);
		len = strlen(eq + 1);
		val = trim(eq + 1, &len);
		if ((copy = strdup(val)) == NULL)
			goto fail;
		if (set_option(name, copy, &why) == -1) {
			complain("%s:%d: %s: %s", path, lineno, name, why);
			free(copy);
			goto fail;
		}
		/*
		 * Kept for the life of the process, whether conf points at it
		 * or not (a number, or a value the command line replaces):
		 * one list instead of knowing which options keep strings.
		 */
		if ((kept = reallocarray(values, nvalues + 1,
		    sizeof(*values))) == NULL) {
			free(copy);
			goto fail;
		}
		values = kept;
		values[nvalues++] = copy;
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	return -1;
}

/*
 * Configuration and usage errors.  Under inetd and xinetd standard
 * error is the client's socket: then they go to syslog only, never to
 * the client.
 */
static void
complain(const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (stderr_socket) {
		openlog("usmtp-handler", LOG_PID | LOG_NDELAY, LOG_MAIL);
		syslog(LOG_ERR, "- peer=- error reason=\"%s\"", msg);
	} else
		fprintf(stderr, "usmtp-handler: %s\n", msg);
}

static void
log_init(void)
{
	/* Under inetd stderr is the client's socket: syslog unless told,
	 * and never to a socket even when told. */
	if (conf.log_stderr && stderr_socket) {
		conf.log_stderr = 0;
		complain("--log-stderr ignored: standard error is a socket");
	}
	if (!conf.log_stderr)
		openlog("usmtp-handler", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/*
 * A file of the configuration failed a session (name: the log key, cert,
 * key or users): its path, the operation (read, load, open, check,
 * lookup) and the reason; for a file given with --option, what
 * check_file() finds wrong with it and what to do, when it finds
 * anything, else why.
 */
static void
config_error(const char *name, const char *path, const char *op,
    const char *option, enum check_file kind, const char *why)
{
	char		 buf[PATH_MAX + 256];
	const char	*fix = NULL;

	if (option != NULL)
		fix = check_file(path, option, kind, buf, sizeof(buf));
	logx(LOG_ERR, "error %s=%s op=%s reason=\"%s\"", name, path, op,
	    fix != NULL ? fix : why);
}

/* One line per event: session id, peer, then key=value pairs. */
static void
logx(int prio, const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

#ifdef USMTP_FUZZ
	if (getenv("USMTP_FUZZ_LOG") == NULL)
		return;
#endif
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (conf.log_stderr)
		fprintf(stderr, "usmtp-handler[%ld]: %s peer=%s %s\n",
		    (long)getpid(), logsess ? logsess->id : "-",
		    logsess ? logsess->peer : "-", msg);
	else
		syslog(prio, "%s peer=%s %s", logsess ? logsess->id : "-",
		    logsess ? logsess->peer : "-", msg);
}

/*
 * Client text made safe for a log line: bytes outside '!'..'~' and the
 * backslash become \xNN, cut to LOG_STR_BYTES input bytes.  Two static
 * buffers, so two calls may share one logx().
 */
static const char *
esc(const void *p, size_t n)
{
	return esc_text(p, n, LOG_STR_BYTES, ESC_LOG);
}

/* getpeername(0), else REMOTE_ADDR (systemd), TCPREMOTEIP, "local". */
static void
find_peer(struct session *s)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	char			 host[INET6_ADDRSTRLEN];
	const char		*env, *port = NULL;
	size_t			 i;

	snprintf(s->peer, sizeof(s->peer), "local");
	if (getpeername(0, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			snprintf(s->peer, sizeof(s->peer), "%s:%u", host,
			    ntohs(in->sin_port));
			return;
		}
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			/* A dual-stack socket (xinetd flags=IPv6, systemd
			 * BindIPv6Only=both) sees IPv4 clients as
			 * ::ffff:a.b.c.d: log them as the IPv4 they are. */
			if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
				inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12],
				    host, sizeof(host));
				snprintf(s->peer, sizeof(s->peer), "%s:%u",
				    host, ntohs(in6->sin6_port));
				return;
			}
			inet_ntop(AF_INET6, &in6->sin6_addr, host,
			    sizeof(host));
			snprintf(s->peer, sizeof(s->peer), "[%s]:%u", host,
			    ntohs(in6->sin6_port));
			return;
		}
	}
	if ((env = getenv("REMOTE_ADDR")) != NULL)
		port = getenv("REMOTE_PORT");
	else if ((env = getenv("TCPREMOTEIP")) != NULL)
		port = getenv("TCPREMOTEPORT");
	if (env == NULL || *env == '\0' || strlen(env) >= sizeof(host))
		return;
	/* The environment is ours to trust less than nothing. */
	for (i = 0; env[i] != '\0'; i++)
		if (!isxdigit((unsigned char)env[i]) && env[i] != '.' &&
		    env[i] != ':')
			return;
	if (port != NULL && (strlen(port) > 5 ||
	    strspn(port, "0123456789") != strlen(port) || *port == '\0'))
		port = NULL;
	snprintf(s->peer, sizeof(s->peer), strchr(env, ':') ? "[%s]%s%s" :
	    "%s%s%s", env, port ? ":" : "", port ? port : "");
}

/*
 * --proxy-protocol: the load balancer's header names the client, who
 * becomes the session's peer (logs, Received:, the login throttle); the
 * connection's own address, the balancer's, is logged as via=.  A v2
 * LOCAL or v1 UNKNOWN header (the balancer's health check) keeps the
 * connection's address.  No reply code fits a connection without a
 * valid header: it is closed unanswered.
 */
static void
proxy_peer(struct session *s)
{
	struct proxy_hdr	 h;
	const char		*why;

	if (proxy_read(0, PROXY_TIMEOUT_MS, &h, &why) == -1) {
		logx(LOG_WARNING, "proxy result=fail reason=\"%s\"", why);
		session_end(s, EX_FAIL, "proxy", 0);
	}
	snprintf(s->via, sizeof(s->via), "%s", s->peer);
	if (!h.local)
		snprintf(s->peer, sizeof(s->peer), "%s", h.peer);
	logx(LOG_INFO, "connect via=%s proxy=%s", s->via,
	    h.local ? "local" : h.version == 1 ? "v1" : "v2");
}

static const char *
reply_text(int code)
{
	size_t	i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].code == code)
			return texts[i].text;
	return "Error";
}

static void
reply(struct session *s, int code)
{
	reply_text_fmt(s, code, reply_text(code));
}

/*
 * The only writer to the client.  Replies are queued; frame_read()
 * flushes them before it waits.  Before the session key every reply is
 * plaintext, and the 202 and any error in its place end with a dot.
 */
static void
reply_text_fmt(struct session *s, int code, const char *text)
{
	char		buf[128];
	enum ftype	type;
	int		n;

	n = snprintf(buf, sizeof(buf), "%03d %s", code, text);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = snprintf(buf, sizeof(buf), "%03d", code);
	if (s->state <= S_NOISE)
		type = s->state == S_ALGOS ? FT_PLAIN_DOT : FT_PLAIN;
	else
		type = FT_CIPHER;
	if (frame_write(&s->io, type, buf, (size_t)n) == -1)
		session_end(s, EX_FAIL, "write", 0);
	if (code >= 300)
		logx(code >= 500 ? LOG_WARNING : LOG_NOTICE,
		    "reply code=%d state=%s", code, statenames[s->state]);
}

static void
enter(struct session *s, enum state next)
{
	s->state = next;
}

static void
message_clear(struct message *m)
{
	if (m->mail != NULL)
		mail_abort(m->mail);
	if (m->subject != NULL) {
		OPENSSL_cleanse(m->subject, m->subjectlen);
		free(m->subject);
	}
	if (m->body != NULL) {
		OPENSSL_cleanse(m->body, m->bodylen);
		free(m->body);
	}
	memset(m, 0, sizeof(*m));
}

/*
 * The one way out: flush what is queued, roll back the transaction,
 * wipe, log why and how long, exit.
 */
static void
session_end(struct session *s, int status, const char *reason, int code)
{
	struct timespec	now;
	double		secs;

	if (got_signal) {
		reason = "signal";	/* whatever failed, this is why */
		code = 0;
	} else
		(void)frame_flush(&s->io);
	message_clear(&s->msg);
	if (s->db != NULL)
		auth_close(s->db);
	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - s->start.tv_sec) +
	    (double)(now.tv_nsec - s->start.tv_nsec) / 1e9;
	if (code)
		logx(status ? LOG_WARNING : LOG_INFO, "end reason=%s code=%d "
		    "state=%s duration=%.3f", reason, code,
		    statenames[s->state], secs);
	else
		logx(status ? LOG_WARNING : LOG_INFO, "end reason=%s state=%s "
		    "duration=%.3f", reason, statenames[s->state], secs);
	frame_free(&s->io);
	session_exit(status);
}

static void
session_fail(struct session *s, int code, const char *reason)
{
	reply(s, code);
	session_end(s, code == 500 && strcmp(reason, "config") == 0 ?
	    EX_CONFIG : EX_FAIL, reason, code);
}

/* Strips surrounding spaces and tabs in place. */
static char *
trim(char *p, size_t *len)
{
	while (*len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		(*len)--;
	}
	while (*len > 0 && (p[*len - 1] == ' ' || p[*len - 1] == '\t' ||
	    p[*len - 1] == '\r' || p[*len - 1] == '\n'))
		(*len)--;
	p[*len] = '\0';
	return p;
}

/* Removes prefix (case-insensitive) from the front of *p; 1 if it did. */
static int
strip_prefix(char **p, size_t *len, const char *prefix)
{
	size_t	n = strlen(prefix);

	if (*len < n || strncasecmp(*p, prefix, n) != 0)
		return 0;
	*p += n;
	*len -= n;
	return 1;
}

/*
 * usmtp(7), Sending a message: an optional "mail from:" / "mail to:" prefix, spaces,
 * optional <...>, one address.  0 and the normalized address, or -1.
 */
static int
parse_addr_line(char *p, size_t len, const char *prefix, char *out)
{
	p = trim(p, &len);
	if (strip_prefix(&p, &len, prefix))
		p = trim(p, &len);
	if (len >= 2 && p[0] == '<' && p[len - 1] == '>') {
		p++;
		len -= 2;
	}
	return addr_normalize(p, len, out, ADDR_MAX + 1);
}

/* Counts one login error; the sixth ends the session with 510. */
static int
login_error(struct session *s, int code)
{
	if (++s->nerrors >= MAX_LOGIN_ERRORS) {
		logx(LOG_WARNING, "login user=%s result=locked errors=%d",
		    s->addr[0] ? s->addr : "-", s->nerrors);
		session_fail(s, 510, "login-errors");
	}
	if (code == 401) {
		reply(s, 401);
		/* usmtp(7), Framing: the reference client reads one frame per
		 * recv(): a 401 leaves in a write of its own. */
		if (frame_flush(&s->io) == -1)
			session_end(s, EX_FAIL, "write", 0);
		reply(s, 111);
		enter(s, S_LOGIN_ADDR);
	} else
		reply(s, code);
	return 0;
}

static void
st_hello(struct session *s, char *p, size_t len)
{
	p = trim(p, &len);
	/* usmtp(7), Handshake: the keyword is case-insensitive. */
	if (strcasecmp(p, "hello ssl1.0?") != 0) {
		logx(LOG_WARNING, "handshake result=fail code=503 hello=%s",
		    esc(p, len));
		session_fail(s, 503, "handshake");
	}
	reply(s, 201);
	enter(s, S_ALGOS);
}

static void
st_algos(struct session *s, char *p, size_t len)
{
	static const char	 ref[] =
	    "support asymetric-rsa-2048 symetric-aes-256-ecb?";
	const char		*why, *cert;
	char			*pem, *buf, *tok, *save = NULL;
	size_t			 pemlen, n;
	int			 ok = 0, rsa = 0, aes = 0, noise = 0;

	/* usmtp(7), Attachments: the reference's exact line picks its
	 * dialect. */
	s->refdialect = len == sizeof(ref) - 1 && memcmp(p, ref, len) == 0;
	p = trim(p, &len);
	if (len > 0 && p[len - 1] == '?') {
		p[--len] = '\0';
		tok = strtok_r(p, " \t", &save);
		ok = tok != NULL && strcasecmp(tok, "support") == 0;
		while (ok && (tok = strtok_r(NULL, " \t", &save)) != NULL) {
			if (strcasecmp(tok, "asymmetric-rsa2048") == 0 ||
			    strcasecmp(tok, "asymetric-rsa2048") == 0 ||
			    strcasecmp(tok, "asymmetric-rsa-2048") == 0 ||
			    strcasecmp(tok, "asymetric-rsa-2048") == 0)
				rsa++;
			else if (strcasecmp(tok, "symmetric-aes-256-ecb") == 0 ||
			    strcasecmp(tok, "symetric-aes-256-ecb") == 0)
				aes++;
			else if (strcasecmp(tok, SECURE_ALGOS) == 0)
				noise++;
			else
				ok = 0;
		}
	}
	/* Without --noise-cert and --noise-key, the pair mkcerts makes in
	 * the default place, when it is there (as sshd takes its default
	 * host keys). */
	if (noise && !conf.noise_set && access(DEF_NOISE_CERT, F_OK) == 0 &&
	    access(DEF_NOISE_KEY, F_OK) == 0) {
		conf.noise_cert = DEF_NOISE_CERT;
		conf.noise_key = DEF_NOISE_KEY;
	}
	/* usmtp(7), SECURE MODE: the secure token alone, and only when we
	 * have its key; a 1.0 server's 502 otherwise. */
	s->secure = ok && noise == 1 && rsa == 0 && aes == 0 &&
	    conf.noise_cert != NULL && conf.noise_key != NULL;
	if (!s->secure && (!ok || noise != 0 || rsa != 1 || aes != 1)) {
		logx(LOG_WARNING, "handshake result=fail code=502%s",
		    noise ? " offer=secure" : "");
		session_fail(s, 502, "handshake");
	}
	cert = s->secure ? conf.noise_cert : conf.cert;
	if ((pem = crypto_read_cert_pem(cert, &pemlen, &why)) == NULL) {
		config_error("cert", cert, "read", s->secure ? "noise-cert" :
		    "cert", CHECK_FILE_CERT, why);
		session_fail(s, 500, "config");
	}
	/* "202 algos valid" then the PEM at once: the reference client
	 * cuts the certificate out by position (usmtp(7), Handshake). */
	n = strlen("202 algos valid");
	if ((buf = malloc(n + pemlen)) == NULL) {
		free(pem);
		session_fail(s, 500, "memory");
	}
	memcpy(buf, "202 algos valid", n);
	memcpy(buf + n, pem, pemlen);
	if (frame_write(&s->io, FT_PLAIN_DOT, buf, n + pemlen) == -1)
		session_end(s, EX_FAIL, "write", 0);
	free(buf);
	free(pem);
	enter(s, s->secure ? S_NOISE : S_KEY);
}

static void
st_key(struct session *s, char *p, size_t len)
{
	EVP_PKEY	*key;
	const char	*why;
	unsigned char	 out[RSA_CIPHER_BYTES];
	size_t		 outlen = 0;
	int		 r;

#ifdef USMTP_FUZZ
	(void)key; (void)why; (void)r; (void)p; (void)len;
	memcpy(out, USMTP_FUZZ_KEY, SESSION_KEY_BYTES);
	outlen = SESSION_KEY_BYTES;
	(void)outlen;
#else
	if ((key = crypto_load_key(conf.key, KEY_RSA2048, &why)) == NULL) {
		config_error("key", conf.key, "load", "key", CHECK_FILE_KEY,
		    why);
		session_fail(s, 500, "config");
	}
	r = crypto_rsa_decrypt(key, (unsigned char *)p, len, out, sizeof(out),
	    &outlen);
	/* The private key is needed for nothing else: free it now. */
	EVP_PKEY_free(key);
	if (r == -1) {
		/* One text whatever went wrong: no padding oracle. */
		logx(LOG_WARNING, "handshake result=fail code=504");
		session_fail(s, 504, "handshake");
	}
	if (outlen != SESSION_KEY_BYTES) {
		OPENSSL_cleanse(out, sizeof(out));
		logx(LOG_WARNING, "handshake result=fail code=505 keylen=%zu",
		    outlen);
		session_fail(s, 505, "handshake");
	}
	if (replay_seen((unsigned char *)p, len)) {
		OPENSSL_cleanse(out, sizeof(out));
		logx(LOG_WARNING, "handshake result=fail code=504 reason=replay");
		session_fail(s, 504, "replay");
	}
#endif
	reply(s, 203);
	r = frame_setkey(&s->io, out);
	OPENSSL_cleanse(out, sizeof(out));
	if (r == -1)
		session_fail(s, 500, "crypto");
	logx(LOG_INFO, "handshake result=ok dialect=%s security=1.0",
	    s->refdialect ? "reference" : "document");
	enter(s, S_VERSION);
	reply(s, 100);
}

/* usmtp(7), Greeting and commands: some whitespace-separated word of
 * the client's version line must be 1.0. */
static int
version_ok(char *p, size_t len)
{
	char	*tok, *save = NULL;

	if (memchr(p, '\0', len) != NULL)
		return 0;
	for (tok = strtok_r(p, " \t\r\n", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\r\n", &save))
		if (strcmp(tok, "1.0") == 0)
			return 1;
	return 0;
}

static void
st_version(struct session *s, char *p, size_t len)
{
	if (!version_ok(p, len))
		session_fail(s, 501, "version");
	enter(s, S_COMMAND);
}

/*
 * usmtp(7), SECURE MODE: the client's Noise message 1 (payload: its
 * version line), our message 2 (payload: the greeting), then records.
 * The prologue is every plaintext byte so far.  Any failure ends the
 * session without a reply: none could be authenticated.
 */
static void
st_noise(struct session *s, char *p, size_t len)
{
	struct noise_hs		*hs = NULL;
	struct noise_cipher	 tx, rx;
	unsigned char		*prologue = NULL, priv[NOISE_DH_BYTES];
	unsigned char		 pl[NOISE_HS_MAX_BYTES], msg[NOISE_HS_MAX_BYTES];
	const char		*why = NULL, *greeting = reply_text(100);
	EVP_PKEY		*key;
	size_t			 pll, ml, n, gl = strlen(greeting);
	int			 r = -1;

	memset(&tx, 0, sizeof(tx));
	memset(&rx, 0, sizeof(rx));
	if ((key = crypto_load_key(conf.noise_key, KEY_X25519, &why)) == NULL ||
	    noise_pkey_private(key, priv, &why) == -1) {
		EVP_PKEY_free(key);
		config_error("key", conf.noise_key, "load", "noise-key",
		    CHECK_FILE_KEY, why);
		session_end(s, EX_CONFIG, "config", 0);
	}
	/* The private key is needed for nothing else: free it now. */
	EVP_PKEY_free(key);
	n = strlen(SECURE_PROLOGUE) + s->io.keptlen;
	if ((prologue = malloc(n)) == NULL) {
		why = "out of memory";
		goto out;
	}
	memcpy(prologue, SECURE_PROLOGUE, strlen(SECURE_PROLOGUE));
	memcpy(prologue + strlen(SECURE_PROLOGUE), s->io.kept, s->io.keptlen);
	if ((hs = noise_hs_new(0, prologue, n, priv, NULL, NULL, &why)) == NULL ||
	    noise_hs_read_message(hs, (unsigned char *)p, len, pl,
	    sizeof(pl) - 1, &pll, &why) == -1)
		goto out;
	if (!version_ok((char *)pl, pll)) {
		why = "no version 1.0 in message 1";
		goto out;
	}
	/* message 2's payload: the 100 greeting, as 1.0 sends it */
	memcpy(pl, "100 ", 4);
	memcpy(pl + 4, greeting, gl);
	if (noise_hs_write_message(hs, pl, 4 + gl, msg,
	    sizeof(msg), &ml, &why) == -1 ||
	    noise_hs_split(hs, &tx, &rx, NULL, &why) == -1 ||
	    frame_write(&s->io, FT_RECORD, msg, ml) == -1)
		goto out;
	frame_set_noise(&s->io, &tx, &rx);
	r = 0;
out:
	OPENSSL_cleanse(priv, sizeof(priv));
	OPENSSL_cleanse(pl, sizeof(pl));
	if (prologue != NULL) {
		OPENSSL_cleanse(prologue, n);
		free(prologue);
	}
	noise_hs_free(hs);
	noise_cipher_clear(&tx);
	noise_cipher_clear(&rx);
	if (r == -1) {
		logx(LOG_WARNING, "handshake result=fail security=noise "
		    "reason=\"%s\"", why ? why : "unknown");
		session_end(s, EX_FAIL, "handshake", 0);
	}
	logx(LOG_INFO, "handshake result=ok security=noise");
	enter(s, S_COMMAND);
}

static void
st_command(struct session *s, char *p, size_t len)
{
	const char	*why;
	char		*q;
	size_t		 n;

	p = trim(p, &len);
	if (memchr(p, '\0', len) != NULL)
		len = 0;	/* no command has a NUL in it */
	if (len == 5 && strcasecmp(p, "LOGIN") == 0) {
		if (s->user[0] != '\0') {
			reply(s, 130);
			return;
		}
		if (throttle_refused(s))
			session_fail(s, 510, "throttled");
		if (s->db == NULL && (s->db = auth_open(conf.users, &why)) ==
		    NULL) {
			config_error("users", conf.users, "open", NULL, 0, why);
			session_fail(s, 500, "config");
		}
		s->addr[0] = '\0';
		reply(s, 111);
		enter(s, S_LOGIN_ADDR);
		return;
	}
	if (len > 4 && strncasecmp(p, "SEND", 4) == 0 &&
	    (p[4] == ' ' || p[4] == '\t')) {
		q = p + 4;
		n = len - 4;
		q = trim(q, &n);
		if (strcasecmp(q, "MAIL") == 0) {
			if (s->user[0] == '\0') {
				logx(LOG_WARNING, "send result=refused "
				    "reason=not-logged-in");
				session_fail(s, 520, "not-logged-in");
			}
			message_clear(&s->msg);
			reply(s, 121);
			enter(s, S_FROM);
			return;
		}
	}
	if (len == 3 && strcasecmp(p, "BYE") == 0)
		session_end(s, EX_OK, "bye", 0);	/* no reply: usmtp(7), Greeting and commands */
	reply(s, 300);
}

static void
st_login_addr(struct session *s, char *p, size_t len)
{
	if (addr_normalize(p, len, s->addr, sizeof(s->addr)) == -1) {
		s->addr[0] = '\0';
		login_error(s, 301);
		return;
	}
	reply(s, 112);
	enter(s, S_LOGIN_PASS);
}

static void
st_login_pass(struct session *s, char *p, size_t len)
{
	struct throttle		 t;
	struct throttle_key	 k[3];
	const char		*why;
	char			 dl[32] = "";
	unsigned		 n[3], delay;
	size_t			 nk, i;
	int			 r;

	if ((delay = throttle_delay(s)) > 0)
		snprintf(dl, sizeof(dl), " delay=%u", delay);
	r = login_check(s, p, len, &why);
	OPENSSL_cleanse(p, len);
	if (r == -2) {
		logx(LOG_WARNING, "login user=%s result=timeout reason=kdf-wait",
		    s->addr);
		session_fail(s, 500, "login-timeout");
	}
	if (r == -1) {
		config_error("users", conf.users, "check", NULL, 0, why);
		session_fail(s, 500, "config");
	}
	if (r == 1) {
		memcpy(s->user, s->addr, sizeof(s->user));
		logx(LOG_INFO, "login user=%s result=ok%s", s->user, dl);
		frame_set_deadline(&s->io, 0);
		s->io.tick = NULL;	/* stress mode is over for it */
		reply(s, 210);
		enter(s, S_COMMAND);
		return;
	}
	nk = throttle_record(s, &t, k, n);
	if (nk == 0)
		logx(LOG_WARNING, "login user=%s result=fail%s", s->addr, dl);
	else if (nk == 1)
		logx(LOG_WARNING, "login user=%s result=fail account_failures=%u"
		    "%s", s->addr, n[0], dl);
	else
		logx(LOG_WARNING, "login user=%s result=fail key=%s failures=%u "
		    "net=%s net_failures=%u account_failures=%u%s", s->addr,
		    k[1].text, n[1], k[2].text, n[2], n[0], dl);
	/* Sessions already past LOGIN stop at the limit too, so parallel
	 * connections cannot each take their six guesses. */
	for (i = 1; i < nk; i++)
		if (throttle_limited(&t, k[i].kind, n[i])) {
			logx(LOG_WARNING, "login user=%s result=throttled "
			    "key=%s failures=%u", s->addr, k[i].text, n[i]);
			session_fail(s, 510, "throttled");
		}
	login_error(s, 401);
}

/*
 * Fills *t from the options.  0 when throttling is off (no file, or
 * --throttle-max 0), else 1.
 */
static int
throttle_conf(struct throttle *t)
{
	if (conf.throttle_db == NULL || conf.throttle_max == 0)
		return 0;
	memset(t, 0, sizeof(*t));
	t->path = conf.throttle_db;
	t->max = conf.throttle_max;
	t->window = conf.throttle_window;
	if (conf.throttle_net_set)
		t->net_max = conf.throttle_net_max;
	else
		t->net_max = conf.throttle_max > UINT_MAX / DEF_THROTTLE_NET ?
		    UINT_MAX : conf.throttle_max * DEF_THROTTLE_NET;
	return 1;
}

/* A damaged state file was replaced by an empty one: say so loudly. */
static void
throttle_repaired(const struct throttle *t)
{
	if (t->repaired != NULL)
		logx(LOG_ERR, "error throttle=%s reason=\"damaged file "
		    "replaced by an empty one: %s\"", t->path, t->repaired);
}

/*
 * The throttle file could not be used (op: read, update): its path, the
 * operation, and what to do when check_file() can tell (a missing
 * directory, say), else the reason throttle.c gave.
 */
static void
throttle_error(const char *op, const char *why)
{
	char		 buf[PATH_MAX + 256];
	const char	*fix;

	fix = check_file(conf.throttle_db, "throttle-db", CHECK_FILE_STATE,
	    buf, sizeof(buf));
	logx(LOG_ERR, "error throttle=%s op=%s reason=\"%s\"",
	    conf.throttle_db, op, fix != NULL ? fix : why);
}

/*
 * usmtp(7), Login (throttle extension): an address with throttle_max
 * failed logins, or a /24 or /48 with throttle_net_max, each within
 * throttle_window seconds of the one before, gets 510 at LOGIN until
 * the window has passed since the last one, before any address or
 * password is read.  Peers without a network address ("local") are
 * throttled by account only.  Trouble with the file is logged and lets
 * the login go on: a broken throttle must not lock users out.
 */
static int
throttle_refused(struct session *s)
{
	struct throttle		 t;
	struct throttle_key	 k[2];
	const char		*why;
	unsigned		 n[2];
	int			 i, r;

	if (!throttle_conf(&t) || !throttle_peer(s->peer, &k[0], &k[1]))
		return 0;
	r = throttle_check(&t, k, 2, time(NULL), n, &why);
	throttle_repaired(&t);
	if (r == -1) {
		throttle_error("read", why);
		return 0;
	}
	for (i = 0; r == 1 && i < 2; i++)
		if (throttle_limited(&t, k[i].kind, n[i])) {
			logx(LOG_WARNING, "login result=throttled key=%s "
			    "failures=%u", k[i].text, n[i]);
			break;
		}
	return r;
}

/*
 * An account with failed logins from anywhere is slowed down, never
 * locked (an attacker could lock its owner out): the delay is slept
 * before the password is checked, for a right password as for a wrong
 * one and for an unknown address as for a known one, so it tells
 * nothing; and never past the login deadline.  Returns the milliseconds
 * slept.
 */
static unsigned
throttle_delay(struct session *s)
{
	struct throttle		 t;
	struct throttle_key	 k;
	struct timespec		 now, ts;
	const char		*why;
	unsigned		 n, ms;
	long			 left;

	if (!throttle_conf(&t) || throttle_account(s->addr, &k) == -1)
		return 0;
	if (throttle_check(&t, &k, 1, time(NULL), &n, &why) == -1) {
		throttle_repaired(&t);
		throttle_error("read", why);
		return 0;
	}
	throttle_repaired(&t);
	if ((ms = throttle_delay_ms(n)) == 0)
		return 0;
	if (conf.login_timeout > 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = conf.login_timeout * 1000 -
		    (long)(now.tv_sec - s->start.tv_sec) * 1000 -
		    (now.tv_nsec - s->start.tv_nsec) / 1000000;
		if (left <= 0)
			return 0;
		if ((long)ms > left)
			ms = (unsigned)left;
	}
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	return ms;
}

/*
 * Counts a wrong password or unknown address against the account and,
 * when the peer has a network address, against its address and network:
 * k[0] the account, k[1] the address, k[2] the network, n[] their
 * failures now.  Returns how many keys were counted: 0 when throttling
 * is off or the file could not be written (logged; fail open).  A good
 * login does not clear the counts: else one valid account would let its
 * owner reset them between guesses at others.
 */
static size_t
throttle_record(struct session *s, struct throttle *t,
    struct throttle_key *k, unsigned *n)
{
	const char	*why;
	size_t		 nk = 1;

	if (!throttle_conf(t) || throttle_account(s->addr, &k[0]) == -1)
		return 0;
	if (throttle_peer(s->peer, &k[1], &k[2]))
		nk = 3;
	if (throttle_fail(t, k, nk, time(NULL), n, &why) == -1) {
		throttle_repaired(t);
		throttle_error("update", why);
		return 0;
	}
	throttle_repaired(t);
	return nk;
}

/*
 * usmtp(7), CAVEATS: a key block accepted before means a recorded
 * session played again.  1 when the block was seen; trouble with the
 * file is logged and lets the session go on (0): a broken replay cache
 * must not stop all mail.
 */
static int
replay_seen(const unsigned char *block, size_t len)
{
	const char	*why;
	int		 seen, r;

	if (conf.replay_db == NULL)
		return 0;
	r = replay_check_insert(conf.replay_db, block, len, &seen, &why);
	if (r == -1) {
		logx(LOG_ERR, "error replay=%s reason=\"%s\"", conf.replay_db,
		    why);
		return 0;
	}
	if (r == 1)
		logx(LOG_ERR, "error replay=%s reason=\"%s\" action=rebuilt",
		    conf.replay_db, why);
	return seen;
}

/*
 * auth_check() in one of --max-kdf host-wide slots, waiting for one
 * until the login deadline (else the idle timeout): the password KDF is
 * the session's one big allocation.  auth_check()'s result, or -2 when
 * the wait outlasted the deadline.  Trouble with the slot file is logged
 * and the check runs without a slot (fail open).
 */
static int
login_check(struct session *s, const char *pw, size_t pwlen,
    const char **why)
{
	const char	*lwhy;
	long		 deadline = 0;
	unsigned	 max;
	int		 r;

	max = conf.max_kdf < 0 ? limit_cpus() : (unsigned)conf.max_kdf;
	if (conf.slot_file != NULL && max > 0 && limits.fd == -1 &&
	    limit_open(&limits, conf.slot_file, &lwhy) == -1)
		logx(LOG_ERR, "error slots=%s reason=\"%s\"", conf.slot_file,
		    lwhy);
	if (limits.fd != -1 && max > 0) {
		if (conf.login_timeout > 0)
			deadline = s->start.tv_sec * 1000L +
			    s->start.tv_nsec / 1000000L +
			    conf.login_timeout * 1000L;
		else if (conf.timeout > 0)
			deadline = clock_ms() + conf.timeout * 1000L;
		r = limit_kdf_take(&limits, max, deadline, &lwhy);
		if (r == 0)
			return -2;
		if (r == -1)
			logx(LOG_ERR, "error slots=%s reason=\"%s\"",
			    conf.slot_file, lwhy);
	}
	r = auth_check(s->db, s->addr, pw, pwlen, why);
	limit_kdf_release(&limits);
	return r;
}

static void
st_from(struct session *s, char *p, size_t len)
{
	char	addr[ADDR_MAX + 1];

	/* usmtp(7), Sending a message: the sender must be the logged-in user. */
	if (parse_addr_line(p, len, "mail from:", addr) == -1 ||
	    strcmp(addr, s->user) != 0) {
		logx(LOG_WARNING, "send user=%s result=refused "
		    "reason=forged-sender from=%s", s->user, esc(p, len));
		session_fail(s, 520, "forged-sender");
	}
	reply(s, 200);
	reply(s, 122);
	enter(s, S_TO);
}

static void
st_to(struct session *s, char *p, size_t len)
{
	struct message	*m = &s->msg;
	const char	*why;
	int		 r = 0, code;

	if (parse_addr_line(p, len, "mail to:", m->rcpt) == -1)
		code = 301;
	/* --recipients any: sendmail relays for the logged-in user */
	else if (conf.recipients_any || (r = auth_lookup(s->db, m->rcpt,
	    m->rcpt_maildir, sizeof(m->rcpt_maildir), &why)) == 1) {
		reply(s, 200);
		reply(s, 123);
		enter(s, S_SUBJECT);
		return;
	} else if (r == 0)
		code = 402;
	else {
		config_error("users", conf.users, "lookup", NULL, 0, why);
		session_fail(s, 500, "config");
	}
	m->rcpt[0] = '\0';
	if (++m->nrejects > MAX_RCPT_REJECTS)
		session_fail(s, 500, "too-many-recipients");
	reply(s, code);
}

static void
st_subject(struct session *s, char *p, size_t len)
{
	struct message	*m = &s->msg;

	/* usmtp(7), Sending a message: strip one "subject: " prefix if present. */
	if (strip_prefix(&p, &len, "subject:") && len > 0 && *p == ' ') {
		p++;
		len--;
	}
	if ((m->subject = malloc(len + 1)) == NULL)
		session_fail(s, 500, "memory");
	memcpy(m->subject, p, len + 1);
	m->subjectlen = len;
	reply(s, 200);
	reply(s, 124);
	enter(s, S_BODY);
}

static void
st_body(struct session *s, char *p, size_t len)
{
	struct message	*m = &s->msg;

	if (strip_prefix(&p, &len, "data:") && len > 0 && *p == ' ') {
		p++;
		len--;
	}
	if ((m->body = malloc(len + 1)) == NULL)
		session_fail(s, 500, "memory");
	memcpy(m->body, p, len + 1);
	m->bodylen = len;
	reply(s, 200);
	reply(s, 125);
	enter(s, S_NATT);
}

static void
st_natt(struct session *s, char *p, size_t len)
{
	struct message	*m = &s->msg;
	const char	*why;

	p = trim(p, &len);
	/* A plain decimal 0..5 and nothing else (usmtp(7), Sending a message). */
	if (len != 1 || *p < '0' || *p > '0' + MAX_ATTACHMENTS) {
		logx(LOG_WARNING, "send user=%s result=refused "
		    "reason=attachments count=%s", s->user, esc(p, len));
		session_fail(s, 521, "attachments");
	}
	m->nattach = *p - '0';
	if (s->hostname[0] == '\0' &&
	    (gethostname(s->hostname, sizeof(s->hostname) - 1) == -1 ||
	    s->hostname[0] == '\0'))
		snprintf(s->hostname, sizeof(s->hostname), "localhost");
	s->mconf.maildir = conf.maildir ? conf.maildir : DEF_MAILDIR;
	s->mconf.sendmail = conf.sendmail;
	s->mconf.sendmail_timeout_ms = conf.sendmail_timeout * 1000;
	s->mconf.hostname = s->hostname;
	s->mconf.peer = s->peer;
	s->mconf.session_id = s->id;
	m->mail = mail_begin(&s->mconf, s->user, m->rcpt, m->rcpt_maildir,
	    m->subject, m->subjectlen, m->body, m->bodylen, m->nattach, &why);
	if (m->mail == NULL)
		m->fail = why;	/* read on, so the stream stays in step */
	reply(s, 200);
	m->cur = 0;
	next_attachment(s);
}

static void
next_attachment(struct session *s)
{
	struct message	*m = &s->msg;
	char		 text[64];

	if (m->cur == m->nattach) {
		deliver(s);
		return;
	}
	m->cur++;
	m->nbadhead = 0;
	snprintf(text, sizeof(text), "Send attachment number %d", m->cur);
	reply_text_fmt(s, 126, text);
	enter(s, S_ATT_HEAD);
}

/* A plain decimal number and nothing else: 0, or -1. */
static int
parse_dec(const char *p, unsigned long long *out)
{
	char	*end;

	if (!isdigit((unsigned char)*p))
		return -1;
	errno = 0;
	*out = strtoull(p, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

/*
 * An attachment header (usmtp(7), Sending a message): a bare length, or lines
 * "Content-Length: N", optional "Filename: NAME" and "Size: M".
 */
static void
st_att_head(struct session *s, char *p, size_t len)
{
	struct message		*m = &s->msg;
	unsigned long long	 n = 0, size = 0;
	char			*line, *next, *val, *name = NULL;
	size_t			 ll, namelen = 0, vl;
	int			 haslen = 0, hassize = 0, bad = 0;
	const char		*why;

	if (memchr(p, '\0', len) != NULL)
		bad = 1;
	for (line = p; !bad && line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		ll = strlen(line);
		line = trim(line, &ll);
		if (ll == 0)
			continue;
		if ((val = strchr(line, ':')) == NULL) {
			/* the document's bare length */
			bad = haslen++ || parse_dec(line, &n) == -1;
			continue;
		}
		*val++ = '\0';
		vl = strlen(val);
		val = trim(val, &vl);
		if (strcasecmp(line, "Content-Length") == 0)
			bad = haslen++ || parse_dec(val, &n) == -1;
		else if (strcasecmp(line, "Size") == 0)
			bad = hassize++ || parse_dec(val, &size) == -1;
		else if (strcasecmp(line, "Filename") == 0) {
			name = val;
			namelen = vl;
		}
		/* other lines are ignored, as the reference server does */
	}
	if (s->secure) {
		/* usmtp(7), SECURE MODE: N is the file's exact size; a
		 * Size: line, if any, must say the same. */
		if (!bad && (!haslen || (hassize && size != n)))
			bad = 1;
	} else {
		/* N counts the ciphertext and its CRLFCRLF; whole blocks. */
		if (!bad && (!haslen || n < 20 || (n - 4) % 16 != 0))
			bad = 1;
		if (!bad && hassize && (size > n - 4 || n - 4 - size > 16))
			bad = 1;
	}
	if (bad) {
		if (++m->nbadhead > MAX_BAD_HEADERS)
			session_fail(s, 500, "bad-headers");
		reply(s, 403);
		return;
	}
	/* Even with the most padding, more than the limit? */
	if ((s->secure ? n : n - 4 - 16) > conf.max_attachment ||
	    (hassize && size > conf.max_attachment)) {
		logx(LOG_WARNING, "send user=%s result=refused reason=size "
		    "attachment=%d length=%llu", s->user, m->cur, n);
		session_fail(s, 552, "size");
	}
	if (m->fail == NULL && m->mail != NULL &&
	    mail_attach_begin(m->mail, name ? name : "", namelen, &why) == -1)
		m->fail = why;
	reply(s, 200);
	enter(s, S_ATT_DATA);
	att_read(s, n, hassize ? (int64_t)size : -1);
}

/* Hands attachment plaintext to the message, unless it already failed;
 * a failure is kept for the 451 while the stream is read on. */
static int
att_sink(void *arg, const unsigned char *p, size_t len)
{
	struct message	*m = arg;
	const char	*why;

	if (m->fail == NULL && m->mail != NULL &&
	    mail_attach_write(m->mail, p, len, &why) == -1)
		m->fail = why;
	return 0;
}

/* The content: from the frame layer straight into the message. */
static void
att_read(struct session *s, uint64_t n, int64_t size)
{
	struct message	*m = &s->msg;
	const char	*why;
	int		 r;

	r = frame_read_content(&s->io, n, size, att_sink, m);
	if (r == FR_INTR)
		session_end(s, EX_FAIL, "signal", 0);
	if (r == FR_TRUNC)
		session_end(s, EX_FAIL, "truncated", 0);
	if (r == FR_TIMEOUT)
		session_fail(s, 500, "timeout");
	if (r == FR_BADFRAME && s->io.noise &&
	    strncmp(s->io.why, "content", 7) != 0) {
		logx(LOG_WARNING, "record result=fail security=noise "
		    "reason=\"%s\"", s->io.why);
		session_end(s, EX_FAIL, "record", 0);
	}
	if (r == FR_BADFRAME) {
		/* usmtp(7), Attachments: the stream is out of step. */
		logx(LOG_WARNING, "send user=%s result=refused "
		    "reason=attachment-framing attachment=%d", s->user, m->cur);
		session_fail(s, 500, "framing");
	}
	if (r != FR_OK) {
		logx(LOG_ERR, "error reason=\"%s\"",
		    s->io.why ? s->io.why : "read");
		session_fail(s, 500, "read");
	}
	if (m->fail == NULL && m->mail != NULL &&
	    mail_attach_end(m->mail, &why) == -1)
		m->fail = why;
	/* usmtp(7), Attachments: the document's 200 after content; the
	 * reference dialect has none. */
	if (!s->refdialect)
		reply(s, 200);
	next_attachment(s);
}

/* 220 only once the message is durably handed over; else 451. */
static void
deliver(struct session *s)
{
	struct message	*m = &s->msg;
	char		 where[PATH_MAX + 32];
	const char	*why = m->fail;
	sigset_t	 blocked;
	off_t		 size = 0;
	int		 r = -1;

	where[0] = '\0';
	if (why == NULL) {
		/* sendmail must not inherit our blocked signals; a signal
		 * meanwhile ends the session at the next wait. */
		sigprocmask(SIG_SETMASK, &waitmask, &blocked);
		r = mail_commit(m->mail, where, sizeof(where), &size, &why);
		sigprocmask(SIG_SETMASK, &blocked, NULL);
		m->mail = NULL;	/* mail_commit frees it either way */
	}
	if (r == 0) {
		logx(LOG_INFO, "deliver from=%s to=%s size=%lld attachments=%d "
		    "where=%s result=ok", s->user, m->rcpt, (long long)size,
		    m->nattach, where);	/* ours: validated names only */
		reply(s, 220);
	} else {
		logx(LOG_ERR, "deliver from=%s to=%s attachments=%d "
		    "result=fail reason=\"%s\"", s->user, m->rcpt, m->nattach,
		    why ? why : "unknown");
		reply(s, 451);
	}
	message_clear(m);
	enter(s, S_COMMAND);
}

/*
 * Options: --config first, so that the command line wins over it.
 * Exits after --help, --version or a bad option.
 */
static void
parse_args(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 0 },
		{ "key", required_argument, NULL, 0 },
		{ "users", required_argument, NULL, 0 },
		{ "noise-cert", required_argument, NULL, 0 },
		{ "noise-key", required_argument, NULL, 0 },
		{ "maildir", required_argument, NULL, 0 },
		{ "sendmail", required_argument, NULL, 0 },
		{ "sendmail-timeout", required_argument, NULL, 0 },
		{ "login-timeout", required_argument, NULL, 0 },
		{ "timeout", required_argument, NULL, 0 },
		{ "max-body", required_argument, NULL, 0 },
		{ "max-attachment", required_argument, NULL, 0 },
		{ "throttle-db", required_argument, NULL, 0 },
		{ "throttle-max", required_argument, NULL, 0 },
		{ "throttle-net-max", required_argument, NULL, 0 },
		{ "throttle-window", required_argument, NULL, 0 },
		{ "proxy-protocol", no_argument, NULL, 0 },
		{ "recipients", required_argument, NULL, 0 },
		{ "replay-db", required_argument, NULL, 0 },
		{ "slot-file", required_argument, NULL, 0 },
		{ "max-kdf", required_argument, NULL, 0 },
		{ "max-sessions", required_argument, NULL, 0 },
		{ "stress-login-timeout", required_argument, NULL, 0 },
		{ "log-stderr", no_argument, NULL, 0 },
		{ "check", no_argument, NULL, 'K' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*why, *name;
	int		 c, idx;

#ifdef USMTP_FUZZ
	optind = 0;	/* glibc: start getopt afresh */
#endif
	opterr = 0;
	while ((c = getopt_long(argc, argv, "hVv", longopts, &idx)) != -1) {
		if (c == 'C' && read_config(optarg) == -1)
			exit(EX_CONFIG);
		if (c == 'C')
			config_path = optarg;
	}
	opterr = !stderr_socket;	/* getopt's own messages too */
	optind = 1;
	while ((c = getopt_long(argc, argv, "hVv", longopts, &idx)) != -1) {
		switch (c) {
		case 0:
			name = longopts[idx].name;
			if (set_option(name, optarg ? optarg : "yes", &why)
			    == -1) {
				complain("--%s %s: %s", name,
				    optarg ? optarg : "", why);
				exit(EX_USAGE);
			}
			break;
		case 'C':
			break;
		case 'K':
			check_mode = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(EX_OK);
			break;
		case 'V':
			printf("usmtp-handler %s (USMTP 1.0)\n", USMTP_VERSION);
			exit(EX_OK);
		default:
			usage(EX_USAGE);
		}
	}
	if (optind != argc) {
		complain("unexpected argument: %s", argv[optind]);
		usage(EX_USAGE);
	}
	if (verbose && !check_mode) {
		complain("--verbose goes with --check");
		usage(EX_USAGE);
	}
}

static void
on_signal(int sig)
{
	got_signal = sig;
}

/*
 * No core dump of a process that holds keys and passwords, under any
 * service manager.  SIGTERM (systemctl stop), SIGHUP and SIGINT end the
 * session cleanly: they are blocked except while the frame layer waits,
 * which then returns FR_INTR, and the session ends through
 * session_end(), which rolls the message back (no tmp file is left).
 */
static void
harden(struct session *s)
{
	static const int	 sigs[] = { SIGTERM, SIGHUP, SIGINT };
	struct rlimit		 rl = { 0, 0 };
	struct sigaction	 sa;
	sigset_t		 block;
	size_t			 i;

	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&block, sigs[i]);
	}
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigdelset(&waitmask, sigs[i]);
	s->io.waitmask = &waitmask;
	s->io.stop = &got_signal;
}

/*
 * Stress mode: a session slot for the life of the process, so that the
 * sessions of the host can be counted (limit.c).  Trouble with the slot
 * file is logged and the session goes on without stress mode.
 */
static void
stress_start(struct session *s)
{
	const char	*why;
	int		 r;

	if (conf.slot_file == NULL || conf.max_sessions == 0 ||
	    conf.stress_timeout == 0)
		return;
	if (limits.fd == -1 && limit_open(&limits, conf.slot_file, &why) == -1) {
		logx(LOG_ERR, "error slots=%s reason=\"%s\"", conf.slot_file,
		    why);
		return;
	}
	if ((r = limit_session_take(&limits, conf.max_sessions, &why)) == -1)
		logx(LOG_ERR, "error slots=%s reason=\"%s\"", conf.slot_file,
		    why);
	/* With every slot taken (r == 0) the count says stressed anyway. */
	s->io.tick = stress_tick;
	s->io.tick_arg = s;
	s->io.tick_ms = STRESS_TICK_MS;
}

/*
 * Called before each frame and once a second while the session waits
 * (frame.c's tick) until it has logged in: when it is older than
 * --stress-login-timeout and 3/4 of --max-sessions are busy, its login
 * deadline is now.  So slots held by clients that do not log in come
 * free when they are needed (usmtp-handler(8), Stress mode).
 */
static void
stress_tick(void *arg)
{
	struct session	*s = arg;
	struct timespec	 now;
	const char	*why;
	unsigned	 busy;

	if (s->user[0] != '\0' || s->stressed || limits.fd == -1)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - s->start.tv_sec < conf.stress_timeout)
		return;
	if (limit_sessions(&limits, conf.max_sessions, &busy, &why) == -1) {
		logx(LOG_ERR, "error slots=%s reason=\"%s\"", conf.slot_file,
		    why);
		return;
	}
	if (!limit_stressed(busy, conf.max_sessions))
		return;
	s->stressed = busy;
	s->io.deadline_ms = clock_ms();		/* the wait ends now */
}

/* Everything a session needs before its first frame. */
static void
session_start(struct session *s)
{
	unsigned int	rnd;

	/*
	 * Start-up is paid per connection (README, Performance).  The
	 * protocol fixes every algorithm, so nothing in openssl.cnf applies
	 * to us (reading it costs ~0.4 ms), and no cipher or digest is
	 * looked up by its legacy name: filling that table, and copying it
	 * into the provider name map at the first fetch, costs ~2.7 million
	 * instructions.  OpenSSL's error strings (~0.9 million) are never
	 * shown: our log lines give our own reasons.  Nor is OpenSSL's
	 * clean-up at exit needed, which frees what the process is about to
	 * lose anyway (~0.8 million).
	 */
	crypto_init(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT |
	    OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS |
	    OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS);
	/* A client that goes away must not kill us in the middle of a
	 * write: we see EPIPE and end the session. */
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit makes a write fail (EFBIG, answered 451)
	 * instead of killing us with a half-written tmp file. */
	signal(SIGXFSZ, SIG_IGN);
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (unsigned int)getpid() ^ (unsigned int)s->start.tv_nsec;
	snprintf(s->id, sizeof(s->id), "%08x", rnd);
	logsess = s;
	find_peer(s);
	if (frame_init(&s->io, 0, 1, (int)conf.timeout) == -1) {
		logx(LOG_ERR, "error reason=\"out of memory\"");
		session_exit(EX_FAIL);
	}
#ifndef USMTP_FUZZ
	harden(s);
#endif
	if (conf.proxy_protocol)
		proxy_peer(s);	/* logs the connect line */
	else
		logx(LOG_INFO, "connect");
	/* The plaintext exchange is secure mode's prologue. */
	s->io.keep = 1;
	/* A session that holds a slot without logging in ends after
	 * --login-timeout, however busy it keeps the handler with frames,
	 * and sooner when the service is full (stress mode). */
	frame_set_deadline(&s->io, (int)conf.login_timeout);
	stress_start(s);
	enter(s, S_HELLO);
}

/* The session: one frame after another, each to its state's handler. */
static void
serve(struct session *s)
{
	unsigned char	*data;
	size_t		 len, max;
	int		 r;

	for (;;) {
		if (s->state == S_BODY)
			max = conf.max_body;
		else if (s->state == S_KEY)
			max = RSA_CIPHER_BYTES;
		else if (s->state == S_NOISE)
			max = NOISE_HS_MAX_BYTES;
		else
			max = FRAME_MAX_BYTES;
		if (s->io.tick != NULL)
			stress_tick(s);
		r = frame_read(&s->io, states[s->state].type, max, &data, &len);
		/* The login deadline holds however fast the frames come:
		 * checked before each one is served, not only in waits.  A
		 * write that ran out of time (a client that does not read)
		 * is a timeout too. */
		if ((r == FR_OK || r == FR_ERROR) &&
		    (frame_deadline_passed(&s->io) || s->io.timedout)) {
			if (r == FR_OK)
				OPENSSL_cleanse(data, len);
			r = FR_TIMEOUT;
		}
		/* usmtp(7), SECURE MODE: until the handshake is done no
		 * reply could be authenticated, and a record that fails
		 * ends the session at once: no reply. */
		if (r != FR_OK && r != FR_EOF && r != FR_INTR &&
		    (s->state == S_NOISE || (r == FR_BADFRAME && s->io.noise))) {
			logx(LOG_WARNING, "%s result=fail security=noise "
			    "reason=\"%s\"", s->state == S_NOISE ?
			    "handshake" : "record", r == FR_TIMEOUT ?
			    "timeout" : r == FR_TOOBIG ? "too big" : r ==
			    FR_TRUNC ? "truncated" : s->io.why ? s->io.why :
			    "bad record");
			session_end(s, EX_FAIL, s->state == S_NOISE ?
			    "handshake" : "record", 0);
		}
		switch (r) {
		case FR_OK:
			states[s->state].fn(s, (char *)data, len);
			break;
		case FR_INTR:
			session_end(s, EX_FAIL, "signal", 0);
			break;
		case FR_EOF:
			/* End of input where a command may come is a normal
			 * end; anywhere else the client gave up midway. */
			session_end(s, s->state == S_COMMAND ? EX_OK : EX_FAIL,
			    "eof", 0);
			break;
		case FR_TRUNC:
			session_fail(s, 500, "truncated");
			break;
		case FR_TOOBIG:
			session_fail(s, s->state == S_BODY ? 552 : 500,
			    "too-big");
			break;
		case FR_TIMEOUT:
			if (s->stressed)
				logx(LOG_WARNING, "login result=timeout "
				    "reason=stress sessions=%u", s->stressed);
			session_fail(s, 500, s->stressed ? "stress" :
			    frame_deadline_passed(&s->io) ? "login-timeout" :
			    "timeout");
			break;
		case FR_BADFRAME:
			/* only the key frame can be malformed */
			logx(LOG_WARNING, "handshake result=fail code=504 "
			    "reason=key-frame");
			session_fail(s, 504, "handshake");
			break;
		default:
			logx(LOG_ERR, "error reason=\"%s\"",
			    s->io.why ? s->io.why : "I/O");
			session_end(s, EX_FAIL, "error", 0);
		}
	}
}

/*
 * --check's lines: problems and warnings on standard error, always;
 * with --verbose what was checked, on standard output.
 */
static void
check_line(void *arg, enum check_level level, const char *path,
    const char *text)
{
	(void)arg;
	if (level == CHECK_OK && !verbose)
		return;
	fprintf(level == CHECK_OK ? stdout : stderr,
	    "usmtp-handler: %s%s%s%s\n", level == CHECK_WARN ? "warning: " :
	    "", path != NULL ? path : "", path != NULL ? ": " : "", text);
}

/*
 * usmtp-handler --check: the configuration as a session would read it,
 * checked by check.c.  EX_OK, or EX_CONFIG when there is a problem.
 */
static int
run_check(void)
{
	struct check_conf	 c;
	int			 n;

	crypto_init(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT);
	/* lines in order when standard output and error are one pipe */
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&c, 0, sizeof(c));
	c.cert = conf.cert;
	c.key = conf.key;
	c.noise_cert = conf.noise_cert;
	c.noise_key = conf.noise_key;
	/* the default pair, as st_algos() takes it */
	if (!conf.noise_set && access(DEF_NOISE_CERT, F_OK) == 0 &&
	    access(DEF_NOISE_KEY, F_OK) == 0) {
		c.noise_cert = DEF_NOISE_CERT;
		c.noise_key = DEF_NOISE_KEY;
	}
	c.users = conf.users;
	c.sendmail = conf.sendmail;
	c.maildir = conf.sendmail != NULL ? NULL :
	    conf.maildir != NULL ? conf.maildir : DEF_MAILDIR;
	c.recipients_any = conf.recipients_any;
	c.throttle_db = conf.throttle_max > 0 ? conf.throttle_db : NULL;
	c.replay_db = conf.replay_db;
	c.slot_file = conf.max_kdf != 0 ? conf.slot_file : NULL;
	if (verbose)
		printf("usmtp-handler: %s%s\n", config_path != NULL ?
		    config_path : "no --config file",
		    config_path != NULL ? ": read" : "");
	n = check_config(&c, time(NULL), check_line, NULL);
	if (verbose && n == 0)
		printf("usmtp-handler: no problems found\n");
	fflush(stdout);
	return n > 0 ? EX_CONFIG : EX_OK;
}

int
main(int argc, char *argv[])
{
	static struct session	sess;
	struct stat		st;

#ifdef USMTP_FUZZ
	static const struct conf defconf = CONF_DEFAULTS;

	conf = defconf;
	conf.throttle_db = NULL;	/* no state files while fuzzing */
	conf.replay_db = NULL;
	conf.slot_file = NULL;
	memset(&sess, 0, sizeof(sess));
#endif
	stderr_socket = fstat(2, &st) == 0 && S_ISSOCK(st.st_mode);
	parse_args(argc, argv);
	if (check_mode)
		exit(run_check());
	if (conf.recipients_any && conf.sendmail == NULL) {
		complain("--recipients any needs --sendmail: with Maildir "
		    "delivery the recipient must be a user in the database; "
		    "set recipients = local, or deliver with --sendmail");
		exit(EX_CONFIG);
	}
	log_init();
	session_start(&sess);
	serve(&sess);
	return EX_FAIL;		/* not reached: serve() ends the process */
}
