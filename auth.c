/*
 * auth.c -- the GDBM user database: address syntax (usmtp(7), Login), the
 * scrypt password record, the parameter record unknown addresses are
 * checked against (so they cost what the newest user's check costs),
 * read-only opens for the handler and copy-and-rename updates for
 * usmtp-users.  Replies, logging and prompting for passwords are left to
 * the programs.
 */

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "usmtp.h"

#define SCRYPT_R		8
#define SCRYPT_P		1
#define SCRYPT_R_MAX		32
#define SCRYPT_P_MAX		16
#define SCRYPT_MEM_MAX_BYTES	((uint64_t)1 << 30)
#define SALT_BYTES		16
#define HASH_BYTES		32
#define SALT_BYTES_MIN		8
#define HASH_BYTES_MIN		16
#define KDF_BYTES_MAX		64
#define OPEN_WAIT_MS		2000	/* readers wait this long */
#define OPEN_RETRY_MS		20
#define DB_MODE			0640
#define WHY_BYTES		512

#define STR2(x)			#x
#define STR(x)			STR2(x)

/*
 * The parameter record's key.  No address has an empty local part, so it
 * can never be a user's.
 */
#define PARAMS_KEY		"@params"

/* Verified against for unknown addresses when a database has no
 * parameter record (made before there was one). */
static const char default_dummy[] =
    "$scrypt$ln=" STR(AUTH_COST_DEFAULT) ",r=8,p=1$"
    "dXNtdHAgZHVtbXkgc2FsdA==$"
    "dXNtdHAgZHVtbXkgaGFzaDogbmV2ZXIgYSBtYXRjaCE=";

struct userdb {
	GDBM_FILE	 dbf;
	char		*path;
	char		 dummy[AUTH_HASH_MAX + 1];	/* unknown users' */
	const char	*bad;		/* set: every check fails, this is why */
};

/* A password record taken apart. */
struct scrypt_rec {
	unsigned long	 ln, r, p;
	unsigned char	 salt[KDF_BYTES_MAX], hash[KDF_BYTES_MAX];
	size_t		 saltlen, hashlen;
};

/* A change in progress (auth_update): copy the old file into a new one. */
struct dbwrite {
	GDBM_FILE	 old, new;
	int		 lockfd, fd;
	char		 lockpath[4096], tmppath[4096];
};

static char whybuf[WHY_BYTES];

static const char *setwhy(const char *, const char *);
static const char *gdbm_why(const char *, int, int);
static int	dir_missing(const char *, char *, size_t);
static const char *missing_why(const char *);
static const char *open_why(const char *, int, int);
static GDBM_FILE db_open_read(const char *, int *, const char **);
static int	db_fetch(GDBM_FILE, const char *, const char *, char *,
		    size_t, const char **);
static int	split_record(char *, char **);
static int	parse_uint(const char **, unsigned long, unsigned long *);
static int	b64_decode(const char *, size_t, unsigned char *, size_t,
		    size_t *);
static int	parse_record(const char *, struct scrypt_rec *, const char **);
static int	dummy_record(const struct scrypt_rec *, char *, size_t,
		    const char **);
static int	load_params(struct userdb *, const char **);
static int	is_atext(int);
static int	check_maildir(const char *);
static int	db_walk(GDBM_FILE, const char *,
		    int (*)(void *, datum, const char **), void *,
		    const char **);
static int	each_user(void *, datum, const char **);
static int	copy_one(void *, datum, const char **);
static int	copy_db(GDBM_FILE, GDBM_FILE, const char *, int,
		    const char **);
static int	check_change(enum auth_op, const char *, const char *,
		    const char *, const char **);
static int	wr_lock(struct dbwrite *, const char *, const char **);
static int	wr_begin(struct dbwrite *, const char *, const char **);
static int	store_user(struct dbwrite *, const char *, const char *,
		    const char *, const char **);
static int	store_params(struct dbwrite *, const struct scrypt_rec *,
		    const char **);
static int	wr_commit(struct dbwrite *, const char *, const char **);
static void	wr_end(struct dbwrite *);

/* Makes *why read "what: detail", or just "what" when detail is NULL. */
static const char *
setwhy(const char *what, const char *detail)
{
	int n;

	if (detail != NULL)
		n = snprintf(whybuf, sizeof(whybuf), "%s: %s", what, detail);
	else
		n = snprintf(whybuf, sizeof(whybuf), "%s", what);
	if (n < 0)
		return what;
	return whybuf;	/* truncated at worst, still NUL-terminated */
}

/* 1 when the directory path lies in does not exist (named in dir). */
static int
dir_missing(const char *path, char *dir, size_t dirsz)
{
	const char	*slash = strrchr(path, '/');
	struct stat	 st;
	int		 n;

	if (slash == NULL || slash == path)
		return 0;
	n = snprintf(dir, dirsz, "%.*s", (int)(slash - path), path);
	return n > 0 && (size_t)n < dirsz && stat(dir, &st) == -1 &&
	    errno == ENOENT;
}

