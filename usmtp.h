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
#include <time.h>

#include <openssl/evp.h>

#define USMTP_VERSION		"1.0.0"

#define ADDR_MAX		254	/* RFC 5321 path limit, bytes */
#define FRAME_MAX_BYTES		4096	/* command/reply frame, ciphertext */
#define SESSION_KEY_BYTES	32	/* AES-256 */
#define RSA_CIPHER_BYTES	256	/* RSA-2048 OAEP block */
#define MAX_ATTACHMENTS		5	/* PROTOCOL.md 6 */
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
 * Checks address syntax (usmtp(7), Login: local@domain, one '@', no spaces
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

struct mail_conf {
	const char	*maildir;	/* template: %u %d %a %%, or NULL */
	const char	*sendmail;	/* path, or NULL for Maildir delivery */
	int		 sendmail_timeout;	/* seconds */
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
int	mail_attach_end(struct mail *m, const char **why);
/*
 * Delivers: Maildir rename into new/ (after fsync), or sendmail run and
 * its exit status checked.  Frees m whatever happens.  where gets a short
 * description of the destination for the log; *size the message size.
 * 0 when delivered, -1 (*why) when nothing was delivered.
 */
int	mail_commit(struct mail *m, char *where, size_t wheresz,
	    off_t *size, const char **why);
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

/* usmtp-handler.c, fuzz builds only (tests/fuzz) */
#ifdef USMTP_FUZZ
#include <setjmp.h>
#define USMTP_FUZZ_KEY	"usmtp-fuzz-session-key-32-bytes!"
extern jmp_buf	usmtp_fuzz_jmp;	/* longjmp'd to with exit status + 1 */
int	usmtp_handler_main(int argc, char *argv[]);
#endif

#endif /* USMTP_H */
