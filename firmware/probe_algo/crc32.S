/*
 * crc32.S - CRC-32 (zlib's: reflected, polynomial 0xEDB88320, init and final XOR 0xFFFFFFFF)
 * of flash ranges, run on the target by the rig through the debug probe (rig/flash_verify.py).
 *
 * Position-independent: no literal pool, no absolute address, only relative branches; the
 * rig loads it anywhere in SRAM (built into rig/algo/crc32.bin by `make -C firmware probe-algo`).
 * No stack is used and nothing is called.
 *
 * In:  r0 = address of `count` descriptors {u32 address; u32 length; u32 crc_out} (word aligned)
 *      r1 = count
 *      r2 = a 1 KiB word-aligned scratch buffer for the byte table (built here first)
 * Out: crc_out of every descriptor; r0 = CRC of the last range (0 if count is 0);
 *      then BKPT #0xAB: the core halts in debug state and the rig reads the results.
 */
    .syntax unified
    .thumb
    .text
    .global crc32_ranges
    .type crc32_ranges, %function
crc32_ranges:
    movw    r3, #0x8320             @ r3 = the reflected polynomial 0xEDB88320
    movt    r3, #0xEDB8
    movs    r4, #0                  @ r4 = table index i
1:  mov     r5, r4                  @ r5 = c = i
    movs    r6, #8
2:  lsrs    r5, r5, #1              @ c >>= 1, carry = the bit shifted out
    it      cs
    eorcs   r5, r5, r3              @ c ^= poly if it was 1
    subs    r6, r6, #1
    bne     2b
    str     r5, [r2, r4, lsl #2]    @ table[i] = c
    adds    r4, r4, #1
    cmp     r4, #256
    bne     1b
    movs    r6, #0                  @ r6 = the last CRC (none yet)
3:  cbz     r1, 9f                  @ every range done
    ldr     r4, [r0]                @ r4 = address
    ldr     r5, [r0, #4]            @ r5 = length
    mvn     r6, #0                  @ crc = 0xFFFFFFFF
    cbz     r5, 5f
4:  ldrb    r7, [r4], #1            @ one byte
    eors    r7, r7, r6
    uxtb    r7, r7
    ldr     r7, [r2, r7, lsl #2]    @ table[(crc ^ b) & 0xFF]
    eor     r6, r7, r6, lsr #8      @ crc = table[...] ^ (crc >> 8)
    subs    r5, r5, #1
    bne     4b
5:  mvns    r6, r6                  @ final XOR
    str     r6, [r0, #8]            @ crc_out
    adds    r0, r0, #12
    subs    r1, r1, #1
    b       3b
9:  mov     r0, r6
    bkpt    #0xAB
    b       9b                      @ never reached: a debugger halted the core at the BKPT
    .size crc32_ranges, . - crc32_ranges
