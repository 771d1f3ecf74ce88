"""steering: can the SAE's features suppress Whisper's hallucinations on non-speech?"""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult


class SteeringTask(Task):
    state_splits = ("nonspeech_train", "nonspeech_test", "speech_test")
    state_families = ("whisper",)
    metadata = TaskMetadata(
        name="steering",
        version="1.1.0",
        description=(
            "AudioSAE's hallucination suppression (Whisper only). A logistic regression on clip-level max-pooled "
            "codes separates non-speech train clips Whisper hallucinates on from speech; its top features by |beta| "
            "are steered on valid frames (z' = z + alpha * s * a_j, s = -sign(beta), a_j the feature's mean active "
            "value, error term kept). FPR on non-speech and WER on speech test clips per alpha; fpr_reduction at the "
            "largest alpha whose WER rises by at most the budget, against the mean-difference steering vector."
        ),
        splits=("speech_train", "nonspeech_train", "speech_test", "nonspeech_test"),
        main_score="fpr_reduction",
        higher_is_better=True,
        floor="0: no reduction (alpha = 0 always meets the budget)",
        ceiling="1.0: no hallucination left within the WER budget; fpr_reduction_mean_difference is reported beside it",
        needs=("activations", "model"),
        citation=BENCHMARK_CITATION,
        metrics={"fpr_reduction": True, "fpr_reduction_mean_difference": True, "alpha_star": True,
                 "alpha_star_mean_difference": True, "fpr@{a}": False, "wer@{a}": False, "no_speech_prob@{a}": True,
                 "fpr@{a}_mean_difference": False, "wer@{a}_mean_difference": False,
                 "no_speech_prob@{a}_mean_difference": True},
        reference="METRICS.md steering; AudioSAE (hallucination suppression by feature steering)",
        docs="tasks/steering/README.md",
    )
    default_config = {
        "alphas": [0.0, 0.5, 1.0, 2.0, 3.0],
        "n_features": 100,
        "wer_budget": 0.01,
        "probe_C": 1.0,
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

        return run_steering(ctx)
