/*
 * usmtp-script.c -- the protocol test harness, for the test suite only
 * (built by "make check", never installed).  It runs a script of
 * directives against a server (a handler started over a socket pair, or
 * TCP) and prints every reply, decrypted, one a line; writes the bytes a
 * script sends into a file (--encode); prints the replies in a recorded
 * server output (--decode).  Everyday debugging is usmtp-client -v: this
 * tool exists to send what a correct client never sends (garbage keys,
 * raw bytes, the reference client's padding) and to use a fixed session
 * key, which makes captures decodable.
 *
 * Framing, attachment content and AES are frame.c's, the connection and
 * the certificate check dial.c's, RSA-OAEP crypto.c's (usmtp(7)).
 */
#define _GNU_SOURCE		/* memmem */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "usmtp.h"

#define DEFAULT_PORT		"1338"
#define DEFAULT_CA		"/etc/usmtp/ca.pem"
#define DEFAULT_TIMEOUT_SEC	60
#define TIMEOUT_MAX_SEC		86400
#define CONNECT_TIMEOUT_SEC	10
#define PLAIN_MAX_BYTES		32768	/* plaintext reply (202: a PEM) */
#define SCRIPT_LINE_MAX_BYTES	1048576
#define KEY_FILE_MAX_BYTES	255	/* --session-key: 64 hex */
#define OUT_HIGH_WATER_BYTES	(256 * 1024)	/* queued: send it */
#define PAUSE_MAX_MS		3600000
#define OAEP_MAX_BYTES		190	/* RSA-2048, OAEP-SHA-256 */

#define DOC_ALGOS	"support asymmetric-rsa2048 symmetric-aes-256-ecb?"
#define REF_ALGOS	"support asymetric-rsa-2048 symetric-aes-256-ecb?"
#define DEF_HELLO	"hello ssl1.0?"

enum op {
	OP_HELLO, OP_ALGOS, OP_KEY, OP_SEND, OP_SEND_REF, OP_BODY,
	OP_ATTACH, OP_ATTACH_REF, OP_CONTENT, OP_RAW, OP_RAWHEX, OP_EOF,
	OP_PAUSE
};

struct directive {
	enum op		 op;
	int		 line;
	unsigned char	*text;		/* TEXT, bytes, or FILE */
	size_t		 len;
	char		*name;		/* attach NAME, or NULL */
	size_t		 namelen;
	long		 n;		/* key bytes (-1: garbage), ms */
};

/* How a wait for replies ended. */
enum { RD_OK, RD_CLOSED, RD_TIMEOUT };

/* A script being run (live or --encode), or a capture decoded. */
struct run {
	struct directive *d;
	size_t		 nd;
	int		 live;		/* connected: replies are read */
	int		 keyed;		/* frames encrypted from here on */
	int		 haskey;	/* io decrypts the replies */
	int		 cipher;	/* the 203 came: AES replies */
	int		 stopped;	/* nothing more is sent */
	int		 closed;	/* the server closed */
	int		 timedout;	/* no reply within --timeout */
	int		 overlong;	/* a reply too long: count */
	uint64_t	 junk;		/* bytes counted since then */
	EVP_PKEY	*pub;		/* the server's key, once known */
};

static const char *progname = "usmtp-script";

static struct {
	const char	*host;
	const char	*port;
	const char	*ca;
	const char	*exec;
	const char	*encode;
	const char	*cert;
	const char	*session_key;
	const char	*decode;
	const char	*script;
	int		 timeout;
} opt;

/* Kept here so that cleanup() wipes and frees them on every exit. */
static unsigned char	 session_key[SESSION_KEY_BYTES];
static int		 have_session_key;
static struct frameio	 io;
static int		 io_live;
static struct run	 run;
static X509_STORE	*ca_store;
static pid_t		 child = -1;

static void	 usage(int status) __attribute__((noreturn));
static void	 die(int status, const char *fmt, ...)
		    __attribute__((noreturn, format(printf, 2, 3)));
static void	 cleanup(void);
static void	 print_escaped(FILE *f, const unsigned char *p, size_t n);
static int	 decode_escapes(const char *s, size_t n, unsigned char **out,
		    size_t *outlen, const char **why);
static int	 decode_hex(const char *s, size_t n, unsigned char **out,
		    size_t *outlen);
