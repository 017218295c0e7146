/* Limit groups: disks served by separate vdiskd processes on one host
 * sharing one set of buckets (see throttle.h for the buckets).
 *
 * A group is a small shared-memory file DIR/limit-group-NAME.shm (DIR is
 * the caller's $RUNDIR), mapped MAP_SHARED by every member.  It holds the
 * group's limits, its bucket state and a table of THR_GROUP_MAX_MEMBERS
 * member slots, under one process-shared robust mutex.  The first member
 * creates it (fully initialised before it appears under its name, so two
 * processes starting at once end up in the same group).  The file is
 * never removed by a member: removing it while others have it mapped
 * would let a newcomer create a second, separate group.  It lives on
 * $RUNDIR (tmpfs) and goes with it.
 *
 * A member killed with SIGKILL leaves no trace that matters: a lock it
 * held is recovered by the next member (EOWNERDEAD; the levels are then
 * clamped, and the limits in force are always a complete copy), and its
 * slot is reaped (pid gone, zombie, or reused: /proc start time differs)
 * when a member joins or counts the members.  Members must share a pid
 * namespace for that check.  A thr_group must not be used across fork();
 * the child opens its own.
 */
#ifndef VD_THROTTLE_GROUP_H
#define VD_THROTTLE_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "core/throttle.h"

enum {
	THR_GROUP_MAX_MEMBERS = 64,
	THR_GROUP_NAME_MAX = 64,	/* [A-Za-z0-9_.-], not starting with '.' */
};

struct thr_group;

/* Joins group `name` under dir, creating it if needed.  When the caller
 * is the only live member, initial (if not NULL) becomes the group's
 * limits with empty buckets; otherwise the group's limits stay as they
 * are (see thr_group_get_limits) and initial is ignored.  Errors: -EINVAL
 * (bad name or initial), -EUSERS (all slots taken by live members),
 * -EPROTO (a file that is not a group segment of this version, or owned
 * by another user), or an errno from the file system, with a message. */
int thr_group_open(const char *dir, const char *name,
		   const struct thr_limits *initial, struct thr_group **out,
		   char *msg, size_t msglen);

/* Leaves the group (frees the slot) and unmaps it.  NULL is a no-op. */
void thr_group_close(struct thr_group *g);

/* As thr_admit, against the group's shared buckets: 0 = go (charged),
 * else ns to wait.  now_ns must be CLOCK_MONOTONIC (one clock for all
 * members).  With no limits in the group it takes no lock.  Should the
 * lock be unusable it admits: a broken limit must not stop a disk. */
uint64_t thr_group_admit(struct thr_group *g, enum thr_op op, uint64_t bytes,
			 uint64_t now_ns);

/* The limits in force; 0 or a negative errno. */
int thr_group_get_limits(struct thr_group *g, struct thr_limits *out);

/* Changes the group's limits for every member (they see it on their next
 * admit); checked first (thr_limits_check).  0 or a negative errno. */
int thr_group_set_limits(struct thr_group *g, const struct thr_limits *lim,
			 uint64_t now_ns, char *msg, size_t msglen);

/* Live members (stale slots are reaped first), or a negative errno. */
int thr_group_members(struct thr_group *g);

#endif
