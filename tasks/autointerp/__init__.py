"""autointerp: how many features have an explanation, and how well it predicts where they fire?"""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult

LEVEL_NAMES = ("phone", "phone_class", "word", "keyword", "sound", "source", "speaker_sex")


class AutointerpTask(Task):
    metadata = TaskMetadata(
        name="autointerp",
        version="1.0.0",
        description=(
            "Feature-centric interpretability: each scored feature (every alive one, or a seeded sample) gets an "
            "explanation from the train splits, the label (or a disjunction of up to three labels of one level: "
            "phone, phone class, word, keyword, sound class, speech vs non-speech, speaker sex) whose presence "
            "best matches where the feature fires (F1); the explanation then predicts which of a fixed, seeded set "
            "of held-out test windows (top-activating, quantile-sampled, random) activate: balanced accuracy "
            "(main), F1 and AUROC per feature, averaged; and the fraction of all features explained at 0.8."
        ),
        splits=("speech_train", "speech_test", "nonspeech_train", "nonspeech_test", "commands_train", "commands_test"),
        main_score="detection_balanced_accuracy",
        higher_is_better=True,
        floor="detection_balanced_accuracy_random: the same explainer and scorer on a random TopK SAE of the same shape",
        ceiling="1.0: every explanation predicts exactly which windows activate",
        needs=("activations", "model"),
        citation=BENCHMARK_CITATION,
        metrics={"detection_balanced_accuracy": True, "detection_f1": True, "detection_auroc": True,
                 "interpretable_fraction@0.8": True, "explained_train_f1": True, "scored_features": True,
                 "alive_fraction": True, "detection_balanced_accuracy_random": True,
                 "interpretable_fraction@0.8_random": True,
                 **{f"level_fraction_{lv}": True for lv in LEVEL_NAMES}},
        reference="SAEBench / Delphi detection scoring (Paulo et al. 2024; Karvonen et al. 2025), adapted to audio labels",
        docs="tasks/autointerp/README.md",
    )
    default_config = {
        "n_features": 512,
        "explainer": "labels",
        "max_labels": 3,
        "min_positives": 5,
        "window_s": 0.5,
        "n_top": 10,
        "n_quantile": 10,
        "n_random": 20,
        "threshold": 0.8,
        "random_floor": True,
        "bootstrap_resamples": 1000,
    }

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.autointerp.compute import run_autointerp

        return run_autointerp(ctx, self.metadata)
