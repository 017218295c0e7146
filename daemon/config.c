/* The config file: "key = value" lines, '#' comments, blank lines.
 * Every message names the file and the line (and the key when there is
 * one), because an operator reads it in the journal, not in an editor. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/size.h"
#include "drivers/driver.h"
#include "daemon/config.h"

typedef int cfg_parse_fn(struct vd_config *cfg, const char *value, char *msg,
			 size_t msglen);

struct cfg_entry {
	const char *name;
	enum cfg_key key;
	bool repeatable;
	cfg_parse_fn *parse;
};

static int cfg_string(char **out, const char *value)
{
	char *s = strdup(value);

	if (!s)
		return -ENOMEM;
	free(*out);
	*out = s;
	return 0;
}

static int cfg_image(struct vd_config *cfg, const char *value, char *msg,
		     size_t msglen)
{
	return cfg_string(&cfg->image, value);
}

static int cfg_driver(struct vd_config *cfg, const char *value, char *msg,
		      size_t msglen)
{
	if (!vd_driver_find(value)) {
		snprintf(msg, msglen, "unknown driver '%s' (drivers: %s)", value,
			 vd_driver_names());
		return -EINVAL;
	}
	return cfg_string(&cfg->driver, value);
}

/* The frontend parses addresses fully; here only what makes a typo
 * obvious at the line that holds it. */
static int cfg_listen(struct vd_config *cfg, const char *value, char *msg,
		      size_t msglen)
{
	char *s;

	if (!((strncmp(value, "unix:", 5) == 0 && value[5]) ||
	      (strncmp(value, "tcp:", 4) == 0 && strchr(value + 4, ':')))) {
		snprintf(msg, msglen, "'%s' is not unix:PATH or tcp:HOST:PORT", value);
		return -EINVAL;
	}
	if (cfg->nr_listen == VD_MAX_LISTEN) {
		snprintf(msg, msglen, "more than %d addresses", VD_MAX_LISTEN);
		return -EINVAL;
	}
	s = strdup(value);
	if (!s)
		return -ENOMEM;
	cfg->listen[cfg->nr_listen++] = s;
	return 0;
}

static int cfg_control(struct vd_config *cfg, const char *value, char *msg,
		       size_t msglen)
{
	return cfg_string(&cfg->control, value);
}

static int cfg_read_only(struct vd_config *cfg, const char *value, char *msg,
			 size_t msglen)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (unsigned i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			cfg->read_only = true;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			cfg->read_only = false;
			return 0;
		}
	}
	snprintf(msg, msglen, "'%s' is not true or false (yes/no, on/off, 1/0)",
		 value);
	return -EINVAL;
}

static int cfg_cache(struct vd_config *cfg, const char *value, char *msg,
		     size_t msglen)
{
	if (vd_cache_parse(value, &cfg->cache) < 0) {
		snprintf(msg, msglen, "'%s' is not none or writeback", value);
		return -EINVAL;
	}
	return 0;
}

static int cfg_submit_cpu(struct vd_config *cfg, const char *value, char *msg,
			  size_t msglen)
{
	if (vd_submit_cpu_parse(value, &cfg->submit_cpu) < 0) {
		snprintf(msg, msglen, "'%s' is not follow or free", value);
		return -EINVAL;
	}
	return 0;
}

