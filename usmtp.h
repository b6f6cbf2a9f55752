/*
 * usmtp.h -- the whole internal interface of usmtp, grouped by file
 * (README, Source layout, says who may call whom).
 *
 * Programs (usmtp-handler.c, usmtp-client.c, usmtp-users.c, and the test
 * tool tests/usmtp-script.c) call modules; frame.c calls crypto.c,
 * noise.c and util.c; auth.c, mailer.c and noise.c may call crypto.c;
 * check.c calls crypto.c, auth.c, mailer.c and throttle.c; crypto.c and
 * dial.c call only OpenSSL and libc.  Modules never exit, print or
 * syslog: they return -1 (or an FR_* or DIAL_* code) and set a static
 * reason (*why) for the caller to report.
 */
#ifndef USMTP_H
#define USMTP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/evp.h>

#define USMTP_VERSION		"1.0.0"

#define ADDR_MAX		254	/* RFC 5321 path limit, bytes */
#define FRAME_MAX_BYTES		4096	/* command/reply frame: 1.0 ciphertext,
					 * secure mode's reassembled content */
#define SESSION_KEY_BYTES	32	/* AES-256 */
#define RSA_CIPHER_BYTES	256	/* RSA-2048 OAEP block */
#define MAX_ATTACHMENTS		5	/* usmtp(7), Sending a message */
#define STREAM_CHUNK_BYTES	65536	/* counted data moves in these */

/* util.c */

/* Milliseconds of the monotonic clock (never steps back). */
long	clock_ms(void);
/*
 * Grows *buf (capacity *cap) to hold at least need bytes, doubling.  A
 * secret buffer is never realloc'd: the old copy is wiped and freed.
 * 0, or -1 when out of memory (*buf unchanged).
 */
int	buf_grow(unsigned char **buf, size_t *cap, size_t need, int secret);
/*
 * Reads one line from fd a byte at a time (no stdio buffer keeps a copy)
 * into buf, NUL-terminated, without its "\n" or "\r\n"; *len is set.
 * 0; -1 at end of input before any byte (errno 0) or on an error
 * (errno); -2 when longer than bufsz - 1 bytes.
 */
int	read_line_fd(int fd, char *buf, size_t bufsz, size_t *len);
/*
 * Shows prompt on /dev/tty and reads one line there with echo off.  A
 * signal meanwhile restores the terminal, then is raised again.  0; -1
 * (*why) when there is no terminal, input ended or a signal came; -2
 * when longer than bufsz - 1 bytes.  buf is wiped on failure.
 */
int	tty_read_secret(const char *prompt, char *buf, size_t bufsz,
	    size_t *len, const char **why);
/* How esc_bytes() shows a byte that is not plain text. */
enum {
	ESC_LOG,	/* every byte outside '!'..'~', and '"' and '\', as \xNN */
	ESC_SHOW	/* printable ASCII and space as they are; CR, LF, TAB
			 * and '\' as \r, \n, \t, \\; the rest as \xNN */
};
/*
 * Writes p[0..n) into dst (dstsz bytes, NUL-terminated), made safe for
 * a log line or a terminal (how: ESC_*): bytes another party chose can
 * then neither split a log line nor send escape sequences.  What does
 * not fit is cut, and "..." marks it.  Returns the length written.
 */
size_t	esc_bytes(char *dst, size_t dstsz, const void *p, size_t n,
	    int how);
/*
 * The same into one of two static buffers used in turn (so two calls
 * may share one printf), cut to max (at most ESC_TEXT_MAX_BYTES) bytes
 * of p and marked "..." when longer.
 */
#define ESC_TEXT_MAX_BYTES	256
const char *esc_text(const void *p, size_t n, size_t max, int how);
/* fsyncs the directory holding path, so that a rename or link of path
 * is on disk.  0, or -1 (errno). */
int	sync_dir(const char *path);

/* crypto.c */

/*
 * Initialises OpenSSL with opts (OPENSSL_INIT_* flags, 0 for the usual)
 * and picks the random generator; call once, before any other crypto
 * or RAND call.
 */
void	crypto_init(uint64_t opts);
/* The ciphers usmtp uses. */
enum cipherkind {
	CIPHER_AES256_ECB = 0,	/* USMTP 1.0's records */
	CIPHER_AES256_GCM = 1	/* secure mode's (noise.c) */
};
/* The cipher, from OpenSSL's built-in methods without a provider fetch
 * (a fetch builds every cipher of the provider: see crypto.c). */
const EVP_CIPHER *crypto_cipher(enum cipherkind kind);
/*
 * A context for AES-256-ECB with key (32 bytes), without padding (the
 * space padding of usmtp(7), Framing, is the frame layer's): encrypting
 * when encrypt is 1, decrypting when 0.  NULL on failure.
 */
EVP_CIPHER_CTX *aes_ecb_new(const unsigned char *key, int encrypt);
/* Whole-buffer AES-256-ECB without padding; len a multiple of 16. */
int	aes_ecb(const unsigned char *key, int encrypt,
	    const unsigned char *in, size_t len, unsigned char *out);
/* The private keys usmtp uses. */
enum keykind {
	KEY_RSA2048,	/* the 1.0 key exchange (usmtp(7), Handshake) */
	KEY_X25519	/* secure mode's static key (usmtp(7), SECURE MODE) */
};
/*
 * Loads a PEM private key of the given kind.  Refuses a file that group
 * or others may read (checked with fstat on the open descriptor), and a
 * key of another kind.  Returns NULL and *why.
 */
EVP_PKEY *crypto_load_key(const char *path, enum keykind kind,
	    const char **why);
/*
 * Reads the first PEM certificate block of path into a malloc'd string
 * ("-----BEGIN CERTIFICATE-----" .. "-----END CERTIFICATE-----\n").
 */
char	*crypto_read_cert_pem(const char *path, size_t *len, const char **why);
/* RSA-OAEP, SHA-256 and MGF1-SHA-256, empty label (usmtp(7), Handshake). */
int	crypto_rsa_decrypt(EVP_PKEY *key, const unsigned char *in,
	    size_t inlen, unsigned char *out, size_t outsz, size_t *outlen);
int	crypto_rsa_encrypt(EVP_PKEY *pub, const unsigned char *in,
	    size_t inlen, unsigned char *out, size_t outsz, size_t *outlen);
/* Fills buf with n random bytes; 0 or -1. */
int	crypto_random(void *buf, size_t n);

/* noise.c */

/*
 * Noise_NK_25519_AESGCM_SHA256 (Noise protocol framework, revision 34),
 * the cryptography of usmtp(7) SECURE MODE: X25519, SHA-256 with HKDF
 * from HMAC-SHA256, AES-256-GCM (nonce = 4 zero bytes || the 64-bit
 * big-endian counter, 16-byte tag).  The caller moves the messages;
 * every function returns 0 or -1 and a static reason (*why).
 */
