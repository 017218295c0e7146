/* The control server in process, on a real vbd: the socket file (mode,
 * stale and live sockets), the greeting, every command, pipelining, bad
 * input, the line cap, half-close, peer credentials, the client cap, and
 * async replies whose client or server is gone.
 *
 * For requests that stay in flight, this program defines io_submit: the
 * library's calls bind to it, and while `stalled` is set it blocks the
 * submit thread the way io_submit can block under memory pressure. */
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "tools/ctl-client.h"
#include "control/ctl-int.h"
#include "control/ctl.h"
#include "common/log.h"
#include "core/vbd.h"
#include "tests/lib/test.h"

/* ---- a blocking io_submit ---- */

static pthread_mutex_t stall_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stall_cv = PTHREAD_COND_INITIALIZER;
static bool stalled;
static int stalled_calls;

int io_submit(io_context_t ctx, long nr, struct iocb *ios[]);
int io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
	long r;

	pthread_mutex_lock(&stall_mu);
	if (stalled)
		stalled_calls++;
	while (stalled)
		pthread_cond_wait(&stall_cv, &stall_mu);
	pthread_mutex_unlock(&stall_mu);
	r = syscall(__NR_io_submit, ctx, nr, ios);
	return r < 0 ? -errno : (int)r;
}

static void stall(bool on)
{
	pthread_mutex_lock(&stall_mu);
	stalled = on;
	if (on)
		stalled_calls = 0;
	pthread_cond_broadcast(&stall_cv);
	pthread_mutex_unlock(&stall_mu);
}

static int stall_calls(void)
{
	pthread_mutex_lock(&stall_mu);
	int n = stalled_calls;
	pthread_mutex_unlock(&stall_mu);
	return n;
}

/* ---- the loop and a test client ---- */

static struct event_base *base;
static char dir[64];
static int shutdowns;

static void on_shutdown(void *arg)
{
	shutdowns++;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pump(int ms)
{
	long long end = now_ms() + ms;

	do {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(500);
	} while (now_ms() < end);
}

struct tc {
	int fd;
	char buf[256 * 1024];
	size_t len;
};

static struct tc *tc_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct tc *c = calloc(1, sizeof(*c));

	REQUIRE(c);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(c->fd >= 0);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "connect %s: %s\n", path, strerror(errno));
		REQUIRE(0);
	}
	return c;
}

static void tc_close(struct tc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* The next line (caller frees), or NULL at EOF or after timeout_ms. */
static char *tc_line(struct tc *c, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			char *line = strndup(c->buf, (size_t)(nl - c->buf));
			c->len -= (size_t)(nl + 1 - c->buf);
			memmove(c->buf, nl + 1, c->len);
			return line;
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return NULL;
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (now_ms() > end)
			return NULL;
		usleep(200);
	}
}

/* True once the server has closed the connection (EOF or reset). */
static bool tc_eof(struct tc *c, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	char b[4096];

	while (now_ms() < end) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		ssize_t n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
		if (n < 0)
			usleep(200);
	}
	return false;
}

static json_t *tc_json(struct tc *c, int timeout_ms)
{
	char *line = tc_line(c, timeout_ms);
	json_t *o;

	if (!line)
		return NULL;
	o = json_loads(line, 0, NULL);
	if (!o)
		fprintf(stderr, "not JSON: %s\n", line);
	free(line);
	return o;
}

static void tc_send(struct tc *c, const char *s)
{
	size_t len = strlen(s);

	REQUIRE(send(c->fd, s, len, MSG_NOSIGNAL) == (ssize_t)len);
}

static json_t *tc_call(struct tc *c, const char *req)
{
	char line[1024];

	snprintf(line, sizeof(line), "%s\n", req);
	tc_send(c, line);
	return tc_json(c, 5000);
}

static struct tc *tc_open(const char *path)
{
	struct tc *c = tc_connect(path);
	char *g = tc_line(c, 5000);

