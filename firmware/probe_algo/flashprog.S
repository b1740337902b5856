/*
 * flashprog.S - sector erase and word programming of the STM32F7 flash from an SRAM buffer,
 * run on the target by the rig through the debug probe (rig/flash_write.py). One run erases
 * and programs a whole sector from a buffer the rig wrote with one block write, instead of a
 * debugger round trip per 1 KiB page as pyOCD's flash algorithm does.
 *
 * Position-independent: no literal pool, no absolute address but the FLASH registers, only
 * relative branches (built into rig/algo/flashprog.bin by `make -C firmware probe-algo`).
 * No stack is used and nothing is called. Register semantics from RM0410 section 3.7
 * (FLASH_KEYR, FLASH_SR, FLASH_CR): unlock with the two keys when CR.LOCK is set, clear the
 * status flags (write 1), then per descriptor:
 *   cr with SER set:  CR = cr; CR = cr | STRT; wait for SR.BSY clear   (sector erase)
 *   cr == 0:          CR = PSIZE x32 | PG; each word: store, DSB, wait for SR.BSY clear,
 *                     stop at the first error flag                      (programming)
 * then CR = 0; at the end (or the first error) CR = LOCK.
 *
 * In:  r0 = address of `count` descriptors {u32 cr; u32 dest; u32 src; u32 len; u32 sr_out}
 *      (word aligned; len a multiple of 4, dest and src word aligned)
 *      r1 = count
 * Out: sr_out of every descriptor run (FLASH_SR after it); r0 = 0 when all succeeded, else the
 *      1-based index of the descriptor that set an error flag (OPERR, WRPERR, PGAERR, PGPERR,
 *      ERSERR); then BKPT #0xAB: the core halts in debug state and the rig reads the results.
 */
    .syntax unified
    .thumb
    .text
    .global flash_program
    .type flash_program, %function
flash_program:
    movw    r7, #0x3C00             @ r7 = FLASH registers, 0x40023C00
    movt    r7, #0x4002
    ldr     r2, [r7, #0x10]         @ CR: LOCK is bit 31
    cmp     r2, #0
    bge     1f                      @ already unlocked (a second key write would lock it up)
    movw    r2, #0x0123
    movt    r2, #0x4567
    str     r2, [r7, #0x04]         @ KEYR = KEY1
    movw    r2, #0x89AB
    movt    r2, #0xCDEF
    str     r2, [r7, #0x04]         @ KEYR = KEY2
1:  movs    r6, #0                  @ r6 = descriptors done
2:  cmp     r6, r1
    beq     8f
    movs    r2, #0xF3
    str     r2, [r7, #0x0C]         @ SR: clear EOP, OPERR, WRPERR, PGAERR, PGPERR, ERSERR
    ldr     r2, [r0]                @ cr of this descriptor
    tst     r2, #2                  @ SER?
    beq     4f
    str     r2, [r7, #0x10]         @ erase: CR = cr (SER, SNB, PSIZE)
    orr     r2, r2, #0x10000
    str     r2, [r7, #0x10]         @ CR |= STRT
    dsb
3:  ldr     r3, [r7, #0x0C]
    tst     r3, #0x10000            @ BSY
    bne     3b
    b       6f
4:  movw    r2, #0x201              @ program: PSIZE x32, PG
    str     r2, [r7, #0x10]
    ldr     r3, [r0, #4]            @ dest
    ldr     r4, [r0, #8]            @ src
    ldr     r5, [r0, #12]           @ len
5:  cbz     r5, 6f
    ldr     r2, [r4], #4
    str     r2, [r3], #4
    dsb
51: ldr     r2, [r7, #0x0C]
    tst     r2, #0x10000            @ BSY
    bne     51b
    tst     r2, #0xF2               @ an error flag: stop here
    bne     6f
    subs    r5, r5, #4
    b       5b
6:  ldr     r3, [r7, #0x0C]         @ SR after the operation
    str     r3, [r0, #16]           @ sr_out
    movs    r2, #0
    str     r2, [r7, #0x10]         @ CR = 0: PG and SER off
    adds    r6, r6, #1
    tst     r3, #0xF2
    bne     9f                      @ r6 = 1-based index of the failed descriptor
    adds    r0, r0, #20
    b       2b
8:  movs    r6, #0                  @ all succeeded
9:  mov     r2, #0x80000000
    str     r2, [r7, #0x10]         @ CR = LOCK
    mov     r0, r6
    bkpt    #0xAB
    b       9b                      @ never reached: a debugger halted the core at the BKPT
    .size flash_program, . - flash_program
