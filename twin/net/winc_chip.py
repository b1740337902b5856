"""The WINC3400 behind its SPI slave: registers, memory, boot handshakes and the HIF transport.

What Microchip's host driver (``nmasic.c``, ``nmdrv.c``, ``m2m_hif.c``) reads and writes,
as a WINC3400 answers it (docs/twin-network.md "WiFi (microchip)"):

* **Identity**: 0x1000 reads 0x1000F0 (the 3400's WiFi ID), 0x3B0000 the BT chip ID
  0x3000D0, 0x13F4 the RF revision 2 (the driver prints 0x3400D2).
* **Boot** (``cpu_start``, ``wait_for_bootrom``, ``wait_for_firmware_start``): 0x1014 bit
  31 (eFuse loaded) 1 ms after power-up; setting 0x1400 bit 10 starts the CPU, whose boot
  ROM writes 0x10ADD09E to 0xC000C after 2 ms; 0xEF522F61 written there starts the
  firmware, which 20 ms later writes 0x02532636 to 0x108C, its HIF level 0x8104 (block 2,
  major 1, minor 4) to 0x207AC and the offset of its version record to 0x149C (the
  record, ``tstrGpRegs`` then ``tstrM2mRev``, sits at that offset | 0x30000). Clearing
  bit 10 stops the CPU (firmware and sockets gone).
* **Clocks**: 0x13 bit 2 (clocks on) reads 1 while powered: the module never enters
  power save (the driver's ``M2M_NO_PS``); 0x01, 0x0E, 0x14 are plain registers.
* **HIF host -> chip**: 0x108C = ``gid | op << 8 | length << 16``, 0x1078 bit 1 set, then
  0x10AC <- 1 asks for a buffer: 0x1078 bit 1 clears and 0x150400 holds its address (0 if
  the length is not 8..1596). The host writes the message there, 0x106C <- ``addr << 2 |
  2``, and 0x10B0 <- 1 hands it to the firmware.
* **HIF chip -> host**: one message at a time: 0x1084 = its address, 0x1070 = ``size << 2
  | 1`` (size rounded up to 4). IRQN is low while 0x1070 bit 0 is set and interrupts are
  enabled (0x1408 bit 8 pin mux and 0x1A00 bit 16). The host clears bit 0 (IRQN goes
  high), reads the message and writes 1 to 0x10A8 (RX done; 0x1070 bit 1 as on a WINC1500
  works too); the next message is presented 20 µs later, with a new falling edge.

Owns: the chip's registers (but the SPI block's, twin/net/winc_bus.py), its memory
(version record, HIF buffers), the CPU/boot state and the HIF message queues. Must not
touch: the SPI framing, the GPIO pins (it asks its host to drive IRQN), sockets (the
firmware, twin/net/winc_hif.py, gets and sends the messages).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, Protocol

WAKE_CLK_REG, HOST_CORT_COMM, CLOCKS_EN_REG, CORT_HOST_COMM = 0x01, 0x0E, 0x13, 0x14
CHIPID_REG, EFUSE_REG = 0x1000, 0x1014
RCV_CTRL_3, RCV_CTRL_0, RCV_CTRL_2, RCV_CTRL_1 = 0x106C, 0x1070, 0x1078, 0x1084
NMI_STATE_REG = 0x108C
CORTUS_0, CORTUS_1, CORTUS_2, CORTUS_3 = 0x10A8, 0x10AC, 0x10B0, 0x10B4
RF_REV_REG, GLB_RESET_0, PIN_MUX_0 = 0x13F4, 0x1400, 0x1408
GP_REG_0, GP_REG_1, INTR_ENABLE = 0x149C, 0x14A0, 0x1A00
BT_CHIPID_REG, BOOTROM_REG, RCV_CTRL_4 = 0x3B0000, 0xC000C, 0x150400
NMI_REV_REG, WAIT_FOR_HOST_REG = 0x207AC, 0x207BC

CHIP_ID, BT_CHIP_ID, RF_REV = 0x1000F0, 0x3000D0, 2
FINISH_BOOT_ROM, START_FIRMWARE, FINISH_INIT_STATE = 0x10ADD09E, 0xEF522F61, 0x02532636
HIF_INFO = (2 << 14) | (1 << 8) | 4  # block 2, major 1, minor 4 = 0x8104
FW_VERSION = (1, 4, 4)
MAC = bytes.fromhex("F8F005C0FFEE")
CPU_RUN = 1 << 10
IRQ_PIN_MUX, IRQ_ENABLE = 1 << 8, 1 << 16

EFUSE_NS, BOOTROM_NS, FIRMWARE_NS, MSG_GAP_NS = 1_000_000, 2_000_000, 20_000_000, 20_000
HIF_HDR, HIF_MAX = 8, 1596

INFO_BASE = 0x31E00  # 0x30000 | INFO_A: tstrGpRegs; then the MAC and tstrM2mRev
INFO_A, MAC_OFF, REV_B = 0x1E00, 0x1E08, 0x1E10
SHARED_BASE, SHARED_SIZE = 0xD0000, 0x8000
TX_SLOTS = [SHARED_BASE + i * 0x800 for i in range(4)]  # host -> chip buffers
RX_SLOTS = [SHARED_BASE + 0x4000 + i * 0x800 for i in range(2)]  # chip -> host buffers


class ChipHost(Protocol):
    """What the chip needs from the module around it (twin/net/winc3400.py)."""

    def schedule_ns(self, ns: int, fn: Callable[[], None]) -> object: ...

    def cancel(self, handle: object) -> None: ...

    def log(self, message: str) -> None: ...

    def set_irq(self, active: bool) -> None:
        """Drive IRQN: ``active`` True = low (a message waits)."""


class Firmware(Protocol):
    """The firmware running on the chip (twin/net/winc_hif.py)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def request(self, gid: int, op: int, payload: bytes) -> None: ...


