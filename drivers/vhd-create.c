/* Creating VHD images; see drivers/vhd-create.h for the layout and the
 * choices.  Every image is checked with the reader's own validation
 * before a byte is written, so creation cannot make what open refuses. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "common/fileio.h"
#include "drivers/vhd-create.h"
#include "drivers/vhd-int.h"
#include "drivers/vhd-probe.h"

#define MSG_LEN 256
#define LOC_MAX (2 * PATH_MAX + 16)	/* a path in UTF-16 is at most twice its UTF-8 */

struct parent_info {
	uint64_t size;
	uint8_t uuid[16];
	uint32_t timestamp;
	char abs[PATH_MAX];
	char rel[PATH_MAX];
};

/* What one creation needs beyond the stack's comfort (about 40 KiB). */
struct create_job {
	struct parent_info pi;
	uint8_t loc[3][LOC_MAX];	/* W2ru, W2ku, MacX data */
	size_t loclen[3];
	char why[MSG_LEN];
};

int vhd_relative_path(const char *from, const char *to, char *out, size_t outcap)
{
	const char *f = from, *t = to;
	size_t o = 0;
	int ups = 0;

	/* Drop the leading directories both share (never to's last
	 * component: that is the file itself). */
	for (;;) {
		size_t fl, tl;

		while (*f == '/')
			f++;
		while (*t == '/')
			t++;
		fl = strcspn(f, "/");
		tl = strcspn(t, "/");
		if (!fl || fl != tl || memcmp(f, t, fl) || !t[tl])
			break;
		f += fl;
		t += tl;
	}
	for (; *f; f += strcspn(f, "/")) {
		while (*f == '/')
			f++;
		if (*f)
			ups++;
	}
	if (ups == 0) {
		if (outcap < 3)
			return -ENAMETOOLONG;
		memcpy(out, "./", 2);
		o = 2;
	}
	for (; ups > 0; ups--, o += 3) {
		if (outcap - o < 4)
			return -ENAMETOOLONG;
		memcpy(out + o, "../", 3);
	}
	if (strlen(t) >= outcap - o)
		return -ENAMETOOLONG;
	strcpy(out + o, t);
	return 0;
}

