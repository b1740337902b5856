"""RCC and PWR: reset values, HAL-style clock configuration to 216 MHz, reset flags."""

from __future__ import annotations

from twin.periph import Pwr, Rcc
from twin.testing import ServicesDouble

CR, PLLCFGR, CFGR, CSR, BDCR, AHB1ENR = 0x00, 0x04, 0x08, 0x74, 0x70, 0x30


def _board() -> tuple[ServicesDouble, Rcc, Pwr]:
    s = ServicesDouble()
    rcc, pwr = Rcc(), Pwr()
    s.add(rcc, pwr)
    rcc.reset_cause("power", "power")
    rcc.write(0x40, 4, 1 << 28)  # __HAL_RCC_PWR_CLK_ENABLE
    return s, rcc, pwr


def test_reset_values() -> None:
    _, rcc, pwr = _board()
    assert rcc.read(CR, 4) & 0xFF == 0x83  # HSION, HSIRDY, HSITRIM=16
    assert rcc.read(PLLCFGR, 4) == 0x24003010
    assert rcc.read(CFGR, 4) == 0
    assert rcc.read(CSR, 4) == 0x0E000000  # PORRSTF | PINRSTF | BORRSTF
    assert rcc.read(AHB1ENR, 4) == 0x00100000
    assert pwr.read(0x00, 4) == 0x0000C000
    assert rcc.hclk_hz() == 16_000_000


def test_hal_system_clock_config_216mhz_with_overdrive() -> None:
    s, rcc, pwr = _board()
    pwr.write(0x00, 4, pwr.read(0x00, 4) | (3 << 14))  # VOS scale 1
    rcc.write(CR, 4, rcc.read(CR, 4) | (1 << 16) | (1 << 18))  # HSEON + HSEBYP
    assert rcc.read(CR, 4) & (1 << 17)  # HSERDY
    rcc.write(CR, 4, rcc.read(CR, 4) & ~(1 << 24))
    assert not rcc.read(CR, 4) & (1 << 25)
    # PLLM=4, PLLN=216, PLLP=/2, PLLSRC=HSE, PLLQ=9, PLLR=7 → 8/4*216/2 = 216 MHz
    rcc.write(PLLCFGR, 4, 4 | (216 << 6) | (0 << 16) | (1 << 22) | (9 << 24) | (7 << 28))
    rcc.write(CR, 4, rcc.read(CR, 4) | (1 << 24))
    assert rcc.read(CR, 4) & (1 << 25)  # PLLRDY
    pwr.write(0x00, 4, pwr.read(0x00, 4) | (1 << 16))  # ODEN
    assert pwr.read(0x04, 4) & (1 << 16)  # ODRDY
    pwr.write(0x00, 4, pwr.read(0x00, 4) | (1 << 17))  # ODSWEN
    assert pwr.read(0x04, 4) & (1 << 17)  # ODSWRDY
    rcc.write(CFGR, 4, (5 << 10) | (4 << 13))  # APB1 /4, APB2 /2
    assert s.core_hz == 16_000_000
    rcc.write(CFGR, 4, rcc.read(CFGR, 4) | 2)  # SW = PLL
    assert (rcc.read(CFGR, 4) >> 2) & 3 == 2  # SWS follows
    assert s.core_hz == 216_000_000
    assert rcc.pclk1_hz() == 54_000_000 and rcc.pclk2_hz() == 108_000_000
    assert rcc.snapshot()["sysclk_hz"] == 216_000_000


def test_switch_to_unready_source_is_refused() -> None:
    s, rcc, _ = _board()
    rcc.write(CFGR, 4, 2)  # PLL selected while off
    assert (rcc.read(CFGR, 4) >> 2) & 3 == 0
    assert s.core_hz == 16_000_000


def test_hal_rcc_deinit_sequence_returns_to_hsi() -> None:
    s, rcc, _ = _board()
    rcc.write(CR, 4, rcc.read(CR, 4) | (1 << 16))
    rcc.write(PLLCFGR, 4, 8 | (216 << 6) | (1 << 22))
    rcc.write(CR, 4, rcc.read(CR, 4) | (1 << 24))
    rcc.write(CFGR, 4, 2)
    assert s.core_hz == 8_000_000 // 8 * 216 // 2
    # HAL_RCC_DeInit: HSION, CFGR=0 (wait SWS=0), HSE/PLL off (wait RDY=0)
    rcc.write(CR, 4, rcc.read(CR, 4) | 1)
    rcc.write(CFGR, 4, 0)
    assert rcc.read(CFGR, 4) & 0xC == 0
    rcc.write(CR, 4, rcc.read(CR, 4) & ~((1 << 16) | (1 << 18) | (1 << 19)))
    assert not rcc.read(CR, 4) & (1 << 17)
    rcc.write(CR, 4, rcc.read(CR, 4) & ~(1 << 24))
    assert not rcc.read(CR, 4) & (1 << 25)
    rcc.write(PLLCFGR, 4, 0x24003010)
    assert s.core_hz == 16_000_000


def test_pll_cannot_stop_while_it_is_sysclk() -> None:
    _, rcc, _ = _board()
    rcc.write(CR, 4, rcc.read(CR, 4) | (1 << 24))
    rcc.write(CFGR, 4, 2)
    rcc.write(CR, 4, rcc.read(CR, 4) & ~(1 << 24))
    assert rcc.read(CR, 4) & (1 << 25)


