"""cross_model_alignment: do two SAEs on different models (or layers) find the same features?"""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult


class CrossModelAlignmentTask(Task):
    metadata = TaskMetadata(
        name="cross_model_alignment",
        version="1.0.0",
        description=(
            "Feature alignment between this SAE and every other SAE given in the run (another model or "
            "layer, same audio): frames aligned by centre time; per alive feature the best Pearson "
            "correlation with any partner feature; aligned fractions each way, mutual best partners with "
            "r >= 0.5 (main), the chi (co-activation) version, linear CKA of the raw spaces, and the same "
            "metric for random SAEs of the same shapes as the floor."
        ),
        splits=("speech_test", "nonspeech_test", "commands_test"),
        main_score="mutual_aligned_fraction@0.5",
        higher_is_better=True,
        floor="mutual_aligned_fraction@0.5_random: random TopK SAEs of the same shapes on the same hooks",
        ceiling="1.0: an SAE aligned with itself (or a permuted copy)",
        needs=("activations", "several_saes"),
        citation=BENCHMARK_CITATION,
        metrics={"mutual_aligned_fraction@0.5": True, "aligned_fraction@0.5": True, "aligned_fraction@0.5_reverse": True,
                 "chi_aligned_fraction@0.5": True, "mutual_aligned_fraction@0.5_random": True, "linear_cka": True},
        reference="METRICS.md cross_model_alignment",
        docs="tasks/cross_model_alignment/README.md",
    )
    default_config = {"theta": 0.5, "max_frames": 8000, "bootstrap_resamples": 1000}

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.cross_model_alignment.compute import run_alignment

        return run_alignment(ctx, self.metadata)
