/* Limit groups: one set of buckets in a shared-memory file, one robust
 * mutex, one slot per member process (see throttle-group.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errmsg.h"
#include "core/throttle-group-shm.h"
#include "core/throttle-group.h"
#include "core/throttle-member.h"

struct thr_group {
	struct thr_group_seg *seg;
	int fd;
	int slot;
	struct thr_member self;
};

static bool name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > THR_GROUP_NAME_MAX || name[0] == '.')
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789_.-") == n;
}

/* A member that died holding the lock may have been anywhere in an
 * update: the limits in force are whole (see cur), the levels may not
 * be, so they are brought back within their capacities. */
static void seg_repair(struct thr_group_seg *seg)
{
	const struct thr_limits *l = &seg->lim[atomic_load(&seg->cur) & 1];

	thr_clamp(&seg->st, l);
	atomic_store(&seg->active, thr_active(l));
}

static int seg_lock(struct thr_group_seg *seg)
{
	int r = pthread_mutex_lock(&seg->lock);

	if (r == EOWNERDEAD) {
		seg_repair(seg);
		r = pthread_mutex_consistent(&seg->lock);
		if (r)
			pthread_mutex_unlock(&seg->lock);
	}
	return -r;
}

static void seg_unlock(struct thr_group_seg *seg)
{
	pthread_mutex_unlock(&seg->lock);
}

static const struct thr_limits *seg_limits(struct thr_group_seg *seg)
{
	return &seg->lim[atomic_load_explicit(&seg->cur, memory_order_relaxed) & 1];
}

/* Under the lock: frees the slots of members that are gone; returns the
 * number of live ones. */
static int seg_reap(struct thr_group_seg *seg)
{
	int live = 0;

	for (int i = 0; i < THR_GROUP_MAX_MEMBERS; i++) {
		struct thr_group_slot *s = &seg->slot[i];
		struct thr_member m = { .pid = s->pid, .start = s->start };

		if (!s->pid)
			continue;
		if (thr_member_alive(&m))
			live++;
		else
			*s = (struct thr_group_slot){ 0 };
	}
	return live;
}

/* Builds a segment in a temporary file and links it in under path, so
 * that nobody ever sees a half-initialised one.  -EEXIST: another
 * process got there first (use theirs). */
