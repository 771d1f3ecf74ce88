"""Partner SAEs: SAEs a multi-SAE task compares against without being evaluated themselves.

``--partner PATH`` takes

* an SAE folder or file (any supported checkpoint format);
* a submission folder (``submission.yaml``): its ``checkpoint.location`` (a path, absolute or
  relative to the submission) is loaded and must hash to the declared ``sae_sha256``;
* a folder of submissions (e.g. ``submissions/``): every ``kind: reference`` submission on another
  (model, hook point) than the evaluated SAEs whose checkpoint can be loaded; those that cannot are
  listed in one warning.

Submissions never carry weights, so a reference that is "rebuilt by train-reference" is only found
when its location names a folder that exists here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from audiosaebench.errors import AudioSAEBenchError, CheckpointError

log = logging.getLogger(__name__)


def _submission_sae(folder: Path, meta: dict[str, Any]) -> Any:
    """The SAE a submission's ``submission.yaml`` (already read into ``meta``) points at, hash-checked."""
    from audiosaebench.sae import load_sae

    ckpt = meta.get("checkpoint") or {}
    location = str(ckpt.get("location") or "").strip()
    where = f"partner submission {meta.get('id', folder.name)}"
    candidates = [Path(location).expanduser(), folder / location] if location else []
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise CheckpointError(f"{where} has no checkpoint on this machine (location {location!r}); "
                              "pass the SAE folder itself with --partner PATH")
    try:
        sae = load_sae(path)
    except AudioSAEBenchError as e:
        raise CheckpointError(f"{where}: checkpoint {location!r} cannot be loaded here ({e})") from None
    if sae.info.sha256 != meta.get("sae_sha256"):
        raise CheckpointError(f"{where}: checkpoint {location!r} hashes to {sae.info.sha256}, "
                              f"not the declared sae_sha256 {meta.get('sae_sha256')}")
    return sae.with_info(id=str(meta.get("id", sae.info.id)))


def resolve_partners(refs: Sequence[str | Path], evaluated: Iterable[Any]) -> list[Any]:
    """Load the partner SAEs named by ``refs`` (see the module docstring)."""
    from audiosaebench.sae import load_sae
    from audiosaebench.untrusted import read_yaml_mapping

    taken = {(s.info.model_id, s.info.hook_point) for s in evaluated}
    out: list[Any] = []
    for ref in refs:
        p = Path(ref).expanduser()
        if (p / "submission.yaml").is_file():
            out.append(_submission_sae(p, read_yaml_mapping(p / "submission.yaml", CheckpointError)))
        elif p.is_dir() and any((c / "submission.yaml").is_file() for c in p.iterdir()):
            found, skipped = 0, []
            for sub in sorted(c for c in p.iterdir() if (c / "submission.yaml").is_file()):
                meta = read_yaml_mapping(sub / "submission.yaml", CheckpointError)
                model = meta.get("model")
                key = (model.get("id") if isinstance(model, dict) else None, meta.get("hook_point"))
                if meta.get("kind") != "reference" or key in taken:
                    continue
                try:
                    out.append(_submission_sae(sub, meta))
                    found += 1
                except CheckpointError as e:
                    skipped.append(str(e))
            if skipped:
                log.warning("partners not loadable from %s: %s", p, "; ".join(skipped))
            if not found:
                raise CheckpointError(f"no loadable reference SAE on another model or hook point in {p}"
                                      + (f" ({len(skipped)} found without a loadable checkpoint)" if skipped else ""))
        else:
            out.append(load_sae(str(ref)))
    return out
