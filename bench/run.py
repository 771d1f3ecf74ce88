"""Performance benchmark: the harness against its physical limit, on the mini suite.

    python bench/run.py [--parts extract,decoder,tail,warm,tasks,floor,limits,memory,models,scale,dashboards,grid]
                        [--out bench/results.json] [--saes A,B] [--dtype float32|bfloat16] [--scale-limit 8]
                        [--dashboard-sae SAE] [--grid-saes 8] [--grid-tasks T]

Prints a readable table and writes a JSON report (with the machine it ran on). Parts:

* extract: activation extraction vs the raw encoder forward on the same batches (target <= 1.10);
* decoder: the harness's Whisper text decoder (audiosaebench.models.whisper_text_decoder) against
           transformers' decoder on the same encoder outputs (the mini speech test clips, batches of
           8): teacher-forced passes of 2 tokens (causal patching's readout), 8 (a steering
           non-speech decode's prompt and steps), 34 (a speech decode's) and 70 (past head_dim, so
           the harness projects keys and values as transformers does), and the largest difference
           between their decoder states;
* tail:    the first encoder layer above the hook on edited hook states (a small shift of every
           valid frame; the mini speech test clips, and commands test clips cut to 1 s as causal
           patching cuts them; batches of 8): transformers' layer against the memo of the unchanged
           frames (audiosaebench.models.unedited_frames_memo), a pass that finds its entry and the first
           use (building the entry, then the pass), and the largest difference of their outputs;
* warm:    `evaluate --tasks fidelity,phoneme_probing` of a second SAE after a first on the same hook,
           against the same SAE in a fresh home (target >= 10x);
* tasks:   `evaluate --tasks all` on two SAEs from a fresh home (cold), then again (warm): wall and
           per-task time of each SAE;
* floor:   the physical limit of a second SAE's tasks: per task of a warm `--tasks all` (the
           first SAE filled the SAE-independent caches), the floating-point operations of its
           matrix products and attention (torch's FlopCounterMode) over the rates this machine
           reaches on Whisper tiny's shapes, against the task's measured time;
* limits:  the physical limit of the second-SAE ratio and of `--tasks all`: whole `evaluate` processes in the
           states they name (a second SAE's fidelity + phoneme_probing cold and warm; `--tasks
           all` of a first SAE cold and of a second warm), each counted whole (extraction,
           SAE-independent caches and tasks) and timed as its imports (`python -X importtime`) plus
           its arithmetic at the machine's rates: the least time a harness without any overhead
           could take, so the best second-SAE ratio this machine allows;
* memory:  peak RSS against the number of clips (1x, 2x, 4x) and against d_sae (4k, 16k, 65k);
* models:  randomly initialised whisper-tiny / -base / -small and hubert-base configs (timing does
           not depend on the weights): the encoder forward of 8 windows, and the harness's extraction
           at the last layer vs the raw forward on the same 8 mini clips; on a GPU when one is available;
* scale:   the second-SAE ratio and peak memory on random-init models of the same sizes (whisper-base / -small with as many
           decoder layers as encoder layers and tiny.en's tokenizer, hubert-base), two random TopK
           SAEs at the middle layer, `--scale-limit` clips per split: a second SAE's
           `fidelity,phoneme_probing` cold vs warm, and peak RSS at 1x, 2x and 4x the clips;
* dashboards: `audiosaebench dashboards --features all` of ``--dashboard-sae`` (default: a random TopK
           SAE of the reference shape, d_sae 1536, k 32) on the mini suite with a warm activation store
           (the splits it reads extracted first), its wall time and peak RSS in a child process, against
           the raw encoder forward of the same clips (batches of 8).
* grid:    `--grid-saes` (8) random TopK SAEs on encoder.layers.2, `--grid-tasks` (fidelity,phoneme_probing),
           each from a fresh home: `audiosaebench grid run` (local engine: one process, extraction
           units then one evaluation unit per SAE) against as many separate `evaluate` processes one
           after another (alternately, `--grid-repeats` rounds, the best of each), and against the grid's matrix-product floor (the whole run's matrix products
           and attention, counted under torch's FlopCounterMode in a child process, over the
           machine's rates measured around it).

Before the first part and after the last, a speed check times the raw Whisper tiny.en encoder on
8 silent 30 s windows (best of 3): on a shared machine, whose speed drifts by tens of percent
over minutes, it says how fast the machine was while the parts ran.

``--dtype`` sets the model forward dtype of the warm, tasks, floor, limits and scale parts (extract,
memory and models run in float32). Each part runs in its own private AUDIOSAEBENCH_HOME (a copy of the prepared mini suite and the
converted model; no activations, state or task caches) so "cold" means cold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MODEL = "openai/whisper-tiny.en"
HOOK = "encoder.layers.2"


def machine() -> dict:
    import torch

    from audiosaebench.results.provenance import hardware

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cpu": hardware("cpu"),
            "cuda": hardware("cuda") if torch.cuda.is_available() else None}
    try:
        mem = [line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")]
        info["memory"] = mem[0].split(":")[1].strip() if mem else None
    except OSError:
        pass
    return info


def private_home(src: Path) -> Path:
    """A fresh home holding the prepared data and converted model but no activations or caches."""
    home = Path(tempfile.mkdtemp(prefix="audiosaebench-bench-"))
    for name in ("data", "models", "weights-sha256.json"):
        if (src / name).is_dir():
            shutil.copytree(src / name, home / name, symlinks=True)
        elif (src / name).exists():
            shutil.copy(src / name, home / name)
    return home


@contextmanager
def in_private_home(src: Path) -> Iterator[Path]:
    """This process works in a fresh private home (see private_home) until the block ends."""
    home = private_home(src)
    os.environ["AUDIOSAEBENCH_HOME"] = str(home)
    try:
        yield home
    finally:
        os.environ["AUDIOSAEBENCH_HOME"] = str(src)
        shutil.rmtree(home, ignore_errors=True)


def _sync(dev: str) -> None:
    """Wait for queued GPU work, so wall-clock time covers it."""
    if dev == "cuda":
        import torch

        torch.cuda.synchronize()


def bench_extract(report: dict) -> None:
    import torch

    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.suites import load_suite
    from audiosaebench.models.loading import load_adapter

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ad = load_adapter(MODEL, device=dev)
    man = load_suite("mini").split("speech_test")
    waves = [man.load(c) for c in man.clips]
    bs = 8
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(waves), bs):
            b = ad.prepare(waves[i : i + bs])
            ad.base_model.encoder(b.inputs["input_features"].to(dev))
    _sync(dev)
    raw = time.perf_counter() - t0
    rows = {"raw_encoder_forward_s": raw, "clips": len(waves), "batch_size": bs, "device": dev}
    for hook in ("encoder.layers.3", HOOK):
        t0 = time.perf_counter()
        get_activations(ad, [hook], man, batch_size=bs, progress=False)
        _sync(dev)
        rows[f"extract_{hook}_s"] = time.perf_counter() - t0
    rows["ratio_last_layer"] = rows["extract_encoder.layers.3_s"] / raw
    rows["ratio_layer2_early_exit"] = rows[f"extract_{HOOK}_s"] / raw
    report["extract"] = rows


def bench_decoder(report: dict) -> None:
    import torch

    from audiosaebench.data.suites import load_suite
    from audiosaebench.models.loading import load_adapter
    from audiosaebench.models.whisper_text_decoder import TextDecoder

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ad = load_adapter(MODEL, device=dev)
    man = load_suite("mini").split("speech_test")
    bs = 8
    with torch.no_grad():
        encs = [ad.base_model.encoder(ad.prepare([man.load(c) for c in man.clips[i : i + bs]])
                                      .inputs["input_features"].to(dev)).last_hidden_state
                for i in range(0, len(man.clips), bs)]
    text, hf = TextDecoder(ad.model), ad.base_model.decoder
    rows = []
    for n in (2, 8, 34, 70):
        gen = torch.Generator().manual_seed(n)
        ids = [torch.randint(0, hf.embed_tokens.num_embeddings, (e.shape[0], n), generator=gen).to(dev) for e in encs]
        with torch.no_grad():
            t_hf = _best_time(lambda ids=ids: [hf(input_ids=i, encoder_hidden_states=e, use_cache=False)
                                               for i, e in zip(ids, encs, strict=True)], dev, 3)
            t_ours = _best_time(lambda ids=ids: [text(i, text.memory(e)) for i, e in zip(ids, encs, strict=True)], dev, 3)
            memories = [text.memory(e) for e in encs]
            pairs = [(text(i, m), hf(input_ids=i, encoder_hidden_states=e, use_cache=False).last_hidden_state)
                     for i, e, m in zip(ids, encs, memories, strict=True)]
        rows.append({"tokens": n, "transformers_s": t_hf, "harness_s": t_ours, "speedup": t_hf / t_ours,
                     "max_abs_difference": max(float((a - b).abs().max()) for a, b in pairs),
                     "max_abs_state": max(float(b.abs().max()) for _, b in pairs), "projected": memories[0].projected})
    report["decoder"] = {"clips": len(man.clips), "batch_size": bs, "device": dev, "passes": rows}


def bench_tail(report: dict) -> None:
    """The first layer above the hook on edited hook states: transformers' layer against the memo of the
    unchanged frames (audiosaebench.models.unedited_frames_memo): building an entry, and a pass that finds one."""
    import torch
    from torch import nn

    from audiosaebench.activations.states import continuation_states
    from audiosaebench.data.suites import load_suite
    from audiosaebench.models.continuation import Continuation
    from audiosaebench.models.loading import load_adapter
    from audiosaebench.models.unedited_frames_memo import UneditedFramesMemo
    from audiosaebench_tasks.causal_patching.compute import _fit_length

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ad = load_adapter(MODEL, device=dev)
    cont = Continuation(ad, HOOK, nn.Identity())
    layer = cont._layers[0]
    rows = []
    for split, bs, seconds in (("speech_test", 8, None), ("commands_test", 8, 1.0)):
        man = load_suite("mini").split(split)
        clips = man.clips[: 6 * bs]
        batches = []
        for i in range(0, len(clips), bs):
            waves = [man.load(c) for c in clips[i : i + bs]]
            if seconds is not None:  # cut or padded as causal patching fits its clips
                waves = [_fit_length(w, int(seconds * 16_000)) for w in waves]
            batch = ad.prepare(waves)
            states = continuation_states(cont, batch)
            edited = states.clone()
            gen = torch.Generator().manual_seed(i)
            for j, v in enumerate(batch.valid_frames):  # a shift of every valid frame, as steering adds one
                edited[j, :v] += 0.05 * torch.randn(v, states.shape[-1], generator=gen).to(dev)
            batches.append((states, edited, max(batch.valid_frames)))
        memo = UneditedFramesMemo(layer, budget_bytes=1 << 40)
        with torch.no_grad():
            t_layer = _best_time(lambda b=batches: [layer(h, None) for _, h, _ in b], dev, 3)
            builder = UneditedFramesMemo(layer, budget_bytes=1 << 40)  # keeps what it builds, as a first use does
            t_build = _best_time(lambda b=batches, m=builder: (m.clear(), [m._build(s, e) for s, _, e in b]), dev, 3)
            builder.clear()
            [memo(s, h) for s, h, _ in batches]
            t_pass = _best_time(lambda b=batches, m=memo: [m(s, h) for s, h, _ in b], dev, 3)
            refs = [layer(h, None) for _, h, _ in batches]
            diffs = [(memo(s, h) - r).abs().max() for (s, h, _), r in zip(batches, refs, strict=True)]
        rows.append({"split": split, "windows": len(clips), "batch_size": bs,
                     "edited_frames": [e for _, _, e in batches], "layer_s": t_layer, "build_s": t_build,
                     "pass_s": t_pass, "speedup": t_layer / t_pass, "first_use": t_layer / (t_build + t_pass),
                     "entry_mb": memo.used / 2**20, "max_abs_difference": float(max(diffs)),
                     "max_abs_state": float(max(r.abs().max() for r in refs))})
    report["tail"] = {"device": dev, "hook": HOOK, "rows": rows}


def speed_check() -> float:
    """Seconds for the raw encoder forward of 8 silent 30 s windows, best of 3 (after one warm-up).
    Where the converted weights are absent (a device machine that was sent only the mini suite's
    data, tokenizer and config: bench/device/), the same config with random weights: a forward's
    time does not depend on them."""
    import numpy as np
    import torch

    from audiosaebench.models.loading import load_adapter, mini_whisper_dir

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if any(mini_whisper_dir().glob("*.safetensors")):
        ad = load_adapter(MODEL, device=dev)
        feats = ad.prepare([np.zeros(16_000 * 30, dtype=np.float32)] * 8).inputs["input_features"].to(dev)
        encoder = ad.base_model.encoder
    else:
        from transformers import WhisperConfig, WhisperModel

        cfg = WhisperConfig.from_pretrained(mini_whisper_dir())
        encoder = WhisperModel(cfg).encoder.to(dev).eval()
        feats = torch.zeros(8, cfg.num_mel_bins, 3000, device=dev)
    with torch.no_grad():
        return _best_time(lambda: encoder(feats), dev, 3)


def _best_time(fn, dev: str, repeats: int) -> float:
    """Seconds of ``fn()``: one warm-up call, then the best of ``repeats`` timed calls."""
    best = float("inf")
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        if i:
            best = min(best, time.perf_counter() - t0)
    return best


def _cli(args: list[str], env: dict) -> float:
    """Run the CLI in a child process; its wall seconds (peak memory: see bench_memory)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "audiosaebench.cli", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _cli_peak(args: list[str], env: dict) -> tuple[float, float]:
    """Run the CLI in a child process: its wall seconds and peak RSS in MB. VmHWM, not ru_maxrss:
    Linux carries ru_maxrss across exec, so a child would report the benchmark process's own peak."""
    code = ("import sys;from audiosaebench.cli import main;rc=main(sys.argv[1:]);"
            "print([int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')][0])")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, int(res.stdout.strip().splitlines()[-1]) / 1024


