/* LD_PRELOAD shim: lets a libnbd program that only calls nbd_connect_uri
 * (fio's nbd engine) use URIs with tls-certificates= or tls-psk-file=.
 * libnbd refuses those unless the program has called
 * nbd_set_uri_allow_local_file, which fio does not; this calls it first.
 * Only for tests and benchmarks on credentials we made ourselves. */
#include <dlfcn.h>
#include <stdbool.h>

struct nbd_handle;
int nbd_connect_uri(struct nbd_handle *h, const char *uri);
int nbd_set_uri_allow_local_file(struct nbd_handle *h, bool allow);

int nbd_connect_uri(struct nbd_handle *h, const char *uri)
{
	int (*real)(struct nbd_handle *, const char *) =
		(int (*)(struct nbd_handle *, const char *))dlsym(RTLD_NEXT, "nbd_connect_uri");
	int (*allow)(struct nbd_handle *, bool) =
		(int (*)(struct nbd_handle *, bool))dlsym(RTLD_NEXT,
							  "nbd_set_uri_allow_local_file");

	if (allow)
		allow(h, true);
	return real ? real(h, uri) : -1;
}
