/*
 * crypto.c -- keys, RSA-OAEP, AES-256-ECB with space padding, and the
 * buffered framed I/O both ends of USMTP speak (PROTOCOL.md 2, 3).
 *
 * Calls only OpenSSL and libc.  Never prints, logs or exits: failures
 * return -1 (or an FR_* code) with a static reason.  Knows nothing of
 * reply codes or session state.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "usmtp.h"

#define IN_START_BYTES	16384	/* first read buffer */
#define PEM_MAX_BYTES	65536	/* a key or certificate file */
#define AES_BLOCK	16

static const unsigned char crlf2[4] = { '\r', '\n', '\r', '\n' };

static int	 grow(unsigned char **buf, size_t *cap, size_t need,
		    int secret);
static long	 now_ms(void);
static int	 wait_fd(int fd, short events, long deadline, int idle_ms);
static int	 fill(struct frameio *io, long deadline);
static const unsigned char *find_crlf2(const unsigned char *p, size_t n);
static int	 find_term(struct frameio *io, enum ftype type, size_t max,
		    size_t *paylen, size_t *termlen);
static int	 read_file(const char *path, int secret, unsigned char **buf,
		    size_t *len, const char **why);

/*
 * Grows *buf to hold at least need bytes.  A secret buffer is never
 * realloc'd in place of a wipe: the old copy is cleansed and freed.
 */
static int
grow(unsigned char **buf, size_t *cap, size_t need, int secret)
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

static long
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits until fd is ready for events, at most idle_ms and never past
 * deadline (both <= 0: no limit).  1 ready, 0 timed out, -1 error.
 */
static int
wait_fd(int fd, short events, long deadline, int idle_ms)
{
	struct pollfd	pfd;
	long		left;
	int		r, ms;

	for (;;) {
		ms = idle_ms > 0 ? idle_ms : -1;
		if (deadline > 0) {
			/* Past the deadline we still take what is already
			 * there (poll with 0), but wait no more. */
			left = deadline - now_ms();
			if (left < 0)
				left = 0;
			if (ms < 0 || left < ms)
				ms = (int)left;
		}
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, ms);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

int
frame_init(struct frameio *io, int rfd, int wfd, int timeout_sec)
{
	memset(io, 0, sizeof(*io));
	io->rfd = rfd;
	io->wfd = wfd;
	io->timeout_ms = timeout_sec > 0 ? timeout_sec * 1000 : 0;
	if (grow(&io->in, &io->incap, IN_START_BYTES, 0) == -1)
		return -1;
	return 0;
}

void
frame_free(struct frameio *io)
{
	if (io->in != NULL) {
		OPENSSL_cleanse(io->in, io->incap);
		free(io->in);
	}
	if (io->out != NULL) {
		OPENSSL_cleanse(io->out, io->outcap);
		free(io->out);
	}
	if (io->plain != NULL) {
		OPENSSL_cleanse(io->plain, io->plaincap);
		free(io->plain);
	}
	EVP_CIPHER_CTX_free(io->enc);
	EVP_CIPHER_CTX_free(io->dec);
	memset(io, 0, sizeof(*io));
	io->rfd = io->wfd = -1;
}

void
frame_set_deadline(struct frameio *io, int seconds)
{
	io->deadline_ms = seconds > 0 ? now_ms() + (long)seconds * 1000 : 0;
}

int
frame_deadline_passed(const struct frameio *io)
{
	return io->deadline_ms > 0 && now_ms() >= io->deadline_ms;
}

/*
 * OpenSSL 3's first fetch of a cipher builds a method for every cipher
 * of the default provider, about 3 million instructions of each
 * connection's start-up for the one cipher we use.  The library's
 * built-in AES-256-ECB (the same AES-NI code), copied into a method of
 * our own, is used without a fetch.  EVP_CIPHER_meth_dup() is
 * deprecated in OpenSSL 3; where deprecated calls are compiled out, or
 * the copy fails, the cipher is fetched as usual.
 */
static const EVP_CIPHER *aes256ecb(void);

static const EVP_CIPHER *
aes256ecb(void)
{
#ifndef OPENSSL_NO_DEPRECATED_3_0
	static EVP_CIPHER	*meth;

	if (meth == NULL) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		meth = EVP_CIPHER_meth_dup(EVP_aes_256_ecb());
#pragma GCC diagnostic pop
	}
	if (meth != NULL)
		return meth;
#endif
	return EVP_aes_256_ecb();
}

