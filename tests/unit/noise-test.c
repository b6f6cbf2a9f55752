/*
 * noise-test.c -- unit tests of noise.c, TAP on stdout: the cacophony
 * vectors of Noise_NK_25519_AESGCM_SHA256 (tests/vectors/noise) byte for
 * byte in both roles, every changed byte and every truncation refused,
 * wrong static keys, prologues and peer keys, call order, nonce
 * exhaustion, fresh ephemerals, and the X25519 key and certificate helpers.
 * Usage: noise-test [VECTORS.json]; by default the file is found beside
 * the test binary's directory (../vectors/noise/cacophony-nk.json).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "usmtp.h"
#include "tap.h"

#define VECTOR_NAME	"Noise_NK_25519_AESGCM_SHA256"
#define NMSG		6	/* 2 handshake + 4 transport messages */
#define HEX_MAX_BYTES	256	/* largest field of the vectors, bytes */
#define JSON_MAX_BYTES	(1 << 20)

struct field {
	unsigned char	b[HEX_MAX_BYTES];
	size_t		len;
};

struct vector {
	struct field	prologue, init_e, rs, resp_s, resp_e, hash;
	struct field	payload[NMSG], ct[NMSG];
};

/* Both ends of one NK session, after the handshake. */
struct pair {
	struct noise_cipher	isend, irecv, rsend, rrecv;
	unsigned char		ihash[NOISE_HASH_BYTES];
	unsigned char		rhash[NOISE_HASH_BYTES];
};

static char	*read_json(const char *path);
static int	 hexval(int c);
static const char *find_in(const char *p, const char *end, const char *s);
static int	 get_hex(const char *p, const char *end, struct field *f);
static int	 get_field(const char *beg, const char *end, const char *name,
		    struct field *f);
static int	 parse(const char *json, struct vector *v);
static int	 same(const unsigned char *a, size_t alen,
		    const unsigned char *b, size_t blen);
static struct noise_hs *initiator(const struct vector *v,
		    const unsigned char *rs, const unsigned char *e);
static struct noise_hs *responder(const struct vector *v,
		    const unsigned char *e);
static int	 read1(const struct vector *v, const unsigned char *m,
		    size_t len);
static int	 read2(const struct vector *v, const unsigned char *m,
		    size_t len);
typedef int	 reader(const struct vector *, const unsigned char *, size_t);
static int	 changed_taken(reader *rd, const struct vector *v,
		    const struct field *msg, unsigned char flip);
static int	 cut_taken(reader *rd, const struct vector *v,
		    const struct field *msg);
static void	 test_vectors(const struct vector *v);
static void	 test_tamper_handshake(const struct vector *v);
static void	 test_tamper_transport(const struct vector *v);
static int	 msg1_refused(const struct vector *v, struct noise_hs *i);
static void	 test_wrong_peer(const struct vector *v);
static void	 test_order(const struct vector *v);
static int	 handshake(const struct vector *v, int fixed, struct pair *p,
		    unsigned char m1[128], size_t *m1len);
static void	 pair_clear(struct pair *p);
static void	 test_fresh(const struct vector *v);
static void	 test_nonces(const struct vector *v);
static void	 test_limits(const struct vector *v);
static EVP_PKEY *keygen(const char *alg);
static X509	*cert_for(EVP_PKEY *key, EVP_PKEY *signer);
static void	 test_keys(const struct vector *v);
static int	 pem_file(const char *path, EVP_PKEY *key);
static void	 test_load(const struct vector *v);