def test_reset_flags_follow_causes_and_rmvf_clears() -> None:
    _, rcc, _ = _board()
    rcc.write(CSR, 4, 1 << 24)  # RMVF
    assert rcc.read(CSR, 4) & 0xFF000000 == 0
    rcc.reset("system")
    rcc.reset_cause("system", "software")
    assert rcc.read(CSR, 4) & 0xFF000000 == (1 << 28) | (1 << 26)  # SFTRSTF | PINRSTF
    rcc.reset("system")
    rcc.reset_cause("system", "iwdg")
    assert rcc.read(CSR, 4) & (1 << 29)  # IWDGRSTF accumulates
    assert rcc.last_reset_cause() == "iwdg"
    rcc.write(CSR, 4, 1 << 24)
    rcc.reset("system")
    rcc.reset_cause("system", "pin")
    assert rcc.read(CSR, 4) & 0xFF000000 == 1 << 26
    assert [h["cause"] for h in rcc.reset_history] == ["power", "software", "iwdg", "pin"]
    rcc.reset("power")
    rcc.reset_cause("power", "power")
    assert rcc.read(CSR, 4) == 0x0E000000


def test_lsi_ready_follows_lsion() -> None:
    _, rcc, _ = _board()
    rcc.write(CSR, 4, 1)
    assert rcc.read(CSR, 4) & 2
    rcc.write(CSR, 4, 0)
    assert not rcc.read(CSR, 4) & 2


def test_backup_domain_needs_dbp() -> None:
    _, rcc, pwr = _board()
    rcc.write(BDCR, 4, 1)  # LSEON without DBP: ignored
    assert rcc.read(BDCR, 4) == 0
    pwr.write(0x00, 4, pwr.read(0x00, 4) | (1 << 8))
    assert pwr.dbp
    rcc.write(BDCR, 4, 1)
    assert rcc.read(BDCR, 4) & 2  # LSERDY
    rcc.reset("system")
    assert rcc.read(BDCR, 4) & 1  # backup domain survives system reset


def test_peripheral_reset_bit_resets_device() -> None:
    from twin.periph import Crc

    s, rcc, _ = _board()
    crc = Crc()
    s.add(crc)
    rcc.write(AHB1ENR, 4, rcc.read(AHB1ENR, 4) | (1 << 12))
    crc.write(0x14, 4, 0x1021)
    rcc.write(0x10, 4, 1 << 12)  # CRCRST
    rcc.write(0x10, 4, 0)
    assert crc.read(0x14, 4) == 0x04C11DB7


def test_unmodelled_offset_reads_zero_and_logs_once() -> None:
    s, rcc, _ = _board()
    assert rcc.read(0x3C, 4) == 0
    rcc.write(0x3C, 4, 5)
    assert rcc.read(0x3C, 4) == 0
    assert len([m for m in s.logs if "unmodelled" in m]) == 1


def test_overdrive_switch_needs_oden() -> None:
    _, _, pwr = _board()
    pwr.write(0x00, 4, pwr.read(0x00, 4) | (1 << 17))
    assert not pwr.read(0x04, 4) & (3 << 16)
    assert pwr.read(0x04, 4) & (1 << 14)  # VOSRDY


def test_peripheral_with_clock_off_reads_zero_ignores_writes_and_says_why() -> None:
    from twin.periph import Crc

    s, rcc, pwr = _board()
    crc = Crc()
    s.add(crc)
    assert crc.read(0x14, 4) == 0  # CRC clock off after reset
    crc.write(0x14, 4, 0x1021)
    rcc.write(AHB1ENR, 4, rcc.read(AHB1ENR, 4) | (1 << 12))
    assert crc.read(0x14, 4) == 0x04C11DB7  # the write was ignored
    assert any("AHB1ENR bit 12" in m and "CRC_CLK_ENABLE" in m for m in s.logs)
    rcc.write(0x40, 4, 0)  # PWR clock off
    assert pwr.read(0x00, 4) == 0
    rcc.write(0x40, 4, 1 << 28)
    assert pwr.read(0x00, 4) == 0x0000C000


def test_a_board_with_its_own_hse_runs_at_its_frequency() -> None:
    """A custom board's 25 MHz crystal (the board file's hse_hz, python -m twin --hse-hz):
    CubeMX's PLLM 25 x 432 / 2 is 216 MHz there, and 69 MHz with the NUCLEO's 8 MHz."""
    for hse, want in ((25_000_000, 216_000_000), (8_000_000, 69_120_000)):
        s = ServicesDouble()
        rcc = Rcc(hse_hz=hse)
        s.add(rcc)
        rcc.write(CR, 4, rcc.read(CR, 4) | (1 << 16))  # HSEON
        rcc.write(PLLCFGR, 4, 25 | (432 << 6) | (1 << 22) | (9 << 24))
        rcc.write(CR, 4, rcc.read(CR, 4) | (1 << 24))
        rcc.write(CFGR, 4, 2)
        assert rcc.hclk_hz() == want and s.core_hz == want
        rcc.write(CFGR, 4, 1)  # SYSCLK = HSE
        assert rcc.hclk_hz() == hse


def test_the_hse_option_is_checked() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "twin", "--hse-hz", "80000000", "x.elf"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "the HSE runs at 4-26 MHz from a crystal" in out.stderr
