#!/bin/sh
# The main job: set up, build attnc, check every spec in specs/ and run its float64 reference
# (recurrent against chunkwise: packed sequences of 37, 1, 70 and 9 tokens, chunk sizes 1, 13, 16 and 64,
# an initial state where the spec takes one).
set -eu
cd "$(dirname "$0")/.."
sh tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
build/attnc check specs/*.attn
echo "attnc check: all $(ls specs/*.attn | wc -l) specs are clean"
for f in specs/*.attn; do
  echo "== $f"
  sh tests/run_ref.sh build/attnc "$f"   # the same run as the ref.spec.* tests
done
for f in specs/*.attn; do
  build/attnc compile --arch sm_90a --emit ptx -o /dev/null "$f"
done
# On a machine with a GPU: the GPU checks (tests/gpu/cases.txt); without one this says so and skips.
sh tests/gpu/run.sh build/attnc || [ $? -eq 77 ] || echo "some GPU checks failed (see docs/gpu-checks.md for the known gaps)"