static char *
read_json(const char *path)
{
	FILE	*f;
	char	*buf;
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	if ((buf = malloc(JSON_MAX_BYTES + 1)) == NULL) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, JSON_MAX_BYTES, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The first s in [p, end), or NULL. */
static const char *
find_in(const char *p, const char *end, const char *s)
{
	const char	*q = strstr(p, s);

	return q != NULL && q < end ? q : NULL;
}

/* p is just past a "name": reads ': "HEX"' into f.  0 or -1. */
static int
get_hex(const char *p, const char *end, struct field *f)
{
	int	hi, lo;

	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	if (p >= end || *p++ != ':')
		return -1;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	if (p >= end || *p++ != '"')
		return -1;
	f->len = 0;
	while (p < end && *p != '"') {
		if ((hi = hexval(p[0])) < 0 || p + 1 >= end ||
		    (lo = hexval(p[1])) < 0 || f->len == sizeof(f->b))
			return -1;
		f->b[f->len++] = (unsigned char)(hi << 4 | lo);
		p += 2;
	}
	return p < end ? 0 : -1;
}

static int
get_field(const char *beg, const char *end, const char *name,
    struct field *f)
{
	char		 key[64];
	const char	*p;

	snprintf(key, sizeof(key), "\"%s\"", name);
	if ((p = find_in(beg, end, key)) == NULL)
		return -1;
	return get_hex(p + strlen(key), end, f);
}

/*
 * The entry whose protocol_name is VECTOR_NAME: from that name to the
 * next "protocol_name" (or the end).  Its messages are the "payload" and
 * "ciphertext" pairs in order.
 */
static int
parse(const char *json, struct vector *v)
{
	const char	*beg, *end, *p;
	struct field	 ip;
	int		 i;

	if ((beg = strstr(json, "\"" VECTOR_NAME "\"")) == NULL)
		return -1;
	if ((end = strstr(beg, "\"protocol_name\"")) == NULL)
		end = json + strlen(json);
	if (get_field(beg, end, "init_prologue", &ip) == -1 ||
	    get_field(beg, end, "resp_prologue", &v->prologue) == -1 ||
	    !same(ip.b, ip.len, v->prologue.b, v->prologue.len) ||
	    get_field(beg, end, "init_ephemeral", &v->init_e) == -1 ||
	    get_field(beg, end, "init_remote_static", &v->rs) == -1 ||
	    get_field(beg, end, "resp_static", &v->resp_s) == -1 ||
	    get_field(beg, end, "resp_ephemeral", &v->resp_e) == -1 ||
	    get_field(beg, end, "handshake_hash", &v->hash) == -1)
		return -1;
	if ((p = find_in(beg, end, "\"messages\"")) == NULL)
		return -1;
	for (i = 0; i < NMSG; i++) {
		if ((p = find_in(p, end, "\"payload\"")) == NULL ||
		    get_hex(p + 9, end, &v->payload[i]) == -1 ||
		    (p = find_in(p, end, "\"ciphertext\"")) == NULL ||
		    get_hex(p + 12, end, &v->ct[i]) == -1)
			return -1;
		p++;
	}
	if (find_in(p, end, "\"payload\"") != NULL)
		return -1;	/* more messages than we know of */
	return v->init_e.len == 32 && v->rs.len == 32 &&
	    v->resp_s.len == 32 && v->resp_e.len == 32 &&
	    v->hash.len == 32 ? 0 : -1;
}

static int
same(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static struct noise_hs *
initiator(const struct vector *v, const unsigned char *rs,
    const unsigned char *e)
{
	const char	*why;

	return noise_hs_new(1, v->prologue.b, v->prologue.len, NULL,
	    rs != NULL ? rs : v->rs.b, e, &why);
}

static struct noise_hs *
responder(const struct vector *v, const unsigned char *e)
{
	const char	*why;

	return noise_hs_new(0, v->prologue.b, v->prologue.len, v->resp_s.b,
	    NULL, e, &why);
}

/* A fresh responder reads m as message 1: 0 when it is accepted. */
static int
read1(const struct vector *v, const unsigned char *m, size_t len)
{
	struct noise_hs	*r;
	unsigned char	 pl[256];
	size_t		 plen;
	const char	*why;
	int		 rv;

	if ((r = responder(v, v->resp_e.b)) == NULL)
		return -2;
	rv = noise_hs_read_message(r, m, len, pl, sizeof(pl), &plen, &why);
	noise_hs_free(r);
	return rv;
}

/* A fresh initiator writes message 1, then reads m as message 2. */
static int
read2(const struct vector *v, const unsigned char *m, size_t len)
{
	struct noise_hs	*i;
	unsigned char	 out[256], pl[256];
	size_t		 n, plen;
	const char	*why;
	int		 rv = -2;

	if ((i = initiator(v, NULL, v->init_e.b)) == NULL)
		return -2;
	if (noise_hs_write_message(i, v->payload[0].b, v->payload[0].len,
	    out, sizeof(out), &n, &why) == 0)
		rv = noise_hs_read_message(i, m, len, pl, sizeof(pl), &plen,
		    &why);
	noise_hs_free(i);
	return rv;
}

static void
test_vectors(const struct vector *v)
{
	struct noise_hs		*i, *r;
	struct noise_cipher	 isend, irecv, rsend, rrecv, *enc, *dec;
	unsigned char		 out[256], pl[256], ih[32], rh[32];
	size_t			 n, plen;
	const char		*why;
	int			 k, r1;

	i = initiator(v, NULL, v->init_e.b);
	r = responder(v, v->resp_e.b);
	ok(i != NULL && r != NULL, "initiator and responder set up with "
	    "the vector's keys and prologue");
	if (i == NULL || r == NULL)
		exit(tap_done());

	/* message 1: -> e, es; message 2: <- e, ee */
	for (k = 0; k < 2; k++) {
		ok(noise_hs_write_message(k == 0 ? i : r, v->payload[k].b,
		    v->payload[k].len, out, sizeof(out), &n, &why) == 0 &&
		    same(out, n, v->ct[k].b, v->ct[k].len),
		    "message %d (%s) written by the %s matches the vector",
		    k + 1, k == 0 ? "-> e, es" : "<- e, ee",
		    k == 0 ? "initiator" : "responder");
		ok(noise_hs_read_message(k == 0 ? r : i, v->ct[k].b,
		    v->ct[k].len, pl, sizeof(pl), &plen, &why) == 0 &&
		    same(pl, plen, v->payload[k].b, v->payload[k].len),
		    "message %d read by the %s gives its payload", k + 1,
		    k == 0 ? "responder" : "initiator");
	}

	ok(noise_hs_split(i, &isend, &irecv, ih, &why) == 0 &&
	    same(ih, 32, v->hash.b, 32),
	    "the initiator's handshake hash matches the vector");
	ok(noise_hs_split(r, &rsend, &rrecv, rh, &why) == 0 &&
	    same(rh, 32, v->hash.b, 32),
	    "the responder's handshake hash matches the vector");
	noise_hs_free(i);
	noise_hs_free(r);

	/* messages 3..6 alternate: initiator, responder, initiator, ... */
	for (k = 2; k < NMSG; k++) {
		enc = k % 2 == 0 ? &isend : &rsend;
		dec = k % 2 == 0 ? &rrecv : &irecv;
		ok(noise_encrypt(enc, v->payload[k].b, v->payload[k].len, out,
		    &why) == 0 && same(out, v->payload[k].len + 16, v->ct[k].b,
		    v->ct[k].len), "transport message %d written by the %s "
		    "matches the vector", k + 1,
		    k % 2 == 0 ? "initiator" : "responder");
		ok(noise_decrypt(dec, v->ct[k].b, v->ct[k].len, pl, &plen,
		    &why) == 0 &&
		    same(pl, plen, v->payload[k].b, v->payload[k].len),
		    "transport message %d read by the %s gives its payload",
		    k + 1, k % 2 == 0 ? "responder" : "initiator");
	}
	ok(isend.n == 2 && irecv.n == 2 && rsend.n == 2 && rrecv.n == 2,
	    "each transport cipher used nonces 0 and 1");
	noise_cipher_clear(&isend);
	noise_cipher_clear(&irecv);
	noise_cipher_clear(&rsend);
	noise_cipher_clear(&rrecv);
	ok(isend.ctx == NULL && isend.n == 0, "a cleared cipher holds no key");
	r1 = noise_encrypt(&isend, pl, 1, out, &why);
	ok(r1 == -1, "a cipher without a key refuses to encrypt (%s)", why);
}

/*
 * How many copies of msg, each with one byte changed (xor flip), rd does
 * not refuse (-1).
 */
static int
changed_taken(reader *rd, const struct vector *v, const struct field *msg,
    unsigned char flip)
{
	unsigned char	m[sizeof(msg->b)];
	size_t		k;
	int		taken = 0;

	for (k = 0; k < msg->len; k++) {
		memcpy(m, msg->b, msg->len);
		m[k] ^= flip;
		if (rd(v, m, msg->len) != -1)
			taken++;
	}
	return taken;
}

/* How many of msg's proper prefixes rd does not refuse (-1). */
static int
cut_taken(reader *rd, const struct vector *v, const struct field *msg)
{
	size_t	k;
	int	taken = 0;

	for (k = 0; k < msg->len; k++)
		if (rd(v, msg->b, k) != -1)
			taken++;
	return taken;
}

static void
test_tamper_handshake(const struct vector *v)
{
	/* message 1 read by the responder, message 2 by the initiator */
	static const struct {
		reader		*rd;
		unsigned char	 flip;
	} msg[2] = { { read1, 0x01 }, { read2, 0x80 } };
	unsigned char	m[256];
	size_t		len;
	int		bad, j;

	/* every byte: the ephemeral key, ciphertext, tag */
	for (j = 0; j < 2; j++) {
		len = v->ct[j].len;
		bad = changed_taken(msg[j].rd, v, &v->ct[j], msg[j].flip);
		ok(bad == 0 && msg[j].rd(v, v->ct[j].b, len) == 0,
		    "message %d with any one of its %zu bytes changed is "
		    "refused (%d accepted)", j + 1, len, bad);
		bad = cut_taken(msg[j].rd, v, &v->ct[j]);
		memcpy(m, v->ct[j].b, len);
		m[len] = 0;
		ok(bad == 0 && msg[j].rd(v, m, len + 1) == -1,
		    "message %d cut to any shorter length or one byte longer "
		    "is refused (%d accepted)", j + 1, bad);
	}

	/* a low-order public key: X25519 gives all zeros, refused */
	memcpy(m, v->ct[0].b, v->ct[0].len);
	memset(m, 0, 32);
	ok(read1(v, m, v->ct[0].len) == -1,
	    "message 1 with an all-zero ephemeral key is refused");
}

static void
test_tamper_transport(const struct vector *v)
{
	struct pair		 p;
	struct noise_cipher	*dec;
	unsigned char		 m[256], pl[256];
	size_t			 k, len, plen;
	const char		*why = NULL;
	int			 bad, j;

	if (handshake(v, 1, &p, NULL, NULL) == -1) {
		ok(0, "handshake for the transport tampering tests");
		return;
	}
	for (j = 2; j < NMSG; j++) {
		dec = j % 2 == 0 ? &p.rrecv : &p.irecv;
		len = v->ct[j].len;
		for (k = 0, bad = 0; k < len; k++) {
			memcpy(m, v->ct[j].b, len);
			m[k] ^= (unsigned char)(1 << (k % 8));
			if (noise_decrypt(dec, m, len, pl, &plen, &why) != -1)
				bad++;
		}
		for (k = 0; k < len; k++)
			if (noise_decrypt(dec, v->ct[j].b, k, pl, &plen,
			    &why) != -1)
				bad++;
		ok(bad == 0, "transport message %d with any byte changed or "
		    "cut short is refused (%d accepted)", j + 1, bad);
		ok(noise_decrypt(dec, v->ct[j].b, len, pl, &plen, &why) == 0 &&
		    same(pl, plen, v->payload[j].b, v->payload[j].len),
		    "after those failures the nonce has not moved: message %d "
		    "still decrypts", j + 1);
	}
	/* a replayed (already decrypted) message is refused: nonce moved */
	j = noise_decrypt(&p.irecv, v->ct[3].b, v->ct[3].len, pl, &plen,
	    &why);
	ok(j == -1, "transport message 4 replayed is refused (%s)", why);
	pair_clear(&p);

	/* reordered: message 5 before message 3 */
	if (handshake(v, 1, &p, NULL, NULL) == -1)
		return;
	ok(noise_decrypt(&p.rrecv, v->ct[4].b, v->ct[4].len, pl, &plen,
	    &why) == -1 && noise_decrypt(&p.rrecv, v->ct[2].b, v->ct[2].len,
	    pl, &plen, &why) == 0, "transport messages out of order are "
	    "refused; the expected one is still taken");
	/* a message sent in one direction is refused in the other */
	ok(noise_decrypt(&p.irecv, v->ct[2].b, v->ct[2].len, pl, &plen,
	    &why) == -1, "an initiator's transport message is refused by the "
	    "initiator's own receiving cipher");
	pair_clear(&p);
}

/*
 * The initiator i (NULL when it could not be set up) writes message 1
 * with the vector's payload, and the vector's responder refuses it.
 * Frees i.
 */
static int
msg1_refused(const struct vector *v, struct noise_hs *i)
{
	unsigned char	 out[256];
	size_t		 n;
	const char	*why;
	int		 refused;

	refused = i != NULL && noise_hs_write_message(i, v->payload[0].b,
	    v->payload[0].len, out, sizeof(out), &n, &why) == 0 &&
	    read1(v, out, n) == -1;
	noise_hs_free(i);
	return refused;
}

static void
test_wrong_peer(const struct vector *v)
{
	unsigned char	 rs[32], pro[64];
	const char	*why;
	EVP_PKEY	*other;

	/* the initiator believes another key is the responder's */
	if ((other = keygen("X25519")) == NULL ||
	    noise_pkey_public(other, rs, &why) == -1) {
		ok(0, "another X25519 key");
		return;
	}
	EVP_PKEY_free(other);
	ok(msg1_refused(v, initiator(v, rs, v->init_e.b)),
	    "message 1 made for another static key fails at the responder");
	memcpy(rs, v->rs.b, 32);
	rs[31] ^= 0x40;
	ok(msg1_refused(v, initiator(v, rs, v->init_e.b)),
	    "message 1 made for a static key with one bit changed fails");

	/* another prologue: the plaintext negotiation was changed */
	memcpy(pro, v->prologue.b, v->prologue.len);
	pro[0] ^= 0x20;
	ok(msg1_refused(v, noise_hs_new(1, pro, v->prologue.len, NULL,
	    v->rs.b, v->init_e.b, &why)),
	    "message 1 made with a prologue differing in one byte fails");
	ok(msg1_refused(v, noise_hs_new(1, v->prologue.b,
	    v->prologue.len - 1, NULL, v->rs.b, v->init_e.b, &why)),
	    "message 1 made with a prologue one byte short fails");
}

static void
test_order(const struct vector *v)
{
	struct noise_hs		*i, *r;
	struct noise_cipher	 a, b;
	unsigned char		 out[256], pl[256];
	size_t			 n, plen;
	const char		*why;
	int			 rv;

	ok(noise_hs_new(1, NULL, 0, NULL, NULL, NULL, &why) == NULL &&
	    noise_hs_new(0, NULL, 0, NULL, v->rs.b, NULL, &why) == NULL &&
	    noise_hs_new(1, NULL, 0, v->resp_s.b, v->rs.b, NULL, &why) == NULL,
	    "an initiator needs rs and no s, a responder s and no rs");

	i = initiator(v, NULL, v->init_e.b);
	r = responder(v, v->resp_e.b);
	rv = noise_hs_read_message(i, v->ct[1].b, v->ct[1].len, pl,
	    sizeof(pl), &plen, &why);
	ok(rv == -1, "the initiator cannot read before it writes (%s)", why);
	rv = noise_hs_write_message(r, pl, 0, out, sizeof(out), &n, &why);
	ok(rv == -1, "the responder cannot write before it reads (%s)", why);
	rv = noise_hs_split(i, &a, &b, NULL, &why);
	ok(rv == -1 && a.ctx == NULL && b.ctx == NULL,
	    "split before the handshake is refused (%s)", why);
	/* the refusals above changed nothing: the vector still runs */
	ok(noise_hs_write_message(i, v->payload[0].b, v->payload[0].len,
	    out, sizeof(out), &n, &why) == 0 &&
	    same(out, n, v->ct[0].b, v->ct[0].len) &&
	    noise_hs_read_message(r, out, n, pl, sizeof(pl), &plen, &why)
	    == 0, "after refused calls out of order, message 1 is unchanged");
	ok(noise_hs_write_message(i, pl, 0, out, sizeof(out), &n, &why) == -1,
	    "the initiator cannot write message 2");
	ok(noise_hs_write_message(r, v->payload[1].b, v->payload[1].len,
	    out, sizeof(out), &n, &why) == 0 &&
	    noise_hs_read_message(r, out, n, pl, sizeof(pl), &plen, &why)
	    == -1, "the responder cannot read its own message 2");
	noise_hs_free(r);
	/* a failed read wipes the handshake: no second try */
	out[40] ^= 1;
	rv = noise_hs_read_message(i, out, n, pl, sizeof(pl), &plen, &why);
	ok(rv == -1, "the initiator refuses a changed message 2 (%s)", why);
	out[40] ^= 1;
	ok(noise_hs_read_message(i, out, n, pl, sizeof(pl), &plen, &why)
	    == -1 && noise_hs_split(i, &a, &b, NULL, &why) == -1,
	    "after a failure the handshake takes nothing more, not even the "
	    "good message");
	noise_hs_free(i);
	noise_hs_free(NULL);
}

/*
 * Runs a whole handshake: the vector's ephemerals (fixed) or fresh
 * ones, the vector's payloads; m1 (when not NULL) gets message 1.
 */
static int
handshake(const struct vector *v, int fixed, struct pair *p,
    unsigned char m1[128], size_t *m1len)
{
	struct noise_hs	*i, *r;
	unsigned char	 out[256], pl[256];
	size_t		 n, plen;
	const char	*why;
	int		 rv = -1;

	memset(p, 0, sizeof(*p));
	i = initiator(v, NULL, fixed ? v->init_e.b : NULL);
	r = responder(v, fixed ? v->resp_e.b : NULL);
	if (i == NULL || r == NULL)
		goto out;
	if (noise_hs_write_message(i, v->payload[0].b, v->payload[0].len,
	    out, sizeof(out), &n, &why) == -1)
		goto out;
	if (m1 != NULL) {
		memcpy(m1, out, n);
		*m1len = n;
	}
	if (noise_hs_read_message(r, out, n, pl, sizeof(pl), &plen, &why)
	    == -1 || !same(pl, plen, v->payload[0].b, v->payload[0].len) ||
	    noise_hs_write_message(r, v->payload[1].b, v->payload[1].len,
	    out, sizeof(out), &n, &why) == -1 ||
	    noise_hs_read_message(i, out, n, pl, sizeof(pl), &plen, &why)
	    == -1 || !same(pl, plen, v->payload[1].b, v->payload[1].len) ||
	    noise_hs_split(i, &p->isend, &p->irecv, p->ihash, &why) == -1 ||
	    noise_hs_split(r, &p->rsend, &p->rrecv, p->rhash, &why) == -1)
		goto out;
	rv = 0;
out:
	noise_hs_free(i);
	noise_hs_free(r);
	return rv;
}

static void
pair_clear(struct pair *p)
{
	noise_cipher_clear(&p->isend);
	noise_cipher_clear(&p->irecv);
	noise_cipher_clear(&p->rsend);
	noise_cipher_clear(&p->rrecv);
}

static void
test_fresh(const struct vector *v)
{
	struct pair	 a, b;
	unsigned char	 m1a[128], m1b[128], buf[300], pl[300];
	size_t		 na, nb, plen;
	const char	*why;
	int		 r1, r2;

	r1 = handshake(v, 0, &a, m1a, &na);
	r2 = handshake(v, 0, &b, m1b, &nb);
	ok(r1 == 0 && r2 == 0, "handshakes with fresh ephemeral keys complete");
	ok(!same(m1a, na, m1b, nb) && memcmp(a.ihash, b.ihash, 32) != 0 &&
	    memcmp(a.ihash, v->hash.b, 32) != 0 &&
	    memcmp(a.ihash, a.rhash, 32) == 0,
	    "fresh ephemerals give a new message 1 and handshake hash each "
	    "time, the same on both sides");
	memcpy(buf, "1.0 Hello", 9);
	ok(noise_encrypt(&a.isend, buf, 9, buf, &why) == 0 &&
	    noise_decrypt(&a.rrecv, buf, 9 + 16, buf, &plen, &why) == 0 &&
	    same(buf, plen, (const unsigned char *)"1.0 Hello", 9),
	    "in-place encryption and decryption round-trip");
	ok(noise_encrypt(&b.rsend, pl, 0, buf, &why) == 0 &&
	    noise_decrypt(&b.irecv, buf, 16, pl, &plen, &why) == 0 &&
	    plen == 0, "an empty transport message is 16 bytes and decrypts "
	    "to nothing");
	/* session b's keys cannot read session a's messages */
	ok(noise_encrypt(&a.rsend, (const unsigned char *)"x", 1, buf, &why)
	    == 0 && noise_decrypt(&b.irecv, buf, 17, pl, &plen, &why) == -1,
	    "a message of one session is refused by another");
	pair_clear(&a);
	pair_clear(&b);
}

static void
test_nonces(const struct vector *v)
{
	struct pair	 p;
	unsigned char	 buf[64], pl[64];
	size_t		 plen;
	const char	*why = NULL;
	int		 r;

	if (handshake(v, 1, &p, NULL, NULL) == -1) {
		ok(0, "handshake for the nonce tests");
		return;
	}
	/* Noise 5.1: 2^64-2 is the last nonce used; 2^64-1 never is. */
	p.isend.n = p.rrecv.n = NOISE_NONCE_MAX - 1;
	ok(noise_encrypt(&p.isend, (const unsigned char *)"last", 4, buf,
	    &why) == 0 && p.isend.n == NOISE_NONCE_MAX &&
	    noise_decrypt(&p.rrecv, buf, 20, pl, &plen, &why) == 0 &&
	    same(pl, plen, (const unsigned char *)"last", 4),
	    "nonce 2^64-2 is used and decrypts");
	why = "";
	r = noise_encrypt(&p.isend, (const unsigned char *)"more", 4, buf,
	    &why);
	ok(r == -1 && strstr(why, "nonce") != NULL,
	    "encrypting at nonce 2^64-1 is refused (%s)", why);
	why = "";
	r = noise_decrypt(&p.rrecv, buf, 20, pl, &plen, &why);
	ok(r == -1 && strstr(why, "nonce") != NULL,
	    "decrypting at nonce 2^64-1 is refused (%s)", why);
	ok(p.isend.n == NOISE_NONCE_MAX && p.rrecv.n == NOISE_NONCE_MAX,
	    "a spent cipher stays spent");
	/* the nonce is big-endian in the last 8 bytes: n = 2^8 differs */
	p.rsend.n = 256;
	p.irecv.n = 1;
	ok(noise_encrypt(&p.rsend, (const unsigned char *)"n", 1, buf, &why)
	    == 0 && noise_decrypt(&p.irecv, buf, 17, pl, &plen, &why) == -1,
	    "a message under nonce 256 is refused under nonce 1");
	pair_clear(&p);
}

static void
test_limits(const struct vector *v)
{
	struct pair	 p;
	struct noise_hs	*i;
	unsigned char	*big, *ct, out[256], pl[256];
	size_t		 plen, n;
	const char	*why;
	int		 r;

	big = calloc(1, NOISE_MSG_MAX_BYTES + 1);
	ct = calloc(1, NOISE_MSG_MAX_BYTES + 17);
	if (big == NULL || ct == NULL || handshake(v, 1, &p, NULL, NULL)
	    == -1) {
		ok(0, "set-up of the size limit tests");
		return;
	}
	ok(noise_encrypt(&p.isend, big, NOISE_PLAIN_MAX_BYTES, ct, &why) == 0
	    && noise_decrypt(&p.rrecv, ct, NOISE_MSG_MAX_BYTES, big, &plen,
	    &why) == 0 && plen == NOISE_PLAIN_MAX_BYTES,
	    "a 65535-byte transport message (65519 bytes of plaintext) "
	    "round-trips");
	r = noise_encrypt(&p.isend, big, NOISE_PLAIN_MAX_BYTES + 1, ct, &why);
	ok(r == -1, "65520 bytes of plaintext are refused (%s)", why);
	ok(noise_decrypt(&p.rrecv, ct, NOISE_MSG_MAX_BYTES + 1, big, &plen,
	    &why) == -1, "a 65536-byte transport message is refused");
	pair_clear(&p);

	i = initiator(v, NULL, v->init_e.b);
	ok(noise_hs_write_message(i, v->payload[0].b, v->payload[0].len, out,
	    v->payload[0].len + NOISE_HS_OVERHEAD_BYTES - 1, &n, &why) == -1,
	    "a handshake message is not written into too small a buffer");
	noise_hs_free(i);
	i = initiator(v, NULL, v->init_e.b);
	ok(noise_hs_write_message(i, big, NOISE_HS_PAYLOAD_MAX_BYTES + 1, ct,
	    NOISE_MSG_MAX_BYTES + 17, &n, &why) == -1,
	    "a handshake payload over 65487 bytes is refused");
	noise_hs_free(i);
	i = responder(v, v->resp_e.b);
	ok(noise_hs_read_message(i, v->ct[0].b, v->ct[0].len, pl,
	    v->payload[0].len - 1, &plen, &why) == -1,
	    "a handshake payload larger than the caller's buffer is refused");
	noise_hs_free(i);
	free(big);
	free(ct);
}

static EVP_PKEY *
keygen(const char *alg)
{
	EVP_PKEY	*k = NULL;
	EVP_PKEY_CTX	*c;

	if ((c = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL)) == NULL)
		return NULL;
	if (EVP_PKEY_keygen_init(c) != 1 ||
	    (strcmp(alg, "EC") == 0 &&
	    EVP_PKEY_CTX_set_group_name(c, "P-256") != 1) ||
	    EVP_PKEY_keygen(c, &k) != 1)
		k = NULL;
	EVP_PKEY_CTX_free(c);
	return k;
}

/* A minimal certificate for key, signed by signer (Ed25519 or EC). */
static X509 *
cert_for(EVP_PKEY *key, EVP_PKEY *signer)
{
	X509	*x;

	if ((x = X509_new()) == NULL)
		return NULL;
	if (X509_set_version(x, 2) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL ||
	    X509_set_pubkey(x, key) != 1 ||
	    X509_sign(x, signer, EVP_PKEY_is_a(signer, "ED25519") ? NULL :
	    EVP_sha256()) == 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static void
test_keys(const struct vector *v)
{
	EVP_PKEY	*s, *x, *ec, *ed;
	X509		*cx, *cec;
	unsigned char	 raw[32], pub[32];
	const char	*why;
	int		 r;

	s = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, v->resp_s.b,
	    32);
	ok(s != NULL && noise_pkey_public(s, pub, &why) == 0 &&
	    same(pub, 32, v->rs.b, 32), "the vector's resp_static has the "
	    "public key init_remote_static");
	ok(s != NULL && noise_pkey_private(s, raw, &why) == 0 &&
	    same(raw, 32, v->resp_s.b, 32),
	    "noise_pkey_private gives back the raw private key");
	x = keygen("X25519");
	ec = keygen("EC");
	ed = keygen("ED25519");
	if (x == NULL || ec == NULL || ed == NULL) {
		ok(0, "test keys made");
		return;
	}
	r = noise_pkey_private(ec, raw, &why) == -1 &&
	    noise_pkey_public(ed, pub, &why) == -1 &&
	    noise_pkey_private(NULL, raw, &why) == -1;
	ok(r, "EC and Ed25519 keys are refused as X25519 keys (%s)", why);
	cx = cert_for(x, ed);
	cec = cert_for(ec, ed);
	ok(cx != NULL && noise_cert_public(cx, pub, &why) == 0 &&
	    noise_pkey_public(x, raw, &why) == 0 && same(pub, 32, raw, 32),
	    "noise_cert_public gives the X25519 key of a certificate");
	r = cec != NULL && noise_cert_public(cec, pub, &why) == -1;
	ok(r, "a certificate with an EC key is refused (%s)", why);
	X509_free(cx);
	X509_free(cec);
	EVP_PKEY_free(s);
	EVP_PKEY_free(x);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
}

int
main(int argc, char *argv[])
{
	struct vector	 v;
	char		 path[4096], *json, *slash;

	if (argc > 1)
		snprintf(path, sizeof(path), "%s", argv[1]);
	else {
		snprintf(path, sizeof(path), "%s", argv[0]);
		if ((slash = strrchr(path, '/')) != NULL)
			slash[1] = '\0';
		else
			path[0] = '\0';
		strncat(path, "../vectors/noise/cacophony-nk.json",
		    sizeof(path) - strlen(path) - 1);
	}
	/* as usmtp-handler starts: no legacy name tables, no config */
	crypto_init(OPENSSL_INIT_NO_LOAD_CONFIG |
	    OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS |
	    OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS);
	memset(&v, 0, sizeof(v));
	json = read_json(path);
	ok(json != NULL && parse(json, &v) == 0,
	    "the %s vector is read from %s", VECTOR_NAME, path);
	free(json);
	if (v.hash.len != 32)
		return tap_done();
	test_vectors(&v);
	test_tamper_handshake(&v);
	test_tamper_transport(&v);
	test_wrong_peer(&v);
	test_order(&v);
	test_fresh(&v);
	test_nonces(&v);
	test_limits(&v);
	test_keys(&v);
	test_load(&v);
	return tap_done();
}

/* key as unencrypted PKCS#8 PEM in a new file of mode 0600 at path. */
static int
pem_file(const char *path, EVP_PKEY *key)
{
	FILE	*f;
	int	 fd, r;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1)
		return -1;
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return -1;
	}
	r = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	return fclose(f) == 0 && r == 1 ? 0 : -1;
}