/*
 * path does not exist: "PATH: no such file (...)", or, when its
 * directory is missing too, that directory is named, since making the
 * file alone will not do.
 */
static const char *
missing_why(const char *path)
{
	char	dir[4096], detail[8300];

	if (dir_missing(path, dir, sizeof(dir))) {
		snprintf(detail, sizeof(detail), "the directory %s does not "
		    "exist; create it first (install -d %s)", dir, dir);
		return setwhy(path, detail);
	}
	return setwhy(path, "no such file (usmtp-users init makes an "
	    "empty users database)");
}

/*
 * The reason for a failed gdbm_open: a file that GDBM cannot read as a
 * database is said to be no users database (GDBM's own words follow),
 * a missing directory is named; otherwise as gdbm_why().
 */
static const char *
open_why(const char *path, int gerr, int serr)
{
	char	detail[256];

	if (gerr == GDBM_FILE_OPEN_ERROR && serr == ENOENT)
		return missing_why(path);
	if (gdbm_check_syserr(gerr) && serr == EISDIR)
		return setwhy(path, "a directory, not a users database");
	if (gdbm_check_syserr(gerr) && serr == EACCES)
		return setwhy(path, "permission denied: this user may not "
		    "read it (the handler's user needs read access, e.g. "
		    "group usmtp and mode 0640)");
	if (gdbm_check_syserr(gerr) || gerr == GDBM_CANT_BE_READER ||
	    gerr == GDBM_MALLOC_ERROR)
		return gdbm_why(path, gerr, serr);
	if (gerr == GDBM_EMPTY_DATABASE)
		return setwhy(path, "an empty file, not a users database; "
		    "remove it and run usmtp-users init");
	snprintf(detail, sizeof(detail), "%s (GDBM: %s); check the path, "
	    "or move the file away and run usmtp-users init",
	    gerr == GDBM_BAD_MAGIC_NUMBER ? "not a users database" :
	    "not a users database, or a damaged one", gdbm_strerror(gerr));
	return setwhy(path, detail);
}

/* The reason for a failed gdbm call: errno when GDBM says it is one. */
static const char *
gdbm_why(const char *path, int gerr, int serr)
{
	if (gerr == GDBM_FILE_OPEN_ERROR && serr == ENOENT)
		return setwhy(path, strerror(serr));
	if (gdbm_check_syserr(gerr) && serr != 0) {
		char detail[256];
		int n;

		n = snprintf(detail, sizeof(detail), "%s: %s",
		    gdbm_strerror(gerr), strerror(serr));
		return setwhy(path, n < 0 ? gdbm_strerror(gerr) : detail);
	}
	return setwhy(path, gdbm_strerror(gerr));
}

/*
 * GDBM_READER never creates the file (it opens O_RDONLY).  A reader's
 * shared lock fails while some gdbm writer holds the file: we never write
 * the live file ourselves (copy and rename), but gdbmtool or an older
 * tool might, so wait a little.
 */
static GDBM_FILE
db_open_read(const char *path, int *missing, const char **why)
{
	struct timespec ts = { 0, OPEN_RETRY_MS * 1000000L };
	GDBM_FILE dbf;
	int waited, gerr, serr;

	for (waited = 0;; waited += OPEN_RETRY_MS) {
		errno = 0;
		dbf = gdbm_open(path, 0, GDBM_READER | GDBM_CLOEXEC, 0, NULL);
		if (dbf != NULL)
			return dbf;
		gerr = gdbm_errno;
		serr = errno;
		if ((gerr != GDBM_CANT_BE_READER &&
		    !(serr == EAGAIN || serr == EWOULDBLOCK)) ||
		    waited >= OPEN_WAIT_MS)
			break;
		nanosleep(&ts, NULL);
	}
	*missing = gerr == GDBM_FILE_OPEN_ERROR && serr == ENOENT;
	if (gerr == GDBM_CANT_BE_READER)
		*why = setwhy(path, "locked by a writer for more than 2 s");
	else
		*why = open_why(path, gerr, serr);
	return NULL;
}

/*
 * Copies the record of addr into rec (NUL-terminated).  1 found, 0 not
 * found, -1 (*why) on a read error or a record too long to be ours.
 */