def _write_random(path: Path, d_sae: int, seed: int) -> Path:
    from audiosaebench.sae.reference import random_sae
    from audiosaebench.sae.writing import write_saelens_v6

    return write_saelens_v6(random_sae(384, d_sae, 32, MODEL, HOOK, seed=seed).with_info(id=f"bench-d{d_sae}-s{seed}"),
                            path, overwrite=True)


def _per_task(out_dir: Path) -> dict[str, dict[str, float]]:
    """{sae id: {task: runtime_s}} from the result JSON a run wrote, SAEs in the order they ran."""
    docs = [json.loads(p.read_text()) for p in sorted(out_dir.rglob("*.json"))]
    per: dict[str, dict[str, float]] = {}
    for doc in sorted(docs, key=lambda d: d["run"]["started"]):  # ISO UTC times sort as text
        per.setdefault(doc["sae"]["id"], {})[doc["task"]["name"]] = doc["run"]["runtime_s"]
    return per


def _two_saes(work: Path, saes: list[str] | None, report: dict) -> tuple[Path, Path]:
    """The two SAEs of the warm, tasks, floor and limits parts: ``saes``, or two random TopK SAEs
    written under ``work``; ``report["saes"]`` says which."""
    if saes:
        a, b = (Path(x) for x in saes)
    else:
        a, b = _write_random(work / "a", 1536, 0), _write_random(work / "b", 1536, 1)
    report["saes"] = [str(a), str(b)] if saes else ["random TopK d_sae 1536 k 32 seed 0", "... seed 1"]
    return a, b


