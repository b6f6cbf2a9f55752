/*
 * usmtp-client.c -- the USMTP client: options and the configuration file
 * (clientconf.c), batch mode (recipients as operands, the body on
 * standard input), the sendmail interface (a whole RFC 5322 message on
 * standard input, taken apart by msgin.c) and interactive mode.  Speaks
 * usmtp(7) from the client's side; framing and attachment content are
 * frame.c's, the connection and the certificate check dial.c's, RSA-OAEP
 * crypto.c's.  The server's certificate (chain, dates, host) is verified
 * before the session key or the password leave.  Every exit status
 * (sysexits(3), usmtp-client(1) EXIT STATUS) is decided in this file.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "usmtp.h"

#define DEFAULT_HOST		"localhost"
#define DEFAULT_PORT		1338
#define DEFAULT_CA		"/etc/usmtp/ca.pem"
#define DEFAULT_TIMEOUT_SEC	60
#define CONNECT_TIMEOUT_SEC	10
#define HELLO_SLICE_MS		200	/* an unfinished reply to the hello
					 * is looked at this often */
#define PLAIN_MAX_BYTES		32768	/* a plaintext reply (202: a PEM) */
#define PASS_MAX_BYTES		1024
#define LINE_MAX_BYTES		4096	/* a typed line */
#define BODY_MAX_BYTES		(16 * 1024 * 1024)
#define SPOOL_MAX_BYTES		((uint64_t)4 << 30)	/* sendmail: one
					 * attachment, decoded into /tmp */
#define SUBJECT_MAX_BYTES	4000	/* "subject: " and it in one
					 * 4096-byte frame, padding too */
#define RCPT_MAX		MSGIN_RCPT_MAX
#define PROGRESS_STEP_MS	200
#define SHOWN_MAX_BYTES		200	/* of a server's text in a message */
/* Secure mode: content bytes per record, the flag byte aside, and a
 * record's other bytes (usmtp(7), SECURE MODE, Records). */
#define RECORD_PIECE_BYTES	(NOISE_PLAIN_MAX_BYTES - 1)
#define RECORD_OVERHEAD_BYTES	(2 + 1 + NOISE_TAG_BYTES)

#define DOC_ALGOS	"support asymmetric-rsa2048 symmetric-aes-256-ecb?"
#define REF_ALGOS	"support asymetric-rsa-2048 symetric-aes-256-ecb?"
#define SECURE_ALGOS	"support noise-nk-25519-aesgcm-sha256?"
#define SECURE_PROLOGUE	"USMTP secure 1"
#define NOISE_HS_MAX_BYTES 4144	/* a handshake message (usmtp(7)) */
#define DEF_HELLO	"hello ssl1.0?"
#define GREETING \
	"100 Hello supported_protocols usmtp supported_versions 1.0"

/* Exit statuses (sysexits(3)); the man page's EXIT STATUS lists them. */
#define EXIT_CERT	EX_CONFIG	/* CA unusable or certificate refused */

/* Short options: usmtp-client's, and sendmail's (sendmail interface). */
#define CLIENT_SHORTOPTS	"A:H:p:u:t:s:b:a:vhV"
#define SENDMAIL_SHORTOPTS	"A:B:C:F:L:N:O:R:V:X:b:f:h:io:r:tv"

/* The algorithms lines a session may offer. */
enum offer { OFFER_SECURE, OFFER_DOCUMENT, OFFER_REFERENCE };

/* Long options; the client's short ones map onto them. */
enum {
	O_HOST = 256, O_PORT, O_CA, O_USER, O_PWFILE, O_PWCMD, O_TO,
	O_SUBJECT, O_BODY, O_ATTACH, O_EXEC, O_TIMEOUT, O_SECURE, O_DIALECT,
	O_CONFIG, O_ACCOUNT, O_SENDMAIL, O_VERBOSE, O_HELP, O_VERSION
};

/* A growing buffer; it may hold a message body, so it is wiped. */
struct buf {
	unsigned char	*p;
	size_t		 len, cap;
};

struct progress {
	int		 on;
	const char	*name;
	uint64_t	 total, done;
	long		 start_ms, last_ms;
};

/* One attachment to send: an open file, its name for the server. */
struct attachment {
	int		 fd;
	const char	*name;		/* the Filename: sent */
	const char	*label;		/* for messages: the path given */
	uint64_t	 size;
};

/* The message of batch mode and the sendmail interface. */
struct outmsg {
	const char		*subject;
	const unsigned char	*body;
	size_t			 bodylen;
	struct attachment	 att[MAX_ATTACHMENTS];
	int			 natt;
};

static const char *progname = "usmtp-client";

/* The command line; unset ones are NULL, 0, -1 or *_UNSET. */
static struct {
	const char	*host;
	int		 port;
	const char	*ca;
	const char	*user;
	const char	*password_file;
	const char	*password_command;
	const char	*config;
	const char	*account;
	const char	*subject;
	const char	*body_file;
	const char	*attach[MAX_ATTACHMENTS + 1];
	int		 nattach;
	const char	*exec;
	int		 timeout;
	enum conf_secure secure;
	enum conf_dialect dialect;
	int		 verbose;
	int		 sendmail;	/* the sendmail interface */
	int		 headers_rcpt;	/* sendmail's -t */
	const char	*from;		/* sendmail's -f */
	const char	*fullname;	/* sendmail's -F */
	int		 message_opts;	/* -s, -b or -a given */
	const char	**rcpt;
	size_t		 nrcpt, rcptcap;
} opt = { .timeout = -1 };

static struct clientconf	 cf;	/* the configuration file's account */
static int			 cf_loaded;
static struct msgin		 msg_in;	/* the sendmail interface's */
static int			 msg_in_loaded;
static char			 portbuf[16];
static char			 hostbuf[NI_MAXHOST];

/* Secrets live here so that cleanup() wipes them on every exit. */
static char		 password[PASS_MAX_BYTES];
static int		 password_used;	/* the configured one was sent */
static struct frameio	 io;
static int		 io_live;
static X509_STORE	*ca_store;
static pid_t		 child = -1;
static int		 sessfd = -1;
static char		 login_addr[ADDR_MAX + 1];
static const char	*password_why;	/* why the terminal gave none */
static int		 interactive;	/* replies are shown on stdout */
static int		 at_prompt;	/* the server waits for a command */
static uint64_t		 rx_wire, rx_records;	/* of the last frame read */

/* The recipients being sent to, for the messages of die(). */
static struct {
	const char	**rcpt;
	size_t		 n, cur;
	int		 active;
	int		 status;	/* the first failure's; 0: none yet */
} run;

static void	 usage(int status) __attribute__((noreturn));
static void	 die(int status, const char *fmt, ...)
		    __attribute__((noreturn, format(printf, 2, 3)));
static void	 note(const char *fmt, ...)
		    __attribute__((format(printf, 1, 2)));
static void	 cleanup(void);
static void	 buf_add(struct buf *b, const void *p, size_t n);
static void	 buf_free(struct buf *b);
static const char *shown(const void *p, size_t n);
static const unsigned char *find_bytes(const unsigned char *h, size_t hn,
		    const char *needle);
static int	 looks_like_address(const char *s);
static void	 add_rcpt(const char *addr, const char *what);
static void	 add_sendmail_operand(const char *arg);
static int	 parse_number(const char *s, long lo, long hi);
static void	 long_option(int ch, const char *arg);
static void	 sendmail_option(int ch, const char *arg);
static void	 parse_args(int argc, char *argv[]);
static void	 load_config(void);
static void	 settle_options(void);
static void	 load_ca(void);
static void	 connect_server(void);
static void	 trace(const char *dir, const char *what, size_t n,
		    uint64_t wire, uint64_t records, enum ftype type);
static void	 queue_frame(enum ftype type, const void *p, size_t len,
		    const char *as);
static void	 send_frame(enum ftype type, const void *p, size_t len,
		    const char *as);
static int	 read_frame(enum ftype type, size_t max, unsigned char **data,
		    size_t *len);
static size_t	 read_plain(enum ftype type, unsigned char **data,
		    const char *ctx);
static void	 reply_failed(int r, const char *ctx)
		    __attribute__((noreturn));
static int	 not_usmtp(const unsigned char *p, size_t n);
static int	 read_hello_reply(unsigned char **data, size_t *len);
static void	 trace_cert(const unsigned char *frame, size_t len);
static void	 key_exchange(X509 *cert);
static void	 noise_handshake(X509 *cert);
static int	 say_hello(void);
static int	 offer_algorithms(enum offer offer, unsigned char **data,
		    size_t *len);
static X509	*verify_server(const unsigned char *data, size_t len);
static int	 handshake(enum offer offer);
static void	 open_session(void);
static void	 close_session(int bye);
static int	 read_reply(const char **text, size_t *len, const char *ctx);
static int	 next_prompt(const char **text, size_t *len, const char *ctx);
static void	 fail_reply(int code, const char *text, size_t len,
		    const char *ctx) __attribute__((noreturn));
static int	 reply_status(int code);
static const char *reply_reason(int code, const char *text, size_t len,
		    char *buf, size_t bufsz);
static int	 password_from_source(void);
static int	 password_from_tty(const char *addr);
static void	 read_body(int fd, struct buf *b);
static void	 open_attachment(struct attachment *a, const char *path);
static void	 progress_cb(void *arg, uint64_t done);
static void	 progress_update(struct progress *pg, int final);
static void	 human_size(char *out, size_t sz, double v);
static void	 login_batch(void);
static int	 login_interactive(void);
static void	 mail_start(void);
static int	 mail_rcpt(const char *to, const char **text, size_t *len);
static void	 mail_subject(const char *subject);
static void	 mail_body(const unsigned char *body, size_t len);
static int	 mail_count(int n, const char **text, size_t *len);
static int	 mail_attach(const struct attachment *a, const char **text,
		    size_t *len);
static int	 mail_end(int code, const char *text, size_t len);
static void	 rcpt_failed(const char *rcpt, int status, const char *fmt,
		    ...) __attribute__((format(printf, 3, 4)));
static int	 send_all(const struct outmsg *m);
static int	 deliver(struct outmsg *m);
static int	 do_batch(void);
static int	 do_sendmail(void);
static void	 sendmail_recipients(const struct msgin *m);
static void	 check_sender(void);
static int	 do_interactive(void);
static int	 prompt_line(const char *prompt, const char *def, char *buf,
		    size_t sz);
static int	 read_line(char *buf, size_t sz);
static void	 show_help(void);
static int	 ask_body(struct buf *b);
static int	 ask_count(void);
static int	 ask_file(char *name, size_t sz);
static int	 send_interactive(void);

