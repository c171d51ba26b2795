#!/usr/bin/env bash
# Train the shipped models together on one CUDA GPU (how the GPU-trained weights in weights/ were made).
#
#   scripts/gpu_train_session.sh start DATA RUNS MINUTES   launch every job detached (setsid), each for MINUTES
#   scripts/gpu_train_session.sh watch RUNS SECONDS        print progress for SECONDS (or until all jobs end)
#   scripts/gpu_train_session.sh collect RUNS DEST         export fp16 weights of every job's last.pt into DEST
#                                                          (the training library's export: metadata, and RUNS/<name>/export.json)
#
# DATA is a folder made by scripts/pack_training_data.py (DATA/train, DATA/val/cbsd68). Jobs share the GPU
# (time-sliced) and the CPU cores (data workers). Each job writes RUNS/<name>/{last.pt,best.pt,log.jsonl}
# and RUNS/<name>.log; `collect` also works while jobs still run (it reads the last checkpoint).
set -u
cmd=${1:?usage: start|watch|collect}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}

FBS='{"nc": [32, 64, 128, 192], "nb": 2, "residual": true}'

job() {  # name, then train.py arguments
  local name=$1; shift
  mkdir -p "$RUNS/$name"
  setsid nohup "$py" "$here/scripts/train.py" --device "${DEVICE:-cuda}" --no-progress --out "$RUNS/$name" \
    --train "$DATA/train" --val "$DATA/val/cbsd68" --max-minutes "$MINUTES" --steps "${STEPS:-1000000}" \
    --save-every 500 --log-every 100 --hardware "$GPU_NAME" "$@" >"$RUNS/$name.log" 2>&1 </dev/null &
}

case $cmd in
start)
  DATA=$2 RUNS=$3 MINUTES=$4
  mkdir -p "$RUNS"
  GPU_NAME=${GPU_NAME:-$("$py" -c "import torch; print('1x ' + torch.cuda.get_device_name(0))")}
  job fbcnn-s --arch fbcnn --config "$FBS" --channels 3 --degrade mix_hq --batch 32 --crop 128 \
    --lr 4e-4 --warmup 300 --workers 3 --val-every 1000
  job fbcnn-s-gray --arch fbcnn --config "$FBS" --channels 1 --degrade mix_hq --batch 32 --crop 128 \
    --lr 4e-4 --warmup 300 --workers 2 --val-every 1000
  job fbcnn-s-video --arch fbcnn --config "$FBS" --channels 3 --degrade jpeg_video_mix_hq --batch 64 --crop 64 \
    --lr 4e-4 --warmup 300 --workers 5 --val-every 1000 --val-video
  job arcnn --arch arcnn --channels 3 --degrade mix --batch 32 --crop 64 --lr 5e-4 --workers 1 --val-every 2000
  job fastarcnn --arch fastarcnn --channels 3 --degrade mix --batch 64 --crop 64 --lr 3e-4 --warmup 200 \
    --init "$here/weights/fastarcnn.safetensors" --workers 2 --val-every 2000
  job fastarcnn-video --arch fastarcnn --channels 3 --degrade jpeg_video_mix --batch 32 --crop 64 --lr 3e-4 \
    --warmup 200 --init "$here/weights/fastarcnn-video.safetensors" --workers 2 --val-every 1000 --val-video
  job fastarcnn-t3 --arch fastarcnn --frames 3 --batch 16 --crop 64 --lr 3e-4 --warmup 200 \
    --init "$here/weights/fastarcnn-t3.safetensors" --workers 2 --val-every 1000
  job fastarcnn-t5 --arch fastarcnn --frames 5 --batch 16 --crop 64 --lr 3e-4 --warmup 200 \
    --init "$here/weights/fastarcnn-video.safetensors" --workers 2 --val-every 1000
  sleep 2
  echo "started $(ls "$RUNS"/*.log | wc -l) jobs on $GPU_NAME for $MINUTES min"
  ;;
watch)
  RUNS=$2 SECONDS_LEFT=$3
  end=$((SECONDS + SECONDS_LEFT))
  while [ $SECONDS -lt $end ]; do
    sleep 30
    running=$(pgrep -fc "scripts/train.py" || true)
    echo "== $(date +%T) train.py processes: $running"
    for f in "$RUNS"/*.log; do
      printf '%-16s %s\n' "$(basename "$f" .log)" "$(grep -E '^step|error|Error|stopping' "$f" | tail -1 | cut -c1-150)"
    done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    [ "$running" = 0 ] && break
  done
  for f in "$RUNS"/*.log; do echo "--- $f"; grep -E 'Traceback|Error|error' -A3 "$f" | tail -8; done
  ;;
collect)
  RUNS=$2 DEST=$3
  mkdir -p "$DEST"
  "$py" - "$RUNS" "$DEST" "$here" <<'EOF'
import json, sys
from pathlib import Path
runs, dest, here = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
sys.path.insert(0, str(here))
# the training library's export: weights, their metadata and the manifest entry (RUNS/<name>/export.json)
from vsjpegfix.training.checkpoints import export_checkpoint  # noqa: E402
for ck in sorted(runs.glob("*/last.pt")):
    entry, c = export_checkpoint(ck, dest / f"{ck.parent.name}.safetensors", ck.parent.name)
    print(ck.parent.name, c["step"], json.dumps(c.get("last_val")))
EOF
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
