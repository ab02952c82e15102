#!/usr/bin/env python3
"""bench/ncu_lines.py: where a kernel's warps stall, by source line of the generated CUDA C (a profile).

    ATTNC_LINEINFO=1 ncu --set full --import-source yes -k regex:KERNEL -c 1 -o rep python3 bench/kernel_times.py ... --reps 0
    ncu -i rep.ncu-rep --page source --csv --print-source cuda,sass > rep.csv
    attnc compile SPEC [--grad] --emit cuda -o src.cu    (the forward's JIT unit starts with "#define ATTNC_ONLY 1":
                                                          prepend that line to src.cu, or the lines are off by one)
    python3 bench/ncu_lines.py rep.csv src.cu [TOP]

Prints the share of stall samples and of executed instructions by region (the functions and '// ----' sections
of the source, inlined helpers counted where they are defined), then the TOP lines (default 30) with their three
main stall reasons, then the barriers (samples at a barrier: warps waiting for the others).
"""
import collections
import csv
import sys


def main():
    path, src = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    lines = open(src).read().split('\n')
    rows = list(csv.reader(open(path)))
    hdr = rows[2]
    i_line, i_samp = hdr.index('Line No'), hdr.index('Warp Stall Sampling (All Samples)')
    i_inst = hdr.index('Instructions Executed')
    stall_cols = [(k, h) for k, h in enumerate(hdr) if h.startswith('stall_') and '(Not Issued)' not in h]
    samples, instrs = collections.Counter(), collections.Counter()
    reasons = collections.defaultdict(collections.Counter)
    cur = None
    for r in rows[3:]:
        if len(r) <= i_inst:
            continue
        if r[i_line]:
            cur = int(r[i_line])
        try:
            s, n = int(r[i_samp] or 0), int(r[i_inst] or 0)
        except ValueError:
            continue
        samples[cur] += s
        instrs[cur] += n
        for k, h in stall_cols:
            try:
                reasons[cur][h[6:]] += int(r[k] or 0)
            except ValueError:
                pass
    tot, tot_i = max(sum(samples.values()), 1), max(sum(instrs.values()), 1)
    print(f'samples {tot}, instructions {tot_i}')
    marks = [(i + 1, l.strip()[:60]) for i, l in enumerate(lines)
             if '// ----' in l or (('__device__' in l or '__global__' in l) and '(' in l)]

    def region(ln):
        found = (0, '(before any function)')
        for at, text in marks:
            if at <= ln:
                found = (at, text)
        return found
    by_region, by_region_i = collections.Counter(), collections.Counter()
    for ln, s in samples.items():
        if ln is not None:
            by_region[region(ln)] += s
            by_region_i[region(ln)] += instrs[ln]
    for reg, s in by_region.most_common(25):
        print(f'{100 * s / tot:5.1f}% samples {100 * by_region_i[reg] / tot_i:5.1f}% instr  line {reg[0]}: {reg[1]}')
    print('--- lines')
    for ln, s in samples.most_common(top):
        why = ' '.join(f'{k}:{100 * v / max(s, 1):.0f}' for k, v in reasons[ln].most_common(3))
        text = lines[ln - 1].strip()[:90] if ln and ln <= len(lines) else None
        print(f'{100 * s / tot:5.1f}% {100 * instrs[ln] / tot_i:5.1f}%i L{ln}: {text}  [{why}]')
    print('--- barriers')
    for ln in sorted(k for k in samples if k and k <= len(lines) and
                     ('__syncthreads' in lines[k - 1] or 'bar_named' in lines[k - 1])):
        prev = next((lines[j].strip()[:70] for j in range(ln - 2, -1, -1)
                     if lines[j].strip() and lines[j].strip() not in ('}', '{')), '')
        print(f'{100 * samples[ln] / tot:5.1f}% L{ln}  after: {prev}')


if __name__ == '__main__':
    main()
