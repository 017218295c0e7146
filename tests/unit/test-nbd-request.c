/* Request decoding and validation, reply encoding, extents and error
 * mapping of the NBD frontend. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/vbd.h"
#include "frontends/nbd-proto.h"
#include "frontends/nbd-reply.h"
#include "frontends/nbd-request.h"
#include "tests/lib/test.h"

#define MiB (1024 * 1024)

static const struct nbd_caps rw = {
	.size = 64 * MiB,
	.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO |
		NBD_FLAG_SEND_DF | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE,
	.structured = true,
	.meta_base_allocation = true,
	.max_payload = 32 * MiB,
};

static uint32_t check(const struct nbd_caps *c, uint16_t type, uint16_t flags,
		      uint64_t offset, uint32_t len)
{
	struct nbd_request r = { .flags = flags, .type = type, .handle = 7,
				 .offset = offset, .len = len };
	const char *msg = NULL;
	uint32_t err = nbd_request_check(c, &r, &msg);

	/* Every refusal says why. */
	CHECK(err == 0 || msg != NULL);
	return err;
}

static void test_decode(void)
{
	uint8_t b[NBD_REQUEST_LEN];
	struct nbd_request r;

	nbd_put32(b, NBD_REQUEST_MAGIC);
	nbd_put16(b + 4, NBD_CMD_FLAG_FUA);
	nbd_put16(b + 6, NBD_CMD_WRITE);
	nbd_put64(b + 8, 0x1122334455667788ull);
	nbd_put64(b + 16, 4096);
	nbd_put32(b + 24, 512);
	CHECK_EQ(nbd_request_decode(b, &r), 0);
	CHECK_EQ(r.flags, NBD_CMD_FLAG_FUA);
	CHECK_EQ(r.type, NBD_CMD_WRITE);
	CHECK(r.handle == 0x1122334455667788ull);
	CHECK_EQ(r.offset, 4096);
	CHECK_EQ(r.len, 512);

	nbd_put32(b, NBD_REQUEST_MAGIC ^ 1);
	CHECK_EQ(nbd_request_decode(b, &r), -EPROTO);
	nbd_put32(b, NBD_SIMPLE_REPLY_MAGIC);
	CHECK_EQ(nbd_request_decode(b, &r), -EPROTO);
}

