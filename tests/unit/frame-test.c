/*
 * frame-test -- unit tests of frame.c (usmtp(7), Framing, Handshake,
 * Attachments): terminators, the 16-byte alignment rule, padding,
 * pipelining, limits, truncation, timeouts, bounded writes, counted reads
 * and attachment content both ways.  TAP output (tap.h); exits 1 on
 * failure.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usmtp.h"
#include "tests/unit/tap.h"
#include "tests/unit/noise-pair.h"

static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";

static void	feed(struct frameio *io, int *wfd, const void *p, size_t n,
		    int close_after);
static void	feed_slowly(struct frameio *io, const void *p, size_t n);
static size_t	encrypt_frame(const char *text, size_t len, int pad,
		    unsigned char *out);
static int	count_sink(void *arg, const unsigned char *p, size_t len);
static int	keep_sink(void *arg, const unsigned char *p, size_t len);
static void	content_writer(struct frameio *w, int fd, size_t size);
static void	content_tests(void);
static void	write_deadline_tests(void);
static void	secure_pair(struct frameio *a, struct frameio *b);
static void	secure_tests(void);

/* What a content sink received. */
struct kept {
	unsigned char	buf[200000];
	size_t		len;
	int		calls;
};

/* Sets io up to read p[0..n) from a fresh socket pair. */
static void
feed(struct frameio *io, int *wfd, const void *p, size_t n, int close_after)
{
	int	sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		perror("socketpair");
		exit(2);
	}
	frame_init(io, sv[0], sv[0], 1);
	if (n > 0 && write(sv[1], p, n) != (ssize_t)n) {
		perror("write");
		exit(2);
	}
	if (close_after) {
		close(sv[1]);
		sv[1] = -1;
	}
	if (wfd != NULL)
		*wfd = sv[1];
}

/* Sets io up to read p[0..n) written one byte at a time by a child. */
static void
feed_slowly(struct frameio *io, const void *p, size_t n)
{
	const unsigned char	*b = p;
	size_t			 i;
	int			 sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		exit(2);
	if (fork() == 0) {
		close(sv[0]);
		for (i = 0; i < n; i++) {
			if (write(sv[1], b + i, 1) != 1)
				_exit(1);
			usleep(200);
		}
		_exit(0);
	}
	close(sv[1]);
	frame_init(io, sv[0], sv[0], 5);
}

/* text padded with pad spaces (-1: always-pad rule), encrypted. */
static size_t
encrypt_frame(const char *text, size_t len, int pad, unsigned char *out)
{
	unsigned char	buf[8192];
	size_t		n;

	if (pad < 0)
		pad = 16 - (int)(len % 16);
	n = len + (size_t)pad;
	memcpy(buf, text, len);
	memset(buf + len, ' ', (size_t)pad);
	if (aes_ecb(key, 1, buf, n, out) == -1)
		exit(2);
	return n;
}

static int
count_sink(void *arg, const unsigned char *p, size_t len)
{
	size_t	*total = arg;

	(void)p;
	*total += len;
	return 0;
}