static void
usage(int status)
{
	FILE	*f = status == 0 ? stdout : stderr;

	fprintf(f,
"usage: usmtp-client [-v] [options] [-s subject] [-b file] [-a file]...\n"
"           address...\n"
"       usmtp-client [-v] [options]                (interactive)\n"
"       usmtp-sendmail [-t] [-i] [-f address] [options] [address...]\n"
"           < message\n");
	if (status != 0) {
		fprintf(f, "Try '%s --help'.\n", progname);
		exit(status);
	}
	fprintf(f,
"\n"
"Options (the configuration file's keys in brackets):\n"
"  -H, --host HOST          server name or address (default " DEFAULT_HOST
")\n"
"                           [host]\n"
"  -p, --port PORT          server port, 1..65535 (default %d) [port]\n"
"      --ca FILE            trusted CA certificates, PEM [ca]\n"
"                           (default " DEFAULT_CA ")\n"
"  -u, --user ADDRESS       log in as ADDRESS, the sender [user]\n"
"      --password-file FILE the password is FILE's first line\n"
"                           [password-file]\n"
"      --password-command COMMAND\n"
"                           the password is COMMAND's first line of output\n"
"                           [password-command]\n"
"      --timeout SECONDS    reply timeout, 0 none (default %d) [timeout]\n"
"      --secure POLICY      prefer: offer secure mode, fall back to USMTP 1.0\n"
"                           (and say so); require: never fall back; off: 1.0\n"
"                           only (default prefer) [secure]\n"
"      --dialect DIALECT    the 1.0 algorithms line: auto (the document's,\n"
"                           then the reference server's if refused),\n"
"                           document or reference (default auto) [dialect]\n"
"      --config FILE        the configuration file (default\n"
"                           $XDG_CONFIG_HOME/usmtp/client.conf, else\n"
"                           ~/.config/usmtp/client.conf)\n"
"  -A, --account NAME       the file's account NAME (default: \"default\",\n"
"                           else the first)\n"
"      --exec COMMAND       run COMMAND (a handler) over a socket pair\n"
"                           instead of connecting\n"
"  -v, --verbose            trace the dialogue on standard error; -vv also\n"
"                           sizes, padding and records\n"
"  -h, --help               this help\n"
"  -V, --version            the version\n"
"\n"
"Batch mode: the addresses are the recipients, one message each, in one\n"
"session; the body is read from standard input.\n"
"  -t, --to ADDRESS         a recipient, as an operand is\n"
"  -s, --subject SUBJECT    the subject (default empty)\n"
"  -b, --body FILE          read the body from FILE (-: standard input)\n"
"  -a, --attach FILE        attach FILE (at most %d times)\n"
"\n"
"Sendmail interface (called as usmtp-sendmail or sendmail, or given\n"
"--sendmail): a whole message on standard input.\n"
"      --sendmail           behave as usmtp-sendmail\n"
"  -t                       recipients also from To, Cc and Bcc\n"
"  -f, -r ADDRESS           the sender: the login address, or none set\n"
"  -C FILE                  as --config\n"
"  -i, -oi, -oem, -odi, -o..., -bm, -F NAME, -B, -h, -L, -N, -O, -R, -V,\n"
"  -X, -A VALUE             accepted and ignored, as sendmail's callers\n"
"                           pass them\n"
"\n"
"Without recipients and without -s, -b or -a the client is interactive.\n"
"The password: --password-file or --password-command, else\n"
"USMTP_PASSWORD, else the configuration file, else the terminal (not\n"
"echoed).  An empty password is never sent.\n"
"\n"
"Exit status:\n"
"   0 success: every recipient accepted the message\n"
"  64 usage error: bad option or operand, no recipient, more than %d\n"
"     attachments, -f not the login address, no password, empty password\n"
"  65 bad address syntax (301), bad attachment count (521), message too\n"
"     large (552); sendmail interface: a message that cannot be sent\n"
"  66 a body, attachment or password file cannot be read, or the\n"
"     password command failed\n"
"  67 unknown recipient (402)\n"
"  69 no connection, connection lost, handshake refused (5xx)\n"
"  70 internal error\n"
"  74 local read or write error\n"
"  75 temporary failure: cannot connect now, delivery failed (451),\n"
"     timeout\n"
"  76 protocol error: not a USMTP server, unexpected or malformed reply\n"
"  77 refused: wrong password (401), too many attempts (510),\n"
"     not authorised (520)\n"
"  78 the configuration file or the CA file is unusable, or the server\n"
"     certificate is not trusted (chain, dates, host name)\n",
	    DEFAULT_PORT, DEFAULT_TIMEOUT_SEC, MAX_ATTACHMENTS, MAX_ATTACHMENTS);
	exit(status);
}

/*
 * Says why and exits.  While a message goes to several recipients, the
 * line names the one being sent to, the ones after it are listed as not
 * sent, and the status is that of the first failure.
 */
static void
die(int status, const char *fmt, ...)
{
	va_list	ap;
	size_t	i;

	fflush(stdout);
	fprintf(stderr, "%s: ", progname);
	if (run.active && run.n > 1)
		fprintf(stderr, "%s: ", run.rcpt[run.cur]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (run.active) {
		for (i = run.cur + 1; i < run.n; i++)
			fprintf(stderr, "%s: %s: not sent: the session "
			    "ended\n", progname, run.rcpt[i]);
		if (run.status != 0)
			status = run.status;
	}
	exit(status);
}

/* -v: one line about what is happening, on standard error. */
static void
note(const char *fmt, ...)
{
	va_list	ap;

	if (opt.verbose < 1)
		return;
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * Runs at every exit: wipes the password and keys, and ends an --exec
 * command still running (as ssh ends its ProxyCommand).
 */
static void
cleanup(void)
{
	int	status;

	if (child > 0) {
		if (sessfd != -1)
			close(sessfd);
		sessfd = -1;
		(void)kill(child, SIGTERM);
		(void)dial_reap(&child, &status);
	}
	OPENSSL_cleanse(password, sizeof(password));
	OPENSSL_cleanse(login_addr, sizeof(login_addr));
	if (io_live) {
		frame_free(&io);
		io_live = 0;
	}
	if (ca_store != NULL) {
		X509_STORE_free(ca_store);
		ca_store = NULL;
	}
	if (msg_in_loaded) {
		msgin_free(&msg_in);
		msg_in_loaded = 0;
	}
	if (cf_loaded) {
		clientconf_free(&cf);
		cf_loaded = 0;
	}
}

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n > SIZE_MAX - b->len ||
	    buf_grow(&b->p, &b->cap, b->len + n, 1) == -1)
		die(EX_SOFTWARE, "out of memory");
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
buf_free(struct buf *b)
{
	if (b->p != NULL) {
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

/*
 * Server bytes made safe to print: a server (or a man in the middle,
 * before the certificate is checked) must not reach the terminal with
 * escape sequences.  Printable ASCII as it is, the rest as C escapes,
 * cut to SHOWN_MAX_BYTES.  Two static buffers, used in turn.
 */
static const char *
shown(const void *p, size_t n)
{
	return esc_text(p, n, SHOWN_MAX_BYTES, ESC_SHOW);
}

static const unsigned char *
find_bytes(const unsigned char *h, size_t hn, const char *needle)
{
	size_t	nn = strlen(needle), i;

	for (i = 0; nn <= hn && i <= hn - nn; i++)
		if (memcmp(h + i, needle, nn) == 0)
			return h + i;
	return NULL;
}

/* ---- options, operands, the configuration file ---- */

/*
 * 1 when s can be an address: local@domain, one '@', no blanks or
 * control characters, a domain of non-empty dot-separated labels.  The
 * server checks the rest (usmtp(7), Login); this catches an operand
 * that is plainly something else, such as a file name.
 */
static int
looks_like_address(const char *s)
{
	const char	*at = strchr(s, '@'), *p;

	if (at == NULL || at == s || strchr(at + 1, '@') != NULL ||
	    strlen(s) > ADDR_MAX || at[1] == '\0' || at[1] == '.')
		return 0;
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == ',' ||
		    *p == '<' || *p == '>')
			return 0;
	for (p = at + 1; *p != '\0'; p++)
		if (*p == '.' && (p[1] == '.' || p[1] == '\0'))
			return 0;
	return 1;
}

/* Adds a recipient; what says where it came from, for the message. */
static void
add_rcpt(const char *addr, const char *what)
{
	size_t	i;

	if (!looks_like_address(addr))
		die(EX_USAGE, "%s '%s' is not an e-mail address (a recipient "
		    "looks like bob@example.org)", what, shown(addr,
		    strlen(addr)));
	for (i = 0; i < opt.nrcpt; i++)
		if (strcasecmp(opt.rcpt[i], addr) == 0)
			return;		/* each address once */
	if (opt.nrcpt == RCPT_MAX)
		die(EX_USAGE, "more than %d recipients", RCPT_MAX);
	if (opt.nrcpt == opt.rcptcap) {
		const char	**n;
		size_t		 cap = opt.rcptcap ? opt.rcptcap * 2 : 8;

		if ((n = reallocarray(opt.rcpt, cap, sizeof(*n))) == NULL)
			die(EX_SOFTWARE, "out of memory");
		opt.rcpt = n;
		opt.rcptcap = cap;
	}
	opt.rcpt[opt.nrcpt++] = addr;
}

/*
 * A sendmail operand: one address, or several separated by commas, each
 * bare or as "Name <address>" (mail tools pass all of these).  The
 * strings are kept until exit.
 */
static void
add_sendmail_operand(const char *arg)
{
	char	*copy, *s, *next, *lt, *gt;

	if ((copy = strdup(arg)) == NULL)
		die(EX_SOFTWARE, "out of memory");
	for (s = copy; s != NULL; s = next) {
		if ((next = strchr(s, ',')) != NULL)
			*next++ = '\0';
		if ((lt = strrchr(s, '<')) != NULL &&
		    (gt = strchr(lt, '>')) != NULL) {
			*gt = '\0';
			s = lt + 1;
		}
		while (isspace((unsigned char)*s))
			s++;
		for (gt = s + strlen(s); gt > s &&
		    isspace((unsigned char)gt[-1]); gt--)
			gt[-1] = '\0';
		if (*s != '\0')
			add_rcpt(s, "recipient");
	}
}

/* A decimal number from lo to hi, or -1. */
static int
parse_number(const char *s, long lo, long hi)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	return (int)v;
}

static void
long_option(int ch, const char *arg)
{
	if (opt.sendmail && (ch == O_TO || ch == O_SUBJECT || ch == O_BODY ||
	    ch == O_ATTACH))
		die(EX_USAGE, "the sendmail interface takes the whole message "
		    "on standard input: no --to, --subject, --body or "
		    "--attach");
	switch (ch) {
	case O_HOST:
		opt.host = arg;
		break;
	case O_PORT:
		if ((opt.port = parse_number(arg, 1, 65535)) == -1)
			die(EX_USAGE, "-p %s: a port is a number from 1 to "
			    "65535", arg);
		break;
	case O_CA:
		opt.ca = arg;
		break;
	case O_USER:
		opt.user = arg;
		break;
	case O_PWFILE:
		opt.password_file = arg;
		opt.password_command = NULL;
		break;
	case O_PWCMD:
		opt.password_command = arg;
		opt.password_file = NULL;
		break;
	case O_TO:
		add_rcpt(arg, "-t");
		break;
	case O_SUBJECT:
		opt.subject = arg;
		opt.message_opts = 1;
		break;
	case O_BODY:
		opt.body_file = arg;
		opt.message_opts = 1;
		break;
	case O_ATTACH:
		if (opt.nattach >= MAX_ATTACHMENTS)
			die(EX_USAGE, "at most %d attachments (-a)",
			    MAX_ATTACHMENTS);
		opt.attach[opt.nattach++] = arg;
		opt.message_opts = 1;
		break;
	case O_EXEC:
		opt.exec = arg;
		break;
	case O_TIMEOUT:
		if ((opt.timeout = parse_number(arg, 0,
		    CONF_TIMEOUT_MAX_SEC)) == -1)
			die(EX_USAGE, "--timeout: 0..%d seconds",
			    CONF_TIMEOUT_MAX_SEC);
		break;
	case O_SECURE:
		if ((opt.secure = clientconf_secure(arg)) == CONF_SECURE_UNSET)
			die(EX_USAGE, "--secure: prefer, require or off");
		break;
	case O_DIALECT:
		if ((opt.dialect = clientconf_dialect(arg)) ==
		    CONF_DIALECT_UNSET)
			die(EX_USAGE, "--dialect: auto, document or "
			    "reference");
		break;
	case O_CONFIG:
		opt.config = arg;
		break;
	case O_ACCOUNT:
		opt.account = arg;
		break;
	case O_SENDMAIL:
		break;		/* seen by parse_args() */
	case O_VERBOSE:
		opt.verbose++;
		break;
	case O_HELP:
		usage(0);
	case O_VERSION:
		printf("usmtp-client %s\n", USMTP_VERSION);
		exit(0);
	default:
		usage(EX_USAGE);
	}
}

/*
 * The options sendmail's callers pass (sendmail(8) as Postfix and
 * msmtp(1) take them).  Only -bm, sending a message, is a mode we have;
 * -o options, DSN and queue hints mean nothing to USMTP and are taken
 * without a word.
 */
static void
sendmail_option(int ch, const char *arg)
{
	switch (ch) {
	case 'b':
		if (strcmp(arg, "m") != 0)
			die(EX_USAGE, "-b%s: only -bm, send a message, is "
			    "supported", arg);
		break;
	case 'C':
		opt.config = arg;
		break;
	case 'f':
	case 'r':
		opt.from = arg;
		break;
	case 'F':
		opt.fullname = arg;
		break;
	case 't':
		opt.headers_rcpt = 1;
		break;
	case 'v':
		opt.verbose++;
		break;
	case 'A':	/* -Am, -Ac: which sendmail.cf */
	case 'B':	/* body type */
	case 'L':	/* syslog tag */
	case 'N':	/* DSN conditions */
	case 'O':	/* long options */
	case 'R':	/* DSN return */
	case 'V':	/* envelope id */
	case 'X':	/* traffic log */
	case 'h':	/* hop count */
	case 'i':	/* a lone dot does not end the message: it never does */
	case 'o':	/* -oi, -oem, -odi, ... */
		break;
	default:
		usage(EX_USAGE);
	}
}

static void
parse_args(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, O_HOST },
		{ "port", required_argument, NULL, O_PORT },
		{ "ca", required_argument, NULL, O_CA },
		{ "user", required_argument, NULL, O_USER },
		{ "password-file", required_argument, NULL, O_PWFILE },
		{ "password-command", required_argument, NULL, O_PWCMD },
		{ "to", required_argument, NULL, O_TO },
		{ "subject", required_argument, NULL, O_SUBJECT },
		{ "body", required_argument, NULL, O_BODY },
		{ "attach", required_argument, NULL, O_ATTACH },
		{ "exec", required_argument, NULL, O_EXEC },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "secure", required_argument, NULL, O_SECURE },
		{ "dialect", required_argument, NULL, O_DIALECT },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "account", required_argument, NULL, O_ACCOUNT },
		{ "sendmail", no_argument, NULL, O_SENDMAIL },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	static const char client_short[] = "AHputsbavhV";
	static const int client_long[] = {
		O_ACCOUNT, O_HOST, O_PORT, O_USER, O_TO, O_SUBJECT, O_BODY,
		O_ATTACH, O_VERBOSE, O_HELP, O_VERSION
	};
	const char	*p;
	int		 ch, i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--sendmail") == 0)
			opt.sendmail = 1;
	if (opt.sendmail)
		progname = "usmtp-sendmail";
	while ((ch = getopt_long(argc, argv, opt.sendmail ?
	    SENDMAIL_SHORTOPTS : CLIENT_SHORTOPTS, longopts,
	    NULL)) != -1) {
		if (ch == '?' || ch == ':')
			usage(EX_USAGE);
		if (ch < O_HOST && opt.sendmail) {
			sendmail_option(ch, optarg);
			continue;
		}
		if (ch < O_HOST) {
			if ((p = strchr(client_short, ch)) == NULL)
				usage(EX_USAGE);
			ch = client_long[p - client_short];
		}
		long_option(ch, optarg);
	}
	for (i = optind; i < argc; i++) {
		if (opt.sendmail)
			add_sendmail_operand(argv[i]);
		else
			add_rcpt(argv[i], "operand");
	}
}

