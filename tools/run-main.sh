#!/bin/sh
# The main job: set up, build attnc, check every spec in specs/ and run its float64 reference
# (recurrent against chunkwise, several chunk sizes, T not a multiple of the chunk).
set -eu
cd "$(dirname "$0")/.."
sh tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
build/attnc check specs/*.attn
echo "attnc check: all $(ls specs/*.attn | wc -l) specs are clean"
for f in specs/*.attn; do
  echo "== $f"
  build/attnc ref "$f" --tokens 200 --batch 2 --initial-state --chunks 1,13,16,64
done
