/* The FLASH interface's two hot registers answered in C (twin/flash_fast.py): FLASH_SR and
 * FLASH_CR as a flash algorithm touches them around every programmed word (pyOCD's STM32F7
 * algorithm: read CR, write CR with PG, store the word, read SR until BSY clears, read CR,
 * write CR without PG, read SR for errors). Six of a word's seven device accesses were a
 * Python call each (~6 us of host time a word, 1.6 ms a 1 KiB page); the store itself still
 * goes to the Python flash model (NOR AND, PSIZE, protection, power cuts, the op log).
 *
 * The registers are the controller's own (twin/flash.py keeps SR and CR in a C-layout
 * struct): nothing is copied, nothing can drift. C answers only what has no side effect and
 * needs no other state:
 *   - a 32-bit read of SR while BSY is clear (a BSY read may jump time to the operation's end);
 *   - a 32-bit read of CR;
 *   - a 32-bit write of CR while unlocked that neither locks it, nor starts an erase, nor
 *     changes the interrupt enables (the interrupt line's level cannot change then).
 * Everything else, and everything while the MPU restricts some access to the page
 * (`restricted`: the protection model must be asked), while a raw store waits to be restored (`fixups`: the
 * bus restores them at any MMIO access) or while `off` is set, goes to the Python callbacks
 * the bus had mapped for this page, unchanged. Each access C answers counts one bus access on
 * the running slice (`ticks`), as the Python path does.
 */
#include <stdint.h>

typedef uint64_t (*mmio_read_fn)(void *uc, uint64_t offset, unsigned size, void *ud);
typedef void (*mmio_write_fn)(void *uc, uint64_t offset, unsigned size, uint64_t value, void *ud);

#define SR_BSY (1u << 16)
#define CR_STRT (1u << 16)
#define CR_IE ((1u << 24) | (1u << 25)) /* EOPIE, ERRIE */
#define CR_LOCK (1u << 31)
#define CR_WRITABLE 0x030183FFu

struct flash_regs {          /* twin/flash.py FlashRegs */
    uint32_t sr;
    uint32_t cr;
};

struct flash_fast {
    struct flash_regs *regs;
    const uint32_t *restricted;  /* twin/protection.py: nonzero while the MPU restricts an access to the page */
    const uint32_t *fixups;  /* twin/stores.py: nonzero while raw stores wait to be restored */
    uint64_t *ticks;         /* the running slice's count of bus accesses answered here */
    uint32_t sr_offset;      /* SR's and CR's offsets in the mapped 4 KiB page */
    uint32_t cr_offset;
    uint32_t off;            /* nonzero: every access goes to Python */
    uint32_t pad;
    uint64_t served;         /* accesses answered here (statistics, tests) */
    mmio_read_fn py_read;    /* the bus's callbacks for the page */
    void *py_read_ud;
    mmio_write_fn py_write;
    void *py_write_ud;
};

uint64_t ff_read(void *uc, uint64_t offset, unsigned size, void *ud)
{
    struct flash_fast *f = ud;
    if (size == 4 && !f->off && !*f->restricted && !*f->fixups) {
        uint32_t v;
        if (offset == f->sr_offset && !((v = f->regs->sr) & SR_BSY)) {
            f->served++;
            ++*f->ticks;
            return v;
        }
        if (offset == f->cr_offset) {
            f->served++;
            ++*f->ticks;
            return f->regs->cr;
        }
    }
    return f->py_read(uc, offset, size, f->py_read_ud);
}

void ff_write(void *uc, uint64_t offset, unsigned size, uint64_t value, void *ud)
{
    struct flash_fast *f = ud;
    if (size == 4 && offset == f->cr_offset && !f->off && !*f->restricted && !*f->fixups) {
        uint32_t v = (uint32_t)value, cr = f->regs->cr;
        if (!(cr & CR_LOCK) && !(v & (CR_LOCK | CR_STRT)) && !((cr ^ v) & CR_IE)) {
            f->regs->cr = v & CR_WRITABLE;
            f->served++;
            ++*f->ticks;
            return;
        }
    }
    f->py_write(uc, offset, size, value, f->py_write_ud);
}
