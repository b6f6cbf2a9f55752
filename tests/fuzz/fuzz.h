/*
 * fuzz.h -- what the fuzz targets share with the handler built for them
 * (-DUSMTP_FUZZ, tests/fuzz/README).  Not part of usmtp.h: no program
 * is built with it.
 */
#ifndef USMTP_FUZZ_H
#define USMTP_FUZZ_H

#include <setjmp.h>

/* The session key every fuzzed session has after its handshake. */
#define USMTP_FUZZ_KEY	"usmtp-fuzz-session-key-32-bytes!"

/* The handler's one exit longjmps here with its exit status + 1. */
extern jmp_buf	usmtp_fuzz_jmp;
/* The handler's main, renamed. */
int	usmtp_handler_main(int argc, char *argv[]);

#endif /* USMTP_FUZZ_H */
