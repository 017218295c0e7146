/* The config file parser (daemon/config.c) and --config in the options:
 * every key, the command line winning over the file, and every kind of bad
 * input with its exact message. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/options.h"
#include "tests/lib/test.h"

static char tmpdir[] = "/tmp/test-config.XXXXXX";

static int parse(struct vd_config *cfg, const char *text, char *err)
{
	err[0] = 0;
	return cfg_parse_buf(cfg, "t.conf", text, strlen(text), err, CFG_ERR_LEN);
}

/* Writes len bytes to a file in tmpdir; returns its path (static). */
static const char *write_file(const char *name, const void *buf, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	REQUIRE(f);
	REQUIRE(fwrite(buf, 1, len, f) == len);
	REQUIRE(fclose(f) == 0);
	return path;
}

static void test_every_key(void)
{
	static const char text[] =
		"# a disk\n"
		"\n"
		"image = /var/lib/vdiskd/disk.img\n"
		"driver = raw\n"
		"listen = unix:/run/vdiskd/d.nbd\n"
		"listen = tcp:127.0.0.1:10809\n"
		"control = /run/vdiskd/d.ctl\n"
		"read-only = yes\n"
		"cache = writeback\n"
		"queue-depth = 64\n"
		"poll-us = 50\n"
		"submit-cpu = free\n"
		"max-connections = 4\n"
		"log-level = debug\n"
		"name = disk1\n"
		"limit = iops=2000,bps=50M\n"
		"limit = read-iops=500\n"
		"limit-group = tenant-a\n"
		"shutdown-timeout = 5\n"
		"max-peer-connections = 2\n"
		"buffer-limit = 64M\n"
		"on-write-error = enospc\n"
		"on-read-error = pause\n"
		"tls = require\n"
		"tls-certificates = /etc/pki/vdiskd\n"
		"tls-psk = /etc/vdiskd/keys.psk\n"
		"tls-verify-peer = yes\n"
		"handshake-timeout = 3\n"
		"ceph-conf = /etc/ceph/ceph.conf\n"
		"ceph-id = vdiskd\n"
		"ceph-timeout = 7\n"
		"ceph-op-timeout = 0\n";
	struct vd_config cfg;
	char err[CFG_ERR_LEN];

	CHECK_EQ(parse(&cfg, text, err), 0);
	CHECK(strcmp(err, "") == 0);
	CHECK(strcmp(cfg.image, "/var/lib/vdiskd/disk.img") == 0);
	CHECK(strcmp(cfg.driver, "raw") == 0);
	CHECK_EQ(cfg.nr_listen, 2);
	CHECK(strcmp(cfg.listen[0], "unix:/run/vdiskd/d.nbd") == 0);
	CHECK(strcmp(cfg.listen[1], "tcp:127.0.0.1:10809") == 0);
	CHECK(strcmp(cfg.control, "/run/vdiskd/d.ctl") == 0);
	CHECK(cfg.read_only);
	CHECK_EQ(cfg.cache, VBD_CACHE_WRITEBACK);
	CHECK_EQ(cfg.queue_depth, 64);
	CHECK_EQ(cfg.poll_us, 50);
	CHECK_EQ(cfg.submit_cpu, VBD_SUBMIT_FREE);
	CHECK_EQ(cfg.max_connections, 4);
	CHECK_EQ(cfg.log_level, LOG_LVL_DEBUG);
	CHECK(strcmp(cfg.name, "disk1") == 0);
	/* limit lines add up, in order. */
	CHECK_EQ(cfg.limits.iops, 2000);
	CHECK_EQ(cfg.limits.bps, 50ull << 20);
	CHECK_EQ(cfg.limits.read_iops, 500);
	CHECK(strcmp(cfg.limit_group, "tenant-a") == 0);
	CHECK_EQ(cfg.shutdown_timeout, 5);
	CHECK_EQ(cfg.max_peer_connections, 2);
	CHECK_EQ(cfg.buffer_limit, 64ull << 20);
	CHECK_EQ(cfg.on_write_error, VBD_ERR_ENOSPC);
	CHECK_EQ(cfg.on_read_error, VBD_ERR_PAUSE);
	CHECK_EQ(cfg.tls, NBD_TLS_REQUIRE);
	CHECK(strcmp(cfg.tls_certificates, "/etc/pki/vdiskd") == 0);
	CHECK(strcmp(cfg.tls_psk, "/etc/vdiskd/keys.psk") == 0);
	CHECK(cfg.tls_verify_peer);
	CHECK_EQ(cfg.handshake_timeout, 3);
	CHECK(strcmp(cfg.ceph_conf, "/etc/ceph/ceph.conf") == 0);
	CHECK(strcmp(cfg.ceph_id, "vdiskd") == 0);
	CHECK_EQ(cfg.ceph_timeout, 7);
	CHECK_EQ(cfg.ceph_op_timeout, 0);
	/* Lines are remembered (the first for listen). */
	CHECK_EQ(cfg.line[CFG_IMAGE], 3);
	CHECK_EQ(cfg.line[CFG_LISTEN], 5);
	CHECK_EQ(cfg.line[CFG_NAME], 15);
	for (int k = 0; k < CFG_NR_KEYS; k++)
		CHECK(cfg.line[k] != 0);
	cfg_free(&cfg);
	CHECK(cfg.image == NULL);
	CHECK_EQ(cfg.nr_listen, 0);
}

