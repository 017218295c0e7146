/* Shared by the libFuzzer targets in tests/fuzz/ (see docs/architecture.md,
 * "Testing").  Each target is one fuzz-NAME.c with LLVMFuzzerTestOneInput;
 * `make fuzz` builds them into build-fuzz/fuzz/, and
 * tests/integration/test-fuzz.sh runs each for $FUZZ_SECONDS on its seed
 * corpus tests/fuzz/corpus/NAME/.  A property that does not hold is a
 * finding: FUZZ_ASSERT aborts, so libFuzzer saves the input. */
#ifndef VD_FUZZ_H
#define VD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* A NUL-terminated copy of the input, for parsers of C strings. */
static inline char *fuzz_strdup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s) {
		memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}

#endif
