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

#include "control/ctl-client.h"

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

static const struct vcmd *find_cmd(const char *name);
static void print_usage(FILE *f);

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("vdiskctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'vdiskctl --help'.\n", stderr);
	return EXIT_USAGE;
}

/* ---- formatting ---- */

static const char *human_size(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	else if (d == floor(d))
		snprintf(buf, len, "%.0f %s", d, units[u]);
	else
		snprintf(buf, len, "%.1f %s", d, units[u]);
	return buf;
}

static const char *human_duration(uint64_t s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%llud %lluh %02llum", (unsigned long long)(s / 86400),
			 (unsigned long long)(s % 86400 / 3600),
			 (unsigned long long)(s % 3600 / 60));
	else if (s >= 3600)
		snprintf(buf, len, "%lluh %02llum %02llus", (unsigned long long)(s / 3600),
			 (unsigned long long)(s % 3600 / 60), (unsigned long long)(s % 60));
	else if (s >= 60)
		snprintf(buf, len, "%llum %02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else
		snprintf(buf, len, "%llus", (unsigned long long)s);
	return buf;
}

static const char *human_latency(uint64_t us, char *buf, size_t len)
{
	if (us >= 1000000)
		snprintf(buf, len, "%.2f s", (double)us / 1e6);
	else if (us >= 1000)
		snprintf(buf, len, "%.1f ms", (double)us / 1e3);
	else
		snprintf(buf, len, "%llu us", (unsigned long long)us);
	return buf;
}

static uint64_t get_u64(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return (uint64_t)json_integer_value(v);
	if (json_is_real(v) && json_real_value(v) >= 0)
		return (uint64_t)json_real_value(v);
	return 0;
}

static const char *get_str(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : dflt;
}

/* ---- talking to the daemon ---- */

static bool is_dir_entry_ctl(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && strcmp(name + n - 4, ".ctl") == 0 && name[0] != '.';
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.ctl names in dir, sorted.  Returns the count or -errno. */
static int scan_rundir(const char *dir, char ***out)
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

		if (!is_dir_entry_ctl(de->d_name))
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
		qsort(v, (size_t)n, sizeof(*v), cmp_str);
	*out = v;
	return n;
}

static void free_names(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* -s PATH, NAME (a path when it holds a slash) or the only disk. */
static int resolve_socket(struct cli *cli)
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
	r = ctl_rundir(dir, sizeof(dir));
	if (r < 0) {
		fprintf(stderr, "vdiskctl: no run directory: set RUNTIME_DIRECTORY or "
			"XDG_RUNTIME_DIR, or give the socket with -s PATH\n");
		return EXIT_USAGE;
	}
	if (cli->name) {
		if (snprintf(cli->path, sizeof(cli->path), "%s/%s.ctl", dir, cli->name) >=
		    (int)sizeof(cli->path))
			return usage_error("disk name too long");
		return 0;
	}
	n = scan_rundir(dir, &names);
	if (n == 1) {
		snprintf(cli->path, sizeof(cli->path), "%s/%s", dir, names[0]);
		free_names(names, n);
		return 0;
	}
	if (n <= 0) {
		fprintf(stderr, "vdiskctl: no disk given and no control socket in %s "
			"(is vdiskd running?); use NAME or -s SOCKET\n", dir);
		free_names(names, n > 0 ? n : 0);
		return EXIT_USAGE;
	}
	fprintf(stderr, "vdiskctl: %d disks in %s; name one:", n, dir);
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %.*s", (int)strlen(names[i]) - 4, names[i]);
	fputc('\n', stderr);
	free_names(names, n);
	return EXIT_USAGE;
}

static int ensure_conn(struct cli *cli)
{
	char msg[512];
	int r;

	if (cli->conn)
		return 0;
	r = resolve_socket(cli);
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
static int call(struct cli *cli, json_t *request, int timeout_ms, json_t **reply)
{
	char msg[512], *line = NULL, *req_s;
	json_t *obj = NULL;
	int r;

	*reply = NULL;
	r = ensure_conn(cli);
	if (r) {
		json_decref(request);
		return r;
	}
	req_s = json_dumps(request, JSON_COMPACT);
	json_decref(request);
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
			get_str(obj, "message", "the daemon refused"),
			get_str(obj, "error", "?"));
		json_decref(obj);
		return EXIT_DAEMON;
	}
	*reply = obj;
	return EXIT_OK;
}

