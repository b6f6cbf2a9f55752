/*
 * usmtp-client.c -- the USMTP client: options, batch mode (flags, body
 * on standard input) and interactive mode.  Speaks usmtp(7) from the
 * client's side; framing and attachment content are frame.c's, the
 * connection and the certificate check dial.c's, RSA-OAEP crypto.c's.
 * The server's certificate (chain, dates, host) is verified before the
 * session key or the password leave.
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
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "usmtp.h"

#define DEFAULT_PORT		"1338"
#define DEFAULT_CA		"/etc/usmtp/ca.pem"
#define DEFAULT_TIMEOUT_SEC	60
#define CONNECT_TIMEOUT_SEC	10
#define PLAIN_MAX_BYTES		32768	/* a plaintext reply (202: a PEM) */
#define PASS_MAX_BYTES		1024
#define LINE_MAX_BYTES		4096	/* a typed line */
#define BODY_MAX_BYTES		(16 * 1024 * 1024)
#define PROGRESS_STEP_MS	200
#define SHOWN_MAX_BYTES		200	/* of a server's text in a message */

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

/* The algorithms lines a session may offer. */
enum offer { OFFER_SECURE, OFFER_DOCUMENT, OFFER_REFERENCE };
enum { SECURE_PREFER, SECURE_REQUIRE, SECURE_OFF };		/* --secure */
enum { DIALECT_AUTO, DIALECT_DOCUMENT, DIALECT_REFERENCE };	/* --dialect */

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
	int		 timeout;
	int		 verbose;
	int		 secure;	/* SECURE_* */
	int		 dialect;	/* DIALECT_* */
} opt;

/* Secrets live here so that cleanup() wipes them on every exit. */
static char		 password[PASS_MAX_BYTES];
static struct frameio	 io;
static int		 io_live;
static X509_STORE	*ca_store;
static pid_t		 child = -1;
static int		 sessfd = -1;
static char		 login_addr[ADDR_MAX + 1];

static void	 usage(int status) __attribute__((noreturn));
static void	 die(int status, const char *fmt, ...)
		    __attribute__((noreturn, format(printf, 2, 3)));
static void	 cleanup(void);
static void	 buf_add(struct buf *b, const void *p, size_t n);
static void	 buf_free(struct buf *b);
static const char *shown(const void *p, size_t n);
static void	 load_ca(void);
static int	 connect_server(void);
static void	 key_exchange(X509 *cert);
static void	 noise_handshake(X509 *cert);
static int	 handshake(enum offer offer);
static void	 open_session(void);
static int	 read_reply(const char **text, size_t *len, const char *ctx);
static void	 send_frame(enum ftype type, const void *p, size_t len);
static void	 fail_reply(int code, const char *text, size_t len,
		    const char *ctx) __attribute__((noreturn));
static void	 show_reply(int code, const char *text, size_t len);
static size_t	 read_plain(enum ftype type, unsigned char **data,
		    const char *ctx);
static void	 get_password(const char *addr);
static void	 read_body(int fd, struct buf *b);
static void	 send_attachment(int fd, const char *path);
static void	 progress_cb(void *arg, uint64_t done);
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
"           [--secure prefer|require|off] [--dialect auto|document|reference]\n"
"           [-t address [-s subject] [-b file] [-a file]...]\n",
	    progname);
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
"      --secure POLICY      prefer: offer secure mode, fall back to USMTP 1.0\n"
"                           (and say so); require: never fall back; off: 1.0\n"
"                           only (default prefer)\n"
"      --dialect DIALECT    the 1.0 algorithms line: auto (the document's,\n"
"                           then the reference server's if refused),\n"
"                           document or reference (default auto)\n"
"  -v, --verbose            show the server's replies on standard error\n"
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
"     message too large (552)\n"
"  66 a body, attachment or password file cannot be read\n"
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