/*
 * The configuration file (usmtp-client(1), CONFIGURATION FILE): --config
 * FILE, which must exist, else the default path, which may be missing.
 * The command line wins over every key.
 */
static void
load_config(void)
{
	const char	*why;
	char		*path = NULL;
	int		 r;

	if (opt.config == NULL) {
		if ((path = clientconf_path(&why)) == NULL) {
			if (opt.account != NULL)
				die(EX_CONFIG, "no configuration file for "
				    "--account: %s", why);
			return;
		}
	}
	r = clientconf_load(&cf, opt.config != NULL ? opt.config : path,
	    opt.config != NULL, opt.account, &why);
	free(path);
	if (r == -1)
		die(EX_CONFIG, "%s", why);
	if (r == 1)
		return;
	cf_loaded = 1;
	if (cf.account != NULL && cf.account_line == 0)
		note("configuration %s, account %s (the keys before any "
		    "section)", cf.path, cf.account);
	else if (cf.account != NULL)
		note("configuration %s, account %s (line %d)", cf.path,
		    cf.account, cf.account_line);
	else
		note("configuration %s, its defaults", cf.path);
	if (opt.host == NULL)
		opt.host = cf.host;
	if (opt.port == 0)
		opt.port = cf.port;
	if (opt.ca == NULL)
		opt.ca = cf.ca;
	if (opt.user == NULL)
		opt.user = cf.user;
	if (opt.timeout == -1)
		opt.timeout = cf.timeout;
	if (opt.secure == CONF_SECURE_UNSET)
		opt.secure = cf.secure;
	if (opt.dialect == CONF_DIALECT_UNSET)
		opt.dialect = cf.dialect;
	/* The password's source is the file's unless the command line
	 * names one (password_from_source()). */
}

/* The built-in defaults for what neither side set; a bracketed host. */
static void
settle_options(void)
{
	const char	*h;

	if (opt.host == NULL)
		opt.host = DEFAULT_HOST;
	else if ((h = dial_host(opt.host, hostbuf, sizeof(hostbuf))) == NULL)
		die(EX_USAGE, "bad host: %s", opt.host);
	else
		opt.host = h;
	if (opt.port == 0)
		opt.port = DEFAULT_PORT;
	(void)snprintf(portbuf, sizeof(portbuf), "%d", opt.port);
	if (opt.ca == NULL)
		opt.ca = DEFAULT_CA;
	if (opt.timeout == -1)
		opt.timeout = DEFAULT_TIMEOUT_SEC;
	if (opt.secure == CONF_SECURE_UNSET)
		opt.secure = CONF_SECURE_PREFER;
	if (opt.dialect == CONF_DIALECT_UNSET)
		opt.dialect = CONF_DIALECT_AUTO;
}

static void
load_ca(void)
{
	const char	*why;

	if (ca_store != NULL)
		return;
	if ((ca_store = dial_load_ca(opt.ca, &why)) == NULL)
		die(EXIT_CERT, "CA file %s: %s", opt.ca, why);
}

/* ---- the connection and the frames, traced with -v ---- */