int
main(void)
{
	struct frameio	 io;
	unsigned char	 buf[20000], ct[8192], *data;
	size_t		 len, n, total;
	int		 wfd, r, st;

	signal(SIGPIPE, SIG_IGN);

	/* plaintext frames, pipelined in one write */
	feed(&io, NULL, "hello ssl1.0?\r\n\r\nsupport x?\r\n\r\n", 31, 1);
	r = frame_read(&io, FT_PLAIN, 4096, &data, &len);
	ok(r == FR_OK && len == 13 && memcmp(data, "hello ssl1.0?", 13) == 0,
	    "first of two pipelined plaintext frames");
	r = frame_read(&io, FT_PLAIN, 4096, &data, &len);
	ok(r == FR_OK && len == 10 && strcmp((char *)data, "support x?") == 0,
	    "second pipelined frame comes from the buffer");
	r = frame_read(&io, FT_PLAIN, 4096, &data, &len);
	ok(r == FR_EOF, "end of input between frames is FR_EOF");
	frame_free(&io);

	/* the dot-terminated plaintext frame of a 202 */
	feed(&io, NULL, "202 algos valid-----\r\n\r\nx-----\n.\r\n\r\n", 36, 1);
	r = frame_read(&io, FT_PLAIN_DOT, 4096, &data, &len);
	ok(r == FR_OK && len == 31 && data[len - 1] == '\n',
	    "202 frame ends at .CRLFCRLF, not at an earlier CRLFCRLF");
	frame_free(&io);

	/* the key frame is read by count, whatever it holds */
	memset(buf, 'k', 256);
	memcpy(buf + 100, "\r\n\r\n", 4);
	memcpy(buf + 256, "\r\n\r\n", 4);
	memcpy(buf + 260, "next\r\n\r\n", 8);
	feed(&io, NULL, buf, 268, 1);
	r = frame_read(&io, FT_KEY, 256, &data, &len);
	ok(r == FR_OK && len == 256 && data[100] == '\r',
	    "256-byte key frame with CRLFCRLF inside is read whole");
	r = frame_read(&io, FT_PLAIN, 4096, &data, &len);
	ok(r == FR_OK && len == 4, "the frame after the key is intact");
	frame_free(&io);
	memcpy(buf + 256, "XXXX", 4);
	feed(&io, NULL, buf, 260, 1);
	r = frame_read(&io, FT_KEY, 256, &data, &len);
	ok(r == FR_BADFRAME, "key frame without CRLFCRLF at 256 is bad");
	frame_free(&io);
	feed(&io, NULL, buf, 100, 1);
	r = frame_read(&io, FT_KEY, 256, &data, &len);
	ok(r == FR_TRUNC, "short key frame then EOF is truncated");
	frame_free(&io);

	/* cipher frames: the alignment rule */
	{
		unsigned char	c2[32], p2[32];

		/* ciphertext with CRLFCRLF at offsets 5 and 16+0 would end
		 * a naive reader early; only offset 32 is a terminator */
		memset(c2, 'A', sizeof(c2));
		memcpy(c2 + 5, "\r\n\r\n", 4);
		memcpy(c2 + 21, "\r\n\r\n", 4);
		memcpy(buf, c2, 32);
		memcpy(buf + 32, "\r\n\r\n", 4);
		aes_ecb(key, 0, c2, 32, p2);
		feed(&io, NULL, buf, 36, 1);
		frame_setkey(&io, key);
		r = frame_read(&io, FT_CIPHER, 4096, &data, &len);
		n = 32;
		while (n > 0 && p2[n - 1] == ' ')
			n--;
		ok(r == FR_OK && len == n && memcmp(data, p2, n) == 0,
		    "CRLFCRLF inside ciphertext at offsets 5 and 21 does not "
		    "end the frame");
		frame_free(&io);

		/* at offset 16 it does end the frame, at 0 it does not */
		memcpy(buf, "\r\n\r\n", 4);
		memset(buf + 4, 'B', 12);
		memcpy(buf + 16, "\r\n\r\n", 4);
		feed(&io, NULL, buf, 20, 1);
		frame_setkey(&io, key);
		r = frame_read(&io, FT_CIPHER, 4096, &data, &len);
		ok(r == FR_OK && frame_pending(&io) == 0,
		    "CRLFCRLF at offset 0 is data, at 16 a terminator");
		frame_free(&io);
	}

	/* padding: unpadded 16-byte frames, always-pad on write */
	n = encrypt_frame("aligned16@abc.pl", 16, 0, ct);
	memcpy(buf, ct, n);
	memcpy(buf + n, "\r\n\r\n", 4);
	feed(&io, NULL, buf, n + 4, 1);
	frame_setkey(&io, key);
	r = frame_read(&io, FT_CIPHER, 4096, &data, &len);
	ok(r == FR_OK && len == 16 &&
	    memcmp(data, "aligned16@abc.pl", 16) == 0,
	    "an unpadded 16-byte frame is read whole (session-2)");
	frame_free(&io);

	{
		int	sv[2];

		socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
		frame_init(&io, sv[1], sv[0], 1);
		frame_setkey(&io, key);
		frame_write(&io, FT_CIPHER, "sixteen-chars-pw", 16);
		frame_write(&io, FT_CIPHER, "", 0);
		frame_write(&io, FT_CIPHER_DOT, "body text", 9);
		ok(io.outlen == 32 + 4 + 16 + 4 + 16 + 5,
		    "always pad: 16 bytes go out as 32, 0 as 16");
		frame_flush(&io);
		close(sv[0]);
		r = frame_read(&io, FT_CIPHER, 4096, &data, &len);
		ok(r == FR_OK && len == 16, "padded 16-byte frame reads back");
		r = frame_read(&io, FT_CIPHER, 4096, &data, &len);
		ok(r == FR_OK && len == 0, "an empty frame reads back empty");
		r = frame_read(&io, FT_CIPHER_DOT, 4096, &data, &len);
		ok(r == FR_OK && len == 9 && memcmp(data, "body text", 9) == 0,
		    "dot-terminated cipher frame reads back");
		frame_free(&io);
		close(sv[1]);
	}

	/* limits, truncation, timeout */
	memset(buf, 'x', 5000);
	feed(&io, &wfd, buf, 5000, 0);
	frame_setkey(&io, key);
	r = frame_read(&io, FT_CIPHER, FRAME_MAX_BYTES, &data, &len);
	ok(r == FR_TOOBIG, "5000 bytes without terminator: too big, "
	    "without waiting for more");
	frame_free(&io);
	close(wfd);
	n = encrypt_frame("LOGIN", 5, -1, ct);
	memcpy(buf, ct, n);
	feed(&io, NULL, buf, n - 3, 1);
	frame_setkey(&io, key);
	r = frame_read(&io, FT_CIPHER, 4096, &data, &len);
	ok(r == FR_TRUNC, "end of input in the middle of a frame");
	frame_free(&io);
	feed(&io, &wfd, buf, 3, 0);
	r = frame_read(&io, FT_CIPHER, 4096, &data, &len);
	ok(r == FR_TIMEOUT, "a silent peer times out (1 s)");
	frame_free(&io);
	close(wfd);

	/* the login deadline: buffered frames are still served, a wait is
	 * cut short (the idle timeout alone would allow 1 s) */
	feed(&io, &wfd, "one\r\n\r\n", 7, 0);
	io.timeout_ms = 5000;
	frame_set_deadline(&io, 1);
	io.deadline_ms -= 1000;	/* already passed */
	r = frame_read(&io, FT_PLAIN, 4096, &data, &len);
	ok(r == FR_OK && len == 3, "a passed deadline still serves a "
	    "buffered frame");
	r = frame_read(&io, FT_PLAIN, 4096, &data, &len);
	ok(r == FR_TIMEOUT && frame_deadline_passed(&io),
	    "a passed deadline ends the wait for the next frame at once");
	frame_set_deadline(&io, 0);
	ok(!frame_deadline_passed(&io), "a cleared deadline never passes");
	frame_free(&io);
	close(wfd);

	/* a frame trickled one byte at a time */
	n = encrypt_frame("SEND MAIL", 9, -1, ct);
	memcpy(buf, ct, n);
	memcpy(buf + n, "\r\n\r\n", 4);
	feed_slowly(&io, buf, n + 4);
	frame_setkey(&io, key);
	r = frame_read(&io, FT_CIPHER, 4096, &data, &len);
	ok(r == FR_OK && len == 9 && memcmp(data, "SEND MAIL", 9) == 0,
	    "a frame sent a byte at a time");
	frame_free(&io);
	wait(&st);

	/* counted data leaves the next frame in the buffer */
	memset(buf, 'c', 10000);
	memcpy(buf + 10000, "hello\r\n\r\n", 9);
	feed(&io, NULL, buf, 10009, 1);
	total = 0;
	r = frame_read_counted(&io, 10000, count_sink, &total);
	ok(r == FR_OK && total == 10000, "counted read of 10000 bytes");
	r = frame_read(&io, FT_PLAIN, 4096, &data, &len);
	ok(r == FR_OK && len == 5, "the frame after counted data");
	frame_free(&io);
	feed(&io, NULL, buf, 500, 1);
	total = 0;
	r = frame_read_counted(&io, 1000, count_sink, &total);
	ok(r == FR_TRUNC && total == 500, "counted read cut short");
	frame_free(&io);

	content_tests();
	write_deadline_tests();
	secure_tests();
	return tap_done();
}

