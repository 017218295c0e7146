/* One log module for the daemon: levels, stderr or syslog, rate limiting. */
#ifndef VD_LOG_H
#define VD_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* syslog priorities; the numbers are what journald reads as "<N>". */
enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARN = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

enum log_sink {
	LOG_SINK_STDERR,	/* plain "vdiskd[NAME]: msg" lines */
	LOG_SINK_JOURNAL,	/* stderr with "<N>" prefixes (systemd's stream) */
	LOG_SINK_SYSLOG,	/* daemonized */
};

void log_init(const char *ident, enum log_level level, enum log_sink sink);
void log_set_ident(const char *ident);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
bool log_enabled(enum log_level level);

/* log_msg prints the message; log_errno appends ": strerror(err)" (err > 0
 * or < 0 both accepted).  Neither changes errno. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_errno(enum log_level level, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A token bucket for messages a failing disk could repeat forever. */
struct log_ratelimit {
	uint64_t window_start_ns;
	unsigned burst;		/* messages allowed per window */
	unsigned used;
	unsigned suppressed;
};
#define LOG_RATELIMIT_INIT { 0, 10, 0, 0 }

/* True when a message may be printed now; reports suppressed counts. */
bool log_ratelimit_ok(struct log_ratelimit *rl);

#endif
