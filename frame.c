/*
 * frame.c -- the frame layer both ends of USMTP speak (usmtp(7),
 * Framing): buffered reads and writes over a pair of descriptors, every
 * wait bounded by a deadline, frames found by their terminators or
 * counts, and the two record layers: USMTP 1.0's (AES-256-ECB with
 * space padding, usmtp(7) Framing) and secure mode's (Noise transport
 * messages, usmtp(7) SECURE MODE), so that the session above does not
 * know which is in use.  Attachment content goes through here both
 * ways, in one direction each: read, decrypted and unpadded into a sink;
 * read from a file, padded and encrypted onto the wire.
 *
 * Calls crypto.c, util.c, OpenSSL and libc.  Never prints, logs or
 * exits: failures return an FR_* code or -1 with a static reason in
 * io->why.  Knows nothing of reply codes or session state.
 */
#define _GNU_SOURCE		/* ppoll */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "usmtp.h"

#define IN_START_BYTES	16384	/* first read buffer */
#define DRAIN_MAX_BYTES	(16 * 1024 * 1024)	/* read while writing, at most */
#define AES_BLOCK	16
#define REC_LEN_BYTES	2	/* secure mode: a record's length prefix */
#define REC_MIN_BYTES	(NOISE_TAG_BYTES + 1)	/* the flag byte */
#define PIECE_MAX_BYTES	(NOISE_PLAIN_MAX_BYTES - 1)	/* 65518 */
#define FLAG_MORE	0x00	/* more messages of this frame follow */
#define FLAG_LAST	0x01	/* the frame ends with this message */

static const unsigned char crlf2[4] = { '\r', '\n', '\r', '\n' };

/* Attachment content being read (frame_read_content). */
struct content {
	uint64_t	  body;		/* ciphertext bytes: N - 4 */
	uint64_t	  seen;		/* of all N bytes */
	int		  sized;	/* cut the plaintext to size */
	uint64_t	  size, out;	/* wanted and passed on */
	size_t		  spaces;	/* trailing spaces held back */
	unsigned char	  tail[4];
	EVP_CIPHER_CTX	 *dec;		/* NULL: plaintext */
	int		(*sink)(void *, const unsigned char *, size_t);
	void		 *arg;
};

static int	 wait_fds(struct frameio *io, struct pollfd *pfd, int n,
		    long deadline, int idle_ms);
static int	 wait_fd(struct frameio *io, int fd, short events,
		    long deadline, int idle_ms);
static long	 frame_deadline(const struct frameio *io);
static int	 wait_writable(struct frameio *io, long deadline);
static int	 read_in(struct frameio *io);
static int	 fill(struct frameio *io, long deadline);
static const unsigned char *find_crlf2(const unsigned char *p, size_t n);
static int	 find_term(struct frameio *io, enum ftype type, size_t max,
		    size_t *paylen, size_t *termlen);
static size_t	 pad_len(uint64_t n, enum fpad pad);
static int	 content_put(struct content *c, const unsigned char *p,
		    size_t len);
static int	 content_emit(struct content *c, const unsigned char *p,
		    size_t len);
static int	 content_sink(void *arg, const unsigned char *p, size_t len);
static int	 read_full(int fd, unsigned char *p, size_t n);
static int	 keep(struct frameio *io, const void *p, size_t n);
static int	 record_next(struct frameio *io, long deadline,
		    unsigned char **p, size_t *len, int *last);
static int	 record_read(struct frameio *io, size_t max,
		    unsigned char **data, size_t *len);
static int	 record_content(struct frameio *io, uint64_t n,
		    int (*sink)(void *, const unsigned char *, size_t),
		    void *arg);
static int	 record_queue(struct frameio *io, const unsigned char *p,
		    size_t len, int last);

