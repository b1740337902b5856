"""The twin's socket-offload Ethernet device (twin-specific, at 0x40030000, IRQ 61).

Not the STM32 ETH MAC: a small TCP-offload block the firmware drives with commands
and DMA-style buffers (it posts a RAM address and a length; the device reads or writes
RAM itself). The register interface is documented in docs/twin-network.md. It sits in a
reserved hole of the F767 memory map so a later ETH MAC model (0x40028000) can coexist.

Owns: the offload block's registers, its connection state and its buffer transfers
(through ``services.bus_master()``, the bus-master port). Must not touch: the machine or
memory directly; host sockets are the NAT host's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twin.device import BusError, Device, ResetKind
from twin.net.nat import Connection, Reason

if TYPE_CHECKING:
    from twin.net.stack import NetStack

ETH_BASE = 0x40030000
ETH_IRQ = 61
ETH_ID = 0x54485445  # "ETHT" little-endian
MSS = 1460
MAX_TX = 0xFFFF

# register offsets
ID, CTRL, STATUS, ISR, IER, CMD = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
CONN_RES, ERR, IP, PORT = 0x18, 0x1C, 0x20, 0x24
TX_ADDR, TX_LEN, TX_RES = 0x28, 0x2C, 0x30
RX_ADDR, RX_MAX, RX_RES, RX_AVAIL = 0x34, 0x38, 0x3C, 0x40
MSS_REG, CLOSE_REASON, RX_TOTAL, TX_TOTAL = 0x44, 0x48, 0x4C, 0x50

CTRL_EN = 1 << 0

ST_LINK, ST_CONNECTING, ST_CONNECTED, ST_PEER_CLOSED = 1, 2, 4, 8
ST_TX_BUSY, ST_RX_ARMED, ST_RX_DATA, ST_ABORTED = 16, 32, 64, 128

IF_CONN, IF_RX, IF_TX, IF_CLOSED, IF_LINK, IF_ERR = 1, 2, 4, 8, 16, 32
IF_ALL = 0x3F

CMD_CONNECT, CMD_SEND, CMD_RECV, CMD_CLOSE, CMD_ABORT, CMD_RX_CANCEL = 1, 2, 3, 4, 5, 6

# result / error codes (negative, as the firmware sees them)
E_REFUSED = -3
E_UNREACHABLE = -4
E_STATE = -9
E_ABORTED = -12
E_TIMEOUT = -13
E_ARG = -22
E_DISABLED = -20

_REASON_CODE = {
    Reason.REFUSED: E_REFUSED,
    Reason.UNREACHABLE: E_UNREACHABLE,
    Reason.TIMEOUT: E_TIMEOUT,
    Reason.RESET: E_ABORTED,
    Reason.LOCAL: E_ABORTED,
}
CLOSE_NONE, CLOSE_FIN, CLOSE_RESET = 0, 1, 2


def _s32(value: int) -> int:
    return value & 0xFFFFFFFF


class EthOffload(Device):
    """Socket-offload Ethernet: one TCP connection, DMA buffers, level IRQ 61."""

    name = "eth_twin"
    base = ETH_BASE
    size = 0x400

    def __init__(self, stack: NetStack) -> None:
        super().__init__()
        self.stack = stack
        self.link = True
        self._regs_reset()

    # ---------------------------------------------------------------- state
    def _regs_reset(self) -> None:
        self.ctrl = 0
        self.isr = 0
        self.ier = 0
        self.conn_res = 0
        self.err = 0
        self.ip = 0
        self.port = 0
        self.tx_addr = self.tx_len = self.tx_res = 0
        self.rx_addr = self.rx_max = self.rx_res = 0
        self.close_reason = CLOSE_NONE
        self.rx_total = self.tx_total = 0
        self.conn: Connection | None = None
        self.phase = "idle"  # idle|connecting|open|peer_closed|aborted
        self.rx_armed = False
        self.tx_busy = False

    def attach(self, services: Any) -> None:
        super().attach(services)
        self.stack.attach(services)

    def reset(self, kind: str) -> None:
        if kind == ResetKind.CORE:
            return
        if self.conn is not None:
            self.conn.close(abort=True)
        self._regs_reset()
        self._update_irq()

    # ---------------------------------------------------------------- bus
    def read(self, offset: int, size: int) -> int:
        word = offset & ~3
        value = self._read_reg(word)
        if size == 4 and offset == word:
            return value
        shift = (offset & 3) * 8
        return (value >> shift) & ((1 << (8 * size)) - 1)

    def _read_reg(self, off: int) -> int:
        if off == ID:
            return ETH_ID
        if off == CTRL:
            return self.ctrl
        if off == STATUS:
            return self._status()
        if off == ISR:
            if self.rx_armed or self.tx_busy or self.phase == "connecting":
                # The firmware polls for something only the host can bring: let the machine
                # idle at wall pace until it is posted (firmware timeouts then match wall time).
                idle = getattr(self.services, "idle_wait", None)
                if idle is not None:
                    idle()
            return self.isr
        if off == IER:
            return self.ier
        if off == CONN_RES:
            return _s32(self.conn_res)
        if off == ERR:
            return _s32(self.err)
        if off == IP:
            return self.ip
        if off == PORT:
            return self.port
        if off == TX_ADDR:
            return self.tx_addr
        if off == TX_LEN:
            return self.tx_len
        if off == TX_RES:
            return _s32(self.tx_res)
        if off == RX_ADDR:
            return self.rx_addr
        if off == RX_MAX:
            return self.rx_max
        if off == RX_RES:
            return _s32(self.rx_res)
        if off == RX_AVAIL:
            return self.conn.available() if self.conn is not None else 0
        if off == MSS_REG:
            return MSS
        if off == CLOSE_REASON:
            return self.close_reason
        if off == RX_TOTAL:
            return self.rx_total & 0xFFFFFFFF
        if off == TX_TOTAL:
            return self.tx_total & 0xFFFFFFFF
        self.unmodelled(off, "read")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if size != 4 or offset & 3:
            self.unmodelled(offset, "sub-word write")
            return
        if offset == CTRL:
            was = self.ctrl & CTRL_EN
            self.ctrl = value & CTRL_EN
            if was and not self.ctrl:
                self._disable()
        elif offset == ISR:
            self.isr &= ~value & IF_ALL
        elif offset == IER:
            self.ier = value & IF_ALL
        elif offset == CMD:
            self._command(value & 0xFF)
        elif offset == ERR:
            self.err = 0
        elif offset == IP:
            self.ip = value
        elif offset == PORT:
            self.port = value & 0xFFFF
        elif offset == TX_ADDR:
            self.tx_addr = value
        elif offset == TX_LEN:
            self.tx_len = value & 0xFFFFFFFF
        elif offset == RX_ADDR:
            self.rx_addr = value
        elif offset == RX_MAX:
            self.rx_max = value & 0xFFFFFFFF
        elif offset in (
            ID,
            STATUS,
            CONN_RES,
            TX_RES,
            RX_RES,
            RX_AVAIL,
            MSS_REG,
            CLOSE_REASON,
            RX_TOTAL,
            TX_TOTAL,
        ):
            pass  # read-only
        else:
            self.unmodelled(offset, "write")
        self._update_irq()

    # ---------------------------------------------------------------- helpers
    def _status(self) -> int:
        st = ST_LINK if self.link else 0
        st |= {
            "connecting": ST_CONNECTING,
            "open": ST_CONNECTED,
            "peer_closed": ST_CONNECTED | ST_PEER_CLOSED,
            "aborted": ST_ABORTED,
        }.get(self.phase, 0)
        if self.tx_busy:
            st |= ST_TX_BUSY
        if self.rx_armed:
            st |= ST_RX_ARMED
        if self.conn is not None and self.conn.available():
            st |= ST_RX_DATA
        return st

    def _update_irq(self) -> None:
        if self.services is not None:
            level = bool(self.ctrl & CTRL_EN) and bool(self.isr & self.ier)
            self.services.set_irq(ETH_IRQ, level)

    def _log(self, msg: str) -> None:
        self.stack.log(f"eth: {msg}")

    def _reject(self, code: int, why: str) -> None:
        self.err = code
        self.isr |= IF_ERR
        self._log(f"command rejected ({code}): {why}")

    def _disable(self) -> None:
        if self.conn is not None:
            self.conn.close(abort=True)
            self.conn = None
        self.phase = "idle"
        self.rx_armed = self.tx_busy = False

    # ---------------------------------------------------------------- commands
    def _command(self, cmd: int) -> None:
        if not self.ctrl & CTRL_EN:
            self._reject(E_DISABLED, f"command {cmd} while CTRL.EN=0")
            return
        if cmd == CMD_CONNECT:
            self._cmd_connect()
        elif cmd == CMD_SEND:
            self._cmd_send()
        elif cmd == CMD_RECV:
            self._cmd_recv()
        elif cmd in (CMD_CLOSE, CMD_ABORT):
            self._cmd_close(abort=cmd == CMD_ABORT)
        elif cmd == CMD_RX_CANCEL:
            self.rx_armed = False
        else:
            self._reject(E_ARG, f"unknown command {cmd}")

    def _cmd_connect(self) -> None:
        if self.phase not in ("idle",):
            self._reject(E_STATE, f"CONNECT in state {self.phase} (CLOSE first)")
            return
        if not self.port:
            self._reject(E_ARG, "CONNECT with PORT=0")
            return
        self.close_reason = CLOSE_NONE
        self.phase = "connecting"
        if not self.link:
            self._log("CONNECT with link down")
            self.conn = None
            self.phase = "idle"
            self.conn_res = E_UNREACHABLE
            self.isr |= IF_CONN
            return
        self.conn = self.stack.nat.open("eth", self.ip, self.port, self)

    def _cmd_send(self) -> None:
        if self.phase == "aborted":
            self.tx_res = E_ABORTED
            self.isr |= IF_TX
            return
        if self.phase not in ("open", "peer_closed") or self.conn is None:
            self._reject(E_STATE, f"SEND in state {self.phase} (connect first)")
            return
        if self.tx_busy:
            self._reject(E_STATE, "SEND while the previous send is in progress (wait for ISR.TX)")
            return
        if not 0 < self.tx_len <= MAX_TX:
            self._reject(E_ARG, f"SEND with TX_LEN={self.tx_len} (1..{MAX_TX})")
            return
        try:
            data = self.services.bus_master().read(self.tx_addr, self.tx_len)  # type: ignore[union-attr]
        except BusError as exc:
            self._reject(E_ARG, f"SEND buffer 0x{self.tx_addr:08X}+{self.tx_len}: {exc}")
            return
        self.tx_busy = True
        self.conn.send(data)

    def _cmd_recv(self) -> None:
        if self.rx_armed:
            self._reject(E_STATE, "RECV while a receive is already armed")
            return
        if not self.rx_max > 0:
            self._reject(E_ARG, "RECV with RX_MAX=0")
            return
        if self.phase == "aborted":
            self._rx_done(E_ABORTED)
            return
        if self.phase not in ("open", "peer_closed"):
            self._reject(E_STATE, f"RECV in state {self.phase} (no connection)")
            return
        self.rx_armed = True
        self._try_deliver()

    def _cmd_close(self, abort: bool) -> None:
        if self.conn is not None:
            self.conn.close(abort=abort)
        self.conn = None
        self.phase = "idle"
        self.rx_armed = self.tx_busy = False

    # ---------------------------------------------------------------- delivery
    def _try_deliver(self) -> None:
        if not self.rx_armed or self.conn is None:
            return
        avail = self.conn.available()
        if avail:
            limit = min(self.rx_max, MSS)
            data = self.conn.take(limit)
            try:
                self.services.bus_master().write(self.rx_addr, data)  # type: ignore[union-attr]
            except BusError as exc:
                self.rx_armed = False
                self._reject(E_ARG, f"RECV buffer 0x{self.rx_addr:08X}+{len(data)}: {exc}")
                self._update_irq()
                return
            self.rx_total += len(data)
            self._rx_done(len(data))
        elif self.phase == "peer_closed":
            self._rx_done(0)

    def _rx_done(self, result: int) -> None:
        self.rx_armed = False
        self.rx_res = result
        self.isr |= IF_RX
        self._update_irq()

    # ---------------------------------------------------------------- ConnectionSink
    def on_connected(self, conn: Connection) -> None:
        if conn is not self.conn:
            return
        self.phase = "open"
        self.conn_res = 0
        self.isr |= IF_CONN
        self._update_irq()

    def on_connect_failed(self, conn: Connection, reason: str) -> None:
        if conn is not self.conn:
            return
        self.conn = None
        self.phase = "idle"
        self.conn_res = _REASON_CODE.get(reason, E_REFUSED)
        self.isr |= IF_CONN
        self._update_irq()

    def on_data(self, conn: Connection) -> None:
        if conn is self.conn:
            self._try_deliver()
            self._update_irq()

    def on_closed(self, conn: Connection, reason: str) -> None:
        if conn is not self.conn:
            return
        self.isr |= IF_CLOSED
        if reason == Reason.EOF:
            self.phase = "peer_closed"
            self.close_reason = CLOSE_FIN
            self._try_deliver()
        else:
            self.phase = "aborted"
            self.close_reason = CLOSE_RESET
            if self.rx_armed:
                self._rx_done(E_ABORTED)
            if self.tx_busy:
                self.tx_busy = False
                self.tx_res = E_ABORTED
                self.isr |= IF_TX
        self._update_irq()

    def on_sent(self, conn: Connection, count: int) -> None:
        if conn is not self.conn or not self.tx_busy:
            return
        self.tx_busy = False
        self.tx_res = count
        self.tx_total += count
        self.isr |= IF_TX
        self._update_irq()

    # ---------------------------------------------------------------- control
    def set_link(self, up: bool) -> None:
        """Link up/down (control interface). Down resets the live connection."""
        if up == self.link:
            return
        self.link = up
        self._log(f"link {'up' if up else 'down'}")
        self.isr |= IF_LINK
        if not up and self.conn is not None and self.phase in ("open", "peer_closed", "connecting"):
            conn = self.conn
            was_connecting = self.phase == "connecting"
            conn.close(abort=True)
            if was_connecting:
                self.on_connect_failed(conn, Reason.UNREACHABLE)
            else:
                self.on_closed(conn, Reason.RESET)
        self._update_irq()

    def snapshot(self) -> dict[str, object]:
        return {
            "link": self.link,
            "phase": self.phase,
            "ctrl": self.ctrl,
            "isr": self.isr,
            "ier": self.ier,
            "rx_armed": self.rx_armed,
            "tx_busy": self.tx_busy,
            "rx_total": self.rx_total,
            "tx_total": self.tx_total,
            "connection": self.conn.id if self.conn is not None else None,
        }
