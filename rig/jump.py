"""The jump contract: the CPU state at the application's first instruction, and its check.

Pure logic: :class:`JumpState` holds register values, :func:`check_jump` compares them with
what the image and the board's :class:`~rig.board.JumpContract` require. How the values are
read is the probe layer's business: :data:`JumpState.REGISTERS` lists what to read and
:meth:`JumpState.collect` fills a state from two read callables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rig.board import JumpContract

if TYPE_CHECKING:
    from rig.board import BoardSpec
    from rig.image import Image

# System Control Space addresses (ARMv7-M / Cortex-M7).
ICSR = 0xE000ED04
VTOR = 0xE000ED08
CCR = 0xE000ED14
SHCSR = 0xE000ED24
CFSR = 0xE000ED28
HFSR = 0xE000ED2C
SYST_CSR = 0xE000E010
SYST_CVR = 0xE000E018
NVIC_ISER0 = 0xE000E100
NVIC_ISPR0 = 0xE000E200
MPU_CTRL = 0xE000ED94
# STM32F7 RCC (RM0410): the clock the app starts on
RCC_CR, RCC_CFGR = 0x40023800, 0x40023808
RCC_CR_PLLON = 1 << 24
SWS_NAMES = ("HSI", "HSE", "PLL", "?")

CCR_DC = 1 << 16
CCR_IC = 1 << 17
ICSR_PENDSVSET = 1 << 28
ICSR_PENDSTSET = 1 << 26
XPSR_T = 1 << 24


@dataclass(frozen=True)
class RegisterSource:
    """Where one :class:`JumpState` field comes from.

    ``kind`` is ``"core"`` (``name`` is a pyOCD core register name) or ``"mem"`` (``count``
    32-bit words from ``address``).
    """

    field: str
    kind: str
    name: str = ""
    address: int = 0
    count: int = 1


@dataclass
class JumpState:
    """Register values captured at the application's first instruction."""

    vtor: int = 0
    msp: int = 0
    psp: int = 0
    pc: int = 0
    lr: int = 0
    xpsr: int = 0
    control: int = 0
    primask: int = 0
    basepri: int = 0
    faultmask: int = 0
    nvic_iser: list[int] = field(default_factory=lambda: [0] * 8)
    nvic_ispr: list[int] = field(default_factory=lambda: [0] * 8)
    systick_ctrl: int = 0
    systick_val: int | None = None
    mpu_ctrl: int = 0
    ccr: int = 0
    cfsr: int = 0
    hfsr: int = 0
    shcsr: int = 0
    icsr: int = 0
    rcc_cr: int = 0x83  # (the reset values: a state read before this item existed passes)
    rcc_cfgr: int = 0

    REGISTERS: ClassVar[tuple[RegisterSource, ...]] = (
        RegisterSource("msp", "core", "msp"),
        RegisterSource("psp", "core", "psp"),
        RegisterSource("pc", "core", "pc"),
        RegisterSource("lr", "core", "lr"),
        RegisterSource("xpsr", "core", "xpsr"),
        RegisterSource("control", "core", "control"),
        RegisterSource("primask", "core", "primask"),
        RegisterSource("basepri", "core", "basepri"),
        RegisterSource("faultmask", "core", "faultmask"),
        RegisterSource("vtor", "mem", address=VTOR),
        RegisterSource("icsr", "mem", address=ICSR),
        RegisterSource("ccr", "mem", address=CCR),
        RegisterSource("shcsr", "mem", address=SHCSR),
        RegisterSource("cfsr", "mem", address=CFSR),
        RegisterSource("hfsr", "mem", address=HFSR),
        RegisterSource("systick_ctrl", "mem", address=SYST_CSR),
        RegisterSource("systick_val", "mem", address=SYST_CVR),
        RegisterSource("mpu_ctrl", "mem", address=MPU_CTRL),
        RegisterSource("nvic_iser", "mem", address=NVIC_ISER0, count=8),
        RegisterSource("nvic_ispr", "mem", address=NVIC_ISPR0, count=8),
        RegisterSource("rcc_cr", "mem", address=RCC_CR),
        RegisterSource("rcc_cfgr", "mem", address=RCC_CFGR),
    )

    @property
    def ipsr(self) -> int:
        """Exception number from xPSR (0 = thread mode)."""
        return self.xpsr & 0x1FF

    @classmethod
    def collect(cls, read_core: Callable[[str], int], read_word: Callable[[int], int]) -> JumpState:
        """Build a state by reading every :data:`REGISTERS` entry through the two callables."""
        values: dict[str, Any] = {}
        for src in cls.REGISTERS:
            if src.kind == "core":
                values[src.field] = int(read_core(src.name)) & 0xFFFFFFFF
            elif src.count == 1:
                values[src.field] = int(read_word(src.address)) & 0xFFFFFFFF
            else:
                values[src.field] = [
                    int(read_word(src.address + 4 * i)) & 0xFFFFFFFF for i in range(src.count)
                ]
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ipsr included)."""
        d = asdict(self)
        d["ipsr"] = self.ipsr
        return d


@dataclass(frozen=True)
class JumpRow:
    """One contract item: what was expected, what was found, and why it matters."""

    name: str
    expected: str
    actual: str
    ok: bool
    reason: str
    checked: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class JumpVerdict:
    """The contract check: one row per item (unchecked items have ``checked=False``)."""

    rows: tuple[JumpRow, ...]
    #: the memory-map entry VTOR pointed into (``flash``, ``flash_itcm``...), when the board
    #: was given: which view of the flash the app's vector table was reached through
    vtor_view: str | None = None

    @property
    def ok(self) -> bool:
        """True if every checked item holds."""
        return all(r.ok for r in self.rows if r.checked)

    @property
    def failures(self) -> list[JumpRow]:
        """Checked rows that failed."""
        return [r for r in self.rows if r.checked and not r.ok]

    def row(self, name: str) -> JumpRow:
        """The row for item ``name``."""
        return next(r for r in self.rows if r.name == name)

    def summary(self) -> str:
        """One line, or one line per failed item."""
        if self.ok:
            return f"jump contract holds ({sum(r.checked for r in self.rows)} items checked)"
        return "\n".join(
            f"{r.name}: expected {r.expected}, got {r.actual} — {r.reason}" for r in self.failures
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "vtor_view": self.vtor_view, "rows": [r.to_dict() for r in self.rows]}


def _hex(v: int) -> str:
    return f"0x{v:08X}"


def _irqs(words: list[int]) -> list[int]:
    return [32 * i + b for i, w in enumerate(words) for b in range(32) if w >> b & 1]


def _irq_text(words: list[int]) -> str:
    irqs = _irqs(words)
    return "none" if not irqs else "IRQ " + ", ".join(map(str, irqs[:16])) + (" …" if len(irqs) > 16 else "")


def _vtor_check(vtor: int, base: int, board: BoardSpec | None) -> tuple[str, str, bool, str | None]:
    """(expected, actual, ok, view) of the ``vtor`` item. With the board's memory map, VTOR may
    name the app's table through any view of the flash (the AXIM address or an alias such as
    the F7's ITCM 0x0020xxxx: both fetch the same bytes); the text says which view it saw."""
    if board is None:
        return _hex(base), _hex(vtor), vtor == base, None
    flash_base = board.to_flash_address(base)
    views = [
        m
        for m in board.memory.values()
        if m.kind == "alias" and m.alias_of is not None and board.memory[m.alias_of].contains(flash_base)
    ]
    aliases = [m.base + flash_base - board.memory[m.alias_of or ""].base for m in views]
    expected = " or ".join(
        [_hex(flash_base)] + [f"{_hex(a)} ({m.name})" for a, m in zip(aliases, views, strict=True)]
    )
    mem = board.memory_at(vtor)
    view = mem.name if mem is not None else None
    translated = board.to_flash_address(vtor)
    if mem is not None and mem.kind == "alias":
        actual = f"{_hex(vtor)} = {_hex(translated)} through {mem.name} (alias of {mem.alias_of})"
    elif mem is not None:
        actual = f"{_hex(vtor)} through {mem.name}"
    else:
        actual = f"{_hex(vtor)} (outside the memory map)"
    return expected, actual, translated == flash_base, view