/*
 * Polls pfd[0..n), at most idle_ms and never past deadline (both <= 0:
 * no limit) nor past io->deadline_ms, with io->waitmask as the signal
 * mask meanwhile; io->tick, if set, is called every io->tick_ms of the
 * wait (it may move io->deadline_ms).  1 ready, 0 timed out, -1 error,
 * -2 interrupted (*io->stop set by a signal).
 */
static int
wait_fds(struct frameio *io, struct pollfd *pfd, int n, long deadline,
    int idle_ms)
{
	struct timespec	 ts, *tsp;
	long		 now = clock_ms(), end = -1, ms;
	int		 i, r;

	if (idle_ms > 0)
		end = now + idle_ms;
	for (;;) {
		if (io->stop != NULL && *io->stop)
			return -2;
		if (deadline > 0 && (end < 0 || deadline < end))
			end = deadline;
		if (io->deadline_ms > 0 && (end < 0 || io->deadline_ms < end))
			end = io->deadline_ms;
		/* Past the end we still take what is already there (poll
		 * with 0), but wait no more. */
		ms = end < 0 ? -1 : end > now ? end - now : 0;
		if (io->tick != NULL && io->tick_ms > 0 &&
		    (ms < 0 || ms > io->tick_ms))
			ms = io->tick_ms;
		tsp = NULL;
		if (ms >= 0) {
			ts.tv_sec = ms / 1000;
			ts.tv_nsec = (ms % 1000) * 1000000;
			tsp = &ts;
		}
		for (i = 0; i < n; i++)
			pfd[i].revents = 0;
		/* ppoll: a signal blocked outside the wait (io->waitmask
		 * unblocks it) cannot slip in between the check above and
		 * the wait. */
		r = ppoll(pfd, (nfds_t)n, tsp, io->waitmask);
		if (r > 0)
			return 1;
		if (r == -1 && errno != EINTR)
			return -1;
		now = clock_ms();
		if (r == 0 && end >= 0 && now >= end)
			return 0;
		if (r == 0 && io->tick != NULL)
			io->tick(io->tick_arg);
	}
}

static int
wait_fd(struct frameio *io, int fd, short events, long deadline,
    int idle_ms)
{
	struct pollfd	pfd;

	pfd.fd = fd;
	pfd.events = events;
	return wait_fds(io, &pfd, 1, deadline, idle_ms);
}

int
frame_init(struct frameio *io, int rfd, int wfd, int timeout_sec)
{
	struct stat	st;

	memset(io, 0, sizeof(*io));
	io->rfd = rfd;
	io->wfd = wfd;
	/* A socket is written with MSG_DONTWAIT: no write blocks past the
	 * deadline, whatever the descriptor's flags (under inetd they are
	 * shared with the service manager). */
	io->wsock = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
	io->timeout_ms = timeout_sec > 0 ? timeout_sec * 1000 : 0;
	if (buf_grow(&io->in, &io->incap, IN_START_BYTES, 0) == -1)
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
	if (io->kept != NULL) {
		OPENSSL_cleanse(io->kept, io->keptcap);
		free(io->kept);
	}
	EVP_CIPHER_CTX_free(io->enc);
	EVP_CIPHER_CTX_free(io->dec);
	noise_cipher_clear(&io->tx);
	noise_cipher_clear(&io->rx);
	memset(io, 0, sizeof(*io));
	io->rfd = io->wfd = -1;
}

/* Appends to the copy of the plaintext exchange, when one is kept. */
static int
keep(struct frameio *io, const void *p, size_t n)
{
	if (!io->keep || n == 0)
		return 0;
	if (buf_grow(&io->kept, &io->keptcap, io->keptlen + n, 0) == -1) {
		io->why = "out of memory";
		return -1;
	}
	memcpy(io->kept + io->keptlen, p, n);
	io->keptlen += n;
	return 0;
}

