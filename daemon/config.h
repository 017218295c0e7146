/* The config file of one disk: "key = value" lines (vdiskd.conf(5)).
 *
 * The parser is pure: it fills a struct vd_config and, on failure, writes
 * one message "FILE:LINE: key 'KEY': what is wrong" into the caller's
 * buffer, so the unit tests can check every message and the caller
 * decides where it goes. */
#ifndef VD_CONFIG_H
#define VD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/log.h"
#include "daemon/options.h"
#include "core/vbd.h"

enum {
	CFG_MAX_LINE = 4096,		/* bytes in a line, without the newline */
	CFG_MAX_FILE = 1024 * 1024,	/* a config of a megabyte is a mistake */
	CFG_ERR_LEN = 512,		/* enough for any message */
};

enum cfg_key {
	CFG_IMAGE,
	CFG_DRIVER,
	CFG_LISTEN,
	CFG_CONTROL,
	CFG_READ_ONLY,
	CFG_CACHE,
	CFG_QUEUE_DEPTH,
	CFG_MAX_CONNECTIONS,
	CFG_LOG_LEVEL,
	CFG_NAME,
	CFG_LIMIT,
	CFG_LIMIT_GROUP,
	CFG_SHUTDOWN_TIMEOUT,
	CFG_MAX_PEER_CONNECTIONS,
	CFG_BUFFER_LIMIT,
	CFG_ON_WRITE_ERROR,
	CFG_ON_READ_ERROR,
	CFG_TLS,
	CFG_TLS_CERTIFICATES,
	CFG_TLS_PSK,
	CFG_TLS_VERIFY_PEER,
	CFG_HANDSHAKE_TIMEOUT,
	CFG_CEPH_CONF,
	CFG_CEPH_ID,
	CFG_CEPH_TIMEOUT,
	CFG_CEPH_OP_TIMEOUT,
	CFG_POLL_US,
	CFG_SUBMIT_CPU,
	CFG_NR_KEYS,
};

struct vd_config {
	/* Line where each key was (first) given; 0 when the file lacks it. */
	unsigned line[CFG_NR_KEYS];
	char *image;
	char *driver;
	char *listen[VD_MAX_LISTEN];
	unsigned nr_listen;
	char *control;
	bool read_only;
	enum vbd_cache cache;
	unsigned queue_depth;
	unsigned poll_us;
	enum vbd_submit_cpu submit_cpu;
	unsigned max_connections;
	unsigned shutdown_timeout;
	unsigned max_peer_connections;
	uint64_t buffer_limit;
	enum vbd_error_policy on_write_error, on_read_error;
	enum log_level log_level;
	char *name;
	struct thr_limits limits;	/* every "limit" line, in order */
	char *limit_group;
	enum nbd_tls_mode tls;
	char *tls_certificates;
	char *tls_psk;
	bool tls_verify_peer;
	unsigned handshake_timeout;
	char *ceph_conf, *ceph_id;
	unsigned ceph_timeout, ceph_op_timeout;
};

/* Parses len bytes of buf; file names the source in messages.  Returns 0,
 * -EINVAL (bad input) or -ENOMEM, with the message in err. */
int cfg_parse_buf(struct vd_config *cfg, const char *file, const char *buf,
		  size_t len, char *err, size_t errlen);
/* Reads and parses a file.  Returns 0 or a negative errno, message in err. */
int cfg_parse_file(struct vd_config *cfg, const char *file, char *err,
		   size_t errlen);
/* Copies what the file gave into o, except what the command line set
 * (o->set, o->image, ...).  The strings stay cfg's: keep it alive. */
void cfg_apply(const struct vd_config *cfg, struct vd_options *o);
/* Frees the strings; cfg can be parsed into again. */
void cfg_free(struct vd_config *cfg);

#endif