	REQUIRE(g);
	CHECK(strcmp(g, "{\"vdiskd\":{\"version\":\"" VDISKD_VERSION
		     "\",\"protocol\":1}}") == 0);
	free(g);
	return c;
}

static bool is_ok(json_t *o)
{
	return json_is_true(json_object_get(o, "ok"));
}

static bool is_err(json_t *o, const char *name)
{
	const char *e = json_string_value(json_object_get(o, "error"));

	if (!json_is_false(json_object_get(o, "ok")) || !e || strcmp(e, name) != 0) {
		char *s = o ? json_dumps(o, 0) : NULL;
		fprintf(stderr, "expected error %s, got %s\n", name, s ? s : "nothing");
		free(s);
		return false;
	}
	return json_is_string(json_object_get(o, "message")) &&
	       json_string_length(json_object_get(o, "message")) > 0;
}

/* Runs one request on a fresh connection and checks the reply is an error. */
static void expect_error(const char *path, const char *req, const char *err)
{
	struct tc *c = tc_open(path);
	json_t *o = tc_call(c, req);

	CHECK(is_err(o, err));
	json_decref(o);
	/* the connection stays usable after a bad request */
	o = tc_call(c, "{\"cmd\":\"stats\"}");
	CHECK(is_ok(o));
	json_decref(o);
	tc_close(c);
}

static struct ctl_server *server(struct vbd *vbd, const char *path)
{
	struct ctl_daemon d = { .vbd = vbd, .shutdown = on_shutdown };
	struct ctl_server *srv = NULL;

	REQUIRE(ctl_server_create(base, path, &d, &srv) == 0);
	return srv;
}

/* ---- the socket file ---- */

