/* Liveness of limit-group members through kill(pid, 0) and /proc. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/throttle-member.h"

int thr_member_stat(pid_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	char *p, *end;
	ssize_t n;
	int fd, err;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	err = n < 0 ? -errno : 0;
	close(fd);
	if (err)
		return err == -ESRCH ? -ENOENT : err;	/* exited while reading */
	buf[n] = '\0';
	/* "PID (COMM) S ...": COMM may hold blanks and ')', so find the last */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -EPROTO;
	p += 2;
	*state = *p;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EPROTO;
		p++;
	}
	errno = 0;
	*start = strtoull(p, &end, 10);
	if (errno || end == p)
		return -EPROTO;
	return 0;
}

void thr_member_self(struct thr_member *m)
{
	char state;

	m->pid = getpid();
	if (thr_member_stat(m->pid, &state, &m->start))
		m->start = 0;
}

bool thr_member_alive(const struct thr_member *m)
{
	uint64_t start;
	char state;
	int err;

	if (m->pid <= 0)
		return false;
	if (kill(m->pid, 0) < 0 && errno == ESRCH)
		return false;
	err = thr_member_stat(m->pid, &state, &start);
	if (err == -ENOENT)
		return false;
	if (err)
		return true;	/* no /proc: the pid exists, trust it */
	/* killed but not yet reaped by its parent: it will never unlock */
	if (state == 'Z' || state == 'X')
		return false;
	return !m->start || start == m->start;
}