/* Runs at every exit: wipes the password and keys. */
static void
cleanup(void)
{
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
	static char		 buf[2][SHOWN_MAX_BYTES * 4 + 4];
	static int		 which;
	const unsigned char	*s = p;
	char			*o = buf[which ^= 1];
	size_t			 i;

	for (i = 0; i < n && i < SHOWN_MAX_BYTES; i++) {
		if (s[i] == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if (s[i] >= 0x20 && s[i] < 0x7f)
			*o++ = (char)s[i];
		else if (s[i] == '\r' || s[i] == '\n') {
			*o++ = '\\';
			*o++ = s[i] == '\r' ? 'r' : 'n';
		} else
			o += sprintf(o, "\\x%02x", s[i]);
	}
	if (n > SHOWN_MAX_BYTES)
		o += sprintf(o, "...");
	*o = '\0';
	return buf[which];
}

static void
load_ca(void)
{
	const char	*why;

	if (ca_store != NULL)
		return;
	if (opt.ca == NULL)
		opt.ca = DEFAULT_CA;
	if ((ca_store = dial_load_ca(opt.ca, &why)) == NULL)
		die(EXIT_CERT, "CA file %s: %s", opt.ca, why);
}

/* ---- batch and interactive mode: lock-step over frameio ---- */

static int
connect_server(void)
{
	const char	*why;
	int		 fd, kind;

	if (opt.exec != NULL) {
		if ((fd = dial_exec(opt.exec, &child, &why)) == -1)
			die(EX_OSERR, "--exec: %s", why);
		return fd;
	}
	fd = dial_tcp(opt.host, opt.port, CONNECT_TIMEOUT_SEC * 1000, &kind,
	    &why);
	if (fd == -1)
		die(EX_UNAVAILABLE, "cannot connect to %s port %s: %s",
		    opt.host, opt.port, why);
	return fd;
}

static void
send_frame(enum ftype type, const void *p, size_t len)
{
	if (frame_write(&io, type, p, len) == -1 || frame_flush(&io) == -1)
		die(io.timedout ? EX_TEMPFAIL : EX_UNAVAILABLE,
		    "sending to the server: %s", io.why);
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
	send_frame(FT_KEY, ct, ctlen);
	len = read_plain(FT_PLAIN, &data, "session key");
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
	if (frame_write(&io, FT_CIPHER, "1.0 Hello", 9) == -1)
		die(EX_SOFTWARE, "%s", io.why);
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
	send_frame(FT_RECORD, msg, ml);
	r = frame_read(&io, FT_RECORD, NOISE_HS_MAX_BYTES, &data, &len);
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
	if (pll != strlen(GREETING) || memcmp(pl, GREETING, pll) != 0)
		die(EX_PROTOCOL, "unexpected greeting: %s", shown(pl, pll));
	if (noise_hs_split(hs, &tx, &rx, NULL, &why) == -1)
		die(EX_SOFTWARE, "secure mode: %s", why);
	noise_hs_free(hs);
	frame_set_noise(&io, &tx, &rx);
	if (opt.verbose)
		fprintf(stderr, "%s: server: %s (secure mode)\n", progname,
		    shown(pl, pll));
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
	static const char *const lines[] = {
		[OFFER_SECURE] = SECURE_ALGOS,
		[OFFER_DOCUMENT] = DOC_ALGOS,
		[OFFER_REFERENCE] = REF_ALGOS
	};
	unsigned char	*data;
	size_t		 len;
	X509		*cert;
	const char	*why;
	int		 kind, r;

	io.keep = offer == OFFER_SECURE;	/* the prologue */
	send_frame(FT_PLAIN, DEF_HELLO, strlen(DEF_HELLO));
	len = read_plain(FT_PLAIN, &data, "hello");
	if (len < 3 || memcmp(data, "201", 3) != 0)
		die(EX_UNAVAILABLE, "handshake refused: %s", shown(data, len));
	send_frame(FT_PLAIN, lines[offer], strlen(lines[offer]));
	r = frame_read(&io, FT_PLAIN_DOT, PLAIN_MAX_BYTES, &data, &len);
	if (r == FR_EOF || r == FR_TRUNC)
		return 2;
	if (r != FR_OK)
		(void)read_plain(FT_PLAIN_DOT, &data, "algorithms");	/* dies */
	if (len >= 3 && memcmp(data, "502", 3) == 0)
		return 1;
	if (len < 3 || memcmp(data, "202", 3) != 0)
		die(EX_UNAVAILABLE, "algorithms refused: %s", shown(data, len));
	load_ca();
	cert = dial_verify_cert(ca_store, data, len,
	    opt.exec == NULL ? opt.host : NULL, &kind, &why);
	if (cert == NULL)
		die(kind == DIAL_UNTRUSTED ? EXIT_CERT : kind == DIAL_INTERNAL ?
		    EX_SOFTWARE : EX_PROTOCOL, "server certificate %s%s%s%s",
		    why, kind == DIAL_UNTRUSTED ? " (CA file " : "",
		    kind == DIAL_UNTRUSTED ? opt.ca : "",
		    kind == DIAL_UNTRUSTED ? ")" : "");
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
	enum offer	 offers[3];
	int		 n = 0, i, r, status;

	if (opt.secure != SECURE_OFF)
		offers[n++] = OFFER_SECURE;
	if (opt.secure != SECURE_REQUIRE) {
		if (opt.dialect != DIALECT_REFERENCE)
			offers[n++] = OFFER_DOCUMENT;
		if (opt.dialect != DIALECT_DOCUMENT)
			offers[n++] = OFFER_REFERENCE;
	}
	for (i = 0; i < n; i++) {
		sessfd = connect_server();
		if (frame_init(&io, sessfd, sessfd, opt.timeout) == -1)
			die(EX_SOFTWARE, "out of memory");
		io.drain = 1;	/* an early error reply is read, not lost */
		io_live = 1;
		if ((r = handshake(offers[i])) == 0)
			break;
		frame_free(&io);
		io_live = 0;
		close(sessfd);
		(void)dial_reap(&child, &status);
		if (i + 1 < n)
			continue;
		if (offers[i] == OFFER_SECURE)
			die(EX_UNAVAILABLE, "the server does not offer secure "
			    "mode (--secure require): it %s",
			    r == 1 ? "refused it (502)" : "closed the connection");
		die(EX_UNAVAILABLE, "algorithms refused: the server %s",
		    r == 1 ? "refused the algorithms line (502)" :
		    "closed the connection after the algorithms line");
	}
	if (offers[i] != OFFER_SECURE && opt.secure == SECURE_PREFER)
		fprintf(stderr, "%s: the server does not offer secure mode: "
		    "this session is protected by USMTP 1.0 only\n",
		    progname);
	if (opt.verbose)
		fprintf(stderr, "%s: %s\n", progname,
		    offers[i] == OFFER_SECURE ? "secure mode" :
		    offers[i] == OFFER_DOCUMENT ? "USMTP 1.0, document dialect" :
		    "USMTP 1.0, reference dialect");
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
	case FR_BADFRAME:
		if (io.noise)
			die(EX_PROTOCOL, "%s: %s: the connection may have been "
			    "tampered with", ctx, io.why);
		/* FALLTHROUGH */
	default:
		die(EX_PROTOCOL, "%s: malformed reply frame", ctx);
	}
	if (*len < 3 || !isdigit(data[0]) || !isdigit(data[1]) ||
	    !isdigit(data[2]) || (*len > 3 && data[3] != ' ') ||
	    memchr(data, '\0', *len) != NULL)
		die(EX_PROTOCOL, "%s: malformed reply", ctx);
	*text = (const char *)data;
	if (opt.verbose)
		fprintf(stderr, "%s: server: %s\n", progname,
		    shown(*text, *len));
	return (data[0] - '0') * 100 + (data[1] - '0') * 10 + data[2] - '0';
}

