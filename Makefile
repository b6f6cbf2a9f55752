# usmtp -- build, check, install, demo, bench.
#
# make                 build the programs
# make check           the whole test suite (C unit tests, bats, man lint)
# make demo            one demo session on loopback
# make bench           the benchmark table (tools/bench)
# make STATIC_CRYPTO=0  link the handler's libcrypto dynamically
# make install         PREFIX=/usr/local, DESTDIR= honoured
# make deb             the Debian packages, in dist/
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
# The handler starts once per connection, so it links libcrypto statically
# (Debian's libssl-dev ships libcrypto.a): no relocation of libcrypto.so
# at every start (when adopted: 23.5M -> 21.3M instructions and ~14% less
# time per session here; README, Performance).  The price: an OpenSSL security
# update reaches the handler only when it is rebuilt.  STATIC_CRYPTO=0
# links it dynamically like the other programs.
STATIC_CRYPTO ?= 1
ifeq ($(STATIC_CRYPTO),1)
HANDLER_LIBS = -Wl,-Bstatic -lcrypto -Wl,-Bdynamic -lgdbm -ldl -pthread
else
HANDLER_LIBS = $(LIBS)
endif

PROGS	= usmtp-handler usmtp-client usmtp-users
# what each program is made of (README, Source layout)
HANDLER_OBJS = usmtp-handler.o frame.o crypto.o auth.o mailer.o throttle.o \
	  util.o noise.o proxy.o check.o replay.o limit.o
CLIENT_OBJS = usmtp-client.o dial.o frame.o crypto.o util.o noise.o \
	  clientconf.o msgin.o
USERS_OBJS = usmtp-users.o auth.o crypto.o util.o throttle.o
# unit tests run by "make check"; test drivers used by the bats suites,
# never installed: tests/usmtp-script is the protocol test harness
UNITS	= tests/unit/frame-test tests/unit/auth-test tests/unit/throttle-test \
	  tests/unit/noise-test tests/unit/proxy-test \
	  tests/unit/clientconf-test tests/unit/replay-test tests/unit/limit-test
DRIVERS	= tests/unit/mail-build tests/unit/msgin-dump tests/usmtp-script
# drivers of "make bench" (tools/bench)
BENCH_DRIVERS = tests/unit/replay-bench tests/usmtp-script

all: $(PROGS) units

