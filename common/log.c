/* The log module.  The level and sink are process-wide by nature: one
 * daemon, one journal stream.  Thread safe: every message is written with
 * one write(2)/syslog(3) call. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

static struct {
	char ident[64];
	enum log_level level;
	enum log_sink sink;
} logger = { "vdiskd", LOG_LVL_INFO, LOG_SINK_STDERR };

static const char *const level_names[] = {
	[LOG_LVL_ERR] = "error", [LOG_LVL_WARN] = "warn",
	[LOG_LVL_NOTICE] = "notice", [LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void log_init(const char *ident, enum log_level level, enum log_sink sink)
{
	log_set_ident(ident);
	logger.level = level;
	logger.sink = sink;
	if (sink == LOG_SINK_SYSLOG)
		openlog(logger.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_ident(const char *ident)
{
	snprintf(logger.ident, sizeof(logger.ident), "%s", ident ? ident : "vdiskd");
}

void log_set_level(enum log_level level) { logger.level = level; }
enum log_level log_get_level(void) { return logger.level; }
bool log_enabled(enum log_level level) { return level <= logger.level; }

const char *log_level_name(enum log_level level)
{
	if (level < LOG_LVL_ERR || level > LOG_LVL_DEBUG)
		return "unknown";
	return level_names[level];
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int l = LOG_LVL_ERR; l <= LOG_LVL_DEBUG; l++) {
		if (strcasecmp(s, level_names[l]) == 0) {
			*out = (enum log_level)l;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -EINVAL;
}

/* The format attribute (0: a va_list) lets clang's -Wformat-nonliteral
 * (the fuzz build) see that fmt comes from checked callers. */
__attribute__((format(printf, 3, 0)))
static void log_emit(enum log_level level, int err, const char *fmt, va_list ap)
{
	char msg[1024];
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);

	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	if (err)
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(err < 0 ? -err : err));

	if (logger.sink == LOG_SINK_SYSLOG) {
		syslog(level, "%s", msg);
		return;
	}
	char line[1200];
	int len;
	if (logger.sink == LOG_SINK_JOURNAL)
		len = snprintf(line, sizeof(line), "<%d>%s\n", level, msg);
	else
		len = snprintf(line, sizeof(line), "%s: %s%s\n", logger.ident,
			       level <= LOG_LVL_WARN ? (level == LOG_LVL_ERR ?
			       "error: " : "warning: ") : "", msg);
	if (len > (int)sizeof(line) - 1)
		len = sizeof(line) - 1;
	/* One write per line so threads never interleave inside a line. */
	ssize_t r = write(STDERR_FILENO, line, len);
	(void)r;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit(level, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

void log_errno(enum log_level level, int err, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_emit(level, err, fmt, ap);
	va_end(ap);
	errno = saved;
}

bool log_ratelimit_ok(struct log_ratelimit *rl)
{
	const uint64_t window = 5ull * 1000000000u;
	uint64_t now = vd_now_ns();

	if (now - rl->window_start_ns >= window) {
		if (rl->suppressed)
			log_msg(LOG_LVL_WARN, "%u similar messages suppressed", rl->suppressed);
		rl->window_start_ns = now;
		rl->used = 0;
		rl->suppressed = 0;
	}
	if (rl->used < rl->burst) {
		rl->used++;
		return true;
	}
	rl->suppressed++;
	return false;
}
