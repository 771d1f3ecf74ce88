"""disentanglement: does ablating a class's features remove that class and only that class?"""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult

ROLES = ("commands_train", "commands_test", "nonspeech_train", "nonspeech_test", "speech_train", "speech_test")


class DisentanglementTask(Task):
    metadata = TaskMetadata(
        name="disentanglement",
        version="1.0.0",
        description=(
            "Targeted ablation selectivity: per keyword and sound class, ablate the top-N features by mean "
            "difference (error term kept) and measure the balanced-accuracy drop of that class's clip probe "
            "minus the mean drop of the other classes' probes (N = 5, 20, 50); plus cross-factor leakage "
            "between phone features and speaker sex, against as many random features."
        ),
        splits=ROLES,
        main_score="selectivity@20",
        higher_is_better=True,
        floor="0.0: an ablation that hurts every probe equally (random SAEs land near it)",
        ceiling="oracle_selectivity: removing each probe's own direction from the pooled activations",
        needs=("activations", "model"),
        citation=BENCHMARK_CITATION,
        metrics={"selectivity@{n}": True, "oracle_selectivity": True, "selectivity@20_keywords": True,
                 "selectivity@20_sounds": True, "leakage_phones_to_sex": False, "leakage_phones_to_sex_random": False,
                 "leakage_sex_to_phones": False, "leakage_sex_to_phones_random": False},
        reference="METRICS.md disentanglement; SAEBench TPP (Karvonen et al. 2025)",
        docs="tasks/disentanglement/README.md",
    )
    default_config = {
        "ns": [5, 20, 50],
        "min_clip_positives": 2,
        "logreg_C": 1.0,
        "leakage_top_n": 5,
        "max_frames": 8000,
        "bootstrap_resamples": 1000,
    }

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.disentanglement.compute import run_disentanglement

        return run_disentanglement(ctx, self.metadata)
