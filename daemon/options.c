/* Command-line options of vdiskd. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/options.h"
#include "common/rundir.h"
#include "common/size.h"

static const char usage_text[] =
"usage: vdiskd [OPTIONS] IMAGE\n"
"       vdiskd [OPTIONS] --config FILE [IMAGE]\n"
"Serve one virtual disk over NBD.\n"
"\n"
"  -n, --name NAME           disk name (default: the image's base name)\n"
"  -d, --driver raw|ram|rbd  image driver (default: detected, else raw)\n"
"  -l, --listen ADDR         unix:PATH or tcp:HOST:PORT (repeatable;\n"
"                            default unix:$RUNDIR/NAME.nbd)\n"
"  -c, --control PATH        control socket (default $RUNDIR/NAME.ctl)\n"
"  -r, --read-only           serve read-only\n"
"      --cache none|writeback  none = O_DIRECT (default), writeback = page cache\n"
"      --queue-depth N       max iocbs in flight (default 128, 1..4096)\n"
"      --poll-us N           at queue depth 1, the main loop and the submit\n"
"                            thread spin up to N microseconds for more work\n"
"                            before sleeping (default 0: off; 0..1000)\n"
"      --submit-cpu follow|free  under O_DIRECT the submit thread runs on the\n"
"                            main thread's CPU and moves with it (default),\n"
"                            or anywhere\n"
"      --max-connections N   NBD connections at once (default 128)\n"
"      --max-peer-connections N  connections of one peer (uid on unix\n"
"                            sockets, address on TCP; default: no own cap)\n"
"      --buffer-limit SIZE   request and reply buffers across all connections\n"
"                            (default 256M); past it, stop reading sockets\n"
"      --on-write-error report|enospc|pause  on a write error: answer it (default),\n"
"                            pause on ENOSPC only, or pause on any error\n"
"      --on-read-error report|pause\n"
"      --shutdown-timeout S  give up waiting for clients and I/O after S\n"
"                            seconds at shutdown, exit 1 (default 60)\n"
"      --limit KEY=VALUE,... I/O limits: iops, read-iops, write-iops, bps,\n"
"                            read-bps, write-bps, burst-iops, burst-bps,\n"
"                            burst-seconds, iops-size (repeatable)\n"
"      --limit-group NAME    share the limits with the disks of group NAME\n"
"      --handshake-timeout S  drop clients that have not finished the NBD\n"
"                            (and TLS) handshake after S seconds (default 10)\n"
"      --tls off|on|require  NBD STARTTLS: refused (default), offered, required\n"
"      --tls-certificates DIR  ca-cert.pem, server-cert.pem, server-key.pem\n"
"                            [, ca-crl.pem]\n"
"      --tls-psk FILE        pre-shared keys, username:hexkey lines (psktool)\n"
"      --tls-verify-peer     clients must show a certificate the CA signed\n"
"      --ceph-conf FILE      rbd: the Ceph configuration (default: librados's)\n"
"      --ceph-id NAME        rbd: the cephx user, client.NAME (default admin)\n"
"      --ceph-timeout S      rbd: reach the cluster within S seconds (default 30)\n"
"      --ceph-op-timeout S   rbd: fail an OSD request with an error after S\n"
"                            seconds (default 0: wait for the cluster)\n"
"      --config FILE         read options from FILE (vdiskd.conf(5));\n"
"                            the command line overrides it\n"
"  -f, --foreground          stay in the foreground, log to stderr\n"
"  -v, --verbose             more messages (repeatable)\n"
"  -q, --quiet               errors only\n"
"  -h, --help                this text\n"
"  -V, --version             print the version\n"
"\n"
"For the ram driver IMAGE is a size: vdiskd -d ram 1G\n"
"For the rbd driver IMAGE is [rbd:]POOL[/NAMESPACE]/IMAGE[@SNAP]\n";

static int options_parse_uint(const char *opt, const char *s, unsigned min, unsigned max,
		      unsigned *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < (long long)min || v > (long long)max) {
		fprintf(stderr, "vdiskd: %s: '%s' is not a number from %u to %u\n",
			opt, s, min, max);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

/* Command line first, then the file under it: what the command line gave
 * (o->set and the non-NULL fields) stays. */