static int cfg_uint(const char *value, unsigned min, unsigned max,
		    unsigned *out, char *msg, size_t msglen)
{
	unsigned long long v = 0;
	const char *p = value;

	/* Digits only: strtoul would take "-1", " 7" and "0x10". */
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned)(*p - '0');
		if (v > max)
			break;
	}
	if (p == value || *p || v < min || v > max) {
		snprintf(msg, msglen, "'%s' is not a number from %u to %u", value,
			 min, max);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static int cfg_queue_depth(struct vd_config *cfg, const char *value, char *msg,
			   size_t msglen)
{
	return cfg_uint(value, 1, VD_MAX_QUEUE_DEPTH, &cfg->queue_depth, msg, msglen);
}

static int cfg_poll_us(struct vd_config *cfg, const char *value, char *msg, size_t msglen)
{
	return cfg_uint(value, 0, VD_MAX_POLL_US, &cfg->poll_us, msg, msglen);
}

static int cfg_max_connections(struct vd_config *cfg, const char *value,
			       char *msg, size_t msglen)
{
	return cfg_uint(value, 1, VD_MAX_CONNECTIONS, &cfg->max_connections, msg,
			msglen);
}

static int cfg_log_level(struct vd_config *cfg, const char *value, char *msg,
			 size_t msglen)
{
	if (log_level_parse(value, &cfg->log_level) < 0) {
		snprintf(msg, msglen, "'%s' is not error, warn, notice, info or debug",
			 value);
		return -EINVAL;
	}
	return 0;
}

static int cfg_name(struct vd_config *cfg, const char *value, char *msg,
		    size_t msglen)
{
	if (!vd_name_ok(value)) {
		snprintf(msg, msglen, "'%s' is not a valid disk name (1-64 letters, "
			 "digits and ._-@+:, not starting with . or -)", value);
		return -EINVAL;
	}
	return cfg_string(&cfg->name, value);
}

static int cfg_shutdown_timeout(struct vd_config *cfg, const char *value, char *msg,
				size_t msglen)
{
	return cfg_uint(value, 1, VD_MAX_SHUTDOWN_TIMEOUT, &cfg->shutdown_timeout, msg,
			msglen);
}

static int cfg_max_peer_connections(struct vd_config *cfg, const char *value,
				    char *msg, size_t msglen)
{
	return cfg_uint(value, 1, VD_MAX_CONNECTIONS, &cfg->max_peer_connections, msg,
			msglen);
}

static int cfg_buffer_limit(struct vd_config *cfg, const char *value, char *msg,
			    size_t msglen)
{
	if (vd_parse_size(value, &cfg->buffer_limit) < 0 ||
	    cfg->buffer_limit < VD_MIN_BUFFER_LIMIT) {
		snprintf(msg, msglen, "'%s' is not a size of at least 1M (e.g. 256M, 1G)",
			 value);
		return -EINVAL;
	}
	return 0;
}

static int cfg_on_write_error(struct vd_config *cfg, const char *value, char *msg,
			      size_t msglen)
{
	if (vd_error_policy_parse(value, true, &cfg->on_write_error) < 0) {
		snprintf(msg, msglen, "'%s' is not report, enospc or pause", value);
		return -EINVAL;
	}
	return 0;
}

static int cfg_on_read_error(struct vd_config *cfg, const char *value, char *msg,
			     size_t msglen)
{
	if (vd_error_policy_parse(value, false, &cfg->on_read_error) < 0) {
		snprintf(msg, msglen, "'%s' is not report or pause", value);
		return -EINVAL;
	}
	return 0;
}

static int cfg_limit(struct vd_config *cfg, const char *value, char *msg, size_t msglen)
{
	int r = thr_limits_parse(value, &cfg->limits, msg, msglen);

	return r == -ERANGE ? -EINVAL : r;	/* the file's fault either way */
}

static int cfg_limit_group(struct vd_config *cfg, const char *value, char *msg,
			   size_t msglen)
{
	if (!vd_name_ok(value)) {
		snprintf(msg, msglen, "'%s' is not a valid group name (1-64 letters, "
			 "digits and ._-)", value);
		return -EINVAL;
	}
	return cfg_string(&cfg->limit_group, value);
}

static int cfg_tls(struct vd_config *cfg, const char *value, char *msg, size_t msglen)
{
	if (vd_tls_mode_parse(value, &cfg->tls) < 0) {
		snprintf(msg, msglen, "'%s' is not off, on or require", value);
		return -EINVAL;
	}
	return 0;
}

static int cfg_tls_certificates(struct vd_config *cfg, const char *value, char *msg,
				size_t msglen)
{
	return cfg_string(&cfg->tls_certificates, value);
}

static int cfg_tls_psk(struct vd_config *cfg, const char *value, char *msg, size_t msglen)
{
	return cfg_string(&cfg->tls_psk, value);
}

static int cfg_tls_verify_peer(struct vd_config *cfg, const char *value, char *msg,
			       size_t msglen)
{
	bool ro = cfg->read_only;
	int r = cfg_read_only(cfg, value, msg, msglen);	/* the same booleans */

	cfg->tls_verify_peer = cfg->read_only;
	cfg->read_only = ro;
	return r;
}

static int cfg_handshake_timeout(struct vd_config *cfg, const char *value, char *msg,
				 size_t msglen)
{
	return cfg_uint(value, 1, 3600, &cfg->handshake_timeout, msg, msglen);
}

static int cfg_ceph_conf(struct vd_config *cfg, const char *value, char *msg,
			 size_t msglen)
{
	return cfg_string(&cfg->ceph_conf, value);
}

static int cfg_ceph_id(struct vd_config *cfg, const char *value, char *msg,
		       size_t msglen)
{
	return cfg_string(&cfg->ceph_id, value);
}

static int cfg_ceph_timeout(struct vd_config *cfg, const char *value, char *msg,
			    size_t msglen)
{
	return cfg_uint(value, 1, VD_MAX_CEPH_TIMEOUT, &cfg->ceph_timeout, msg, msglen);
}

static int cfg_ceph_op_timeout(struct vd_config *cfg, const char *value, char *msg,
			       size_t msglen)
{
	return cfg_uint(value, 0, VD_MAX_CEPH_TIMEOUT, &cfg->ceph_op_timeout, msg, msglen);
}

static const struct cfg_entry cfg_table[] = {
	{ .name = "image", .key = CFG_IMAGE, .parse = cfg_image },
	{ .name = "driver", .key = CFG_DRIVER, .parse = cfg_driver },
	{ .name = "listen", .key = CFG_LISTEN, .repeatable = true,
	  .parse = cfg_listen },
	{ .name = "control", .key = CFG_CONTROL, .parse = cfg_control },
	{ .name = "read-only", .key = CFG_READ_ONLY, .parse = cfg_read_only },
	{ .name = "cache", .key = CFG_CACHE, .parse = cfg_cache },
	{ .name = "queue-depth", .key = CFG_QUEUE_DEPTH, .parse = cfg_queue_depth },
	{ .name = "poll-us", .key = CFG_POLL_US, .parse = cfg_poll_us },
	{ .name = "submit-cpu", .key = CFG_SUBMIT_CPU, .parse = cfg_submit_cpu },
	{ .name = "max-connections", .key = CFG_MAX_CONNECTIONS,
	  .parse = cfg_max_connections },
	{ .name = "log-level", .key = CFG_LOG_LEVEL, .parse = cfg_log_level },
	{ .name = "name", .key = CFG_NAME, .parse = cfg_name },
	{ .name = "limit", .key = CFG_LIMIT, .repeatable = true, .parse = cfg_limit },
	{ .name = "limit-group", .key = CFG_LIMIT_GROUP, .parse = cfg_limit_group },
	{ .name = "buffer-limit", .key = CFG_BUFFER_LIMIT, .parse = cfg_buffer_limit },
	{ .name = "on-write-error", .key = CFG_ON_WRITE_ERROR, .parse = cfg_on_write_error },
	{ .name = "on-read-error", .key = CFG_ON_READ_ERROR, .parse = cfg_on_read_error },
	{ .name = "max-peer-connections", .key = CFG_MAX_PEER_CONNECTIONS,
	  .parse = cfg_max_peer_connections },
	{ .name = "shutdown-timeout", .key = CFG_SHUTDOWN_TIMEOUT,
	  .parse = cfg_shutdown_timeout },
	{ .name = "tls", .key = CFG_TLS, .parse = cfg_tls },
	{ .name = "tls-certificates", .key = CFG_TLS_CERTIFICATES,
	  .parse = cfg_tls_certificates },
	{ .name = "tls-psk", .key = CFG_TLS_PSK, .parse = cfg_tls_psk },
	{ .name = "tls-verify-peer", .key = CFG_TLS_VERIFY_PEER,
	  .parse = cfg_tls_verify_peer },
	{ .name = "handshake-timeout", .key = CFG_HANDSHAKE_TIMEOUT,
	  .parse = cfg_handshake_timeout },
	{ .name = "ceph-conf", .key = CFG_CEPH_CONF, .parse = cfg_ceph_conf },
	{ .name = "ceph-id", .key = CFG_CEPH_ID, .parse = cfg_ceph_id },
	{ .name = "ceph-timeout", .key = CFG_CEPH_TIMEOUT, .parse = cfg_ceph_timeout },
	{ .name = "ceph-op-timeout", .key = CFG_CEPH_OP_TIMEOUT,
	  .parse = cfg_ceph_op_timeout },
};
enum { CFG_TABLE_LEN = sizeof(cfg_table) / sizeof(cfg_table[0]) };

static const struct cfg_entry *cfg_lookup(const char *name)
{
	for (unsigned i = 0; i < CFG_TABLE_LEN; i++)
		if (strcmp(cfg_table[i].name, name) == 0)
			return &cfg_table[i];
	return NULL;
}

/* Length of the UTF-8 sequence at p (at most n bytes), 0 if malformed.
 * Overlong forms, surrogates and values past U+10FFFF are malformed. */
static size_t cfg_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

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
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* Rejects what no text editor writes, so a binary file gets one clear
 * message instead of "unknown key" with garbage in it.  A tab is text; a
 * carriage return is accepted at the end of a line (DOS line ends).
 * Looks at the first limit bytes of the n in the line. */
static int cfg_check_text(const unsigned char *p, size_t n, size_t limit,
			  char *msg, size_t msglen)
{
	for (size_t i = 0; i < n && i < limit;) {
		unsigned char c = p[i];
		size_t len;

		if (c == 0) {
			snprintf(msg, msglen, "NUL byte at column %zu (binary file?)",
				 i + 1);
			return -EINVAL;
		}
		if ((c < 0x20 && c != '\t' && !(c == '\r' && i == n - 1)) ||
		    c == 0x7f) {
			snprintf(msg, msglen, "control character 0x%02x at column %zu "
				 "(binary file?)", c, i + 1);
			return -EINVAL;
		}
		len = cfg_utf8_len(p + i, n - i);
		if (!len) {
			snprintf(msg, msglen, "byte 0x%02x at column %zu is not UTF-8 "
				 "text (binary file?)", c, i + 1);
			return -EINVAL;
		}
		i += len;
	}
	return 0;
}

static char *cfg_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*e = 0;
	return s;
}

