/*
 * crypto.c -- the primitives USMTP uses and nothing that touches a
 * socket: OpenSSL set-up, key and certificate files, RSA-OAEP
 * (usmtp(7), Handshake), AES-256-ECB contexts for the frame layer, and
 * random bytes.
 *
 * Calls only OpenSSL and libc.  Never prints, logs or exits: failures
 * return -1 or NULL with a static reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "usmtp.h"

#define PEM_MAX_BYTES	65536	/* a key or certificate file */
#define AES_BLOCK	16

static int	 read_file(const char *path, int secret, unsigned char **buf,
		    size_t *len, const char **why);

/*
 * OpenSSL 3's first fetch of a cipher builds a method for every cipher
 * of the default provider, about 3 million instructions of each
 * connection's start-up for the one or two ciphers we use.  The
 * library's built-in ciphers (the same AES-NI code), copied into
 * methods of our own, are used without a fetch.  EVP_CIPHER_meth_dup()
 * is deprecated in OpenSSL 3; where deprecated calls are compiled out,
 * or a copy fails, the cipher is fetched as usual.
 */
const EVP_CIPHER *
crypto_cipher(enum cipherkind kind)
{
	const EVP_CIPHER	*builtin = kind == CIPHER_AES256_GCM ?
				    EVP_aes_256_gcm() : EVP_aes_256_ecb();
#ifndef OPENSSL_NO_DEPRECATED_3_0
	static EVP_CIPHER	*meth[2];

	if (meth[kind] == NULL) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
		meth[kind] = EVP_CIPHER_meth_dup(builtin);
#pragma GCC diagnostic pop
	}
	if (meth[kind] != NULL)
		return meth[kind];
#endif
	return builtin;
}

void
crypto_init(uint64_t opts)
{
	OPENSSL_init_crypto(opts, NULL);
	/*
	 * Hash_DRBG with SHA-256 (NIST SP 800-90A, 256-bit strength) in
	 * place of the default CTR_DRBG with AES-256, which would build
	 * every cipher method (above) for its own AES.  Seeded from the
	 * kernel as usual.  If the DRBGs exist already, this fails and
	 * the default stays: nothing to report.
	 */
	if (RAND_set_DRBG_type(NULL, "HASH-DRBG", NULL, NULL, "SHA256") != 1)
		ERR_clear_error();
}

EVP_CIPHER_CTX *
aes_ecb_new(const unsigned char *key, int encrypt)
{
	EVP_CIPHER_CTX	*ctx;

	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return NULL;
	if (EVP_CipherInit_ex(ctx, crypto_cipher(CIPHER_AES256_ECB), NULL, key, NULL,
	    encrypt ? 1 : 0) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	/* usmtp(7), Framing: space padding is the caller's, never PKCS#7. */
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	return ctx;
}

int
aes_ecb(const unsigned char *key, int encrypt, const unsigned char *in,
    size_t len, unsigned char *out)
{
	EVP_CIPHER_CTX	*ctx;
	int		 outl, rv = -1;

	if (len % AES_BLOCK != 0 || len > INT_MAX ||
	    (ctx = aes_ecb_new(key, encrypt)) == NULL)
		return -1;
	if (EVP_CipherUpdate(ctx, out, &outl, in, (int)len) == 1 &&
	    (size_t)outl == len)
		rv = 0;
	EVP_CIPHER_CTX_free(ctx);
	return rv;
}

/*
 * Reads a whole small file.  A secret file must be a regular file that
 * neither group nor others may read.
 */
static int
read_file(const char *path, int secret, unsigned char **buf, size_t *len,
    const char **why)
{
	struct stat	 st;
	unsigned char	*p = NULL;
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd, rv = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		*why = errno == ENOENT ? "no such file" :
		    errno == EACCES ? "permission denied" : "cannot open";
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto out;
	}
	if (secret && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		*why = "group or others may read it (run chmod 600 on it)";
		goto out;
	}
	if (st.st_size <= 0 || st.st_size > PEM_MAX_BYTES) {
		*why = "empty or too large to be a PEM file";
		goto out;
	}
	if ((p = malloc((size_t)st.st_size + 1)) == NULL) {
		*why = "out of memory";
		goto out;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, p + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			*why = "read failed";
			goto out;
		}
		off += (size_t)n;
	}
	p[off] = '\0';
	*buf = p;
	*len = off;
	p = NULL;
	rv = 0;
out:
	if (p != NULL) {
		OPENSSL_cleanse(p, (size_t)st.st_size + 1);
		free(p);
	}
	close(fd);
	return rv;
}