usmtp-handler: $(HANDLER_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(HANDLER_OBJS) $(HANDLER_LIBS)

usmtp-client: $(CLIENT_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLIENT_OBJS) -lcrypto

usmtp-users: $(USERS_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(USERS_OBJS) $(LIBS)

# The unit tests and drivers: each links its objects and libcrypto
# (auth-test GDBM as well).
tests/unit/frame-test: tests/unit/frame-test.o frame.o crypto.o util.o noise.o
tests/unit/throttle-test: tests/unit/throttle-test.o throttle.o util.o
tests/unit/replay-test: tests/unit/replay-test.o replay.o util.o
tests/unit/limit-test: tests/unit/limit-test.o limit.o util.o
tests/unit/replay-bench: tests/unit/replay-bench.o replay.o util.o
tests/unit/noise-test: tests/unit/noise-test.o noise.o crypto.o
tests/unit/proxy-test: tests/unit/proxy-test.o proxy.o util.o
tests/unit/mail-build: tests/unit/mail-build.o mailer.o util.o
tests/unit/clientconf-test: tests/unit/clientconf-test.o clientconf.o util.o
tests/unit/msgin-dump: tests/unit/msgin-dump.o msgin.o
tests/usmtp-script: tests/usmtp-script.o dial.o frame.o crypto.o util.o noise.o
$(filter-out tests/unit/auth-test,$(UNITS)) $(DRIVERS) $(BENCH_DRIVERS):
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcrypto

tests/unit/auth-test: tests/unit/auth-test.o auth.o crypto.o util.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

%.o: %.c usmtp.h tests/unit/tap.h tests/unit/noise-pair.h
	$(CC) $(ALL_CFLAGS) -I. -c -o $@ $<

# The packages first: on a fresh machine nothing builds without them.
check:
	tools/need-packages check
	$(MAKE) all $(UNITS) $(DRIVERS)
	for t in $(UNITS); do $$t || exit 1; done
	bats tests/

bench:
	tools/need-packages bench
	$(MAKE) all $(BENCH_DRIVERS)
	tools/bench

demo:
	tools/need-packages demo
	$(MAKE) all
	tools/demo

clean:
	rm -f $(PROGS) $(UNITS) $(DRIVERS) $(BENCH_DRIVERS) *.o tests/*.o tests/unit/*.o
	rm -f $(FUZZERS)
	rm -f $(GENERATED) $(addsuffix .tmp,$(GENERATED))

.PHONY: all check demo bench clean

# Fuzzing (tests/fuzz/README): libFuzzer targets built with clang, ASan and
# UBSan, each run for FUZZ_SECONDS on its corpus (tests/fuzz/corpus/, not
# in git) and the committed seeds; crashes land in tests/fuzz/artifacts/.
FUZZ_CC	?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -DUSMTP_FUZZ \
	  -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I.
FUZZERS	= tests/fuzz/fuzz-frame tests/fuzz/fuzz-session tests/fuzz/fuzz-proxy \
	  tests/fuzz/fuzz-record tests/fuzz/fuzz-msgin

tests/fuzz/fuzz-frame: tests/fuzz/fuzz-frame.c frame.c crypto.c util.c noise.c \
	    usmtp.h tests/fuzz/fuzz.h
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-frame.c frame.c crypto.c \
	    util.c noise.c -lcrypto

tests/fuzz/fuzz-record: tests/fuzz/fuzz-record.c tests/unit/noise-pair.h frame.c crypto.c \
	    util.c noise.c usmtp.h tests/fuzz/fuzz.h
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-record.c frame.c crypto.c \
	    util.c noise.c -lcrypto

tests/fuzz/fuzz-proxy: tests/fuzz/fuzz-proxy.c proxy.c util.c usmtp.h
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-proxy.c proxy.c util.c \
	    -lcrypto

tests/fuzz/fuzz-msgin: tests/fuzz/fuzz-msgin.c msgin.c usmtp.h
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-msgin.c msgin.c

# the handler as it is built, from source
FUZZ_HANDLER_SRCS = $(HANDLER_OBJS:.o=.c)
tests/fuzz/fuzz-session: tests/fuzz/fuzz-session.c $(FUZZ_HANDLER_SRCS) usmtp.h \
	    tests/fuzz/fuzz.h
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-session.c \
	    $(FUZZ_HANDLER_SRCS) $(LIBS)

fuzz-build: $(FUZZERS)

fuzz:
	tools/need-packages fuzz
	$(MAKE) fuzz-build
	for f in $(FUZZERS); do \
	    n=$${f##*/fuzz-}; mkdir -p tests/fuzz/corpus/$$n tests/fuzz/artifacts; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=tests/fuzz/artifacts/$$n- \
	        tests/fuzz/corpus/$$n tests/fuzz/seeds/$$n || exit 1; \
	done

.PHONY: fuzz fuzz-build

# make check-asan: the whole of "make check" with ASan and UBSan, in a copy
# of the tree under SANDIR (a clean rebuild here would break a "make check"
# running beside it); any sanitizer report fails the run.
# make check-valgrind: the handler suites with the handler under valgrind
# memcheck (USMTP_WRAP, tests/helpers.bash): any error or leak is exit 99.
# Both set USMTP_SANITIZER, and tests that measure memory or time skip.
SANDIR	?= /tmp/usmtp-check-asan
SAN_CHECK = -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_ENV	= USMTP_SANITIZER=asan \
	  ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
VALGRIND = valgrind -q --error-exitcode=99 --leak-check=full \
	  --errors-for-leak-kinds=definite,indirect
VALGRIND_SUITES = tests/vectors.bats tests/handshake.bats tests/send.bats \
	  tests/faults.bats tests/secure.bats

check-asan:
	rm -rf $(SANDIR)
	mkdir -p $(SANDIR)
	tar -cf - --exclude=./.git --exclude=./tests/fuzz/corpus . | \
	    tar -C $(SANDIR) -xf -
	$(MAKE) -C $(SANDIR) clean
	cd $(SANDIR) && $(SAN_ENV) $(MAKE) check SAN="$(SAN_CHECK)"

check-valgrind:
	tools/need-packages check
	$(MAKE) all $(DRIVERS)
	USMTP_SANITIZER=valgrind USMTP_WRAP="$(VALGRIND)" bats $(VALGRIND_SUITES)

.PHONY: check-asan check-valgrind

# make deb: the Debian packages usmtp and usmtp-client (debian/), built
# by dpkg-buildpackage in a copy of the tree under DEBBUILD -- the
# package build cleans and rebuilds with its own flags and would
# otherwise replace the programs "make check" tests -- then moved to
# dist/.  MAKEFLAGS is dropped: variables given to this make must not
# reach debian/rules.
DEBBUILD ?= dist/build

deb:
	tools/need-packages deb
	rm -rf $(DEBBUILD)
	mkdir -p $(DEBBUILD)/usmtp
	tar -cf - --exclude=./.git --exclude=./dist \
	    --exclude=./tests/fuzz/corpus . | tar -C $(DEBBUILD)/usmtp -xf -
	cd $(DEBBUILD)/usmtp && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	    dpkg-buildpackage -us -uc -b
	rm -f dist/*.deb
	mv $(DEBBUILD)/*.deb dist/
	rm -rf $(DEBBUILD)

.PHONY: deb

# Units, service files and install.  The .in files name install paths as
# @SBINDIR@, @BINDIR@, @SYSCONFDIR@ and @LOCALSTATEDIR@; they are made
# afresh on every run, so "make install PREFIX=..." never ships paths
# left over from an earlier build.  Nothing is installed into /etc:
# units go to UNITDIR, the xinetd and inetd files, the sendmail drop-in,
# the configuration example, the HAProxy example and mkcerts to
# DOCDIR/examples.  No chown,
# nothing outside DESTDIR.
LOCALSTATEDIR ?= /var
GENERATED = systemd/usmtp.socket systemd/usmtp@.service xinetd/usmtp \
	  xinetd/inetd.conf
SUBST	= sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
	  -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	  -e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g'
INST_SBIN = usmtp-handler usmtp-users
INST_BIN = usmtp-client
INST_MAN1 = man/usmtp-client.1
# symbolic links: the sendmail interface is usmtp-client by another name
INST_BIN_LINKS = usmtp-sendmail=usmtp-client
INST_MAN1_LINKS = usmtp-sendmail.1=usmtp-client.1
INST_MAN7 = man/usmtp.7
INST_MAN8 = man/usmtp-handler.8 man/usmtp-users.8
INST_UNITS = systemd/usmtp.socket systemd/usmtp@.service
# installed name = source file
INST_EXAMPLES = usmtp.xinetd=xinetd/usmtp inetd.conf=xinetd/inetd.conf \
	  usmtp-sendmail.conf=systemd/usmtp-sendmail.conf \
	  usmtp.conf.example=etc/usmtp.conf.example \
	  haproxy.cfg=examples/haproxy.cfg

units: $(GENERATED)

$(GENERATED): %: %.in FORCE
	$(SUBST) $< >$@.tmp && mv $@.tmp $@

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(INST_SBIN) $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(INST_BIN) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(INST_MAN1) $(DESTDIR)$(MANDIR)/man1/
	for l in $(INST_BIN_LINKS); do \
	    ln -sf $${l#*=} $(DESTDIR)$(BINDIR)/$${l%%=*} || exit 1; \
	done
	for l in $(INST_MAN1_LINKS); do \
	    ln -sf $${l#*=} $(DESTDIR)$(MANDIR)/man1/$${l%%=*} || exit 1; \
	done
	install -m 0644 $(INST_MAN7) $(DESTDIR)$(MANDIR)/man7/
	install -m 0644 $(INST_MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(INST_UNITS) $(DESTDIR)$(UNITDIR)/
	for e in $(INST_EXAMPLES); do \
	    install -m 0644 $${e#*=} $(DESTDIR)$(DOCDIR)/examples/$${e%%=*} || exit 1; \
	done
	install -m 0755 ssl/mkcerts $(DESTDIR)$(DOCDIR)/examples/mkcerts

uninstall:
	for f in $(INST_SBIN); do rm -f $(DESTDIR)$(SBINDIR)/$$f; done
	for f in $(INST_BIN); do rm -f $(DESTDIR)$(BINDIR)/$$f; done
	for l in $(INST_BIN_LINKS); do rm -f $(DESTDIR)$(BINDIR)/$${l%%=*}; done
	for l in $(INST_MAN1_LINKS); do \
	    rm -f $(DESTDIR)$(MANDIR)/man1/$${l%%=*}; \
	done
	for f in $(notdir $(INST_MAN1)); do rm -f $(DESTDIR)$(MANDIR)/man1/$$f; done
	for f in $(notdir $(INST_MAN7)); do rm -f $(DESTDIR)$(MANDIR)/man7/$$f; done
	for f in $(notdir $(INST_MAN8)); do rm -f $(DESTDIR)$(MANDIR)/man8/$$f; done
	for f in $(notdir $(INST_UNITS)); do rm -f $(DESTDIR)$(UNITDIR)/$$f; done
	for e in $(INST_EXAMPLES) mkcerts=; do \
	    rm -f $(DESTDIR)$(DOCDIR)/examples/$${e%%=*}; \
	done
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null || true

FORCE:

.PHONY: units install uninstall FORCE