static int
keep_sink(void *arg, const unsigned char *p, size_t len)
{
	struct kept	*k = arg;

	if (len == 0 || len > STREAM_CHUNK_BYTES ||
	    k->len + len > sizeof(k->buf))
		return -1;
	memcpy(k->buf + k->len, p, len);
	k->len += len;
	k->calls++;
	return 0;
}

/*
 * Starts a child that writes size bytes of fd, from its start, through w
 * as attachment content, then the frame "after"; the child exits 0 when
 * all of it was written.
 */
static void
content_writer(struct frameio *w, int fd, size_t size)
{
	int	r;

	if (fork() == 0) {
		lseek(fd, 0, SEEK_SET);
		r = frame_write_content(w, fd, size, FPAD_ALWAYS, NULL, NULL);
		frame_write(w, FT_CIPHER, "after", 5);
		_exit(r == 0 && frame_flush(w) == 0 ? 0 : 1);
	}
}

/*
 * Attachment content: written with frame_write_content() from a file,
 * read back with frame_read_content() through a socket pair.
 */
static void
content_tests(void)
{
	static const size_t	 sizes[] = { 0, 1, 15, 16, 17, 65535, 65536,
	    65537, 131072 + 5 };
	static struct kept	 k;
	static unsigned char	 file[140000];
	struct frameio		 w, rd;
	unsigned char		*data;
	uint64_t		 n;
	size_t			 i, j, len;
	int			 sv[2], fd, r;
	char			 path[] = "/tmp/frame-test.XXXXXX";

	for (j = 0; j < sizeof(file); j++)
		file[j] = (unsigned char)(j * 7 + j / 251);
	if ((fd = mkstemp(path)) == -1 ||
	    write(fd, file, sizeof(file)) != (ssize_t)sizeof(file))
		exit(2);
	unlink(path);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
			exit(2);
		fcntl(sv[0], F_SETFL, O_NONBLOCK);
		frame_init(&w, sv[0], sv[0], 5);
		frame_init(&rd, sv[1], sv[1], 5);
		frame_setkey(&w, key);
		frame_setkey(&rd, key);
		w.drain = 1;
		n = frame_content_length(&w, sizes[i], FPAD_ALWAYS);
		ok(n >= sizes[i] + 5 && n <= sizes[i] + 20 && (n - 4) % 16 == 0,
		    "content length of %zu bytes: %llu", sizes[i],
		    (unsigned long long)n);
		content_writer(&w, fd, sizes[i]);
		memset(&k, 0, sizeof(k));
		r = frame_read_content(&rd, n, (int64_t)sizes[i], keep_sink, &k);
		ok(r == FR_OK && k.len == sizes[i] &&
		    memcmp(k.buf, file, sizes[i]) == 0,
		    "%zu bytes with Size: arrive byte for byte", sizes[i]);
		r = frame_read(&rd, FT_CIPHER, 4096, &data, &len);
		ok(r == FR_OK && len == 5 && memcmp(data, "after", 5) == 0,
		    "the frame after %zu bytes of content is intact",
		    sizes[i]);
		wait(&r);
		ok(WIFEXITED(r) && WEXITSTATUS(r) == 0, "the writer of %zu "
		    "bytes succeeded", sizes[i]);
		frame_free(&w);
		frame_free(&rd);
		close(sv[0]);
		close(sv[1]);
	}

	/* Without Size: trailing spaces go, inner spaces stay. */
	{
		unsigned char	plain[48], ct[48];

		memset(plain, ' ', sizeof(plain));
		memcpy(plain, "ab", 2);
		memcpy(plain + 20, "cd", 2);	/* 18 spaces between */
		aes_ecb(key, 1, plain, 48, ct);
		memcpy(file, ct, 48);
		memcpy(file + 48, "\r\n\r\n", 4);
		feed(&rd, NULL, file, 52, 1);
		frame_setkey(&rd, key);
		memset(&k, 0, sizeof(k));
		r = frame_read_content(&rd, 52, -1, keep_sink, &k);
		ok(r == FR_OK && k.len == 22 && memcmp(k.buf, plain, 22) == 0,
		    "without Size: trailing spaces are stripped, inner ones "
		    "kept");
		frame_free(&rd);
		memcpy(file + 48, "\r\nXX", 4);
		feed(&rd, NULL, file, 52, 1);
		frame_setkey(&rd, key);
		r = frame_read_content(&rd, 52, 30, keep_sink, &k);
		ok(r == FR_BADFRAME, "content not ending in CRLFCRLF is a bad "
		    "frame");
		frame_free(&rd);
		feed(&rd, NULL, file, 40, 1);
		frame_setkey(&rd, key);
		r = frame_read_content(&rd, 52, 30, keep_sink, &k);
		ok(r == FR_TRUNC, "content cut short is truncated");
		frame_free(&rd);
		feed(&rd, NULL, file, 52, 1);
		r = frame_read_content(&rd, 51, -1, keep_sink, &k);
		ok(r == FR_ERROR, "a content length that is not whole blocks "
		    "is refused");
		frame_free(&rd);
	}
	close(fd);
}

