/*
 * usmtp-client.c -- the USMTP client: batch mode (flags, body on stdin),
 * interactive mode, and the test harness (--script over --exec or TCP,
 * --encode, --decode).  Speaks PROTOCOL.md 2-6 from the client's side;
 * framing, AES and RSA-OAEP are crypto.c's.  Verifies the server's
 * certificate (chain, dates, host) before it sends the session key.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "usmtp.h"

#define DEFAULT_PORT		"1338"
#define DEFAULT_CA		"/etc/usmtp/ca.pem"
#define DEFAULT_TIMEOUT_SEC	60
#define CONNECT_TIMEOUT_SEC	10
#define PLAIN_MAX_BYTES		32768	/* a plaintext reply (202: a PEM) */
#define PASS_MAX_BYTES		1024
#define LINE_MAX_BYTES		4096	/* a typed line, a script line */
#define SCRIPT_LINE_MAX_BYTES	1048576
#define BODY_MAX_BYTES		(16 * 1024 * 1024)
#define OUT_LOW_WATER_BYTES	(256 * 1024)	/* live script: refill below */
#define PROGRESS_STEP_MS	200
#define AES_BLOCK_BYTES		16
#define OAEP_MAX_BYTES		190	/* RSA-2048 with OAEP-SHA-256 */

#define DOC_ALGOS	"support asymmetric-rsa2048 symmetric-aes-256-ecb?"
#define REF_ALGOS	"support asymetric-rsa-2048 symetric-aes-256-ecb?"
#define DEF_HELLO	"hello ssl1.0?"
#define GREETING \
	"100 Hello supported_protocols usmtp supported_versions 1.0"

/* Exit statuses (sysexits(3)); the man page's EXIT STATUS lists them. */
#define EXIT_CERT	EX_CONFIG	/* CA unusable or certificate refused */

enum op {
	OP_HELLO, OP_ALGOS, OP_KEY, OP_SEND, OP_SEND_REF, OP_BODY,
	OP_ATTACH, OP_ATTACH_REF, OP_CONTENT, OP_RAW, OP_RAWHEX, OP_EOF,
	OP_PAUSE
};

struct directive {
	enum op		 op;
	int		 line;
	unsigned char	*text;		/* TEXT, hex bytes, or FILE */
	size_t		 len;
	char		*name;		/* attach NAME, or NULL */
	size_t		 namelen;
	long		 n;		/* key bytes (-1 garbage), pause ms */
};

struct buf {
	unsigned char	*p;
	size_t		 off, len, cap;	/* [off, off+len) pending */
};

/* Reply splitter for live scripts and --decode (PROTOCOL.md 2, 3). */
struct rparser {
	struct buf	 in;
	int		 cipher;	/* after the 203 */
	int		 haskey;
	int		 broken;	/* an overlong frame: count the rest */
	int		 lastplain;	/* the last frame was plaintext */
	size_t		 junk;		/* bytes counted, not framed */
	unsigned char	 key[SESSION_KEY_BYTES];
	unsigned char	 plain[FRAME_MAX_BYTES + AES_BLOCK_BYTES];
};

/* Counted attachment content being streamed (PROTOCOL.md 6). */
struct content {
	int		 fd;
	const char	*path;
	uint64_t	 size;		/* the file's bytes */
	uint64_t	 padded;	/* size plus pad spaces */
	uint64_t	 done;		/* file bytes already read */
	int		 encrypt;
	struct aes_stream s;
};

/* A script being run (live or --encode). */
struct run {
	struct directive *d;
	size_t		 nd, next;	/* directives, next to produce */
	int		 live;
	int		 fd;		/* live: the connection */
	int		 waiting;	/* live: a reply awaited */
	int		 want_eof;	/* shut down writing once drained */
	long		 pause_ms;	/* pause once drained; -1 none */
	long		 pause_until;
	int		 wclosed, rclosed;
	int		 keyed;		/* frames encrypted from here on */
	struct content	 c;
	int		 streaming;
	struct buf	 out;
	struct rparser	 rp;
	EVP_PKEY	*pub;
};

struct progress {
	int		 on;
	const char	*name;
	uint64_t	 total, done;
	long		 start_ms, last_ms;
};

static const char *progname = "usmtp-client";

static struct {
	const char	*host;
	const char	*port;
	const char	*ca;
	const char	*user;
	const char	*password_file;
	const char	*to;
	const char	*subject;
	const char	*body_file;
	const char	*attach[MAX_ATTACHMENTS + 1];
	int		 nattach;
	const char	*exec;
	const char	*script;
	const char	*encode;
	const char	*cert;
	const char	*session_key;
	const char	*decode;
	int		 timeout;
	int		 verbose;
	int		 host_given;
} opt;

/* Secrets live here so that cleanup() wipes them on every exit. */
static char		 password[PASS_MAX_BYTES];
static unsigned char	 session_key[SESSION_KEY_BYTES];
static int		 have_session_key;
static struct frameio	 io;
static int		 io_live;
static struct run	*cur_run;
static X509_STORE	*ca_store;
static pid_t		 child = -1;
static struct termios	 tty_saved;
static int		 tty_fd = -1;
static char		 login_addr[ADDR_MAX + 1];
static volatile sig_atomic_t got_signal;

static void	 usage(int status) __attribute__((noreturn));
static void	 die(int status, const char *fmt, ...)
		    __attribute__((noreturn, format(printf, 2, 3)));
static void	 cleanup(void);
static void	 on_signal(int sig);
static long	 now_ms(void);
static void	 buf_need(struct buf *b, size_t more);
static void	 buf_add(struct buf *b, const void *p, size_t n);
static void	 buf_free(struct buf *b);
static const unsigned char *find_bytes(const unsigned char *h, size_t hn,
		    const char *needle);
static void	 print_escaped(FILE *f, const unsigned char *p, size_t n);
static int	 decode_escapes(const char *s, size_t n, unsigned char **out,
		    size_t *outlen, const char **why);
static int	 decode_hex(const char *s, size_t n, unsigned char **out,
		    size_t *outlen);
static void	 load_session_key(const char *path);
static size_t	 script_load(const char *path, struct directive **out);
static void	 script_free(struct directive *d, size_t nd);
static int	 parse_line(char *line, size_t len, int lineno,
		    struct directive *d, int *expand_ref, const char **why);
static void	 load_ca(void);
static int	 is_ip_literal(const char *host);
static EVP_PKEY	*cert_verify(const unsigned char *frame, size_t len,
		    const char *host);
static EVP_PKEY	*load_cert_key(const char *path);
static int	 tcp_connect(const char *host, const char *port);
static int	 spawn(const char *cmd);
static int	 reap_child(int *status);
static void	 rp_feed(struct rparser *rp, const unsigned char *p, size_t n);
static int	 rp_next(struct rparser *rp, const unsigned char **f,
		    size_t *flen);
static void	 rp_print(const unsigned char *f, size_t n);
static void	 rp_finish(struct rparser *rp);
static size_t	 pad_len(size_t n, int ref);
static void	 emit_text(struct run *r, enum ftype type, const void *text,
		    size_t len, int ref);
static int	 content_open(struct content *c, const char *path,
		    int encrypt, int ref);
static int	 content_step(struct content *c, struct buf *out,
		    struct progress *pg);
static void	 content_close(struct content *c);
static void	 produce(struct run *r);
static int	 emit_key(struct run *r, long n);
static int	 run_live(struct run *r);
static void	 run_handle_frame(struct run *r, const unsigned char *f,
		    size_t n);
static int	 run_encode(struct run *r);
static int	 do_decode(void);
static int	 do_script(void);
static int	 connect_server(void);
static void	 handshake(void);
static int	 read_reply(const char **text, size_t *len, const char *ctx);
static void	 send_frame(enum ftype type, const void *p, size_t len);
static void	 fail_reply(int code, const char *text, size_t len,
		    const char *ctx) __attribute__((noreturn));
static void	 show_reply(int code, const char *text, size_t len);
static size_t	 read_plain(enum ftype type, unsigned char **data,
		    const char *ctx);
static void	 get_password(const char *addr);
static int	 read_tty_line(const char *prompt, char *buf, size_t sz,
		    int echo);
static void	 read_body(int fd, unsigned char **body, size_t *len);
static void	 send_attachment(int fd, const char *path);
static void	 progress_update(struct progress *pg, int final);
static void	 human_size(char *out, size_t sz, double v);
static int	 do_login(const char *addr, int interactive);
static int	 do_batch(void);
static int	 do_interactive(void);
static int	 prompt_line(const char *prompt, char *buf, size_t sz);
static void	 send_bye(void);
static int	 ask_body(struct buf *b);
static int	 ask_count(void);
static int	 ask_file(char *name, size_t sz);
static int	 send_mail_dialog(const char *to, const char *subject,
		    const unsigned char *body, size_t bodylen,
		    const int *fds, const char **paths, int n, int interactive);

