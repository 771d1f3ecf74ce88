"""fidelity: how well the SAE reconstructs the activations it is applied to."""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult

ROLES = ("speech_test", "nonspeech_test", "commands_test")


class FidelityTask(Task):
    state_splits = ("speech_test",)  # the splice (Whisper; encoder-only models run whole forwards)
    state_families = ("whisper",)
    metadata = TaskMetadata(
        name="fidelity",
        version="1.1.0",
        description=(
            "Reconstruction fidelity: activation-space metrics on the speech, non-speech and commands test "
            "splits (L0, dead/dense fractions, explained variance about the mean, MSE, cosine, relative "
            "reconstruction bias) and the model splice on the speech test split: Whisper teacher-forced "
            "loss recovered (zero- and mean-ablation) and WER delta; representation recovered at the last "
            "encoder layer for encoder-only models."
        ),
        splits=ROLES,
        main_score="splice_recovered",
        higher_is_better=True,
        floor="0.0: the hook output zero-ablated on valid frames",
        ceiling="1.0: the clean model (identity and PCA SAEs reach it)",
        needs=("activations", "model"),
        citation=BENCHMARK_CITATION,
        metrics={"splice_recovered": True, "loss_recovered": True, "loss_recovered_mean_ablation": True,
                 "representation_recovered": True, "ce_clean": False, "ce_sae": False, "ce_zero_ablation": False,
                 "ce_mean_ablation": False, "wer_clean": False, "wer_sae": False, "wer_delta": False,
                 "dead_fraction": False, "explained_variance": True, "{role}/l0": False, "{role}/dead_fraction": False,
                 "{role}/dense_fraction": False, "{role}/explained_variance": True, "{role}/mse": False,
                 "{role}/cosine": True, "{role}/relative_reconstruction_bias": False},
        sparsity_metric="speech_test/l0",
        reference="METRICS.md fidelity; SAEBench / SAELens loss recovered",
        docs="tasks/fidelity/README.md",
    )
    default_config = {
        "dense_threshold": 0.1,
        "bootstrap_resamples": 1000,
        "chunk_rows": 0,
        "splice": True,
        "splice_max_clips": 0,
        "splice_batch_size": 8,
        "tokens_per_second": 8.0,
        "min_token_limit": 96,
        "max_new_tokens": 224,
    }

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.fidelity.compute import run_fidelity

        return run_fidelity(ctx, self.metadata, ROLES)
