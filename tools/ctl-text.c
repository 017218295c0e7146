/* vdiskctl's text output (see ctl-text.h): aligned tables a person reads
 * at a glance, sizes and times in human units.  Client side only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/ctl-text.h"

const char *ctl_fmt_size(uint64_t v, char *buf, size_t len)
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

const char *ctl_fmt_duration(uint64_t s, char *buf, size_t len)
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

const char *ctl_fmt_latency(uint64_t us, char *buf, size_t len)
{
	if (us >= 1000000)
		snprintf(buf, len, "%.2f s", (double)us / 1e6);
	else if (us >= 1000)
		snprintf(buf, len, "%.1f ms", (double)us / 1e3);
	else
		snprintf(buf, len, "%llu us", (unsigned long long)us);
	return buf;
}

uint64_t ctl_get_u64(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return (uint64_t)json_integer_value(v);
	if (json_is_real(v) && json_real_value(v) >= 0)
		return (uint64_t)json_real_value(v);
	return 0;
}

const char *ctl_get_str(json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : dflt;
}

/* "label      value" lines: the labels of one table share a width. */
static void ctl_text_kv(FILE *f, int w, const char *label, const char *value)
{
	fprintf(f, "%-*s%s\n", w, label, value);
}

static void ctl_text_kv_u64(FILE *f, int w, const char *label, json_t *o, const char *key)
{
	fprintf(f, "%-*s%llu\n", w, label, (unsigned long long)ctl_get_u64(o, key));
}

/* The driver's own facts (info's object named after the driver). */
static void ctl_print_driver_info(FILE *f, json_t *d)
{
	const char *k;
	json_t *v;

	if (!json_is_object(d))
		return;
	json_object_foreach(d, k, v) {
		char line[512];
		size_t i, n = 0;
		json_t *e;

		line[0] = 0;
		if (json_is_integer(v)) {
			snprintf(line, sizeof(line), "%lld", (long long)json_integer_value(v));
		} else if (json_is_string(v)) {
			snprintf(line, sizeof(line), "%s", json_string_value(v));
		} else if (json_is_array(v)) {
			json_array_foreach(v, i, e) {
				if (n < sizeof(line))
					n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s",
							      i ? ", " : "",
							      json_string_value(e) ?
							      json_string_value(e) : "?");
			}
			if (!n)
				snprintf(line, sizeof(line), "-");
		} else {
			continue;
		}
		for (char *p = line; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = '?';
		char key[64];
		snprintf(key, sizeof(key), "%s", k);
		for (char *p = key; *p; p++)
			if (*p == '_')
				*p = ' ';
		ctl_text_kv(f, 16, key, line);
	}
}

void ctl_print_info(FILE *f, json_t *o)
{
	char b[32], line[96];
	json_t *listen = json_object_get(o, "listen");
	size_t i;
	json_t *v;

	ctl_text_kv(f, 16, "name", ctl_get_str(o, "name", "?"));
	ctl_text_kv(f, 16, "image", ctl_get_str(o, "image", "?"));
	ctl_text_kv(f, 16, "driver", ctl_get_str(o, "driver", "?"));
	{
		json_t *chain = json_object_get(o, "chain"), *c;
		char cl[4200];

		json_array_foreach(chain, i, c) {
			if (i == 0)
				continue;
			snprintf(cl, sizeof(cl), "%s (%s)", ctl_get_str(c, "image", "?"),
				 ctl_get_str(c, "driver", "?"));
			ctl_text_kv(f, 16, i == 1 ? "parents" : "", cl);
		}
	}
	snprintf(line, sizeof(line), "%s (%llu bytes)",
		 ctl_fmt_size(ctl_get_u64(o, "size"), b, sizeof(b)),
		 (unsigned long long)ctl_get_u64(o, "size"));
	ctl_text_kv(f, 16, "size", line);
	snprintf(line, sizeof(line), "%llu logical, %llu physical",
		 (unsigned long long)ctl_get_u64(o, "logical_block"),
		 (unsigned long long)ctl_get_u64(o, "physical_block"));
	ctl_text_kv(f, 16, "block size", line);
	ctl_text_kv(f, 16, "read-only", json_is_true(json_object_get(o, "read_only")) ? "yes" : "no");
	ctl_text_kv(f, 16, "cache", ctl_get_str(o, "cache", "?"));
	ctl_text_kv(f, 16, "state", ctl_get_str(o, "state", "?"));
	if (*ctl_get_str(o, "pause_reason", ""))
		ctl_text_kv(f, 16, "pause reason", ctl_get_str(o, "pause_reason", ""));
	if (json_array_size(listen) == 0)
		ctl_text_kv(f, 16, "listen", "-");
	json_array_foreach(listen, i, v)
		ctl_text_kv(f, 16, i == 0 ? "listen" : "", json_string_value(v) ? json_string_value(v) : "?");
	if (json_object_get(o, "tls"))
		ctl_text_kv(f, 16, "tls", ctl_get_str(o, "tls", "?"));
	if (json_object_get(o, "connections"))
		ctl_text_kv_u64(f, 16, "connections", o, "connections");
	ctl_text_kv_u64(f, 16, "pid", o, "pid");
	ctl_text_kv(f, 16, "version", ctl_get_str(o, "version", "?"));
	ctl_print_driver_info(f, json_object_get(o, ctl_get_str(o, "driver", "")));
}