static void
connect_server(void)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	char			 h[NI_MAXHOST], s[NI_MAXSERV];
	const char		*why;
	int			 kind;

	if (opt.exec != NULL) {
		if ((sessfd = dial_exec(opt.exec, &child, &why)) == -1)
			die(EX_OSERR, "--exec: %s", why);
		note("started /bin/sh -c '%s' (--exec), process %ld",
		    shown(opt.exec, strlen(opt.exec)), (long)child);
		return;
	}
	note("connecting to %s port %s", opt.host, portbuf);
	sessfd = dial_tcp(opt.host, portbuf, CONNECT_TIMEOUT_SEC * 1000,
	    &kind, &why);
	/* Like msmtp: what may work later is EX_TEMPFAIL, so that queueing
	 * callers try again. */
	if (sessfd == -1)
		die(kind == DIAL_TEMPFAIL ? EX_TEMPFAIL : EX_UNAVAILABLE,
		    "cannot connect to %s port %s: %s", opt.host, portbuf,
		    why);
	if (opt.verbose && getpeername(sessfd, (struct sockaddr *)&ss,
	    &sl) == 0 && getnameinfo((struct sockaddr *)&ss, sl, h,
	    sizeof(h), s, sizeof(s), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		note("connected to %s port %s", h, s);
}

/*
 * -v: one line for a frame sent ("->") or read ("<-"), what being its
 * text made safe to show; -vv adds its size on the wire and the padding
 * (1.0) or the records (secure mode).
 */
static void
trace(const char *dir, const char *what, size_t n, uint64_t wire,
    uint64_t records, enum ftype type)
{
	unsigned long long	pad;

	if (opt.verbose < 1)
		return;
	fprintf(stderr, "%s %s", dir, what);
	if (opt.verbose >= 2) {
		if ((type == FT_CIPHER || type == FT_CIPHER_DOT) && io.noise)
			fprintf(stderr, "  [%zu byte%s, %llu record%s, %llu on "
			    "the wire]", n, n == 1 ? "" : "s",
			    (unsigned long long)records,
			    records == 1 ? "" : "s",
			    (unsigned long long)wire);
		else if (type == FT_CIPHER || type == FT_CIPHER_DOT) {
			pad = wire - n - 4 - (type == FT_CIPHER_DOT);
			fprintf(stderr, "  [%zu byte%s + %llu pad, %llu on "
			    "the wire]", n, n == 1 ? "" : "s", pad,
			    (unsigned long long)wire);
		} else
			fprintf(stderr, "  [%llu bytes on the wire]",
			    (unsigned long long)wire);
	}
	fputc('\n', stderr);
}

/*
 * Queues one frame and traces it, as its text or as "as" (the password,
 * a body).
 */
static void
queue_frame(enum ftype type, const void *p, size_t len, const char *as)
{
	size_t		before = io.outlen;
	uint64_t	records = 0;

	if (frame_write(&io, type, p, len) == -1)
		die(EX_SOFTWARE, "%s", io.why);
	if ((type == FT_CIPHER || type == FT_CIPHER_DOT) && io.noise)
		records = len == 0 ? 1 :
		    (len + RECORD_PIECE_BYTES - 1) / RECORD_PIECE_BYTES;
	trace("->", as != NULL ? as : shown(p, len), len, io.outlen - before,
	    records, type);
}

static void
send_frame(enum ftype type, const void *p, size_t len, const char *as)
{
	queue_frame(type, p, len, as);
	if (frame_flush(&io) == -1)
		die(io.timedout ? EX_TEMPFAIL : EX_UNAVAILABLE,
		    "sending to the server: %s", io.why);
}

/* frame_read(), and what the frame took on the wire for trace(). */
static int
read_frame(enum ftype type, size_t max, unsigned char **data, size_t *len)
{
	uint64_t	b = io.rxbytes, r = io.rxrecords;
	int		rv;

	rv = frame_read(&io, type, max, data, len);
	rx_wire = io.rxbytes - b;
	rx_records = io.rxrecords - r;
	return rv;
}

/* Reads a plaintext handshake reply of the given kind; exits on errors. */
static size_t
read_plain(enum ftype type, unsigned char **data, const char *ctx)
{
	size_t	len;
	int	r;

	if ((r = read_frame(type, PLAIN_MAX_BYTES, data, &len)) == FR_OK)
		return len;
	reply_failed(r, ctx);
}

/* Why a reply could not be read, and the end. */
static void
reply_failed(int r, const char *ctx)
{
	switch (r) {
	case FR_EOF:
	case FR_TRUNC:
		die(EX_UNAVAILABLE, "%s: the server closed the connection",
		    ctx);
	case FR_TIMEOUT:
		die(EX_TEMPFAIL, "%s: no reply from the server in time", ctx);
	case FR_ERROR:
		die(EX_UNAVAILABLE, "%s: %s", ctx, io.why);
	case FR_BADFRAME:
		if (io.noise)
			die(EX_PROTOCOL, "%s: %s: the connection may have been "
			    "tampered with", ctx, io.why);
		/* FALLTHROUGH */
	default:
		die(EX_PROTOCOL, "%s: malformed reply", ctx);
	}
}

/*
 * 1 when the start of a reply to the hello cannot be USMTP's: a line
 * that ends in CR LF (or a bare LF) and is followed by more than the
 * CR LF of a terminator (an SMTP server's greeting and its answer to
 * our line), or a reply code a USMTP server never gives there.
 */
static int
not_usmtp(const unsigned char *p, size_t n)
{
	size_t	i;

	if (n >= 4 && isdigit(p[0]) && isdigit(p[1]) && isdigit(p[2]) &&
	    p[3] == ' ' && memcmp(p, "201", 3) != 0 && p[0] != '5')
		return 1;
	for (i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (i == 0 || p[i - 1] != '\r')
			return 1;
		if (i + 1 < n && p[i + 1] != '\r')
			return 1;
		if (i + 2 < n && p[i + 2] != '\n')
			return 1;
	}
	return 0;
}

/*
 * The reply to the hello.  A USMTP reply ends in CR LF CR LF; another
 * server's may never do so (SMTP's lines end in one CR LF), so what has
 * come is looked at every HELLO_SLICE_MS rather than only after the
 * timeout.  Returns frame_read()'s result.
 */
static int
read_hello_reply(unsigned char **data, size_t *len)
{
	const unsigned char	*p;
	size_t			 n;
	long			 end;
	int			 saved = io.timeout_ms, r;

	end = opt.timeout > 0 ? clock_ms() + opt.timeout * 1000L : 0;
	io.timeout_ms = HELLO_SLICE_MS;
	for (;;) {
		r = read_frame(FT_PLAIN, PLAIN_MAX_BYTES, data, len);
		if (r != FR_TIMEOUT)
			break;
		p = io.in + io.inoff;
		if (not_usmtp(p, io.inlen)) {
			for (n = 0; n < io.inlen && p[n] != '\r' &&
			    p[n] != '\n'; n++)
				;
			die(EX_PROTOCOL, "not a USMTP server (it said: %s)",
			    shown(p, n));
		}
		if (end != 0 && clock_ms() >= end)
			break;
	}
	io.timeout_ms = saved;
	io.timedout = 0;
	return r;
}

/*
 * -v: the certificate in a 202 as it came, before it is verified: its
 * subject, names, issuer and dates (escaped: anyone may have made it).
 */
static void
trace_cert(const unsigned char *frame, size_t len)
{
	const unsigned char	*pem;
	GENERAL_NAMES		*gens;
	const GENERAL_NAME	*g;
	BIO			*in, *out;
	X509			*c;
	char			*p, ip[INET6_ADDRSTRLEN];
	long			 n;
	int			 i;

	if (opt.verbose < 1 ||
	    (pem = find_bytes(frame, len, "-----BEGIN CERTIFICATE-----")) ==
	    NULL || (size_t)(frame + len - pem) > INT_MAX)
		return;
	if ((in = BIO_new_mem_buf(pem, (int)(frame + len - pem))) == NULL)
		return;
	c = PEM_read_bio_X509(in, NULL, NULL, NULL);
	BIO_free(in);
	if (c == NULL || (out = BIO_new(BIO_s_mem())) == NULL) {
		X509_free(c);
		ERR_clear_error();
		return;
	}
	(void)BIO_puts(out, "certificate: subject ");
	(void)X509_NAME_print_ex(out, X509_get_subject_name(c), 0,
	    XN_FLAG_ONELINE);
	(void)BIO_puts(out, "; names");
	gens = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_DNS)
			(void)BIO_printf(out, " DNS:%.*s",
			    ASN1_STRING_length(g->d.dNSName),
			    (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		else if (g->type == GEN_IPADD && inet_ntop(
		    ASN1_STRING_length(g->d.iPAddress) == 4 ? AF_INET :
		    AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), ip,
		    sizeof(ip)) != NULL)
			(void)BIO_printf(out, " IP:%s", ip);
	}
	if (sk_GENERAL_NAME_num(gens) <= 0)
		(void)BIO_puts(out, " none");
	GENERAL_NAMES_free(gens);
	(void)BIO_puts(out, "; issuer ");
	(void)X509_NAME_print_ex(out, X509_get_issuer_name(c), 0,
	    XN_FLAG_ONELINE);
	(void)BIO_puts(out, "; valid from ");
	(void)ASN1_TIME_print(out, X509_get0_notBefore(c));
	(void)BIO_puts(out, " until ");
	(void)ASN1_TIME_print(out, X509_get0_notAfter(c));
	if ((n = BIO_get_mem_data(out, &p)) > 0)
		note("%s", shown(p, (size_t)n));
	BIO_free(out);
	X509_free(c);
	ERR_clear_error();
}

/*
 * The 1.0 key exchange after a 202 (usmtp(7), Handshake): the RSA key
 * of the verified certificate encrypts a fresh session key.
 */
static void
key_exchange(X509 *cert)
{
	unsigned char	*data, key[SESSION_KEY_BYTES], ct[RSA_CIPHER_BYTES];
	size_t		 len, ctlen = 0;
	EVP_PKEY	*pub;
	const char	*text, *why;
	int		 r;

	if ((pub = dial_rsa_key(cert, &why)) == NULL)
		die(EX_PROTOCOL, "%s", why);
	if (crypto_random(key, sizeof(key)) == -1)
		die(EX_SOFTWARE, "no random bytes");
	r = crypto_rsa_encrypt(pub, key, sizeof(key), ct, sizeof(ct), &ctlen);
	EVP_PKEY_free(pub);
	if (r == -1 || ctlen != RSA_CIPHER_BYTES) {
		OPENSSL_cleanse(key, sizeof(key));
		die(EX_SOFTWARE, "RSA-OAEP encryption failed");
	}
	send_frame(FT_KEY, ct, ctlen, "[the session key, RSA-OAEP "
	    "encrypted]");
	len = read_plain(FT_PLAIN, &data, "session key");
	trace("<-", shown(data, len), len, rx_wire, 0, FT_PLAIN);
	if (len < 3 || memcmp(data, "203", 3) != 0) {
		OPENSSL_cleanse(key, sizeof(key));
		die(EX_UNAVAILABLE, "session key refused: %s", shown(data, len));
	}
	r = frame_setkey(&io, key);
	OPENSSL_cleanse(key, sizeof(key));
	if (r == -1)
		die(EX_SOFTWARE, "%s", io.why);
	/* usmtp(7), Greeting and commands: the greeting, then our version. */
	if (read_reply(&text, &len, "greeting") != 100 ||
	    len != strlen(GREETING) || memcmp(text, GREETING, len) != 0)
		die(EX_PROTOCOL, "unexpected greeting: %s", shown(text, len));
	/*
	 * No reply comes to the version: queue it, so that it leaves in one
	 * segment with the first command.  Written on its own, the command
	 * would wait for the server's delayed ACK of it (Nagle): 40 ms.
	 */
	queue_frame(FT_CIPHER, "1.0 Hello", 9, NULL);
}

/*
 * Secure mode after a 202 (usmtp(7), SECURE MODE): the Noise NK
 * handshake with the certified X25519 key, the plaintext exchange as its
 * prologue; message 1 carries our version line, message 2 the greeting.
 */
