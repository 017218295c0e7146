/* The VHD format layer (drivers/vhd-format.h) on any bytes: a footer (512
 * bytes), a dynamic header (1024), and the layout check for a file size
 * taken from the input.  Properties: what parses re-encodes to a footer /
 * header that parses to the same fields (the checksum aside: it is kept
 * as read, and reserved bytes it covered are not); the layout check never lets a
 * structure past the footer (meta_end, aligned up, at most the footer's
 * offset aligned up). */
#include <errno.h>

#include "drivers/vhd-format.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t fbuf[VHD_FOOTER_SIZE], hbuf[VHD_HEADER_SIZE], again[VHD_HEADER_SIZE];
	struct vhd_footer f, f2;
	struct vhd_header h, h2;
	char msg[256];
	uint64_t footer_offset = 0, meta_end = 0;

	if (size < 8 + VHD_FOOTER_SIZE)
		return 0;
	for (int i = 0; i < 8; i++)
		footer_offset = footer_offset << 8 | data[i];
	data += 8;
	size -= 8;
	memcpy(fbuf, data, VHD_FOOTER_SIZE);
	data += VHD_FOOTER_SIZE;
	size -= VHD_FOOTER_SIZE;
	memset(hbuf, 0, sizeof(hbuf));
	memcpy(hbuf, data, size < VHD_HEADER_SIZE ? size : VHD_HEADER_SIZE);

	memset(&f, 0, sizeof(f));	/* memcmp below: padding too */
	memset(&f2, 0, sizeof(f2));
	memset(&h, 0, sizeof(h));
	memset(&h2, 0, sizeof(h2));
	(void)vhd_detect_footer(fbuf);
	msg[0] = '\0';
	if (vhd_footer_parse(fbuf, &f, msg, sizeof(msg)) != 0) {
		FUZZ_ASSERT(msg[0] != '\0');
		/* Header checks only need a footer's fields: try the decoded
		 * one anyway, the header parser must cope. */
		vhd_footer_decode(fbuf, &f);
		(void)vhd_header_parse(hbuf, &f, &h, msg, sizeof(msg));
		return 0;
	}
	FUZZ_ASSERT(vhd_detect_footer(fbuf));
	vhd_footer_encode(&f, again);
	FUZZ_ASSERT(vhd_footer_parse(again, &f2, msg, sizeof(msg)) == 0);
	/* checksum is "as read": reserved bytes it covered are not kept. */
	f2.checksum = f.checksum;
	FUZZ_ASSERT(memcmp(&f, &f2, sizeof(f)) == 0);

	msg[0] = '\0';
	if (vhd_header_parse(hbuf, &f, &h, msg, sizeof(msg)) != 0) {
		FUZZ_ASSERT(msg[0] != '\0');
		return 0;
	}
	vhd_header_encode(&h, again);
	FUZZ_ASSERT(vhd_header_parse(again, &f, &h2, msg, sizeof(msg)) == 0);
	h2.checksum = h.checksum;
	FUZZ_ASSERT(memcmp(&h, &h2, sizeof(h)) == 0);

	if (vhd_layout_validate(&f, &h, footer_offset, &meta_end, msg, sizeof(msg)) == 0) {
		/* Aligned up: past the footer only when the footer itself is
		 * unaligned (a 511-byte footer, a file of odd size). */
		FUZZ_ASSERT(footer_offset > UINT64_MAX - 511 ||
			    meta_end <= ((footer_offset + 511) & ~(uint64_t)511));
		FUZZ_ASSERT(meta_end % 512 == 0);
	}
	return 0;
}