#define NOISE_DH_BYTES		32	/* X25519 key, DH output */
#define NOISE_HASH_BYTES	32	/* SHA-256, ck, h */
#define NOISE_KEY_BYTES		32	/* AES-256 */
#define NOISE_TAG_BYTES		16	/* AES-GCM tag */
#define NOISE_MSG_MAX_BYTES	65535	/* any Noise message (Noise 3) */
#define NOISE_PLAIN_MAX_BYTES	(NOISE_MSG_MAX_BYTES - NOISE_TAG_BYTES)
#define NOISE_HS_OVERHEAD_BYTES	(NOISE_DH_BYTES + NOISE_TAG_BYTES)
#define NOISE_HS_PAYLOAD_MAX_BYTES \
	(NOISE_MSG_MAX_BYTES - NOISE_HS_OVERHEAD_BYTES)
#define NOISE_NONCE_MAX		UINT64_MAX	/* reserved, never used */

/*
 * A CipherState: AES-256-GCM keyed once, and the next nonce.  ctx NULL
 * means no key.  Zero it (or take it from noise_hs_split()) before use;
 * it may live by value inside another struct.
 */
struct noise_cipher {
	EVP_CIPHER_CTX	*ctx;		/* holds the key; NULL: none */
	uint64_t	 n;		/* next nonce */
};

/*
 * Encrypts len (<= NOISE_PLAIN_MAX_BYTES) bytes with empty associated
 * data into out (len + NOISE_TAG_BYTES bytes: ciphertext, then tag) and
 * advances the nonce.  in and out may be the same buffer.  Refused once
 * the nonce has reached NOISE_NONCE_MAX: the session must end.
 */
int	noise_encrypt(struct noise_cipher *c, const unsigned char *in,
	    size_t len, unsigned char *out, const char **why);
/*
 * Decrypts a transport message of len bytes (NOISE_TAG_BYTES ..
 * NOISE_MSG_MAX_BYTES) into out (len - NOISE_TAG_BYTES bytes, *outlen).
 * -1 when it fails authentication (out is then wiped and the nonce
 * stays), is too short, or the nonces are spent.  In place allowed.
 */
int	noise_decrypt(struct noise_cipher *c, const unsigned char *in,
	    size_t len, unsigned char *out, size_t *outlen, const char **why);
/* Frees the context (its key schedule is cleansed); c has no key after. */
void	noise_cipher_clear(struct noise_cipher *c);

struct noise_hs;
/*
 * Initialize() for pattern NK (<- s; -> e, es; <- e, ee).  The initiator
 * (client) gives rs_pub, the responder's 32-byte static public key, and
 * s_priv NULL; the responder (server) gives s_priv, its 32-byte X25519
 * private key, and rs_pub NULL.  The prologue is hashed at once and not
 * kept.  e_priv NULL draws a fresh ephemeral key when it is needed; a
 * fixed one is for test vectors only.  Copies what it keeps; the caller
 * wipes its own s_priv.  NULL and *why on failure.
 */
struct noise_hs *noise_hs_new(int initiator, const unsigned char *prologue,
	    size_t prologuelen, const unsigned char *s_priv,
	    const unsigned char *rs_pub, const unsigned char *e_priv,
	    const char **why);
/*
 * WriteMessage(): the next handshake message of this side (initiator
 * message 1, responder message 2) with payload (len bytes, at most
 * NOISE_HS_PAYLOAD_MAX_BYTES) into out (outsz >= len +
 * NOISE_HS_OVERHEAD_BYTES; must not overlap payload); *outlen is set.
 */
int	noise_hs_write_message(struct noise_hs *hs,
	    const unsigned char *payload, size_t len, unsigned char *out,
	    size_t outsz, size_t *outlen, const char **why);
/*
 * ReadMessage(): the peer's next handshake message, msg (len bytes);
 * its payload goes to payload (psz >= len - NOISE_HS_OVERHEAD_BYTES, or
 * it fails; payload may be msg + NOISE_DH_BYTES, else not overlap msg),
 * *plen is set.  A message of a wrong length, a bad public key or a
 * failed authentication (wrong static key, changed prologue, tampering)
 * is -1.  Any failure of write or read wipes hs: only
 * noise_hs_free() is left.
 */
int	noise_hs_read_message(struct noise_hs *hs, const unsigned char *msg,
	    size_t len, unsigned char *payload, size_t psz, size_t *plen,
	    const char **why);
/*
 * Split(), once both messages are done: send and recv (overwritten: pass
 * ones that hold no key) get the caller's two transport ciphers, oriented for
 * its role; hash (NULL: not wanted) the handshake hash.  ck and k are
 * wiped; free hs next.
 */
int	noise_hs_split(struct noise_hs *hs, struct noise_cipher *send,
	    struct noise_cipher *recv, unsigned char hash[NOISE_HASH_BYTES],
	    const char **why);
/* Wipes and frees hs (NULL is fine). */
void	noise_hs_free(struct noise_hs *hs);

/*
 * The raw 32-byte private key of an X25519 EVP_PKEY (the caller wipes
 * out), its public key, and the public key of an X25519 certificate
 * (the client's rs, once the certificate is verified).  Any other kind
 * of key is refused.
 */
int	noise_pkey_private(EVP_PKEY *key, unsigned char out[NOISE_DH_BYTES],
	    const char **why);
int	noise_pkey_public(EVP_PKEY *key, unsigned char out[NOISE_DH_BYTES],
	    const char **why);
int	noise_cert_public(X509 *cert, unsigned char out[NOISE_DH_BYTES],
	    const char **why);

/* frame.c */

/* Frame kinds (usmtp(7), Framing and Handshake). */
enum ftype {
	FT_PLAIN,	/* plaintext, ends at the first CRLFCRLF */
	FT_PLAIN_DOT,	/* plaintext, ends at the first ".\r\n\r\n" (202) */
	FT_KEY,		/* exactly RSA_CIPHER_BYTES then CRLFCRLF */
	FT_CIPHER,	/* AES blocks, CRLFCRLF at a positive multiple of 16 */
	FT_CIPHER_DOT,	/* AES blocks, ".\r\n\r\n" at a positive multiple of 16 */
	FT_RECORD	/* secure mode's handshake message: a 2-byte length
			 * and the Noise message, raw */
};

/* How a 1.0 frame is padded with spaces to whole AES blocks. */
enum fpad {
	FPAD_ALWAYS,	/* 1..16 spaces, never none: what usmtp sends */
	FPAD_REF	/* 0..15: the reference implementation's, which
			 * its own receiver misreads; for testing peers */
};

/* Results of the frame_read*() calls. */
enum {
	FR_OK = 0,
	FR_EOF,		/* clean end of input before the frame's first byte */
	FR_TRUNC,	/* end of input inside a frame */
	FR_TOOBIG,	/* more than max bytes buffered without a terminator */
	FR_TIMEOUT,	/* idle timeout or frame deadline passed */
	FR_BADFRAME,	/* malformed: wrong terminator, not whole blocks */
	FR_ERROR,	/* read/write error or internal failure; see why */
	FR_INTR		/* *io->stop was set (a signal) while waiting */
};

