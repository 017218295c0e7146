/* Size parsing shared by the daemon, the drivers and the tools. */
#ifndef VD_SIZE_H
#define VD_SIZE_H

#include <stdint.h>

/* Parses a size: digits with an optional K/M/G/T/P suffix (powers of 1024,
 * optional "iB"/"B").  Rejects 0, negatives, junk and overflow. */
int vd_parse_size(const char *s, uint64_t *out);

#endif