static int options_load_config(struct vd_options *o)
{
	char err[CFG_ERR_LEN];
	int r;

	o->cfg = calloc(1, sizeof(*o->cfg));
	if (!o->cfg) {
		fprintf(stderr, "vdiskd: out of memory\n");
		return -ENOMEM;
	}
	r = cfg_parse_file(o->cfg, o->config, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vdiskd: %s\n", err);
		free(o->cfg);
		o->cfg = NULL;
		return r;
	}
	cfg_apply(o->cfg, o);
	return 0;
}

int vd_options_parse(struct vd_options *o, int argc, char **argv)
{
	enum { OPT_CACHE = 256, OPT_QUEUE_DEPTH, OPT_MAX_CONN, OPT_CONFIG, OPT_LIMIT,
	       OPT_LIMIT_GROUP, OPT_SHUTDOWN_TIMEOUT, OPT_MAX_PEER_CONN,
	       OPT_BUFFER_LIMIT, OPT_ON_WRITE_ERROR, OPT_ON_READ_ERROR, OPT_TLS,
	       OPT_TLS_CERTS, OPT_TLS_PSK, OPT_TLS_VERIFY, OPT_HS_TIMEOUT,
	       OPT_CEPH_CONF, OPT_CEPH_ID, OPT_CEPH_TIMEOUT, OPT_CEPH_OP_TIMEOUT, OPT_POLL_US,
	       OPT_SUBMIT_CPU };
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "driver", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "control", required_argument, NULL, 'c' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "cache", required_argument, NULL, OPT_CACHE },
		{ "queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH },
		{ "poll-us", required_argument, NULL, OPT_POLL_US },
		{ "submit-cpu", required_argument, NULL, OPT_SUBMIT_CPU },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
		{ "max-peer-connections", required_argument, NULL, OPT_MAX_PEER_CONN },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT },
		{ "buffer-limit", required_argument, NULL, OPT_BUFFER_LIMIT },
		{ "on-write-error", required_argument, NULL, OPT_ON_WRITE_ERROR },
		{ "on-read-error", required_argument, NULL, OPT_ON_READ_ERROR },
		{ "limit-group", required_argument, NULL, OPT_LIMIT_GROUP },
		{ "tls", required_argument, NULL, OPT_TLS },
		{ "tls-certificates", required_argument, NULL, OPT_TLS_CERTS },
		{ "tls-psk", required_argument, NULL, OPT_TLS_PSK },
		{ "tls-verify-peer", no_argument, NULL, OPT_TLS_VERIFY },
		{ "handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT },
		{ "ceph-conf", required_argument, NULL, OPT_CEPH_CONF },
		{ "ceph-id", required_argument, NULL, OPT_CEPH_ID },
		{ "ceph-timeout", required_argument, NULL, OPT_CEPH_TIMEOUT },
		{ "ceph-op-timeout", required_argument, NULL, OPT_CEPH_OP_TIMEOUT },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->cache = VBD_CACHE_NONE;
	o->queue_depth = 128;
	o->max_connections = 128;
	o->shutdown_timeout = 60;
	o->log_level = LOG_LVL_INFO;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":n:d:l:c:rfvqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': o->name = optarg; break;
		case 'd': o->driver = optarg; break;
		case 'l':
			if (o->nr_listen == VD_MAX_LISTEN) {
				fprintf(stderr, "vdiskd: at most %d --listen addresses\n",
					VD_MAX_LISTEN);
				return VD_OPT_BAD;
			}
			o->listen[o->nr_listen++] = optarg;
			break;
		case 'c': o->control = optarg; break;
		case 'r': o->read_only = true; break;
		case OPT_CACHE:
			if (vd_cache_parse(optarg, &o->cache) < 0) {
				fprintf(stderr, "vdiskd: --cache: '%s' is not none or writeback\n",
					optarg);
				return VD_OPT_BAD;
			}
			o->set |= VD_SET_CACHE;
			break;
		case OPT_QUEUE_DEPTH:
			if (options_parse_uint("--queue-depth", optarg, 1, VD_MAX_QUEUE_DEPTH,
				       &o->queue_depth))
				return VD_OPT_BAD;
			o->set |= VD_SET_QUEUE_DEPTH;
			break;
		case OPT_POLL_US:
			if (options_parse_uint("--poll-us", optarg, 0, VD_MAX_POLL_US,
					       &o->poll_us))
				return VD_OPT_BAD;
			o->set |= VD_SET_POLL_US;
			break;
		case OPT_SUBMIT_CPU:
			if (vd_submit_cpu_parse(optarg, &o->submit_cpu) < 0) {
				fprintf(stderr, "vdiskd: --submit-cpu: '%s' is not follow or free\n",
					optarg);
				return VD_OPT_BAD;
			}
			o->set |= VD_SET_SUBMIT_CPU;
			break;
		case OPT_MAX_CONN:
			if (options_parse_uint("--max-connections", optarg, 1, VD_MAX_CONNECTIONS,
				       &o->max_connections))
				return VD_OPT_BAD;
			o->set |= VD_SET_MAX_CONNECTIONS;
			break;
		case OPT_CONFIG: o->config = optarg; break;
		case OPT_ON_WRITE_ERROR:
		case OPT_ON_READ_ERROR: {
			bool w = c == OPT_ON_WRITE_ERROR;

			if (vd_error_policy_parse(optarg, w, w ? &o->on_write_error :
						  &o->on_read_error) < 0) {
				fprintf(stderr, "vdiskd: --on-%s-error: '%s' is not %s\n",
					w ? "write" : "read", optarg,
					w ? "report, enospc or pause" : "report or pause");
				return VD_OPT_BAD;
			}
			o->set |= w ? VD_SET_ON_WRITE_ERROR : VD_SET_ON_READ_ERROR;
			break;
		}
		case OPT_BUFFER_LIMIT:
			if (vd_parse_size(optarg, &o->buffer_limit) < 0 ||
			    o->buffer_limit < VD_MIN_BUFFER_LIMIT) {
				fprintf(stderr, "vdiskd: --buffer-limit: '%s' is not a size of "
					"at least 1M (e.g. 256M, 1G)\n", optarg);
				return VD_OPT_BAD;
			}
			o->set |= VD_SET_BUFFER_LIMIT;
			break;
		case OPT_MAX_PEER_CONN:
			if (options_parse_uint("--max-peer-connections", optarg, 1,
					       VD_MAX_CONNECTIONS, &o->max_peer_connections))
				return VD_OPT_BAD;
			o->set |= VD_SET_MAX_PEER_CONNECTIONS;
			break;
		case OPT_SHUTDOWN_TIMEOUT:
			if (options_parse_uint("--shutdown-timeout", optarg, 1,
					       VD_MAX_SHUTDOWN_TIMEOUT, &o->shutdown_timeout))
				return VD_OPT_BAD;
			o->set |= VD_SET_SHUTDOWN_TIMEOUT;
			break;
		case OPT_LIMIT: {
			char msg[256];

			if (thr_limits_parse(optarg, &o->limits, msg, sizeof(msg)) < 0) {
				fprintf(stderr, "vdiskd: --limit: %s\n", msg);
				return VD_OPT_BAD;
			}
			o->set |= VD_SET_LIMIT;
			break;
		}
		case OPT_LIMIT_GROUP:
			if (!vd_name_ok(optarg)) {
				fprintf(stderr, "vdiskd: --limit-group: '%s' is not a valid "
					"name (1-64 letters, digits and ._-)\n", optarg);
				return VD_OPT_BAD;
			}
			o->limit_group = optarg;
			break;
		case OPT_TLS:
			if (vd_tls_mode_parse(optarg, &o->tls) < 0) {
				fprintf(stderr, "vdiskd: --tls: '%s' is not off, on or require\n",
					optarg);
				return VD_OPT_BAD;
			}
			o->set |= VD_SET_TLS;
			break;
		case OPT_TLS_CERTS: o->tls_certificates = optarg; break;
		case OPT_TLS_PSK: o->tls_psk = optarg; break;
		case OPT_TLS_VERIFY:
			o->tls_verify_peer = true;
			o->set |= VD_SET_TLS_VERIFY_PEER;
			break;
		case OPT_HS_TIMEOUT:
			if (options_parse_uint("--handshake-timeout", optarg, 1, 3600,
					       &o->handshake_timeout))
				return VD_OPT_BAD;
			o->set |= VD_SET_HANDSHAKE_TIMEOUT;
			break;
		case OPT_CEPH_CONF: o->ceph_conf = optarg; break;
		case OPT_CEPH_ID: o->ceph_id = optarg; break;
		case OPT_CEPH_TIMEOUT:
			if (options_parse_uint("--ceph-timeout", optarg, 1, VD_MAX_CEPH_TIMEOUT,
					       &o->ceph_timeout))
				return VD_OPT_BAD;
			o->set |= VD_SET_CEPH_TIMEOUT;
			break;
		case OPT_CEPH_OP_TIMEOUT:
			if (options_parse_uint("--ceph-op-timeout", optarg, 0, VD_MAX_CEPH_TIMEOUT,
					       &o->ceph_op_timeout))
				return VD_OPT_BAD;
			o->set |= VD_SET_CEPH_OP_TIMEOUT;
			break;
		case 'f': o->foreground = true; break;
		case 'v':
			if (o->log_level < LOG_LVL_DEBUG)
				o->log_level++;
			o->set |= VD_SET_LOG_LEVEL;
			break;
		case 'q':
			o->log_level = LOG_LVL_ERR;
			o->set |= VD_SET_LOG_LEVEL;
			break;
		case 'h': fputs(usage_text, stdout); return VD_OPT_EXIT;
		case 'V': printf("vdiskd %s\n", VDISKD_VERSION); return VD_OPT_EXIT;
		case ':':
			fprintf(stderr, "vdiskd: option '%s' needs a value\n", argv[optind - 1]);
			fputs("Try 'vdiskd --help'.\n", stderr);
			return VD_OPT_USAGE;
		default:
			fprintf(stderr, "vdiskd: unknown option '%s'\n", argv[optind - 1]);
			fputs("Try 'vdiskd --help'.\n", stderr);
			return VD_OPT_USAGE;
		}
	}
	if (optind < argc - 1 || (optind == argc && !o->config)) {
		fprintf(stderr, "vdiskd: %s\n", optind >= argc ? "no IMAGE given" :
			"only one IMAGE, please");
		fputs("Try 'vdiskd --help'.\n", stderr);
		return VD_OPT_USAGE;
	}
	if (optind < argc)
		o->image = argv[optind];
	if (o->config && options_load_config(o) < 0)
		return VD_OPT_BAD;
	if (!o->image) {
		fprintf(stderr, "vdiskd: %s: no 'image' key, and no IMAGE on the "
			"command line\n", o->config);
		vd_options_free(o);
		return VD_OPT_BAD;
	}
	if (!*o->image) {
		fprintf(stderr, "vdiskd: IMAGE is empty\n");
		vd_options_free(o);
		return VD_OPT_USAGE;
	}
	return VD_OPT_OK;
}

