#!/usr/bin/env bash
# Train the GRU-A2C variants at the full profile, one queue per core (run two of these:
#   scripts/train_gru.sh fig14-gru fig18-gru ...   and   scripts/train_gru.sh fig11-gru ...).
# Each run resumes from its checkpoint or carry/; carry and commit about hourly (musicrl carry).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for name in "$@"; do
  .venv/bin/musicrl train "$name" --profile full --seed 0 1 2 3 4
done
