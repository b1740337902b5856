# The thread-style bootloader (firmware/thread_bootloader/, boards/thread-bootloader.yaml,
# docs/lab.md) and the reference apps linked at another app base. Included by
# firmware/Makefile (after its variables), built by `make` (all) and `make thread`:
#   thread-bootloader.{elf,bin,map}            the correct one (0x08000000)
#   thread-bootloader-<variant>.{elf,bin,map}  one bug of the thread each (TB_VARIANTS)
#   apps-0x08100000/app-v<N>-<K>k.bin          the reference apps linked at its app base
# `make apps-at APP_BASE=0x...` builds the reference apps for any other app base into
# $(B)/apps-<APP_BASE>/ (tests_hil/conftest.py looks there for a board whose app slot is not
# the reference's 0x08040000).

TB_SRC      := $(sort $(wildcard thread_bootloader/*.c))
TB_VARIANTS := chunk-start no-app-erase
TB_APP_BASE := 0x08100000
# the network objects: the Ethernet transport (lwIP on the ETH MAC), no WiFi
TB_NET_OBJ  := $(or $(ETH_OBJ),$(DRIVER_OBJ))

# $(1) = output stem, $(2) = object dir, $(3) = extra CFLAGS
define TB_template
$(2)/%.o: thread_bootloader/%.c $(wildcard include/*.h drivers/*.h thread_bootloader/*.h) $(LWIP_HDRS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $(3) -Ithread_bootloader -c $$< -o $$@

$(B)/$(1).elf: $(TB_SRC:thread_bootloader/%.c=$(2)/%.o) $(COMMON_OBJ) $(TB_NET_OBJ) ld/bootloader.ld ld/sections.ld
	$$(CC) $$(LDFLAGS) -Tbootloader.ld -Wl,-Map=$(B)/$(1).map \
	    $(TB_SRC:thread_bootloader/%.c=$(2)/%.o) $(COMMON_OBJ) $(TB_NET_OBJ) $$(LDLIBS) -o $$@
endef

$(eval $(call TB_template,thread-bootloader,$(B)/obj/tb,-DTB_VARIANT_NAME=\"correct\"))
$(foreach v,$(TB_VARIANTS),$(eval $(call TB_template,thread-bootloader-$(v),$(B)/obj/tb-$(v),\
    -DTB_VARIANT_$(call upper,$(v))=1 -DTB_VARIANT_NAME=\"$(v)\")))

.PHONY: thread apps-at
thread: $(B)/thread-bootloader.bin $(TB_VARIANTS:%=$(B)/thread-bootloader-%.bin)
	@$(MAKE) --no-print-directory apps-at APP_BASE=$(TB_APP_BASE)

all: thread

# The reference apps linked at APP_BASE: the same sources and sizes, app.ld's ORIGIN moved
# (and LENGTH cut at the end of the flash), built in their own build directory.
apps-at:
	@test -n "$(APP_BASE)" || { echo "usage: make apps-at APP_BASE=0x08100000"; exit 2; }
	@mkdir -p $(B)/apps-$(APP_BASE)/ld
	@sed -e 's/ORIGIN = 0x08040000, LENGTH = 1280K/ORIGIN = $(APP_BASE), LENGTH = $(shell printf 0x%X $$((0x08200000 - $(APP_BASE))))/' \
	    ld/app.ld > $(B)/apps-$(APP_BASE)/ld/app.ld.new
	@cmp -s $(B)/apps-$(APP_BASE)/ld/app.ld.new $(B)/apps-$(APP_BASE)/ld/app.ld || \
	    mv $(B)/apps-$(APP_BASE)/ld/app.ld.new $(B)/apps-$(APP_BASE)/ld/app.ld
	@rm -f $(B)/apps-$(APP_BASE)/ld/app.ld.new
	@grep -q 'ORIGIN = $(APP_BASE)' $(B)/apps-$(APP_BASE)/ld/app.ld || \
	    { echo "ld/app.ld: cannot move its ORIGIN to $(APP_BASE)"; exit 1; }
	@$(MAKE) --no-print-directory B=$(B)/apps-$(APP_BASE) \
	    LDFLAGS="$(ARCH) -nostdlib -nostartfiles -Wl,--gc-sections -Wl,--no-warn-rwx-segments -L$(B)/apps-$(APP_BASE)/ld -Lld" \
	    apps