static void
show_reply(int code, const char *text, size_t len)
{
	(void)code;
	printf("server: %s\n", shown(text, len));
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
	die(status, "%s: server said: %s", ctx, shown(text, len));
}

/* Sends BYE when the session may still be open; ignores failures. */
static void
send_bye(void)
{
	if (!io_live || (io.enc == NULL && !io.noise))
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
	char		*env, *nl, prompt[ADDR_MAX + 32];
	const char	*why;
	size_t		 n;
	ssize_t		 r;
	int		 fd, m;

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
	if ((m = tty_read_secret(prompt, password, sizeof(password), &n,
	    &why)) == -2)
		die(EX_DATAERR, "password too long");
	if (m == -1)
		die(EX_USAGE, "no password: %s, and neither --password-file "
		    "nor USMTP_PASSWORD", why);
}

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

/*
 * One attachment (usmtp(7), Attachments): header with Size:, the 200,
 * then the content; after it a 200 (document dialect) or directly the
 * next prompt (reference dialect).  Returns with the reply after the
 * content unread.
 */
static void
send_attachment(int fd, const char *path)
{
	struct progress	 pg;
	char		 hdr[PATH_MAX + 128];
	const char	*base, *text;
	size_t		 len;
	struct stat	 st;
	uint64_t	 size;
	int		 m, code, r;

	if (fstat(fd, &st) == -1)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	size = (uint64_t)st.st_size;
	base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	m = snprintf(hdr, sizeof(hdr),
	    "Content-Length: %llu\r\nFilename: %s\r\nSize: %llu",
	    (unsigned long long)frame_content_length(&io, size, FPAD_ALWAYS),
	    base, (unsigned long long)size);
	if (m < 0 || (size_t)m >= sizeof(hdr))
		die(EX_DATAERR, "%s: file name too long", path);
	send_frame(FT_CIPHER, hdr, (size_t)m);
	code = read_reply(&text, &len, "attachment header");
	if (code != 200)
		fail_reply(code, text, len, path);
	memset(&pg, 0, sizeof(pg));
	pg.on = isatty(2);
	pg.name = base;
	pg.total = size;
	pg.start_ms = pg.last_ms = clock_ms();
	r = frame_write_content(&io, fd, size, FPAD_ALWAYS, progress_cb, &pg);
	if (r != 0 && pg.on)
		fputc('\n', stderr);
	if (r == -2)
		die(EX_IOERR, "%s: %s", path, io.why);
	if (r == -1)
		/* The server may have said why before it closed. */
		die(io.timedout ? EX_TEMPFAIL : EX_UNAVAILABLE, "sending %s: %s",
		    path, io.why);
	progress_update(&pg, 1);
}

