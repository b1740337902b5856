/* The twin's one code hook (twin/code_hook.py), in C: it counts a slice's instructions and
 * looks up each one in the UsageFault site tables (twin/usage_checks.py).
 *
 * Counting: unicorn's own count (emu_start's count) is a code hook too, and unicorn walks
 * its whole list of code hooks for every instruction while one hook covers all addresses;
 * a second hook per UsageFault site made every instruction pay for all of them (the twin's
 * Ethernet ran 3x slower with 46 sites), a second hook over all code ~20 % slower. So this
 * hook replaces unicorn's: it stops the slice before instruction budget + 1, as unicorn's
 * does, and the runner starts slices with count 0. With the address of the latest
 * instruction begun, the count says exactly how many retired (twin/code_hook.py retired).
 *
 * Sites: for each memory region an entry (32 bits) per halfword says what the instruction
 * starting there needs:
 *   0            nothing
 *   0x10 | reg   align: the base register reg must be word-aligned
 *   0x20 | reg   div:   the divisor register reg must not be zero (Python then looks at
 *                CCR.DIV_0_TRP)
 *   0x30 | reg   ldst:  while CCR.UNALIGN_TRP is set (unalign_trp), or in the Device memory
 *                spans (dev_lo/dev_hi) whatever the bit: the address of a
 *                word (bit 8) or halfword load/store must be a multiple of its size; base
 *                reg (15: Align(PC, 4)), bits 9-12 Rm (15: none), 13-14 its LSL, 15 add,
 *                16 index (the offset applies; else post-indexed: the base alone), 20-31
 *                the immediate offset
 * Unicorn calls code hooks only for instructions whose condition passed. When the register
 * says the instruction may fault, the hook calls back into Python, which stops the slice
 * before the instruction executes. Built and loaded with dcache_hooks.c by twin/native.py.
 *
 * Unmasking (twin/unmask.py): while ``watch`` is set (an exception is held back only by
 * PRIMASK, BASEPRI or FAULTMASK), the instruction after a CPSIE or an MSR asks Python
 * (``unmask``) whether an exception can be taken now, and if so the slice stops before it
 * (``unmasked``). This is here and not in a Python hook of its own because unicorn 2.1
 * compiles a direct call to the hook into translated code while only one code hook exists
 * (this one): a hook added later is never called from code translated before it.
 */
#include <stdint.h>

typedef int (*uc_reg_fn)(void *uc, int regid, void *value);
typedef int (*uc_stop_fn)(void *uc);
typedef void (*fault_fn)(uint64_t address, int kind, int reg, uint32_t value);
typedef int (*uc_mem_fn)(void *uc, uint64_t address, void *bytes, uint64_t size);
typedef int (*unmask_fn)(void);

#define MAX_REGIONS 8

struct ch_region {
    uint64_t base;
    uint64_t size;           /* bytes */
    const uint32_t *codes;   /* size / 2 entries */
};

struct code_hook {
    struct ch_region region[MAX_REGIONS];
    int32_t n;
    int32_t reg_id[16];      /* unicorn's id of r0..r15 */
    int32_t unalign_trp;     /* CCR.UNALIGN_TRP */
    int32_t n_dev;           /* Device memory spans (twin/device_memory.py) */
    uint32_t dev_lo[8], dev_hi[8];
    fault_fn on_fault;
    uc_reg_fn reg_read;
    uc_stop_fn emu_stop;
    uint64_t counter;        /* instructions begun this slice */
    uint64_t budget;         /* 0: no limit */
    uint64_t last;           /* the address of the latest one begun */
    uc_mem_fn mem_read;
    unmask_fn unmask;        /* Python: can an exception be taken now? */
    int32_t watch;           /* this slice is watched for unmasking */
    int32_t seen;            /* the instruction begun before was a CPSIE or an MSR */
    int32_t unmasked;        /* the slice stopped for an exception unmasking let in */
};

/* CPSIE (any of A/I/F; 16 bits) or MSR spec_reg, Rn (32 bits: 0xF38n 0x8xxx). */
static int unmasking(struct code_hook *h, void *uc, uint64_t address, uint32_t size)
{
    uint8_t b[4];
    if (h->mem_read(uc, address, b, size) != 0)
        return 0;
    uint32_t lo = (uint32_t)b[0] | (uint32_t)b[1] << 8;
    if (size == 2)
        return (lo & 0xFFF8u) == 0xB660u;
    return (lo & 0xFFF0u) == 0xF380u && (b[3] >> 4) == 0x8;
}

static int reg(struct code_hook *h, void *uc, int r, uint32_t *out)
{
    uint64_t v = 0; /* unicorn writes 32 bits of it */
    if (h->reg_read(uc, h->reg_id[r], &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* A load/store entry (0x30): its address when unaligned for its size, else 0 (never a
 * valid unaligned address). */
static uint32_t unaligned(struct code_hook *h, void *uc, uint64_t address, uint32_t c)
{
    uint32_t base, off, a, rm = (c >> 9) & 0xF;
    int rn = c & 0xF;
    if (rn == 15)
        base = ((uint32_t)address + 4u) & ~3u;
    else if (reg(h, uc, rn, &base) != 0)
        return 0;
    a = base;
    if (c & (1u << 16)) {
        if (rm == 15)
            off = c >> 20;
        else if (reg(h, uc, (int)rm, &off) != 0)
            return 0;
        else
            off <<= (c >> 13) & 3;
        a = (c & (1u << 15)) ? base + off : base - off;
    }
    return (a & ((c & 0x100) ? 3u : 1u)) ? a : 0;
}

void ch_code(void *uc, uint64_t address, uint32_t size, void *user_data)
{
    struct code_hook *h = user_data;
    h->last = address;
    if (h->budget && ++h->counter > h->budget) {
        h->emu_stop(uc);
        return;
    }
    if (h->watch) {
        if (h->seen) {
            h->seen = 0;
            if (h->unmask()) {  /* taken before this instruction, as on the chip */
                h->unmasked = 1;
                h->emu_stop(uc);
                return;
            }
        }
        h->seen = unmasking(h, uc, address, size);
    }
    for (int32_t k = 0; k < h->n; k++) {
        const struct ch_region *r = &h->region[k];
        uint64_t off = address - r->base;
        if (off >= r->size)
            continue;
        uint32_t c = r->codes[off >> 1];
        if (!c)
            return;
        int kind = (c >> 4) & 0xF, rn = c & 0xF;
        uint32_t v;
        if (kind == 3) {
            if (!h->unalign_trp && !h->n_dev)
                return;
            if ((v = unaligned(h, uc, address, c)) == 0)
                return;
            int hit = h->unalign_trp;
            for (int32_t d = 0; !hit && d < h->n_dev; d++)
                hit = v >= h->dev_lo[d] && v < h->dev_hi[d];
            if (hit)
                h->on_fault(address, kind, rn, v);
            return;
        }
        if (reg(h, uc, rn, &v) != 0)
            return;
        if ((kind == 1 && (v & 3u)) || (kind == 2 && v == 0))
            h->on_fault(address, kind, rn, v);
        return;
    }
}
