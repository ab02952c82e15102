#!/usr/bin/env python3
"""tests/ref/crosscheck.py: the C reference (reference/) against the shared pure-Python one.

Usage:
    crosscheck.py REF_LINEAR_ATTN_PY --run TEST_REF_BINARY   (runs `TEST_REF_BINARY --dump DIR` first)
    crosscheck.py REF_LINEAR_ATTN_PY CASE.json ...

Each JSON case (written by ref_dump_json) holds the role vectors the C code evaluated from the IR, the
initial states and the C result.  This script recomputes every output and final state with the Python
module's own recurrences (recurrent_general, recurrent_mlstm, softmax_attention_naive), per sequence and
output head, mapping heads as ref.h documents, and fails if any differs by more than 1e-9 (max abs diff
over max(1, max abs)).  Adaptations, all exact in float64 up to rounding:
  * DENOM: the values get a ones column and S0 the z0 column (algorithms.md 2.1); o = num / (den + eps);
  * RMS / LAYER: applied here to the raw readout, with the module's eps;
  * mLSTM: Python takes the forget pre-activation and scales q by 1/sqrt(K); we pass
    f = a - log(-expm1(a)) (so logsigmoid(f) = a; +inf for a = 0) and q * sqrt(K);
  * mask none: S_full is recurrent_general's final state, read by every token.
Exit status 0 iff every case agrees.
"""

import glob
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile

TOL = 1e-9


