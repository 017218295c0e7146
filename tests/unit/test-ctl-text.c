/* vdiskctl's text output: human units, and the info/stats/watch/list
 * renderings of replies (complete, partial, with keys it does not know),
 * captured with open_memstream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tools/ctl-text.h"
#include "tests/lib/test.h"

static void check_str(const char *got, const char *want)
{
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "got \"%s\", want \"%s\"\n", got, want);
		CHECK(0);
	}
}

static void test_units(void)
{
	char b[32];

	check_str(ctl_fmt_size(0, b, sizeof(b)), "0 B");
	check_str(ctl_fmt_size(1023, b, sizeof(b)), "1023 B");
	check_str(ctl_fmt_size(1024, b, sizeof(b)), "1 KiB");
	check_str(ctl_fmt_size(1536, b, sizeof(b)), "1.5 KiB");
	check_str(ctl_fmt_size(64ull << 20, b, sizeof(b)), "64 MiB");
	check_str(ctl_fmt_size(3ull << 29, b, sizeof(b)), "1.5 GiB");
	check_str(ctl_fmt_size(16ull << 40, b, sizeof(b)), "16 TiB");
	check_str(ctl_fmt_size(UINT64_MAX, b, sizeof(b)), "16 EiB");
	check_str(ctl_fmt_duration(0, b, sizeof(b)), "0s");
	check_str(ctl_fmt_duration(59, b, sizeof(b)), "59s");
	check_str(ctl_fmt_duration(187, b, sizeof(b)), "3m 07s");
	check_str(ctl_fmt_duration(7500, b, sizeof(b)), "2h 05m 00s");
	check_str(ctl_fmt_duration(3 * 86400 + 4 * 3600 + 300, b, sizeof(b)), "3d 4h 05m");
	check_str(ctl_fmt_latency(0, b, sizeof(b)), "0 us");
	check_str(ctl_fmt_latency(999, b, sizeof(b)), "999 us");
	check_str(ctl_fmt_latency(1234, b, sizeof(b)), "1.2 ms");
	check_str(ctl_fmt_latency(3400000, b, sizeof(b)), "3.40 s");
	/* a small buffer truncates */
	check_str(ctl_fmt_size(3ull << 29, b, 4), "1.5");
}

static char *render(void (*fn)(FILE *, json_t *), const char *json)
{
	json_t *o = json_loads(json, 0, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	REQUIRE(o && f);
	fn(f, o);
	fclose(f);
	json_decref(o);
	return buf;
}

static void has_line(const char *text, const char *line)
{
	const char *p = text;
	size_t n = strlen(line);

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return;
		p++;
	}
	fprintf(stderr, "no line \"%s\" in:\n%s\n", line, text);
	CHECK(0);
}

static void test_info(void)
{
	char *s = render(ctl_print_info,
		"{\"ok\":true,\"name\":\"vm1\",\"image\":\"/img/vm1.raw\",\"driver\":\"raw\","
		"\"size\":10737418240,\"logical_block\":512,\"physical_block\":4096,"
		"\"read_only\":true,\"cache\":\"none\",\"state\":\"paused\","
		"\"listen\":[\"unix:/run/vdiskd/vm1.nbd\",\"tcp:[::1]:10809\"],"
		"\"connections\":2,\"pid\":4242,\"version\":\"0.1.0\"}");

	has_line(s, "name            vm1");
	has_line(s, "image           /img/vm1.raw");
	has_line(s, "size            10 GiB (10737418240 bytes)");
	has_line(s, "block size      512 logical, 4096 physical");
	has_line(s, "read-only       yes");
	has_line(s, "state           paused");
	has_line(s, "listen          unix:/run/vdiskd/vm1.nbd");
	has_line(s, "                tcp:[::1]:10809");
	has_line(s, "connections     2");
	has_line(s, "pid             4242");
	free(s);

	/* missing and mistyped fields print placeholders, never crash */
	s = render(ctl_print_info, "{\"ok\":true,\"size\":\"big\",\"listen\":7}");
	has_line(s, "name            ?");
	has_line(s, "size            0 B (0 bytes)");
	has_line(s, "listen          -");
	free(s);
}