/* The index of s among names (indexed by enum value), or -EINVAL. */
static int vd_word(const char *s, const char *const names[], int n)
{
	for (int i = 0; i < n; i++)
		if (names[i] && strcmp(s, names[i]) == 0)
			return i;
	return -EINVAL;
}

#define VD_WORD(s, names) vd_word((s), (names), (int)(sizeof(names) / sizeof((names)[0])))

int vd_cache_parse(const char *s, enum vbd_cache *out)
{
	static const char *const names[] = {
		[VBD_CACHE_NONE] = "none", [VBD_CACHE_WRITEBACK] = "writeback",
	};
	int i = VD_WORD(s, names);

	if (i < 0)
		return i;
	*out = (enum vbd_cache)i;
	return 0;
}

int vd_submit_cpu_parse(const char *s, enum vbd_submit_cpu *out)
{
	static const char *const names[] = {
		[VBD_SUBMIT_FOLLOW] = "follow", [VBD_SUBMIT_FREE] = "free",
	};
	int i = VD_WORD(s, names);

	if (i < 0)
		return i;
	*out = (enum vbd_submit_cpu)i;
	return 0;
}

int vd_error_policy_parse(const char *s, bool write, enum vbd_error_policy *out)
{
	static const char *const names[] = {
		[VBD_ERR_REPORT] = "report", [VBD_ERR_PAUSE] = "pause",
		[VBD_ERR_ENOSPC] = "enospc",
	};
	int i = VD_WORD(s, names);

	if (i < 0 || (i == VBD_ERR_ENOSPC && !write))
		return -EINVAL;	/* enospc is a write policy only */
	*out = (enum vbd_error_policy)i;
	return 0;
}

