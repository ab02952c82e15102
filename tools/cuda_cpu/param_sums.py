#!/usr/bin/env python3
"""tools/cuda_cpu/param_sums.py: the relative difference (||a - b|| / ||b||, as `attnc run --grad` measures a
gradient) of the parameters' gradients that two runs of run.sh printed with CUDA_CPU_PARAMS=2 ("param-sums NAME
SCHEDULE v1 v2 ..." lines), e.g. the sequential schedule with seq_round.py's roundings against it without:
usage: param_sums.py RUN_A.txt SCHEDULE_A RUN_B.txt SCHEDULE_B     (SCHEDULE: sequential or parallel)"""
import math
import sys


def sums(path, schedule):
    out = {}
    for line in open(path):
        f = line.split()
        if len(f) > 3 and f[0] == "param-sums" and f[2] == schedule:
            out[f[1]] = [float(x) for x in f[3:]]
    return out


def main():
    if len(sys.argv) != 5:
        sys.stderr.write("usage: param_sums.py RUN_A.txt SCHEDULE_A RUN_B.txt SCHEDULE_B\n")
        return 2
    a, b = sums(sys.argv[1], sys.argv[2]), sums(sys.argv[3], sys.argv[4])
    if not a or a.keys() != b.keys():
        sys.stderr.write("param_sums.py: the runs name different parameters (or none): %s, %s\n" % (sorted(a), sorted(b)))
        return 1
    for name in sorted(a):
        num = math.sqrt(sum((x - y) ** 2 for x, y in zip(a[name], b[name])))
        den = math.sqrt(sum(y * y for y in b[name]))
        print("%s %.3e" % (name, num / den if den > 0 else num))
    return 0


if __name__ == "__main__":
    sys.exit(main())
