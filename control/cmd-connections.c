/* connections: every frontend connection, with whether it is encrypted
 * and who the TLS peer is (certificate DN or PSK identity). */
#include <errno.h>
#include <stdlib.h>

#include "control/ctl-int.h"

static int cmd_connections_exec(struct ctl_request *req)
{
	const struct ctl_daemon *d = req->d;
	struct ctl_conn_info *v = NULL;
	json_t *r = ctl_reply(req), *a;
	int n;

	if (!r)
		return -ENOMEM;
	if (!d->connections)
		return ctl_error(req, -ENOTSUP, "this daemon does not list connections");
	n = d->connections(d->arg, &v);
	if (n < 0)
		return n;
	a = json_array();
	for (int i = 0; a && i < n; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "id", json_integer(v[i].id));
		json_object_set_new(o, "peer", ctl_json_string(v[i].peer));
		json_object_set_new(o, "state", json_string(v[i].state));
		json_object_set_new(o, "tls", json_boolean(v[i].tls));
		if (v[i].tls) {
			json_object_set_new(o, "tls_peer", ctl_json_string(v[i].tls_peer));
			json_object_set_new(o, "tls_cipher", ctl_json_string(v[i].tls_cipher));
			json_object_set_new(o, "ktls", json_boolean(v[i].ktls));
		}
		json_array_append_new(a, o);
	}
	free(v);
	if (!a)
		return -ENOMEM;
	json_object_set_new(r, "tls", json_string(d->tls_mode ? d->tls_mode : "off"));
	json_object_set_new(r, "connections", a);
	return 0;
}

const struct ctl_cmd_entry cmd_connections_entry = {
	.name = "connections",
	.args = NULL,
	.usage = "connections",
	.exec = cmd_connections_exec,
	.quiet = true,
};
