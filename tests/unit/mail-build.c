/*
 * mail-build.c -- builds and delivers one message through mailer.c, so
 * that tests/mailer.bats can check mailer.c without the handler.
 *
 * usmtp-mail-build -f SENDER -t RCPT [-s SUBJECT] [-b BODYFILE]
 *     [-a FILE [-n NAME]]... (-m TEMPLATE [-r RCPT_MAILDIR] | -S SENDMAIL
 *     [-T SECONDS]) [-H HOST] [-P PEER] [-I ID] [-c CHUNK] [-A]
 *
 * SUBJECT and NAME take C escapes (\n \r \t \\ \0 \xHH) so that tests can
 * pass bytes argv cannot hold.  -T takes a fraction too (0.5).  -A
 * aborts instead of committing.  Prints
 * "WHERE SIZE" on success; on failure the reason on stderr, exit 1.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usmtp.h"

#define MAX_FILES	16

static size_t	unescape(char *);
static char	*slurp(const char *, size_t *);
static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: mail-build -f SENDER -t RCPT [-s SUBJECT] "
	    "[-b BODYFILE] [-a FILE [-n NAME]]...\n"
	    "    (-m TEMPLATE [-r MAILDIR] | -S SENDMAIL [-T SEC]) "
	    "[-H HOST] [-P PEER] [-I ID] [-c CHUNK] [-A]\n");
	exit(64);
}

/* Decodes C escapes in place; returns the new length (NULs allowed). */
static size_t
unescape(char *s)
{
	char	*o = s, *p = s, hex[3];

	while (*p != '\0') {
		if (*p != '\\' || p[1] == '\0') {
			*o++ = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'n': *o++ = '\n'; p++; break;
		case 'r': *o++ = '\r'; p++; break;
		case 't': *o++ = '\t'; p++; break;
		case '0': *o++ = '\0'; p++; break;
		case 'x':
			if (p[1] == '\0' || p[2] == '\0')
				usage();
			hex[0] = p[1];
			hex[1] = p[2];
			hex[2] = '\0';
			*o++ = (char)strtoul(hex, NULL, 16);
			p += 3;
			break;
		default: *o++ = *p++; break;
		}
	}
	*o = '\0';
	return (size_t)(o - s);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE	*f;
	char	*buf;
	long	 n;

	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) == -1 ||
	    (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) == -1 ||
	    (buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "mail-build: %s: %s\n", path, strerror(errno));
		exit(66);
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

int
main(int argc, char *argv[])
{
	struct mail_conf conf = { NULL, NULL, 30000, "test.example",
	    "[127.0.0.1]", "0123456789abcdef" };
	struct mail	*m;
	const char	*sender = NULL, *rcpt = NULL, *why = "", *rmd = "";
	const char	*files[MAX_FILES];
	char		*names[MAX_FILES], *subject = "", *body = NULL;
	char		 where[4096];
	size_t		 namelens[MAX_FILES], subjlen = 0, bodylen = 0, chunk;
	off_t		 size;
	ssize_t		 n;
	int		 c, i, nfiles = 0, abort_it = 0, fd;
	unsigned char	*buf;

	chunk = STREAM_CHUNK_BYTES;
	/* Like the handler must: a full file size limit is EFBIG, not death. */
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt(argc, argv, "f:t:s:b:a:n:m:r:S:T:H:P:I:c:A")) !=
	    -1) {
		switch (c) {
		case 'f': sender = optarg; break;
		case 't': rcpt = optarg; break;
		case 's':
			subject = optarg;
			subjlen = unescape(subject);
			break;
		case 'b': body = slurp(optarg, &bodylen); break;
		case 'a':
			if (nfiles == MAX_FILES)
				usage();
			files[nfiles] = optarg;
			names[nfiles] = optarg;
			namelens[nfiles] = strlen(optarg);
			nfiles++;
			break;
		case 'n':
			if (nfiles == 0)
				usage();
			names[nfiles - 1] = optarg;
			namelens[nfiles - 1] = unescape(optarg);
			break;
		case 'm': conf.maildir = optarg; break;
		case 'r': rmd = optarg; break;
		case 'S': conf.sendmail = optarg; break;
		case 'T':
			conf.sendmail_timeout_ms = (long)(strtod(optarg, NULL)
			    * 1000);
			break;
		case 'H': conf.hostname = optarg; break;
		case 'P': conf.peer = optarg; break;
		case 'I': conf.session_id = optarg; break;
		case 'c': chunk = strtoul(optarg, NULL, 10); break;
		case 'A': abort_it = 1; break;
		default: usage();
		}
	}
	if (sender == NULL || rcpt == NULL || chunk == 0 || optind != argc)
		usage();
	if ((buf = malloc(chunk)) == NULL)
		return 70;
	m = mail_begin(&conf, sender, rcpt, rmd, subject, subjlen, body,
	    bodylen, nfiles, &why);
	if (m == NULL)
		goto failed;
	for (i = 0; i < nfiles; i++) {
		if ((fd = open(files[i], O_RDONLY)) == -1) {
			fprintf(stderr, "mail-build: %s: %s\n", files[i],
			    strerror(errno));
			mail_abort(m);
			return 66;
		}
		if (mail_attach_begin(m, names[i], namelens[i], &why) == -1)
			goto failed_m;
		while ((n = read(fd, buf, chunk)) > 0)
			if (mail_attach_write(m, buf, (size_t)n, &why) == -1)
				goto failed_m;
		if (n == -1) {
			fprintf(stderr, "mail-build: %s: %s\n", files[i],
			    strerror(errno));
			mail_abort(m);
			return 66;
		}
		close(fd);
		if (mail_attach_end(m, &why) == -1)
			goto failed_m;
	}
	free(buf);
	free(body);
	buf = NULL;
	body = NULL;
	if (abort_it) {
		mail_abort(m);
		printf("aborted\n");
		return 0;
	}
	if (mail_commit(m, where, sizeof(where), &size, &why) == -1)
		goto failed;
	printf("%s %lld\n", where, (long long)size);
	return 0;
failed_m:
	mail_abort(m);
failed:
	fprintf(stderr, "mail-build: %s\n", why);
	free(buf);
	free(body);
	return 1;
}