/* One line, already checked to be text of at most CFG_MAX_LINE bytes. */
static int cfg_parse_line(struct vd_config *cfg, char *line, char *msg,
			  size_t msglen, const char **keyp)
{
	char *s = cfg_trim(line), *eq, *key, *value;
	const struct cfg_entry *e;

	*keyp = NULL;
	if (!*s || *s == '#')
		return 0;
	eq = strchr(s, '=');
	if (!eq) {
		snprintf(msg, msglen, "'%.64s' is not 'key = value'", s);
		return -EINVAL;
	}
	*eq = 0;
	key = cfg_trim(s);
	value = cfg_trim(eq + 1);
	if (!*key) {
		snprintf(msg, msglen, "no key before '='");
		return -EINVAL;
	}
	*keyp = key;
	e = cfg_lookup(key);
	if (!e) {
		snprintf(msg, msglen, "unknown key (see vdiskd.conf(5))");
		return -EINVAL;
	}
	if (!*value) {
		snprintf(msg, msglen, "no value after '='");
		return -EINVAL;
	}
	if (cfg->line[e->key] && !e->repeatable) {
		snprintf(msg, msglen, "given twice (first on line %u)",
			 cfg->line[e->key]);
		return -EINVAL;
	}
	return e->parse(cfg, value, msg, msglen);
}

