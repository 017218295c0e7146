/* cfg_parse_buf (daemon/config.h): any file contents.  Errors carry a
 * message; nothing leaks whatever the outcome. */
#include <errno.h>

#include "daemon/config.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz-config", LOG_LVL_ERR, LOG_SINK_STDERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vd_config cfg;
	char err[CFG_ERR_LEN];
	int r;

	err[0] = '\0';
	r = cfg_parse_buf(&cfg, "fuzz.conf", (const char *)data, size, err, sizeof(err));
	FUZZ_ASSERT(r == 0 || r == -EINVAL || r == -ENOMEM);
	if (r < 0)
		FUZZ_ASSERT(err[0] != '\0');
	else
		FUZZ_ASSERT(cfg.nr_listen <= VD_MAX_LISTEN);
	cfg_free(&cfg);
	return 0;
}