void ctl_print_connections(FILE *f, json_t *o)
{
	json_t *a = json_object_get(o, "connections"), *c;
	size_t i;

	fprintf(f, "%-5s %-22s %-14s %-5s %s\n", "ID", "PEER", "STATE", "TLS", "TLS PEER");
	json_array_foreach(a, i, c) {
		bool tls = json_is_true(json_object_get(c, "tls"));
		char peer[320];

		snprintf(peer, sizeof(peer), "%s%s%s%s", tls ? ctl_get_str(c, "tls_peer", "") : "-",
			 tls ? " (" : "", tls ? ctl_get_str(c, "tls_cipher", "") : "",
			 tls ? (json_is_true(json_object_get(c, "ktls")) ? ", kTLS)" : ")") : "");
		fprintf(f, "%-5llu %-22s %-14s %-5s %s\n",
			(unsigned long long)ctl_get_u64(c, "id"), ctl_get_str(c, "peer", "?"),
			ctl_get_str(c, "state", "?"), tls ? "yes" : "no", peer);
	}
}

/* Keys the tables below show; anything else is printed at the end, so a
 * newer daemon's counters are not hidden. */
static const char *const shown_keys[] = {
	"ok", "state", "pause_reason", "uptime_s", "connections", "reads", "writes", "flushes",
	"trims", "zeroes", "caches", "block_status", "bytes_read", "bytes_written",
	"errors", "inflight", "held", "waiting", "pending", "iocbs_submitted",
	"io_submit_calls", "merged", "read_lat_p50_us", "read_lat_p99_us",
	"write_lat_p50_us", "write_lat_p99_us", NULL,
};

static bool ctl_text_key_shown(const char *k)
{
	if (strncmp(k, "stage_", 6) == 0)
		return true;	/* the stage table */
	for (const char *const *p = shown_keys; *p; p++)
		if (strcmp(*p, k) == 0)
			return true;
	return false;
}

/* "reads   1234   4.8 MiB": a count, and bytes when bytes_key is set. */
static void ctl_text_count_row(FILE *f, const char *label, json_t *o, const char *key,
		      const char *bytes_key)
{
	char b[32];

	fprintf(f, "%-12s%12llu", label, (unsigned long long)ctl_get_u64(o, key));
	if (bytes_key)
		fprintf(f, "%14s", ctl_fmt_size(ctl_get_u64(o, bytes_key), b, sizeof(b)));
	fputc('\n', f);
}

static void ctl_text_latency_row(FILE *f, const char *label, json_t *o, const char *p50,
			const char *p99)
{
	char b1[32], b2[32];

	fprintf(f, "%-12s%12s%14s\n", label,
		ctl_fmt_latency(ctl_get_u64(o, p50), b1, sizeof(b1)),
		ctl_fmt_latency(ctl_get_u64(o, p99), b2, sizeof(b2)));
}

/* The per-stage breakdown, in the order a request meets the stages:
 * the keys stage_NAME_{count,p50_us,p99_us}, whatever names the daemon
 * sends (a stage it does not send is not shown). */
