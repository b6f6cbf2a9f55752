/*
 * usmtp.h -- the whole internal interface of usmtp, grouped by file.
 *
 * Programs (usmtp-handler.c, usmtp-client.c, usmtp-users.c) call modules;
 * auth.c and mailer.c may call crypto.c; crypto.c calls only OpenSSL and
 * libc.  Modules never exit, print or syslog: they return -1 and set a
 * static reason (*why) for the caller to report.
 */
#ifndef USMTP_H
#define USMTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

#define USMTP_VERSION		"1.0.0"

#define ADDR_MAX		254	/* RFC 5321 path limit, bytes */
#define FRAME_MAX_BYTES		4096	/* command/reply frame, ciphertext */
#define SESSION_KEY_BYTES	32	/* AES-256 */
#define RSA_CIPHER_BYTES	256	/* RSA-2048 OAEP block */
#define MAX_ATTACHMENTS		5	/* PROTOCOL.md 6 */
#define STREAM_CHUNK_BYTES	65536	/* counted data moves in these */

/* crypto.c */

/*
 * Initialises OpenSSL with opts (OPENSSL_INIT_* flags, 0 for the usual)
 * and picks the random generator; call once, before any other crypto
 * or RAND call.
 */
void	crypto_init(uint64_t opts);

/* Frame kinds (PROTOCOL.md 2, 3). */
enum ftype {
	FT_PLAIN,	/* plaintext, ends at the first CRLFCRLF */
	FT_PLAIN_DOT,	/* plaintext, ends at the first ".\r\n\r\n" (202) */
	FT_KEY,		/* exactly RSA_CIPHER_BYTES then CRLFCRLF */
	FT_CIPHER,	/* AES blocks, CRLFCRLF at a positive multiple of 16 */
	FT_CIPHER_DOT	/* AES blocks, ".\r\n\r\n" at a positive multiple of 16 */
};

/* frame_read() results. */
enum {
	FR_OK = 0,
	FR_EOF,		/* clean end of input before the frame's first byte */
	FR_TRUNC,	/* end of input inside a frame */
	FR_TOOBIG,	/* more than max bytes buffered without a terminator */
	FR_TIMEOUT,	/* idle timeout or frame deadline passed */
	FR_BADFRAME,	/* malformed: wrong terminator, not whole blocks */
	FR_ERROR	/* read/write error or internal failure; see why */
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
	const char	*why;		/* reason for the last FR_ERROR */
};

/*
 * Sets up io over rfd/wfd with an idle timeout in seconds (0: none).
 * Returns 0, or -1 when out of memory.
 */
int	frame_init(struct frameio *io, int rfd, int wfd, int timeout_sec);
/* Wipes and frees everything io holds; io may be reused after frame_init. */
void	frame_free(struct frameio *io);
/*
 * Sets a deadline, seconds from now, that no read waits past (0 clears
 * it): the handler's login phase.  Frames already buffered are still
 * served.  Returns 1 if a deadline is set and has passed, else 0.
 */
void	frame_set_deadline(struct frameio *io, int seconds);
int	frame_deadline_passed(const struct frameio *io);
/* Switches io to AES-256-ECB with key (32 bytes); key is copied. */
int	frame_setkey(struct frameio *io, const unsigned char *key);

/*
 * Reads one frame of kind type whose payload (terminator excluded) may
 * be at most max bytes.  Pending output is flushed before any wait.
 * FT_CIPHER*: the payload is decrypted, trailing spaces are stripped and
 * *data points at the plaintext (NUL-terminated; it may contain NULs, so
 * use *len).  Other kinds: *data is the raw payload.  *data stays valid
 * until the next frame_* call.
 */
int	frame_read(struct frameio *io, enum ftype type, size_t max,
	    unsigned char **data, size_t *len);

/*
 * Reads exactly n raw bytes of counted data (PROTOCOL.md 6) and passes
 * them on in pieces of at most STREAM_CHUNK_BYTES: sink(arg, p, len)
 * returning -1 stops the read (FR_ERROR, io->why left to the caller).
 * The bytes are passed raw (still encrypted); see aes_stream below.
 */
int	frame_read_counted(struct frameio *io, size_t n,
	    int (*sink)(void *arg, const unsigned char *p, size_t len),
	    void *arg);

/*
 * Queues one frame: text plus terminator.  With a key set, FT_CIPHER and
 * FT_CIPHER_DOT pad text with 1..16 spaces (PROTOCOL.md 2, "always pad")
 * and encrypt it.  FT_KEY and FT_PLAIN* are sent as given.
 * Returns 0 or -1 (io->why).
 */
int	frame_write(struct frameio *io, enum ftype type, const void *text,
	    size_t len);
/* Queues raw bytes as they are (counted data, test harness). */
int	frame_write_raw(struct frameio *io, const void *p, size_t len);
/* Writes out everything queued.  Returns 0 or -1 (io->why). */
int	frame_flush(struct frameio *io);
/* Bytes read but not yet consumed by a frame. */
size_t	frame_pending(const struct frameio *io);

/*
 * AES-256-ECB over a stream of whole blocks, for attachment content.
 * aes_stream_update() takes any length; it keeps a partial block back.
 */
struct aes_stream {
	EVP_CIPHER_CTX	*ctx;
};
int	aes_stream_init(struct aes_stream *s, const unsigned char *key,
	    int encrypt);