static char *options_own(struct vd_options *o, char *s)
{
	if (s && o->nr_owned < sizeof(o->owned) / sizeof(o->owned[0]))
		o->owned[o->nr_owned++] = s;
	return s;
}

int vd_tls_mode_parse(const char *s, enum nbd_tls_mode *out)
{
	static const char *const names[] = {
		[NBD_TLS_OFF] = "off", [NBD_TLS_ON] = "on", [NBD_TLS_REQUIRE] = "require",
	};
	int i = VD_WORD(s, names);

	if (i < 0)
		return i;
	*out = (enum nbd_tls_mode)i;
	return 0;
}

/* Credentials without TLS, or TLS without credentials, is a mistake the
 * operator should hear about before the first client does. */
static int options_check_tls(const struct vd_options *o)
{
	if (o->tls != NBD_TLS_OFF && !o->tls_certificates && !o->tls_psk) {
		fprintf(stderr, "vdiskd: --tls %s needs --tls-certificates DIR or "
			"--tls-psk FILE\n", nbd_tls_mode_name(o->tls));
		return -EINVAL;
	}
	if (o->tls == NBD_TLS_OFF && (o->tls_certificates || o->tls_psk || o->tls_verify_peer)) {
		fprintf(stderr, "vdiskd: TLS credentials given but --tls is off: add "
			"--tls on or --tls require\n");
		return -EINVAL;
	}
	if (o->tls_verify_peer && !o->tls_certificates) {
		fprintf(stderr, "vdiskd: --tls-verify-peer needs --tls-certificates DIR "
			"(its ca-cert.pem)\n");
		return -EINVAL;
	}
	return 0;
}