static void test_layout(void)
{
	struct vd_config cfg;
	char err[CFG_ERR_LEN];

	/* Blanks around everything, tabs, DOS line ends, comments with
	 * leading blanks, '=' inside the value, no newline at the end. */
	CHECK_EQ(parse(&cfg, "\t  image\t=   /a b/c=d.img  \r\n"
			     "   # comment = with = signs\r\n"
			     "\t\r\n"
			     "cache=none", err), 0);
	CHECK(cfg.image && strcmp(cfg.image, "/a b/c=d.img") == 0);
	CHECK_EQ(cfg.cache, VBD_CACHE_NONE);
	CHECK_EQ(cfg.line[CFG_CACHE], 4);
	cfg_free(&cfg);

	/* '#' after a value is part of it: paths may hold one. */
	CHECK_EQ(parse(&cfg, "image = /x/#1.img\n", err), 0);
	CHECK(strcmp(cfg.image, "/x/#1.img") == 0);
	cfg_free(&cfg);

	/* Empty file, only comments: valid, nothing set, defaults. */
	CHECK_EQ(parse(&cfg, "", err), 0);
	CHECK_EQ(parse(&cfg, "# nothing\n\n#\n", err), 0);
	for (int k = 0; k < CFG_NR_KEYS; k++)
		CHECK_EQ(cfg.line[k], 0);
	CHECK_EQ(cfg.queue_depth, 128);
	CHECK_EQ(cfg.max_connections, 128);
	CHECK_EQ(cfg.log_level, LOG_LVL_INFO);
	cfg_free(&cfg);

	/* UTF-8 is text. */
	CHECK_EQ(parse(&cfg, "# disque de démo ✓\nimage = /srv/é.img\n", err), 0);
	CHECK(strcmp(cfg.image, "/srv/é.img") == 0);
	cfg_free(&cfg);

	/* A line of exactly the maximum length is fine. */
	{
		char *big = malloc(CFG_MAX_LINE + 2);
		REQUIRE(big);
		memset(big, 'x', CFG_MAX_LINE);
		memcpy(big, "image = /", 9);
		big[CFG_MAX_LINE] = '\n';
		big[CFG_MAX_LINE + 1] = 0;
		CHECK_EQ(parse(&cfg, big, err), 0);
		CHECK_EQ(strlen(cfg.image), CFG_MAX_LINE - 8);
		cfg_free(&cfg);
		free(big);
	}
}

