/*
 * fuzz-session -- libFuzzer target for a whole usmtp-handler session
 * after the key exchange (usmtp(7), from Greeting and commands on), in-process: the handler is
 * built with -DUSMTP_FUZZ (main is usmtp_handler_main, the one exit
 * longjmps back here, the session key is USMTP_FUZZ_KEY).
 *
 * Input format (tests/fuzz/README): byte 0 is the mode, the rest a list
 * of records separated by 0x1e (ASCII RS), each a tag byte and its text:
 *	c TEXT	a command frame: TEXT encrypted, CRLFCRLF
 *	b TEXT	a body frame: TEXT encrypted, .CRLFCRLF
 *	a NAME LF DATA   an attachment: a header "Content-Length: N,
 *		Filename: NAME, Size: M" frame, then DATA counted
 *	A NAME LF DATA   the same without Size: (reference style)
 *	x DATA	DATA encrypted and padded, with no terminator
 *	r DATA	raw bytes
 *	other	the whole record as a command frame
 * Modes: '?' the input is the raw stream from the first byte (handshake
 * included); '!' the handshake, then the input raw; 'F' the reference
 * client's handshake (its dialect), then records; anything else the
 * document's handshake, then records.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "usmtp.h"
#include "tests/fuzz/fuzz.h"

#define RS		0x1e
#define DOC_ALGOS	"support asymmetric-rsa2048 symmetric-aes-256-ecb?"
#define REF_ALGOS	"support asymetric-rsa-2048 symetric-aes-256-ecb?"
#define CLEAN_EVERY	512	/* runs between Maildir clean-ups */

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
	unsigned char	*p;
	size_t		 len, cap;
};

static char		 dir[64];
static char		 cert[64], users[64], maildir[96], mailroot[64];
static int		 devnull = -1;
static unsigned long	 runs;

static void	 put(struct out *o, const void *p, size_t n);
static void	 put_enc(struct out *o, const unsigned char *p, size_t n,
		    const char *term);
static void	 put_attachment(struct out *o, const unsigned char *p,
		    size_t n, int sized);
static void	 encode(struct out *o, const uint8_t *data, size_t size);
static int	 rm_all(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw);
static int	 rm_one(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw);
static void	 die(const char *what);
static void	 cleanup(void);

static void
die(const char *what)
{
	perror(what);
	abort();
}

static void
put(struct out *o, const void *p, size_t n)
{
	if (n == 0)		/* o->p may still be NULL: no memcpy to it */
		return;
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2 + 256;
		if ((o->p = realloc(o->p, o->cap)) == NULL)
			die("realloc");
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

/* text padded with 1..16 spaces (usmtp(7), Framing), encrypted, then term. */
static void
put_enc(struct out *o, const unsigned char *p, size_t n, const char *term)
{
	unsigned char	*buf;
	size_t		 padded = (n / 16 + 1) * 16;

	if ((buf = malloc(padded)) == NULL)
		die("malloc");
	memcpy(buf, p, n);
	memset(buf + n, ' ', padded - n);
	if (aes_ecb((const unsigned char *)USMTP_FUZZ_KEY, 1, buf, padded,
	    buf) == -1)
		die("aes_ecb");
	put(o, buf, padded);
	put(o, term, strlen(term));
	free(buf);
}

/* "NAME\nDATA": the header frame, then the counted content. */
static void
put_attachment(struct out *o, const unsigned char *p, size_t n, int sized)
{
	const unsigned char	*nl, *name = p;
	char			 head[512];
	size_t			 namelen, datalen, clen;
	int			 k;

	nl = memchr(p, '\n', n);
	namelen = nl != NULL ? (size_t)(nl - p) : 0;
	if (namelen > 200)
		namelen = 200;
	datalen = nl != NULL ? n - (size_t)(nl - p) - 1 : n;
	p = nl != NULL ? nl + 1 : p;
	clen = (datalen / 16 + 1) * 16 + 4;
	if (sized)
		k = snprintf(head, sizeof(head), "Content-Length: %zu\r\n"
		    "Filename: %.*s\r\nSize: %zu", clen, (int)namelen,
		    (const char *)name, datalen);
	else
		k = snprintf(head, sizeof(head), "Content-Length: %zu\r\n"
		    "Filename: %.*s", clen, (int)namelen, (const char *)name);
	put_enc(o, (unsigned char *)head, (size_t)k, "\r\n\r\n");
	put_enc(o, p, datalen, "\r\n\r\n");
}

static void
encode(struct out *o, const uint8_t *data, size_t size)
{
	static const unsigned char	 dummy[RSA_CIPHER_BYTES];
	const uint8_t			*rec, *end, *next;
	size_t				 n;
	int				 mode;

	if (size == 0)
		return;
	mode = data[0];
	data++;
	size--;
	if (mode == '?') {
		put(o, data, size);
		return;
	}
	put(o, "hello ssl1.0?\r\n\r\n", 17);
	if (mode == 'F')
		put(o, REF_ALGOS "\r\n\r\n", sizeof(REF_ALGOS) - 1 + 4);
	else
		put(o, DOC_ALGOS "\r\n\r\n", sizeof(DOC_ALGOS) - 1 + 4);
	put(o, dummy, sizeof(dummy));
	put(o, "\r\n\r\n", 4);
	if (mode == '!') {
		put(o, data, size);
		return;
	}
	end = data + size;
	for (rec = data; rec < end; rec = next + 1) {
		if ((next = memchr(rec, RS, (size_t)(end - rec))) == NULL)
			next = end;
		n = (size_t)(next - rec);
		if (n == 0)
			continue;
		switch (rec[0]) {
		case 'c':
			put_enc(o, rec + 1, n - 1, "\r\n\r\n");
			break;
		case 'b':
			put_enc(o, rec + 1, n - 1, ".\r\n\r\n");
			break;
		case 'a':
		case 'A':
			put_attachment(o, rec + 1, n - 1, rec[0] == 'a');
			break;
		case 'x':
			put_enc(o, rec + 1, n - 1, "");
			break;
		case 'r':
			put(o, rec + 1, n - 1);
			break;
		default:
			put_enc(o, rec, n, "\r\n\r\n");
		}
	}
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level > 0 && remove(path) == -1)
		die(path);
	return 0;
}