static void
usage(int status)
{
	FILE	*f = status == 0 ? stdout : stderr;

	fprintf(f,
"usage: %s [-v] [-H host] [-p port] [--ca file] [-u address]\n"
"           [--password-file file] [--exec command] [--timeout seconds]\n"
"           [-t address [-s subject] [-b file] [-a file]...]\n"
"       %s --script file [--ca file] [--session-key file]\n"
"           (--exec command | -H host [-p port])\n"
"       %s --script file --encode out.bin --cert server.pem\n"
"           [--session-key file]\n"
"       %s --decode in.bin [--session-key file]\n",
	    progname, progname, progname, progname);
	if (status != 0) {
		fprintf(f, "Try '%s --help'.\n", progname);
		exit(status);
	}
	fprintf(f,
"\n"
"  -H, --host HOST          server name or address (default localhost)\n"
"  -p, --port PORT          server port (default " DEFAULT_PORT ")\n"
"      --ca FILE            trusted CA certificates, PEM\n"
"                           (default " DEFAULT_CA ")\n"
"  -u, --user ADDRESS       log in as ADDRESS (the sender)\n"
"      --password-file FILE read the password from the first line of FILE\n"
"  -t, --to ADDRESS         batch mode: send one message to ADDRESS\n"
"  -s, --subject SUBJECT    the subject (default empty)\n"
"  -b, --body FILE          read the body from FILE (default standard input)\n"
"  -a, --attach FILE        attach FILE (at most %d times)\n"
"      --exec COMMAND       run COMMAND (a handler) over a socket pair\n"
"      --timeout SECONDS    reply timeout (default %d, 0 none)\n"
"  -v, --verbose            show the server's replies on standard error\n"
"      --script FILE        send the directives of FILE, print the replies\n"
"      --encode FILE        with --script: write the client bytes to FILE\n"
"      --cert FILE          with --encode: the server certificate\n"
"      --session-key FILE   the session key, 64 hex digits\n"
"      --decode FILE        print the replies in a handler's output FILE\n"
"  -h, --help               this help\n"
"  -V, --version            the version\n"
"\n"
"Without -t the client is interactive.  The password comes from\n"
"--password-file, USMTP_PASSWORD, or the terminal (not echoed).\n"
"\n"
"Exit status:\n"
"   0 success\n"
"  64 usage error, bad option, more than %d attachments, no password\n"
"  65 bad address syntax (301), bad attachment count (521),\n"
"     message too large (552), bad script or key file\n"
"  66 a body, attachment, password, script or key file cannot be read\n"
"  67 unknown recipient (402)\n"
"  69 no connection, connection lost, handshake refused (5xx)\n"
"  70 internal error\n"
"  74 local read or write error\n"
"  75 temporary failure: delivery failed (451), timeout\n"
"  76 protocol error: unexpected or malformed reply\n"
"  77 refused: wrong password (401), too many attempts (510),\n"
"     not authorised (520)\n"
"  78 the CA file is unusable, or the server certificate is not\n"
"     trusted (chain, dates, host name)\n",
	    MAX_ATTACHMENTS, DEFAULT_TIMEOUT_SEC, MAX_ATTACHMENTS);
	exit(status);
}

static void
die(int status, const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* Runs at every exit: wipes the password and keys, restores the tty. */
static void
cleanup(void)
{
	if (tty_fd != -1) {
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
		close(tty_fd);
		tty_fd = -1;
	}
	OPENSSL_cleanse(password, sizeof(password));
	OPENSSL_cleanse(session_key, sizeof(session_key));
	OPENSSL_cleanse(login_addr, sizeof(login_addr));
	if (io_live) {
		frame_free(&io);
		io_live = 0;
	}
	if (cur_run != NULL) {
		OPENSSL_cleanse(cur_run->rp.key, sizeof(cur_run->rp.key));
		OPENSSL_cleanse(cur_run->rp.plain, sizeof(cur_run->rp.plain));
		buf_free(&cur_run->rp.in);
		buf_free(&cur_run->out);
		cur_run = NULL;
	}
	if (ca_store != NULL) {
		X509_STORE_free(ca_store);
		ca_store = NULL;
	}
}

static void
on_signal(int sig)
{
	got_signal = sig;
}

static long
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
buf_need(struct buf *b, size_t more)
{
	unsigned char	*np;
	size_t		 cap;

	if (b->off > 0 && b->off + b->len + more > b->cap) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	if (b->len + more <= b->cap)
		return;
	if (more > SIZE_MAX / 2 - b->len)
		die(EX_SOFTWARE, "out of memory");
	cap = b->cap > 0 ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	/* Buffers may hold plaintext: never leave a copy behind. */
	if ((np = malloc(cap)) == NULL)
		die(EX_SOFTWARE, "out of memory");
	if (b->p != NULL) {
		memcpy(np, b->p + b->off, b->len);
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	b->p = np;
	b->off = 0;
	b->cap = cap;
}

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	buf_need(b, n);
	memcpy(b->p + b->off + b->len, p, n);
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

static const unsigned char *
find_bytes(const unsigned char *h, size_t hn, const char *needle)
{
	size_t	nn = strlen(needle), i;

	for (i = 0; nn <= hn && i <= hn - nn; i++)
		if (memcmp(h + i, needle, nn) == 0)
			return h + i;
	return NULL;
}

/* One reply line: printable ASCII as is, the rest as C escapes. */
static void
print_escaped(FILE *f, const unsigned char *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		switch (p[i]) {
		case '\r':
			fputs("\\r", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		default:
			if (p[i] >= 0x20 && p[i] < 0x7f)
				fputc(p[i], f);
			else
				fprintf(f, "\\x%02x", p[i]);
		}
	}
}

static int
decode_escapes(const char *s, size_t n, unsigned char **out, size_t *outlen,
    const char **why)
{
	unsigned char	*o;
	size_t		 i, k = 0;
	unsigned int	 v;
	char		 hex[3];

	if ((o = malloc(n + 1)) == NULL)
		die(EX_SOFTWARE, "out of memory");
	for (i = 0; i < n; i++) {
		if (s[i] != '\\') {
			o[k++] = (unsigned char)s[i];
			continue;
		}
		if (++i == n) {
			*why = "backslash at the end of the line";
			goto bad;
		}
		switch (s[i]) {
		case 'r':
			o[k++] = '\r';
			break;
		case 'n':
			o[k++] = '\n';
			break;
		case 't':
			o[k++] = '\t';
			break;
		case 's':
			o[k++] = ' ';
			break;
		case '\\':
			o[k++] = '\\';
			break;
		case 'x':
			if (i + 2 >= n ||
			    !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2])) {
				*why = "\\x needs two hex digits";
				goto bad;
			}
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			hex[2] = '\0';
			v = (unsigned int)strtoul(hex, NULL, 16);
			o[k++] = (unsigned char)v;
			i += 2;
			break;
		default:
			*why = "unknown escape "
			    "(use \\r \\n \\t \\\\ \\s \\xNN)";
			goto bad;
		}
	}
	o[k] = '\0';
	*out = o;
	*outlen = k;
	return 0;
bad:
	free(o);
	return -1;
}

static int
decode_hex(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	unsigned char	*o;
	size_t		 i, k = 0;
	int		 hi = -1, v;

	if ((o = malloc(n / 2 + 1)) == NULL)
		die(EX_SOFTWARE, "out of memory");
	for (i = 0; i < n; i++) {
		if (isspace((unsigned char)s[i]))
			continue;
		if (!isxdigit((unsigned char)s[i])) {
			free(o);
			return -1;
		}
		v = isdigit((unsigned char)s[i]) ? s[i] - '0' :
		    tolower((unsigned char)s[i]) - 'a' + 10;
		if (hi < 0)
			hi = v;
		else {
			o[k++] = (unsigned char)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0) {
		free(o);
		return -1;
	}
	*out = o;
	*outlen = k;
	return 0;
}

/* --session-key FILE: 64 hex digits, optional white space around. */
static void
load_session_key(const char *path)
{
	char		 text[256];
	unsigned char	*k = NULL;
	size_t		 n, klen = 0;
	FILE		*f;

	if ((f = fopen(path, "r")) == NULL)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	if (decode_hex(text, n, &k, &klen) == -1 ||
	    klen != SESSION_KEY_BYTES) {
		if (k != NULL) {
			OPENSSL_cleanse(k, klen);
			free(k);
		}
		OPENSSL_cleanse(text, sizeof(text));
		die(EX_DATAERR, "%s: not 64 hex digits", path);
	}
	memcpy(session_key, k, SESSION_KEY_BYTES);
	have_session_key = 1;
	OPENSSL_cleanse(k, klen);
	free(k);
	OPENSSL_cleanse(text, sizeof(text));
}

/*
 * Parses one script line into d.  Returns 1 for a directive, 0 for a
 * comment or blank line, -1 (*why) for an error.  "handshake" sets
 * *expand_ref to 0 or 1 for the caller to expand.
 */
static int
parse_line(char *line, size_t len, int lineno, struct directive *d,
    int *expand_ref, const char **why)
{
	char		*sp, *kw = line, *arg = NULL, *end;
	size_t		 arglen = 0, flen;
	long		 v;

	*expand_ref = -1;
	memset(d, 0, sizeof(*d));
	d->line = lineno;
	if (len == 0 || line[0] == '#')
		return 0;
	if ((sp = memchr(line, ' ', len)) != NULL) {
		*sp = '\0';
		arg = sp + 1;
		arglen = len - (size_t)(arg - line);
	}
	if (strcmp(kw, "hello") == 0 || strcmp(kw, "algos") == 0) {
		d->op = kw[0] == 'h' ? OP_HELLO : OP_ALGOS;
		if (arg == NULL || arglen == 0) {
			arg = d->op == OP_HELLO ? DEF_HELLO : DOC_ALGOS;
			return decode_escapes(arg, strlen(arg), &d->text,
			    &d->len, why) == 0 ? 1 : -1;
		}
		return decode_escapes(arg, arglen, &d->text, &d->len, why)
		    == 0 ? 1 : -1;
	}
	if (strcmp(kw, "handshake") == 0) {
		if (arg == NULL || arglen == 0)
			*expand_ref = 0;
		else if (strcmp(arg, "ref") == 0)
			*expand_ref = 1;
		else {
			*why = "handshake takes nothing or \"ref\"";
			return -1;
		}
		return 0;
	}
	if (strcmp(kw, "key") == 0) {
		d->op = OP_KEY;
		d->n = SESSION_KEY_BYTES;
		if (arg == NULL || arglen == 0)
			return 1;
		if (strcmp(arg, "garbage") == 0) {
			d->n = -1;
			return 1;
		}
		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno != 0 || *end != '\0' || end == arg || v < 0 ||
		    v > OAEP_MAX_BYTES) {
			*why = "key takes a byte count 0..190 or \"garbage\"";
			return -1;
		}
		d->n = v;
		return 1;
	}
	if (strcmp(kw, "send") == 0 || strcmp(kw, "send-ref") == 0 ||
	    strcmp(kw, "body") == 0 || strcmp(kw, "raw") == 0) {
		d->op = kw[0] == 'b' ? OP_BODY : kw[0] == 'r' ? OP_RAW :
		    kw[4] == '-' ? OP_SEND_REF : OP_SEND;
		return decode_escapes(arg != NULL ? arg : "", arglen, &d->text,
		    &d->len, why) == 0 ? 1 : -1;
	}
	if (strcmp(kw, "rawhex") == 0) {
		d->op = OP_RAWHEX;
		if (decode_hex(arg != NULL ? arg : "", arglen, &d->text,
		    &d->len) == -1) {
			*why = "rawhex needs pairs of hex digits";
			return -1;
		}
		return 1;
	}
	if (strcmp(kw, "attach") == 0 || strcmp(kw, "attach-ref") == 0 ||
	    strcmp(kw, "content") == 0) {
		d->op = kw[0] == 'c' ? OP_CONTENT : kw[6] == '-' ?
		    OP_ATTACH_REF : OP_ATTACH;
		if (arg == NULL || arglen == 0) {
			*why = "a file name is needed";
			return -1;
		}
		sp = memchr(arg, ' ', arglen);
		flen = sp != NULL ? (size_t)(sp - arg) : arglen;
		if (decode_escapes(arg, flen, &d->text, &d->len, why) == -1)
			return -1;
		if (memchr(d->text, '\0', d->len) != NULL) {
			*why = "NUL in a file name";
			return -1;
		}
		if (sp != NULL && d->op != OP_CONTENT) {
			if (decode_escapes(sp + 1, arglen - flen - 1,
			    (unsigned char **)&d->name, &d->namelen, why) == -1)
				return -1;
		}
		if (access((char *)d->text, R_OK) == -1)
			die(EX_NOINPUT, "script line %d: %s: %s", lineno,
			    (char *)d->text, strerror(errno));
		return 1;
	}
	if (strcmp(kw, "eof") == 0 || strcmp(kw, "pause") == 0) {
		d->op = kw[0] == 'e' ? OP_EOF : OP_PAUSE;
		if (d->op == OP_EOF)
			return 1;
		errno = 0;
		v = arg != NULL ? strtol(arg, &end, 10) : -1;
		if (arg == NULL || errno != 0 || *end != '\0' || end == arg ||
		    v < 0 || v > 3600000) {
			*why = "pause takes milliseconds";
			return -1;
		}
		d->n = v;
		return 1;
	}
	*why = "unknown directive";
	return -1;
}

