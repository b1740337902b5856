/* Exception entry and return of the common case, in C (twin/exc_fast.py): one call instead
 * of the Python model's register batches, frame packing and vector read (~22 us of host
 * time an interrupt in Python, against ~7.5 us with these: benchmarks/bench_periph.py).
 *
 * The Python model (twin/exc_entry.py) decides everything that needs its state: which
 * exception is taken, whether the return is legal for the active list, the D-cache's lines
 * and the MPU (asked before a frame is touched: `plan`), the flash's pending fix-ups. These
 * functions do only the mechanical part, and only in the plain case: a basic (integer)
 * frame, wholly inside one memory region (a writable one for stacking), a vector with the
 * Thumb bit, a stacked xPSR that agrees with EXC_RETURN. Anything else returns non-zero *before changing anything*, and the Python
 * model does it the long way (faults, FP frames, INVPC ...). The register writes keep the
 * Python model's order (twin/core_regs.py write_context): SP after the xPSR and CONTROL
 * that bank it, the PC last with the Thumb bit in bit 0.
 *
 * Memory is the twin's own buffers (twin/memory.py), which unicorn maps with mem_map_ptr:
 * the same bytes the CPU sees. Built and loaded with the other hooks by twin/native.py.
 */
#include <stdint.h>

typedef int (*uc_batch_fn)(void *uc, int *regs, void **vals, int count);

#define EF_REGIONS 12

/* unicorn's register ids, in this order (twin/exc_fast.py fills them) */
enum { R0, R1, R2, R3, R12, LR, PC, SP, XPSR, CONTROL, PSP, FAULTMASK, N_IDS };

struct ef_region {
    uint32_t base;
    uint32_t size;
    uint8_t *ptr;
    int32_t writable;        /* stacking may land here */
};

struct exc_fast {
    uc_batch_fn read_batch;
    uc_batch_fn write_batch;
    int32_t id[N_IDS];
    int32_t n;
    struct ef_region region[EF_REGIONS];
    uint32_t frame_ptr;      /* out: where ef_enter stacked (or would), where ef_return unstacks */
    uint32_t frame[8];       /* out: the frame ef_enter stacked (or would) */
    int32_t priv;            /* out: the frame's access is privileged (the MPU's question) */
};