struct frameio {
	int		 rfd, wfd;
	int		 timeout_ms;	/* idle limit per wait, <= 0: none */
	long		 deadline_ms;	/* no wait past it (monotonic), 0: none */
	unsigned char	*in;		/* read buffer */
	size_t		 incap, inoff, inlen;	/* [inoff, inoff+inlen) unread */
	size_t		 scanned;	/* bytes of the frame already searched */
	unsigned char	*out;		/* pending output */
	size_t		 outcap, outlen;
	unsigned char	*plain;		/* last decrypted frame, NUL-ended */
	size_t		 plaincap;
	EVP_CIPHER_CTX	*enc, *dec;	/* NULL until frame_setkey() */
	int		 noise;		/* secure mode's records from now */
	struct noise_cipher tx, rx;	/* their ciphers (frame_set_noise) */
	int		 keep;		/* keep a copy of plaintext frames */
	unsigned char	*kept;		/* ... here: the Noise prologue */
	size_t		 keptlen, keptcap;
	int		 eof;		/* the peer's end of input was read */
	int		 drain;		/* read input while waiting to write */
	int		 wsock;		/* wfd is a socket */
	int		 timedout;	/* a wait ran out of time */
	uint64_t	 rxbytes;	/* input bytes taken by frames so far */
	uint64_t	 rxrecords;	/* ... and records (secure mode): the
					 * client's -vv tells them per frame */
	const sigset_t	*waitmask;	/* signal mask while waiting, or NULL */
	volatile sig_atomic_t *stop;	/* when set: waits end, FR_INTR */
	void		(*tick)(void *);	/* called every tick_ms of a */
	void		*tick_arg;		/* wait; may move deadline_ms */
	long		 tick_ms;
	const char	*why;		/* reason for the last failure */
};

/*
 * Sets up io over rfd/wfd with an idle timeout in seconds (0: none).
 * Every wait is a ppoll(2) under io->waitmask; a program that must end
 * cleanly on a signal blocks it, points waitmask at a mask without it
 * and stop at the flag its handler sets: a wait then ends with FR_INTR
 * (frame_flush: -1, why "interrupted").  Returns 0, or -1 when out of
 * memory.
 */
int	frame_init(struct frameio *io, int rfd, int wfd, int timeout_sec);
/* Wipes and frees everything io holds; io may be reused after frame_init. */
void	frame_free(struct frameio *io);
/*
 * Sets a deadline, seconds from now, that no read waits past (0 clears
 * it): the handler's login phase.  Frames already buffered are still
 * served.  frame_deadline_passed() is 1 once a set deadline has passed.
 */
void	frame_set_deadline(struct frameio *io, int seconds);
int	frame_deadline_passed(const struct frameio *io);
/* Switches io to AES-256-ECB with key (32 bytes, not kept by io); stops
 * keeping plaintext frames. */
int	frame_setkey(struct frameio *io, const unsigned char *key);
/*
 * Switches io to secure mode's records (usmtp(7), SECURE MODE) with the
 * two transport ciphers of a finished Noise handshake, which io takes
 * over (*tx and *rx are left without a key).  From then on FT_CIPHER
 * and FT_CIPHER_DOT frames travel as transport messages: split into
 * pieces with a flag byte, no padding, no terminator; attachment content
 * is exactly its size.  Also stops keeping plaintext frames.
 */
void	frame_set_noise(struct frameio *io, struct noise_cipher *tx,
	    struct noise_cipher *rx);

/*
 * Reads one frame of kind type whose payload (terminator excluded) may
 * be at most max bytes.  Pending output is flushed before any wait.
 * FT_CIPHER*: the payload is decrypted, trailing spaces are stripped and
 * *data points at the plaintext (NUL-terminated; it may contain NULs, so
 * use *len); in secure mode the frame is reassembled from its records,
 * its content as sent, and max is checked as they arrive.  FT_RECORD:
 * one handshake message, raw.  Other kinds: *data is the raw payload.
 * *data stays valid until the next frame_* call.  With io->keep set,
 * plaintext frames read or written (FT_PLAIN*), terminators included,
 * are appended to io->kept in the order they pass.  In secure mode a
 * record that fails authentication, a length out of range or a bad flag
 * is FR_BADFRAME with io->why.
 */
int	frame_read(struct frameio *io, enum ftype type, size_t max,
	    unsigned char **data, size_t *len);
/*
 * Reads exactly n raw bytes and passes them on in pieces of at most
 * STREAM_CHUNK_BYTES: sink(arg, p, len) returning -1 stops the read
 * (FR_ERROR).  Each piece waits at most one idle timeout.
 */
int	frame_read_counted(struct frameio *io, uint64_t n,
	    int (*sink)(void *arg, const unsigned char *p, size_t len),
	    void *arg);
/*
 * Reads an attachment's content of n bytes as announced by its header
 * (usmtp(7), Attachments): decrypts it, strips the padding (cut to size
 * bytes when size >= 0, the header's Size:, else trailing spaces
 * dropped) and hands the plaintext to sink in pieces; then checks that
 * the last 4 bytes are CRLFCRLF.  n - 4 must be a multiple of 16 and
 * size at most n - 4 (the caller has checked the header).  FR_OK;
 * FR_BADFRAME for a wrong tail (the stream is out of step); FR_TRUNC,
 * FR_TIMEOUT; FR_ERROR when sink returned -1 or decryption failed.
 */
int	frame_read_content(struct frameio *io, uint64_t n, int64_t size,
	    int (*sink)(void *arg, const unsigned char *p, size_t len),
	    void *arg);
/*
 * The length to announce in an attachment header for a file of size
 * bytes sent with frame_write_content(): ciphertext plus CRLFCRLF.
 */
uint64_t frame_content_length(const struct frameio *io, uint64_t size,
	    enum fpad pad);
/*
 * Sends the content of an attachment: size bytes read from fd, padded,
 * encrypted (when a key is set) and ended as usmtp(7), Attachments
 * says, in pieces of STREAM_CHUNK_BYTES, each written out before the
 * next is read; progress(arg, bytes sent), if not NULL, after each.
 * 0; -1 when writing failed (io->why); -2 when reading fd failed or it
 * ended early (io->why, errno).
 */
int	frame_write_content(struct frameio *io, int fd, uint64_t size,
	    enum fpad pad, void (*progress)(void *arg, uint64_t done),
	    void *arg);

/*
 * Queues one frame: text plus terminator.  With a key set, FT_CIPHER and
 * FT_CIPHER_DOT pad text with 1..16 spaces (usmtp(7), Framing, "always
 * pad") and encrypt it; frame_write_padded() pads as pad says.  FT_KEY
 * and FT_PLAIN* are sent as given.  Returns 0 or -1 (io->why).
 */
int	frame_write(struct frameio *io, enum ftype type, const void *text,
	    size_t len);
int	frame_write_padded(struct frameio *io, enum ftype type,
	    const void *text, size_t len, enum fpad pad);
/* Queues raw bytes as they are. */
int	frame_write_raw(struct frameio *io, const void *p, size_t len);
/*
 * Writes out everything queued, within one idle timeout and never past
 * the deadline of frame_set_deadline() (the descriptor should be
 * non-blocking, or a write may wait longer).  With io->drain set, input
 * that arrives meanwhile is buffered for the next frame_read().  Returns
 * 0 or -1 (io->why).
 */
int	frame_flush(struct frameio *io);
/* Bytes read but not yet consumed by a frame. */
size_t	frame_pending(const struct frameio *io);