int cfg_parse_buf(struct vd_config *cfg, const char *file, const char *buf,
		  size_t len, char *err, size_t errlen)
{
	char line[CFG_MAX_LINE + 1], msg[CFG_ERR_LEN];
	const char *p = buf, *end = buf + len;
	unsigned lineno = 0;
	int r = 0;

	memset(cfg, 0, sizeof(*cfg));
	cfg->queue_depth = 128;
	cfg->max_connections = 128;
	cfg->log_level = LOG_LVL_INFO;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		const char *key = NULL;

		lineno++;
		msg[0] = 0;
		/* Binary first: a binary file's "line" is often too long as
		 * well, and "binary file?" is the more useful answer. */
		r = cfg_check_text((const unsigned char *)p, n, CFG_MAX_LINE, msg,
				   sizeof(msg));
		if (r == 0 && n > CFG_MAX_LINE) {
			snprintf(err, errlen, "%s:%u: line longer than %d bytes", file,
				 lineno, CFG_MAX_LINE);
			r = -EINVAL;
			goto err;
		}
		if (r == 0) {
			memcpy(line, p, n);
			line[n] = 0;
			r = cfg_parse_line(cfg, line, msg, sizeof(msg), &key);
		}
		if (r == -ENOMEM) {
			snprintf(err, errlen, "%s:%u: out of memory", file, lineno);
			goto err;
		}
		if (r < 0) {
			if (key)
				snprintf(err, errlen, "%s:%u: key '%.64s': %s", file,
					 lineno, key, msg);
			else
				snprintf(err, errlen, "%s:%u: %s", file, lineno, msg);
			goto err;
		}
		if (key) {
			const struct cfg_entry *e = cfg_lookup(key);
			if (!cfg->line[e->key])
				cfg->line[e->key] = lineno;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
err:
	cfg_free(cfg);
	return r;
}

int cfg_parse_file(struct vd_config *cfg, const char *file, char *err,
		   size_t errlen)
{
	size_t len = 0, cap = CFG_MAX_FILE + 1;
	char *buf = NULL;
	int fd, r;

	memset(cfg, 0, sizeof(*cfg));
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", file, strerror(-r));
		return r;
	}
	/* Read to the end (a pipe has no size) but never past the cap:
	 * --config /dev/zero must fail, not eat the memory. */
	buf = malloc(cap);
	if (!buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", file);
		goto out;
	}
	r = vd_read_upto(fd, buf, cap, &len);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", file, strerror(-r));
		goto out;
	}
	if (len > CFG_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes: not a config file",
			 file, CFG_MAX_FILE);
		r = -EFBIG;
		goto out;
	}
	r = cfg_parse_buf(cfg, file, buf, len, err, errlen);