/* LOGIN (usmtp(7), Login).  Returns 0 when logged in. */
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
		case 301:	/* usmtp(7), Login: send the address again */
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
			/* The certificate is verified by now. */
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
 * SEND MAIL (usmtp(7), Sending a message).  Returns 0 when sent (220), 1 after a 451
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
	/* usmtp(7), Sending a message: the prefixes always (the reference
	 * server cuts them off by position). */
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
		body = typed.p != NULL ? typed.p : (const unsigned char *)"";
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
	struct buf	 body;
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
	memset(&body, 0, sizeof(body));
	if (opt.body_file != NULL) {
		if ((fd = open(opt.body_file, O_RDONLY | O_CLOEXEC)) == -1)
			die(EX_NOINPUT, "%s: %s", opt.body_file,
			    strerror(errno));
		read_body(fd, &body);
		close(fd);
	} else
		read_body(0, &body);
	load_ca();
	get_password(opt.user);
	if (snprintf(login_addr, sizeof(login_addr), "%s", opt.user) >=
	    (int)sizeof(login_addr))
		die(EX_DATAERR, "address too long: %s", opt.user);
	open_session();
	do_login(opt.user, 0);
	rv = send_mail_dialog(opt.to, opt.subject != NULL ? opt.subject : "",
	    body.p != NULL ? body.p : (const unsigned char *)"", body.len,
	    fds, opt.attach, opt.nattach, 0);
	send_bye();
	buf_free(&body);
	frame_free(&io);
	io_live = 0;
	close(sessfd);
	(void)dial_reap(&child, &status);
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
	int		 r, status;

	load_ca();
	if (opt.user != NULL && snprintf(login_addr, sizeof(login_addr), "%s",
	    opt.user) >= (int)sizeof(login_addr))
		die(EX_DATAERR, "address too long: %s", opt.user);
	open_session();
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
	close(sessfd);
	(void)dial_reap(&child, &status);
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
		{ "timeout", required_argument, NULL, 'T' },
		{ "secure", required_argument, NULL, 'S' },
		{ "dialect", required_argument, NULL, 'D' },
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
		case 'T':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || end == optarg ||
			    v < 0 || v > 86400)
				die(EX_USAGE, "--timeout: 0..86400 seconds");
			opt.timeout = (int)v;
			break;
		case 'S':
			if (strcmp(optarg, "prefer") == 0)
				opt.secure = SECURE_PREFER;
			else if (strcmp(optarg, "require") == 0)
				opt.secure = SECURE_REQUIRE;
			else if (strcmp(optarg, "off") == 0)
				opt.secure = SECURE_OFF;
			else
				die(EX_USAGE, "--secure: prefer, require or off");
			break;
		case 'D':
			if (strcmp(optarg, "auto") == 0)
				opt.dialect = DIALECT_AUTO;
			else if (strcmp(optarg, "document") == 0)
				opt.dialect = DIALECT_DOCUMENT;
			else if (strcmp(optarg, "reference") == 0)
				opt.dialect = DIALECT_REFERENCE;
			else
				die(EX_USAGE, "--dialect: auto, document or "
				    "reference");
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
	if (opt.to != NULL)
		return do_batch();
	return do_interactive();
}