/* dial.c */

/* Kinds of failure of the dial_*() calls, for the caller's exit status. */
enum {
	DIAL_OK = 0,
	DIAL_UNAVAILABLE,	/* cannot be reached: bad name, refused... */
	DIAL_TEMPFAIL,		/* might work later: timeout, unreachable */
	DIAL_PROTOCOL,		/* the server sent something unusable */
	DIAL_UNTRUSTED,		/* certificate chain, dates or name refused */
	DIAL_INTERNAL		/* out of memory and the like */
};

/*
 * A host as a user writes it: "[::1]", as in URLs, is the address ::1
 * (into buf); anything else is itself.  NULL when the brackets are bad
 * or buf too small.
 */
const char *dial_host(const char *host, char *buf, size_t bufsz);
/*
 * Connects to host (a name or an address literal) and port, trying each
 * address for at most timeout_ms.  Returns a non-blocking socket, or -1
 * with *kind (DIAL_UNAVAILABLE or DIAL_TEMPFAIL) and *why.
 */
int	dial_tcp(const char *host, const char *port, int timeout_ms,
	    int *kind, const char **why);
/*
 * Runs cmd with /bin/sh -c, its standard input and output one end of a
 * socket pair; returns the other end (non-blocking) and the child's pid,
 * or -1 (*why).
 */
int	dial_exec(const char *cmd, pid_t *pid, const char **why);
/* Waits for the child *pid (if any, then sets it to -1): 0 and *status,
 * or -1 when there is none. */
int	dial_reap(pid_t *pid, int *status);
/* Loads the trusted CA certificates of a PEM file.  NULL and *why. */
X509_STORE *dial_load_ca(const char *path, const char **why);
/*
 * Finds the PEM certificate in a 202 reply frame (usmtp(7), Handshake:
 * "202 algos valid" and the PEM, white space between allowed) and
 * verifies its chain and dates against store, its purpose (an extended
 * key usage, where present, must allow serverAuth) and, when host is
 * not NULL, that it is valid for host (a name, or an address literal).
 * Returns the certificate, or NULL with *kind (DIAL_PROTOCOL,
 * DIAL_UNTRUSTED, DIAL_INTERNAL) and *why.
 */
X509	*dial_verify_cert(X509_STORE *store, const unsigned char *frame,
	    size_t len, const char *host, int *kind, const char **why);
/* The RSA-2048 public key of a verified certificate.  NULL and *why. */
EVP_PKEY *dial_rsa_key(X509 *cert, const char **why);

/* auth.c */

/*
 * Checks address syntax (usmtp(7), Login: local@domain, one '@', no spaces
 * or control characters, dot-separated domain labels) and writes the
 * lower-cased address to out (outsz >= ADDR_MAX + 1).  0 or -1.
 */
int	addr_normalize(const char *in, size_t inlen, char *out, size_t outsz);

struct userdb;
/*
 * Opens the user database read-only, retrying briefly while a writer
 * holds it.  NULL and *why when missing, unreadable or corrupt; *why
 * names the path and says what is wrong in words an administrator can
 * act on: a missing directory as that directory, a file GDBM cannot
 * read as a database as "not a users database" (GDBM's words after).
 */
struct userdb *auth_open(const char *path, const char **why);
void	auth_close(struct userdb *db);
/*
 * 0 when db can check passwords; -1 (*why) when every check would fail,
 * because its parameter record (below) is malformed.
 */
int	auth_usable(const struct userdb *db, const char **why);
/*
 * Checks a password for a normalized address in constant time; an
 * unknown address costs the same work: it is checked against the
 * database's parameter record (below), whose parameters are those of the
 * newest password record written.  Returns 1 when good, 0 when wrong or
 * unknown, -1 on a database error (*why), also for every address when
 * the parameter record is malformed.
 */
int	auth_check(struct userdb *db, const char *addr, const char *pw,
	    size_t pwlen, const char **why);
/*
 * Looks up a normalized address.  Returns 1 and copies the user's own
 * Maildir path (or "" when none) into maildir; 0 when unknown; -1 (*why).
 */
int	auth_lookup(struct userdb *db, const char *addr, char *maildir,
	    size_t maildirsz, const char **why);

/*
 * The database file: key = the normalized (lower-cased) address, without
 * a trailing NUL; value = password record, optionally a TAB and the
 * user's Maildir, without a trailing NUL.  A password record is
 * "$scrypt$ln=COST,r=8,p=1$SALT$HASH": COST is log2 of scrypt's N, SALT
 * (16 random bytes) and HASH (32 bytes) in standard base64 with padding.
 * Records keep their own parameters, so the cost can be raised later.
 * One more record, key "@params" (never an address: no local part), is
 * no user's: a password record with the parameters of the newest one
 * written and a random salt and hash, which unknown addresses are
 * checked against.  Lookups, auth_foreach() and auth_update() never
 * show it.  A database without it (made before it existed) checks
 * unknown addresses at AUTH_COST_DEFAULT.
 */
#define AUTH_COST_DEFAULT	14	/* N = 2^14, r = 8: 16 MiB, ~50 ms */
#define AUTH_COST_MIN		1	/* tests and benchmarks only */
#define AUTH_COST_MAX		18	/* 256 MiB per check */
#define AUTH_HASH_MAX		255	/* a password record, bytes */
#define AUTH_MAILDIR_MAX	1024	/* a user's Maildir path, bytes */
#define AUTH_RECORD_MAX		(AUTH_HASH_MAX + 1 + AUTH_MAILDIR_MAX)

/*
 * Makes a password record for pw (pwlen bytes) with a fresh random salt
 * and scrypt N = 2^cost (AUTH_COST_MIN..AUTH_COST_MAX) into out
 * (outsz > AUTH_HASH_MAX).  0 or -1 (*why).
 */
int	auth_hash(const char *pw, size_t pwlen, int cost, char *out,
	    size_t outsz, const char **why);
/*
 * Checks pw against a password record in constant time (CRYPTO_memcmp).
 * Returns 1 when it matches, 0 when not, -1 (*why) for a malformed record.
 */
int	auth_verify(const char *record, const char *pw, size_t pwlen,
	    const char **why);
/* 1 when dir may be stored as a user's Maildir (absolute, no control
 * characters, at most AUTH_MAILDIR_MAX bytes), else 0. */
int	auth_maildir_ok(const char *dir);

enum auth_op {
	AUTH_ADD,	/* store addr: hash and maildir (NULL or "": none) */
	AUTH_PASSWD,	/* replace addr's password record, keep its Maildir */
	AUTH_DEL	/* remove addr; hash and maildir unused */
};
/*
 * Changes the database at path (admin tool only).  Holds an exclusive
 * flock(2) on "path.lock" throughout, copies every record plus the change
 * into a new file "path.tmpXXXXXX" (mode 0640; the old file's owner and
 * group kept where permitted), fsyncs it and rename(2)s it over path, so
 * readers open the old or the new file, never a half-written one.
 * AUTH_ADD creates path when missing.  AUTH_ADD and AUTH_PASSWD also
 * set the parameter record from hash's parameters.  addr must be
 * normalized; hash a well-formed password record.  Returns 0 when done;
 * 1 when nothing changed because addr already exists (AUTH_ADD) or is
 * unknown (AUTH_PASSWD, AUTH_DEL, also when path is missing); -1 (*why).
 */