void
crypto_init(uint64_t opts)
{
	OPENSSL_init_crypto(opts, NULL);
	/*
	 * Hash_DRBG with SHA-256 (NIST SP 800-90A, 256-bit strength) in
	 * place of the default CTR_DRBG with AES-256, which would build
	 * every cipher method (above) for its own AES.  Seeded from the
	 * kernel as usual.  If the DRBGs exist already, this fails and
	 * the default stays: nothing to report.
	 */
	if (RAND_set_DRBG_type(NULL, "HASH-DRBG", NULL, NULL, "SHA256") != 1)
		ERR_clear_error();
}

int
frame_setkey(struct frameio *io, const unsigned char *key)
{
	EVP_CIPHER_CTX_free(io->enc);
	EVP_CIPHER_CTX_free(io->dec);
	io->enc = EVP_CIPHER_CTX_new();
	io->dec = EVP_CIPHER_CTX_new();
	if (io->enc == NULL || io->dec == NULL ||
	    EVP_EncryptInit_ex(io->enc, aes256ecb(), NULL, key, NULL)
	    != 1 ||
	    EVP_DecryptInit_ex(io->dec, aes256ecb(), NULL, key, NULL)
	    != 1) {
		io->why = "cannot set up AES-256-ECB";
		return -1;
	}
	/* PROTOCOL.md 2: space padding is ours, never PKCS#7. */
	EVP_CIPHER_CTX_set_padding(io->enc, 0);
	EVP_CIPHER_CTX_set_padding(io->dec, 0);
	return 0;
}

size_t
frame_pending(const struct frameio *io)
{
	return io->inlen;
}

/*
 * Reads more input into io->in, flushing pending output first (so that
 * replies to pipelined frames leave before we block).  FR_OK when bytes
 * arrived, else FR_EOF, FR_TIMEOUT or FR_ERROR.
 */
static int
fill(struct frameio *io, long deadline)
{
	ssize_t	n;
	size_t	room;
	int	r;

	if (io->outlen > 0 && frame_flush(io) == -1)
		return FR_ERROR;
	if (io->inoff > 0 && io->inoff + io->inlen == io->incap) {
		memmove(io->in, io->in + io->inoff, io->inlen);
		io->inoff = 0;
	}
	if (io->inoff + io->inlen == io->incap &&
	    grow(&io->in, &io->incap, io->incap * 2, 0) == -1) {
		io->why = "out of memory";
		return FR_ERROR;
	}
	room = io->incap - io->inoff - io->inlen;
	for (;;) {
		r = wait_fd(io->rfd, POLLIN, deadline, io->timeout_ms);
		if (r == 0)
			return FR_TIMEOUT;
		if (r == -1) {
			io->why = "poll failed";
			return FR_ERROR;
		}
		n = read(io->rfd, io->in + io->inoff + io->inlen, room);
		if (n > 0) {
			io->inlen += (size_t)n;
			return FR_OK;
		}
		if (n == 0)
			return FR_EOF;
		if (errno == EINTR || errno == EAGAIN)
			continue;
		if (errno == ECONNRESET)
			return FR_EOF;
		io->why = "read failed";
		return FR_ERROR;
	}
}

/* The first CRLFCRLF in p[0..n), or NULL. */
static const unsigned char *
find_crlf2(const unsigned char *p, size_t n)
{
	const unsigned char	*q, *end = p + n;

	while (n >= 4 && (q = memchr(p, '\r', n - 3)) != NULL) {
		if (memcmp(q, crlf2, sizeof(crlf2)) == 0)
			return q;
		p = q + 1;
		n = (size_t)(end - p);
	}
	return NULL;
}

/*
 * Looks for the end of a frame of kind type in the buffered bytes.
 * FR_OK with the payload and terminator lengths when found; FR_EOF (more
 * input needed); FR_TOOBIG; FR_BADFRAME.
 */
