"""bench/run.py's grid part: its table line reads what the part writes (the timings themselves are not tested)."""

from __future__ import annotations

from tests.test_bench import _bench


def test_table_shows_the_grid_part():
    bench = _bench()
    counted = {"gflop_matmul": 900.0, "gflop_attention": 100.0, "rates_gflops": {"matmul": 100.0, "attention": 50.0}}
    floor = bench._floor_s(counted, counted["rates_gflops"])
    report = {"machine": {"cpu": "test cpu", "cpus": 2, "memory": "1 kB", "cuda": None, "torch": "2"},
              "grid": {"saes": 8, "tasks": "fidelity,phoneme_probing", "hook": "encoder.layers.2", "grid_s": 200.0,
                       "separate_s": 250.0, "floor_s": floor, "counted": counted, "ratio_separate_over_grid": 1.25,
                       "ratio_grid_over_floor": 200.0 / floor, "ratio_separate_over_floor": 250.0 / floor}}
    text = bench.table(report)
    assert floor == 11.0
    for needle in ("8 SAEs on encoder.layers.2 [fidelity,phoneme_probing]", "`grid run` (local engine) 200 s",
                   "8 separate `evaluate` processes 250 s (1.25x the grid)", "matrix-product floor 11 s (1000 GFLOP at 100 / 50",
                   "the grid 18.18x it, separate processes 22.73x"):
        assert needle in text, (needle, text)
