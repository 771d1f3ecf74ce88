"""The full suite: LibriSpeech, Speech Commands v0.02 and ESC-50, from local official layouts under
``--data-dir`` or exported there from their Hugging Face datasets.

Expected layout under the data dir (the official archives unpacked, plus MFA TextGrids)::

    LibriSpeech/{dev-clean,test-clean}/...      alignments/{dev-clean,test-clean}/<spk>/<chapter>/<id>.TextGrid
    speech_commands/...  (v0.02)                ESC-50/{meta/esc50.csv,audio/}   (a pinned commit, not master)

Splits and subset rules (version ``full-1``; a change is a new version):

| role | source | rule |
|---|---|---|
| speech_train | LibriSpeech dev-clean | first 20 utterances (id order) of every speaker |
| speech_test | LibriSpeech test-clean | first 20 utterances (id order) of every speaker |
| commands_train / _val / _test | Speech Commands v0.02 training / validation / testing lists | at most 200 / 100 / 100 clips per class by sha256(clip id); 12 classes |
| nonspeech_train / _test | ESC-50 folds 1-4 / fold 5 | minus the human vocal classes |

Official archive sha256 (as torchaudio lists them): dev-clean
``76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3``, test-clean
``39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23``; checked by
:func:`verify_archives` when the tarballs lie in the data dir.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from audiosaebench.data import layouts
from audiosaebench.data.manifest import Manifest
from audiosaebench.errors import DataError
from audiosaebench.hashing import sha256_file

log = logging.getLogger(__name__)

FULL_VERSION = "full-1"
LIBRISPEECH_PER_SPEAKER = 20
SC_MAX_PER_CLASS = {"training": 200, "validation": 100, "testing": 100}
ARCHIVE_SHA256 = {
    "dev-clean.tar.gz": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "test-clean.tar.gz": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
}
HF_SOURCES = {
    "librispeech": ("gilkeyio/librispeech-alignments", None, {"dev-clean": "dev_clean", "test-clean": "test_clean"}),
    "speech_commands": ("google/speech_commands", "v0.02", {"train": "train", "validation": "validation", "test": "test"}),
    "esc50": ("ashraq/esc50", None, {"train": "train"}),
}


def verify_archives(base: Path) -> list[str]:
    checked = []
    for name, want in ARCHIVE_SHA256.items():
        p = base / name
        if p.exists():
            got = sha256_file(p)
            if got != want:
                raise DataError(f"{p} has sha256 {got[:16]}..., not the official {want[:16]}...; download it again")
            checked.append(name)
    return checked


def export_from_hf(base: Path, sources: dict[str, str] | None = None, revision: str | None = None) -> None:
    """Write the official layouts under ``base`` from HF datasets (hub ids or local parquet)."""
    from audiosaebench.data import hf_export

    src = {k: v[0] for k, v in HF_SOURCES.items()} | (sources or {})
    _, _, ls_splits = HF_SOURCES["librispeech"]
    for split, hf_split in ls_splits.items():
        ref = src["librispeech"] if "{split}" not in src["librispeech"] else src["librispeech"].format(split=hf_split)
        hf_export.export_librispeech(hf_export.load_hf(ref, hf_split, revision=revision), base, split)
    sc_ref, sc_cfg, sc_splits = src["speech_commands"], HF_SOURCES["speech_commands"][1], HF_SOURCES["speech_commands"][2]
    hf_export.export_speech_commands(
        {k: hf_export.load_hf(sc_ref.format(split=v) if "{split}" in sc_ref else sc_ref, v, sc_cfg, revision) for k, v in sc_splits.items()},
        base)
    hf_export.export_esc50(hf_export.load_hf(src["esc50"], "train", revision=revision), base)


def full_manifests(base: Path) -> dict[str, Manifest]:
    v = FULL_VERSION
    sc = {w: layouts.speech_commands_manifest(base, w, max_per_class=SC_MAX_PER_CLASS[w], version=v)
          for w in ("training", "validation", "testing")}
    return {
        "speech_train": layouts.librispeech_manifest(base, "dev-clean", alignments="alignments",
                                                     max_per_speaker=LIBRISPEECH_PER_SPEAKER, version=v),
        "speech_test": layouts.librispeech_manifest(base, "test-clean", alignments="alignments",
                                                    max_per_speaker=LIBRISPEECH_PER_SPEAKER, version=v),
        "commands_train": sc["training"],
        "commands_val": sc["validation"],
        "commands_test": sc["testing"],
        "nonspeech_train": layouts.esc50_manifest(base, (1, 2, 3, 4), exclude=layouts.ESC50_HUMAN_VOCAL,
                                                  split="folds-1234-nonvocal", version=v),
        "nonspeech_test": layouts.esc50_manifest(base, (5,), exclude=layouts.ESC50_HUMAN_VOCAL,
                                                 split="fold-5-nonvocal", version=v),
    }


def prepare_full(base: Path, *, from_hf: bool = False, hf_sources: dict[str, str] | None = None,
                 revision: str | None = None) -> dict[str, Manifest]:
    base = Path(base)
    if not base.exists() and not from_hf:
        raise DataError(f"--data-dir {base} does not exist; unpack the official archives there or pass --from-hf")
    checked = verify_archives(base) if base.exists() else []
    for name in checked:
        log.info("%s matches its official sha256", name)
    if from_hf:
        export_from_hf(base, hf_sources, revision)
    manifests = full_manifests(base)
    for role, m in manifests.items():
        m.write(base / "manifests" / f"{role}.json")
    (base / "suite.json").write_text(json.dumps(
        {"suite": "full", "version": FULL_VERSION, "splits": {r: f"manifests/{r}.json" for r in manifests}},
        indent=1, sort_keys=True) + "\n")
    return manifests