/* ---- argument parsing shared by the commands ---- */

static void print_cmd_help(const struct vcmd *c)
{
	printf("usage: vdiskctl [-s SOCKET | NAME] %s%s%s [--json]\n\n  %s\n",
	       c->name, c->args[0] ? " " : "", c->args, c->help);
	if (c->details)
		printf("\n%s", c->details);
}

/* Options every command takes (--json, --help); the rest is the
 * command's.  getopt_long with a per-command option table. */
static int parse_opts(struct cli *cli, const struct vcmd *c, int argc, char **argv,
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
			print_cmd_help(c);
			return -1;
		case 'j':
			cli->json = true;
			break;
		case '?':
			if (optopt)
				return usage_error("%s: option -%c: unknown or missing its value",
						   c->name, optopt);
			return usage_error("%s: unknown option %s", c->name, argv[optind - 1]);
		default:
			if (!on_opt || on_opt(o, optarg, ctx) != 0)
				return EXIT_USAGE;
		}
	}
	return 0;
}

/* Parses "--json"/"--help" only, and refuses extra arguments. */
static int no_args(struct cli *cli, const struct vcmd *c, int argc, char **argv)
{
	int r = parse_opts(cli, c, argc, argv, NULL, NULL, NULL);

	if (r)
		return r;
	if (optind < argc)
		return usage_error("%s: unexpected argument '%s'", c->name, argv[optind]);
	return 0;
}

#define RUN_ARGS(cmdname) \
	const struct vcmd *self = find_cmd(cmdname); \
	int r = no_args(cli, self, argc, argv); \
	if (r) \
		return r < 0 ? EXIT_OK : r

static json_t *request(const char *cmd)
{
	return json_pack("{s:s}", "cmd", cmd);
}

/* ---- info ---- */

static void print_info(json_t *o)
{
	char b1[32];
	json_t *listen = json_object_get(o, "listen");
	size_t i;
	json_t *v;

	printf("%-16s%s\n", "name", get_str(o, "name", "?"));
	printf("%-16s%s\n", "image", get_str(o, "image", "?"));
	printf("%-16s%s\n", "driver", get_str(o, "driver", "?"));
	printf("%-16s%s (%llu bytes)\n", "size", human_size(get_u64(o, "size"), b1, sizeof(b1)),
	       (unsigned long long)get_u64(o, "size"));
	printf("%-16s%llu logical, %llu physical\n", "block size",
	       (unsigned long long)get_u64(o, "logical_block"),
	       (unsigned long long)get_u64(o, "physical_block"));
	printf("%-16s%s\n", "read-only",
	       json_is_true(json_object_get(o, "read_only")) ? "yes" : "no");
	printf("%-16s%s\n", "cache", get_str(o, "cache", "?"));
	printf("%-16s%s\n", "state", get_str(o, "state", "?"));
	if (json_array_size(listen) == 0)
		printf("%-16s%s\n", "listen", "-");
	json_array_foreach(listen, i, v)
		printf("%-16s%s\n", i == 0 ? "listen" : "", json_string_value(v) ?
		       json_string_value(v) : "?");
	if (json_object_get(o, "connections"))
		printf("%-16s%llu\n", "connections",
		       (unsigned long long)get_u64(o, "connections"));
	printf("%-16s%llu\n", "pid", (unsigned long long)get_u64(o, "pid"));
	printf("%-16s%s\n", "version", get_str(o, "version", "?"));
}