/* Removes the scratch directory when the fuzzer exits. */
static void
cleanup(void)
{
	nftw(dir, rm_all, 16, FTW_DEPTH | FTW_PHYS);
}

static int
rm_all(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct {
		const char	*addr, *pw;
	} u[] = {
		{ "alice@example.org", "correct horse" },
		{ "bob@example.org", "bob-pw" },
		{ "testprotokolu1@wp.pl", "example123" },
		{ "testprotokolu2@wp.pl", "example123" },
		{ "aligned16@abc.pl", "sixteen-chars-pw" },
	};
	static const char pem[] = "-----BEGIN CERTIFICATE-----\n"
	    "ZnV6eg==\n-----END CERTIFICATE-----\n";
	char		 hash[AUTH_HASH_MAX + 1];
	const char	*why;
	size_t		 i;
	FILE		*f;

	(void)argc;
	(void)argv;
	/* tmpfs when there is one: fsync there costs nothing */
	snprintf(dir, sizeof(dir), "%s/usmtp-fuzz-XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	atexit(cleanup);
	snprintf(cert, sizeof(cert), "%s/server.pem", dir);
	snprintf(users, sizeof(users), "%s/users.db", dir);
	snprintf(mailroot, sizeof(mailroot), "%s/mail", dir);
	snprintf(maildir, sizeof(maildir), "%s/%%d/%%u/Maildir", mailroot);
	if ((f = fopen(cert, "w")) == NULL || fputs(pem, f) == EOF ||
	    fclose(f) == EOF)
		die(cert);
	for (i = 0; i < sizeof(u) / sizeof(u[0]); i++)
		if (auth_hash(u[i].pw, strlen(u[i].pw), AUTH_COST_MIN, hash,
		    sizeof(hash), &why) == -1 ||
		    auth_update(users, AUTH_ADD, u[i].addr, hash, NULL,
		    &why) == -1) {
			fprintf(stderr, "fuzz-session: %s: %s\n", users, why);
			abort();
		}
	if (mkdir(mailroot, 0700) == -1)
		die(mailroot);
	if ((devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		die("/dev/null");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		*argv[] = {
		"usmtp-handler", "--cert", cert, "--key", "/nonexistent",
		"--users", users, "--maildir", maildir, "--timeout", "5",
		"--max-body", "64K", "--max-attachment", "64K",
		"--log-stderr", NULL
	};
	struct out	 o = { NULL, 0, 0 };
	int		 fd, saved0, saved1;
	volatile int	 status;

	encode(&o, data, size);
	if ((fd = memfd_create("fuzz-session", 0)) == -1)
		die("memfd_create");
	if (o.len > 0 && write(fd, o.p, o.len) != (ssize_t)o.len)
		die("write");
	free(o.p);
	if (lseek(fd, 0, SEEK_SET) != 0)
		die("lseek");
	saved0 = dup(0);
	saved1 = dup(1);
	if (saved0 == -1 || saved1 == -1 || dup2(fd, 0) == -1 ||
	    dup2(devnull, 1) == -1)
		die("dup2");
	close(fd);
	if ((status = setjmp(usmtp_fuzz_jmp)) == 0)
		status = usmtp_handler_main(16, argv) + 1;
	status--;
	if (dup2(saved0, 0) == -1 || dup2(saved1, 1) == -1)
		die("dup2");
	close(saved0);
	close(saved1);
	/* 0, 1 and 78 (a bad user database) are the only session ends. */
	if (status != 0 && status != 1)
		abort();
	if (++runs % CLEAN_EVERY == 0 &&
	    nftw(mailroot, rm_one, 16, FTW_DEPTH | FTW_PHYS) == -1)
		die("nftw");
	return 0;
}
