/*
 * noise.c -- Noise_NK_25519_AESGCM_SHA256 (Noise protocol framework,
 * revision 34): cipher states, the symmetric state and the NK handshake
 * state for both roles, on libcrypto only, for usmtp(7) SECURE MODE.
 *
 * Calls OpenSSL, and crypto.c for its cipher.  Knows nothing of frames,
 * records or USMTP: the caller moves the messages.  Never prints, logs
 * or exits; every secret is wiped on every path out.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "usmtp.h"

#define PROTOCOL_NAME	"Noise_NK_25519_AESGCM_SHA256"
#define SHA256_BLOCK_BYTES	64	/* HMAC's B (RFC 2104) */
#define GCM_NONCE_BYTES	12	/* 4 zero bytes, 64-bit big-endian n */
#define HS_MESSAGES	2	/* NK: -> e, es  <- e, ee */

struct noise_hs {
	int		 initiator;
	int		 step;		/* handshake messages done, 0..2 */
	int		 failed;	/* a step failed: everything wiped */
	unsigned char	 ck[NOISE_HASH_BYTES];	/* chaining key */
	unsigned char	 h[NOISE_HASH_BYTES];	/* handshake hash */
	struct noise_cipher c;		/* k, n of the symmetric state */
	EVP_PKEY	*s;		/* responder: static key pair */
	EVP_PKEY	*e;		/* ephemeral key pair, NULL until "e" */
	unsigned char	 rs[NOISE_DH_BYTES];	/* initiator: responder's s */
	unsigned char	 re[NOISE_DH_BYTES];	/* the peer's ephemeral */
	EVP_MD		*sha256;
	EVP_MD_CTX	*md;
};

static int	 cipher_key(struct noise_cipher *c, const unsigned char *k,
		    const char **why);
static int	 cipher_run(struct noise_cipher *c, int enc,
		    const unsigned char *ad, size_t adlen,
		    const unsigned char *in, size_t len, unsigned char *out,
		    const char **why);
static int	 hash2(struct noise_hs *hs, const unsigned char *a,
		    size_t alen, const unsigned char *b, size_t blen,
		    unsigned char out[NOISE_HASH_BYTES]);
static int	 hmac(struct noise_hs *hs,
		    const unsigned char key[NOISE_HASH_BYTES],
		    const unsigned char *d1, size_t n1,
		    const unsigned char *d2, size_t n2,
		    unsigned char out[NOISE_HASH_BYTES]);
static int	 hkdf2(struct noise_hs *hs, const unsigned char *ikm,
		    size_t ikmlen, unsigned char o1[NOISE_HASH_BYTES],
		    unsigned char o2[NOISE_HASH_BYTES]);
static int	 mix_hash(struct noise_hs *hs, const unsigned char *d,
		    size_t n);
static int	 mix_key(struct noise_hs *hs,
		    const unsigned char ikm[NOISE_DH_BYTES],
		    const char **why);
static int	 mix_dh(struct noise_hs *hs, EVP_PKEY *priv,
		    const unsigned char pub[NOISE_DH_BYTES], const char **why);
static EVP_PKEY *x25519_private(const unsigned char *raw);
static int	 pkey_raw(EVP_PKEY *key, int priv,
		    unsigned char out[NOISE_DH_BYTES], const char **why);
static int	 fail(struct noise_hs *hs, const char *reason,
		    const char **why);

