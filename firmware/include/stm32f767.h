/*
 * stm32f767.h - the registers this project's firmware touches on the STM32F767ZI.
 *
 * Written for ota-rig from the register facts in shared/docs/stm32f767-facts.md
 * (offsets and bit positions per RM0410 / the Arm v7-M architecture). Only what the
 * bootloader, the apps and the test programs use is defined; add more as needed.
 * Access style: one packed struct per peripheral, `volatile uint32_t` members,
 * named reserved gaps, and a pointer macro per instance (RCC->CR, USART3->ISR...).
 */
#ifndef STM32F767_H
#define STM32F767_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* ---------------------------------------------------------------- memory map */
#define FLASH_BASE_ADDR     0x08000000u
#define FLASH_TOTAL_SIZE    0x00200000u  /* 2 MiB, single bank (nDBANK=1) */
#define RAM_BASE_ADDR       0x20000000u  /* DTCM + SRAM1 + SRAM2 contiguous */
#define RAM_TOTAL_SIZE      0x00080000u  /* 512 KiB */
#define RAM_END_ADDR        (RAM_BASE_ADDR + RAM_TOTAL_SIZE)
#define UID_BASE_ADDR       0x1FF0F420u  /* 96-bit unique ID, 3 words */
#define FLASHSIZE_ADDR      0x1FF0F442u  /* 16-bit, KiB */

#define PERIPH_APB1         0x40000000u
#define PERIPH_APB2         0x40010000u
#define PERIPH_AHB1         0x40020000u

/* ---------------------------------------------------------------- RCC */
typedef struct {
    volatile uint32_t CR;          /* 0x00 */
    volatile uint32_t PLLCFGR;     /* 0x04 */
    volatile uint32_t CFGR;        /* 0x08 */
    volatile uint32_t CIR;         /* 0x0C */
    volatile uint32_t AHB1RSTR;    /* 0x10 */
    volatile uint32_t AHB2RSTR;    /* 0x14 */
    volatile uint32_t AHB3RSTR;    /* 0x18 */
    uint32_t          _r0;         /* 0x1C */
    volatile uint32_t APB1RSTR;    /* 0x20 */
    volatile uint32_t APB2RSTR;    /* 0x24 */
    uint32_t          _r1[2];      /* 0x28 */
    volatile uint32_t AHB1ENR;     /* 0x30 */
    volatile uint32_t AHB2ENR;     /* 0x34 */
    volatile uint32_t AHB3ENR;     /* 0x38 */
    uint32_t          _r2;         /* 0x3C */
    volatile uint32_t APB1ENR;     /* 0x40 */
    volatile uint32_t APB2ENR;     /* 0x44 */
    uint32_t          _r3[10];     /* 0x48..0x6C */
    volatile uint32_t BDCR;        /* 0x70 */
    volatile uint32_t CSR;         /* 0x74 */
    uint32_t          _r4[3];      /* 0x78..0x80 */
    volatile uint32_t PLLI2SCFGR;  /* 0x84 */
    volatile uint32_t PLLSAICFGR;  /* 0x88 */
    volatile uint32_t DCKCFGR1;    /* 0x8C */
    volatile uint32_t DCKCFGR2;    /* 0x90 */
} rcc_t;
#define RCC ((rcc_t *)0x40023800u)

#define RCC_CR_HSION        (1u << 0)
#define RCC_CR_HSIRDY       (1u << 1)
#define RCC_CR_HSITRIM_MASK (0x1Fu << 3)
#define RCC_CR_HSEON        (1u << 16)
#define RCC_CR_HSERDY       (1u << 17)
#define RCC_CR_HSEBYP       (1u << 18)
#define RCC_CR_CSSON        (1u << 19)
#define RCC_CR_PLLON        (1u << 24)
#define RCC_CR_PLLRDY       (1u << 25)
#define RCC_CR_PLLI2SON     (1u << 26)
#define RCC_CR_PLLI2SRDY    (1u << 27)
#define RCC_CR_PLLSAION     (1u << 28)
#define RCC_CR_PLLSAIRDY    (1u << 29)
#define RCC_CFGR_SW_MASK    (3u << 0)
#define RCC_CFGR_SWS_MASK   (3u << 2)
#define RCC_PLLCFGR_RESET   0x24003010u
#define RCC_CSR_LSION       (1u << 0)
#define RCC_CSR_RMVF        (1u << 24)
#define RCC_CSR_PINRSTF     (1u << 26)
#define RCC_CSR_PORRSTF     (1u << 27)
#define RCC_CSR_SFTRSTF     (1u << 28)
#define RCC_CSR_IWDGRSTF    (1u << 29)

