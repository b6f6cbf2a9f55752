/*
 * msgin.c -- reads a whole RFC 5322 message (the sendmail interface's
 * standard input) and keeps what USMTP can carry: the subject (RFC 2047
 * decoded), the From and To/Cc/Bcc addresses, one text body and up to a
 * few attachments (MIME, RFC 2045-2047, 2231), decoded.  The input is
 * read once, in pieces: the body is held in memory up to its limit, the
 * attachments go to unlinked temporary files, and every line, header and
 * nesting level is bounded.  The caller decides what to send and says
 * what went wrong; this file returns -1 and a reason.
 *
 * Which part is what (usmtp.h says it too, at msgin_read): the first
 * text/plain part that is not an attachment (no "attachment"
 * disposition, no file name) is the body; once a multipart/alternative
 * has given the body, its other parts are dropped; an HTML part that
 * would have been the body becomes the attachment "message.html"; every
 * other leaf part with content or a name is an attachment.
 */
#define _GNU_SOURCE		/* O_TMPFILE */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "usmtp.h"

#define RD_BUF_BYTES		65536	/* the input buffer; longer lines
					 * come in pieces */
#define WR_BUF_BYTES		65536	/* an attachment's write buffer */
#define OUT_BUF_BYTES		8192	/* decoded bytes before the sink */
#define TOKEN_MAX		127	/* a media type or subtype, RFC 6838 */
#define CHARSET_MAX		40	/* RFC 2978 */
#define NAME_FIELD_MAX		76	/* a header field name we keep */
#define PARAM_SECTIONS_MAX	100	/* RFC 2231 continuations of one */
#define QP_WS_HOLD		256	/* trailing-blank run held back */
#define WHY_BYTES		512

enum cte { CTE_7BIT, CTE_BINARY, CTE_QP, CTE_B64 };
enum disp { DISP_NONE, DISP_INLINE, DISP_ATTACHMENT };
enum sink { SINK_BODY, SINK_FILE, SINK_COUNT };

/* One piece of input: a line, or part of a long one. */
struct seg {
	const unsigned char *p;
	size_t		 n;	/* bytes, the line end excluded */
	int		 eol;	/* the line ended here (LF or CRLF) */
	int		 bol;	/* the piece starts a line */
	int		 more;	/* the line goes on in the next piece */
};

/* What a part's header said. */
struct part {
	char		 type[TOKEN_MAX + 1];	/* lower case */
	char		 subtype[TOKEN_MAX + 1];
	char		 charset[CHARSET_MAX + 1];
	char		 boundary[MSGIN_BOUNDARY_MAX + 1];
	size_t		 boundarylen;	/* 0: none */
	int		 boundary_bad;	/* longer than the RFC allows */
	char		*name;		/* Content-Disposition filename, else
					 * Content-Type name; UTF-8 */
	int		 name_from_disp;
	enum disp	 disp;
	enum cte	 cte;
};

/* A growable string, NUL-terminated. */
struct sbuf {
	char	*p;
	size_t	 len, cap;
	int	 nomem;
};

/* Transfer decoding state of the current leaf. */
struct dec {
	enum cte	 cte;
	int		 nl;		/* a line end is owed before more */
	int		 crlf;		/* binary: the owed end was CRLF */
	int		 qst;		/* QP: 0, 1 "=", 2 "=X", 3 "=" blanks */
	unsigned char	 qx;
	unsigned char	 ws[QP_WS_HOLD];
	size_t		 nws;
	uint32_t	 acc;		/* base64 */
	int		 nacc;
};

struct ctx {
	const struct msgin_limits *lim;
	struct msgin	*m;
	int		 fd;
	unsigned char	*in;
	size_t		 off, len;
	int		 eof, at_bol, unread;
	struct seg	 last;
	struct sbuf	 field;		/* the header field being read */
	char		 bnd[MSGIN_DEPTH_MAX][MSGIN_BOUNDARY_MAX + 1];
	size_t		 bndlen[MSGIN_DEPTH_MAX];
	int		 nbnd;
	int		 term;		/* what ended a part: -1 the input's
					 * end, else a boundary's level */
	int		 term_close;
	struct part	*top;		/* the message's own header */
	int		 have_body;
	int		 html_named;	/* "message.html" given out */
	size_t		 nseen;		/* attachments, counted past the max */
	/* the sink of the leaf being read */
	enum sink	 sink;
	struct msgin_attachment *att;	/* SINK_FILE */
	const char	*curname;	/* its name as given, or NULL */
	uint64_t	 size;
	unsigned char	 out[OUT_BUF_BYTES];
	size_t		 outlen;
	unsigned char	*wbuf;
	size_t		 wlen;
	size_t		 bodycap;
	const char	*tmpdir;
	int		 failed;
};

static char	why_buf[WHY_BYTES];

