/*
 * rtostest - a preemptive kernel the way FreeRTOS's Cortex-M7 (r0p1) port works, written here
 * (no FreeRTOS code), for the twin's exception model under an RTOS's load.
 *
 * What it shares with that port: tasks on PSP, context switches in PendSV (r4-r11 and
 * EXC_RETURN saved by software, s16-s31 too when the frame is extended), the first task
 * started by SVC, critical sections that raise BASEPRI to 0x50 between cpsid/cpsie and drop
 * it with one MSR in a function of its own (vPortExitCritical), a yield that pends PendSV
 * *inside* a critical section (as xTaskResumeAll does) and must be taken at that MSR, an
 * interrupt under BASEPRI (TIM1's update at 1 kHz: the HAL time base CubeMX puts on a TIMx
 * when an RTOS owns SysTick) that gives a semaphore from the ISR, the FPU on, I- and D-cache on.
 *
 * Task A waits for 300 ticks and hands each to task B through two semaphores; each task keeps
 * its own value in s0 and s16 (nothing else here uses the FPU: the firmware is soft-float), so
 * a frame stacked or switched wrong shows. A task that goes on past its yield (still blocked
 * after the exit from the critical section: the PendSV came late) is counted as "late".
 * Prints "RT: handoffs=<n> ticks=<n> late=<n> fp=<ok|BAD> <PASS|FAIL>" on USART3.
 */
#include <stdint.h>

#include "board.h"
#include "stm32f767.h"

#define ICSR         REG32(0xE000ED04u)
#define SHPR3        REG32(0xE000ED20u)
#define CPACR        REG32(0xE000ED88u)
#define NVIC_IPR8(n) (*(volatile uint8_t *)(uintptr_t)(0xE000E400u + (n)))
#define RCC_APB2ENR  REG32(0x40023844u)
#define TIM1_CR1     REG32(0x40010000u)
#define TIM1_DIER    REG32(0x4001000Cu)
#define TIM1_SR      REG32(0x40010010u)
#define TIM1_EGR     REG32(0x40010014u)
#define TIM1_PSC     REG32(0x40010028u)
#define TIM1_ARR     REG32(0x4001002Cu)
#define TIM1_UP_IRQ  25u
#define PENDSVSET    (1u << 28)
#define MAX_SYSCALL  0x50u
#define HANDOFFS     300u
#define STACK_WORDS  512u

enum { READY, BLOCKED };

struct tcb {
    uint32_t *sp; /* first: the PendSV handler stores it there */
    volatile int state;
};

struct sem {
    volatile int count;
    struct tcb *volatile waiter;
};

static uint32_t stacks[3][STACK_WORDS] __attribute__((aligned(8)));
static uint32_t vectors[16 + IRQN_COUNT] __attribute__((aligned(512))); /* TIM1's handler added */
static struct tcb tcbs[3]; /* A, B, idle */
struct tcb *volatile current;
static volatile uint32_t nesting;
static struct sem tick_sem, ping, pong, never;
static volatile uint32_t ticks, handoffs, late, fp_bad, done;

/* ---------------------------------------------------------------- critical sections */
static inline void enter_critical(void)
{
    __asm volatile("mov r0, %0\n cpsid i\n msr basepri, r0\n isb\n dsb\n cpsie i" ::"i"(MAX_SYSCALL)
                   : "r0", "memory");
    nesting++;
}

/* A function of its own, as vPortExitCritical: code translated long before a yield */
__attribute__((noinline)) static void exit_critical(void)
{
    if (--nesting == 0)
        __asm volatile("msr basepri, %0" ::"r"(0) : "memory");
}

static inline uint32_t raise_basepri(void)
{
    uint32_t old;
    __asm volatile("mrs %0, basepri\n mov r1, %1\n cpsid i\n msr basepri, r1\n isb\n dsb\n cpsie i"
                   : "=r"(old)
                   : "i"(MAX_SYSCALL)
                   : "r1", "memory");
    return old;
}