/* AHB1ENR */
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_AHB1ENR_GPIOBEN (1u << 1)
#define RCC_AHB1ENR_GPIOCEN (1u << 2)
#define RCC_AHB1ENR_GPIODEN (1u << 3)
#define RCC_AHB1ENR_GPIOGEN (1u << 6)
#define RCC_AHB1ENR_CRCEN   (1u << 12)
#define RCC_AHB1ENR_ETHMACEN   (1u << 25)
#define RCC_AHB1ENR_ETHMACTXEN (1u << 26)
#define RCC_AHB1ENR_ETHMACRXEN (1u << 27)
/* APB1ENR / APB1RSTR (a peripheral's reset bit in APBxRSTR is its enable bit's position) */
#define RCC_APB1ENR_USART3EN (1u << 18)
#define RCC_APB1ENR_PWREN    (1u << 28)
/* APB2ENR / APB2RSTR */
#define RCC_APB2ENR_USART6EN (1u << 5)
#define RCC_APB2ENR_SPI1EN   (1u << 12)
#define RCC_APB2ENR_SYSCFGEN (1u << 14)

/* ---------------------------------------------------------------- GPIO */
typedef struct {
    volatile uint32_t MODER;    /* 0x00 */
    volatile uint32_t OTYPER;   /* 0x04 */
    volatile uint32_t OSPEEDR;  /* 0x08 */
    volatile uint32_t PUPDR;    /* 0x0C */
    volatile uint32_t IDR;      /* 0x10 */
    volatile uint32_t ODR;      /* 0x14 */
    volatile uint32_t BSRR;     /* 0x18 */
    volatile uint32_t LCKR;     /* 0x1C */
    volatile uint32_t AFR[2];   /* 0x20, 0x24 */
} gpio_t;
#define GPIO_PORT(n) ((gpio_t *)(0x40020000u + 0x400u * (uint32_t)(n)))
#define GPIOA GPIO_PORT(0)
#define GPIOB GPIO_PORT(1)
#define GPIOC GPIO_PORT(2)
#define GPIOD GPIO_PORT(3)
#define GPIOE GPIO_PORT(4)
#define GPIOG GPIO_PORT(6)

#define GPIO_MODE_INPUT  0u
#define GPIO_MODE_OUTPUT 1u
#define GPIO_MODE_AF     2u
#define GPIO_MODE_ANALOG 3u

/* ---------------------------------------------------------------- USART (F7 layout) */
typedef struct {
    volatile uint32_t CR1;   /* 0x00 */
    volatile uint32_t CR2;   /* 0x04 */
    volatile uint32_t CR3;   /* 0x08 */
    volatile uint32_t BRR;   /* 0x0C */
    volatile uint32_t GTPR;  /* 0x10 */
    volatile uint32_t RTOR;  /* 0x14 */
    volatile uint32_t RQR;   /* 0x18 */
    volatile uint32_t ISR;   /* 0x1C */
    volatile uint32_t ICR;   /* 0x20 */
    volatile uint32_t RDR;   /* 0x24 */
    volatile uint32_t TDR;   /* 0x28 */
} usart_t;
#define USART3 ((usart_t *)0x40004800u)  /* APB1 */
#define USART6 ((usart_t *)0x40011400u)  /* APB2 */

