/*
 * clientconf-test.c -- unit tests of clientconf.c, TAP on stdout: every
 * key, quoting and unsetting, defaults before and after an account, ": A"
 * lists, which account is chosen, each error with its line, the refusal
 * of files others may read or that are not ours, the default path, and
 * passwords from a file or a command (success, failure, signal, nothing
 * printed, an empty line, a hanging command, a command's leftovers).
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "usmtp.h"
#include "tap.h"

#define PW_BYTES	64
#define SHORT_MS	300	/* deadline of the hanging commands */

static char	dir[] = "/tmp/clientconf-test.XXXXXX";
static char	path[512];

static const char *conf(const char *name, const char *text, int mode);
static int	load(struct clientconf *cf, const char *text,
		    const char *account, const char **why);
static void	unload(struct clientconf *cf, int r);
static void	err(const char *text, const char *want);
static int	has(const char *s, const char *sub);
static void	test_keys(void);
static void	test_sections(void);
static void	test_choice(void);
static void	test_errors(void);
static void	test_files(void);
static void	test_path(void);
static void	test_pwfile(void);
static void	test_pwcmd(void);

/* Writes text to dir/name with mode; returns its path (static). */
static const char *
conf(const char *name, const char *text, int mode)
{
	int	fd;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fchmod(fd, (mode_t)mode) == -1 || close(fd) == -1) {
		perror(path);
		exit(1);
	}
	return path;
}

static int
load(struct clientconf *cf, const char *text, const char *account,
    const char **why)
{
	return clientconf_load(cf, conf("c.conf", text, 0600), 1, account,
	    why);
}

/* Frees cf when r, what load returned, says it was loaded. */
static void
unload(struct clientconf *cf, int r)
{
	if (r == 0)
		clientconf_free(cf);
}

static int
has(const char *s, const char *sub)
{
	return s != NULL && strstr(s, sub) != NULL;
}

/* text must fail to load, with a reason that holds want. */
static void
err(const char *text, const char *want)
{
	struct clientconf	 cf;
	const char		*why = NULL;
	int			 r;

	r = load(&cf, text, NULL, &why);
	ok(r == -1 && has(why, want), "error \"%s\" (got %d: %s)", want, r,
	    r == -1 ? why : "loaded");
	unload(&cf, r);
}

static void
test_keys(void)
{
	struct clientconf	 cf;
	const char		*why = "";
	int			 r;

	setenv("HOME", "/home/tester", 1);
	r = load(&cf,
	    "# every key\n"
	    "account work\n"
	    "host mail.example.org\n"
	    "  port\t2525  \n"
	    "ca ~/ca.pem\n"
	    "user alice@example.org\n"
	    "password-file ~/pw\n"
	    "timeout 0\n"
	    "dialect reference\n"
	    "secure require\n", NULL, &why);
	ok(r == 0, "a file with every key loads (%s)", r ? why : "ok");
	if (r != 0)
		return;
	ok(cf.account != NULL && strcmp(cf.account, "work") == 0 &&
	    cf.account_line == 2, "the account is work, line 2");
	ok(strcmp(cf.host, "mail.example.org") == 0, "host");
	ok(cf.port == 2525, "port, blanks around the value trimmed");
	ok(strcmp(cf.ca, "/home/tester/ca.pem") == 0, "ca, ~ expanded (%s)",
	    cf.ca);
	ok(strcmp(cf.user, "alice@example.org") == 0, "user");
	ok(strcmp(cf.password_file, "/home/tester/pw") == 0 &&
	    cf.password_command == NULL, "password-file, ~ expanded");
	ok(cf.timeout == 0, "timeout 0 (none) is kept apart from unset");
	ok(cf.dialect == CONF_DIALECT_REFERENCE, "dialect reference");
	ok(cf.secure == CONF_SECURE_REQUIRE, "secure require");
	ok(has(cf.path, "c.conf"), "the path is kept");
	clientconf_free(&cf);

	r = load(&cf, "account a\r\nhost h\r\nport 1\r\ntimeout 86400\r\n"
	    "dialect document\r\nsecure off\r\n"
	    "password-command \"  gpg -d x  \"\r\n", NULL, &why);
	ok(r == 0 && strcmp(cf.host, "h") == 0 && cf.port == 1 &&
	    cf.timeout == 86400 && cf.dialect == CONF_DIALECT_DOCUMENT &&
	    cf.secure == CONF_SECURE_OFF, "CRLF lines, the bounds 1 and 86400");
	ok(r == 0 && strcmp(cf.password_command, "  gpg -d x  ") == 0,
	    "double quotes keep the blanks inside (got '%s')",
	    r == 0 ? cf.password_command : "");
	unload(&cf, r);

	r = load(&cf, "account a\nhost 65535\nport 65535\ndialect auto\n"
	    "secure prefer\nuser \"\"\nca x # not a comment\n", NULL, &why);
	ok(r == 0 && cf.port == 65535 && cf.dialect == CONF_DIALECT_AUTO &&
	    cf.secure == CONF_SECURE_PREFER && cf.user == NULL &&
	    strcmp(cf.ca, "x # not a comment") == 0,
	    "port 65535, auto, prefer; \"\" unsets; # inside a line is text");
	unload(&cf, r);

	r = load(&cf, "account a\n", NULL, &why);
	ok(r == 0 && cf.host == NULL && cf.port == 0 && cf.ca == NULL &&
	    cf.user == NULL && cf.password_file == NULL &&
	    cf.password_command == NULL && cf.timeout == -1 &&
	    cf.dialect == CONF_DIALECT_UNSET &&
	    cf.secure == CONF_SECURE_UNSET, "an empty account sets nothing");
	unload(&cf, r);
}

