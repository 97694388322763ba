#!/usr/bin/env bash
# The seed's own DCGAN run on real faces in one lent-GPU call (tools/seed_run.py does the stages: unpack the
# carried face pack into a store, train the seed configuration in bfloat16 for the seed's 39,000 updates,
# then the sample grids, the best checkpoint's Fréchet distance and the arithmetic success rate), within
# a 9-minute budget. The device image has jax, flax, optax, orbax but no ml_collections: carried as a wheel.
#
# Here, once (both paths are git-ignored; the pack must not be committed: CelebA is research-only):
#   python -m gan_arith.data.export --store data/celeba_store --size 80 --output .pack/celeba_80.npz
#       (all partitions: train trains, valid scores the Fréchet distance, test tests the classifier;
#        JPEG quality picked to fit 45 MB, printed with the size and the PSNR; seconds)
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl ml_collections==1.1.0
# Device call (pack + code + wheel must stay under the tool's 64 MiB):
#   run(command="bash tools/gpu_seed_run.sh", carry=[".pack", ".whl"], timeout_s=600)
# Expected on one H100 (predicted from the bf16 bench's ~164 steps/s and the end-to-end runs in
# docs/benchmarks.md): unpack a few seconds, training ~5-6 min (39,000
# steps plus compiling, the classifier's 1,500 steps, 10 evaluations), arithmetic ~1 min (it trains its
# judge, if it has one, first); the whole call ~7 min of the 9-minute budget. $OUT gets seed_run.json,
# seed_run.log, samples_best.png, samples_last.png, gan_scored_arithmetic.png, gan_scored_draws.png and
# seed_run_files.tar (every grid and JSON). Each stage prints its wall time.
#
# Shrinking it (tests/tools/test_gpu_seed_run.py runs the whole chain on CPU at 40 px, width 8, 2 epochs of
# 8 steps, in about 1.5 minutes on two cores): SEED_PACK, SEED_WORK, SEED_BUDGET_S,
# SEED_STEPS or SEED_EPOCHS, SEED_EVALS, SEED_FACES, SEED_SIZE, SEED_WIDTH, SEED_BATCH, SEED_DTYPE,
# SEED_CLASSIFIER_STEPS, SEED_TRAIN_ARGS, SEED_ARITH_ARGS and more, with their defaults, in tools/seed_run.py's
# docstring; PYTHON picks the interpreter (default python3).
set -u
cd "$(dirname "$0")/.." || exit 1
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c "import ml_collections" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "ml_collections is missing and no wheels were carried in .whl/ (see this script's header)" >&2
    exit 1
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
exec "$PYTHON" tools/seed_run.py