class ChipMemory:
    """Sparse memory: the version record and the shared HIF buffers; elsewhere reads 0."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.regions = [(INFO_BASE, bytearray(0x40)), (SHARED_BASE, bytearray(SHARED_SIZE))]
        self._log = log
        self._stray = 0

    def read(self, address: int, size: int) -> bytes:
        out = bytearray(size)
        for base, buf in self.regions:
            lo, hi = max(address, base), min(address + size, base + len(buf))
            if lo < hi:
                out[lo - address : hi - address] = buf[lo - base : hi - base]
        return bytes(out)

    def write(self, address: int, data: bytes) -> None:
        done = 0
        for base, buf in self.regions:
            lo, hi = max(address, base), min(address + len(data), base + len(buf))
            if lo < hi:
                buf[lo - base : hi - base] = data[lo - address : hi - address]
                done += hi - lo
        if done < len(data):
            self._stray += 1
            if self._stray in (1, 10, 100):
                self._log(
                    f"write of {len(data)} bytes at 0x{address:06X} outside the chip's memory (ignored)"
                )

    def contains(self, address: int) -> bool:
        return any(base <= address < base + len(buf) for base, buf in self.regions)


class WincChip:
    """Registers, memory, CPU state and HIF queues of one WINC3400 (a ``BusTarget``)."""

    def __init__(self, host: ChipHost) -> None:
        self.host = host
        self.firmware: Firmware | None = None
        self.stats = {"to_host": 0, "from_host": 0, "rx_done": 0, "alloc_failed": 0, "false_rx_done": 0}
        self._handles: list[object] = []
        self._present_handle: object | None = None
        self._actions: dict[int, Callable[[int, int], None]] = {
            GLB_RESET_0: self._cpu_control,
            BOOTROM_REG: lambda old, new: self._start_request() if new == START_FIRMWARE else None,
            RCV_CTRL_0: self._on_rcv_ctrl_0,
            CORTUS_0: lambda old, new: self._on_cortus(CORTUS_0, new),
            CORTUS_1: lambda old, new: self._on_cortus(CORTUS_1, new),
            CORTUS_2: lambda old, new: self._on_cortus(CORTUS_2, new),
            PIN_MUX_0: lambda old, new: self._update_irq(),
            INTR_ENABLE: lambda old, new: self._update_irq(),
        }
        self._reset_state()

    # ---------------------------------------------------------------- power and boot
    def _reset_state(self) -> None:
        self.mem = ChipMemory(self.host.log)
        self.regs: dict[int, int] = {}
        self.cpu = "off"
        self.efuse_ready = False
        self._tx_alloc: dict[int, tuple[int, int, int]] = {}
        self._tx_next = 0
        self._rx_next = 0
        self.queue: collections.deque[tuple[int, int, bytes, tuple[int, int] | None]] = collections.deque()
        self.presented: tuple[int, int] | None = None
        self.payload: dict[int, tuple[int, int]] = {}
        self._warned: set[int] = set()

    def _cancel_timers(self) -> None:
        for h in self._handles:
            self.host.cancel(h)
        if self._present_handle is not None:
            self.host.cancel(self._present_handle)
        self._handles, self._present_handle = [], None

    def power_off(self) -> None:
        """Power gone (RESET_N or CHIP_EN low): registers, memory and the firmware are lost."""
        was_running = self.cpu == "running"
        self._cancel_timers()
        self._reset_state()
        self._update_irq()
        if was_running and self.firmware is not None:
            self.firmware.stop()

    def power_on(self) -> None:
        """RESET_N released with CHIP_EN high: the CPU is held, the eFuse loads."""
        self.power_off()
        self.cpu = "halted"
        self._later(EFUSE_NS, self._efuse_loaded)
        self._write_info()

    def _later(self, ns: int, fn: Callable[[], None]) -> None:
        self._handles.append(self.host.schedule_ns(ns, fn))

    def _efuse_loaded(self) -> None:
        self.efuse_ready = True

    def _write_info(self) -> None:
        """The firmware's version record at 0x30000 | INFO_A (read by nm_get_firmware_full_info)."""
        gp = ((MAC_OFF << 16) | MAC_OFF).to_bytes(4, "little") + REV_B.to_bytes(4, "little")
        major, minor, patch = FW_VERSION
        rev = HIF_INFO.to_bytes(2, "little") + bytes((major, 0, minor, patch))
        rev += b"Jan  1 2025\0" + b"00:00:00\0" + b"\0"
        self.mem.write(0x30000 | INFO_A, gp)
        self.mem.write(0x30000 | MAC_OFF, MAC)
        self.mem.write(0x30000 | REV_B, rev)

    def _cpu_control(self, old: int, new: int) -> None:
        if not old & CPU_RUN and new & CPU_RUN and self.cpu == "halted":
            self.cpu = "bootrom"
            self._later(BOOTROM_NS, self._bootrom_done)
        elif old & CPU_RUN and not new & CPU_RUN and self.cpu != "halted":
            self.host.log("chip CPU halted (0x1400 bit 10 cleared): firmware stopped")
            self._stop_cpu()

    def _stop_cpu(self) -> None:
        was_running = self.cpu == "running"
        self._cancel_timers()
        self._handles = []
        self.cpu = "halted"
        self._tx_alloc.clear()
        self.queue.clear()
        self.presented = None
        self.payload.clear()
        self._update_irq()
        if was_running and self.firmware is not None:
            self.firmware.stop()

    def _bootrom_done(self) -> None:
        if self.cpu != "bootrom":
            return
        if self.regs.get(WAIT_FOR_HOST_REG, 0) & 1 == 0:
            self.regs[BOOTROM_REG] = FINISH_BOOT_ROM
        self.cpu = "wait_start"

    def _start_request(self) -> None:
        if self.cpu == "wait_start":
            self.cpu = "loading"
            self._later(FIRMWARE_NS, self._firmware_started)
        else:
            self.host.log(f"0xEF522F61 written to 0xC000C while the CPU is {self.cpu}: ignored")

    def _firmware_started(self) -> None:
        self.cpu = "running"
        self.regs[NMI_STATE_REG] = FINISH_INIT_STATE
        self.regs[NMI_REV_REG] = HIF_INFO
        self.regs[GP_REG_0] = INFO_A
        self.host.log(f"firmware {'.'.join(map(str, FW_VERSION))} started (HIF level 0x{HIF_INFO:04X})")
        if self.firmware is not None:
            self.firmware.start()

    # ---------------------------------------------------------------- registers
    def read_reg(self, address: int) -> int:
        """A register (or a word of memory) as a single/internal read returns it."""
        fixed = {
            CHIPID_REG: CHIP_ID,
            BT_CHIPID_REG: BT_CHIP_ID,
            RF_REV_REG: RF_REV,
            CLOCKS_EN_REG: 1 << 2,
            EFUSE_REG: (1 << 31) if self.efuse_ready else 0,
        }
        if address in fixed:
            return fixed[address]
        if address in self.regs:
            return self.regs[address]
        if self.mem.contains(address):
            return int.from_bytes(self.mem.read(address, 4), "little")
        if address not in KNOWN_REGS:
            self._unmodelled(address, "read")
        return 0

    def write_reg(self, address: int, value: int) -> None:
        """A single/internal write: store it, then act on the registers that do something."""
        if address in (CHIPID_REG, BT_CHIPID_REG, RF_REV_REG, CLOCKS_EN_REG, EFUSE_REG):
            return  # read-only
        if address not in self.regs and self.mem.contains(address):
            self.mem.write(address, value.to_bytes(4, "little"))
            return
        old = self.regs.get(address, 0)
        self.regs[address] = value
        action = self._actions.get(address)
        if action is not None:
            action(old, value)
        elif address not in KNOWN_REGS:
            self._unmodelled(address, "write")

    def _unmodelled(self, address: int, what: str) -> None:
        if address not in self._warned:
            self._warned.add(address)
            self.host.log(f"unmodelled chip register 0x{address:06X} ({what}; plain storage)")

    def _on_rcv_ctrl_0(self, old: int, value: int) -> None:
        if value & 2:  # a WINC1500 host's RX done
            self.regs[RCV_CTRL_0] = value & ~2
            self._rx_done()
        self._update_irq()

    def _on_cortus(self, which: int, value: int) -> None:
        if not value & 1 or self.cpu != "running":
            return
        if which == CORTUS_0:
            self._rx_done()
        elif which == CORTUS_1:
            self._allocate()
        elif which == CORTUS_2:
            self._message_from_host()

    # ---------------------------------------------------------------- memory (BusTarget)
    def read_block(self, address: int, size: int) -> bytes:
        return self.mem.read(address, size)

    def write_block(self, address: int, data: bytes) -> None:
        self.mem.write(address, data)

    def payload_ranges(self, address: int, size: int) -> list[tuple[int, int]]:
        """Socket data inside ``[address, address + size)``, as offsets from ``address``."""
        out = []
        for lo, hi in self.payload.values():
            a, b = max(lo, address), min(hi, address + size)
            if a < b:
                out.append((a - address, b - address))
        return out

    # ---------------------------------------------------------------- HIF: host -> chip
    def _allocate(self) -> None:
        """0x10AC <- 1: give the host a buffer for the message announced in 0x108C."""
        if not self.regs.get(RCV_CTRL_2, 0) & 2:
            self.host.log("0x10AC written without a request in 0x1078 bit 1: ignored")
            return
        hdr = self.regs.get(NMI_STATE_REG, 0)
        gid, op, length = hdr & 0xFF, (hdr >> 8) & 0xFF, hdr >> 16
        address = 0
        if HIF_HDR <= length <= HIF_MAX:
            address = TX_SLOTS[self._tx_next]
            self._tx_next = (self._tx_next + 1) % len(TX_SLOTS)
            self._tx_alloc[address] = (gid, op, length)
            data_at = self._send_data_offset(gid, op)
            if data_at is not None and length > data_at:
                self.payload[address] = (address + data_at, address + length)
        else:
            self.stats["alloc_failed"] += 1
            self.host.log(f"HIF request gid {gid} op 0x{op:02X} length {length}: no buffer (0..{HIF_MAX})")
        self.regs[RCV_CTRL_4] = address
        self.regs[RCV_CTRL_2] = self.regs.get(RCV_CTRL_2, 0) & ~2

    @staticmethod
    def _send_data_offset(gid: int, op: int) -> int | None:
        """Where a send request's socket data starts in its buffer (for payload-only faults)."""
        if gid == 2 and op & 0x80 and op & 0x7F in (0x45, 0x47):
            return HIF_HDR + (80 if op & 0x7F == 0x45 else 68)
        return None

    def _message_from_host(self) -> None:
        """0x10B0 <- 1: the message at 0x106C >> 2 is complete; the firmware takes it."""
        address = self.regs.get(RCV_CTRL_3, 0) >> 2
        alloc = self._tx_alloc.pop(address, None)
        self.payload.pop(address, None)
        if alloc is None:
            self.host.log(f"HIF message at 0x{address:06X}, which is no buffer the chip gave out: ignored")
            return
        raw = self.mem.read(address, HIF_HDR)
        gid, op, length = raw[0], raw[1], int.from_bytes(raw[2:4], "little")
        if (gid, op, length) != (alloc[0], alloc[1] & 0x7F, alloc[2]):
            self.host.log(
                f"HIF header gid {gid} op 0x{op:02X} length {length} differs from the request "
                f"(gid {alloc[0]} op 0x{alloc[1]:02X} length {alloc[2]}); the request's length is used"
            )
        self.stats["from_host"] += 1
        payload = self.mem.read(address + HIF_HDR, max(0, alloc[2] - HIF_HDR))
        if self.firmware is not None:
            self.firmware.request(gid, op & 0x7F, payload)

    # ---------------------------------------------------------------- HIF: chip -> host
    def send_to_host(self, gid: int, op: int, body: bytes, payload: tuple[int, int] | None = None) -> None:
        """Queue a message for the host; ``payload`` = socket data range inside ``body``."""
        if self.cpu != "running":
            return
        self.queue.append((gid, op, body, payload))
        if self.presented is None and self._present_handle is None:
            self._present_handle = self.host.schedule_ns(MSG_GAP_NS, self._present)

    def _present(self) -> None:
        self._present_handle = None
        if self.presented is not None or not self.queue or self.cpu != "running":
            return
        gid, op, body, payload = self.queue.popleft()
        address = RX_SLOTS[self._rx_next]
        self._rx_next = (self._rx_next + 1) % len(RX_SLOTS)
        length = HIF_HDR + len(body)
        self.mem.write(address, bytes((gid, op)) + length.to_bytes(2, "little") + bytes(4) + body)
        if payload is not None:
            self.payload[address] = (address + HIF_HDR + payload[0], address + HIF_HDR + payload[1])
        self.presented = (address, length)
        self.regs[RCV_CTRL_1] = address
        self.regs[RCV_CTRL_0] = (((length + 3) & ~3) << 2) | 1
        self.stats["to_host"] += 1
        self._update_irq()

    def _rx_done(self) -> None:
        if self.presented is None:
            self.stats["false_rx_done"] += 1
            return
        self.stats["rx_done"] += 1
        self.payload.pop(self.presented[0], None)
        self.presented = None
        self.regs[RCV_CTRL_0] = self.regs.get(RCV_CTRL_0, 0) & ~1
        self._update_irq()
        if self.queue and self._present_handle is None:
            self._present_handle = self.host.schedule_ns(MSG_GAP_NS, self._present)

    def next_message(self) -> object | None:
        """The scheduled presentation of the next message (a clock handle) while none is
        presented, else None."""
        return self._present_handle if self.presented is None else None

    def irq_wanted(self) -> bool:
        """IRQN low: a message is presented, not yet acknowledged, and interrupts are on."""
        return bool(
            self.presented is not None
            and self.regs.get(RCV_CTRL_0, 0) & 1
            and self.regs.get(PIN_MUX_0, 0) & IRQ_PIN_MUX
            and self.regs.get(INTR_ENABLE, 0) & IRQ_ENABLE
        )

    def _update_irq(self) -> None:
        self.host.set_irq(self.irq_wanted())

    def snapshot(self) -> dict[str, Any]:
        """CPU state, HIF queue and counters."""
        return {
            "cpu": self.cpu,
            "messages_waiting": len(self.queue) + (self.presented is not None),
            "presented": None if self.presented is None else f"0x{self.presented[0]:06X}+{self.presented[1]}",
            **self.stats,
        }


KNOWN_REGS = frozenset(
    {
        *(WAKE_CLK_REG, HOST_CORT_COMM, CORT_HOST_COMM, RCV_CTRL_3, RCV_CTRL_0, RCV_CTRL_2, RCV_CTRL_1),
        *(NMI_STATE_REG, CORTUS_0, CORTUS_1, CORTUS_2, CORTUS_3, 0x1118, GLB_RESET_0, PIN_MUX_0),
        *(GP_REG_0, GP_REG_1, INTR_ENABLE, BOOTROM_REG, RCV_CTRL_4, NMI_REV_REG, WAIT_FOR_HOST_REG, 0x150014),
    }
)