static void
test_sections(void)
{
	struct clientconf	 cf;
	const char		*why = "";
	int			 r;
	static const char	 text[] =
	    "defaults\n"
	    "port 2525\n"
	    "password-command pass show usmtp\n"
	    "account early\n"
	    "host early.example\n"
	    "defaults\n"
	    "timeout 30\n"
	    "port\n"
	    "account late\n"
	    "host late.example\n"
	    "password-file /p\n"
	    "account mix : early\n"
	    "user u@example.org\n"
	    "account plain\n"
	    "password-command\n";

	r = load(&cf, text, "early", &why);
	ok(r == 0 && cf.port == 2525 && cf.timeout == -1 &&
	    strcmp(cf.password_command, "pass show usmtp") == 0,
	    "an account takes the defaults given before it, not after (%s)",
	    r ? why : "ok");
	unload(&cf, r);
	r = load(&cf, text, "late", &why);
	ok(r == 0 && cf.port == 0 && cf.timeout == 30 &&
	    strcmp(cf.host, "late.example") == 0,
	    "a later defaults section changes and unsets for later accounts");
	ok(r == 0 && strcmp(cf.password_file, "/p") == 0 &&
	    cf.password_command == NULL,
	    "password-file replaces an inherited password-command");
	unload(&cf, r);
	r = load(&cf, text, "mix", &why);
	ok(r == 0 && strcmp(cf.host, "early.example") == 0 &&
	    cf.timeout == 30 && strcmp(cf.user, "u@example.org") == 0,
	    "account mix : early takes early's keys over the defaults");
	unload(&cf, r);
	r = load(&cf, text, "plain", &why);
	ok(r == 0 && cf.password_command == NULL && cf.password_file == NULL,
	    "an empty value unsets an inherited key");
	unload(&cf, r);
}