def _clocks(st: JumpState) -> tuple[str, str, bool]:
    """The ``clocks`` item: SYSCLK on the HSI with the PLL off, as after a reset."""
    sws, pll = st.rcc_cfgr >> 2 & 3, bool(st.rcc_cr & RCC_CR_PLLON)
    actual = f"SYSCLK = {SWS_NAMES[sws]}, PLL {'on' if pll else 'off'}"
    return "SYSCLK = HSI, PLL off", actual, sws == 0 and not pll


def check_jump(
    state: JumpState,
    image: Image,
    contract: JumpContract,
    app_base: int | None = None,
    *,
    board: BoardSpec | None = None,
) -> JumpVerdict:
    """Compare ``state`` with what the app ``image`` expects at its first instruction.

    Args:
        app_base: where the app's vector table is (default: ``image.base``).
        board: the board's memory map: VTOR may then point at the app's table through any
            view of the flash (``flash`` or an alias such as ``flash_itcm``), and
            :attr:`JumpVerdict.vtor_view` names the one it saw. Without it only
            ``app_base`` itself is accepted.
    """
    base = image.base if app_base is None else app_base
    sp, entry = image.initial_sp, image.reset_handler & ~1
    st = state
    ticks = st.systick_ctrl & 0b11
    vtor_expected, vtor_actual, vtor_ok, vtor_view = _vtor_check(st.vtor, base, board)
    checks: dict[str, tuple[str, str, bool]] = {
        "vtor": (vtor_expected, vtor_actual, vtor_ok),
        "msp": (_hex(sp), _hex(st.msp), st.msp == sp),
        "pc": (_hex(entry), _hex(st.pc), (st.pc & ~1) == entry),
        "thumb": ("T=1", f"T={st.xpsr >> 24 & 1}", bool(st.xpsr & XPSR_T)),
        "thread_mode": ("IPSR=0 (thread mode)", f"IPSR={st.ipsr}", st.ipsr == 0),
        "control": (
            "nPRIV=0 SPSEL=0",
            f"nPRIV={st.control & 1} SPSEL={st.control >> 1 & 1}",
            st.control & 0b11 == 0,
        ),
        "primask": ("0", str(st.primask & 1), st.primask & 1 == 0),
        "basepri": ("0", _hex(st.basepri & 0xFF), st.basepri & 0xFF == 0),
        "faultmask": ("0", str(st.faultmask & 1), st.faultmask & 1 == 0),
        "nvic_enabled": ("none", _irq_text(st.nvic_iser), not any(st.nvic_iser)),
        "nvic_pending": ("none", _irq_text(st.nvic_ispr), not any(st.nvic_ispr)),
        "systick": ("ENABLE=0 TICKINT=0", f"ENABLE={ticks & 1} TICKINT={ticks >> 1}", ticks == 0),
        "pending_exceptions": (
            "PENDSV=0 PENDST=0",
            f"PENDSV={st.icsr >> 28 & 1} PENDST={st.icsr >> 26 & 1}",
            not st.icsr & (ICSR_PENDSVSET | ICSR_PENDSTSET),
        ),
        "mpu": ("ENABLE=0", f"ENABLE={st.mpu_ctrl & 1}", st.mpu_ctrl & 1 == 0),
        "dcache": ("off", "on" if st.ccr & CCR_DC else "off", not st.ccr & CCR_DC),
        "icache": ("off", "on" if st.ccr & CCR_IC else "off", not st.ccr & CCR_IC),
        "faults": (
            "CFSR=0 HFSR=0",
            f"CFSR={_hex(st.cfsr)} HFSR={_hex(st.hfsr)}",
            st.cfsr == 0 and st.hfsr == 0,
        ),
        "clocks": _clocks(st),
    }
    rows = []
    for name, (expected, actual, ok) in checks.items():
        checked = contract.enabled(name)
        rows.append(JumpRow(name, expected, actual, bool(ok), contract.reason(name), checked))
    return JumpVerdict(tuple(rows), vtor_view=vtor_view)