static void test_check(void)
{
	struct nbd_caps ro = rw, simple = rw, bare = rw;

	ro.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH |
		NBD_FLAG_SEND_DF | NBD_FLAG_SEND_CACHE;
	simple.structured = false;
	simple.meta_base_allocation = false;
	simple.tflags &= (uint16_t)~NBD_FLAG_SEND_DF;
	bare.tflags = NBD_FLAG_HAS_FLAGS;

	/* Good requests. */
	CHECK_EQ(check(&rw, NBD_CMD_READ, 0, 0, 4096), 0);
	CHECK_EQ(check(&rw, NBD_CMD_READ, 0, 64 * MiB - 1, 1), 0);
	CHECK_EQ(check(&rw, NBD_CMD_READ, NBD_CMD_FLAG_DF | NBD_CMD_FLAG_FUA, 0, 4096), 0);
	CHECK_EQ(check(&rw, NBD_CMD_READ, 0, 0, 32 * MiB), 0);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 512, 1), 0);
	CHECK_EQ(check(&rw, NBD_CMD_FLUSH, 0, 0, 0), 0);
	CHECK_EQ(check(&rw, NBD_CMD_TRIM, NBD_CMD_FLAG_FUA, 0, 64 * MiB), 0);
	CHECK_EQ(check(&rw, NBD_CMD_CACHE, 0, 0, 1 * MiB), 0);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 0, 4096), 0);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 0, 64 * MiB), 0);
	CHECK_EQ(check(&rw, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 64 * MiB), 0);

	/* Zero length, past the end, wrapping 2^64. */
	CHECK_EQ(check(&rw, NBD_CMD_READ, 0, 0, 0), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_TRIM, 0, 0, 0), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_READ, 0, 64 * MiB, 1), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_READ, 0, 64 * MiB - 4095, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_READ, 0, UINT64_MAX - 10, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_READ, 0, UINT64_MAX, 1), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE, 0, 64 * MiB, 512), NBD_ENOSPC);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE, 0, UINT64_MAX - 100, 4096), NBD_ENOSPC);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE_ZEROES, 0, 64 * MiB - 1, 2), NBD_ENOSPC);
	CHECK_EQ(check(&rw, NBD_CMD_TRIM, 0, 1, 64 * MiB), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_BLOCK_STATUS, 0, 64 * MiB, 1), NBD_EINVAL);

	/* Over the maximum payload: READ, WRITE, CACHE, slow WRITE_ZEROES. */
	CHECK_EQ(check(&rw, NBD_CMD_READ, 0, 0, 32 * MiB + 1), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE, 0, 0, 0xffffffff), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_CACHE, 0, 0, 33 * MiB), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE_ZEROES, 0, 0, 33 * MiB), NBD_EINVAL);

	/* Unknown commands and flags. */
	CHECK_EQ(check(&rw, 8, 0, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, 0xffff, 0, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_READ, 1u << 7, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_READ, 1u << 15, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_READ, NBD_CMD_FLAG_REQ_ONE, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_READ, NBD_CMD_FLAG_NO_HOLE, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE, NBD_CMD_FLAG_DF, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_TRIM, NBD_CMD_FLAG_FAST_ZERO, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_DF, 0, 4096), NBD_EINVAL);

	/* Flags and commands that were not negotiated. */
	CHECK_EQ(check(&simple, NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&simple, NBD_CMD_BLOCK_STATUS, 0, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&bare, NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&bare, NBD_CMD_FLUSH, 0, 0, 0), NBD_EINVAL);
	CHECK_EQ(check(&bare, NBD_CMD_TRIM, 0, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&bare, NBD_CMD_WRITE_ZEROES, 0, 0, 4096), NBD_EINVAL);
	CHECK_EQ(check(&bare, NBD_CMD_CACHE, 0, 0, 4096), NBD_EINVAL);
	{
		struct nbd_caps nofast = rw;

		nofast.tflags &= (uint16_t)~NBD_FLAG_SEND_FAST_ZERO;
		CHECK_EQ(check(&nofast, NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 0, 4096),
			 NBD_EINVAL);
	}

	/* FLUSH carries neither offset nor length. */
	CHECK_EQ(check(&rw, NBD_CMD_FLUSH, 0, 1, 0), NBD_EINVAL);
	CHECK_EQ(check(&rw, NBD_CMD_FLUSH, 0, 0, 1), NBD_EINVAL);

	/* Read-only: every write-type command is EPERM. */
	CHECK_EQ(check(&ro, NBD_CMD_READ, 0, 0, 4096), 0);
	CHECK_EQ(check(&ro, NBD_CMD_WRITE, 0, 0, 4096), NBD_EPERM);
	CHECK_EQ(check(&ro, NBD_CMD_TRIM, 0, 0, 4096), NBD_EPERM);
	CHECK_EQ(check(&ro, NBD_CMD_WRITE_ZEROES, 0, 0, 4096), NBD_EPERM);
	CHECK_EQ(check(&ro, NBD_CMD_FLUSH, 0, 0, 0), 0);
}

static void test_errno(void)
{
	CHECK_EQ(nbd_errno_to_wire(0), 0);
	CHECK_EQ(nbd_errno_to_wire(-EPERM), NBD_EPERM);
	CHECK_EQ(nbd_errno_to_wire(-EROFS), NBD_EPERM);
	CHECK_EQ(nbd_errno_to_wire(-EIO), NBD_EIO);
	CHECK_EQ(nbd_errno_to_wire(EIO), NBD_EIO);
	CHECK_EQ(nbd_errno_to_wire(-ENOMEM), NBD_ENOMEM);
	CHECK_EQ(nbd_errno_to_wire(-EINVAL), NBD_EINVAL);
	CHECK_EQ(nbd_errno_to_wire(-ENOSPC), NBD_ENOSPC);
	CHECK_EQ(nbd_errno_to_wire(-EDQUOT), NBD_ENOSPC);
	CHECK_EQ(nbd_errno_to_wire(-EFBIG), NBD_ENOSPC);
	CHECK_EQ(nbd_errno_to_wire(-EOVERFLOW), NBD_EOVERFLOW);
	CHECK_EQ(nbd_errno_to_wire(-ENOTSUP), NBD_ENOTSUP);
	CHECK_EQ(nbd_errno_to_wire(-EOPNOTSUPP), NBD_ENOTSUP);
	CHECK_EQ(nbd_errno_to_wire(-ESHUTDOWN), NBD_ESHUTDOWN);
	CHECK_EQ(nbd_errno_to_wire(-EBADF), NBD_EIO);
	CHECK_EQ(nbd_errno_to_wire(-ENODATA), NBD_EIO);
}

