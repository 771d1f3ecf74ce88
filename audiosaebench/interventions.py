"""SAE feature interventions through pyvene, with its hazards fenced off.

One edit, two modes, on the hook's output at the given frame positions (``n`` valid frames):

* ``patch``: ``x' = x + sum_{j in S} (z_src_j - z_j) d_j`` where ``z = encode(x)`` of the run being
  edited and ``z_src`` the codes of the source representation (the clean run); the SAE's error
  term of the edited run is kept;
* ``ablate``: ``x' = x - sum_{j in S} z_j d_j``.

``d_j`` is the feature's contribution in input space (:meth:`SAE.contribution`, exact under every
activation normalisation). ``S`` is per batch item and travels as pyvene ``subspaces``.

pyvene hazards (pyvene 0.1.8) and what this module does about each:

* every call removes **all** forward hooks on the wrapped model: :func:`preserved_hooks` saves
  the hook dictionaries of every submodule and puts them back afterwards (other hooks do not fire
  *during* a pyvene call; nothing here relies on them);
* a flat ``unit_locations`` sets a sticky ``use_fast`` flag on the model: positions are always
  passed fully nested (per intervention, per item) and the flag is reset before each call;
* it has no notion of padding: positions are the valid frames only, given explicitly;
* ``generate()`` needs ``intervene_on_prompt=True`` for encoder edits: not used here (the readout is
  a teacher-forced forward pass).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs", "_backward_hooks")


@contextlib.contextmanager
def preserved_hooks(model: nn.Module) -> Iterator[None]:
    """Put every submodule's hooks back as they were when the block exits (pyvene removes them)."""
    saved = [(m, {k: OrderedDict(getattr(m, k)) for k in _HOOK_DICTS if hasattr(m, k)}) for m in model.modules()]
    try:
        yield
    finally:
        for m, dicts in saved:
            for k, d in dicts.items():
                live = getattr(m, k)
                live.clear()
                live.update(d)


def feature_edit(sae: Any, x: torch.Tensor, features: torch.Tensor, source: torch.Tensor | None,
                 mode: str) -> torch.Tensor:
    """The edited hook output for rows ``x`` [n, d]; ``features`` is a [n, d_sae] 0/1 mask."""
    z, state = sae.encode_with_state(x)
    target = torch.zeros_like(z) if mode == "ablate" else sae.encode(source)
    delta = (target - z) * features
    every = torch.arange(sae.d_sae, device=z.device)
    return x + sae.contribution(delta, every, state).to(x.dtype)


def feature_mask(subspaces: Sequence[Sequence[int]], n_items: int, d_sae: int, device: Any) -> torch.Tensor:
    mask = torch.zeros(n_items, d_sae, device=device)
    for i, feats in enumerate(subspaces):
        if len(feats):
            mask[i, torch.as_tensor(list(feats), dtype=torch.long, device=device)] = 1.0
    return mask


def _pyvene():
    """Import pyvene (slow, ~10 s) without its import-time notice on stdout (it would mix into CLI output)."""
    import io
    import sys

    if "pyvene" not in sys.modules:
        with contextlib.redirect_stdout(io.StringIO()):
            import pyvene  # noqa: F401
    return sys.modules["pyvene"]


def _intervention_class():
    pv = _pyvene()

    class SAEFeatureIntervention(pv.Intervention):
        """pyvene intervention holding an SAE; ``mode`` is "patch" or "ablate" (set per call)."""

        def __init__(self, sae: Any, **kwargs: Any):
            super().__init__(keep_last_dim=True, **kwargs)
            self.sae = sae
            self.mode = "patch"

        def forward(self, base, source=None, subspaces=None, **kwargs):  # noqa: ANN001 - pyvene's signature
            b, n, d = base.shape
            mask = feature_mask(subspaces, b, self.sae.d_sae, base.device)
            mask = mask[:, None, :].expand(b, n, -1).reshape(b * n, -1)
            src = None if self.mode == "ablate" else source.reshape(b * n, d)
            return feature_edit(self.sae, base.reshape(b * n, d), mask, src, self.mode).reshape(b, n, d)

    return SAEFeatureIntervention