static void	 load_session_key(const char *path);
static int	 parse_line(char *line, size_t len, int lineno,
		    struct directive *d, int *expand_ref, const char **why);
static size_t	 script_load(const char *path, struct directive **out);
static void	 script_free(struct directive *d, size_t nd);
static void	 load_ca(void);
static EVP_PKEY	*verify_cert(const unsigned char *frame, size_t len);
static EVP_PKEY	*load_cert_key(const char *path);
static void	 print_reply(const unsigned char *f, size_t n);
static void	 got_reply(struct run *r, const unsigned char *f,
		    size_t len);
static int	 count_sink(void *arg, const unsigned char *p, size_t len);
static int	 read_replies(struct run *r, int one);
static void	 queued(int rv);
static void	 flush(struct run *r);
static void	 await_reply(struct run *r);
static void	 pause_ms(struct run *r, long ms);
static void	 send_text(struct run *r, enum ftype type, const void *text,
		    size_t len, enum fpad pad);
static int	 send_key(struct run *r, const struct directive *d);
static void	 send_attachment(struct run *r, const struct directive *d);
static void	 run_script(struct run *r);
static int	 run_live(struct run *r);
static int	 run_encode(struct run *r);
static int	 run_decode(struct run *r);

static void
usage(int status)
{
	FILE	*f = status == 0 ? stdout : stderr;

	fprintf(f,
"usage: %s [--ca file] [--session-key file] [--timeout seconds]\n"
"           (--exec command | -H host [-p port]) script\n"
"       %s --encode out [--cert file] [--session-key file] script\n"
"       %s --decode in [--session-key file]\n",
	    progname, progname, progname);
	if (status != 0) {
		fprintf(f, "Try '%s --help'.\n", progname);
		exit(status);
	}
	fprintf(f,
"\n"
"The USMTP test harness: sends the directives of script to a server and\n"
"prints every reply decrypted, one a line (tests only; usmtp-client -v\n"
"shows a real session).\n"
"\n"
"  -H, --host HOST          connect to HOST (a name or an address); the\n"
"                           202's certificate must name it\n"
"  -p, --port PORT          its TCP port (default " DEFAULT_PORT ")\n"
"      --exec COMMAND       run /bin/sh -c COMMAND (a handler) over a\n"
"                           socket pair instead\n"
"      --ca FILE            trusted CA for the 202's certificate, PEM\n"
"                           (default " DEFAULT_CA ")\n"
"      --timeout SECONDS    wait at most this for a reply (default %d,\n"
"                           0 none)\n"
"      --session-key FILE   the session key, 64 hex digits: key sends it,\n"
"                           and it decrypts replies before the key\n"
"      --encode FILE        write the bytes the script sends to FILE;\n"
"                           connect to nothing, read no reply\n"
"      --cert FILE          with --encode: the server certificate whose\n"
"                           key encrypts the session key (not verified)\n"
"      --decode FILE        print the replies in a server's output FILE\n"
"  -h, --help               this help\n"
"  -V, --version            the version\n"
"\n"
"Script: one directive a line; # comments and blank lines are skipped.\n"
"TEXT is the rest of the line, with the escapes \\r \\n \\t \\\\ \\s (space)\n"
"and \\xNN.\n"
"  hello [TEXT]             plaintext frame (default \"" DEF_HELLO "\"),\n"
"                           then wait for one reply\n"
"  algos [TEXT]             plaintext frame (default the document's\n"
"                           spelling), then wait; a 202's certificate\n"
"                           is verified against --ca\n"
"  handshake [ref]          hello, algos (ref: the reference client's\n"
"                           spelling) and key\n"
"  key [N|garbage]          32 (or N) random bytes, or --session-key,\n"
"                           RSA-OAEP encrypted to the server's key; or\n"
"                           256 random bytes; then wait.  Frames after a\n"
"                           32-byte key are encrypted\n"
"  send TEXT                a frame padded with 1..16 spaces\n"
"  send-ref TEXT            a frame padded with 0..15 (the reference's)\n"
"  body TEXT                a frame ending in \".\\r\\n\\r\\n\"\n"
"  attach FILE [NAME]       attachment header (Content-Length, Filename,\n"
"                           Size) and content\n"
"  attach-ref FILE [NAME]   the same without Size:, padded as send-ref\n"
"  content FILE             the content only\n"
"  raw TEXT                 the bytes of TEXT as they are\n"
"  rawhex HEX               bytes given in hex, as they are\n"
"  eof                      shut down the sending side; nothing after it\n"
"                           is sent\n"
"  pause MS                 send what is queued, then wait MS ms while\n"
"                           reading replies\n"
"Frames are pipelined: only hello, algos and key wait for their reply.\n"
"After the last directive, replies are read until the server closes.\n"
"\n"
"Output: each reply on a line, pad spaces and a 202's certificate and\n"
"dot left out, bytes other than printable ASCII (and \\) escaped; then\n"
"\"[N encrypted bytes, no key]\" for a reply that cannot be decrypted,\n"
"\"[N trailing bytes]\" for bytes that end no frame, \"[timeout]\", and\n"
"with --exec \"[handler exit N]\" or \"[handler signal N]\".\n"
"\n"
"Exit status:\n"
"   0 the script ran and the server closed the connection; or the file\n"
"     was encoded or decoded\n"
"  64 usage error\n"
"  65 a malformed script, key or certificate file\n"
"  66 a script, key, certificate or attachment file cannot be read\n"
"  69 no connection\n"
"  70 internal error\n"
"  71 --exec cannot be started\n"
"  73 the --encode file cannot be created\n"
"  74 a read or write error\n"
"  75 no reply within --timeout\n"
"  76 a 202 without a usable certificate\n"
"  78 the CA file is unusable, or the server certificate is not\n"
"     trusted (chain, dates, host name)\n",
	    DEFAULT_TIMEOUT_SEC);
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

/* Runs at every exit: wipes the session key and the script's texts. */
static void
cleanup(void)
{
	OPENSSL_cleanse(session_key, sizeof(session_key));
	if (io_live) {
		frame_free(&io);
		io_live = 0;
	}
	if (run.d != NULL) {
		script_free(run.d, run.nd);
		run.d = NULL;
	}
	EVP_PKEY_free(run.pub);
	run.pub = NULL;
	X509_STORE_free(ca_store);
	ca_store = NULL;
}

/* One reply line: printable ASCII as is, the rest as C escapes. */
static void
print_escaped(FILE *f, const unsigned char *p, size_t n)
{
	char	*buf;

	if (n > (SIZE_MAX - 8) / 4 || (buf = malloc(n * 4 + 8)) == NULL)
		die(EX_SOFTWARE, "out of memory");
	esc_bytes(buf, n * 4 + 8, p, n, ESC_SHOW);
	fputs(buf, f);
	free(buf);
}

/* TEXT of a directive: \r \n \t \s \\ \xNN.  0, or -1 (*why). */
static int
decode_escapes(const char *s, size_t n, unsigned char **out, size_t *outlen,
    const char **why)
{
	unsigned char	*o;
	size_t		 i, k = 0;
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
			o[k++] = (unsigned char)strtoul(hex, NULL, 16);
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
	OPENSSL_cleanse(o, n + 1);
	free(o);
	return -1;
}

/* Pairs of hex digits, white space between them ignored.  0 or -1. */
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
		if (!isxdigit((unsigned char)s[i]))
			goto bad;
		v = isdigit((unsigned char)s[i]) ? s[i] - '0' :
		    tolower((unsigned char)s[i]) - 'a' + 10;
		if (hi < 0)
			hi = v;
		else {
			o[k++] = (unsigned char)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0)
		goto bad;
	*out = o;
	*outlen = k;
	return 0;
bad:
	OPENSSL_cleanse(o, n / 2 + 1);
	free(o);
	return -1;
}

