/*
 * fuzz-record -- libFuzzer target for secure mode (usmtp(7), SECURE
 * MODE): frame.c's record layer and noise.c's handshake messages.
 *
 * Input: byte 0 picks what is read: bit 0 frames (frame_read) or an
 * attachment's content (frame_read_content), bits 1-2 the limit.  The
 * rest is a list of records to send, each "CTL LEN-HI LEN-LO DATA":
 * CTL bits 0-1 the flag byte (0 more, 1 last, 2 a bad flag), bit 2 flip
 * a bit of the sealed record, bit 3 send DATA raw as a record (no
 * encryption), bit 4 a wrong length prefix.  Records are sealed with the
 * sending cipher of a handshake made once, so that mutations reach the
 * reassembly, limits and flags behind the authentication.  Whatever
 * frame comes back must hold only the contents that were sent.
 * A second part feeds the input to a responder as Noise message 1.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "usmtp.h"
#include "tests/fuzz/fuzz.h"
#include "tests/unit/noise-pair.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t limits[] = { 16, FRAME_MAX_BYTES, 70000, 300000 };
static struct noise_cipher tx, rx;	/* one pair, reset per input */
static unsigned char	 spriv[NOISE_DH_BYTES];

static void	setup(void);

static void
setup(void)
{
	struct noise_cipher	a, b;

	noise_pair(&tx, &a, &b, &rx, spriv);
	noise_cipher_clear(&a);
	noise_cipher_clear(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int		 ready;
	static unsigned char	 rec[2 + 65535];
	struct noise_hs		*hs;
	struct frameio		 io;
	const uint8_t		*p = data + 1, *end = data + size;
	unsigned char		*f, pl[8192];
	const char		*why;
	struct fuzz_sink	 sink = { 0, NOISE_PLAIN_MAX_BYTES };
	size_t			 len, dl, ml, sent = 0, max;
	int			 fd, r;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1)
		return 0;
	max = limits[(data[0] >> 1) & 3];
	tx.n = rx.n = 0;
	if ((fd = memfd_create("fuzz-record", MFD_CLOEXEC)) == -1)
		abort();
	while (end - p >= 3) {
		dl = (size_t)p[1] << 8 | p[2];
		if (dl > (size_t)(end - p) - 3)
			dl = (size_t)(end - p) - 3;
		if (dl > NOISE_PLAIN_MAX_BYTES - 1)
			dl = NOISE_PLAIN_MAX_BYTES - 1;
		if (p[0] & 8) {
			memcpy(rec + 2, p + 3, dl);
			ml = dl;
		} else {
			rec[2] = (p[0] & 3) == 2 ? 0x7f : p[0] & 1;
			memcpy(rec + 3, p + 3, dl);
			if (noise_encrypt(&tx, rec + 2, dl + 1, rec + 2, &why)
			    == -1)
				abort();
			ml = dl + 1 + NOISE_TAG_BYTES;
			sent += dl;
		}
		if ((p[0] & 4) && ml > 0)
			rec[2 + (p[3 % (end - p)] % ml)] ^= 1;
		rec[0] = (unsigned char)(ml >> 8);
		rec[1] = (unsigned char)ml;
		if (p[0] & 16)
			rec[1] ^= 0x10;
		if (write(fd, rec, 2 + ml) != (ssize_t)(2 + ml))
			abort();
		p += 3 + dl;
	}
	if (lseek(fd, 0, SEEK_SET) != 0 || frame_init(&io, fd, -1, 0) == -1)
		abort();
	io.noise = 1;
	io.rx = rx;		/* shared: not frame_set_noise(), which owns */
	if (data[0] & 1) {
		r = frame_read_content(&io, sent, -1, fuzz_sink, &sink);
		if (r == FR_OK && sink.total > 255 * sent)
			abort();
	} else {
		for (;;) {
			r = frame_read(&io, FT_CIPHER, max, &f, &len);
			if (r != FR_OK)
				break;
			if (len > max || len > sent || f[len] != '\0')
				abort();
		}
	}
	memset(&io.rx, 0, sizeof(io.rx));
	frame_free(&io);
	close(fd);

	/* the input as the responder's message 1 */
	hs = noise_hs_new(0, (const unsigned char *)"f", 1, spriv, NULL, NULL,
	    &why);
	if (hs == NULL)
		abort();
	if (noise_hs_read_message(hs, data, size, pl, sizeof(pl), &len, &why)
	    == 0 && len > sizeof(pl))
		abort();
	noise_hs_free(hs);
	return 0;
}
