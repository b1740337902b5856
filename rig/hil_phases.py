"""Probe errors inside a HIL step fail that step's phase.

A failed debug access (a readback, a register read, a halt: :class:`rig.probe_errors.
ProbeAccessError` with the address and the core's state) inside a :class:`rig.hil.Bench` step
becomes a :class:`rig.errors.PhaseFailure` of the phase the step belongs to, carrying the
test's evidence, so the report names the phase — never "unknown phase". The innermost step
names it (a readback inside ``await_app_entry`` is ``copy``); a step with a ``phase``
argument (``check_region``) uses that.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from rig.errors import PhaseFailure, ProbeError
from rig.evidence import Evidence

_F = TypeVar("_F", bound=Callable[..., Any])


def probe_errors_in(phase: str) -> Callable[[_F], _F]:
    """Decorate a :class:`Bench` step: a probe error inside it (a failed read, register read,
    halt... with the address and the core's state, :class:`rig.probe.ProbeAccessError`)
    becomes a :class:`PhaseFailure` of ``phase`` (or of the step's own ``phase`` argument),
    carrying the test's evidence: the report names the phase, never "unknown phase". The
    innermost decorated step names it (a readback inside ``await_app_entry`` is ``copy``)."""

    def decorate(fn: _F) -> _F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def step(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:
                if not isinstance(exc, ProbeError) and not _pyocd_error(exc):
                    raise
                bound = signature.bind(self, *args, **kwargs)
                bound.apply_defaults()
                where = bound.arguments.get("phase", phase)
                ev = next((v for v in bound.arguments.values() if isinstance(v, Evidence)), self.evidence)
                # pyOCD's own errors outside the probe's guarded accesses (a breakpoint, a
                # reset): ProbeDisconnected when a remote probe's server went away mid-test
                text = exc.message if isinstance(exc, ProbeError) else f"{type(exc).__name__}: {exc}"
                hint = (
                    exc.hint if isinstance(exc, ProbeError) else "the probe (or its probe server) went away"
                )
                if ev is None:
                    raise PhaseFailure(where, f"the probe failed: {text}", hint=hint) from exc
                raise self._fail(ev, where, f"the probe failed: {text}", hint=hint) from exc

        return step  # type: ignore[return-value]

    return decorate


def _pyocd_error(exc: BaseException) -> bool:
    from pyocd.core.exceptions import Error as PyocdError

    return isinstance(exc, PyocdError)


#: the phase of each :class:`rig.hil.Bench` step (``check_region`` and ``check_guarded``: their
#: own ``phase`` argument, this is its default)
STEP_PHASES: Mapping[str, str] = {
    "check_region": "copy",
    "flash_bootloader": "flash",
    "write_config": "flash",
    "install_app_direct": "flash",
    "guard_flash": "write",
    "check_guarded": "write",
    "run_update": "boot",
    "session_failure": "transfer",
    "await_app_entry": "jump",
    "update_through_power_cut": "boot",
    "reset_and_refuse": "boot",
    "boot_damaged_app": "boot",
    "old_app_survives": "copy",
    "expect_app": "app",
    "update": "app",
}


def with_phases(cls: type, phases: Mapping[str, str] = STEP_PHASES) -> None:
    """Wrap each method ``name`` of ``cls`` with :func:`probe_errors_in` of its phase."""
    for name, phase in phases.items():
        setattr(cls, name, probe_errors_in(phase)(getattr(cls, name)))