static int run_info(struct cli *cli, int argc, char **argv)
{
	json_t *reply;

	RUN_ARGS("info");
	r = call(cli, request("info"), REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		print_info(reply);
	json_decref(reply);
	return r;
}

/* ---- stats ---- */

/* Keys the tables below show; anything else is printed at the end, so a
 * newer daemon's counters are not hidden. */
static const char *const shown_keys[] = {
	"ok", "state", "uptime_s", "connections", "reads", "writes", "flushes",
	"trims", "zeroes", "caches", "block_status", "bytes_read", "bytes_written",
	"errors", "inflight", "held", "waiting", "pending", "iocbs_submitted",
	"io_submit_calls", "merged", "read_lat_p50_us", "read_lat_p99_us",
	"write_lat_p50_us", "write_lat_p99_us", NULL,
};

static bool key_shown(const char *k)
{
	for (const char *const *p = shown_keys; *p; p++)
		if (strcmp(*p, k) == 0)
			return true;
	return false;
}

static void print_stats(json_t *o)
{
	char b1[32], b2[32];
	const char *key;
	json_t *v;
	bool other = false;

	printf("%-18s%s\n", "state", get_str(o, "state", "?"));
	printf("%-18s%s\n", "uptime", human_duration(get_u64(o, "uptime_s"), b1, sizeof(b1)));
	printf("%-18s%llu\n", "connections", (unsigned long long)get_u64(o, "connections"));

	printf("\n%-12s%12s%14s\n", "", "requests", "bytes");
	printf("%-12s%12llu%14s\n", "reads", (unsigned long long)get_u64(o, "reads"),
	       human_size(get_u64(o, "bytes_read"), b1, sizeof(b1)));
	printf("%-12s%12llu%14s\n", "writes", (unsigned long long)get_u64(o, "writes"),
	       human_size(get_u64(o, "bytes_written"), b2, sizeof(b2)));
	printf("%-12s%12llu\n", "flushes", (unsigned long long)get_u64(o, "flushes"));
	printf("%-12s%12llu\n", "trims", (unsigned long long)get_u64(o, "trims"));
	printf("%-12s%12llu\n", "zeroes", (unsigned long long)get_u64(o, "zeroes"));
	if (json_object_get(o, "caches"))
		printf("%-12s%12llu\n", "caches", (unsigned long long)get_u64(o, "caches"));
	if (json_object_get(o, "block_status"))
		printf("%-12s%12llu\n", "block status",
		       (unsigned long long)get_u64(o, "block_status"));
	printf("%-12s%12llu\n", "errors", (unsigned long long)get_u64(o, "errors"));

	printf("\n%-12s%12s%12s\n", "latency", "p50", "p99");
	printf("%-12s%12s%12s\n", "read",
	       human_latency(get_u64(o, "read_lat_p50_us"), b1, sizeof(b1)),
	       human_latency(get_u64(o, "read_lat_p99_us"), b2, sizeof(b2)));
	printf("%-12s%12s%12s\n", "write",
	       human_latency(get_u64(o, "write_lat_p50_us"), b1, sizeof(b1)),
	       human_latency(get_u64(o, "write_lat_p99_us"), b2, sizeof(b2)));

	printf("\n%-18s%llu\n", "inflight", (unsigned long long)get_u64(o, "inflight"));
	if (json_object_get(o, "held"))
		printf("%-18s%llu\n", "held", (unsigned long long)get_u64(o, "held"));
	printf("%-18s%llu\n", "waiting", (unsigned long long)get_u64(o, "waiting"));
	printf("%-18s%llu\n", "pending", (unsigned long long)get_u64(o, "pending"));
	printf("%-18s%llu\n", "iocbs submitted",
	       (unsigned long long)get_u64(o, "iocbs_submitted"));
	printf("%-18s%llu\n", "io_submit calls",
	       (unsigned long long)get_u64(o, "io_submit_calls"));
	printf("%-18s%llu\n", "merged", (unsigned long long)get_u64(o, "merged"));

	json_object_foreach(o, key, v) {
		char *s;

		if (key_shown(key))
			continue;
		if (!other)
			putchar('\n');
		other = true;
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("%-18s%s\n", key, s ? s : "?");
		free(s);
	}
}

struct watch_opts {
	bool watch;
	double interval;
	long count;		/* 0: forever */
};

static bool parse_number(const char *s, double *out)
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

static int stats_opt(int o, const char *arg, void *ctx)
{
	struct watch_opts *w = ctx;
	double d;
	char *end;

	switch (o) {
	case 'w':
		w->watch = true;
		if (arg) {
			if (!parse_number(arg, &d) || d < 0.1 || d > 86400)
				return usage_error("stats: --watch SECONDS: a number from 0.1 "
						   "to 86400, not '%s'", arg);
			w->interval = d;
		}
		return 0;
	case 'n':
		errno = 0;
		w->count = strtol(arg, &end, 10);
		if (errno || end == arg || *end || w->count <= 0)
			return usage_error("stats: --count N: a positive number, not '%s'", arg);
		w->watch = true;
		return 0;
	}
	return EXIT_USAGE;
}

struct snap {
	json_t *o;
	double t;		/* seconds, monotonic */
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rate(const struct snap *cur, const struct snap *prev, const char *key)
{
	double dt;
	uint64_t a = get_u64(cur->o, key), b = 0;

	if (prev->o) {
		b = get_u64(prev->o, key);
		dt = cur->t - prev->t;
	} else {
		dt = (double)get_u64(cur->o, "uptime_s");	/* since start */
	}
	if (dt <= 0 || a < b)
		return 0;
	return (double)(a - b) / dt;
}

/* One screen, iostat-like: rates over the last interval (the first one
 * over the daemon's uptime), then the queue and latency as they are. */
static void print_watch(const struct cli *cli, const struct snap *cur,
			const struct snap *prev, double interval, bool tty)
{
	json_t *o = cur->o;
	char b1[32], b2[32], ts[32];
	time_t now = time(NULL);
	struct tm tm;
	double r_iops = rate(cur, prev, "reads"), w_iops = rate(cur, prev, "writes");
	double r_bps = rate(cur, prev, "bytes_read"), w_bps = rate(cur, prev, "bytes_written");
	double calls = rate(cur, prev, "io_submit_calls");

	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	if (tty)
		fputs("\033[H\033[2J", stdout);
	printf("%s  %s, up %s, %llu connection%s    %s  every %gs%s\n\n",
	       cli->path, get_str(o, "state", "?"),
	       human_duration(get_u64(o, "uptime_s"), b1, sizeof(b1)),
	       (unsigned long long)get_u64(o, "connections"),
	       get_u64(o, "connections") == 1 ? "" : "s", ts, interval,
	       prev->o ? "" : "  (first line: since start)");
	printf("%-8s%10s%10s%10s%11s%11s\n", "", "IOPS", "MiB/s", "avg KiB", "lat p50",
	       "lat p99");
	printf("%-8s%10.0f%10.2f%10.1f%11s%11s\n", "read", r_iops, r_bps / 1048576,
	       r_iops > 0 ? r_bps / r_iops / 1024 : 0.0,
	       human_latency(get_u64(o, "read_lat_p50_us"), b1, sizeof(b1)),
	       human_latency(get_u64(o, "read_lat_p99_us"), b2, sizeof(b2)));
	printf("%-8s%10.0f%10.2f%10.1f%11s%11s\n", "write", w_iops, w_bps / 1048576,
	       w_iops > 0 ? w_bps / w_iops / 1024 : 0.0,
	       human_latency(get_u64(o, "write_lat_p50_us"), b1, sizeof(b1)),
	       human_latency(get_u64(o, "write_lat_p99_us"), b2, sizeof(b2)));
	printf("%-8s%10.0f\n", "flush", rate(cur, prev, "flushes"));
	printf("%-8s%10.0f\n", "trim", rate(cur, prev, "trims"));
	printf("%-8s%10.0f\n", "zero", rate(cur, prev, "zeroes"));
	printf("\nqueue    inflight %llu  held %llu  waiting %llu  pending %llu\n",
	       (unsigned long long)get_u64(o, "inflight"),
	       (unsigned long long)get_u64(o, "held"),
	       (unsigned long long)get_u64(o, "waiting"),
	       (unsigned long long)get_u64(o, "pending"));
	printf("submit   %.0f io_submit/s, %.1f iocbs per call, %.0f merged/s\n", calls,
	       calls > 0 ? rate(cur, prev, "iocbs_submitted") / calls : 0.0,
	       rate(cur, prev, "merged"));
	printf("errors   %llu (%.0f/s)\n", (unsigned long long)get_u64(o, "errors"),
	       rate(cur, prev, "errors"));
	if (!tty)
		putchar('\n');
	fflush(stdout);
}

static int stats_watch(struct cli *cli, const struct watch_opts *w)
{
	struct snap prev = { 0 }, cur;
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
		r = call(cli, request("stats"), REPLY_TIMEOUT_MS, &cur.o);
		if (r != EXIT_OK)
			break;
		cur.t = mono_s();
		if (!cli->json)
			print_watch(cli, &cur, &prev, w->interval, tty);
		json_decref(prev.o);
		prev = cur;
	}
	json_decref(prev.o);
	return r;
}

static int run_stats(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "watch", optional_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct watch_opts w = { .interval = 1 };
	const struct vcmd *self = find_cmd("stats");
	json_t *reply;
	int r;

	r = parse_opts(cli, self, argc, argv, opts, stats_opt, &w);
	if (r)
		return r < 0 ? EXIT_OK : r;
	/* "--watch 2" as well as "--watch=2": getopt only takes the latter
	 * for an optional argument. */
	if (w.watch && optind < argc && parse_number(argv[optind], &w.interval)) {
		if (w.interval < 0.1 || w.interval > 86400)
			return usage_error("stats: --watch SECONDS: a number from 0.1 to 86400");
		optind++;
	}
	if (optind < argc)
		return usage_error("stats: unexpected argument '%s'", argv[optind]);
	if (w.watch)
		return stats_watch(cli, &w);
	r = call(cli, request("stats"), REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		print_stats(reply);
	json_decref(reply);
	return r;
}

/* ---- pause, resume, flush, shutdown ---- */

static int pause_opt(int o, const char *arg, void *ctx)
{
	double *t = ctx;

	if (!parse_number(arg, t) || *t <= 0 || *t > 86400)
		return usage_error("pause: --timeout SECONDS: a number above 0 and up to "
				   "86400, not '%s'", arg);
	return 0;
}

static int run_pause(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const struct vcmd *self = find_cmd("pause");
	double t = 0;
	json_t *req, *reply;
	int r;

	r = parse_opts(cli, self, argc, argv, opts, pause_opt, &t);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (optind < argc)
		return usage_error("pause: unexpected argument '%s'", argv[optind]);
	req = request("pause");
	if (t > 0)
		json_object_set_new(req, "timeout", json_real(t));
	r = call(cli, req, (int)((t > 0 ? t : 30) * 1000) + 30 * 1000, &reply);
	if (r == EXIT_OK && !cli->json)
		printf("%s\n", get_str(reply, "state", "paused"));
	json_decref(reply);
	return r;
}

static int run_resume(struct cli *cli, int argc, char **argv)
{
	json_t *reply;

	RUN_ARGS("resume");
	r = call(cli, request("resume"), REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		printf("%s\n", get_str(reply, "state", "running"));
	json_decref(reply);
	return r;
}

static int run_flush(struct cli *cli, int argc, char **argv)
{
	json_t *reply;

	RUN_ARGS("flush");
	r = call(cli, request("flush"), FLUSH_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		printf("flushed\n");
	json_decref(reply);
	return r;
}

static int run_shutdown(struct cli *cli, int argc, char **argv)
{
	json_t *reply;

	RUN_ARGS("shutdown");
	r = call(cli, request("shutdown"), REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		printf("shutting down\n");
	json_decref(reply);
	return r;
}

/* ---- reopen ---- */

static int run_reopen(struct cli *cli, int argc, char **argv)
{
	const struct vcmd *self = find_cmd("reopen");
	char abs[PATH_MAX], b1[32];
	const char *image = NULL;
	json_t *req, *reply;
	int r;

	r = parse_opts(cli, self, argc, argv, NULL, NULL, NULL);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (optind < argc)
		image = argv[optind++];
	if (optind < argc)
		return usage_error("reopen: unexpected argument '%s'", argv[optind]);
	if (image && !*image)
		return usage_error("reopen: IMAGE is empty");
	/* The daemon's working directory is not ours. */
	if (image && image[0] != '/') {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(abs, sizeof(abs), "%s/%s", cwd, image) >= (int)sizeof(abs))
			return usage_error("reopen: cannot make %s an absolute path", image);
		image = abs;
	}
	req = request("reopen");
	if (image)
		json_object_set_new(req, "image", json_string(image));
	r = call(cli, req, REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json)
		printf("reopened %s (%s, %s)%s\n", get_str(reply, "image", "?"),
		       get_str(reply, "driver", "?"),
		       human_size(get_u64(reply, "size"), b1, sizeof(b1)),
		       json_is_true(json_object_get(reply, "resized")) ? ", size changed" : "");
	json_decref(reply);
	return r;
}

/* ---- log-level ---- */

static int run_log_level(struct cli *cli, int argc, char **argv)
{
	static const char *const levels[] = { "error", "warn", "warning", "notice",
					      "info", "debug", NULL };
	const struct vcmd *self = find_cmd("log-level");
	const char *level = NULL;
	json_t *req, *reply;
	int r;

	r = parse_opts(cli, self, argc, argv, NULL, NULL, NULL);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (optind < argc)
		level = argv[optind++];
	if (optind < argc)
		return usage_error("log-level: unexpected argument '%s'", argv[optind]);
	if (level) {
		bool known = false;
		for (const char *const *l = levels; *l; l++)
			known |= strcasecmp(*l, level) == 0;
		if (!known)
			return usage_error("log-level: LEVEL is error, warn, info or debug, "
					   "not '%s'", level);
	}
	req = request("log-level");
	if (level)
		json_object_set_new(req, "level", json_string(level));
	r = call(cli, req, REPLY_TIMEOUT_MS, &reply);
	if (r == EXIT_OK && !cli->json) {
		if (level)
			printf("log level %s (was %s)\n", get_str(reply, "level", "?"),
			       get_str(reply, "previous", "?"));
		else
			printf("%s\n", get_str(reply, "level", "?"));
	}
	json_decref(reply);
	return r;
}

/* ---- list ---- */

static void list_row(const char *file, const char *path, bool json, json_t *disks)
{
	char msg[512], b1[32], *line = NULL;
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
		snprintf(msg, sizeof(msg), "%s", get_str(info, "message", "error"));
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
		const char *why = r == -ECONNREFUSED ? "not running (stale socket)" :
				  r == -EACCES || r == -EPERM ? "permission denied" : msg;
		printf("%-16.*s %-12s %s\n", (int)strlen(file) - 4, file, "unreachable", why);
	} else {
		printf("%-16s %-12s %10s  %-6s %-3s %5llu  %s\n", get_str(info, "name", "?"),
		       get_str(info, "state", "?"),
		       human_size(get_u64(info, "size"), b1, sizeof(b1)),
		       get_str(info, "driver", "?"),
		       json_is_true(json_object_get(info, "read_only")) ? "ro" : "rw",
		       (unsigned long long)get_u64(info, "connections"),
		       get_str(info, "image", "?"));
	}
	json_decref(info);
	json_decref(stats);
}

static int run_list(struct cli *cli, int argc, char **argv)
{
	char dir[PATH_MAX - 64], path[PATH_MAX];
	json_t *disks = NULL;
	char **names;
	int n;

	RUN_ARGS("list");
	if (cli->socket || cli->name)
		return usage_error("list takes no socket or name: it asks every disk");
	if (ctl_rundir(dir, sizeof(dir)) < 0) {
		fprintf(stderr, "vdiskctl: no run directory: set RUNTIME_DIRECTORY or "
			"XDG_RUNTIME_DIR\n");
		return EXIT_USAGE;
	}
	n = scan_rundir(dir, &names);
	if (n == -ENOENT)
		n = 0;		/* no daemon has run yet: an empty list */
	if (n < 0) {
		fprintf(stderr, "vdiskctl: %s: %s\n", dir, strerror(-n));
		return EXIT_USAGE;
	}
	if (cli->json)
		disks = json_array();
	else
		printf("%-16s %-12s %10s  %-6s %-3s %5s  %s\n", "NAME", "STATE", "SIZE",
		       "DRIVER", "RW", "CONNS", "IMAGE");
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		list_row(names[i], path, cli->json, disks);
	}
	if (cli->json) {
		json_t *top = json_pack("{s:o}", "disks", disks);
		char *s = json_dumps(top, JSON_COMPACT | JSON_PRESERVE_ORDER);

		puts(s ? s : "{}");
		free(s);
		json_decref(top);
	}
	free_names(names, n);
	return EXIT_OK;
}

/* ---- help ---- */

static int run_help(struct cli *cli, int argc, char **argv)
{
	const struct vcmd *c;

	if (argc > 1 && (c = find_cmd(argv[1]))) {
		print_cmd_help(c);
		return EXIT_OK;
	}
	if (argc > 1)
		return usage_error("help: no command '%s'", argv[1]);
	print_usage(stdout);
	return EXIT_OK;
}

static const struct vcmd commands[] = {
	{ "list", "", "the disks in $RUNDIR and their state",
	  "  Asks every $RUNDIR/*.ctl for its info; sockets nobody answers on are\n"
	  "  shown as unreachable.  $RUNDIR is $RUNTIME_DIRECTORY, else /run/vdiskd\n"
	  "  for root, else $XDG_RUNTIME_DIR/vdiskd.\n", run_list },
	{ "info", "", "what the disk is, where it is served",
	  NULL, run_info },
	{ "stats", "[--watch [SECONDS]] [--count N]", "I/O counters, queue, latency",
	  "  --watch [SECONDS]  refresh every SECONDS (default 1) with per-second\n"
	  "                     rates: IOPS, MiB/s, queue depth, latency\n"
	  "  --count N          stop after N screens (implies --watch)\n", run_stats },
	{ "pause", "[--timeout SECONDS]",
	  "hold new requests, drain in-flight I/O",
	  "  Requests that arrive while paused are held, not failed.  If in-flight\n"
	  "  I/O does not drain within the timeout (default 30 s), the disk is\n"
	  "  resumed and the answer is ETIMEDOUT.  Pausing a paused disk is fine.\n",
	  run_pause },
	{ "resume", "", "run the held requests and continue", NULL, run_resume },
	{ "flush", "", "make completed writes durable", NULL, run_flush },
	{ "reopen", "[IMAGE]", "open the image (or IMAGE) anew; paused",
	  "  For snapshots: pause, take the snapshot, reopen, resume.  The driver\n"
	  "  is detected again.  If IMAGE cannot be opened the old image stays\n"
	  "  open.  A different size is refused while NBD clients are connected.\n",
	  run_reopen },
	{ "shutdown", "", "stop the daemon, as SIGTERM does", NULL,
	  run_shutdown },
	{ "log-level", "[error|warn|info|debug]", "show or set the log level", NULL,
	  run_log_level },
	{ "help", "[COMMAND]", "this help, or a command's", NULL, run_help },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const struct vcmd *find_cmd(const char *name)
{
	for (const struct vcmd *c = commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void print_usage(FILE *f)
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
				return usage_error("-s: empty socket path");
			cli.socket = optarg;
			break;
		case 'j':
			cli.json = true;
			break;
		case 'h':
			print_usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("vdiskctl %s\n", VDISKD_VERSION);
			return EXIT_OK;
		default:
			if (optopt == 's')
				return usage_error("-s needs a socket path");
			if (optopt)
				return usage_error("unknown option -%c", optopt);
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	/* A command name wins over a disk of the same name: reach that disk
	 * with -s or a path. */
	cmd = find_cmd(argv[optind]);
	if (!cmd) {
		if (cli.socket)
			return usage_error("unknown command '%s'", argv[optind]);
		cli.name = argv[optind++];
		if (!*cli.name)
			return usage_error("empty disk name");
		if (optind >= argc)
			return usage_error("no command given for disk '%s' (and '%s' is not "
					   "a command)", cli.name, cli.name);
		cmd = find_cmd(argv[optind]);
		if (!cmd)
			return usage_error("unknown command '%s'", argv[optind]);
	}
	r = cmd->run(&cli, argc - optind, argv + optind);
	ctl_conn_close(cli.conn);
	if (fflush(stdout) != 0 && r == EXIT_OK)
		r = EXIT_USAGE;	/* a full disk or closed pipe lost the output */
	return r;
}
