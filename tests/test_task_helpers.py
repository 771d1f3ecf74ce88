"""Fast replacements of library helpers inside tasks give the library's answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), min_size=1, max_size=60))
def test_balanced_accuracy_equals_sklearn(pairs):
    from sklearn.metrics import balanced_accuracy_score

    from audiosaebench_tasks.disentanglement.compute import balanced_accuracy

    y, pred = (np.array(v) for v in zip(*pairs, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when pred has classes y lacks
        want = balanced_accuracy_score(y, pred)
    assert balanced_accuracy(y, pred) == pytest.approx(want, abs=1e-12)