int	auth_update(const char *path, enum auth_op op, const char *addr,
	    const char *hash, const char *maildir, const char **why);
/*
 * Creates an empty database at path, like auth_update(), holding only
 * the parameter record for scrypt cost (AUTH_COST_MIN..AUTH_COST_MAX).
 * 0 when made; 1 when path is already a database (left as it is);
 * -1 (*why), also when path exists but is no database.
 */
int	auth_init(const char *path, int cost, const char **why);
/*
 * Calls fn(arg, addr, maildir) for every user in database order (not
 * sorted); maildir is "" when none.  fn returning -1 stops the walk.
 * 0 or -1 (*why).
 */
int	auth_foreach(struct userdb *db,
	    int (*fn)(void *arg, const char *addr, const char *maildir),
	    void *arg, const char **why);

/* mailer.c */

/*
 * One message at a time.  A failure's reason (*why) names the path or
 * the program and what failed ("Maildir mkdir /var/mail/example.org:
 * Permission denied", "sendmail /usr/sbin/sendmail: exit status 75
 * (temporary failure)"); it may sit in a static buffer, valid until the
 * next mail_begin().  After a failure every call on the message
 * returns -1 with the same reason.
 */
struct mail_conf {
	const char	*maildir;	/* template: %u %d %a %%, or NULL */
	const char	*sendmail;	/* path, or NULL for Maildir delivery */
	long		 sendmail_timeout_ms;	/* monotonic; <= 0: 300 s */
	const char	*hostname;	/* for Received:, Message-ID:, names */
	const char	*peer;		/* client address for Received: */
	const char	*session_id;	/* for Received: id */
};

struct mail;
/*
 * Starts a message from sender to rcpt (normalized addresses), with the
 * subject and body as the client sent them (any bytes; CR, LF, NUL never
 * reach a header) and nattach attachments to follow.  rcpt_maildir is
 * the recipient's own Maildir from the database, or "" for the template.
 * The message is written to a temporary file; nothing is delivered
 * before mail_commit().  NULL and *why on failure.
 */
struct mail *mail_begin(const struct mail_conf *conf, const char *sender,
	    const char *rcpt, const char *rcpt_maildir,
	    const char *subject, size_t subjectlen,
	    const char *body, size_t bodylen, int nattach, const char **why);
/* Starts the next attachment with the client's file name (any bytes;
 * only a safe last path component is used). */
int	mail_attach_begin(struct mail *m, const char *name, size_t namelen,
	    const char **why);
/* Adds attachment bytes (streamed through base64 to the file). */
int	mail_attach_write(struct mail *m, const void *p, size_t len,
	    const char **why);
/* Ends the attachment: its last base64 characters and line end. */
int	mail_attach_end(struct mail *m, const char **why);
/*
 * Delivers: Maildir rename into new/ (after fsync), or a sendmail run,
 * waited for at most sendmail_timeout_ms (then killed with its process
 * group), exit status 0 its only success.  Frees m whatever happens.
 * where gets a short description of the destination for the log; *size
 * the message size.  0 when delivered, -1 (*why) when nothing was
 * delivered.
 */
int	mail_commit(struct mail *m, char *where, size_t wheresz,
	    off_t *size, const char **why);
/*
 * Expands a Maildir template for addr (a normalized address): %u its
 * local part, %d its domain, %a all of it, %% a percent sign, into out.
 * 0; -1 for an unknown escape; -2 when out is too small.
 */
int	mail_maildir_expand(const char *template, const char *addr,
	    char *out, size_t outsz);
/* Abandons the message: removes the temporary file, frees m. */
void	mail_abort(struct mail *m);

/* throttle.c */

/*
 * Failed logins across connections (usmtp(7), Login), in a fixed-size
 * state file shared by all handler processes under flock(2): per client
 * address (IPv4; IPv6 /64), per network (IPv4 /24; IPv6 /48) and per
 * account.  THROTTLE_SLOTS entries, each key in one of THROTTLE_PROBE
 * slots after a salted hash; a throttled entry is evicted only when all
 * of them hold throttled entries.  The file is 64 + THROTTLE_SLOTS * 32
 * bytes, never more.  An account is not refused, it is slowed down:
 * after THROTTLE_ACCOUNT_FREE failures each login of it waits
 * THROTTLE_DELAY_FIRST_MS, doubling with every further failure up to
 * THROTTLE_DELAY_MAX_MS, before its password is checked.
 */
#define THROTTLE_SLOTS		8192
#define THROTTLE_PROBE		8
#define THROTTLE_DB_DEFAULT	"/var/lib/usmtp/throttle.db"
#define THROTTLE_ACCOUNT_FREE	5	/* failures of an account, no delay */
#define THROTTLE_DELAY_FIRST_MS	250	/* the delay after those... */
#define THROTTLE_DELAY_MAX_MS	4000	/* ...doubling up to this */

enum {
	THROTTLE_ADDR = 1,	/* an IPv4 address, an IPv6 /64 */
	THROTTLE_NET,		/* an IPv4 /24, an IPv6 /48 */
	THROTTLE_ACCOUNT	/* a login address, stored hashed */
};

struct throttle_key {
	int		 kind;		/* THROTTLE_* */
	unsigned char	 id[16];	/* address or prefix (IPv4 as
					 * ::ffff:a.b.c.d), zeros past it */
	char		 text[ADDR_MAX + 1];	/* "192.0.2.1",
					 * "2001:db8::/64", "192.0.2.0/24",
					 * "2001:db8::/48", or the account;
					 * an account with text "": id is
					 * its stored hash (a listed entry) */
};

/* One file and the limits in force. */
struct throttle {
	const char	*path;
	unsigned	 max;		/* failures per address, 0: none */
	unsigned	 net_max;	/* failures per network, 0: none */
	unsigned	 window;	/* seconds: failures further apart
					 * start a new count */
	const char	*repaired;	/* set by a call that found the file
					 * damaged and replaced it with an
					 * empty one: what was wrong; the
					 * caller logs it and may clear it */
};

/*
 * Makes the keys of a peer as the handler logs it ("192.0.2.1:4711",
 * "[2001:db8::1]:4711", "[::ffff:192.0.2.1]:4711", without a port too):
 * *addr an IPv4 address (also when mapped into IPv6) or an IPv6 /64,
 * *net its /24 or /48.  1 when done; 0 when peer has no network address
 * ("local"): such peers are throttled by account only.
 */
int	throttle_peer(const char *peer, struct throttle_key *addr,
	    struct throttle_key *net);
/*
 * Makes the key of an address or prefix as an administrator writes it:
 * "192.0.2.1", "2001:db8::1" (its /64), "192.0.2.0/24", "192.0.2.1/32",
 * "2001:db8:1::/48", "2001:db8:1:2::/64"; host bits are ignored.  0, or
 * -1 when s is none of these.
 */
