"""The fault status registers decoded bit by bit, for the report: the tables and decoders
live in :mod:`rig.fault_bits` (the rig's failure messages use them too)."""

from rig.fault_bits import (  # noqa: F401
    CFSR_BITS,
    EXCEPTIONS,
    HFSR_BITS,
    Bit,
    decode_cfsr,
    decode_hfsr,
    exc_return_text,
    exception_name,
    fault_summary,
)
