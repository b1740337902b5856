"""ota-rig: hardware-in-the-loop test rig for STM32F767 OTA bootloaders."""

from __future__ import annotations

__version__ = "0.1.0"