/* InitializeKey(k): a fresh AES-256-GCM context holding k, n = 0. */
static int
cipher_key(struct noise_cipher *c, const unsigned char *k, const char **why)
{
	noise_cipher_clear(c);
	if ((c->ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_CipherInit_ex(c->ctx, crypto_cipher(CIPHER_AES256_GCM), NULL, k, NULL, 1) != 1) {
		noise_cipher_clear(c);
		ERR_clear_error();
		*why = "cannot set up AES-256-GCM";
		return -1;
	}
	return 0;
}

/*
 * ENCRYPT / DECRYPT (Noise 12.4) with nonce c->n, then n++.  Encrypting,
 * out gets len bytes and the 16-byte tag; decrypting, in is len bytes of
 * ciphertext and tag (len >= 16) and out gets len - 16 bytes, wiped when
 * the tag is wrong (n then stays).  in and out may be the same buffer.
 */
static int
cipher_run(struct noise_cipher *c, int enc, const unsigned char *ad,
    size_t adlen, const unsigned char *in, size_t len, unsigned char *out,
    const char **why)
{
	unsigned char	nonce[GCM_NONCE_BYTES];
	size_t		plen;
	int		i, outl;

	if (c->ctx == NULL) {
		*why = "no cipher key";
		return -1;
	}
	/* Noise 5.1: 2^64-1 is reserved; a cipher reaching it is spent. */
	if (c->n == NOISE_NONCE_MAX) {
		*why = "nonces exhausted";
		return -1;
	}
	if (!enc && len < NOISE_TAG_BYTES) {
		*why = "message shorter than its tag";
		return -1;
	}
	plen = enc ? len : len - NOISE_TAG_BYTES;
	if (plen > NOISE_MSG_MAX_BYTES - NOISE_TAG_BYTES ||
	    adlen > NOISE_MSG_MAX_BYTES) {
		*why = "message longer than 65535 bytes";
		return -1;
	}
	memset(nonce, 0, 4);
	for (i = 0; i < 8; i++)
		nonce[4 + i] = (unsigned char)(c->n >> (56 - 8 * i));
	if (EVP_CipherInit_ex(c->ctx, NULL, NULL, NULL, nonce, enc) != 1 ||
	    (adlen > 0 &&
	    EVP_CipherUpdate(c->ctx, NULL, &outl, ad, (int)adlen) != 1))
		goto err;
	if (!enc && EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_SET_TAG,
	    NOISE_TAG_BYTES, (void *)(uintptr_t)(in + plen)) != 1)
		goto err;
	if (plen > 0 &&
	    EVP_CipherUpdate(c->ctx, out, &outl, in, (int)plen) != 1)
		goto err;
	if (EVP_CipherFinal_ex(c->ctx, out + plen, &outl) != 1) {
		if (!enc) {
			OPENSSL_cleanse(out, plen);
			ERR_clear_error();
			*why = "message fails authentication";
			return -1;
		}
		goto err;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_AEAD_GET_TAG,
	    NOISE_TAG_BYTES, out + plen) != 1)
		goto err;
	c->n++;
	return 0;
err:
	OPENSSL_cleanse(out, plen);
	ERR_clear_error();
	*why = "AES-256-GCM failed";
	return -1;
}

int
noise_encrypt(struct noise_cipher *c, const unsigned char *in, size_t len,
    unsigned char *out, const char **why)
{
	return cipher_run(c, 1, NULL, 0, in, len, out, why);
}

int
noise_decrypt(struct noise_cipher *c, const unsigned char *in, size_t len,
    unsigned char *out, size_t *outlen, const char **why)
{
	if (cipher_run(c, 0, NULL, 0, in, len, out, why) == -1)
		return -1;
	*outlen = len - NOISE_TAG_BYTES;
	return 0;
}

void
noise_cipher_clear(struct noise_cipher *c)
{
	/* Freeing the context cleanses its key schedule. */
	EVP_CIPHER_CTX_free(c->ctx);
	c->ctx = NULL;
	c->n = 0;
}