int	throttle_parse(const char *s, struct throttle_key *k);
/* Makes the key of a (normalized) login address.  0, or -1 if too long. */
int	throttle_account(const char *account, struct throttle_key *k);
/*
 * 1 when failures of a key of kind are at their limit: an address at
 * t->max, a network at t->net_max (refused), an account at
 * THROTTLE_ACCOUNT_FREE (slowed down).
 */
int	throttle_limited(const struct throttle *t, int kind,
	    unsigned failures);
/* The delay, in milliseconds, before an account with failures may have
 * its password checked: 0, then THROTTLE_DELAY_FIRST_MS doubling. */
unsigned throttle_delay_ms(unsigned failures);
/*
 * Looks the n keys up in t->path (never created here; a damaged file is
 * replaced, see t->repaired): failures[i] gets the failures of keys[i]
 * that still count at time now (the last less than t->window seconds
 * before).  Returns 1 when an address or network key is at its limit, 0
 * when none is or there is no file, -1 (*why) when the file cannot be
 * used; the caller then lets the login go on (fail open).
 */
int	throttle_check(struct throttle *t, const struct throttle_key *keys,
	    size_t n, time_t now, unsigned *failures, const char **why);
/*
 * Counts one failed login of each of the n keys at time now, all under
 * one lock, creating the file (mode 0600, made whole under a temporary
 * name and linked into place) when missing and replacing a damaged one
 * (t->repaired): a failure t->window or more seconds after the last one
 * starts a new count.  failures[i] gets keys[i]'s new count.  Also
 * writes t's limits into the file for throttle_list().  0 or -1 (*why).
 */
int	throttle_fail(struct throttle *t, const struct throttle_key *keys,
	    size_t n, time_t now, unsigned *failures, const char **why);

struct throttle_entry {
	struct throttle_key key;	/* an account's text is "" unless
					 * it was one of the names given */
	unsigned	 failures;
	time_t		 last;		/* the last failure */
	unsigned	 left;		/* seconds until it no longer counts */
};
/*
 * For usmtp-users: sets t's limits to those the handlers last wrote into
 * t->path and calls fn(arg, entry) for every entry throttled at time now
 * (refused, or an account slowed down), in file order.  An account entry
 * whose hash is that of one of the nnames names (normalized addresses)
 * gets that name as its text.  Shared lock; never creates or repairs.
 * fn returning -1 stops the walk.  0 (also when there is no file) or -1
 * (*why).
 */
int	throttle_list(struct throttle *t, time_t now,
	    const char *const *names, size_t nnames,
	    int (*fn)(void *arg, const struct throttle_entry *e), void *arg,
	    const char **why);
/*
 * Clears k's entry (an account by name, or by id with text ""), or with
 * k NULL every entry, under the handlers' exclusive lock; never creates
 * or repairs.  *cleared gets the number of entries cleared.  0 (also
 * when there is no file) or -1 (*why).
 */
int	throttle_clear(struct throttle *t, const struct throttle_key *k,
	    unsigned *cleared, const char **why);

/* proxy.c */

/*
 * The PROXY protocol header of a load balancer (HAProxy's specification,
 * versions 1 and 2), read when the handler runs with --proxy-protocol.
 */
#define PROXY_V1_MAX_BYTES	107	/* the longest v1 line, CRLF included */
#define PROXY_MAX_BYTES		(16 + 65535)	/* v2: fixed part + length */
#define PROXY_TIMEOUT_MS	5000	/* connect to the header's last byte */
#define PROXY_PEER_BYTES	56	/* "[" IPv6 text(45) "]:" port NUL */

enum {
	PROXY_BAD = -1,		/* malformed: drop the connection */
	PROXY_MORE = 0,		/* a header so far: more bytes needed */
	PROXY_DONE = 1		/* a whole, valid header */
};

struct proxy_hdr {
	size_t		 len;	/* DONE: the header's bytes; MORE: the
				 * least the whole header can be */
	int		 version;	/* 1 or 2; 0 when not yet known */
	int		 local;	/* DONE without a client address (v2 LOCAL,
				 * UNSPEC or UNIX, v1 UNKNOWN): use the
				 * connection's own peer */
	char		 peer[PROXY_PEER_BYTES];	/* the client, as the
				 * handler logs peers ("192.0.2.1:4711",
				 * "[2001:db8::1]:4711", IPv4-mapped IPv6
				 * as IPv4); "" when local */
};

/*
 * Parses the len bytes at p, which start a connection (bytes after the
 * header may follow).  Returns PROXY_DONE with h filled in, PROXY_MORE
 * when p is a valid beginning (h->len: at least this many bytes), or
 * PROXY_BAD and *why.  v2 TLVs are checked for fit and skipped; a v1
 * line is refused once 107 bytes hold no CRLF.  Pure: no I/O.
 */
int	proxy_parse(const unsigned char *p, size_t len, struct proxy_hdr *h,
	    const char **why);
/*
 * Reads the header from the socket fd, taking exactly its bytes (looked
 * at with MSG_PEEK first, so what follows stays for the frame layer),
 * waiting at most timeout_ms in all; EINTR is retried.  0 and h (as
 * PROXY_DONE), or -1 and *why: malformed, timed out, closed, or fd is
 * not a socket.  Never reads a byte past the header.
 */
int	proxy_read(int fd, int timeout_ms, struct proxy_hdr *h,
	    const char **why);

/* replay.c */

/*
 * The replay cache (usmtp(7), CAVEATS): keyed fingerprints of accepted
 * RSA key blocks in a fixed-size state file shared by all handler
 * processes under flock(2).  The REPLAY_RING most recently recorded
 * blocks are always remembered (older ones are forgotten in the order
 * recorded); a fresh block is taken for a known one with probability at
 * most REPLAY_RING / 2^64 (2^-44).  The file is REPLAY_FILE_BYTES
 * (24 MiB + 4 KiB), never more, created sparse.
 */
#define REPLAY_RING		1048576	/* blocks always remembered */
#define REPLAY_INDEX		(2 * REPLAY_RING)	/* hash slots */
#define REPLAY_FILE_BYTES	\
	    (4096 + 8 * (off_t)(REPLAY_RING + REPLAY_INDEX))

/*
 * Under one exclusive lock, tells whether block (len bytes) was
 * recorded in the file at path (*seen 1) and records it if not (*seen
 * 0); a block seen again is not recorded again.  A missing file is
 * created (mode 0600) by writing a whole new file under a temporary
 * name and linking it into place.  A damaged file -- ours by its magic,
 * size or emptiness -- is replaced the same way: then 1 and *why says
 * what was wrong (the caller logs it), *seen as usual.  Any other file
 * at path is left alone.  0 when done; -1 (*why) when nothing could be
 * told or recorded: the caller lets the session go on (fail open).
 */
int	replay_check_insert(const char *path, const void *block, size_t len,
	    int *seen, const char **why);

/* limit.c */

/*
 * Host-wide slots shared by all handler processes: one-byte locks of
 * open file descriptions (F_OFD_SETLK) on one small file, which stays
 * empty.  The kernel drops a process's locks when it exits, however it
 * dies, so a slot is never leaked.  KDF slots bound how many password
 * KDF runs go on at once; session slots count the live sessions.
 */
