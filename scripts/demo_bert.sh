#!/usr/bin/env bash
# The BERT demo on real text, offline: render the installed manual pages, learn a WordPiece
# vocabulary from them, write google's pretraining records, pretrain bert_tiny briefly
# (masked LM + next sentence), then finetune the man-page section classifier (NAME +
# DESCRIPTION -> section 1-8) from that checkpoint and, for comparison, from scratch.
# Prints masked-LM accuracy next to the most-frequent-token baseline and the classifier's
# test accuracy next to the majority-class baseline. Roughly 15-25 minutes on 2 busy
# cores; the sizes below are environment variables (e.g. BERT_DEMO_PRETRAIN_STEPS=2000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
PY="$ROOT/.venv/bin/python"
DATA="${BERT_DEMO_DATA_DIR:-$ROOT/demo_data/bert}"
RUNS="${BERT_DEMO_TRAIN_DIR:-$ROOT/runs/demo_bert}"
PAGES="${BERT_DEMO_MAX_PAGES:-1200}"
SEQ="${BERT_DEMO_SEQ_LENGTH:-64}"
PRETRAIN_STEPS="${BERT_DEMO_PRETRAIN_STEPS:-1000}"
FINETUNE_STEPS="${BERT_DEMO_FINETUNE_STEPS:-300}"

echo "== 1/6 render $PAGES man pages (no gcloud pages) -> $DATA/man"
"$PY" datasets/man_pages.py --output_dir="$DATA/man" --max_pages="$PAGES" --exclude='gcloud*'

echo "== 2/6 learn an 8000-piece WordPiece vocabulary from the pretraining corpus"
"$PY" preprocessing/bert_tokenization.py --input_files="$DATA/man/pretraining_corpus.txt" \
  --vocab_file="$DATA/man/vocab.txt" --vocab_size=8000

echo "== 3/6 google's pretraining records (seq $SEQ, 5% of the pages held out) and classifier records"
"$PY" datasets/create_pretraining_data.py --input_file="$DATA/man/pretraining_corpus.txt" \
  --vocab_file="$DATA/man/vocab.txt" --output_dir="$DATA/pretraining" --max_seq_length="$SEQ" \
  --max_predictions_per_seq=$((SEQ * 15 / 100 + 1)) --dupe_factor=2 --validation_fraction=0.05
"$PY" datasets/download_and_convert_data.py --dataset_name=text_classification \
  --source="$DATA/man/classification" --vocab_file="$DATA/man/vocab.txt" \
  --max_seq_length="$SEQ" --dataset_dir="$DATA/sections"

rm -rf "$RUNS"   # the demo always trains from scratch
echo "== 4/6 pretrain bert_tiny for $PRETRAIN_STEPS steps (AdamW, linear warmup and decay)"
"$PY" train_nlp_models.py --task=bert_pretraining --model_name=bert_tiny \
  --dataset_dir="$DATA/pretraining" --train_dir="$RUNS/pretrain" --batch_size=64 \
  --optimizer=adamw --learning_rate=5e-4 --warmup_scheme=linear --warmup_steps=100 \
  --learning_rate_decay_type=linear --end_learning_rate=0 --stop_at_step="$PRETRAIN_STEPS" \
  --log_every_n_steps=100 --save_checkpoints_steps=100000
MLM="$("$PY" eval_models.py --task=bert_pretraining --model_name=bert_tiny \
  --dataset_dir="$DATA/pretraining" --eval_split_name=validation \
  --checkpoint_path="$RUNS/pretrain" --eval_batch_size=128 | tail -1)"

finetune() {  # $1: run name; the rest: extra flags
  local name="$1"
  shift
  "$PY" train_nlp_models.py --task=sequence_classification --model_name=bert_tiny \
    --dataset_dir="$DATA/sections" --train_dir="$RUNS/$name" --batch_size=32 \
    --optimizer=adamw --learning_rate=1e-3 --warmup_scheme=linear --warmup_steps=30 \
    --learning_rate_decay_type=linear --end_learning_rate=0 --stop_at_step="$FINETUNE_STEPS" \
    --log_every_n_steps=100 --save_checkpoints_steps=100000 "$@"
  "$PY" eval_models.py --task=sequence_classification --model_name=bert_tiny \
    --dataset_dir="$DATA/sections" --eval_split_name=test --checkpoint_path="$RUNS/$name" \
    --eval_batch_size=128 | tail -1
}
echo "== 5/6 finetune the section classifier from the pretrained checkpoint"
PRETRAINED="$(finetune finetune_pretrained --init_checkpoint="$RUNS/pretrain")"
echo "== 6/6 the same classifier from scratch"
SCRATCH="$(finetune finetune_scratch)"

"$PY" - "$MLM" "$PRETRAINED" "$SCRATCH" <<'PYEOF'
import json, sys
mlm, pre, scratch = (json.loads(a) for a in sys.argv[1:])
print(f"pretraining (validation pages, {mlm['count']} sequences): masked-LM accuracy "
      f"{mlm['masked_lm_accuracy']:.2%} vs {mlm['masked_lm_majority_accuracy']:.2%} for always "
      f"the most frequent token; next-sentence accuracy {mlm['next_sentence_accuracy']:.2%}")
print(f"man-page sections (test pages, {pre['count']}): accuracy {pre['accuracy']:.2%} finetuned "
      f"from the pretrained bert_tiny, {scratch['accuracy']:.2%} from scratch, "
      f"{pre['majority_class_accuracy']:.2%} for the majority class; macro F1 "
      f"{pre['macro_f1']:.3f} vs {scratch['macro_f1']:.3f}")
PYEOF
