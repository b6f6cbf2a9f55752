/*
 * usmtp-handler -- one USMTP 1.0 session on standard input and output,
 * started once per connection by systemd (Accept=yes), inetd or
 * systemd-socket-activate.  The session state machine of PROTOCOL.md 3-6,
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
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "usmtp.h"

#ifdef USMTP_FUZZ
/*
 * Fuzz builds (tests/fuzz): the session runs in-process, many times, so
 * the one exit longjmps back to the fuzz target, and the key exchange
 * takes a fixed session key instead of an RSA block.
 */
#include <setjmp.h>
jmp_buf		usmtp_fuzz_jmp;
#define main	usmtp_handler_main
#define session_exit(status)	longjmp(usmtp_fuzz_jmp, (status) + 1)
#else
#define session_exit(status)	exit(status)
#endif

#define EX_OK_		0
#define EX_FAIL		1	/* session ended by an error */
#define EX_USAGE_	64
#define EX_CONFIG_	78

#define DEF_CERT	"/etc/usmtp/server.pem"
#define DEF_KEY		"/etc/usmtp/server.key"
#define DEF_USERS	"/etc/usmtp/users.db"
#define DEF_MAILDIR	"/var/mail/%d/%u/Maildir"
#define DEF_TIMEOUT_SEC	300		/* idle limit per read */
#define DEF_MAX_BODY	1048576		/* 1 MiB of body text */
#define DEF_MAX_ATT	26214400	/* 25 MiB per attachment */
#define DEF_SENDMAIL_SEC 120		/* sendmail must finish by then */
#define DEF_LOGIN_SEC	120		/* connect to 210, at most */
#define DEF_THROTTLE_DB	"/var/lib/usmtp/throttle.db"
#define DEF_THROTTLE_MAX 10		/* failed logins per address... */
#define DEF_THROTTLE_SEC 900		/* ...each within this of the last */
#define MAX_LOGIN_ERRORS 6		/* PROTOCOL.md 5: the 6th gets 510 */
#define MAX_RCPT_REJECTS 5		/* per message, then 500 */
#define MAX_BAD_HEADERS	5		/* 403s per attachment, then 500 */
#define LOG_STR_BYTES	64		/* client strings in logs are cut */
#define CONF_LINE_BYTES	1024

enum state {
	S_HELLO, S_ALGOS, S_KEY, S_VERSION, S_COMMAND, S_LOGIN_ADDR,
	S_LOGIN_PASS, S_FROM, S_TO, S_SUBJECT, S_BODY, S_NATT, S_ATT_HEAD,
	S_ATT_DATA
};

static const char *const statenames[] = {
	"S_HELLO", "S_ALGOS", "S_KEY", "S_VERSION", "S_COMMAND",
	"S_LOGIN_ADDR", "S_LOGIN_PASS", "S_FROM", "S_TO", "S_SUBJECT",
	"S_BODY", "S_NATT", "S_ATT_HEAD", "S_ATT_DATA"
};

struct conf {
	const char	*cert, *key, *users, *maildir, *sendmail;
	long		 timeout, sendmail_timeout;
	unsigned long long max_body, max_attachment;
	int		 log_stderr;
	const char	*throttle_db;	/* NULL: no throttling (issue 7) */
	unsigned	 throttle_max, throttle_window;
	long		 login_timeout;	/* seconds from connect to 210 */
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
	/* the attachment being received */
	size_t		 att_total, att_seen, att_size, att_out;
	int		 att_sized;
	size_t		 att_spaces;	/* trailing spaces held back */
	unsigned char	 att_tail[4];
	struct aes_stream att_aes;
};

struct session {
	enum state	 state;
	struct frameio	 io;
	unsigned char	 key[SESSION_KEY_BYTES];	/* wiped at the end; the
							 * attachment streams need it */
	char		 id[9];
	char		 peer[INET6_ADDRSTRLEN + 16];
	int		 refdialect;	/* PROTOCOL.md 6: no 200 after content */
	char		 user[ADDR_MAX + 1];	/* "" until 210 */
	char		 addr[ADDR_MAX + 1];	/* address being logged in */
	int		 nerrors;	/* 301s + 401s of the login dialog */
	struct userdb	*db;
	struct message	 msg;
	struct mail_conf mconf;
	char		 hostname[256];
	struct timespec	 start;
};

