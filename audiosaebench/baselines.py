"""Baseline rows of the leaderboard (``audiosaebench baselines``): the reference SAEs of
:mod:`audiosaebench.sae.reference` for one model and hook, written as SAELens v6 folders."""

from __future__ import annotations

from pathlib import Path

from audiosaebench.sae.reference import identity_sae, pca_sae, random_sae
from audiosaebench.sae.writing import write_saelens_v6


def write_baselines(model_ref: str, hook: str, out: str | Path, *, d_sae: int | None = None, k: int = 32,
                    seed: int = 0, overwrite: bool = False, suite: str | None = None,
                    data_dir: str | Path | None = None) -> list[Path]:
    """Write identity, random and (with a suite) PCA baselines as SAELens v6 folders."""
    from audiosaebench.models.loading import load_adapter

    ad = load_adapter(model_ref)
    hp = ad.resolve(hook).name
    d_in = ad.hidden_size
    model_id = ad.identity.model_id if not Path(model_ref).exists() else model_ref
    out = Path(out)
    written = []
    saes = [identity_sae(d_in, model_id, hp), random_sae(d_in, d_sae or 8 * d_in, k, model_id, hp, seed)]
    if suite is not None:
        from audiosaebench.data.suites import load_suite
        from audiosaebench.training import train_frames

        saes.append(pca_sae(train_frames(ad, hp, load_suite(suite, data_dir))[0], model_id, hp))
    for sae in saes:
        written.append(write_saelens_v6(sae, out / f"{sae.info.id}-{hp.replace('.', '_')}", overwrite=overwrite))
    return written
