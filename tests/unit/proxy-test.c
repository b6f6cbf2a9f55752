/*
 * proxy-test.c -- unit tests of proxy.c, TAP on stdout: PROXY protocol
 * v1 and v2 headers for IPv4 and IPv6, LOCAL and UNKNOWN, TLVs, every
 * truncation point of each good header, bad signatures, versions,
 * commands, families and lengths, v1 lines over 107 bytes, garbage; then
 * proxy_read() over socket pairs: it takes the header and not one byte
 * more, in one piece or dribbled, through signals, and gives up at its
 * deadline, at end of input and on a descriptor that is not a socket.
 */

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usmtp.h"
#include "tap.h"

#define STREAM		"hello ssl1.0?\r\n\r\n"	/* what follows a header */
#define GARBAGE_RUNS	200000
#define SHORT_WAIT_MS	200

struct good {
	const char	*what;
	unsigned char	 buf[300];
	size_t		 len;
	const char	*peer;	/* NULL: local */
	int		 version;
};

static size_t	v2(unsigned char *out, unsigned char vercmd,
		    unsigned char fam, const unsigned char *rest,
		    size_t restlen, size_t claimed);
static size_t	v2_inet(unsigned char *out, const char *tlvs, size_t tlvlen);
static size_t	v2_inet6(unsigned char *out, const unsigned char src[16]);
static void	check_good(const struct good *g);
static void	bad(const char *what, const void *p, size_t len);
static void	bad_str(const char *what, const char *line);
static void	test_v1(void);
static void	test_v2(void);
static void	test_garbage(void);
static long	ms_since(const struct timespec *t0);
static void	read_header(const char *what, const unsigned char *hdr,
		    size_t len, const char *peer, size_t step);
static void	test_read(void);
static void	test_read_eintr(void);
static void	gives_up(int fd, const char *want, const char *what);
static void	refused(const char *what, const char *input, size_t len,
		    int hangup, const char *want);
static void	test_read_fail(void);
static void	on_alarm(int sig);

