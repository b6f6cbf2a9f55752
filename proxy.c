/*
 * proxy.c -- the PROXY protocol header a load balancer such as HAProxy
 * puts in front of a connection (version 1, one text line, and version 2,
 * binary; HAProxy's "The PROXY protocol, versions 1 & 2"): a parser over
 * a buffer, and a reader that takes exactly the header's bytes off the
 * handler's socket and leaves the USMTP stream behind it untouched.
 * Whether to expect a header, and what to log or answer, is the
 * handler's; this file never prints or exits.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "usmtp.h"

#define V1_PREFIX	"PROXY "
#define V1_PREFIX_BYTES	6
#define V2_SIG		"\r\n\r\n\0\r\nQUIT\n"
#define V2_SIG_BYTES	12
#define V2_HDR_BYTES	16	/* signature, ver/cmd, family, length */
#define V2_INET_BYTES	12	/* 2 IPv4 addresses, 2 ports */
#define V2_INET6_BYTES	36	/* 2 IPv6 addresses, 2 ports */
#define V2_UNIX_BYTES	216	/* 2 sun_path of 108 bytes */
#define V2_TLV_HDR_BYTES 3	/* type, 16-bit length */
#define PORT_DIGITS	5	/* "65535" */

static int	v1_parse(const unsigned char *p, size_t len,
		    struct proxy_hdr *h, const char **why);
static int	v1_addr(const char *p, size_t n, int family, void *addr);
static int	v1_port(const char *p, size_t n, unsigned *port);
static int	v2_parse(const unsigned char *p, size_t len,
		    struct proxy_hdr *h, const char **why);
static void	peer_text(int family, const void *addr, unsigned port,
		    char *out, size_t outsz);
static int	take(int fd, unsigned char *buf, size_t n, long deadline,
		    const char **why);

int
proxy_parse(const unsigned char *p, size_t len, struct proxy_hdr *h,
    const char **why)
{
	size_t	n;

	memset(h, 0, sizeof(*h));
	h->len = len + 1;
	/*
	 * The first bytes tell the version (the specification, 2.2,
	 * "identifying the protocol version"); anything else is no header.
	 */
	if (len > 0 && (p[0] == 'P' || p[0] == '\r')) {
		h->version = p[0] == 'P' ? 1 : 2;
		n = h->version == 1 ? V1_PREFIX_BYTES : V2_SIG_BYTES;
		if (memcmp(p, h->version == 1 ? V1_PREFIX : V2_SIG,
		    len < n ? len : n) != 0) {
			*why = "not a PROXY protocol header";
			return PROXY_BAD;
		}
		return h->version == 1 ? v1_parse(p, len, h, why) :
		    v2_parse(p, len, h, why);
	}
	if (len == 0)
		return PROXY_MORE;
	*why = "not a PROXY protocol header";
	return PROXY_BAD;
}

/*
 * Version 1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n", single spaces,
 * or "PROXY UNKNOWN" and anything up to the CRLF; at most
 * PROXY_V1_MAX_BYTES with the CRLF.
 */