/*
 * OpenSSL 3's PEM_read_bio_PrivateKey builds a decoder chain from every
 * decoder of every provider before it parses a byte: about 8 million
 * instructions, over a millisecond of each session's start-up (the key
 * is loaded per connection).  The usual key, an unencrypted RSA key in
 * PKCS#8 ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") form, is parsed
 * here with the ASN.1 primitives instead and imported with
 * EVP_PKEY_fromdata; rsa_fast() returns NULL for anything else, which
 * then goes the general way.  Numbers pass through num[], wiped.
 */
static EVP_PKEY	*rsa_fast(const char *name, const char *hdr,
		    const unsigned char *der, long len);
static EVP_PKEY	*x25519_fast(const char *name, const char *hdr,
		    const unsigned char *der, long len);

static EVP_PKEY *
rsa_fast(const char *name, const char *hdr, const unsigned char *der,
    long len)
{
	/* RSAPrivateKey (RFC 8017 A.1.2) after its version, in order */
	static const char *const fields[8] = {
		OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E,
		OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
		OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
		OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1
	};
	unsigned char		 num[8][RSA_CIPHER_BYTES];
	OSSL_PARAM		 params[9];
	PKCS8_PRIV_KEY_INFO	*p8 = NULL;
	const ASN1_OBJECT	*alg;
	ASN1_INTEGER		*ai;
	BIGNUM			*bn;
	EVP_PKEY_CTX		*ctx = NULL;
	EVP_PKEY		*key = NULL;
	const unsigned char	*p = der, *end;
	long			 seqlen;
	int			 plen, tag, class, i, n, ok;

	if (*hdr != '\0')	/* Proc-Type: 4,ENCRYPTED */
		return NULL;
	if (strcmp(name, PEM_STRING_PKCS8INF) == 0) {
		if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len)) == NULL ||
		    !PKCS8_pkey_get0(&alg, &p, &plen, NULL, p8) ||
		    OBJ_obj2nid(alg) != NID_rsaEncryption)
			goto out;
	} else if (strcmp(name, PEM_STRING_RSA) == 0 && len <= INT_MAX)
		plen = (int)len;
	else
		return NULL;
	if (ASN1_get_object(&p, &seqlen, &tag, &class, plen) != 0x20 ||
	    tag != V_ASN1_SEQUENCE || class != V_ASN1_UNIVERSAL)
		goto out;
	end = p + seqlen;
	for (i = -1; i < 8; i++) {
		if ((ai = d2i_ASN1_INTEGER(NULL, &p, end - p)) == NULL)
			goto out;
		bn = ASN1_INTEGER_to_BN(ai, NULL);
		ASN1_STRING_clear_free(ai);
		if (bn == NULL)
			goto out;
		if (i == -1)	/* version 0: two primes */
			ok = BN_is_zero(bn);
		else {
			n = BN_num_bytes(bn);
			ok = !BN_is_negative(bn) && n > 0 &&
			    n <= RSA_CIPHER_BYTES &&
			    BN_bn2nativepad(bn, num[i], n) == n;
			if (ok)
				params[i] = OSSL_PARAM_construct_BN(fields[i],
				    num[i], (size_t)n);
		}
		BN_clear_free(bn);
		if (!ok)
			goto out;
	}
	if (p != end)
		goto out;
	params[8] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) <= 0)
		key = NULL;
out:
	OPENSSL_cleanse(num, sizeof(num));
	EVP_PKEY_CTX_free(ctx);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return key;
}

/*
 * The same for secure mode's key, an unencrypted X25519 key in PKCS#8
 * (RFC 8410: its private key is an OCTET STRING of 32 bytes), which would
 * otherwise cost the handler's secure session half its instructions.
 */
static EVP_PKEY *
x25519_fast(const char *name, const char *hdr, const unsigned char *der,
    long len)
{
	PKCS8_PRIV_KEY_INFO	*p8 = NULL;
	ASN1_OCTET_STRING	*os = NULL;
	const ASN1_OBJECT	*alg;
	EVP_PKEY		*key = NULL;
	const unsigned char	*p = der;
	int			 plen;

	if (*hdr != '\0' || strcmp(name, PEM_STRING_PKCS8INF) != 0)
		return NULL;
	if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len)) == NULL ||
	    !PKCS8_pkey_get0(&alg, &p, &plen, NULL, p8) ||
	    OBJ_obj2nid(alg) != NID_X25519 ||
	    (os = d2i_ASN1_OCTET_STRING(NULL, &p, plen)) == NULL ||
	    ASN1_STRING_length(os) != 32)
		goto out;
	key = EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL,
	    ASN1_STRING_get0_data(os), 32);
out:
	ASN1_STRING_clear_free(os);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return key;
}