def bench_warm_and_tasks(report: dict, src_home: Path, parts: set[str], saes: list[str] | None = None,
                         dtype: str = "float32") -> None:
    """Each part in its own fresh home (prepared data and converted model only), so cold is cold.
    ``saes``: two SAE folders on encoder.layers.2 of whisper-tiny.en (default: two random TopK SAEs).
    The floor part runs in the tasks part's home after it (or in a home the first SAE warmed)."""
    work = Path(tempfile.mkdtemp(prefix="bench-saes-"))
    a, b = _two_saes(work, saes, report)
    homes = []
    try:
        if "warm" in parts:
            # the first SAE cold, then the second on the same home (warm); then the second again in a
            # fresh home (cold), so the ratio compares one SAE with itself: the SAE-dependent work (how
            # long its splice decodes run) differs between SAEs and would otherwise blur the ratio
            homes.append(private_home(src_home))
            env = {**os.environ, "AUDIOSAEBENCH_HOME": str(homes[-1])}
            tasks = "fidelity,phoneme_probing"
            opts = ["--tasks", tasks, "--dtype", dtype, "--no-progress"]
            first = _cli(["evaluate", "--sae", str(a), *opts, "--out", str(work / "r1")], env)
            warm = _cli(["evaluate", "--sae", str(b), *opts, "--out", str(work / "r2")], env)
            homes.append(private_home(src_home))
            env = {**os.environ, "AUDIOSAEBENCH_HOME": str(homes[-1])}
            cold = _cli(["evaluate", "--sae", str(b), *opts, "--out", str(work / "r3")], env)
            t_first = sum(next(iter(_per_task(work / "r1").values())).values())
            t_warm = sum(next(iter(_per_task(work / "r2").values())).values())
            t_cold = sum(next(iter(_per_task(work / "r3").values())).values())
            report["warm"] = {"tasks": tasks, "first_sae_cold_s": first, "second_sae_warm_s": warm,
                              "second_sae_cold_s": cold, "ratio": cold / warm, "ratio_first_vs_second": first / warm,
                              "task_time_cold_s": t_cold, "task_time_warm_s": t_warm, "task_time_ratio": t_cold / t_warm,
                              "task_time_first_s": t_first}
        if parts & {"tasks", "floor"}:
            homes.append(private_home(src_home))
            env = {**os.environ, "AUDIOSAEBENCH_HOME": str(homes[-1])}
        if "tasks" in parts:
            out = {}
            for label in ("cold", "warm"):
                t = _cli(["evaluate", "--sae", str(a), "--sae", str(b), "--tasks", "all", "--dtype", dtype,
                          "--out", str(work / f"all-{label}"), "--no-progress"], env)
                per = _per_task(work / f"all-{label}")
                per_sae = {k: sum(v.values()) for k, v in per.items()}
                # the first SAE's share of the run: the wall time less the second SAE's tasks
                first = t - per_sae[list(per)[1]] if len(per) == 2 else None
                out[label] = {"wall_s": t, "saes": 2, "per_task_s": per, "per_sae_s": per_sae, "first_sae_s": first}
            report["tasks"] = out
        elif "floor" in parts:  # the first SAE fills the SAE-independent caches
            _cli(["evaluate", "--sae", str(a), "--tasks", "all", "--dtype", dtype, "--out", str(work / "floor-warmup"),
                  "--no-progress"], env)
        if "floor" in parts:
            report["floor"] = bench_floor(a, b, dtype, env)
    finally:
        for h in homes:
            shutil.rmtree(h, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


# the machine's rates on the shapes that dominate the tasks: Whisper tiny's MLP over 8 windows of
# 1,500 frames, and its self-attention (6 heads of 64) over the same windows
MATMUL_SHAPE = (8 * 1500, 384, 1536)
ATTENTION_SHAPE = (8, 6, 1500, 64)


def machine_rates(dtype: str) -> dict[str, float]:
    """GFLOP/s this machine reaches (best of 5 after a warm-up) on ``MATMUL_SHAPE`` and ``ATTENTION_SHAPE``."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dt = getattr(torch, dtype)
    gen = torch.Generator(device=dev).manual_seed(0)
    m, k, n = MATMUL_SHAPE
    x, w = (torch.randn(r, k, generator=gen, device=dev).to(dt) for r in (m, n))
    q = torch.randn(*ATTENTION_SHAPE, generator=gen, device=dev).to(dt)
    b, h, t, d = ATTENTION_SHAPE
    work = {"matmul": (lambda: torch.nn.functional.linear(x, w), 2 * m * k * n),
            "attention": (lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q), 4 * b * h * t * t * d)}
    with torch.no_grad():
        return {name: flop / _best_time(fn, dev, 5) / 1e9 for name, (fn, flop) in work.items()}


def _flop_counter():
    """A FlopCounterMode factory that also counts the CPU attention kernel (torch counts only the CUDA
    ones), and the names of the attention ops, so matrix products and attention can be told apart."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten
    cpu_attention = {
        aten._scaled_dot_product_flash_attention_for_cpu:
            lambda q, k, v, *args, out_shape=None, **kw: sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda g, q, k, v, *args, out_shape=None, **kw: sdpa_backward_flop_count(g, q, k, v),
    }
    attention_ops = {str(op) for op in cpu_attention} | {
        str(op) for op in (aten._scaled_dot_product_flash_attention, aten._scaled_dot_product_efficient_attention,
                           aten._scaled_dot_product_cudnn_attention, aten._scaled_dot_product_flash_attention_backward,
                           aten._scaled_dot_product_efficient_attention_backward,
                           aten._scaled_dot_product_cudnn_attention_backward)}

    def split(counter) -> dict[str, float]:
        flops = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
        attention = sum(n for op, n in flops.items() if op in attention_ops)
        return {"gflop_attention": attention / 1e9, "gflop_matmul": (sum(flops.values()) - attention) / 1e9}

    return (lambda: FlopCounterMode(display=False, custom_mapping=cpu_attention)), split


def _rates(before: dict[str, float], after: dict[str, float]) -> dict:
    """The machine's rates measured before and after a counted run, and the better of the two."""
    return {"rates_gflops": {k: max(before[k], after[k]) for k in before},
            "rates_before_after": {k: [before[k], after[k]] for k in before}}


def _floor_s(counted: dict, rates: dict[str, float]) -> float:
    """The least seconds for ``counted``'s matrix products and attention at ``rates`` (GFLOP/s)."""
    return counted["gflop_matmul"] / rates["matmul"] + counted["gflop_attention"] / rates["attention"]


def count_task_flops(sae: str, partner: str, dtype: str) -> dict:
    """In this process (a child of the bench, in a home whose SAE-independent caches are warm):
    ``evaluate --tasks all`` of ``sae`` once plainly (each task's time, as in a real run, where the
    tasks share the SAE's codes), then again with each task's ``run`` under its own torch
    FlopCounterMode (its work). The machine's rates are measured before and after the plain run."""
    from audiosaebench.evaluation import evaluate
    from audiosaebench.registry import get_task, task_names

    new_counter, split = _flop_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    counts: dict[str, dict[str, float]] = {}

    def counted(name: str, run):
        def run_counted(self, ctx):
            counter = new_counter()
            with counter:
                result = run(self, ctx)
            counts[name] = split(counter)
            return result
        return run_counted

    classes = {name: get_task(name) for name in task_names()}
    try:
        before = machine_rates(dtype)
        recs = evaluate([sae], "all", out=work / "plain", dtype=dtype, progress=False, partners=[partner])
        after = machine_rates(dtype)
        runs = {name: cls.run for name, cls in classes.items()}
        try:
            for name, cls in classes.items():
                cls.run = counted(name, runs[name])
            evaluate([sae], "all", out=work / "counted", dtype=dtype, progress=False, partners=[partner])
        finally:
            for name, cls in classes.items():
                cls.run = runs[name]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    measured = {r["task"]["name"]: r["run"]["runtime_s"] for r in recs}
    return {"tasks": {name: {"measured_s": measured[name], **counts[name]} for name in measured},
            **_rates(before, after)}


def count_run_flops(sae: str, tasks: str, partner: str | None, dtype: str) -> dict:
    """In this process (a child of the bench, started with ``-X importtime``): one whole
    ``evaluate`` of ``sae`` (activation extraction, SAE-independent caches, every task) under a
    single FlopCounterMode; the machine's rates before and after it."""
    from audiosaebench.evaluation import evaluate

    new_counter, split = _flop_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    try:
        before = machine_rates(dtype)
        counter = new_counter()
        with counter:
            evaluate([sae], tasks, out=work, dtype=dtype, progress=False, partners=[partner] if partner else ())
        after = machine_rates(dtype)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**split(counter), **_rates(before, after)}


