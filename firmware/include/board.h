/*
 * board.h - the small board layer every firmware image here links (bootloader, apps,
 * firmware/progs/<name>). NUCLEO-F767ZI wiring, reset clock (HSI 16 MHz, no PLL).
 *
 *   console: USART3 115200 8N1 on PD8 (TX) / PD9 (RX) = the ST-LINK virtual COM port;
 *            built with -DCONSOLE_UART=6: USART6 on PG14 (TX) / PG9 (RX), Arduino D1/D0
 *            (common/board.c has the table of instances)
 *   LD1 green PB0, LD2 blue PB7, LD3 red PB14   (active high)
 *   time base: DWT CYCCNT at the core clock     (counted in virtual time on the twin)
 *
 * Every wait on a hardware flag has a timeout; nothing here needs interrupts.
 */
#ifndef BOARD_H
#define BOARD_H

#include <stdarg.h>
#include <stdint.h>

#include "fwlib.h"

#define BOARD_CORE_HZ   16000000u  /* HSI reset clock; only board_clock_set() leaves it */
#define BOARD_UART_BAUD 115200u

/* Clocks for GPIOB, the console's GPIO port(s) and U(S)ART, LEDs as outputs (off), the
   console at 115200, DWT CYCCNT on. */
void board_init(void);
/* Undo board_init for a jump: drain and disable the console U(S)ART, reset it, clocks off,
   pins back to their reset mode, LEDs off. The DWT keeps counting. */
void board_deinit(void);
/* The RCC_AHB1ENR GPIO clock bits board_init turns on (LEDs' port B, the console's pins'
   ports): a driver that turns its own ports off again leaves these on. */
uint32_t board_gpio_clocks(void);

/* Core clock: BOARD_CORE_HZ (HSI, no PLL) unless raised. board_clock_set(hz) runs SYSCLK =
   HCLK = PCLK1/2 from the PLL fed by HSI for hz in 24..44 MHz (a multiple of 2 MHz; APB1
   runs at hz and allows 45 MHz without over-drive), with the flash wait states it needs, or back from HSI with the PLL off for BOARD_CORE_HZ.
   board_millis(), the console's baud rate and every wait budget follow. 0 ok, -1 if hz is
   not supported or the PLL did not lock (the clock is then HSI). The Ethernet MAC needs
   HCLK >= 25 MHz (RM0410), so the network driver raises it while the network is up. */
int board_clock_set(uint32_t hz);
uint32_t board_core_hz(void);

/* The console U(S)ART (USART3 unless CONSOLE_UART says another). putc drops the byte if
   TXE never comes (10 ms timeout). */
void console_putc(char c);
void console_write(const void *buf, uint32_t len);
void console_puts(const char *s);
/* Next received byte 0..255, or -1 if none arrived within timeout_ms. */
int  console_getc(uint32_t timeout_ms);
/* Wait until the last byte has left the shift register (TC), at most timeout_ms. */
void console_flush(uint32_t timeout_ms);

/* printf to the console: %d %i %u %x %X %c %s %p %%, 'l' and 'z' modifiers, width, '0' and '-'
   flags. "\n" is sent as "\r\n". At most 192 characters per call. */
void board_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds since board_init (wraps after 49 days). Call at least every 268 s so the
   32-bit CYCCNT (16 MHz) cannot wrap twice unseen. */
uint32_t board_millis(void);
uint32_t board_cycles(void);
void delay_ms(uint32_t ms);

/* LEDs: n = 1 (LD1 green PB0), 2 (LD2 blue PB7), 3 (LD3 red PB14). */
void led_set(unsigned n, int on);
void led_toggle(unsigned n);

/* Core state captured by the startup code at the very first instruction of Reset_Handler,
   before anything touched the stack: what the previous stage (bootloader) left behind. */
extern volatile uint32_t g_entry_msp;
extern volatile uint32_t g_entry_primask;
extern volatile uint32_t g_entry_ipsr;
extern volatile uint32_t g_entry_control;

/* Called by the default exception handler: prints the exception number on the console
   ("UNHANDLED EXCEPTION <n>") and parks the core with LD3 on. Programs may override it
   (it is weak). */
void board_unhandled_exception(uint32_t ipsr);

#endif /* BOARD_H */