/* --session-key FILE: 64 hex digits, white space around them allowed. */
static void
load_session_key(const char *path)
{
	char		 text[KEY_FILE_MAX_BYTES + 1];
	unsigned char	*k = NULL;
	size_t		 n = 0, klen = 0;
	ssize_t		 got;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	while (n < sizeof(text) - 1) {
		got = read(fd, text + n, sizeof(text) - 1 - n);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			close(fd);
			OPENSSL_cleanse(text, sizeof(text));
			die(EX_IOERR, "%s: %s", path, strerror(errno));
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
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
	const char	*dflt;
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
			dflt = d->op == OP_HELLO ? DEF_HELLO : DOC_ALGOS;
			return decode_escapes(dflt, strlen(dflt), &d->text,
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
		/* Missing files are reported before anything is sent. */
		if (access((char *)d->text, R_OK) == -1)
			die(EX_NOINPUT, "script line %d: %s: %s", lineno,
			    (char *)d->text, strerror(errno));
		return 1;
	}
	if (strcmp(kw, "eof") == 0) {
		d->op = OP_EOF;
		return 1;
	}
	if (strcmp(kw, "pause") == 0) {
		d->op = OP_PAUSE;
		errno = 0;
		v = arg != NULL ? strtol(arg, &end, 10) : -1;
		if (arg == NULL || errno != 0 || *end != '\0' || end == arg ||
		    v < 0 || v > PAUSE_MAX_MS) {
			*why = "pause takes milliseconds";
			return -1;
		}
		d->n = v;
		return 1;
	}
	*why = "unknown directive";
	return -1;
}

/* Reads a whole script; exits with the line of the first error. */
static size_t
script_load(const char *path, struct directive **out)
{
	static const enum op	 hs[3] = { OP_HELLO, OP_ALGOS, OP_KEY };
	FILE			*f;
	char			*line = NULL;
	const char		*why = NULL, *t;
	size_t			 cap = 0, nd = 0, dcap = 0, len;
	ssize_t			 got;
	struct directive	 d, *dv = NULL;
	int			 lineno = 0, ref, r, k;

	if ((f = fopen(path, "re")) == NULL)
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
			dv[nd].op = hs[k];
			dv[nd].n = SESSION_KEY_BYTES;
			if (k < 2) {
				t = k == 0 ? DEF_HELLO : ref ? REF_ALGOS :
				    DOC_ALGOS;
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

/* Scripts hold passwords: their texts are wiped. */
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
	const char	*why;

	if (ca_store != NULL)
		return;
	if (opt.ca == NULL)
		opt.ca = DEFAULT_CA;
	if ((ca_store = dial_load_ca(opt.ca, &why)) == NULL)
		die(EX_CONFIG, "CA file %s: %s", opt.ca, why);
}

/*
 * A 202 reply: its certificate verified as usmtp-client does (against
 * --ca; the host name too over TCP).  Returns the server's key; exits
 * when it cannot be trusted.
 */
static EVP_PKEY *
verify_cert(const unsigned char *frame, size_t len)
{
	X509		*cert;
	EVP_PKEY	*pub;
	const char	*why;
	int		 kind;

	load_ca();
	cert = dial_verify_cert(ca_store, frame, len,
	    opt.exec == NULL ? opt.host : NULL, &kind, &why);
	if (cert == NULL && kind == DIAL_UNTRUSTED)
		die(EX_CONFIG, "server certificate %s (CA file %s)", why,
		    opt.ca);
	if (cert == NULL)
		die(kind == DIAL_INTERNAL ? EX_SOFTWARE : EX_PROTOCOL, "%s",
		    why);
	pub = dial_rsa_key(cert, &why);
	X509_free(cert);
	if (pub == NULL)
		die(EX_PROTOCOL, "%s", why);
	return pub;
}

/* --encode --cert FILE: the server's key, its certificate unverified. */
static EVP_PKEY *
load_cert_key(const char *path)
{
	X509		*cert;
	EVP_PKEY	*pub;
	const char	*why;
	FILE		*f;

	if ((f = fopen(path, "re")) == NULL)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (cert == NULL) {
		ERR_clear_error();
		die(EX_DATAERR, "%s: no PEM certificate", path);
	}
	pub = dial_rsa_key(cert, &why);
	X509_free(cert);
	if (pub == NULL)
		die(EX_DATAERR, "%s: %s", path, why);
	return pub;
}

/* Prints a reply on its own line; a 202 without its certificate. */
static void
print_reply(const unsigned char *f, size_t n)
{
	const unsigned char	*pem;

	if (n >= 3 && memcmp(f, "202", 3) == 0 &&
	    (pem = memmem(f, n, "-----BEGIN", 10)) != NULL) {
		n = (size_t)(pem - f);
		while (n > 0 && isspace(f[n - 1]))
			n--;
	}
	print_escaped(stdout, f, n);
	fputc('\n', stdout);
	fflush(stdout);
}

/*
 * One reply frame.  Up to the 203 replies are plaintext; 202 and 502
 * end with ".\r\n\r\n" (usmtp(7), Handshake), and the dot is no part
 * of the text.  A 202's certificate gives the key of a live session.
 */
static void
got_reply(struct run *r, const unsigned char *f, size_t len)
{
	int	plain = !r->cipher;

	if (plain) {
		if (len > 0 && f[len - 1] == '.')
			len--;
		if (len >= 3 && memcmp(f, "203", 3) == 0)
			r->cipher = 1;
	} else if (!r->haskey) {
		printf("[%zu encrypted bytes, no key]\n", len);
		fflush(stdout);
		return;
	}
	print_reply(f, len);
	if (plain && r->live && r->pub == NULL && len >= 3 &&
	    memcmp(f, "202", 3) == 0)
		r->pub = verify_cert(f, len);
}

/* frame_read_counted() sink: counts the bytes after an over-long reply. */
static int
count_sink(void *arg, const unsigned char *p, size_t len)
{
	(void)p;
	*(uint64_t *)arg += len;
	return 0;
}

/*
 * Reads and prints replies: one when one is set, else until the server
 * closes the connection or io.deadline_ms (a pause) passes.  After a
 * reply too long for any frame nothing is framed any more: the rest is
 * counted, to be reported as trailing bytes.  Returns RD_OK (one read),
 * RD_CLOSED or RD_TIMEOUT.
 */
static int
read_replies(struct run *r, int one)
{
	unsigned char	*f;
	size_t		 len;
	int		 fr;

	/* Whatever is queued goes first; frame_read() would fail on a
	 * server that no longer reads, before reading what it said. */
	flush(r);
	for (;;) {
		if (r->overlong)
			fr = frame_read_counted(&io, UINT64_MAX, count_sink,
			    &r->junk);
		else
			fr = frame_read(&io, r->cipher ? FT_CIPHER : FT_PLAIN,
			    r->cipher ? FRAME_MAX_BYTES : PLAIN_MAX_BYTES, &f,
			    &len);
		switch (fr) {
		case FR_OK:
			got_reply(r, f, len);
			if (one)
				return RD_OK;
			break;
		case FR_TOOBIG:
			r->overlong = 1;
			break;
		case FR_EOF:
		case FR_TRUNC:
			r->closed = 1;
			return RD_CLOSED;
		case FR_TIMEOUT:
			return RD_TIMEOUT;
		default:
			die(EX_IOERR, "reading the replies: %s",
			    io.why != NULL ? io.why : "malformed frame");
		}
	}
}

/* frame_write*() only queue: a failure is ours (memory, AES). */
static void
queued(int rv)
{
	if (rv == -1)
		die(EX_SOFTWARE, "%s", io.why);
}

/*
 * Sends what is queued.  A live server that has gone away or stopped
 * reading ends the sending, not the run: what it said is still read
 * (frame_flush() drops the rest, so later calls have nothing to send).
 */
static void
flush(struct run *r)
{
	if (frame_flush(&io) == 0)
		return;
	if (!r->live)
		die(EX_IOERR, "%s: %s", opt.encode, strerror(errno));
	r->stopped = 1;
}

/* After hello, algos and key: the script goes on once a reply came. */
static void
await_reply(struct run *r)
{
	if (!r->live)
		return;
	flush(r);
	if (r->stopped)
		return;
	switch (read_replies(r, 1)) {
	case RD_CLOSED:
		r->stopped = 1;
		break;
	case RD_TIMEOUT:
		r->timedout = r->stopped = 1;
		break;
	}
}

/* pause MS: sends what is queued, then reads replies for ms. */
static void
pause_ms(struct run *r, long ms)
{
	long	until;
	int	rd;

	if (!r->live)
		return;
	flush(r);
	if (r->stopped)
		return;
	until = clock_ms() + ms;
	io.deadline_ms = until;
	rd = read_replies(r, 0);
	io.deadline_ms = 0;
	if (rd == RD_CLOSED)
		r->stopped = 1;
	else if (rd == RD_TIMEOUT && clock_ms() < until) {
		/* --timeout passed, not the pause */
		r->timedout = r->stopped = 1;
	}
}

/* A text frame: encrypted and padded once keyed, else as it is. */
static void
send_text(struct run *r, enum ftype type, const void *text, size_t len,
    enum fpad pad)
{
	if (!r->keyed)
		type = type == FT_CIPHER_DOT ? FT_PLAIN_DOT : FT_PLAIN;
	queued(frame_write_padded(&io, type, text, len, pad));
}

/*
 * The key directive (usmtp(7), Handshake).  0 when sent, -1 when not: a
 * live server sent no certificate, and the rest of the script is not
 * sent either.
 */
static int
send_key(struct run *r, const struct directive *d)
{
	unsigned char	k[RSA_CIPHER_BYTES], ct[RSA_CIPHER_BYTES];
	size_t		ctlen = 0;
	int		rv;

	if (d->n < 0) {
		if (crypto_random(ct, sizeof(ct)) == -1)
			die(EX_SOFTWARE, "no random bytes");
		queued(frame_write(&io, FT_KEY, ct, sizeof(ct)));
		return 0;
	}
	if (r->pub == NULL) {
		if (!r->live)
			die(EX_USAGE, "script line %d: key: --encode needs "
			    "--cert", d->line);
		/* No 202 came (502, or the server closed): read what the
		 * server still says. */
		fprintf(stderr, "%s: script line %d: no server certificate; "
		    "the rest of the script is not sent\n", progname, d->line);
		r->stopped = 1;
		return -1;
	}
	if (d->n == SESSION_KEY_BYTES && have_session_key)
		memcpy(k, session_key, SESSION_KEY_BYTES);
	else if (crypto_random(k, (size_t)d->n) == -1)
		die(EX_SOFTWARE, "no random bytes");
	rv = crypto_rsa_encrypt(r->pub, k, (size_t)d->n, ct, sizeof(ct),
	    &ctlen);
	if (rv == -1 || ctlen != RSA_CIPHER_BYTES) {
		OPENSSL_cleanse(k, sizeof(k));
		die(EX_SOFTWARE, "RSA-OAEP encryption failed");
	}
	queued(frame_write(&io, FT_KEY, ct, ctlen));
	r->keyed = d->n == SESSION_KEY_BYTES;
	if (r->keyed) {
		/* The 203 is plaintext; what follows it uses this key. */
		memcpy(session_key, k, SESSION_KEY_BYTES);
		have_session_key = 1;
		rv = frame_setkey(&io, k);
		r->haskey = 1;
	}
	OPENSSL_cleanse(k, sizeof(k));
	if (rv == -1)
		die(EX_SOFTWARE, "%s", io.why);
	return 0;
}

/* attach, attach-ref, content (usmtp(7), Attachments). */
static void
send_attachment(struct run *r, const struct directive *d)
{
	EVP_CIPHER_CTX	*enc;
	struct stat	 st;
	char		 hdr[PATH_MAX + 128];
	const char	*path = (const char *)d->text, *name, *base;
	size_t		 namelen;
	enum fpad	 pad = d->op == OP_ATTACH_REF ? FPAD_REF : FPAD_ALWAYS;
	uint64_t	 size;
	int		 fd, m, rv;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		die(EX_NOINPUT, "script line %d: %s: %s", d->line, path,
		    strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		die(EX_NOINPUT, "script line %d: %s: not a regular file",
		    d->line, path);
	size = (uint64_t)st.st_size;
	if (d->op != OP_CONTENT) {
		if (d->name != NULL) {
			name = d->name;
			namelen = d->namelen;
		} else {
			base = strrchr(path, '/');
			name = base != NULL ? base + 1 : path;
			namelen = strlen(name);
		}
		if (namelen > PATH_MAX)
			die(EX_DATAERR, "script line %d: name too long",
			    d->line);
		m = snprintf(hdr, sizeof(hdr),
		    "Content-Length: %llu\r\nFilename: %.*s",
		    (unsigned long long)frame_content_length(&io, size, pad),
		    (int)namelen, name);
		if (m > 0 && pad != FPAD_REF && (size_t)m < sizeof(hdr))
			m += snprintf(hdr + m, sizeof(hdr) - (size_t)m,
			    "\r\nSize: %llu", (unsigned long long)size);
		if (m < 0 || (size_t)m >= sizeof(hdr))
			die(EX_SOFTWARE, "attachment header too long");
		send_text(r, FT_CIPHER, hdr, (size_t)m, pad);
	}
	/*
	 * Content is encrypted only after a 32-byte key, as text frames
	 * are; io may hold a key before that for the replies alone
	 * (--session-key, or a short key after a whole one).
	 */
	enc = io.enc;
	if (!r->keyed)
		io.enc = NULL;
	rv = frame_write_content(&io, fd, size, pad, NULL, NULL);
	io.enc = enc;
	close(fd);
	if (rv == -2)
		die(EX_IOERR, "script line %d: %s: %s", d->line, path,
		    io.why);
	if (rv == -1 && !r->live)
		die(EX_IOERR, "%s: %s", opt.encode, io.why);
	if (rv == -1)
		r->stopped = 1;
}

/* Sends (or encodes) the directives in order until one stops it. */
static void
run_script(struct run *r)
{
	const struct directive	*d;
	size_t			 i;

	for (i = 0; i < r->nd && !r->stopped; i++) {
		d = &r->d[i];
		switch (d->op) {
		case OP_HELLO:
		case OP_ALGOS:
			/* Keyed or not, the handshake lines are plaintext. */
			queued(frame_write(&io, FT_PLAIN, d->text, d->len));
			await_reply(r);
			break;
		case OP_KEY:
			if (send_key(r, d) == 0)
				await_reply(r);
			break;
		case OP_SEND:
		case OP_SEND_REF:
			send_text(r, FT_CIPHER, d->text, d->len,
			    d->op == OP_SEND_REF ? FPAD_REF : FPAD_ALWAYS);
			break;
		case OP_BODY:
			send_text(r, FT_CIPHER_DOT, d->text, d->len,
			    FPAD_ALWAYS);
			break;
		case OP_ATTACH:
		case OP_ATTACH_REF:
		case OP_CONTENT:
			send_attachment(r, d);
			break;
		case OP_RAW:
		case OP_RAWHEX:
			queued(frame_write_raw(&io, d->text, d->len));
			break;
		case OP_EOF:
			flush(r);
			if (r->live && !r->stopped)
				shutdown(io.wfd, SHUT_WR);
			r->stopped = 1;
			break;
		case OP_PAUSE:
			pause_ms(r, d->n);
			break;
		}
		if (io.outlen >= OUT_HIGH_WATER_BYTES)
			flush(r);
	}
	flush(r);
}

/*
 * A live script: frames are sent pipelined, waiting for a reply only
 * after hello, algos and key; then the replies are read until the
 * server closes.  io.drain keeps both sides from blocking on each other
 * while much is sent.
 */
static int
run_live(struct run *r)
{
	const char	*why;
	uint64_t	 left;
	int		 fd, kind, status, rv = 0;

	if (opt.exec != NULL) {
		if ((fd = dial_exec(opt.exec, &child, &why)) == -1)
			die(EX_OSERR, "--exec: %s", why);
	} else if ((fd = dial_tcp(opt.host, opt.port,
	    CONNECT_TIMEOUT_SEC * 1000, &kind, &why)) == -1)
		die(EX_UNAVAILABLE, "cannot connect to %s port %s: %s",
		    opt.host, opt.port, why);
	if (frame_init(&io, fd, fd, opt.timeout) == -1)
		die(EX_SOFTWARE, "out of memory");
	io_live = 1;
	io.drain = 1;
	r->live = 1;
	if (have_session_key) {
		/* Replies may come before the key directive is sent. */
		if (frame_setkey(&io, session_key) == -1)
			die(EX_SOFTWARE, "%s", io.why);
		r->haskey = 1;
	}
	run_script(r);
	if (!r->timedout && !r->closed && read_replies(r, 0) == RD_TIMEOUT)
		r->timedout = 1;
	if (r->timedout) {
		printf("[timeout]\n");
		rv = EX_TEMPFAIL;
	} else if ((left = r->junk + frame_pending(&io)) > 0)
		printf("[%llu trailing bytes]\n", (unsigned long long)left);
	fflush(stdout);
	close(fd);
	if (dial_reap(&child, &status) == 0) {
		if (WIFEXITED(status))
			printf("[handler exit %d]\n", WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			printf("[handler signal %d]\n", WTERMSIG(status));
		fflush(stdout);
	}
	return rv;
}

/* --encode: every byte the script sends, into a file. */
static int
run_encode(struct run *r)
{
	int	fd;

	if (opt.cert != NULL)
		r->pub = load_cert_key(opt.cert);
	if ((fd = open(opt.encode, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0666)) == -1)
		die(EX_CANTCREAT, "%s: %s", opt.encode, strerror(errno));
	if (frame_init(&io, -1, fd, 0) == -1)
		die(EX_SOFTWARE, "out of memory");
	io_live = 1;
	run_script(r);
	if (close(fd) == -1)
		die(EX_IOERR, "%s: %s", opt.encode, strerror(errno));
	return 0;
}

/* --decode: the replies in a server's output, as a live script prints. */
static int
run_decode(struct run *r)
{
	uint64_t	left;
	int		fd;

	if ((fd = open(opt.decode, O_RDONLY | O_CLOEXEC)) == -1)
		die(EX_NOINPUT, "%s: %s", opt.decode, strerror(errno));
	if (frame_init(&io, fd, -1, 0) == -1)
		die(EX_SOFTWARE, "out of memory");
	io_live = 1;
	if (have_session_key) {
		if (frame_setkey(&io, session_key) == -1)
			die(EX_SOFTWARE, "%s", io.why);
		r->haskey = 1;
	}
	read_replies(r, 0);
	if ((left = r->junk + frame_pending(&io)) > 0)
		printf("[%llu trailing bytes]\n", (unsigned long long)left);
	fflush(stdout);
	close(fd);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "ca", required_argument, NULL, 'C' },
		{ "exec", required_argument, NULL, 'E' },
		{ "encode", required_argument, NULL, 'O' },
		{ "cert", required_argument, NULL, 'c' },
		{ "session-key", required_argument, NULL, 'K' },
		{ "decode", required_argument, NULL, 'D' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static char	 hostbuf[NI_MAXHOST];
	const char	*h;
	char		*end;
	long		 v;
	int		 ch, rv;

	opt.port = DEFAULT_PORT;
	opt.timeout = DEFAULT_TIMEOUT_SEC;
	while ((ch = getopt_long(argc, argv, "H:p:hV", longopts, NULL))
	    != -1) {
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
		case 'E':
			opt.exec = optarg;
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
			    v < 0 || v > TIMEOUT_MAX_SEC)
				die(EX_USAGE, "--timeout: 0..%d seconds",
				    TIMEOUT_MAX_SEC);
			opt.timeout = (int)v;
			break;
		case 'h':
			usage(0);
		case 'V':
			printf("%s %s\n", progname, USMTP_VERSION);
			return 0;
		default:
			usage(EX_USAGE);
		}
	}
	if (optind < argc)
		opt.script = argv[optind++];
	if (optind != argc)
		usage(EX_USAGE);
	if (opt.decode != NULL) {
		if (opt.script != NULL || opt.encode != NULL ||
		    opt.exec != NULL || opt.host != NULL)
			die(EX_USAGE, "--decode takes no script, --encode, "
			    "--exec or -H");
	} else if (opt.script == NULL)
		die(EX_USAGE, "no script (try --help)");
	else if (opt.encode != NULL) {
		if (opt.exec != NULL || opt.host != NULL)
			die(EX_USAGE, "--encode connects to nothing: no "
			    "--exec or -H");
	} else if ((opt.exec == NULL) == (opt.host == NULL))
		die(EX_USAGE, "one of --exec and -H is needed");
	if (opt.host != NULL) {
		if ((h = dial_host(opt.host, hostbuf, sizeof(hostbuf))) == NULL)
			die(EX_USAGE, "bad host: %s", opt.host);
		opt.host = h;
	}

	crypto_init(0);
	atexit(cleanup);
	/* A server that has gone away is an EPIPE to handle, not a death. */
	signal(SIGPIPE, SIG_IGN);
	if (opt.session_key != NULL)
		load_session_key(opt.session_key);
	if (opt.decode != NULL)
		return run_decode(&run);
	run.nd = script_load(opt.script, &run.d);
	if (opt.encode != NULL)
		rv = run_encode(&run);
	else
		rv = run_live(&run);
	return rv;
}
