"""Reading text that someone else wrote: submissions, result JSON, checkpoint configs, manifests, grids.

Every reader checks the file's size before reading it and its nesting depth before building any
object, so a small hostile file can neither stall the process nor exhaust its memory or stack:

* size: at most ``max_bytes`` (default :data:`MAX_BYTES`), from ``stat`` before reading;
* text: UTF-8, strictly;
* JSON: nesting at most ``max_depth`` (default :data:`MAX_DEPTH`) brackets, counted on the raw text
  outside strings before parsing; no duplicate keys; no NaN or Infinity;
* YAML: the safe loader only, with no anchors or aliases (an alias bomb of a few lines expands to
  gigabytes), no duplicate keys and the same nesting bound, all checked on the event stream before
  any object is built.

A violation raises the caller's error class (an :class:`~audiosaebench.errors.AudioSAEBenchError`)
with one line naming the file, which the CLI prints before exiting with status 2.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from audiosaebench.errors import AudioSAEBenchError

MAX_BYTES = 4 << 20
MAX_DEPTH = 64
# a JSON string, or an unterminated one running to the end; possessive, so no input backtracks
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\Z)', re.DOTALL)


def read_text(path: str | Path, error: type[AudioSAEBenchError] = AudioSAEBenchError, *,
              max_bytes: int = MAX_BYTES) -> str:
    """The file's UTF-8 text, after checking it is a regular file of at most ``max_bytes``."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise error(f"{path}: not found") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None
    if not path.is_file():
        raise error(f"{path}: not a regular file")
    if size > max_bytes:
        raise error(f"{path}: {size:,} bytes, larger than the {max_bytes:,} allowed")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None


def json_depth(text: str) -> int:
    """The deepest nesting of brackets outside JSON strings (a linear scan, no parsing)."""
    import numpy as np

    raw = _STRING.sub(b'""', text.encode("utf-8"))
    b = np.frombuffer(raw, dtype=np.uint8)
    step = np.isin(b, (ord("["), ord("{"))).astype(np.int64) - np.isin(b, (ord("]"), ord("}"))).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def _no_duplicates(where: str, error: type[AudioSAEBenchError]):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise error(f"{where}: duplicate key {k!r}")
            out[k] = v
        return out

    return hook


def parse_json(text: str, where: str, error: type[AudioSAEBenchError] = AudioSAEBenchError, *,
               max_depth: int = MAX_DEPTH) -> Any:
    """JSON text as Python objects, refusing deep nesting, duplicate keys, NaN and Infinity."""
    depth = json_depth(text)
    if depth > max_depth:
        raise error(f"{where}: nested {depth} levels deep, more than the {max_depth} allowed")

    def no_constant(name: str) -> Any:
        raise error(f"{where}: {name} is not valid JSON")

    def finite(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise error(f"{where}: the number {literal[:40]} is too large for a double")
        return value

    try:
        return json.loads(text, object_pairs_hook=_no_duplicates(where, error), parse_constant=no_constant,
                          parse_float=finite)
    except ValueError as e:
        raise error(f"{where}: not valid JSON ({e})") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply") from None


def read_json(path: str | Path, error: type[AudioSAEBenchError] = AudioSAEBenchError, *,
              max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    return parse_json(read_text(path, error, max_bytes=max_bytes), str(path), error, max_depth=max_depth)


def _check_yaml_events(text: str, where: str, error: type[AudioSAEBenchError], max_depth: int) -> None:
    """Refuse anchors, aliases and deep nesting from the event stream (nothing is constructed)."""
    import yaml

    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise error(f"{where}: YAML anchors and aliases are not allowed (write the values out)")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    raise error(f"{where}: nested more than the {max_depth} levels allowed")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise error(f"{where}: not safe, plain YAML ({first})") from None


def _strict_loader(where: str, error: type[AudioSAEBenchError]) -> type:
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for k, _ in node.value:
                key = self.construct_object(k, deep=deep)
                try:
                    dup = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader refuses it with its own error
                    continue
                if dup:
                    raise error(f"{where}: duplicate key {key!r}")
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def parse_yaml(text: str, where: str, error: type[AudioSAEBenchError] = AudioSAEBenchError, *,
               max_depth: int = MAX_DEPTH) -> Any:
    """Plain YAML as Python objects (the safe loader; tags such as ``!!python/object`` are refused)."""
    import yaml

    _check_yaml_events(text, where, error, max_depth)
    try:
        return yaml.load(text, Loader=_strict_loader(where, error))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise error(f"{where}: not safe, plain YAML ({first})") from None


def read_yaml_mapping(path: str | Path, error: type[AudioSAEBenchError] = AudioSAEBenchError, *,
                      max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A YAML file that must hold one mapping."""
    doc = parse_yaml(read_text(path, error, max_bytes=max_bytes), str(path), error, max_depth=max_depth)
    if not isinstance(doc, dict):
        raise error(f"{path}: must be a YAML mapping, not {type(doc).__name__}")
    return doc