static size_t
script_load(const char *path, struct directive **out)
{
	FILE			*f;
	char			*line = NULL;
	size_t			 cap = 0, nd = 0, dcap = 0, len;
	ssize_t			 got;
	struct directive	 d, *dv = NULL;
	const char		*why = NULL;
	int			 lineno = 0, ref, r, k;

	if ((f = fopen(path, "r")) == NULL)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	while ((got = getline(&line, &cap, f)) != -1) {
		lineno++;
		len = (size_t)got;
		if (len > SCRIPT_LINE_MAX_BYTES)
			die(EX_DATAERR, "%s:%d: line too long", path, lineno);
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (memchr(line, '\0', len) != NULL)
			die(EX_DATAERR, "%s:%d: NUL byte", path, lineno);
		r = parse_line(line, len, lineno, &d, &ref, &why);
		if (r == -1)
			die(EX_DATAERR, "%s:%d: %s", path, lineno, why);
		if (r == 0 && ref == -1)
			continue;
		if (nd + 3 > dcap) {
			dcap = dcap == 0 ? 64 : dcap * 2;
			if ((dv = reallocarray(dv, dcap, sizeof(*dv))) == NULL)
				die(EX_SOFTWARE, "out of memory");
		}
		if (r == 1) {
			dv[nd++] = d;
			continue;
		}
		/* handshake [ref] = hello + algos + key */
		for (k = 0; k < 3; k++) {
			memset(&dv[nd], 0, sizeof(dv[nd]));
			dv[nd].line = lineno;
			dv[nd].op = k == 0 ? OP_HELLO : k == 1 ? OP_ALGOS :
			    OP_KEY;
			dv[nd].n = SESSION_KEY_BYTES;
			if (k < 2) {
				const char *t = k == 0 ? DEF_HELLO :
				    ref ? REF_ALGOS : DOC_ALGOS;
				dv[nd].len = strlen(t);
				if ((dv[nd].text = (unsigned char *)strdup(t))
				    == NULL)
					die(EX_SOFTWARE, "out of memory");
			}
			nd++;
		}
	}
	if (ferror(f))
		die(EX_IOERR, "%s: %s", path, strerror(errno));
	free(line);
	fclose(f);
	*out = dv;
	return nd;
}

static void
script_free(struct directive *d, size_t nd)
{
	size_t	i;

	for (i = 0; i < nd; i++) {
		if (d[i].text != NULL) {
			OPENSSL_cleanse(d[i].text, d[i].len);
			free(d[i].text);
		}
		free(d[i].name);
	}
	free(d);
}

static void
load_ca(void)
{
	FILE	*f;

	if (ca_store != NULL)
		return;
	if (opt.ca == NULL)
		opt.ca = DEFAULT_CA;
	/* fopen first: a clear message for a missing or unreadable file. */
	if ((f = fopen(opt.ca, "r")) == NULL)
		die(EXIT_CERT, "CA file %s: %s", opt.ca, strerror(errno));
	fclose(f);
	if ((ca_store = X509_STORE_new()) == NULL)
		die(EX_SOFTWARE, "out of memory");
	if (X509_STORE_load_file(ca_store, opt.ca) != 1)
		die(EXIT_CERT, "CA file %s: no PEM certificate in it", opt.ca);
}

static int
is_ip_literal(const char *host)
{
	unsigned char	a[16];

	return inet_pton(AF_INET, host, a) == 1 ||
	    inet_pton(AF_INET6, host, a) == 1;
}

/*
 * PROTOCOL.md 3: the 202 frame is "202 algos valid" + PEM (we accept
 * white space between).  Verifies chain and dates against --ca and, when
 * host is given, the host name or address.  Returns the RSA-2048 public
 * key; exits on failure.
 */
static EVP_PKEY *
cert_verify(const unsigned char *frame, size_t len, const char *host)
{
	const unsigned char	*pem;
	BIO			*bio;
	X509			*cert;
	X509_STORE_CTX		*ctx;
	EVP_PKEY		*pub;
	int			 err;

	load_ca();
	pem = find_bytes(frame, len, "-----BEGIN CERTIFICATE-----");
	if (pem == NULL || (size_t)(frame + len - pem) > INT_MAX)
		die(EX_PROTOCOL, "the 202 reply holds no certificate");
	if ((bio = BIO_new_mem_buf(pem, (int)(frame + len - pem))) == NULL)
		die(EX_SOFTWARE, "out of memory");
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (cert == NULL)
		die(EX_PROTOCOL, "the server's certificate cannot be parsed");
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, ca_store, cert, NULL) != 1)
		die(EX_SOFTWARE, "cannot set up certificate verification");
	if (X509_verify_cert(ctx) != 1) {
		err = X509_STORE_CTX_get_error(ctx);
		die(EXIT_CERT,
		    "server certificate not trusted: %s (CA file %s)",
		    X509_verify_cert_error_string(err), opt.ca);
	}
	X509_STORE_CTX_free(ctx);
	if (host != NULL) {
		if (is_ip_literal(host) ?
		    X509_check_ip_asc(cert, host, 0) != 1 :
		    X509_check_host(cert, host, strlen(host), 0, NULL) != 1)
			die(EXIT_CERT, "server certificate is not valid for %s",
			    host);
	}
	if ((pub = X509_get_pubkey(cert)) == NULL)
		die(EX_PROTOCOL, "no public key in the server's certificate");
	X509_free(cert);
	if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(pub) != 2048)
		die(EX_PROTOCOL, "the server's key is not RSA-2048");
	return pub;
}

/* --encode: the public key of --cert, unverified (tests only). */
static EVP_PKEY *
load_cert_key(const char *path)
{
	FILE		*f;
	X509		*cert;
	EVP_PKEY	*pub;

	if ((f = fopen(path, "r")) == NULL)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (cert == NULL)
		die(EX_DATAERR, "%s: no PEM certificate", path);
	pub = X509_get_pubkey(cert);
	X509_free(cert);
	if (pub == NULL || EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA)
		die(EX_DATAERR, "%s: not an RSA certificate", path);
	return pub;
}

/* Connects to host:port, trying each address with a timeout. */
static int
tcp_connect(const char *host, const char *port)
{
	struct addrinfo	 hints, *res, *ai;
	struct pollfd	 pfd;
	socklen_t	 sl;
	char		 h[NI_MAXHOST];
	int		 fd = -1, r, err = 0, fl;

	if (snprintf(h, sizeof(h), "%s", host) >= (int)sizeof(h))
		die(EX_USAGE, "host name too long");
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(h, port, &hints, &res)) != 0)
		die(EX_UNAVAILABLE, "%s port %s: %s", h, port,
		    gai_strerror(r));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd == -1) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			do
				r = poll(&pfd, 1, CONNECT_TIMEOUT_SEC * 1000);
			while (r == -1 && errno == EINTR);
			sl = sizeof(err);
			if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR,
			    &err, &sl) == 0 && err == 0)
				break;
			if (r == 0)
				err = ETIMEDOUT;
		} else
			err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		die(EX_UNAVAILABLE, "cannot connect to %s port %s: %s", h,
		    port, strerror(err));
	fl = fcntl(fd, F_GETFL);
	if (fl == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1)
		die(EX_OSERR, "fcntl: %s", strerror(errno));
	return fd;
}

