#!/bin/bash
# Build .devcarry/ (git-ignored) here, for one call of the `device` tool that runs
# bench/device/run.sh on a GPU machine with no network: the mini suite's prepared data (xz), Whisper
# tiny.en's config and tokenizer (not its weights: the device's parts use random-init models),
# this package as a wheel, and the wheels of the dependencies that machine's image lacks (its
# python3 is 3.12 with torch, numpy, scipy, scikit-learn, tokenizers, safetensors, huggingface-hub,
# pyyaml, tqdm, threadpoolctl; transformers is carried at our pin, with the regex it checks at import).
# Everything must stay under the tool's 64 MiB per call.
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${PYTHON:-.venv/bin/python}"
# where the package keeps the suite and the converted model (AUDIOSAEBENCH_HOME, XDG_CACHE_HOME, ...)
data=$("$py" -c "from audiosaebench import paths; print(paths.data_dir())")
model=$("$py" -c "from audiosaebench.models.loading import mini_whisper_dir; print(mini_whisper_dir())")
[ -f "$data/mini/suite.json" ] || { echo "pack.sh: no prepared mini suite under $data (run: audiosaebench data prepare --suite mini)" >&2; exit 2; }
c=.devcarry
rm -rf "$c" && mkdir -p "$c/wheels" "$c/model"
tar -C "$data" -cf - mini | xz -6 -T0 > "$c/mini-data.tar.xz"
cp "$model/config.json" "$model/tokenizer.json" "$c/model/"
"$py" -m pip wheel -q --no-deps --no-build-isolation -w "$c/wheels" .
pins=$(grep -E '^(transformers|regex|jsonschema|jsonschema-specifications|referencing|rpds-py|soundfile|cffi|pycparser)==' constraints.txt)
# shellcheck disable=SC2086
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d "$c/wheels" $pins
ls -la "$c" "$c/wheels"
size=$(du -sm "$c" | cut -f1)
echo "pack.sh: $c holds ${size} MiB (the device tool carries 64 MiB per call, the working tree, ≈ 1 MiB, included)"
[ "$size" -lt 62 ] || { echo "pack.sh: too large to carry" >&2; exit 1; }