/* out = SHA-256(a || b). */
static int
hash2(struct noise_hs *hs, const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen, unsigned char out[NOISE_HASH_BYTES])
{
	if (EVP_DigestInit_ex(hs->md, hs->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(hs->md, a, alen) != 1 ||
	    (blen > 0 && EVP_DigestUpdate(hs->md, b, blen) != 1) ||
	    EVP_DigestFinal_ex(hs->md, out, NULL) != 1) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/*
 * HMAC-SHA256(key, d1 || d2) after RFC 2104; Noise's keys here are
 * always HASHLEN (32) bytes, shorter than the block, so zero-padded.
 */
static int
hmac(struct noise_hs *hs, const unsigned char key[NOISE_HASH_BYTES],
    const unsigned char *d1, size_t n1, const unsigned char *d2, size_t n2,
    unsigned char out[NOISE_HASH_BYTES])
{
	unsigned char	pad[SHA256_BLOCK_BYTES], inner[NOISE_HASH_BYTES];
	int		i, rv = -1;

	memset(pad, 0x36, sizeof(pad));
	for (i = 0; i < NOISE_HASH_BYTES; i++)
		pad[i] ^= key[i];
	if (EVP_DigestInit_ex(hs->md, hs->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(hs->md, pad, sizeof(pad)) != 1 ||
	    (n1 > 0 && EVP_DigestUpdate(hs->md, d1, n1) != 1) ||
	    (n2 > 0 && EVP_DigestUpdate(hs->md, d2, n2) != 1) ||
	    EVP_DigestFinal_ex(hs->md, inner, NULL) != 1)
		goto out;
	memset(pad, 0x5c, sizeof(pad));
	for (i = 0; i < NOISE_HASH_BYTES; i++)
		pad[i] ^= key[i];
	if (hash2(hs, pad, sizeof(pad), inner, sizeof(inner), out) == -1)
		goto out;
	rv = 0;
out:
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(inner, sizeof(inner));
	ERR_clear_error();
	return rv;
}

/* HKDF(ck, ikm, 2) of Noise 4.3: RFC 5869 with salt ck, empty info. */
static int
hkdf2(struct noise_hs *hs, const unsigned char *ikm, size_t ikmlen,
    unsigned char o1[NOISE_HASH_BYTES], unsigned char o2[NOISE_HASH_BYTES])
{
	static const unsigned char one = 0x01, two = 0x02;
	unsigned char	temp[NOISE_HASH_BYTES];
	int		rv = -1;

	if (hmac(hs, hs->ck, ikm, ikmlen, NULL, 0, temp) == -1 ||
	    hmac(hs, temp, &one, 1, NULL, 0, o1) == -1 ||
	    hmac(hs, temp, o1, NOISE_HASH_BYTES, &two, 1, o2) == -1)
		goto out;
	rv = 0;
out:
	OPENSSL_cleanse(temp, sizeof(temp));
	return rv;
}

/* MixHash(d): h = HASH(h || d). */
static int
mix_hash(struct noise_hs *hs, const unsigned char *d, size_t n)
{
	return hash2(hs, hs->h, sizeof(hs->h), d, n, hs->h);
}

/* MixKey(ikm): ck, k = HKDF(ck, ikm, 2); n = 0. */
static int
mix_key(struct noise_hs *hs, const unsigned char ikm[NOISE_DH_BYTES],
    const char **why)
{
	unsigned char	ck[NOISE_HASH_BYTES], k[NOISE_KEY_BYTES];
	int		rv = -1;

	if (hkdf2(hs, ikm, NOISE_DH_BYTES, ck, k) == -1) {
		*why = "HKDF failed";
		goto out;
	}
	memcpy(hs->ck, ck, sizeof(ck));
	if (cipher_key(&hs->c, k, why) == -1)
		goto out;
	rv = 0;
out:
	OPENSSL_cleanse(ck, sizeof(ck));
	OPENSSL_cleanse(k, sizeof(k));
	return rv;
}

/*
 * MixKey(DH(priv, pub)).  OpenSSL refuses a peer key whose result is all
 * zeros (a low-order point): Noise 12.1 allows that error.
 */
static int
mix_dh(struct noise_hs *hs, EVP_PKEY *priv,
    const unsigned char pub[NOISE_DH_BYTES], const char **why)
{
	unsigned char	 dh[NOISE_DH_BYTES];
	size_t		 dhlen = sizeof(dh);
	EVP_PKEY	*peer = NULL;
	EVP_PKEY_CTX	*ctx = NULL;
	int		 rv = -1;

	if ((peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub,
	    NOISE_DH_BYTES)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new(priv, NULL)) == NULL ||
	    EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer(ctx, peer) != 1 ||
	    EVP_PKEY_derive(ctx, dh, &dhlen) != 1 || dhlen != sizeof(dh)) {
		*why = "X25519 failed (bad public key)";
		goto out;
	}
	if (mix_key(hs, dh, why) == -1)
		goto out;
	rv = 0;
out:
	OPENSSL_cleanse(dh, sizeof(dh));
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	ERR_clear_error();
	return rv;
}

/* An X25519 key pair from 32 raw private bytes (clamped by OpenSSL). */
static EVP_PKEY *
x25519_private(const unsigned char *raw)
{
	EVP_PKEY	*k;

	k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, raw,
	    NOISE_DH_BYTES);
	if (k == NULL)
		ERR_clear_error();
	return k;
}

/* A failed handshake is deleted (Noise 5): wipe it, refuse the rest. */
static int
fail(struct noise_hs *hs, const char *reason, const char **why)
{
	hs->failed = 1;
	noise_cipher_clear(&hs->c);
	OPENSSL_cleanse(hs->ck, sizeof(hs->ck));
	OPENSSL_cleanse(hs->h, sizeof(hs->h));
	EVP_PKEY_free(hs->s);
	EVP_PKEY_free(hs->e);
	hs->s = hs->e = NULL;
	*why = reason;
	return -1;
}

struct noise_hs *
noise_hs_new(int initiator, const unsigned char *prologue, size_t prologuelen,
    const unsigned char *s_priv, const unsigned char *rs_pub,
    const unsigned char *e_priv, const char **why)
{
	struct noise_hs	*hs;
	unsigned char	 spub[NOISE_DH_BYTES];
	size_t		 n = sizeof(spub);

	if (initiator ? rs_pub == NULL || s_priv != NULL :
	    s_priv == NULL || rs_pub != NULL) {
		*why = "NK: the initiator needs rs, the responder s";
		return NULL;
	}
	if ((hs = calloc(1, sizeof(*hs))) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	hs->initiator = initiator;
	if ((hs->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (hs->md = EVP_MD_CTX_new()) == NULL) {
		*why = "cannot set up SHA-256";
		goto err;
	}
	if (s_priv != NULL && ((hs->s = x25519_private(s_priv)) == NULL ||
	    EVP_PKEY_get_raw_public_key(hs->s, spub, &n) != 1)) {
		*why = "bad static key";
		goto err;
	}
	if (e_priv != NULL && (hs->e = x25519_private(e_priv)) == NULL) {
		*why = "bad ephemeral key";
		goto err;
	}
	if (rs_pub != NULL)
		memcpy(hs->rs, rs_pub, NOISE_DH_BYTES);
	/*
	 * InitializeSymmetric: the name is no longer than HASHLEN, so
	 * h = name zero-padded; ck = h.  Then MixHash(prologue) and the
	 * pre-message "<- s": MixHash(the responder's static key).
	 */
	memcpy(hs->h, PROTOCOL_NAME, sizeof(PROTOCOL_NAME) - 1);
	memcpy(hs->ck, hs->h, sizeof(hs->ck));
	if (mix_hash(hs, prologue, prologuelen) == -1 ||
	    mix_hash(hs, initiator ? hs->rs : spub, NOISE_DH_BYTES) == -1) {
		*why = "SHA-256 failed";
		goto err;
	}
	return hs;
err:
	ERR_clear_error();
	noise_hs_free(hs);
	return NULL;
}

int
noise_hs_write_message(struct noise_hs *hs, const unsigned char *payload,
    size_t len, unsigned char *out, size_t outsz, size_t *outlen,
    const char **why)
{
	unsigned char	 raw[NOISE_DH_BYTES];
	size_t		 n = NOISE_DH_BYTES;
	int		 r;

	if (hs->failed) {
		*why = "handshake already failed";
		return -1;
	}
	/* NK: the initiator writes message 0, the responder message 1. */
	if (hs->step >= HS_MESSAGES || hs->initiator != (hs->step == 0)) {
		*why = "not this side's handshake message to write";
		return -1;
	}
	if (len > NOISE_HS_PAYLOAD_MAX_BYTES ||
	    outsz < NOISE_HS_OVERHEAD_BYTES + len) {
		*why = "handshake payload too long";
		return -1;
	}
	/* "e": fixed (test vectors) or fresh; its public key goes out. */
	if (hs->e == NULL) {
		if (RAND_priv_bytes(raw, sizeof(raw)) != 1) {
			OPENSSL_cleanse(raw, sizeof(raw));
			return fail(hs, "no random bytes", why);
		}
		hs->e = x25519_private(raw);
		OPENSSL_cleanse(raw, sizeof(raw));
		if (hs->e == NULL)
			return fail(hs, "cannot make an X25519 key", why);
	}
	if (EVP_PKEY_get_raw_public_key(hs->e, out, &n) != 1 ||
	    n != NOISE_DH_BYTES || mix_hash(hs, out, NOISE_DH_BYTES) == -1) {
		ERR_clear_error();
		return fail(hs, "cannot hash the ephemeral key", why);
	}
	/* "es" (initiator: DH(e, rs)) or "ee" (responder: DH(e, re)). */
	if (mix_dh(hs, hs->e, hs->initiator ? hs->rs : hs->re, why) == -1)
		return fail(hs, *why, why);
	/* EncryptAndHash(payload): AD = h, then h = HASH(h || ct). */
	r = cipher_run(&hs->c, 1, hs->h, sizeof(hs->h), payload, len,
	    out + NOISE_DH_BYTES, why);
	if (r == -1 || mix_hash(hs, out + NOISE_DH_BYTES,
	    len + NOISE_TAG_BYTES) == -1)
		return fail(hs, r == -1 ? *why : "SHA-256 failed", why);
	*outlen = NOISE_HS_OVERHEAD_BYTES + len;
	if (++hs->step == HS_MESSAGES) {
		/* The last DH is done: the ephemeral is of no more use. */
		EVP_PKEY_free(hs->e);
		hs->e = NULL;
	}
	return 0;
}

int
noise_hs_read_message(struct noise_hs *hs, const unsigned char *msg,
    size_t len, unsigned char *payload, size_t psz, size_t *plen,
    const char **why)
{
	unsigned char	nexth[NOISE_HASH_BYTES];
	size_t		ctlen;

	if (hs->failed) {
		*why = "handshake already failed";
		return -1;
	}
	if (hs->step >= HS_MESSAGES || hs->initiator != (hs->step == 1)) {
		*why = "not this side's handshake message to read";
		return -1;
	}
	/* A short, long or oversized message fails the handshake too. */
	if (len < NOISE_HS_OVERHEAD_BYTES || len > NOISE_MSG_MAX_BYTES)
		return fail(hs, "handshake message of a wrong length", why);
	ctlen = len - NOISE_DH_BYTES;
	if (psz < ctlen - NOISE_TAG_BYTES)
		return fail(hs, "handshake payload too long", why);
	/* "e": re, then "es" (responder: DH(s, re)) or "ee" (DH(e, re)). */
	memcpy(hs->re, msg, NOISE_DH_BYTES);
	if (mix_hash(hs, hs->re, NOISE_DH_BYTES) == -1)
		return fail(hs, "SHA-256 failed", why);
	if (mix_dh(hs, hs->initiator ? hs->e : hs->s, hs->re, why) == -1)
		return fail(hs, *why, why);
	/*
	 * DecryptAndHash: AD is h before the ciphertext is hashed in; the
	 * next h is computed first, so payload may be msg + 32 (in place).
	 */
	if (hash2(hs, hs->h, sizeof(hs->h), msg + NOISE_DH_BYTES, ctlen,
	    nexth) == -1)
		return fail(hs, "SHA-256 failed", why);
	if (cipher_run(&hs->c, 0, hs->h, sizeof(hs->h), msg + NOISE_DH_BYTES,
	    ctlen, payload, why) == -1)
		return fail(hs, "handshake message fails authentication", why);
	memcpy(hs->h, nexth, sizeof(hs->h));
	*plen = ctlen - NOISE_TAG_BYTES;
	if (++hs->step == HS_MESSAGES) {
		EVP_PKEY_free(hs->e);
		hs->e = NULL;
	}
	return 0;
}

int
noise_hs_split(struct noise_hs *hs, struct noise_cipher *send,
    struct noise_cipher *recv, unsigned char hash[NOISE_HASH_BYTES],
    const char **why)
{
	unsigned char	k1[NOISE_HASH_BYTES], k2[NOISE_HASH_BYTES];
	int		rv = -1;

	send->ctx = recv->ctx = NULL;
	send->n = recv->n = 0;
	if (hs->failed || hs->step != HS_MESSAGES) {
		*why = "handshake not complete";
		return -1;
	}
	/* Split(): c1 carries initiator -> responder, c2 the other way. */
	if (hkdf2(hs, NULL, 0, k1, k2) == -1) {
		fail(hs, "HKDF failed", why);
		goto out;
	}
	if (cipher_key(send, hs->initiator ? k1 : k2, why) == -1 ||
	    cipher_key(recv, hs->initiator ? k2 : k1, why) == -1) {
		noise_cipher_clear(send);
		noise_cipher_clear(recv);
		fail(hs, *why, why);
		goto out;
	}
	if (hash != NULL)
		memcpy(hash, hs->h, NOISE_HASH_BYTES);
	/* Only h outlives the handshake (Noise 5): ck and k go now. */
	OPENSSL_cleanse(hs->ck, sizeof(hs->ck));
	noise_cipher_clear(&hs->c);
	rv = 0;
out:
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	return rv;
}

void
noise_hs_free(struct noise_hs *hs)
{
	if (hs == NULL)
		return;
	noise_cipher_clear(&hs->c);
	EVP_PKEY_free(hs->s);
	EVP_PKEY_free(hs->e);
	EVP_MD_CTX_free(hs->md);
	EVP_MD_free(hs->sha256);
	OPENSSL_clear_free(hs, sizeof(*hs));
}

int
noise_pkey_private(EVP_PKEY *key, unsigned char out[NOISE_DH_BYTES],
    const char **why)
{
	return pkey_raw(key, 1, out, why);
}

int
noise_pkey_public(EVP_PKEY *key, unsigned char out[NOISE_DH_BYTES],
    const char **why)
{
	return pkey_raw(key, 0, out, why);
}

/* The raw private (priv) or public half of an X25519 key. */
static int
pkey_raw(EVP_PKEY *key, int priv, unsigned char out[NOISE_DH_BYTES],
    const char **why)
{
	size_t	n = NOISE_DH_BYTES;
	int	r;

	if (key == NULL || !EVP_PKEY_is_a(key, "X25519")) {
		*why = "not an X25519 key";
		return -1;
	}
	r = priv ? EVP_PKEY_get_raw_private_key(key, out, &n) :
	    EVP_PKEY_get_raw_public_key(key, out, &n);
	if (r != 1 || n != NOISE_DH_BYTES) {
		OPENSSL_cleanse(out, NOISE_DH_BYTES);
		ERR_clear_error();
		*why = priv ? "no X25519 private key in it" :
		    "no X25519 public key in it";
		return -1;
	}
	return 0;
}

int
noise_cert_public(X509 *cert, unsigned char out[NOISE_DH_BYTES],
    const char **why)
{
	EVP_PKEY	*key;

	if ((key = X509_get0_pubkey(cert)) == NULL) {
		ERR_clear_error();
		*why = "the certificate's key cannot be read";
		return -1;
	}
	if (noise_pkey_public(key, out, why) == -1) {
		*why = "the certificate's key is not X25519";
		return -1;
	}
	return 0;
}