static int
db_fetch(GDBM_FILE dbf, const char *path, const char *addr, char *rec,
    size_t recsz, const char **why)
{
	datum key, val;
	int rv = -1;

	key.dptr = (char *)(uintptr_t)addr;	/* gdbm does not write keys */
	key.dsize = (int)strlen(addr);
	val = gdbm_fetch(dbf, key);
	if (val.dptr == NULL) {
		if (gdbm_errno == GDBM_ITEM_NOT_FOUND)
			return 0;
		*why = gdbm_why(path, gdbm_errno, errno);
		return -1;
	}
	if (val.dsize <= 0 || (size_t)val.dsize >= recsz ||
	    memchr(val.dptr, '\0', (size_t)val.dsize) != NULL) {
		*why = setwhy(path, "malformed user record");
		goto out;
	}
	memcpy(rec, val.dptr, (size_t)val.dsize);
	rec[val.dsize] = '\0';
	rv = 1;
out:
	OPENSSL_cleanse(val.dptr, (size_t)(val.dsize > 0 ? val.dsize : 0));
	free(val.dptr);
	return rv;
}

/* Record value: HASH or HASH TAB MAILDIR.  Cuts rec; 0 or -1. */
static int
split_record(char *rec, char **maildir)
{
	char *tab;

	if ((tab = strchr(rec, '\t')) == NULL) {
		*maildir = rec + strlen(rec);
		return 0;
	}
	*tab = '\0';
	*maildir = tab + 1;
	return check_maildir(*maildir);
}

/* Reads decimal digits at *p (no sign, no leading zero) up to max. */
static int
parse_uint(const char **p, unsigned long max, unsigned long *v)
{
	const char *s = *p;
	unsigned long n = 0;

	if (*s < '0' || *s > '9' || (*s == '0' && s[1] >= '0' && s[1] <= '9'))
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		n = n * 10 + (unsigned long)(*s - '0');
		if (n > max)
			return -1;
	}
	*v = n;
	*p = s;
	return 0;
}

/* Standard base64 with padding, exactly len characters.  0 or -1. */
static int
b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz,
    size_t *outlen)
{
	unsigned char tmp[KDF_BYTES_MAX + 3];
	size_t i, pad = 0;
	int n, rv = -1;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(tmp))
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '=') {
			if (i < len - 2)
				return -1;
			pad++;
		} else if (pad > 0 || !((c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '/'))
			return -1;
	}
	n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)n < pad || (size_t)n - pad > outsz)
		goto out;
	*outlen = (size_t)n - pad;
	memcpy(out, tmp, *outlen);
	rv = 0;
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return rv;
}

int
auth_hash(const char *pw, size_t pwlen, int cost, char *out, size_t outsz,
    const char **why)
{
	unsigned char salt[SALT_BYTES], dk[HASH_BYTES];
	char salt64[4 * ((SALT_BYTES + 2) / 3) + 1];
	char dk64[4 * ((HASH_BYTES + 2) / 3) + 1];
	int n, rv = -1;

	if (cost < AUTH_COST_MIN || cost > AUTH_COST_MAX) {
		*why = "scrypt cost out of range";
		goto out;
	}
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*why = "no random bytes for the salt";
		goto out;
	}
	if (EVP_PBE_scrypt(pw, pwlen, salt, sizeof(salt), (uint64_t)1 << cost,
	    SCRYPT_R, SCRYPT_P, SCRYPT_MEM_MAX_BYTES, dk, sizeof(dk)) != 1) {
		*why = "scrypt failed";
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof(salt));
	EVP_EncodeBlock((unsigned char *)dk64, dk, sizeof(dk));
	n = snprintf(out, outsz, "$scrypt$ln=%d,r=%d,p=%d$%s$%s", cost,
	    SCRYPT_R, SCRYPT_P, salt64, dk64);
	if (n < 0 || (size_t)n >= outsz) {
		*why = "password record buffer too small";
		goto out;
	}
	rv = 0;
out:
	OPENSSL_cleanse(dk, sizeof(dk));
	OPENSSL_cleanse(dk64, sizeof(dk64));
	return rv;
}

/*
 * Takes "$scrypt$ln=COST,r=R,p=P$SALT$HASH" apart into *sr.  0, or -1
 * (*why) when it is malformed or would need more memory than we allow.
 */
static int
parse_record(const char *record, struct scrypt_rec *sr, const char **why)
{
	const char *s = record, *dollar;
	uint64_t mem;

	*why = "malformed password record";
	if (strncmp(s, "$scrypt$ln=", 11) != 0)
		return -1;
	s += 11;
	if (parse_uint(&s, AUTH_COST_MAX, &sr->ln) == -1 ||
	    sr->ln < AUTH_COST_MIN || strncmp(s, ",r=", 3) != 0)
		return -1;
	s += 3;
	if (parse_uint(&s, SCRYPT_R_MAX, &sr->r) == -1 || sr->r == 0 ||
	    strncmp(s, ",p=", 3) != 0)
		return -1;
	s += 3;
	if (parse_uint(&s, SCRYPT_P_MAX, &sr->p) == -1 || sr->p == 0 ||
	    *s != '$')
		return -1;
	s++;
	if ((dollar = strchr(s, '$')) == NULL ||
	    b64_decode(s, (size_t)(dollar - s), sr->salt, sizeof(sr->salt),
	    &sr->saltlen) == -1 || sr->saltlen < SALT_BYTES_MIN)
		return -1;
	s = dollar + 1;
	if (b64_decode(s, strlen(s), sr->hash, sizeof(sr->hash),
	    &sr->hashlen) == -1 || sr->hashlen < HASH_BYTES_MIN)
		return -1;
	/* OpenSSL needs 128 r (N + 2) + 128 r p bytes */
	mem = 128 * (uint64_t)sr->r * (((uint64_t)1 << sr->ln) + 2 + sr->p);
	if (mem > SCRYPT_MEM_MAX_BYTES) {
		*why = "password record asks for too much memory";
		return -1;
	}
	return 0;
}