static void test_values(void)
{
	static const struct { const char *v; bool ro; } bools[] = {
		{ "true", true }, { "yes", true }, { "1", true }, { "on", true },
		{ "TRUE", true }, { "Yes", true },
		{ "false", false }, { "no", false }, { "0", false }, { "off", false },
		{ "False", false }, { "NO", false },
	};
	static const struct { const char *v; enum log_level l; } levels[] = {
		{ "error", LOG_LVL_ERR }, { "warn", LOG_LVL_WARN },
		{ "warning", LOG_LVL_WARN }, { "notice", LOG_LVL_NOTICE },
		{ "info", LOG_LVL_INFO }, { "debug", LOG_LVL_DEBUG },
	};
	struct vd_config cfg;
	char err[CFG_ERR_LEN], text[128];

	for (unsigned i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		snprintf(text, sizeof(text), "read-only = %s\n", bools[i].v);
		CHECK_EQ(parse(&cfg, text, err), 0);
		CHECK_EQ(cfg.read_only, bools[i].ro);
		cfg_free(&cfg);
	}
	for (unsigned i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		snprintf(text, sizeof(text), "log-level = %s\n", levels[i].v);
		CHECK_EQ(parse(&cfg, text, err), 0);
		CHECK_EQ(cfg.log_level, levels[i].l);
		cfg_free(&cfg);
	}
	CHECK_EQ(parse(&cfg, "queue-depth = 1\nmax-connections = 65536\n", err), 0);
	CHECK_EQ(cfg.queue_depth, 1);
	CHECK_EQ(cfg.max_connections, 65536);
	cfg_free(&cfg);
	CHECK_EQ(parse(&cfg, "queue-depth = 4096\nmax-connections = 1\n", err), 0);
	CHECK_EQ(cfg.queue_depth, 4096);
	CHECK_EQ(cfg.max_connections, 1);
	cfg_free(&cfg);
	CHECK_EQ(parse(&cfg, "driver = ram\nimage = 1G\nlisten = tcp:[::1]:10809\n",
		       err), 0);
	CHECK(strcmp(cfg.driver, "ram") == 0);
	CHECK(strcmp(cfg.listen[0], "tcp:[::1]:10809") == 0);
	cfg_free(&cfg);

	/* listen repeats up to VD_MAX_LISTEN. */
	{
		char many[64 * (VD_MAX_LISTEN + 1)] = "";
		for (int i = 0; i < VD_MAX_LISTEN; i++)
			snprintf(many + strlen(many), sizeof(many) - strlen(many),
				 "listen = unix:/s%d\n", i);
		CHECK_EQ(parse(&cfg, many, err), 0);
		CHECK_EQ(cfg.nr_listen, VD_MAX_LISTEN);
		CHECK(strcmp(cfg.listen[VD_MAX_LISTEN - 1], "unix:/s15") == 0);
		cfg_free(&cfg);
		strcat(many, "listen = unix:/one-too-many\n");
		CHECK_EQ(parse(&cfg, many, err), -EINVAL);
		CHECK(strcmp(err, "t.conf:17: key 'listen': more than 16 addresses") == 0);
	}
}

