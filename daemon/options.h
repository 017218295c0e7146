/* vdiskd's options: the command line and the config file (--config). */
#ifndef VD_OPTIONS_H
#define VD_OPTIONS_H

#include <stdbool.h>

#include "common/log.h"
#include "core/throttle.h"
#include "core/vbd.h"
#include "frontends/nbd.h"

enum {
	VD_MAX_LISTEN = 16,
	VD_MAX_QUEUE_DEPTH = 4096,
	VD_MAX_CONNECTIONS = 65536,
	VD_MAX_SHUTDOWN_TIMEOUT = 86400,
	VD_MIN_BUFFER_LIMIT = 1024 * 1024,
	VD_MAX_CEPH_TIMEOUT = 86400,
	VD_MAX_POLL_US = 1000,
};

struct vd_config;

/* Options given on the command line whose value alone cannot tell
 * (the config file fills only the others). */
enum vd_opt_set {
	VD_SET_CACHE = 1u << 0,
	VD_SET_QUEUE_DEPTH = 1u << 1,
	VD_SET_MAX_CONNECTIONS = 1u << 2,
	VD_SET_LOG_LEVEL = 1u << 3,
	VD_SET_LIMIT = 1u << 4,
	VD_SET_SHUTDOWN_TIMEOUT = 1u << 5,
	VD_SET_MAX_PEER_CONNECTIONS = 1u << 6,
	VD_SET_BUFFER_LIMIT = 1u << 7,
	VD_SET_ON_WRITE_ERROR = 1u << 8,
	VD_SET_ON_READ_ERROR = 1u << 9,
	VD_SET_TLS = 1u << 10,
	VD_SET_TLS_VERIFY_PEER = 1u << 11,
	VD_SET_HANDSHAKE_TIMEOUT = 1u << 12,
	VD_SET_CEPH_TIMEOUT = 1u << 13,
	VD_SET_CEPH_OP_TIMEOUT = 1u << 14,
	VD_SET_POLL_US = 1u << 15,
	VD_SET_SUBMIT_CPU = 1u << 16,
};

struct vd_options {
	const char *image;
	const char *name;
	const char *driver;		/* NULL: detect */
	const char *listen[VD_MAX_LISTEN];
	unsigned nr_listen;
	const char *control;		/* NULL: $RUNDIR/NAME.ctl */
	bool read_only;
	enum vbd_cache cache;
	unsigned queue_depth;
	unsigned poll_us;		/* submit thread poll window; 0: off */
	enum vbd_submit_cpu submit_cpu;
	unsigned max_connections;
	unsigned max_peer_connections;	/* 0: max_connections */
	unsigned shutdown_timeout;	/* seconds */
	uint64_t buffer_limit;		/* bytes; 0: the vbd's default */
	enum vbd_error_policy on_write_error, on_read_error;
	unsigned handshake_timeout;	/* seconds; 0: the frontend's default */
	enum nbd_tls_mode tls;
	const char *tls_certificates;	/* DIR, or NULL */
	const char *tls_psk;		/* FILE, or NULL */
	bool tls_verify_peer;
	bool foreground;
	enum log_level log_level;
	struct thr_limits limits;	/* --limit (repeatable, applied in order) */
	const char *limit_group;	/* --limit-group NAME, or NULL */
	const char *ceph_conf;		/* rbd: --ceph-conf FILE, or NULL */
	const char *ceph_id;		/* rbd: --ceph-id NAME, or NULL */
	unsigned ceph_timeout;		/* rbd: s; 0: default (30) */
	unsigned ceph_op_timeout;	/* rbd: s; 0: wait forever */
	const char *rundir;		/* $RUNDIR when a limit group needs it */
	const char *config;		/* --config FILE, or NULL */
	struct vd_config *cfg;		/* its contents; owns strings above */
	unsigned set;			/* enum vd_opt_set */
	unsigned activated;		/* listeners from systemd: no default one */
	char *owned[VD_MAX_LISTEN + 5];	/* strings allocated for the above */
	unsigned nr_owned;
};

enum {
	VD_OPT_OK = 0,
	VD_OPT_EXIT = 1,	/* --help, --version: exit 0 */
	VD_OPT_USAGE = 2,	/* usage error: exit 2 */
	VD_OPT_BAD = 3,		/* bad value: exit 1 */
};

/* Parses argv into o, then loads --config FILE (values the command line
 * gave win); prints the message for errors itself. */
int vd_options_parse(struct vd_options *o, int argc, char **argv);
/* Fills the defaults that depend on other options (name, sockets).
 * Returns 0 or a negative errno (message printed). */
int vd_options_finish(struct vd_options *o);
void vd_options_free(struct vd_options *o);

/* "none" or "writeback"; -EINVAL otherwise. */
int vd_cache_parse(const char *s, enum vbd_cache *out);
/* "follow" or "free"; -EINVAL otherwise. */
int vd_submit_cpu_parse(const char *s, enum vbd_submit_cpu *out);
/* "report", "pause", or for writes "enospc". */
int vd_error_policy_parse(const char *s, bool write, enum vbd_error_policy *out);

/* Disk names end up in socket paths and JSON: 1-64 plain characters. */
bool vd_name_ok(const char *name);
/* "off", "on", "require"; -EINVAL otherwise. */
int vd_tls_mode_parse(const char *s, enum nbd_tls_mode *out);

#endif