#define USART_CR1_UE     (1u << 0)
#define USART_CR1_RE     (1u << 2)
#define USART_CR1_TE     (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_TCIE   (1u << 6)
#define USART_CR1_TXEIE  (1u << 7)
#define USART_ISR_PE     (1u << 0)
#define USART_ISR_FE     (1u << 1)
#define USART_ISR_NE     (1u << 2)
#define USART_ISR_ORE    (1u << 3)
#define USART_ISR_RXNE   (1u << 5)
#define USART_ISR_TC     (1u << 6)
#define USART_ISR_TXE    (1u << 7)
#define USART_ISR_TEACK  (1u << 21)
#define USART_ISR_REACK  (1u << 22)
#define USART_ICR_ALL    0x00121B5Fu  /* PE FE NC ORE IDLE TC LBD CTS RTO EOB CM WU */

/* ---------------------------------------------------------------- FLASH interface */
typedef struct {
    volatile uint32_t ACR;      /* 0x00 */
    volatile uint32_t KEYR;     /* 0x04 */
    volatile uint32_t OPTKEYR;  /* 0x08 */
    volatile uint32_t SR;       /* 0x0C */
    volatile uint32_t CR;       /* 0x10 */
    volatile uint32_t OPTCR;    /* 0x14 */
    volatile uint32_t OPTCR1;   /* 0x18 */
} flash_if_t;
#define FLASH_IF ((flash_if_t *)0x40023C00u)

#define FLASH_ACR_LATENCY (0xFu << 0)  /* wait states: one per 30 MHz of HCLK at 2.7-3.6 V */
#define FLASH_ACR_PRFTEN  (1u << 8)
#define FLASH_ACR_ARTEN   (1u << 9)

#define FLASH_KEY1        0x45670123u
#define FLASH_KEY2        0xCDEF89ABu
#define FLASH_SR_EOP      (1u << 0)
#define FLASH_SR_OPERR    (1u << 1)
#define FLASH_SR_WRPERR   (1u << 4)
#define FLASH_SR_PGAERR   (1u << 5)
#define FLASH_SR_PGPERR   (1u << 6)
#define FLASH_SR_ERSERR   (1u << 7)
#define FLASH_SR_BSY      (1u << 16)
#define FLASH_SR_ERRORS   (FLASH_SR_OPERR | FLASH_SR_WRPERR | FLASH_SR_PGAERR | \
                           FLASH_SR_PGPERR | FLASH_SR_ERSERR)
#define FLASH_CR_PG       (1u << 0)
#define FLASH_CR_SER      (1u << 1)
#define FLASH_CR_MER      (1u << 2)
#define FLASH_CR_SNB_POS  3u
#define FLASH_CR_SNB_MASK (0x1Fu << 3)
#define FLASH_CR_PSIZE_POS  8u
#define FLASH_CR_PSIZE_MASK (3u << 8)
#define FLASH_CR_PSIZE_X32  (2u << 8)
#define FLASH_CR_STRT     (1u << 16)
#define FLASH_CR_LOCK     (1u << 31)
#define FLASH_OPTCR_NDBANK (1u << 29)

/* ---------------------------------------------------------------- CRC unit */
typedef struct {
    volatile uint32_t DR;    /* 0x00 */
    volatile uint32_t IDR;   /* 0x04 */
    volatile uint32_t CR;    /* 0x08 */
    uint32_t          _r0;   /* 0x0C */
    volatile uint32_t INIT;  /* 0x10 */
    volatile uint32_t POL;   /* 0x14 */
} crc_t;
#define CRC_UNIT ((crc_t *)0x40023000u)
#define CRC_CR_RESET        (1u << 0)
#define CRC_CR_POLYSIZE_32  (0u << 3)
#define CRC_CR_REV_IN_BYTE  (1u << 5)
#define CRC_CR_REV_IN_WORD  (3u << 5)
#define CRC_CR_REV_OUT      (1u << 7)

/* ---------------------------------------------------------------- DMA1 / DMA2 */
typedef struct {
    volatile uint32_t CR, NDTR, PAR, M0AR, M1AR, FCR;
} dma_stream_t;
typedef struct {
    volatile uint32_t LISR, HISR, LIFCR, HIFCR;
    dma_stream_t S[8];
} dma_t;
#define DMA1 ((dma_t *)0x40026000u)
#define DMA2 ((dma_t *)0x40026400u)

