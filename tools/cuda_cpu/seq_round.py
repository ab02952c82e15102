#!/usr/bin/env python3
"""tools/cuda_cpu/seq_round.py: rounds chosen values of the sequential schedule's backward (fp32 throughout,
within 1e-4 of float64 on the GPU) to bf16 as the parallel schedule's tiles hold them, so that
what each rounding costs a gradient can be measured on the CPU (run.sh's CUDA_CPU_SEQ_ROUND, with
CUDA_CPU_PARAMS=2 and param_sums.py): the sequential unit rounded one way against the unit unrounded.
usage: seq_round.py UNIT.cu WHAT [split]
  WHAT: letters, each a value rounded wherever the unit forms it (so that every use of it agrees: rounding a
  value for some of its uses only breaks the log-weight rule's cancellations, errors of order 1e-1):
    q  the query role rows (the value DAG's output, before any gate factor)
    k  the key role rows
    u  U_hat = T diag(beta) V - W S_in, the delta rule's value rows
    U  U = T diag(beta) V, before W S_in is taken off it (the parallel schedule's WY kernel stores U as a tile;
       not comparable with it: U depends on the chunk, 16 here and 64 there, where U_hat does not)
    w  W = T diag(beta) (K * e^{b})
  split: each rounded to hi + lo (two bf16 terms, as the parallel schedule's remainder tiles) instead of hi.
The unit's text is matched literally; a pattern that is gone fails loudly (exit 1), never silently."""
import sys


def main():
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and sys.argv[3] != "split"):
        sys.stderr.write("usage: seq_round.py UNIT.cu WHAT [split]\n")
        return 2
    path, what = sys.argv[1], sys.argv[2]
    split = len(sys.argv) == 4
    if not what or set(what) - set("qkuUw"):
        sys.stderr.write("seq_round.py: WHAT is letters of q, k, u, U, w\n")
        return 2
    src = open(path).read()
    fn = "cpu_seq_round"
    helper = ("__device__ __forceinline__ float %s(float x)\n{\n"
              "    const float h = __uint_as_float((unsigned)attnc_float_to_bf16(x) << 16);\n"
              "    return %s;\n}\n" % (fn, "h + __uint_as_float((unsigned)attnc_float_to_bf16(x - h) << 16)" if split else "h"))

    def replace(old, new):
        nonlocal src
        if src.count(old) != 1:
            sys.stderr.write("seq_round.py: %d matches in %s for:\n%s" % (src.count(old), path, old))
            sys.exit(1)
        src = src.replace(old, new)

    # (declared before the first function that uses it: the roles' loader)
    replace("__device__ void attnc_bwd_load_chunk(", helper + "__device__ void attnc_bwd_load_chunk(")
    roles = "            attnc_bwd_roles(p, c0 + r, h, lane, q, k, v, g, sm + L::beta + r, sm + L::ig + r);\n"
    if "q" in what or "k" in what:
        rows = "".join("                %s[c] = %s(%s[c]);\n" % (x, fn, x) for x in "qk" if x in what)
        replace(roles, roles + "            __syncwarp();\n            for (int c = lane; c < ATTNC_B_K; c += 32) {\n" + rows +
                "            }\n            __syncwarp();\n")
    if "u" in what:
        replace("        sm[L::uh + r * ATTNC_B_LDV + c] = s;\n", "        sm[L::uh + r * ATTNC_B_LDV + c] = %s(s);\n" % fn)
    if "U" in what:
        replace("            s += sm[L::t + r * ATTNC_B_LDA + j] * sm[L::beta + j] * sm[L::v + j * ATTNC_B_LDV + c];\n        if (Sin) {\n",
                "            s += sm[L::t + r * ATTNC_B_LDA + j] * sm[L::beta + j] * sm[L::v + j * ATTNC_B_LDV + c];\n"
                "        s = %s(s);\n        if (Sin) {\n" % fn)
    if "w" in what:
        replace("        sm[L::w + r * ATTNC_B_LDK + d] = s;\n", "        sm[L::w + r * ATTNC_B_LDK + d] = %s(s);\n" % fn)
    open(path, "w").write(src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