static void
test_choice(void)
{
	struct clientconf	 cf;
	const char		*why = "";
	int			 r;

	r = load(&cf, "account a\nhost A\naccount default\nhost D\n"
	    "account b\nhost B\n", NULL, &why);
	ok(r == 0 && strcmp(cf.account, "default") == 0 &&
	    strcmp(cf.host, "D") == 0, "without a name: the account default");
	unload(&cf, r);
	r = load(&cf, "account a\nhost A\naccount b\nhost B\n", NULL, &why);
	ok(r == 0 && strcmp(cf.account, "a") == 0,
	    "without a name and a default: the first account");
	unload(&cf, r);
	r = load(&cf, "account a\nhost A\naccount b\nhost B\n", "b", &why);
	ok(r == 0 && strcmp(cf.host, "B") == 0, "the account asked for");
	unload(&cf, r);
	r = load(&cf, "account a\nhost A\n", "nope", &why);
	ok(r == -1 && has(why, "c.conf: no account nope"),
	    "an account that is not there is an error (%s)", why);
	r = load(&cf, "host H\nport 99\naccount other\n", NULL, &why);
	ok(r == 0 && strcmp(cf.account, "default") == 0 &&
	    cf.account_line == 0 && strcmp(cf.host, "H") == 0 &&
	    cf.port == 99, "keys before any section make account default");
	unload(&cf, r);
	r = load(&cf, "defaults\nhost H\n", NULL, &why);
	ok(r == 0 && cf.account == NULL && strcmp(cf.host, "H") == 0,
	    "no account at all: the defaults");
	unload(&cf, r);
	r = load(&cf, "# nothing\n\n", NULL, &why);
	ok(r == 0 && cf.account == NULL && cf.host == NULL,
	    "a file of comments loads empty");
	unload(&cf, r);
}

static void
test_errors(void)
{
	char	*big;

	err("account a\nhots x\n", "c.conf:2: unknown key 'hots'");
	err("account a\n\nport 0\n", ":3: port must be a number from 1 to "
	    "65535, not '0'");
	err("account a\nport 65536\n", ":2: port must be");
	err("account a\nport 25x\n", ":2: port must be");
	err("account a\nport -1\n", ":2: port must be");
	err("account a\ntimeout 86401\n", ":2: timeout must be a number of "
	    "seconds from 0 to 86400, not '86401'");
	err("account a\ntimeout -5\n", ":2: timeout must be");
	err("account a\ndialect ref\n", ":2: dialect must be auto, document "
	    "or reference, not 'ref'");
	err("account a\nsecure yes\n", ":2: secure must be prefer, require "
	    "or off, not 'yes'");
	err("account a\n# x\naccount a\n", ":3: account a was already "
	    "defined on line 1");
	err("host h\naccount default\n", ":2: account default was already "
	    "defined by the keys before the first section");
	err("account\n", ":1: account needs a name");
	err("account a b\n", ":1: an account name has no spaces or commas");
	err("account b : a\n", ":1: account a is not defined before this "
	    "line");
	err("defaults x\n", ":1: defaults takes no value");
	err("account a\nhost = x\n", ":2: write 'host VALUE', without '='");
	err("account a\nport=25\n", ":2: write 'port VALUE', without '='");
	err("account a\npassword-file /x\npassword-command y\n",
	    ":3: password-file and password-command both given in one "
	    "section (the other on line 2)");
	err("account a\nuser alice example\n", ":2: user must be an address "
	    "without spaces");
	err("account a\nHost x\n", ":2: unknown key 'Host'");
	if ((big = malloc(CONF_LINE_MAX_BYTES + 64)) != NULL) {
		/* line 2 starts at 10: 4096 bytes pass, 4097 do not */
		memset(big, 'x', CONF_LINE_MAX_BYTES + 11);
		memcpy(big, "account a\nhost ", 15);
		big[CONF_LINE_MAX_BYTES + 10] = '\n';
		big[CONF_LINE_MAX_BYTES + 11] = '\0';
		{
			struct clientconf	 cf;
			const char		*why = "";

			ok(load(&cf, big, NULL, &why) == 0 &&
			    strlen(cf.host) == CONF_LINE_MAX_BYTES - 5,
			    "a line of 4096 bytes is fine");
			clientconf_free(&cf);
		}
		big[CONF_LINE_MAX_BYTES + 10] = 'x';
		big[CONF_LINE_MAX_BYTES + 11] = '\n';
		big[CONF_LINE_MAX_BYTES + 12] = '\0';
		err(big, ":2: line longer than 4096 bytes");
		free(big);
	}
	{
		struct clientconf	 cf;
		const char		*why = "";
		int			 fd, r;

		(void)snprintf(path, sizeof(path), "%s/nul.conf", dir);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		(void)!write(fd, "account a\nhost x\0y\n", 19);
		close(fd);
		r = clientconf_load(&cf, path, 1, NULL, &why);
		ok(r == -1 && has(why, "nul.conf:2: a NUL byte"),
		    "a NUL byte is an error with its line (%s)", why);
	}
}

