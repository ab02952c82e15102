#!/bin/sh
# Runs the front-end fuzzer for SECONDS from a corpus seeded with every spec and its IR text.
# usage: fuzz/run.sh FUZZER SECONDS [WORKDIR]
set -eu
fuzzer=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
seconds=$2
work=${3:-$(mktemp -d)}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work/corpus"
cp "$here"/specs/*.attn "$work/corpus/"
for f in "$here"/tests/specs/*.attn "$here"/tests/golden/*.attn; do
  [ -f "$f" ] && cp "$f" "$work/corpus/$(basename "$(dirname "$f")")_$(basename "$f")"
done
attnc=""
for b in build-test build; do
  if [ -x "$here/$b/attnc" ]; then attnc="$here/$b/attnc"; break; fi
done
if [ -n "$attnc" ]; then
  for f in "$here"/specs/*.attn; do
    "$attnc" ir "$f" > "$work/corpus/$(basename "$f" .attn).ir" || true
  done
fi
cd "$work"
"$fuzzer" -dict="$here/fuzz/attn.dict" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 corpus 2>fuzz.log || { tail -50 fuzz.log; exit 1; }
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" fuzz.log
echo "fuzz: $seconds s without a crash"
