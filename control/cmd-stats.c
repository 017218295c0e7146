/* stats: the live counters under the names DESIGN.md gives them, plus a
 * few extra ones (caches, block_status, held). */
#include <errno.h>
#include <stdio.h>

#include "control/ctl-int.h"
#include "core/vbd.h"

static void cmd_set_u64(json_t *r, const char *key, uint64_t v)
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
	cmd_set_u64(r, "reads", s.reads);
	cmd_set_u64(r, "writes", s.writes);
	cmd_set_u64(r, "flushes", s.flushes);
	cmd_set_u64(r, "trims", s.trims);
	cmd_set_u64(r, "zeroes", s.zeroes);
	cmd_set_u64(r, "caches", s.caches);
	cmd_set_u64(r, "block_status", s.block_status);
	cmd_set_u64(r, "bytes_read", s.bytes_read);
	cmd_set_u64(r, "bytes_written", s.bytes_written);
	cmd_set_u64(r, "errors", s.errors);
	cmd_set_u64(r, "inflight", s.inflight);
	cmd_set_u64(r, "held", s.held);
	cmd_set_u64(r, "waiting", s.waiting);
	cmd_set_u64(r, "pending", s.pending);
	cmd_set_u64(r, "iocbs_submitted", s.iocbs_submitted);
	cmd_set_u64(r, "io_submit_calls", s.io_submit_calls);
	cmd_set_u64(r, "merged", s.merged);
	cmd_set_u64(r, "connections", s.connections);
	json_object_set_new(r, "state", json_string(vbd_state_name(s.state)));
	json_object_set_new(r, "pause_reason", ctl_json_string(s.pause_reason));
	cmd_set_u64(r, "uptime_s", s.uptime_s);
	cmd_set_u64(r, "read_lat_p50_us", s.read_lat_p50_us);
	cmd_set_u64(r, "read_lat_p99_us", s.read_lat_p99_us);
	cmd_set_u64(r, "write_lat_p50_us", s.write_lat_p50_us);
	cmd_set_u64(r, "write_lat_p99_us", s.write_lat_p99_us);
	cmd_set_u64(r, "throttled", s.throttled);
	cmd_set_u64(r, "throttled_now", s.throttled_now);
	cmd_set_u64(r, "throttle_wait_us", s.throttle_wait_us);
	cmd_set_u64(r, "buffer_bytes", s.buffer_bytes);
	cmd_set_u64(r, "buffer_limit", s.buffer_limit);
	cmd_set_u64(r, "submit_wakeups", s.submit_wakeups);
	cmd_set_u64(r, "submit_polled", s.submit_polled);
	cmd_set_u64(r, "submit_moves", s.submit_moves);
	for (unsigned i = 0; i < VBD_STAGES; i++) {
		const char *n = vbd_stage_name(i);
		char key[48];

		snprintf(key, sizeof(key), "stage_%s_count", n);
		cmd_set_u64(r, key, s.stage[i].count);
		snprintf(key, sizeof(key), "stage_%s_p50_us", n);
		cmd_set_u64(r, key, s.stage[i].p50_us);
		snprintf(key, sizeof(key), "stage_%s_p99_us", n);
		cmd_set_u64(r, key, s.stage[i].p99_us);
	}
	return 0;
}

const struct ctl_cmd_entry cmd_stats_entry = {
	.name = "stats",
	.args = NULL,
	.usage = "stats",
	.exec = cmd_stats_exec,
	.quiet = true,
};