EVP_PKEY *
crypto_load_key(const char *path, enum keykind kind, const char **why)
{
	unsigned char	*pem = NULL, *der = NULL;
	char		*name = NULL, *hdr = NULL;
	long		 derlen = 0;
	size_t		 len = 0;
	BIO		*bio = NULL;
	EVP_PKEY	*key = NULL;

	if (read_file(path, 1, &pem, &len, why) == -1)
		return NULL;
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		*why = "out of memory";
		goto out;
	}
	if (PEM_read_bio(bio, &name, &hdr, &der, &derlen))
		key = kind == KEY_RSA2048 ? rsa_fast(name, hdr, der, derlen) :
		    x25519_fast(name, hdr, der, derlen);
	if (key == NULL) {
		BIO_free(bio);
		if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
			*why = "out of memory";
			goto out;
		}
		key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	}
	if (key == NULL) {
		*why = "not a PEM private key (or it is encrypted)";
		goto out;
	}
	if (kind == KEY_RSA2048 && (!EVP_PKEY_is_a(key, "RSA") ||
	    EVP_PKEY_get_bits(key) != 2048)) {
		*why = "not an RSA-2048 key (usmtp(7), Handshake)";
		EVP_PKEY_free(key);
		key = NULL;
	} else if (kind == KEY_X25519 && !EVP_PKEY_is_a(key, "X25519")) {
		*why = "not an X25519 key (usmtp(7), SECURE MODE)";
		EVP_PKEY_free(key);
		key = NULL;
	}
out:
	BIO_free(bio);
	OPENSSL_free(name);
	OPENSSL_free(hdr);
	if (der != NULL)
		OPENSSL_clear_free(der, (size_t)derlen);
	OPENSSL_cleanse(pem, len);
	free(pem);
	ERR_clear_error();
	return key;
}

char *
crypto_read_cert_pem(const char *path, size_t *len, const char **why)
{
	static const char	 begin[] = "-----BEGIN CERTIFICATE-----";
	static const char	 end[] = "-----END CERTIFICATE-----";
	unsigned char		*buf = NULL;
	char			*b, *e, *pem;
	size_t			 n;

	if (read_file(path, 0, &buf, &n, why) == -1)
		return NULL;
	if ((b = strstr((char *)buf, begin)) == NULL ||
	    (e = strstr(b, end)) == NULL) {
		*why = "no PEM certificate in it";
		free(buf);
		return NULL;
	}
	e += sizeof(end) - 1;
	n = (size_t)(e - b);
	if ((pem = malloc(n + 2)) == NULL) {
		*why = "out of memory";
		free(buf);
		return NULL;
	}
	memcpy(pem, b, n);
	pem[n++] = '\n';
	pem[n] = '\0';
	free(buf);
	*len = n;
	return pem;
}

/* Sets ctx up for RSA-OAEP with SHA-256 and MGF1-SHA-256, no label. */
static int	oaep_ctx(EVP_PKEY_CTX *ctx);

static int
oaep_ctx(EVP_PKEY_CTX *ctx)
{
	if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0)
		return -1;
	return 0;
}

int
crypto_rsa_decrypt(EVP_PKEY *key, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsz, size_t *outlen)
{
	EVP_PKEY_CTX	*ctx;
	unsigned char	 tmp[RSA_CIPHER_BYTES];
	size_t		 n = sizeof(tmp);
	int		 rv = -1;

	if ((ctx = EVP_PKEY_CTX_new(key, NULL)) == NULL)
		return -1;
	if (EVP_PKEY_decrypt_init(ctx) <= 0 || oaep_ctx(ctx) == -1)
		goto out;
	if (EVP_PKEY_decrypt(ctx, tmp, &n, in, inlen) <= 0 || n > outsz)
		goto out;
	memcpy(out, tmp, n);
	*outlen = n;
	rv = 0;
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return rv;
}

int
crypto_rsa_encrypt(EVP_PKEY *pub, const unsigned char *in, size_t inlen,
    unsigned char *out, size_t outsz, size_t *outlen)
{
	EVP_PKEY_CTX	*ctx;
	size_t		 n = outsz;
	int		 rv = -1;

	if ((ctx = EVP_PKEY_CTX_new(pub, NULL)) == NULL)
		return -1;
	if (EVP_PKEY_encrypt_init(ctx) > 0 && oaep_ctx(ctx) == 0 &&
	    EVP_PKEY_encrypt(ctx, out, &n, in, inlen) > 0) {
		*outlen = n;
		rv = 0;
	}
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return rv;
}

int
crypto_random(void *buf, size_t n)
{
	if (n > INT_MAX || RAND_bytes(buf, (int)n) != 1)
		return -1;
	return 0;
}