/* out must hold len + 16 bytes; *outlen is set. */
int	aes_stream_update(struct aes_stream *s, const unsigned char *in,
	    size_t len, unsigned char *out, size_t *outlen);
void	aes_stream_free(struct aes_stream *s);

/* Whole-buffer AES-256-ECB without padding; len a multiple of 16. */
int	aes_ecb(const unsigned char *key, int encrypt,
	    const unsigned char *in, size_t len, unsigned char *out);

/*
 * Loads a PEM private key.  Refuses a file that group or others may read
 * (checked with fstat on the open descriptor).  Returns NULL and *why.
 */
EVP_PKEY *crypto_load_key(const char *path, const char **why);
/*
 * Reads the first PEM certificate block of path into a malloc'd string
 * ("-----BEGIN CERTIFICATE-----" .. "-----END CERTIFICATE-----\n").
 */
char	*crypto_read_cert_pem(const char *path, size_t *len, const char **why);
/* RSA-OAEP, SHA-256 and MGF1-SHA-256, empty label (PROTOCOL.md 3). */
int	crypto_rsa_decrypt(EVP_PKEY *key, const unsigned char *in,
	    size_t inlen, unsigned char *out, size_t outsz, size_t *outlen);
int	crypto_rsa_encrypt(EVP_PKEY *pub, const unsigned char *in,
	    size_t inlen, unsigned char *out, size_t outsz, size_t *outlen);
/* Fills buf with n random bytes; 0 or -1. */
int	crypto_random(void *buf, size_t n);

/* auth.c */

/*
 * Checks address syntax (PROTOCOL.md 5: local@domain, one '@', no spaces
 * or control characters, dot-separated domain labels) and writes the
 * lower-cased address to out (outsz >= ADDR_MAX + 1).  0 or -1.
 */
int	addr_normalize(const char *in, size_t inlen, char *out, size_t outsz);

struct userdb;
/* Opens the user database read-only, retrying briefly while a writer
 * holds it.  NULL and *why when missing, unreadable or corrupt. */
struct userdb *auth_open(const char *path, const char **why);
void	auth_close(struct userdb *db);
/*
 * Checks a password for a normalized address in constant time; an
 * unknown address costs the same work (a dummy hash).  Returns 1 when
 * good, 0 when wrong or unknown, -1 on a database error (*why).
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
 * AUTH_ADD creates path when missing.  addr must be normalized.  Returns
 * 0 when done; 1 when nothing changed because addr already exists
 * (AUTH_ADD) or is unknown (AUTH_PASSWD, AUTH_DEL, also when path is
 * missing); -1 (*why).
 */
int	auth_update(const char *path, enum auth_op op, const char *addr,
	    const char *hash, const char *maildir, const char **why);
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
/* Abandons the message: removes the temporary file, frees m. */
void	mail_abort(struct mail *m);

/* throttle.c */

/*
 * Failed logins per source address across connections (issue 7), in a
 * fixed-size state file shared by all handler processes under flock(2):
 * THROTTLE_SLOTS entries, each address in one of THROTTLE_PROBE slots
 * after a salted hash, the least recent one evicted when they are all
 * in use.  The file is 64 + THROTTLE_SLOTS * 32 bytes, never more.
 */
#define THROTTLE_SLOTS		4096
#define THROTTLE_PROBE		8

struct throttle_key {
	unsigned char	 addr[16];	/* IPv4 as ::ffff:a.b.c.d; IPv6 /64 */
	char		 text[52];	/* "192.0.2.1", "2001:db8::/64" */
};

/*
 * Makes the key of a peer as the handler logs it ("192.0.2.1:4711",
 * "[2001:db8::1]:4711", "[::ffff:192.0.2.1]:4711", without a port too):
 * an IPv4 address (also when mapped into IPv6) as it is, an IPv6 address
 * cut to its /64.  1 when done; 0 when peer has no network address
 * ("local"): such peers are not throttled.
 */
int	throttle_key(const char *peer, struct throttle_key *k);
/*
 * Looks k up in the file at path (never created here): *failures gets
 * its failures that still count at time now (the last less than window
 * seconds before).  Returns 1 when *failures >= max (max 0: never), 0
 * when not or when there is no file, -1 (*why) when the file cannot be
 * read or is not ours; the caller then lets the login go on (fail open).
 */
int	throttle_check(const char *path, const struct throttle_key *k,
	    unsigned max, unsigned window, time_t now, unsigned *failures,
	    const char **why);
/*
 * Counts one failed login of k at time now, creating the file (mode
 * 0600) if missing: a failure window or more seconds after the last one
 * starts a new count.  *failures gets the new count.  0 or -1 (*why).
 */
int	throttle_fail(const char *path, const struct throttle_key *k,
	    unsigned window, time_t now, unsigned *failures,
	    const char **why);

/* usmtp-handler.c, fuzz builds only (tests/fuzz) */
#ifdef USMTP_FUZZ
#include <setjmp.h>
#define USMTP_FUZZ_KEY	"usmtp-fuzz-session-key-32-bytes!"
extern jmp_buf	usmtp_fuzz_jmp;	/* longjmp'd to with exit status + 1 */
int	usmtp_handler_main(int argc, char *argv[]);
#endif

#endif /* USMTP_H */