# the bench's own counting machinery, which an `evaluate` process does not import
COUNTING_MODULES = ("torch.utils.flop_counter",)


def import_seconds(importtime: str) -> float:
    """The seconds a process spent importing, from its ``python -X importtime`` report: the sum of
    every module's self time, less the cumulative time of ``COUNTING_MODULES`` (and what they pulled in)."""
    total = counting = 0
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        total += int(self_us)
        if name.strip() in COUNTING_MODULES:
            counting += int(cumulative_us)
    return (total - counting) / 1e6


def floor_table(counted: dict) -> dict:
    """Per task and in all: the seconds its matrix products and attention need at the machine's rates
    (the better of two measurements; a lower bound: decoding steps and small products run below
    those rates), against measured."""
    rates = counted["rates_gflops"]
    rows = {}
    for name, t in counted["tasks"].items():
        floor = _floor_s(t, rates)
        rows[name] = {**t, "floor_s": floor, "floor_share": floor / t["measured_s"] if t["measured_s"] else None}
    total = {k: sum(r[k] for r in rows.values()) for k in ("measured_s", "gflop_matmul", "gflop_attention", "floor_s")}
    total["floor_share"] = total["floor_s"] / total["measured_s"] if total["measured_s"] else None
    return {"rates_gflops": rates, "rates_before_after": counted.get("rates_before_after"), "tasks": rows, "total": total}


