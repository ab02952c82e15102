// tools/cuda_cpu/main.cpp: runs one spec's backward linear kernels of both schedules on the CPU
// (prelude.h) on the same random inputs and compares their role gradients and dh0: the sequential
// schedule's attnc_bwd_linear (fp32 on the CUDA cores, checked on the H200 against the float64
// backward) against the parallel schedule's four kernels.  A query, key or value role whose gradient the
// parallel chunk kernel writes straight into its tensor's (par_info's dq_tensor, dk_tensor, dv_tensor) is compared
// as that tensor's gradient after the adjoint ran, against the sequential schedule's.
// usage: cuda_cpu DESC SEED BOUND LEN1[,LEN2,...]
//   DESC: one line per tensor, "name dtype token|head heads len lo hi" (desc.sh writes it from `attnc ir`;
//         lo hi: the declared range, drawn uniformly, or "- -": standard normal)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "host_util.h"

static bool ok_adj = true;

// CUDA_CPU_INPUTS=PREFIX: named float32 arrays, PREFIX.txt ("name count" a line, in file order) over PREFIX.bin
// (bench/experiments/delta-rounding/export.c writes `attnc run --grad`'s draws for a seed this way, with their
// float64 gradients as "d" + name); empty where the files do not hold what the index says.
static std::map<std::string, std::vector<float>> read_arrays(const std::string &prefix)
{
    std::map<std::string, std::vector<float>> out;
    FILE *idx = std::fopen((prefix + ".txt").c_str(), "r"), *bin = std::fopen((prefix + ".bin").c_str(), "rb");
    char name[128];
    size_t n;
    bool ok = idx && bin;
    while (ok && std::fscanf(idx, "%127s %zu", name, &n) == 2) {
        std::vector<float> x(n);
        ok = std::fread(x.data(), sizeof(float), n, bin) == n;
        out[name] = std::move(x);
    }
    if (idx)
        std::fclose(idx);
    if (bin)
        std::fclose(bin);
    if (!ok)
        out.clear();
    return out;
}

// Overwrites dst (n elements of a bf16 / fp32 tensor's bytes, or floats) with the file's array `name`; false
// (with a message) where it is missing or of another size.
static bool take_array(const std::map<std::string, std::vector<float>> &arrays, const std::string &name, size_t n,
                       void *dst, int bytes)
{
    auto it = arrays.find(name);
    if (it == arrays.end() || it->second.size() != n) {
        std::fprintf(stderr, "CUDA_CPU_INPUTS: no array '%s' of %zu values\n", name.c_str(), n);
        return false;
    }
    for (size_t j = 0; j < n; j++) {
        if (bytes == 4) {
            std::memcpy((char *)dst + j * 4, &it->second[j], 4);
        } else {
            unsigned short b = host_to_bf16(it->second[j]);
            std::memcpy((char *)dst + j * 2, &b, 2);
        }
    }
    return true;
}


