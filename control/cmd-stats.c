/* stats: the live counters under the names DESIGN.md gives them, plus a
 * few extra ones (caches, block_status, held). */
#include <errno.h>

#include "control/ctl-int.h"
#include "daemon/vbd.h"

static void set_u64(json_t *r, const char *key, uint64_t v)
{
	json_object_set_new(r, key, json_integer((json_int_t)v));
}

static int cmd_stats_exec(struct ctl_request *req)
{
	struct vbd_stats s = { 0 };
	json_t *r = ctl_reply(req);

	if (!r)
		return -ENOMEM;
	vbd_get_stats(req->d->vbd, &s);
	set_u64(r, "reads", s.reads);
	set_u64(r, "writes", s.writes);
	set_u64(r, "flushes", s.flushes);
	set_u64(r, "trims", s.trims);
	set_u64(r, "zeroes", s.zeroes);
	set_u64(r, "caches", s.caches);
	set_u64(r, "block_status", s.block_status);
	set_u64(r, "bytes_read", s.bytes_read);
	set_u64(r, "bytes_written", s.bytes_written);
	set_u64(r, "errors", s.errors);
	set_u64(r, "inflight", s.inflight);
	set_u64(r, "held", s.held);
	set_u64(r, "waiting", s.waiting);
	set_u64(r, "pending", s.pending);
	set_u64(r, "iocbs_submitted", s.iocbs_submitted);
	set_u64(r, "io_submit_calls", s.io_submit_calls);
	set_u64(r, "merged", s.merged);
	set_u64(r, "connections", s.connections);
	json_object_set_new(r, "state", json_string(vbd_state_name(s.state)));
	set_u64(r, "uptime_s", s.uptime_s);
	set_u64(r, "read_lat_p50_us", s.read_lat_p50_us);
	set_u64(r, "read_lat_p99_us", s.read_lat_p99_us);
	set_u64(r, "write_lat_p50_us", s.write_lat_p50_us);
	set_u64(r, "write_lat_p99_us", s.write_lat_p99_us);
	return 0;
}

const struct ctl_cmd_entry cmd_stats_entry = {
	.name = "stats",
	.args = NULL,
	.usage = "stats",
	.exec = cmd_stats_exec,
	.quiet = true,
};