def bench_floor(a: Path, b: Path, dtype: str, env: dict) -> dict:
    """The floor part: count a second SAE's work task by task in a child process (home in ``env``)."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--count-flops", str(b), "--partner", str(a),
                           "--dtype", dtype], env=env, check=True, capture_output=True, text=True)
    counted = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"dtype": dtype, "sae": str(b), **floor_table(counted)}


def _count_run(sae: Path, tasks: str, partner: Path | None, dtype: str, env: dict) -> dict:
    """Count one whole ``evaluate`` in a child process (home in ``env``): its GFLOP, the machine's
    rates around it and the seconds the process spent importing."""
    args = [sys.executable, "-X", "importtime", str(Path(__file__).resolve()), "--count-run", str(sae),
            "--tasks", tasks, "--dtype", dtype] + (["--partner", str(partner)] if partner else [])
    proc = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "tasks": tasks, "imports_s": import_seconds(proc.stderr)}


def limits_table(runs: dict[str, dict]) -> dict:
    """The least time of each counted process: its imports plus its GFLOP at the best rates measured
    around any of the runs, and the best second-SAE ratio it allows: with the imports, and with its
    arithmetic alone. The machine's speed drifts, so each bound takes the best the machine showed:
    the highest rates of all runs, and the shortest imports of the runs of the same tasks (which
    import the same modules)."""
    rates = {k: max(r["rates_gflops"][k] for r in runs.values()) for k in ("matmul", "attention")}
    rows = {}
    for name, r in runs.items():
        floor = _floor_s(r, rates)
        imports = min(o["imports_s"] for o in runs.values() if o["tasks"] == r["tasks"])
        rows[name] = {**r, "floor_s": floor, "imports_floor_s": imports, "process_floor_s": imports + floor}
    cold, warm = rows["second_sae_cold"], rows["second_sae_warm"]
    return {"rates_gflops": rates, "runs": rows, "ratio_b_at_floor": cold["process_floor_s"] / warm["process_floor_s"],
            "ratio_b_arithmetic_only": cold["floor_s"] / warm["floor_s"]}


def bench_limits(report: dict, src_home: Path, saes: list[str] | None, dtype: str) -> None:
    """The limits part: how fast a harness with no overhead at all could run the second SAE and `--tasks all` on this
    machine. Whole ``evaluate`` processes are counted (see count_run_flops), each in the state it
    names: the second SAE's fidelity + phoneme_probing in a fresh home and after the first SAE;
    ``--tasks all`` of the first SAE in a fresh home (partner: the second), then of the second SAE
    on those caches. The least time of a process is its imports plus its arithmetic at the machine's
    rates: a lower bound, since decoding steps, probes and top-k run far below those rates."""
    tasks = "fidelity,phoneme_probing"
    runs = {}
    work = Path(tempfile.mkdtemp(prefix="bench-saes-"))
    homes = [work]
    try:
        a, b = _two_saes(work, saes, report)
        homes.append(private_home(src_home))
        env = {**os.environ, "AUDIOSAEBENCH_HOME": str(homes[-1])}
        runs["second_sae_cold"] = _count_run(b, tasks, None, dtype, env)
        homes.append(private_home(src_home))
        env = {**os.environ, "AUDIOSAEBENCH_HOME": str(homes[-1])}
        _cli(["evaluate", "--sae", str(a), "--tasks", tasks, "--dtype", dtype, "--no-progress",
              "--out", str(work / "first")], env)
        runs["second_sae_warm"] = _count_run(b, tasks, None, dtype, env)
        homes.append(private_home(src_home))
        env = {**os.environ, "AUDIOSAEBENCH_HOME": str(homes[-1])}
        runs["all_first_sae_cold"] = _count_run(a, "all", b, dtype, env)
        runs["all_second_sae_warm"] = _count_run(b, "all", a, dtype, env)
    finally:
        for h in homes:
            shutil.rmtree(h, ignore_errors=True)
    report["limits"] = {"dtype": dtype, "tasks_b": tasks, **limits_table(runs)}


def bench_memory(report: dict, src_home: Path) -> None:
    """Peak RSS of `evaluate` (fidelity without the splice, and phoneme_probing) per run, each in a fresh child."""
    work = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    rows = []
    try:
        for label, d_sae, limit in (("clips 1x", 4096, 12), ("clips 2x", 4096, 24), ("clips 4x", 4096, 48),
                                    ("d_sae 16k", 16384, 48), ("d_sae 65k", 65536, 48)):
            home = private_home(src_home)
            env = {**os.environ, "AUDIOSAEBENCH_HOME": str(home)}
            sae = _write_random(work / f"s{d_sae}", d_sae, 0)
            wall, peak = _cli_peak(["evaluate", "--sae", str(sae), "--tasks", "fidelity,phoneme_probing",
                                    "--task-option", "fidelity.splice=false", "--limit", str(limit),
                                    "--out", str(work / f"r-{label}"), "--no-progress"], env)
            rows.append({"run": label, "d_sae": d_sae, "clips_per_split": limit, "wall_s": wall, "peak_rss_mb": peak})
            shutil.rmtree(home, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["memory"] = rows


def _raw_forward_s(ad, manifests: list, dev: str, bs: int = 8) -> float:
    """Seconds of the raw encoder forward of every clip of ``manifests`` (batches of ``bs``)."""
    import torch

    t0 = time.perf_counter()
    with torch.no_grad():
        for man in manifests:
            waves = [man.load(c) for c in man.clips]
            for i in range(0, len(waves), bs):
                ad.base_model.encoder(ad.prepare(waves[i : i + bs]).inputs["input_features"].to(dev))
    _sync(dev)
    return time.perf_counter() - t0


def bench_dashboards(report: dict, src_home: Path, sae: str | None) -> None:
    """Dashboards of every feature with a warm store, in a child process (wall, peak RSS), against the raw
    encoder forward of the clips it reads, in a private home."""
    import torch

    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.suites import load_suite
    from audiosaebench.models.loading import load_adapter

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(tempfile.mkdtemp(prefix="bench-dash-"))
    try:
        with in_private_home(src_home) as home:
            folder = Path(sae) if sae else _write_random(work / "sae", 1536, 0)
            ad, suite = load_adapter(MODEL, device=dev), load_suite("mini")
            roles = [r for r in ("speech_test", "nonspeech_test", "commands_test", "speech_train", "nonspeech_train",
                                 "commands_train") if r in suite.splits]
            for role in roles:  # the warm store
                get_activations(ad, [HOOK], suite.split(role), progress=False)
            raw_test = _raw_forward_s(ad, [suite.split(r) for r in roles[:3]], dev)
            raw_all = raw_test + _raw_forward_s(ad, [suite.split(r) for r in roles[3:]], dev)
            env = {**os.environ, "AUDIOSAEBENCH_HOME": str(home)}
            wall, peak = _cli_peak(["dashboards", "--sae", str(folder), "--features", "all", "--out", str(work / "out"),
                                    "--device", dev, "--no-progress"], env)
            files = [p for p in (work / "out").rglob("*") if p.is_file()]
            report["dashboards"] = {
                "sae": str(sae) if sae else "random TopK d_sae 1536 k 32 seed 0", "features": 1536, "device": dev,
                "wall_s": wall, "peak_rss_mb": peak, "files": len(files), "mb_written": sum(p.stat().st_size for p in files) / 1e6,
                "raw_forward_test_s": raw_test, "raw_forward_all_s": raw_all,
                "clips_test": sum(len(suite.split(r)) for r in roles[:3]), "clips_all": sum(len(suite.split(r)) for r in roles)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_models(report: dict, src_home: Path) -> None:
    """Randomly initialised larger configs (timing does not depend on the weights): the raw encoder
    forward of 8 windows, and the harness's extraction at the last layer against the raw forward on
    the same 8 mini clips (ratio), in a private home; on a GPU when one is available."""
    import torch
    from transformers import HubertConfig, HubertModel, WhisperConfig, WhisperForConditionalGeneration

    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.suites import load_suite
    from audiosaebench.evaluation import limited
    from audiosaebench.models.loading import load_adapter

    dev = "cuda" if torch.cuda.is_available() else "cpu"

    def whisper(d, layers, heads):  # one decoder layer: extraction never runs the decoder
        return WhisperForConditionalGeneration(WhisperConfig(
            d_model=d, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=heads,
            decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d))

    specs = {
        "whisper-tiny (4 layers, 384)": lambda: whisper(384, 4, 6),
        "whisper-base (6 layers, 512)": lambda: whisper(512, 6, 8),
        "whisper-small (12 layers, 768)": lambda: whisper(768, 12, 12),
        "hubert-base (12 layers, 768)": lambda: HubertModel(HubertConfig()),
    }
    rows = []
    with in_private_home(src_home) as home:
        man = limited(load_suite("mini").split("speech_test"), 8)
        waves = [man.load(c) for c in man.clips]
        for name, make in specs.items():
            torch.manual_seed(0)
            folder = home / "bench-models" / name.split()[0]
            make().save_pretrained(folder)
            ad = load_adapter(str(folder), device=dev)
            last = f"encoder.layers.{ad.n_layers - 1}"
            with torch.no_grad():
                if name.startswith("whisper"):
                    x = torch.randn(8, 80, 3000, device=dev)
                    audio_s = 8 * 30
                    forward = lambda x=x, ad=ad: ad.base_model.encoder(x)  # noqa: E731
                else:
                    x = torch.randn(8, 16000 * 10, device=dev)
                    audio_s = 8 * 10
                    forward = lambda x=x, ad=ad: ad.model(x)  # noqa: E731
                forward()  # warm-up
                _sync(dev)
                t0 = time.perf_counter()
                forward()
                _sync(dev)
                dt = time.perf_counter() - t0
                t0 = time.perf_counter()
                for group in ad.batch_groups([len(w) for w in waves]):
                    for i in range(0, len(group), 8):  # the harness's batches: same groups, batch size 8
                        b = ad.prepare([waves[j] for j in group[i : i + 8]])
                        inputs = {k: v.to(dev) for k, v in b.inputs.items()}
                        if name.startswith("whisper"):
                            ad.base_model.encoder(inputs["input_features"])
                        else:
                            ad.model(**inputs)
                _sync(dev)
                raw = time.perf_counter() - t0
            t0 = time.perf_counter()
            get_activations(ad, [last], man, batch_size=8, progress=False)
            _sync(dev)
            harness = time.perf_counter() - t0
            rows.append({"model": name, "device": dev, "batch_audio_s": audio_s, "forward_s": dt,
                         "realtime_factor": audio_s / dt, "clips": len(waves), "raw_clips_forward_s": raw,
                         "harness_extract_s": harness, "ratio": harness / raw})
            del ad
            shutil.rmtree(folder, ignore_errors=True)
    report["models"] = rows


# the larger configs of the scale part: (family, d_model, layers, heads); Whisper with as many decoder
# layers as encoder layers, as the released models have
SCALE_MODELS = {
    "whisper-base": ("whisper", 512, 6, 8),
    "whisper-small": ("whisper", 768, 12, 12),
    "hubert-base": ("hubert", 768, 12, 12),
}


def _scale_model(name: str, folder: Path) -> tuple[Path, str, int]:
    """A randomly initialised model folder for ``SCALE_MODELS[name]`` (seed 0); Whisper folders get
    the converted tiny.en's tokenizer and special tokens (the English-only vocabulary), so every task
    can decode. Returns (folder, middle-layer hook, d_model)."""
    import torch
    from transformers import HubertConfig, HubertModel, WhisperConfig, WhisperForConditionalGeneration

    from audiosaebench.models.loading import mini_whisper_dir

    family, d, layers, heads = SCALE_MODELS[name]
    torch.manual_seed(0)
    if family == "whisper":
        cfg = json.loads((mini_whisper_dir() / "config.json").read_text())
        for key in ("_name_or_path", "architectures", "transformers_version", "torch_dtype", "dtype",
                    "_audiosaebench_model_id"):
            cfg.pop(key, None)
        cfg.update(d_model=d, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
                   decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d)
        WhisperForConditionalGeneration(WhisperConfig(**cfg)).save_pretrained(folder)
        shutil.copy(mini_whisper_dir() / "tokenizer.json", folder / "tokenizer.json")
    else:
        HubertModel(HubertConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                                 intermediate_size=4 * d)).save_pretrained(folder)
    return folder, f"encoder.layers.{layers // 2}", d


def bench_scale(report: dict, src_home: Path, limit: int, dtype: str, save: Callable[[], None] = lambda: None) -> None:
    """The scale part: the second-SAE ratio and peak memory on randomly initialised larger models (the cost of a forward
    does not depend on the weights; a decode of random weights runs to its token limit, the longest a
    decode can be). Per model, two random TopK SAEs (d_sae = 4 d_model, k = 32) at the middle layer,
    ``--limit`` clips per split, fresh homes: `evaluate --tasks fidelity,phoneme_probing` of the
    first SAE cold, of the second after it (warm) and of the second in a fresh home (cold); peak
    RSS of the same run at 1x, 2x and 4x the clips (the splice off, as in the memory part). ``save``
    runs after each model, so a run stopped at a time limit keeps the models it finished."""
    from audiosaebench.sae.reference import random_sae
    from audiosaebench.sae.writing import write_saelens_v6

    tasks = "fidelity,phoneme_probing"
    rows: list[dict] = []
    report["scale"] = rows
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        for name in SCALE_MODELS:
            folder, hook, d = _scale_model(name, work / name)
            a, b = (write_saelens_v6(random_sae(d, 4 * d, 32, str(folder), hook, seed=seed).with_info(
                id=f"bench-{name}-s{seed}"), work / f"{name}-sae{seed}", overwrite=True) for seed in (0, 1))
            opts = ["--tasks", tasks, "--dtype", dtype, "--no-progress", "--limit", str(limit)]
            row = {"model": name, "hook": hook, "d_sae": 4 * d, "clips_per_split": limit}
            times = {}
            for label, sae, fresh in (("first_sae_cold", a, True), ("second_sae_warm", b, False),
                                      ("second_sae_cold", b, True)):
                if fresh:
                    home = private_home(src_home)
                env = {**os.environ, "AUDIOSAEBENCH_HOME": str(home)}
                times[label], row[f"{label}_peak_rss_mb"] = _cli_peak(
                    ["evaluate", "--sae", str(sae), *opts, "--out", str(work / f"r-{name}-{label}")], env)
                if label != "first_sae_cold":
                    shutil.rmtree(home, ignore_errors=True)
            row.update({f"{k}_s": v for k, v in times.items()})
            row["ratio"] = times["second_sae_cold"] / times["second_sae_warm"]
            row["memory"] = []
            for factor in (1, 2, 4):
                home = private_home(src_home)
                env = {**os.environ, "AUDIOSAEBENCH_HOME": str(home)}
                wall, peak = _cli_peak(["evaluate", "--sae", str(a), "--tasks", tasks, "--task-option", "fidelity.splice=false",
                                        "--limit", str(factor * limit), "--dtype", dtype, "--no-progress",
                                        "--out", str(work / f"m-{name}-{factor}")], env)
                row["memory"].append({"clips_per_split": factor * limit, "peak_rss_mb": peak, "wall_s": wall})
                shutil.rmtree(home, ignore_errors=True)
            rows.append(row)
            save()
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _grid_file(work: Path, saes: list[Path], tasks: str) -> Path:
    """A GRID.yaml evaluating ``saes`` on ``tasks`` (no partners: as separate ``evaluate`` processes see them)."""
    import yaml

    path = work / "GRID.yaml"
    path.write_text(yaml.safe_dump({"model": MODEL, "hooks": [HOOK], "suite": "mini", "tasks": tasks.split(","),
                                    "saes": [str(p) for p in saes], "partners": "none", "out": str(work / "grid")}))
    return path


def count_grid_flops(grid: str, dtype: str) -> dict:
    """In this process (a child of the bench, in a fresh home): ``grid run`` under one FlopCounterMode, and the
    machine's rates before and after it."""
    from audiosaebench.cli import main as cli

    new_counter, split = _flop_counter()
    before = machine_rates(dtype)
    counter = new_counter()
    t0 = time.perf_counter()
    with counter:
        rc = cli(["grid", "run", grid])
    wall = time.perf_counter() - t0
    after = machine_rates(dtype)
    if rc != 0:
        raise RuntimeError(f"grid run exited {rc}")
    return {**split(counter), **_rates(before, after), "counted_wall_s": wall}


