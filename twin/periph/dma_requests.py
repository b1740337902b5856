"""RM0410's DMA request mapping tables for the lines a twin peripheral drives: (stream,
channel) pairs per request line, for DMA1 and DMA2 (twin/periph/dma.py serves them).

Sources: RM0410 tables "DMA1 request mapping" and "DMA2 request mapping"; ST's examples for
the F7 boards agree (USART1: DMA2 stream 7/5 channel 4; USART6: DMA2 stream 6 or 7 / 1 channel
5; USART2: DMA1 stream 6/5 channel 4; USART3: DMA1 stream 3/1 channel 4, as
USART_Communication_TxRx_DMA uses).

Owns: the tables. Must not touch: the controllers.
"""

from __future__ import annotations

DMA1_REQUESTS: dict[str, list[tuple[int, int]]] = {
    "USART3_RX": [(1, 4)],
    "USART3_TX": [(3, 4), (4, 7)],
    "USART2_RX": [(5, 4)],
    "USART2_TX": [(6, 4)],
    "UART4_RX": [(2, 4)],
    "UART4_TX": [(4, 4)],
    "UART5_RX": [(0, 4)],
    "UART5_TX": [(7, 4)],
    "UART7_RX": [(3, 5)],
    "UART7_TX": [(1, 5)],
    "UART8_RX": [(6, 5)],
    "UART8_TX": [(0, 5)],
    "SPI2_RX": [(3, 0)],
    "SPI2_TX": [(4, 0)],
    "SPI3_RX": [(0, 0), (2, 0)],
    "SPI3_TX": [(5, 0), (7, 0)],
}

DMA2_REQUESTS: dict[str, list[tuple[int, int]]] = {
    "SPI1_RX": [(0, 3), (2, 3)],
    "SPI1_TX": [(3, 3), (5, 3)],
    "SPI4_RX": [(0, 4), (3, 5)],
    "SPI4_TX": [(1, 4), (4, 5)],
    "SPI5_RX": [(3, 2), (5, 7)],
    "SPI5_TX": [(4, 2), (6, 7)],
    "SPI6_RX": [(6, 1)],
    "SPI6_TX": [(5, 1)],
    "USART1_RX": [(2, 4), (5, 4)],
    "USART1_TX": [(7, 4)],
    "USART6_RX": [(1, 5), (2, 5)],
    "USART6_TX": [(6, 5), (7, 5)],
}
