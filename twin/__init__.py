"""A virtual NUCLEO-F767ZI: real Thumb-2 firmware on an emulated Cortex-M7.

The rig never imports this package's internals: it starts ``python -m twin`` and then
talks to the board through the interfaces real hardware has (a pyOCD remote probe, a
PTY serial port, TCP).

Owns: nothing but the package. Must not touch: rig (the twin never imports it, nor rig the
twin).
"""
