/*
 * fuzz-proxy -- libFuzzer target for proxy.c's PROXY protocol parser
 * (HAProxy's specification, versions 1 and 2): proxy_parse() over
 * arbitrary bytes.  Every answer must hold together: DONE names a length
 * inside the input (at most 107 bytes for v1) and a peer that reads back
 * as an address and port, or none when local; the header alone gives
 * the same answer, and the header less its last byte asks for more;
 * MORE asks for more than it was given; BAD gives a reason.
 *
 * Input: the bytes a connection starts with.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "usmtp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void	check_peer(const char *peer);

/* "a.b.c.d:port" or "[v6]:port", port 0..65535, nothing else. */
static void
check_peer(const char *peer)
{
	char			 host[PROXY_PEER_BYTES];
	unsigned char		 addr[16];
	const char		*colon, *end;
	unsigned long		 port;
	char			*pend;
	int			 family = AF_INET;

	if (peer[0] == '[') {
		if ((end = strchr(peer, ']')) == NULL || end[1] != ':')
			abort();
		memcpy(host, peer + 1, (size_t)(end - peer - 1));
		host[end - peer - 1] = '\0';
		colon = end + 1;
		family = AF_INET6;
	} else {
		if ((colon = strchr(peer, ':')) == NULL)
			abort();
		memcpy(host, peer, (size_t)(colon - peer));
		host[colon - peer] = '\0';
	}
	if (inet_pton(family, host, addr) != 1)
		abort();
	/* an IPv4-mapped address is shown as IPv4 */
	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *)addr))
		abort();
	port = strtoul(colon + 1, &pend, 10);
	if (*pend != '\0' || port > 65535 || colon[1] == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr	 h, h2;
	const char		*why = NULL;
	int			 r, r2;

	r = proxy_parse(data, size, &h, &why);
	switch (r) {
	case PROXY_BAD:
		if (why == NULL || *why == '\0')
			abort();
		break;
	case PROXY_MORE:
		if (h.len <= size)
			abort();
		break;
	case PROXY_DONE:
		if (h.len == 0 || h.len > size || h.len > PROXY_MAX_BYTES)
			abort();
		if (h.version == 1 && h.len > PROXY_V1_MAX_BYTES)
			abort();
		if (h.version != 1 && h.version != 2)
			abort();
		if (memchr(h.peer, '\0', sizeof(h.peer)) == NULL)
			abort();
		if (h.local != (h.peer[0] == '\0'))
			abort();
		if (!h.local)
			check_peer(h.peer);
		/* What follows the header changes nothing. */
		r2 = proxy_parse(data, h.len, &h2, &why);
		if (r2 != PROXY_DONE || h2.len != h.len ||
		    h2.local != h.local || strcmp(h2.peer, h.peer) != 0)
			abort();
		/* One byte less is not a header yet. */
		r2 = proxy_parse(data, h.len - 1, &h2, &why);
		if (r2 != PROXY_MORE || h2.len < h.len)
			abort();
		break;
	default:
		abort();
	}
	return 0;
}