static void
test_files(void)
{
	struct clientconf	 cf;
	const char		*why = "", *p;
	char			 want[600];
	int			 r;

	p = conf("open.conf", "account a\n", 0644);
	r = clientconf_load(&cf, p, 1, NULL, &why);
	(void)snprintf(want, sizeof(want), "%s: group or others may access "
	    "it (mode 0644); run: chmod 600 %s", p, p);
	ok(r == -1 && strcmp(why, want) == 0,
	    "a file others may read is refused with the chmod (%s)", why);
	p = conf("group.conf", "account a\n", 0620);
	r = clientconf_load(&cf, p, 1, NULL, &why);
	ok(r == -1 && has(why, "chmod 600"), "so is one the group may write");
	p = conf("exec.conf", "account a\n", 0700);
	r = clientconf_load(&cf, p, 1, NULL, &why);
	ok(r == -1 && has(why, "(mode 0700)"), "and an executable one");
	p = conf("ro.conf", "account a\n", 0400);
	r = clientconf_load(&cf, p, 1, NULL, &why);
	ok(r == 0, "mode 0400 is fine (%s)", r ? why : "ok");
	unload(&cf, r);
	if (geteuid() == 0) {
		p = conf("theirs.conf", "account a\n", 0600);
		if (chown(p, 1, 1) == 0) {
			r = clientconf_load(&cf, p, 1, NULL, &why);
			ok(r == -1 && has(why, "owned by uid 1, not by you "
			    "(uid 0)"), "another user's file is refused (%s)",
			    why);
		}
	} else
		printf("# skipped: the file of another owner needs root\n");

	(void)snprintf(path, sizeof(path), "%s/missing.conf", dir);
	r = clientconf_load(&cf, path, 0, NULL, &why);
	ok(r == 1, "a missing default file is not an error");
	r = clientconf_load(&cf, path, 1, NULL, &why);
	ok(r == -1 && has(why, "missing.conf: No such file"),
	    "a missing --config file is (%s)", why);
	r = clientconf_load(&cf, path, 0, "work", &why);
	ok(r == -1 && has(why, "no such file, so no account work"),
	    "and so is a missing default file when an account is asked for");
	r = clientconf_load(&cf, dir, 1, NULL, &why);
	ok(r == -1 && has(why, "is a directory"), "a directory is refused");
}

static void
test_path(void)
{
	const char	*why = "";
	char		*p;

	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	p = clientconf_path(&why);
	ok(p != NULL && strcmp(p, "/xdg/usmtp/client.conf") == 0,
	    "XDG_CONFIG_HOME is honoured (%s)", p ? p : why);
	free(p);
	setenv("XDG_CONFIG_HOME", "relative", 1);
	setenv("HOME", "/home/h", 1);
	p = clientconf_path(&why);
	ok(p != NULL && strcmp(p, "/home/h/.config/usmtp/client.conf") == 0,
	    "a relative XDG_CONFIG_HOME is ignored: HOME (%s)", p ? p : why);
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("HOME");
	p = clientconf_path(&why);
	ok(p != NULL && strstr(p, "/.config/usmtp/client.conf") != NULL &&
	    p[0] == '/', "without HOME: the password database (%s)",
	    p ? p : why);
	free(p);
	setenv("HOME", "/home/tester", 1);
}

