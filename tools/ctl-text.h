/* The text a person reads: vdiskctl's rendering of the daemon's replies
 * (info, stats, the --watch screen, list rows).  Client side only; the
 * daemon never links it. */
#ifndef VD_CTL_TEXT_H
#define VD_CTL_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* "64 MiB", "1.5 GiB", "512 B" */
const char *ctl_fmt_size(uint64_t bytes, char *buf, size_t len);
/* "45s", "3m 07s", "2h 05m 00s", "3d 4h 05m" */
const char *ctl_fmt_duration(uint64_t s, char *buf, size_t len);
/* "120 us", "1.2 ms", "3.40 s" */
const char *ctl_fmt_latency(uint64_t us, char *buf, size_t len);

/* A reply's field, or 0 / dflt when missing or of another type. */
uint64_t ctl_get_u64(json_t *obj, const char *key);
const char *ctl_get_str(json_t *obj, const char *key, const char *dflt);

void ctl_print_info(FILE *f, json_t *info);
/* The "connections" reply as a table. */
void ctl_print_connections(FILE *f, json_t *o);
/* Known keys in tables; keys it does not know at the end, so a newer
 * daemon's counters still show. */
void ctl_print_stats(FILE *f, json_t *stats);

/* One stats reply and when it was taken (monotonic seconds). */
struct ctl_sample {
	json_t *o;
	double t;
};
/* One --watch screen: rates between prev and cur (prev->o NULL: since
 * the daemon started), the queue and latency as they are now.  tty:
 * clear the screen first, else separate screens with a blank line. */
void ctl_print_watch(FILE *f, const char *title, const struct ctl_sample *cur,
		     const struct ctl_sample *prev, double interval, bool tty);

void ctl_print_list_header(FILE *f);
void ctl_print_list_row(FILE *f, json_t *info);
void ctl_print_list_unreachable(FILE *f, const char *name, const char *why);

#endif
