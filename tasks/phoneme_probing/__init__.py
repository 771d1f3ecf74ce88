"""phoneme_probing: do individual SAE features carry phone identity?"""

from __future__ import annotations

from audiosaebench.task import BENCHMARK_CITATION, Task, TaskContext, TaskMetadata, TaskResult


class PhonemeProbingTask(Task):
    metadata = TaskMetadata(
        name="phoneme_probing",
        version="1.0.0",
        description=(
            "Balanced one-vs-rest phone probes on the top-k SAE features by mean difference (k = 1, 2, 5, 20), "
            "trained on the speech train split and tested on the speaker-disjoint test split, against the "
            "same probes on raw neurons and a dense probe on all dimensions; plus AudioSAE's frame accuracy "
            "beside its label-permutation chance level."
        ),
        splits=("speech_train", "speech_test"),
        main_score="sae_top1_accuracy",
        higher_is_better=True,
        floor="0.5: chance on the balanced one-vs-rest tasks",
        ceiling="dense_accuracy: a logistic probe on all raw dimensions, same tasks",
        needs=("activations", "model"),
        citation=BENCHMARK_CITATION,
        metrics={"sae_top{k}_accuracy": True, "neuron_top{k}_accuracy": True, "dense_accuracy": True,
                 "audiosae_frame_accuracy": True, "audiosae_frame_accuracy_chance": True},
        reference="METRICS.md phoneme_probing; AudioSAE frame accuracy",
        docs="tasks/phoneme_probing/README.md",
    )
    default_config = {
        "ks": [1, 2, 5, 20],
        "max_positives": 300,
        "min_positives": 20,
        "logreg_C": 1.0,
        "bootstrap_resamples": 1000,
        "permutations": 5,
    }

    def run(self, ctx: TaskContext) -> TaskResult:
        from audiosaebench_tasks.phoneme_probing.compute import run_probing

        return run_probing(ctx, self.metadata)
