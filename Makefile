# usmtp -- build, check, install, demo, bench.
#
# make                 build the programs
# make check           the whole test suite (C unit tests, bats, man lint)
# make demo            one demo session on loopback
# make install         PREFIX=/usr/local, DESTDIR= honoured
#
# Our warning and hardening flags are always used; CFLAGS, CPPFLAGS and
# LDFLAGS from the command line are added to them, never replace them.
# SAN=-fsanitize=address,undefined builds instrumented programs.

PREFIX	?= /usr/local
SBINDIR	?= $(PREFIX)/sbin
BINDIR	?= $(PREFIX)/bin
MANDIR	?= $(PREFIX)/share/man
DOCDIR	?= $(PREFIX)/share/doc/usmtp
SYSCONFDIR ?= /etc
UNITDIR	?= $(PREFIX)/lib/systemd/system

CC	?= cc
CFLAGS	?= -O2 -g
WARN	= -std=c11 -Wall -Wextra -Wshadow -Wcast-qual -Wstrict-prototypes \
	  -Wmissing-prototypes -Wformat=2 -Wpointer-arith
HARDEN	= -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
ALL_CFLAGS = $(WARN) $(HARDEN) -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
	  $(CPPFLAGS) $(CFLAGS) $(SAN)
ALL_LDFLAGS = -pie -Wl,-z,relro -Wl,-z,now $(LDFLAGS) $(SAN)
LIBS	= -lcrypto -lgdbm

PROGS	= usmtp-handler usmtp-client usmtp-users
UNITS	= tests/unit/frame-test

all: $(PROGS)

usmtp-handler: usmtp-handler.o crypto.o auth.o mailer.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

usmtp-client: usmtp-client.o crypto.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcrypto

usmtp-users: usmtp-users.o auth.o crypto.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

tests/unit/frame-test: tests/unit/frame-test.o crypto.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcrypto

%.o: %.c usmtp.h
	$(CC) $(ALL_CFLAGS) -I. -c -o $@ $<

check: all $(UNITS)
	tools/need-packages check
	for t in $(UNITS); do $$t || exit 1; done
	bats tests/

demo: 
	tools/need-packages demo
	$(MAKE) all
	tools/demo

clean:
	rm -f $(PROGS) $(UNITS) *.o tests/unit/*.o

.PHONY: all check demo clean