def _editing(continuation: nn.Module, positions: Sequence[Sequence[int]]) -> contextlib.AbstractContextManager:
    """The continuation's :meth:`editing` block for edits at ``positions`` (a no-op for other modules)."""
    extent = max((max(p) + 1 for p in positions if len(p)), default=0)
    edit = getattr(continuation, "editing", None)
    return edit(extent) if edit is not None and extent > 0 else contextlib.nullcontext()


class FeaturePatcher:
    """Run a :class:`~audiosaebench.models.continuation.Continuation` with SAE feature edits via pyvene."""

    def __init__(self, continuation: Any, sae: Any):
        pv = _pyvene()
        self.continuation = continuation
        self.intervention = _intervention_class()(sae)
        config = pv.IntervenableConfig(representations=[
            pv.RepresentationConfig(component=continuation.component, unit="pos", max_number_of_units=None,
                                    intervention=self.intervention),
        ])
        with preserved_hooks(continuation):
            self.model = pv.IntervenableModel(config, continuation)
        self.model.disable_model_gradients()

    @torch.no_grad()
    def __call__(self, states: torch.Tensor, positions: Sequence[Sequence[int]],
                 features: Sequence[Sequence[int]], source: torch.Tensor | None, mode: str) -> torch.Tensor:
        """Scores of the continuation with ``features[i]`` edited at ``positions[i]`` of item ``i``.

        ``source`` is the clean hook output at those positions ([B, n, d]); unused when ablating.
        """
        if mode not in ("patch", "ablate"):
            raise ValueError(f"mode must be 'patch' or 'ablate', got {mode!r}")
        if mode == "patch" and source is None:
            raise ValueError("patching needs the source representation")
        n = {len(p) for p in positions}
        if len(n) != 1:
            raise ValueError("every item must edit the same number of positions (pyvene has no padding)")
        self.intervention.mode = mode
        self.model.use_fast = False
        locations = [[list(map(int, p)) for p in positions]]
        if source is None:
            source = torch.zeros(states.shape[0], n.pop(), states.shape[-1], device=states.device,
                                 dtype=states.dtype)
        with preserved_hooks(self.continuation), _editing(self.continuation, positions):
            _, out = self.model({"states": states}, unit_locations={"sources->base": (locations, locations)},
                                source_representations=[source], subspaces=[[list(map(int, f)) for f in features]])
        return out


class HookFeaturePatcher:
    """The same edit with a plain forward hook: the cross-check of :class:`FeaturePatcher`."""

    def __init__(self, continuation: Any, sae: Any):
        self.continuation = continuation
        self.sae = sae

    @torch.no_grad()
    def __call__(self, states: torch.Tensor, positions: Sequence[Sequence[int]],
                 features: Sequence[Sequence[int]], source: torch.Tensor | None, mode: str) -> torch.Tensor:
        b = states.shape[0]
        mask = feature_mask(features, b, self.sae.d_sae, states.device)

        def hook_fn(_module: nn.Module, _inp: Any, output: Any) -> Any:
            h = output[0] if isinstance(output, tuple) else output
            new = h.clone()
            for i, pos in enumerate(positions):
                idx = torch.as_tensor(list(pos), dtype=torch.long, device=h.device)
                src = None if source is None else source[i]
                new[i, idx] = feature_edit(self.sae, h[i, idx], mask[i].expand(len(idx), -1), src, mode)
            return (new, *output[1:]) if isinstance(output, tuple) else new

        handle = self.continuation.hook_module.register_forward_hook(hook_fn)
        try:
            with _editing(self.continuation, positions):
                return self.continuation(states)
        finally:
            handle.remove()
