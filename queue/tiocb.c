/* Preparing tiocbs. */
#include <string.h>

#include "queue/tiocb.h"

static void tiocb_init(struct tiocb *t, enum tiocb_op op, int fd,
		       tiocb_done_fn *done, void *data)
{
	t->op = op;
	t->flags = 0;
	t->fd = fd;
	t->iov = NULL;
	t->iovcnt = 0;
	t->offset = 0;
	t->len = 0;
	t->call = NULL;
	t->done = done;
	t->data = data;
	t->next = NULL;
	t->res = 0;
	t->retries = 0;
	t->fua_stage = 0;
}

static void tiocb_set_iov(struct tiocb *t, const struct iovec *iov, int iovcnt,
			  uint64_t offset)
{
	size_t len = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	t->iov = iov;
	t->iovcnt = iovcnt;
	t->offset = offset;
	t->len = len;
}

void tiocb_prep_readv(struct tiocb *t, int fd, const struct iovec *iov, int iovcnt,
		      uint64_t offset, tiocb_done_fn *done, void *data)
{
	tiocb_init(t, TIOCB_READ, fd, done, data);
	tiocb_set_iov(t, iov, iovcnt, offset);
}

void tiocb_prep_writev(struct tiocb *t, int fd, const struct iovec *iov, int iovcnt,
		       uint64_t offset, tiocb_done_fn *done, void *data)
{
	tiocb_init(t, TIOCB_WRITE, fd, done, data);
	tiocb_set_iov(t, iov, iovcnt, offset);
}

void tiocb_prep_read(struct tiocb *t, int fd, void *buf, size_t len,
		     uint64_t offset, tiocb_done_fn *done, void *data)
{
	tiocb_init(t, TIOCB_READ, fd, done, data);
	t->iov1.iov_base = buf;
	t->iov1.iov_len = len;
	tiocb_set_iov(t, &t->iov1, 1, offset);
}

void tiocb_prep_write(struct tiocb *t, int fd, const void *buf, size_t len,
		      uint64_t offset, tiocb_done_fn *done, void *data)
{
	tiocb_init(t, TIOCB_WRITE, fd, done, data);
	t->iov1.iov_base = (void *)buf;
	t->iov1.iov_len = len;
	tiocb_set_iov(t, &t->iov1, 1, offset);
}

void tiocb_prep_flush(struct tiocb *t, int fd, tiocb_done_fn *done, void *data)
{
	tiocb_init(t, TIOCB_FLUSH, fd, done, data);
}

void tiocb_prep_call(struct tiocb *t, tiocb_call_fn *call, tiocb_done_fn *done,
		     void *data)
{
	tiocb_init(t, TIOCB_CALL, -1, done, data);
	t->call = call;
}