static void
noise_handshake(X509 *cert)
{
	struct noise_hs		*hs;
	struct noise_cipher	 tx, rx;
	unsigned char		 rs[NOISE_DH_BYTES], *prologue, *data;
	unsigned char		 msg[NOISE_HS_MAX_BYTES], pl[NOISE_HS_MAX_BYTES];
	const char		*why;
	size_t			 n, ml, pll, len;
	int			 r;

	if (noise_cert_public(cert, rs, &why) == -1)
		die(EX_PROTOCOL, "server certificate for secure mode: %s", why);
	n = strlen(SECURE_PROLOGUE) + io.keptlen;
	if ((prologue = malloc(n)) == NULL)
		die(EX_SOFTWARE, "out of memory");
	memcpy(prologue, SECURE_PROLOGUE, strlen(SECURE_PROLOGUE));
	memcpy(prologue + strlen(SECURE_PROLOGUE), io.kept, io.keptlen);
	hs = noise_hs_new(1, prologue, n, NULL, rs, NULL, &why);
	free(prologue);
	memset(&tx, 0, sizeof(tx));
	memset(&rx, 0, sizeof(rx));
	if (hs == NULL || noise_hs_write_message(hs,
	    (const unsigned char *)"1.0 Hello", 9, msg, sizeof(msg), &ml,
	    &why) == -1)
		die(EX_SOFTWARE, "secure mode: %s", why);
	send_frame(FT_RECORD, msg, ml, "[Noise message 1: e, es; 1.0 "
	    "Hello]");
	r = read_frame(FT_RECORD, NOISE_HS_MAX_BYTES, &data, &len);
	if (r == FR_EOF || r == FR_TRUNC)
		die(EX_UNAVAILABLE, "secure mode: the server closed the "
		    "connection in the handshake");
	if (r == FR_TIMEOUT)
		die(EX_TEMPFAIL, "secure mode: no reply from the server in "
		    "time");
	if (r != FR_OK)
		die(EX_PROTOCOL, "secure mode: malformed handshake message");
	if (noise_hs_read_message(hs, data, len, pl, sizeof(pl), &pll,
	    &why) == -1)
		die(EX_PROTOCOL, "secure mode: the handshake failed (%s): the "
		    "connection may have been tampered with", why);
	if (opt.verbose) {
		char	what[SHOWN_MAX_BYTES * 4 + 64];

		(void)snprintf(what, sizeof(what), "[Noise message 2: e, ee; "
		    "%s]", shown(pl, pll));
		trace("<-", what, len, rx_wire, 0, FT_RECORD);
	}
	if (pll != strlen(GREETING) || memcmp(pl, GREETING, pll) != 0)
		die(EX_PROTOCOL, "unexpected greeting: %s", shown(pl, pll));
	if (noise_hs_split(hs, &tx, &rx, NULL, &why) == -1)
		die(EX_SOFTWARE, "secure mode: %s", why);
	noise_hs_free(hs);
	frame_set_noise(&io, &tx, &rx);
}

/*
 * The hello (usmtp(7), Handshake): 0 after a 201.  Anything else, a
 * close too, ends the program.
 */
static int
say_hello(void)
{
	unsigned char	*data;
	size_t		 len;
	int		 r;

	send_frame(FT_PLAIN, DEF_HELLO, strlen(DEF_HELLO), NULL);
	if ((r = read_hello_reply(&data, &len)) != FR_OK)
		reply_failed(r, "hello");
	trace("<-", shown(data, len), len, rx_wire, 0, FT_PLAIN);
	if (len >= 4 && data[0] == '5' && isdigit(data[1]) &&
	    isdigit(data[2]) && data[3] == ' ')
		die(EX_UNAVAILABLE, "handshake refused: %s", shown(data, len));
	if (len < 3 || memcmp(data, "201", 3) != 0 || (len > 3 &&
	    data[3] != ' '))
		die(EX_PROTOCOL, "not a USMTP server (it said: %s)",
		    shown(data, len));
	return 0;
}

/*
 * The algorithms line.  0 with the 202 frame in *data; 1 when the
 * server refused it (502); 2 when it closed the connection after it,
 * before a 202.  Anything else ends the program.
 */
static int
offer_algorithms(enum offer offer, unsigned char **data, size_t *len)
{
	static const char *const lines[] = {
		[OFFER_SECURE] = SECURE_ALGOS,
		[OFFER_DOCUMENT] = DOC_ALGOS,
		[OFFER_REFERENCE] = REF_ALGOS
	};
	char		 what[SHOWN_MAX_BYTES * 4 + 64];
	const unsigned char *pem;
	size_t		 n;
	int		 r;

	send_frame(FT_PLAIN, lines[offer], strlen(lines[offer]), NULL);
	r = read_frame(FT_PLAIN_DOT, PLAIN_MAX_BYTES, data, len);
	if (r == FR_EOF || r == FR_TRUNC) {
		if (r == FR_TRUNC)
			trace("<-", shown(io.in + io.inoff, io.inlen),
			    io.inlen, io.inlen, 0, FT_PLAIN);
		note("the server closed the connection");
		return 2;
	}
	if (r != FR_OK)
		reply_failed(r, "algorithms");
	if ((pem = find_bytes(*data, *len, "-----BEGIN")) != NULL) {
		n = (size_t)(pem - *data);
		(void)snprintf(what, sizeof(what), "%s [a certificate, %zu "
		    "bytes]", shown(*data, n), *len - n);
		trace("<-", what, *len, rx_wire, 0, FT_PLAIN_DOT);
	} else
		trace("<-", shown(*data, *len), *len, rx_wire, 0,
		    FT_PLAIN_DOT);
	if (*len >= 3 && memcmp(*data, "502", 3) == 0)
		return 1;
	if (*len < 3 || memcmp(*data, "202", 3) != 0)
		die(EX_UNAVAILABLE, "algorithms refused: %s",
		    shown(*data, *len));
	return 0;
}

/* The certificate of a 202, verified (usmtp(7), Handshake), or the end. */
static X509 *
verify_server(const unsigned char *data, size_t len)
{
	X509		*cert;
	const char	*why;
	int		 kind;

	load_ca();
	trace_cert(data, len);
	cert = dial_verify_cert(ca_store, data, len,
	    opt.exec == NULL ? opt.host : NULL, &kind, &why);
	if (cert == NULL)
		die(kind == DIAL_UNTRUSTED ? EXIT_CERT : kind == DIAL_INTERNAL ?
		    EX_SOFTWARE : EX_PROTOCOL, "server certificate %s%s%s%s",
		    why, kind == DIAL_UNTRUSTED ? " (CA file " : "",
		    kind == DIAL_UNTRUSTED ? opt.ca : "",
		    kind == DIAL_UNTRUSTED ? ")" : "");
	if (opt.exec == NULL)
		note("certificate verified: signed by a CA of %s, valid now, "
		    "issued for %s", opt.ca, opt.host);
	else
		note("certificate verified: signed by a CA of %s, valid now "
		    "(the host name is not checked with --exec)", opt.ca);
	return cert;
}

/*
 * One attempt at a handshake with the given algorithms line.  0 when it
 * is done; 1 when the server refused the line (502), 2 when it closed
 * the connection after the line, before a 202: then another line may be
 * tried.  Any other failure ends the program.
 */
static int
handshake(enum offer offer)
{
	unsigned char	*data;
	size_t		 len;
	X509		*cert;
	int		 r;

	io.keep = offer == OFFER_SECURE;	/* the prologue */
	if ((r = say_hello()) != 0 ||
	    (r = offer_algorithms(offer, &data, &len)) != 0)
		return r;
	cert = verify_server(data, len);
	if (offer == OFFER_SECURE)
		noise_handshake(cert);
	else
		key_exchange(cert);
	X509_free(cert);
	return 0;
}

/*
 * Connects and shakes hands, trying the algorithms lines that --secure
 * and --dialect allow, in order: secure mode, the document's spelling,
 * the reference server's spelling (usmtp(7), SECURE MODE, Client policy;
 * usmtp-client(1), --dialect).  Each refusal costs a new connection.
 */
static void
open_session(void)
{
	static const char *const said[] = {
		[OFFER_SECURE] = "secure mode",
		[OFFER_DOCUMENT] = "USMTP 1.0, document dialect",
		[OFFER_REFERENCE] = "USMTP 1.0, reference dialect"
	};
	enum offer	 offers[3];
	int		 n = 0, i, r, status;

	if (opt.secure != CONF_SECURE_OFF)
		offers[n++] = OFFER_SECURE;
	if (opt.secure != CONF_SECURE_REQUIRE) {
		if (opt.dialect != CONF_DIALECT_REFERENCE)
			offers[n++] = OFFER_DOCUMENT;
		if (opt.dialect != CONF_DIALECT_DOCUMENT)
			offers[n++] = OFFER_REFERENCE;
	}
	for (i = 0; i < n; i++) {
		connect_server();
		if (frame_init(&io, sessfd, sessfd, opt.timeout) == -1)
			die(EX_SOFTWARE, "out of memory");
		io.drain = 1;	/* an early error reply is read, not lost */
		io_live = 1;
		if ((r = handshake(offers[i])) == 0)
			break;
		frame_free(&io);
		io_live = 0;
		close(sessfd);
		sessfd = -1;
		(void)dial_reap(&child, &status);
		if (i + 1 < n) {
			note("trying again with a new connection: %s",
			    said[offers[i + 1]]);
			continue;
		}
		if (offers[i] == OFFER_SECURE)
			die(EX_UNAVAILABLE, "the server does not offer secure "
			    "mode (--secure require): it %s",
			    r == 1 ? "refused it (502)" : "closed the connection");
		die(EX_UNAVAILABLE, "algorithms refused: the server %s%s",
		    r == 1 ? "refused the algorithms line (502)" :
		    "closed the connection after the algorithms line",
		    opt.dialect == CONF_DIALECT_AUTO ? " in both spellings "
		    "of USMTP 1.0" : opt.dialect == CONF_DIALECT_DOCUMENT ?
		    " (--dialect document)" : " (--dialect reference)");
	}
	if (offers[i] != OFFER_SECURE && opt.secure == CONF_SECURE_PREFER)
		fprintf(stderr, "%s: the server does not offer secure mode: "
		    "this session is protected by USMTP 1.0 only\n",
		    progname);
	note("%s", said[offers[i]]);
	at_prompt = 1;
}

/*
 * Ends the session: BYE when the server waits for a command (after 401
 * or 402 it waits for an address, and would read BYE as one); then the
 * connection is closed and an --exec child reaped.
 */
static void
close_session(int bye)
{
	size_t	before;
	int	status;

	if (!io_live)
		return;
	before = io.outlen;
	if (bye && at_prompt && (io.enc != NULL || io.noise) &&
	    frame_write(&io, FT_CIPHER, "BYE", 3) == 0) {
		trace("->", "BYE", 3, io.outlen - before, 1, FT_CIPHER);
		(void)frame_flush(&io);
	}
	frame_free(&io);
	io_live = 0;
	close(sessfd);
	sessfd = -1;
	(void)dial_reap(&child, &status);
}

/*
 * Reads one encrypted reply "CODE text".  Returns the code; *text is the
 * whole reply (valid until the next frame call).  Exits on I/O errors.
 */
static int
read_reply(const char **text, size_t *len, const char *ctx)
{
	unsigned char	*data;
	int		 r, code;

	if ((r = read_frame(FT_CIPHER, FRAME_MAX_BYTES, &data, len)) != FR_OK)
		reply_failed(r, ctx);
	trace("<-", shown(data, *len), *len, rx_wire, rx_records, FT_CIPHER);
	if (*len < 3 || !isdigit(data[0]) || !isdigit(data[1]) ||
	    !isdigit(data[2]) || (*len > 3 && data[3] != ' ') ||
	    memchr(data, '\0', *len) != NULL)
		die(EX_PROTOCOL, "%s: malformed reply", ctx);
	*text = (const char *)data;
	if (interactive) {
		printf("server: %s\n", shown(*text, *len));
		fflush(stdout);
	}
	code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + data[2] - '0';
	/* Where the server is back at its command prompt. */
	at_prompt = code == 100 || code == 130 || code == 210 ||
	    code == 220 || code == 300 || code == 451;
	return code;
}