struct bad_case {
	const char *text;
	size_t len;		/* 0: strlen(text) */
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	/* unknown key, also ones that look close */
	{ "image = /a\nimagee = /b\n", 0, "t.conf:2: key 'imagee': unknown key "
	  "(see vdiskd.conf(5))" },
	{ "read_only = yes\n", 0, "t.conf:1: key 'read_only': unknown key "
	  "(see vdiskd.conf(5))" },
	{ "Image = /a\n", 0, "t.conf:1: key 'Image': unknown key (see vdiskd.conf(5))" },
	/* syntax */
	{ "image /a\n", 0, "t.conf:1: 'image /a' is not 'key = value'" },
	{ "\n\n= /a\n", 0, "t.conf:3: no key before '='" },
	{ "image =\n", 0, "t.conf:1: key 'image': no value after '='" },
	{ "image =   \t\n", 0, "t.conf:1: key 'image': no value after '='" },
	/* bad values, one per key that checks its value */
	{ "driver = qcow2\n", 0, "t.conf:1: key 'driver': unknown driver 'qcow2' "
	  "(drivers: raw, ram, vhd, rbd)" },
	{ "listen = /run/x.nbd\n", 0, "t.conf:1: key 'listen': '/run/x.nbd' is "
	  "not unix:PATH or tcp:HOST:PORT" },
	{ "listen = unix:\n", 0, "t.conf:1: key 'listen': 'unix:' is not "
	  "unix:PATH or tcp:HOST:PORT" },
	{ "listen = tcp:10809\n", 0, "t.conf:1: key 'listen': 'tcp:10809' is not "
	  "unix:PATH or tcp:HOST:PORT" },
	{ "read-only = maybe\n", 0, "t.conf:1: key 'read-only': 'maybe' is not true "
	  "or false (yes/no, on/off, 1/0)" },
	{ "read-only = 2\n", 0, "t.conf:1: key 'read-only': '2' is not true or "
	  "false (yes/no, on/off, 1/0)" },
	{ "cache = fast\n", 0, "t.conf:1: key 'cache': 'fast' is not none or "
	  "writeback" },
	{ "cache = None\n", 0, "t.conf:1: key 'cache': 'None' is not none or "
	  "writeback" },
	{ "queue-depth = 0\n", 0, "t.conf:1: key 'queue-depth': '0' is not a "
	  "number from 1 to 4096" },
	{ "queue-depth = 4097\n", 0, "t.conf:1: key 'queue-depth': '4097' is not "
	  "a number from 1 to 4096" },
	{ "queue-depth = -1\n", 0, "t.conf:1: key 'queue-depth': '-1' is not a "
	  "number from 1 to 4096" },
	{ "queue-depth = 0x10\n", 0, "t.conf:1: key 'queue-depth': '0x10' is not "
	  "a number from 1 to 4096" },
	{ "queue-depth = 12 # deeper\n", 0, "t.conf:1: key 'queue-depth': "
	  "'12 # deeper' is not a number from 1 to 4096" },
	{ "queue-depth = 99999999999999999999999\n", 0, "t.conf:1: key "
	  "'queue-depth': '99999999999999999999999' is not a number from 1 to 4096" },
	{ "poll-us = 1001\n", 0, "t.conf:1: key 'poll-us': '1001' is not a number "
	  "from 0 to 1000" },
	{ "poll-us = -5\n", 0, "t.conf:1: key 'poll-us': '-5' is not a number "
	  "from 0 to 1000" },
	{ "submit-cpu = pinned\n", 0, "t.conf:1: key 'submit-cpu': 'pinned' is not "
	  "follow or free" },
	{ "submit-cpu = Follow\n", 0, "t.conf:1: key 'submit-cpu': 'Follow' is not "
	  "follow or free" },
	{ "submit-cpu =\n", 0, "t.conf:1: key 'submit-cpu': no value after '='" },
	{ "max-connections = 65537\n", 0, "t.conf:1: key 'max-connections': "
	  "'65537' is not a number from 1 to 65536" },
	{ "max-connections = many\n", 0, "t.conf:1: key 'max-connections': "
	  "'many' is not a number from 1 to 65536" },
	{ "shutdown-timeout = 0\n", 0, "t.conf:1: key 'shutdown-timeout': '0' is not a "
	  "number from 1 to 86400" },
	{ "buffer-limit = 1K\n", 0, "t.conf:1: key 'buffer-limit': '1K' is not a size of at "
	  "least 1M (e.g. 256M, 1G)" },
	{ "on-write-error = maybe\n", 0, "t.conf:1: key 'on-write-error': 'maybe' is not "
	  "report, enospc or pause" },
	{ "on-read-error = enospc\n", 0, "t.conf:1: key 'on-read-error': 'enospc' is not "
	  "report or pause" },
	{ "max-peer-connections = 0\n", 0, "t.conf:1: key 'max-peer-connections': '0' is "
	  "not a number from 1 to 65536" },
	{ "limit = iops=-1\n", 0,
	  "t.conf:1: key 'limit': iops: negative value \"-1\"" },
	{ "limit = bogus=1\n", 0,
	  "t.conf:1: key 'limit': unknown limit \"bogus\" (known: iops, read-iops, write-iops, bps, read-bps, write-bps, burst-iops, burst-bps, burst-seconds, iops-size)" },
	{ "limit = iops=100,burst-iops=5\n", 0,
	  "t.conf:1: key 'limit': burst-iops 5 is below iops 100 (a burst is the rate a quiet disk may reach: at least the limit)" },
	{ "limit = bps=99999999999999999999\n", 0,
	  "t.conf:1: key 'limit': bps: \"99999999999999999999\" is too large (at most 18446744073709551615)" },
	{ "limit =\n", 0,
	  "t.conf:1: key 'limit': no value after '='" },
	{ "limit-group = ../x\n", 0,
	  "t.conf:1: key 'limit-group': '../x' is not a valid group name (1-64 letters, digits and ._-)" },
	{ "limit-group = a b\n", 0,
	  "t.conf:1: key 'limit-group': 'a b' is not a valid group name (1-64 letters, digits and ._-)" },
	{ "log-level = loud\n", 0, "t.conf:1: key 'log-level': 'loud' is not "
	  "error, warn, notice, info or debug" },
	{ "name = ../etc\n", 0, "t.conf:1: key 'name': '../etc' is not a valid "
	  "disk name (1-64 letters, digits and ._-@+:, not starting with . or -)" },
	{ "name = a/b\n", 0, "t.conf:1: key 'name': 'a/b' is not a valid "
	  "disk name (1-64 letters, digits and ._-@+:, not starting with . or -)" },
	/* duplicates: every key but listen */
	{ "image = /a\n# again\nimage = /a\n", 0, "t.conf:3: key 'image': given "
	  "twice (first on line 1)" },
	{ "cache = none\ncache = writeback\n", 0, "t.conf:2: key 'cache': given "
	  "twice (first on line 1)" },
	{ "read-only = no\nread-only = no\n", 0, "t.conf:2: key 'read-only': given "
	  "twice (first on line 1)" },
	{ "name = a\n\n\n\nname = b\n", 0, "t.conf:5: key 'name': given twice "
	  "(first on line 1)" },
	/* binary junk */
	{ "image = /a\0b\n", 13, "t.conf:1: NUL byte at column 11 (binary file?)" },
	{ "\0\0\0\0", 4, "t.conf:1: NUL byte at column 1 (binary file?)" },
	{ "# ok\n\x7f" "ELF\x02\x01\x01", 0, "t.conf:2: control character 0x7f at "
	  "column 1 (binary file?)" },
	{ "image = /a\x1b[31m\n", 0, "t.conf:1: control character 0x1b at "
	  "column 11 (binary file?)" },
	{ "image = /a\rb\n", 0, "t.conf:1: control character 0x0d at column 11 "
	  "(binary file?)" },
	{ "image = /\xff\xfe\n", 0, "t.conf:1: byte 0xff at column 10 is not "
	  "UTF-8 text (binary file?)" },
	{ "image = /\xc3\n", 0, "t.conf:1: byte 0xc3 at column 10 is not UTF-8 "
	  "text (binary file?)" },
	{ "image = /\xc0\xaf\n", 0, "t.conf:1: byte 0xc0 at column 10 is not "
	  "UTF-8 text (binary file?)" },	/* overlong '/' */
	{ "image = /\xed\xa0\x80\n", 0, "t.conf:1: byte 0xed at column 10 is not "
	  "UTF-8 text (binary file?)" },	/* surrogate */
	{ "# \xf4\x90\x80\x80\n", 0, "t.conf:1: byte 0xf4 at column 3 is not "
	  "UTF-8 text (binary file?)" },	/* past U+10FFFF */
};

