"""One SAE object for every checkpoint format, with SAELens v6 inference semantics.

Parameters are held as float32 tensors (unless asked otherwise):

* ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``, ``b_dec [d_in]``;
* jumprelu: ``threshold [d_sae]``; gated: ``b_gate``, ``b_mag``, ``r_mag`` (no ``b_enc``).

Encode (SAELens v6): ``x_n = norm_in(x)``; ``x_in = x_n - b_dec * apply_b_dec_to_input``;

* standard: ``z = relu(x_in W_enc + b_enc)``
* topk:     ``z = scatter(topk(h, k)) with relu on the kept values``, ``h = x_in W_enc + b_enc``
* jumprelu: ``z = relu(h) * (h > threshold)``
* gated:    ``z = (x_in W_enc + b_gate > 0) * relu(x_in (W_enc * exp(r_mag)) + b_mag)``

Decode: ``x_hat = norm_out(z W_dec + b_dec)``. Input normalisation: ``none``;
``constant_norm_rescale`` (per frame ``c = sqrt(d_in) / ||x||``, in ``x c``, out ``x_hat / c``);
``layer_norm`` (``(x - mu) / (std + 1e-5)`` with the unbiased std, out ``x_hat std + mu``).
``expected_average_only_in`` and TopK ``rescale_acts_by_decoder_norm`` are folded into the
weights when the checkpoint is loaded (see :mod:`audiosaebench.sae.loading`), so the object itself
only knows the three modes above.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from audiosaebench.errors import CheckpointError

ARCHITECTURES = ("standard", "topk", "jumprelu", "gated")
NORMALIZATIONS = ("none", "constant_norm_rescale", "layer_norm")
LAYER_NORM_EPS = 1e-5

_REQUIRED = {
    "standard": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "topk": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "jumprelu": ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
    "gated": ("W_enc", "W_dec", "b_dec", "b_gate", "b_mag", "r_mag"),
}


@dataclass(frozen=True)
class SAEInfo:
    """Everything about an SAE except its weights; recorded in every result."""

    architecture: str
    d_in: int
    d_sae: int
    k: int | None = None
    model_id: str | None = None
    hook_point: str | None = None
    normalize_activations: str = "none"
    apply_b_dec_to_input: bool = True
    source_format: str = "unknown"
    source_path: str | None = None
    sha256: str = ""
    id: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


class SAE:
    """Inference-only sparse autoencoder. Not an ``nn.Module``: it has no training state."""

    def __init__(self, info: SAEInfo, params: dict[str, torch.Tensor]):
        if info.architecture not in ARCHITECTURES:
            raise CheckpointError(
                f"unknown SAE architecture {info.architecture!r}; supported: {', '.join(ARCHITECTURES)}"
            )
        if info.normalize_activations not in NORMALIZATIONS:
            raise CheckpointError(
                f"unsupported normalize_activations {info.normalize_activations!r} at run time"
            )
        missing = [n for n in _REQUIRED[info.architecture] if n not in params]
        if missing:
            raise CheckpointError(f"{info.architecture} SAE is missing parameter(s) {', '.join(missing)}")
        self.params = {n: params[n] for n in _REQUIRED[info.architecture]}
        _check_shapes(info, self.params)
        for name, t in self.params.items():
            if not torch.isfinite(t).all():
                raise CheckpointError(f"SAE parameter {name} contains NaN or Inf values")
        if info.architecture == "topk" and (info.k is None or not 1 <= info.k <= info.d_sae):
            raise CheckpointError(f"topk SAE needs 1 <= k <= d_sae ({info.d_sae}); got k={info.k}")
        self.info = info

    # -- parameters -------------------------------------------------------------------------
    def __getattr__(self, name: str) -> torch.Tensor:
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(name)

    @property
    def d_in(self) -> int:
        return self.info.d_in

    @property
    def d_sae(self) -> int:
        return self.info.d_sae

    @property
    def device(self) -> torch.device:
        return self.params["W_enc"].device

    @property
    def dtype(self) -> torch.dtype:
        return self.params["W_enc"].dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SAE:
        params = {n: t.to(device=device, dtype=dtype) for n, t in self.params.items()}
        return SAE(self.info, params)

    def with_info(self, **changes: Any) -> SAE:
        return SAE(replace(self.info, **changes), self.params)

    def decoder_directions(self) -> torch.Tensor:
        """Unit-norm decoder rows [d_sae, d_in] (zero rows stay zero)."""
        w = self.params["W_dec"]
        return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    # -- inference ----------------------------------------------------------------------------
    def normalize_in(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        mode = self.info.normalize_activations
        if mode == "constant_norm_rescale":
            c = math.sqrt(self.d_in) / x.norm(dim=-1, keepdim=True)
            return x * c, c
        if mode == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            xc = x - mu
            std = xc.std(dim=-1, keepdim=True)
            return xc / (std + LAYER_NORM_EPS), (mu, std)
        return x, None

    def normalize_out(self, x_hat: torch.Tensor, state: Any) -> torch.Tensor:
        mode = self.info.normalize_activations
        if mode == "none":
            return x_hat
        if state is None:
            raise ValueError(f"decode with normalize_activations={mode} needs the encode state")
        if mode == "constant_norm_rescale":
            return x_hat / state
        mu, std = state
        return x_hat * std + mu

    def pre_activations(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Encoder pre-activations (the gate pre-activations for gated SAEs) and the norm state."""
        x = x.to(self.dtype)
        xn, state = self.normalize_in(x)
        if self.info.apply_b_dec_to_input:
            xn = xn - self.params["b_dec"]
        if self.info.architecture == "gated":
            return xn @ self.params["W_enc"] + self.params["b_gate"], (state, xn)
        return xn @ self.params["W_enc"] + self.params["b_enc"], (state, xn)

    def encode_with_state(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        h, (state, x_in) = self.pre_activations(x)
        arch = self.info.architecture
        if arch == "standard":
            z = torch.relu(h)
        elif arch == "topk":
            top = torch.topk(h, k=int(self.info.k), dim=-1)  # type: ignore[arg-type]
            z = torch.zeros_like(h).scatter_(-1, top.indices, torch.relu(top.values))
        elif arch == "jumprelu":
            z = torch.relu(h) * (h > self.params["threshold"]).to(h.dtype)
        else:  # gated
            mag = x_in @ (self.params["W_enc"] * self.params["r_mag"].exp()) + self.params["b_mag"]
            z = (h > 0).to(h.dtype) * torch.relu(mag)
        return z, state

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_with_state(x)[0]

    def decode(self, z: torch.Tensor, state: Any = None) -> torch.Tensor:
        x_hat = z.to(self.dtype) @ self.params["W_dec"] + self.params["b_dec"]
        return self.normalize_out(x_hat, state)

    def contribution(self, z: torch.Tensor, features: torch.Tensor, state: Any = None) -> torch.Tensor:
        """What the given features add to the reconstruction in input space: decode(z) minus decode(z
        with those features zeroed), exact under every normalisation (it is linear in z per frame)."""
        part = z[:, features].to(self.dtype) @ self.params["W_dec"][features]
        if self.info.normalize_activations == "none":
            return part
        return self.normalize_out(part, state) - self.normalize_out(torch.zeros_like(part), state)

    def shift_contribution(self, x: torch.Tensor, features: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """What adding ``values`` to the codes of ``features`` on every row of ``x`` adds to its
        reconstruction ([n, d_in]); never builds an [n, d_sae] code matrix (steering)."""
        part = (values.to(self.dtype) @ self.params["W_dec"][features]).expand(x.shape[0], -1)
        if self.info.normalize_activations == "none":
            return part
        _, state = self.normalize_in(x.to(self.dtype))
        return self.normalize_out(part, state) - self.normalize_out(torch.zeros_like(part), state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, state = self.encode_with_state(x)
        return self.decode(z, state)

    __call__ = forward


def _check_shapes(info: SAEInfo, p: dict[str, torch.Tensor]) -> None:
    d_in, d_sae = info.d_in, info.d_sae
    expected = {
        "W_enc": (d_in, d_sae),
        "W_dec": (d_sae, d_in),
        "b_dec": (d_in,),
        "b_enc": (d_sae,),
        "threshold": (d_sae,),
        "b_gate": (d_sae,),
        "b_mag": (d_sae,),
        "r_mag": (d_sae,),
    }
    for name, t in p.items():
        want = expected[name]
        if tuple(t.shape) != want:
            raise CheckpointError(
                f"SAE parameter {name} has shape {list(t.shape)}, expected {list(want)} "
                f"(d_in={d_in}, d_sae={d_sae})"
            )