/* The next prompt: usmtp(7), Sending a message, puts a 200 before most. */
static int
next_prompt(const char **text, size_t *len, const char *ctx)
{
	int	code;

	if ((code = read_reply(text, len, ctx)) == 200)
		code = read_reply(text, len, ctx);
	return code;
}

/* The exit status for an unwanted reply code. */
static int
reply_status(int code)
{
	switch (code) {
	case 401:
	case 510:
	case 520:
		return EX_NOPERM;
	case 402:
		return EX_NOUSER;
	case 301:
	case 521:
	case 552:
		return EX_DATAERR;
	case 451:
		return EX_TEMPFAIL;
	default:
		return code >= 500 ? EX_UNAVAILABLE : EX_PROTOCOL;
	}
}

/*
 * What an unwanted reply means, for the message: NULL when the code
 * says nothing more than its text.  552: the limit, when the text gives
 * one (a number of bytes, perhaps with K, M or G).
 */
static const char *
reply_reason(int code, const char *text, size_t len, char *buf,
    size_t bufsz)
{
	const char	*p, *end = text + len;
	size_t		 n;

	switch (code) {
	case 301:
		return "bad address syntax";
	case 401:
		return "authentication failed (wrong password or unknown "
		    "user)";
	case 402:
		return "recipient unknown";
	case 451:
		return "not delivered, try again later";
	case 510:
		return "too many failed logins: logins from this address are "
		    "refused for a while; try again later";
	case 520:
		return "not authorised to send";
	case 521:
		return "the server refused the number of attachments";
	case 552:
		for (p = text + 3; p < end && !isdigit((unsigned char)*p);
		    p++)
			;
		for (n = 0; p + n < end && (isdigit((unsigned char)p[n]) ||
		    p[n] == 'K' || p[n] == 'M' || p[n] == 'G'); n++)
			;
		if (n == 0)
			return "too large: over the server's size limit";
		(void)snprintf(buf, bufsz, "too large: the server's limit is "
		    "%.*s%s", (int)n, p, isdigit((unsigned char)p[n - 1]) ?
		    " bytes" : "");
		return buf;
	default:
		return NULL;
	}
}

/* An unwanted reply: one line on stderr and the status for its code. */
static void
fail_reply(int code, const char *text, size_t len, const char *ctx)
{
	const char	*reason;
	char		 buf[128], said[SHOWN_MAX_BYTES * 4 + 4];
	int		 status = reply_status(code);

	reason = reply_reason(code, text, len, buf, sizeof(buf));
	if (reason == NULL)
		reason = status == EX_PROTOCOL ? "unexpected reply" :
		    "the server ended the session";
	/* text is the frame layer's: gone with the session. */
	(void)snprintf(said, sizeof(said), "%s", shown(text, len));
	close_session(1);
	die(status, "%s: %s: server said: %s", ctx, reason, said);
}

/* ---- the password ---- */

/*
 * The password from where the user put it, into password[]: the
 * command line's --password-file or --password-command, else
 * USMTP_PASSWORD, else the configuration file's.  1 when got; 0 when
 * none of these is set (the terminal is left).  Exits on failure; an
 * empty password is one.
 */
static int
password_from_source(void)
{
	const char	*why;
	char		*env;
	size_t		 n;
	int		 r;

	if (opt.password_file != NULL)
		r = clientconf_password_file(opt.password_file, password,
		    sizeof(password), &n, &why);
	else if (opt.password_command != NULL)
		r = clientconf_password_command(opt.password_command,
		    CONF_PWCMD_TIMEOUT_SEC * 1000, password, sizeof(password),
		    &n, &why);
	else if ((env = getenv("USMTP_PASSWORD")) != NULL) {
		if (*env == '\0')
			die(EX_USAGE, "USMTP_PASSWORD is empty: an empty "
			    "password is never sent");
		if (snprintf(password, sizeof(password), "%s", env) >=
		    (int)sizeof(password))
			die(EX_DATAERR, "USMTP_PASSWORD too long");
		OPENSSL_cleanse(env, strlen(env));
		unsetenv("USMTP_PASSWORD");
		return 1;
	} else if (cf_loaded) {
		/* It names the file that named a command. */
		r = clientconf_password(&cf, CONF_PWCMD_TIMEOUT_SEC * 1000,
		    password, sizeof(password), &n, &why);
		if (r == 1)
			return 0;
	} else
		return 0;
	if (r == -1)
		die(EX_NOINPUT, "%s", why);
	return 1;
}

/*
 * The password typed on the terminal, without echo.  0; -1 when there
 * is no terminal or input ended (why in password_why); -2 when it was
 * empty.
 */
static int
password_from_tty(const char *addr)
{
	char	prompt[ADDR_MAX + 32];
	size_t	n;
	int	r;

	r = snprintf(prompt, sizeof(prompt), "Password for %s: ", addr);
	if (r < 0 || (size_t)r >= sizeof(prompt))
		die(EX_SOFTWARE, "prompt too long");
	if ((r = tty_read_secret(prompt, password, sizeof(password), &n,
	    &password_why)) == -2)
		die(EX_DATAERR, "password too long");
	if (r == -1)
		return -1;
	return n == 0 ? -2 : 0;
}

/* ---- reading a message ---- */

/* Reads the whole body (bounded) from fd. */
static void
read_body(int fd, struct buf *b)
{
	ssize_t	n;

	for (;;) {
		if (buf_grow(&b->p, &b->cap, b->len + 65536, 1) == -1)
			die(EX_SOFTWARE, "out of memory");
		n = read(fd, b->p + b->len, 65536);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			die(EX_IOERR, "reading the body: %s", strerror(errno));
		if (n == 0)
			break;
		b->len += (size_t)n;
		if (b->len > BODY_MAX_BYTES)
			die(EX_DATAERR, "the body is over %d bytes",
			    BODY_MAX_BYTES);
	}
}

/* Opens an attachment named on the command line: a readable regular
 * file, named by its last path component. */