static int
find_term(struct frameio *io, enum ftype type, size_t max, size_t *paylen,
    size_t *termlen)
{
	const unsigned char	*p = io->in + io->inoff;
	size_t			 n = io->inlen, k;
	const unsigned char	*hit;

	switch (type) {
	case FT_KEY:
		if (n < RSA_CIPHER_BYTES + sizeof(crlf2))
			return FR_EOF;
		/* PROTOCOL.md 3: read by count; the key may hold CRLFCRLF. */
		if (memcmp(p + RSA_CIPHER_BYTES, crlf2, sizeof(crlf2)) != 0)
			return FR_BADFRAME;
		*paylen = RSA_CIPHER_BYTES;
		*termlen = sizeof(crlf2);
		return FR_OK;
	case FT_PLAIN:
	case FT_PLAIN_DOT:
		k = io->scanned;
		for (;;) {
			hit = n > k ? find_crlf2(p + k, n - k) : NULL;
			if (hit == NULL)
				break;
			k = (size_t)(hit - p);
			if (type == FT_PLAIN) {
				*paylen = k;
				*termlen = 4;
				break;
			}
			if (k > 0 && p[k - 1] == '.') {
				*paylen = k - 1;
				*termlen = 5;
				break;
			}
			k++;
		}
		if (hit == NULL) {
			io->scanned = n >= 4 ? n - 4 : 0;
			if (n > max + 5)
				return FR_TOOBIG;
			return FR_EOF;
		}
		break;
	case FT_CIPHER:
	case FT_CIPHER_DOT:
		/*
		 * PROTOCOL.md 2: ciphertext is whole 16-byte blocks, so a
		 * terminator counts only at a positive multiple of 16.
		 */
		k = io->scanned < AES_BLOCK ? AES_BLOCK : io->scanned;
		for (; k + 4 + (type == FT_CIPHER_DOT) <= n; k += AES_BLOCK) {
			if (type == FT_CIPHER &&
			    memcmp(p + k, crlf2, sizeof(crlf2)) == 0) {
				*paylen = k;
				*termlen = 4;
				break;
			}
			if (type == FT_CIPHER_DOT && p[k] == '.' &&
			    memcmp(p + k + 1, crlf2, sizeof(crlf2)) == 0) {
				*paylen = k;
				*termlen = 5;
				break;
			}
			if (k > max)
				return FR_TOOBIG;
		}
		if (k + 4 + (type == FT_CIPHER_DOT) > n) {
			io->scanned = k;
			if (n > max + 5)
				return FR_TOOBIG;
			return FR_EOF;
		}
		break;
	}
	if (*paylen > max)
		return FR_TOOBIG;
	return FR_OK;
}

int
frame_read(struct frameio *io, enum ftype type, size_t max,
    unsigned char **data, size_t *len)
{
	size_t	 paylen = 0, termlen = 0, n;
	long	 deadline = 0;
	int	 r, outl;

	io->scanned = 0;
	/* A whole frame must arrive within one timeout: trickling a byte
	 * at a time cannot stretch it. */
	if (io->timeout_ms > 0)
		deadline = now_ms() + io->timeout_ms;
	if (io->deadline_ms > 0 && (deadline == 0 || io->deadline_ms < deadline))
		deadline = io->deadline_ms;
	for (;;) {
		r = find_term(io, type, max, &paylen, &termlen);
		if (r == FR_OK)
			break;
		if (r != FR_EOF)
			return r;
		r = fill(io, deadline);
		if (r == FR_EOF)
			return io->inlen == 0 ? FR_EOF : FR_TRUNC;
		if (r != FR_OK)
			return r;
	}
	io->scanned = 0;

	if (grow(&io->plain, &io->plaincap, paylen + 1, 1) == -1) {
		io->why = "out of memory";
		return FR_ERROR;
	}
	if ((type == FT_CIPHER || type == FT_CIPHER_DOT) && io->dec != NULL) {
		if (paylen > INT_MAX ||
		    EVP_DecryptUpdate(io->dec, io->plain, &outl,
		    io->in + io->inoff, (int)paylen) != 1 ||
		    (size_t)outl != paylen) {
			io->why = "AES decryption failed";
			return FR_ERROR;
		}
		/* PROTOCOL.md 2: strip the pad spaces; none is fine too. */
		n = paylen;
		while (n > 0 && io->plain[n - 1] == ' ')
			n--;
	} else {
		memcpy(io->plain, io->in + io->inoff, paylen);
		n = paylen;
	}
	io->plain[n] = '\0';
	io->inoff += paylen + termlen;
	io->inlen -= paylen + termlen;
	if (io->inlen == 0)
		io->inoff = 0;
	*data = io->plain;
	*len = n;
	return FR_OK;
}