#define LIMIT_KDF_MAX		1024	/* KDF slots at most */
#define LIMIT_SESSIONS_MAX	65536	/* session slots at most */
#define LIMIT_STRESS_NUM	3	/* stressed: at least 3/4 of the */
#define LIMIT_STRESS_DEN	4	/* session slots in use */

struct limit {
	int	fd;		/* the slot file; -1: not open */
	int	kdf;		/* KDF slot held, -1: none */
	int	session;	/* session slot held, -1: none */
};

/*
 * Opens (creating it, mode 0600) the slot file at path; l holds no slot
 * yet.  0 or -1 (*why), l->fd then -1: the caller goes on without
 * limits (fail open).
 */
int	limit_open(struct limit *l, const char *path, const char **why);
/* Closes the file: every slot l holds is released. */
void	limit_close(struct limit *l);
/* The number of CPUs this process may run on (at least 1): --max-kdf's
 * default. */
unsigned limit_cpus(void);
/*
 * Takes one of max KDF slots (max 0: no limit, returns 1 at once),
 * waiting in sleeps of 10 ms while all are held, until deadline_ms
 * (clock_ms() time; 0: no deadline).  1 when held (or no limit), 0 when
 * the deadline passed first, -1 (*why).  Waiters are not queued: a
 * freed slot goes to whoever tries next.
 */
int	limit_kdf_take(struct limit *l, unsigned max, long deadline_ms,
	    const char **why);
/* Gives the KDF slot back, if l holds one. */
void	limit_kdf_release(struct limit *l);
/*
 * Takes a free one of max session slots, for the life of the process
 * (or until limit_close), never waiting.  1 when taken (or already
 * held), 0 when all max are held, -1 (*why).
 */
int	limit_session_take(struct limit *l, unsigned max, const char **why);
/*
 * *busy gets the number of the first max session slots held by anyone,
 * l included: a few microseconds per slot.  0 or -1 (*why).
 */
int	limit_sessions(struct limit *l, unsigned max, unsigned *busy,
	    const char **why);
/* 1 when busy of max session slots is stress (LIMIT_STRESS_NUM /
 * LIMIT_STRESS_DEN or more; max 0: never), else 0. */
int	limit_stressed(unsigned busy, unsigned max);

/* check.c */

/*
 * usmtp-handler --check: everything a session needs of the handler's
 * configuration, looked at as the user the process runs as, without
 * serving one (usmtp-handler(8), Checking the configuration).
 */
#define CHECK_CERT_WARN_SEC	(30 * 86400)	/* a certificate ending
						 * this soon: a warning */

enum check_level {
	CHECK_OK,	/* checked and fine (shown with --verbose) */
	CHECK_WARN,	/* works now, will not for long */
	CHECK_PROBLEM	/* a session would fail, or run without what was
			 * configured: exit 78 */
};

/* The settings the check looks at; NULL where not set. */
struct check_conf {
	const char	*cert, *key;		/* --cert, --key */
	const char	*noise_cert, *noise_key;	/* secure mode */
	const char	*users;
	const char	*maildir;	/* template; NULL with sendmail */
	const char	*sendmail;
	int		 recipients_any;	/* --recipients any */
	const char	*throttle_db;	/* NULL: no throttling */
	const char	*replay_db;	/* the other state files, once the */
	const char	*slot_file;	/* handler has them; NULL: none */
};

/*
 * Checks c at time now: the RSA-2048 certificate and key load, match
 * and the key is closed to group and others, the same for the X25519
 * pair when given (both or neither), the certificates' dates (expired
 * or not yet valid: a problem; ending within CHECK_CERT_WARN_SEC: a
 * warning), the users database opens (its users counted), the sendmail
 * program runs or the Maildir template's fixed part exists and every
 * user's Maildir can be written or made, --recipients any only with
 * sendmail, the throttle file's directory is writable and the file, if
 * there, is a throttle file, and the same of the other state files'
 * directories.  Changes nothing.  report(arg, level,
 * path, text) is called once per thing checked (CHECK_OK), warning and
 * problem: path is the file or directory concerned, or NULL when text
 * names it; text says what is wrong and what to do ("group or others
 * may read it; run: chmod 600 PATH").  A directory is named once however
 * many users it concerns.  Returns the number of problems.
 */
int	check_config(const struct check_conf *c, time_t now,
	    void (*report)(void *arg, enum check_level level,
	    const char *path, const char *text), void *arg);

enum check_file {
	CHECK_FILE_CERT,	/* a certificate: anyone may read it */
	CHECK_FILE_KEY,		/* a private key: the user's alone */
	CHECK_FILE_USERS,	/* the users database: the user may read it */
	CHECK_FILE_STATE	/* a state file the handler makes: its
				 * directory must exist and be writable */
};
/*
 * Why this process cannot use path, a file of kind given with
 * --option, as far as stat(2) and access checks tell (a missing
 * directory, a missing file, a closed directory on the way, an
 * unreadable file, a key group or others may read), with what to do
 * after a semicolon, in buf; NULL when nothing is wrong that way (the
 * content may still be).  For the log line of a session that failed to
 * load it.
 */
const char *check_file(const char *path, const char *option,
	    enum check_file kind, char *buf, size_t bufsz);

/* clientconf.c */

/*
 * The client's configuration file, in msmtp's syntax (msmtp(1)):
 * "key value" lines (the value is the rest of the line, blanks trimmed,
 * one pair of enclosing double quotes removed; an empty value unsets the
 * key; no "=", no trailing comments), whole-line "#" comments, a
 * "defaults" section and "account NAME [: A[,B...]]" sections.  An
 * account starts as a copy of the defaults given before it, then takes
 * every key set in A, B..., then its own; keys before the first section
 * make an account "default".  Keys: host, port (1..65535), ca, user,
 * password-file, password-command (the last of the two given wins; both
 * in one section is an error), timeout (seconds, 0..86400), dialect
 * (auto, document, reference), secure (prefer, require, off).  "~/"
 * starts the home directory in ca and password-file.
 */
#define CONF_LINE_MAX_BYTES	4096
#define CONF_FILE_MAX_BYTES	(1024 * 1024)
#define CONF_TIMEOUT_MAX_SEC	86400
#define CONF_PWCMD_TIMEOUT_SEC	120	/* suggested deadline of a command */
#define CONF_PWCMD_OUTPUT_MAX_BYTES 65536

enum conf_dialect {
	CONF_DIALECT_UNSET = 0, CONF_DIALECT_AUTO, CONF_DIALECT_DOCUMENT,
	CONF_DIALECT_REFERENCE
};
enum conf_secure {
	CONF_SECURE_UNSET = 0, CONF_SECURE_PREFER, CONF_SECURE_REQUIRE,
	CONF_SECURE_OFF
};

/* The chosen account's settings; unset ones are NULL, 0, -1 or UNSET. */
struct clientconf {
	char		*path;		/* the file read */
	char		*account;	/* NULL: no account, the defaults */
	int		 account_line;	/* its "account" line; 0: implicit */
	char		*host;
	int		 port;		/* 1..65535; 0 unset */
	char		*ca;		/* "~/" expanded */
	char		*user;
	char		*password_file;	/* "~/" expanded */
	char		*password_command;	/* at most one of the two */
	int		 timeout;	/* seconds, 0..CONF_TIMEOUT_MAX_SEC
					 * (0: none); -1 unset */
	enum conf_dialect dialect;
	enum conf_secure secure;
};

