/* The NBD frontend's own structures, shared by its files:
 *   nbd-server.c        server object, accepting, connection cap, shutdown
 *   nbd-listen.c        listen addresses and sockets
 *   nbd-conn.c          one connection: socket input and output, lifetime,
 *                       the handshake phase
 *   nbd-transmission.c  reading requests (and WRITE payloads), requests to
 *                       the vbd, replies back
 *   nbd-tls*.c          STARTTLS: credentials, the session, the TLS transport
 * Everything runs on the main thread's event loop. */
#ifndef VD_NBD_INTERNAL_H
#define VD_NBD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/log.h"
#include "frontends/nbd-handshake.h"
#include "frontends/nbd-reply.h"
#include "frontends/nbd-request.h"

struct event;
struct event_base;
struct nbd_conn;
struct nbd_tls_conn;
struct nbd_tls_creds;
struct vbd;
struct vbd_request;

enum {
	NBD_DEFAULT_MAX_CONNECTIONS = 128,
	NBD_DEFAULT_HANDSHAKE_TIMEOUT_S = 10,
	/* After nbd_server_shutdown, connections that still have replies
	 * nobody reads are cut after this long. */
	NBD_SHUTDOWN_GRACE_S = 10,
	/* Receive buffer: the biggest option we parse, or many requests. */
	NBD_RBUF_SIZE = 128 * 1024,
	/* Per connection: requests between parsing and their reply being
	 * sent, and payload bytes held by them.  Past either, the
	 * connection stops reading until replies drain. */
	NBD_CONN_MAX_SLOTS = 256,
	NBD_CONN_MAX_BYTES = 64 * 1024 * 1024,
	/* BLOCK_STATUS: extents asked of the vbd per request, and the size
	 * of one on the wire. */
	NBD_MAX_EXTENTS = 512,
	NBD_EXTENT_WIRE_LEN = 8,
	NBD_LISTENER_MAX_FDS = 8,
	NBD_SOCKET_BUFFER = 4 * 1024 * 1024,
};

/* One request from parsing to the end of its reply.  owner of the vbd
 * request points here. */
struct nbd_slot {
	struct nbd_conn *conn;
	struct vbd_request *req;	/* NULL: answered by the frontend */
	struct nbd_slot *next;		/* free list or reply queue */
	uint64_t handle;
	uint64_t offset;
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint64_t bytes;			/* counted in conn->bytes */
	bool big_piece;			/* a piece of a request over 32 MiB */
	struct nbd_reply reply;
};

/* One READ or WRITE over the payload limit, served in pieces
 * (nbd-big.c); head is the client's request, NULL when none. */
enum { NBD_BIG_PIECE = 8 * 1024 * 1024, NBD_BIG_PIECES = 2 };
struct nbd_big {
	struct nbd_slot *head;
	uint64_t next, end;		/* the next piece to issue (READ) or
					 * to fill with payload (WRITE) */
	uint64_t sent;			/* simple READ: data queued up to here */
	unsigned inflight;		/* pieces in the vbd */
	int err;			/* the first error */
	uint64_t err_off;
	bool header_sent;		/* simple READ: data has started */
	bool stalled;			/* WRITE: waiting for a piece to return */
	struct nbd_slot *ready[NBD_BIG_PIECES];	/* simple READ: out of order */
};

/* How a connection's bytes move: the socket itself, or TLS over it once
 * STARTTLS is done.  The handshake and transmission code only ever call
 * these, so neither knows whether the stream is encrypted.
 *   recv   like readv: > 0 bytes, 0 end of input, -1 with errno (EAGAIN:
 *          nothing now).  Fills the iovecs until they are full or nothing
 *          more is to be had, so a short count means "empty now".
 *   send   like sendmsg: bytes taken (they may still sit in the
 *          transport's buffer), or -1 with errno (EAGAIN: wait for
 *          EV_WRITE).  more: further data follows at once.
 *   flush  pushes out what send buffered: 0 done, -1 with errno.
 *   recv_pending  input already buffered inside the transport (the
 *          socket may be empty, so no read event would come).
 *   send_pending  output buffered inside the transport. */