static struct conf	 conf = {
	DEF_CERT, DEF_KEY, DEF_USERS, NULL, NULL, DEF_TIMEOUT_SEC,
	DEF_SENDMAIL_SEC, DEF_MAX_BODY, DEF_MAX_ATT, 0,
	DEF_THROTTLE_DB, DEF_THROTTLE_MAX, DEF_THROTTLE_SEC, DEF_LOGIN_SEC
};
static struct session	*logsess;

static void	 usage(int status);
static int	 set_option(const char *name, const char *val, const char **why);
static int	 read_config(const char *path);
static int	 parse_num(const char *s, unsigned long long max,
		    unsigned long long *out);
static void	 log_init(void);
static void	 logx(int prio, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
static const char *esc(const void *p, size_t len);
static void	 find_peer(struct session *s);
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
static void	 st_att_data(struct session *);
static int	 att_sink(void *arg, const unsigned char *p, size_t len);
static int	 att_emit(struct message *m, const unsigned char *p, size_t len);
static int	 att_put(struct message *m, const unsigned char *p, size_t len);
static void	 next_attachment(struct session *s);
static void	 deliver(struct session *s);
static int	 login_error(struct session *s, int code);
static int	 throttle_refused(struct session *s);
static unsigned	 throttle_record(struct session *s, struct throttle_key *k);

/* What each state reads: frame kind and the size limit that applies. */
static const struct {
	enum ftype	 type;
	void		(*fn)(struct session *, char *, size_t);
} states[] = {
	[S_HELLO] =	 { FT_PLAIN, st_hello },
	[S_ALGOS] =	 { FT_PLAIN, st_algos },
	[S_KEY] =	 { FT_KEY, st_key },
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
	[S_ATT_DATA] =	 { FT_CIPHER, NULL },
};

static const struct {
	int		 code;
	const char	*text;
} texts[] = {
	/* The reference server's words where it has some (PROTOCOL.md 1). */
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

	fprintf(f,
"usage: usmtp-handler [--config FILE] [--cert FILE] [--key FILE] [--users FILE]\n"
"                     [--maildir TEMPLATE | --sendmail PATH] [--timeout SECONDS]\n"
"                     [--sendmail-timeout SECONDS] [--login-timeout SECONDS]\n"
"                     [--max-body BYTES]\n"
"                     [--max-attachment BYTES] [--throttle-db FILE]\n"
"                     [--throttle-max N] [--throttle-window SECONDS]\n"
"                     [--log-stderr] [--help] [--version]\n"
"\n"
"Serves one USMTP 1.0 session on standard input and output.\n"
"\n"
"  --config FILE            read \"name = value\" lines (the long option names);\n"
"                           the command line wins\n"
"  --cert FILE              server certificate, PEM (" DEF_CERT ")\n"
"  --key FILE               its RSA-2048 private key, mode 0600 (" DEF_KEY ")\n"
"  --users FILE             GDBM user database (" DEF_USERS ")\n"
"  --maildir TEMPLATE       deliver to this Maildir unless the recipient has\n"
"                           one in the database; %%u local part, %%d domain,\n"
"                           %%a address, %%%% percent (%s)\n"
"  --sendmail PATH          deliver with PATH -i -f SENDER -- RECIPIENT instead;\n"
"                           of --maildir and --sendmail the last one wins\n"
"  --sendmail-timeout SECONDS  how long sendmail may take (%d)\n"
"  --timeout SECONDS        idle timeout of a read, 0 for none (%d)\n"
"  --login-timeout SECONDS  time from connection to login, 0 for none (%d)\n"
"  --max-body BYTES         largest message body (%d; K, M, G suffixes)\n"
"  --max-attachment BYTES   largest attachment (%d; K, M, G suffixes)\n"
"  --throttle-db FILE       failed logins per client address, shared by all\n"
"                           sessions; \"none\" or \"\" turns throttling off\n"
"                           (" DEF_THROTTLE_DB ")\n"
"  --throttle-max N         refuse LOGIN (510) from an address after N failed\n"
"                           logins, 0 never (%d)\n"
"  --throttle-window SECONDS  failures further apart start a new count; the\n"
"                           refusal lasts this long after the last (%d)\n"
"  --log-stderr             log to standard error instead of syslog\n"
"  --help                   show this help\n"
"  --version                show the version\n"
"\n"
"Exit status: 0 after BYE or end of input at a command, 1 after an error\n"
"reply, a timeout or a cut-off frame, 64 bad options, 78 bad configuration.\n",
	    DEF_MAILDIR, DEF_SENDMAIL_SEC, DEF_TIMEOUT_SEC, DEF_LOGIN_SEC,
	    DEF_MAX_BODY, DEF_MAX_ATT, DEF_THROTTLE_MAX, DEF_THROTTLE_SEC);
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

/* Sets one option by its long name; used by argv and --config alike. */
static int
set_option(const char *name, const char *val, const char **why)
{
	unsigned long long	n;

	*why = "bad value";
	if (strcmp(name, "cert") == 0)
		conf.cert = val;
	else if (strcmp(name, "key") == 0)
		conf.key = val;
	else if (strcmp(name, "users") == 0)
		conf.users = val;
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
		conf.throttle_db = *val == '\0' || strcmp(val, "none") == 0 ?
		    NULL : val;
	} else if (strcmp(name, "throttle-max") == 0) {
		if (parse_num(val, 1000000, &n) == -1)
			return -1;
		conf.throttle_max = (unsigned)n;
	} else if (strcmp(name, "throttle-window") == 0) {
		if (parse_num(val, 7 * 86400, &n) == -1 || n == 0)
			return -1;
		conf.throttle_window = (unsigned)n;
	} else if (strcmp(name, "log-stderr") == 0) {
		if (strcmp(val, "yes") == 0 || strcmp(val, "true") == 0 ||
		    strcmp(val, "1") == 0)
			conf.log_stderr = 1;
		else if (strcmp(val, "no") == 0 || strcmp(val, "false") == 0 ||
		    strcmp(val, "0") == 0)
			conf.log_stderr = 0;
		else
			return -1;
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
	FILE		*f;
	char		 line[CONF_LINE_BYTES], *name, *val, *eq, *copy;
	const char	*why;
	size_t		 len;
	int		 lineno = 0;

	if ((f = fopen(path, "re")) == NULL) {
		fprintf(stderr, "usmtp-handler: %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			fprintf(stderr, "usmtp-handler: %s:%d: line too long\n",
			    path, lineno);
			goto fail;
		}
		if ((eq = strchr(line, '#')) != NULL)
			*eq = '\0';
		len = strlen(line);
		name = trim(line, &len);
		if (len == 0)
			continue;
		if ((eq = strchr(name, '=')) == NULL) {
			fprintf(stderr, "usmtp-handler: %s:%d: expected "
			    "name = value\n", path, lineno);
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
			fprintf(stderr, "usmtp-handler: %s:%d: %s: %s\n", path,
			    lineno, name, why);
			free(copy);
			goto fail;
		}
		/* Numbers and flags are parsed, not kept: no leak. */
		if (copy != conf.cert && copy != conf.key &&
		    copy != conf.users && copy != conf.maildir &&
		    copy != conf.sendmail && copy != conf.throttle_db)
			free(copy);
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	return -1;
}

static void
log_init(void)
{
	/* Under inetd stderr is the client's socket: syslog unless told. */
	if (!conf.log_stderr)
		openlog("usmtp-handler", LOG_PID | LOG_NDELAY, LOG_MAIL);
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
esc(const void *p, size_t len)
{
	static char		 buf[2][LOG_STR_BYTES * 4 + 4];
	static int		 which;
	const unsigned char	*s = p;
	char			*o = buf[which ^= 1];
	size_t			 i;

	for (i = 0; i < len && i < LOG_STR_BYTES; i++) {
		if (s[i] > ' ' && s[i] < 0x7f && s[i] != '\\')
			*o++ = (char)s[i];
		else
			o += sprintf(o, "\\x%02x", s[i]);
	}
	if (len > LOG_STR_BYTES)
		o += sprintf(o, "...");
	*o = '\0';
	return buf[which];
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
	if (s->state <= S_KEY)
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
	if (m->att_aes.ctx != NULL)
		aes_stream_free(&m->att_aes);
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
	OPENSSL_cleanse(s->key, sizeof(s->key));
	frame_free(&s->io);
	session_exit(status);
}

static void
session_fail(struct session *s, int code, const char *reason)
{
	reply(s, code);
	session_end(s, code == 500 && strcmp(reason, "config") == 0 ?
	    EX_CONFIG_ : EX_FAIL, reason, code);
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
 * PROTOCOL.md 6: an optional "mail from:" / "mail to:" prefix, spaces,
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
		/* PROTOCOL.md 2: the reference client reads one frame per
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
	/* PROTOCOL.md 3: the keyword is case-insensitive. */
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
	const char		*why;
	char			*pem, *buf, *tok, *save = NULL;
	size_t			 pemlen, n;
	int			 ok = 0, rsa = 0, aes = 0;

	/* PROTOCOL.md 6: the reference's exact line picks its dialect. */
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
			else
				ok = 0;
		}
	}
	if (!ok || rsa != 1 || aes != 1) {
		logx(LOG_WARNING, "handshake result=fail code=502");
		session_fail(s, 502, "handshake");
	}
	if ((pem = crypto_read_cert_pem(conf.cert, &pemlen, &why)) == NULL) {
		logx(LOG_ERR, "error cert=%s reason=\"%s\"", conf.cert, why);
		session_fail(s, 500, "config");
	}
	/* "202 algos valid" then the PEM at once: the reference client
	 * cuts the certificate out by position (PROTOCOL.md 3). */
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
	enter(s, S_KEY);
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
	if ((key = crypto_load_key(conf.key, &why)) == NULL) {
		logx(LOG_ERR, "error key=%s reason=\"%s\"", conf.key, why);
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
#endif
	memcpy(s->key, out, SESSION_KEY_BYTES);
	OPENSSL_cleanse(out, sizeof(out));
	reply(s, 203);
	if (frame_setkey(&s->io, s->key) == -1)
		session_fail(s, 500, "crypto");
	logx(LOG_INFO, "handshake result=ok dialect=%s",
	    s->refdialect ? "reference" : "document");
	enter(s, S_VERSION);
	reply(s, 100);
}

static void
st_version(struct session *s, char *p, size_t len)
{
	char	*tok, *save = NULL;

	/* PROTOCOL.md 4: some whitespace-separated word must be 1.0. */
	if (memchr(p, '\0', len) == NULL)
		for (tok = strtok_r(p, " \t\r\n", &save); tok != NULL;
		    tok = strtok_r(NULL, " \t\r\n", &save))
			if (strcmp(tok, "1.0") == 0) {
				enter(s, S_COMMAND);
				return;
			}
	session_fail(s, 501, "version");
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
			logx(LOG_ERR, "error users=%s reason=\"%s\"",
			    conf.users, why);
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
		session_end(s, EX_OK_, "bye", 0);	/* no reply: PROTOCOL.md 4 */
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
	struct throttle_key	 k;
	const char		*why;
	unsigned		 n;
	int			 r;

	r = auth_check(s->db, s->addr, p, len, &why);
	OPENSSL_cleanse(p, len);
	if (r == -1) {
		logx(LOG_ERR, "error users=%s reason=\"%s\"", conf.users, why);
		session_fail(s, 500, "config");
	}
	if (r == 1) {
		memcpy(s->user, s->addr, sizeof(s->user));
		logx(LOG_INFO, "login user=%s result=ok", s->user);
		frame_set_deadline(&s->io, 0);
		reply(s, 210);
		enter(s, S_COMMAND);
		return;
	}
	if ((n = throttle_record(s, &k)) == 0) {
		logx(LOG_WARNING, "login user=%s result=fail", s->addr);
		login_error(s, 401);
		return;
	}
	logx(LOG_WARNING, "login user=%s result=fail key=%s failures=%u",
	    s->addr, k.text, n);
	/* Issue 7: sessions already past LOGIN stop at the limit too, so
	 * parallel connections cannot each take their six guesses. */
	if (n >= conf.throttle_max) {
		logx(LOG_WARNING, "login user=%s result=throttled key=%s "
		    "failures=%u", s->addr, k.text, n);
		session_fail(s, 510, "throttled");
	}
	login_error(s, 401);
}

/*
 * Issue 7: an address with throttle_max failed logins, each within
 * throttle_window seconds of the one before, gets 510 at LOGIN until
 * the window has passed since the last one, before any address or
 * password is read.  Peers without a network address ("local") are
 * never throttled.  Trouble with the file is logged and lets the login
 * go on: a broken throttle must not lock users out.
 */
static int
throttle_refused(struct session *s)
{
	struct throttle_key	 k;
	const char		*why;
	unsigned		 n;
	int			 r;

	if (conf.throttle_db == NULL || conf.throttle_max == 0 ||
	    !throttle_key(s->peer, &k))
		return 0;
	r = throttle_check(conf.throttle_db, &k, conf.throttle_max,
	    conf.throttle_window, time(NULL), &n, &why);
	if (r == -1) {
		logx(LOG_ERR, "error throttle=%s reason=\"%s\"",
		    conf.throttle_db, why);
		return 0;
	}
	if (r == 1)
		logx(LOG_WARNING, "login result=throttled key=%s failures=%u",
		    k.text, n);
	return r;
}

/*
 * Counts a wrong password or unknown address against the peer's address
 * (*k).  Returns the address's failures now, or 0 when it is not
 * throttled or the file could not be written (logged; fail open).  A
 * good login does not clear the count: else one valid account would let
 * its owner reset the count between guesses at others.
 */
static unsigned
throttle_record(struct session *s, struct throttle_key *k)
{
	const char	*why;
	unsigned	 n;

	if (conf.throttle_db == NULL || conf.throttle_max == 0 ||
	    !throttle_key(s->peer, k))
		return 0;
	if (throttle_fail(conf.throttle_db, k, conf.throttle_window,
	    time(NULL), &n, &why) == -1) {
		logx(LOG_ERR, "error throttle=%s reason=\"%s\"",
		    conf.throttle_db, why);
		return 0;
	}
	return n;
}

static void
st_from(struct session *s, char *p, size_t len)
{
	char	addr[ADDR_MAX + 1];

	/* PROTOCOL.md 6: the sender must be the logged-in user. */
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
	int		 r, code;

	if (parse_addr_line(p, len, "mail to:", m->rcpt) == -1)
		code = 301;
	else if ((r = auth_lookup(s->db, m->rcpt, m->rcpt_maildir,
	    sizeof(m->rcpt_maildir), &why)) == 1) {
		reply(s, 200);
		reply(s, 123);
		enter(s, S_SUBJECT);
		return;
	} else if (r == 0)
		code = 402;
	else {
		logx(LOG_ERR, "error users=%s reason=\"%s\"", conf.users, why);
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

	/* PROTOCOL.md 6: strip one "subject: " prefix if present. */
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
	/* A plain decimal 0..5 and nothing else (PROTOCOL.md 6). */
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
 * An attachment header (PROTOCOL.md 6): a bare length, or lines
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
	/* N counts the ciphertext and its CRLFCRLF; whole blocks. */
	if (!bad && (!haslen || n < 20 || (n - 4) % 16 != 0))
		bad = 1;
	if (!bad && hassize && (size > n - 4 || n - 4 - size > 16))
		bad = 1;
	if (bad) {
		if (++m->nbadhead > MAX_BAD_HEADERS)
			session_fail(s, 500, "bad-headers");
		reply(s, 403);
		return;
	}
	/* Even with the most padding, more than the limit? */
	if (n - 4 - 16 > conf.max_attachment ||
	    (hassize && size > conf.max_attachment)) {
		logx(LOG_WARNING, "send user=%s result=refused reason=size "
		    "attachment=%d length=%llu", s->user, m->cur, n);
		session_fail(s, 552, "size");
	}
	if (m->fail == NULL && m->mail != NULL &&
	    mail_attach_begin(m->mail, name ? name : "", namelen, &why) == -1)
		m->fail = why;
	if (aes_stream_init(&m->att_aes, s->key, 0) == -1)
		session_fail(s, 500, "crypto");
	m->att_total = n;
	m->att_seen = 0;
	m->att_size = hassize ? size : 0;
	m->att_sized = hassize;
	m->att_out = 0;
	m->att_spaces = 0;
	reply(s, 200);
	enter(s, S_ATT_DATA);
	st_att_data(s);
}

/* Hands attachment plaintext to the message, unless it already failed. */
static int
att_put(struct message *m, const unsigned char *p, size_t len)
{
	const char	*why;

	m->att_out += len;
	if (m->fail != NULL || m->mail == NULL || len == 0)
		return 0;
	if (mail_attach_write(m->mail, p, len, &why) == -1)
		m->fail = why;	/* keep reading: the stream stays in step */
	return 0;
}

/*
 * Passes plaintext on: cut to exactly Size: bytes, or else with trailing
 * spaces held back until a non-space shows they were not padding.
 */
static int
att_emit(struct message *m, const unsigned char *p, size_t len)
{
	static unsigned char	spaces[512];
	size_t			j, n;

	if (m->att_sized) {
		if (len > m->att_size - m->att_out)
			len = m->att_size - m->att_out;
		return att_put(m, p, len);
	}
	for (j = len; j > 0 && p[j - 1] == ' '; j--)
		;
	if (j == 0) {
		m->att_spaces += len;
		return 0;
	}
	if (spaces[0] != ' ')
		memset(spaces, ' ', sizeof(spaces));
	while (m->att_spaces > 0) {
		n = m->att_spaces < sizeof(spaces) ? m->att_spaces :
		    sizeof(spaces);
		att_put(m, spaces, n);
		m->att_spaces -= n;
	}
	m->att_spaces = len - j;
	return att_put(m, p, j);
}

/*
 * frame_read_counted() sink: ciphertext up to N-4 is decrypted and
 * passed on in pieces; the last 4 bytes must be CRLFCRLF.
 */
static int
att_sink(void *arg, const unsigned char *p, size_t len)
{
	struct message		*m = arg;
	unsigned char		 out[STREAM_CHUNK_BYTES + 16];
	size_t			 body, take, outl, used = 0;

	body = m->att_total - 4;
	while (len > 0) {
		if (m->att_seen >= body) {
			take = len < 4 - (m->att_seen - body) ? len :
			    4 - (m->att_seen - body);
			memcpy(m->att_tail + (m->att_seen - body), p, take);
		} else {
			take = body - m->att_seen < len ? body - m->att_seen :
			    len;
			if (take > STREAM_CHUNK_BYTES)
				take = STREAM_CHUNK_BYTES;
			if (aes_stream_update(&m->att_aes, p, take, out,
			    &outl) == -1)
				return -1;
			if (outl > used)
				used = outl;
			att_emit(m, out, outl);
		}
		m->att_seen += take;
		p += take;
		len -= take;
	}
	OPENSSL_cleanse(out, used);	/* not all 64 KiB per read */
	return 0;
}

static void
st_att_data(struct session *s)
{
	struct message	*m = &s->msg;
	const char	*why;
	int		 r;

	r = frame_read_counted(&s->io, m->att_total, att_sink, m);
	aes_stream_free(&m->att_aes);
	if (r == FR_TRUNC)
		session_end(s, EX_FAIL, "truncated", 0);
	if (r == FR_TIMEOUT)
		session_fail(s, 500, "timeout");
	if (r != FR_OK)
		session_fail(s, 500, "read");
	if (memcmp(m->att_tail, "\r\n\r\n", 4) != 0) {
		/* PROTOCOL.md 6: the stream is out of step. */
		logx(LOG_WARNING, "send user=%s result=refused "
		    "reason=attachment-framing attachment=%d", s->user, m->cur);
		session_fail(s, 500, "framing");
	}
	if (m->att_sized && m->att_out != m->att_size && m->fail == NULL)
		m->fail = "attachment shorter than its Size:";
	if (m->fail == NULL && m->mail != NULL &&
	    mail_attach_end(m->mail, &why) == -1)
		m->fail = why;
	/* PROTOCOL.md 6: the document's 200 after content; the reference
	 * dialect has none. */
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
	off_t		 size = 0;
	int		 r = -1;

	where[0] = '\0';
	if (why == NULL) {
		r = mail_commit(m->mail, where, sizeof(where), &size, &why);
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

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 0 },
		{ "key", required_argument, NULL, 0 },
		{ "users", required_argument, NULL, 0 },
		{ "maildir", required_argument, NULL, 0 },
		{ "sendmail", required_argument, NULL, 0 },
		{ "sendmail-timeout", required_argument, NULL, 0 },
		{ "login-timeout", required_argument, NULL, 0 },
		{ "timeout", required_argument, NULL, 0 },
		{ "max-body", required_argument, NULL, 0 },
		{ "max-attachment", required_argument, NULL, 0 },
		{ "throttle-db", required_argument, NULL, 0 },
		{ "throttle-max", required_argument, NULL, 0 },
		{ "throttle-window", required_argument, NULL, 0 },
		{ "log-stderr", no_argument, NULL, 0 },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static struct session	 sess;
	struct session		*s = &sess;
	unsigned char		*data;
	const char		*why, *name;
	size_t			 len, max;
	unsigned int		 rnd;
	int			 c, idx, r;

#ifdef USMTP_FUZZ
	static const struct conf defconf = {
		DEF_CERT, DEF_KEY, DEF_USERS, NULL, NULL, DEF_TIMEOUT_SEC,
		DEF_SENDMAIL_SEC, DEF_MAX_BODY, DEF_MAX_ATT, 0,
		NULL, 0, 0,	/* no throttle file */
		DEF_LOGIN_SEC
	};
	conf = defconf;
	memset(s, 0, sizeof(*s));
	optind = 0;	/* glibc: start getopt afresh */
#endif
	/* --config first, so that the command line wins over it. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1)
		if (c == 'C' && read_config(optarg) == -1)
			return EX_CONFIG_;
	opterr = 1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		switch (c) {
		case 0:
			name = longopts[idx].name;
			if (set_option(name, optarg ? optarg : "yes", &why)
			    == -1) {
				fprintf(stderr, "usmtp-handler: --%s %s: %s\n",
				    name, optarg ? optarg : "", why);
				return EX_USAGE_;
			}
			break;
		case 'C':
			break;
		case 'h':
			usage(0);
			break;
		case 'V':
			printf("usmtp-handler %s (USMTP 1.0)\n", USMTP_VERSION);
			return 0;
		default:
			usage(EX_USAGE_);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usmtp-handler: unexpected argument: %s\n",
		    argv[optind]);
		usage(EX_USAGE_);
	}

	log_init();
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
		return EX_FAIL;
	}
	logx(LOG_INFO, "connect");
	/* A session that holds a slot without logging in ends after
	 * --login-timeout, however busy it keeps the handler with frames. */
	frame_set_deadline(&s->io, (int)conf.login_timeout);
	enter(s, S_HELLO);

	for (;;) {
		if (s->state == S_BODY)
			max = conf.max_body;
		else if (s->state == S_KEY)
			max = RSA_CIPHER_BYTES;
		else
			max = FRAME_MAX_BYTES;
		r = frame_read(&s->io, states[s->state].type, max, &data, &len);
		switch (r) {
		case FR_OK:
			states[s->state].fn(s, (char *)data, len);
			break;
		case FR_EOF:
			/* End of input where a command may come is a normal
			 * end; anywhere else the client gave up midway. */
			session_end(s, s->state == S_COMMAND ? EX_OK_ : EX_FAIL,
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
			session_fail(s, 500, frame_deadline_passed(&s->io) ?
			    "login-timeout" : "timeout");
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