static int seg_create(const char *dir, const char *name, const char *path,
		      char *msg, size_t msglen)
{
	char tmp[4096];
	struct thr_group_seg *seg = MAP_FAILED;
	pthread_mutexattr_t attr;
	int fd = -1, err, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.limit-group-%s.shm.XXXXXX",
			     dir, name) >= sizeof(tmp))
		return vd_errmsg(msg, msglen, -ENAMETOOLONG, "%s: path too long", dir);
	fd = mkostemp(tmp, O_CLOEXEC);		/* O_EXCL, mode 0600 */
	if (fd < 0)
		return vd_errmsg(msg, msglen, -errno, "create %s: %s", tmp, strerror(errno));
	if (ftruncate(fd, sizeof(*seg)) < 0) {
		err = vd_errmsg(msg, msglen, -errno, "%s: ftruncate: %s", tmp, strerror(errno));
		goto err;
	}
	seg = mmap(NULL, sizeof(*seg), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (seg == MAP_FAILED) {
		err = vd_errmsg(msg, msglen, -errno, "%s: mmap: %s", tmp, strerror(errno));
		goto err;
	}
	/* the file is all zeros: no limits, empty buckets, free slots */
	seg->version = THR_GROUP_VERSION;
	seg->seg_size = sizeof(*seg);
	seg->nr_slots = THR_GROUP_MAX_MEMBERS;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	r = pthread_mutex_init(&seg->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (r) {
		err = vd_errmsg(msg, msglen, -r, "%s: mutex: %s", tmp, strerror(r));
		goto err;
	}
	seg->magic = THR_GROUP_MAGIC;
	if (link(tmp, path) < 0) {
		err = -errno;
		if (err != -EEXIST)
			vd_errmsg(msg, msglen, err, "link %s: %s", path, strerror(errno));
		goto err;
	}
	err = 0;
err:
	if (seg != MAP_FAILED)
		munmap(seg, sizeof(*seg));
	unlink(tmp);
	close(fd);
	return err;
}

/* Checks that fd is a segment of this version that we may trust. */
static int seg_check(int fd, const char *path, char *msg, size_t msglen)
{
	struct thr_group_seg hdr;
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return vd_errmsg(msg, msglen, -errno, "%s: fstat: %s", path, strerror(errno));
	/* another user's lock word could stop our disk: trust only ours */
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
		return vd_errmsg(msg, msglen, -EPROTO, "%s: not a regular file owned by uid %u",
			    path, (unsigned)geteuid());
	n = pread(fd, &hdr, offsetof(struct thr_group_seg, active), 0);
	if (n < 0)
		return vd_errmsg(msg, msglen, -errno, "%s: read: %s", path, strerror(errno));
	if ((size_t)n < offsetof(struct thr_group_seg, active) || hdr.magic != THR_GROUP_MAGIC)
		return vd_errmsg(msg, msglen, -EPROTO, "%s: not a vdiskd limit-group segment",
			    path);
	if (hdr.version != THR_GROUP_VERSION)
		return vd_errmsg(msg, msglen, -EPROTO, "%s: segment version %u, this vdiskd uses %u",
			    path, hdr.version, THR_GROUP_VERSION);
	if (hdr.seg_size != sizeof(hdr) || st.st_size != (off_t)sizeof(hdr) ||
	    hdr.nr_slots != THR_GROUP_MAX_MEMBERS)
		return vd_errmsg(msg, msglen, -EPROTO,
			    "%s: segment of %lld bytes (header: %u, %u slots), this "
			    "vdiskd uses %zu bytes, %u slots", path, (long long)st.st_size,
			    hdr.seg_size, hdr.nr_slots, sizeof(hdr),
			    (unsigned)THR_GROUP_MAX_MEMBERS);
	return 0;
}

/* Opens path, creating the segment when there is none. */
static int seg_open(const char *dir, const char *name, const char *path,
		    char *msg, size_t msglen)
{
	for (int tries = 0; tries < 8; tries++) {
		int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		int err;

		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			return vd_errmsg(msg, msglen, -errno, "open %s: %s", path, strerror(errno));
		err = seg_create(dir, name, path, msg, msglen);
		if (err && err != -EEXIST)
			return err;
	}
	/* created and removed under us, again and again */
	return vd_errmsg(msg, msglen, -EAGAIN, "open %s: keeps disappearing", path);
}

/* Takes a slot; the only live member sets the group's limits. */
static int seg_join(struct thr_group *g, const struct thr_limits *initial,
		    const char *path, char *msg, size_t msglen)
{
	struct thr_group_seg *seg = g->seg;
	int err = seg_lock(seg);

	if (err)
		return vd_errmsg(msg, msglen, err, "%s: lock: %s", path, strerror(-err));
	if (seg_reap(seg) == 0 && initial) {
		uint32_t next = (atomic_load(&seg->cur) & 1) ^ 1;

		seg->lim[next] = *initial;
		thr_init(&seg->st);
		atomic_store_explicit(&seg->cur, next, memory_order_release);
		atomic_store(&seg->active, thr_active(initial));
	}
	g->slot = -1;
	for (int i = 0; i < THR_GROUP_MAX_MEMBERS && g->slot < 0; i++) {
		if (seg->slot[i].pid)
			continue;
		seg->slot[i] = (struct thr_group_slot){ .pid = g->self.pid,
							.start = g->self.start };
		g->slot = i;
	}
	seg_unlock(seg);
	if (g->slot < 0)
		return vd_errmsg(msg, msglen, -EUSERS, "%s: group is full (%d live members)",
			    path, THR_GROUP_MAX_MEMBERS);
	return 0;
}

int thr_group_open(const char *dir, const char *name,
		   const struct thr_limits *initial, struct thr_group **out,
		   char *msg, size_t msglen)
{
	char path[4096];
	struct thr_group *g;
	void *p;
	int err;

	*out = NULL;
	if (!dir || !name_ok(name))
		return vd_errmsg(msg, msglen, -EINVAL, "bad limit group name \"%.64s\" (want 1-%d "
			    "of A-Z a-z 0-9 _ . -, not starting with '.')",
			    name ? name : "", THR_GROUP_NAME_MAX);
	if (initial && (err = thr_limits_check(initial, msg, msglen)))
		return err;
	if ((size_t)snprintf(path, sizeof(path), "%s/limit-group-%s.shm", dir, name) >=
	    sizeof(path))
		return vd_errmsg(msg, msglen, -ENAMETOOLONG, "%s: path too long", dir);
	g = calloc(1, sizeof(*g));
	if (!g)
		return vd_errmsg(msg, msglen, -ENOMEM, "limit group %s: out of memory", name);
	g->fd = seg_open(dir, name, path, msg, msglen);
	if (g->fd < 0) {
		err = g->fd;
		goto err_free;
	}
	err = seg_check(g->fd, path, msg, msglen);
	if (err)
		goto err_close;
	p = mmap(NULL, sizeof(*g->seg), PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	if (p == MAP_FAILED) {
		err = vd_errmsg(msg, msglen, -errno, "%s: mmap: %s", path, strerror(errno));
		goto err_close;
	}
	g->seg = p;
	thr_member_self(&g->self);
	err = seg_join(g, initial, path, msg, msglen);
	if (err)
		goto err_unmap;
	*out = g;
	return 0;
err_unmap:
	munmap(g->seg, sizeof(*g->seg));
err_close:
	close(g->fd);
err_free:
	free(g);
	return err;
}

void thr_group_close(struct thr_group *g)
{
	struct thr_group_slot *s;

	if (!g)
		return;
	s = &g->seg->slot[g->slot];
	if (seg_lock(g->seg) == 0) {
		if (s->pid == g->self.pid && s->start == g->self.start)
			*s = (struct thr_group_slot){ 0 };
		seg_unlock(g->seg);
	}
	munmap(g->seg, sizeof(*g->seg));
	close(g->fd);
	free(g);
}

uint64_t thr_group_admit(struct thr_group *g, enum thr_op op, uint64_t bytes,
			 uint64_t now_ns)
{
	struct thr_group_seg *seg = g->seg;
	uint64_t wait;

	if (op == THR_OP_FLUSH ||
	    !atomic_load_explicit(&seg->active, memory_order_acquire))
		return 0;
	if (seg_lock(seg))
		return 0;
	wait = thr_admit(&seg->st, seg_limits(seg), op, bytes, now_ns);
	seg_unlock(seg);
	return wait;
}

int thr_group_get_limits(struct thr_group *g, struct thr_limits *out)
{
	int err = seg_lock(g->seg);

	if (err)
		return err;
	*out = *seg_limits(g->seg);
	seg_unlock(g->seg);
	return 0;
}

int thr_group_set_limits(struct thr_group *g, const struct thr_limits *lim,
			 uint64_t now_ns, char *msg, size_t msglen)
{
	struct thr_group_seg *seg = g->seg;
	uint32_t cur;
	int err = thr_limits_check(lim, msg, msglen);

	if (err)
		return err;
	err = seg_lock(seg);
	if (err)
		return vd_errmsg(msg, msglen, err, "limit group: lock: %s", strerror(-err));
	cur = atomic_load(&seg->cur) & 1;
	seg->lim[cur ^ 1] = *lim;
	thr_set_limits(&seg->st, &seg->lim[cur], lim, now_ns);
	atomic_store_explicit(&seg->cur, cur ^ 1, memory_order_release);
	atomic_store(&seg->active, thr_active(lim));
	seg_unlock(seg);
	return 0;
}

int thr_group_members(struct thr_group *g)
{
	int live, err = seg_lock(g->seg);

	if (err)
		return err;
	live = seg_reap(g->seg);
	seg_unlock(g->seg);
	return live;
}