def load_module(path):
    spec = importlib.util.spec_from_file_location("ref_linear_attn", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def head_map(h, total, n):
    return h // (total // n)


def role_vec(role, t, h):
    n = role["len"]
    row = h if role["per_head"] else t * role["heads"] + h
    return role["data"][row * n:(row + 1) * n]


def num(x):
    return float("nan") if x is None else x


def post_norm(o, norm, eps):
    V = len(o)
    if norm == "rms":
        r = math.sqrt(sum(x * x for x in o) / V + eps)
        return [x / r for x in o]
    if norm == "layer":
        mean = sum(o) / V
        var = sum((x - mean) ** 2 for x in o) / V
        return [(x - mean) / math.sqrt(var + eps) for x in o]
    return o


def inv_logsigmoid(a):
    return math.inf if a >= 0.0 else a - math.log(-math.expm1(a))


def linear_head(R, c, n, h, want_state):
    """Outputs (list of V-vectors) of output head h in sequence n, and the final state tuple."""
    d, roles = c["dims"], c["roles"]
    K, V, Hs, Hout = d["K"], d["V"], d["Hs"], d["Hout"]
    bos, eos = c["cu_seqlens"][n], c["cu_seqlens"][n + 1]
    s = head_map(h, Hout, Hs)
    qh = head_map(h, Hout, d["Hq"])

    def rh(name):
        return head_map(s, Hs, roles[name]["heads"])

    toks = range(bos, eos)
    q = [role_vec(roles["q"], t, qh) for t in toks]
    k = [role_vec(roles["k"], t, rh("k")) for t in toks]
    v = [role_vec(roles["v"], t, rh("v")) for t in toks]
    gate = None
    if "gate" in roles:
        gr = roles["gate"]
        gate = [role_vec(gr, t, rh("gate")) for t in toks]
        gate = [g[0] if len(g) == 1 else list(g) for g in gate]
    sidx = n * Hs + s
    S0 = z0 = None
    if c["h0"] is not None:
        S0 = [c["h0"][(sidx * K + i) * V:(sidx * K + i + 1) * V] for i in range(K)]
        if c["z0"] is not None:
            z0 = c["z0"][sidx * K:(sidx + 1) * K]
    norm, eps = c["norm"], c["eps"]

    if norm == "maxfloor":
        sc = math.sqrt(K)
        ig = [role_vec(roles["igate"], t, rh("igate"))[0] for t in toks] if "igate" in roles else [0.0] * len(q)
        f_pre = [inv_logsigmoid(g if gate is not None else 0.0) for g in (gate or [0.0] * len(q))]
        state = None
        if S0 is not None:
            state = (S0, z0, c["m0"][sidx])
        out, (C, nn, m) = R.recurrent_mlstm([[x * sc for x in qq] for qq in q], k, v, ig, f_pre, state, eps)
        return out, (C, nn, m)

    denom = norm == "denom"
    va = [list(x) + [1.0] for x in v] if denom else v
    Sa = None
    if S0 is not None:
        Sa = [list(S0[i]) + ([z0[i]] if denom else []) for i in range(K)]
    beta = None
    if c["update"] == "delta":
        beta = [role_vec(roles["beta"], t, rh("beta"))[0] for t in toks]
    out, S = R.recurrent_general(q, k, va, gate, beta, Sa)
    if c["mask"] == "none":
        out = [R.vT_mat(S, qq) for qq in q]
    res = []
    for o in out:
        if denom:
            res.append([x / (o[V] + eps) for x in o[:V]])
        else:
            res.append(post_norm(o, norm, eps))
    Sv = [row[:V] for row in S]
    z = [row[V] for row in S] if denom else None
    return res, (Sv, z, None)


def softmax_head(R, c, n, h):
    d, roles = c["dims"], c["roles"]
    Hout = d["Hout"]
    bos, eos = c["cu_seqlens"][n], c["cu_seqlens"][n + 1]
    toks = range(bos, eos)
    q = [role_vec(roles["sq"], t, head_map(h, Hout, roles["sq"]["heads"])) for t in toks]
    k = [role_vec(roles["sk"], t, head_map(h, Hout, roles["sk"]["heads"])) for t in toks]
    v = [role_vec(roles["sv"], t, head_map(h, Hout, roles["sv"]["heads"])) for t in toks]
    return R.softmax_attention_naive(q, k, v, window=c["window"] or None, scale=1.0)


def check_case(R, c):
    """Returns (max relative error, list of problems)."""
    if c["softmax"] and c["mask"] == "none":
        return None, ["softmax with mask none: no Python counterpart (skipped)"]
    d = c["dims"]
    K, V, Hout, Hs = d["K"], d["V"], d["Hout"], d["Hs"]
    worst = 0.0
    scale_out = max([1.0] + [abs(num(x)) for x in c["out"]])
    for n in range(d["nseq"]):
        bos = c["cu_seqlens"][n]
        for h in range(Hout):
            total = None
            if c["linear"]:
                total, st = linear_head(R, c, n, h, True)
                s = head_map(h, Hout, Hs)
                sidx = n * Hs + s
                if h == s * (Hout // Hs):  # the first output head of this state compares the state
                    S, z, m = st
                    want = [x for row in S for x in row]
                    got = c["hT"][sidx * K * V:(sidx + 1) * K * V]
                    if z is not None:
                        want += list(z)
                        got += c["zT"][sidx * K:(sidx + 1) * K]
                    if m is not None:
                        want.append(m)
                        got.append(c["mT"][sidx])
                    sc = max([1.0] + [abs(x) for x in want])
                    for a, b in zip(got, want):
                        worst = max(worst, abs(num(a) - b) / sc)
            if c["softmax"]:
                smx = softmax_head(R, c, n, h)
                total = smx if total is None else [[a + b for a, b in zip(x, y)] for x, y in zip(total, smx)]
            for r, o in enumerate(total):
                got = c["out"][((bos + r) * Hout + h) * V:((bos + r) * Hout + h + 1) * V]
                for a, b in zip(got, o):
                    worst = max(worst, abs(num(a) - b) / scale_out)
    return worst, []


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    R = load_module(argv[1])
    tmp = None
    if argv[2] == "--run":
        if len(argv) != 4:
            print("--run takes the test_ref binary", file=sys.stderr)
            return 2
        tmp = tempfile.TemporaryDirectory()
        rc = subprocess.run([argv[3], "--dump", tmp.name]).returncode
        if rc != 0:
            print(f"{argv[3]} --dump failed ({rc})", file=sys.stderr)
            return 1
        files = sorted(glob.glob(os.path.join(tmp.name, "*.json")))
    else:
        files = argv[2:]
    if not files:
        print("no cases", file=sys.stderr)
        return 1
    failed = 0
    for path in files:
        with open(path) as fp:
            case = json.load(fp)
        worst, notes = check_case(R, case)
        name = case.get("name") or os.path.basename(path)
        if worst is None:
            print(f"skip {name}: {'; '.join(notes)}")
            continue
        ok = worst <= TOL
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: max rel diff {worst:.2e}")
    print(f"{len(files) - failed} agree, {failed} disagree")
    if tmp:
        tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
