"""steering: can the SAE's features suppress Whisper's hallucinations on non-speech?"""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult

# the main intervention (suppression of SAE features), 1.1.0's additive form, and the dense references
VARIANTS = ("", "_additive", "_mean_difference", "_mean_difference_global")


class SteeringTask(Task):
    state_splits = ("nonspeech_train", "nonspeech_test", "speech_test")
    state_families = ("whisper",)
    metadata = TaskMetadata(
        name="steering",
        version="2.1.0",
        description=(
            "Hallucination suppression (Whisper only): false speech detections (no-speech probability below 0.5 on "
            "a non-speech clip, as AudioSAE counts them); the features a logistic regression on max-pooled non-speech "
            "train codes ties to them are suppressed, z' = (1 - alpha) z, decoded with the error term kept, so only "
            "frames where they fire change. FPR on non-speech and WER on speech test clips per alpha; main score: "
            "the area under the FPR-reduction vs WER-rise frontier up to a 5-point budget; beside it the reduction "
            "at a 1-point budget, 1.1.0's additive form and the dense references (conditional and global "
            "mean-difference directions)."
        ),
        splits=("speech_train", "nonspeech_train", "speech_test", "nonspeech_test"),
        main_score="fpr_reduction_auc",
        higher_is_better=True,
        floor="0: no reduction within the budget (alpha = 0)",
        ceiling="fpr_reduction_auc_mean_difference: the conditional mean-difference direction at the hook",
        needs=("activations", "model"),
        citation=BENCHMARK_CITATION,
        metrics={f"{name}{variant}": hib for variant in VARIANTS for name, hib in (
            ("fpr_reduction_auc", True), ("fpr_reduction", True), ("alpha_star", True), ("fpr@{a}", False),
            ("wer@{a}", False), ("no_speech_prob@{a}", True), ("fpr_transcript@{a}", False))},
        reference="AudioSAE (Aparin et al. 2026) hallucination suppression by feature steering; METRICS.md steering",
        docs="tasks/steering/README.md",
    )
    default_config = {
        "alphas": [0.0, 0.25, 0.5, 1.0, 1.5],
        "additive_alphas": [0.5],
        "n_features": 100,
        "wer_budget": 0.01,
        "auc_wer_budget": 0.05,
        "probe_C": 1.0,
        "probe_max_frames": 20000,
        "mean_difference_target": "padding",
        "no_speech_threshold": 0.5,
        "max_speech_clips": 24,
        "tokens_per_second": 8.0,
        "min_token_limit": 32,
        "max_new_tokens": 224,
        "nonspeech_max_new_tokens": 6,
        "batch_size": 16,
        "bootstrap_resamples": 1000,
    }

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.steering.compute import run_steering

        return run_steering(ctx, self.metadata)