def _unit_seconds(state_dir: Path) -> dict[str, float]:
    return {p.stem: json.loads(p.read_text())["seconds"] for p in sorted((state_dir / "units").glob("*.json"))}


def _grid_once(work: Path, src_home: Path, saes: list[Path], grid: Path, tasks: str) -> tuple[float, dict, list[float]]:
    """One grid run and one round of separate processes, each from a fresh home."""
    homes = [private_home(src_home), private_home(src_home)]
    try:
        grid_s = _cli(["grid", "run", str(grid)], {**os.environ, "AUDIOSAEBENCH_HOME": str(homes[0])})
        units = _unit_seconds(work / "grid" / "grid")
        env = {**os.environ, "AUDIOSAEBENCH_HOME": str(homes[1])}
        each = [_cli(["evaluate", "--sae", str(p), "--tasks", tasks, "--out", str(work / "separate"), "--no-progress"], env)
                for p in saes]
    finally:
        for h in homes:
            shutil.rmtree(h, ignore_errors=True)
        shutil.rmtree(work / "grid", ignore_errors=True)
        shutil.rmtree(work / "separate", ignore_errors=True)
    return grid_s, units, each


def bench_grid(report: dict, src_home: Path, n_saes: int, tasks: str, repeats: int = 2) -> None:
    """The grid part: an n-SAE grid (local engine) against n separate ``evaluate`` processes (alternately,
    ``repeats`` times: the machine's speed drifts; the best of each counts), and against its floor."""
    work = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    home = private_home(src_home)
    try:
        saes = [_write_random(work / f"sae{i}", 1536, i) for i in range(n_saes)]
        grid = _grid_file(work, saes, tasks)
        rounds = [_grid_once(work, src_home, saes, grid, tasks) for _ in range(repeats)]
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--count-grid", str(grid)],
                              env={**os.environ, "AUDIOSAEBENCH_HOME": str(home)}, check=True, capture_output=True,
                              text=True)
        counted = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    floor = _floor_s(counted, counted["rates_gflops"])
    grid_s, separate_s = min(r[0] for r in rounds), min(sum(r[2]) for r in rounds)
    report["grid"] = {"saes": n_saes, "tasks": tasks, "hook": HOOK, "grid_s": grid_s, "separate_s": separate_s,
                      "rounds": [{"grid_s": g, "units_s": u, "separate_each_s": e} for g, u, e in rounds],
                      "floor_s": floor, "counted": counted, "ratio_separate_over_grid": separate_s / grid_s,
                      "ratio_grid_over_floor": grid_s / floor, "ratio_separate_over_floor": separate_s / floor}