/* ---------------------------------------------------------------- SPI (SPI1 for the WINC) */
typedef struct {
    volatile uint32_t CR1;     /* 0x00 */
    volatile uint32_t CR2;     /* 0x04 */
    volatile uint32_t SR;      /* 0x08 */
    volatile uint32_t DR;      /* 0x0C */
    volatile uint32_t CRCPR;   /* 0x10 */
    volatile uint32_t RXCRCR;  /* 0x14 */
    volatile uint32_t TXCRCR;  /* 0x18 */
    volatile uint32_t I2SCFGR; /* 0x1C */
    volatile uint32_t I2SPR;   /* 0x20 */
} spi_t;
#define SPI1 ((spi_t *)0x40013000u)
#define SPI_CR1_CPHA     (1u << 0)
#define SPI_CR1_CPOL     (1u << 1)
#define SPI_CR1_MSTR     (1u << 2)
#define SPI_CR1_BR_POS   3u
#define SPI_CR1_SPE      (1u << 6)
#define SPI_CR1_SSI      (1u << 8)
#define SPI_CR1_SSM      (1u << 9)
#define SPI_CR2_DS_8BIT  (7u << 8)
#define SPI_CR2_FRXTH    (1u << 12)
#define SPI_SR_RXNE      (1u << 0)
#define SPI_SR_TXE       (1u << 1)
#define SPI_SR_BSY       (1u << 7)

/* ---------------------------------------------------------------- EXTI / SYSCFG */
typedef struct {
    volatile uint32_t IMR;    /* 0x00 */
    volatile uint32_t EMR;    /* 0x04 */
    volatile uint32_t RTSR;   /* 0x08 */
    volatile uint32_t FTSR;   /* 0x0C */
    volatile uint32_t SWIER;  /* 0x10 */
    volatile uint32_t PR;     /* 0x14, write 1 to clear */
} exti_t;
#define EXTI ((exti_t *)0x40013C00u)

typedef struct {
    volatile uint32_t MEMRMP;     /* 0x00 */
    volatile uint32_t PMC;        /* 0x04 */
    volatile uint32_t EXTICR[4];  /* 0x08..0x14: 4 bits per line, port index */
    uint32_t          _r0;        /* 0x18 */
    volatile uint32_t CBR;        /* 0x1C */
    volatile uint32_t CMPCR;      /* 0x20 */
} syscfg_t;
#define SYSCFG ((syscfg_t *)0x40013800u)

/* ---------------------------------------------------------------- IWDG */
typedef struct {
    volatile uint32_t KR;    /* 0x00 */
    volatile uint32_t PR;    /* 0x04 */
    volatile uint32_t RLR;   /* 0x08 */
    volatile uint32_t SR;    /* 0x0C */
    volatile uint32_t WINR;  /* 0x10 */
} iwdg_t;
#define IWDG ((iwdg_t *)0x40003000u)
#define IWDG_KEY_START   0xCCCCu
#define IWDG_KEY_ACCESS  0x5555u
#define IWDG_KEY_RELOAD  0xAAAAu

/* ---------------------------------------------------------------- IRQ numbers used */
#define IRQN_RTC_WKUP   3
#define IRQN_FLASH      4
#define IRQN_RCC        5
#define IRQN_EXTI1      7
#define IRQN_SPI1       35
#define IRQN_USART3     39
#define IRQN_EXTI15_10  40
#define IRQN_ETH        61
#define IRQN_USART6     71
#define IRQN_COUNT      110  /* external IRQs 0..109 */
#define NVIC_WORDS      8    /* ICER/ICPR words cleared before a jump (covers 256 lines) */

/* ================================================================ Cortex-M7 core */
/* SysTick 0xE000E010 */
typedef struct {
    volatile uint32_t CTRL;
    volatile uint32_t LOAD;
    volatile uint32_t VAL;
    volatile uint32_t CALIB;
} systick_t;
#define SYSTICK ((systick_t *)0xE000E010u)
#define SYSTICK_CTRL_ENABLE    (1u << 0)
#define SYSTICK_CTRL_TICKINT   (1u << 1)
#define SYSTICK_CTRL_CLKSOURCE (1u << 2)
#define SYSTICK_CTRL_COUNTFLAG (1u << 16)

