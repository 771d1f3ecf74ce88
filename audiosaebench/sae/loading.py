"""Read any supported SAE checkpoint into one :class:`SAE` (no code execution, ever).

Formats:

* **SAELens v6 directory**: ``cfg.json`` (with ``architecture`` and a ``metadata`` dict) +
  ``sae_weights.safetensors``.
* **SAELens v3-v5 directory**: flat ``cfg.json`` (``hook_point``, ``activation_fn_str``,
  ``activation_fn_kwargs.k``, boolean ``normalize_activations``, ``finetuning_scaling_factor``);
  converted the way SAELens converts it (a boolean ``true`` means ``expected_average_only_in``).
* **BatchTopK saved by SAELens** is a ``jumprelu`` checkpoint with one shared threshold; its ``k``
  lives only in ``runner_cfg.json`` (recorded when present).
* **dictionary_learning / AudioSAE**: ``ae.pt`` (a plain tensor state dict, read with
  ``torch.load(weights_only=True)``) + ``config.json``; AudioSAE's ``layer_{n}`` folders are 1-based.

Folds done here so the SAE object stays simple (each is recorded in ``SAEInfo.notes``):

* ``expected_average_only_in``: with ``activation_scaler.json`` ``{"scaling_factor": s}`` (or the
  ``scaling_factor`` argument) the scaling is folded: ``W_enc *= s``, ``W_dec /= s``,
  ``b_dec /= s``. Without a factor the checkpoint is refused (SAELens's own loader silently ignores
  the scaling, which changes the SAE's output).
* TopK ``rescale_acts_by_decoder_norm``: decoder norms are folded into the encoder (a no-op when
  the rows are already unit norm, as in SAELens-saved checkpoints).
* ``finetuning_scaling_factor`` (pre-v6): folded into ``W_dec``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from audiosaebench.errors import CheckpointError
from audiosaebench.models.hooks import canonical_hook
from audiosaebench.sae.sae import ARCHITECTURES, SAE, SAEInfo

log = logging.getLogger(__name__)

SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
SCALER_FILE = "activation_scaler.json"
DL_WEIGHTS = "ae.pt"
DL_CONFIG = "config.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
MAX_D_IN = 1 << 16
MAX_D_SAE = 1 << 24
_LAYER_DIR = re.compile(r"^layers?_(\d+)$")


def load_sae(
    path: str | Path,
    *,
    hook_point: str | None = None,
    model_id: str | None = None,
    scaling_factor: float | None = None,
    sae_id: str | None = None,
) -> SAE:
    """Load a checkpoint directory (or file inside one) in any supported format."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"SAE checkpoint not found: {p}")
    if p.is_file():
        if p.name in (SAELENS_WEIGHTS, SAELENS_CFG, DL_WEIGHTS, DL_CONFIG):
            p = p.parent
        elif p.suffix in PICKLE_SUFFIXES:
            _refuse_pickle(p)
        else:
            raise CheckpointError(f"{p} is not a checkpoint directory or a known checkpoint file")
    if (p / SAELENS_CFG).exists() or (p / SAELENS_WEIGHTS).exists():
        sae = _guarded(_load_saelens_dir, p, p / SAELENS_CFG, scaling_factor)
    elif (p / DL_WEIGHTS).exists():
        sae = _guarded(_load_dictionary_learning_dir, p, p / DL_CONFIG)
    else:
        layer_dirs = sorted(d.name for d in p.iterdir() if d.is_dir() and _LAYER_DIR.match(d.name))
        pickles = sorted(f.name for f in p.iterdir() if f.suffix in PICKLE_SUFFIXES)
        if layer_dirs:
            raise CheckpointError(
                f"{p} holds one SAE per layer ({', '.join(layer_dirs[:6])}"
                f"{', ...' if len(layer_dirs) > 6 else ''}); pass one of those folders"
            )
        if pickles:
            _refuse_pickle(p / pickles[0])
        raise CheckpointError(
            f"{p} is not a recognised SAE checkpoint: expected {SAELENS_CFG} + {SAELENS_WEIGHTS} "
            f"(SAELens) or {DL_WEIGHTS} + {DL_CONFIG} (dictionary_learning / AudioSAE)"
        )
    changes: dict[str, Any] = {"source_path": str(p.resolve())}
    if hook_point is not None:
        changes["hook_point"] = canonical_hook(hook_point).name
    if model_id is not None:
        changes["model_id"] = model_id
    info = sae.info
    changes["id"] = sae_id or info.id or _default_id(p, info)
    return sae.with_info(**changes)


