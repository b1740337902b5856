"""A firmware spinning on USART3 RXNE waits for the host: the model says so (idle_wait),
so the machine keeps wall time there; a single poll inside a busy loop does not."""

from __future__ import annotations

from twin.testing import ServicesDouble
from twin.usart import RX_SPIN_GAP, RX_SPIN_POLLS, VCP_LATENCY_MS, Usart

# written out from the reference manual, not imported from twin.usart (a wrong bit fails here)
ISR = 0x1C  # RM0410 USART_ISR offset (CMSIS stm32f767xx.h USART_TypeDef)
ISR_RXNE = 1 << 5  # RM0410 USART_ISR.RXNE (CMSIS USART_ISR_RXNE_Pos 5)
RDR = 0x24  # RM0410 USART_RDR offset (CMSIS stm32f767xx.h USART_TypeDef)


def _usart() -> tuple[ServicesDouble, Usart]:
    s = ServicesDouble()
    u = Usart(pty=False)
    s.add(u)
    u.write(0x00, 4, 0x0D)  # UE | RE | TE
    return s, u


def test_a_getc_loop_becomes_a_host_wait() -> None:
    s, u = _usart()
    for _ in range(RX_SPIN_POLLS - 1):
        s.advance(50)
        assert not u.read(ISR, 4) & ISR_RXNE
    assert s.idle_waits == 0
    s.advance(50)
    u.read(ISR, 4)
    assert s.idle_waits == 1


def test_a_getc_loop_woken_from_its_wait_waits_again_at_its_first_poll() -> None:
    """The machine wakes a waiting firmware (SysTick, its 2 ms host-wait slice): time moved
    by the wait is not a gap between polls, so the loop's second empty poll waits again (not after RX_SPIN_POLLS more)."""
    s, u = _usart()
    for _ in range(RX_SPIN_POLLS):
        s.advance(50)
        u.read(ISR, 4)
    assert s.idle_waits == 1
    s.wait(s.core_hz // 1000)  # 1 ms asleep, then a SysTick handler of 200 cycles
    s.advance(200)
    u.read(ISR, 4)
    assert s.idle_waits == 1  # a loop that ends here (its timeout over) does not wait
    s.advance(50)
    u.read(ISR, 4)
    assert s.idle_waits == 2


def test_polls_far_apart_or_with_input_pending_are_not_a_wait() -> None:
    s, u = _usart()
    for _ in range(3 * RX_SPIN_POLLS):
        s.advance(RX_SPIN_GAP + 1)  # one poll per pass of a busy loop
        u.read(ISR, 4)
    assert s.idle_waits == 0
    u.inject_rx(b"x")  # a byte on its way: no wait
    for _ in range(2 * RX_SPIN_POLLS):
        u.read(ISR, 4)
    assert s.idle_waits == 0


def test_a_received_byte_sets_rxne_until_rdr_is_read() -> None:
    s, u = _usart()
    assert not u.read(ISR, 4) & ISR_RXNE
    u.inject_rx(b"x")
    s.advance(s.core_hz * VCP_LATENCY_MS // 1000 + u.frame_cycles() + 1)
    assert u.read(ISR, 4) & ISR_RXNE
    assert u.read(RDR, 4) == ord("x")
    assert not u.read(ISR, 4) & ISR_RXNE  # reading RDR clears RXNE


def test_a_host_burst_comes_after_the_vcps_latency_then_a_frame_apart() -> None:
    """A NUCLEO's ST-LINK bridges the VCP over USB: the host's answer reaches the pin no
    sooner than a USB frame (1 ms) after it was written, whatever the twin's clock did
    meanwhile; then one byte per frame."""
    s, u = _usart()
    latency = s.core_hz // 1000
    assert VCP_LATENCY_MS == 1
    u.inject_rx(b"ab")
    s.advance(latency)
    assert not u.read(ISR, 4) & ISR_RXNE
    s.advance(u.frame_cycles())
    assert u.read(ISR, 4) & ISR_RXNE and u.read(RDR, 4) == ord("a")
    s.advance(u.frame_cycles())
    assert u.read(RDR, 4) == ord("b")
    u.inject_rx(b"c")  # the line is quiet again: the latency again
    s.advance(u.frame_cycles() + 1)
    assert not u.read(ISR, 4) & ISR_RXNE