/* --exec: /bin/sh -c cmd with stdin and stdout one end of a socket pair. */
static int
spawn(const char *cmd)
{
	int	sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		die(EX_OSERR, "socketpair: %s", strerror(errno));
	fflush(stdout);
	switch (child = fork()) {
	case -1:
		die(EX_OSERR, "fork: %s", strerror(errno));
	case 0:
		signal(SIGPIPE, SIG_DFL);
		if (dup2(sv[1], 0) == -1 || dup2(sv[1], 1) == -1)
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	default:
		break;
	}
	close(sv[1]);
	return sv[0];
}

/* Waits for the --exec child; 0 and *status, or -1 when there is none. */
static int
reap_child(int *status)
{
	pid_t	r;

	if (child == -1)
		return -1;
	do
		r = waitpid(child, status, 0);
	while (r == -1 && errno == EINTR);
	child = -1;
	return r == -1 ? -1 : 0;
}

static void
rp_feed(struct rparser *rp, const unsigned char *p, size_t n)
{
	if (rp->broken) {
		rp->junk += n;
		return;
	}
	buf_add(&rp->in, p, n);
}

/*
 * The next reply frame: plaintext frames up to the 203 end at the first
 * CRLFCRLF, one '.' before it stripped (202, 502); AES frames end at a
 * CRLFCRLF a positive multiple of 16 bytes in (PROTOCOL.md 2).  Returns
 * 1 (frame in *f, decrypted), 0 (more input needed) or -1 (overlong).
 */
static int
rp_next(struct rparser *rp, const unsigned char **f, size_t *flen)
{
	const unsigned char	*p = rp->in.p + rp->in.off, *hit;
	size_t			 n = rp->in.len, k, len;
	int			 m;

	if (rp->broken || n == 0)
		return 0;
	if (!rp->cipher) {
		hit = find_bytes(p, n, "\r\n\r\n");
		if (hit == NULL) {
			if (n > PLAIN_MAX_BYTES)
				goto toolong;
			return 0;
		}
		k = (size_t)(hit - p);
		*f = p;
		*flen = k > 0 && p[k - 1] == '.' ? k - 1 : k;
		rp->in.off += k + 4;
		rp->in.len -= k + 4;
		rp->lastplain = 1;
		if (*flen >= 3 && memcmp(p, "203", 3) == 0)
			rp->cipher = 1;
		return 1;
	}
	for (k = AES_BLOCK_BYTES; k + 4 <= n; k += AES_BLOCK_BYTES) {
		if (k > FRAME_MAX_BYTES)
			goto toolong;
		if (memcmp(p + k, "\r\n\r\n", 4) == 0)
			break;
	}
	if (k + 4 > n) {
		if (n > FRAME_MAX_BYTES + 4)
			goto toolong;
		return 0;
	}
	rp->lastplain = 0;
	if (!rp->haskey) {
		m = snprintf((char *)rp->plain, sizeof(rp->plain),
		    "[%zu encrypted bytes, no key]", k);
		*flen = m > 0 && (size_t)m < sizeof(rp->plain) ? (size_t)m : 0;
	} else {
		if (aes_ecb(rp->key, 0, p, k, rp->plain) == -1)
			die(EX_SOFTWARE, "AES decryption failed");
		/* PROTOCOL.md 2: strip the pad spaces. */
		for (len = k; len > 0 && rp->plain[len - 1] == ' '; len--)
			;
		*flen = len;
	}
	*f = rp->plain;
	rp->in.off += k + 4;
	rp->in.len -= k + 4;
	return 1;
toolong:
	rp->broken = 1;
	rp->junk += rp->in.len;
	rp->in.len = 0;
	return -1;
}

/* Prints a reply; a 202 as its text only, not the certificate. */
static void
rp_print(const unsigned char *f, size_t n)
{
	const unsigned char	*pem;

	if (n >= 3 && memcmp(f, "202", 3) == 0 &&
	    (pem = find_bytes(f, n, "-----BEGIN")) != NULL) {
		n = (size_t)(pem - f);
		while (n > 0 && isspace(f[n - 1]))
			n--;
	}
	print_escaped(stdout, f, n);
	fputc('\n', stdout);
	fflush(stdout);
}

static void
rp_finish(struct rparser *rp)
{
	size_t	left = rp->in.len + rp->junk;

	if (left > 0)
		printf("[%zu trailing bytes]\n", left);
	fflush(stdout);
}

/* PROTOCOL.md 2: ours always 1..16 spaces; the reference's 0..15. */
static size_t
pad_len(size_t n, int ref)
{
	if (ref)
		return (AES_BLOCK_BYTES - n % AES_BLOCK_BYTES) %
		    AES_BLOCK_BYTES;
	return AES_BLOCK_BYTES - n % AES_BLOCK_BYTES;
}

/* A text frame: encrypted and padded once keyed, else as it is. */
static void
emit_text(struct run *r, enum ftype type, const void *text, size_t len,
    int ref)
{
	unsigned char	*p;
	size_t		 padded;

	if (r->keyed) {
		padded = len + pad_len(len, ref);
		if ((p = malloc(padded > 0 ? padded : 1)) == NULL)
			die(EX_SOFTWARE, "out of memory");
		memcpy(p, text, len);
		memset(p + len, ' ', padded - len);
		if (aes_ecb(session_key, 1, p, padded, p) == -1)
			die(EX_SOFTWARE, "AES encryption failed");
		buf_add(&r->out, p, padded);
		free(p);
	} else
		buf_add(&r->out, text, len);
	if (type == FT_CIPHER_DOT || type == FT_PLAIN_DOT)
		buf_add(&r->out, ".", 1);
	buf_add(&r->out, "\r\n\r\n", 4);
}

