"""The HAL-style test firmware (firmware/progs/haltest) on the real twin machine.

Builds the program with the project's Makefile, boots it in an in-process twin (machine,
flash controller, USART3, exception model, peripherals), answers its interactive step
(button press + one UART byte) and checks what it printed and the state it left.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from fw_progs import build

from twin.board import Board, BoardOptions
from twin.control import ControlServer
from twin.loader import read_image


def _run(board: Board, until: bytes, budget_s: float = 60.0, interact: bool = True) -> str:
    """Let the free-running CPU thread work until ``until`` appears on USART3."""
    m = board.machine
    m.start()
    deadline = time.monotonic() + budget_s
    answered = False
    while time.monotonic() < deadline:
        log = bytes(board.usart.tx_log)
        if interact and not answered and b"waiting for input" in log:
            with m.host():
                board.usart.inject_rx(b"Z")
                m.device("gpioc").drive_input(13, True)
            answered = True
        if until in log or m.is_locked_up():
            break
        time.sleep(0.005)
    return bytes(board.usart.tx_log).decode("latin-1")


@pytest.fixture()
def board():
    b = Board(BoardOptions(pty=False))
    yield b
    b.close()


def test_haltest_passes_and_jumps_to_its_ram_table(board: Board) -> None:
    elf = build("haltest.elf")
    board.power_on(read_image(str(elf)))
    text = _run(board, b"HT: APP OK")
    lines = [ln.strip() for ln in text.splitlines() if ln.startswith("HT: ")]
    results = {ln.split()[1]: ln.split()[2] for ln in lines if ln.split()[2] in ("PASS", "FAIL")}
    assert results and all(v == "PASS" for v in results.values()), text
    assert set(results) >= {
        "clock",
        "flash-latency",
        "overdrive",
        "delay",
        "uart-tc-irq",
        "crc-mpeg2",
        "crc-zlib",
        "flash",
        "caches-on",
        "mpu",
        "svc-pendsv",
        "usagefault",
        "rtc",
        "rtc-wakeup",
    }
    assert "HT: input button=1 rx=0x0000005A" in text
    assert f"HT: DONE pass={len(results)} fail=0" in text
    app = next(ln for ln in lines if ln.startswith("HT: APP vtor="))
    fields = dict(kv.split("=") for kv in app.split()[2:])
    assert int(fields["vtor"], 16) % 512 == 0 and int(fields["vtor"], 16) >= 0x20000000
    assert fields["primask"] == "0x00000000" and fields["ipsr"] == "0x00000000"
    assert int(fields["ccr"], 16) & (3 << 16) == 0  # caches off at the jump
    assert fields["mpu"] == "0x00000000"  # MPU off at the jump
    m = board.machine
    assert not m.is_locked_up()
    assert m.core_hz == 16_000_000  # HAL_RCC_DeInit → HSI
    assert m.device("rcc").read(0x74, 4) & 0xFF000000 == 0  # RMVF cleared the flags
    assert m.exc.vtor == int(fields["vtor"], 16)
    assert m.bus_read(0x08018000, 16).hex() == "785634120df0feca00000000a5a5a5a5"


def test_haltest_jumps_to_app_in_flash_like_the_thread(board: Board) -> None:
    elf = build("haltest.elf")
    app = build("app-v1-16k.elf")
    board.power_on(read_image(str(elf)) + read_image(str(app)))
    text = _run(board, b"APP READY")
    assert "HT: DONE" in text and "fail=0" in text, text
    after = text.split("HT: DONE", 1)[1]
    assert "APP v1" in after
    for check in ("VTOR OK", "STACK OK", "MODE OK", "PRIMASK OK", "MPU OK", "APP READY"):
        assert check in after, after
    start = board.machine.now_cycles()
    while board.machine.now_cycles() - start < 16_000_000 // 10:  # 100 ms of app time
        time.sleep(0.01)
    with board.machine.host():
        board.usart.inject_rx(b"ticks\n")
    deadline = time.monotonic() + 30
    while not re.search(r"TICKS \d+\r?\n", bytes(board.usart.tx_log).decode("latin-1")):
        assert time.monotonic() < deadline, "no TICKS answer"
        time.sleep(0.01)
    ticks = int(re.findall(r"TICKS (\d+)\r?\n", bytes(board.usart.tx_log).decode("latin-1"))[-1])
    assert ticks >= 90  # the app's SysTick runs after the jump


def test_haltest_without_interaction_reports_no_input(board: Board) -> None:
    elf = build("haltest.elf")
    board.power_on(read_image(str(elf)))
    text = _run(board, b"HT: APP OK", interact=False)
    assert "HT: input button=0 rx=0xFFFFFFFF" in text
    assert "fail=0" in text


def test_control_commands_leds_button_reset_cause(board: Board) -> None:
    elf = build("haltest.elf")
    board.power_on(read_image(str(elf)))
    ctl = ControlServer(board.machine, 0)
    try:
        from twin.periph import commands

        for name, fn in commands(board.machine).items():
            ctl.register_command(name, lambda m, req, f=fn: f(req))

        def ask(obj: object) -> dict:
            raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
            return json.loads(ctl.handle_line(raw))

        assert ask({"cmd": "leds"}) == {"ok": True, "ld1": False, "ld2": False, "ld3": False}
        assert ask({"cmd": "button", "action": "press"})["pressed"] is True
        assert ask({"cmd": "button", "action": "release"})["pressed"] is False
        assert ask({"cmd": "button", "action": "kick"})["ok"] is False
        assert ask({"cmd": "gpio", "port": "b", "pin": 99})["ok"] is False
        assert ask({"cmd": "gpio", "port": "b", "pin": 1, "drive": True})["input"] is True
        assert ask(b"{not json")["ok"] is False
        rc = ask({"cmd": "reset_cause"})
        assert rc["ok"] and rc["last"] == "power" and rc["csr"] == 0x0E000000
        exc = ask({"cmd": "exceptions"})
        assert exc["ok"] and exc["locked_up"] is False
        assert ask({"cmd": "clocks"})["hclk_hz"] == 16_000_000
        # a software reset requested by firmware shows up as the last cause
        board.machine.exc.write_aircr(0x05FA0004)
        with board.machine.gate.lock:
            board.machine.reset(*board.machine.resets.pending)
        rc = ask({"cmd": "reset_cause"})
        assert rc["last"] == "software" and rc["csr"] & (1 << 28)
    finally:
        ctl._sock.close()  # never started: ControlServer.close() would join threads


def _history_of_one_run(elf: Path) -> tuple[list[tuple[int, int]], str]:
    b = Board(BoardOptions(pty=False, idle="skip"))
    try:
        b.power_on(read_image(str(elf)))
        m = b.machine
        m.exc.keep_history = 100_000
        with m.host():
            for _ in range(200_000):
                if b"HT: DONE" in bytes(b.usart.tx_log) or m.is_locked_up():
                    break
                if m.sleeping:
                    m.runner.idle()
                else:
                    m.step_slice()
        return list(m.exc.history), bytes(b.usart.tx_log).decode("latin-1")
    finally:
        b.close()


def test_same_firmware_takes_interrupts_at_the_same_cycles() -> None:
    elf = build("haltest.elf")
    first, text = _history_of_one_run(elf)
    assert "HT: DONE" in text
    assert sum(1 for _, exc in first if exc == 15) > 300  # SysTick at 1 kHz
    assert any(exc == 16 + 39 for _, exc in first)  # USART3 interrupts
    second, _ = _history_of_one_run(elf)
    assert second == first
