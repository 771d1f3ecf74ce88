"""Grids: many SAEs (given, or trained by the grid with SAELens) evaluated as units that any engine runs.

``audiosaebench grid plan|run|status GRID.yaml`` (:mod:`audiosaebench.grid.cli`); the file's keys:
:mod:`audiosaebench.grid.spec`; units and what makes one done: :mod:`audiosaebench.grid.plan`; what a
worker runs: :mod:`audiosaebench.grid.units`; engines: :mod:`audiosaebench.grid.engines`. See
docs/scale-out.md.
"""
