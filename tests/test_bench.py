"""bench/run.py: its report table reads every part it writes (the timings themselves are not tested)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_table_shows_every_part():
    bench = _bench()
    report = {
        "machine": {"cpu": "test cpu", "cpus": 2, "memory": "1 kB", "cuda": None, "torch": "2"},
        "speed_check": {"start_s": 1.25, "end_s": 1.5},
        "extract": {"raw_encoder_forward_s": 10.0, "clips": 48, "extract_encoder.layers.3_s": 10.5,
                    "extract_encoder.layers.2_s": 8.0, "ratio_last_layer": 1.05, "ratio_layer2_early_exit": 0.8},
        "decoder": {"clips": 48, "batch_size": 8, "device": "cpu", "passes": [
            {"tokens": 2, "transformers_s": 2.0, "harness_s": 0.25, "speedup": 8.0, "max_abs_difference": 2e-4,
             "max_abs_state": 110.0, "projected": False},
            {"tokens": 70, "transformers_s": 3.0, "harness_s": 2.0, "speedup": 1.5, "max_abs_difference": 1e-4,
             "max_abs_state": 90.0, "projected": True}]},
        "tail": {"device": "cpu", "hook": "encoder.layers.2", "rows": [
            {"split": "commands_test", "windows": 48, "batch_size": 8, "edited_frames": [50] * 6, "layer_s": 4.0,
             "build_s": 2.0, "pass_s": 2.5, "speedup": 1.6, "first_use": 0.89, "entry_mb": 400.0,
             "max_abs_difference": 3e-5, "max_abs_state": 60.0}]},
        "warm": {"tasks": "fidelity,phoneme_probing", "first_sae_cold_s": 80.0, "second_sae_warm_s": 20.0,
                 "second_sae_cold_s": 80.0, "ratio": 4.0, "task_time_cold_s": 30.0, "task_time_warm_s": 15.0,
                 "task_time_ratio": 2.0},
        "tasks": {label: {"wall_s": 100.0, "per_task_s": {"sae-a": {"fidelity": 6.0, "steering": 20.0}},
                          "per_sae_s": {"sae-a": 26.0}, "first_sae_s": 74.0} for label in ("cold", "warm")},
        "floor": {"dtype": "float32", **bench.floor_table({
            "rates_gflops": {"matmul": 200.0, "attention": 100.0},
            "rates_before_after": {"matmul": [200.0, 150.0], "attention": [90.0, 100.0]},
            "tasks": {"steering": {"measured_s": 20.0, "gflop_matmul": 2000.0, "gflop_attention": 500.0},
                      "coverage": {"measured_s": 4.0, "gflop_matmul": 200.0, "gflop_attention": 0.0}}})},
        "limits": {"dtype": "float32", "tasks_b": "fidelity,phoneme_probing", **bench.limits_table({
            # the best rates are taken across the runs: 200 matmul (second run), 100 attention (first)
            # and the shortest imports of the runs of the same tasks: 5 s for both (b) runs
            name: {"tasks": "all" if name.startswith("all") else "fidelity,phoneme_probing",
                   "imports_s": 6.0 if name == "second_sae_warm" else 5.0,
                   "gflop_matmul": 200.0 * t, "gflop_attention": 100.0 * t / 2,
                   "rates_gflops": {"matmul": 200.0 if name == "second_sae_warm" else 150.0,
                                    "attention": 100.0 if name == "second_sae_cold" else 50.0}}
            for name, t in (("second_sae_cold", 45.0), ("second_sae_warm", 3.0), ("all_first_sae_cold", 120.0),
                            ("all_second_sae_warm", 22.0))})},
        "scale": [{"model": "whisper-small", "hook": "encoder.layers.6", "d_sae": 3072, "clips_per_split": 8,
                   "first_sae_cold_s": 300.0, "second_sae_warm_s": 40.0, "second_sae_cold_s": 280.0, "ratio": 7.0,
                   "memory": [{"clips_per_split": c, "peak_rss_mb": 2000.0 + c, "wall_s": 60.0} for c in (8, 16, 32)]}],
        "dashboards": {"sae": "ref", "features": 1536, "device": "cpu", "wall_s": 63.0, "peak_rss_mb": 990.0, "files": 7464,
                       "mb_written": 240.0, "raw_forward_test_s": 40.0, "raw_forward_all_s": 130.0, "clips_test": 118,
                       "clips_all": 400},
        "memory": [{"run": "clips 1x", "d_sae": 4096, "clips_per_split": 12, "peak_rss_mb": 900.0, "wall_s": 50.0}],
        "models": [{"model": "whisper-base (6 layers, 512)", "device": "cpu", "batch_audio_s": 240, "forward_s": 3.0,
                    "realtime_factor": 80.0, "clips": 8, "raw_clips_forward_s": 3.2, "harness_extract_s": 3.1,
                    "ratio": 0.97}],
    }
    text = bench.table(report)
    for needle in ("1.25 s before the parts, 1.50 s after", "ratio 1.05",
                   "  2 tokens: 2.00 s vs 0.25 s (8.0x; reads the encoder states; 2.0e-04 of 110)",
                   " 70 tokens: 3.00 s vs 2.00 s (1.5x; keys/values projected; 1.0e-04 of 90)",
                   "commands_test  48 windows, edits up to frame 50: 4.00 s vs 2.50 s (1.60x; first use 0.89x; 400 MB kept; 3.0e-05 of 60)", "ratio 4.0x", "wall 100 s; the first SAE 74 s", "steering 20",
                   "peak RSS 900 MB", "whisper-base", "harness extraction 3.1 s (ratio 0.97)",
                   "(200 and 100 GFLOP/s (before / after the run: 200 / 150 and 90 / 100))", "floor   15.0 s  measured   20.0 s  0.75", "floor   16.0 s  measured   24.0 s  0.67",
                   "200 / 100 GFLOP/s, the best rates", "cold 72.5 s (imports 5.0 + arithmetic 67.5: 11250 GFLOP)",
                   "ratio at most 7.6x (15.0x if imports were free; target >= 10x)",
                   "first SAE cold 185.0 s (imports 5.0 + arithmetic 180.0", "second SAE warm 38.0 s (imports 5.0",
                   "whisper-small encoder.layers.6, d_sae 3072, 8 clips/split: second SAE cold 280.0 s, warm 40.0 s (ratio 7.0x",
                   "(splice off): 8 2008 MB, 16 2016 MB, 32 2032 MB",
                   "dashboards 1536 features of ref (cpu), warm store: 63.0 s, peak RSS 990 MB",
                   "raw encoder forward of the same clips: 40.0 s for the 118 test clips"):
        assert needle in text, (needle, text)


def test_per_task_orders_saes_as_they_ran(tmp_path):
    import json

    bench = _bench()
    runs = [("b-first", "fidelity", "2026-12-01T10:00:00Z", 5.0), ("a-second", "fidelity", "2026-12-01T10:01:00Z", 3.0),
            ("b-first", "coverage", "2026-12-01T10:00:30Z", 1.5)]
    for sae, task, started, seconds in runs:
        (tmp_path / sae).mkdir(exist_ok=True)
        doc = {"sae": {"id": sae}, "task": {"name": task}, "run": {"started": started, "runtime_s": seconds}}
        (tmp_path / sae / f"{task}.json").write_text(json.dumps(doc))
    per = bench._per_task(tmp_path)
    assert list(per) == ["b-first", "a-second"]  # not the folders' sorted order
    assert per["b-first"] == {"fidelity": 5.0, "coverage": 1.5}


def test_import_seconds_sums_self_times_less_the_counting_machinery():
    bench = _bench()
    report = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:      1000 |       1000 |   _io",
        "import time:    500000 |     501000 | torch",
        "import time:       300 |        300 |     torch.utils._sympy",
        "import time:     20000 |      20300 |   torch.utils.flop_counter",
        "import time:    250000 |     250000 | sklearn",
        "some warning a child printed",
    ])
    assert abs(bench.import_seconds(report) - (1000 + 500000 + 300 + 20000 + 250000 - 20300) / 1e6) < 1e-12


def test_speed_check_without_converted_weights_times_the_config_with_random_weights(tmp_path, monkeypatch):
    # a device machine is sent the mini suite's config and tokenizer, not its weights (bench/device/)
    from transformers import WhisperConfig

    from audiosaebench.models import loading

    WhisperConfig(d_model=64, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                  encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80).save_pretrained(tmp_path)
    assert not any(tmp_path.glob("*.safetensors"))
    monkeypatch.setattr(loading, "mini_whisper_dir", lambda: tmp_path)
    bench = _bench()
    shapes = []
    monkeypatch.setattr(bench, "_best_time", lambda fn, dev, repeats: shapes.append(tuple(fn().last_hidden_state.shape)) or 0.5)
    assert bench.speed_check() == 0.5
    assert shapes == [(8, 1500, 64)]  # 8 windows of 30 s, 1,500 frames each, through the config's encoder
