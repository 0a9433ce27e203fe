"""The IPython edge: ``%load_ext``, the magics, the cell session, widget wiring.

Owns loading and unloading the extension (:mod:`.extension`), the magics
(:mod:`.magics`), what a ``%%chat`` / ``%%complete`` cell does
(:mod:`.session`), showing views after a cell (:mod:`.cellviews`) and the
public widget functions wired to the shared client (:mod:`.widgets`).

May import every layer below. IPython is imported here and nowhere else.
"""