int main(int argc, char **argv)
{
    if (argc != 5) {
        std::fprintf(stderr, "usage: cuda_cpu DESC SEED BOUND LEN1[,LEN2,...]\n");
        return 2;
    }
    std::vector<host_tensor> ts = host_read_desc(argv[1]);
    unsigned seed = (unsigned)std::atoi(argv[2]);
    double bound = std::atof(argv[3]);
    std::vector<int> cu{0};
    for (char *s = std::strtok(argv[4], ","); s; s = std::strtok(nullptr, ","))
        cu.push_back(cu.back() + std::atoi(s));
    const int nseq = (int)cu.size() - 1, total = cu.back();
    unit_info si = seq_info(), pi = par_info();
    if (si.K != pi.K || si.V != pi.V || si.HOUT != pi.HOUT) {
        std::fprintf(stderr, "the two units disagree on the shape\n");
        return 2;
    }
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::uniform_real_distribution<float> ud(0.f, 1.f);
    host_args a;
    std::memset(&a, 0, sizeof a);
    // CUDA_CPU_SCALE=NAME:FACTOR scales one tensor (strong gates: dt:8)
    std::string scale_name;
    float scale = 1.f;
    if (const char *e = std::getenv("CUDA_CPU_SCALE")) {
        const char *c = std::strchr(e, ':');
        if (c)
            scale_name.assign(e, c), scale = (float)std::atof(c + 1);
    }
    for (size_t i = 0; i < ts.size(); i++) {
        host_tensor &t = ts[i];
        const float sc = t.name == scale_name ? scale : 1.f;
        size_t n = (t.token ? (size_t)total : 1) * t.heads * t.len, es = t.dtype == "fp32" ? 4 : 2;
        t.data.resize(n * es);
        for (size_t j = 0; j < n; j++) {
            float x = host_draw(t, rng, nd, ud) * sc;
            if (es == 4)
                std::memcpy(&t.data[j * 4], &x, 4);
            else {
                unsigned short b = host_to_bf16(x);
                std::memcpy(&t.data[j * 2], &b, 2);
            }
        }
        a.in[i] = t.data.data();
    }
    const unsigned H = si.HOUT, K = si.K, V = si.V, VO = si.VO, HS = si.HS;
    size_t nout = (size_t)total * H * VO;
    std::vector<unsigned char> dout(nout * (si.out_dtype == 2 ? 4 : 2));
    for (size_t j = 0; j < nout; j++) {
        float x = nd(rng);
        if (si.out_dtype == 2)
            std::memcpy(&dout[j * 4], &x, 4);
        else {
            unsigned short b = host_to_bf16(x);
            std::memcpy(&dout[j * 2], &b, 2);
        }
    }
    std::vector<float> h0((size_t)nseq * HS * K * VO), dhT(h0.size()), z0((size_t)nseq * HS * K), dzT(z0.size());
    for (auto &x : h0) x = 0.5f * nd(rng);
    for (auto &x : dhT) x = nd(rng);
    for (auto &x : z0) x = std::fabs(nd(rng)) * 0.5f + 0.5f;
    for (auto &x : dzT) x = nd(rng);
    std::map<std::string, std::vector<float>> given;
    if (const char *in = std::getenv("CUDA_CPU_INPUTS"); in && *in) {
        given = read_arrays(in);
        bool ok_in = !given.empty();
        for (size_t i = 0; ok_in && i < ts.size(); i++) {
            if (ts[i].dtype == "fp16") {
                std::fprintf(stderr, "CUDA_CPU_INPUTS: fp16 tensors are not read\n");
                ok_in = false;
            } else {
                size_t es = ts[i].dtype == "fp32" ? 4 : 2;
                ok_in = take_array(given, ts[i].name, ts[i].data.size() / es, ts[i].data.data(), (int)es);
            }
        }
        ok_in = ok_in && si.out_dtype == 0 && take_array(given, "dout", nout, dout.data(), 2) &&
                take_array(given, "h0", h0.size(), h0.data(), 4) && take_array(given, "dhT", dhT.size(), dhT.data(), 4);
        if (!ok_in) {
            std::fprintf(stderr, "CUDA_CPU_INPUTS: cannot take the inputs from %s.txt / .bin (bf16 output, the same shape)\n", in);
            return 2;
        }
    }
    a.dout = dout.data();
    a.h0 = h0.data(), a.dhT = dhT.data();
    if (V > VO)
        a.z0 = z0.data(), a.dzT = dzT.data();
    // sequences of one length run as a batch (no cu_seqlens, as `attnc run --batch`), others packed
    bool uniform = true;
    for (int n = 1; n < nseq; n++)
        uniform &= cu[n + 1] - cu[n] == cu[1] - cu[0];
    a.cu_seqlens = uniform ? nullptr : cu.data();
    a.seqlen = uniform ? cu[1] : 0;
    a.nseq = nseq, a.total = total;
    // the tensors whose gradient the parallel schedule writes directly (per-token tensors of every output
    // head's own), poisoned (NaN in every float format) so that one left unwritten shows
    std::vector<std::vector<unsigned char>> dbuf(ts.size());
    void *dir[64] = {};
    int dty[64] = {};
    for (size_t i = 0; i < ts.size(); i++)
        if (ts[i].token && ts[i].heads == H) {
            size_t n = (size_t)total * H * ts[i].len, es = ts[i].dtype == "fp32" ? 4 : 2;
            dbuf[i].assign(n * es, 0xff);
            dir[i] = dbuf[i].data();
            dty[i] = ts[i].dtype == "fp32" ? 2 : ts[i].dtype == "fp16" ? 1 : 0;
        }
    // the query, key and value roles whose gradient the chunk kernel writes into its tensor's (or -1)
    const int role_t[3] = {pi.dq_tensor, pi.dk_tensor, pi.dv_tensor};
    for (int r = 0; r < 3; r++)
        if (role_t[r] >= 0 && ((size_t)role_t[r] >= ts.size() || !dir[role_t[r]] || ts[role_t[r]].len != (r < 2 ? K : VO))) {
            std::fprintf(stderr, "the parallel unit writes role %d into tensor %d, not one written directly\n", r, role_t[r]);
            return 2;
        }
    struct outs {
        std::vector<float> dq, dk, dv, dg, dh0, dz0, db;
    } o[2];
    for (int s = 0; s < 2; s++) {
        o[s].dq.assign((size_t)total * H * K, NAN);
        // (with the compact dk the parallel unit's ws_dk as api/backward.c makes it: cuda_cpu.asan.* see overruns)
        o[s].dk.assign((size_t)total * H * (s == 1 && pi.dk16_floats ? pi.dk16_floats : K), NAN);
        // (the parallel unit's as large as api/backward.c makes it: with its 16-bit dU_hat, the adjoint's reads and
        // the walk's writes must stay in half the floats; cuda_cpu.asan.* build with AddressSanitizer to see it)
        o[s].dv.assign((size_t)total * H * V / (s == 1 && pi.duh16 ? 2 : 1), NAN);
        o[s].dg.assign((size_t)total * H * si.gk, NAN);
        o[s].dh0.assign((size_t)nseq * H * K * VO, NAN);
        o[s].dz0.assign((size_t)nseq * H * K, NAN);
        o[s].db.assign((size_t)total * H, NAN);
        host_args b = a;
        b.ws_dq = o[s].dq.data(), b.ws_dk = o[s].dk.data(), b.ws_dv = o[s].dv.data(), b.ws_dg = o[s].dg.data();
        b.ws_dh0 = o[s].dh0.data();
        b.ws_dz0 = V > VO ? o[s].dz0.data() : nullptr;
        b.ws_db = si.delta ? o[s].db.data() : nullptr;
        if (s == 0) {
            seq_run(b);
        } else {
            // as api/backward.c: no workspace for a role the chunk kernel writes into its tensor (a write
            // there would crash), the direct gradients given
            if (role_t[0] >= 0)
                b.ws_dq = nullptr;
            if (role_t[1] >= 0 && !si.delta)   // (the delta rule's: dk between its chunk kernel and adjoint)
                b.ws_dk = nullptr;
            if (role_t[2] >= 0 && !si.delta)   // (the delta rule's: dU_hat between its chunk kernel and adjoint)
                b.ws_dv = nullptr;
            for (size_t i = 0; i < ts.size(); i++)
                b.direct[i] = dir[i], b.direct_dtype[i] = dty[i];
            par_run(b);
        }
    }
    // the value DAG's adjoint from the same (sequential) role gradients: partials (sequential) against the
    // parallel schedule's direct writes in the tensor's dtype (per-token tensors of every output head's
    // own) and partials (the others)
    host_args b = a;
    b.ws_dq = o[0].dq.data(), b.ws_dk = o[0].dk.data(), b.ws_dv = o[0].dv.data(), b.ws_dg = o[0].dg.data();
    b.ws_db = si.delta ? o[0].db.data() : nullptr;
    std::vector<std::vector<float>> ps(ts.size()), pp(ts.size()), got(ts.size());
    float *pseq[64] = {}, *ppar[64] = {};
    for (size_t i = 0; i < ts.size(); i++) {
        size_t n = (size_t)total * H * ts[i].len;
        ps[i].assign(n, NAN);
        pseq[i] = ps[i].data();
        if (!dir[i]) {
            pp[i].assign(n, NAN);
            ppar[i] = pp[i].data();
        }
    }
    seq_inputs(b, pseq);
    par_inputs(b, ppar, dir, dty);
    double adj_err = 0;
    std::string adj_worst = "-";
    for (size_t i = 0; i < ts.size(); i++) {
        std::vector<float> &got_i = got[i];
        got_i.resize(ps[i].size());
        for (size_t j = 0; j < got_i.size(); j++) {
            if (!dir[i]) {
                got_i[j] = pp[i][j];
            } else if (dty[i] == 2) {
                std::memcpy(&got_i[j], &dbuf[i][j * 4], 4);
            } else {
                unsigned short h;
                std::memcpy(&h, &dbuf[i][j * 2], 2);
                got_i[j] = host_half_to_float(h, dty[i] == 1);
            }
        }
        if ((int)i == role_t[0] || (int)i == role_t[1] || (int)i == role_t[2])
            continue;   // the chunk kernel's, checked with the role gradients below
        double e = host_rel(got_i, ps[i], 1, 1);
        // a direct write in bf16 / fp16 carries its rounding: 2^-8 / 2^-11 relative at most
        double allow = !dir[i] || dty[i] == 2 ? 1e-6 : dty[i] == 1 ? 1e-3 : 4e-3;
        if (!(e <= allow))
            ok_adj = false;
        if (e / allow > adj_err) {
            adj_err = e / allow;
            adj_worst = ts[i].name + (dir[i] ? " (direct)" : " (partials)");
        }
    }
    // a role the chunk kernel wrote into its tensor: that tensor's gradient (what the adjoint left there) against
    // the sequential schedule's gradient of the tensor, under the role gradients' bound
    std::string rname[3];
    for (int q = 0; q < 3; q++)
        rname[q] = std::string(q == 0 ? "dq" : q == 1 ? "dk" : "dv") + (role_t[q] >= 0 ? "(" + ts[role_t[q]].name + ", direct)" : "");
    struct { const char *what; double err; } r[] = {
        {rname[0].c_str(), role_t[0] >= 0 ? host_rel(got[role_t[0]], ps[role_t[0]], 1, 1) : host_rel(o[1].dq, o[0].dq, K, K)},
        {rname[1].c_str(), role_t[1] >= 0 ? host_rel(got[role_t[1]], ps[role_t[1]], 1, 1) : host_rel(o[1].dk, o[0].dk, K, K)},
        {rname[2].c_str(), role_t[2] >= 0 ? host_rel(got[role_t[2]], ps[role_t[2]], 1, 1) : host_rel(o[1].dv, o[0].dv, V, VO)},
        {"dg", pi.dg ? host_rel(o[1].dg, o[0].dg, 1, 1) : 0.0},
        {"dh0", host_rel(o[1].dh0, o[0].dh0, 1, 1)},
        {"dz0", V > VO ? host_rel(o[1].dz0, o[0].dz0, 1, 1) : 0.0},
        {"db", si.delta ? host_rel(o[1].db, o[0].db, 1, 1) : 0.0},
    };
    // The value DAG's adjoint once more, from the parallel schedule's own role gradients (as api/backward.c runs
    // it): every tensor's partials but those written directly (CUDA_CPU_PARAMS and CUDA_CPU_DIGEST=2 below)
    auto par_own_partials = [&]() {
        host_args b2 = a;
        b2.ws_dq = role_t[0] >= 0 ? nullptr : o[1].dq.data(), b2.ws_dk = role_t[1] >= 0 && !si.delta ? nullptr : o[1].dk.data();
        b2.ws_dv = o[1].dv.data(), b2.ws_dg = o[1].dg.data();
        b2.ws_db = si.delta ? o[1].db.data() : nullptr;
        std::vector<std::vector<float>> pp2(ts.size());
        float *ppar2[64] = {};
        for (size_t i = 0; i < ts.size(); i++)
            if (!dir[i]) {
                pp2[i].assign((size_t)total * H * ts[i].len, NAN);
                ppar2[i] = pp2[i].data();
            }
        par_inputs(b2, ppar2, dir, dty);
        return pp2;
    };
    // CUDA_CPU_PARAMS=1: each per-head tensor's gradient (a parameter's: every token's partials summed) from the
    // parallel schedule's role gradients against the sequential's, as `attnc run --grad` compares them with
    // float64 (the Frobenius relative difference): the sums over every token that cancel (Gated DeltaNet's
    // dA_log) show the parallel kernels' roundings that the per-token comparisons above hide
    if (const char *pe = std::getenv("CUDA_CPU_PARAMS"); pe && *pe && *pe != '0') {
        const std::vector<std::vector<float>> pp3 = par_own_partials();
        for (size_t i = 0; i < ts.size(); i++) {
            if (ts[i].token || dir[i])
                continue;
            const size_t len = ts[i].len;
            std::vector<float> gs(H * len, 0.f), gp(H * len, 0.f);
            std::vector<double> ds(H * len, 0.0), dp(H * len, 0.0);
            for (size_t t = 0; t < (size_t)total; t++)
                for (size_t j = 0; j < H * len; j++)
                    ds[j] += ps[i][t * H * len + j], dp[j] += pp3[i][t * H * len + j];
            for (size_t j = 0; j < H * len; j++)
                gs[j] = (float)ds[j], gp[j] = (float)dp[j];
            std::printf("param %s: parallel vs sequential %.3e\n", ts[i].name.c_str(), host_rel(gp, gs, 1, 1));
            if (auto it = given.find("d" + ts[i].name); it != given.end() && it->second.size() == H * len)
                std::printf("param %s: parallel vs float64 %.3e, sequential vs float64 %.3e\n", ts[i].name.c_str(),
                            host_rel(gp, it->second, 1, 1), host_rel(gs, it->second, 1, 1));
            if (*pe == '2') {   // (and the sums themselves, to compare runs)
                for (int w = 0; w < 2; w++) {
                    std::printf("param-sums %s %s", ts[i].name.c_str(), w ? "parallel" : "sequential");
                    for (size_t j = 0; j < H * len; j++)
                        std::printf(" %.9e", w ? dp[j] : ds[j]);
                    std::printf("\n");
                }
            }
        }
    }
    bool ok = ok_adj;
    std::printf("adjoint: direct writes and partials against the sequential partials, worst %s at %.2f of its "
                "bound: %s\n", adj_worst.c_str(), adj_err, ok_adj ? "ok" : "FAIL");
    std::printf("parallel vs sequential schedule, %d sequences, %d tokens, %u heads, K %u V %u, chunk %u:", nseq, total, H,
                K, V, pi.chunk);
    for (auto &x : r) {
        std::printf(" %s %.3e", x.what, x.err);
        ok &= x.err <= bound;
    }
    std::printf(" (bound %.0e) %s\n", bound, ok ? "ok" : "FAIL");
    // CUDA_CPU_DIGEST=1: an FNV-1a digest of every bit the parallel schedule produced, to compare two builds
    // bit for bit (a change meant to give the same results); 2: of the tensors' gradients the parallel
    // schedule gives the caller (the adjoint run once more, from its own role gradients) and dh0, for a change
    // that moves a role's gradient from the adjoint into the chunk kernel
    if (const char *dg = std::getenv("CUDA_CPU_DIGEST"); dg && *dg && *dg != '0') {
        unsigned long long hsh = 1469598103934665603ull;
        auto mix_bytes = [&hsh](const void *p, size_t n) {
            const unsigned char *b = static_cast<const unsigned char *>(p);
            for (size_t j = 0; j < n; j++)
                hsh = (hsh ^ b[j]) * 1099511628211ull;
        };
        auto mix = [&mix_bytes](const std::vector<float> &x) { mix_bytes(x.data(), x.size() * sizeof(float)); };
        if (*dg == '2') {
            const std::vector<std::vector<float>> pp2 = par_own_partials();
            for (size_t i = 0; i < ts.size(); i++) {
                if (dir[i])
                    mix_bytes(dbuf[i].data(), dbuf[i].size());
                else
                    mix(pp2[i]);
            }
            mix(o[1].dh0);
        } else {
            for (const auto &x : got)
                mix(x);
            for (const auto *x : {&o[1].dq, &o[1].dk, &o[1].dv, &o[1].dg, &o[1].dh0, &o[1].dz0, &o[1].db})
                mix(*x);
        }
        std::printf("digest %016llx\n", hsh);
    }
    // CUDA_CPU_UNWANTED=1: the parallel run once more with the gradients of the chunk kernel's tensors not
    // wanted (direct null, as api/backward.c passes them) and still no role workspace: the chunk kernel must
    // write nothing (a write through either null pointer crashes the run), and the other outputs must come
    // out bit for bit as before (every sum has a fixed order)
    const char *unw = std::getenv("CUDA_CPU_UNWANTED");
    if (unw && *unw && *unw != '0') {
        if (role_t[0] < 0 && role_t[1] < 0 && role_t[2] < 0) {
            std::printf("unwanted: no role is written into its tensor by this unit: FAIL\n");
            return 1;
        }
        outs u;
        u.dv.assign(o[1].dv.size(), NAN);
        u.dg.assign(o[1].dg.size(), NAN);
        u.dh0.assign(o[1].dh0.size(), NAN);
        u.dz0.assign(o[1].dz0.size(), NAN);
        u.db.assign(o[1].db.size(), NAN);
        host_args c = a;
        c.ws_dq = role_t[0] >= 0 ? nullptr : o[1].dq.data();
        c.ws_dk = role_t[1] >= 0 && !si.delta ? nullptr : o[1].dk.data();
        c.ws_dv = role_t[2] >= 0 && !si.delta ? nullptr : u.dv.data();
        c.ws_dg = u.dg.data(), c.ws_dh0 = u.dh0.data();
        c.ws_dz0 = V > VO ? u.dz0.data() : nullptr;
        c.ws_db = si.delta ? u.db.data() : nullptr;
        for (size_t i = 0; i < ts.size(); i++)
            c.direct[i] = (int)i == role_t[0] || (int)i == role_t[1] || (int)i == role_t[2] ? nullptr : dir[i], c.direct_dtype[i] = dty[i];
        par_run(c);
        auto same = [](const std::vector<float> &x, const std::vector<float> &y) {
            return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
        };
        const bool same_rest = same(u.dv, o[1].dv) && (!pi.dg || same(u.dg, o[1].dg)) && same(u.dh0, o[1].dh0) &&
                               (V <= VO || same(u.dz0, o[1].dz0));
        std::printf("unwanted: the chunk kernel's tensors not wanted: nothing written, dv dg dh0 dz0 %s\n",
                    same_rest ? "as before: ok" : "differ: FAIL");
        ok &= same_rest;
    }
    return ok ? 0 : 1;
}