static void test_bad(void)
{
	struct vd_config cfg;
	char err[CFG_ERR_LEN];

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len ? c->len : strlen(c->text);
		int r = cfg_parse_buf(&cfg, "t.conf", c->text, len, err, sizeof(err));

		if (r != -EINVAL || strcmp(err, c->msg) != 0) {
			fprintf(stderr, "bad case %zu: got %d '%s'\n   want '%s'\n", i, r,
				err, c->msg);
			test_failures++;
		}
		/* A failed parse leaves nothing allocated behind. */
		CHECK(cfg.image == NULL && cfg.nr_listen == 0 && cfg.name == NULL);
	}
}

static void test_long_lines(void)
{
	struct vd_config cfg;
	char err[CFG_ERR_LEN];
	size_t n = CFG_MAX_LINE + 1;
	char *big = malloc(n + 64);

	REQUIRE(big);
	/* One byte over, in a comment too: the limit is on lines. */
	strcpy(big, "# fine\n");
	memset(big + 7, '#', n);
	strcpy(big + 7 + n, "\n");
	CHECK_EQ(parse(&cfg, big, err), -EINVAL);
	CHECK(strcmp(err, "t.conf:2: line longer than 4096 bytes") == 0);
	/* Junk past the limit: still too long (only the limit is read). */
	memset(big, 'x', n + 10);
	big[n + 5] = 1;
	strcpy(big + n + 10, "\n");
	CHECK_EQ(parse(&cfg, big, err), -EINVAL);
	CHECK(strcmp(err, "t.conf:1: line longer than 4096 bytes") == 0);
	/* Junk inside an over-long line: binary wins. */
	big[100] = 0;
	CHECK_EQ(cfg_parse_buf(&cfg, "t.conf", big, n + 11, err, sizeof(err)), -EINVAL);
	CHECK(strcmp(err, "t.conf:1: NUL byte at column 101 (binary file?)") == 0);
	/* A multibyte character cut by the limit is not "binary". */
	memset(big, 'x', n + 10);
	memcpy(big + CFG_MAX_LINE - 1, "\xc3\xa9", 2);
	strcpy(big + n + 10, "\n");
	CHECK_EQ(parse(&cfg, big, err), -EINVAL);
	CHECK(strcmp(err, "t.conf:1: line longer than 4096 bytes") == 0);
	/* A huge key is cut in the message, not the buffer's overflow. */
	memset(big, 'k', n - 1);
	strcpy(big + n - 1 - 4, " = 1");
	CHECK_EQ(parse(&cfg, big, err), -EINVAL);
	CHECK(strncmp(err, "t.conf:1: key 'kkkk", 19) == 0);
	CHECK(strlen(err) < 200);
	free(big);
}

