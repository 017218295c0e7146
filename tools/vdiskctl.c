/* vdiskctl: steer a running vdiskd through its control socket.
 *
 *   vdiskctl list
 *   vdiskctl [-s SOCKET | NAME] COMMAND [ARGS] [--json]
 *
 * Exit status: 0 ok, 1 the daemon answered an error (its message on
 * stderr), 2 usage error or the daemon could not be reached. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tools/ctl-client.h"
#include "tools/ctl-text.h"
#include "common/rundir.h"

enum { EXIT_OK = 0, EXIT_DAEMON = 1, EXIT_USAGE = 2 };

/* How long to wait for a reply: commands are quick except pause (its own
 * timeout plus slack) and flush (as long as the disk takes). */
enum {
	REPLY_TIMEOUT_MS = 60 * 1000,
	FLUSH_TIMEOUT_MS = 3600 * 1000,
	LIST_TIMEOUT_MS = 2000,
};

struct cli {
	const char *socket;		/* -s */
	const char *name;		/* NAME */
	char path[PATH_MAX];		/* the socket in use */
	bool json;
	struct ctl_conn *conn;
};

struct vcmd {
	const char *name;
	const char *args;	/* synopsis after the name */
	const char *help;	/* one line */
	const char *details;	/* for COMMAND --help; may be NULL */
	int (*run)(struct cli *cli, int argc, char **argv);
};

static const struct vcmd *vdiskctl_find_cmd(const char *name);
static void vdiskctl_print_usage(FILE *f);

static int vdiskctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int vdiskctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("vdiskctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'vdiskctl --help'.\n", stderr);
	return EXIT_USAGE;
}

/* ---- talking to the daemon ---- */

static bool vdiskctl_is_dir_entry_ctl(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcmp(name + n - 4, ".ctl") == 0 && name[0] != '.';
}

static int vdiskctl_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.ctl names in dir, sorted.  Returns the count or -errno. */
static int vdiskctl_scan_rundir(const char *dir, char ***out)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	int n = 0;

	*out = NULL;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char **nv;

		if (!vdiskctl_is_dir_entry_ctl(de->d_name))
			continue;
		nv = realloc(v, sizeof(*v) * (size_t)(n + 1));
		if (!nv || !(nv[n] = strdup(de->d_name))) {
			free(nv ? nv : v);
			closedir(d);
			return -ENOMEM;
		}
		v = nv;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, (size_t)n, sizeof(*v), vdiskctl_cmp_str);
	*out = v;
	return n;
}