void
frame_set_noise(struct frameio *io, struct noise_cipher *tx,
    struct noise_cipher *rx)
{
	noise_cipher_clear(&io->tx);
	noise_cipher_clear(&io->rx);
	io->tx = *tx;
	io->rx = *rx;
	memset(tx, 0, sizeof(*tx));
	memset(rx, 0, sizeof(*rx));
	io->noise = 1;
	io->keep = 0;
}

void
frame_set_deadline(struct frameio *io, int seconds)
{
	io->deadline_ms = seconds > 0 ? clock_ms() + (long)seconds * 1000 :
	    0;
}

int
frame_deadline_passed(const struct frameio *io)
{
	return io->deadline_ms > 0 && clock_ms() >= io->deadline_ms;
}

int
frame_setkey(struct frameio *io, const unsigned char *key)
{
	EVP_CIPHER_CTX_free(io->enc);
	EVP_CIPHER_CTX_free(io->dec);
	io->keep = 0;		/* no prologue in 1.0 */
	io->enc = aes_ecb_new(key, 1);
	io->dec = aes_ecb_new(key, 0);
	if (io->enc == NULL || io->dec == NULL) {
		io->why = "cannot set up AES-256-ECB";
		return -1;
	}
	return 0;
}

size_t
frame_pending(const struct frameio *io)
{
	return io->inlen;
}

/* The end of the wait for one frame: one idle timeout from now, and
 * never past the session's deadline. */
static long
frame_deadline(const struct frameio *io)
{
	long	deadline = 0;

	if (io->timeout_ms > 0)
		deadline = clock_ms() + io->timeout_ms;
	if (io->deadline_ms > 0 && (deadline == 0 || io->deadline_ms < deadline))
		deadline = io->deadline_ms;
	return deadline;
}

/*
 * Reads what is there into io->in, growing it when full.  FR_OK when
 * bytes arrived, FR_EOF at the end of input (remembered), FR_TIMEOUT
 * when nothing is there yet (EAGAIN), FR_ERROR.
 */