int
frame_read_counted(struct frameio *io, size_t n,
    int (*sink)(void *arg, const unsigned char *p, size_t len), void *arg)
{
	size_t	take;
	int	r;

	while (n > 0) {
		if (io->inlen == 0) {
			/* Each chunk gets a fresh idle timeout. */
			r = fill(io, io->deadline_ms);
			if (r == FR_EOF)
				return FR_TRUNC;
			if (r != FR_OK)
				return r;
		}
		take = io->inlen < n ? io->inlen : n;
		if (take > STREAM_CHUNK_BYTES)
			take = STREAM_CHUNK_BYTES;
		if (sink(arg, io->in + io->inoff, take) == -1)
			return FR_ERROR;
		io->inoff += take;
		io->inlen -= take;
		if (io->inlen == 0)
			io->inoff = 0;
		n -= take;
	}
	return FR_OK;
}

int
frame_write_raw(struct frameio *io, const void *p, size_t len)
{
	/* Nothing to queue; io->out may still be NULL (no memcpy on it). */
	if (len == 0)
		return 0;
	if (grow(&io->out, &io->outcap, io->outlen + len, 1) == -1) {
		io->why = "out of memory";
		return -1;
	}
	memcpy(io->out + io->outlen, p, len);
	io->outlen += len;
	return 0;
}

int
frame_write(struct frameio *io, enum ftype type, const void *text,
    size_t len)
{
	size_t		 padded;
	unsigned char	*dst;
	int		 outl;

	if ((type != FT_CIPHER && type != FT_CIPHER_DOT) || io->enc == NULL) {
		if (frame_write_raw(io, text, len) == -1)
			return -1;
		if (type == FT_PLAIN_DOT || type == FT_CIPHER_DOT)
			if (frame_write_raw(io, ".", 1) == -1)
				return -1;
		return frame_write_raw(io, crlf2, sizeof(crlf2));
	}
	/* PROTOCOL.md 2, "always pad": 1 to 16 spaces, never none. */
	padded = (len / AES_BLOCK + 1) * AES_BLOCK;
	if (padded > INT_MAX ||
	    grow(&io->out, &io->outcap, io->outlen + padded + 5, 1) == -1) {
		io->why = "out of memory";
		return -1;
	}
	dst = io->out + io->outlen;
	memcpy(dst, text, len);
	memset(dst + len, ' ', padded - len);
	if (EVP_EncryptUpdate(io->enc, dst, &outl, dst, (int)padded) != 1 ||
	    (size_t)outl != padded) {
		OPENSSL_cleanse(dst, padded);
		io->why = "AES encryption failed";
		return -1;
	}
	io->outlen += padded;
	if (type == FT_CIPHER_DOT)
		io->out[io->outlen++] = '.';
	memcpy(io->out + io->outlen, crlf2, sizeof(crlf2));
	io->outlen += sizeof(crlf2);
	return 0;
}

int
frame_flush(struct frameio *io)
{
	size_t	off = 0;
	ssize_t	n;
	int	r;

	while (off < io->outlen) {
		n = write(io->wfd, io->out + off, io->outlen - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			r = wait_fd(io->wfd, POLLOUT, 0, io->timeout_ms);
			if (r == 1)
				continue;
			io->why = r == 0 ? "write timed out" : "poll failed";
			goto fail;
		}
		io->why = errno == EPIPE || errno == ECONNRESET ?
		    "peer closed the connection" : "write failed";
		goto fail;
	}
	io->outlen = 0;
	return 0;
fail:
	io->outlen = 0;
	return -1;
}

int
aes_stream_init(struct aes_stream *s, const unsigned char *key, int encrypt)
{
	s->ctx = EVP_CIPHER_CTX_new();
	if (s->ctx == NULL ||
	    EVP_CipherInit_ex(s->ctx, aes256ecb(), NULL, key, NULL,
	    encrypt ? 1 : 0) != 1) {
		EVP_CIPHER_CTX_free(s->ctx);
		s->ctx = NULL;
		return -1;
	}
	EVP_CIPHER_CTX_set_padding(s->ctx, 0);
	return 0;
}

int
aes_stream_update(struct aes_stream *s, const unsigned char *in, size_t len,
    unsigned char *out, size_t *outlen)
{
	int	outl;

	if (len > INT_MAX - AES_BLOCK ||
	    EVP_CipherUpdate(s->ctx, out, &outl, in, (int)len) != 1)
		return -1;
	*outlen = (size_t)outl;
	return 0;
}

void
aes_stream_free(struct aes_stream *s)
{
	EVP_CIPHER_CTX_free(s->ctx);
	s->ctx = NULL;
}

