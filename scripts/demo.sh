#!/usr/bin/env bash
# The tfzoo demo, from a fresh machine: set up, convert scikit-learn's handwritten digits
# (real data shipped inside the package, no download) into MNIST-style tfrecords, train
# lenet on them with the real harness, evaluate on the held-out split, print the accuracy.
# Takes a few minutes on 2 cores; exits non-zero if top-1 is below 95%.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
PY="$ROOT/.venv/bin/python"
DATA="${DEMO_DATA_DIR:-$ROOT/demo_data/digits}"
TRAIN_DIR="${DEMO_TRAIN_DIR:-$ROOT/runs/demo_lenet}"

echo "== 1/3 convert scikit-learn digits -> $DATA"
"$PY" datasets/download_and_convert_data.py --dataset_name=sklearn_digits --dataset_dir="$DATA"

echo "== 2/3 train lenet (flags in scripts/demo_lenet.flags) -> $TRAIN_DIR"
rm -rf "$TRAIN_DIR"   # the demo always trains from scratch
"$PY" train_image_classifiers.py --flagfile=scripts/demo_lenet.flags \
  --dataset_dir="$DATA" --train_dir="$TRAIN_DIR"

echo "== 3/3 evaluate on the held-out split"
RESULT="$("$PY" eval_image_classifiers.py --model_name=lenet --dataset_name=mnist \
  --dataset_dir="$DATA" --eval_split_name=test --checkpoint_path="$TRAIN_DIR" | tail -1)"
"$PY" - "$RESULT" <<'PYEOF'
import json, sys
r = json.loads(sys.argv[1])
print(f"lenet on scikit-learn digits, held-out split: top-1 {r['top1']:.2%}, top-5 {r['top5']:.2%} "
      f"over {r['count']} examples (checkpoint {r['checkpoint']})")
sys.exit(0 if r["top1"] >= 0.95 else f"top-1 {r['top1']:.2%} is below the demo's 95% bar")
PYEOF