static void test_files(void)
{
	struct vd_config cfg;
	char err[CFG_ERR_LEN], path[256];
	const char *p;
	int r;

	p = write_file("good.conf", "image = /dev/null\ncache = writeback\n", 36);
	CHECK_EQ(cfg_parse_file(&cfg, p, err, sizeof(err)), 0);
	CHECK(strcmp(cfg.image, "/dev/null") == 0);
	cfg_free(&cfg);

	/* Messages name the file as given. */
	p = write_file("bad.conf", "\n\ncache = lots\n", 15);
	CHECK_EQ(cfg_parse_file(&cfg, p, err, sizeof(err)), -EINVAL);
	snprintf(path, sizeof(path), "%s:3: key 'cache': 'lots' is not none or "
		 "writeback", p);
	CHECK(strcmp(err, path) == 0);

	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	CHECK_EQ(cfg_parse_file(&cfg, path, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "missing.conf: cannot open: No such file or directory"));

	CHECK_EQ(cfg_parse_file(&cfg, tmpdir, err, sizeof(err)), -EISDIR);
	CHECK(strstr(err, ": cannot read: Is a directory"));

	/* Unreadable: only meaningful when not root. */
	if (geteuid() != 0) {
		p = write_file("secret.conf", "image = /a\n", 11);
		REQUIRE(chmod(p, 0) == 0);
		CHECK_EQ(cfg_parse_file(&cfg, p, err, sizeof(err)), -EACCES);
	}

	/* Endless input stops at the cap. */
	r = cfg_parse_file(&cfg, "/dev/zero", err, sizeof(err));
	CHECK_EQ(r, -EFBIG);
	CHECK(strcmp(err, "/dev/zero: larger than 1048576 bytes: not a config file")
	      == 0);

	/* A whole binary file: this very program (its first "line" may be
	 * longer than the limit: binary still wins).  Or too large. */
	r = cfg_parse_file(&cfg, "/proc/self/exe", err, sizeof(err));
	CHECK(r == -EINVAL || r == -EFBIG);
	CHECK(strstr(err, "/proc/self/exe:1: control character 0x7f at column 1 "
		      "(binary file?)") || strstr(err, "larger than"));
	{
		unsigned char junk[4096];
		unsigned s = 12345;
		for (size_t i = 0; i < sizeof(junk); i++) {
			s = s * 1103515245u + 12345u;
			junk[i] = (unsigned char)(s >> 16);
		}
		p = write_file("junk.conf", junk, sizeof(junk));
		CHECK_EQ(cfg_parse_file(&cfg, p, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "(binary file?)"));
	}
}