static void
test_pwfile(void)
{
	char		 pw[PW_BYTES];
	const char	*why = "", *p;
	size_t		 len = 0;
	int		 r;

	p = conf("pw1", "s3cret\r\nsecond line\n", 0600);
	r = clientconf_password_file(p, pw, sizeof(pw), &len, &why);
	ok(r == 0 && len == 6 && strcmp(pw, "s3cret") == 0,
	    "password file: the first line, CR LF cut (%s)", r ? why : pw);
	p = conf("pw2", "no newline", 0600);
	r = clientconf_password_file(p, pw, sizeof(pw), &len, &why);
	ok(r == 0 && strcmp(pw, "no newline") == 0, "a file without a LF");
	p = conf("pw3", "\nsecond\n", 0600);
	r = clientconf_password_file(p, pw, sizeof(pw), &len, &why);
	ok(r == -1 && has(why, "pw3: the password (the first line) is "
	    "empty") && pw[0] == '\0', "an empty first line is refused (%s)",
	    why);
	p = conf("pw4", "", 0600);
	r = clientconf_password_file(p, pw, sizeof(pw), &len, &why);
	ok(r == -1 && has(why, "is empty"), "so is an empty file");
	p = conf("pw5", "0123456789012345678901234567890123456789"
	    "0123456789012345678901234\n", 0600);
	r = clientconf_password_file(p, pw, sizeof(pw), &len, &why);
	ok(r == -1 && has(why, "longer than 63 bytes"),
	    "a password over the buffer is refused (%s)", why);
	p = conf("pw6", "012345678901234567890123456789012345678901234"
	    "567890123456789012\n", 0600);
	r = clientconf_password_file(p, pw, sizeof(pw), &len, &why);
	ok(r == 0 && len == 63, "63 bytes fit a 64-byte buffer");
	p = conf("pw7", "secret\n", 0640);
	r = clientconf_password_file(p, pw, sizeof(pw), &len, &why);
	ok(r == -1 && has(why, "pw7: group or others may access it (mode "
	    "0640); run: chmod 600 "), "a password file the group may read "
	    "is refused (%s)", why);
	(void)snprintf(path, sizeof(path), "%s/none", dir);
	r = clientconf_password_file(path, pw, sizeof(pw), &len, &why);
	ok(r == -1 && has(why, "none: No such file"), "a missing one too");
}