out:
	free(buf);
	close(fd);
	return r;
}

void cfg_apply(const struct vd_config *cfg, struct vd_options *o)
{
	if (cfg->line[CFG_IMAGE] && !o->image)
		o->image = cfg->image;
	if (cfg->line[CFG_DRIVER] && !o->driver)
		o->driver = cfg->driver;
	/* -l replaces the file's addresses rather than adding to them: the
	 * command line says where to listen, the whole answer. */
	if (cfg->line[CFG_LISTEN] && !o->nr_listen) {
		for (unsigned i = 0; i < cfg->nr_listen; i++)
			o->listen[i] = cfg->listen[i];
		o->nr_listen = cfg->nr_listen;
	}
	if (cfg->line[CFG_CONTROL] && !o->control)
		o->control = cfg->control;
	/* -r can only say yes; it wins when it does. */
	if (cfg->line[CFG_READ_ONLY] && !o->read_only)
		o->read_only = cfg->read_only;
	if (cfg->line[CFG_CACHE] && !(o->set & VD_SET_CACHE))
		o->cache = cfg->cache;
	if (cfg->line[CFG_QUEUE_DEPTH] && !(o->set & VD_SET_QUEUE_DEPTH))
		o->queue_depth = cfg->queue_depth;
	if (cfg->line[CFG_POLL_US] && !(o->set & VD_SET_POLL_US))
		o->poll_us = cfg->poll_us;
	if (cfg->line[CFG_SUBMIT_CPU] && !(o->set & VD_SET_SUBMIT_CPU))
		o->submit_cpu = cfg->submit_cpu;
	if (cfg->line[CFG_MAX_CONNECTIONS] && !(o->set & VD_SET_MAX_CONNECTIONS))
		o->max_connections = cfg->max_connections;
	if (cfg->line[CFG_LOG_LEVEL] && !(o->set & VD_SET_LOG_LEVEL))
		o->log_level = cfg->log_level;
	if (cfg->line[CFG_NAME] && !o->name)
		o->name = cfg->name;
	/* --limit replaces the file's limits, as -l replaces its addresses. */
	if (cfg->line[CFG_LIMIT] && !(o->set & VD_SET_LIMIT))
		o->limits = cfg->limits;
	if (cfg->line[CFG_ON_WRITE_ERROR] && !(o->set & VD_SET_ON_WRITE_ERROR))
		o->on_write_error = cfg->on_write_error;
	if (cfg->line[CFG_ON_READ_ERROR] && !(o->set & VD_SET_ON_READ_ERROR))
		o->on_read_error = cfg->on_read_error;
	if (cfg->line[CFG_BUFFER_LIMIT] && !(o->set & VD_SET_BUFFER_LIMIT))
		o->buffer_limit = cfg->buffer_limit;
	if (cfg->line[CFG_MAX_PEER_CONNECTIONS] && !(o->set & VD_SET_MAX_PEER_CONNECTIONS))
		o->max_peer_connections = cfg->max_peer_connections;
	if (cfg->line[CFG_SHUTDOWN_TIMEOUT] && !(o->set & VD_SET_SHUTDOWN_TIMEOUT))
		o->shutdown_timeout = cfg->shutdown_timeout;
	if (cfg->line[CFG_LIMIT_GROUP] && !o->limit_group)
		o->limit_group = cfg->limit_group;
	if (cfg->line[CFG_TLS] && !(o->set & VD_SET_TLS))
		o->tls = cfg->tls;
	if (cfg->line[CFG_TLS_CERTIFICATES] && !o->tls_certificates)
		o->tls_certificates = cfg->tls_certificates;
	if (cfg->line[CFG_TLS_PSK] && !o->tls_psk)
		o->tls_psk = cfg->tls_psk;
	if (cfg->line[CFG_TLS_VERIFY_PEER] && !(o->set & VD_SET_TLS_VERIFY_PEER))
		o->tls_verify_peer = cfg->tls_verify_peer;
	if (cfg->line[CFG_HANDSHAKE_TIMEOUT] && !(o->set & VD_SET_HANDSHAKE_TIMEOUT))
		o->handshake_timeout = cfg->handshake_timeout;
	if (cfg->line[CFG_CEPH_CONF] && !o->ceph_conf)
		o->ceph_conf = cfg->ceph_conf;
	if (cfg->line[CFG_CEPH_ID] && !o->ceph_id)
		o->ceph_id = cfg->ceph_id;
	if (cfg->line[CFG_CEPH_TIMEOUT] && !(o->set & VD_SET_CEPH_TIMEOUT))
		o->ceph_timeout = cfg->ceph_timeout;
	if (cfg->line[CFG_CEPH_OP_TIMEOUT] && !(o->set & VD_SET_CEPH_OP_TIMEOUT))
		o->ceph_op_timeout = cfg->ceph_op_timeout;
}

void cfg_free(struct vd_config *cfg)
{
	free(cfg->image);
	free(cfg->driver);
	for (unsigned i = 0; i < cfg->nr_listen; i++)
		free(cfg->listen[i]);
	free(cfg->control);
	free(cfg->name);
	free(cfg->limit_group);
	free(cfg->tls_certificates);
	free(cfg->tls_psk);
	free(cfg->ceph_conf);
	free(cfg->ceph_id);
	memset(cfg, 0, sizeof(*cfg));
}
