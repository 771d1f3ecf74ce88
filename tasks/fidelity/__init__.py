"""fidelity: how well the SAE reconstructs the activations it is applied to."""

from __future__ import annotations

from audiosaebench.task import Task, TaskContext, TaskMetadata, TaskResult

ROLES = ("speech_test", "nonspeech_test", "commands_test")


class FidelityTask(Task):
    metadata = TaskMetadata(
        name="fidelity",
        version="0.1.0",
        description=(
            "Reconstruction fidelity in activation space on the speech, non-speech and commands test "
            "splits: L0, dead/dense fractions, explained variance (about the mean), MSE, cosine and "
            "relative reconstruction bias. Version 0.x has no model splice yet (loss recovered, WER delta)."
        ),
        splits=ROLES,
        main_score="explained_variance",
        higher_is_better=True,
        floor="0.0: reconstructing every frame by the split mean",
        ceiling="1.0: the identity SAE (x_hat = x)",
        needs=("activations",),
        citation=(
            "@misc{audiosaebench,\n  title={AudioSAEBench: evaluating sparse autoencoders on audio models},\n"
            "  author={{AudioSAEBench contributors}},\n  year={2026}\n}"
        ),
        reference="docs/tasks/fidelity.md",
        docs="tasks/fidelity/README.md",
    )
    default_config = {"dense_threshold": 0.1, "bootstrap_resamples": 1000, "chunk_rows": 0}

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.fidelity.compute import run_fidelity

        return run_fidelity(ctx, ROLES)