int
aes_ecb(const unsigned char *key, int encrypt, const unsigned char *in,
    size_t len, unsigned char *out)
{
	struct aes_stream	s;
	size_t			outl;
	int			rv = -1;

	if (len % AES_BLOCK != 0 || aes_stream_init(&s, key, encrypt) == -1)
		return -1;
	if (aes_stream_update(&s, in, len, out, &outl) == 0 && outl == len)
		rv = 0;
	aes_stream_free(&s);
	return rv;
}

/*
 * Reads a whole small file.  A secret file must be a regular file that
 * neither group nor others may read.
 */
static int
read_file(const char *path, int secret, unsigned char **buf, size_t *len,
    const char **why)
{
	struct stat	 st;
	unsigned char	*p = NULL;
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd, rv = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		*why = errno == ENOENT ? "no such file" :
		    errno == EACCES ? "permission denied" : "cannot open";
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto out;
	}
	if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		*why = "group or others may read it (run chmod 600 on it)";
		goto out;
	}
	if (st.st_size <= 0 || st.st_size > PEM_MAX_BYTES) {
		*why = "empty or too large to be a PEM file";
		goto out;
	}
	if ((p = malloc((size_t)st.st_size + 1)) == NULL) {
		*why = "out of memory";
		goto out;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, p + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			*why = "read failed";
			goto out;
		}
		off += (size_t)n;
	}
	p[off] = '\0';
	*buf = p;
	*len = off;
	p = NULL;
	rv = 0;
out:
	if (p != NULL) {
		OPENSSL_cleanse(p, (size_t)st.st_size + 1);
		free(p);
	}
	close(fd);
	return rv;
}

/*
 * OpenSSL 3's PEM_read_bio_PrivateKey builds a decoder chain from every
 * decoder of every provider before it parses a byte: about 8 million
 * instructions, over a millisecond of each session's start-up (the key
 * is loaded per connection).  The usual key, an unencrypted RSA key in
 * PKCS#8 ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") form, is parsed
 * here with the ASN.1 primitives instead and imported with
 * EVP_PKEY_fromdata; rsa_fast() returns NULL for anything else, which
 * then goes the general way.  Numbers pass through num[], wiped.
 */
static EVP_PKEY	*rsa_fast(const char *name, const char *hdr,
		    const unsigned char *der, long len);

static EVP_PKEY *
rsa_fast(const char *name, const char *hdr, const unsigned char *der,
    long len)
{
	/* RSAPrivateKey (RFC 8017 A.1.2) after its version, in order */
	static const char *const fields[8] = {
		OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E,
		OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
		OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
		OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1
	};
	unsigned char		 num[8][RSA_CIPHER_BYTES];
	OSSL_PARAM		 params[9];
	PKCS8_PRIV_KEY_INFO	*p8 = NULL;
	const ASN1_OBJECT	*alg;
	ASN1_INTEGER		*ai;
	BIGNUM			*bn;
	EVP_PKEY_CTX		*ctx = NULL;
	EVP_PKEY		*key = NULL;
	const unsigned char	*p = der, *end;
	long			 seqlen;
	int			 plen, tag, class, i, n, ok;

	if (*hdr != '\0')	/* Proc-Type: 4,ENCRYPTED */
		return NULL;
	if (strcmp(name, PEM_STRING_PKCS8INF) == 0) {
		if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len)) == NULL ||
		    !PKCS8_pkey_get0(&alg, &p, &plen, NULL, p8) ||
		    OBJ_obj2nid(alg) != NID_rsaEncryption)
			goto out;
	} else if (strcmp(name, PEM_STRING_RSA) == 0 && len <= INT_MAX)
		plen = (int)len;
	else
		return NULL;
	if (ASN1_get_object(&p, &seqlen, &tag, &class, plen) != 0x20 ||
	    tag != V_ASN1_SEQUENCE || class != V_ASN1_UNIVERSAL)
		goto out;
	end = p + seqlen;
	for (i = -1; i < 8; i++) {
		if ((ai = d2i_ASN1_INTEGER(NULL, &p, end - p)) == NULL)
			goto out;
		bn = ASN1_INTEGER_to_BN(ai, NULL);
		ASN1_STRING_clear_free(ai);
		if (bn == NULL)
			goto out;
		if (i == -1)	/* version 0: two primes */
			ok = BN_is_zero(bn);
		else {
			n = BN_num_bytes(bn);
			ok = !BN_is_negative(bn) && n > 0 &&
			    n <= RSA_CIPHER_BYTES &&
			    BN_bn2nativepad(bn, num[i], n) == n;
			if (ok)
				params[i] = OSSL_PARAM_construct_BN(fields[i],
				    num[i], (size_t)n);
		}
		BN_clear_free(bn);
		if (!ok)
			goto out;
	}
	if (p != end)
		goto out;
	params[8] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) <= 0)
		key = NULL;
