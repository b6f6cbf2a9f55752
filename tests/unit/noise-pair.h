/*
 * noise-pair.h -- for tests of secure mode's records: the transport
 * ciphers of a real Noise NK handshake between two sides, done in
 * memory with a fresh X25519 server key.  Include once, after usmtp.h.
 */
#ifndef NOISE_PAIR_H
#define NOISE_PAIR_H

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/*
 * Fills the client's (ctx, crx) and the server's (stx, srx) ciphers;
 * s_priv, if not NULL, gets the server's private key.  Aborts on any
 * failure: a test cannot go on without them.
 */
static void
noise_pair(struct noise_cipher *ctx, struct noise_cipher *crx,
    struct noise_cipher *stx, struct noise_cipher *srx,
    unsigned char s_priv[NOISE_DH_BYTES])
{
	struct noise_hs	*hi, *hr;
	unsigned char	 spriv[NOISE_DH_BYTES], spub[NOISE_DH_BYTES];
	unsigned char	 m[256], pl[64];
	EVP_PKEY	*k;
	const char	*why;
	size_t		 ml, pll;

	if ((k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) == NULL ||
	    noise_pkey_private(k, spriv, &why) == -1 ||
	    noise_pkey_public(k, spub, &why) == -1)
		abort();
	EVP_PKEY_free(k);
	hi = noise_hs_new(1, (const unsigned char *)"p", 1, NULL, spub, NULL,
	    &why);
	hr = noise_hs_new(0, (const unsigned char *)"p", 1, spriv, NULL, NULL,
	    &why);
	memset(ctx, 0, sizeof(*ctx));
	memset(crx, 0, sizeof(*crx));
	memset(stx, 0, sizeof(*stx));
	memset(srx, 0, sizeof(*srx));
	if (hi == NULL || hr == NULL ||
	    noise_hs_write_message(hi, (const unsigned char *)"x", 1, m,
	    sizeof(m), &ml, &why) == -1 ||
	    noise_hs_read_message(hr, m, ml, pl, sizeof(pl), &pll, &why) == -1 ||
	    noise_hs_write_message(hr, (const unsigned char *)"y", 1, m,
	    sizeof(m), &ml, &why) == -1 ||
	    noise_hs_read_message(hi, m, ml, pl, sizeof(pl), &pll, &why) == -1 ||
	    noise_hs_split(hi, ctx, crx, NULL, &why) == -1 ||
	    noise_hs_split(hr, stx, srx, NULL, &why) == -1)
		abort();
	noise_hs_free(hi);
	noise_hs_free(hr);
	if (s_priv != NULL)
		memcpy(s_priv, spriv, NOISE_DH_BYTES);
}

#endif /* NOISE_PAIR_H */
