/* Sector bitmaps in front of each data block: one bit per 512-byte sector,
 * most significant bit first.  A set bit means the sector is in this
 * image; a clear one means "read the parent" (or zeros).  The data path
 * splits a request into runs of equal bits, so runs are found a byte at a
 * time where whole bytes agree. */
#include "drivers/vhd-format.h"

uint32_t vhd_bitmap_bytes(uint32_t block_size)
{
	uint32_t bits = block_size / VHD_SECTOR_SIZE;
	uint32_t bytes = bits / 8 + (bits % 8 != 0);

	return (bytes + 511) & ~511u;
}

static uint8_t mask(uint32_t i)
{
	return (uint8_t)(0x80u >> (i % 8));
}

bool vhd_bitmap_test(const uint8_t *bm, uint32_t i)
{
	return bm[i / 8] & mask(i);
}

void vhd_bitmap_set_range(uint8_t *bm, uint32_t first, uint32_t count, bool value)
{
	uint32_t i = first, end = first + count;

	for (; i < end && i % 8; i++)
		bm[i / 8] = value ? bm[i / 8] | mask(i) : bm[i / 8] & ~mask(i);
	for (; end - i >= 8; i += 8)
		bm[i / 8] = value ? 0xff : 0;
	for (; i < end; i++)
		bm[i / 8] = value ? bm[i / 8] | mask(i) : bm[i / 8] & ~mask(i);
}

bool vhd_bitmap_range_is(const uint8_t *bm, uint32_t first, uint32_t count, bool value)
{
	bool v;

	return count == 0 || (vhd_bitmap_run(bm, first, count, &v) == count && v == value);
}

uint32_t vhd_bitmap_run(const uint8_t *bm, uint32_t first, uint32_t count, bool *value)
{
	uint32_t i = first, end = first + count;
	uint8_t whole;
	bool v;

	if (count == 0)
		return 0;
	v = vhd_bitmap_test(bm, first);
	whole = v ? 0xff : 0;
	*value = v;
	while (i < end) {
		if (i % 8 == 0 && end - i >= 8 && bm[i / 8] == whole) {
			i += 8;
			continue;
		}
		if (vhd_bitmap_test(bm, i) != v)
			break;
		i++;
	}
	return i - first;
}
