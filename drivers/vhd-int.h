/* Helpers shared by the vhd-*.c files; not part of any API. */
#ifndef VHD_INT_H
#define VHD_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/errmsg.h"

/* Checks read `return vd_errmsg(msg, msglen, -EINVAL, "...", ...);`. */

uint16_t vhd_get16(const uint8_t *p);
uint32_t vhd_get32(const uint8_t *p);
uint64_t vhd_get64(const uint8_t *p);
void vhd_put16(uint8_t *p, uint16_t v);
void vhd_put32(uint8_t *p, uint32_t v);
void vhd_put64(uint8_t *p, uint64_t v);

#endif