static uint8_t *at(struct exc_fast *e, uint32_t address, uint32_t length, int write)
{
    for (int i = 0; i < e->n; i++) {
        struct ef_region *r = &e->region[i];
        if (address >= r->base && (uint64_t)address + length <= (uint64_t)r->base + r->size)
            return (write && !r->writable) ? 0 : r->ptr + (address - r->base);
    }
    return 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Read `n` registers (ids by index) into `out`. */
static int read_regs(void *uc, struct exc_fast *e, const int *which, int n, uint32_t *out)
{
    int ids[8];
    uint64_t vals[8] = {0};
    void *ptrs[8];
    for (int i = 0; i < n; i++) {
        ids[i] = e->id[which[i]];
        ptrs[i] = &vals[i];
    }
    if (e->read_batch(uc, ids, ptrs, n) != 0)
        return -1;
    for (int i = 0; i < n; i++)
        out[i] = (uint32_t)vals[i];
    return 0;
}

static int write_regs(void *uc, struct exc_fast *e, const int *which, const uint32_t *values, int n)
{
    int ids[16];
    uint64_t vals[16];
    void *ptrs[16];
    for (int i = 0; i < n; i++) {
        ids[i] = e->id[which[i]];
        vals[i] = values[i];
        ptrs[i] = &vals[i];
    }
    return e->write_batch(uc, ids, ptrs, n) != 0 ? -1 : 0;
}

/* Take exception `exc`: stack the basic frame on the stack in use, then SP, handler mode,
 * CONTROL (FPCA and SPSEL cleared), LR = EXC_RETURN, PC = the vector at VTOR.
 * 0: done (frame_ptr and frame say where and what); 1: not the plain case, nothing changed;
 * 3: `plan` was set: frame_ptr and frame say what it would stack, nothing changed (the
 * D-cache model sees the lines first, then the same call without `plan` stacks); -1: the
 * engine refused a register write after the frame was written. */
int ef_enter(void *uc, struct exc_fast *e, uint32_t exc, uint32_t vtor, uint32_t ccr, int32_t plan)
{
    static const int entry[] = {CONTROL, XPSR, R0, R1, R2, R3, R12, LR};
    static const int entry2[] = {PC, SP};
    uint32_t v[8], v2[2];
    if (read_regs(uc, e, entry, 8, v) || read_regs(uc, e, entry2, 2, v2))
        return 1;
    uint32_t control = v[0], xpsr = v[1], pc = v2[0], sp = v2[1];
    if (control & 4)
        return 1; /* an FP frame */
    int thread = (xpsr & 0x1FF) == 0;
    int use_psp = thread && (control & 2);
    uint32_t frame = sp - 0x20;
    if ((ccr & (1u << 9)) && (frame & 4)) {
        frame &= ~7u;
        xpsr |= 1u << 9;
    } else {
        xpsr &= ~(1u << 9);
    }
    uint8_t *dst = at(e, frame, 0x20, 1);
    const uint8_t *vec = at(e, vtor + 4 * exc, 4, 0);
    if (!dst || !vec)
        return 1;
    uint32_t vector = get32(vec);
    if (!(vector & 1))
        return 1; /* INVSTATE: the model logs and faults */
    uint32_t words[8] = {v[2], v[3], v[4], v[5], v[6], v[7], pc & ~1u, xpsr};
    e->frame_ptr = frame;
    e->priv = !thread || !(control & 1); /* stacking: at the interrupted code's level */
    for (int i = 0; i < 8; i++)
        e->frame[i] = words[i];
    if (plan)
        return 3;
    for (int i = 0; i < 8; i++)
        put32(dst + 4 * i, words[i]);
    uint32_t exc_return = 0xFFFFFFE1u | 0x10u | (thread ? 8u : 0u) | (use_psp ? 4u : 0u);
    static const int with_control[] = {SP, XPSR, CONTROL, LR, PC};
    static const int without[] = {SP, XPSR, LR, PC};
    if (control & 6) {
        uint32_t vals[] = {frame, 0x01000000u | exc, control & ~6u, exc_return, vector};
        return write_regs(uc, e, with_control, vals, 5);
    }
    uint32_t vals[] = {frame, 0x01000000u | exc, exc_return, vector};
    return write_regs(uc, e, without, vals, 4);
}

/* Return from the active exception `ipsr` (the model's innermost) to EXC_RETURN `value`:
 * unstack the basic frame, FAULTMASK cleared if `clear_fm`, CONTROL.SPSEL from `value`.
 * `nonbase_ok`: a return to thread mode is allowed (no other exception active, or
 * CCR.NONBASETHRDENA). 0: done; 1: not the plain case, nothing changed; 3: `plan` was set:
 * frame_ptr and priv say what it would read (the MPU's question), nothing changed; -1: the
 * engine refused the register write. */
int ef_return(void *uc, struct exc_fast *e, uint32_t value, uint32_t ipsr, int32_t nonbase_ok, int32_t clear_fm,
              int32_t plan)
{
    static const int peek[] = {XPSR, CONTROL, SP, PSP};
    uint32_t v[4];
    value |= 1;
    uint32_t low = value & 0xF;
    if ((value & 0xFFFFFFF0u) != 0xFFFFFFF0u || (low != 0x1 && low != 0x9 && low != 0xD))
        return 1; /* invalid, or an FP frame (bit 4 clear) */
    if (read_regs(uc, e, peek, 4, v))
        return 1;
    uint32_t xpsr = v[0], control = v[1];
    int to_thread = (value & 8) != 0, use_psp = (value & 4) != 0;
    if ((xpsr & 0x1FF) == 0 || (xpsr & 0x1FF) != ipsr || (to_thread && !nonbase_ok))
        return 1;
    uint32_t frame = use_psp ? v[3] : v[2];
    const uint8_t *src = at(e, frame, 0x20, 0);
    if (!src)
        return 1;
    uint32_t w[8];
    for (int i = 0; i < 8; i++)
        w[i] = get32(src + 4 * i);
    uint32_t stacked = w[7];
    if (to_thread != ((stacked & 0x1FF) == 0) || !(stacked >> 24 & 1))
        return 1; /* INVPC / INVSTATE: the model's */
    e->frame_ptr = frame;
    e->priv = !to_thread || !(control & 1); /* unstacking: at the level returned to */
    if (plan)
        return 3;
    uint32_t new_sp = frame + 0x20 + ((stacked & (1u << 9)) ? 4 : 0);
    control = (control & ~6u) | ((to_thread && use_psp) ? 2u : 0u);
    static const int order[] = {FAULTMASK, CONTROL, XPSR, SP, R0, R1, R2, R3, R12, LR, PC};
    uint32_t vals[] = {0, control, stacked & ~(1u << 9), new_sp, w[0], w[1], w[2], w[3], w[4], w[5], w[6] | 1u};
    return clear_fm ? write_regs(uc, e, order, vals, 11) : write_regs(uc, e, order + 1, vals + 1, 10);
}
