/* vdiskd: serve one virtual disk.  Start-up, signals, shutdown. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/ctl.h"
#include "common/log.h"
#include "daemon/loop.h"
#include "daemon/options.h"
#include "daemon/sd-notify.h"
#include "daemon/socket-activation.h"
#include "daemon/status.h"
#include "core/vbd.h"
#include "daemon/watchdog.h"
#include "frontends/nbd.h"


struct daemon {
	struct event_base *base;
	struct vd_options opt;
	struct vbd *vbd;
	struct nbd_server *nbd;
	struct ctl_server *ctl;
	const char **listen;		/* the NBD server's, for info */
	struct event *sig_ev[3];
	struct event *stop_timer;
	struct sd_watchdog *watchdog;
	struct sa_listener activated[SA_MAX_FDS];	/* sockets from systemd */
	unsigned nr_activated;
	bool stopping;
	bool stuck;		/* I/O did not come back: exit, free nothing */
	int exit_code;
	int ready_fd;		/* daemonized: tells the parent we are up */
};

static void daemon_stop_flushed(void *arg, int err)
{
	struct daemon *d = arg;

	if (err) {
		log_errno(LOG_LVL_ERR, err, "final flush failed");
		d->exit_code = 1;
	}
	event_base_loopbreak(d->base);
}

static void daemon_stop_drained(void *arg, int err)
{
	struct daemon *d = arg;

	vbd_flush(d->vbd, daemon_stop_flushed, d);
}

static void daemon_stop_clients_gone(void *arg)
{
	struct daemon *d = arg;

	vbd_drain(d->vbd, daemon_stop_drained, d);
}

/* Clients or I/O did not finish in time.  With I/O still in the kernel
 * or queued, nothing may be freed or closed (the kernel would write into
 * freed buffers, a queued write would go to a closed fd): say what is
 * stuck and leave with exit 1, and let process exit reap the AIO. */
static void daemon_stop_timeout(int fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct vbd_stats st;

	vbd_get_stats(d->vbd, &st);
	log_msg(LOG_LVL_ERR, "shutdown did not finish in %u s: %llu request(s) in flight "
		"(%llu waiting for io_submit, %llu in the kernel, %llu held by limits), "
		"%u NBD connection(s); exiting without waiting", d->opt.shutdown_timeout,
		(unsigned long long)st.inflight, (unsigned long long)st.waiting,
		(unsigned long long)st.pending, (unsigned long long)st.throttled_now,
		nbd_server_nr_connections(d->nbd));
	d->stuck = st.inflight || st.waiting || st.pending;
	d->exit_code = 1;
	event_base_loopbreak(d->base);
}

/* Stop accepting, let in-flight requests finish, flush, exit. */
static void daemon_shutdown(void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = { (time_t)d->opt.shutdown_timeout, 0 };

	if (d->stopping)
		return;
	d->stopping = true;
	log_msg(LOG_LVL_INFO, "shutting down");
	sd_notify_send("STOPPING=1");
	vd_status_set_stopping(d->vbd);
	/* Held requests must run, or their connections never finish; an
	 * error now is answered, not a reason to pause again. */
	vbd_errors_report_all(d->vbd);
	vbd_resume(d->vbd);
	d->stop_timer = evtimer_new(d->base, daemon_stop_timeout, d);
	if (d->stop_timer)
		evtimer_add(d->stop_timer, &tv);
	nbd_server_shutdown(d->nbd, daemon_stop_clients_gone, d);
}

static int daemon_reload_tls(void *arg, char *msg, size_t msglen)
{
	struct daemon *d = arg;

	return nbd_server_reload_tls(d->nbd, msg, msglen);
}

static int daemon_connections(void *arg, struct ctl_conn_info **out)
{
	struct daemon *d = arg;
	unsigned max = nbd_server_nr_connections(d->nbd), n;
	struct nbd_conn_info *v = calloc(max ? max : 1, sizeof(*v));
	struct ctl_conn_info *c = calloc(max ? max : 1, sizeof(*c));

	if (!v || !c) {
		free(v);
		free(c);
		return -ENOMEM;
	}
	n = nbd_server_connections(d->nbd, v, max);
	for (unsigned i = 0; i < n; i++) {
		c[i].id = v[i].id;
		snprintf(c[i].peer, sizeof(c[i].peer), "%s", v[i].peer);
		c[i].state = v[i].state;
		c[i].tls = v[i].tls;
		c[i].ktls = v[i].ktls;
		snprintf(c[i].tls_peer, sizeof(c[i].tls_peer), "%s", v[i].tls_peer);
		snprintf(c[i].tls_cipher, sizeof(c[i].tls_cipher), "%s", v[i].tls_cipher);
	}
	free(v);
	*out = c;
	return (int)n;
}

