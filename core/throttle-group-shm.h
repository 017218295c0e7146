/* The layout of a limit-group segment (throttle-group.c).  Only that file
 * and the tests (which corrupt segments and crash inside the lock on
 * purpose) include this.  Any change to it bumps THR_GROUP_VERSION. */
#ifndef VD_THROTTLE_GROUP_SHM_H
#define VD_THROTTLE_GROUP_SHM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/throttle-group.h"
#include "core/throttle.h"

#define THR_GROUP_MAGIC 0x5052474c52485456ull	/* "VTHRLGRP" little-endian */
#define THR_GROUP_VERSION 1u

struct thr_group_slot {
	int32_t pid;		/* 0: free */
	uint32_t pad;
	uint64_t start;		/* /proc/PID/stat start time; 0 if unknown */
};

struct thr_group_seg {
	uint64_t magic;
	uint32_t version;
	uint32_t seg_size;	/* sizeof(struct thr_group_seg): another build's
				 * pthread_mutex_t or layout does not match */
	uint32_t nr_slots;
	/* thr_active(lim[cur]), kept beside the lock so that a group with
	 * no limits costs its members no lock */
	_Atomic uint32_t active;
	pthread_mutex_t lock;	/* robust, process-shared */

	/* Under the lock.  A change writes lim[cur ^ 1], then flips cur, so
	 * that a member killed in the middle never leaves a half-written
	 * set of limits in force (the release store of cur orders it after
	 * the copy). */
	_Atomic uint32_t cur;
	uint32_t pad;
	struct thr_limits lim[2];
	struct thr_state st;
	struct thr_group_slot slot[THR_GROUP_MAX_MEMBERS];
};

#endif