static int
content_open(struct content *c, const char *path, int encrypt, int ref)
{
	struct stat	st;
	int		saved;

	memset(c, 0, sizeof(*c));
	c->path = path;
	if ((c->fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(c->fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		saved = errno;
		if (saved == 0 || fstat(c->fd, &st) == 0)
			saved = EINVAL;	/* not a regular file */
		close(c->fd);
		errno = saved;
		c->fd = -1;
		return -1;
	}
	c->size = (uint64_t)st.st_size;
	c->padded = c->size + pad_len((size_t)(c->size % AES_BLOCK_BYTES),
	    ref);
	c->encrypt = encrypt;
	if (encrypt && aes_stream_init(&c->s, session_key, 1) == -1)
		die(EX_SOFTWARE, "cannot set up AES");
	return 0;
}

/*
 * Appends the next piece of content to out: at most STREAM_CHUNK_BYTES
 * of the file, encrypted; after the file its pad spaces and CRLFCRLF.
 * Returns 1 while more is to come, 0 when done.
 */
static int
content_step(struct content *c, struct buf *out, struct progress *pg)
{
	unsigned char	in[STREAM_CHUNK_BYTES + AES_BLOCK_BYTES];
	size_t		 want, got = 0, outl;
	ssize_t		 n;

	if (c->done < c->size) {
		want = c->size - c->done < STREAM_CHUNK_BYTES ?
		    (size_t)(c->size - c->done) : STREAM_CHUNK_BYTES;
		while (got < want) {
			n = read(c->fd, in + got, want - got);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1)
				die(EX_IOERR, "%s: %s", c->path,
				    strerror(errno));
			if (n == 0)
				die(EX_IOERR, "%s: file shrank while sent",
				    c->path);
			got += (size_t)n;
		}
		c->done += got;
	}
	if (c->done == c->size) {
		/* The pad spaces (PROTOCOL.md 6) close the last block. */
		memset(in + got, ' ', (size_t)(c->padded - c->size));
		got += (size_t)(c->padded - c->size);
	}
	buf_need(out, got + AES_BLOCK_BYTES + 4);
	if (c->encrypt) {
		if (aes_stream_update(&c->s, in, got,
		    out->p + out->off + out->len, &outl) == -1)
			die(EX_SOFTWARE, "AES encryption failed");
		out->len += outl;
	} else
		buf_add(out, in, got);
	OPENSSL_cleanse(in, got);
	if (pg != NULL) {
		pg->done = c->done;
		progress_update(pg, 0);
	}
	if (c->done < c->size)
		return 1;
	buf_add(out, "\r\n\r\n", 4);
	return 0;
}

static void
content_close(struct content *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	if (c->encrypt)
		aes_stream_free(&c->s);
}

/* The session key directive (PROTOCOL.md 3).  0, or -1 when not sent. */
static int
emit_key(struct run *r, long n)
{
	unsigned char	 k[RSA_CIPHER_BYTES], ct[RSA_CIPHER_BYTES];
	size_t		 ctlen = 0;

	if (n < 0) {
		if (crypto_random(ct, sizeof(ct)) == -1)
			die(EX_SOFTWARE, "no random bytes");
		buf_add(&r->out, ct, sizeof(ct));
		buf_add(&r->out, "\r\n\r\n", 4);
		return 0;
	}
	if (r->pub == NULL) {
		if (!r->live)
			die(EX_USAGE, "key: --encode needs --cert");
		/* No 202 came (502, or the server closed): send no more,
		 * read what the server still says. */
		fprintf(stderr, "%s: script line %d: no server certificate; "
		    "the rest of the script is not sent\n", progname,
		    r->d[r->next].line);
		r->next = r->nd - 1;	/* produce() moves past the last */
		return -1;
	}
	if (n == SESSION_KEY_BYTES && have_session_key)
		memcpy(k, session_key, SESSION_KEY_BYTES);
	else if (crypto_random(k, (size_t)n) == -1)
		die(EX_SOFTWARE, "no random bytes");
	if (crypto_rsa_encrypt(r->pub, k, (size_t)n, ct, sizeof(ct),
	    &ctlen) == -1 || ctlen != RSA_CIPHER_BYTES)
		die(EX_SOFTWARE, "RSA-OAEP encryption failed");
	buf_add(&r->out, ct, ctlen);
	buf_add(&r->out, "\r\n\r\n", 4);
	if (n == SESSION_KEY_BYTES) {
		memcpy(session_key, k, SESSION_KEY_BYTES);
		have_session_key = 1;
		memcpy(r->rp.key, k, SESSION_KEY_BYTES);
		r->rp.haskey = 1;
		r->keyed = 1;
	} else
		r->keyed = 0;
	OPENSSL_cleanse(k, sizeof(k));
	return 0;
}

/* Produces the bytes of the next directive (or the next content piece). */
static void
produce(struct run *r)
{
	struct directive	*d;
	char			 hdr[PATH_MAX + 128];
	const char		*name, *base;
	size_t			 namelen;
	int			 m, ref;

	if (r->streaming) {
		if (content_step(&r->c, &r->out, NULL) == 0) {
			content_close(&r->c);
			r->streaming = 0;
			r->next++;
		}
		return;
	}
	d = &r->d[r->next];
	switch (d->op) {
	case OP_HELLO:
	case OP_ALGOS:
		/* Keyed or not, the handshake lines are plaintext. */
		buf_add(&r->out, d->text, d->len);
		buf_add(&r->out, "\r\n\r\n", 4);
		r->waiting = r->live;
		break;
	case OP_KEY:
		if (emit_key(r, d->n) == 0)
			r->waiting = r->live;
		break;
	case OP_SEND:
	case OP_SEND_REF:
		emit_text(r, FT_CIPHER, d->text, d->len, d->op == OP_SEND_REF);
		break;
	case OP_BODY:
		emit_text(r, FT_CIPHER_DOT, d->text, d->len, 0);
		break;
	case OP_ATTACH:
	case OP_ATTACH_REF:
	case OP_CONTENT:
		ref = d->op == OP_ATTACH_REF;
		if (content_open(&r->c, (char *)d->text, r->keyed, ref) == -1)
			die(EX_NOINPUT, "script line %d: %s: %s", d->line,
			    (char *)d->text, strerror(errno));
		if (d->op != OP_CONTENT) {
			if (d->name != NULL) {
				name = d->name;
				namelen = d->namelen;
			} else {
				base = strrchr((char *)d->text, '/');
				name = base != NULL ? base + 1 :
				    (char *)d->text;
				namelen = strlen(name);
			}
			if (namelen > PATH_MAX)
				die(EX_DATAERR, "script line %d: name too long",
				    d->line);
			m = snprintf(hdr, sizeof(hdr),
			    "Content-Length: %llu\r\nFilename: %.*s%s",
			    (unsigned long long)r->c.padded + 4,
			    (int)namelen, name, ref ? "" : "\r\nSize: ");
			if (m < 0 || (size_t)m >= sizeof(hdr) - 24)
				die(EX_SOFTWARE, "header too long");
			if (!ref)
				m += snprintf(hdr + m, sizeof(hdr) - (size_t)m,
				    "%llu", (unsigned long long)r->c.size);
			emit_text(r, FT_CIPHER, hdr, (size_t)m, ref);
		}
		r->streaming = 1;
		return;		/* r->next moves on when the content is out */
	case OP_RAW:
	case OP_RAWHEX:
		buf_add(&r->out, d->text, d->len);
		break;
	case OP_EOF:
		r->want_eof = 1;
		break;
	case OP_PAUSE:
		r->pause_ms = d->n;
		break;
	}
	r->next++;
}

/* A reply arrived in a live script: print it, verify a 202's cert. */
static void
run_handle_frame(struct run *r, const unsigned char *f, size_t n)
{
	rp_print(f, n);
	if (r->rp.lastplain && n >= 3 && memcmp(f, "202", 3) == 0 &&
	    r->pub == NULL)
		r->pub = cert_verify(f, n, opt.host_given ? opt.host : NULL);
	r->waiting = 0;
}

/*
 * Live script: sends the directives pipelined while reading and printing
 * replies; waits for a reply only after hello, algos and key; then reads
 * until the server closes.
 */
static int
run_live(struct run *r)
{
	unsigned char		 in[65536];
	const unsigned char	*f;
	struct pollfd		 pfd;
	size_t			 flen;
	ssize_t			 n;
	long			 t, last = now_ms(), wait_ms;
	int			 pr, fl;

	fl = fcntl(r->fd, F_GETFL);
	if (fl == -1 || fcntl(r->fd, F_SETFL, fl | O_NONBLOCK) == -1)
		die(EX_OSERR, "fcntl: %s", strerror(errno));
	for (;;) {
		t = now_ms();
		if (r->pause_until != 0 && t >= r->pause_until)
			r->pause_until = 0;
		while (!r->wclosed && !r->waiting && r->pause_ms < 0 &&
		    r->pause_until == 0 && !r->want_eof &&
		    r->next < r->nd && r->out.len < OUT_LOW_WATER_BYTES)
			produce(r);
		if (r->out.len == 0 && r->pause_ms >= 0) {
			/* "pause": flushed; now the clock runs. */
			r->pause_until = t + r->pause_ms;
			r->pause_ms = -1;
			if (r->pause_until == t)
				continue;
		}
		if (r->out.len == 0 && r->want_eof && !r->wclosed) {
			shutdown(r->fd, SHUT_WR);
			r->wclosed = 1;
		}
		if (r->wclosed)
			r->out.len = 0;
		if (r->rclosed)
			break;
		if (r->pause_until != 0 && (r->out.len > 0 || r->next < r->nd))
			wait_ms = r->pause_until - t;
		else
			wait_ms = -1;
		if (opt.timeout > 0) {
			long idle = last + opt.timeout * 1000L - t;

			if (idle <= 0) {
				printf("[timeout]\n");
				fflush(stdout);
				return EX_TEMPFAIL;
			}
			if (wait_ms < 0 || idle < wait_ms)
				wait_ms = idle;
		}
		pfd.fd = r->fd;
		pfd.events = POLLIN;
		if (r->out.len > 0 && !r->wclosed)
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		pr = poll(&pfd, 1, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms);
		if (pr == -1 && errno == EINTR)
			continue;
		if (pr == -1)
			die(EX_OSERR, "poll: %s", strerror(errno));
		if (pr == 0)
			continue;
		if (pfd.revents & POLLOUT) {
			n = write(r->fd, r->out.p + r->out.off, r->out.len);
			if (n > 0) {
				r->out.off += (size_t)n;
				r->out.len -= (size_t)n;
				if (r->out.len == 0)
					r->out.off = 0;
				last = now_ms();
			} else if (n == -1 && errno != EINTR &&
			    errno != EAGAIN) {
				/* The server closed early: keep reading. */
				r->wclosed = 1;
				r->out.len = 0;
			}
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(r->fd, in, sizeof(in));
			if (n > 0) {
				last = now_ms();
				rp_feed(&r->rp, in, (size_t)n);
				while (rp_next(&r->rp, &f, &flen) == 1)
					run_handle_frame(r, f, flen);
			} else if (n == 0 || (errno != EINTR &&
			    errno != EAGAIN)) {
				r->rclosed = 1;
				r->waiting = 0;
			}
		}
	}
	rp_finish(&r->rp);
	return 0;
}

/* --encode: every client byte of the script into a file. */
static int
run_encode(struct run *r)
{
	FILE	*f;

	if ((f = fopen(opt.encode, "wb")) == NULL)
		die(EX_CANTCREAT, "%s: %s", opt.encode, strerror(errno));
	while (r->next < r->nd) {
		produce(r);
		if (r->out.len > 0 && fwrite(r->out.p + r->out.off, 1,
		    r->out.len, f) != r->out.len)
			die(EX_IOERR, "%s: %s", opt.encode, strerror(errno));
		r->out.off = r->out.len = 0;
	}
	if (fclose(f) == EOF)
		die(EX_IOERR, "%s: %s", opt.encode, strerror(errno));
	return 0;
}

static int
do_decode(void)
{
	struct rparser		*rp;
	unsigned char		 in[65536];
	const unsigned char	*f;
	size_t			 n, flen;
	FILE			*fp;

	if ((rp = calloc(1, sizeof(*rp))) == NULL)
		die(EX_SOFTWARE, "out of memory");
	if (have_session_key) {
		memcpy(rp->key, session_key, SESSION_KEY_BYTES);
		rp->haskey = 1;
	}
	if ((fp = fopen(opt.decode, "rb")) == NULL)
		die(EX_NOINPUT, "%s: %s", opt.decode, strerror(errno));
	while ((n = fread(in, 1, sizeof(in), fp)) > 0) {
		rp_feed(rp, in, n);
		while (rp_next(rp, &f, &flen) == 1)
			rp_print(f, flen);
	}
	if (ferror(fp))
		die(EX_IOERR, "%s: %s", opt.decode, strerror(errno));
	fclose(fp);
	rp_finish(rp);
	OPENSSL_cleanse(rp->key, sizeof(rp->key));
	OPENSSL_cleanse(rp->plain, sizeof(rp->plain));
	buf_free(&rp->in);
	free(rp);
	return 0;
}

static int
do_script(void)
{
	struct run	*r;
	int		 rv, status;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		die(EX_SOFTWARE, "out of memory");
	r->nd = script_load(opt.script, &r->d);
	r->pause_ms = -1;
	r->c.fd = -1;
	cur_run = r;
	if (have_session_key) {
		/* Replies may be read before the key directive is sent. */
		memcpy(r->rp.key, session_key, SESSION_KEY_BYTES);
		r->rp.haskey = 1;
	}
	if (opt.encode != NULL) {
		if (opt.cert != NULL)
			r->pub = load_cert_key(opt.cert);
		rv = run_encode(r);
	} else {
		r->live = 1;
		if (opt.exec != NULL)
			r->fd = spawn(opt.exec);
		else {
			if (opt.host == NULL)
				die(EX_USAGE, "--script needs --exec or -H");
			r->fd = tcp_connect(opt.host, opt.port);
		}
		rv = run_live(r);
		close(r->fd);
		if (reap_child(&status) == 0) {
			if (WIFEXITED(status))
				printf("[handler exit %d]\n",
				    WEXITSTATUS(status));
			else if (WIFSIGNALED(status))
				printf("[handler signal %d]\n",
				    WTERMSIG(status));
			fflush(stdout);
		}
	}
	if (r->streaming)
		content_close(&r->c);
	EVP_PKEY_free(r->pub);
	script_free(r->d, r->nd);
	cleanup();
	free(r);
	return rv;
}

/* ---- batch and interactive mode: lock-step over frameio ---- */

static int
connect_server(void)
{
	if (opt.exec != NULL)
		return spawn(opt.exec);
	return tcp_connect(opt.host, opt.port);
}

static void
send_frame(enum ftype type, const void *p, size_t len)
{
	if (frame_write(&io, type, p, len) == -1 || frame_flush(&io) == -1)
		die(EX_UNAVAILABLE, "sending to the server: %s", io.why);
}

/* Reads a plaintext handshake reply of the given kind; exits on errors. */
static size_t
read_plain(enum ftype type, unsigned char **data, const char *ctx)
{
	size_t	len;
	int	r;

	r = frame_read(&io, type, PLAIN_MAX_BYTES, data, &len);
	switch (r) {
	case FR_OK:
		return len;
	case FR_EOF:
	case FR_TRUNC:
		die(EX_UNAVAILABLE, "%s: the server closed the connection",
		    ctx);
	case FR_TIMEOUT:
		die(EX_TEMPFAIL, "%s: no reply from the server in time", ctx);
	case FR_ERROR:
		die(EX_UNAVAILABLE, "%s: %s", ctx, io.why);
	default:
		die(EX_PROTOCOL, "%s: malformed reply", ctx);
	}
}

static void
handshake(void)
{
	unsigned char	*data, ct[RSA_CIPHER_BYTES];
	size_t		 len, ctlen = 0;
	EVP_PKEY	*pub;
	const char	*text;

	/* PROTOCOL.md 3, the document's spelling. */
	send_frame(FT_PLAIN, DEF_HELLO, strlen(DEF_HELLO));
	len = read_plain(FT_PLAIN, &data, "hello");
	if (len < 3 || memcmp(data, "201", 3) != 0)
		die(EX_UNAVAILABLE, "handshake refused: %.*s",
		    (int)(len > 200 ? 200 : len), (char *)data);
	send_frame(FT_PLAIN, DOC_ALGOS, strlen(DOC_ALGOS));
	len = read_plain(FT_PLAIN_DOT, &data, "algorithms");
	if (len < 3 || memcmp(data, "202", 3) != 0)
		die(EX_UNAVAILABLE, "algorithms refused: %.*s",
		    (int)(len > 200 ? 200 : len), (char *)data);
	pub = cert_verify(data, len, opt.exec == NULL ? opt.host : NULL);
	if (crypto_random(session_key, SESSION_KEY_BYTES) == -1)
		die(EX_SOFTWARE, "no random bytes");
	if (crypto_rsa_encrypt(pub, session_key, SESSION_KEY_BYTES, ct,
	    sizeof(ct), &ctlen) == -1 || ctlen != RSA_CIPHER_BYTES)
		die(EX_SOFTWARE, "RSA-OAEP encryption failed");
	EVP_PKEY_free(pub);
	send_frame(FT_KEY, ct, ctlen);
	len = read_plain(FT_PLAIN, &data, "session key");
	if (len < 3 || memcmp(data, "203", 3) != 0)
		die(EX_UNAVAILABLE, "session key refused: %.*s",
		    (int)(len > 200 ? 200 : len), (char *)data);
	/* session_key stays (attachment content); cleanup() wipes it. */
	if (frame_setkey(&io, session_key) == -1)
		die(EX_SOFTWARE, "%s", io.why);
	/* PROTOCOL.md 4: the greeting, then our version. */
	if (read_reply(&text, &len, "greeting") != 100 ||
	    len != strlen(GREETING) || memcmp(text, GREETING, len) != 0)
		die(EX_PROTOCOL, "unexpected greeting: %.*s",
		    (int)(len > 200 ? 200 : len), text);
	/*
	 * No reply comes to the version: queue it, so that it leaves in one
	 * segment with the first command.  Written on its own, the command
	 * would wait for the server's delayed ACK of it (Nagle): 40 ms.
	 */
	if (frame_write(&io, FT_CIPHER, "1.0 Hello", 9) == -1)
		die(EX_SOFTWARE, "%s", io.why);
}

/*
 * Reads one encrypted reply "CODE text".  Returns the code; *text is the
 * whole reply (valid until the next frame call).  Exits on I/O errors.
 */
static int
read_reply(const char **text, size_t *len, const char *ctx)
{
	unsigned char	*data;
	int		 r;

	r = frame_read(&io, FT_CIPHER, FRAME_MAX_BYTES, &data, len);
	switch (r) {
	case FR_OK:
		break;
	case FR_EOF:
	case FR_TRUNC:
		die(EX_UNAVAILABLE, "%s: the server closed the connection",
		    ctx);
	case FR_TIMEOUT:
		die(EX_TEMPFAIL, "%s: no reply from the server in time", ctx);
	case FR_ERROR:
		die(EX_UNAVAILABLE, "%s: %s", ctx, io.why);
	default:
		die(EX_PROTOCOL, "%s: malformed reply frame", ctx);
	}
	if (*len < 3 || !isdigit(data[0]) || !isdigit(data[1]) ||
	    !isdigit(data[2]) || (*len > 3 && data[3] != ' ') ||
	    memchr(data, '\0', *len) != NULL)
		die(EX_PROTOCOL, "%s: malformed reply", ctx);
	*text = (const char *)data;
	if (opt.verbose)
		fprintf(stderr, "%s: server: %.*s\n", progname, (int)*len,
		    *text);
	return (data[0] - '0') * 100 + (data[1] - '0') * 10 + data[2] - '0';
}

static void
show_reply(int code, const char *text, size_t len)
{
	(void)code;
	printf("server: ");
	print_escaped(stdout, (const unsigned char *)text, len);
	putchar('\n');
	fflush(stdout);
}

/* An unwanted reply: one line on stderr and the status for its code. */
static void
fail_reply(int code, const char *text, size_t len, const char *ctx)
{
	int	status;

	switch (code) {
	case 401:
		ctx = "authentication failed";
		status = EX_NOPERM;
		break;
	case 510:
		ctx = "too many failed logins";
		status = EX_NOPERM;
		break;
	case 520:
		ctx = "not authorised to send";
		status = EX_NOPERM;
		break;
	case 402:
		ctx = "recipient unknown";
		status = EX_NOUSER;
		break;
	case 301:
	case 521:
	case 552:
		status = EX_DATAERR;
		break;
	case 451:
		ctx = "not delivered, try again later";
		status = EX_TEMPFAIL;
		break;
	default:
		status = code >= 500 ? EX_UNAVAILABLE : EX_PROTOCOL;
		break;
	}
	if (status == EX_PROTOCOL)
		ctx = ctx != NULL ? ctx : "unexpected reply";
	send_bye();
	die(status, "%s: server said: %.*s", ctx,
	    (int)(len > 200 ? 200 : len), text);
}

/* Sends BYE when the session may still be open; ignores failures. */
static void
send_bye(void)
{
	if (!io_live || io.enc == NULL)
		return;
	if (frame_write(&io, FT_CIPHER, "BYE", 3) == 0)
		(void)frame_flush(&io);
}

/*
 * The password: --password-file (first line), USMTP_PASSWORD, or the
 * terminal without echo.  Kept in the static password[] and wiped at exit.
 */
static void
get_password(const char *addr)
{
	char	*env, *nl, prompt[ADDR_MAX + 32];
	size_t	 n;
	ssize_t	 r;
	int	 fd, m;

	if (opt.password_file != NULL) {
		/* read(2), not stdio: no unwiped copy in a FILE buffer. */
		if ((fd = open(opt.password_file, O_RDONLY | O_CLOEXEC)) == -1)
			die(EX_NOINPUT, "%s: %s", opt.password_file,
			    strerror(errno));
		n = 0;
		while (n < sizeof(password) - 1) {
			r = read(fd, password + n, sizeof(password) - 1 - n);
			if (r == -1 && errno == EINTR)
				continue;
			if (r == -1)
				die(EX_NOINPUT, "%s: %s", opt.password_file,
				    strerror(errno));
			if (r == 0)
				break;
			n += (size_t)r;
		}
		close(fd);
		if ((nl = memchr(password, '\n', n)) == NULL &&
		    n == sizeof(password) - 1)
			die(EX_DATAERR, "%s: password too long",
			    opt.password_file);
		if (nl != NULL)
			n = (size_t)(nl - password);
		if (n > 0 && password[n - 1] == '\r')
			n--;
		OPENSSL_cleanse(password + n, sizeof(password) - n);
		return;
	}
	if ((env = getenv("USMTP_PASSWORD")) != NULL) {
		if (snprintf(password, sizeof(password), "%s", env) >=
		    (int)sizeof(password))
			die(EX_DATAERR, "USMTP_PASSWORD too long");
		OPENSSL_cleanse(env, strlen(env));
		unsetenv("USMTP_PASSWORD");
		return;
	}
	m = snprintf(prompt, sizeof(prompt), "Password for %s: ", addr);
	if (m < 0 || (size_t)m >= sizeof(prompt))
		die(EX_SOFTWARE, "prompt too long");
	if (read_tty_line(prompt, password, sizeof(password), 0) == -1)
		die(EX_USAGE, "no password: no terminal, and neither "
		    "--password-file nor USMTP_PASSWORD");
}

/*
 * Reads a line from /dev/tty, echo off when !echo.  -1 when there is no
 * terminal or input ended.
 */
static int
read_tty_line(const char *prompt, char *buf, size_t sz, int echo)
{
	struct termios		 t;
	struct sigaction	 sa, old[3];
	static const int	 sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	size_t			 n = 0;
	ssize_t			 r;
	char			 c;
	int			 fd, i, rv = 0;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) == -1)
		return -1;
	if (!echo) {
		if (tcgetattr(fd, &tty_saved) == -1) {
			close(fd);
			return -1;
		}
		t = tty_saved;
		t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		t.c_lflag |= ICANON;
		tty_fd = fd;	/* cleanup() restores it on any exit */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		for (i = 0; i < 3; i++)
			sigaction(sigs[i], &sa, &old[i]);
		if (tcsetattr(fd, TCSAFLUSH, &t) == -1) {
			rv = -1;
			goto out;
		}
	}
	(void)!write(fd, prompt, strlen(prompt));
	for (;;) {
		r = read(fd, &c, 1);
		if (r == -1 && errno == EINTR && !got_signal)
			continue;
		if (r <= 0) {
			rv = -1;
			break;
		}
		if (c == '\n')
			break;
		if (n + 1 < sz)
			buf[n++] = c;
	}
	buf[n] = '\0';
	c = 0;
	if (!echo)
		(void)!write(fd, "\n", 1);