static void ctl_text_stages(FILE *f, json_t *o)
{
	static const char *const order[] = {
		"recv", "queue", "submit", "device", "vbd", "reply", "total", NULL,
	};
	bool hdr = false;

	for (const char *const *n = order; *n; n++) {
		char kc[48], k50[48], k99[48], label[32];

		snprintf(kc, sizeof(kc), "stage_%s_count", *n);
		snprintf(k50, sizeof(k50), "stage_%s_p50_us", *n);
		snprintf(k99, sizeof(k99), "stage_%s_p99_us", *n);
		if (!json_object_get(o, kc) || ctl_get_u64(o, kc) == 0)
			continue;
		if (!hdr)
			fprintf(f, "\n%-12s%12s%14s\n", "stage", "p50", "p99");
		hdr = true;
		snprintf(label, sizeof(label), "  %s", *n);
		ctl_text_latency_row(f, label, o, k50, k99);
	}
}

void ctl_print_stats(FILE *f, json_t *o)
{
	char b[32];
	const char *key;
	json_t *v;
	bool other = false;

	ctl_text_kv(f, 18, "state", ctl_get_str(o, "state", "?"));
	if (*ctl_get_str(o, "pause_reason", ""))
		ctl_text_kv(f, 18, "pause reason", ctl_get_str(o, "pause_reason", ""));
	ctl_text_kv(f, 18, "uptime", ctl_fmt_duration(ctl_get_u64(o, "uptime_s"), b, sizeof(b)));
	ctl_text_kv_u64(f, 18, "connections", o, "connections");

	fprintf(f, "\n%-12s%12s%14s\n", "", "requests", "bytes");
	ctl_text_count_row(f, "reads", o, "reads", "bytes_read");
	ctl_text_count_row(f, "writes", o, "writes", "bytes_written");
	ctl_text_count_row(f, "flushes", o, "flushes", NULL);
	ctl_text_count_row(f, "trims", o, "trims", NULL);
	ctl_text_count_row(f, "zeroes", o, "zeroes", NULL);
	if (json_object_get(o, "caches"))
		ctl_text_count_row(f, "caches", o, "caches", NULL);
	if (json_object_get(o, "block_status"))
		ctl_text_count_row(f, "block status", o, "block_status", NULL);
	ctl_text_count_row(f, "errors", o, "errors", NULL);

	fprintf(f, "\n%-12s%12s%14s\n", "latency", "p50", "p99");
	ctl_text_latency_row(f, "read", o, "read_lat_p50_us", "read_lat_p99_us");
	ctl_text_latency_row(f, "write", o, "write_lat_p50_us", "write_lat_p99_us");
	ctl_text_stages(f, o);

	fputc('\n', f);
	ctl_text_kv_u64(f, 18, "inflight", o, "inflight");
	if (json_object_get(o, "held"))
		ctl_text_kv_u64(f, 18, "held", o, "held");
	ctl_text_kv_u64(f, 18, "waiting", o, "waiting");
	ctl_text_kv_u64(f, 18, "pending", o, "pending");
	ctl_text_kv_u64(f, 18, "iocbs submitted", o, "iocbs_submitted");
	ctl_text_kv_u64(f, 18, "io_submit calls", o, "io_submit_calls");
	ctl_text_kv_u64(f, 18, "merged", o, "merged");

	json_object_foreach(o, key, v) {
		char *s;

		if (ctl_text_key_shown(key))
			continue;
		if (!other)
			fputc('\n', f);
		other = true;
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		ctl_text_kv(f, 18, key, s ? s : "?");
		free(s);
	}
}

/* Per second between two samples. */
static double ctl_text_rate(const struct ctl_sample *cur, const struct ctl_sample *prev,
		   const char *key)
{
	double dt;
	uint64_t a = ctl_get_u64(cur->o, key), b = 0;

	if (prev->o) {
		b = ctl_get_u64(prev->o, key);
		dt = cur->t - prev->t;
	} else {
		dt = (double)ctl_get_u64(cur->o, "uptime_s");	/* since start */
	}
	if (dt <= 0 || a < b)
		return 0;
	return (double)(a - b) / dt;
}

/* "read   1234   4.82   4.0   120 us   900 us" */
static void ctl_text_watch_io_row(FILE *f, const char *label, const struct ctl_sample *cur,
			 const struct ctl_sample *prev, const char *ops, const char *bytes,
			 const char *p50, const char *p99)
{
	double iops = ctl_text_rate(cur, prev, ops), bps = ctl_text_rate(cur, prev, bytes);
	char b1[32], b2[32];

	fprintf(f, "%-8s%10.0f%10.2f%10.1f%11s%11s\n", label, iops, bps / 1048576,
		iops > 0 ? bps / iops / 1024 : 0.0,
		ctl_fmt_latency(ctl_get_u64(cur->o, p50), b1, sizeof(b1)),
		ctl_fmt_latency(ctl_get_u64(cur->o, p99), b2, sizeof(b2)));
}

