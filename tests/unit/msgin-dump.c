/*
 * msgin-dump.c -- test driver of msgin.c: reads a message on standard
 * input with msgin_read() and prints what it kept, one line each, for
 * tests/msgin.bats to compare: the subject, From, the recipients, the
 * body's charset, length and SHA-256, each attachment's name, type, size,
 * SHA-256 and link count (read back through its descriptor), the dropped
 * header fields.  --save DIR also writes the body and the attachments
 * there (body, att-1, ...).  On failure: the reason on standard error
 * and 65, 74 or 75, as the client would exit.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "usmtp.h"

#define BUF_BYTES	65536

static void	hex_digest(EVP_MD_CTX *md, char *out);
static void	save(const char *dir, const char *name, const void *p,
		    size_t n, int fd);

static void
hex_digest(EVP_MD_CTX *md, char *out)
{
	unsigned char	h[EVP_MAX_MD_SIZE];
	unsigned int	n, i;

	EVP_DigestFinal_ex(md, h, &n);
	for (i = 0; i < n; i++)
		(void)snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Writes p (n bytes) or what fd holds from 0 to dir/name. */
static void
save(const char *dir, const char *name, const void *p, size_t n, int fd)
{
	char	path[4096], buf[BUF_BYTES];
	ssize_t	r;
	int	out;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1) {
		perror(path);
		exit(EX_CANTCREAT);
	}
	if (fd == -1)
		(void)!write(out, p, n);
	else {
		(void)lseek(fd, 0, SEEK_SET);
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			(void)!write(out, buf, (size_t)r);
	}
	close(out);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "body-max", required_argument, NULL, 'b' },
		{ "attach-max", required_argument, NULL, 'a' },
		{ "attach-count", required_argument, NULL, 'n' },
		{ "header-line-max", required_argument, NULL, 'l' },
		{ "header-count-max", required_argument, NULL, 'c' },
		{ "rcpt-max", required_argument, NULL, 'r' },
		{ "tmpdir", required_argument, NULL, 't' },
		{ "save", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *fieldname[] = { "to", "cc", "bcc" };
	struct msgin_limits	 lim = {
		16 * 1024 * 1024, 25 * 1024 * 1024, MAX_ATTACHMENTS,
		MSGIN_HEADER_LINE_MAX_BYTES, MSGIN_HEADER_COUNT_MAX,
		MSGIN_RCPT_MAX, NULL
	};
	struct msgin		 m;
	struct stat		 st;
	EVP_MD_CTX		*md;
	const char		*why, *savedir = NULL;
	char			 hex[2 * EVP_MAX_MD_SIZE + 1], buf[BUF_BYTES];
	char			 name[32];
	uint64_t		 total;
	ssize_t			 r;
	size_t			 i;
	int			 ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'b': lim.body_max = strtoull(optarg, NULL, 10); break;
		case 'a': lim.attach_max = strtoull(optarg, NULL, 10); break;
		case 'n': lim.attach_count_max = strtoull(optarg, NULL, 10);
			break;
		case 'l': lim.header_line_max = strtoull(optarg, NULL, 10);
			break;
		case 'c': lim.header_count_max = strtoull(optarg, NULL, 10);
			break;
		case 'r': lim.rcpt_max = strtoull(optarg, NULL, 10); break;
		case 't': lim.tmpdir = optarg; break;
		case 's': savedir = optarg; break;
		default:
			fprintf(stderr, "usage: msgin-dump [--body-max N] "
			    "[--attach-max N] [--attach-count N] "
			    "[--header-line-max N] [--header-count-max N] "
			    "[--rcpt-max N] [--tmpdir DIR] [--save DIR] "
			    "< message\n");
			return EX_USAGE;
		}
	}
	if (msgin_read(0, &lim, &m, &why) == -1) {
		fprintf(stderr, "msgin-dump: %s: %s\n",
		    m.error == MSGIN_EDATA ? "data" : m.error == MSGIN_EIO ?
		    "io" : "temp", why);
		return m.error == MSGIN_EDATA ? EX_DATAERR :
		    m.error == MSGIN_EIO ? EX_IOERR : EX_TEMPFAIL;
	}
	md = EVP_MD_CTX_new();
	printf("subject: %s\n", m.subject);
	printf("from: %s\n", m.from != NULL ? m.from : "-");
	for (i = 0; i < m.nrcpt; i++)
		printf("rcpt: %s %s\n", fieldname[m.rcpt[i].field],
		    m.rcpt[i].addr);
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, m.body, m.bodylen);
	hex_digest(md, hex);
	printf("body: charset=%s utf8=%d bytes=%zu sha256=%s\n",
	    m.body_charset, m.body_utf8, m.bodylen, hex);
	if (savedir != NULL)
		save(savedir, "body", m.body, m.bodylen, -1);
	for (i = 0; i < m.natt; i++) {
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		total = 0;
		while ((r = read(m.att[i].fd, buf, sizeof(buf))) > 0) {
			EVP_DigestUpdate(md, buf, (size_t)r);
			total += (uint64_t)r;
		}
		hex_digest(md, hex);
		if (fstat(m.att[i].fd, &st) == -1)
			st.st_nlink = 99;
		printf("att: %s type=%s size=%ju read=%ju links=%lu "
		    "sha256=%s\n", m.att[i].name, m.att[i].type,
		    (uintmax_t)m.att[i].size, (uintmax_t)total,
		    (unsigned long)st.st_nlink, hex);
		if (savedir != NULL) {
			(void)snprintf(name, sizeof(name), "att-%zu", i + 1);
			save(savedir, name, NULL, 0, m.att[i].fd);
		}
	}
	printf("dropped:");
	for (i = 0; i < m.ndropped; i++)
		printf(" %s", m.dropped[i]);
	printf("\nalternatives-dropped: %zu\n", m.alternatives_dropped);
	EVP_MD_CTX_free(md);
	msgin_free(&m);
	return 0;
}
