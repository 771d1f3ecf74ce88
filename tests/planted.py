"""Planted SAEs built from the labels: the known-answer references of the metric tasks."""

from __future__ import annotations

import numpy as np
import torch

from audiosaebench.data.phones import ARPABET
from audiosaebench.sae.loading import weights_sha256
from audiosaebench.sae.sae import SAE, SAEInfo


def planted_sae(x: np.ndarray, y: np.ndarray, model_id: str, hook: str, pad_to: int | None = None,
                sae_id: str = "planted", C: float = 1.0, margin: float = 0.0) -> SAE:
    """One feature per label column: z_c = relu(w_c . x + b_c + margin), where (w_c, b_c) is a balanced
    logistic regression (inverse strength ``C``) of "column c vs every other row" (``y`` is [n, C]
    bool); decoder rows are the unit w_c. A positive margin keeps the region just below the train
    decision boundary, which held-out speakers shift. Columns with fewer than 5 positives get a
    feature that never fires."""
    from sklearn.linear_model import LogisticRegression

    d = x.shape[1]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = (x - mu) / sd
    W, b = [], []
    for c in range(y.shape[1]):
        t = y[:, c].astype(int)
        if t.sum() < 5 or t.sum() == len(t):
            W.append(np.zeros(d))
            b.append(-1.0)
            continue
        clf = LogisticRegression(C=C, max_iter=500, class_weight="balanced").fit(xs, t)
        w = clf.coef_[0] / sd
        W.append(w)
        b.append(float(clf.intercept_[0] - (w * mu).sum()) + margin)
    W_enc = torch.tensor(np.stack(W, 1), dtype=torch.float32)
    d_sae = W_enc.shape[1] if pad_to is None else pad_to
    if d_sae > W_enc.shape[1]:
        W_enc = torch.cat([W_enc, torch.zeros(d, d_sae - W_enc.shape[1])], 1)
    b_enc = torch.tensor(b + [-1.0] * (d_sae - len(b)), dtype=torch.float32)
    W_dec = W_enc.T / W_enc.T.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": torch.zeros(d), "threshold": torch.zeros(d_sae)}
    info = SAEInfo("jumprelu", d, d_sae, model_id=model_id, hook_point=hook, apply_b_dec_to_input=False,
                   source_format="planted", id=sae_id)
    return SAE(info, params).with_info(sha256=weights_sha256(params, info))


def planted_phone_sae(x: np.ndarray, y: np.ndarray, model_id: str, hook: str, pad_to: int | None = None,
                      negatives: np.ndarray | None = None) -> SAE:
    """One feature per phone, fitted on the speech frames (``y`` = phone id per frame, -1 = silence), and
    on ``negatives`` (frames of other audio, e.g. non-speech) as negatives of every phone when given."""
    m = y >= 0
    onehot = y[m][:, None] == np.arange(len(ARPABET))[None, :]
    xs = x[m]
    if negatives is not None:
        xs = np.concatenate([xs, negatives])
        onehot = np.concatenate([onehot, np.zeros((len(negatives), len(ARPABET)), bool)])
    # Strong regularisation and a margin: the probing task picks its own threshold on the feature,
    # and rectifying at the train boundary loses test frames of held-out speakers (0.84 -> 0.91 top-1).
    return planted_sae(xs, onehot, model_id, hook, pad_to, sae_id="planted-phones", C=0.01, margin=2.0)


def concept_frames(suite, acts: dict, adapter) -> tuple[np.ndarray, np.ndarray]:
    """Train frames of the speech, non-speech and commands splits with one label column per concept
    the coverage task scores (phones, speech, keywords, sound classes, sex); clip labels apply to
    every frame of the clip."""
    from audiosaebench.labels import frame_phone_ids

    xs = []
    n_total = sum(acts[r].n_frames for r in ("speech_train", "nonspeech_train", "commands_train"))
    start = 0
    labels: dict[str, np.ndarray] = {}

    def col(name: str) -> np.ndarray:
        return labels.setdefault(name, np.zeros(n_total, bool))

    for role in ("speech_train", "nonspeech_train", "commands_train"):
        a, man = acts[role], suite.split(role)
        xs.append(np.asarray(a.rows(0, a.n_frames)))
        sl = slice(start, start + a.n_frames)
        clip_of = a.frame_clip_index()
        if role == "speech_train":
            ph = frame_phone_ids(man, a, adapter)
            for p in range(len(ARPABET)):
                col(f"phone:{ARPABET[p]}")[sl] = ph == p
            col("speech")[sl] = ph >= 0
            key = "sex"
        else:
            key = "category" if role == "nonspeech_train" else "keyword"
        values = np.array([str(c.labels.get(key)) for c in man.clips])[clip_of]
        for v in np.unique(values):
            col(f"{key}:{v}")[sl] = values == v
        start += a.n_frames
    names = sorted(labels)
    return np.concatenate(xs), np.stack([labels[n] for n in names], 1)


def planted_steering_sae(x_on: np.ndarray, x_off: np.ndarray, direction: np.ndarray, model_id: str, hook: str) -> SAE:
    """One feature that holds a steering direction: it fires where a balanced logistic probe tells the
    frames ``x_on`` (of the non-speech clips Whisper falsely detects speech in) from ``x_off`` (every
    other train frame), and its decoder row is ``-direction`` scaled by the mean activation on
    ``x_on``, so suppressing it at alpha = 1 moves those frames by about ``direction``."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([x_on, x_off]).astype(np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(
        (x - mu) / sd, np.r_[np.ones(len(x_on)), np.zeros(len(x_off))])
    w = clf.coef_[0] / sd
    b = float(clf.intercept_[0] - (w * mu).sum())
    act = np.maximum(x_on @ w + b, 0)
    scale = float(act[act > 0].mean()) if (act > 0).any() else 1.0
    d = x.shape[1]
    params = {"W_enc": torch.tensor(w[:, None], dtype=torch.float32), "b_enc": torch.tensor([b], dtype=torch.float32),
              "W_dec": torch.tensor(-direction[None, :] / scale, dtype=torch.float32), "b_dec": torch.zeros(d)}
    info = SAEInfo("standard", d, 1, model_id=model_id, hook_point=hook, apply_b_dec_to_input=False,
                   source_format="planted", id="planted-steering")
    return SAE(info, params).with_info(sha256=weights_sha256(params, info))
