/* Helpers shared by the vhd-*.c files; not part of any API. */
#ifndef VHD_INT_H
#define VHD_INT_H

#include <stddef.h>
#include <stdint.h>

/* Formats a reason into msg (if msg is not NULL) and returns err, so that
 * a check reads `return vhd_msg(msg, msglen, -EINVAL, "...", ...);`. */
int vhd_msg(char *msg, size_t msglen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

uint16_t vhd_get16(const uint8_t *p);
uint32_t vhd_get32(const uint8_t *p);
uint64_t vhd_get64(const uint8_t *p);
void vhd_put16(uint8_t *p, uint16_t v);
void vhd_put32(uint8_t *p, uint32_t v);
void vhd_put64(uint8_t *p, uint64_t v);

#endif
