// tools/cuda_cpu/fwd_main.cpp: runs two generated forwards of one spec (units fa and fb, prelude.h) on the
// same random inputs and compares their outputs and final states: a kernel change checked against a
// build that ran on the GPU, where no GPU is at hand.
// usage: fwd_cpu DESC SEED BOUND LEN1[,LEN2,...]
//   FWD_CPU_B_SCHEDULE=materialized runs unit B's materialized schedule (lengths all equal), and
//   FWD_CPU_B_SCHEDULE=grouped:G its grouped schedule with G chunks per group: with one build on both
//   sides, two schedules of one kernel checked against each other; FWD_CPU_A_SCHEDULE=materialized runs unit
//   A's materialized schedule too.
//   DESC: one line per tensor, "name dtype token|head heads len lo hi" (desc.sh writes it from `attnc ir`;
//         lo hi: the declared range, drawn uniformly, or "- -": standard normal)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fwd_harness.h"
#include "host_util.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        std::fprintf(stderr, "usage: fwd_cpu DESC SEED BOUND LEN1[,LEN2,...]\n");
        return 2;
    }
    std::vector<host_tensor> ts = host_read_desc(argv[1]);
    unsigned seed = (unsigned)std::atoi(argv[2]);
    double bound = std::atof(argv[3]);
    std::vector<int> cu{0};
    for (char *s = std::strtok(argv[4], ","); s; s = std::strtok(nullptr, ","))
        cu.push_back(cu.back() + std::atoi(s));
    const int nseq = (int)cu.size() - 1, total = cu.back();
    fwd_info ia = fwd_a_info(), ib = fwd_b_info();
    if (ia.K != ib.K || ia.V != ib.V || ia.HOUT != ib.HOUT || ia.out_dtype != ib.out_dtype) {
        std::fprintf(stderr, "the two units disagree on the shape\n");
        return 2;
    }
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::uniform_real_distribution<float> ud(0.f, 1.f);
    fwd_args a;
    std::memset(&a, 0, sizeof a);
    for (size_t i = 0; i < ts.size(); i++) {
        host_tensor &t = ts[i];
        size_t n = (t.token ? (size_t)total : 1) * t.heads * t.len, es = t.dtype == "fp32" ? 4 : 2;
        t.data.resize(n * es);
        for (size_t j = 0; j < n; j++) {
            float x = host_draw(t, rng, nd, ud);
            if (es == 4)
                std::memcpy(&t.data[j * 4], &x, 4);
            else {
                unsigned short b = host_to_bf16(x);   // (fp16 inputs take the same bits: any finite values do)
                std::memcpy(&t.data[j * 2], &b, 2);
            }
        }
        a.in[i] = t.data.data();
    }
    const unsigned H = ia.HOUT, K = ia.K, V = ia.V, HS = ia.HS;
    std::vector<float> h0((size_t)nseq * HS * K * V), z0((size_t)nseq * HS * K), m0((size_t)nseq * HS);
    for (auto &x : h0) x = 0.5f * nd(rng);
    for (auto &x : z0) x = std::fabs(nd(rng)) * 0.5f + 0.5f;
    for (auto &x : m0) x = 0.5f * nd(rng);
    if (ia.state_in) {
        a.h0 = h0.data();
        if (ia.has_z)
            a.z0 = z0.data();
        if (ia.has_m)
            a.m0 = m0.data();
    }
    bool uniform = true;
    for (int n = 1; n < nseq; n++)
        uniform &= cu[n + 1] - cu[n] == cu[1] - cu[0];
    const char *sched = std::getenv("FWD_CPU_B_SCHEDULE");
    const bool mat = sched && std::strcmp(sched, "materialized") == 0;
    const int grp = sched && std::strncmp(sched, "grouped:", 8) == 0 ? std::atoi(sched + 8) : 0;
    if (sched && *sched && !mat && grp <= 0) {
        std::fprintf(stderr, "FWD_CPU_B_SCHEDULE is '%s': materialized or grouped:G (G > 0)\n", sched);
        return 2;
    }
    // FWD_CPU_A_SCHEDULE=materialized: unit A's materialized schedule too (a change to that schedule against
    // the same schedule of another build).
    const char *sched_a = std::getenv("FWD_CPU_A_SCHEDULE");
    const bool mat_a = sched_a && std::strcmp(sched_a, "materialized") == 0;
    if (sched_a && *sched_a && !mat_a) {
        std::fprintf(stderr, "FWD_CPU_A_SCHEDULE is '%s': materialized or nothing\n", sched_a);
        return 2;
    }
    if ((mat || mat_a || grp) && !uniform) {
        std::fprintf(stderr, "the %s schedule takes sequences of one length\n", mat ? "materialized" : "grouped");
        return 2;
    }
    a.cu_seqlens = uniform ? nullptr : cu.data();
    a.seqlen = uniform ? cu[1] : 0;
    a.nseq = nseq;
    const size_t nout = (size_t)total * H * V, es_out = ia.out_dtype == 2 ? 4 : 2;
    std::vector<float> out[2], hT[2];
    for (int u = 0; u < 2; u++) {
        std::vector<unsigned char> o(nout * es_out, 0xff);   // NaN bytes: every output must be written
        std::vector<float> h(h0.size(), NAN), z(z0.size(), NAN), m(m0.size(), NAN);
        a.out = o.data();
        if (ia.state_out) {
            a.hT = h.data();
            a.zT = ia.has_z ? z.data() : nullptr;
            a.mT = ia.has_m ? m.data() : nullptr;
        }
        if (u == 0)
            (mat_a ? fwd_a_run_mat : fwd_a_run)(a);
        else if (grp)
            fwd_b_run_grp(a, grp);
        else
            (mat ? fwd_b_run_mat : fwd_b_run)(a);
        out[u].resize(nout);
        for (size_t j = 0; j < nout; j++) {
            if (es_out == 4)
                std::memcpy(&out[u][j], &o[j * 4], 4);
            else {
                unsigned short b;
                std::memcpy(&b, &o[j * 2], 2);
                out[u][j] = host_half_to_float(b, ia.out_dtype == 1);
            }
        }
        if (ia.state_out)
            hT[u] = h;
    }
    double eo = host_rel(out[1], out[0], 1, 1), eh = ia.state_out ? host_rel(hT[1], hT[0], 1, 1) : 0.0, norm = 0;
    for (float x : out[0])
        norm += std::isfinite(x) ? (double)x * x : 0.0;
    norm = std::sqrt(norm);
    std::printf("out rel diff %.3e (norm %.3e), final state rel diff %.3e (bound %.1e, %d tokens in %d sequences)\n",
                eo, norm, eh, bound, total, nseq);
    return eo <= bound && eh <= bound && norm > 0 ? 0 : 1;   // (an all-zero output would agree trivially)
}