static const unsigned char sig2[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/*
 * A v2 header: signature, ver/cmd, family, the length claimed, then
 * restlen bytes of rest.  Returns its size.
 */
static size_t
v2(unsigned char *out, unsigned char vercmd, unsigned char fam,
    const unsigned char *rest, size_t restlen, size_t claimed)
{
	memcpy(out, sig2, 12);
	out[12] = vercmd;
	out[13] = fam;
	out[14] = (unsigned char)(claimed >> 8);
	out[15] = (unsigned char)claimed;
	if (restlen > 0)
		memcpy(out + 16, rest, restlen);
	return 16 + restlen;
}

/* v2 PROXY TCP4 192.0.2.1:4711 -> 198.51.100.2:1338, then tlvs. */
static size_t
v2_inet(unsigned char *out, const char *tlvs, size_t tlvlen)
{
	unsigned char	rest[12 + 256];

	memcpy(rest, "\xc0\x00\x02\x01" "\xc6\x33\x64\x02" "\x12\x67"
	    "\x05\x3a", 12);
	memcpy(rest + 12, tlvs, tlvlen);
	return v2(out, 0x21, 0x11, rest, 12 + tlvlen, 12 + tlvlen);
}

/* v2 PROXY TCP6 src:4711 -> 2001:db8::2:1338. */
static size_t
v2_inet6(unsigned char *out, const unsigned char src[16])
{
	unsigned char	rest[36];

	memcpy(rest, src, 16);
	memcpy(rest + 16, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02", 16);
	memcpy(rest + 32, "\x12\x67\x05\x3a", 4);
	return v2(out, 0x21, 0x21, rest, 36, 36);
}

/*
 * A good header: parsed whole with the stream after it, DONE with its
 * length and peer; every proper prefix is MORE, asking for more than it
 * has.
 */
static void
check_good(const struct good *g)
{
	unsigned char		 buf[sizeof(g->buf) + sizeof(STREAM)];
	struct proxy_hdr	 h;
	const char		*why = "";
	size_t			 k, badk = 0;
	int			 r, allmore = 1;

	memcpy(buf, g->buf, g->len);
	memcpy(buf + g->len, STREAM, sizeof(STREAM) - 1);
	r = proxy_parse(buf, g->len + sizeof(STREAM) - 1, &h, &why);
	ok(r == PROXY_DONE && h.len == g->len && h.version == g->version &&
	    h.local == (g->peer == NULL) &&
	    strcmp(h.peer, g->peer ? g->peer : "") == 0,
	    "%s: done, %zu bytes, peer %s (got %d, %zu, v%d, local %d, "
	    "\"%s\", %s)", g->what, g->len, g->peer ? g->peer : "local", r,
	    h.len, h.version, h.local, h.peer, r == PROXY_BAD ? why : "-");
	r = proxy_parse(g->buf, g->len, &h, &why);
	ok(r == PROXY_DONE && h.len == g->len,
	    "%s: done without anything after it", g->what);
	for (k = 0; k < g->len; k++) {
		r = proxy_parse(g->buf, k, &h, &why);
		if (r != PROXY_MORE || h.len <= k) {
			allmore = 0;
			badk = k;
			break;
		}
	}
	if (allmore)
		ok(1, "%s: each of its %zu prefixes needs more bytes",
		    g->what, g->len);
	else
		ok(0, "%s: each of its %zu prefixes needs more bytes; not "
		    "the one of %zu", g->what, g->len, badk);
}

static void
bad(const char *what, const void *p, size_t len)
{
	struct proxy_hdr	 h;
	const char		*why = NULL;
	int			 r;

	r = proxy_parse(p, len, &h, &why);
	ok(r == PROXY_BAD && why != NULL, "%s: malformed (%s)", what,
	    r == PROXY_BAD ? why : r == PROXY_MORE ? "got MORE" : "got DONE");
}

static void
bad_str(const char *what, const char *line)
{
	bad(what, line, strlen(line));
}

static void
test_v1(void)
{
	struct good	g;
	char		line[200];
	size_t		n;

	memset(&g, 0, sizeof(g));
	g.version = 1;

#define V1(w, text, p) do {						\
	g.what = (w);							\
	g.len = strlen(text);						\
	memcpy(g.buf, (text), g.len);					\
	g.peer = (p);							\
	check_good(&g);							\
} while (0)
	V1("v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.2 4711 1338\r\n",
	    "192.0.2.1:4711");
	V1("v1 TCP4 longest",
	    "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
	    "255.255.255.255:65535");
	V1("v1 TCP4 zeros", "PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n",
	    "0.0.0.0:0");
	V1("v1 TCP6", "PROXY TCP6 2001:DB8::1 2001:db8::2 4711 1338\r\n",
	    "[2001:db8::1]:4711");
	V1("v1 TCP6 IPv4-mapped",
	    "PROXY TCP6 ::ffff:192.0.2.9 ::1 60000 1338\r\n",
	    "192.0.2.9:60000");
	V1("v1 TCP6 longest", "PROXY TCP6 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
	V1("v1 UNKNOWN short form", "PROXY UNKNOWN\r\n", NULL);
	V1("v1 UNKNOWN with addresses",
	    "PROXY UNKNOWN 192.0.2.1 198.51.100.2 4711 1338\r\n", NULL);
	/* The specification's worst case, exactly 107 bytes. */
	V1("v1 UNKNOWN of 107 bytes", "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", NULL);
#undef V1
	ok(strlen("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n") ==
	    PROXY_V1_MAX_BYTES, "the worst case is PROXY_V1_MAX_BYTES long");

	bad_str("v1 UNKNOWN of 108 bytes", "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r\n");
	/* 107 bytes without CRLF: no need to wait for more */
	n = (size_t)snprintf(line, sizeof(line), "PROXY UNKNOWN %093d", 0);
	ok(n == 107, "a line of 107 bytes is built");
	bad("v1 107 bytes and no CRLF", line, n);
	bad("v1 107 bytes, the CR last", (line[106] = '\r', line), n);
	{
		struct proxy_hdr	h;
		const char		*why;

		ok(proxy_parse((const unsigned char *)line, 106, &h, &why) ==
		    PROXY_MORE, "v1 106 bytes and no CRLF: more needed");
	}
	bad_str("v1 TCP4 leading zero",
	    "PROXY TCP4 192.0.2.01 10.0.0.1 1 2\r\n");
	bad_str("v1 TCP4 octet over 255",
	    "PROXY TCP4 256.0.2.1 10.0.0.1 1 2\r\n");
	bad_str("v1 TCP4 three octets", "PROXY TCP4 192.0.2 10.0.0.1 1 2\r\n");
	bad_str("v1 TCP4 empty octet", "PROXY TCP4 192..2.1 10.0.0.1 1 2\r\n");
	bad_str("v1 TCP4 bad destination",
	    "PROXY TCP4 192.0.2.1 10.0.0 1 2\r\n");
	bad_str("v1 TCP4 with IPv6 addresses", "PROXY TCP4 ::1 ::1 1 2\r\n");
	bad_str("v1 TCP6 with IPv4 addresses",
	    "PROXY TCP6 192.0.2.1 10.0.0.1 1 2\r\n");
	bad_str("v1 TCP6 bad address", "PROXY TCP6 2001:db8:::1 ::1 1 2\r\n");
	bad_str("v1 port over 65535",
	    "PROXY TCP4 192.0.2.1 10.0.0.1 65536 2\r\n");
	bad_str("v1 port with a leading zero",
	    "PROXY TCP4 192.0.2.1 10.0.0.1 01 2\r\n");
	bad_str("v1 port not a number",
	    "PROXY TCP4 192.0.2.1 10.0.0.1 1 x\r\n");
	bad_str("v1 negative port", "PROXY TCP4 192.0.2.1 10.0.0.1 -1 2\r\n");
	bad_str("v1 two spaces", "PROXY TCP4  192.0.2.1 10.0.0.1 1 2\r\n");
	bad_str("v1 trailing space", "PROXY TCP4 192.0.2.1 10.0.0.1 1 2 \r\n");
	bad_str("v1 a field missing", "PROXY TCP4 192.0.2.1 10.0.0.1 1\r\n");
	bad_str("v1 a field too many",
	    "PROXY TCP4 192.0.2.1 10.0.0.1 1 2 3\r\n");
	bad_str("v1 no fields", "PROXY TCP4\r\n");
	bad_str("v1 unknown protocol", "PROXY TCP5 192.0.2.1 10.0.0.1 1 2\r\n");
	bad_str("v1 UNKNOWN misspelt", "PROXY UNKNOWNX\r\n");
	bad_str("v1 empty protocol", "PROXY \r\n");
	bad_str("v1 lower case", "proxy TCP4 192.0.2.1 10.0.0.1 1 2\r\n");
	bad_str("v1 lower-case protocol",
	    "PROXY tcp4 192.0.2.1 10.0.0.1 1 2\r\n");
	bad_str("v1 LF alone", "PROXY TCP4 192.0.2.1 10.0.0.1 1 2\n");
	bad_str("v1 CR alone", "PROXY TCP4 192.0.2.1 10.0.0.1 1 2\rX");
	bad_str("v1 CR inside the line", "PROXY TCP4\r 192.0.2.1\r\n");
	bad_str("v1 tab for a space", "PROXY\tTCP4 192.0.2.1 10.0.0.1 1 2\r\n");
	bad_str("v1 no space after PROXY", "PROXYTCP4\r\n");
	bad("v1 NUL in the address",
	    "PROXY TCP4 192.0\0.2.1 10.0.0.1 1 2\r\n", 36);
}

static void
test_v2(void)
{
	static const unsigned char v6[16] = {
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
	};
	static const unsigned char mapped[16] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 9
	};
	struct good		 g;
	unsigned char		 b[300], zero[216], *big;
	struct proxy_hdr	 h;
	const char		*why;
	size_t			 n, i;
	int			 r;

	memset(&g, 0, sizeof(g));
	memset(zero, 0, sizeof(zero));
	g.version = 2;

	g.what = "v2 TCP4";
	g.len = v2_inet(g.buf, "", 0);
	g.peer = "192.0.2.1:4711";
	check_good(&g);
	ok(g.len == 28, "v2 TCP4 is 28 bytes");

	g.what = "v2 TCP4 with TLVs (NOOP, unique id, empty)";
	g.len = v2_inet(g.buf, "\x04\x00\x02xy" "\x05\x00\x05id-42" "\xe0\0\0",
	    5 + 8 + 3);
	check_good(&g);

	g.what = "v2 TCP6";
	g.len = v2_inet6(g.buf, v6);
	g.peer = "[2001:db8::1]:4711";
	check_good(&g);

	g.what = "v2 TCP6 IPv4-mapped";
	g.len = v2_inet6(g.buf, mapped);
	g.peer = "192.0.2.9:4711";
	check_good(&g);

	g.what = "v2 UDP4 (the addresses still count)";
	g.len = v2_inet(g.buf, "", 0);
	g.buf[13] = 0x12;
	g.peer = "192.0.2.1:4711";
	check_good(&g);

	g.what = "v2 LOCAL, no addresses";
	g.len = v2(g.buf, 0x20, 0x00, NULL, 0, 0);
	g.peer = NULL;
	check_good(&g);

	g.what = "v2 LOCAL with a block and a family it ignores";
	g.len = v2(g.buf, 0x20, 0xff, zero, 5, 5);
	check_good(&g);

	g.what = "v2 PROXY UNSPEC with a block";
	g.len = v2(g.buf, 0x21, 0x00, zero, 7, 7);
	check_good(&g);

	g.what = "v2 PROXY TCP4, transport UNSPEC";
	g.len = v2_inet(g.buf, "", 0);
	g.buf[13] = 0x10;
	check_good(&g);

	g.what = "v2 PROXY UNIX stream";
	g.len = v2(g.buf, 0x21, 0x31, zero, 216, 216);
	check_good(&g);

	/* The largest a v2 header can be: 65535 bytes after the 16. */
	if ((big = calloc(1, PROXY_MAX_BYTES + 10)) == NULL)
		abort();
	v2_inet(big, "", 0);
	big[14] = 0xff;
	big[15] = 0xff;
	big[28] = 0x04;		/* NOOP TLV over the rest */
	big[29] = (65535 - 12 - 3) >> 8;
	big[30] = (65535 - 12 - 3) & 0xff;
	r = proxy_parse(big, PROXY_MAX_BYTES + 10, &h, &why);
	ok(r == PROXY_DONE && h.len == PROXY_MAX_BYTES &&
	    strcmp(h.peer, "192.0.2.1:4711") == 0,
	    "v2 of the largest length (%d bytes) is done", PROXY_MAX_BYTES);
	r = proxy_parse(big, PROXY_MAX_BYTES - 1, &h, &why);
	ok(r == PROXY_MORE && h.len == PROXY_MAX_BYTES,
	    "v2 of the largest length, one byte short: more, and it says "
	    "how many");
	free(big);

	for (i = 0; i < 12; i++) {
		char	what[64];

		n = v2_inet(b, "", 0);
		b[i] ^= 0x40;
		snprintf(what, sizeof(what), "v2 signature byte %zu wrong", i);
		bad(what, b, i + 1);	/* refused as soon as it is seen */
	}
	n = v2_inet(b, "", 0);
	bad("v2 version 1", (b[12] = 0x11, b), 13);
	bad("v2 version 3", (b[12] = 0x31, b), n);
	bad("v2 command 2", (b[12] = 0x22, b), 13);
	bad("v2 command 15", (b[12] = 0x2f, b), n);
	n = v2_inet(b, "", 0);
	bad("v2 family 4", (b[13] = 0x41, b), 14);
	bad("v2 transport 3", (b[13] = 0x13, b), n);
	bad("v2 TCP4 with a length of 11", b, v2(b, 0x21, 0x11, zero, 11, 11));
	bad("v2 TCP6 with a length of 35", b, v2(b, 0x21, 0x21, zero, 35, 35));
	bad("v2 UNIX with a length of 215", b,
	    v2(b, 0x21, 0x31, zero, 215, 215));
	bad("v2 TLV header cut short (1 byte)", b, v2_inet(b, "\x04", 1));
	bad("v2 TLV header cut short (2 bytes)", b, v2_inet(b, "\x04\x00", 2));
	bad("v2 TLV longer than the header", b,
	    v2_inet(b, "\x04\x00\x03xy", 5));
	bad("v2 second TLV longer than the header", b,
	    v2_inet(b, "\x04\x00\x00" "\x05\x01\x00", 6));
	n = v2_inet(b, "", 0);
	r = proxy_parse(b, n - 1, &h, &why);
	ok(r == PROXY_MORE && h.len == n,
	    "v2 short of its length: more, %zu wanted (got %d, %zu)", n, r,
	    h.len);
	/* A v2 length that points past the TCP4 block by one byte. */
	b[15] = 13;
	r = proxy_parse(b, n, &h, &why);
	ok(r == PROXY_MORE && h.len == 29, "v2 length one past the data: "
	    "more (a TLV may follow)");
	b[n] = 0x04;
	bad("v2 length one past the block: a cut TLV", b, n + 1);
}

/*
 * Random bytes, and random bytes behind each signature: never a crash,
 * DONE only with a length inside the buffer, MORE only asking for more.
 */
static void
test_garbage(void)
{
	unsigned char		 buf[256];
	struct proxy_hdr	 h;
	const char		*why;
	size_t			 len, j;
	unsigned		 seed = 12345, bads = 0, wrong = 0;
	int			 i, r;

	for (i = 0; i < GARBAGE_RUNS; i++) {
		len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
		for (j = 0; j < len; j++)
			buf[j] = (unsigned char)rand_r(&seed);
		if (i % 3 == 1 && len >= 12)
			memcpy(buf, sig2, 12);
		else if (i % 3 == 2 && len >= 6)
			memcpy(buf, "PROXY ", 6);
		why = NULL;
		r = proxy_parse(buf, len, &h, &why);
		if (r == PROXY_BAD) {
			bads++;
			if (why == NULL)
				wrong++;
		} else if (r == PROXY_DONE) {
			if (h.len > len || h.len == 0)
				wrong++;
		} else if (r == PROXY_MORE) {
			if (h.len <= len)
				wrong++;
		} else
			wrong++;
	}
	ok(wrong == 0, "%d garbage inputs: every answer consistent (%u "
	    "inconsistent)", GARBAGE_RUNS, wrong);
	ok(bads > GARBAGE_RUNS / 2, "most garbage is malformed (%u)", bads);
	bad_str("an HTTP request", "GET / HTTP/1.0\r\n\r\n");
	bad_str("a USMTP hello", STREAM);
	bad("a TLS client hello", "\x16\x03\x01\x02\x00\x01", 6);
	bad("a NUL byte", "", 1);
	{
		int	more;

		more = proxy_parse((const unsigned char *)"", 0, &h, &why) ==
		    PROXY_MORE;
		ok(more, "nothing yet: more needed");
	}
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec	t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)(t.tv_sec - t0->tv_sec) * 1000 +
	    (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * proxy_read of a header (hdr, len bytes) with STREAM after it: it takes
 * the header, with peer, and leaves the stream whole.  With step 0 all
 * is written before the read; else a writer process sends step bytes at
 * a time.  Two checks, named after what.
 */
static void
read_header(const char *what, const unsigned char *hdr, size_t len,
    const char *peer, size_t step)
{
	unsigned char		 b[128];
	struct proxy_hdr	 h;
	const char		*why = "";
	char			 rest[64];
	size_t			 total, got, i;
	ssize_t			 n;
	pid_t			 pid = -1;
	int			 sv[2], r, status;

	memcpy(b, hdr, len);
	memcpy(b + len, STREAM, sizeof(STREAM) - 1);
	total = len + sizeof(STREAM) - 1;
	must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	if (step == 0)
		must(write(sv[1], b, total) == (ssize_t)total, "write");
	else {
		must((pid = fork()) != -1, "fork");
		if (pid == 0) {
			close(sv[0]);
			for (i = 0; i < total; i += step) {
				if (write(sv[1], b + i, total - i < step ?
				    total - i : step) == -1)
					_exit(1);
				usleep(2000);	/* pacing, not a wait */
			}
			_exit(0);
		}
	}
	r = proxy_read(sv[0], step == 0 ? SHORT_WAIT_MS : 5000, &h, &why);
	ok(r == 0 && h.len == len && strcmp(h.peer, peer) == 0,
	    "%s: the header (%s)", what, r == 0 ? h.peer : why);
	close(sv[1]);
	got = 0;
	while ((n = read(sv[0], rest + got, sizeof(rest) - got)) > 0)
		got += (size_t)n;
	ok(got == sizeof(STREAM) - 1 && memcmp(rest, STREAM, got) == 0,
	    "%s: the stream after it is left whole (%zu bytes)", what, got);
	close(sv[0]);
	if (pid != -1)
		waitpid(pid, &status, 0);
}

/*
 * A header and the stream written at once, then dribbled by a writer: a
 * byte at a time (v1), or in three pieces that cut the fixed part and
 * the addresses (v2).
 */
static void
test_read(void)
{
	static const char	*v1 = "PROXY TCP6 2001:db8::7 ::1 4711 1338\r\n",
				*v1d = "PROXY TCP4 192.0.2.3 10.0.0.1 5 1338\r\n";
	unsigned char		 b[128];
	size_t			 len;

	read_header("proxy_read v1", (const unsigned char *)v1, strlen(v1),
	    "[2001:db8::7]:4711", 0);
	len = v2_inet(b, "\x05\x00\x02id", 5);
	read_header("proxy_read v2", b, len, "192.0.2.1:4711", 0);
	read_header("proxy_read v1 dribbled", (const unsigned char *)v1d,
	    strlen(v1d), "192.0.2.3:5", 1);
	len = v2_inet(b, "\x04\x00\x01z", 4);
	read_header("proxy_read v2 dribbled", b, len, "192.0.2.1:4711", 10);
}

static void
on_alarm(int sig)
{
	(void)sig;
}

/* Signals while waiting (EINTR) do not end the wait or shorten it. */
static void
test_read_eintr(void)
{
	struct sigaction	 sa;
	struct itimerval	 it;
	struct proxy_hdr	 h;
	struct timespec		 t0;
	const char		*why = "";
	long			 ms;
	int			 sv[2], r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: poll gets EINTR */
	sigaction(SIGALRM, &sa, NULL);
	memset(&it, 0, sizeof(it));
	it.it_interval.tv_usec = 20000;
	it.it_value.tv_usec = 20000;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	setitimer(ITIMER_REAL, &it, NULL);
	r = proxy_read(sv[0], SHORT_WAIT_MS, &h, &why);
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	ms = ms_since(&t0);
	ok(r == -1 && strcmp(why, "no PROXY header in time") == 0 &&
	    ms >= SHORT_WAIT_MS - 5 && ms < SHORT_WAIT_MS + 1000,
	    "signals every 20 ms: still waits its %d ms, then times out "
	    "(%ld ms, %s)", SHORT_WAIT_MS, ms, why);
	close(sv[0]);
	close(sv[1]);
}

/*
 * proxy_read of fd gives up after SHORT_WAIT_MS, and no sooner, for the
 * reason want: one check, "WHAT after N ms".
 */
static void
gives_up(int fd, const char *want, const char *what)
{
	struct proxy_hdr	 h;
	struct timespec		 t0;
	const char		*why = "";
	long			 ms;
	int			 r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = proxy_read(fd, SHORT_WAIT_MS, &h, &why);
	ms = ms_since(&t0);
	ok(r == -1 && strcmp(why, want) == 0 &&
	    ms >= SHORT_WAIT_MS - 5 && ms < SHORT_WAIT_MS + 1000,
	    "%s after %d ms (%ld ms, %s)", what, SHORT_WAIT_MS, ms, why);
}

/*
 * proxy_read refuses what a socket pair holds (len bytes of input, then
 * the writing end closed when hangup is set) at once, for the reason
 * want: one check, "WHAT (reason)".
 */
static void
refused(const char *what, const char *input, size_t len, int hangup,
    const char *want)
{
	struct proxy_hdr	 h;
	const char		*why = "";
	int			 sv[2], r;

	must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	must(write(sv[1], input, len) == (ssize_t)len, "write");
	if (hangup)
		close(sv[1]);
	r = proxy_read(sv[0], SHORT_WAIT_MS, &h, &why);
	ok(r == -1 && strcmp(why, want) == 0, "%s (%s)", what, why);
	close(sv[0]);
	if (!hangup)
		close(sv[1]);
}

static void
test_read_fail(void)
{
	struct proxy_hdr	 h;
	const char		*why = "";
	int			 sv[2], pfd[2], r;

	must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	gives_up(sv[0], "no PROXY header in time", "nothing sent: gives up");
	must(write(sv[1], "PROXY TCP4 192.0.2.1", 20) == 20, "write");
	gives_up(sv[0], "PROXY header not complete in time",
	    "half a header: gives up");
	close(sv[0]);
	close(sv[1]);

	refused("a malformed header: refused at once",
	    "PROXY TCP4 192.0.2.1 10.0.0.1 1 2\n", 34, 0,
	    "PROXY line ends in LF without CR");
	refused("a USMTP hello instead of a header: refused", STREAM,
	    sizeof(STREAM) - 1, 0, "not a PROXY protocol header");
	refused("closed at once: refused", "", 0, 1,
	    "connection closed before the PROXY header");
	refused("closed inside a v2 header: refused",
	    "\r\n\r\n\0\r\nQUIT\n!", 13, 1,
	    "connection closed inside the PROXY header");

	must(pipe(pfd) == 0, "pipe");
	must(write(pfd[1], "PROXY UNKNOWN\r\n", 15) == 15, "write");
	r = proxy_read(pfd[0], SHORT_WAIT_MS, &h, &why);
	ok(r == -1 && strcmp(why, "standard input is not a socket") == 0,
	    "a pipe: refused (%s)", why);
	close(pfd[0]);
	close(pfd[1]);
}

int
main(void)
{
	test_v1();
	test_v2();
	test_garbage();
	test_read();
	test_read_eintr();
	test_read_fail();
	return tap_done();
}
