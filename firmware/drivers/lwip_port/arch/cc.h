/*
 * arch/cc.h - lwIP's compiler/platform glue for the ota-rig firmware (arm-none-eabi-gcc,
 * freestanding, Cortex-M7 little endian, no newlib).
 */
#ifndef LWIP_ARCH_CC_H
#define LWIP_ARCH_CC_H

#include <stdint.h>

#include "board.h"

/* gcc provides stdint.h, stddef.h and limits.h freestanding; inttypes.h and ctype.h are
   newlib's, so lwIP uses its own format macros and character classes. */
#define LWIP_NO_INTTYPES_H 1
#define LWIP_NO_CTYPE_H    1
#define X8_F  "02x"
#define U16_F "u"
#define S16_F "d"
#define X16_F "x"
#define U32_F "lu"
#define S32_F "ld"
#define X32_F "lx"
#define SZT_F "u"

#define BYTE_ORDER LITTLE_ENDIAN
#define lwip_htons(x) ((u16_t)__builtin_bswap16((u16_t)(x)))
#define lwip_htonl(x) ((u32_t)__builtin_bswap32((u32_t)(x)))

#define LWIP_PLATFORM_DIAG(x) do { board_printf x; } while (0)
void lwip_port_assert(const char *msg, int line, const char *file) __attribute__((noreturn));
#define LWIP_PLATFORM_ASSERT(x) lwip_port_assert((x), __LINE__, __FILE__)

uint32_t lwip_port_rand(void);
#define LWIP_RAND() lwip_port_rand()

#endif /* LWIP_ARCH_CC_H */
