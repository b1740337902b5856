/* The twin's one code hook (twin/code_hook.py), in C: it counts a slice's instructions and
 * looks up each one in the UsageFault site tables (twin/usage_checks.py).
 *
 * Counting: unicorn's own count (emu_start's count) is a code hook too, and unicorn walks
 * its whole list of code hooks for every instruction while one hook covers all addresses;
 * a second hook per UsageFault site made every instruction pay for all of them (the twin's
 * Ethernet ran 3x slower with 46 sites), a second hook over all code ~20 % slower. So this
 * hook replaces unicorn's: it stops the slice before instruction budget + 1, as unicorn's
 * does, and the runner starts slices with count 0.
 *
 * Sites: for each memory region a byte per halfword says what the instruction starting
 * there needs:
 *   0            nothing
 *   0x10 | reg   align: the base register reg (0..12) must be word-aligned
 *   0x20 | reg   div:   the divisor register reg must not be zero (Python then looks at
 *                CCR.DIV_0_TRP)
 * Unicorn calls code hooks only for instructions whose condition passed. When the register
 * says the instruction may fault, the hook calls back into Python, which stops the slice
 * before the instruction executes. Built and loaded with dcache_hooks.c by twin/native.py.
 */
#include <stdint.h>

typedef int (*uc_reg_fn)(void *uc, int regid, void *value);
typedef int (*uc_stop_fn)(void *uc);
typedef void (*fault_fn)(uint64_t address, int kind, int reg, uint32_t value);

#define MAX_REGIONS 8

struct ch_region {
    uint64_t base;
    uint64_t size;           /* bytes */
    const uint8_t *codes;    /* size / 2 bytes */
};

struct code_hook {
    struct ch_region region[MAX_REGIONS];
    int32_t n;
    int32_t r0_id;           /* unicorn's id of r0 (r1..r12 follow) */
    fault_fn on_fault;
    uc_reg_fn reg_read;
    uc_stop_fn emu_stop;
    uint64_t counter;        /* instructions begun this slice */
    uint64_t budget;         /* 0: no limit */
};

void ch_code(void *uc, uint64_t address, uint32_t size, void *user_data)
{
    struct code_hook *h = user_data;
    (void)size;
    if (h->budget && ++h->counter > h->budget) {
        h->emu_stop(uc);
        return;
    }
    for (int32_t k = 0; k < h->n; k++) {
        const struct ch_region *r = &h->region[k];
        uint64_t off = address - r->base;
        if (off >= r->size)
            continue;
        uint8_t c = r->codes[off >> 1];
        if (!c)
            return;
        int kind = c >> 4, reg = c & 0xF;
        uint64_t v = 0; /* unicorn writes 32 bits of it */
        if (h->reg_read(uc, h->r0_id + reg, &v) != 0)
            return;
        if ((kind == 1 && ((uint32_t)v & 3u)) || (kind == 2 && (uint32_t)v == 0))
            h->on_fault(address, kind, reg, (uint32_t)v);
        return;
    }
}
