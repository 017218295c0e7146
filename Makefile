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
LDLIBS    += -laio -levent -levent_pthreads -luuid -ljansson -pthread

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS    += -fsanitize=address,undefined
endif

# Everything but the programs' entry points goes into one static library.
LIB_SRCS  := $(filter-out daemon/main.c control/vdiskctl.c, \
               $(wildcard daemon/*.c queue/*.c drivers/*.c frontends/*.c control/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB       := $(BUILD)/libvdisk.a
UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNITS     := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HELPER_SRCS := $(wildcard tests/lib/*.c)
HELPERS   := $(HELPER_SRCS:tests/lib/%.c=$(BUILD)/tests/%)
PROGS     := $(BUILD)/vdiskd $(BUILD)/vdiskctl

all: $(PROGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@echo "  AR      $@"
	@rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/vdiskd: $(BUILD)/daemon/main.o $(LIB)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/vdiskctl: $(BUILD)/control/vdiskctl.o $(LIB)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Test helpers (LD_PRELOAD shims end in -shim.c and become shared objects).
$(BUILD)/tests/%-shim: tests/lib/%-shim.c
	@mkdir -p $(@D)
	@echo "  CC      $@.so"
	@$(CC) $(CPPFLAGS) -std=gnu11 $(WARN) $(CFLAGS) -fPIC -shared -o $@.so $< -ldl
	@touch $@

$(BUILD)/tests/%: $(BUILD)/tests/lib/%.o $(LIB)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: $(PROGS) $(UNITS) $(HELPERS)

check: tests
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) tests/run

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

.PHONY: all tests check install clean
.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