static int
read_in(struct frameio *io)
{
	ssize_t	n;

	if (io->eof)
		return FR_EOF;
	if (io->inoff > 0 && io->inoff + io->inlen == io->incap) {
		memmove(io->in, io->in + io->inoff, io->inlen);
		io->inoff = 0;
	}
	if (io->inoff + io->inlen == io->incap &&
	    buf_grow(&io->in, &io->incap, io->incap * 2, 0) == -1) {
		io->why = "out of memory";
		return FR_ERROR;
	}
	for (;;) {
		n = read(io->rfd, io->in + io->inoff + io->inlen,
		    io->incap - io->inoff - io->inlen);
		if (n > 0) {
			io->inlen += (size_t)n;
			return FR_OK;
		}
		if (n == 0 || errno == ECONNRESET) {
			io->eof = 1;
			return FR_EOF;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return FR_TIMEOUT;
		io->why = "read failed";
		return FR_ERROR;
	}
}

/*
 * Reads more input into io->in, flushing pending output first (so that
 * replies to pipelined frames leave before we block).  FR_OK when bytes
 * arrived, else FR_EOF, FR_TIMEOUT or FR_ERROR.
 */
static int
fill(struct frameio *io, long deadline)
{
	int	r;

	if (io->outlen > 0 && frame_flush(io) == -1)
		return FR_ERROR;
	if (io->eof)
		return FR_EOF;
	for (;;) {
		r = wait_fd(io, io->rfd, POLLIN, deadline, io->timeout_ms);
		if (r == 0) {
			io->timedout = 1;
			return FR_TIMEOUT;
		}
		if (r == -2) {
			io->why = "interrupted";
			return FR_INTR;
		}
		if (r == -1) {
			io->why = "poll failed";
			return FR_ERROR;
		}
		if ((r = read_in(io)) != FR_TIMEOUT)
			return r;
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
	case FT_RECORD:		/* record_read()'s */
		return FR_BADFRAME;
	case FT_KEY:
		if (n < RSA_CIPHER_BYTES + sizeof(crlf2))
			return FR_EOF;
		/* usmtp(7), Handshake: read by count; the key block may
		 * hold CRLFCRLF. */
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
		 * usmtp(7), Framing: ciphertext is whole 16-byte blocks, so
		 * a terminator counts only at a positive multiple of 16.
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
	long	 deadline;
	int	 r, outl;

	if (type == FT_RECORD || (io->noise &&
	    (type == FT_CIPHER || type == FT_CIPHER_DOT)))
		return record_read(io, max, data, len);
	io->scanned = 0;
	/* A whole frame must arrive within one timeout: trickling a byte
	 * at a time cannot stretch it. */
	deadline = frame_deadline(io);
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

	if (buf_grow(&io->plain, &io->plaincap, paylen + 1, 1) == -1) {
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
		/* usmtp(7), Framing: strip the pad spaces; none is fine. */
		n = paylen;
		while (n > 0 && io->plain[n - 1] == ' ')
			n--;
	} else {
		memcpy(io->plain, io->in + io->inoff, paylen);
		n = paylen;
	}
	io->plain[n] = '\0';
	if ((type == FT_PLAIN || type == FT_PLAIN_DOT) &&
	    keep(io, io->in + io->inoff, paylen + termlen) == -1)
		return FR_ERROR;
	io->inoff += paylen + termlen;
	io->inlen -= paylen + termlen;
	io->rxbytes += paylen + termlen;
	if (io->inlen == 0)
		io->inoff = 0;
	*data = io->plain;
	*len = n;
	return FR_OK;
}

/*
 * Secure mode: the next record, whole in the buffer, within deadline.
 * Handshake (!io->noise): *p is the Noise message as it came.  After it:
 * *p is the decrypted content after the flag byte, *last the flag.  The
 * record is consumed.  FR_OK; FR_EOF before its first byte; FR_TRUNC,
 * FR_TIMEOUT, FR_INTR, FR_ERROR; FR_BADFRAME for a length out of range,
 * a failed authentication or a bad flag (io->why says which).
 */
static int
record_next(struct frameio *io, long deadline, unsigned char **p,
    size_t *len, int *last)
{
	unsigned char		*in;
	size_t			 rl, outl;
	int			 r;

	for (;;) {
		in = io->in + io->inoff;
		if (io->inlen >= REC_LEN_BYTES) {
			rl = (size_t)in[0] << 8 | in[1];
			if ((io->noise && rl < REC_MIN_BYTES) || rl == 0) {
				io->why = "record length out of range";
				return FR_BADFRAME;
			}
			if (io->inlen >= REC_LEN_BYTES + rl)
				break;
		}
		r = fill(io, deadline);
		if (r == FR_EOF)
			return io->inlen == 0 ? FR_EOF : FR_TRUNC;
		if (r != FR_OK)
			return r;
	}
	in += REC_LEN_BYTES;
	io->inoff += REC_LEN_BYTES + rl;
	io->inlen -= REC_LEN_BYTES + rl;
	io->rxbytes += REC_LEN_BYTES + rl;
	io->rxrecords++;
	if (!io->noise) {
		*p = in;	/* valid until the next fill: none comes */
		*len = rl;
		*last = 1;
		if (io->inlen == 0)
			io->inoff = 0;
		return FR_OK;
	}
	/* Decrypted in place: the record is consumed either way. */
	if (noise_decrypt(&io->rx, in, rl, in, &outl, &io->why) == -1) {
		io->why = "record authentication failed";
		return FR_BADFRAME;
	}
	if (in[0] != FLAG_LAST && (in[0] != FLAG_MORE || outl == 1)) {
		OPENSSL_cleanse(in + 1, outl - 1);
		io->why = in[0] == FLAG_MORE ? "empty record inside a frame" :
		    "bad record flag";
		return FR_BADFRAME;
	}
	*last = in[0] == FLAG_LAST;
	*p = in + 1;
	*len = outl - 1;
	return FR_OK;
}

/*
 * Secure mode: one frame (or, FT_RECORD, one handshake message) of at
 * most max bytes, reassembled from its records into io->plain.
 */
static int
record_read(struct frameio *io, size_t max, unsigned char **data,
    size_t *len)
{
	unsigned char		*p;
	size_t			 n = 0, pl;
	long			 deadline = frame_deadline(io);
	int			 r, last = 0, first = 1;

	while (!last) {
		r = record_next(io, deadline, &p, &pl, &last);
		if (r == FR_EOF && !first)
			r = FR_TRUNC;
		if (r != FR_OK)
			return r;
		first = 0;
		if (pl > max - n) {
			OPENSSL_cleanse(p, pl);
			return FR_TOOBIG;
		}
		if (buf_grow(&io->plain, &io->plaincap, n + pl + 1, 1) == -1) {
			io->why = "out of memory";
			return FR_ERROR;
		}
		memcpy(io->plain + n, p, pl);
		OPENSSL_cleanse(p, pl);
		n += pl;
	}
	if (io->inlen == 0)
		io->inoff = 0;
	if (buf_grow(&io->plain, &io->plaincap, n + 1, 1) == -1) {
		io->why = "out of memory";
		return FR_ERROR;
	}
	io->plain[n] = '\0';
	*data = io->plain;
	*len = n;
	return FR_OK;
}

/*
 * Secure mode: an attachment's content, one frame of exactly n bytes,
 * each record handed to sink as it comes.  Each record waits at most
 * one idle timeout.
 */
static int
record_content(struct frameio *io, uint64_t n,
    int (*sink)(void *, const unsigned char *, size_t), void *arg)
{
	unsigned char		*p;
	uint64_t		 got = 0;
	size_t			 pl;
	int			 r, last = 0;

	while (!last) {
		r = record_next(io, frame_deadline(io), &p, &pl, &last);
		if (r == FR_EOF)
			r = FR_TRUNC;
		if (r != FR_OK)
			return r;
		if (pl > n - got) {
			io->why = "content longer than announced";
			return FR_BADFRAME;
		}
		got += pl;
		r = pl > 0 ? sink(arg, p, pl) : 0;
		OPENSSL_cleanse(p, pl);
		if (r == -1)
			return FR_ERROR;
	}
	if (io->inlen == 0)
		io->inoff = 0;
	if (got != n) {
		io->why = "content shorter than announced";
		return FR_BADFRAME;
	}
	return FR_OK;
}

int
frame_read_counted(struct frameio *io, uint64_t n,
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
		take = io->inlen < n ? io->inlen : (size_t)n;
		if (take > STREAM_CHUNK_BYTES)
			take = STREAM_CHUNK_BYTES;
		if (sink(arg, io->in + io->inoff, take) == -1)
			return FR_ERROR;
		io->inoff += take;
		io->inlen -= take;
		io->rxbytes += take;
		if (io->inlen == 0)
			io->inoff = 0;
		n -= take;
	}
	return FR_OK;
}

/* Hands plaintext on, counting it. */
static int
content_put(struct content *c, const unsigned char *p, size_t len)
{
	c->out += len;
	if (len == 0)
		return 0;
	return c->sink(c->arg, p, len);
}

/*
 * usmtp(7), Attachments: plaintext is cut to exactly Size: bytes, or
 * else its trailing spaces are held back until a non-space shows they
 * were not padding.
 */
static int
content_emit(struct content *c, const unsigned char *p, size_t len)
{
	static unsigned char	spaces[512];
	size_t			j, n;

	if (c->sized) {
		if (len > c->size - c->out)
			len = (size_t)(c->size - c->out);
		return content_put(c, p, len);
	}
	for (j = len; j > 0 && p[j - 1] == ' '; j--)
		;
	if (j == 0) {
		c->spaces += len;
		return 0;
	}
	if (spaces[0] != ' ')
		memset(spaces, ' ', sizeof(spaces));
	while (c->spaces > 0) {
		n = c->spaces < sizeof(spaces) ? c->spaces : sizeof(spaces);
		if (content_put(c, spaces, n) == -1)
			return -1;
		c->spaces -= n;
	}
	c->spaces = len - j;
	return content_put(c, p, j);
}

/*
 * frame_read_counted() sink: the ciphertext (the first N - 4 bytes) is
 * decrypted and passed on; the last 4 bytes are kept to be checked.
 */
static int
content_sink(void *arg, const unsigned char *p, size_t len)
{
	struct content	*c = arg;
	unsigned char	 out[STREAM_CHUNK_BYTES];
	size_t		 take, used = 0;
	int		 outl, rv = 0;

	while (len > 0 && rv == 0) {
		if (c->seen >= c->body) {
			take = len < 4 - (c->seen - c->body) ? len :
			    (size_t)(4 - (c->seen - c->body));
			memcpy(c->tail + (c->seen - c->body), p, take);
		} else {
			take = c->body - c->seen < len ?
			    (size_t)(c->body - c->seen) : len;
			if (take > sizeof(out))
				take = sizeof(out);
			if (c->dec == NULL)
				rv = content_emit(c, p, take);
			else if (EVP_DecryptUpdate(c->dec, out, &outl, p,
			    (int)take) != 1)
				rv = -1;
			else {
				if ((size_t)outl > used)
					used = (size_t)outl;
				rv = content_emit(c, out, (size_t)outl);
			}
		}
		c->seen += take;
		p += take;
		len -= take;
	}
	OPENSSL_cleanse(out, used);	/* not all 64 KiB per read */
	return rv;
}

int
frame_read_content(struct frameio *io, uint64_t n, int64_t size,
    int (*sink)(void *arg, const unsigned char *p, size_t len), void *arg)
{
	struct content	c;
	int		r;

	if (io->noise)
		return record_content(io, n, sink, arg);
	if (n < sizeof(crlf2) || (n - sizeof(crlf2)) % AES_BLOCK != 0 ||
	    (size >= 0 && (uint64_t)size > n - sizeof(crlf2))) {
		io->why = "bad content length";
		return FR_ERROR;
	}
	memset(&c, 0, sizeof(c));
	c.body = n - sizeof(crlf2);
	c.sized = size >= 0;
	c.size = size >= 0 ? (uint64_t)size : 0;
	c.dec = io->dec;
	c.sink = sink;
	c.arg = arg;
	io->why = NULL;
	r = frame_read_counted(io, n, content_sink, &c);
	if (r == FR_ERROR && io->why == NULL)
		io->why = "the content could not be passed on";
	if (r != FR_OK)
		return r;
	/* usmtp(7), Attachments: else the stream is out of step. */
	if (memcmp(c.tail, crlf2, sizeof(crlf2)) != 0)
		return FR_BADFRAME;
	return FR_OK;
}

/* Pad spaces after n bytes: ours 1..16 (usmtp(7), Framing, "always
 * pad"), the reference implementation's 0..15. */
static size_t
pad_len(uint64_t n, enum fpad pad)
{
	if (pad == FPAD_REF)
		return (AES_BLOCK - n % AES_BLOCK) % AES_BLOCK;
	return AES_BLOCK - n % AES_BLOCK;
}

uint64_t
frame_content_length(const struct frameio *io, uint64_t size, enum fpad pad)
{
	if (io->noise)		/* usmtp(7), SECURE MODE: the exact size */
		return size;
	return size + pad_len(size, pad) + sizeof(crlf2);
}

/* Reads exactly n bytes of a file: 0, -1 (errno; 0 when it ended). */
static int
read_full(int fd, unsigned char *p, size_t n)
{
	ssize_t	r;
	size_t	got = 0;

	while (got < n) {
		r = read(fd, p + got, n - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int
frame_write_content(struct frameio *io, int fd, uint64_t size,
    enum fpad pad, void (*progress)(void *arg, uint64_t done), void *arg)
{
	int		 r;
	unsigned char	*dst;
	uint64_t	 done = 0;
	size_t		 want, padn, chunk;
	int		 outl;

	if (io->noise) {
		unsigned char	 piece[PIECE_MAX_BYTES];

		do {
			want = size - done < sizeof(piece) ?
			    (size_t)(size - done) : sizeof(piece);
			if (read_full(fd, piece, want) == -1) {
				OPENSSL_cleanse(piece, sizeof(piece));
				io->why = errno != 0 ? "cannot read the file" :
				    "the file shrank while it was sent";
				return -2;
			}
			done += want;
			r = record_queue(io, piece, want, done == size);
			OPENSSL_cleanse(piece, want);
			if (r == -1 || frame_flush(io) == -1)
				return -1;
			if (progress != NULL)
				progress(arg, done);
		} while (done < size);
		return 0;
	}
	do {
		want = size - done < STREAM_CHUNK_BYTES ?
		    (size_t)(size - done) : STREAM_CHUNK_BYTES;
		padn = done + want == size ? pad_len(size, pad) : 0;
		chunk = want + padn;
		if (buf_grow(&io->out, &io->outcap, io->outlen + chunk + 4,
		    1) == -1) {
			io->why = "out of memory";
			return -1;
		}
		dst = io->out + io->outlen;
		if (read_full(fd, dst, want) == -1) {
			io->why = errno != 0 ? "cannot read the file" :
			    "the file shrank while it was sent";
			return -2;
		}
		memset(dst + want, ' ', padn);
		if (io->enc != NULL && (EVP_EncryptUpdate(io->enc, dst, &outl,
		    dst, (int)chunk) != 1 || (size_t)outl != chunk)) {
			OPENSSL_cleanse(dst, chunk);
			io->why = "AES encryption failed";
			return -1;
		}
		io->outlen += chunk;
		done += want;
		if (done == size) {
			memcpy(io->out + io->outlen, crlf2, sizeof(crlf2));
			io->outlen += sizeof(crlf2);
		}
		if (frame_flush(io) == -1)
			return -1;
		if (progress != NULL)
			progress(arg, done);
	} while (done < size);
	return 0;
}

/* Secure mode: queues one transport message: flag, then len bytes. */
static int
record_queue(struct frameio *io, const unsigned char *p, size_t len,
    int last)
{
	unsigned char	*dst;
	size_t		 ml = 1 + len + NOISE_TAG_BYTES;

	if (buf_grow(&io->out, &io->outcap, io->outlen + REC_LEN_BYTES + ml,
	    1) == -1) {
		io->why = "out of memory";
		return -1;
	}
	dst = io->out + io->outlen;
	dst[0] = (unsigned char)(ml >> 8);
	dst[1] = (unsigned char)ml;
	dst[2] = last ? FLAG_LAST : FLAG_MORE;
	memcpy(dst + 3, p, len);
	if (noise_encrypt(&io->tx, dst + 2, 1 + len, dst + 2, &io->why)
	    == -1) {
		OPENSSL_cleanse(dst, REC_LEN_BYTES + ml);
		return -1;
	}
	io->outlen += REC_LEN_BYTES + ml;
	return 0;
}

int
frame_write_raw(struct frameio *io, const void *p, size_t len)
{
	/* Nothing to queue; io->out may still be NULL (no memcpy on it). */
	if (len == 0)
		return 0;
	if (buf_grow(&io->out, &io->outcap, io->outlen + len, 1) == -1) {
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
	return frame_write_padded(io, type, text, len, FPAD_ALWAYS);
}

int
frame_write_padded(struct frameio *io, enum ftype type, const void *text,
    size_t len, enum fpad pad)
{
	size_t		 padded, piece;
	unsigned char	*dst, hdr[REC_LEN_BYTES];
	const unsigned char *p = text;
	int		 outl;

	if (type == FT_RECORD) {
		/* A handshake message, as it is, after its length. */
		if (len == 0 || len > NOISE_MSG_MAX_BYTES) {
			io->why = "record too long";
			return -1;
		}
		hdr[0] = (unsigned char)(len >> 8);
		hdr[1] = (unsigned char)len;
		if (frame_write_raw(io, hdr, sizeof(hdr)) == -1)
			return -1;
		return frame_write_raw(io, text, len);
	}
	if (io->noise && (type == FT_CIPHER || type == FT_CIPHER_DOT)) {
		/* usmtp(7), SECURE MODE, Records: no pad, no terminator;
		 * an empty frame is one message holding just the flag. */
		do {
			piece = len < PIECE_MAX_BYTES ? len : PIECE_MAX_BYTES;
			if (record_queue(io, p, piece, piece == len) == -1)
				return -1;
			p += piece;
			len -= piece;
		} while (len > 0);
		return 0;
	}
	if ((type != FT_CIPHER && type != FT_CIPHER_DOT) || io->enc == NULL) {
		if ((type == FT_PLAIN || type == FT_PLAIN_DOT) &&
		    (keep(io, text, len) == -1 || (type == FT_PLAIN_DOT &&
		    keep(io, ".", 1) == -1) || keep(io, crlf2, 4) == -1))
			return -1;
		if (frame_write_raw(io, text, len) == -1)
			return -1;
		if (type == FT_PLAIN_DOT || type == FT_CIPHER_DOT)
			if (frame_write_raw(io, ".", 1) == -1)
				return -1;
		return frame_write_raw(io, crlf2, sizeof(crlf2));
	}
	padded = len + pad_len(len, pad);
	if (padded > INT_MAX ||
	    buf_grow(&io->out, &io->outcap, io->outlen + padded + 5, 1) == -1) {
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

/*
 * Waits until wfd takes more, within deadline.  With io->drain set, what
 * the peer sends meanwhile is read into io->in (up to DRAIN_MAX_BYTES),
 * so that two peers writing to each other cannot both block.  1 ready,
 * 0 timed out, -1 error.
 */
static int
wait_writable(struct frameio *io, long deadline)
{
	struct pollfd	pfd[2];
	int		r, n;

	for (;;) {
		pfd[0].fd = io->wfd;
		pfd[0].events = POLLOUT;
		n = 1;
		if (io->drain && !io->eof && io->inlen < DRAIN_MAX_BYTES) {
			pfd[1].fd = io->rfd;
			pfd[1].events = POLLIN;
			n = 2;
		}
		if ((r = wait_fds(io, pfd, n, deadline, 0)) != 1)
			return r;
		if (n == 2 && pfd[1].revents != 0 &&
		    read_in(io) == FR_ERROR)
			return -1;
		if (pfd[0].revents != 0)
			return 1;
	}
}

int
frame_flush(struct frameio *io)
{
	size_t	off = 0;
	ssize_t	n;
	long	deadline = 0;
	int	r;

	while (off < io->outlen) {
		if (io->wsock)
			n = send(io->wfd, io->out + off, io->outlen - off,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = write(io->wfd, io->out + off, io->outlen - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			/* The same bounds as a read: one idle timeout for
			 * the whole flush, never past the session's
			 * deadline.  A peer that stops reading is cut off. */
			if (deadline == 0)
				deadline = frame_deadline(io);
			r = wait_writable(io, deadline);
			if (r == 1)
				continue;
			io->why = r == 0 ? "write timed out" : r == -2 ?
			    "interrupted" : "poll failed";
			io->timedout = r == 0;
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