/* Flattens a reply's iovecs. */
static size_t flat(const struct nbd_reply *rp, uint8_t *out)
{
	size_t n = 0;

	for (unsigned i = 0; i < rp->niov; i++) {
		memcpy(out + n, rp->iov[i].iov_base, rp->iov[i].iov_len);
		n += rp->iov[i].iov_len;
	}
	CHECK_EQ(n, rp->total);
	return n;
}

static void test_replies(void)
{
	struct nbd_reply rp;
	uint8_t data[16] = "0123456789abcdef", b[256];
	size_t n;

	nbd_reply_simple(&rp, 0xabcdef, 0, data, sizeof(data));
	n = flat(&rp, b);
	CHECK_EQ(n, 16 + 16);
	CHECK_EQ(nbd_get32(b), NBD_SIMPLE_REPLY_MAGIC);
	CHECK_EQ(nbd_get32(b + 4), 0);
	CHECK_EQ(nbd_get64(b + 8), 0xabcdef);
	CHECK(memcmp(b + 16, data, 16) == 0);
	/* The payload is not copied. */
	CHECK(rp.iov[1].iov_base == data);

	/* An error carries no payload. */
	nbd_reply_simple(&rp, 1, NBD_EIO, data, sizeof(data));
	CHECK_EQ(flat(&rp, b), 16);
	CHECK_EQ(nbd_get32(b + 4), NBD_EIO);

	nbd_reply_data(&rp, 2, 1 << 20, data, 10);
	n = flat(&rp, b);
	CHECK_EQ(n, 20 + 8 + 10);
	CHECK_EQ(nbd_get32(b), NBD_STRUCTURED_REPLY_MAGIC);
	CHECK_EQ(nbd_get16(b + 4), NBD_REPLY_FLAG_DONE);
	CHECK_EQ(nbd_get16(b + 6), NBD_REPLY_TYPE_OFFSET_DATA);
	CHECK_EQ(nbd_get64(b + 8), 2);
	CHECK_EQ(nbd_get32(b + 16), 8 + 10);
	CHECK_EQ(nbd_get64(b + 20), 1 << 20);
	CHECK(memcmp(b + 28, data, 10) == 0);

	nbd_reply_error(&rp, 3, NBD_EINVAL, "bad", false, 0);
	n = flat(&rp, b);
	CHECK_EQ(n, 20 + 6 + 3);
	CHECK_EQ(nbd_get16(b + 6), NBD_REPLY_TYPE_ERROR);
	CHECK_EQ(nbd_get32(b + 16), 6 + 3);
	CHECK_EQ(nbd_get32(b + 20), NBD_EINVAL);
	CHECK_EQ(nbd_get16(b + 24), 3);
	CHECK(memcmp(b + 26, "bad", 3) == 0);

	nbd_reply_error(&rp, 4, NBD_EIO, NULL, true, 12345);
	n = flat(&rp, b);
	CHECK_EQ(n, 20 + 6 + 8);
	CHECK_EQ(nbd_get16(b + 6), NBD_REPLY_TYPE_ERROR_OFFSET);
	CHECK_EQ(nbd_get32(b + 16), 14);
	CHECK_EQ(nbd_get16(b + 24), 0);
	CHECK_EQ(nbd_get64(b + 26), 12345);

	nbd_reply_error(&rp, 4, NBD_EIO, "io", true, 777);
	n = flat(&rp, b);
	CHECK_EQ(n, 20 + 6 + 2 + 8);
	CHECK_EQ(nbd_get32(b + 16), 16);
	CHECK(memcmp(b + 26, "io", 2) == 0);
	CHECK_EQ(nbd_get64(b + 28), 777);

	{
		struct vbd_extent e[2] = { { 4096, VBD_EXTENT_HOLE | VBD_EXTENT_ZERO },
					   { 8192, 0 } };
		uint8_t wire[16];
		unsigned k = nbd_extents_to_wire(e, 2, wire, 65536, false);

		CHECK_EQ(k, 2);
		nbd_reply_block_status(&rp, 5, 1, wire, k);
		n = flat(&rp, b);
		CHECK_EQ(n, 20 + 4 + 16);
		CHECK_EQ(nbd_get16(b + 6), NBD_REPLY_TYPE_BLOCK_STATUS);
		CHECK_EQ(nbd_get32(b + 16), 4 + 16);
		CHECK_EQ(nbd_get32(b + 20), 1);
		CHECK_EQ(nbd_get32(b + 24), 4096);
		CHECK_EQ(nbd_get32(b + 28), NBD_STATE_HOLE | NBD_STATE_ZERO);
		CHECK_EQ(nbd_get32(b + 32), 8192);
		CHECK_EQ(nbd_get32(b + 36), 0);
	}
}

