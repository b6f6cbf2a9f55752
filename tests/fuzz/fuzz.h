/*
 * fuzz.h -- what the fuzz targets share with the handler built for them
 * (-DUSMTP_FUZZ, tests/fuzz/README) and with each other.  Not part of
 * usmtp.h: no program is built with it.
 */
#ifndef USMTP_FUZZ_H
#define USMTP_FUZZ_H

#include <setjmp.h>
#include <stdlib.h>

/* The session key every fuzzed session has after its handshake. */
#define USMTP_FUZZ_KEY	"usmtp-fuzz-session-key-32-bytes!"

/* The handler's one exit longjmps here with its exit status + 1. */
extern jmp_buf	usmtp_fuzz_jmp;
/* The handler's main, renamed. */
int	usmtp_handler_main(int argc, char *argv[]);

/*
 * A content sink for frame_read_counted() and frame_read_content(): it
 * touches every byte, so that ASan sees any overread, and adds them up
 * in total; a chunk that is empty or longer than max aborts.
 */
struct fuzz_sink {
	size_t	total;
	size_t	max;
};

static inline int
fuzz_sink(void *arg, const unsigned char *p, size_t len)
{
	struct fuzz_sink	*s = arg;

	if (len == 0 || len > s->max)
		abort();
	while (len-- > 0)
		s->total += p[len];
	return 0;
}

#endif /* USMTP_FUZZ_H */