/*
 * The default file: $XDG_CONFIG_HOME/usmtp/client.conf when that is an
 * absolute path, else ~/.config/usmtp/client.conf ($HOME, else the
 * password database's home).  malloc'd; NULL and *why when no home.
 */
char	*clientconf_path(const char **why);
/*
 * Reads the file at path and fills cf with the account named account,
 * else the one named "default", else the first one, else the defaults
 * section.  The file must be the user's own and closed to group and
 * others (fstat on the open descriptor; the reason says the chmod to
 * run).  Returns 0; 1 when path does not exist, required is 0 and no
 * account was asked for (cf then holds nothing); -1 and *why, such as
 * "FILE:LINE: unknown key 'hots'", for everything else.  *why stays
 * valid until the next clientconf_* call.  Free cf with clientconf_free.
 */
int	clientconf_load(struct clientconf *cf, const char *path, int required,
	    const char *account, const char **why);
void	clientconf_free(struct clientconf *cf);
/*
 * The password: from cf->password_file, else by cf->password_command
 * (a caller that merges its command line in sets one of them).  Returns
 * 0 with the password NUL-terminated in pw (pwsz bytes) and its length
 * in *pwlen; 1 when neither is set; -1 and *why (pw wiped).  An empty
 * password is an error.
 */
int	clientconf_password(const struct clientconf *cf, int timeout_ms,
	    char *pw, size_t pwsz, size_t *pwlen, const char **why);
/*
 * The first line of the file at path, CR LF cut, read with read(2) so no
 * copy is left unwiped; the file is checked as clientconf_load checks
 * its own.  0 or -1 (*why), as clientconf_password.
 */
int	clientconf_password_file(const char *path, char *pw, size_t pwsz,
	    size_t *pwlen, const char **why);
/*
 * Runs cmd with /bin/sh -c (standard input /dev/null, standard error
 * inherited, no other descriptor) and takes the first line of what it
 * prints, CR LF cut, like msmtp's passwordeval.  The command must exit 0
 * and print a non-empty first line, and at most
 * CONF_PWCMD_OUTPUT_MAX_BYTES, within timeout_ms (<= 0: no limit;
 * CONF_PWCMD_TIMEOUT_SEC is a sensible one); else it is killed if
 * still running, always reaped, and -1 (*why gives its exit status or
 * signal).  0 or -1, as clientconf_password.
 */
int	clientconf_password_command(const char *cmd, int timeout_ms, char *pw,
	    size_t pwsz, size_t *pwlen, const char **why);

/* The values of the dialect and secure keys (and of the client's
 * --dialect and --secure), or CONF_*_UNSET for anything else. */
enum conf_dialect clientconf_dialect(const char *s);
enum conf_secure clientconf_secure(const char *s);

/* msgin.c */

/*
 * Reads a whole RFC 5322 message, as the sendmail interface gets it on
 * standard input, into what USMTP carries: the subject, From, the
 * To/Cc/Bcc addresses, one text body and the attachments, decoded.  LF
 * or CRLF line ends; a missing close delimiter is forgiven; every size
 * is bounded by the caller's limits.
 */
#define MSGIN_HEADER_LINE_MAX_BYTES 65536	/* suggested limits */
#define MSGIN_HEADER_COUNT_MAX	1000
#define MSGIN_RCPT_MAX		1000
#define MSGIN_DEPTH_MAX		16	/* multiparts within multiparts */
#define MSGIN_BOUNDARY_MAX	70	/* RFC 2046 5.1.1: longer is an error */
#define MSGIN_NAME_MAX_BYTES	255	/* an attachment's name, cut */

struct msgin_limits {
	size_t		 body_max;	/* the decoded body, bytes */
	uint64_t	 attach_max;	/* one decoded attachment, bytes */
	size_t		 attach_count_max;	/* MAX_ATTACHMENTS */
	size_t		 header_line_max;	/* one unfolded field, bytes */
	size_t		 header_count_max;	/* fields in one header */
	size_t		 rcpt_max;	/* To, Cc and Bcc addresses together */
	const char	*tmpdir;	/* NULL: $TMPDIR, else /tmp */
};

enum msgin_field { MSGIN_TO, MSGIN_CC, MSGIN_BCC };

struct msgin_rcpt {
	char		*addr;		/* the addr-spec, as written */
	enum msgin_field field;
};

struct msgin_attachment {
	int		 fd;		/* the content: unlinked file, at 0 */
	char		*name;		/* UTF-8, no directory, no controls */
	char		*type;		/* the part's, "image/png" */
	uint64_t	 size;		/* bytes */
};

/* Why msgin_read failed; the sysexits(3) status for each in brackets. */
enum msgin_error {
	MSGIN_OK = 0,
	MSGIN_EDATA,		/* the message: over a limit, malformed (65) */
	MSGIN_EIO,		/* reading the input failed (74) */
	MSGIN_ETEMP		/* memory, temporary files (75) */
};

struct msgin {
	char		*subject;	/* UTF-8, no control characters; "" */
	char		*from;		/* the first From address, or NULL */
	struct msgin_rcpt *rcpt;	/* To, Cc, Bcc; each address once */
	size_t		 nrcpt;
	char		*body;		/* bodylen bytes and a NUL; LF ends */
	size_t		 bodylen;
	char		*body_charset;	/* as declared, lower case */
	int		 body_utf8;	/* 1: the body is valid UTF-8 */
	struct msgin_attachment *att;
	size_t		 natt;
	char		**dropped;	/* header fields USMTP cannot carry */
	size_t		 ndropped;
	size_t		 alternatives_dropped;	/* unused alternatives */
	enum msgin_error error;		/* when msgin_read returns -1 */
};

/*
 * Reads the message on fd to its end.  Subject: unfolded, RFC 2047
 * words decoded (any charset iconv(3) knows; others stay as written),
 * invalid UTF-8 as U+FFFD.  Addresses: the addr-specs of the address
 * lists, display names, comments and groups dropped.  Body: the first
 * text/plain part that is not an attachment (no "attachment"
 * disposition, no file name), or the whole body of a message without
 * MIME, transfer-decoded and converted to UTF-8 from its charset when
 * iconv knows it.  Once a multipart/alternative has given the body its
 * other parts are dropped (counted in alternatives_dropped); an HTML
 * part that would have been the body is the attachment "message.html".
 * Every other leaf part with content or a file name is an attachment,
 * decoded into an unlinked file in limits->tmpdir, its name the
 * sender's (RFC 2231, RFC 2047, directories cut) or "attachment-N.EXT".
 * dropped names each top-level field other than From, To, Bcc, Subject,
 * Date, MIME-Version and Content-* (Cc is read, and named there).
 * 0, or -1 with *why and m->error (m then holds nothing else).  Free m
 * with msgin_free.
 */
int	msgin_read(int fd, const struct msgin_limits *limits, struct msgin *m,
	    const char **why);
/* Closes the attachments' files and frees everything m holds. */
void	msgin_free(struct msgin *m);

#endif /* USMTP_H */