/* NVIC 0xE000E100 */
typedef struct {
    volatile uint32_t ISER[8];   /* 0x000 */
    uint32_t          _r0[24];
    volatile uint32_t ICER[8];   /* 0x080 */
    uint32_t          _r1[24];
    volatile uint32_t ISPR[8];   /* 0x100 */
    uint32_t          _r2[24];
    volatile uint32_t ICPR[8];   /* 0x180 */
    uint32_t          _r3[24];
    volatile uint32_t IABR[8];   /* 0x200 */
    uint32_t          _r4[56];
    volatile uint8_t  IP[240];   /* 0x300 */
} nvic_t;
#define NVIC ((nvic_t *)0xE000E100u)

/* SCB 0xE000ED00 */
typedef struct {
    volatile uint32_t CPUID;    /* 0x00 */
    volatile uint32_t ICSR;     /* 0x04 */
    volatile uint32_t VTOR;     /* 0x08 */
    volatile uint32_t AIRCR;    /* 0x0C */
    volatile uint32_t SCR;      /* 0x10 */
    volatile uint32_t CCR;      /* 0x14 */
    volatile uint8_t  SHPR[12]; /* 0x18 */
    volatile uint32_t SHCSR;    /* 0x24 */
    volatile uint32_t CFSR;     /* 0x28 */
    volatile uint32_t HFSR;     /* 0x2C */
    volatile uint32_t DFSR;     /* 0x30 */
    volatile uint32_t MMFAR;    /* 0x34 */
    volatile uint32_t BFAR;     /* 0x38 */
    volatile uint32_t AFSR;     /* 0x3C */
    uint32_t          _r0[14];  /* 0x40..0x74 */
    volatile uint32_t CLIDR;    /* 0x78 */
    volatile uint32_t CTR;      /* 0x7C */
    volatile uint32_t CCSIDR;   /* 0x80 */
    volatile uint32_t CSSELR;   /* 0x84 */
    volatile uint32_t CPACR;    /* 0x88 */
} scb_t;
#define SCB ((scb_t *)0xE000ED00u)
#define SCB_ICSR_PENDSTCLR    (1u << 25)
#define SCB_ICSR_PENDSVCLR    (1u << 27)
#define SCB_ICSR_VECTACTIVE   0x1FFu
#define SCB_AIRCR_VECTKEY     (0x05FAu << 16)
#define SCB_AIRCR_PRIGROUP_MASK (7u << 8)
#define SCB_AIRCR_SYSRESETREQ (1u << 2)
#define SCB_CCR_UNALIGN_TRP   (1u << 3)
#define SCB_CCR_DC            (1u << 16)
#define SCB_CCR_IC            (1u << 17)
#define SCB_SHCSR_FAULTS_EN   (7u << 16)  /* MEMFAULTENA BUSFAULTENA USGFAULTENA */

/* Cache maintenance (write-only), 0xE000EF50.. */
#define SCB_ICIALLU  REG32(0xE000EF50u)
#define SCB_DCISW    REG32(0xE000EF60u)
#define SCB_DCCISW   REG32(0xE000EF74u)
#define SCB_DCIMVAC  REG32(0xE000EF5Cu)
#define SCB_DCCMVAC  REG32(0xE000EF68u)
#define DCACHE_LINE_SIZE 32u
#define SCB_STIR     REG32(0xE000EF00u)
#define CCSIDR_SETS(x)  (((x) >> 13) & 0x7FFFu)
#define CCSIDR_WAYS(x)  (((x) >> 3) & 0x3FFu)

/* MPU 0xE000ED90 */
typedef struct {
    volatile uint32_t TYPE;
    volatile uint32_t CTRL;
    volatile uint32_t RNR;
    volatile uint32_t RBAR;
    volatile uint32_t RASR;
} mpu_t;
#define MPU ((mpu_t *)0xE000ED90u)
#define MPU_CTRL_ENABLE     (1u << 0)
#define MPU_CTRL_HFNMIENA   (1u << 1)
#define MPU_CTRL_PRIVDEFENA (1u << 2)
#define MPU_RASR_ENABLE     (1u << 0)
#define MPU_RASR_SIZE(log2) ((uint32_t)((log2) - 1u) << 1)
#define MPU_RASR_XN         (1u << 28)
#define MPU_RASR_AP_FULL    (3u << 24)
#define MPU_RASR_AP_RO      (6u << 24)
#define MPU_RASR_TEX(n)     ((uint32_t)(n) << 19)
#define MPU_RASR_C          (1u << 17)
#define MPU_RASR_B          (1u << 16)
#define MPU_RASR_S          (1u << 18)
#define MPU_RASR_SRD(mask)  ((uint32_t)(mask) << 8)