/*
 * crypto_load_key(KEY_X25519) parses PKCS#8 X25519 keys itself (crypto.c,
 * x25519_fast): the key it gives must be the file's, private and public
 * half, and a key of another type must still be refused.
 */
static void
test_load(const struct vector *v)
{
	char		 dir[] = "/tmp/noise-test.XXXXXX", xp[64], ep[64];
	EVP_PKEY	*s, *ed, *k;
	unsigned char	 raw[32], pub[32];
	const char	*why = "";

	must(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(xp, sizeof(xp), "%s/x25519.key", dir);
	snprintf(ep, sizeof(ep), "%s/ed25519.key", dir);
	s = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, v->resp_s.b,
	    32);
	ed = keygen("ED25519");
	must(s != NULL && ed != NULL && pem_file(xp, s) == 0 &&
	    pem_file(ep, ed) == 0, "test key files written");
	k = crypto_load_key(xp, KEY_X25519, &why);
	ok(k != NULL && noise_pkey_private(k, raw, &why) == 0 &&
	    same(raw, 32, v->resp_s.b, 32) &&
	    noise_pkey_public(k, pub, &why) == 0 && same(pub, 32, v->rs.b, 32),
	    "crypto_load_key reads a PKCS#8 X25519 key: the file's private "
	    "and public key (%s)", k == NULL ? why : "ok");
	EVP_PKEY_free(k);
	k = crypto_load_key(ep, KEY_X25519, &why);
	ok(k == NULL && strstr(why, "not an X25519 key") != NULL,
	    "an Ed25519 key is refused as secure mode's key (%s)", why);
	EVP_PKEY_free(k);
	EVP_PKEY_free(s);
	EVP_PKEY_free(ed);
	remove_tree(dir);
}