static void test_extents(void)
{
	struct vbd_extent e[8];
	uint8_t w[8 * 8];
	unsigned n;

	/* Empty ones go, equal neighbours merge, unknown flags are masked. */
	e[0] = (struct vbd_extent){ 0, 0 };
	e[1] = (struct vbd_extent){ 512, 0 };
	e[2] = (struct vbd_extent){ 512, 1u << 7 };
	e[3] = (struct vbd_extent){ 1024, VBD_EXTENT_ZERO };
	e[4] = (struct vbd_extent){ 0, VBD_EXTENT_HOLE };
	e[5] = (struct vbd_extent){ 2048, VBD_EXTENT_ZERO };
	n = nbd_extents_to_wire(e, 6, w, 100000, false);
	CHECK_EQ(n, 2);
	CHECK_EQ(nbd_get32(w), 1024);
	CHECK_EQ(nbd_get32(w + 4), 0);
	CHECK_EQ(nbd_get32(w + 8), 3072);
	CHECK_EQ(nbd_get32(w + 12), NBD_STATE_ZERO);

	/* Stops once the request is covered, cutting the last there. */
	e[0] = (struct vbd_extent){ 4096, 0 };
	e[1] = (struct vbd_extent){ 4096, VBD_EXTENT_HOLE };
	e[2] = (struct vbd_extent){ 4096, 0 };
	n = nbd_extents_to_wire(e, 3, w, 5000, false);
	CHECK_EQ(n, 2);
	CHECK_EQ(nbd_get32(w), 4096);
	CHECK_EQ(nbd_get32(w + 8), 5000 - 4096);
	CHECK_EQ(nbd_get32(w + 12), NBD_STATE_HOLE);

	/* REQ_ONE: one descriptor, no longer than the request. */
	e[0] = (struct vbd_extent){ 1 << 20, VBD_EXTENT_HOLE };
	e[1] = (struct vbd_extent){ 4096, 0 };
	n = nbd_extents_to_wire(e, 2, w, 4096, true);
	CHECK_EQ(n, 1);
	CHECK_EQ(nbd_get32(w), 4096);
	CHECK_EQ(nbd_get32(w + 4), NBD_STATE_HOLE);

	/* REQ_ONE keeps merging equal neighbours into the one it sends. */
	e[0] = (struct vbd_extent){ 4096, 0 };
	e[1] = (struct vbd_extent){ 4096, 0 };
	e[2] = (struct vbd_extent){ 4096, VBD_EXTENT_HOLE };
	n = nbd_extents_to_wire(e, 3, w, 65536, true);
	CHECK_EQ(n, 1);
	CHECK_EQ(nbd_get32(w), 8192);

	/* Nothing usable: no descriptor. */
	e[0] = (struct vbd_extent){ 0, 0 };
	CHECK_EQ(nbd_extents_to_wire(e, 1, w, 4096, false), 0);
	CHECK_EQ(nbd_extents_to_wire(e, 0, w, 4096, true), 0);

	/* 64-bit extents are cut to the 32-bit request. */
	e[0] = (struct vbd_extent){ 1ull << 40, 0 };
	n = nbd_extents_to_wire(e, 1, w, 0xffffffffu, false);
	CHECK_EQ(n, 1);
	CHECK_EQ(nbd_get32(w), 0xffffffffu);
	e[0] = (struct vbd_extent){ 0xfffff000u, 0 };
	e[1] = (struct vbd_extent){ 0x2000, VBD_EXTENT_ZERO };
	n = nbd_extents_to_wire(e, 2, w, 0xffffffffu, false);
	CHECK_EQ(n, 2);
	CHECK_EQ(nbd_get32(w + 8), 0xfff);
}

int main(void)
{
	test_decode();
	test_check();
	test_errno();
	test_replies();
	test_extents();
	return test_done("test-nbd-request");
}