def _default_id(p: Path, info: SAEInfo) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", p.resolve().name).strip("-") or "sae"
    return f"{name}-{info.sha256[:8]}"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _refuse_pickle(p: Path) -> None:
    raise CheckpointError(
        f"refusing {p.name}: pickled checkpoints can run code when loaded. Convert it on a machine "
        "where you trust it: load it with torch, write its tensors with safetensors.torch.save_file "
        "to sae_weights.safetensors and add a SAELens cfg.json, or save a plain tensor state dict as "
        "ae.pt (which is read with weights_only=True)"
    )


MAX_CONFIG_BYTES = 16 << 20  # a checkpoint's cfg.json / config.json


def _read_json(p: Path) -> dict[str, Any]:
    from audiosaebench import untrusted

    if not p.exists():
        raise CheckpointError(f"missing {p.name} in {p.parent}")
    data = untrusted.read_json(p, CheckpointError, max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(data, dict):
        raise CheckpointError(f"{p} must hold a JSON object")
    return data


def _read_safetensors(p: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not p.exists():
        raise CheckpointError(f"missing {p.name} in {p.parent}")
    try:
        tensors = load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"cannot read {p} (truncated or not safetensors): {msg}") from None
    return tensors


def _int_field(cfg: dict[str, Any], key: str, where: Path, lo: int = 1, hi: int = MAX_D_SAE) -> int:
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise CheckpointError(f"{where}: {key} must be an integer, got {v!r}")
    if not lo <= v <= hi:
        raise CheckpointError(f"{where}: {key}={v} is outside [{lo}, {hi}]")
    return v


def weights_sha256(params: dict[str, torch.Tensor], info: SAEInfo) -> str:
    """Hash of the effective inference parameters (float32, canonical order) and semantics.

    The same SAE stored in two formats gets the same hash.
    """
    import hashlib

    h = hashlib.sha256()
    sem = {
        "architecture": info.architecture,
        "k": info.k,
        "normalize_activations": info.normalize_activations,
        "apply_b_dec_to_input": info.apply_b_dec_to_input,
    }
    h.update(json.dumps(sem, sort_keys=True).encode())
    for name in sorted(params):
        t = params[name].detach().to(torch.float32).contiguous().cpu()
        h.update(f"\n{name}:{list(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _finish(params: dict[str, torch.Tensor], info: SAEInfo) -> SAE:
    params = {k: v.detach().to(torch.float32).contiguous() for k, v in params.items()}
    # shape/finite checks happen in SAE(); hash only what passed them
    sae = SAE(info, params)
    return sae.with_info(sha256=weights_sha256(sae.params, info))


def fold_scaling_factor(params: dict[str, torch.Tensor], s: float) -> dict[str, torch.Tensor]:
    """Fold an input scaling x -> x*s (output / s) into the weights."""
    out = dict(params)
    out["W_enc"] = params["W_enc"] * s
    out["W_dec"] = params["W_dec"] / s
    out["b_dec"] = params["b_dec"] / s
    return out


def fold_decoder_norm(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Make decoder rows unit norm, moving the norms into the encoder (exact for topk/standard)."""
    norms = params["W_dec"].norm(dim=-1)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    out = dict(params)
    out["W_dec"] = params["W_dec"] / safe[:, None]
    out["W_enc"] = params["W_enc"] * safe[None, :]
    if "b_enc" in params:
        out["b_enc"] = params["b_enc"] * safe
    return out


# ---------------------------------------------------------------------------------------------
# SAELens
# ---------------------------------------------------------------------------------------------


def _guarded(loader, p: Path, cfg_path: Path, *args):
    """A config field of an unexpected type that no explicit check caught still ends as one
    CheckpointError naming the file (found by tests/test_parsers_fuzz.py), never a traceback."""
    try:
        return loader(p, *args)
    except (AttributeError, TypeError, ValueError, KeyError, OverflowError) as e:
        raise CheckpointError(f"{cfg_path}: malformed configuration ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None


def _is_v6(cfg: dict[str, Any]) -> bool:
    meta = cfg.get("metadata")
    version = cfg.get("sae_lens_version") or (meta.get("sae_lens_version") if isinstance(meta, dict) else None)
    if version:
        try:
            return int(str(version).split(".")[0]) >= 6
        except ValueError:
            pass
    return "metadata" in cfg and "hook_point" not in cfg


def _pre6_to_v6(cfg: dict[str, Any], where: Path) -> tuple[dict[str, Any], list[str]]:
    """Translate a SAELens v3-v5 flat config the way SAELens's pre-6.0 handling does."""
    notes = ["converted from a SAELens v3-v5 flat cfg.json"]
    arch = cfg.get("architecture", "standard")
    act = cfg.get("activation_fn_str", cfg.get("activation_fn", "relu"))
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{where}: activation_fn_kwargs must be an object")
    if arch == "standard" and act == "topk":
        arch = "topk"
    elif act not in ("relu", "topk"):
        raise CheckpointError(f"{where}: unsupported activation_fn {act!r} (relu or topk)")
    norm = cfg.get("normalize_activations", "none")
    if isinstance(norm, bool):
        norm = "expected_average_only_in" if norm else "none"
    new = {
        "architecture": arch,
        "d_in": cfg.get("d_in"),
        "d_sae": cfg.get("d_sae"),
        "apply_b_dec_to_input": cfg.get("apply_b_dec_to_input", True),
        "normalize_activations": norm,
        "k": kwargs.get("k", cfg.get("k")),
        "finetuning_scaling_factor": bool(cfg.get("finetuning_scaling_factor", False)),
        "metadata": {"model_name": cfg.get("model_name"), "hook_name": cfg.get("hook_point", cfg.get("hook_name"))},
    }
    return new, notes


def _saelens_fields(cfg: dict, where: Path) -> tuple[str, int, int, bool, str, dict]:
    """Architecture, d_in, d_sae, apply_b_dec_to_input, normalisation and metadata of a v6 cfg.json, checked."""
    arch = cfg.get("architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{where}: unknown architecture {arch!r}; supported: {', '.join(ARCHITECTURES)}")
    d_in = _int_field(cfg, "d_in", where, hi=MAX_D_IN)
    d_sae = _int_field(cfg, "d_sae", where)
    apply_b_dec = cfg.get("apply_b_dec_to_input", True)
    if not isinstance(apply_b_dec, bool):
        raise CheckpointError(f"{where}: apply_b_dec_to_input must be true or false")
    norm = cfg.get("normalize_activations", "none")
    if norm not in ("none", "constant_norm_rescale", "layer_norm", "expected_average_only_in"):
        raise CheckpointError(f"{where}: unknown normalize_activations {norm!r}")
    reshape = cfg.get("reshape_activations", "none")
    if reshape not in (None, "none"):
        raise CheckpointError(f"{where}: reshape_activations={reshape!r} (attention hook_z SAEs) is not an audio hook")
    meta = cfg.get("metadata") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: metadata must be an object")
    return arch, d_in, d_sae, apply_b_dec, norm, meta


def _thresholds(params: dict, arch: str, d_sae: int, notes: list[str]) -> dict:
    """JumpReLU thresholds as one value per feature (from ``log_threshold``, or one shared value)."""
    if "log_threshold" in params and "threshold" not in params:
        params["threshold"] = params.pop("log_threshold").exp()
        notes.append("threshold = exp(log_threshold)")
    if arch == "jumprelu" and "threshold" in params and params["threshold"].numel() == 1:
        params["threshold"] = params["threshold"].reshape(1).expand(d_sae).clone()
    return params


def _fold_saelens_extras(params: dict, cfg: dict, arch: str, d_sae: int, where: Path, notes: list[str]) -> dict:
    """Finetuning scaling factors and decoder-norm rescaling turned into the plain parameters."""
    fsf = params.pop("finetuning_scaling_factor", None)
    if fsf is None:
        fsf = params.pop("scaling_factor", None)
    if fsf is not None:
        if fsf.shape != (d_sae,):
            raise CheckpointError(f"{where}: finetuning scaling factor must have shape [{d_sae}]")
        if not torch.allclose(fsf, torch.ones_like(fsf)):
            params["W_dec"] = params["W_dec"] * fsf[:, None]
            notes.append("finetuning_scaling_factor folded into W_dec")
    if arch == "topk" and cfg.get("rescale_acts_by_decoder_norm", False):
        _require(params, ("W_enc", "W_dec"), where)
        params = fold_decoder_norm(params)
        notes.append("rescale_acts_by_decoder_norm folded into the encoder")
    return params


def _fold_expected_average(params: dict, p: Path, scaling_factor: float | None, where: Path, notes: list[str]) -> dict:
    """``expected_average_only_in``: its scaling factor (given, or from activation_scaler.json) folded in."""
    s = scaling_factor
    if s is None and (p / SCALER_FILE).exists():
        s = _read_json(p / SCALER_FILE).get("scaling_factor")
    if s is None:
        raise CheckpointError(
            f"{where}: normalize_activations=expected_average_only_in needs its scaling factor: "
            f"put {{\"scaling_factor\": s}} in {SCALER_FILE} next to cfg.json or pass --scaling-factor"
        )
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
        raise CheckpointError(f"{where}: scaling_factor must be a positive number, got {s!r}")
    _require(params, ("W_enc", "W_dec", "b_dec"), where)
    notes.append(f"expected_average_only_in scaling factor {s} folded into the weights")
    return fold_scaling_factor(params, float(s))


def _hook_field(hook: Any, where: Path) -> str | None:
    """The canonical hook point of a checkpoint's hook name (None when it gives none)."""
    from audiosaebench.errors import HookError

    if not hook:
        return None
    try:
        return canonical_hook(hook).name
    except HookError as e:
        raise CheckpointError(f"{where}: {e}") from None


def _load_saelens_dir(p: Path, scaling_factor: float | None) -> SAE:
    cfg = _read_json(p / SAELENS_CFG)
    tensors = _read_safetensors(p / SAELENS_WEIGHTS)
    notes: list[str] = []
    source = "saelens-v6"
    if not _is_v6(cfg):
        cfg, notes = _pre6_to_v6(cfg, p / SAELENS_CFG)
        source = "saelens-pre6"
    where = p / SAELENS_CFG
    arch, d_in, d_sae, apply_b_dec, norm, meta = _saelens_fields(cfg, where)
    k: int | None = None
    if arch == "topk":
        k = _int_field(cfg, "k", where, hi=d_sae)
    params = _thresholds(dict(tensors), arch, d_sae, notes)
    if arch == "jumprelu":
        k = _batchtopk_k(p)
        if k is not None:
            notes.append(f"BatchTopK (k={k} from runner_cfg.json) saved as jumprelu")
    params = _fold_saelens_extras(params, cfg, arch, d_sae, where, notes)
    if norm == "expected_average_only_in":
        params = _fold_expected_average(params, p, scaling_factor, where, notes)
        norm = "none"
    hook = meta.get("hook_name") or cfg.get("hook_name")
    model = meta.get("model_name") or cfg.get("model_name")
    if model is not None and not isinstance(model, str):
        raise CheckpointError(f"{where}: model_name must be a string, got {type(model).__name__}")
    info = SAEInfo(architecture=arch, d_in=d_in, d_sae=d_sae, k=k, model_id=model,
                   hook_point=_hook_field(hook, where), normalize_activations=norm,
                   apply_b_dec_to_input=apply_b_dec, source_format=source, notes=tuple(notes))
    return _finish(params, info)


def _require(params: dict[str, torch.Tensor], names: tuple[str, ...], where: Path) -> None:
    missing = [n for n in names if n not in params]
    if missing:
        raise CheckpointError(f"{where.parent}: weights are missing {', '.join(missing)}")


def _batchtopk_k(p: Path) -> int | None:
    runner = p / "runner_cfg.json"
    if not runner.exists():
        return None
    cfg = _read_json(runner)
    sae_cfg: dict[str, Any] = cfg["sae"] if isinstance(cfg.get("sae"), dict) else cfg
    k = sae_cfg.get("k")
    arch = str(sae_cfg.get("architecture", ""))
    if isinstance(k, int) and not isinstance(k, bool) and "batchtopk" in arch.lower().replace("_", ""):
        return k
    return k if isinstance(k, int) and not isinstance(k, bool) else None


# ---------------------------------------------------------------------------------------------
# dictionary_learning / AudioSAE
# ---------------------------------------------------------------------------------------------


def _torch_load_tensors(p: Path) -> dict[str, torch.Tensor]:
    if not zipfile.is_zipfile(p):
        raise CheckpointError(
            f"cannot read {p}: not a torch zip checkpoint (truncated, or saved with a legacy format)"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for unsafe or corrupt pickles
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            _refuse_pickle(p)
        raise CheckpointError(f"cannot read {p}: {first}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{p} must hold a flat dict of tensors (a state dict)")
    return obj


def _load_dictionary_learning_dir(p: Path) -> SAE:
    sd = _torch_load_tensors(p / DL_WEIGHTS)
    cfg = _read_json(p / DL_CONFIG) if (p / DL_CONFIG).exists() else {}
    trainer: dict[str, Any] = cfg["trainer"] if isinstance(cfg.get("trainer"), dict) else cfg
    where = p / DL_WEIGHTS
    notes: list[str] = []
    if "W_enc" in sd:  # JumpReluAutoEncoder: W_enc [d_in, d_sae], no b_dec on the input
        _require(sd, ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"), where)
        params = {n: sd[n] for n in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
        arch, k, apply_b_dec = "jumprelu", None, bool(trainer.get("apply_b_dec_to_input", False))
    else:
        _require(sd, ("encoder.weight", "encoder.bias", "decoder.weight"), where)
        b_dec = sd.get("b_dec", sd.get("bias"))
        if b_dec is None:
            raise CheckpointError(f"{where}: missing b_dec (or bias)")
        w_enc, w_dec = sd["encoder.weight"], sd["decoder.weight"]
        if w_enc.ndim != 2 or w_dec.ndim != 2:
            raise CheckpointError(f"{where}: encoder/decoder weights must be matrices")
        params = {"W_enc": w_enc.T, "b_enc": sd["encoder.bias"], "W_dec": w_dec.T, "b_dec": b_dec}
        apply_b_dec = True
        threshold = sd.get("threshold")
        k_t = sd.get("k")
        k = int(k_t.item()) if k_t is not None and k_t.numel() == 1 else trainer.get("k")
        if isinstance(k, bool) or (k is not None and not isinstance(k, int)):
            raise CheckpointError(f"{where}: k must be an integer, got {k!r}")
        if threshold is not None and threshold.numel() >= 1 and float(threshold.min()) >= 0:
            arch = "jumprelu"
            d_sae = w_enc.shape[0]
            params["threshold"] = threshold.reshape(-1).expand(d_sae).clone() if threshold.numel() == 1 else threshold
            notes.append(f"BatchTopK inference threshold (k={k} at training)")
        elif k is not None:
            arch = "topk"
        else:
            arch = "standard"
    d_in, d_sae = params["W_enc"].shape if params["W_enc"].ndim == 2 else (0, 0)
    if not (1 <= d_in <= MAX_D_IN and 1 <= d_sae <= MAX_D_SAE):
        raise CheckpointError(f"{where}: implausible SAE size d_in={d_in}, d_sae={d_sae}")
    for key, want in (("activation_dim", d_in), ("dict_size", d_sae)):
        if key in trainer and trainer[key] != want:
            raise CheckpointError(f"{p / DL_CONFIG}: {key}={trainer[key]!r} but the weights have {want}")
    hook = None
    m = _LAYER_DIR.match(p.name)
    if m:
        hook = canonical_hook(p.name).name
        notes.append(f"hook from AudioSAE folder {p.name} (1-based)")
    elif isinstance(trainer.get("layer"), int):
        hook = f"encoder.layers.{trainer['layer']}"
    info = SAEInfo(
        architecture=arch,
        d_in=int(d_in),
        d_sae=int(d_sae),
        k=k if arch in ("topk", "jumprelu") else None,
        model_id=trainer.get("lm_name"),
        hook_point=hook,
        apply_b_dec_to_input=apply_b_dec,
        source_format="dictionary_learning",
        notes=tuple(notes),
    )
    return _finish(params, info)