static const char stats_json[] =
	"{\"ok\":true,\"reads\":1000,\"writes\":250,\"flushes\":3,\"trims\":1,"
	"\"zeroes\":0,\"bytes_read\":4096000,\"bytes_written\":1048576,\"errors\":0,"
	"\"inflight\":2,\"waiting\":1,\"pending\":1,\"iocbs_submitted\":900,"
	"\"io_submit_calls\":450,\"merged\":350,\"connections\":1,\"state\":\"running\","
	"\"uptime_s\":100,\"read_lat_p50_us\":80,\"read_lat_p99_us\":1500,"
	"\"write_lat_p50_us\":120,\"write_lat_p99_us\":2500000,\"future_counter\":7}";

static void test_stats(void)
{
	char *s = render(ctl_print_stats, stats_json);

	has_line(s, "state             running");
	has_line(s, "uptime            1m 40s");
	has_line(s, "                requests         bytes");
	has_line(s, "reads               1000       3.9 MiB");
	has_line(s, "writes               250         1 MiB");
	has_line(s, "flushes                3");
	has_line(s, "latency              p50           p99");
	has_line(s, "read               80 us        1.5 ms");
	has_line(s, "write             120 us        2.50 s");
	has_line(s, "inflight          2");
	has_line(s, "io_submit calls   450");
	has_line(s, "future_counter    7");	/* unknown keys are shown */
	CHECK(strstr(s, "\"ok\"") == NULL && strstr(s, "\nok ") == NULL);
	free(s);
}

static void test_watch(void)
{
	json_t *a = json_loads(stats_json, 0, NULL);
	json_t *b = json_deep_copy(a);
	struct ctl_sample prev = { a, 10.0 }, cur = { b, 12.0 }, none = { NULL, 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	/* two seconds later: 2000 more reads of 4 KiB, 100 writes */
	json_object_set_new(b, "reads", json_integer(3000));
	json_object_set_new(b, "bytes_read", json_integer(4096000 + 2000 * 4096));
	json_object_set_new(b, "writes", json_integer(350));
	json_object_set_new(b, "bytes_written", json_integer(1048576 + 100 * 65536));
	f = open_memstream(&buf, &len);
	ctl_print_watch(f, "/run/vdiskd/vm1.ctl", &cur, &prev, 2, false);
	fclose(f);
	{
		static const char head[] = "/run/vdiskd/vm1.ctl  running, up 1m 40s, 1 connection ";
		CHECK(strncmp(buf, head, strlen(head)) == 0);
	}
	has_line(buf, "              IOPS     MiB/s   avg KiB    lat p50    lat p99");
	has_line(buf, "read          1000      3.91       4.0      80 us     1.5 ms");
	has_line(buf, "write           50      3.12      64.0     120 us     2.50 s");
	has_line(buf, "queue    inflight 2  held 0  waiting 1  pending 1");
	CHECK(strchr(buf, '\033') == NULL);
	free(buf);

	/* the first screen: rates since start, and a terminal is cleared */
	buf = NULL;
	f = open_memstream(&buf, &len);
	ctl_print_watch(f, "x", &prev, &none, 1, true);
	fclose(f);
	CHECK(strncmp(buf, "\033[H\033[2J", 7) == 0);
	CHECK(strstr(buf, "rates since start") != NULL);
	has_line(buf, "read            10      0.04       4.0      80 us     1.5 ms");
	free(buf);

	/* counters that went backwards (a restarted daemon) rate as 0 */
	json_object_set_new(b, "reads", json_integer(5));
	buf = NULL;
	f = open_memstream(&buf, &len);
	ctl_print_watch(f, "x", &cur, &prev, 2, false);
	fclose(f);
	CHECK(strstr(buf, "\nread             0 ") != NULL);
	free(buf);
	json_decref(a);
	json_decref(b);
}

static void test_list(void)
{
	json_t *o = json_loads("{\"name\":\"vm1\",\"state\":\"running\",\"size\":1073741824,"
			       "\"driver\":\"vhd\",\"read_only\":false,\"connections\":3,"
			       "\"image\":\"/img/a.vhd\"}", 0, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ctl_print_list_header(f);
	ctl_print_list_row(f, o);
	ctl_print_list_unreachable(f, "old", "not running (stale socket)");
	fclose(f);
	has_line(buf, "NAME             STATE              SIZE  DRIVER RW  CONNS  IMAGE");
	has_line(buf, "vm1              running           1 GiB  vhd    rw      3  /img/a.vhd");
	has_line(buf, "old              unreachable  not running (stale socket)");
	free(buf);
	json_decref(o);
}

int main(void)
{
	test_units();
	test_info();
	test_stats();
	test_watch();
	test_list();
	return test_done("test-ctl-text");
}