/* The command line wins over the file; the file fills the rest. */
static int opts(struct vd_options *o, const char *conf_text, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	const char *a, *p = write_file("o.conf", conf_text, strlen(conf_text));
	static char conf_path[256];

	snprintf(conf_path, sizeof(conf_path), "%s", p);
	argv[argc++] = (char *)"vdiskd";
	argv[argc++] = (char *)"--config";
	argv[argc++] = conf_path;
	va_start(ap, conf_text);
	while ((a = va_arg(ap, const char *)) && argc < 31)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return vd_options_parse(o, argc, argv);
}

static void test_options(void)
{
	static const char all[] =
		"image = /img/a\n"
		"driver = raw\n"
		"listen = unix:/f1.nbd\n"
		"listen = unix:/f2.nbd\n"
		"control = /f.ctl\n"
		"read-only = yes\n"
		"cache = writeback\n"
		"queue-depth = 64\n"
		"max-connections = 4\n"
		"log-level = warn\n"
		"name = fromfile\n";
	struct vd_options o;
	int saved_fd, null_fd;

	/* The file alone. */
	CHECK_EQ(opts(&o, all, NULL), VD_OPT_OK);
	CHECK(strcmp(o.image, "/img/a") == 0);
	CHECK(strcmp(o.driver, "raw") == 0);
	CHECK_EQ(o.nr_listen, 2);
	CHECK(strcmp(o.listen[1], "unix:/f2.nbd") == 0);
	CHECK(strcmp(o.control, "/f.ctl") == 0);
	CHECK(o.read_only);
	CHECK_EQ(o.cache, VBD_CACHE_WRITEBACK);
	CHECK_EQ(o.queue_depth, 64);
	CHECK_EQ(o.max_connections, 4);
	CHECK_EQ(o.log_level, LOG_LVL_WARN);
	CHECK(strcmp(o.name, "fromfile") == 0);
	vd_options_free(&o);

	/* Every option given on the command line too: all of them win;
	 * -l replaces the file's list. */
	CHECK_EQ(opts(&o, all, "-n", "cli", "-d", "ram", "-l", "unix:/c.nbd",
		      "-c", "/c.ctl", "--cache", "none", "--queue-depth", "8",
		      "--max-connections", "9", "-v", "1G", NULL), VD_OPT_OK);
	CHECK(strcmp(o.image, "1G") == 0);
	CHECK(strcmp(o.driver, "ram") == 0);
	CHECK_EQ(o.nr_listen, 1);
	CHECK(strcmp(o.listen[0], "unix:/c.nbd") == 0);
	CHECK(strcmp(o.control, "/c.ctl") == 0);
	CHECK_EQ(o.cache, VBD_CACHE_NONE);
	CHECK_EQ(o.queue_depth, 8);
	CHECK_EQ(o.max_connections, 9);
	CHECK_EQ(o.log_level, LOG_LVL_DEBUG);
	CHECK(strcmp(o.name, "cli") == 0);
	CHECK(o.read_only);	/* -r can only add: the file said yes */
	vd_options_free(&o);

	/* Command-line values equal to the defaults still win. */
	CHECK_EQ(opts(&o, all, "--queue-depth", "128", "--max-connections", "128",
		      "-q", NULL), VD_OPT_OK);
	CHECK_EQ(o.queue_depth, 128);
	CHECK_EQ(o.max_connections, 128);
	CHECK_EQ(o.log_level, LOG_LVL_ERR);
	vd_options_free(&o);

	/* -r over read-only = no. */
	CHECK_EQ(opts(&o, "image = /a\nread-only = no\n", "-r", NULL), VD_OPT_OK);
	CHECK(o.read_only);
	vd_options_free(&o);

	/* Defaults where neither says. */
	CHECK_EQ(opts(&o, "image = /a\n", NULL), VD_OPT_OK);
	CHECK_EQ(o.queue_depth, 128);
	CHECK_EQ(o.cache, VBD_CACHE_NONE);
	CHECK_EQ(o.log_level, LOG_LVL_INFO);
	CHECK(!o.read_only && !o.name && !o.driver && !o.control);
	CHECK_EQ(o.nr_listen, 0);
	vd_options_free(&o);

	/* Errors: messages go to stderr; keep the test's output readable. */
	fflush(stderr);
	saved_fd = dup(STDERR_FILENO);
	null_fd = open("/dev/null", O_WRONLY);
	REQUIRE(saved_fd >= 0 && null_fd >= 0);
	REQUIRE(dup2(null_fd, STDERR_FILENO) == STDERR_FILENO);
	close(null_fd);
	CHECK_EQ(opts(&o, "# no image\n", NULL), VD_OPT_BAD);
	CHECK_EQ(opts(&o, "cache = lots\n", "/a", NULL), VD_OPT_BAD);
	CHECK_EQ(opts(&o, "image = /a\n", "/b", "/c", NULL), VD_OPT_USAGE);
	{
		char *argv[] = { (char *)"vdiskd", (char *)"--config",
				 (char *)"/nonexistent/x.conf", NULL };
		CHECK_EQ(vd_options_parse(&o, 3, argv), VD_OPT_BAD);
	}
	{
		char *argv[] = { (char *)"vdiskd", NULL };
		CHECK_EQ(vd_options_parse(&o, 1, argv), VD_OPT_USAGE);
	}
	fflush(stderr);
	REQUIRE(dup2(saved_fd, STDERR_FILENO) == STDERR_FILENO);
	close(saved_fd);
}

int main(void)
{
	REQUIRE(mkdtemp(tmpdir));
	test_every_key();
	test_layout();
	test_values();
	test_bad();
	test_long_lines();
	test_files();
	test_options();
	for (const char *const *n = (const char *const[]){ "good.conf", "bad.conf",
	     "secret.conf", "junk.conf", "o.conf", NULL }; *n; n++) {
		char p[256];
		snprintf(p, sizeof(p), "%s/%s", tmpdir, *n);
		unlink(p);
	}
	rmdir(tmpdir);
	return test_done("test-config");
}