static int
v1_parse(const unsigned char *p, size_t len, struct proxy_hdr *h,
    const char **why)
{
	char		 line[PROXY_V1_MAX_BYTES + 1];
	const char	*f[6];
	size_t		 fl[6], n, i, end;
	unsigned	 sport, dport;
	unsigned char	 src[16], dst[16];
	int		 nf, family;

	/* The line ends at the first CRLF; a CR or LF alone is no end, and
	 * no byte of the line may be either. */
	n = len < PROXY_V1_MAX_BYTES ? len : PROXY_V1_MAX_BYTES;
	for (end = 0; end < n; end++)
		if (p[end] == '\r' || p[end] == '\n')
			break;
	if (end == n) {
		if (len >= PROXY_V1_MAX_BYTES) {
			*why = "PROXY line longer than 107 bytes";
			return PROXY_BAD;
		}
		return PROXY_MORE;
	}
	if (p[end] == '\n') {
		*why = "PROXY line ends in LF without CR";
		return PROXY_BAD;
	}
	if (end + 1 == len) {
		if (end + 2 > PROXY_V1_MAX_BYTES) {
			*why = "PROXY line longer than 107 bytes";
			return PROXY_BAD;
		}
		return PROXY_MORE;	/* the LF may follow */
	}
	if (p[end + 1] != '\n') {
		*why = "PROXY line has a CR without LF";
		return PROXY_BAD;
	}
	if (end + 2 > PROXY_V1_MAX_BYTES) {
		*why = "PROXY line longer than 107 bytes";
		return PROXY_BAD;
	}
	h->len = end + 2;
	memcpy(line, p, end);
	line[end] = '\0';

	/* Fields after "PROXY ", split at single spaces. */
	nf = 0;
	i = V1_PREFIX_BYTES;
	for (;;) {
		f[nf] = line + i;
		for (fl[nf] = 0; i < end && line[i] != ' '; i++)
			fl[nf]++;
		nf++;
		if (i == end || nf == 6)
			break;
		i++;	/* the space */
	}
	if (fl[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
		/* Whatever follows is to be ignored: the connection's own
		 * addresses stand. */
		h->local = 1;
		return PROXY_DONE;
	}
	if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
		family = AF_INET;
	else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
		family = AF_INET6;
	else {
		*why = "PROXY line: unknown protocol";
		return PROXY_BAD;
	}
	if (nf != 5 || i != end) {
		*why = "PROXY line: not 4 fields after the protocol";
		return PROXY_BAD;
	}
	if (v1_addr(f[1], fl[1], family, src) == -1 ||
	    v1_addr(f[2], fl[2], family, dst) == -1) {
		*why = "PROXY line: bad address";
		return PROXY_BAD;
	}
	if (v1_port(f[3], fl[3], &sport) == -1 ||
	    v1_port(f[4], fl[4], &dport) == -1) {
		*why = "PROXY line: bad port";
		return PROXY_BAD;
	}
	peer_text(family, src, sport, h->peer, sizeof(h->peer));
	return PROXY_DONE;
}

/*
 * An address of family in its canonical text: IPv4 as four decimal
 * numbers 0..255 without leading zeros, IPv6 as inet_pton(3) reads it.
 */
static int
v1_addr(const char *p, size_t n, int family, void *addr)
{
	char		 buf[INET6_ADDRSTRLEN];
	size_t		 i, digits = 0, dots = 0;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	if (family == AF_INET) {
		for (i = 0; i < n; i++) {
			if (p[i] == '.') {
				if (digits == 0)
					return -1;
				digits = 0;
				dots++;
			} else if (p[i] >= '0' && p[i] <= '9') {
				/* no leading zeros: "01" could be octal */
				if (digits == 1 && p[i - 1] == '0')
					return -1;
				digits++;
			} else
				return -1;
		}
		if (dots != 3 || digits == 0)
			return -1;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	return inet_pton(family, buf, addr) == 1 ? 0 : -1;
}

/* A port: decimal 0..65535 without leading zeros. */
static int
v1_port(const char *p, size_t n, unsigned *port)
{
	size_t	i;

	if (n == 0 || n > PORT_DIGITS || (n > 1 && p[0] == '0'))
		return -1;
	*port = 0;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		*port = *port * 10 + (unsigned)(p[i] - '0');
	}
	return *port > 65535 ? -1 : 0;
}

/*
 * Version 2: the signature, version 2 and a command, a family and
 * transport, the length of the rest, the addresses, then TLVs, which are
 * skipped (but must fill the rest exactly).
 */
static int
v2_parse(const unsigned char *p, size_t len, struct proxy_hdr *h,
    const char **why)
{
	size_t		 total, addrlen, off, tl;
	unsigned	 cmd, fam, proto, sport;

	if (len > V2_SIG_BYTES && p[12] >> 4 != 2) {
		*why = "PROXY v2: version is not 2";
		return PROXY_BAD;
	}
	if (len > V2_SIG_BYTES && (p[12] & 0xf) > 1) {
		*why = "PROXY v2: unknown command";
		return PROXY_BAD;
	}
	/* LOCAL ignores the family byte; PROXY must name a known one. */
	if (len > V2_SIG_BYTES + 1 && (p[12] & 0xf) == 1 &&
	    (p[13] >> 4 > 3 || (p[13] & 0xf) > 2)) {
		*why = "PROXY v2: unknown family or transport";
		return PROXY_BAD;
	}
	if (len < V2_HDR_BYTES) {
		h->len = V2_HDR_BYTES;
		return PROXY_MORE;
	}
	total = V2_HDR_BYTES + ((size_t)p[14] << 8 | p[15]);
	h->len = total;
	if (len < total)
		return PROXY_MORE;
	cmd = p[12] & 0xf;
	if (cmd == 0) {
		/* LOCAL: the proxy's own connection (a health check); the
		 * block, family included, is ignored. */
		h->local = 1;
		return PROXY_DONE;
	}
	fam = p[13] >> 4;
	proto = p[13] & 0xf;
	switch (fam) {
	case 1:
		addrlen = V2_INET_BYTES;
		break;
	case 2:
		addrlen = V2_INET6_BYTES;
		break;
	case 3:
		addrlen = V2_UNIX_BYTES;
		break;
	default:
		/* UNSPEC: no address we could use; the rest is not ours
		 * to read.  The connection's own address stands. */
		h->local = 1;
		return PROXY_DONE;
	}
	if (total - V2_HDR_BYTES < addrlen) {
		*why = "PROXY v2: length too short for the addresses";
		return PROXY_BAD;
	}
	for (off = V2_HDR_BYTES + addrlen; off < total; off += tl) {
		if (total - off < V2_TLV_HDR_BYTES) {
			*why = "PROXY v2: TLV cut short";
			return PROXY_BAD;
		}
		tl = V2_TLV_HDR_BYTES + ((size_t)p[off + 1] << 8 | p[off + 2]);
		if (tl > total - off) {
			*why = "PROXY v2: TLV longer than the header";
			return PROXY_BAD;
		}
	}
	if (proto == 0 || fam == 3) {
		/* Unspecified transport, or a UNIX socket: no network
		 * address of the client, so the connection's stands. */
		h->local = 1;
		return PROXY_DONE;
	}
	/* the source port follows both addresses */
	off = V2_HDR_BYTES + addrlen - 4;
	sport = (unsigned)p[off] << 8 | p[off + 1];
	peer_text(fam == 1 ? AF_INET : AF_INET6, p + V2_HDR_BYTES, sport,
	    h->peer, sizeof(h->peer));
	return PROXY_DONE;
}

/*
 * The peer as the handler logs it: "192.0.2.1:4711", "[2001:db8::1]:4711";
 * an IPv4-mapped IPv6 address as the IPv4 address it is.
 */
static void
peer_text(int family, const void *addr, unsigned port, char *out,
    size_t outsz)
{
	const unsigned char	*a = addr;
	char			 host[INET6_ADDRSTRLEN];

	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(
	    (const struct in6_addr *)addr)) {
		family = AF_INET;
		a += 12;
	}
	inet_ntop(family, a, host, sizeof(host));
	snprintf(out, outsz, family == AF_INET ? "%s:%u" : "[%s]:%u", host,
	    port);
}

