/*
 * fuzz-msgin -- libFuzzer target for msgin.c, the sendmail interface's
 * message reader: msgin_read() over arbitrary bytes with small limits,
 * then the promises of usmtp.h checked on what it kept: limits held, the
 * subject and names valid UTF-8 without control characters, no directory
 * in a name, every attachment's file as long as its size says.
 *
 * Input: byte 0 picks the limits (bits 0-1 the body and attachment
 * sizes, bits 2-3 the attachment count, bit 4 the header limits); the
 * rest is the message, read from a memfd.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmtp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t sizes[] = { 0, 16, 1000, 1 << 20 };

static int	utf8_clean_ok(const char *s);

/* Valid UTF-8 (the encoder's rules, loosely) and no C0 control or DEL. */
static int
utf8_clean_ok(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	int			 n, i;

	while (*p != '\0') {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
		if (*p < 0x80) {
			p++;
			continue;
		}
		n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 ? 2 : 0;
		if (n == 0 || *p > 0xf4)
			return 0;
		for (i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		p += n;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msgin_limits	 lim;
	struct msgin		 m;
	struct stat		 st;
	const char		*why;
	size_t			 i;
	int			 fd;

	if (size < 1)
		return 0;
	memset(&lim, 0, sizeof(lim));
	lim.body_max = sizes[data[0] & 3];
	lim.attach_max = sizes[data[0] & 3];
	lim.attach_count_max = (data[0] >> 2) & 3;
	lim.header_line_max = (data[0] & 16) ? 64 : 4096;
	lim.header_count_max = (data[0] & 16) ? 4 : 100;
	lim.rcpt_max = 5;
	lim.tmpdir = "/tmp";
	if ((fd = memfd_create("fuzz-msgin", MFD_CLOEXEC)) == -1)
		abort();
	if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	if (msgin_read(fd, &lim, &m, &why) == -1) {
		if (m.error == MSGIN_OK || why == NULL || why[0] == '\0' ||
		    m.natt != 0 || m.body != NULL)
			abort();
		close(fd);
		return 0;
	}
	close(fd);
	if (m.subject == NULL || !utf8_clean_ok(m.subject) ||
	    m.body == NULL || m.bodylen > lim.body_max ||
	    m.body[m.bodylen] != '\0' || m.body_charset == NULL ||
	    m.natt > lim.attach_count_max || m.nrcpt > lim.rcpt_max)
		abort();
	for (i = 0; i < m.nrcpt; i++)
		if (m.rcpt[i].addr[0] == '\0' ||
		    strlen(m.rcpt[i].addr) > ADDR_MAX)
			abort();
	for (i = 0; i < m.natt; i++) {
		const char *n = m.att[i].name;

		if (n == NULL || n[0] == '\0' || strlen(n) >
		    MSGIN_NAME_MAX_BYTES || !utf8_clean_ok(n) ||
		    strpbrk(n, "/\\") != NULL || strcmp(n, ".") == 0 ||
		    strcmp(n, "..") == 0 || m.att[i].size > lim.attach_max ||
		    fstat(m.att[i].fd, &st) == -1 ||
		    (uint64_t)st.st_size != m.att[i].size ||
		    lseek(m.att[i].fd, 0, SEEK_CUR) != 0 || st.st_nlink != 0)
			abort();
	}
	msgin_free(&m);
	return 0;
}