struct nbd_transport {
	const char *name;
	ssize_t (*recv)(struct nbd_conn *c, const struct iovec *iov, int n);
	ssize_t (*send)(struct nbd_conn *c, const struct iovec *iov, int n, bool more);
	int (*flush)(struct nbd_conn *c);		/* NULL: nothing buffered */
	bool (*recv_pending)(const struct nbd_conn *c);	/* NULL: never */
	bool (*send_pending)(const struct nbd_conn *c);	/* NULL: never */
};

extern const struct nbd_transport nbd_plain_transport;	/* nbd-conn.c */
extern const struct nbd_transport nbd_tls_transport;	/* nbd-tls.c */

enum nbd_conn_state {
	NBD_CONN_HANDSHAKE,
	NBD_CONN_TRANSMISSION,
	NBD_CONN_CLOSING,	/* no more input; finish in-flight and replies */
	NBD_CONN_DEAD,		/* socket closed; waiting for in-flight requests */
};

struct nbd_conn {
	struct nbd_server *srv;		/* NULL once the server let go of it */
	struct nbd_conn *prev, *next;
	int fd;
	unsigned id;
	char peer[80];
	char peer_key[64];		/* uid:N or ip:ADDR, for the per-peer cap */
	enum nbd_conn_state state;
	bool counted;			/* vbd_connection_add(+1) was called */
	bool reading;			/* read_ev is added */
	bool writing;			/* write_ev is added */
	bool throttled;			/* stopped reading: slots or bytes */
	bool budget_wait;		/* ... for the daemon's buffer budget */
	struct nbd_conn *budget_next;	/* the server's budget waiters */
	bool in_read;			/* inside the read handler */
	bool heard;			/* the client has sent a byte */
	bool in_parse;			/* inside nbd_tx_parse */
	bool starttls;			/* start TLS once hs_out is sent */
	struct event *read_ev, *write_ev, *send_ev, *timer_ev;
	const struct nbd_transport *tr;
	struct nbd_tls_conn *tls;	/* after STARTTLS; else NULL */

	/* Input: rbuf[rpos..rlen) is unparsed. */
	uint8_t *rbuf;
	size_t rpos, rlen;
	struct nbd_slot *wslot;		/* WRITE whose payload is being read */
	uint32_t wgot;
	uint64_t skip;			/* refused WRITE payload left to drop */

	/* Handshake. */
	struct nbd_export exp;
	struct nbd_hs hs;
	struct nbd_obuf hs_out;

	/* Transmission. */
	struct nbd_caps caps;
	struct nbd_slot *slots;
	struct nbd_slot *free_slots;
	unsigned used_slots;
	uint64_t bytes;			/* payload bytes held by slots */
	uint64_t recv_ns;		/* when the last read call returned data */
	unsigned inflight;		/* in the vbd; done not yet called */
	unsigned submitted;		/* since the last vbd_kick */
	struct nbd_slot *out_head, **out_tail;
	size_t out_sent;		/* bytes of out_head already sent */
	struct nbd_big big;
};

struct nbd_listener {
	char *label;
	char *unix_path;		/* ours to unlink, or NULL */
	dev_t unix_dev;
	ino_t unix_ino;
	int fds[NBD_LISTENER_MAX_FDS];
	struct event *evs[NBD_LISTENER_MAX_FDS];
	unsigned nfds;
	struct nbd_server *srv;
};

struct nbd_server {
	struct event_base *base;
	struct vbd *vbd;
	char *export_name;
	char *description;
	unsigned max_connections;
	unsigned max_peer_connections;
	unsigned handshake_timeout_s;

	/* TLS: the configuration (strings owned) and the credentials new
	 * sessions get; sessions hold a reference of their own. */
	enum nbd_tls_mode tls_mode;
	char *tls_certificates, *tls_psk_file;
	bool tls_verify_peer;
	struct nbd_tls_creds *tls_creds;

	struct nbd_listener **listeners;
	unsigned nr_listeners;
	struct event *accept_retry_ev;	/* listeners paused after EMFILE */

	struct nbd_conn *conns;
	unsigned nr_conns;
	unsigned next_id;