static void
open_attachment(struct attachment *a, const char *path)
{
	struct stat	st;
	const char	*base;

	if ((a->fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	if (fstat(a->fd, &st) == -1 || !S_ISREG(st.st_mode))
		die(EX_NOINPUT, "%s: not a regular file", path);
	base = strrchr(path, '/');
	a->name = base != NULL ? base + 1 : path;
	a->label = path;
	a->size = (uint64_t)st.st_size;
}

static void
human_size(char *out, size_t sz, double v)
{
	static const char	*unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int			 u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (snprintf(out, sz, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]) < 0)
		out[0] = '\0';
}

/* A one-line progress bar on stderr (only when stderr is a terminal). */
static void
progress_update(struct progress *pg, int final)
{
	char	done[32], total[32], rate[32], bar[31];
	long	t = clock_ms(), el;
	int	pct, i;

	if (!pg->on || (!final && t - pg->last_ms < PROGRESS_STEP_MS))
		return;
	pg->last_ms = t;
	el = t - pg->start_ms > 0 ? t - pg->start_ms : 1;
	pct = pg->total > 0 ? (int)(pg->done * 100 / pg->total) : 100;
	for (i = 0; i < 30; i++)
		bar[i] = i < pct * 30 / 100 ? '#' : '.';
	bar[30] = '\0';
	human_size(done, sizeof(done), (double)pg->done);
	human_size(total, sizeof(total), (double)pg->total);
	human_size(rate, sizeof(rate), (double)pg->done * 1000.0 / el);
	fprintf(stderr, "\r%.30s [%s] %s / %s %3d%% %s/s\033[K", pg->name,
	    bar, done, total, pct, rate);
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

static void
progress_cb(void *arg, uint64_t done)
{
	struct progress	*pg = arg;

	pg->done = done;
	progress_update(pg, 0);
}

/* ---- the dialogue (usmtp(7), Login and Sending a message) ---- */

/* LOGIN with the address and password settled beforehand. */
static void
login_batch(void)
{
	const char	*text;
	size_t		 len;
	int		 code;

	send_frame(FT_CIPHER, "LOGIN", 5, NULL);
	if ((code = read_reply(&text, &len, "login")) != 111)
		fail_reply(code, text, len, "login");
	send_frame(FT_CIPHER, login_addr, strlen(login_addr), NULL);
	if ((code = read_reply(&text, &len, "login")) != 112)
		fail_reply(code, text, len, login_addr);
	send_frame(FT_CIPHER, password, strlen(password), "********");
	OPENSSL_cleanse(password, sizeof(password));
	if ((code = read_reply(&text, &len, "login")) != 210)
		fail_reply(code, text, len, login_addr);
}

/*
 * LOGIN, asking for the address (the configured user in brackets) and
 * the password; after a 401 or 301 the server asks again.  0 when
 * logged in; -1 when input ended.
 */
static int
login_interactive(void)
{
	char		 line[LINE_MAX_BYTES];
	const char	*text;
	size_t		 len;
	int		 code, r;

	send_frame(FT_CIPHER, "LOGIN", 5, NULL);
	for (code = read_reply(&text, &len, "login");;
	    code = read_reply(&text, &len, "login")) {
		switch (code) {
		case 130:
		case 210:
			return 0;
		case 111:
		case 301:	/* usmtp(7), Login: send the address again */
			if (prompt_line("E-mail address", opt.user, line,
			    sizeof(line)) == -1)
				return -1;
			if (snprintf(login_addr, sizeof(login_addr), "%s",
			    line[0] != '\0' || opt.user == NULL ? line :
			    opt.user) >= (int)sizeof(login_addr)) {
				printf("The address is too long.\n");
				login_addr[0] = '\0';
			}
			send_frame(FT_CIPHER, login_addr, strlen(login_addr),
			    NULL);
			break;
		case 112:
			/* The certificate is verified by now.  The
			 * configured password once, for the configured
			 * user; else the terminal. */
			r = 1;
			if (!password_used && opt.user != NULL &&
			    strcasecmp(login_addr, opt.user) == 0)
				r = password_from_source() ? 0 : 1;
			password_used = 1;
			while (r != 0) {
				if ((r = password_from_tty(login_addr)) == -1)
					return -1;
				if (r == -2)
					printf("An empty password is never "
					    "sent; type it again.\n");
			}
			send_frame(FT_CIPHER, password, strlen(password),
			    "********");
			OPENSSL_cleanse(password, sizeof(password));
			break;
		case 401:
			break;	/* the 111 follows */
		default:
			fail_reply(code, text, len, "login");
		}
	}
}

/* SEND MAIL, and the sender: up to the 122 prompt. */
static void
mail_start(void)
{
	char		 frame[ADDR_MAX + 16];
	const char	*text;
	size_t		 len;
	int		 code, m;

	send_frame(FT_CIPHER, "SEND MAIL", 9, NULL);
	if ((code = read_reply(&text, &len, "SEND MAIL")) != 121)
		fail_reply(code, text, len, "SEND MAIL");
	m = snprintf(frame, sizeof(frame), "mail from: %s", login_addr);
	if (m < 0 || (size_t)m >= sizeof(frame))
		die(EX_SOFTWARE, "address too long");
	send_frame(FT_CIPHER, frame, (size_t)m, NULL);
	if ((code = next_prompt(&text, &len, "sender")) != 122)
		fail_reply(code, text, len, "sender");
}

/*
 * The recipient, up to the 123 prompt: 0; or 301 or 402 (*text the
 * reply), after which the server waits for another address.
 */
static int
mail_rcpt(const char *to, const char **text, size_t *len)
{
	char	frame[LINE_MAX_BYTES + 16];
	int	code, m;

	m = snprintf(frame, sizeof(frame), "mail to: %s", to);
	if (m < 0 || (size_t)m >= sizeof(frame))
		die(EX_DATAERR, "recipient address too long");
	send_frame(FT_CIPHER, frame, (size_t)m, NULL);
	code = next_prompt(text, len, "recipient");
	if (code == 301 || code == 402)
		return code;
	if (code != 123)
		fail_reply(code, *text, *len, "recipient");
	return 0;
}

/* usmtp(7), Sending a message: the prefixes always (the reference
 * server cuts them off by position). */
static void
mail_subject(const char *subject)
{
	char		 frame[SUBJECT_MAX_BYTES + 16];
	const char	*text;
	size_t		 len;
	int		 code, m;

	m = snprintf(frame, sizeof(frame), "subject: %s", subject);
	if (m < 0 || (size_t)m >= sizeof(frame))
		die(EX_DATAERR, "the subject is over %d bytes",
		    SUBJECT_MAX_BYTES);
	send_frame(FT_CIPHER, frame, (size_t)m, NULL);
	if ((code = next_prompt(&text, &len, "subject")) != 124)
		fail_reply(code, text, len, "subject");
}

static void
mail_body(const unsigned char *body, size_t bodylen)
{
	unsigned char	*data;
	char		 as[64];
	const char	*text;
	size_t		 len;
	int		 code;

	if ((data = malloc(bodylen + 6)) == NULL)
		die(EX_SOFTWARE, "out of memory");
	memcpy(data, "data: ", 6);
	memcpy(data + 6, body, bodylen);
	(void)snprintf(as, sizeof(as), "data: [the body, %zu bytes]",
	    bodylen);
	send_frame(FT_CIPHER_DOT, data, bodylen + 6, as);
	OPENSSL_cleanse(data, bodylen + 6);
	free(data);
	if ((code = next_prompt(&text, &len, "body")) != 125)
		fail_reply(code, text, len, "body");
}

/* The number of attachments; returns the next prompt (126, or 220 or
 * 451 for none), *text its reply. */
static int
mail_count(int n, const char **text, size_t *len)
{
	char	frame[16];

	(void)snprintf(frame, sizeof(frame), "%d", n);
	send_frame(FT_CIPHER, frame, strlen(frame), NULL);
	return next_prompt(text, len, "attachment count");
}

/*
 * One attachment (usmtp(7), Attachments): header with Size:, the 200,
 * then the content; after it a 200 (document dialect) and the next
 * prompt, or the prompt alone (reference dialect).  Returns that
 * prompt's code, *text its reply.
 */
static int
mail_attach(const struct attachment *a, const char **text, size_t *len)
{
	struct progress	 pg;
	char		 hdr[PATH_MAX + 128], as[PATH_MAX + 64];
	uint64_t	 wire, records;
	int		 m, code, r;

	if (lseek(a->fd, 0, SEEK_SET) == -1)	/* sent before */
		die(EX_IOERR, "%s: %s", a->label, strerror(errno));
	wire = frame_content_length(&io, a->size, FPAD_ALWAYS);
	m = snprintf(hdr, sizeof(hdr),
	    "Content-Length: %llu\r\nFilename: %s\r\nSize: %llu",
	    (unsigned long long)wire, a->name,
	    (unsigned long long)a->size);
	if (m < 0 || (size_t)m >= sizeof(hdr))
		die(EX_DATAERR, "%s: file name too long", a->label);
	send_frame(FT_CIPHER, hdr, (size_t)m, NULL);
	if ((code = read_reply(text, len, a->label)) != 200)
		fail_reply(code, *text, *len, a->label);
	records = 0;
	if (io.noise) {
		records = a->size == 0 ? 1 : (a->size +
		    RECORD_PIECE_BYTES - 1) / RECORD_PIECE_BYTES;
		wire = a->size + records * RECORD_OVERHEAD_BYTES;
	}
	(void)snprintf(as, sizeof(as), "[the content of %s, %llu bytes]",
	    shown(a->name, strlen(a->name)), (unsigned long long)a->size);
	trace("->", as, a->size, wire, records, FT_CIPHER);
	memset(&pg, 0, sizeof(pg));
	pg.on = isatty(2);
	pg.name = a->name;
	pg.total = a->size;
	pg.start_ms = pg.last_ms = clock_ms();
	r = frame_write_content(&io, a->fd, a->size, FPAD_ALWAYS, progress_cb,
	    &pg);
	if (r != 0 && pg.on)
		fputc('\n', stderr);
	if (r == -2)
		die(EX_IOERR, "%s: %s", a->label, io.why);
	if (r == -1)
		/* The server may have said why before it closed. */
		die(io.timedout ? EX_TEMPFAIL : EX_UNAVAILABLE, "sending %s: %s",
		    a->label, io.why);
	progress_update(&pg, 1);
	return next_prompt(text, len, a->label);
}

/* The reply to a whole message: 220 or 451 returned, else the end. */
static int
mail_end(int code, const char *text, size_t len)
{
	if (code != 220 && code != 451)
		fail_reply(code, text, len, "message");
	return code;
}

/* One line for a recipient that did not get the message. */
static void
rcpt_failed(const char *rcpt, int status, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "%s: %s: ", progname, rcpt);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (run.status == 0)
		run.status = status;
}

/*
 * Sends m to every recipient, one SEND MAIL each (USMTP carries one
 * recipient a message).  When the server refuses an address (301, 402)
 * it waits for another, so the next recipient takes its place in the
 * same SEND MAIL; after a 451 the server is back at its prompt.  Any
 * other failure ends the session (die() lists who was not sent to).
 * Returns 0 when every recipient got the message, else the status of
 * the first failure.
 */
static int
send_all(const struct outmsg *m)
{
	char		 buf[128];
	const char	*text;
	size_t		 len;
	int		 code, i;

	run.rcpt = opt.rcpt;
	run.n = opt.nrcpt;
	run.active = 1;
	for (run.cur = 0; run.cur < run.n; run.cur++) {
		mail_start();
		while ((code = mail_rcpt(run.rcpt[run.cur], &text,
		    &len)) != 0) {
			rcpt_failed(run.rcpt[run.cur], reply_status(code),
			    "%s: server said: %s", reply_reason(code, text,
			    len, buf, sizeof(buf)), shown(text, len));
			if (run.cur + 1 == run.n) {
				/* It waits for an address: no BYE. */
				close_session(0);
				run.active = 0;
				return run.status;
			}
			run.cur++;
		}
		mail_subject(m->subject);
		mail_body(m->body, m->bodylen);
		code = mail_count(m->natt, &text, &len);
		for (i = 0; i < m->natt; i++) {
			if (code != 126)
				fail_reply(code, text, len, "attachments");
			code = mail_attach(&m->att[i], &text, &len);
		}
		code = mail_end(code, text, len);
		if (code == 451)
			rcpt_failed(run.rcpt[run.cur], EX_TEMPFAIL, "not "
			    "delivered, try again later (451)");
		else
			note("%s: sent", run.rcpt[run.cur]);
	}
	run.active = 0;
	close_session(1);
	return run.status;
}

/*
 * Batch mode and the sendmail interface, once the message is read: the
 * password (before connecting: none costs no connection), the session,
 * the login, the message to every recipient.
 */
static int
deliver(struct outmsg *m)
{
	if (strlen(m->subject) > SUBJECT_MAX_BYTES)
		die(EX_DATAERR, "the subject is over %d bytes",
		    SUBJECT_MAX_BYTES);
	if (snprintf(login_addr, sizeof(login_addr), "%s", opt.user) >=
	    (int)sizeof(login_addr))
		die(EX_DATAERR, "address too long: %s", opt.user);
	if (!password_from_source()) {
		switch (password_from_tty(opt.user)) {
		case -1:
			die(EX_USAGE, "no password: %s, and no password-file, "
			    "password-command or USMTP_PASSWORD",
			    password_why);
		case -2:
			die(EX_USAGE, "the password is empty: an empty "
			    "password is never sent");
		}
	}
	load_ca();
	open_session();
	login_batch();
	return send_all(m);
}

/* Batch mode: the body from standard input or -b, files from -a. */
static int
do_batch(void)
{
	struct outmsg	 m;
	struct buf	 body;
	int		 i, fd, rv;

	if (opt.user == NULL)
		die(EX_USAGE, "batch mode needs a sender: -u ADDRESS, or user "
		    "in the configuration file");
	memset(&m, 0, sizeof(m));
	/* Every file is opened before anything is sent. */
	for (i = 0; i < opt.nattach; i++)
		open_attachment(&m.att[i], opt.attach[i]);
	m.natt = opt.nattach;
	memset(&body, 0, sizeof(body));
	if (opt.body_file != NULL && strcmp(opt.body_file, "-") != 0) {
		if ((fd = open(opt.body_file, O_RDONLY | O_CLOEXEC)) == -1)
			die(EX_NOINPUT, "%s: %s", opt.body_file,
			    strerror(errno));
		read_body(fd, &body);
		close(fd);
	} else
		read_body(0, &body);
	m.subject = opt.subject != NULL ? opt.subject : "";
	m.body = body.p != NULL ? body.p : (const unsigned char *)"";
	m.bodylen = body.len;
	rv = deliver(&m);
	buf_free(&body);
	return rv;
}

/* ---- the sendmail interface ---- */

/* -t: the To, Cc and Bcc addresses join the operands. */
static void
sendmail_recipients(const struct msgin *m)
{
	static const char *const field[] = { "To", "Cc", "Bcc" };
	char	what[32];
	size_t	i;

	for (i = 0; i < m->nrcpt && opt.headers_rcpt; i++) {
		(void)snprintf(what, sizeof(what), "the %s: address",
		    field[m->rcpt[i].field]);
		if (!looks_like_address(m->rcpt[i].addr))
			die(EX_DATAERR, "%s '%s' is not an e-mail address",
			    what, shown(m->rcpt[i].addr,
			    strlen(m->rcpt[i].addr)));
		add_rcpt(m->rcpt[i].addr, what);
	}
	if (opt.nrcpt == 0 && opt.headers_rcpt)
		die(EX_DATAERR, "the message has no To, Cc or Bcc address "
		    "(-t)");
	if (opt.nrcpt == 0)
		die(EX_USAGE, "no recipient: name them as operands, or give "
		    "-t to take them from the To, Cc and Bcc header fields");
}

/*
 * USMTP's sender is the login address (usmtp(7), Sending a message):
 * -f may only repeat it, or name it when nothing else does.
 */
static void
check_sender(void)
{
	const char	*f = opt.from;
	static char	 bare[ADDR_MAX + 1];
	size_t		 n;

	if (f != NULL) {
		n = strlen(f);
		if (n >= 2 && f[0] == '<' && f[n - 1] == '>' &&
		    n - 2 < sizeof(bare)) {
			(void)snprintf(bare, sizeof(bare), "%.*s",
			    (int)(n - 2), f + 1);
			f = bare;
		}
		if (!looks_like_address(f))
			die(EX_USAGE, "-f '%s' is not an e-mail address",
			    shown(f, strlen(f)));
		if (opt.user == NULL)
			opt.user = f;
		else if (strcasecmp(f, opt.user) != 0)
			die(EX_USAGE, "-f %s: USMTP sends as the login "
			    "address, %s; the sender cannot be another",
			    shown(f, strlen(f)), opt.user);
	}
	if (opt.user == NULL)
		die(EX_USAGE, "no sender: set user in the configuration file, "
		    "or give -u or -f ADDRESS");
	if (opt.fullname != NULL)
		note("-F %s: USMTP carries no sender name; the server writes "
		    "From", shown(opt.fullname, strlen(opt.fullname)));
}

/*
 * usmtp-sendmail: a whole message on standard input (msgin.c): its
 * subject, text body and attachments are sent to the operands and, with
 * -t, its To, Cc and Bcc addresses.  Nothing is sent unless all of it
 * fits USMTP.
 */
static int
do_sendmail(void)
{
	struct msgin_limits	 lim = {
		.body_max = BODY_MAX_BYTES,
		.attach_max = SPOOL_MAX_BYTES,
		.attach_count_max = MAX_ATTACHMENTS,
		.header_line_max = MSGIN_HEADER_LINE_MAX_BYTES,
		.header_count_max = MSGIN_HEADER_COUNT_MAX,
		.rcpt_max = MSGIN_RCPT_MAX,
		.tmpdir = NULL
	};
	struct outmsg		 m;
	const char		*why;
	size_t			 i;

	if (msgin_read(0, &lim, &msg_in, &why) == -1)
		die(msg_in.error == MSGIN_EDATA ? EX_DATAERR :
		    msg_in.error == MSGIN_EIO ? EX_IOERR : EX_TEMPFAIL,
		    "the message was not sent: %s", why);
	msg_in_loaded = 1;
	sendmail_recipients(&msg_in);
	check_sender();
	for (i = 0; i < msg_in.ndropped; i++)
		note("header field %s dropped: USMTP cannot carry it",
		    shown(msg_in.dropped[i], strlen(msg_in.dropped[i])));
	if (msg_in.alternatives_dropped > 0)
		note("%zu alternative part(s) dropped: the text/plain one is "
		    "the body", msg_in.alternatives_dropped);
	if (msg_in.from != NULL && strcasecmp(msg_in.from, opt.user) != 0)
		note("From: %s is replaced by the login address, %s",
		    shown(msg_in.from, strlen(msg_in.from)), opt.user);
	memset(&m, 0, sizeof(m));
	m.subject = msg_in.subject;
	m.body = (const unsigned char *)msg_in.body;
	m.bodylen = msg_in.bodylen;
	for (i = 0; i < msg_in.natt; i++) {
		m.att[i].fd = msg_in.att[i].fd;
		m.att[i].name = msg_in.att[i].name;
		m.att[i].label = msg_in.att[i].name;
		m.att[i].size = msg_in.att[i].size;
	}
	m.natt = (int)msg_in.natt;
	return deliver(&m);
}

/* ---- interactive mode ---- */

/*
 * Prompts on stdout ("Prompt [default]: "), reads a line from stdin.
 * -1 at end of input.
 */
static int
prompt_line(const char *prompt, const char *def, char *buf, size_t sz)
{
	if (def != NULL)
		printf("%s [%s]: ", prompt, def);
	else
		printf("%s: ", prompt);
	fflush(stdout);
	return read_line(buf, sz);
}

/* A line of stdin without its end; longer ones are cut.  -1 at EOF. */
static int
read_line(char *buf, size_t sz)
{
	size_t	n = 0;
	int	c;

	while ((c = getchar()) != EOF && c != '\n')
		if (n + 1 < sz)
			buf[n++] = (char)c;
	if (c == EOF && n == 0)
		return -1;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return 0;
}

/* "help" at the command prompt: answered here, never sent. */
static void
show_help(void)
{
	printf(
"  LOGIN      log in: the address, then the password (not echoed)\n"
"  SEND MAIL  send a message: the recipient, subject, body and up to %d\n"
"             attachments\n"
"  BYE        end the session\n"
"  help       this list (answered by usmtp-client, not the server)\n"
"Anything else is sent to the server as it is.\n", MAX_ATTACHMENTS);
}

/* The body, typed: lines up to one holding "." or end of input. */
static int
ask_body(struct buf *b)
{
	char	line[LINE_MAX_BYTES];
	int	n = 0;

	printf("Type the message; end it with a line holding a single "
	    "\".\" or end of input.\n");
	fflush(stdout);
	for (;;) {
		if (read_line(line, sizeof(line)) == -1) {
			if (n == 0)
				return -1;
			break;
		}
		if (strcmp(line, ".") == 0)
			break;
		/* The reference joins the lines with LF, none at the end. */
		if (n++ > 0)
			buf_add(b, "\n", 1);
		buf_add(b, line, strlen(line));
		if (b->len > BODY_MAX_BYTES)
			die(EX_DATAERR, "the body is over %d bytes",
			    BODY_MAX_BYTES);
	}
	OPENSSL_cleanse(line, sizeof(line));
	return 0;
}

static int
ask_count(void)
{
	char	line[LINE_MAX_BYTES];
	int	v;

	for (;;) {
		if (prompt_line("Number of attachments (0-5)", "0", line,
		    sizeof(line)) == -1)
			return -1;
		if (line[0] == '\0')
			return 0;
		if ((v = parse_number(line, 0, MAX_ATTACHMENTS)) != -1)
			return v;
		printf("Please type a number from 0 to %d.\n",
		    MAX_ATTACHMENTS);
	}
}

/* Asks for a file name until one can be read; its fd, -1 at EOF. */
static int
ask_file(char *name, size_t sz)
{
	struct stat	st;
	int		fd;

	for (;;) {
		if (prompt_line("Attachment file", NULL, name, sz) == -1)
			return -1;
		if ((fd = open(name, O_RDONLY | O_CLOEXEC)) == -1) {
			printf("%s: %s\n", name, strerror(errno));
			continue;
		}
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			return fd;
		printf("%s: not a regular file\n", name);
		close(fd);
	}
}

/*
 * SEND MAIL, asking for each part as the server prompts for it.  0 when
 * sent, 1 after a 451 (the session goes on), -1 when input ended.
 */
static int
send_interactive(void)
{
	char		 to[LINE_MAX_BYTES], subject[LINE_MAX_BYTES];
	char		 name[PATH_MAX];
	struct attachment a;
	struct buf	 body;
	const char	*text, *base;
	size_t		 len;
	struct stat	 st;
	int		 n, i, code;

	mail_start();
	do {
		if (prompt_line("To", NULL, to, sizeof(to)) == -1)
			return -1;
	} while (mail_rcpt(to, &text, &len) != 0);	/* 301, 402: again */
	if (prompt_line("Subject", NULL, subject, sizeof(subject)) == -1)
		return -1;
	mail_subject(subject);
	memset(&body, 0, sizeof(body));
	if (ask_body(&body) == -1)
		return -1;
	mail_body(body.p != NULL ? body.p : (const unsigned char *)"",
	    body.len);
	buf_free(&body);
	if ((n = ask_count()) == -1)
		return -1;
	code = mail_count(n, &text, &len);
	for (i = 0; i < n; i++) {
		if (code != 126)
			fail_reply(code, text, len, "attachments");
		if ((a.fd = ask_file(name, sizeof(name))) == -1)
			die(EX_NOINPUT, "input ended inside a message; "
			    "nothing was sent");
		if (fstat(a.fd, &st) == -1)
			die(EX_NOINPUT, "%s: %s", name, strerror(errno));
		base = strrchr(name, '/');
		a.name = base != NULL ? base + 1 : name;
		a.label = name;
		a.size = (uint64_t)st.st_size;
		code = mail_attach(&a, &text, &len);
		close(a.fd);
	}
	code = mail_end(code, text, len);
	return code == 451 ? 1 : 0;
}

static int
do_interactive(void)
{
	char	line[LINE_MAX_BYTES], *s, *e;
	int	r = 0;

	load_ca();
	open_session();
	interactive = 1;	/* replies shown from here on */
	printf("Connected: %s\n", GREETING);
	printf("Commands: LOGIN, SEND MAIL, BYE (help: what they do)\n");
	for (;;) {
		if (prompt_line("Command", NULL, line, sizeof(line)) == -1)
			break;
		for (s = line; isspace((unsigned char)*s); s++)
			;
		for (e = s + strlen(s); e > s &&
		    isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		if (*s == '\0')
			continue;
		if (strcasecmp(s, "help") == 0 || strcmp(s, "?") == 0)
			show_help();
		else if (strcasecmp(s, "BYE") == 0)
			break;
		else if (strcasecmp(s, "LOGIN") == 0)
			r = login_interactive();
		else if (strcasecmp(s, "SEND MAIL") == 0)
			r = send_interactive();
		else {
			const char	*text;
			size_t		 len;
			int		 code;

			send_frame(FT_CIPHER, s, strlen(s), NULL);
			code = read_reply(&text, &len, "command");
			if (code >= 500)
				fail_reply(code, text, len, "command");
			r = 0;
		}
		if (r == -1) {
			printf("Input ended; nothing more is sent.\n");
			break;
		}
	}
	close_session(1);
	return 0;
}

int
main(int argc, char *argv[])
{
	const char	*base;
	size_t		 n;

	crypto_init(0);
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);
	/* Called as usmtp-sendmail, or as sendmail through a link. */
	base = strrchr(argv[0], '/');
	base = base != NULL ? base + 1 : argv[0];
	n = strlen(base);
	if (n >= 8 && strcmp(base + n - 8, "sendmail") == 0)
		opt.sendmail = 1;
	parse_args(argc, argv);
	load_config();
	settle_options();
	if (opt.sendmail)
		return do_sendmail();
	if (opt.nrcpt > 0)
		return do_batch();
	if (opt.message_opts)
		die(EX_USAGE, "no recipient: give one or more addresses as "
		    "operands (usmtp-client -s subject bob@example.org)");
	return do_interactive();
}