/* A peer that stops reading: the write gives up at the idle timeout,
 * or sooner at the deadline. */
static void
write_deadline_tests(void)
{
	static unsigned char	big[1 << 20];
	struct frameio		io;
	long			t;
	int			sv[2], r;

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	frame_init(&io, sv[0], sv[0], 1);
	t = clock_ms();
	r = frame_write_raw(&io, big, sizeof(big));
	r = r == 0 ? frame_flush(&io) : -2;
	t = clock_ms() - t;
	ok(r == -1 && t >= 900 && t < 3000, "a peer that reads nothing: the "
	    "write times out after the idle timeout (%ld ms)", t);
	frame_set_deadline(&io, 1);
	io.timeout_ms = 10000;
	io.deadline_ms -= 700;
	t = clock_ms();
	r = frame_write_raw(&io, big, sizeof(big));
	r = r == 0 ? frame_flush(&io) : -2;
	t = clock_ms() - t;
	ok(r == -1 && t < 1500, "the session's deadline cuts a write short "
	    "too (%ld ms)", t);
	frame_free(&io);
	close(sv[0]);
	close(sv[1]);
}

/*
 * a (client) and b (server) over a socket pair, in secure mode with the
 * ciphers of a real Noise handshake done in memory.
 */
static void
secure_pair(struct frameio *a, struct frameio *b)
{
	struct noise_cipher	 itx, irx, rtx, rrx;
	int			 sv[2];

	noise_pair(&itx, &irx, &rtx, &rrx, NULL);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		exit(2);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	frame_init(a, sv[0], sv[0], 5);
	frame_init(b, sv[1], sv[1], 5);
	a->drain = b->drain = 1;
	frame_set_noise(a, &itx, &irx);
	frame_set_noise(b, &rtx, &rrx);
}