def grid_lines(report: dict) -> list[str]:
    if "grid" not in report:
        return []
    g = report["grid"]
    c = g["counted"]
    return [f"grid     {g['saes']} SAEs on {g['hook']} [{g['tasks']}], each from a fresh home: `grid run` (local engine) "
            f"{g['grid_s']:.0f} s; {g['saes']} separate `evaluate` processes {g['separate_s']:.0f} s "
            f"({g['ratio_separate_over_grid']:.2f}x the grid); matrix-product floor {g['floor_s']:.0f} s "
            f"({c['gflop_matmul'] + c['gflop_attention']:.0f} GFLOP at {c['rates_gflops']['matmul']:.0f} / "
            f"{c['rates_gflops']['attention']:.0f} GFLOP/s): the grid {g['ratio_grid_over_floor']:.2f}x it, "
            f"separate processes {g['ratio_separate_over_floor']:.2f}x"]


def table(report: dict) -> str:
    lines = [f"machine: {report['machine'].get('cpu')} x{report['machine']['cpus']}, {report['machine'].get('memory')}, "
             f"cuda={report['machine']['cuda']}, torch {report['machine']['torch']}"]
    if "speed_check" in report:
        s = report["speed_check"]
        end = f"{s['end_s']:.2f} s" if s.get("end_s") is not None else "not reached"
        lines += [f"speed    raw encoder forward, 8 silent 30 s windows: {s['start_s']:.2f} s before the parts, {end} after"]
    if "extract" in report:
        e = report["extract"]
        lines += [f"extract  raw encoder forward {e['raw_encoder_forward_s']:.1f} s for {e['clips']} clips; harness at the last "
                  f"layer {e['extract_encoder.layers.3_s']:.1f} s (ratio {e['ratio_last_layer']:.2f}, target <= 1.10); at "
                  f"{HOOK} {e[f'extract_{HOOK}_s']:.1f} s (ratio {e['ratio_layer2_early_exit']:.2f}, early exit)"]
    if "decoder" in report:
        d = report["decoder"]
        lines += [f"decoder  {d['clips']} clips, batches of {d['batch_size']}, teacher-forced decoder passes: transformers vs the "
                  "harness's text decoder (largest difference of the decoder states, and the largest state)"]
        for r in d["passes"]:
            how = "keys/values projected" if r["projected"] else "reads the encoder states"
            lines += [f"           {r['tokens']:3d} tokens: {r['transformers_s']:.2f} s vs {r['harness_s']:.2f} s "
                      f"({r['speedup']:.1f}x; {how}; {r['max_abs_difference']:.1e} of {r['max_abs_state']:.0f})"]
    if "tail" in report:
        lines += [f"tail     the layer above {report['tail']['hook']} on edited states: transformers' layer vs the memo of the "
                  "unchanged frames (a pass that finds its entry; building one)"]
        for r in report["tail"]["rows"]:
            lines += [f"           {r['split']:14s} {r['windows']} windows, edits up to frame {max(r['edited_frames'])}: "
                      f"{r['layer_s']:.2f} s vs {r['pass_s']:.2f} s ({r['speedup']:.2f}x; first use {r['first_use']:.2f}x; "
                      f"{r['entry_mb']:.0f} MB kept; {r['max_abs_difference']:.1e} of {r['max_abs_state']:.0f})"]
    if "warm" in report:
        w = report["warm"]
        lines += [f"warm     second SAE cold (fresh home) {w['second_sae_cold_s']:.1f} s, warm (after the first SAE) "
                  f"{w['second_sae_warm_s']:.1f} s, whole processes (ratio {w['ratio']:.1f}x, target >= 10x); task time only "
                  f"{w['task_time_cold_s']:.1f} / {w['task_time_warm_s']:.1f} s (ratio {w['task_time_ratio']:.1f}x); first SAE "
                  f"cold {w['first_sae_cold_s']:.1f} s [{w['tasks']}]"]
    if "tasks" in report:
        for label, what in (("cold", "fresh home: first SAE cold, second on warm caches"), ("warm", "everything cached")):
            t = report["tasks"][label]
            first = (f"; the first SAE {t['first_sae_s']:.0f} s (the wall less the second SAE's tasks)"
                     if t.get("first_sae_s") is not None else "")
            lines += [f"tasks    --tasks all, 2 SAEs, {label} ({what}): wall {t['wall_s']:.0f} s{first}"]
            for sae, per in t["per_task_s"].items():
                tasks = ", ".join(f"{k} {v:.0f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
                lines += [f"           {sae}: {t['per_sae_s'][sae]:.0f} s ({tasks})"]
    if "floor" in report:
        f = report["floor"]
        r = f["rates_gflops"]
        ba = f.get("rates_before_after") or {}
        drift = (f" (before / after the run: {ba['matmul'][0]:.0f} / {ba['matmul'][1]:.0f} and {ba['attention'][0]:.0f} / "
                 f"{ba['attention'][1]:.0f})") if ba else ""
        lines += [f"floor    a second SAE's tasks, warm, {f['dtype']}: matrix products and attention over this machine's rates "
                  f"({r['matmul']:.0f} and {r['attention']:.0f} GFLOP/s{drift}) = the least time they need; measured; "
                  "floor/measured"]
        for name, t in [*sorted(f["tasks"].items(), key=lambda kv: -kv[1]["measured_s"]), ("all", f["total"])]:
            share = f"{t['floor_share']:.2f}" if t["floor_share"] is not None else "-"
            lines += [f"           {name:22s} {t['gflop_matmul'] + t['gflop_attention']:8.0f} GFLOP  floor {t['floor_s']:6.1f} s  "
                      f"measured {t['measured_s']:6.1f} s  {share}"]
    if "limits" in report:
        lim = report["limits"]
        r = lim["runs"]

        def floor(run: dict) -> str:
            return (f"{run['process_floor_s']:.1f} s (imports {run['imports_floor_s']:.1f} + arithmetic {run['floor_s']:.1f}: "
                    f"{run['gflop_matmul'] + run['gflop_attention']:.0f} GFLOP)")

        lines += [f"limits   the least time of whole processes on this machine, {lim['dtype']} (a harness with no overhead; "
                  f"{lim['rates_gflops']['matmul']:.0f} / {lim['rates_gflops']['attention']:.0f} GFLOP/s, the best rates "
                  "measured around the runs):",
                  f"           second SAE [{lim['tasks_b']}] cold {floor(r['second_sae_cold'])}, warm "
                  f"{floor(r['second_sae_warm'])}: ratio at most {lim['ratio_b_at_floor']:.1f}x "
                  f"({lim['ratio_b_arithmetic_only']:.1f}x if imports were free; target >= 10x)",
                  f"           --tasks all: first SAE cold {floor(r['all_first_sae_cold'])} (target <= 180 s); "
                  f"second SAE warm {floor(r['all_second_sae_warm'])} (target <= 45 s)"]
    for r in report.get("scale", []):
        mem = ", ".join(f"{m['clips_per_split']} {m['peak_rss_mb']:.0f} MB" for m in r["memory"])
        lines += [f"scale    {r['model']:13s} {r['hook']}, d_sae {r['d_sae']}, {r['clips_per_split']} clips/split: second SAE "
                  f"cold {r['second_sae_cold_s']:.1f} s, warm {r['second_sae_warm_s']:.1f} s (ratio {r['ratio']:.1f}x, target >= 10x); "
                  f"first SAE cold {r['first_sae_cold_s']:.1f} s; peak RSS by clips per split (splice off): {mem}"]
    for r in report.get("memory", []):
        lines += [f"memory   {r['run']:10s} d_sae {r['d_sae']:6d}, {r['clips_per_split']:3d} clips/split: "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB, {r['wall_s']:.0f} s"]
    if "dashboards" in report:
        d = report["dashboards"]
        lines += [f"dashboards {d['features']} features of {d['sae']} ({d['device']}), warm store: {d['wall_s']:.1f} s, "
                  f"peak RSS {d['peak_rss_mb']:.0f} MB, {d['files']} files ({d['mb_written']:.0f} MB); raw encoder forward "
                  f"of the same clips: {d['raw_forward_test_s']:.1f} s for the {d['clips_test']} test clips, "
                  f"{d['raw_forward_all_s']:.1f} s for all {d['clips_all']} (with the train splits the labels are scored on)"]
    lines += grid_lines(report)
    for r in report.get("models", []):
        lines += [f"models   {r['model']:32s} {r['device']}: {r['forward_s']:.2f} s for {r['batch_audio_s']} s of audio "
                  f"({r['realtime_factor']:.0f}x real time); {r['clips']} mini clips: raw {r['raw_clips_forward_s']:.1f} s, "
                  f"harness extraction {r['harness_extract_s']:.1f} s (ratio {r['ratio']:.2f})"]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="extract,decoder,tail,warm,tasks,floor,limits,memory,models,scale,dashboards")
    p.add_argument("--out", default="bench/results.json")
    p.add_argument("--saes", help="two comma-separated SAE folders on encoder.layers.2 of whisper-tiny.en for the warm, "
                                  "tasks, floor and limits parts (default: two random TopK SAEs)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="model forward dtype of the warm, tasks, floor, limits and scale parts")
    p.add_argument("--scale-limit", type=int, default=8, help="clips per split in the scale part (its memory runs: 1x, 2x, 4x)")
    p.add_argument("--dashboard-sae", help="the SAE folder of the dashboards part (default: a random TopK SAE, d_sae 1536)")
    p.add_argument("--grid-saes", type=int, default=8, help="SAEs in the grid part")
    p.add_argument("--grid-tasks", default="fidelity,phoneme_probing", help="tasks of the grid part")
    p.add_argument("--grid-repeats", type=int, default=2, help="grid part: rounds of grid vs separate processes")
    p.add_argument("--count-grid", help=argparse.SUPPRESS)  # the grid part's child process: a GRID.yaml
    p.add_argument("--count-flops", help=argparse.SUPPRESS)  # the floor part's child process: an SAE folder
    p.add_argument("--partner", help=argparse.SUPPRESS)
    p.add_argument("--count-run", help=argparse.SUPPRESS)  # the limits part's child process: an SAE folder
    p.add_argument("--tasks", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.count_flops:
        print(json.dumps(count_task_flops(args.count_flops, args.partner, args.dtype)))
        return 0
    if args.count_run:
        print(json.dumps(count_run_flops(args.count_run, args.tasks, args.partner, args.dtype)))
        return 0
    if args.count_grid:
        print(json.dumps(count_grid_flops(args.count_grid, args.dtype)))
        return 0
    parts = set(args.parts.split(","))
    unknown = parts - {"extract", "decoder", "tail", "warm", "tasks", "floor", "limits", "memory", "models", "scale",
                       "dashboards", "grid"}
    if unknown:
        p.error(f"unknown parts: {', '.join(sorted(unknown))}")
    saes = args.saes.split(",") if args.saes else None
    if saes is not None and len(saes) != 2:
        p.error("--saes takes exactly two SAE folders")
    from audiosaebench import paths

    src = paths.home()
    report: dict = {"machine": machine(), "parts": sorted(parts), "dtype": args.dtype}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every part, so a failure later keeps what was measured
        out.write_text(json.dumps(report, indent=1) + "\n")

    report["speed_check"] = {"start_s": speed_check(), "end_s": None}

    if "models" in parts:
        bench_models(report, src)
        save()
    if "extract" in parts:
        with in_private_home(src):
            bench_extract(report)
        save()
    if "decoder" in parts:
        with in_private_home(src):
            bench_decoder(report)
        save()
    if "tail" in parts:
        with in_private_home(src):
            bench_tail(report)
        save()
    if parts & {"warm", "tasks", "floor"}:
        bench_warm_and_tasks(report, src, parts, saes, args.dtype)
        save()
    if "limits" in parts:
        bench_limits(report, src, saes, args.dtype)
        save()
    if "memory" in parts:
        bench_memory(report, src)
        save()
    if "scale" in parts:
        bench_scale(report, src, args.scale_limit, args.dtype, save)
        save()
    if "dashboards" in parts:
        bench_dashboards(report, src, args.dashboard_sae)
        save()
    if "grid" in parts:
        bench_grid(report, src, args.grid_saes, args.grid_tasks, args.grid_repeats)
        save()
    report["speed_check"]["end_s"] = speed_check()
    save()
    print(table(report))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
