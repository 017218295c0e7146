/* LD_PRELOAD shim: counts a process's heap allocations.
 *
 * malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and
 * valloc each add one to a counter and then call glibc's own allocator
 * (its exported __libc_* entry points, so nothing here allocates and
 * free() needs no wrapper).  With ALLOC_COUNT_FILE=PATH the counter lives
 * in that file (8 bytes, native order, MAP_SHARED), so a test reads it
 * while the process runs, before and after the load it measures.
 *
 * Not for sanitizer builds: ASan and TSan bring their own allocator, and
 * handing theirs glibc's blocks would mix the two. */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);

static uint64_t early_calls;		/* before the file is mapped */
static uint64_t *calls = &early_calls;

__attribute__((constructor)) static void alloc_count_init(void)
{
	const char *path = getenv("ALLOC_COUNT_FILE");
	void *p;
	int fd;

	if (!path || !*path)
		return;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (ftruncate(fd, 4096) == 0) {
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			*(uint64_t *)p = early_calls;
			calls = p;
		}
	}
	close(fd);
}

static void count(void)
{
	__atomic_fetch_add(calls, 1, __ATOMIC_RELAXED);
}

void *malloc(size_t size)
{
	count();
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	count();
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	count();
	return __libc_realloc(p, size);
}

void *memalign(size_t align, size_t size)
{
	count();
	return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
	count();
	return __libc_memalign(align, size);
}

void *valloc(size_t size)
{
	count();
	return __libc_valloc(size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	count();
	p = __libc_memalign(align, size);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}
