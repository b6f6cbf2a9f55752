/*
 * dial.c -- reaching a USMTP server, for usmtp-client and the test
 * tool usmtp-script: a TCP connection with a deadline, a handler
 * started over a socket pair (--exec), and the check of the server's
 * certificate against the trusted CA (usmtp(7), Handshake).
 *
 * Calls OpenSSL and libc.  Never prints, logs or exits: failures return
 * -1 or NULL with a static reason (*why) and, where the caller must tell
 * kinds of failure apart, a DIAL_* code.
 */
#define _GNU_SOURCE		/* memmem */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "usmtp.h"

#define PEM_BEGIN	"-----BEGIN CERTIFICATE-----"

static int	 is_ip_literal(const char *host);

const char *
dial_host(const char *host, char *buf, size_t bufsz)
{
	size_t	n = strlen(host);

	if (host[0] != '[')
		return host;
	if (n < 3 || host[n - 1] != ']' ||
	    snprintf(buf, bufsz, "%.*s", (int)(n - 2), host + 1) >= (int)bufsz)
		return NULL;
	return buf;
}

int
dial_tcp(const char *host, const char *port, int timeout_ms, int *kind,
    const char **why)
{
	static char	 reason[160];
	struct addrinfo	 hints, *res, *ai;
	struct pollfd	 pfd;
	socklen_t	 sl;
	int		 fd = -1, r, err = 0;

	*kind = DIAL_UNAVAILABLE;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		/* A name that does not resolve now may resolve later. */
		if (r == EAI_AGAIN)
			*kind = DIAL_TEMPFAIL;
		snprintf(reason, sizeof(reason), "%s", gai_strerror(r));
		*why = reason;
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd == -1) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			do
				r = poll(&pfd, 1, timeout_ms);
			while (r == -1 && errno == EINTR);
			sl = sizeof(err);
			if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR,
			    &err, &sl) == 0 && err == 0)
				break;
			if (r == 0)
				err = ETIMEDOUT;
		} else
			err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1) {
		switch (err) {
		case ECONNREFUSED:
		case ETIMEDOUT:
		case EHOSTUNREACH:
		case ENETUNREACH:
		case ENETDOWN:
		case EHOSTDOWN:
		case ECONNRESET:
			*kind = DIAL_TEMPFAIL;
			break;
		}
		snprintf(reason, sizeof(reason), "%s", strerror(err));
		*why = reason;
		return -1;
	}
	*kind = DIAL_OK;
	return fd;
}

int
dial_exec(const char *cmd, pid_t *pid, const char **why)
{
	int	sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		*why = "socketpair failed";
		return -1;
	}
	fflush(stdout);
	switch (*pid = fork()) {
	case -1:
		close(sv[0]);
		close(sv[1]);
		*why = "fork failed";
		return -1;
	case 0:
		signal(SIGPIPE, SIG_DFL);
		if (dup2(sv[1], 0) == -1 || dup2(sv[1], 1) == -1)
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	default:
		break;
	}
	close(sv[1]);
	/* Our end is non-blocking, as a TCP one is: every wait is a poll
	 * with a deadline (frame.c). */
	if (fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) == -1) {
		close(sv[0]);
		*why = "fcntl failed";
		return -1;
	}
	return sv[0];
}

int
dial_reap(pid_t *pid, int *status)
{
	pid_t	r;

	if (*pid <= 0)
		return -1;
	do
		r = waitpid(*pid, status, 0);
	while (r == -1 && errno == EINTR);
	*pid = -1;
	return r == -1 ? -1 : 0;
}

X509_STORE *
dial_load_ca(const char *path, const char **why)
{
	static char	 reason[64];
	X509_STORE	*store;
	FILE		*f;

	/* fopen first: a clear reason for a missing or unreadable file. */
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(reason, sizeof(reason), "%s", strerror(errno));
		*why = reason;
		return NULL;
	}
	fclose(f);
	if ((store = X509_STORE_new()) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if (X509_STORE_load_file(store, path) != 1) {
		X509_STORE_free(store);
		ERR_clear_error();
		*why = "no PEM certificate in it";
		return NULL;
	}
	return store;
}

static int
is_ip_literal(const char *host)
{
	unsigned char	a[16];

	return inet_pton(AF_INET, host, a) == 1 ||
	    inet_pton(AF_INET6, host, a) == 1;
}

X509 *
dial_verify_cert(X509_STORE *store, const unsigned char *frame, size_t len,
    const char *host, int *kind, const char **why)
{
	static char		 reason[160];
	const unsigned char	*pem;
	BIO			*bio;
	X509			*cert;
	X509_STORE_CTX		*ctx;

	*kind = DIAL_PROTOCOL;
	pem = memmem(frame, len, PEM_BEGIN, strlen(PEM_BEGIN));
	if (pem == NULL || (size_t)(frame + len - pem) > INT_MAX) {
		*why = "the 202 reply holds no certificate";
		return NULL;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)(frame + len - pem))) == NULL) {
		*kind = DIAL_INTERNAL;
		*why = "out of memory";
		return NULL;
	}
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (cert == NULL) {
		ERR_clear_error();
		*why = "the server's certificate cannot be parsed";
		return NULL;
	}
	/*
	 * The purpose of a TLS server certificate: an extended key usage,
	 * where present, must allow serverAuth (a certificate made for
	 * client authentication or e-mail protection only is refused), as
	 * TLS libraries require.
	 */
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, store, cert, NULL) != 1 ||
	    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER) != 1) {
		X509_STORE_CTX_free(ctx);
		X509_free(cert);
		*kind = DIAL_INTERNAL;
		*why = "cannot set up certificate verification";
		return NULL;
	}
	if (X509_verify_cert(ctx) != 1) {
		snprintf(reason, sizeof(reason), "not trusted: %s",
		    X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
		X509_STORE_CTX_free(ctx);
		X509_free(cert);
		ERR_clear_error();
		*kind = DIAL_UNTRUSTED;
		*why = reason;
		return NULL;
	}
	X509_STORE_CTX_free(ctx);
	if (host != NULL && (is_ip_literal(host) ?
	    X509_check_ip_asc(cert, host, 0) != 1 :
	    X509_check_host(cert, host, strlen(host), 0, NULL) != 1)) {
		snprintf(reason, sizeof(reason), "not valid for %.100s", host);
		X509_free(cert);
		*kind = DIAL_UNTRUSTED;
		*why = reason;
		return NULL;
	}
	*kind = DIAL_OK;
	return cert;
}

EVP_PKEY *
dial_rsa_key(X509 *cert, const char **why)
{
	EVP_PKEY	*pub;

	if ((pub = X509_get_pubkey(cert)) == NULL) {
		*why = "no public key in the server's certificate";
		return NULL;
	}
	if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(pub) != 2048) {
		EVP_PKEY_free(pub);
		*why = "the server's key is not RSA-2048";
		return NULL;
	}
	return pub;
}
