"""PMSAv7 permission rules (twin/mpu.py) on hand-built MPU configurations."""

from __future__ import annotations

from twin.mpu import ALL, MpuView, R, W, X, decode

# written out from the architecture manual, not imported from twin.mpu (a wrong bit fails here)
CTRL_ENABLE = 1 << 0  # ARMv7-M ARM B3.5.6 MPU_CTRL.ENABLE
CTRL_PRIVDEFENA = 1 << 2  # ARMv7-M ARM B3.5.6 MPU_CTRL.PRIVDEFENA


def rasr(size_field: int, ap: int, xn: bool = False, srd: int = 0) -> int:
    return (int(xn) << 28) | (ap << 24) | (srd << 8) | (size_field << 1) | 1


def view(
    regions: list[tuple[int, int]], ctrl: int = CTRL_ENABLE | CTRL_PRIVDEFENA, privileged: bool = True
) -> MpuView:
    rbar = [0] * 8
    ras = [0] * 8
    for i, (b, a) in enumerate(regions):
        rbar[i], ras[i] = b, a
    return MpuView(ctrl, decode(rbar, ras), privileged)


def test_disabled_mpu_allows_everything() -> None:
    v = view([(0x20000000, rasr(19, 0))], ctrl=0)
    assert v.perms(0x20000000) == ALL


def test_bootloader_ram_region_is_xn_read_write() -> None:
    # the reference bootloader: 1 MiB at 0x20000000, XN, full access, PRIVDEFENA
    v = view([(0x20000000, rasr(19, 3, xn=True))])
    assert v.perms(0x20010000) == R | W
    assert v.perms(0x08040000) == ALL  # default map (privileged)
    assert view([(0x20000000, rasr(19, 3, xn=True))], privileged=False).perms(0x08040000) == 0


def test_highest_region_wins_and_subregions_fall_through() -> None:
    # region 0: 64 KiB RW; region 1: a 2 KiB no-access guard with its sub-region 0 disabled
    v = view([(0x20000000, rasr(15, 3)), (0x20001000, rasr(10, 0, srd=0x01))])
    assert v.perms(0x20001000) == ALL  # disabled sub-region: region 0
    assert v.perms(0x20001100) == 0  # guard
    assert v.perms(0x20001800) == ALL


def test_ap_values_for_both_privilege_levels() -> None:
    for ap, priv, unpriv in ((1, R | W, 0), (2, R | W, R), (5, R, 0), (6, R, R), (0, 0, 0)):
        regs = [(0x20000000, rasr(15, ap))]
        p = view(regs).perms(0x20000000)
        u = view(regs, privileged=False).perms(0x20000000)
        assert (p & (R | W), u & (R | W)) == (priv, unpriv), ap
        assert bool(p & X) == bool(priv & R)  # fetch needs read access


def test_intervals_and_page_perms() -> None:
    v = view([(0x20000000, rasr(19, 3, xn=True)), (0x20000400, rasr(4, 0))])  # 32 B hole
    runs = v.intervals(0x20000000, 0x20002000)
    assert runs == [
        (0x20000000, 0x20000400, R | W),
        (0x20000400, 0x20000420, 0),
        (0x20000420, 0x20002000, R | W),
    ]
    pages = v.page_perms(0x20000000, 0x20002000, 0x400)
    # the page with the hole: no store allowed at page level (checked exactly), reads are
    # the union and watched because they differ inside the page
    assert pages == [
        (0x20000000, 0x20000400, R | W, 0),
        (0x20000400, 0x20000800, R, R),
        (0x20000800, 0x20002000, R | W, 0),
    ]
