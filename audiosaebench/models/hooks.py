"""Hook-point names: one canonical form, many accepted aliases (pure Python, no torch).

Canonical hook point = the HF module path, relative to the base model, of the block whose
*output* is taken:

* ``encoder.layers.{i}`` (0-based): the residual stream after encoder block ``i``, before any
  final encoder layer norm;
* ``encoder.layer_norm``: the encoder's final layer-norm output (Whisper's last hidden state).

Accepted aliases (recorded in canonical form everywhere):

* TransformerLens / SAELens style ``blocks.{i}.hook_resid_post``;
* openai-whisper ``encoder.blocks.{i}`` and ``encoder.ln_post``;
* AudioSAE ``layer_{n}`` (1-based: ``layer_1`` = ``encoder.layers.0``);
* any prefix before ``encoder.`` (``model.encoder.layers.6``, ``hubert.encoder.layers.9``);
* bracket indices and a trailing ``.output`` (pyvene style ``model.encoder.layers[2].output``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from audiosaebench.errors import HookError

FINAL_NORM = "encoder.layer_norm"

_LAYER = re.compile(r"^encoder\.layers\.(\d+)$")
_TL_BLOCK = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")
_OAI_BLOCK = re.compile(r"^encoder\.blocks\.(\d+)$")
_AUDIOSAE = re.compile(r"^layers?_(\d+)$")


@dataclass(frozen=True)
class HookPoint:
    """A canonical hook point: ``layer`` is the 0-based block index, or None for the final norm."""

    name: str
    layer: int | None

    def __str__(self) -> str:
        return self.name


def canonical_hook(name: str) -> HookPoint:
    """Map any accepted alias to the canonical hook point; raise HookError otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise HookError(f"hook point must be a non-empty string, got {name!r}")
    raw = name.strip()
    s = re.sub(r"\[(\d+)\]", r".\1", raw)
    if s.endswith(".output"):
        s = s[: -len(".output")]
    m = _AUDIOSAE.match(s)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise HookError(f"AudioSAE layer folders are 1-based; {raw!r} has no block")
        return HookPoint(f"encoder.layers.{n - 1}", n - 1)
    m = _TL_BLOCK.match(s)
    if m:
        i = int(m.group(1))
        return HookPoint(f"encoder.layers.{i}", i)
    idx = s.find("encoder.")
    if idx > 0 and s[idx - 1] == ".":
        s = s[idx:]
    m = _LAYER.match(s) or _OAI_BLOCK.match(s)
    if m:
        i = int(m.group(1))
        return HookPoint(f"encoder.layers.{i}", i)
    if s in (FINAL_NORM, "encoder.ln_post"):
        return HookPoint(FINAL_NORM, None)
    raise HookError(
        f"unknown hook point {raw!r}: expected encoder.layers.<i>, encoder.layer_norm or an alias "
        "(blocks.<i>.hook_resid_post, encoder.blocks.<i>, layer_<n> (1-based))"
    )


def check_hook_exists(hook: HookPoint, n_layers: int, model_id: str) -> None:
    if hook.layer is not None and not 0 <= hook.layer < n_layers:
        raise HookError(
            f"hook point {hook.name} does not exist on {model_id}: it has {n_layers} encoder "
            f"layers (encoder.layers.0 .. encoder.layers.{n_layers - 1})"
        )