/* One screen, iostat-like: rates over the last interval (the first one
 * over the daemon's uptime), then the queue and latency as they are. */
void ctl_print_watch(FILE *f, const char *title, const struct ctl_sample *cur,
		     const struct ctl_sample *prev, double interval, bool tty)
{
	json_t *o = cur->o;
	uint64_t conns = ctl_get_u64(o, "connections");
	double calls = ctl_text_rate(cur, prev, "io_submit_calls");
	char b[32], ts[32];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	if (tty)
		fputs("\033[H\033[2J", f);	/* home, clear: one screen */
	fprintf(f, "%s  %s, up %s, %llu connection%s    %s  every %gs%s\n\n", title,
		ctl_get_str(o, "state", "?"),
		ctl_fmt_duration(ctl_get_u64(o, "uptime_s"), b, sizeof(b)),
		(unsigned long long)conns, conns == 1 ? "" : "s", ts, interval,
		prev->o ? "" : "  (rates since start)");
	fprintf(f, "%-8s%10s%10s%10s%11s%11s\n", "", "IOPS", "MiB/s", "avg KiB",
		"lat p50", "lat p99");
	ctl_text_watch_io_row(f, "read", cur, prev, "reads", "bytes_read",
		     "read_lat_p50_us", "read_lat_p99_us");
	ctl_text_watch_io_row(f, "write", cur, prev, "writes", "bytes_written",
		     "write_lat_p50_us", "write_lat_p99_us");
	fprintf(f, "%-8s%10.0f\n", "flush", ctl_text_rate(cur, prev, "flushes"));
	fprintf(f, "%-8s%10.0f\n", "trim", ctl_text_rate(cur, prev, "trims"));
	fprintf(f, "%-8s%10.0f\n", "zero", ctl_text_rate(cur, prev, "zeroes"));
	fprintf(f, "\nqueue    inflight %llu  held %llu  waiting %llu  pending %llu\n",
		(unsigned long long)ctl_get_u64(o, "inflight"),
		(unsigned long long)ctl_get_u64(o, "held"),
		(unsigned long long)ctl_get_u64(o, "waiting"),
		(unsigned long long)ctl_get_u64(o, "pending"));
	fprintf(f, "submit   %.0f io_submit/s, %.1f iocbs per call, %.0f merged/s\n", calls,
		calls > 0 ? ctl_text_rate(cur, prev, "iocbs_submitted") / calls : 0.0,
		ctl_text_rate(cur, prev, "merged"));
	fprintf(f, "errors   %llu (%.0f/s)\n", (unsigned long long)ctl_get_u64(o, "errors"),
		ctl_text_rate(cur, prev, "errors"));
	if (json_object_get(o, "throttled")) {
		double held = ctl_text_rate(cur, prev, "throttled");
		double wait = ctl_text_rate(cur, prev, "throttle_wait_us");

		fprintf(f, "limits   %.0f held/s, %llu held now, %.1f ms avg wait\n", held,
			(unsigned long long)ctl_get_u64(o, "throttled_now"),
			held > 0 ? wait / held / 1000 : 0.0);
	}
	if (!tty)
		fputc('\n', f);
	fflush(f);
}

void ctl_print_list_header(FILE *f)
{
	fprintf(f, "%-16s %-12s %10s  %-6s %-3s %5s  %s\n", "NAME", "STATE", "SIZE",
		"DRIVER", "RW", "CONNS", "IMAGE");
}

void ctl_print_list_row(FILE *f, json_t *info)
{
	char b[32];

	fprintf(f, "%-16s %-12s %10s  %-6s %-3s %5llu  %s\n",
		ctl_get_str(info, "name", "?"), ctl_get_str(info, "state", "?"),
		ctl_fmt_size(ctl_get_u64(info, "size"), b, sizeof(b)),
		ctl_get_str(info, "driver", "?"),
		json_is_true(json_object_get(info, "read_only")) ? "ro" : "rw",
		(unsigned long long)ctl_get_u64(info, "connections"),
		ctl_get_str(info, "image", "?"));
}

void ctl_print_list_unreachable(FILE *f, const char *name, const char *why)
{
	fprintf(f, "%-16s %-12s %s\n", name, "unreachable", why);
}
