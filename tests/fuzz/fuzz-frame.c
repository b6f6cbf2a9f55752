/*
 * fuzz-frame -- libFuzzer target for crypto.c's frame reader
 * (usmtp(7), Framing and Handshake): frame_read() of every frame kind with a few limits,
 * and frame_read_counted(), over arbitrary bytes, with and without a key.
 * Every frame read back is written out again with frame_write() and read
 * a second time: what comes back must be what went in.
 *
 * Input: byte 0 picks the frame kind (bits 0-2), the key (bit 3) and the
 * limit (bits 4-5); byte 1 says, bit by bit, which reads are counted ones
 * instead; the rest is the stream, read from a memfd.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "usmtp.h"
#include "tests/fuzz/fuzz.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char key[SESSION_KEY_BYTES] = USMTP_FUZZ_KEY;
static const size_t limits[] = { 16, 256, FRAME_MAX_BYTES, 65536 };

static int	memfd_with(const void *p, size_t n);
static void	roundtrip(enum ftype type, int keyed, const unsigned char *p,
		    size_t len);

/* A memfd holding p[0..n), positioned at its start. */
static int
memfd_with(const void *p, size_t n)
{
	int	fd;

	if ((fd = memfd_create("fuzz-frame", MFD_CLOEXEC)) == -1)
		abort();
	if (n > 0 && write(fd, p, n) != (ssize_t)n)
		abort();
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

/*
 * Writes text as a frame of kind type and reads it back: the reader
 * must return the same bytes (trailing spaces aside for cipher frames,
 * which the reader strips, so text has none).
 */
static void
roundtrip(enum ftype type, int keyed, const unsigned char *p, size_t len)
{
	struct frameio	 w, r;
	unsigned char	*copy, *back;
	size_t		 blen;
	int		 wfd, rc;

	/* A plain frame cannot hold its own terminator. */
	if ((type == FT_PLAIN || type == FT_PLAIN_DOT || !keyed) &&
	    memmem(p, len, "\r\n\r\n", 4) != NULL)
		return;
	if (type == FT_KEY)
		return;
	if ((copy = malloc(len + 1)) == NULL)
		abort();
	memcpy(copy, p, len);
	if ((wfd = memfd_create("fuzz-frame-w", MFD_CLOEXEC)) == -1)
		abort();
	if (frame_init(&w, -1, wfd, 0) == -1)
		abort();
	if (keyed && frame_setkey(&w, key) == -1)
		abort();
	if (frame_write(&w, type, copy, len) == -1 || frame_flush(&w) == -1)
		abort();
	frame_free(&w);
	if (lseek(wfd, 0, SEEK_SET) != 0 || frame_init(&r, wfd, -1, 0) == -1)
		abort();
	if (keyed && frame_setkey(&r, key) == -1)
		abort();
	rc = frame_read(&r, type, len + 64, &back, &blen);
	/*
	 * An unkeyed "cipher" frame is sent raw: its terminator counts only
	 * at a multiple of 16, so anything else may fail to frame.
	 */
	if (!keyed && (type == FT_CIPHER || type == FT_CIPHER_DOT)) {
		frame_free(&r);
		close(wfd);
		free(copy);
		return;
	}
	if (rc != FR_OK || blen != len || memcmp(back, copy, len) != 0) {
		fprintf(stderr, "roundtrip: type %d keyed %d rc %d len %zu "
		    "back %zu\n", type, keyed, rc, len, blen);
		abort();
	}
	frame_free(&r);
	close(wfd);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frameio	 io;
	enum ftype	 type;
	unsigned char	*p;
	struct fuzz_sink	 sink = { 0, STREAM_CHUNK_BYTES };
	size_t		 len, max, n;
	int		 fd, keyed, r, i;
	unsigned int	 counted;

	if (size < 2)
		return 0;
	type = (enum ftype)(data[0] & 7) % 5;
	keyed = (data[0] & 8) != 0;
	max = limits[(data[0] >> 4) & 3];
	counted = data[1];
	fd = memfd_with(data + 2, size - 2);
	if (frame_init(&io, fd, -1, 0) == -1)
		abort();
	if (keyed && frame_setkey(&io, key) == -1)
		abort();
	for (i = 0; i < 64; i++) {
		if (counted & (1U << (i % 8))) {
			/* a counted run sized by what is left, at most 100 */
			n = frame_pending(&io) % 101 + 1;
			r = frame_read_counted(&io, n, fuzz_sink, &sink);
			if (r == FR_TRUNC)
				break;
			if (r != FR_OK) {
				fprintf(stderr, "counted: %d %s\n", r,
				    io.why ? io.why : "");
				abort();
			}
			continue;
		}
		r = frame_read(&io, type, max, &p, &len);
		if (r != FR_OK)
			break;
		/* FT_KEY is read by count (always 256 bytes): max is not
		 * checked for it, and the handler passes 256 anyway. */
		if ((len > max && type != FT_KEY) || p[len] != '\0')
			abort();
		if (type == FT_KEY && len != RSA_CIPHER_BYTES)
			abort();
		if ((type == FT_CIPHER || type == FT_CIPHER_DOT) && keyed &&
		    len > 0 && p[len - 1] == ' ')
			abort();
		roundtrip(type, keyed, p, len);
	}
	frame_free(&io);
	close(fd);
	return 0;
}
