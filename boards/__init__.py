"""Board description files, installed as the ``rig.boards`` package data.

``boards/stm32f767.yaml`` is the NUCLEO-F767ZI's description and the default board file
(docs/board-file.md); copy it next to your tests to describe your own board.
"""
