/* The VHD image format on disk, as pure functions over byte buffers: no
 * file I/O, no allocation, no logging.  The vhd driver's metadata cache,
 * its data path and image creation (drivers/vhd-create.c) sit on top.
 *
 * On disk everything is big-endian; the structs here are in host order
 * and hold only the fields (cookies and reserved bytes are checked or
 * zeroed by the codecs).  Functions return 0 or a negative errno; those
 * that take `char *msg, size_t msglen` write a one-line reason naming the
 * field into it on failure (msg may be NULL).
 *
 * What validation accepts (hostile images must fail here, before anyone
 * allocates or seeks by a field's value):
 *  - current size: a non-zero multiple of 512, at most VHD_MAX_DISK_SIZE
 *    (2040 GiB, the limit of the format as Hyper-V and qemu apply it);
 *    the size a reader sees (vhd_footer_disk_size) obeys the same bounds;
 *  - footer and header version: major version 1;
 *  - disk type: fixed (2), dynamic (3) or differencing (4);
 *  - block size: a power of two from VHD_BLOCK_MIN (512 B) to
 *    VHD_BLOCK_MAX (256 MiB).  The spec names 2 MiB and Hyper-V also makes
 *    512 KiB; qemu reads any power of two from 512 B, so we do too, and
 *    the upper bound keeps a block's bitmap within 64 KiB;
 *  - max table entries: at least ceil(disk size / block size), at most
 *    ceil(VHD_MAX_DISK_SIZE / block size) and at most VHD_MAX_BAT_ENTRIES
 *    (a 64 MiB BAT: 2040 GiB in 128 KiB blocks);
 *  - offsets: every structure (header, BAT, locator data) inside the file,
 *    clear of the footer at its end, without 64-bit overflow
 *    (vhd_layout_validate, which needs the file size). */
#ifndef VHD_FORMAT_H
#define VHD_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VHD_SECTOR_SIZE      512u
#define VHD_FOOTER_SIZE      512u
#define VHD_HEADER_SIZE      1024u
#define VHD_VERSION          0x00010000u
#define VHD_FEATURES         0x00000002u  /* the "reserved" bit, always set */
#define VHD_NO_OFFSET        UINT64_C(0xFFFFFFFFFFFFFFFF)
#define VHD_BAT_UNUSED       0xFFFFFFFFu
#define VHD_MAX_DISK_SIZE    (UINT64_C(2040) << 30)
#define VHD_BLOCK_MIN        512u
#define VHD_BLOCK_MAX        (256u << 20)
#define VHD_BLOCK_DEFAULT    (2u << 20)
#define VHD_MAX_BAT_ENTRIES  (16u << 20)
#define VHD_LOCATORS         8
#define VHD_LOCATOR_MAX      65536u  /* bytes of one locator's data */
#define VHD_PARENT_NAME_SIZE 512u    /* bytes of UTF-16BE */
#define VHD_EPOCH            946684800  /* 2000-01-01T00:00:00Z in Unix time */

/* Platform codes of parent locators. */
#define VHD_PLAT_NONE 0x00000000u
#define VHD_PLAT_W2RU 0x57327275u  /* "W2ru": relative path, UTF-16LE */
#define VHD_PLAT_W2KU 0x57326B75u  /* "W2ku": absolute path, UTF-16LE */
#define VHD_PLAT_MACX 0x4D616358u  /* "MacX": file:// URL, UTF-8 */

enum vhd_type {
	VHD_TYPE_FIXED = 2,
	VHD_TYPE_DYNAMIC = 3,
	VHD_TYPE_DIFF = 4,
};

struct vhd_geometry {
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;	/* per track */
};

struct vhd_footer {
	uint32_t features;
	uint32_t version;
	uint64_t data_offset;	/* the dynamic header; VHD_NO_OFFSET if fixed */
	uint32_t timestamp;	/* seconds since VHD_EPOCH */
	char creator_app[4];
	uint32_t creator_version;
	char creator_os[4];
	uint64_t original_size;
	uint64_t current_size;
	struct vhd_geometry geometry;
	uint32_t type;		/* enum vhd_type */
	uint32_t checksum;	/* as read; the encoder computes its own */
	uint8_t uuid[16];
	uint8_t saved_state;
};