/* Secure mode's records (usmtp(7), SECURE MODE): frames and content of
 * every size around a record's, tampering, limits. */
static void
secure_tests(void)
{
	static const size_t	 sizes[] = { 0, 1, 65517, 65518, 65519,
	    131036, 131037, 200000 };
	static unsigned char	 big[10 * 1024 * 1024 + 1];
	static struct kept	 k;
	struct frameio		 a, b;
	unsigned char		*data;
	size_t			 i, j, len;
	uint64_t		 n, sum;
	int			 r, fd, st;
	char			 path[] = "/tmp/frame-test.XXXXXX";

	for (j = 0; j < sizeof(big); j++)
		big[j] = (unsigned char)(j * 13 + j / 4093);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		secure_pair(&a, &b);
		if (fork() == 0) {
			r = frame_write(&a, FT_CIPHER, big, sizes[i]);
			_exit(r == 0 && frame_flush(&a) == 0 ? 0 : 1);
		}
		r = frame_read(&b, FT_CIPHER_DOT, sizeof(big), &data, &len);
		ok(r == FR_OK && len == sizes[i] &&
		    memcmp(data, big, len) == 0, "secure frame of %zu bytes "
		    "arrives as sent", sizes[i]);
		wait(&st);
		frame_free(&a);
		frame_free(&b);
	}

	/* attachment content: exact sizes, no padding, no terminator */
	if ((fd = mkstemp(path)) == -1 ||
	    write(fd, big, sizeof(big)) != (ssize_t)sizeof(big))
		exit(2);
	unlink(path);
	for (i = 0; i < 5; i++) {
		static const size_t	csz[] = { 0, 1, 65518, 65519,
		    10 * 1024 * 1024 + 1 };

		secure_pair(&a, &b);
		n = frame_content_length(&a, csz[i], FPAD_ALWAYS);
		ok(n == csz[i], "secure content length of %zu is %llu",
		    csz[i], (unsigned long long)n);
		content_writer(&a, fd, csz[i]);
		sum = 0;
		memset(&k, 0, sizeof(k));
		if (csz[i] <= sizeof(k.buf))
			r = frame_read_content(&b, n, -1, keep_sink, &k);
		else
			r = frame_read_content(&b, n, -1, count_sink, &sum);
		ok(r == FR_OK && (csz[i] > sizeof(k.buf) ? sum == csz[i] :
		    k.len == csz[i] && memcmp(k.buf, big, csz[i]) == 0),
		    "secure content of %zu bytes arrives byte for byte",
		    csz[i]);
		r = frame_read(&b, FT_CIPHER, 4096, &data, &len);
		ok(r == FR_OK && len == 5, "the frame after %zu bytes of "
		    "secure content is intact", csz[i]);
		wait(&st);
		frame_free(&a);
		frame_free(&b);
	}
	close(fd);

	/* content of 5, then 3 bytes announced as 4 */
	for (j = 0; j < 2; j++) {
		secure_pair(&a, &b);
		frame_write(&a, FT_CIPHER, "12345", j == 0 ? 5 : 3);
		frame_flush(&a);
		r = frame_read_content(&b, 4, -1, count_sink, &sum);
		ok(r == FR_BADFRAME, "secure content %s than announced is bad",
		    j == 0 ? "longer" : "shorter");
		frame_free(&a);
		frame_free(&b);
	}

	/* a frame over the limit is refused while it arrives */
	secure_pair(&a, &b);
	frame_write(&a, FT_CIPHER, big, 65518);		/* first record */
	frame_flush(&a);
	r = frame_read(&b, FT_CIPHER, 4096, &data, &len);
	ok(r == FR_TOOBIG, "a secure frame over the limit is too big before "
	    "its last record");
	frame_free(&a);
	frame_free(&b);

	/* tampering: each byte of a record, one at a time */
	for (j = 0; j < 2 + 1 + 3 + 16; j++) {
		unsigned char	 rec[64];
		size_t		 rl;

		secure_pair(&a, &b);
		frame_write(&a, FT_CIPHER, "BYE", 3);
		rl = a.outlen;
		memcpy(rec, a.out, rl);
		a.outlen = 0;
		rec[j] ^= 0x01;
		frame_write_raw(&a, rec, rl);
		frame_flush(&a);
		shutdown(a.wfd, SHUT_WR);
		r = frame_read(&b, FT_CIPHER, 4096, &data, &len);
		if (j < 2)
			ok(r == FR_TRUNC || r == FR_BADFRAME, "a changed "
			    "length byte %zu is refused (%d)", j, r);
		else
			ok(r == FR_BADFRAME && strcmp(b.why,
			    "record authentication failed") == 0,
			    "a flipped bit in byte %zu fails authentication", j);
		frame_free(&a);
		frame_free(&b);
	}

	/* a dropped record and a reordered pair */
	{
		unsigned char	 r1[64], r2[64];
		size_t		 l1, l2;

		secure_pair(&a, &b);
		frame_write(&a, FT_CIPHER, "one", 3);
		l1 = a.outlen;
		memcpy(r1, a.out, l1);
		a.outlen = 0;
		frame_write(&a, FT_CIPHER, "two", 3);
		l2 = a.outlen;
		memcpy(r2, a.out, l2);
		a.outlen = 0;
		frame_write_raw(&a, r2, l2);
		frame_write_raw(&a, r1, l1);
		frame_flush(&a);
		r = frame_read(&b, FT_CIPHER, 4096, &data, &len);
		ok(r == FR_BADFRAME, "a reordered pair of records is refused");
		frame_free(&b);
		frame_free(&a);
	}
}