out:
	OPENSSL_cleanse(num, sizeof(num));
	EVP_PKEY_CTX_free(ctx);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return key;
}

EVP_PKEY *
crypto_load_key(const char *path, const char **why)
{
	unsigned char	*pem = NULL, *der = NULL;
	char		*name = NULL, *hdr = NULL;
	long		 derlen = 0;
	size_t		 len = 0;
	BIO		*bio = NULL;
	EVP_PKEY	*key = NULL;

	if (read_file(path, 1, &pem, &len, why) == -1)
		return NULL;
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		*why = "out of memory";
		goto out;
	}
	if (PEM_read_bio(bio, &name, &hdr, &der, &derlen))
		key = rsa_fast(name, hdr, der, derlen);
	if (key == NULL) {
		BIO_free(bio);
		if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
			*why = "out of memory";
			goto out;
		}
		key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	}
	if (key == NULL) {
		*why = "not a PEM private key (or it is encrypted)";
		goto out;
	}
	if (!EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_get_bits(key) != 2048) {
		*why = "not an RSA-2048 key (PROTOCOL.md 3)";
		EVP_PKEY_free(key);
		key = NULL;
	}
out:
	BIO_free(bio);
	OPENSSL_free(name);
	OPENSSL_free(hdr);
	if (der != NULL)
		OPENSSL_clear_free(der, (size_t)derlen);
	OPENSSL_cleanse(pem, len);
	free(pem);
	ERR_clear_error();
	return key;
}

char *
crypto_read_cert_pem(const char *path, size_t *len, const char **why)
{
	static const char	 begin[] = "-----BEGIN CERTIFICATE-----";
	static const char	 end[] = "-----END CERTIFICATE-----";
	unsigned char		*buf = NULL;
	char			*b, *e, *pem;
	size_t			 n;

	if (read_file(path, 0, &buf, &n, why) == -1)
		return NULL;
	if ((b = strstr((char *)buf, begin)) == NULL ||
	    (e = strstr(b, end)) == NULL) {
		*why = "no PEM certificate in it";
		free(buf);
		return NULL;
	}
	e += sizeof(end) - 1;
	n = (size_t)(e - b);
	if ((pem = malloc(n + 2)) == NULL) {
		*why = "out of memory";
		free(buf);
		return NULL;
	}
	memcpy(pem, b, n);
	pem[n++] = '\n';
	pem[n] = '\0';
	free(buf);
	*len = n;
	return pem;
}

/* Sets ctx up for RSA-OAEP with SHA-256 and MGF1-SHA-256, no label. */
static int	oaep_ctx(EVP_PKEY_CTX *ctx);

static int
oaep_ctx(EVP_PKEY_CTX *ctx)
{
	if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0)
		return -1;
	return 0;
}

int
crypto_rsa_decrypt(EVP_PKEY *key, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsz, size_t *outlen)
{
	EVP_PKEY_CTX	*ctx;
	unsigned char	 tmp[RSA_CIPHER_BYTES];
	size_t		 n = sizeof(tmp);
	int		 rv = -1;

	if ((ctx = EVP_PKEY_CTX_new(key, NULL)) == NULL)
		return -1;
	if (EVP_PKEY_decrypt_init(ctx) <= 0 || oaep_ctx(ctx) == -1)
		goto out;
	if (EVP_PKEY_decrypt(ctx, tmp, &n, in, inlen) <= 0 || n > outsz)
		goto out;
	memcpy(out, tmp, n);
	*outlen = n;
	rv = 0;
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return rv;
}

int
crypto_rsa_encrypt(EVP_PKEY *pub, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsz, size_t *outlen)
{
	EVP_PKEY_CTX	*ctx;
	size_t		 n = outsz;
	int		 rv = -1;

	if ((ctx = EVP_PKEY_CTX_new(pub, NULL)) == NULL)
		return -1;
	if (EVP_PKEY_encrypt_init(ctx) > 0 && oaep_ctx(ctx) == 0 &&
	    EVP_PKEY_encrypt(ctx, out, &n, in, inlen) > 0) {
		*outlen = n;
		rv = 0;
	}
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return rv;
}

int
crypto_random(void *buf, size_t n)
{
	if (n > INT_MAX || RAND_bytes(buf, (int)n) != 1)
		return -1;
	return 0;
}