/* Names end up in socket paths and JSON: keep them plain. */
bool vd_name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 64 || n[0] == '.' || n[0] == '-')
		return false;
	for (const char *p = n; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("._-@+:", *p)))
			return false;
	}
	return true;
}

int vd_options_finish(struct vd_options *o)
{
	char rundir[PATH_MAX];
	int r = 0;

	if (!o->name) {
		bool ram = o->driver && strcmp(o->driver, "ram") == 0;
		const char *base = strrchr(o->image, '/');
		base = base ? base + 1 : o->image;
		bool rbd = (o->driver && strcmp(o->driver, "rbd") == 0) ||
			   strncmp(o->image, "rbd:", 4) == 0;
		if (ram && asprintf((char **)&o->name, "ram-%s", o->image) >= 0)
			options_own(o, (char *)o->name);
		else
			o->name = base;
		/* A malformed rbd spec is the driver's to explain, not a bad name. */
		if (rbd && !vd_name_ok(o->name))
			o->name = "rbd";
	}
	if (!vd_name_ok(o->name)) {
		fprintf(stderr, "vdiskd: disk name '%s' is not valid: use 1-64 letters, "
			"digits and ._-@+: (give one with -n)\n", o->name);
		return -EINVAL;
	}
	if (options_check_tls(o) < 0)
		return -EINVAL;
	/* Sockets from systemd replace the default listener, not -l. */
	if ((o->nr_listen || o->activated) && o->control && !o->limit_group)
		return 0;

	r = vd_rundir(rundir, sizeof(rundir));
	if (r < 0) {
		fprintf(stderr, "vdiskd: no run directory (%s): set XDG_RUNTIME_DIR "
			"or give -l and -c explicitly\n", strerror(-r));
		return r;
	}
	r = vd_mkdir_p(rundir, 0755);
	if (r < 0) {
		fprintf(stderr, "vdiskd: cannot create %s: %s\n", rundir, strerror(-r));
		goto out;
	}
	o->rundir = options_own(o, strdup(rundir));
	if (!o->rundir) {
		r = -ENOMEM;
		goto out;
	}
	if (!o->nr_listen && !o->activated) {
		char *l;
		if (asprintf(&l, "unix:%s/%s.nbd", rundir, o->name) < 0) {
			r = -ENOMEM;
			goto out;
		}
		o->listen[o->nr_listen++] = options_own(o, l);
	}
	if (!o->control) {
		char *c;
		if (asprintf(&c, "%s/%s.ctl", rundir, o->name) < 0) {
			r = -ENOMEM;
			goto out;
		}
		o->control = options_own(o, c);
	}
out:
	return r;
}

void vd_options_free(struct vd_options *o)
{
	for (unsigned i = 0; i < o->nr_owned; i++)
		free(o->owned[i]);
	o->nr_owned = 0;
	if (o->cfg) {
		cfg_free(o->cfg);
		free(o->cfg);
		o->cfg = NULL;
	}
}