out:
	if (!echo) {
		tcsetattr(fd, TCSAFLUSH, &tty_saved);
		tty_fd = -1;
		for (i = 0; i < 3; i++)
			sigaction(sigs[i], &old[i], NULL);
		if (got_signal) {
			close(fd);
			OPENSSL_cleanse(buf, sz);
			signal(got_signal, SIG_DFL);
			cleanup();
			raise(got_signal);
			_exit(128 + got_signal);
		}
	}
	close(fd);
	return rv;
}

/* Reads the whole body (bounded) from fd. */
static void
read_body(int fd, unsigned char **body, size_t *len)
{
	struct buf	b;
	ssize_t		n;

	memset(&b, 0, sizeof(b));
	for (;;) {
		buf_need(&b, 65536);
		n = read(fd, b.p + b.len, 65536);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			die(EX_IOERR, "reading the body: %s", strerror(errno));
		if (n == 0)
			break;
		b.len += (size_t)n;
		if (b.len > BODY_MAX_BYTES)
			die(EX_DATAERR, "the body is over %d bytes",
			    BODY_MAX_BYTES);
	}
	*body = b.p;
	*len = b.len;
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
	long	t = now_ms(), el;
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

/*
 * One attachment (PROTOCOL.md 6): header with Size:, the 200, then the
 * content; after it a 200 (document dialect) or directly the next
 * prompt (reference dialect).  Returns with the reply after the content
 * unread.
 */
static void
send_attachment(int fd, const char *path)
{
	struct content	 c;
	struct progress	 pg;
	struct buf	 out;
	char		 hdr[PATH_MAX + 128];
	const char	*base, *text;
	size_t		 len;
	struct stat	 st;
	int		 m, code, more;

	memset(&c, 0, sizeof(c));
	c.path = path;
	c.fd = fd;
	if (fstat(fd, &st) == -1)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	c.size = (uint64_t)st.st_size;
	c.padded = c.size + pad_len((size_t)(c.size % AES_BLOCK_BYTES), 0);
	c.encrypt = 1;
	if (aes_stream_init(&c.s, session_key, 1) == -1)
		die(EX_SOFTWARE, "cannot set up AES");
	base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	m = snprintf(hdr, sizeof(hdr),
	    "Content-Length: %llu\r\nFilename: %s\r\nSize: %llu",
	    (unsigned long long)c.padded + 4, base,
	    (unsigned long long)c.size);
	if (m < 0 || (size_t)m >= sizeof(hdr))
		die(EX_DATAERR, "%s: file name too long", path);
	send_frame(FT_CIPHER, hdr, (size_t)m);
	code = read_reply(&text, &len, "attachment header");
	if (code != 200)
		fail_reply(code, text, len, path);
	memset(&pg, 0, sizeof(pg));
	pg.on = isatty(2);
	pg.name = base;
	pg.total = c.size;
	pg.start_ms = now_ms();
	memset(&out, 0, sizeof(out));
	do {
		more = content_step(&c, &out, &pg);
		if (frame_write_raw(&io, out.p + out.off, out.len) == -1 ||
		    frame_flush(&io) == -1) {
			if (pg.on)
				fputc('\n', stderr);
			/* The server may have said why before it closed. */
			die(EX_UNAVAILABLE, "sending %s: %s", path, io.why);
		}
		out.off = out.len = 0;
	} while (more);
	progress_update(&pg, 1);
	buf_free(&out);
	content_close(&c);
}

/* LOGIN (PROTOCOL.md 5).  Returns 0 when logged in. */
static int
do_login(const char *addr, int interactive)
{
	char		 line[LINE_MAX_BYTES];
	const char	*text;
	size_t		 len;
	int		 code;

	send_frame(FT_CIPHER, "LOGIN", 5);
	code = read_reply(&text, &len, "login");
	for (;;) {
		if (interactive)
			show_reply(code, text, len);
		switch (code) {
		case 130:
			return 0;
		case 111:
		case 301:	/* PROTOCOL.md 5: send the address again */
			if (code == 301 && !interactive)
				fail_reply(code, text, len, "login address");
			if (interactive) {
				if (prompt_line(opt.user != NULL ?
				    "E-mail address (Enter: -u)" :
				    "E-mail address", line, sizeof(line)) == -1)
					return -1;
				if (line[0] != '\0' || opt.user == NULL)
					addr = line;
				else
					addr = opt.user;
			}
			if (snprintf(login_addr, sizeof(login_addr), "%s",
			    addr) >= (int)sizeof(login_addr))
				die(EX_DATAERR, "address too long: %s", addr);
			send_frame(FT_CIPHER, login_addr, strlen(login_addr));
			break;
		case 112:
			/* PROTOCOL.md 3: the certificate is verified by now. */
			if (interactive || password[0] == '\0')
				get_password(login_addr);
			send_frame(FT_CIPHER, password, strlen(password));
			OPENSSL_cleanse(password, sizeof(password));
			break;
		case 210:
			return 0;
		case 401:
			if (!interactive)
				fail_reply(code, text, len, "login");
			break;	/* the 111 follows */
		default:
			fail_reply(code, text, len, "login");
		}
		code = read_reply(&text, &len, "login");
	}
}

/*
 * SEND MAIL (PROTOCOL.md 6).  Returns 0 when sent (220), 1 after a 451
 * (interactive mode goes on), -1 when interactive input ended.
 */
static int
send_mail_dialog(const char *to, const char *subject,
    const unsigned char *body, size_t bodylen, const int *fds,
    const char **paths, int n, int interactive)
{
	char		 line[LINE_MAX_BYTES], frame[LINE_MAX_BYTES + 16];
	char		 name[PATH_MAX];
	unsigned char	*data;
	const char	*text, *path;
	struct buf	 typed;
	size_t		 len;
	int		 code, m, i, fd;

	send_frame(FT_CIPHER, "SEND MAIL", 9);
	code = read_reply(&text, &len, "SEND MAIL");
	if (interactive)
		show_reply(code, text, len);
	if (code != 121)
		fail_reply(code, text, len, "SEND MAIL");
	m = snprintf(frame, sizeof(frame), "mail from: %s", login_addr);
	if (m < 0 || (size_t)m >= sizeof(frame))
		die(EX_SOFTWARE, "address too long");
	send_frame(FT_CIPHER, frame, (size_t)m);
	if ((code = read_reply(&text, &len, "sender")) == 200)
		code = read_reply(&text, &len, "sender");
	if (interactive)
		show_reply(code, text, len);
	if (code != 122)
		fail_reply(code, text, len, "sender");
	/* Recipient: 301/402 mean "send it again" (no new prompt). */
	for (;;) {
		if (interactive) {
			if (prompt_line("To", line, sizeof(line)) == -1)
				return -1;
			to = line;
		}
		m = snprintf(frame, sizeof(frame), "mail to: %s", to);
		if (m < 0 || (size_t)m >= sizeof(frame))
			die(EX_DATAERR, "recipient address too long");
		send_frame(FT_CIPHER, frame, (size_t)m);
		code = read_reply(&text, &len, "recipient");
		if (interactive)
			show_reply(code, text, len);
		if (code == 200)
			break;
		if (!interactive || (code != 301 && code != 402)) {
			fail_reply(code, text, len, "recipient");
		}
	}
	code = read_reply(&text, &len, "recipient");
	if (interactive)
		show_reply(code, text, len);
	if (code != 123)
		fail_reply(code, text, len, "recipient");
	if (interactive) {
		if (prompt_line("Subject", line, sizeof(line)) == -1)
			return -1;
		subject = line;
	}
	/* PROTOCOL.md 6: the prefixes always (the reference cuts them). */
	m = snprintf(frame, sizeof(frame), "subject: %s", subject);
	if (m < 0 || (size_t)m >= sizeof(frame))
		die(EX_DATAERR, "subject too long");
	send_frame(FT_CIPHER, frame, (size_t)m);
	if ((code = read_reply(&text, &len, "subject")) == 200)
		code = read_reply(&text, &len, "subject");
	if (interactive)
		show_reply(code, text, len);
	if (code != 124)
		fail_reply(code, text, len, "subject");
	memset(&typed, 0, sizeof(typed));
	if (interactive) {
		if (ask_body(&typed) == -1)
			return -1;
		body = typed.p != NULL ? typed.p + typed.off :
		    (const unsigned char *)"";
		bodylen = typed.len;
	}
	if ((data = malloc(bodylen + 6)) == NULL)
		die(EX_SOFTWARE, "out of memory");
	memcpy(data, "data: ", 6);
	memcpy(data + 6, body, bodylen);
	if (frame_write(&io, FT_CIPHER_DOT, data, bodylen + 6) == -1 ||
	    frame_flush(&io) == -1)
		die(EX_UNAVAILABLE, "sending the body: %s", io.why);
	OPENSSL_cleanse(data, bodylen + 6);
	free(data);
	buf_free(&typed);
	if ((code = read_reply(&text, &len, "body")) == 200)
		code = read_reply(&text, &len, "body");
	if (interactive)
		show_reply(code, text, len);
	if (code != 125)
		fail_reply(code, text, len, "body");
	if (interactive && (n = ask_count()) == -1)
		return -1;
	m = snprintf(frame, sizeof(frame), "%d", n);
	if (m < 0 || (size_t)m >= sizeof(frame))
		die(EX_SOFTWARE, "snprintf");
	send_frame(FT_CIPHER, frame, (size_t)m);
	if ((code = read_reply(&text, &len, "attachment count")) == 200)
		code = read_reply(&text, &len, "attachment count");
	for (i = 0; i < n; i++) {
		if (interactive)
			show_reply(code, text, len);
		if (code != 126)
			fail_reply(code, text, len, "attachments");
		if (interactive) {
			if ((fd = ask_file(name, sizeof(name))) == -1)
				die(EX_NOINPUT, "input ended inside a message; "
				    "nothing was sent");
			path = name;
		} else {
			fd = fds[i];
			path = paths[i];
		}
		send_attachment(fd, path);
		/* Document dialect: a 200; reference dialect: none. */
		if ((code = read_reply(&text, &len, path)) == 200)
			code = read_reply(&text, &len, path);
	}
	if (interactive)
		show_reply(code, text, len);
	if (code == 451 && interactive)
		return 1;
	if (code != 220)
		fail_reply(code, text, len, "message");
	return 0;
}

static int
do_batch(void)
{
	unsigned char	*body = NULL;
	size_t		 bodylen = 0;
	int		 fds[MAX_ATTACHMENTS], i, fd, rv, status;

	if (opt.user == NULL)
		die(EX_USAGE, "batch mode (-t) needs -u ADDRESS");
	if (opt.nattach > MAX_ATTACHMENTS)
		die(EX_USAGE, "at most %d attachments", MAX_ATTACHMENTS);
	/* Every file is opened before anything is sent. */
	for (i = 0; i < opt.nattach; i++) {
		struct stat	st;

		if ((fds[i] = open(opt.attach[i], O_RDONLY | O_CLOEXEC)) == -1)
			die(EX_NOINPUT, "%s: %s", opt.attach[i],
			    strerror(errno));
		if (fstat(fds[i], &st) == -1 || !S_ISREG(st.st_mode))
			die(EX_NOINPUT, "%s: not a regular file",
			    opt.attach[i]);
	}
	if (opt.body_file != NULL) {
		if ((fd = open(opt.body_file, O_RDONLY | O_CLOEXEC)) == -1)
			die(EX_NOINPUT, "%s: %s", opt.body_file,
			    strerror(errno));
		read_body(fd, &body, &bodylen);
		close(fd);
	} else
		read_body(0, &body, &bodylen);
	load_ca();
	get_password(opt.user);
	if (snprintf(login_addr, sizeof(login_addr), "%s", opt.user) >=
	    (int)sizeof(login_addr))
		die(EX_DATAERR, "address too long: %s", opt.user);
	fd = connect_server();
	if (frame_init(&io, fd, fd, opt.timeout) == -1)
		die(EX_SOFTWARE, "out of memory");
	io_live = 1;
	handshake();
	do_login(opt.user, 0);
	rv = send_mail_dialog(opt.to, opt.subject != NULL ? opt.subject : "",
	    body, bodylen, fds, opt.attach, opt.nattach, 0);
	send_bye();
	OPENSSL_cleanse(body, bodylen);
	free(body);
	frame_free(&io);
	io_live = 0;
	close(fd);
	(void)reap_child(&status);
	return rv;
}

/* Prompts on stdout, reads a line from stdin.  -1 at end of input. */
static int
prompt_line(const char *prompt, char *buf, size_t sz)
{
	size_t	n;
	int	c;

	printf("%s: ", prompt);
	fflush(stdout);
	n = 0;
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

/* The body, typed: lines up to one holding "." or end of input. */
static int
ask_body(struct buf *b)
{
	char	line[LINE_MAX_BYTES];
	int	n = 0;

	printf("Type the message; end it with a line holding a single "
	    "\".\" or end of input.\n");
	for (;;) {
		if (prompt_line("", line, sizeof(line)) == -1) {
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
	char	line[LINE_MAX_BYTES], *end;
	long	v;

	for (;;) {
		if (prompt_line("Number of attachments (0-5)", line,
		    sizeof(line)) == -1)
			return -1;
		errno = 0;
		v = strtol(line, &end, 10);
		if (errno == 0 && end != line && *end == '\0' && v >= 0 &&
		    v <= MAX_ATTACHMENTS)
			return (int)v;
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
		if (prompt_line("Attachment file", name, sz) == -1)
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

static int
do_interactive(void)
{
	char		 line[LINE_MAX_BYTES], *s, *e;
	const char	*text;
	size_t		 len;
	int		 fd, r, status;

	load_ca();
	if (opt.user != NULL && snprintf(login_addr, sizeof(login_addr), "%s",
	    opt.user) >= (int)sizeof(login_addr))
		die(EX_DATAERR, "address too long: %s", opt.user);
	fd = connect_server();
	if (frame_init(&io, fd, fd, opt.timeout) == -1)
		die(EX_SOFTWARE, "out of memory");
	io_live = 1;
	handshake();
	printf("Connected: %s\n", GREETING);
	for (;;) {
		printf("Commands: LOGIN, SEND MAIL, BYE\n");
		if (prompt_line("Command", line, sizeof(line)) == -1)
			break;
		for (s = line; isspace((unsigned char)*s); s++)
			;
		for (e = s + strlen(s); e > s &&
		    isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		if (*s == '\0')
			continue;
		if (strcasecmp(s, "BYE") == 0)
			break;
		if (strcasecmp(s, "LOGIN") == 0) {
			if (do_login(login_addr, 1) == -1)
				break;
			continue;
		}
		if (strcasecmp(s, "SEND MAIL") != 0) {
			send_frame(FT_CIPHER, s, strlen(s));
			r = read_reply(&text, &len, "command");
			show_reply(r, text, len);
			if (r >= 500)
				fail_reply(r, text, len, "command");
			continue;
		}
		r = send_mail_dialog(NULL, NULL, NULL, 0, NULL, NULL, 0, 1);
		if (r == -1)
			break;
	}
	send_bye();
	frame_free(&io);
	io_live = 0;
	close(fd);
	(void)reap_child(&status);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "ca", required_argument, NULL, 'C' },
		{ "user", required_argument, NULL, 'u' },
		{ "password-file", required_argument, NULL, 'P' },
		{ "to", required_argument, NULL, 't' },
		{ "subject", required_argument, NULL, 's' },
		{ "body", required_argument, NULL, 'b' },
		{ "attach", required_argument, NULL, 'a' },
		{ "exec", required_argument, NULL, 'E' },
		{ "script", required_argument, NULL, 'S' },
		{ "encode", required_argument, NULL, 'O' },
		{ "cert", required_argument, NULL, 'c' },
		{ "session-key", required_argument, NULL, 'K' },
		{ "decode", required_argument, NULL, 'D' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static char	 hostbuf[NI_MAXHOST];
	char		*end;
	long		 v;
	int		 ch;

	crypto_init(0);
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);
	opt.port = DEFAULT_PORT;
	opt.timeout = DEFAULT_TIMEOUT_SEC;
	while ((ch = getopt_long(argc, argv, "H:p:u:t:s:b:a:vhV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'H':
			opt.host = optarg;
			opt.host_given = 1;
			break;
		case 'p':
			opt.port = optarg;
			break;
		case 'C':
			opt.ca = optarg;
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'P':
			opt.password_file = optarg;
			break;
		case 't':
			opt.to = optarg;
			break;
		case 's':
			opt.subject = optarg;
			break;
		case 'b':
			opt.body_file = optarg;
			break;
		case 'a':
			if (opt.nattach >= MAX_ATTACHMENTS)
				die(EX_USAGE, "at most %d attachments (-a)",
				    MAX_ATTACHMENTS);
			opt.attach[opt.nattach++] = optarg;
			break;
		case 'E':
			opt.exec = optarg;
			break;
		case 'S':
			opt.script = optarg;
			break;
		case 'O':
			opt.encode = optarg;
			break;
		case 'c':
			opt.cert = optarg;
			break;
		case 'K':
			opt.session_key = optarg;
			break;
		case 'D':
			opt.decode = optarg;
			break;
		case 'T':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || end == optarg ||
			    v < 0 || v > 86400)
				die(EX_USAGE, "--timeout: 0..86400 seconds");
			opt.timeout = (int)v;
			break;
		case 'v':
			opt.verbose = 1;
			break;
		case 'h':
			usage(0);
		case 'V':
			printf("usmtp-client %s\n", USMTP_VERSION);
			return 0;
		default:
			usage(EX_USAGE);
		}
	}
	if (optind != argc)
		usage(EX_USAGE);
	if (opt.host == NULL)
		opt.host = "localhost";
	else if (opt.host[0] == '[') {
		/* "[::1]" as in URLs: the brackets are not part of it. */
		size_t	n = strlen(opt.host);

		if (n < 3 || opt.host[n - 1] != ']' ||
		    snprintf(hostbuf, sizeof(hostbuf), "%.*s", (int)(n - 2),
		    opt.host + 1) >= (int)sizeof(hostbuf))
			die(EX_USAGE, "bad host: %s", opt.host);
		opt.host = hostbuf;
	}
	if (opt.session_key != NULL)
		load_session_key(opt.session_key);
	if (opt.decode != NULL)
		return do_decode();
	if (opt.script != NULL) {
		if (opt.exec == NULL && !opt.host_given && opt.encode == NULL)
			die(EX_USAGE, "--script needs --exec, -H or --encode");
		return do_script();
	}
	if (opt.encode != NULL)
		die(EX_USAGE, "--encode needs --script");
	if (opt.to != NULL)
		return do_batch();
	return do_interactive();
}