static int	 fail(struct ctx *c, enum msgin_error e, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
static int	 rd_next(struct ctx *c, struct seg *s);
static int	 boundary_of(struct ctx *c, const struct seg *s, int *close);
static int	 read_header(struct ctx *c, int top, struct part *pt);
static int	 header_field(struct ctx *c, int top, struct part *pt);
static int	 top_field(struct ctx *c, const char *name, const char *v,
		    size_t vn);
static void	 part_field(struct part *pt, const char *name, const char *v,
		    size_t vn);
static void	 part_init(struct part *pt, const char *type,
		    const char *subtype);
static int	 process_part(struct ctx *c, struct part *pt, int depth);
static int	 child(struct ctx *c, int depth, int digest);
static int	 multipart(struct ctx *c, struct part *pt, int depth);
static int	 skip(struct ctx *c);
static int	 leaf(struct ctx *c, struct part *pt);
static int	 dec_seg(struct ctx *c, struct dec *d, const struct seg *s);
static int	 dec_end(struct ctx *c, struct dec *d, int at_eof);
static int	 qp_bytes(struct ctx *c, struct dec *d, const unsigned char *p,
		    size_t n);
static int	 qp_eol(struct ctx *c, struct dec *d, int hard);
static int	 b64_bytes(struct ctx *c, struct dec *d,
		    const unsigned char *p, size_t n);
static int	 emit(struct ctx *c, const void *p, size_t n);
static int	 emit_flush(struct ctx *c);
static int	 sink_write(struct ctx *c, const unsigned char *p, size_t n);
static int	 att_open(struct ctx *c);
static int	 att_flush(struct ctx *c);
static int	 att_finish(struct ctx *c, struct part *pt);
static const char *ext_of(const struct part *pt);
static char	*safe_name(const char *name);
static int	 body_finish(struct ctx *c);
static int	 addr_list(struct ctx *c, const char *v, size_t n,
		    enum msgin_field f, int first_only);
static int	 addr_add(struct ctx *c, char *a, size_t n, enum msgin_field f,
		    int first_only);
static int	 add_dropped(struct ctx *c, const char *name);
static void	 sb_add(struct sbuf *b, const void *p, size_t n);
static void	 sb_addc(struct sbuf *b, char ch);
static char	*sb_take(struct sbuf *b);
static void	 sb_free(struct sbuf *b);
static void	 decode_words(const char *in, size_t n, struct sbuf *out);
static int	 charset_norm(const char *cs, size_t n, char *out);
static int	 to_utf8(const char *cs, const unsigned char *in, size_t n,
		    struct sbuf *out);
static size_t	 utf8_seq(const unsigned char *p, size_t n);
static char	*utf8_clean(const char *in, size_t n, char ctl);
static int	 get_param(const char *v, size_t n, const char *want,
		    char **out, int raw);
static size_t	 skip_cfws(const char *v, size_t n, size_t i);
static size_t	 skip_comment(const char *v, size_t n, size_t i);
static size_t	 take_quoted(const char *v, size_t n, size_t i,
		    struct sbuf *out);
static int	 atext(int ch);
static size_t	 get_token(const char *v, size_t n, size_t i, char *out,
		    size_t outsz);
static int	 hexval(int ch);

/* Sets *why's text and the error class; returns -1. */
static int
fail(struct ctx *c, enum msgin_error e, const char *fmt, ...)
{
	va_list	ap;

	if (c->failed)
		return -1;
	c->failed = 1;
	c->m->error = e;
	va_start(ap, fmt);
	(void)vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- input ---- */

/*
 * The next piece of input: a whole line (its end cut off: LF, or CR LF),
 * or, for a line longer than the buffer, a part of it.  1, 0 at the end
 * of input, -1 on a read error.
 */
static int
rd_next(struct ctx *c, struct seg *s)
{
	unsigned char	*nl, *p;
	size_t		 n;
	ssize_t		 r;

	if (c->unread) {
		c->unread = 0;
		*s = c->last;
		return 1;
	}
	for (;;) {
		p = c->in + c->off;
		if ((nl = memchr(p, '\n', c->len)) != NULL) {
			n = (size_t)(nl - p);
			s->p = p;
			s->bol = c->at_bol;
			s->eol = 1;
			s->more = 0;
			s->n = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
			c->off += n + 1;
			c->len -= n + 1;
			c->at_bol = 1;
			break;
		}
		if (c->eof) {
			if (c->len == 0)
				return 0;
			s->p = p;
			s->n = c->len;
			s->bol = c->at_bol;
			s->eol = s->more = 0;
			c->off += c->len;
			c->len = 0;
			c->at_bol = 0;
			break;
		}
		if (c->len == RD_BUF_BYTES) {
			/* Keep a last CR back: it may start a CR LF. */
			n = p[c->len - 1] == '\r' ? c->len - 1 : c->len;
			s->p = p;
			s->n = n;
			s->bol = c->at_bol;
			s->eol = 0;
			s->more = 1;
			c->off += n;
			c->len -= n;
			c->at_bol = 0;
			break;
		}
		if (c->off > 0) {
			memmove(c->in, p, c->len);
			c->off = 0;
		}
		r = read(c->fd, c->in + c->len, RD_BUF_BYTES - c->len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return fail(c, MSGIN_EIO, "reading the message: %s",
			    strerror(errno));
		if (r == 0)
			c->eof = 1;
		c->len += (size_t)r;
	}
	c->last = *s;
	return 1;
}

/*
 * Whether s is a delimiter line of an open multipart (RFC 2046 5.1.1:
 * "--" boundary, "--" more for the last one, then blanks only): its
 * level (0 the outermost), or -1.  An outer boundary also ends the inner
 * parts, so a missing close delimiter does no harm.
 */
static int
boundary_of(struct ctx *c, const struct seg *s, int *close)
{
	const unsigned char	*r;
	size_t			 rn, bl;
	int			 i, cl;

	if (!s->bol || s->more || c->nbnd == 0 || s->n < 3 ||
	    s->p[0] != '-' || s->p[1] != '-')
		return -1;
	for (i = c->nbnd - 1; i >= 0; i--) {
		bl = c->bndlen[i];
		if (s->n < 2 + bl || memcmp(s->p + 2, c->bnd[i], bl) != 0)
			continue;
		r = s->p + 2 + bl;
		rn = s->n - 2 - bl;
		cl = 0;
		if (rn >= 2 && r[0] == '-' && r[1] == '-') {
			cl = 1;
			r += 2;
			rn -= 2;
		}
		while (rn > 0 && (*r == ' ' || *r == '\t')) {
			r++;
			rn--;
		}
		if (rn == 0) {
			*close = cl;
			return i;
		}
	}
	return -1;
}

/* ---- headers ---- */

/*
 * Reads one header section (the message's when top), unfolding each
 * field (RFC 5322 2.2.3) and handing it on.  0: it ended at its empty
 * line, or at a line that is no header field (which then starts the
 * body, as Postfix and Python take it); 1: at the end of input or a
 * delimiter line (c->term); -1.
 */
static int
read_header(struct ctx *c, int top, struct part *pt)
{
	struct seg	 s;
	size_t		 nfields = 0, i;
	int		 r, k = -1, cl = 0, have = 0, first = 1, skipping = 0;

	c->field.len = 0;
	for (;;) {
		if ((r = rd_next(c, &s)) == -1)
			return -1;
		if (r == 0 || (k = boundary_of(c, &s, &cl)) >= 0) {
			if (have && header_field(c, top, pt) == -1)
				return -1;
			c->term = r == 0 ? -1 : k;
			c->term_close = r == 0 ? 0 : cl;
			return 1;
		}
		if (!s.bol) {
			/* the rest of a line longer than the buffer */
			if (skipping)
				continue;
			goto append;
		}
		skipping = 0;
		if (s.n == 0 && s.eol) {
			if (have && header_field(c, top, pt) == -1)
				return -1;
			return 0;
		}
		if (s.p[0] == ' ' || s.p[0] == '\t') {
			if (!have) {
				skipping = 1;	/* nothing to continue */
				continue;
			}
			goto append;
		}
		if (have && header_field(c, top, pt) == -1)
			return -1;
		have = 0;
		c->field.len = 0;
		if (top && first && s.n >= 5 && memcmp(s.p, "From ", 5) == 0) {
			skipping = 1;	/* an mbox separator */
			first = 0;
			continue;
		}
		first = 0;
		/* field-name: printable ASCII but ':' (RFC 5322 3.6.8) */
		for (i = 0; i < s.n && s.p[i] > 32 && s.p[i] < 127 &&
		    s.p[i] != ':'; i++)
			;
		while (i < s.n && (s.p[i] == ' ' || s.p[i] == '\t'))
			i++;	/* obs-optional: blanks before the colon */
		if (i == 0 || i >= s.n || s.p[i] != ':') {
			c->unread = 1;	/* the body's first line */
			return 0;
		}
		if (++nfields > c->lim->header_count_max)
			return fail(c, MSGIN_EDATA, "more than %zu header "
			    "fields in one header", c->lim->header_count_max);
		have = 1;
append:
		if (memchr(s.p, '\0', s.n) != NULL)	/* RFC 5322 2.2 */
			return fail(c, MSGIN_EDATA, "a NUL byte in a header "
			    "field");
		if (c->field.len + s.n > c->lim->header_line_max)
			return fail(c, MSGIN_EDATA, "a header field is over "
			    "%zu bytes", c->lim->header_line_max);
		sb_add(&c->field, s.p, s.n);
		if (c->field.nomem)
			return fail(c, MSGIN_ETEMP, "out of memory");
	}
}

/* Splits the field read into name and value and hands it on. */
static int
header_field(struct ctx *c, int top, struct part *pt)
{
	char	 name[NAME_FIELD_MAX + 1];
	char	*f = c->field.p, *colon;
	size_t	 nl, vn;

	if (c->field.len == 0)
		return 0;
	colon = memchr(f, ':', c->field.len);
	nl = (size_t)(colon - f);
	while (nl > 0 && (f[nl - 1] == ' ' || f[nl - 1] == '\t'))
		nl--;
	if (nl > NAME_FIELD_MAX)
		return fail(c, MSGIN_EDATA, "a header field name is over %d "
		    "bytes", NAME_FIELD_MAX);
	memcpy(name, f, nl);
	name[nl] = '\0';
	vn = c->field.len - (size_t)(colon + 1 - f);
	if (top)
		return top_field(c, name, colon + 1, vn);
	part_field(pt, name, colon + 1, vn);
	return 0;
}

/* A field of the message's own header. */
static int
top_field(struct ctx *c, const char *name, const char *v, size_t vn)
{
	struct sbuf	 sb;
	char		*s;

	if (strncasecmp(name, "content-", 8) == 0) {
		part_field(c->top, name, v, vn);
		return 0;
	}
	if (strcasecmp(name, "subject") == 0) {
		if (c->m->subject != NULL)
			return 0;
		memset(&sb, 0, sizeof(sb));
		decode_words(v, vn, &sb);
		if (sb.nomem || (s = utf8_clean(sb.p != NULL ? sb.p : "",
		    sb.len, ' ')) == NULL) {
			sb_free(&sb);
			return fail(c, MSGIN_ETEMP, "out of memory");
		}
		sb_free(&sb);
		c->m->subject = s;
		return 0;
	}
	if (strcasecmp(name, "from") == 0)
		return c->m->from != NULL ? 0 :
		    addr_list(c, v, vn, MSGIN_TO, 1);
	if (strcasecmp(name, "to") == 0)
		return addr_list(c, v, vn, MSGIN_TO, 0);
	if (strcasecmp(name, "cc") == 0)	/* read, but not carried */
		return addr_list(c, v, vn, MSGIN_CC, 0) == -1 ? -1 :
		    add_dropped(c, name);
	if (strcasecmp(name, "bcc") == 0)	/* goes, as with sendmail -t */
		return addr_list(c, v, vn, MSGIN_BCC, 0);
	/* The server writes its own Date and MIME-Version: nothing lost. */
	if (strcasecmp(name, "date") == 0 ||
	    strcasecmp(name, "mime-version") == 0)
		return 0;
	return add_dropped(c, name);
}

static void
part_init(struct part *pt, const char *type, const char *subtype)
{
	memset(pt, 0, sizeof(*pt));
	(void)snprintf(pt->type, sizeof(pt->type), "%s", type);
	(void)snprintf(pt->subtype, sizeof(pt->subtype), "%s", subtype);
	(void)snprintf(pt->charset, sizeof(pt->charset), "us-ascii");
	pt->cte = CTE_7BIT;
}

/* Content-Type, -Transfer-Encoding and -Disposition (RFC 2045, 2183). */
static void
part_field(struct part *pt, const char *name, const char *v, size_t vn)
{
	char	 t[TOKEN_MAX + 1], st[TOKEN_MAX + 1], *val;
	size_t	 i;

	if (strcasecmp(name, "content-type") == 0) {
		i = get_token(v, vn, skip_cfws(v, vn, 0), t, sizeof(t));
		i = skip_cfws(v, vn, i);
		if (t[0] == '\0' || i >= vn || v[i] != '/')
			return;	/* RFC 2045 5.2: keep the default */
		i = get_token(v, vn, skip_cfws(v, vn, i + 1), st, sizeof(st));
		if (st[0] == '\0')
			return;
		memcpy(pt->type, t, sizeof(t));
		memcpy(pt->subtype, st, sizeof(st));
		if (get_param(v, vn, "charset", &val, 1) == 1) {
			if (charset_norm(val, strlen(val), pt->charset) == -1)
				(void)snprintf(pt->charset,
				    sizeof(pt->charset), "unknown");
			free(val);
		}
		if (get_param(v, vn, "boundary", &val, 1) == 1) {
			size_t bl = strlen(val);

			/* RFC 2046 5.1.1: 1 to 70 characters; trailing
			 * blanks are not part of it */
			while (bl > 0 && val[bl - 1] == ' ')
				bl--;
			if (bl > MSGIN_BOUNDARY_MAX)
				pt->boundary_bad = 1;
			else if (bl > 0) {
				memcpy(pt->boundary, val, bl);
				pt->boundary[bl] = '\0';
				pt->boundarylen = bl;
			}
			free(val);
		}
		if (!pt->name_from_disp &&
		    get_param(v, vn, "name", &val, 0) == 1) {
			free(pt->name);
			pt->name = val;
		}
	} else if (strcasecmp(name, "content-transfer-encoding") == 0) {
		(void)get_token(v, vn, skip_cfws(v, vn, 0), t, sizeof(t));
		if (strcmp(t, "quoted-printable") == 0)
			pt->cte = CTE_QP;
		else if (strcmp(t, "base64") == 0)
			pt->cte = CTE_B64;
		else if (strcmp(t, "7bit") == 0 || strcmp(t, "8bit") == 0 ||
		    t[0] == '\0')
			pt->cte = CTE_7BIT;
		else	/* binary, and unknown ones: the bytes as they are */
			pt->cte = CTE_BINARY;
	} else if (strcasecmp(name, "content-disposition") == 0) {
		(void)get_token(v, vn, skip_cfws(v, vn, 0), t, sizeof(t));
		pt->disp = strcmp(t, "attachment") == 0 ? DISP_ATTACHMENT :
		    DISP_INLINE;
		if (get_param(v, vn, "filename", &val, 0) == 1) {
			free(pt->name);
			pt->name = val;
			pt->name_from_disp = 1;
		}
	}
}

/* ---- MIME structure ---- */

/* A part whose header has been read: a multipart or a leaf. */
static int
process_part(struct ctx *c, struct part *pt, int depth)
{
	if (strcmp(pt->type, "multipart") == 0) {
		if (pt->boundary_bad)
			return fail(c, MSGIN_EDATA, "a MIME boundary is "
			    "longer than %d characters (RFC 2046)",
			    MSGIN_BOUNDARY_MAX);
		if (pt->boundarylen == 0)
			return fail(c, MSGIN_EDATA, "a multipart/%s part "
			    "without a boundary", pt->subtype);
		if (depth >= MSGIN_DEPTH_MAX)
			return fail(c, MSGIN_EDATA, "multipart parts nested "
			    "deeper than %d", MSGIN_DEPTH_MAX);
		return multipart(c, pt, depth);
	}
	return leaf(c, pt);
}

/* A body part of a multipart: its header, then its content. */
static int
child(struct ctx *c, int depth, int digest)
{
	struct part	pt;
	int		r;

	/* RFC 2046 5.1.5: in a digest the default is message/rfc822 */
	part_init(&pt, digest ? "message" : "text", digest ? "rfc822" :
	    "plain");
	if ((r = read_header(c, 0, &pt)) == 0)
		r = process_part(c, &pt, depth);
	else if (r == 1) {	/* a header and no content */
		c->sink = SINK_COUNT;
		c->att = NULL;
		c->size = 0;
		r = att_finish(c, &pt) == -1 ? -1 : 0;
	}
	free(pt.name);
	return r;
}

/*
 * A multipart: the preamble, each body part, the epilogue.  Returns with
 * c->term saying what ended it: the input's end or an outer boundary.
 */
static int
multipart(struct ctx *c, struct part *pt, int depth)
{
	struct seg	s;
	int		level = c->nbnd, k, cl, r, alt, digest, yielded = 0;
	int		body_before = c->have_body;

	memcpy(c->bnd[level], pt->boundary, pt->boundarylen + 1);
	c->bndlen[level] = pt->boundarylen;
	c->nbnd++;
	alt = strcmp(pt->subtype, "alternative") == 0;
	digest = strcmp(pt->subtype, "digest") == 0;
	for (;;) {		/* the preamble */
		if ((r = rd_next(c, &s)) == -1)
			return -1;
		if (r == 0) {
			c->nbnd = level;
			c->term = -1;
			return 0;
		}
		if ((k = boundary_of(c, &s, &cl)) < 0)
			continue;
		if (k < level) {
			c->nbnd = level;
			c->term = k;
			c->term_close = cl;
			return 0;
		}
		break;
	}
	for (;;) {
		if (cl) {	/* the close delimiter, then the epilogue */
			c->nbnd = level;
			return skip(c);
		}
		if (alt && yielded) {
			/* the body came from an earlier alternative */
			c->m->alternatives_dropped++;
			r = skip(c);
		} else {
			r = child(c, depth + 1, digest);
			if (alt && !body_before && c->have_body)
				yielded = 1;
		}
		if (r == -1)
			return -1;
		if (c->term < level) {	/* the end, or an outer boundary */
			c->nbnd = level;
			return 0;
		}
		cl = c->term_close;
	}
}

/* Reads on to the next delimiter line of an open multipart, or the end. */
static int
skip(struct ctx *c)
{
	struct seg	s;
	int		r, k, cl;

	for (;;) {
		if ((r = rd_next(c, &s)) == -1)
			return -1;
		if (r == 0) {
			c->term = -1;
			return 0;
		}
		if ((k = boundary_of(c, &s, &cl)) >= 0) {
			c->term = k;
			c->term_close = cl;
			return 0;
		}
	}
}

/*
 * A leaf part: the body, or an attachment (spooled, or only counted once
 * there are as many as allowed).  Reads its content to the next
 * delimiter line or the end, decoding it.
 */
static int
leaf(struct ctx *c, struct part *pt)
{
	struct dec	 d;
	struct seg	 s;
	int		 r, k, cl, body;

	body = strcmp(pt->type, "text") == 0 &&
	    strcmp(pt->subtype, "plain") == 0 &&
	    pt->disp != DISP_ATTACHMENT && pt->name == NULL && !c->have_body;
	memset(&d, 0, sizeof(d));
	d.cte = pt->cte;
	c->size = 0;
	c->curname = pt->name;
	c->outlen = 0;
	if (body) {
		c->have_body = 1;
		c->sink = SINK_BODY;
		free(c->m->body_charset);
		if ((c->m->body_charset = strdup(pt->charset)) == NULL)
			return fail(c, MSGIN_ETEMP, "out of memory");
	} else if (c->nseen >= c->lim->attach_count_max)
		c->sink = SINK_COUNT;
	else {
		c->sink = SINK_FILE;
		c->att = &c->m->att[c->m->natt];
		memset(c->att, 0, sizeof(*c->att));
		c->att->fd = -1;
	}
	for (;;) {
		if ((r = rd_next(c, &s)) == -1)
			return -1;
		if (r == 0) {
			c->term = -1;
			break;
		}
		if ((k = boundary_of(c, &s, &cl)) >= 0) {
			c->term = k;
			c->term_close = cl;
			break;
		}
		if (dec_seg(c, &d, &s) == -1)
			return -1;
	}
	if (dec_end(c, &d, r == 0) == -1 || emit_flush(c) == -1)
		return -1;
	if (body)
		return 0;
	return att_finish(c, pt);
}

/* ---- transfer decoding (RFC 2045 6) ---- */

static int
dec_seg(struct ctx *c, struct dec *d, const struct seg *s)
{
	if (s->bol && d->nl) {
		/*
		 * The line end before a delimiter belongs to the delimiter
		 * (RFC 2046 5.1.1): owed until the next line shows up.
		 */
		if (emit(c, d->crlf ? "\r\n" : "\n", d->crlf ? 2 : 1) == -1)
			return -1;
		d->nl = 0;
	}
	switch (d->cte) {
	case CTE_B64:
		return b64_bytes(c, d, s->p, s->n);
	case CTE_QP:
		if (qp_bytes(c, d, s->p, s->n) == -1)
			return -1;
		return s->more ? 0 : qp_eol(c, d, s->eol);
	case CTE_BINARY:
	case CTE_7BIT:
		if (emit(c, s->p, s->n) == -1)
			return -1;
		/* Text lines end in LF, the local form; binary as sent. */
		d->nl = s->eol;
		d->crlf = d->cte == CTE_BINARY && s->eol &&
		    s->p[s->n] == '\r';
		return 0;
	}
	return 0;
}

/* The content ended: at a delimiter (the owed line end is dropped) or at
 * the end of input (it is kept: no delimiter claims it). */
static int
dec_end(struct ctx *c, struct dec *d, int at_eof)
{
	unsigned char	o[2];

	if (d->cte == CTE_B64 && d->nacc >= 2) {
		/* missing padding: keep the whole bytes there are */
		o[0] = (unsigned char)(d->acc >> (6 * d->nacc - 8));
		o[1] = (unsigned char)(d->acc >> 2);	/* nacc 3 only */
		if (emit(c, o, d->nacc == 2 ? 1 : 2) == -1)
			return -1;
	}
	if (d->cte == CTE_QP && (d->qst != 0 || d->nws > 0) &&
	    qp_eol(c, d, 0) == -1)
		return -1;
	if (at_eof && d->nl &&
	    emit(c, d->crlf ? "\r\n" : "\n", d->crlf ? 2 : 1) == -1)
		return -1;
	return 0;
}

/*
 * Quoted-printable, leniently (RFC 2045 6.7, and as mailers read it): a
 * "=" not followed by two hex digits is taken as it is; blanks at a line
 * end are dropped; "=" at a line end (blanks after it allowed) joins
 * the next line.
 */
static int
qp_bytes(struct ctx *c, struct dec *d, const unsigned char *p, size_t n)
{
	const unsigned char	*q, *end = p + n;
	unsigned char		 b;
	int			 h;

	while (p < end) {
		b = *p;
		switch (d->qst) {
		case 0:
			if (b == '=' || b == ' ' || b == '\t') {
				if (b == '=') {
					if (d->nws > 0 &&
					    emit(c, d->ws, d->nws) == -1)
						return -1;
					d->nws = 0;
					d->qst = 1;
				} else {
					if (d->nws == sizeof(d->ws)) {
						if (emit(c, d->ws, d->nws) ==
						    -1)
							return -1;
						d->nws = 0;
					}
					d->ws[d->nws++] = b;
				}
				p++;
				break;
			}
			if (d->nws > 0 && emit(c, d->ws, d->nws) == -1)
				return -1;
			d->nws = 0;
			for (q = p; q < end && *q != '=' && *q != ' ' &&
			    *q != '\t'; q++)
				;
			if (emit(c, p, (size_t)(q - p)) == -1)
				return -1;
			p = q;
			break;
		case 1:
			if (hexval(b) >= 0) {
				d->qx = b;
				d->qst = 2;
				p++;
			} else if (b == ' ' || b == '\t') {
				d->qst = 3;
				d->ws[0] = b;
				d->nws = 1;
				p++;
			} else {
				if (emit(c, "=", 1) == -1)
					return -1;
				d->qst = 0;
			}
			break;
		case 2:
			if ((h = hexval(b)) >= 0) {
				b = (unsigned char)(hexval(d->qx) << 4 | h);
				if (emit(c, &b, 1) == -1)
					return -1;
				p++;
			} else {
				if (emit(c, "=", 1) == -1 ||
				    emit(c, &d->qx, 1) == -1)
					return -1;
			}
			d->qst = 0;
			break;
		case 3:
			if ((b == ' ' || b == '\t') && d->nws < sizeof(d->ws)) {
				d->ws[d->nws++] = b;
				p++;
				break;
			}
			if (emit(c, "=", 1) == -1 ||
			    emit(c, d->ws, d->nws) == -1)
				return -1;
			d->nws = 0;
			d->qst = 0;
			break;
		}
	}
	return 0;
}

/* A QP line ended; hard: with a line end (not the input's end). */
static int
qp_eol(struct ctx *c, struct dec *d, int hard)
{
	int	soft = d->qst == 1 || d->qst == 3;

	if (d->qst == 2 && (emit(c, "=", 1) == -1 ||
	    emit(c, &d->qx, 1) == -1))
		return -1;
	d->qst = 0;
	d->nws = 0;		/* transport padding */
	d->nl = hard && !soft;
	d->crlf = 0;
	return 0;
}

/* Base64, ignoring what is not of its alphabet (RFC 2045 6.8). */
static int
b64_bytes(struct ctx *c, struct dec *d, const unsigned char *p, size_t n)
{
	static signed char	 tab[256];
	static int		 ready;
	unsigned char		 o[OUT_BUF_BYTES];
	size_t			 on = 0, i;
	int			 v;

	if (!ready) {
		const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789+/";

		memset(tab, -1, sizeof(tab));
		for (i = 0; i < 64; i++)
			tab[(unsigned char)a[i]] = (signed char)i;
		ready = 1;
	}
	for (i = 0; i < n; i++) {
		if (p[i] == '=') {
			/* padding: the group ends; a later group may
			 * follow (concatenated base64) */
			if (d->nacc >= 2)
				o[on++] = (unsigned char)(d->acc >>
				    (6 * d->nacc - 8));
			if (d->nacc == 3)
				o[on++] = (unsigned char)(d->acc >> 2);
			d->nacc = 0;
			d->acc = 0;
		} else if ((v = tab[p[i]]) >= 0) {
			d->acc = d->acc << 6 | (uint32_t)v;
			if (++d->nacc == 4) {
				o[on++] = (unsigned char)(d->acc >> 16);
				o[on++] = (unsigned char)(d->acc >> 8);
				o[on++] = (unsigned char)d->acc;
				d->nacc = 0;
				d->acc = 0;
			}
		}
		if (on > sizeof(o) - 3) {
			if (emit(c, o, on) == -1)
				return -1;
			on = 0;
		}
	}
	return on > 0 ? emit(c, o, on) : 0;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')	/* lenient: RFC 2045 wants upper */
		return ch - 'a' + 10;
	return -1;
}

/* ---- sinks ---- */

static int
emit(struct ctx *c, const void *p, size_t n)
{
	if (n >= sizeof(c->out))
		return emit_flush(c) == -1 ? -1 :
		    sink_write(c, p, n);
	if (c->outlen + n > sizeof(c->out) && emit_flush(c) == -1)
		return -1;
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	return 0;
}

static int
emit_flush(struct ctx *c)
{
	size_t	n = c->outlen;

	c->outlen = 0;
	return n > 0 ? sink_write(c, c->out, n) : 0;
}

static int
sink_write(struct ctx *c, const unsigned char *p, size_t n)
{
	struct msgin	*m = c->m;
	char		*nb;
	size_t		 cap;

	switch (c->sink) {
	case SINK_BODY:
		if (n > c->lim->body_max - m->bodylen)
			return fail(c, MSGIN_EDATA, "the body is over %zu "
			    "bytes", c->lim->body_max);
		if (m->bodylen + n + 1 > c->bodycap) {
			cap = c->bodycap == 0 ? 8192 : c->bodycap;
			while (cap < m->bodylen + n + 1)
				cap *= 2;
			if ((nb = realloc(m->body, cap)) == NULL)
				return fail(c, MSGIN_ETEMP, "out of memory");
			m->body = nb;
			c->bodycap = cap;
		}
		memcpy(m->body + m->bodylen, p, n);
		m->bodylen += n;
		m->body[m->bodylen] = '\0';
		return 0;
	case SINK_COUNT:
		c->size += n;
		return 0;
	case SINK_FILE:
		if (n > c->lim->attach_max - c->size)
			return fail(c, MSGIN_EDATA, "attachment %zu%s%s%s is "
			    "over %ju bytes", c->nseen + 1,
			    c->curname != NULL ? " (" : "",
			    c->curname != NULL ? c->curname : "",
			    c->curname != NULL ? ")" : "",
			    (uintmax_t)c->lim->attach_max);
		if (c->att->fd == -1 && att_open(c) == -1)
			return -1;
		c->size += n;
		while (n > 0) {
			size_t take = WR_BUF_BYTES - c->wlen;

			if (take > n)
				take = n;
			memcpy(c->wbuf + c->wlen, p, take);
			c->wlen += take;
			p += take;
			n -= take;
			if (c->wlen == WR_BUF_BYTES && att_flush(c) == -1)
				return -1;
		}
		return 0;
	}
	return 0;
}

/* An unlinked temporary file for the current attachment. */
static int
att_open(struct ctx *c)
{
	char	path[4096];
	int	fd;

	fd = open(c->tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd == -1 && (errno == EOPNOTSUPP || errno == EISDIR ||
	    errno == EINVAL)) {
		/* no O_TMPFILE there: a named file, unlinked at once */
		if (snprintf(path, sizeof(path), "%s/usmtp-att.XXXXXX",
		    c->tmpdir) >= (int)sizeof(path))
			return fail(c, MSGIN_ETEMP, "%s: name too long",
			    c->tmpdir);
		if ((fd = mkostemp(path, O_CLOEXEC)) != -1)
			(void)unlink(path);
	}
	if (fd == -1)
		return fail(c, MSGIN_ETEMP, "a temporary file in %s: %s",
		    c->tmpdir, strerror(errno));
	c->att->fd = fd;
	c->wlen = 0;
	return 0;
}

static int
att_flush(struct ctx *c)
{
	const unsigned char	*p = c->wbuf;
	size_t			 n = c->wlen;
	ssize_t			 w;

	while (n > 0) {
		w = write(c->att->fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return fail(c, MSGIN_ETEMP, "writing a temporary file "
			    "in %s: %s", c->tmpdir, strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	c->wlen = 0;
	return 0;
}

/*
 * The attachment just read: kept when it has content or a name (an
 * empty unnamed part is nothing), named, rewound.  Past the maximum it is
 * only counted.
 */
static int
att_finish(struct ctx *c, struct part *pt)
{
	struct msgin_attachment	*a;
	char			 gen[64];
	int			 html;

	if (c->size == 0 && pt->name == NULL) {
		if (c->sink == SINK_FILE && c->att != NULL &&
		    c->att->fd != -1) {
			close(c->att->fd);
			c->att->fd = -1;
		}
		return 0;
	}
	if (c->nseen++ >= c->lim->attach_count_max)
		return 0;
	a = &c->m->att[c->m->natt];
	if (c->sink != SINK_FILE) {	/* a part with a header only */
		memset(a, 0, sizeof(*a));
		a->fd = -1;
		c->att = a;
	}
	if (a->fd == -1 && att_open(c) == -1)
		return -1;
	if (att_flush(c) == -1)
		return -1;
	c->m->natt++;
	a->size = c->size;
	if (lseek(a->fd, 0, SEEK_SET) == -1)
		return fail(c, MSGIN_ETEMP, "rewinding a temporary file: %s",
		    strerror(errno));
	if (asprintf(&a->type, "%s/%s", pt->type, pt->subtype) == -1) {
		a->type = NULL;
		return fail(c, MSGIN_ETEMP, "out of memory");
	}
	html = strcmp(pt->type, "text") == 0 &&
	    strcmp(pt->subtype, "html") == 0 && pt->disp != DISP_ATTACHMENT;
	if (pt->name != NULL && (a->name = safe_name(pt->name)) == NULL)
		return fail(c, MSGIN_ETEMP, "out of memory");
	if (a->name != NULL && a->name[0] == '\0') {
		free(a->name);
		a->name = NULL;
	}
	if (a->name == NULL) {
		if (html && !c->have_body && !c->html_named) {
			(void)snprintf(gen, sizeof(gen), "message.html");
			c->html_named = 1;
		} else
			(void)snprintf(gen, sizeof(gen), "attachment-%zu.%s",
			    c->m->natt, ext_of(pt));
		if ((a->name = strdup(gen)) == NULL)
			return fail(c, MSGIN_ETEMP, "out of memory");
	}
	return 0;
}

/* The extension of a generated name, as mailer.c maps them back. */
static const char *
ext_of(const struct part *pt)
{
	static const struct {
		const char *type, *ext;
	} tab[] = {
		{ "text/plain", "txt" }, { "text/html", "html" },
		{ "text/csv", "csv" }, { "text/calendar", "ics" },
		{ "text/markdown", "md" }, { "text/css", "css" },
		{ "text/javascript", "js" },
		{ "application/xml", "xml" }, { "text/xml", "xml" },
		{ "application/json", "json" }, { "application/pdf", "pdf" },
		{ "application/rtf", "rtf" }, { "image/png", "png" },
		{ "image/jpeg", "jpg" }, { "image/gif", "gif" },
		{ "image/webp", "webp" }, { "image/svg+xml", "svg" },
		{ "image/bmp", "bmp" }, { "image/tiff", "tiff" },
		{ "application/zip", "zip" }, { "application/gzip", "gz" },
		{ "application/x-tar", "tar" },
		{ "application/msword", "doc" },
		{ "audio/mpeg", "mp3" }, { "audio/wav", "wav" },
		{ "audio/ogg", "ogg" }, { "video/mp4", "mp4" },
		{ "video/webm", "webm" }, { "video/quicktime", "mov" },
		{ "message/rfc822", "eml" },
	};
	char	t[2 * TOKEN_MAX + 2];
	size_t	i;

	(void)snprintf(t, sizeof(t), "%s/%s", pt->type, pt->subtype);
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(t, tab[i].type) == 0)
			return tab[i].ext;
	return strcmp(pt->type, "text") == 0 ? "txt" : "bin";
}

/*
 * A name as given, made harmless: the last component after '/' or '\'
 * (no directories, whatever the sender's system), control characters
 * as '_', blanks trimmed, at most MSGIN_NAME_MAX_BYTES (a short extension
 * kept).  "" for "", "." and "..": the caller makes a name up.  NULL
 * when out of memory.
 */
static char *
safe_name(const char *name)
{
	const char	*base = name, *p;
	char		*s, *dot;
	size_t		 n, i, elen;

	for (p = name; *p != '\0'; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	if ((s = utf8_clean(base, strlen(base), '_')) == NULL)
		return NULL;
	for (i = 0; s[i] == ' '; i++)
		;
	memmove(s, s + i, strlen(s + i) + 1);
	for (n = strlen(s); n > 0 && s[n - 1] == ' '; n--)
		s[n - 1] = '\0';
	if (n > MSGIN_NAME_MAX_BYTES) {
		dot = strrchr(s, '.');
		elen = dot != NULL && strlen(dot) <= 16 ? strlen(dot) : 0;
		i = MSGIN_NAME_MAX_BYTES - elen;
		while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
			i--;
		memmove(s + i, s + n - elen, elen + 1);
		n = i + elen;
	}
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		s[0] = '\0';
	return s;
}

/*
 * The body in UTF-8: converted from its charset when that is another one
 * iconv(3) knows (the server labels the body UTF-8), else kept as it is.
 */
static int
body_finish(struct ctx *c)
{
	struct msgin	*m = c->m;
	struct sbuf	 sb;
	const char	*cs = m->body_charset;
	size_t		 i;

	if (m->body == NULL) {
		if ((m->body = strdup("")) == NULL)
			return fail(c, MSGIN_ETEMP, "out of memory");
	}
	if (cs == NULL && (cs = m->body_charset = strdup("us-ascii")) == NULL)
		return fail(c, MSGIN_ETEMP, "out of memory");
	if (strcmp(cs, "utf-8") != 0 && strcmp(cs, "us-ascii") != 0 &&
	    m->bodylen > 0) {
		memset(&sb, 0, sizeof(sb));
		if (to_utf8(cs, (unsigned char *)m->body, m->bodylen, &sb) ==
		    0) {
			if (sb.nomem) {
				sb_free(&sb);
				return fail(c, MSGIN_ETEMP, "out of memory");
			}
			if (sb.len > c->lim->body_max) {
				sb_free(&sb);
				return fail(c, MSGIN_EDATA, "the body is over "
				    "%zu bytes in UTF-8", c->lim->body_max);
			}
			free(m->body);
			m->bodylen = sb.len;
			m->body = sb_take(&sb);
			if (m->body == NULL)
				return fail(c, MSGIN_ETEMP, "out of memory");
		}
		sb_free(&sb);
	}
	m->body_utf8 = 1;
	for (i = 0; i < m->bodylen; ) {
		size_t k = utf8_seq((unsigned char *)m->body + i,
		    m->bodylen - i);

		if (k == 0) {
			m->body_utf8 = 0;
			break;
		}
		i += k;
	}
	return 0;
}

/* ---- addresses (RFC 5322 3.4) ---- */

/* Index past a comment starting at v[i] == '(' (nested, quoted-pairs). */
static size_t
skip_comment(const char *v, size_t n, size_t i)
{
	int	depth = 0;

	for (; i < n; i++) {
		if (v[i] == '\\' && i + 1 < n)
			i++;
		else if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && --depth == 0)
			return i + 1;
	}
	return n;
}

/* Index past a quoted string at v[i] == '"', appended with its quotes. */
static size_t
take_quoted(const char *v, size_t n, size_t i, struct sbuf *out)
{
	size_t	start = i;

	for (i++; i < n && v[i] != '"'; i++)
		if (v[i] == '\\' && i + 1 < n)
			i++;
	if (i < n)
		i++;
	sb_add(out, v + start, i - start);
	return i;
}

/*
 * Adds each addr-spec of an address list: display names, comments and
 * groups dropped, an angle address's obsolete route too.  Text that is
 * no address (a bare name) is handed on as it is, for the caller's check
 * to refuse by name.
 */
static int
addr_list(struct ctx *c, const char *v, size_t n, enum msgin_field f,
    int first_only)
{
	struct sbuf	 cur, ang;
	size_t		 i = 0;
	int		 in_group = 0, has_ang = 0, space = 0, r = 0;
	char		 ch;

	memset(&cur, 0, sizeof(cur));
	memset(&ang, 0, sizeof(ang));
	while (i <= n && r == 0) {
		ch = i < n ? v[i] : ',';
		if (i == n || ch == ',' || (ch == ';' && in_group)) {
			if (ch == ';')
				in_group = 0;
			if (has_ang)
				r = addr_add(c, ang.p, ang.len, f, first_only);
			else
				r = addr_add(c, cur.p, cur.len, f, first_only);
			if (r == 1)	/* the first one was all we wanted */
				break;
			cur.len = ang.len = 0;
			has_ang = space = 0;
			i++;
			continue;
		}
		if (ch == '(') {
			i = skip_comment(v, n, i);
			space = 1;
			continue;
		}
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
			space = 1;
			i++;
			continue;
		}
		if (ch == ':' && !in_group && !has_ang) {
			in_group = 1;	/* what came before names the group */
			cur.len = 0;
			space = 0;
			i++;
			continue;
		}
		if (ch == '<') {
			/* angle-addr: "<", [route ":"], addr-spec, ">" */
			ang.len = 0;
			has_ang = 1;
			for (i++; i < n && v[i] != '>'; ) {
				if (v[i] == '"')
					i = take_quoted(v, n, i, &ang);
				else if (v[i] == '(')
					i = skip_comment(v, n, i);
				else if (v[i] == ':' && ang.len > 0 &&
				    ang.p[0] == '@') {
					ang.len = 0;	/* the route */
					i++;
				} else {
					if (v[i] != ' ' && v[i] != '\t')
						sb_addc(&ang, v[i]);
					i++;
				}
			}
			i++;
			continue;
		}
		if (space && cur.len > 0 && ch != '@' && ch != '.' &&
		    cur.p[cur.len - 1] != '@' && cur.p[cur.len - 1] != '.')
			sb_addc(&cur, ' ');
		space = 0;
		if (ch == '"')
			i = take_quoted(v, n, i, &cur);
		else if (ch == '[') {	/* a domain literal, whole */
			size_t s = i;

			while (i < n && v[i] != ']')
				i++;
			i = i < n ? i + 1 : n;
			sb_add(&cur, v + s, i - s);
		} else {
			sb_addc(&cur, ch);
			i++;
		}
	}
	if (r != -1 && (cur.nomem || ang.nomem))
		r = fail(c, MSGIN_ETEMP, "out of memory");
	sb_free(&cur);
	sb_free(&ang);
	return r == -1 ? -1 : 0;
}

/* atext of RFC 5322 3.2.3 */
static int
atext(int ch)
{
	return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-/=?^_`{|}~",
	    ch) != NULL);
}

/*
 * One address: an unneeded quoted local part ("a.b"@x is a.b@x) made
 * plain, then added unless already there (case-insensitively).  1 when
 * first_only and it was taken, 0, -1.
 */
static int
addr_add(struct ctx *c, char *a, size_t n, enum msgin_field f,
    int first_only)
{
	struct msgin	*m = c->m;
	struct msgin_rcpt *nr;
	char		*s, *at;
	size_t		 i, q;
	int		 dotatom;

	if (a == NULL || n == 0)
		return 0;
	if (n > ADDR_MAX)
		return fail(c, MSGIN_EDATA, "an address in %s is over %d "
		    "bytes", first_only ? "From" : f == MSGIN_TO ? "To" :
		    f == MSGIN_CC ? "Cc" : "Bcc", ADDR_MAX);
	if ((s = strndup(a, n)) == NULL)
		return fail(c, MSGIN_ETEMP, "out of memory");
	if (s[0] == '"' && (at = strrchr(s, '@')) != NULL && at > s + 1 &&
	    at[-1] == '"') {
		q = (size_t)(at - s) - 1;	/* the closing quote */
		dotatom = q > 1 && s[1] != '.' && s[q - 1] != '.';
		for (i = 1; i < q && dotatom; i++)
			if (!atext((unsigned char)s[i]) &&
			    !(s[i] == '.' && s[i + 1] != '.'))
				dotatom = 0;
		if (dotatom) {
			memmove(s + q, s + q + 1, strlen(s + q + 1) + 1);
			memmove(s, s + 1, strlen(s + 1) + 1);
		}
	}
	if (first_only) {
		m->from = s;
		return 1;
	}
	for (i = 0; i < m->nrcpt; i++)
		if (strcasecmp(m->rcpt[i].addr, s) == 0) {
			free(s);
			return 0;
		}
	if (m->nrcpt >= c->lim->rcpt_max) {
		free(s);
		return fail(c, MSGIN_EDATA, "more than %zu recipients in To, "
		    "Cc and Bcc", c->lim->rcpt_max);
	}
	if ((nr = reallocarray(m->rcpt, m->nrcpt + 1, sizeof(*nr))) == NULL) {
		free(s);
		return fail(c, MSGIN_ETEMP, "out of memory");
	}
	m->rcpt = nr;
	m->rcpt[m->nrcpt].addr = s;
	m->rcpt[m->nrcpt].field = f;
	m->nrcpt++;
	return 0;
}

/* A header field USMTP does not carry, named once. */
static int
add_dropped(struct ctx *c, const char *name)
{
	struct msgin	*m = c->m;
	char		**nd;
	size_t		 i;

	for (i = 0; i < m->ndropped; i++)
		if (strcasecmp(m->dropped[i], name) == 0)
			return 0;
	if ((nd = reallocarray(m->dropped, m->ndropped + 1,
	    sizeof(*nd))) == NULL)
		return fail(c, MSGIN_ETEMP, "out of memory");
	m->dropped = nd;
	if ((m->dropped[m->ndropped] = strdup(name)) == NULL)
		return fail(c, MSGIN_ETEMP, "out of memory");
	m->ndropped++;
	return 0;
}

/* ---- strings, charsets, encoded words ---- */

static void
sb_add(struct sbuf *b, const void *p, size_t n)
{
	char	*np;
	size_t	 cap;

	if (b->nomem)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap == 0 ? 64 : b->cap;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->nomem = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_addc(struct sbuf *b, char ch)
{
	sb_add(b, &ch, 1);
}

/* The string, NUL-terminated, now the caller's; b is emptied. */
static char *
sb_take(struct sbuf *b)
{
	char	*p = b->p;

	if (p == NULL)
		p = strdup("");
	memset(b, 0, sizeof(*b));
	return p;
}

static void
sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Length of the valid UTF-8 sequence at p (RFC 3629), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t	cp;
	size_t		len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	cp = p[0] & (0xff >> (len + 1));
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/*
 * A copy that is valid UTF-8 with no control characters: each invalid
 * byte becomes U+FFFD, each C0 control or DEL becomes ctl, and blanks at
 * either end are trimmed.
 */
static char *
utf8_clean(const char *in, size_t n, char ctl)
{
	const unsigned char	*p = (const unsigned char *)in;
	struct sbuf		 sb;
	size_t			 i, k, a, b;

	memset(&sb, 0, sizeof(sb));
	for (i = 0; i < n; i += k) {
		if ((k = utf8_seq(p + i, n - i)) == 0) {
			sb_add(&sb, "\xef\xbf\xbd", 3);
			k = 1;
		} else if (k == 1 && (p[i] < 0x20 || p[i] == 0x7f))
			sb_addc(&sb, ctl);
		else
			sb_add(&sb, p + i, k);
	}
	if (sb.nomem) {
		sb_free(&sb);
		return NULL;
	}
	if (sb.p == NULL)
		return strdup("");
	for (a = 0; a < sb.len && sb.p[a] == ' '; a++)
		;
	for (b = sb.len; b > a && sb.p[b - 1] == ' '; b--)
		;
	memmove(sb.p, sb.p + a, b - a);
	sb.p[b - a] = '\0';
	return sb.p;
}

/*
 * A charset name, lower case, RFC 2231 "*language" cut, into out
 * (CHARSET_MAX + 1 bytes).  -1 when it is no plausible name.
 */
static int
charset_norm(const char *cs, size_t n, char *out)
{
	size_t	i;

	for (i = 0; i < n && cs[i] != '*'; i++) {
		if (i == CHARSET_MAX || cs[i] <= ' ' || cs[i] > '~' ||
		    cs[i] == '?' || cs[i] == '"')
			return -1;
		out[i] = (char)tolower((unsigned char)cs[i]);
	}
	out[i] = '\0';
	return i == 0 ? -1 : 0;
}

/*
 * Appends in (charset cs, normalized) as UTF-8: UTF-8 and US-ASCII as
 * they are, ISO-8859-1 by hand, the rest through iconv(3), with U+FFFD
 * for what cannot be converted.  -1 (nothing appended) when the charset
 * is unknown.
 */
static int
to_utf8(const char *cs, const unsigned char *in, size_t n, struct sbuf *out)
{
	iconv_t	 cd;
	char	 buf[4096], *ip, *op;
	size_t	 il, ol, i, r;
	unsigned char u[2];

	if (strcmp(cs, "utf-8") == 0 || strcmp(cs, "utf8") == 0 ||
	    strcmp(cs, "us-ascii") == 0 || strcmp(cs, "ascii") == 0) {
		sb_add(out, in, n);
		return 0;
	}
	if (strcmp(cs, "iso-8859-1") == 0 || strcmp(cs, "latin1") == 0 ||
	    strcmp(cs, "iso8859-1") == 0 || strcmp(cs, "latin-1") == 0) {
		for (i = 0; i < n; i++) {
			if (in[i] < 0x80)
				sb_addc(out, (char)in[i]);
			else {
				u[0] = (unsigned char)(0xc0 | in[i] >> 6);
				u[1] = (unsigned char)(0x80 | (in[i] & 0x3f));
				sb_add(out, u, 2);
			}
		}
		return 0;
	}
	if ((cd = iconv_open("UTF-8", cs)) == (iconv_t)-1)
		return -1;
	ip = (char *)(uintptr_t)in;
	il = n;
	while (il > 0) {
		op = buf;
		ol = sizeof(buf);
		r = iconv(cd, &ip, &il, &op, &ol);
		sb_add(out, buf, (size_t)(op - buf));
		if (r == (size_t)-1 && errno == E2BIG)
			continue;
		if (r == (size_t)-1) {	/* EILSEQ, or EINVAL at the end */
			sb_add(out, "\xef\xbf\xbd", 3);
			ip++;
			il--;
		}
	}
	op = buf;
	ol = sizeof(buf);
	(void)iconv(cd, NULL, NULL, &op, &ol);	/* a shift state's end */
	sb_add(out, buf, (size_t)(op - buf));
	iconv_close(cd);
	return 0;
}

/*
 * Decodes RFC 2047 encoded words, B and Q, in any charset to_utf8 knows
 * (one it does not know stays as written).  Blanks between two encoded
 * words go; the bytes of adjacent words in one charset are joined before
 * conversion, so a character split across words survives.  Words are
 * found anywhere, as mailers do, not only between blanks.
 */
static void
decode_words(const char *in, size_t n, struct sbuf *out)
{
	struct sbuf	 run;
	char		 runcs[CHARSET_MAX + 1] = "", cs[CHARSET_MAX + 1];
	const char	*q, *t, *e, *wend;
	size_t		 i = 0, ws = 0, k;
	int		 after_word = 0, enc, h, acc, nacc, v;
	iconv_t		 cd;

	memset(&run, 0, sizeof(run));
	while (i < n) {
		if (in[i] == '=' && i + 1 < n && in[i + 1] == '?' &&
		    (q = memchr(in + i + 2, '?', n - i - 2)) != NULL &&
		    q + 2 < in + n && q[2] == '?' && strchr("BbQq", q[1]) !=
		    NULL && q[1] != '\0' &&
		    charset_norm(in + i + 2, (size_t)(q - in - i - 2), cs) ==
		    0) {
			t = q + 3;
			for (e = t; e + 1 < in + n && !(e[0] == '?' &&
			    e[1] == '='); e++)
				;
			if (e + 1 >= in + n)
				goto literal;
			wend = e + 2;
			if (strcmp(cs, runcs) != 0) {
				/* a charset iconv does not know: as written */
				if (strcmp(cs, "utf-8") != 0 &&
				    strcmp(cs, "us-ascii") != 0 &&
				    strcmp(cs, "iso-8859-1") != 0) {
					if ((cd = iconv_open("UTF-8", cs)) ==
					    (iconv_t)-1)
						goto literal;
					iconv_close(cd);
				}
				if (run.len > 0)
					(void)to_utf8(runcs,
					    (unsigned char *)run.p, run.len,
					    out);
				run.len = 0;
				memcpy(runcs, cs, sizeof(cs));
			}
			enc = q[1] == 'B' || q[1] == 'b';
			if (!after_word && ws > 0)
				sb_add(out, in + i - ws, ws);
			ws = 0;
			acc = nacc = 0;
			for (; t < e; t++) {
				if (!enc) {
					if (*t == '_')
						sb_addc(&run, ' ');
					else if (*t == '=' && t + 2 < e &&
					    (h = hexval(t[1])) >= 0 &&
					    hexval(t[2]) >= 0) {
						sb_addc(&run, (char)(h << 4 |
						    hexval(t[2])));
						t += 2;
					} else
						sb_addc(&run, *t);
					continue;
				}
				if (*t >= 'A' && *t <= 'Z')
					v = *t - 'A';
				else if (*t >= 'a' && *t <= 'z')
					v = *t - 'a' + 26;
				else if (*t >= '0' && *t <= '9')
					v = *t - '0' + 52;
				else if (*t == '+')
					v = 62;
				else if (*t == '/')
					v = 63;
				else
					continue;
				acc = acc << 6 | v;
				if (++nacc == 4) {
					sb_addc(&run, (char)(acc >> 16));
					sb_addc(&run, (char)(acc >> 8));
					sb_addc(&run, (char)acc);
					acc = nacc = 0;
				}
			}
			if (nacc >= 2)
				sb_addc(&run, (char)(acc >> (6 * nacc - 8)));
			if (nacc == 3)
				sb_addc(&run, (char)(acc >> 2));
			i = (size_t)(wend - in);
			after_word = 1;
			continue;
		}
literal:
		if (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' ||
		    in[i] == '\n') {
			ws++;
			i++;
			continue;
		}
		if (run.len > 0)
			(void)to_utf8(runcs, (unsigned char *)run.p, run.len,
			    out);
		run.len = 0;
		runcs[0] = '\0';
		if (ws > 0)
			sb_add(out, in + i - ws, ws);
		ws = 0;
		after_word = 0;
		/* the literal text up to the next "=?" or blank */
		for (k = i + 1; k < n && in[k] != ' ' && in[k] != '\t' &&
		    in[k] != '\r' && in[k] != '\n' &&
		    !(in[k] == '=' && k + 1 < n && in[k + 1] == '?'); k++)
			;
		sb_add(out, in + i, k - i);
		i = k;
	}
	if (run.len > 0)
		(void)to_utf8(runcs, (unsigned char *)run.p, run.len, out);
	if (ws > 0)
		sb_add(out, in + n - ws, ws);
	if (run.nomem)
		out->nomem = 1;
	sb_free(&run);
}

/* ---- header parameters (RFC 2045 5.1, RFC 2231) ---- */

/* Index past blanks and comments from i. */
static size_t
skip_cfws(const char *v, size_t n, size_t i)
{
	while (i < n) {
		if (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' ||
		    v[i] == '\n')
			i++;
		else if (v[i] == '(')
			i = skip_comment(v, n, i);
		else
			break;
	}
	return i;
}

/* An RFC 2045 token from i, lower-cased into out ("" if none). */
static size_t
get_token(const char *v, size_t n, size_t i, char *out, size_t outsz)
{
	size_t	k = 0;

	while (i < n && v[i] > ' ' && v[i] < 127 &&
	    strchr("()<>@,;:\\\"/[]?=", v[i]) == NULL) {
		if (k + 1 < outsz)
			out[k++] = (char)tolower((unsigned char)v[i]);
		i++;
	}
	out[k] = '\0';
	return i;
}

/*
 * The value of parameter want of a Content-Type or -Disposition value:
 * RFC 2231's name*= (charset'language'%XX) and name*0*=, name*1=...
 * continuations win over a plain name=, whose quoted value may hold
 * RFC 2047 encoded words, as many mailers write them.  raw: the value as
 * it is, without decoding.  1 with a malloc'd UTF-8 *out; 0 when absent.
 */
static int
get_param(const char *v, size_t n, const char *want, char **out, int raw)
{
	struct sec {
		int		 enc;
		struct sbuf	 val;
	}		*sec;
	struct sbuf	 plain, bytes, res;
	char		 attr[TOKEN_MAX + 1], cs[CHARSET_MAX + 1] = "utf-8";
	const char	*star, *q;
	size_t		 i, wl = strlen(want), nsec = 0, k, j;
	int		 have_plain = 0, idx, enc, found = 0, h;

	if ((sec = calloc(PARAM_SECTIONS_MAX, sizeof(*sec))) == NULL)
		return 0;
	memset(&plain, 0, sizeof(plain));
	/* skip the type/subtype or the disposition */
	for (i = 0; i < n && v[i] != ';'; i++)
		if (v[i] == '"')
			for (i++; i < n && v[i] != '"'; i++)
				if (v[i] == '\\')
					i++;
	while (i < n) {
		struct sbuf	 val;

		memset(&val, 0, sizeof(val));
		i = skip_cfws(v, n, i + 1);	/* past the ';' */
		i = get_token(v, n, i, attr, sizeof(attr));
		/* the "*" of RFC 2231 is no token character, take it */
		while (i < n && v[i] == '*') {
			size_t al = strlen(attr);

			if (al + 1 < sizeof(attr)) {
				attr[al] = '*';
				attr[al + 1] = '\0';
			}
			i++;
			i = get_token(v, n, i, attr + strlen(attr),
			    sizeof(attr) - strlen(attr));
		}
		i = skip_cfws(v, n, i);
		if (i < n && v[i] == '=') {
			i = skip_cfws(v, n, i + 1);
			if (i < n && v[i] == '"') {
				for (i++; i < n && v[i] != '"'; i++) {
					if (v[i] == '\\' && i + 1 < n)
						i++;
					sb_addc(&val, v[i]);
				}
				i++;
			} else {
				/* lenient: an unquoted value with blanks
				 * (filename=my file.pdf) runs to the ';' */
				for (k = i; k < n && v[k] != ';'; k++)
					;
				j = k;
				while (j > i && (v[j - 1] == ' ' ||
				    v[j - 1] == '\t'))
					j--;
				sb_add(&val, v + i, j - i);
				i = k;
			}
		}
		while (i < n && v[i] != ';')
			i++;
		if (strncmp(attr, want, wl) != 0) {
			sb_free(&val);
			continue;
		}
		star = attr + wl;
		if (*star == '\0') {
			if (!have_plain) {
				plain = val;
				have_plain = 1;
			} else
				sb_free(&val);
			continue;
		}
		/* name*  name*N  name*N* */
		if (*star != '*') {
			sb_free(&val);
			continue;
		}
		star++;
		if (*star == '\0') {
			idx = 0;
			enc = 1;
		} else {
			for (idx = 0, q = star; *q >= '0' && *q <= '9' &&
			    idx < PARAM_SECTIONS_MAX; q++)
				idx = idx * 10 + (*q - '0');
			enc = *q == '*';
			if (q == star || (*q != '\0' && !(enc && q[1] ==
			    '\0')) || idx >= PARAM_SECTIONS_MAX ||
			    (q - star > 1 && *star == '0')) {
				sb_free(&val);
				continue;
			}
		}
		if (sec[idx].val.p != NULL || sec[idx].enc) {
			sb_free(&val);	/* the first one given counts */
			continue;
		}
		sec[idx].enc = enc;
		sec[idx].val = val;
		if (sec[idx].val.p == NULL)	/* an empty value */
			sb_add(&sec[idx].val, "", 0);
		if ((size_t)idx + 1 > nsec)
			nsec = (size_t)idx + 1;
	}

	memset(&res, 0, sizeof(res));
	if (nsec > 0 && sec[0].val.p != NULL) {
		/* RFC 2231 3: sections 0, 1, ... up to the first gap */
		memset(&bytes, 0, sizeof(bytes));
		for (k = 0; k < nsec && sec[k].val.p != NULL; k++) {
			const char *s = sec[k].val.p;
			size_t sl = sec[k].val.len;

			if (k == 0 && sec[0].enc) {
				const char *a1 = memchr(s, '\'', sl), *a2;

				if (a1 != NULL && (a2 = memchr(a1 + 1, '\'',
				    sl - (size_t)(a1 + 1 - s))) != NULL) {
					if (a1 == s || charset_norm(s,
					    (size_t)(a1 - s), cs) == -1)
						(void)snprintf(cs, sizeof(cs),
						    "utf-8");
					sl -= (size_t)(a2 + 1 - s);
					s = a2 + 1;
				}
			}
			for (j = 0; j < sl; j++) {
				if (sec[k].enc && s[j] == '%' && j + 2 < sl &&
				    (h = hexval(s[j + 1])) >= 0 &&
				    hexval(s[j + 2]) >= 0) {
					sb_addc(&bytes, (char)(h << 4 |
					    hexval(s[j + 2])));
					j += 2;
				} else
					sb_addc(&bytes, s[j]);
			}
		}
		if (raw)
			sb_add(&res, bytes.p != NULL ? bytes.p : "",
			    bytes.len);
		else if (to_utf8(cs, (unsigned char *)(bytes.p != NULL ?
		    bytes.p : ""), bytes.len, &res) == -1)
			sb_add(&res, bytes.p != NULL ? bytes.p : "",
			    bytes.len);
		sb_free(&bytes);
		found = 1;
	} else if (have_plain) {
		if (raw)
			sb_add(&res, plain.p != NULL ? plain.p : "",
			    plain.len);
		else
			decode_words(plain.p != NULL ? plain.p : "",
			    plain.len, &res);
		found = 1;
	}
	for (k = 0; k < PARAM_SECTIONS_MAX; k++)
		sb_free(&sec[k].val);
	free(sec);
	sb_free(&plain);
	if (!found || res.nomem) {
		sb_free(&res);
		return 0;
	}
	/* a %00 or =00 must not cut a name short: controls become '_' */
	if (!raw) {
		*out = utf8_clean(res.p != NULL ? res.p : "", res.len, '_');
		sb_free(&res);
	} else
		*out = sb_take(&res);
	return *out != NULL;
}

/* ---- the interface ---- */

int
msgin_read(int fd, const struct msgin_limits *lim, struct msgin *m,
    const char **why)
{
	struct ctx	 c;
	struct part	 top;
	const char	*t;
	int		 r;

	memset(m, 0, sizeof(*m));
	memset(&c, 0, sizeof(c));
	c.lim = lim;
	c.m = m;
	c.fd = fd;
	c.at_bol = 1;
	c.term = -1;
	if ((t = lim->tmpdir) == NULL &&
	    ((t = getenv("TMPDIR")) == NULL || t[0] == '\0'))
		t = "/tmp";
	c.tmpdir = t;
	part_init(&top, "text", "plain");
	c.top = &top;
	c.in = malloc(RD_BUF_BYTES);
	c.wbuf = malloc(WR_BUF_BYTES);
	m->att = calloc(lim->attach_count_max + 1, sizeof(*m->att));
	if (c.in == NULL || c.wbuf == NULL || m->att == NULL) {
		r = fail(&c, MSGIN_ETEMP, "out of memory");
		goto out;
	}
	if ((r = read_header(&c, 1, &top)) == 0)
		r = process_part(&c, &top, 0);
	else if (r == 1)
		r = 0;		/* a header and nothing else */
	if (r == 0 && c.nseen > lim->attach_count_max)
		r = fail(&c, MSGIN_EDATA, "the message has %zu attachments; "
		    "at most %zu can be sent", c.nseen,
		    lim->attach_count_max);
	if (r == 0)
		r = body_finish(&c);
	if (r == 0 && m->subject == NULL && (m->subject = strdup("")) ==
	    NULL)
		r = fail(&c, MSGIN_ETEMP, "out of memory");
out:
	free(top.name);
	free(c.in);
	free(c.wbuf);
	sb_free(&c.field);
	if (r == -1) {
		enum msgin_error e = m->error;

		/* the attachment being written, not yet counted */
		if (c.sink == SINK_FILE && c.att != NULL && m->att != NULL &&
		    c.att == &m->att[m->natt] && c.att->fd != -1)
			close(c.att->fd);
		msgin_free(m);
		m->error = e;
		*why = why_buf;
		return -1;
	}
	return 0;
}

void
msgin_free(struct msgin *m)
{
	size_t	i;

	free(m->subject);
	free(m->from);
	for (i = 0; i < m->nrcpt; i++)
		free(m->rcpt[i].addr);
	free(m->rcpt);
	free(m->body);
	free(m->body_charset);
	for (i = 0; m->att != NULL && i < m->natt; i++) {
		if (m->att[i].fd != -1)
			close(m->att[i].fd);
		free(m->att[i].name);
		free(m->att[i].type);
	}
	free(m->att);
	for (i = 0; i < m->ndropped; i++)
		free(m->dropped[i]);
	free(m->dropped);
	memset(m, 0, sizeof(*m));
}