static void test_socket_file(struct vbd *vbd)
{
	char path[100], stale[100], file[100], longp[200];
	struct ctl_daemon d = { .vbd = vbd };
	struct ctl_server *srv, *srv2 = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/a.ctl", dir);
	srv = server(vbd, path);
	REQUIRE(stat(path, &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0600);

	/* a live one is not replaced */
	CHECK_EQ(ctl_server_create(base, path, &d, &srv2), -EADDRINUSE);
	CHECK(srv2 == NULL);
	{
		struct tc *c = tc_open(path);
		json_t *o = tc_call(c, "{\"cmd\":\"info\"}");
		CHECK(is_ok(o));
		json_decref(o);
		tc_close(c);
	}
	/* no temp file left behind */
	{
		char tmp[160];
		snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
		CHECK(access(tmp, F_OK) < 0);
	}
	ctl_server_free(srv);
	CHECK(access(path, F_OK) < 0);		/* unlinked at exit */

	/* a stale one (its daemon died) is */
	snprintf(stale, sizeof(stale), "%s/stale.ctl", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", stale);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	srv = server(vbd, stale);
	{
		struct tc *c = tc_open(stale);
		tc_close(c);
	}
	/* freeing does not unlink a socket another daemon put there since */
	REQUIRE(unlink(stale) == 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	ctl_server_free(srv);
	CHECK(access(stale, F_OK) == 0);
	close(fd);
	unlink(stale);

	/* something that is not a socket is left alone */
	snprintf(file, sizeof(file), "%s/file.ctl", dir);
	fd = open(file, O_CREAT | O_WRONLY, 0644);
	REQUIRE(fd >= 0 && write(fd, "keep", 4) == 4);
	close(fd);
	CHECK_EQ(ctl_server_create(base, file, &d, &srv2), -EEXIST);
	CHECK(stat(file, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 4);

	/* limits */
	memset(longp, 'x', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	CHECK_EQ(ctl_server_create(base, longp, &d, &srv2), -ENAMETOOLONG);
	CHECK_EQ(ctl_server_create(base, "", &d, &srv2), -EINVAL);
	d.vbd = NULL;
	CHECK_EQ(ctl_server_create(base, path, &d, &srv2), -EINVAL);
	snprintf(path, sizeof(path), "%s/no/such/dir.ctl", dir);
	d.vbd = vbd;
	CHECK_EQ(ctl_server_create(base, path, &d, &srv2), -ENOENT);
}

/* ---- commands ---- */

static void test_commands(struct vbd *vbd, const char *path)
{
	static const char *const stat_keys[] = {
		"reads", "writes", "flushes", "trims", "zeroes", "bytes_read",
		"bytes_written", "errors", "inflight", "waiting", "pending",
		"iocbs_submitted", "io_submit_calls", "merged", "connections",
		"uptime_s", "read_lat_p50_us", "read_lat_p99_us", "write_lat_p50_us",
		"write_lat_p99_us", NULL,
	};
	struct tc *c = tc_open(path);
	json_t *o;

	o = tc_call(c, "{\"cmd\":\"info\"}");
	CHECK(is_ok(o));
	CHECK(json_is_string(json_object_get(o, "name")));
	CHECK(json_is_string(json_object_get(o, "image")));
	CHECK(strcmp(json_string_value(json_object_get(o, "driver")), "raw") == 0);
	CHECK_EQ(json_integer_value(json_object_get(o, "size")), 4 << 20);
	CHECK(json_integer_value(json_object_get(o, "logical_block")) >= 512);
	CHECK(json_integer_value(json_object_get(o, "physical_block")) >=
	      json_integer_value(json_object_get(o, "logical_block")));
	CHECK(json_is_false(json_object_get(o, "read_only")));
	CHECK(strcmp(json_string_value(json_object_get(o, "cache")), "writeback") == 0);
	CHECK(strcmp(json_string_value(json_object_get(o, "state")), "running") == 0);
	CHECK(json_is_array(json_object_get(o, "listen")));
	CHECK_EQ(json_integer_value(json_object_get(o, "pid")), getpid());
	CHECK(strcmp(json_string_value(json_object_get(o, "version")), VDISKD_VERSION) == 0);
	json_decref(o);

	o = tc_call(c, "{\"cmd\":\"stats\"}");
	CHECK(is_ok(o));
	for (const char *const *k = stat_keys; *k; k++) {
		if (!json_is_integer(json_object_get(o, *k))) {
			fprintf(stderr, "stats: %s missing\n", *k);
			CHECK(0);
		}
	}
	CHECK(strcmp(json_string_value(json_object_get(o, "state")), "running") == 0);
	json_decref(o);

	/* pause, idempotent; reopen only while paused; resume */
	o = tc_call(c, "{\"cmd\":\"reopen\"}");
	CHECK(is_err(o, "EBUSY"));
	json_decref(o);
	o = tc_call(c, "{\"cmd\":\"pause\"}");
	CHECK(is_ok(o));
	CHECK(strcmp(json_string_value(json_object_get(o, "state")), "paused") == 0);
	json_decref(o);
	CHECK_EQ(vbd_state(vbd), VBD_PAUSED);
	o = tc_call(c, "{\"cmd\":\"pause\",\"timeout\":2.5}");
	CHECK(is_ok(o));
	json_decref(o);
	o = tc_call(c, "{\"cmd\":\"reopen\"}");
	CHECK(is_ok(o));
	CHECK_EQ(json_integer_value(json_object_get(o, "size")), 4 << 20);
	CHECK(json_is_false(json_object_get(o, "resized")));
	json_decref(o);
	{
		char req[256];
		snprintf(req, sizeof(req), "{\"cmd\":\"reopen\",\"image\":\"%s/missing.img\"}", dir);
		o = tc_call(c, req);
		CHECK(is_err(o, "ENOENT"));
		json_decref(o);
		CHECK(strcmp(vbd_image(vbd), "missing.img") != 0);
		CHECK_EQ(vbd_state(vbd), VBD_PAUSED);	/* stays paused */
	}
	o = tc_call(c, "{\"cmd\":\"reopen\",\"image\":\"\"}");
	CHECK(is_err(o, "EINVAL"));
	json_decref(o);
	o = tc_call(c, "{\"cmd\":\"resume\"}");
	CHECK(is_ok(o));
	CHECK(strcmp(json_string_value(json_object_get(o, "state")), "running") == 0);
	json_decref(o);
	CHECK_EQ(vbd_state(vbd), VBD_RUNNING);
	o = tc_call(c, "{\"cmd\":\"resume\"}");		/* idempotent too */
	CHECK(is_ok(o));
	json_decref(o);

	o = tc_call(c, "{\"cmd\":\"flush\"}");
	CHECK(is_ok(o));
	json_decref(o);

	/* log-level: show, set, refuse */
	o = tc_call(c, "{\"cmd\":\"log-level\"}");
	CHECK(is_ok(o));
	CHECK(json_is_string(json_object_get(o, "level")));
	json_decref(o);
	o = tc_call(c, "{\"cmd\":\"log-level\",\"level\":\"debug\"}");
	CHECK(is_ok(o));
	CHECK_EQ(log_get_level(), LOG_LVL_DEBUG);
	json_decref(o);
	o = tc_call(c, "{\"cmd\":\"log-level\",\"level\":\"warn\"}");
	CHECK(is_ok(o));
	CHECK(strcmp(json_string_value(json_object_get(o, "previous")), "debug") == 0);
	CHECK_EQ(log_get_level(), LOG_LVL_WARN);
	json_decref(o);
	o = tc_call(c, "{\"cmd\":\"log-level\",\"level\":\"loud\"}");
	CHECK(is_err(o, "EINVAL"));
	CHECK_EQ(log_get_level(), LOG_LVL_WARN);
	json_decref(o);

	/* pause arguments */
	o = tc_call(c, "{\"cmd\":\"pause\",\"timeout\":0}");
	CHECK(is_err(o, "EINVAL"));
	json_decref(o);
	o = tc_call(c, "{\"cmd\":\"pause\",\"timeout\":-1}");
	CHECK(is_err(o, "EINVAL"));
	json_decref(o);
	o = tc_call(c, "{\"cmd\":\"pause\",\"timeout\":1e300}");
	CHECK(is_err(o, "EINVAL"));
	json_decref(o);
	CHECK_EQ(vbd_state(vbd), VBD_RUNNING);
	tc_close(c);
}

static void test_bad_input(const char *path)
{
	struct tc *c;
	json_t *o;
	char *line;

	expect_error(path, "not json", "EINVAL");
	expect_error(path, "[1,2,3]", "EINVAL");
	expect_error(path, "\"stats\"", "EINVAL");
	expect_error(path, "{}", "EINVAL");
	expect_error(path, "{\"cmd\":42}", "EINVAL");
	expect_error(path, "{\"cmd\":\"frobnicate\"}", "ENOSYS");
	expect_error(path, "{\"cmd\":\"stats\",\"verbose\":true}", "EINVAL");
	expect_error(path, "{\"cmd\":\"pause\",\"timeout\":\"5\"}", "EINVAL");
	expect_error(path, "{\"cmd\":\"reopen\",\"image\":5}", "EINVAL");
	expect_error(path, "{\"cmd\":\"log-level\",\"level\":[]}", "EINVAL");

	/* pipelined: three requests in one write, three replies in order;
	 * empty lines are skipped, CRLF accepted */
	c = tc_open(path);
	tc_send(c, "{\"cmd\":\"info\"}\n\n{\"cmd\":\"nope\"}\r\n{\"cmd\":\"stats\"}\r\n");
	o = tc_json(c, 5000);
	CHECK(is_ok(o) && json_object_get(o, "image"));
	json_decref(o);
	o = tc_json(c, 5000);
	CHECK(is_err(o, "ENOSYS"));
	json_decref(o);
	o = tc_json(c, 5000);
	CHECK(is_ok(o) && json_object_get(o, "reads"));
	json_decref(o);
	tc_close(c);

	/* a request split over several writes */
	c = tc_open(path);
	tc_send(c, "{\"cmd\":");
	pump(20);
	tc_send(c, "\"stats\"");
	pump(20);
	tc_send(c, "}\n");
	o = tc_json(c, 5000);
	CHECK(is_ok(o));
	json_decref(o);
	tc_close(c);

	/* half-close: the last request (even without its newline) is
	 * answered, then the server closes */
	c = tc_open(path);
	tc_send(c, "{\"cmd\":\"flush\"}\n{\"cmd\":\"info\"}");
	shutdown(c->fd, SHUT_WR);
	o = tc_json(c, 5000);
	CHECK(is_ok(o));
	json_decref(o);
	o = tc_json(c, 5000);
	CHECK(is_ok(o) && json_object_get(o, "image"));
	json_decref(o);
	CHECK(tc_eof(c, 5000));
	tc_close(c);

	/* the longest line is served; one byte more closes with EMSGSIZE */
	{
		size_t n = CTL_LINE_MAX;
		char *big = malloc(n + 1);
		REQUIRE(big);
		memset(big, ' ', n);
		memcpy(big, "{\"cmd\":\"stats\"}", 15);
		big[n - 1] = '\n';
		big[n] = '\0';
		c = tc_open(path);
		tc_send(c, big);
		o = tc_json(c, 5000);
		CHECK(is_ok(o));
		json_decref(o);
		tc_close(c);

		c = tc_open(path);
		big[n - 1] = ' ';
		tc_send(c, big);
		tc_send(c, " \n");
		o = tc_json(c, 5000);
		CHECK(is_err(o, "EMSGSIZE"));
		json_decref(o);
		CHECK(tc_eof(c, 5000));
		tc_close(c);
		free(big);
	}

	/* 1 MiB with no newline: the server stops reading at the cap,
	 * answers EMSGSIZE and closes; our writes then fail */
	{
		char chunk[16384];
		size_t sent = 0;
		bool closed = false;
		long long end = now_ms() + 10000;

		memset(chunk, 'a', sizeof(chunk));
		c = tc_open(path);
		fcntl(c->fd, F_SETFL, O_NONBLOCK);
		while (sent < (1u << 20) && now_ms() < end) {
			ssize_t n = send(c->fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN) {
				event_base_loop(base, EVLOOP_NONBLOCK);
				usleep(200);
				continue;
			}
			if (n < 0) {
				closed = errno == EPIPE || errno == ECONNRESET;
				break;
			}
			sent += (size_t)n;
		}
		line = tc_line(c, 5000);
		if (line) {
			o = json_loads(line, 0, NULL);
			CHECK(is_err(o, "EMSGSIZE"));
			json_decref(o);
			free(line);
		}
		CHECK(closed || tc_eof(c, 5000));
		tc_close(c);
	}

	/* the server still serves */
	c = tc_open(path);
	o = tc_call(c, "{\"cmd\":\"stats\"}");
	CHECK(is_ok(o));
	json_decref(o);
	tc_close(c);
}

/* Only root and our own uid: a child that becomes nobody is refused,
 * with a reason, even when the file mode would let it in. */
static void test_peercred(const char *path)
{
	pid_t pid;
	int status = -1;
	long long end;

	if (geteuid() != 0) {
		fprintf(stderr, "peer credentials: not root, cannot test another uid\n");
		return;
	}
	REQUIRE(chmod(path, 0666) == 0 && chmod(dir, 0711) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		char msg[512];
		struct ctl_conn *conn;
		int r;

		alarm(10);
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		r = ctl_conn_open(path, 5000, &conn, msg, sizeof(msg));
		if (r == -EPERM && strstr(msg, "permission denied"))
			_exit(0);
		fprintf(stderr, "child: %d %s\n", r, msg);
		_exit(1);
	}
	end = now_ms() + 10000;
	while (now_ms() < end) {
		pump(5);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	chmod(path, 0600);
	chmod(dir, 0700);
}

/* 64 clients at most: a new one evicts the longest idle that never
 * spoke, then the longest idle; never one with a command running. */
static void test_client_cap(const char *path)
{
	struct tc *c[70];
	struct tc *talker;
	json_t *o;
	int evicted = 0;

	talker = tc_open(path);
	o = tc_call(talker, "{\"cmd\":\"info\"}");
	CHECK(is_ok(o));
	json_decref(o);
	for (int i = 0; i < 70; i++)
		c[i] = tc_open(path);	/* each got its greeting: accepted */
	/* 71 clients for 64 places: seven were evicted, the oldest silent
	 * ones, each with a message */
	for (int i = 0; i < 70; i++) {
		char *line = tc_line(c[i], i < 7 ? 2000 : 1);
		if (line) {
			o = json_loads(line, 0, NULL);
			CHECK(is_err(o, "ETIMEDOUT"));
			json_decref(o);
			free(line);
			CHECK(i < 7);
			evicted++;
		}
	}
	CHECK_EQ(evicted, 7);
	/* the one that spoke is still served */
	o = tc_call(talker, "{\"cmd\":\"stats\"}");
	CHECK(is_ok(o));
	json_decref(o);
	for (int i = 0; i < 70; i++)
		tc_close(c[i]);
	tc_close(talker);
	pump(20);
}

/* ---- async replies and their clients ---- */

static struct vbd_request *stuck_read(struct vbd *vbd, int *done_flag);

static void read_done(struct vbd_request *req)
{
	*(int *)req->owner = 1;
	vbd_request_put(req);
}

static struct vbd_request *stuck_read(struct vbd *vbd, int *done_flag)
{
	struct vbd_request *req = vbd_request_get(vbd, 4096);

	REQUIRE(req);
	*done_flag = 0;
	req->op = VBD_OP_READ;
	req->offset = 0;
	req->len = 4096;
	req->done = read_done;
	req->owner = done_flag;
	vbd_request_submit(req);
	vbd_kick(vbd);
	return req;
}

static void wait_stalled(void)
{
	long long end = now_ms() + 5000;

	while (stall_calls() == 0 && now_ms() < end)
		pump(1);
	CHECK(stall_calls() > 0);
}

static void test_async(struct vbd *vbd, const char *path)
{
	struct vbd_stats s;
	struct tc *c, *other;
	json_t *o;
	int done;
	long long t0;

	/* a pause that cannot drain: ETIMEDOUT after its timeout, and the
	 * disk runs again */
	stall(true);
	stuck_read(vbd, &done);
	wait_stalled();
	c = tc_open(path);
	t0 = now_ms();
	tc_send(c, "{\"cmd\":\"pause\",\"timeout\":0.3}\n");
	pump(50);
	CHECK_EQ(vbd_state(vbd), VBD_PAUSING);
	/* other clients are served meanwhile, and a client with a command
	 * running queues its next request */
	other = tc_open(path);
	o = tc_call(other, "{\"cmd\":\"stats\"}");
	CHECK(is_ok(o));
	CHECK(strcmp(json_string_value(json_object_get(o, "state")), "pausing") == 0);
	CHECK_EQ(json_integer_value(json_object_get(o, "inflight")), 1);
	json_decref(o);
	tc_send(c, "{\"cmd\":\"info\"}\n");
	o = tc_json(c, 5000);
	CHECK(is_err(o, "ETIMEDOUT"));
	CHECK(now_ms() - t0 >= 250);
	json_decref(o);
	CHECK_EQ(vbd_state(vbd), VBD_RUNNING);
	o = tc_json(c, 5000);
	CHECK(is_ok(o) && json_object_get(o, "image"));
	json_decref(o);
	stall(false);
	t0 = now_ms();
	while (!done && now_ms() - t0 < 5000)
		pump(1);
	CHECK(done);
	pump(20);		/* the vbd's late pause callback: -ECANCELED, freed */

	/* the client goes away before its pause reply */
	stall(true);
	stuck_read(vbd, &done);
	wait_stalled();
	tc_send(c, "{\"cmd\":\"pause\"}\n");
	pump(20);
	tc_close(c);
	pump(20);
	stall(false);
	t0 = now_ms();
	while ((!done || vbd_state(vbd) != VBD_PAUSED) && now_ms() - t0 < 5000)
		pump(1);
	CHECK(done);
	CHECK_EQ(vbd_state(vbd), VBD_PAUSED);
	vbd_get_stats(vbd, &s);
	CHECK_EQ(s.inflight, 0);
	o = tc_call(other, "{\"cmd\":\"resume\"}");
	CHECK(is_ok(o));
	json_decref(o);

	/* and a flush whose client is gone */
	stall(true);
	stuck_read(vbd, &done);
	wait_stalled();
	c = tc_open(path);
	tc_send(c, "{\"cmd\":\"flush\"}\n");
	pump(20);
	tc_close(c);
	pump(20);
	stall(false);
	t0 = now_ms();
	while (!done && now_ms() - t0 < 5000)
		pump(1);
	pump(50);
	CHECK(done);
	o = tc_call(other, "{\"cmd\":\"stats\"}");
	CHECK(is_ok(o));
	json_decref(o);
	tc_close(other);
	pump(20);
}

/* The server freed with a pause still running: the vbd's callback comes
 * later and finds neither client nor server. */
static void test_free_while_running(struct vbd *vbd)
{
	char path[128];
	struct ctl_server *srv;
	struct tc *c;
	int done;
	long long t0;

	snprintf(path, sizeof(path), "%s/free.ctl", dir);
	srv = server(vbd, path);
	stall(true);
	stuck_read(vbd, &done);
	wait_stalled();
	c = tc_open(path);
	tc_send(c, "{\"cmd\":\"pause\",\"timeout\":0.2}\n");
	pump(20);
	CHECK_EQ(vbd_state(vbd), VBD_PAUSING);
	ctl_server_free(srv);
	CHECK(tc_eof(c, 1000));
	tc_close(c);
	pump(400);		/* past the timeout: its timer is gone */
	CHECK_EQ(vbd_state(vbd), VBD_PAUSING);
	stall(false);
	t0 = now_ms();
	while ((!done || vbd_state(vbd) != VBD_PAUSED) && now_ms() - t0 < 5000)
		pump(1);
	CHECK(done);
	CHECK_EQ(vbd_state(vbd), VBD_PAUSED);
	vbd_resume(vbd);
	pump(10);
}

/* shutdown: the daemon hears of it once, after the reply is out. */
static void test_shutdown(const char *path)
{
	struct tc *c = tc_open(path);
	json_t *o;

	shutdowns = 0;
	o = tc_call(c, "{\"cmd\":\"shutdown\"}");
	CHECK(is_ok(o));
	json_decref(o);
	pump(20);
	CHECK_EQ(shutdowns, 1);
	o = tc_call(c, "{\"cmd\":\"shutdown\"}");
	CHECK(is_ok(o));
	json_decref(o);
	pump(20);
	CHECK_EQ(shutdowns, 1);
	tc_close(c);
}

/* The vdiskctl client library against the server: greeting and a call,
 * a missing socket, a stale one, a socket that is not vdiskd. */
static void test_client_lib(const char *path)
{
	char msg[512], p2[100], *line = NULL;
	struct ctl_conn *conn = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_t *o = NULL;
	int fd, r;

	/* run the loop from a thread-less client: the library blocks, so
	 * connect from a child process instead */
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		alarm(10);
		r = ctl_conn_open(path, 5000, &conn, msg, sizeof(msg));
		if (r < 0 || strcmp(ctl_conn_version(conn), VDISKD_VERSION) != 0)
			_exit(1);
		r = ctl_conn_call(conn, "{\"cmd\":\"info\"}", 5000, &line, &o, msg, sizeof(msg));
		if (r < 0 || !json_is_true(json_object_get(o, "ok")) ||
		    strncmp(line, "{\"ok\":true,", 11) != 0)
			_exit(2);
		free(line);
		json_decref(o);
		r = ctl_conn_call(conn, "{\"cmd\":\"nope\"}", 5000, NULL, &o, msg, sizeof(msg));
		if (r < 0 || !json_is_false(json_object_get(o, "ok")))
			_exit(3);
		json_decref(o);
		ctl_conn_close(conn);
		_exit(0);
	}
	{
		int status = -1;
		long long end = now_ms() + 10000;
		while (now_ms() < end) {
			pump(5);
			if (waitpid(pid, &status, WNOHANG) == pid)
				break;
		}
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}

	snprintf(p2, sizeof(p2), "%s/none.ctl", dir);
	CHECK_EQ(ctl_conn_open(p2, 1000, &conn, msg, sizeof(msg)), -ENOENT);
	CHECK(strstr(msg, "is vdiskd running") != NULL);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p2);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	CHECK_EQ(ctl_conn_open(p2, 1000, &conn, msg, sizeof(msg)), -ECONNREFUSED);
	CHECK(strstr(msg, "not running") != NULL);
	unlink(p2);

	/* a listener that never speaks */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0);
	CHECK_EQ(ctl_conn_open(p2, 200, &conn, msg, sizeof(msg)), -ETIMEDOUT);
	CHECK(strstr(msg, "vdiskd control socket") != NULL);
	close(fd);
	unlink(p2);

	/* a listener that greets like something else: a child serves it */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		alarm(10);
		for (int i = 0; i < 3; i++) {
			int cfd = accept(fd, NULL, NULL);
			static const char *const greet[] = {
				"SSH-2.0-OpenSSH_9.2\r\n", "{\"other\":{\"v\":1}}\n",
				"{\"vdiskd\":{\"version\":\"9\",\"protocol\":2}}\n",
			};
			if (cfd < 0 || write(cfd, greet[i], strlen(greet[i])) < 0)
				_exit(1);
			usleep(100000);
			close(cfd);
		}
		_exit(0);
	}
	CHECK_EQ(ctl_conn_open(p2, 2000, &conn, msg, sizeof(msg)), -EPROTO);
	CHECK(strstr(msg, "not a vdiskd") != NULL);
	CHECK_EQ(ctl_conn_open(p2, 2000, &conn, msg, sizeof(msg)), -EPROTO);
	CHECK_EQ(ctl_conn_open(p2, 2000, &conn, msg, sizeof(msg)), -ENOTSUP);
	CHECK(strstr(msg, "protocol 2") != NULL);
	waitpid(pid, NULL, 0);
	close(fd);
	unlink(p2);
}

int main(void)
{
	char image[128], path[128];
	struct vbd_config cfg = { .name = "t", .driver = "raw", .cache = VBD_CACHE_WRITEBACK };
	struct ctl_server *srv;
	struct vbd *vbd;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	log_init("test-ctl-server", LOG_LVL_WARN, LOG_SINK_STDERR);
	snprintf(dir, sizeof(dir), "/tmp/test-ctl-server.XXXXXX");
	REQUIRE(mkdtemp(dir));
	snprintf(image, sizeof(image), "%s/disk.img", dir);
	fd = open(image, O_CREAT | O_RDWR, 0600);
	REQUIRE(fd >= 0 && ftruncate(fd, 4 << 20) == 0);
	close(fd);
	cfg.image = image;
	base = event_base_new();
	REQUIRE(base);
	if (vbd_open(base, &cfg, &vbd) < 0) {
		printf("SKIP: cannot open a raw image in %s\n", dir);
		return 77;
	}

	test_socket_file(vbd);
	snprintf(path, sizeof(path), "%s/d.ctl", dir);
	srv = server(vbd, path);
	test_commands(vbd, path);
	test_bad_input(path);
	test_peercred(path);
	test_client_cap(path);
	test_async(vbd, path);
	test_client_lib(path);
	test_shutdown(path);
	ctl_server_free(srv);
	test_free_while_running(vbd);

	vbd_close(vbd);
	event_base_free(base);
	unlink(image);
	{
		char f[160];
		snprintf(f, sizeof(f), "%s/file.ctl", dir);
		unlink(f);
	}
	rmdir(dir);
	return test_done("test-ctl-server");
}
