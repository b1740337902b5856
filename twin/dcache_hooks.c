/* The D-cache model's memory hooks (twin/dcache.py, docs/twin-cache.md), in C.
 *
 * Unicorn calls a memory hook for every load and store in the cacheable ranges while the
 * D-cache is on; through Python that costs ~0.6-1.4 us an access (firmware that keeps its
 * stack in SRAM2 with the D-cache on ran 20-30x slower than with it off). These functions do
 * the same bookkeeping as twin/dcache_lines.py's Python hooks, on the same arrays:
 *
 *   flags[line]  HELD (the CPU read or allocated the line), DIRTY (it wrote it, write-back),
 *                SHADOW (memory's copy of the line differs from the CPU's: it is in shadow[])
 *   shadow[]     memory's copy of SHADOW lines, at the line's offset
 *   counts[0]    lines made HELD here (twin/dcache.py adjusts it when it forgets lines)
 *   counts[1]    lines given a SHADOW here
 *
 * A store hook runs before the store: the line as it was is memory's copy. Built and
 * loaded by twin/dcache_native.py; nothing else in the twin is native code.
 */
#include <stdint.h>
#include <string.h>

#define LINE 32u
enum { HELD = 1, DIRTY = 2, SHADOW = 4 };

struct dc_array {
    uint64_t base;    /* address of byte 0 of view[] */
    uint64_t size;    /* bytes */
    uint8_t *view;    /* the CPU's view: unicorn's memory for this range */
    uint8_t *flags;   /* one byte a line */
    uint8_t *shadow;  /* size bytes */
    uint64_t *counts; /* [0] lines made HELD, [1] lines given a SHADOW */
};

/* unicorn's uc_reg_read / uc_reg_write and its id of EPSR, set by dc_init (the library is
   not linked against libunicorn: the loader passes the functions it already has) */
typedef int (*uc_reg_fn)(void *uc, int regid, void *value);
static uc_reg_fn g_reg_read, g_reg_write;
static int g_epsr = -1;
#define EPSR_IT 0x0600FC00u

void dc_init(void *reg_read, void *reg_write, int epsr_id)
{
    g_reg_read = (uc_reg_fn)reg_read;
    g_reg_write = (uc_reg_fn)reg_write;
    g_epsr = epsr_id;
}

/* unicorn 2.1.4 calls cpu_restore_state() before a memory hook, which puts the IT state of
   the instruction doing the access into the CPU state; QEMU keeps that field zero while a
   translation block runs (the block writes it when it leaves one inside an IT block), so the
   value stays behind after the block and the code after an IT block ran as if inside it
   (tests/twin/test_unicorn_itstate.py). Zero it again, as QEMU expects. */
static inline void itstate_fix(void *uc)
{
    uint32_t v;
    if (g_reg_read && uc && g_reg_read(uc, g_epsr, &v) == 0 && (v & EPSR_IT)) {
        v &= ~EPSR_IT;
        g_reg_write(uc, g_epsr, &v);
    }
}

static inline uint64_t first_line(const struct dc_array *a, uint64_t address)
{
    return (address - a->base) / LINE;
}

static inline uint64_t last_line(const struct dc_array *a, uint64_t address, int size)
{
    return (address + (uint64_t)(size > 0 ? size : 1) - 1 - a->base) / LINE;
}

static inline void hold(struct dc_array *a, uint64_t i)
{
    if (!(a->flags[i] & HELD)) {
        a->flags[i] |= HELD;
        a->counts[0]++;
    }
}

static inline void make_dirty(struct dc_array *a, uint64_t i)
{
    a->flags[i] |= DIRTY;
    if (!(a->flags[i] & SHADOW)) { /* memory keeps the line before the write */
        memcpy(a->shadow + i * LINE, a->view + i * LINE, LINE);
        a->flags[i] |= SHADOW;
        a->counts[1]++;
    }
}

static inline int in_range(const struct dc_array *a, uint64_t address, int size)
{
    return address >= a->base && address + (uint64_t)size <= a->base + a->size;
}

/* Loads: the line is held (read-allocate). */
void dc_read(void *uc, int type, uint64_t address, int size, int64_t value, void *user_data)
{
    struct dc_array *a = user_data;
    itstate_fix(uc);
    (void)type, (void)value;
    if (!in_range(a, address, size))
        return;
    uint64_t i = first_line(a, address), j = last_line(a, address, size);
    hold(a, i);
    if (j != i)
        hold(a, j);
}

/* Write-back, no write-allocate: a store into a held line makes it dirty. */
void dc_write_back(void *uc, int type, uint64_t address, int size, int64_t value, void *user_data)
{
    struct dc_array *a = user_data;
    itstate_fix(uc);
    (void)type, (void)value;
    if (!in_range(a, address, size))
        return;
    uint64_t i = first_line(a, address), j = last_line(a, address, size);
    if ((a->flags[i] & (HELD | DIRTY)) == HELD)
        make_dirty(a, i);
    if (j != i && (a->flags[j] & (HELD | DIRTY)) == HELD)
        make_dirty(a, j);
}

/* Write-back write-allocate: a write miss allocates the line, which the store makes dirty. */
void dc_write_allocate(void *uc, int type, uint64_t address, int size, int64_t value, void *user_data)
{
    struct dc_array *a = user_data;
    itstate_fix(uc);
    (void)type, (void)value;
    if (!in_range(a, address, size))
        return;
    uint64_t i = first_line(a, address), j = last_line(a, address, size);
    if (!(a->flags[i] & DIRTY)) {
        hold(a, i);
        make_dirty(a, i);
    }
    if (j != i && !(a->flags[j] & DIRTY)) {
        hold(a, j);
        make_dirty(a, j);
    }
}

/* Write-through: memory gets the store too; where memory's copy is apart (SHADOW), patch it. */
void dc_write_through(void *uc, int type, uint64_t address, int size, int64_t value, void *user_data)
{
    struct dc_array *a = user_data;
    itstate_fix(uc);
    (void)type;
    if (!in_range(a, address, size) || size <= 0 || size > 8)
        return;
    uint64_t v = (uint64_t)value;
    for (int k = 0; k < size; k++) {
        uint64_t off = address + (uint64_t)k - a->base;
        if (a->flags[off / LINE] & SHADOW)
            a->shadow[off] = (uint8_t)(v >> (8 * k));
    }
}
