"""Audio model adapters. ``hooks`` and ``frames`` are pure Python; the adapters import torch."""
