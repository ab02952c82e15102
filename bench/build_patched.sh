#!/bin/sh
# bench/build_patched.sh: a Release build of HEAD with patches applied, for the GPU (bench/ab.sh compares such
# builds in one call), from the repository root:
#   sh bench/build_patched.sh OUT_DIR [PATCH ...]      e.g. sh bench/build_patched.sh .dev/B bench/experiments/dk16.patch
# The patches are applied in order to a git worktree of HEAD (the working tree is not touched); attnc and
# libattnc.so land in OUT_DIR.  -DATTNC_TESTS=OFF: the device machine has no cmocka.
set -eu
[ $# -ge 1 ] || { echo "usage: sh bench/build_patched.sh OUT_DIR [PATCH ...]" >&2; exit 2; }
out=$1
shift
root=$(pwd)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/src" >/dev/null 2>&1; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/src" HEAD
for patch in "$@"; do
  case "$patch" in /*) ;; *) patch="$root/$patch" ;; esac
  git -C "$work/src" apply "$patch" || { echo "build_patched: $patch does not apply to HEAD" >&2; exit 1; }
done
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNC_TESTS=OFF >/dev/null
cmake --build "$work/build" >/dev/null
mkdir -p "$out"
cp -a "$work/build/attnc" "$work/build"/libattnc.so* "$out/"
echo "build_patched: $out (HEAD $(git rev-parse --short HEAD)${1:+ + $#} patch(es))"