static inline void set_basepri(uint32_t v) { __asm volatile("msr basepri, %0" ::"r"(v) : "memory"); }

static inline void yield(void)
{
    ICSR = PENDSVSET;
    __asm volatile("dsb\n isb" ::: "memory");
}

/* ---------------------------------------------------------------- semaphores */
static void sem_take(struct sem *s)
{
    for (;;) {
        enter_critical();
        if (s->count > 0) {
            s->count--;
            exit_critical();
            return;
        }
        current->state = BLOCKED;
        s->waiter = current;
        yield(); /* pended inside the critical section ... */
        exit_critical(); /* ... taken here, before the next instruction */
        if (current->state == BLOCKED)
            late++;
    }
}

static void give_locked(struct sem *s)
{
    struct tcb *w = s->waiter;
    s->count++;
    if (w) { /* it takes the count when it runs */
        s->waiter = 0;
        w->state = READY;
        yield();
    }
}

static void sem_give(struct sem *s)
{
    enter_critical();
    give_locked(s);
    exit_critical();
}

static void sem_give_from_isr(struct sem *s)
{
    uint32_t old = raise_basepri();
    give_locked(s);
    set_basepri(old);
}

/* ---------------------------------------------------------------- the scheduler */
void select_next(void);
void select_next(void)
{
    struct tcb *a = &tcbs[0], *b = &tcbs[1];
    if (current == a && b->state == READY)
        current = b;
    else if (current == b && a->state == READY)
        current = a;
    else if (current->state != READY || current == &tcbs[2])
        current = a->state == READY ? a : b->state == READY ? b : &tcbs[2];
}

__attribute__((naked)) void PendSV_Handler(void)
{
    __asm volatile(".fpu fpv5-d16\n"
                   "mrs r0, psp\n isb\n"
                   "ldr r3, =current\n ldr r2, [r3]\n"
                   "tst r14, #0x10\n it eq\n vstmdbeq r0!, {s16-s31}\n"
                   "stmdb r0!, {r4-r11, r14}\n str r0, [r2]\n"
                   "stmdb sp!, {r0, r3}\n"
                   "mov r0, #0x50\n cpsid i\n msr basepri, r0\n dsb\n isb\n cpsie i\n"
                   "bl select_next\n"
                   "mov r0, #0\n msr basepri, r0\n"
                   "ldmia sp!, {r0, r3}\n"
                   "ldr r1, [r3]\n ldr r0, [r1]\n"
                   "ldmia r0!, {r4-r11, r14}\n"
                   "tst r14, #0x10\n it eq\n vldmiaeq r0!, {s16-s31}\n"
                   "msr psp, r0\n isb\n bx r14\n"
                   ".ltorg\n");
}

__attribute__((naked)) void SVC_Handler(void)
{
    __asm volatile("ldr r3, =current\n ldr r1, [r3]\n ldr r0, [r1]\n"
                   "ldmia r0!, {r4-r11, r14}\n msr psp, r0\n isb\n"
                   "mov r0, #0\n msr basepri, r0\n bx r14\n"
                   ".ltorg\n");
}

void TIM1_UP_TIM10_IRQHandler(void);
void TIM1_UP_TIM10_IRQHandler(void)
{
    TIM1_SR = 0;
    ticks++;
    sem_give_from_isr(&tick_sem);
}

/* ---------------------------------------------------------------- the FPU check */
static void fp_load(uint32_t v)
{
    __asm volatile(".fpu fpv5-d16\n vmov s0, %0\n vmov s16, %0" ::"r"(v) : "memory");
}

static void fp_check(uint32_t v)
{
    uint32_t s0, s16;
    __asm volatile(".fpu fpv5-d16\n vmov %0, s0\n vmov %1, s16" : "=r"(s0), "=r"(s16));
    if (s0 != v || s16 != v)
        fp_bad++;
}