static void vdiskctl_free_names(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* -s PATH, NAME (a path when it holds a slash) or the only disk. */
static int vdiskctl_resolve_socket(struct cli *cli)
{
	char dir[PATH_MAX - 64];
	char **names;
	int n, r;

	if (cli->socket) {
		snprintf(cli->path, sizeof(cli->path), "%s", cli->socket);
		return 0;
	}
	if (cli->name && strchr(cli->name, '/')) {
		snprintf(cli->path, sizeof(cli->path), "%s", cli->name);
		return 0;
	}
	r = vd_rundir(dir, sizeof(dir));
	if (r < 0) {
		fprintf(stderr, "vdiskctl: no run directory: set RUNTIME_DIRECTORY or "
			"XDG_RUNTIME_DIR, or give the socket with -s PATH\n");
		return EXIT_USAGE;
	}
	if (cli->name) {
		if (snprintf(cli->path, sizeof(cli->path), "%s/%s.ctl", dir, cli->name) >=
		    (int)sizeof(cli->path))
			return vdiskctl_usage_error("disk name too long");
		return 0;
	}
	n = vdiskctl_scan_rundir(dir, &names);
	if (n == 1) {
		snprintf(cli->path, sizeof(cli->path), "%s/%s", dir, names[0]);
		vdiskctl_free_names(names, n);
		return 0;
	}
	if (n <= 0) {
		fprintf(stderr, "vdiskctl: no disk given and no control socket in %s "
			"(is vdiskd running?); use NAME or -s SOCKET\n", dir);
		vdiskctl_free_names(names, n > 0 ? n : 0);
		return EXIT_USAGE;
	}
	fprintf(stderr, "vdiskctl: %d disks in %s; name one:", n, dir);
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %.*s", (int)strlen(names[i]) - 4, names[i]);
	fputc('\n', stderr);
	vdiskctl_free_names(names, n);
	return EXIT_USAGE;
}

static int vdiskctl_ensure_conn(struct cli *cli)
{
	char msg[512];
	int r;

	if (cli->conn)
		return 0;
	r = vdiskctl_resolve_socket(cli);
	if (r)
		return r;
	r = ctl_conn_open(cli->path, CTL_GREETING_TIMEOUT_MS, &cli->conn, msg, sizeof(msg));
	if (r < 0) {
		fprintf(stderr, "vdiskctl: %s\n", msg);
		return EXIT_USAGE;
	}
	return 0;
}

/* Sends request (stolen) and returns the reply in *reply.  Prints the
 * reply line unchanged with --json, the daemon's message on an error. */
static int vdiskctl_call(struct cli *cli, json_t *req_obj, int timeout_ms, json_t **reply)
{
	char msg[512], *line = NULL, *req_s;
	json_t *obj = NULL;
	int r;

	*reply = NULL;
	r = vdiskctl_ensure_conn(cli);
	if (r) {
		json_decref(req_obj);
		return r;
	}
	req_s = json_dumps(req_obj, JSON_COMPACT);
	json_decref(req_obj);
	if (!req_s) {
		fprintf(stderr, "vdiskctl: out of memory\n");
		return EXIT_USAGE;
	}
	r = ctl_conn_call(cli->conn, req_s, timeout_ms, &line, &obj, msg, sizeof(msg));
	free(req_s);
	if (r < 0) {
		fprintf(stderr, "vdiskctl: %s: %s\n", cli->path, msg);
		return EXIT_USAGE;
	}
	if (cli->json) {
		puts(line);
		fflush(stdout);
	}
	free(line);
	if (!json_is_true(json_object_get(obj, "ok"))) {
		fprintf(stderr, "vdiskctl: %s (%s)\n",
			ctl_get_str(obj, "message", "the daemon refused"),
			ctl_get_str(obj, "error", "?"));
		json_decref(obj);
		return EXIT_DAEMON;
	}
	*reply = obj;
	return EXIT_OK;
}

/* ---- argument parsing shared by the commands ---- */

static void vdiskctl_print_cmd_help(const struct vcmd *c)
{
	printf("usage: vdiskctl [-s SOCKET | NAME] %s%s%s [--json]\n\n  %s\n",
	       c->name, c->args[0] ? " " : "", c->args, c->help);
	if (c->details)
		printf("\n%s", c->details);
}

/* Options every command takes (--json, --help); the rest is the
 * command's.  getopt_long with a per-command option table. */
static int vdiskctl_parse_opts(struct cli *cli, const struct vcmd *c, int argc, char **argv,
		      const struct option *extra, int (*on_opt)(int opt, const char *arg, void *ctx),
		      void *ctx)
{
	struct option opts[8];
	char shortopts[32] = "hj";	/* permuting: "log-level debug --json" */
	int n = 0, o;

	for (; extra && extra[n].name && n < 5; n++) {
		size_t l = strlen(shortopts);

		opts[n] = extra[n];
		shortopts[l++] = (char)extra[n].val;
		if (extra[n].has_arg != no_argument)
			shortopts[l++] = ':';
		if (extra[n].has_arg == optional_argument)
			shortopts[l++] = ':';
		shortopts[l] = '\0';
	}
	opts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	opts[n++] = (struct option){ "json", no_argument, NULL, 'j' };
	opts[n] = (struct option){ NULL, 0, NULL, 0 };

	optind = 0;	/* 0, not 1: glibc starts afresh, "+" of main's call forgotten */
	opterr = 0;
	while ((o = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		switch (o) {
		case 'h':
			vdiskctl_print_cmd_help(c);
			return -1;
		case 'j':
			cli->json = true;
			break;
		case '?':
			if (optopt)
				return vdiskctl_usage_error("%s: option -%c: unknown or missing its value",
						   c->name, optopt);
			return vdiskctl_usage_error("%s: unknown option %s", c->name, argv[optind - 1]);
		default:
			if (!on_opt || on_opt(o, optarg, ctx) != 0)
				return EXIT_USAGE;
		}
	}
	return 0;
}

/* Options, then at most one argument: *arg is NULL when absent, and a
 * NULL arg means none is allowed. */
static int vdiskctl_parse_args(struct cli *cli, const struct vcmd *c, int argc, char **argv,
		      const char **arg)
{
	int r = vdiskctl_parse_opts(cli, c, argc, argv, NULL, NULL, NULL);

	if (r)
		return r;
	if (arg)
		*arg = optind < argc ? argv[optind++] : NULL;
	if (optind < argc)
		return vdiskctl_usage_error("%s: unexpected argument '%s'", c->name, argv[optind]);
	return 0;
}

#define RUN_ARGS(cmdname) \
	const struct vcmd *self = vdiskctl_find_cmd(cmdname); \
	int r = vdiskctl_parse_args(cli, self, argc, argv, NULL); \
	if (r) \
		return r < 0 ? EXIT_OK : r

static json_t *vdiskctl_request(const char *cmd)
{
	return json_pack("{s:s}", "cmd", cmd);
}

/* ---- info ---- */

static int vdiskctl_run_info(struct cli *cli, int argc, char **argv)
{
	json_t *reply;

	RUN_ARGS("info");
	r = vdiskctl_call(cli, vdiskctl_request("info"), REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		ctl_print_info(stdout, reply);
	json_decref(reply);
	return r;
}

/* ---- connections, reload-tls ---- */

static int vdiskctl_run_connections(struct cli *cli, int argc, char **argv)
{
	json_t *reply;

	RUN_ARGS("connections");
	r = vdiskctl_call(cli, vdiskctl_request("connections"), REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		ctl_print_connections(stdout, reply);
	json_decref(reply);
	return r;
}

static int vdiskctl_run_reload_tls(struct cli *cli, int argc, char **argv)
{
	json_t *reply;

	RUN_ARGS("reload-tls");
	r = vdiskctl_call(cli, vdiskctl_request("reload-tls"), REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		printf("TLS credentials reloaded\n");
	json_decref(reply);
	return r;
}

/* ---- stats ---- */

struct watch_opts {
	bool watch;
	double interval;
	long count;		/* 0: forever */
};

static bool vdiskctl_parse_number(const char *s, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(d))
		return false;
	*out = d;
	return true;
}

static int vdiskctl_stats_opt(int o, const char *arg, void *ctx)
{
	struct watch_opts *w = ctx;
	double d;
	char *end;

	switch (o) {
	case 'w':
		w->watch = true;
		if (arg) {
			if (!vdiskctl_parse_number(arg, &d) || d < 0.1 || d > 86400)
				return vdiskctl_usage_error("stats: --watch SECONDS: a number from 0.1 "
						   "to 86400, not '%s'", arg);
			w->interval = d;
		}
		return 0;
	case 'n':
		errno = 0;
		w->count = strtol(arg, &end, 10);
		if (errno || end == arg || *end || w->count <= 0)
			return vdiskctl_usage_error("stats: --count N: a positive number, not '%s'", arg);
		w->watch = true;
		return 0;
	}
	return EXIT_USAGE;
}

static double vdiskctl_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int vdiskctl_stats_watch(struct cli *cli, const struct watch_opts *w)
{
	struct ctl_sample prev = { 0 }, cur;
	bool tty = isatty(STDOUT_FILENO);
	int r = EXIT_OK;

	for (long n = 0; w->count == 0 || n < w->count; n++) {
		if (n > 0) {
			/* The daemon closes control clients idle for two
			 * minutes: with long intervals, reconnect each time. */
			if (w->interval > 30) {
				ctl_conn_close(cli->conn);
				cli->conn = NULL;
			}
			struct timespec ts = {
				(time_t)w->interval,
				(long)((w->interval - floor(w->interval)) * 1e9),
			};
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		r = vdiskctl_call(cli, vdiskctl_request("stats"), REPLY_TIMEOUT_MS, &cur.o);
		if (r != EXIT_OK)
			break;
		cur.t = vdiskctl_mono_s();
		if (!cli->json)
			ctl_print_watch(stdout, cli->path, &cur, &prev, w->interval, tty);
		json_decref(prev.o);
		prev = cur;
	}
	json_decref(prev.o);
	return r;
}

static int vdiskctl_run_stats(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "watch", optional_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct watch_opts w = { .interval = 1 };
	const struct vcmd *self = vdiskctl_find_cmd("stats");
	json_t *reply;
	int r;

	r = vdiskctl_parse_opts(cli, self, argc, argv, opts, vdiskctl_stats_opt, &w);
	if (r)
		return r < 0 ? EXIT_OK : r;
	/* "--watch 2" as well as "--watch=2": getopt only takes the latter
	 * for an optional argument. */
	if (w.watch && optind < argc && vdiskctl_parse_number(argv[optind], &w.interval)) {
		if (w.interval < 0.1 || w.interval > 86400)
			return vdiskctl_usage_error("stats: --watch SECONDS: a number from 0.1 to 86400");
		optind++;
	}
	if (optind < argc)
		return vdiskctl_usage_error("stats: unexpected argument '%s'", argv[optind]);
	if (w.watch)
		return vdiskctl_stats_watch(cli, &w);
	r = vdiskctl_call(cli, vdiskctl_request("stats"), REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		ctl_print_stats(stdout, reply);
	json_decref(reply);
	return r;
}

/* ---- pause, resume, flush, shutdown ---- */

static int vdiskctl_pause_opt(int o, const char *arg, void *ctx)
{
	double *t = ctx;

	if (!vdiskctl_parse_number(arg, t) || *t <= 0 || *t > 86400)
		return vdiskctl_usage_error("pause: --timeout SECONDS: a number above 0 and up to "
				   "86400, not '%s'", arg);
	return 0;
}

static int vdiskctl_run_pause(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const struct vcmd *self = vdiskctl_find_cmd("pause");
	double t = 0;
	json_t *req, *reply;
	int r;

	r = vdiskctl_parse_opts(cli, self, argc, argv, opts, vdiskctl_pause_opt, &t);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (optind < argc)
		return vdiskctl_usage_error("pause: unexpected argument '%s'", argv[optind]);
	req = vdiskctl_request("pause");
	if (t > 0)
		json_object_set_new(req, "timeout", json_real(t));
	r = vdiskctl_call(cli, req, (int)((t > 0 ? t : 30) * 1000) + 30 * 1000, &reply);
	if (r == EXIT_OK && !cli->json)
		printf("%s\n", ctl_get_str(reply, "state", "paused"));
	json_decref(reply);
	return r;
}

/* resume, flush, shutdown: no arguments, a short answer.  argv[0] is the
 * command's name. */
static int vdiskctl_run_simple(struct cli *cli, int argc, char **argv)
{
	static const struct {
		const char *cmd;
		const char *text;	/* NULL: print the reply's state */
		int timeout_ms;
	} simple[] = {
		{ "resume", NULL, REPLY_TIMEOUT_MS },
		{ "flush", "flushed", FLUSH_TIMEOUT_MS },
		{ "shutdown", "shutting down", REPLY_TIMEOUT_MS },
	};
	json_t *reply;
	unsigned i;

	for (i = 0; strcmp(simple[i].cmd, argv[0]) != 0; i++)
		;
	RUN_ARGS(simple[i].cmd);
	r = vdiskctl_call(cli, vdiskctl_request(simple[i].cmd), simple[i].timeout_ms, &reply);
	if (r == EXIT_OK && !cli->json)
		printf("%s\n", simple[i].text ? simple[i].text :
		       ctl_get_str(reply, "state", "running"));
	json_decref(reply);
	return r;
}

/* ---- snapshot (rbd) ---- */

/* ---- reopen ---- */

static int vdiskctl_run_reopen(struct cli *cli, int argc, char **argv)
{
	const struct vcmd *self = vdiskctl_find_cmd("reopen");
	char abs[PATH_MAX], b1[32];
	const char *image = NULL;
	json_t *req, *reply;
	int r;

	r = vdiskctl_parse_args(cli, self, argc, argv, &image);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (image && !*image)
		return vdiskctl_usage_error("reopen: IMAGE is empty");
	/* The daemon's working directory is not ours. */
	if (image && image[0] != '/') {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(abs, sizeof(abs), "%s/%s", cwd, image) >= (int)sizeof(abs))
			return vdiskctl_usage_error("reopen: cannot make %s an absolute path", image);
		image = abs;
	}
	req = vdiskctl_request("reopen");
	if (image)
		json_object_set_new(req, "image", json_string(image));
	r = vdiskctl_call(cli, req, REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		printf("reopened %s (%s, %s)%s\n", ctl_get_str(reply, "image", "?"),
		       ctl_get_str(reply, "driver", "?"),
		       ctl_fmt_size(ctl_get_u64(reply, "size"), b1, sizeof(b1)),
		       json_is_true(json_object_get(reply, "resized")) ? ", size changed" : "");
	json_decref(reply);
	return r;
}

/* ---- snapshot ---- */

/* NEWFILE for file images (a differencing VHD child), SNAPNAME for rbd:
 * the daemon's driver says which. */
static int vdiskctl_run_snapshot(struct cli *cli, int argc, char **argv)
{
	const struct vcmd *self = vdiskctl_find_cmd("snapshot");
	char abs[PATH_MAX];
	const char *arg = NULL;
	json_t *req, *reply, *chain, *v;
	bool json = cli->json, named;
	size_t i;
	int r;

	r = vdiskctl_parse_args(cli, self, argc, argv, &arg);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (!arg || !*arg)
		return vdiskctl_usage_error("snapshot: NEWFILE or SNAPNAME is missing");
	cli->json = false;
	r = vdiskctl_call(cli, vdiskctl_request("info"), REPLY_TIMEOUT_MS, &reply);
	cli->json = json;
	if (r)
		return r;
	named = strcmp(ctl_get_str(reply, "driver", ""), "rbd") == 0;
	json_decref(reply);
	if (!named && arg[0] != '/') {
		char cwd[PATH_MAX];

		/* The daemon's working directory is not ours. */
		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(abs, sizeof(abs), "%s/%s", cwd, arg) >= (int)sizeof(abs))
			return vdiskctl_usage_error("snapshot: cannot make %s an absolute path", arg);
		arg = abs;
	}
	req = vdiskctl_request("snapshot");
	json_object_set_new(req, named ? "name" : "file", json_string(arg));
	r = vdiskctl_call(cli, req, REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json && named) {
		printf("snapshot %s taken\n", ctl_get_str(reply, "snapshot", "?"));
	} else if (r == EXIT_OK && !cli->json) {
		printf("snapshot: now writing to %s\n", ctl_get_str(reply, "image", "?"));
		chain = json_object_get(reply, "chain");
		json_array_foreach(chain, i, v)
			if (i > 0)
				printf("  parent %s (%s)\n", ctl_get_str(v, "image", "?"),
				       ctl_get_str(v, "driver", "?"));
	}
	json_decref(reply);
	return r;
}

/* ---- log-level ---- */

static int vdiskctl_run_log_level(struct cli *cli, int argc, char **argv)
{
	static const char *const levels[] = { "error", "warn", "warning", "notice",
					      "info", "debug", NULL };
	const struct vcmd *self = vdiskctl_find_cmd("log-level");
	const char *level = NULL;
	json_t *req, *reply;
	int r;

	r = vdiskctl_parse_args(cli, self, argc, argv, &level);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (level) {
		bool known = false;
		for (const char *const *l = levels; *l; l++)
			known |= strcasecmp(*l, level) == 0;
		if (!known)
			return vdiskctl_usage_error("log-level: LEVEL is error, warn, info or debug, "
					   "not '%s'", level);
	}
	req = vdiskctl_request("log-level");
	if (level)
		json_object_set_new(req, "level", json_string(level));
	r = vdiskctl_call(cli, req, REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json) {
		if (level)
			printf("log level %s (was %s)\n", ctl_get_str(reply, "level", "?"),
			       ctl_get_str(reply, "previous", "?"));
		else
			printf("%s\n", ctl_get_str(reply, "level", "?"));
	}
	json_decref(reply);
	return r;
}

/* ---- limit ---- */

static int vdiskctl_run_limit(struct cli *cli, int argc, char **argv)
{
	const struct vcmd *self = vdiskctl_find_cmd("limit");
	char *set = NULL;
	size_t len = 0;
	json_t *req, *reply, *lim;
	int r;

	r = vdiskctl_parse_opts(cli, self, argc, argv, NULL, NULL, NULL);
	if (r)
		return r < 0 ? EXIT_OK : r;
	/* KEY=VALUE words join into the daemon's one spec. */
	for (int i = optind; i < argc; i++) {
		size_t n = strlen(argv[i]);
		char *p;

		if (!n || (!strchr(argv[i], '=') && strcmp(argv[i], "none") != 0)) {
			free(set);
			return vdiskctl_usage_error("limit: '%s' is not KEY=VALUE", argv[i]);
		}
		p = realloc(set, len + n + 2);
		if (!p) {
			free(set);
			return vdiskctl_usage_error("limit: out of memory");
		}
		set = p;
		if (len)
			set[len++] = ',';
		memcpy(set + len, argv[i], n + 1);
		len += n;
	}
	req = vdiskctl_request("limit");
	if (set)
		json_object_set_new(req, "set", json_string(set));
	free(set);
	r = vdiskctl_call(cli, req, REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json) {
		const char *group = ctl_get_str(reply, "group", NULL);
		const char *key;
		json_t *v;

		printf("%s", ctl_get_str(reply, "spec", "?"));
		if (group)
			printf("  (group %s, %llu member(s))", group,
			       (unsigned long long)ctl_get_u64(reply, "members"));
		printf("\n");
		lim = json_object_get(reply, "limits");
		json_object_foreach(lim, key, v) {
			if (json_is_integer(v) && json_integer_value(v) == 0)
				continue;
			if (json_is_integer(v))
				printf("  %-14s %lld\n", key, (long long)json_integer_value(v));
			else if (json_is_string(v))
				printf("  %-14s %s\n", key, json_string_value(v));
		}
	}
	json_decref(reply);
	return r;
}

/* ---- list ---- */

static void vdiskctl_list_row(const char *file, const char *path, bool json, json_t *disks)
{
	char msg[512], *line = NULL;
	struct ctl_conn *c = NULL;
	json_t *info = NULL, *stats = NULL;
	int r;

	r = ctl_conn_open(path, LIST_TIMEOUT_MS, &c, msg, sizeof(msg));
	if (r == 0)
		r = ctl_conn_call(c, "{\"cmd\":\"info\"}", LIST_TIMEOUT_MS, &line, &info,
				  msg, sizeof(msg));
	free(line);
	line = NULL;
	if (r == 0 && !json_is_true(json_object_get(info, "ok"))) {
		snprintf(msg, sizeof(msg), "%s", ctl_get_str(info, "message", "error"));
		r = -EIO;
	}
	if (r == 0 && !json_object_get(info, "connections") &&
	    ctl_conn_call(c, "{\"cmd\":\"stats\"}", LIST_TIMEOUT_MS, NULL, &stats,
			  msg, sizeof(msg)) == 0)
		json_object_set(info, "connections", json_object_get(stats, "connections"));
	ctl_conn_close(c);

	if (json) {
		json_t *row = r == 0 ? json_deep_copy(info) : json_object();
		json_object_del(row, "ok");
		if (r < 0) {
			json_object_set_new(row, "name", json_stringn(file, strlen(file) - 4));
			json_object_set_new(row, "state", json_string("unreachable"));
			json_object_set_new(row, "error", json_string(msg));
		}
		json_object_set_new(row, "socket", json_string(path));
		json_array_append_new(disks, row);
	} else if (r < 0) {
		char name[256];

		snprintf(name, sizeof(name), "%.*s", (int)strlen(file) - 4, file);
		ctl_print_list_unreachable(stdout, name, r == -ECONNREFUSED ?
					   "not running (stale socket)" :
					   r == -EACCES || r == -EPERM ? "permission denied" : msg);
	} else {
		ctl_print_list_row(stdout, info);
	}
	json_decref(info);
	json_decref(stats);
}

static int vdiskctl_run_list(struct cli *cli, int argc, char **argv)
{
	char dir[PATH_MAX - 64], path[PATH_MAX];
	json_t *disks = NULL;
	char **names;
	int n;

	RUN_ARGS("list");
	if (cli->socket || cli->name)
		return vdiskctl_usage_error("list takes no socket or name: it asks every disk");
	if (vd_rundir(dir, sizeof(dir)) < 0) {
		fprintf(stderr, "vdiskctl: no run directory: set RUNTIME_DIRECTORY or "
			"XDG_RUNTIME_DIR\n");
		return EXIT_USAGE;
	}
	n = vdiskctl_scan_rundir(dir, &names);
	if (n == -ENOENT)
		n = 0;		/* no daemon has run yet: an empty list */
	if (n < 0) {
		fprintf(stderr, "vdiskctl: %s: %s\n", dir, strerror(-n));
		return EXIT_USAGE;
	}
	if (cli->json)
		disks = json_array();
	else
		ctl_print_list_header(stdout);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		vdiskctl_list_row(names[i], path, cli->json, disks);
	}
	if (cli->json) {
		json_t *top = json_pack("{s:o}", "disks", disks);
		char *s = json_dumps(top, JSON_COMPACT | JSON_PRESERVE_ORDER);

		puts(s ? s : "{}");
		free(s);
		json_decref(top);
	}
	vdiskctl_free_names(names, n);
	return EXIT_OK;
}

/* ---- help ---- */

static int vdiskctl_run_help(struct cli *cli, int argc, char **argv)
{
	const struct vcmd *c;

	if (argc > 1 && (c = vdiskctl_find_cmd(argv[1]))) {
		vdiskctl_print_cmd_help(c);
		return EXIT_OK;
	}
	if (argc > 1)
		return vdiskctl_usage_error("help: no command '%s'", argv[1]);
	vdiskctl_print_usage(stdout);
	return EXIT_OK;
}

static const struct vcmd commands[] = {
	{ "list", "", "the disks in $RUNDIR and their state",
	  "  Asks every $RUNDIR/*.ctl for its info; sockets nobody answers on are\n"
	  "  shown as unreachable.  $RUNDIR is $RUNTIME_DIRECTORY, else /run/vdiskd\n"
	  "  for root, else $XDG_RUNTIME_DIR/vdiskd.\n", vdiskctl_run_list },
	{ "info", "", "what the disk is, where it is served",
	  NULL, vdiskctl_run_info },
	{ "stats", "[--watch [SECONDS]] [--count N]", "I/O counters, queue, latency",
	  "  --watch [SECONDS]  refresh every SECONDS (default 1) with per-second\n"
	  "                     rates: IOPS, MiB/s, queue depth, latency\n"
	  "  --count N          stop after N screens (implies --watch)\n", vdiskctl_run_stats },
	{ "pause", "[--timeout SECONDS]",
	  "hold new requests, drain in-flight I/O",
	  "  Requests that arrive while paused are held, not failed.  If in-flight\n"
	  "  I/O does not drain within the timeout (default 30 s), the disk is\n"
	  "  resumed and the answer is ETIMEDOUT.  Pausing a paused disk is fine.\n",
	  vdiskctl_run_pause },
	{ "resume", "", "run the held requests and continue", NULL, vdiskctl_run_simple },
	{ "flush", "", "make completed writes durable", NULL, vdiskctl_run_simple },
	{ "reopen", "[IMAGE]", "open the image (or IMAGE) anew; paused",
	  "  For snapshots: pause, take the snapshot, reopen, resume.  The driver\n"
	  "  is detected again.  If IMAGE cannot be opened the old image stays\n"
	  "  open.  A different size is refused while NBD clients are connected.\n",
	  vdiskctl_run_reopen },
	{ "snapshot", "NEWFILE|SNAPNAME", "a live snapshot: a differencing VHD, or an rbd snapshot",
	  "  File images (VHD or raw): pauses (drains), flushes, creates NEWFILE as a\n"
	  "  differencing VHD child of the current image, reopens on it and\n"
	  "  resumes; the old image becomes its read-only parent.  On failure the\n"
	  "  disk stays on the old image and NEWFILE is not left behind.\n"
	  "  rbd: pauses, drains, flushes, creates the RBD snapshot SNAPNAME\n"
	  "  (rbd_snap_create) and resumes: crash-consistent.\n", vdiskctl_run_snapshot },
	{ "shutdown", "", "stop the daemon, as SIGTERM does", NULL,
	  vdiskctl_run_simple },
	{ "log-level", "[error|warn|info|debug]", "show or set the log level", NULL,
	  vdiskctl_run_log_level },
	{ "limit", "[KEY=VALUE...]", "show or change the I/O limits, at once",
	  "  Keys: iops, read-iops, write-iops, bps, read-bps, write-bps (K/M/G\n"
	  "  suffixes), burst-iops, burst-bps, burst-seconds, iops-size.  KEY=0 or\n"
	  "  KEY=none removes one; 'none' removes all; keys not named stay.  In a\n"
	  "  limit group this changes the group's limits, for every member.\n",
	  vdiskctl_run_limit },
	{ "connections", "", "NBD connections: peer, state, TLS and its peer", NULL,
	  vdiskctl_run_connections },
	{ "reload-tls", "", "read the TLS certificates and keys again",
	  "  As SIGHUP does: new connections use the new credentials, established\n"
	  "  ones keep theirs.  If the new files are bad the old ones stay.\n",
	  vdiskctl_run_reload_tls },
	{ "help", "[COMMAND]", "this help, or a command's", NULL, vdiskctl_run_help },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const struct vcmd *vdiskctl_find_cmd(const char *name)
{
	for (const struct vcmd *c = commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void vdiskctl_print_usage(FILE *f)
{
	fprintf(f, "usage: vdiskctl list\n"
		   "       vdiskctl [-s SOCKET | NAME] COMMAND [ARGS] [--json]\n\n"
		   "Steers a running vdiskd through its control socket: -s gives the\n"
		   "socket, NAME means $RUNDIR/NAME.ctl; with neither, the only disk in\n"
		   "$RUNDIR.\n\nCommands:\n");
	for (const struct vcmd *c = commands; c->name; c++) {
		char syn[64];
		snprintf(syn, sizeof(syn), "%s %s", c->name, c->args);
		fprintf(f, "  %-38s %s\n", syn, c->help);
	}
	fprintf(f, "\nOptions:\n"
		   "  -s, --socket PATH   the control socket\n"
		   "  -j, --json          print the daemon's reply object unchanged\n"
		   "  -h, --help          this help; COMMAND --help for a command's\n"
		   "  -V, --version\n\n"
		   "Exit status: 0 ok, 1 the daemon answered an error, 2 usage error or\n"
		   "the daemon could not be reached.  See vdiskctl(8).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli cli = { 0 };
	const struct vcmd *cmd;
	int o, r;

	opterr = 0;
	/* "+": stop at the first non-option, the NAME or the COMMAND; what
	 * follows the command is the command's. */
	while ((o = getopt_long(argc, argv, "+s:jhV", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			if (!*optarg)
				return vdiskctl_usage_error("-s: empty socket path");
			cli.socket = optarg;
			break;
		case 'j':
			cli.json = true;
			break;
		case 'h':
			vdiskctl_print_usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("vdiskctl %s\n", VDISKD_VERSION);
			return EXIT_OK;
		default:
			if (optopt == 's')
				return vdiskctl_usage_error("-s needs a socket path");
			if (optopt)
				return vdiskctl_usage_error("unknown option -%c", optopt);
			return vdiskctl_usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return vdiskctl_usage_error("no command given");
	/* A command name wins over a disk of the same name: reach that disk
	 * with -s or a path. */
	cmd = vdiskctl_find_cmd(argv[optind]);
	if (!cmd) {
		if (cli.socket)
			return vdiskctl_usage_error("unknown command '%s'", argv[optind]);
		cli.name = argv[optind++];
		if (!*cli.name)
			return vdiskctl_usage_error("empty disk name");
		if (optind >= argc)
			return vdiskctl_usage_error("no command given for disk '%s' (and '%s' is not "
					   "a command)", cli.name, cli.name);
		cmd = vdiskctl_find_cmd(argv[optind]);
		if (!cmd)
			return vdiskctl_usage_error("unknown command '%s'", argv[optind]);
	}
	r = cmd->run(&cli, argc - optind, argv + optind);
	ctl_conn_close(cli.conn);
	if (fflush(stdout) != 0 && r == EXIT_OK)
		r = EXIT_USAGE;	/* a full disk or closed pipe lost the output */
	return r;
}