struct vhd_locator {
	uint32_t code;		/* VHD_PLAT_* */
	uint32_t data_space;	/* as on disk: sectors per the spec, bytes
				 * per Windows; see vhd_locator_space() */
	uint32_t data_length;	/* bytes */
	uint64_t data_offset;
};

struct vhd_header {
	uint64_t data_offset;	/* unused, VHD_NO_OFFSET */
	uint64_t table_offset;
	uint32_t version;
	uint32_t max_table_entries;
	uint32_t block_size;
	uint32_t checksum;
	uint8_t parent_uuid[16];
	uint32_t parent_timestamp;
	uint8_t parent_name[VHD_PARENT_NAME_SIZE];  /* UTF-16BE, NUL padded */
	struct vhd_locator loc[VHD_LOCATORS];
};

/* One's complement of the byte sum of len bytes, skipping the 4-byte
 * checksum field at skip (pass len or more to skip nothing). */
uint32_t vhd_checksum(const uint8_t *buf, size_t len, size_t skip);

/* CHS geometry for a size in bytes, by the spec's algorithm (the one qemu
 * uses); sizes past the CHS range get the largest geometry. */
void vhd_geometry_from_size(uint64_t size, struct vhd_geometry *g);
uint64_t vhd_geometry_bytes(const struct vhd_geometry *g);

/* The size a reader sees, by qemu's rule: current_size when the creator
 * app is "win ", "qem2", "d2v ", "CTXS" or "tap\0", or when the geometry
 * is the largest (65535/16/255); cylinders*heads*sectors*512 otherwise
 * (Virtual PC's and old qemu's images).  This is qemu up to 9.x (Debian
 * 12 ships 7.2); qemu 10 turns the list around (CHS only for "vpc " and
 * "qemu"), which agrees on every creator named here and differs only on
 * unknown ones such as Azure's "wa\0\0", which we size by CHS like 7.2. */
uint64_t vhd_footer_disk_size(const struct vhd_footer *f);

/* Footer.  decode/encode are field copies (encode computes the checksum
 * and returns it); validate checks fields alone; parse = decode + cookie +
 * checksum + validate. */
void vhd_footer_decode(const uint8_t buf[VHD_FOOTER_SIZE], struct vhd_footer *f);
uint32_t vhd_footer_encode(const struct vhd_footer *f, uint8_t buf[VHD_FOOTER_SIZE]);
int vhd_footer_validate(const struct vhd_footer *f, char *msg, size_t msglen);
int vhd_footer_parse(const uint8_t buf[VHD_FOOTER_SIZE], struct vhd_footer *f,
		     char *msg, size_t msglen);

/* True only when the cookie, the checksum and the disk type are valid: a
 * raw image ending in a stray "conectix" is not a VHD.  Other fields may
 * still be wrong; opening then fails with a reason rather than serving a
 * VHD as raw.  Detection should also try the first 512 bytes (a dynamic
 * image's footer copy): a crash while a block is appended can leave the
 * end of a dynamic image without its footer. */
bool vhd_detect_footer(const uint8_t last512[VHD_FOOTER_SIZE]);

/* Dynamic disk header, same shape as the footer's functions.  validate
 * takes the footer because the table must cover the disk. */
void vhd_header_decode(const uint8_t buf[VHD_HEADER_SIZE], struct vhd_header *h);
uint32_t vhd_header_encode(const struct vhd_header *h, uint8_t buf[VHD_HEADER_SIZE]);
int vhd_header_validate(const struct vhd_header *h, const struct vhd_footer *f,
			char *msg, size_t msglen);
int vhd_header_parse(const uint8_t buf[VHD_HEADER_SIZE], const struct vhd_footer *f,
		     struct vhd_header *h, char *msg, size_t msglen);

/* Offsets of a dynamic or differencing image whose footer (at the end of
 * the file) starts at footer_offset: the header, the BAT and the locator
 * data lie in [512, footer_offset) (clear of the footer copy at 0) and do
 * not overlap.  On success *meta_end (if not NULL) is the first 512-aligned
 * byte past all of them: data blocks may not start below it. */