static void
test_pwcmd(void)
{
	struct clientconf	 cf;
	char			 pw[PW_BYTES];
	const char		*why = "";
	size_t			 len = 0;
	long			 t0;
	int			 r, fd, in[2];

#define RUN(cmd, ms) clientconf_password_command(cmd, ms, pw, sizeof(pw), \
	    &len, &why)
	r = RUN("printf 'hunter2\\r\\nmore\\n'", 5000);
	ok(r == 0 && len == 7 && strcmp(pw, "hunter2") == 0,
	    "command: the first line, CR LF cut (%s)", r ? why : pw);
	r = RUN("printf 'no-newline'", 5000);
	ok(r == 0 && strcmp(pw, "no-newline") == 0, "output without a LF");
	r = RUN("sleep 0.1; echo slow", 0);
	ok(r == 0 && strcmp(pw, "slow") == 0, "timeout 0: no deadline (%s)",
	    r ? why : pw);
	r = RUN("echo pw; exit 3", 5000);
	ok(r == -1 && has(why, "exited with status 3") && pw[0] == '\0',
	    "a failing command is an error with its status (%s)", why);
	r = RUN("no-such-command-here 2>/dev/null", 5000);
	ok(r == -1 && has(why, "status 127 (command not found?)"),
	    "a command not found (%s)", why);
	r = RUN("kill -TERM $$", 5000);
	ok(r == -1 && has(why, "killed by signal 15"),
	    "a command killed by a signal (%s)", why);
	r = RUN("true", 5000);
	ok(r == -1 && has(why, "printed nothing"), "no output (%s)", why);
	r = RUN("echo; echo second", 5000);
	ok(r == -1 && has(why, "empty password"), "an empty first line (%s)",
	    why);
	r = RUN("head -c 70000 /dev/zero | tr '\\0' x", 5000);
	ok(r == -1 && has(why, "printed more than 65536 bytes"),
	    "endless output is cut off (%s)", why);
	r = RUN("printf '%0100d\\n' 0", 5000);
	ok(r == -1 && has(why, "longer than 63 bytes"), "an overlong "
	    "password (%s)", why);

	t0 = clock_ms();
	r = RUN("sleep 10", SHORT_MS);
	t0 = clock_ms() - t0;
	ok(r == -1 && has(why, "did not finish within 300 ms; it was killed")
	    && t0 < 2000, "a hanging command is killed at the deadline "
	    "(%ld ms: %s)", t0, why);
	t0 = clock_ms();
	r = RUN("echo pw; exec >&-; sleep 10", SHORT_MS);
	t0 = clock_ms() - t0;
	ok(r == -1 && has(why, "did not finish") && t0 < 2000,
	    "so is one that closes its output and hangs (%ld ms)", t0);
	t0 = clock_ms();
	r = RUN("echo quick; sleep 3 &", 5000);
	t0 = clock_ms() - t0;
	ok(r == 0 && strcmp(pw, "quick") == 0 && t0 < 2000,
	    "a process left behind holding the pipe is not waited for "
	    "(%ld ms)", t0);
	ok(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD,
	    "every command was reaped");

	/* The command gets neither our standard input nor other fds. */
	if (pipe(in) == 0) {
		(void)!write(in[1], "message\n", 8);
		close(in[1]);
		fd = dup(0);
		dup2(in[0], 0);
		close(in[0]);
		r = RUN("if read x; then echo got-$x; else echo none; fi; "
		    "test -e /dev/fd/5 && echo fd5 >&2; exit 0", 5000);
		ok(r == 0 && strcmp(pw, "none") == 0,
		    "standard input is /dev/null, not ours (%s)", r ? why : pw);
		dup2(fd, 0);
		close(fd);
	}
	fd = open("/dev/null", O_RDONLY);
	if (fd != -1 && dup2(fd, 5) == 5) {
		r = RUN("if test -e /dev/fd/5; then echo open; else "
		    "echo closed; fi", 5000);
		ok(r == 0 && strcmp(pw, "closed") == 0,
		    "descriptors above 2 are closed (%s)", r ? why : pw);
		close(5);
	}
	if (fd != -1)
		close(fd);

	/* clientconf_password: which source, and the file named. */
	r = load(&cf, "account a\npassword-command exit 4\n", NULL, &why);
	if (r == 0) {
		r = clientconf_password(&cf, 5000, pw, sizeof(pw), &len, &why);
		ok(r == -1 && has(why, "c.conf: password-command exited with "
		    "status 4"), "the file of a failing command is named (%s)",
		    why);
		clientconf_free(&cf);
	}
	conf("pwf", "from-file\n", 0600);
	r = load(&cf, "account a\npassword-command echo from-cmd\n", NULL,
	    &why);
	if (r == 0) {
		r = clientconf_password(&cf, 5000, pw, sizeof(pw), &len, &why);
		ok(r == 0 && strcmp(pw, "from-cmd") == 0, "password-command");
		free(cf.password_file);
		(void)snprintf(path, sizeof(path), "%s/pwf", dir);
		cf.password_file = strdup(path);
		r = clientconf_password(&cf, 5000, pw, sizeof(pw), &len, &why);
		ok(r == 0 && strcmp(pw, "from-file") == 0,
		    "a password file set by the caller comes first");
		clientconf_free(&cf);
	}
	r = load(&cf, "account a\n", NULL, &why);
	if (r == 0) {
		r = clientconf_password(&cf, 5000, pw, sizeof(pw), &len, &why);
		ok(r == 1, "neither set: 1");
		clientconf_free(&cf);
	}
#undef RUN
}

int
main(void)
{
	must(mkdtemp(dir) != NULL, "mkdtemp");
	test_keys();
	test_sections();
	test_choice();
	test_errors();
	test_files();
	test_path();
	test_pwfile();
	test_pwcmd();
	remove_tree(dir);
	return tap_done();
}
