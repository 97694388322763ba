#!/usr/bin/env bash
# One lent-GPU session in one command (the device tool's image has jax, flax, optax, orbax but no
# ml_collections/tensorboardX: carried as wheels in .whl/). Usage: tools/gpu_session.sh PART...
# Parts: env, check (the layer and DCGAN model tests on the GPU: their CUDA branches: the column-unfolded RGB layer,
# mirroring, the merged phase convolutions, ConvFromPhases' phase domain over their blocks and its
# im2col backward),
# bench (the full seed-size bench + profiles), dcgan (DCGAN rows only + profiles), dpad (DCGAN rows with the symmetric
# discriminator padding), dilated (DCGAN rows with lax.conv_transpose),
# convfusion (DCGAN and VAE rows with XLA's cuDNN convolution fusion on and off: what config.conv_fusion='auto'
# decides from),
# base (DCGAN rows of an older commit's library, unpacked beforehand into the ignored folder .base, e.g.
# `git archive <commit> gan_arith | tar -x -C .base`, carried: the same-machine baseline when the card differs),
# e2e (the seed run through the real loop, shortened: 62,500 synthetic faces = 50,000 in the train partition, as the
# seed's run; E2E_DPAD=symmetric for the other padding, E2E_DTYPE=float32 for float32, E2E_CONV_FUSION=on|off).
# What each session ran and measured: docs/benchmarks.md.
# Everything lands in $OUT (flat names: the device tool returns files two folders deep at most).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site" || exit 1
fi
flatten_profiles() {  # DIR/<row>/plugins/profile/<date>/<host>.{xplane.pb,trace.json.gz} -> $OUT/<tag>_<row>.*
  for row in "$1"/*/; do
    name=$(basename "$row")
    for f in "$row"plugins/profile/*/*.trace.json.gz; do [ -f "$f" ] && cp "$f" "$OUT/$2_$name.trace.json.gz"; done
  done
}
for part in "$@"; do
  echo "=== $part $(date -u +%T)"
  case $part in
    env) nvidia-smi -L; python3 -c "import jax, flax, optax, orbax.checkpoint as o; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())" ;;
    check) JAX_PLATFORMS=cuda timeout 150 python3 -m pytest -q -p no:cacheprovider tests/models/test_layers.py \
             tests/models/test_dcgan.py 2>&1 | tail -8 ;;
    bench) timeout 300 python3 -m gan_arith.bench --size seed --skip tfdata --profile /tmp/prof_bench \
             --json "$OUT/bench_seed.json" 2>&1 | tee "$OUT/bench_seed.log"; flatten_profiles /tmp/prof_bench bench ;;
    dcgan) timeout 300 python3 -m gan_arith.bench --size seed --models dcgan --skip tfdata --profile /tmp/prof_dcgan \
             --json "$OUT/bench_dcgan.json" 2>&1 | tee "$OUT/bench_dcgan.log"; flatten_profiles /tmp/prof_dcgan dcgan ;;
    dpad) timeout 200 python3 -m gan_arith.bench --size seed --models dcgan --discriminator-padding symmetric --fuse 1 \
             --skip input,tfdata,conv-transpose --json "$OUT/bench_dpad.json" 2>&1 | tail -25 ;;
    dilated) timeout 200 python3 -m gan_arith.bench --size seed --models dcgan --conv-transpose dilated --fuse 1 \
             --skip input,tfdata,conv-transpose --json "$OUT/bench_dilated.json" 2>&1 | tail -25 ;;
    convfusion) for fusion in on off; do timeout 200 python3 -m gan_arith.bench --size seed --dtypes bfloat16,float32 \
             --conv-fusion $fusion --skip input,tfdata,conv-transpose --json "$OUT/bench_convfusion_$fusion.json" 2>&1 | tail -22; done ;;
    base) (cd .base && PYTHONPATH="$PWD:/tmp/site" timeout 200 python3 -m gan_arith.bench --size seed --models dcgan --fuse 1 \
             --skip input,tfdata,conv-transpose --json "$OUT/bench_base.json" 2>&1 | tail -25) ;;
    e2e) rm -rf /tmp/e2e; start=$(date +%s)
         timeout $(( 120 + ${E2E_EPOCHS:-4} * 20 )) python3 -m experiments.dcgan_celeba --workdir=/tmp/e2e/run \
           --config.data.synthetic_dir=/tmp/e2e/synthetic --config.data.synthetic_faces=62500 \
           --config.classifier_dir=/tmp/e2e/classifier --config.model.dtype=${E2E_DTYPE:-bfloat16} \
           --config.model.discriminator_padding=${E2E_DPAD:-same} --config.conv_fusion=${E2E_CONV_FUSION:-auto} \
           --config.num_epochs=${E2E_EPOCHS:-4} --config.eval_every_epochs=${E2E_EVAL_EVERY:-2} 2>&1 | tee "$OUT/e2e.log" | tail -40
         echo "e2e wall $(( $(date +%s) - start )) s" | tee -a "$OUT/e2e.log"
         cp /tmp/e2e/run/metrics.jsonl "$OUT/e2e_metrics.jsonl" 2>/dev/null
         for png in /tmp/e2e/run/figures/samples_epoch*.png; do [ -f "$png" ] && cp "$png" "$OUT/e2e_$(basename "$png")"; done ;;
    *) echo "unknown part $part"; exit 2 ;;
  esac
done
echo "=== done $(date -u +%T)"