/* The parent's size and identity, and its paths as the locators hold them. */
static int parent_info(const char *child, const char *parent, struct parent_info *pi,
		       char *msg, size_t msglen)
{
	struct vhd_image_meta meta;
	uint8_t last[VHD_FOOTER_SIZE], first[VHD_FOOTER_SIZE];
	char dir[PATH_MAX], dirabs[PATH_MAX], why[MSG_LEN];
	struct stat st;
	off_t size;
	int fd, err;

	if (!realpath(parent, pi->abs))
		return vd_errmsg(msg, msglen, -errno, "parent %s: %s", parent, strerror(errno));
	if (strlen(child) >= sizeof(dir))
		return vd_errmsg(msg, msglen, -ENAMETOOLONG, "path too long");
	strcpy(dir, child);
	if (!realpath(dirname(dir), dirabs))
		return vd_errmsg(msg, msglen, -errno, "directory: %s", strerror(errno));
	if (vhd_relative_path(dirabs, pi->abs, pi->rel, sizeof(pi->rel)))
		return vd_errmsg(msg, msglen, -ENAMETOOLONG, "parent %s: relative path too long",
			       parent);
	fd = open(pi->abs, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vd_errmsg(msg, msglen, -errno, "parent %s: open: %s", parent, strerror(errno));
	size = lseek(fd, 0, SEEK_END);
	err = fstat(fd, &st) || size < 0 ? -errno : 0;
	if (err) {
		close(fd);
		return vd_errmsg(msg, msglen, err, "parent %s: %s", parent, strerror(-err));
	}
	pi->timestamp = vhd_time_from_unix(st.st_mtime);
	memset(pi->uuid, 0, sizeof(pi->uuid));
	/* Whatever looks like a VHD must be one; the rest is a raw parent. */
	if (size >= VHD_FOOTER_SIZE &&
	    !vd_pread_all(fd, last, sizeof(last), (uint64_t)size - VHD_FOOTER_SIZE) &&
	    !vd_pread_all(fd, first, sizeof(first), 0) &&
	    (vhd_detect_footer(last) || vhd_detect_footer(first))) {
		err = vhd_probe_fd(fd, parent, &meta, why, sizeof(why));
		close(fd);
		if (err)
			return vd_errmsg(msg, msglen, err, "parent %s", why);
		pi->size = meta.disk_size;
		memcpy(pi->uuid, meta.footer.uuid, 16);
		return 0;
	}
	close(fd);
	if (size == 0 || size % VHD_SECTOR_SIZE)
		return vd_errmsg(msg, msglen, -EINVAL, "raw parent %s: size %lld is not a"
			       " non-zero multiple of 512", parent, (long long)size);
	pi->size = (uint64_t)size;
	return 0;
}

static void init_footer(struct vhd_footer *f, uint64_t size, enum vhd_type type)
{
	memset(f, 0, sizeof(*f));
	f->features = VHD_FEATURES;
	f->version = VHD_VERSION;
	f->data_offset = type == VHD_TYPE_FIXED ? VHD_NO_OFFSET : VHD_FOOTER_SIZE;
	f->timestamp = vhd_time_from_unix(time(NULL));
	memcpy(f->creator_app, "tap", 4);
	f->creator_version = 0x00010000;
	memcpy(f->creator_os, "Lnux", 4);
	f->original_size = size;
	f->current_size = size;
	vhd_geometry_from_size(size, &f->geometry);
	f->type = type;
	uuid_generate(f->uuid);
}

/* Header and locators (encoded into loc[], lengths in loclen[]); returns
 * the footer's offset through *end. */
static int init_header(struct vhd_header *h, const struct vhd_footer *f, uint32_t block_size,
		       const struct parent_info *pi, uint8_t loc[3][LOC_MAX],
		       size_t loclen[3], uint64_t *end, char *msg, size_t msglen)
{
	static const uint32_t codes[3] = { VHD_PLAT_W2RU, VHD_PLAT_W2KU, VHD_PLAT_MACX };
	uint64_t entries = f->current_size / block_size + (f->current_size % block_size != 0);
	uint64_t off;
	int err;

	memset(h, 0, sizeof(*h));
	h->data_offset = VHD_NO_OFFSET;
	h->table_offset = VHD_FOOTER_SIZE + VHD_HEADER_SIZE;
	h->version = VHD_VERSION;
	h->max_table_entries = entries > UINT32_MAX ? UINT32_MAX : (uint32_t)entries;
	h->block_size = block_size;
	err = vhd_header_validate(h, f, msg, msglen);
	if (err)
		return err;
	/* Locators go before the BAT: qemu opens a differencing image as a
	 * dynamic one and puts new blocks right after the BAT, over anything
	 * that lies there. */
	off = VHD_FOOTER_SIZE + VHD_HEADER_SIZE;
	if (pi) {
		const char *base = strrchr(pi->abs, '/') + 1;

		memcpy(h->parent_uuid, pi->uuid, 16);
		h->parent_timestamp = pi->timestamp;
		if (vhd_header_set_parent_name(h, base))
			return vd_errmsg(msg, msglen, -EINVAL, "parent name %s is not valid UTF-8"
				       " or too long", base);
		for (int i = 0; i < 3; i++) {
			const char *p = i == 0 ? pi->rel : pi->abs;
			uint64_t space;

			err = vhd_locator_encode(codes[i], p, loc[i], LOC_MAX, &loclen[i],
						 msg, msglen);
			if (err)
				return err;
			space = (loclen[i] + 511) & ~(uint64_t)511;
			h->loc[i] = (struct vhd_locator){
				.code = codes[i], .data_space = (uint32_t)space,
				.data_length = (uint32_t)loclen[i], .data_offset = off,
			};
			off += space;
		}
	}
	h->table_offset = off;
	*end = off + vhd_bat_bytes(h->max_table_entries);
	err = vhd_header_validate(h, f, msg, msglen);
	return err ? err : vhd_layout_validate(f, h, *end, NULL, msg, msglen);
}

static int write_ff(int fd, uint64_t off, uint64_t len)
{
	uint8_t buf[65536];
	int err = 0;

	memset(buf, 0xff, sizeof(buf));
	while (len && !err) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);

		err = vd_pwrite_all(fd, buf, n, off);
		off += n, len -= n;
	}
	return err;
}

