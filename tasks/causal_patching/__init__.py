"""causal_patching: do the SAE's features carry what the model uses to tell keywords apart?"""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


class CausalPatchingTask(Task):
    state_splits = ("commands_test",)
    metadata = TaskMetadata(
        name="causal_patching",
        version="1.1.0",
        description=(
            "Activation patching on keyword minimal pairs (same voice, different keyword): the top-k features by "
            "attribution are patched from the clean run into the corrupted one at the SAE's hook (the corrupted "
            "run's error term kept) and the output metric m = log p(A) - log p(B) (Whisper: teacher-forced decoder; "
            "encoder-only: a fixed keyword probe) is read. recovery = (m_patched - m_corr) / (m_clean - m_corr); "
            "necessity ablates the same features on the clean run; interchange accuracy = the patched run's "
            "argmax is A. Every usable pair of the split. References at the same k: neurons, PCA directions, and "
            "the floor: the mean over several random SAEs of the SAE's shape. Interventions via pyvene."
        ),
        splits=("commands_test", "commands_train"),
        main_score="recovery@20",
        higher_is_better=True,
        floor="recovery@20_random: the same selection and patch, averaged over n_random random TopK SAEs of the same shape",
        ceiling="recovery_ceiling: the whole hook output patched on the valid frames (the padding frames stay corrupted)",
        needs=("activations", "model"),
        citation=BENCHMARK_CITATION,
        metrics={"recovery@{k}": True, "recovery_median@{k}": True, "interchange_accuracy@{k}": True,
                 "necessity@{k}": True, "recovery_all_features": True, "recovery_ceiling": True,
                 "recovery@{k}_neurons": True, "recovery@{k}_pca": True, "recovery@{k}_random": True,
                 "recovery@{k}_gain_over_random": True, "n_pairs": True},
        reference="METRICS.md causal_patching; attribution patching (Nanda 2023; Syed et al. 2023); pyvene (Wu et al. 2024)",
        docs="tasks/causal_patching/README.md",
    )
    default_config = {
        "keywords": list(KEYWORDS),
        "label_key": "keyword",
        "ks": [1, 5, 20, 100],
        "max_pairs": 0,
        "min_effect": 1.0,
        "clip_seconds": 1.0,
        "references": ["neurons", "pca", "random"],
        "n_random": 5,
        "pca_max_frames": 20000,
        "probe_C": 1.0,
        "batch_size": 8,
        "bootstrap_resamples": 1000,
    }

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.causal_patching.compute import run_causal_patching

        return run_causal_patching(ctx, self.metadata)