int
auth_verify(const char *record, const char *pw, size_t pwlen,
    const char **why)
{
	struct scrypt_rec sr;
	unsigned char got[KDF_BYTES_MAX];
	int rv = -1;

	if (parse_record(record, &sr, why) == -1)
		goto out;
	if (EVP_PBE_scrypt(pw, pwlen, sr.salt, sr.saltlen,
	    (uint64_t)1 << sr.ln, sr.r, sr.p, SCRYPT_MEM_MAX_BYTES, got,
	    sr.hashlen) != 1) {
		*why = "scrypt failed";
		goto out;
	}
	rv = CRYPTO_memcmp(got, sr.hash, sr.hashlen) == 0;
out:
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(&sr, sizeof(sr));
	return rv;
}

/*
 * A record with model's parameters and salt and hash lengths, but a
 * random salt and a random "hash" that no password gives: checking a
 * password against it costs what checking one against model costs.
 */
static int
dummy_record(const struct scrypt_rec *model, char *out, size_t outsz,
    const char **why)
{
	unsigned char rnd[2 * KDF_BYTES_MAX];
	char salt64[4 * ((KDF_BYTES_MAX + 2) / 3) + 1];
	char hash64[4 * ((KDF_BYTES_MAX + 2) / 3) + 1];
	int n;

	if (RAND_bytes(rnd, (int)(model->saltlen + model->hashlen)) != 1) {
		*why = "no random bytes for the parameter record";
		return -1;
	}
	EVP_EncodeBlock((unsigned char *)salt64, rnd, (int)model->saltlen);
	EVP_EncodeBlock((unsigned char *)hash64, rnd + model->saltlen,
	    (int)model->hashlen);
	n = snprintf(out, outsz, "$scrypt$ln=%lu,r=%lu,p=%lu$%s$%s",
	    model->ln, model->r, model->p, salt64, hash64);
	if (n < 0 || (size_t)n >= outsz) {
		*why = "parameter record too long";
		return -1;
	}
	return 0;
}

