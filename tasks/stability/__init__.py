"""stability: do SAEs trained with different seeds learn the same features?"""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult


class StabilityTask(Task):
    metadata = TaskMetadata(
        name="stability",
        version="1.0.0",
        description=(
            "Seed stability between SAEs on the same model and hook: AudioSAE's activation-match coverage "
            "(a feature is matched when some feature of the other SAE has Jaccard chi > 0.5 over the eval "
            "frames, both directions), within-SAE duplicates, and decoder matching (mutual nearest neighbours "
            "by cosine; exact Hungarian matching up to hungarian_max features); mean and std over pairs."
        ),
        splits=("speech_test", "nonspeech_test", "commands_test"),
        main_score="chi_coverage@0.5",
        higher_is_better=True,
        floor="chi_coverage@0.5_random: the same comparison against a random TopK SAE of the same shape",
        ceiling="1.0: an SAE compared with itself",
        needs=("activations", "several_saes"),
        citation=BENCHMARK_CITATION,
        metrics={"chi_coverage@0.5": True, "chi_coverage@0.5_random": True, "duplicate_fraction@0.5": False,
                 "decoder_mnn_fraction@0.7": True, "decoder_mean_max_cosine": True,
                 "decoder_hungarian_mean_cosine": True, "decoder_hungarian_fraction@0.7": True},
        reference="METRICS.md stability; AudioSAE (activation match, chi > 0.5)",
        docs="tasks/stability/README.md",
    )
    default_config = {
        "theta": 0.5,
        "max_frames": 20000,
        "hungarian_max": 16384,
        "bootstrap_resamples": 1000,
    }

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.stability.compute import run_stability

        return run_stability(ctx, self.metadata)
