"""Value types of the board file's schema: integers written as YAML numbers or ``0x``
strings, sizes with ``K``/``M`` suffixes, names, free text, and the strict base model.

Shared by :mod:`rig.board_schema` (the file) and :mod:`rig.board_update` (its ``update:``
section); the error helper :func:`invalid` makes a validator's error read like the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

#: what every board-file error tells the user to read
DOC_HINT = "see docs/board-file.md"


def invalid(message: str, expected: str | None = None, key: str | None = None) -> PydanticCustomError:
    """A board-file error raised inside a validator; ``key`` extends the error's key path."""
    return PydanticCustomError("board", message, {"expected": expected, "key": key})


# --------------------------------------------------------------------------- value types


def got(value: Any, limit: int = 60) -> str:
    """``got <value>`` for a message, the value's repr cut to ``limit`` characters (a
    5 000-digit number is not repeated back in full)."""
    text = (
        repr(value)
        if not isinstance(value, int) or abs(value) < 10**limit
        else f"a {len(str(abs(value)))}-digit integer"
    )
    return f"got {text[:limit]}..." if len(text) > limit else f"got {text}"


def _integer(value: Any) -> int:
    """YAML integer or a decimal / ``0x`` string → int (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise invalid(got(value), "an integer")
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:  # also past Python's 4300-digit limit
            raise invalid(got(value), "an integer (decimal or 0x hex)") from None
    return value


@dataclass(frozen=True)
class IntIn:
    """``Annotated[int, IntIn(lo, hi)]``: a constrained integer (pydantic-core's ``ge``/``le``)
    that may be written as a YAML integer or a decimal / ``0x`` string; the error names both bounds."""

    lo: int
    hi: int

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        bounded = core_schema.int_schema(ge=self.lo, le=self.hi, strict=True)
        return core_schema.no_info_wrap_validator_function(self._validate, bounded)

    def _validate(self, value: Any, handler: ValidatorFunctionWrapHandler) -> int:
        number = _integer(value)
        try:
            return handler(number)
        except ValidationError:  # the only error left for an int: out of range
            raise invalid(got(number), f"an integer in {self.lo}..{self.hi}") from None


_SIZE_RE = re.compile(r"^\s*(0x[0-9a-fA-F_]+|\d[\d_]*(?:\.\d+)?)\s*([KkMm]i?[Bb]?)?\s*$")


#: the largest size a board file may give: the whole 32-bit address space
MAX_SIZE = 1 << 32


def _size(value: Any) -> int:
    """Bytes as an integer or a string such as ``"32K"``, ``"1.5K"``, ``"2M"``, ``"0x420"``
    (exact arithmetic: no float rounding, no overflow), at most :data:`MAX_SIZE`."""
    expected = "a size: integer bytes or a string like '32K', '2M'"
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and len(value) <= 40 and (m := _SIZE_RE.match(value)):
        num, unit = m.groups()
        scale = {"k": 1024, "m": 1024 * 1024}.get((unit or " ")[0].lower(), 1)
        text = num.replace("_", "")
        number = int(text, 16) if text.lower().startswith("0x") else Fraction(text)
        exact = number * scale
        if exact != int(exact):
            raise invalid(f"{value!r} is not a whole number of bytes", "a size in bytes")
        n = int(exact)
    else:
        raise invalid(got(value), expected)
    if not 0 < n <= MAX_SIZE:
        raise invalid(got(n), f"a positive size of at most {MAX_SIZE} (4G)")
    return n


def _number_to_str(value: Any) -> Any:
    """Free text and serial numbers: a YAML number (``1234``) is taken as its text."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


Address = Annotated[int, IntIn(0, 0xFFFFFFFF)]
Size = Annotated[int, BeforeValidator(_size)]
Name = Annotated[str, Field(min_length=1)]
Text = Annotated[str, BeforeValidator(_number_to_str)]
Serial = Annotated[str | None, BeforeValidator(_number_to_str)]


class Strict(BaseModel):
    """Unknown keys are errors, nothing is coerced between types, models are frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


#: what ``Strict`` is called in the schema modules
_Strict = Strict
