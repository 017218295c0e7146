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
	CFG_TLS,
	CFG_TLS_CERTIFICATES,
	CFG_TLS_PSK,
	CFG_TLS_VERIFY_PEER,
	CFG_HANDSHAKE_TIMEOUT,
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
	unsigned max_connections;
	enum log_level log_level;
	char *name;
	enum nbd_tls_mode tls;
	char *tls_certificates;
	char *tls_psk;
	bool tls_verify_peer;
	unsigned handshake_timeout;
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
