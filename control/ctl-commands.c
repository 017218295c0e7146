/* The command table.  Apart from the dispatcher so that the parsing can
 * be tested (and fuzzed) with a table of its own, without a vbd. */
#include "control/ctl-int.h"

const struct ctl_cmd_entry *const ctl_cmd_table[] = {
	&cmd_info_entry,
	&cmd_stats_entry,
	&cmd_pause_entry,
	&cmd_resume_entry,
	&cmd_flush_entry,
	&cmd_reopen_entry,
	&cmd_shutdown_entry,
	&cmd_log_level_entry,
	&cmd_limit_entry,
	&cmd_snapshot_entry,
	NULL,
};
