/* jump.h - hand the core over to the application (see jump.c for the contract). */
#ifndef JUMP_H
#define JUMP_H

#include <stdint.h>

/* Quiesce the core and jump to the image whose vector table is at `base`. Call from
   thread mode with the transport and the UART already de-initialised. Never returns. */
void jump_to_app(uint32_t base) __attribute__((noreturn));

#endif /* JUMP_H */