int vhd_layout_validate(const struct vhd_footer *f, const struct vhd_header *h,
			uint64_t footer_offset, uint64_t *meta_end, char *msg, size_t msglen);

/* BAT: big-endian uint32 sector offsets, VHD_BAT_UNUSED when unallocated,
 * padded on disk to a 512-byte multiple. */
uint64_t vhd_bat_bytes(uint32_t entries);
uint32_t vhd_bat_get(const uint8_t *bat, uint32_t i);
void vhd_bat_set(uint8_t *bat, uint32_t i, uint32_t sector);
/* Every allocated entry's bitmap and block lie in [meta_end,
 * footer_offset); names the first entry that does not.  (Blocks that
 * overlap each other are left to a full check: finding them needs a sort.) */
int vhd_bat_check(const uint8_t *bat, uint32_t entries, uint32_t block_size,
		  uint64_t meta_end, uint64_t footer_offset, char *msg, size_t msglen);

/* Sector bitmaps: bit for sector i is byte i/8, mask 0x80 >> (i%8).  A
 * block's bitmap takes block_size/512 bits, padded to a 512 multiple.
 * Ranges must lie inside the bitmap (first + count <= its bits). */
uint32_t vhd_bitmap_bytes(uint32_t block_size);
bool vhd_bitmap_test(const uint8_t *bm, uint32_t i);
void vhd_bitmap_set_range(uint8_t *bm, uint32_t first, uint32_t count, bool value);
/* True when all count bits from first equal value (true for count 0). */
bool vhd_bitmap_range_is(const uint8_t *bm, uint32_t first, uint32_t count, bool value);
/* Length (1..count) of the run of equal bits starting at first, looking
 * at no more than count bits; *value gets that run's bit.  0 if count is
 * 0.  A request is split by calling this until its sectors are used up. */
uint32_t vhd_bitmap_run(const uint8_t *bm, uint32_t first, uint32_t count, bool *value);

/* UTF-8 <-> UTF-16 (big- or little-endian), strict: malformed input
 * (overlong forms, surrogates in UTF-8, code points past U+10FFFF, bad
 * continuation bytes, unpaired surrogates, an odd byte count) is -EILSEQ,
 * an output that does not fit -ENAMETOOLONG.  utf8_to_utf16 reads a C
 * string and writes *outlen bytes, no terminator; utf16_to_utf8 stops at
 * the first NUL unit or at inlen and always NUL-terminates its output. */
int vhd_utf8_to_utf16(const char *in, uint8_t *out, size_t outcap, bool big_endian,
		      size_t *outlen);
int vhd_utf16_to_utf8(const uint8_t *in, size_t inlen, bool big_endian, char *out,
		      size_t outcap);

/* The parent's unicode name field (UTF-16BE, NUL padded). */
int vhd_header_set_parent_name(struct vhd_header *h, const char *utf8);
int vhd_header_parent_name(const struct vhd_header *h, char *out, size_t outcap);

/* Locator data: W2ru/W2ku are the path in UTF-16LE, MacX "file://" + the
 * path in UTF-8 (written unescaped, as tapdisk does, and read back
 * unescaped).  Decoding W2ru/W2ku turns '\' into '/', since Windows
 * writers use it as the separator.  outlen gets the encoded byte count. */
int vhd_locator_encode(uint32_t code, const char *path, uint8_t *out, size_t outcap,
		       size_t *outlen, char *msg, size_t msglen);
int vhd_locator_decode(uint32_t code, const uint8_t *data, size_t len, char *out,
		       size_t outcap, char *msg, size_t msglen);
/* Bytes reserved for a locator's data: the spec says data_space counts
 * sectors, Windows writes bytes.  Below 512 it is sectors, a multiple of
 * 512 bytes, anything else is invalid (0). */
uint64_t vhd_locator_space(const struct vhd_locator *l);

/* Unix time <-> VHD time, clamped to what a uint32 since 2000 holds. */
uint32_t vhd_time_from_unix(int64_t t);
int64_t vhd_time_to_unix(uint32_t t);

#endif