static int write_image(int fd, const struct vhd_footer *f, const struct vhd_header *h,
		       uint8_t loc[3][LOC_MAX], const size_t loclen[3], uint64_t end)
{
	uint8_t ftr[VHD_FOOTER_SIZE], hdr[VHD_HEADER_SIZE];
	int err;

	vhd_footer_encode(f, ftr);
	if (f->type == VHD_TYPE_FIXED) {
		if (ftruncate(fd, (off_t)f->current_size) < 0)
			return -errno;
		return vd_pwrite_all(fd, ftr, sizeof(ftr), f->current_size);
	}
	vhd_header_encode(h, hdr);
	err = vd_pwrite_all(fd, ftr, sizeof(ftr), 0);
	if (!err)
		err = vd_pwrite_all(fd, hdr, sizeof(hdr), f->data_offset);
	if (!err)
		err = write_ff(fd, h->table_offset, vhd_bat_bytes(h->max_table_entries));
	for (int i = 0; i < 3 && !err && f->type == VHD_TYPE_DIFF; i++)
		err = vd_pwrite_all(fd, loc[i], loclen[i], h->loc[i].data_offset);
	/* The locators' padding past data_length is a hole: zeros. */
	if (!err)
		err = vd_pwrite_all(fd, ftr, sizeof(ftr), end);
	return err;
}

static int sync_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd, err = 0;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

int vhd_create(const char *path, uint64_t size, enum vhd_type type, uint32_t block_size,
	       const char *parent, char *msg, size_t msglen)
{
	struct create_job *job;
	struct vhd_footer f;
	struct vhd_header h;
	uint64_t end = 0;
	int fd, err;

	if (type != VHD_TYPE_FIXED && type != VHD_TYPE_DYNAMIC && type != VHD_TYPE_DIFF)
		return vd_errmsg(msg, msglen, -EINVAL, "%s: unknown disk type %d", path, type);
	if ((type == VHD_TYPE_DIFF) != (parent != NULL))
		return vd_errmsg(msg, msglen, -EINVAL, "%s: a parent is needed for, and only"
			       " for, a differencing image", path);
	job = calloc(1, sizeof(*job));
	if (!job)
		return vd_errmsg(msg, msglen, -ENOMEM, "%s: out of memory", path);
	if (type == VHD_TYPE_DIFF) {
		err = parent_info(path, parent, &job->pi, job->why, sizeof(job->why));
		if (err)
			goto err;
		if (size && size != job->pi.size) {
			err = vd_errmsg(job->why, sizeof(job->why), -EINVAL, "size %" PRIu64
				      " differs from the parent's %" PRIu64, size, job->pi.size);
			goto err;
		}
		size = job->pi.size;
	}
	init_footer(&f, size, type);
	err = vhd_footer_validate(&f, job->why, sizeof(job->why));
	if (!err && type != VHD_TYPE_FIXED)
		err = init_header(&h, &f, block_size ? block_size : VHD_BLOCK_DEFAULT,
				  type == VHD_TYPE_DIFF ? &job->pi : NULL, job->loc, job->loclen,
				  &end, job->why, sizeof(job->why));
	if (err)
		goto err;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = vd_errmsg(job->why, sizeof(job->why), -errno, "create: %s", strerror(errno));
		goto err;
	}
	err = write_image(fd, &f, &h, job->loc, job->loclen, end);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err)
		err = sync_dir(path);
	if (err) {
		/* Nothing half-made stays behind under the name. */
		unlink(path);
		vd_errmsg(job->why, sizeof(job->why), err, "writing: %s", strerror(-err));
		goto err;
	}
	free(job);
	return 0;
err:
	vd_errmsg(msg, msglen, err, "%s: %s", path, job->why);
	free(job);
	return err;
}
