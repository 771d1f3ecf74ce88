"""coverage: how many labelled audio concepts does some single SAE feature detect?"""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult

ROLES = ("speech_train", "speech_test", "nonspeech_train", "nonspeech_test", "commands_train", "commands_test")


class CoverageTask(Task):
    metadata = TaskMetadata(
        name="coverage",
        version="1.0.0",
        description=(
            "Concept coverage: for each binary concept (every phone and speech vs non-speech at frame level; "
            "every keyword, sound class and speaker sex at clip level, codes max-pooled over valid frames) the "
            "single feature and threshold with the best train F1, scored by its test F1; mean over concepts, "
            "coverage@{0.3,0.5,0.7}, per family, and the fraction of alive features that explain a concept."
        ),
        splits=ROLES,
        main_score="mean_best_f1",
        higher_is_better=True,
        floor="chance_mean_f1: the F1 of a feature that fires on every item (2p/(1+p) per concept)",
        ceiling="dense_mean_f1: a logistic probe on all raw dimensions, thresholded the same way",
        needs=("activations", "model"),
        citation=BENCHMARK_CITATION,
        metrics={"mean_best_f1": True, "mean_best_f1_oracle": True, "dense_mean_f1": True, "chance_mean_f1": True,
                 "coverage@{t}": True, "explained_fraction@0.5": True, "mean_best_f1_frames": True,
                 "mean_best_f1_keywords": True, "mean_best_f1_sounds": True, "mean_best_f1_sex": True},
        reference="METRICS.md coverage; AudioSAE label search (F1 >= 0.5)",
        docs="tasks/coverage/README.md",
    )
    default_config = {
        "max_frames": 8000,
        "min_frame_positives": 20,
        "min_clip_positives": 2,
        "dense_max_negatives": 4000,
        "dense_max_frames": 200_000,
        "bootstrap_resamples": 1000,
    }

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.coverage.compute import run_coverage

        return run_coverage(ctx, self.metadata)