	bool shutting_down;
	void (*shutdown_cb)(void *arg);
	void *shutdown_arg;
	struct event *shutdown_ev;	/* runs shutdown_cb from the loop */
	struct event *grace_ev;

	struct log_ratelimit warn_rl;	/* misbehaving clients */

	/* Connections waiting for the daemon's buffer budget, in order;
	 * budget_ev wakes them from the loop when buffers are given back. */
	struct nbd_conn *budget_head, **budget_tail;
	struct event *budget_ev;
};

/* nbd-listen.c */
int nbd_listener_open(struct nbd_server *srv, const char *addr, struct nbd_listener **out);
int nbd_listener_adopt(struct nbd_server *srv, int fd, const char *label,
		       struct nbd_listener **out);
void nbd_listener_close(struct nbd_listener *l);
/* Enables or pauses accepting on every listener. */
void nbd_listeners_enable(struct nbd_server *srv, bool on);

/* nbd-admit.c: room for one more connection from peer key (dropping the
 * oldest handshake in the way), or false: refuse it. */
struct sockaddr_storage;
void nbd_peer_key(int fd, const struct sockaddr_storage *ss, char *key, size_t len);
bool nbd_server_admit(struct nbd_server *srv, const char *key);

/* nbd-server.c */
void nbd_server_accept(struct nbd_server *srv, int listen_fd);
void nbd_server_conn_gone(struct nbd_server *srv, struct nbd_conn *c);
void nbd_server_export(struct nbd_server *srv, struct nbd_export *exp);
/* Budget: c waits for buffers; buffers were given back; c goes away. */
void nbd_server_budget_wait(struct nbd_server *srv, struct nbd_conn *c);
void nbd_server_budget_freed(struct nbd_server *srv);
void nbd_server_budget_forget(struct nbd_server *srv, struct nbd_conn *c);
bool nbd_server_warn_ok(struct nbd_server *srv);

/* nbd-conn.c */
int nbd_conn_new(struct nbd_server *srv, int fd, const char *peer, struct nbd_conn **out);
/* Shutdown: stop taking input; finish in-flight requests; close. */
void nbd_conn_shutdown(struct nbd_conn *c);
/* Drops the socket now (replies not yet sent are lost). */
void nbd_conn_kill(struct nbd_conn *c, const char *why);
/* The server goes away: close now, free once in-flight requests return. */
void nbd_conn_detach(struct nbd_conn *c);
void nbd_conn_set_reading(struct nbd_conn *c, bool on);
void nbd_conn_set_writing(struct nbd_conn *c, bool on);
/* No more input (DISC, end of file, shutdown): finish, answer, close. */
void nbd_conn_stop_input(struct nbd_conn *c);
void nbd_conn_queue_reply(struct nbd_conn *c, struct nbd_slot *s);
void nbd_conn_slot_release(struct nbd_conn *c, struct nbd_slot *s);
void nbd_conn_check_done(struct nbd_conn *c);
/* Moves unparsed input to the front of rbuf. */
void nbd_conn_compact(struct nbd_conn *c);
/* readv on the socket: > 0 bytes, 0 nothing now, -1 the input ended or the
 * connection died (both handled here). */
ssize_t nbd_conn_readv(struct nbd_conn *c, struct iovec *iov, int n);

/* nbd-big.c */
bool nbd_big_wanted(const struct nbd_conn *c, const struct nbd_request *r);
void nbd_big_start(struct nbd_conn *c, struct nbd_slot *head);
void nbd_big_write_full(struct nbd_conn *c, struct nbd_slot *s);
void nbd_big_skipped(struct nbd_conn *c);
void nbd_big_drop(struct nbd_conn *c);
void nbd_big_other_done(struct nbd_conn *c);

/* nbd-transmission.c */
/* Parses and dispatches every complete request in rbuf. */
void nbd_tx_parse(struct nbd_conn *c);
/* A connection waiting for the budget may go on. */
void nbd_conn_budget_resume(struct nbd_conn *c);
/* Hands requests parsed since the last call to the submit thread. */
void nbd_tx_kick(struct nbd_conn *c);
int nbd_tx_start(struct nbd_conn *c);
/* Reads and dispatches requests while the socket has data. */
void nbd_tx_read(struct nbd_conn *c);

#endif
