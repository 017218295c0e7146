# vdiskd — a userspace storage daemon.  `make`, `make check`, `make install`.
PREFIX    ?= /usr/local
DESTDIR   ?=
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
UNITDIR   ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
BUILD     ?= build
VERSION   := 0.1.0

CC        ?= gcc
CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wno-unused-parameter -Wpointer-arith -Wformat=2
CPPFLAGS  += -D_GNU_SOURCE -DVDISKD_VERSION='"$(VERSION)"' -I. -MMD -MP
ALL_CFLAGS = -std=gnu11 -pthread $(WARN) $(CFLAGS)
GNUTLS_CFLAGS := $(shell pkg-config --cflags gnutls)
GNUTLS_LIBS   := $(shell pkg-config --libs gnutls)
CPPFLAGS  += $(GNUTLS_CFLAGS)
LDLIBS    += -laio -levent -levent_pthreads -luuid -ljansson $(GNUTLS_LIBS) -lrbd -lrados -pthread

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=address,undefined
endif
# ThreadSanitizer: its own build directory (it cannot share objects with
# the others); `make check TSAN=1` runs the tests that make sense under it.
ifeq ($(TSAN),1)
BUILD      := $(if $(filter build,$(BUILD)),build-tsan,$(BUILD))
ALL_CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS    += -fsanitize=thread
endif

# libFuzzer targets (tests/fuzz/): clang, its own build directory; every
# library is instrumented for coverage (fuzzer-no-link) and ASan + UBSan.
ifeq ($(FUZZ),1)
CC         := clang
BUILD      := $(if $(filter build,$(BUILD)),build-fuzz,$(BUILD))
ALL_CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=address,undefined
endif

.DEFAULT_GOAL := all

# One static library per layer, linked top down; scripts/check-layers
# fails the build when a file includes a layer above its own.
LAYERS    := common queue drivers core frontends control daemon tools
MAINS     := daemon/main.c tools/vdiskctl.c tools/vdisk-img.c
define layer_lib
$(1)_SRCS := $$(filter-out $$(MAINS),$$(wildcard $(1)/*.c))
$(1)_LIB  := $$(BUILD)/lib$(1).a
$$($(1)_LIB): $$($(1)_SRCS:%.c=$$(BUILD)/%.o)
	@echo "  AR      $$@"
	@rm -f $$@ && $$(AR) rcs $$@ $$^
endef
$(foreach l,$(LAYERS),$(eval $(call layer_lib,$(l))))
# Top first, so each library finds what it needs in the ones after it.
DAEMON_LIBS := $(daemon_LIB) $(control_LIB) $(frontends_LIB) $(core_LIB) \
               $(drivers_LIB) $(queue_LIB) $(common_LIB)
TOOLS_LIBS  := $(tools_LIB) $(drivers_LIB) $(queue_LIB) $(common_LIB)
ALL_LIBS    := $(tools_LIB) $(DAEMON_LIBS)
UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNITS     := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HELPER_SRCS := $(wildcard tests/lib/*.c)
HELPERS   := $(HELPER_SRCS:tests/lib/%.c=$(BUILD)/tests/%)
PROGS     := $(BUILD)/vdiskd $(BUILD)/vdiskctl $(BUILD)/vdisk-img
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
FUZZERS   := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)

all: $(PROGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/vdiskd: $(BUILD)/daemon/main.o $(DAEMON_LIBS)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/vdiskctl: $(BUILD)/tools/vdiskctl.o $(TOOLS_LIBS)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/vdisk-img: $(BUILD)/tools/vdisk-img.o $(TOOLS_LIBS)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Test helpers (LD_PRELOAD shims end in -shim.c and become shared objects).
$(BUILD)/tests/%-shim: tests/lib/%-shim.c
	@mkdir -p $(@D)
	@echo "  CC      $@.so"
	@$(CC) $(CPPFLAGS) -std=gnu11 $(WARN) $(CFLAGS) -fPIC -shared -o $@.so $< -ldl
	@touch $@

$(BUILD)/tests/%: $(BUILD)/tests/lib/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: $(PROGS) $(UNITS) $(HELPERS)

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(ALL_LIBS)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# `make fuzz` builds build-fuzz/fuzz/fuzz-*; make check runs them for
# $(FUZZ_SECONDS) each (tests/integration/test-fuzz.sh).
ifeq ($(FUZZ),1)
fuzz: $(FUZZERS)
else
fuzz:
	@$(MAKE) --no-print-directory FUZZ=1 $(if $(filter-out build,$(BUILD)),BUILD=$(BUILD)) fuzz
endif

check: check-layers tests
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) TSAN=$(TSAN) tests/run

check-layers:
	@scripts/check-layers

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	           $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/vdiskd
	install -m 0755 $(PROGS) $(DESTDIR)$(SBINDIR)/
	install -m 0644 $(wildcard man/*.8) $(DESTDIR)$(MANDIR)/man8/
	$(if $(wildcard man/*.5),install -m 0644 $(wildcard man/*.5) $(DESTDIR)$(MANDIR)/man5/)
	@# The units name /usr/sbin and /etc/vdiskd; point them where we install.
	for f in $(wildcard scripts/*.service scripts/*.socket); do \
	    sed -e 's|/usr/sbin/|$(SBINDIR)/|g' -e 's|/etc/vdiskd/|$(SYSCONFDIR)/vdiskd/|g' \
	        "$$f" >"$(DESTDIR)$(UNITDIR)/$${f##*/}" && \
	    chmod 0644 "$(DESTDIR)$(UNITDIR)/$${f##*/}" || exit 1; \
	done
	$(if $(wildcard scripts/example.conf.sample),install -m 0644 \
	    scripts/example.conf.sample $(DESTDIR)$(SYSCONFDIR)/vdiskd/)

clean:
	rm -rf $(BUILD) build-*

.PHONY: all tests check check-layers install clean fuzz
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