/* ---------------------------------------------------------------- tasks */
static void task_a(void)
{
    fp_load(0x3F800000u); /* 1.0f */
    for (uint32_t i = 0; i < HANDOFFS; i++) {
        sem_take(&tick_sem);
        sem_give(&ping);
        sem_take(&pong);
        fp_check(0x3F800000u);
        handoffs++;
    }
    done = 1;
    sem_take(&never);
}

static void task_b(void)
{
    fp_load(0x40000000u); /* 2.0f */
    for (;;) {
        sem_take(&ping);
        fp_check(0x40000000u);
        sem_give(&pong);
    }
}

static void task_idle(void)
{
    while (!done)
        __asm volatile("wfi");
    TIM1_CR1 = 0;
    int ok = handoffs == HANDOFFS && late == 0 && fp_bad == 0;
    board_printf("RT: handoffs=%lu ticks=%lu late=%lu fp=%s %s\r\n", (unsigned long)handoffs,
                 (unsigned long)ticks, (unsigned long)late, fp_bad ? "BAD" : "ok", ok ? "PASS" : "FAIL");
    console_flush(100);
    for (;;)
        __asm volatile("wfi");
}

static void task_init(struct tcb *t, uint32_t *stack, void (*entry)(void))
{
    uint32_t *sp = stack + STACK_WORDS;
    *--sp = 0x01000000u;             /* xPSR: Thumb */
    *--sp = (uint32_t)(uintptr_t)entry; /* PC */
    *--sp = 0;                       /* LR: tasks never return */
    for (int i = 0; i < 5; i++)
        *--sp = 0;                   /* r12, r3-r0 */
    *--sp = 0xFFFFFFFDu;             /* EXC_RETURN: thread, PSP, basic frame */
    for (int i = 0; i < 8; i++)
        *--sp = 0;                   /* r11-r4 */
    t->sp = sp;
    t->state = READY;
}

int main(void)
{
    board_init();
    CPACR |= 0xFu << 20; /* CP10/CP11: the FPU for the tasks */
    __asm volatile("dsb\n isb");
    SCB_ICIALLU = 0;
    SCB->CCR |= SCB_CCR_IC;
    cpu_dcache_enable();
    board_printf("RT: start core=%lu\r\n", (unsigned long)board_core_hz());

    task_init(&tcbs[0], stacks[0], task_a);
    task_init(&tcbs[1], stacks[1], task_b);
    task_init(&tcbs[2], stacks[2], task_idle);
    current = &tcbs[0];
    SHPR3 |= 0xF0u << 16; /* PendSV lowest */

    /* the startup's table has no TIM1 handler: a copy in RAM with it */
    const uint32_t *flash_vectors = (const uint32_t *)(uintptr_t)SCB->VTOR;
    for (unsigned i = 0; i < 16 + IRQN_COUNT; i++)
        vectors[i] = flash_vectors[i];
    vectors[16 + TIM1_UP_IRQ] = (uint32_t)(uintptr_t)TIM1_UP_TIM10_IRQHandler;
    SCB->VTOR = (uint32_t)(uintptr_t)vectors;
    __asm volatile("dsb\n isb");

    /* TIM1 update at 1 kHz (its clock: PCLK2, doubled when APB2 is divided) */
    uint32_t hz = board_core_hz();
    uint32_t ppre2 = (RCC->CFGR >> 13) & 7u;
    uint32_t tim_hz = ppre2 < 4 ? hz : (hz >> (ppre2 - 3)) * 2u;
    RCC_APB2ENR |= 1u;
    (void)RCC_APB2ENR;
    TIM1_PSC = tim_hz / 1000000u - 1u;
    TIM1_ARR = 999u;
    TIM1_EGR = 1u;
    TIM1_SR = 0;
    TIM1_DIER = 1u;
    NVIC_IPR8(TIM1_UP_IRQ) = 0x60u; /* under BASEPRI 0x50: may give from the ISR */
    nvic_enable_irq(TIM1_UP_IRQ);
    TIM1_CR1 = 1u;

    __asm volatile("cpsie i\n cpsie f\n dsb\n isb\n svc 0\n nop");
    for (;;) {
    }
}