/*
 * Reads exactly n bytes that are known to be queued on fd (they were
 * seen with MSG_PEEK), waiting no later than deadline.
 */
static int
take(int fd, unsigned char *buf, size_t n, long deadline, const char **why)
{
	ssize_t	r;
	size_t	got = 0;

	while (got < n) {
		r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0) {
			*why = "connection closed inside the PROXY header";
			return -1;
		}
		if (errno == EINTR)
			continue;
		if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
		    clock_ms() < deadline)
			continue;	/* queued: cannot really happen */
		*why = "cannot read the PROXY header";
		return -1;
	}
	return 0;
}

int
proxy_read(int fd, int timeout_ms, struct proxy_hdr *h, const char **why)
{
	struct pollfd	 pfd;
	unsigned char	*buf;
	size_t		 have = 0;
	ssize_t		 n;
	long		 deadline, left;
	int		 r, rv = -1;

	memset(h, 0, sizeof(*h));
	if ((buf = malloc(PROXY_MAX_BYTES)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	deadline = clock_ms() + timeout_ms;
	for (;;) {
		/*
		 * Wait for bytes we have not taken yet.  Every byte taken
		 * so far belongs to the header, so poll() wakes only for
		 * new ones.
		 */
		if ((left = deadline - clock_ms()) <= 0) {
			*why = have == 0 ? "no PROXY header in time" :
			    "PROXY header not complete in time";
			goto out;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if ((r = poll(&pfd, 1, (int)left)) == -1) {
			if (errno == EINTR)
				continue;
			*why = "poll failed";
			goto out;
		}
		if (r == 0)
			continue;	/* the deadline check says so */
		/* Look, do not take: the USMTP stream may follow at once. */
		n = recv(fd, buf + have, PROXY_MAX_BYTES - have,
		    MSG_PEEK | MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			*why = errno == ENOTSOCK ?
			    "standard input is not a socket" :
			    "cannot read the PROXY header";
			goto out;
		}
		if (n == 0) {
			*why = have == 0 ? "connection closed before the "
			    "PROXY header" : "connection closed inside the "
			    "PROXY header";
			goto out;
		}
		r = proxy_parse(buf, have + (size_t)n, h, why);
		if (r == PROXY_BAD)
			goto out;
		if (r == PROXY_DONE) {
			/* Take the header's bytes and not one more. */
			if (take(fd, buf + have, h->len - have, deadline,
			    why) == -1)
				goto out;
			rv = 0;
			goto out;
		}
		/* Not complete: all these bytes are the header's. */
		if (take(fd, buf + have, (size_t)n, deadline, why) == -1)
			goto out;
		have += (size_t)n;
	}
out:
	free(buf);
	if (rv == -1)
		h->len = 0;
	return rv;
}