static void daemon_signal(int sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		char msg[512];

		if (d->opt.tls == NBD_TLS_OFF) {
			log_msg(LOG_LVL_INFO, "SIGHUP ignored: TLS is off (use vdiskctl reopen "
				"for the image)");
			return;
		}
		log_msg(LOG_LVL_INFO, "SIGHUP: reloading the TLS credentials");
		nbd_server_reload_tls(d->nbd, msg, sizeof(msg));
		return;
	}
	if (d->stopping) {
		log_msg(LOG_LVL_NOTICE, "already shutting down");
		return;
	}
	log_msg(LOG_LVL_INFO, "%s received", strsignal(sig));
	daemon_shutdown(d);
}

static int daemon_signals(struct daemon *d)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

	signal(SIGPIPE, SIG_IGN);
	for (unsigned i = 0; i < 3; i++) {
		d->sig_ev[i] = evsignal_new(d->base, sigs[i], daemon_signal, d);
		if (!d->sig_ev[i] || evsignal_add(d->sig_ev[i], NULL) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Forks; the parent waits until the child says it is ready (exit 0) or
 * goes away (exit 1), so start-up errors reach the caller. */
static int daemon_background(struct daemon *d)
{
	int p[2];
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		ssize_t n = read(p[0], &c, 1);
		_exit(n == 1 ? 0 : 1);
	}
	close(p[0]);
	d->ready_fd = p[1];
	if (setsid() < 0)
		return -errno;
	return 0;
}

static void daemon_ready(struct daemon *d)
{
	sd_notify_send("READY=1");
	log_msg(LOG_LVL_NOTICE, "ready (%s)", d->nr_activated ?
		d->activated[0].label : d->opt.listen[0]);
	if (d->ready_fd >= 0) {
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			if (fd > STDERR_FILENO)
				close(fd);
		}
		log_init(d->opt.name, log_get_level(), LOG_SINK_SYSLOG);
		if (write(d->ready_fd, "r", 1) != 1)
			log_errno(LOG_LVL_WARN, errno, "cannot tell the parent we are ready");
		close(d->ready_fd);
		d->ready_fd = -1;
		if (chdir("/") < 0)
			log_errno(LOG_LVL_WARN, errno, "chdir /");
	}
}

