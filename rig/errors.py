"""The rig's exception hierarchy.

Every error the rig raises on purpose derives from :class:`RigError`, carries the
context needed to act on it, and says what to do about it in ``str(err)``.
"""

from __future__ import annotations


class RigError(Exception):
    """Base of every error raised on purpose by ota-rig."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message


class ConfigError(RigError):
    """A board file, option or argument is wrong.

    ``source`` is the file (or option) and ``key_path`` the dotted path inside it.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        key_path: str | None = None,
        expected: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if source:
            where = f"{source}: "
        if key_path:
            where += f"{key_path}: "
        text = where + message
        if expected:
            text += f" (expected {expected})"
        super().__init__(text, hint=hint)
        self.source = source
        self.key_path = key_path
        self.expected = expected


class ImageError(RigError):
    """A firmware image cannot be loaded or does not fit / boot on the board."""


class ProbeError(RigError):
    """The debug probe cannot be found, opened or driven."""


class ConsoleError(RigError):
    """The serial console cannot be opened or an expected text did not arrive."""


class TargetError(RigError):
    """A board (twin or NUCLEO) cannot be started, reached or released."""


class OtaError(RigError):
    """The OTA session with the board failed; ``reason`` is a short machine-readable tag."""

    def __init__(self, message: str, *, reason: str = "error", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


#: The phases of one OTA test, in pipeline order. A failure names the first broken one.
PHASES = ("flash", "boot", "transfer", "write", "copy", "jump", "app")


class PhaseFailure(RigError):
    """A HIL scenario failed in ``phase``; ``evidence`` holds what the report shows.

    ``str()`` starts with the phase so a one-line pytest summary already says where it broke,
    e.g. ``[copy] app slot differs from the image: sector 6 was programmed without an erase``.
    """

    def __init__(self, phase: str, message: str, *, evidence: object = None, hint: str | None = None) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        super().__init__(f"[{phase}] {message}", hint=hint)
        self.phase = phase
        self.evidence = evidence
