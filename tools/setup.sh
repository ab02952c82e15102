#!/bin/sh
# Installs the Debian packages attnc needs to build and test, only those that are missing.
# Safe to run again; needs root (as on the project's machines) or sudo.
set -eu
need="cmake ninja-build gcc clang flex bison libcmocka-dev python3 pkg-config"
missing=""
for p in $need; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
# libFuzzer's runtime comes with clang's compiler-rt; Debian 12 packages it as libclang-rt-14-dev
# (or inside libclang-common-14-dev on older images).
if ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  missing="$missing libclang-rt-14-dev"
fi
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