/* Debug: CoreDebug DEMCR and DWT */
#define COREDEBUG_DHCSR  REG32(0xE000EDF0u)
#define COREDEBUG_DEMCR  REG32(0xE000EDFCu)
#define DEMCR_TRCENA     (1u << 24)
typedef struct {
    volatile uint32_t CTRL;    /* 0x00 */
    volatile uint32_t CYCCNT;  /* 0x04 */
} dwt_t;
#define DWT ((dwt_t *)0xE0001000u)
#define DWT_LAR          REG32(0xE0001FB0u)  /* lock access (unlock with 0xC5ACCE55) */
#define DWT_CTRL_CYCCNTENA (1u << 0)

/* ---------------------------------------------------------------- core intrinsics */
static inline void cpu_dsb(void) { __asm volatile ("dsb 0xF" ::: "memory"); }
static inline void cpu_isb(void) { __asm volatile ("isb 0xF" ::: "memory"); }
static inline void cpu_irq_disable(void) { __asm volatile ("cpsid i" ::: "memory"); }
static inline void cpu_irq_enable(void) { __asm volatile ("cpsie i" ::: "memory"); }
static inline uint32_t cpu_get_primask(void)
{
    uint32_t v;
    __asm volatile ("mrs %0, primask" : "=r" (v));
    return v;
}
static inline uint32_t cpu_get_ipsr(void)
{
    uint32_t v;
    __asm volatile ("mrs %0, ipsr" : "=r" (v));
    return v;
}
static inline uint32_t cpu_get_msp(void)
{
    uint32_t v;
    __asm volatile ("mrs %0, msp" : "=r" (v));
    return v;
}
static inline uint32_t cpu_get_control(void)
{
    uint32_t v;
    __asm volatile ("mrs %0, control" : "=r" (v));
    return v;
}
static inline void cpu_wfi(void) { __asm volatile ("wfi"); }

/* SCB_EnableDCache: invalidate every line by set/way, then CCR.DC (call with it off). */
static inline void cpu_dcache_enable(void)
{
    SCB->CSSELR = 0;
    cpu_dsb();
    uint32_t ccsidr = SCB->CCSIDR;
    for (uint32_t set = 0; set <= CCSIDR_SETS(ccsidr); set++) {
        for (uint32_t way = 0; way <= CCSIDR_WAYS(ccsidr); way++)
            SCB_DCISW = (set << 5) | (way << 30);
    }
    cpu_dsb();
    SCB->CCR |= SCB_CCR_DC;
    cpu_dsb();
    cpu_isb();
}

static inline void nvic_enable_irq(unsigned irqn) { NVIC->ISER[irqn >> 5] = 1u << (irqn & 31u); }
static inline void nvic_disable_irq(unsigned irqn) { NVIC->ICER[irqn >> 5] = 1u << (irqn & 31u); }
static inline void nvic_set_pending(unsigned irqn) { NVIC->ISPR[irqn >> 5] = 1u << (irqn & 31u); }
static inline void nvic_clear_pending(unsigned irqn) { NVIC->ICPR[irqn >> 5] = 1u << (irqn & 31u); }

/* System reset through AIRCR (keeps PRIGROUP). Never returns. */
static inline __attribute__((noreturn)) void nvic_system_reset(void)
{
    cpu_dsb();
    SCB->AIRCR = SCB_AIRCR_VECTKEY | (SCB->AIRCR & SCB_AIRCR_PRIGROUP_MASK) | SCB_AIRCR_SYSRESETREQ;
    cpu_dsb();
    for (;;) {
        __asm volatile ("nop");
    }
}

#endif /* STM32F767_H */
