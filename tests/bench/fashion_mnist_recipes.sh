#!/usr/bin/env bash
# score_sde's recipe against EDM's on Fashion-MNIST at equal steps: the same
# network (configs/fashion_mnist/vp.yaml's DDPM++, shrunk by OVERRIDES) trained
# with configs/fashion_mnist/vp.yaml (VP SDE, DSM loss, warm-up EMA) and with
# configs/edm/fashion_mnist_ddpmpp_edm.yaml (EDM preconditioning and loss,
# half-life EMA), then sampled alike (EDM's Heun, 18 steps = 35 NFE) and scored
# with the built-in extractor (`scorch classifier`). Prints a Markdown table:
# the loss by step (each recipe's own objective) and FID / KID / IS of each
# recipe's EMA samples against the training set's statistics, precision and
# recall: the table of tests/README.md. The two runs train at once, one
# LibTorch thread each.
#   tests/bench/fashion_mnist_recipes.sh [STEPS]      (defaults: 2000 steps)
# Environment: SCORCH (build/scorch), OUT (a scratch folder), NUM (samples, 1000),
# OVERRIDES (config overrides for both runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
scorch=${SCORCH:-build/scorch}
out=${OUT:-/tmp/scorch_fmnist_recipes}
steps=${1:-2000}
num=${NUM:-1000}
overrides=${OVERRIDES:-"model.nf=16 model.num_res_blocks=1 training.batch_size=32"}
fashion=/usr/share/datasets/fashion-mnist
[ -d "$fashion" ] || { echo "fashion_mnist_recipes: $fashion missing (Debian package dataset-fashion-mnist)" >&2; exit 2; }
mkdir -p "$out"
[ -d "$out/train" ] || "$scorch" data convert --from idx --input "$fashion" --out "$out/train" >/dev/null
[ -d "$out/test" ] || "$scorch" data convert --from idx --input "$fashion" --split test --out "$out/test" >/dev/null
[ -f "$out/clf.pt" ] || "$scorch" classifier --data "$out/train" --test "$out/test" --out "$out/clf.pt" --epochs 2 --json >"$out/clf.json"
[ -f "$out/train.npz" ] || "$scorch" stats --data "$out/train" --out "$out/train.npz" --extractor "$out/clf.pt" --features --limit 10000 --json >/dev/null

declare -A config=([score_sde]=configs/fashion_mnist/vp.yaml [edm]=configs/edm/fashion_mnist_ddpmpp_edm.yaml)
declare -A weights=([score_sde]=ema [edm]=edm_50)
sampler="sampling.method=edm sampling.num_steps=18 sampling.edm_rho=7 sampling.batch_size=250"
# The two recipes train side by side, one LibTorch thread each.
run_recipe() {
  local recipe=$1 w="$out/$1" start
  rm -rf "$w"  # a finished workdir would return at once
  start=$(date +%s)
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 "$scorch" train --config "${config[$recipe]}" --workdir "$w" data.path="$out/train" \
    $overrides training.n_iters="$steps" training.snapshot_freq="$steps" \
    training.snapshot_freq_for_preemption="$steps" training.snapshot_sampling=false \
    training.log_freq=50 >"$w.train.log" 2>&1
  echo "$(( $(date +%s) - start ))" >"$w.train_s"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 "$scorch" eval --workdir "$w" --weights "${weights[$recipe]}" --num "$num" \
    --ref "$out/train.npz" --extractor "$out/clf.pt" --json $sampler >"$w.eval.json" 2>"$w.eval.log"
}
run_recipe score_sde & first=$!
run_recipe edm & second=$!
wait "$first"
wait "$second"

python3 - "$out" "$steps" <<'EOF'
import json, sys
out, steps = sys.argv[1], int(sys.argv[2])
marks = sorted({m for m in (50, 100, 250, 500, 1000, 2000, 5000, steps) if m <= steps})
print("| recipe | loss at step " + " / ".join(map(str, marks)) +
      " | FID | KID | IS | precision / recall | train s |")
print("|---|---|---|---|---|---|---|")
labels = {"score_sde": "score_sde (VP, DSM)", "edm": "EDM (precond + loss)"}
for recipe in ("score_sde", "edm"):
    losses = {}
    with open(f"{out}/{recipe}/log.jsonl") as f:
        for line in f:
            j = json.loads(line)
            if "loss" in j and "step" in j:
                losses[j["step"]] = j["loss"]
    def at(m):
        k = min(losses, key=lambda s: abs(s - m))
        return f"{losses[k]:.4g}"
    e = json.load(open(f"{out}/{recipe}.eval.json"))
    t = open(f"{out}/{recipe}.train_s").read().strip()
    print(f"| {labels[recipe]} | {' / '.join(at(m) for m in marks)} | {e['fid']:.4g} | "
          f"{e['kid']:.4g} | {e['inception_score']:.3g} | {e['precision']:.3f} / "
          f"{e['recall']:.3f} | {t} |")
EOF
