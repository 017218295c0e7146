/* Listen address parsing. */
#include <errno.h>
#include <string.h>

#include "common/addr.h"
#include "tests/lib/test.h"

static void good(const char *s, bool is_unix, const char *a, const char *port)
{
	struct vd_addr ad;

	CHECK_EQ(vd_addr_parse(s, &ad), 0);
	CHECK(ad.is_unix == is_unix);
	if (is_unix) {
		CHECK(strcmp(ad.path, a) == 0);
	} else {
		CHECK(strcmp(ad.host, a) == 0);
		CHECK(strcmp(ad.port, port) == 0);
	}
}

int main(void)
{
	struct vd_addr ad;
	char longpath[200];

	good("unix:/run/vdiskd/disk.nbd", true, "/run/vdiskd/disk.nbd", NULL);
	good("unix:rel.sock", true, "rel.sock", NULL);
	good("tcp:127.0.0.1:10809", false, "127.0.0.1", "10809");
	good("tcp:localhost:0", false, "localhost", "0");
	good("tcp:[::1]:10809", false, "::1", "10809");
	good("tcp:[fe80::1%lo]:65535", false, "fe80::1%lo", "65535");
	good("tcp::10809", false, "", "10809");
	good("tcp:[]:10809", false, "", "10809");

	CHECK_EQ(vd_addr_parse("", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("unix:", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("/tmp/x", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("udp:1.2.3.4:5", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:host", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:host:", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:host:65536", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:host:123456", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:host:-1", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:host:10x", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:::1:10809", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:[::1:10809", &ad), -EINVAL);
	CHECK_EQ(vd_addr_parse("tcp:[:10809", &ad), -EINVAL);

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	memcpy(longpath, "unix:", 5);
	CHECK_EQ(vd_addr_parse(longpath, &ad), -ENAMETOOLONG);

	return test_done("test-nbd-addr");
}
