/* struct tiocb: one prepared I/O handed to the queue.
 *
 * The caller owns the memory of a tiocb (it is usually embedded in a
 * request) and must not touch it between tq_queue() and its done callback.
 * The callback runs on the main thread, without the queue lock, exactly
 * once, with res = bytes transferred (READ/WRITE: always the full length),
 * 0 (FLUSH), the call's return value (CALL), or a negative errno. */
#ifndef VD_TIOCB_H
#define VD_TIOCB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum tiocb_op {
	TIOCB_READ,
	TIOCB_WRITE,
	TIOCB_FLUSH,	/* fdatasync: IOCB_CMD_FDSYNC when the kernel takes it,
			 * else fdatasync(2) on the worker thread */
	TIOCB_CALL,	/* t->call(t) on the worker thread: for calls that can
			 * block (fallocate, ioctl, lseek) */
};

enum tiocb_flags {
	TIOCB_FUA = 1u << 0,	 /* write through: RWF_DSYNC, else write+flush */
	TIOCB_NOMERGE = 1u << 1, /* never coalesce this one */
};

struct tiocb;
typedef void tiocb_done_fn(struct tiocb *t, long res);
typedef long tiocb_call_fn(struct tiocb *t);

struct tiocb {
	/* Filled by tiocb_prep_*(). */
	enum tiocb_op op;
	unsigned flags;
	int fd;
	const struct iovec *iov;
	int iovcnt;
	uint64_t offset;
	size_t len;		/* sum of iov lengths */
	tiocb_call_fn *call;
	tiocb_done_fn *done;
	void *data;		/* the caller's */

	/* Queue private. */
	struct tiocb *next;
	long res;
	unsigned retries;
	unsigned char fua_stage; /* write+flush emulation of FUA */
	uint64_t queued_ns;	/* tq_queue (main thread) */
	uint64_t taken_ns;	/* the submit thread put it in a batch */
	struct iovec iov1;	/* storage for single-buffer requests */
};

void tiocb_prep_readv(struct tiocb *t, int fd, const struct iovec *iov, int iovcnt,
		      uint64_t offset, tiocb_done_fn *done, void *data);
void tiocb_prep_writev(struct tiocb *t, int fd, const struct iovec *iov, int iovcnt,
		       uint64_t offset, tiocb_done_fn *done, void *data);
void tiocb_prep_read(struct tiocb *t, int fd, void *buf, size_t len,
		     uint64_t offset, tiocb_done_fn *done, void *data);
void tiocb_prep_write(struct tiocb *t, int fd, const void *buf, size_t len,
		      uint64_t offset, tiocb_done_fn *done, void *data);
void tiocb_prep_flush(struct tiocb *t, int fd, tiocb_done_fn *done, void *data);
void tiocb_prep_call(struct tiocb *t, tiocb_call_fn *call, tiocb_done_fn *done,
		     void *data);

#endif
