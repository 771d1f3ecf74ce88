"""The roles a suite's splits play (what METRICS.md calls the speech, non-speech and commands splits)."""

from __future__ import annotations

ROLES = (
    "commands_val",
    "speech_train",
    "speech_test",
    "nonspeech_train",
    "nonspeech_test",
    "commands_train",
    "commands_test",
)
TEST_ROLES = ("speech_test", "nonspeech_test", "commands_test")
