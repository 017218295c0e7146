/* Who is a live member of a limit group: a process named by its pid and
 * its start time, so that a pid reused by another process after a crash
 * is not taken for the member (throttle-group.c). */
#ifndef VD_THROTTLE_MEMBER_H
#define VD_THROTTLE_MEMBER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct thr_member {
	pid_t pid;
	uint64_t start;		/* /proc/PID/stat field 22 (clock ticks since
				 * boot); 0 when /proc could not tell */
};

/* The calling process. */
void thr_member_self(struct thr_member *m);

/* False when m is certainly gone: no such pid, a zombie, or a pid that
 * now belongs to a process started at another time.  True otherwise
 * (including when /proc is not mounted and the pid exists). */
bool thr_member_alive(const struct thr_member *m);

/* Reads state (field 3) and start time (field 22) of /proc/PID/stat:
 * 0 or a negative errno (-ENOENT: no such process). */
int thr_member_stat(pid_t pid, char *state, uint64_t *start);

#endif