static int daemon_start(struct daemon *d)
{
	struct vbd_config vc = {
		.name = d->opt.name, .image = d->opt.image, .driver = d->opt.driver,
		.read_only = d->opt.read_only, .cache = d->opt.cache,
		.queue_depth = d->opt.queue_depth, .poll_us = d->opt.poll_us,
		.submit_cpu = d->opt.submit_cpu,
		.limits = &d->opt.limits, .limit_group = d->opt.limit_group,
		.rundir = d->opt.rundir, .buffer_limit = d->opt.buffer_limit,
		.on_write_error = d->opt.on_write_error, .on_read_error = d->opt.on_read_error,
		.ceph_conf = d->opt.ceph_conf, .ceph_id = d->opt.ceph_id,
		.ceph_timeout = d->opt.ceph_timeout, .ceph_op_timeout = d->opt.ceph_op_timeout,
	};
	struct nbd_server_opts no = {
		.export_name = d->opt.name,
		.max_connections = d->opt.max_connections,
		.max_peer_connections = d->opt.max_peer_connections,
		.handshake_timeout_s = d->opt.handshake_timeout,
		.tls = {
			.mode = d->opt.tls,
			.certificates = d->opt.tls_certificates,
			.psk_file = d->opt.tls_psk,
			.verify_peer = d->opt.tls_verify_peer,
		},
	};
	struct ctl_daemon cd = {
		.shutdown = daemon_shutdown, .arg = d,
		.tls_mode = nbd_tls_mode_name(d->opt.tls),
		.reload_tls = d->opt.tls != NBD_TLS_OFF ? daemon_reload_tls : NULL,
		.connections = daemon_connections,
	};
	int r;

	d->base = event_base_new();
	if (!d->base)
		return -ENOMEM;
	r = daemon_signals(d);
	if (r < 0)
		return r;
	/* vbd_open and the driver have said why, once. */
	r = vbd_open(d->base, &vc, &d->vbd);
	if (r < 0)
		return r;
	r = nbd_server_create(d->base, d->vbd, &no, &d->nbd);
	if (r < 0) {
		/* TLS has said what is wrong with its files. */
		if (d->opt.tls == NBD_TLS_OFF || r == -ENOMEM)
			log_errno(LOG_LVL_ERR, r, "NBD server");
		return r;
	}
	for (unsigned i = 0; i < d->nr_activated; i++) {
		const struct sa_listener *l = &d->activated[i];
		r = nbd_server_listen_fd(d->nbd, l->fd, l->label);
		if (r < 0) {
			log_errno(LOG_LVL_ERR, r, "cannot serve socket %s from systemd", l->label);
			return r;
		}
		log_msg(LOG_LVL_INFO, "serving %s from systemd%s%s",
			l->label, l->name[0] ? " as " : "", l->name);
	}
	for (unsigned i = 0; i < d->opt.nr_listen; i++) {
		r = nbd_server_listen(d->nbd, d->opt.listen[i]);
		if (r < 0) {
			log_errno(LOG_LVL_ERR, r, "cannot listen on %s",
				  d->opt.listen[i]);
			return r;
		}
	}
	cd.vbd = d->vbd;
	cd.nr_listen = nbd_server_nr_listeners(d->nbd);
	d->listen = calloc(cd.nr_listen + 1, sizeof(*d->listen));
	if (!d->listen)
		return -ENOMEM;
	for (unsigned i = 0; i < cd.nr_listen; i++)
		d->listen[i] = nbd_server_listener(d->nbd, i);
	cd.listen = d->listen;
	r = ctl_server_create(d->base, d->opt.control, &cd, &d->ctl);
	if (r < 0) {
		if (r == -EADDRINUSE)
			log_msg(LOG_LVL_ERR, "control socket %s is in use: is another "
				"vdiskd serving this disk?", d->opt.control);
		else
			log_errno(LOG_LVL_ERR, r, "control socket %s",
				  d->opt.control);
		return r;
	}
	r = sd_watchdog_start(d->base, &d->watchdog);
	if (r == 0)
		r = vd_status_start(d->base, d->vbd);
	if (r < 0)
		log_errno(LOG_LVL_ERR, r, "watchdog and status timers");
	return r;
}

static void daemon_free(struct daemon *d)
{
	vd_status_stop();
	sd_watchdog_free(d->watchdog);
	if (d->ctl)
		ctl_server_free(d->ctl);
	if (d->nbd)
		nbd_server_free(d->nbd);
	if (d->vbd)
		vbd_close(d->vbd);
	for (unsigned i = 0; i < 3; i++)
		if (d->sig_ev[i])
			event_free(d->sig_ev[i]);
	if (d->stop_timer)
		event_free(d->stop_timer);
	if (d->base)
		event_base_free(d->base);
	free(d->listen);
	vd_options_free(&d->opt);
}

int main(int argc, char **argv)
{
	struct daemon d = { .ready_fd = -1 };
	int r;

	switch (vd_options_parse(&d.opt, argc, argv)) {
	case VD_OPT_OK: break;
	case VD_OPT_EXIT: return 0;
	case VD_OPT_USAGE: return 2;
	default: return 1;
	}
	log_set_level(d.opt.log_level);
	r = sa_listen_fds(d.activated, SA_MAX_FDS);
	if (r < 0) {
		vd_options_free(&d.opt);
		return 1;
	}
	d.nr_activated = (unsigned)r;
	d.opt.activated = d.nr_activated;
	if (vd_options_finish(&d.opt) < 0) {
		vd_options_free(&d.opt);
		return 1;
	}
	log_init(d.opt.name, d.opt.log_level,
		 getenv("JOURNAL_STREAM") ? LOG_SINK_JOURNAL : LOG_SINK_STDERR);

	if (!d.opt.foreground) {
		r = daemon_background(&d);
		if (r < 0) {
			log_errno(LOG_LVL_ERR, r, "cannot go to the background");
			goto out;
		}
	}
	r = daemon_start(&d);
	if (r < 0)
		goto out;
	daemon_ready(&d);
	daemon_loop(d.base, d.vbd, d.opt.poll_us);
	if (d.stuck) {
		ctl_server_free(d.ctl);		/* its socket goes; the rest stays */
		_exit(1);
	}
	log_msg(LOG_LVL_INFO, "stopped");
out:
	daemon_free(&d);
	return r < 0 ? 1 : d.exit_code;
}
