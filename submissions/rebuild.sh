#!/usr/bin/env bash
# Rebuild the committed reference and baseline rows (mini suite, Whisper tiny.en, encoder.layers.2)
# with every task, then verify each row from its checkpoint. Run from the repository root after
# `audiosaebench data prepare --suite mini`; writes runs/rows/ and replaces the rows in submissions/.
set -euo pipefail
M=openai/whisper-tiny.en
R=runs/rows
SINGLE=fidelity,phoneme_probing,coverage,disentanglement,causal_patching,steering,autointerp

# the SAEs: the reference recipe (two seeds, and seed 0 at the next layer as the alignment partner)
audiosaebench train-reference --seeds 0,1 --out $R/reference --overwrite
audiosaebench train-reference --seeds 0 --hook encoder.layers.3 --out $R/reference --overwrite
audiosaebench baselines --model $M --hook encoder.layers.2 --out $R/baselines --no-eval --overwrite
audiosaebench baselines --model $M --hook encoder.layers.2 --out $R/baselines-s1 --seed 1 --suite none --overwrite
audiosaebench baselines --model $M --hook encoder.layers.3 --out $R/baselines-l3 --no-eval --overwrite
S0=$R/reference/whisper-tiny.en-L2-topk-k32-d1536-s0
S1=$R/reference/whisper-tiny.en-L2-topk-k32-d1536-s1
L3=$R/reference/whisper-tiny.en-L3-topk-k32-d1536-s0
B=$R/baselines
ID=$B/baseline-identity-encoder_layers_2
RND=$B/baseline-random-3072-k32-s0-encoder_layers_2
PCA=$B/baseline-pca-encoder_layers_2

# the tasks of one SAE, the seed pair's stability, and alignment with the same recipe one layer up
audiosaebench evaluate --sae $S0 --sae $S1 --tasks $SINGLE,stability --out $R/results --resume --no-progress
audiosaebench evaluate --sae $S0 --partner $L3 --tasks cross_model_alignment --out $R/results --resume --no-progress
audiosaebench evaluate --sae $S1 --partner $L3 --tasks cross_model_alignment --out $R/results --resume --no-progress
for b in $ID $RND $PCA; do
  audiosaebench evaluate --sae $b --tasks $SINGLE,stability --out $R/results-base --resume --no-progress --kind baseline
  l3=$R/baselines-l3/$(basename "$b" | sed 's/encoder_layers_2/encoder_layers_3/')
  audiosaebench evaluate --sae $b --partner "$l3" --tasks cross_model_alignment --out $R/results-base --resume --no-progress --kind baseline
done
# the random baseline's stability is read against the random SAE of the next seed (the stability floor)
audiosaebench evaluate --sae $RND --partner $R/baselines-s1/baseline-random-3072-k32-s1-encoder_layers_2 \
  --tasks stability --out $R/results-base --no-progress --kind baseline

META=(--authors "AudioSAEBench contributors" --contact https://github.com/audiosaebench/audiosaebench/issues
      --license MIT --overwrite)
REF_DESC="The harness's reference SAE: TopK, k=32, expansion 4, 1,500 steps, batch 1,024, lr 4e-4, AuxK; trained by audiosaebench train-reference."
for s in 0 1; do
  audiosaebench submission init --sae $R/reference/whisper-tiny.en-L2-topk-k32-d1536-s$s --results $R/results --kind reference \
    --id reference-whisper-tiny-en-l2-topk-k32-s$s --name "Reference TopK SAE (k=32, 1,536 features, seed $s)" \
    --description "$REF_DESC" "${META[@]}" \
    --training-data "mini suite train splits (speech, commands, non-speech), Whisper tiny.en encoder.layers.2" \
    --checkpoint "rebuilt by: audiosaebench train-reference --seeds $s (bit for bit on the CPU kind that trained it); not uploaded"
done
BASE_DESC="Reference row written by audiosaebench baselines (identity: +/- neuron basis; random: random TopK; pca: +/- principal directions)."
for kind in identity random pca; do
  case $kind in identity) sae=$ID;; random) sae=$RND;; pca) sae=$PCA;; esac
  audiosaebench submission init --sae $sae --results $R/results-base --kind baseline \
    --id baseline-$kind-whisper-tiny-en-l2 --name "Baseline: $kind SAE" --description "$BASE_DESC" "${META[@]}" \
    --training-data "none (identity, random) or the mini suite train splits (PCA)" \
    --checkpoint "rebuilt by: audiosaebench baselines --model $M --hook encoder.layers.2 (not uploaded)"
done

# verified rows: each is re-evaluated from its checkpoint and compared value for value
audiosaebench submission verify submissions/reference-whisper-tiny-en-l2-topk-k32-s0 --sae $S0 --partner $S1 --partner $L3
audiosaebench submission verify submissions/reference-whisper-tiny-en-l2-topk-k32-s1 --sae $S1 --partner $S0 --partner $L3
for kind in identity random pca; do
  case $kind in identity) sae=$ID;; random) sae=$RND;; pca) sae=$PCA;; esac
  l3=$R/baselines-l3/$(basename "$sae" | sed 's/encoder_layers_2/encoder_layers_3/')
  audiosaebench submission verify submissions/baseline-$kind-whisper-tiny-en-l2 --sae $sae --partner "$l3" \
    --partner $R/baselines-s1/baseline-random-3072-k32-s1-encoder_layers_2
done
audiosaebench leaderboard build --out leaderboard