/* RFC 5322 atext, without '/': addresses become Maildir path parts. */
static int
is_atext(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-=?^_`{|}~", c) != NULL;
}

int
addr_normalize(const char *in, size_t inlen, char *out, size_t outsz)
{
	const char *at, *dom, *end = in + inlen;
	size_t i, label;

	if (in == NULL || inlen == 0 || inlen > ADDR_MAX || outsz < inlen + 1)
		return -1;
	if ((at = memchr(in, '@', inlen)) == NULL ||
	    memchr(at + 1, '@', (size_t)(end - at - 1)) != NULL)
		return -1;
	/* local part: dot-atom, no leading, trailing or double dot */
	if (at == in || in[0] == '.' || at[-1] == '.')
		return -1;
	for (i = 0; in + i < at; i++) {
		if (in[i] == '.') {
			if (in[i + 1] == '.')
				return -1;
		} else if (!is_atext((unsigned char)in[i]))
			return -1;
	}
	/* domain: labels of [A-Za-z0-9-], 1..63 bytes, no '-' at the ends */
	dom = at + 1;
	if (dom == end)
		return -1;
	label = 0;
	for (i = 0; dom + i < end; i++) {
		unsigned char c = (unsigned char)dom[i];

		if (c == '.') {
			if (label == 0 || dom[i - 1] == '-')
				return -1;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return -1;
		if ((label == 0 && c == '-') || ++label > 63)
			return -1;
	}
	if (label == 0 || end[-1] == '-')
		return -1;
	for (i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[inlen] = '\0';
	return 0;
}

/* An absolute path without control characters, at most AUTH_MAILDIR_MAX. */
static int
check_maildir(const char *dir)
{
	size_t i, len = strlen(dir);

	if (len == 0 || len > AUTH_MAILDIR_MAX || dir[0] != '/')
		return -1;
	for (i = 0; i < len; i++)
		if ((unsigned char)dir[i] < 0x20 || dir[i] == 0x7f)
			return -1;
	return 0;
}

int
auth_maildir_ok(const char *dir)
{
	return check_maildir(dir) == 0;
}

struct userdb *
auth_open(const char *path, const char **why)
{
	struct userdb *db;
	int missing;

	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    (db->path = strdup(path)) == NULL) {
		free(db);
		*why = "out of memory";
		return NULL;
	}
	if ((db->dbf = db_open_read(path, &missing, why)) == NULL) {
		free(db->path);
		free(db);
		return NULL;
	}
	if (load_params(db, why) == -1) {
		auth_close(db);
		return NULL;
	}
	return db;
}

/*
 * Reads the parameter record into db->dummy, or takes the built-in one
 * when there is none.  A malformed one does not fail the open (list,
 * lookups and passwd, which rewrites it, still work) but every check:
 * known and unknown addresses alike, so that nothing tells them apart.
 * 0, or -1 (*why) on a read error.
 */
static int
load_params(struct userdb *db, const char **why)
{
	char rec[AUTH_RECORD_MAX + 1];
	struct scrypt_rec sr;
	const char *perr;
	int found;

	found = db_fetch(db->dbf, db->path, PARAMS_KEY, rec, sizeof(rec), why);
	if (found == -1)
		return -1;
	if (found == 0)
		snprintf(rec, sizeof(rec), "%s", default_dummy);
	if (strlen(rec) >= sizeof(db->dummy) ||
	    parse_record(rec, &sr, &perr) == -1)
		db->bad = "malformed parameter record " PARAMS_KEY
		    " (usmtp-users passwd rewrites it)";
	else
		memcpy(db->dummy, rec, strlen(rec) + 1);
	OPENSSL_cleanse(&sr, sizeof(sr));
	OPENSSL_cleanse(rec, sizeof(rec));
	return 0;
}

int
auth_usable(const struct userdb *db, const char **why)
{
	if (db->bad == NULL)
		return 0;
	*why = setwhy(db->path, db->bad);
	return -1;
}

void
auth_close(struct userdb *db)
{
	if (db == NULL)
		return;
	gdbm_close(db->dbf);
	free(db->path);
	free(db);
}

int
auth_check(struct userdb *db, const char *addr, const char *pw,
    size_t pwlen, const char **why)
{
	char rec[AUTH_RECORD_MAX + 1], *maildir;
	const char *hash = db->dummy;
	int found = 0, ok, rv = -1;

	rec[0] = '\0';
	if (db->bad != NULL) {
		*why = setwhy(db->path, db->bad);
		goto out;
	}
	if (strcmp(addr, PARAMS_KEY) != 0 && (found = db_fetch(db->dbf,
	    db->path, addr, rec, sizeof(rec), why)) == -1)
		goto out;
	if (found == 1) {
		if (split_record(rec, &maildir) == -1) {
			*why = setwhy(db->path, "malformed user record");
			goto out;
		}
		hash = rec;
	}
	/*
	 * usmtp(7), Login: an unknown address costs the same work.  The
	 * dummy has the parameters of the newest record written, so it
	 * costs what a check of this database's users costs.
	 */
	if ((ok = auth_verify(hash, pw, pwlen, why)) == -1)
		goto out;
	/*
	 * scrypt keys HMAC with the password, and HMAC pads keys with zero
	 * bytes: "pw" and "pw\0" give the same hash.  No stored password
	 * has a NUL (usmtp-users refuses them), so one never matches.
	 */
	rv = found == 1 && ok == 1 && memchr(pw, '\0', pwlen) == NULL;
out:
	OPENSSL_cleanse(rec, sizeof(rec));
	return rv;
}

int
auth_lookup(struct userdb *db, const char *addr, char *maildir,
    size_t maildirsz, const char **why)
{
	char rec[AUTH_RECORD_MAX + 1], *dir;
	int found, n, rv = -1;

	rec[0] = '\0';
	if (strcmp(addr, PARAMS_KEY) == 0)
		return 0;	/* never a user */
	if ((found = db_fetch(db->dbf, db->path, addr, rec, sizeof(rec),
	    why)) != 1) {
		rv = found;
		goto out;
	}
	if (split_record(rec, &dir) == -1) {
		*why = setwhy(db->path, "malformed user record");
		goto out;
	}
	n = snprintf(maildir, maildirsz, "%s", dir);
	if (n < 0 || (size_t)n >= maildirsz) {
		*why = setwhy(db->path, "user's Maildir path too long");
		goto out;
	}
	rv = 1;
out:
	OPENSSL_cleanse(rec, sizeof(rec));
	return rv;
}

/*
 * Calls fn(arg, key, why) for every key of dbf in database order; fn
 * returning -1 stops the walk with its *why.  0, or -1 (*why; a read
 * error is named after name).
 */
static int
db_walk(GDBM_FILE dbf, const char *name,
    int (*fn)(void *, datum, const char **), void *arg, const char **why)
{
	datum	key, next;
	int	rv = -1;

	key = gdbm_firstkey(dbf);
	while (key.dptr != NULL) {
		if (fn(arg, key, why) == -1)
			goto out;
		next = gdbm_nextkey(dbf, key);
		free(key.dptr);
		key = next;
	}
	if (gdbm_errno != GDBM_ITEM_NOT_FOUND) {
		*why = gdbm_why(name, gdbm_errno, errno);
		goto out;
	}
	rv = 0;
out:
	free(key.dptr);
	return rv;
}

/* auth_foreach()'s walk: one user, its record split, to the caller. */
struct each {
	struct userdb	 *db;
	int		(*fn)(void *, const char *, const char *);
	void		 *arg;
	char		  rec[AUTH_RECORD_MAX + 1];
};

static int
each_user(void *arg, datum key, const char **why)
{
	struct each	*e = arg;
	char		 addr[ADDR_MAX + 1], *dir;
	int		 found;

	if (key.dsize <= 0 || (size_t)key.dsize > ADDR_MAX) {
		*why = setwhy(e->db->path, "malformed key");
		return -1;
	}
	memcpy(addr, key.dptr, (size_t)key.dsize);
	addr[key.dsize] = '\0';
	if (strcmp(addr, PARAMS_KEY) == 0)
		return 0;	/* not a user */
	found = db_fetch(e->db->dbf, e->db->path, addr, e->rec,
	    sizeof(e->rec), why);
	if (found == -1)
		return -1;
	if (found == 0 || split_record(e->rec, &dir) == -1) {
		*why = setwhy(e->db->path, "malformed user record");
		return -1;
	}
	if (e->fn(e->arg, addr, dir) == -1) {
		*why = "stopped";
		return -1;
	}
	return 0;
}

int
auth_foreach(struct userdb *db,
    int (*fn)(void *arg, const char *addr, const char *maildir), void *arg,
    const char **why)
{
	struct each	e;
	int		rv;

	e.db = db;
	e.fn = fn;
	e.arg = arg;
	rv = db_walk(db->dbf, db->path, each_user, &e, why);
	OPENSSL_cleanse(e.rec, sizeof(e.rec));
	return rv;
}

/* copy_db()'s walk: every record but skip's (and the parameters'). */
struct copy {
	GDBM_FILE	 to;
	GDBM_FILE	 from;
	const char	*skip;
	int		 noparams;
};

static int
copy_one(void *arg, datum key, const char **why)
{
	struct copy	*c = arg;
	datum		 val;
	size_t		 skiplen = strlen(c->skip), plen = strlen(PARAMS_KEY);
	int		 r;

	if (((size_t)key.dsize == skiplen &&
	    memcmp(key.dptr, c->skip, skiplen) == 0) ||
	    (c->noparams && (size_t)key.dsize == plen &&
	    memcmp(key.dptr, PARAMS_KEY, plen) == 0))
		return 0;
	if ((val = gdbm_fetch(c->from, key)).dptr == NULL) {
		*why = gdbm_why("reading the database", gdbm_errno, errno);
		return -1;
	}
	r = gdbm_store(c->to, key, val, GDBM_INSERT);
	free(val.dptr);
	if (r != 0) {
		*why = gdbm_why("writing the new database", gdbm_errno, errno);
		return -1;
	}
	return 0;
}

/*
 * Copies every record of from (NULL: none) into to, except skip's and,
 * when noparams is set, the parameter record.
 */
static int
copy_db(GDBM_FILE from, GDBM_FILE to, const char *skip, int noparams,
    const char **why)
{
	struct copy	c;

	if (from == NULL)
		return 0;
	c.from = from;
	c.to = to;
	c.skip = skip;
	c.noparams = noparams;
	return db_walk(from, "reading the database", copy_one, &c, why);
}

/* The arguments of a change, checked before anything is locked. */
static int
check_change(enum auth_op op, const char *addr, const char *hash,
    const char *maildir, const char **why)
{
	struct scrypt_rec sr;
	const char *perr;
	int bad;

	if (op != AUTH_DEL) {
		bad = hash == NULL || strchr(hash, '\t') != NULL ||
		    strlen(hash) > AUTH_HASH_MAX ||
		    parse_record(hash, &sr, &perr) == -1;
		OPENSSL_cleanse(&sr, sizeof(sr));
		if (bad) {
			*why = "bad password record";
			return -1;
		}
	}
	if (strcmp(addr, PARAMS_KEY) == 0) {
		*why = "not an address";
		return -1;
	}
	if (op == AUTH_ADD && maildir != NULL && *maildir != '\0' &&
	    check_maildir(maildir) == -1) {
		*why = "bad Maildir path (absolute, no control characters)";
		return -1;
	}
	return 0;
}

/*
 * Takes the writers' lock, path.lock: one writer at a time.  Readers
 * never take it.  0 or -1 (*why).
 */
static int
wr_lock(struct dbwrite *w, const char *path, const char **why)
{
	char dir[4096];
	int n;

	n = snprintf(w->lockpath, sizeof(w->lockpath), "%s.lock", path);
	if (n < 0 || (size_t)n >= sizeof(w->lockpath)) {
		*why = setwhy(path, "path too long");
		return -1;
	}
	w->lockfd = open(w->lockpath, O_RDWR | O_CREAT | O_CLOEXEC, DB_MODE);
	if (w->lockfd == -1) {
		n = errno;
		if (n == ENOENT && dir_missing(path, dir, sizeof(dir))) {
			*why = missing_why(path);
			return -1;
		}
		*why = setwhy(w->lockpath, n == EACCES ? "permission denied: "
		    "changes need write access to the database's directory "
		    "(run usmtp-users as root, or as the owner of the "
		    "directory)" : strerror(n));
		return -1;
	}
	while (flock(w->lockfd, LOCK_EX) == -1) {
		if (errno != EINTR) {
			*why = setwhy(w->lockpath, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * Starts the new file "path.tmpXXXXXX", beside the old one so that
 * rename() replaces it: mode 0640, the old file's owner and group when
 * we may (root may), opened with gdbm as w->new.  0 or -1 (*why).
 */
static int
wr_begin(struct dbwrite *w, const char *path, const char **why)
{
	struct stat st;
	int gfd, n;

	n = snprintf(w->tmppath, sizeof(w->tmppath), "%s.tmpXXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(w->tmppath)) {
		w->tmppath[0] = '\0';
		*why = setwhy(path, "path too long");
		return -1;
	}
	if ((w->fd = mkstemp(w->tmppath)) == -1) {
		*why = setwhy(w->tmppath, strerror(errno));
		w->tmppath[0] = '\0';
		return -1;
	}
	if (fcntl(w->fd, F_SETFD, FD_CLOEXEC) == -1 ||
	    fchmod(w->fd, DB_MODE) == -1) {
		*why = setwhy(w->tmppath, strerror(errno));
		return -1;
	}
	if (w->old != NULL && stat(path, &st) == 0 &&
	    fchown(w->fd, st.st_uid, st.st_gid) == -1 &&
	    fchown(w->fd, (uid_t)-1, st.st_gid) == -1) {
		/* not permitted: the new file belongs to the caller */
	}
	if ((gfd = dup(w->fd)) == -1) {
		*why = setwhy(w->tmppath, strerror(errno));
		return -1;
	}
	w->new = gdbm_fd_open(gfd, w->tmppath, 0,
	    GDBM_NEWDB | GDBM_NOLOCK | GDBM_CLOEXEC | GDBM_CLOERROR, NULL);
	if (w->new == NULL) {
		*why = gdbm_why(w->tmppath, gdbm_errno, errno);
		return -1;
	}
	return 0;
}

/* Stores addr's record: hash, and a TAB and maildir when there is one. */
static int
store_user(struct dbwrite *w, const char *addr, const char *hash,
    const char *maildir, const char **why)
{
	char value[AUTH_RECORD_MAX + 1];
	datum key, val;
	int n, rv = -1;

	if (maildir != NULL && *maildir != '\0')
		n = snprintf(value, sizeof(value), "%s\t%s", hash, maildir);
	else
		n = snprintf(value, sizeof(value), "%s", hash);
	if (n < 0 || (size_t)n >= sizeof(value)) {
		*why = "user record too long";
		goto out;
	}
	key.dptr = (char *)(uintptr_t)addr;
	key.dsize = (int)strlen(addr);
	val.dptr = value;
	val.dsize = n;
	if (gdbm_store(w->new, key, val, GDBM_INSERT) != 0) {
		*why = gdbm_why(w->tmppath, gdbm_errno, errno);
		goto out;
	}
	rv = 0;
out:
	OPENSSL_cleanse(value, sizeof(value));
	return rv;
}

/*
 * Stores the parameter record: a dummy with model's parameters, which
 * unknown addresses are checked against.
 */
static int
store_params(struct dbwrite *w, const struct scrypt_rec *model,
    const char **why)
{
	char value[AUTH_HASH_MAX + 1];
	datum key, val;

	if (dummy_record(model, value, sizeof(value), why) == -1)
		return -1;
	key.dptr = (char *)(uintptr_t)PARAMS_KEY;
	key.dsize = (int)strlen(PARAMS_KEY);
	val.dptr = value;
	val.dsize = (int)strlen(value);
	if (gdbm_store(w->new, key, val, GDBM_REPLACE) != 0) {
		*why = gdbm_why(w->tmppath, gdbm_errno, errno);
		return -1;
	}
	return 0;
}

/*
 * Puts the new file in place: gdbm sync and close, fsync, rename over
 * path, fsync of the directory.  0 or -1 (*why).
 */
static int
wr_commit(struct dbwrite *w, const char *path, const char **why)
{
	int n;

	if (gdbm_sync(w->new) != 0) {
		*why = gdbm_why(w->tmppath, gdbm_errno, errno);
		return -1;
	}
	n = gdbm_close(w->new);
	w->new = NULL;
	if (n != 0) {
		*why = gdbm_why(w->tmppath, gdbm_errno, errno);
		return -1;
	}
	n = fsync(w->fd);
	if (close(w->fd) == -1 || n == -1) {
		w->fd = -1;
		*why = setwhy(w->tmppath, strerror(errno));
		return -1;
	}
	w->fd = -1;
	if (rename(w->tmppath, path) == -1) {
		*why = setwhy(path, strerror(errno));
		return -1;
	}
	w->tmppath[0] = '\0';
	if (sync_dir(path) == -1) {
		*why = setwhy(path, "cannot fsync the directory");
		return -1;
	}
	return 0;
}

/* Undoes what is left of a change: the new file, the old, the lock. */
static void
wr_end(struct dbwrite *w)
{
	if (w->new != NULL)
		gdbm_close(w->new);
	if (w->fd != -1)
		close(w->fd);
	if (w->tmppath[0] != '\0')
		unlink(w->tmppath);
	if (w->old != NULL)
		gdbm_close(w->old);
	if (w->lockfd != -1)
		close(w->lockfd);	/* releases the flock */
}

int
auth_update(const char *path, enum auth_op op, const char *addr,
    const char *hash, const char *maildir, const char **why)
{
	struct dbwrite w = { NULL, NULL, -1, -1, "", "" };
	struct scrypt_rec model;
	char rec[AUTH_RECORD_MAX + 1], *olddir;
	int found = 0, missing, rv = -1;

	rec[0] = '\0';
	memset(&model, 0, sizeof(model));
	if (check_change(op, addr, hash, maildir, why) == -1 ||
	    wr_lock(&w, path, why) == -1)
		goto out;
	if ((w.old = db_open_read(path, &missing, why)) == NULL) {
		if (!missing)
			goto out;
		if (op != AUTH_ADD) {
			rv = 1;		/* no database: no such user */
			goto out;
		}
	} else if ((found = db_fetch(w.old, path, addr, rec, sizeof(rec),
	    why)) == -1)
		goto out;
	if ((op == AUTH_ADD && found) || (op != AUTH_ADD && !found)) {
		rv = 1;
		goto out;
	}
	if (op == AUTH_PASSWD) {
		/* the new password, the old Maildir */
		if (split_record(rec, &olddir) == -1) {
			*why = setwhy(path, "malformed user record");
			goto out;
		}
		maildir = olddir;
	}
	/* A new password record sets the parameters for unknown users. */
	if (op != AUTH_DEL && parse_record(hash, &model, why) == -1)
		goto out;
	if (wr_begin(&w, path, why) == -1 ||
	    copy_db(w.old, w.new, addr, op != AUTH_DEL, why) == -1)
		goto out;
	if (op != AUTH_DEL && (store_user(&w, addr, hash, maildir,
	    why) == -1 || store_params(&w, &model, why) == -1))
		goto out;
	if (wr_commit(&w, path, why) == -1)
		goto out;
	rv = 0;
out:
	wr_end(&w);
	OPENSSL_cleanse(rec, sizeof(rec));
	OPENSSL_cleanse(&model, sizeof(model));
	return rv;
}

int
auth_init(const char *path, int cost, const char **why)
{
	struct dbwrite w = { NULL, NULL, -1, -1, "", "" };
	struct scrypt_rec model;
	int missing, rv = -1;

	memset(&model, 0, sizeof(model));
	if (cost < AUTH_COST_MIN || cost > AUTH_COST_MAX) {
		*why = "scrypt cost out of range";
		goto out;
	}
	if (wr_lock(&w, path, why) == -1)
		goto out;
	if ((w.old = db_open_read(path, &missing, why)) != NULL) {
		rv = 1;		/* there is one: leave it as it is */
		goto out;
	}
	if (!missing)
		goto out;
	model.ln = (unsigned long)cost;
	model.r = SCRYPT_R;
	model.p = SCRYPT_P;
	model.saltlen = SALT_BYTES;
	model.hashlen = HASH_BYTES;
	if (wr_begin(&w, path, why) == -1 ||
	    store_params(&w, &model, why) == -1 ||
	    wr_commit(&w, path, why) == -1)
		goto out;
	rv = 0;
out:
	wr_end(&w);
	return rv;
}
