// tools/cuda_cpu/unit_par.cpp: the parallel schedule's kernels of the prepared unit par.h, launched as
// api/backward.c launches them.
#include "prelude.h"
#include "harness.h"
#include "par.h"

#if ATTNC_BP_NL2
// The forward's saved l2norm factors' stand-in (CUDA_CPU_SAVED): a warp per (token, output head) forms them from
// the inputs with the unit's attnc_bwd_l2_factors, into p.l2f [total][HOUT][ATTNC_BP_NL2]; par_run's, which
// par_inputs' adjoint reads too.
static std::vector<float> saved_l2f;
static void cpu_l2_factors(par::attnc_bwd_params p)
{
    const int lane = threadIdx.x & 31, row = (int)blockIdx.x * 8 + (threadIdx.x >> 5);
    if (row < p.total * ATTNC_HOUT)
        par::attnc_bwd_l2_factors(p, row / ATTNC_HOUT, row % ATTNC_HOUT, lane, const_cast<float *>(p.l2f) + (size_t)row * ATTNC_BP_NL2);
}
#endif

unit_info par_info()
{
    return {ATTNC_B_K, ATTNC_B_V, ATTNC_B_VO, ATTNC_HOUT, ATTNC_HS, ATTNC_OUT_DTYPE, ATTNC_BP_C, ATTNC_B_GK,
            ATTNC_BP_DG != 0, ATTNC_B_NORM != 0, ATTNC_BP_DQ_TENSOR, ATTNC_BP_DK_TENSOR, ATTNC_BP_DV_TENSOR,
            ATTNC_BP_DELTA != 0, ATTNC_BD_DUH16 != 0, ATTNC_BD_DK16 ? ATTNC_BP_KP * 9 / 16 : 0};
}

void par_run(const host_args &a)
{
    par::attnc_bwd_params p;
    std::memset(&p, 0, sizeof p);
    for (int i = 0; i < 64; i++)
        p.in[i] = a.in[i];
    p.dout = a.dout;
    p.h0 = a.h0, p.dhT = a.dhT, p.z0 = a.z0, p.dzT = a.dzT;
    p.cu_seqlens = a.cu_seqlens, p.seqlen = a.seqlen, p.nseq = a.nseq, p.total = a.total;
    p.ws_dq = a.ws_dq, p.ws_dk = a.ws_dk, p.ws_dv = a.ws_dv, p.ws_dg = a.ws_dg, p.ws_dh0 = a.ws_dh0, p.ws_dz0 = a.ws_dz0;
    p.ws_db = a.ws_db;
    for (int i = 0; i < 64; i++)
        p.direct[i] = a.direct[i], p.direct_dtype[i] = a.direct_dtype[i];
    unsigned slots = (unsigned)(a.total / ATTNC_BP_C + a.nseq + 1);
#if ATTNC_BP_NL2
    // CUDA_CPU_SAVED=1: every kernel reads the l2norm factors the forward saved (p.l2f, here formed first by
    // cpu_l2_factors) rather than forming them
    if (std::getenv("CUDA_CPU_SAVED")) {
        saved_l2f.assign((size_t)a.total * ATTNC_HOUT * ATTNC_BP_NL2, 0.f);
        std::memset(saved_l2f.data(), 0xff, saved_l2f.size() * sizeof(float));
        p.l2f = saved_l2f.data();
        cpu_launch(cpu_l2_factors, dim3c{(unsigned)(a.total * ATTNC_HOUT + 7) / 8, 1, 1}, 256, 0, p);
        std::printf("saved states: the l2norm factors of %d tokens\n", a.total);
    }
#endif
    size_t img = (size_t)slots * ATTNC_HOUT * ATTNC_BP_IMG_BYTES;   // bytes
    std::vector<float> sin(img / 4), dso(img / 4);
    std::vector<float> ws_do((size_t)a.total * ATTNC_HOUT * ATTNC_B_V);
    // the workspaces poisoned (NaN in every float format), as the device's would hold stale bytes: a slot
    // read before it is written shows in the results
    std::memset(sin.data(), 0xff, img);
    std::memset(dso.data(), 0xff, img);
    std::memset(ws_do.data(), 0xff, ws_do.size() * sizeof(float));
    p.ws_sin = sin.data();
    p.ws_dso = dso.data();
    p.ws_do = ws_do.data();
    dim3c gw{(unsigned)a.nseq, ATTNC_HOUT, ATTNC_BP_VP / ATTNC_BP_VS}, gc{slots, ATTNC_HOUT, 1};
#if ATTNC_BP_DELTA
    // W and U (then U_hat) of every chunk, poisoned too
    std::vector<par::elt> ws_w((size_t)slots * ATTNC_HOUT * ATTNC_BP_C * ATTNC_BP_KP), ws_u((size_t)slots * ATTNC_HOUT * ATTNC_BP_C * ATTNC_BP_VP);
    std::memset(ws_w.data(), 0xff, ws_w.size() * sizeof(par::elt));
    std::memset(ws_u.data(), 0xff, ws_u.size() * sizeof(par::elt));
    p.ws_w = ws_w.data();
    p.ws_u = ws_u.data();
    // and T (hi, and lo with remainder tiles), from attnc_bwdp_wy to the adjoint
    std::vector<par::elt> ws_t((size_t)slots * ATTNC_HOUT * ATTNC_BD_T_TILES * ATTNC_BP_C * ATTNC_BP_C);
    std::memset(ws_t.data(), 0xff, ws_t.size() * sizeof(par::elt));
    p.ws_t = ws_t.data();
    cpu_launch(par::attnc_bwdp_wy, gc, 256, par::attnc_bd_wy_layout::bytes, p);
#if ATTNC_BP_VS != ATTNC_BP_VW
    // CUDA_CPU_NARROW=1: the walks of narrow V slices (api/backward.c's walks_split)
    if (std::getenv("CUDA_CPU_NARROW")) {
        std::printf("narrow walks: %d slices of %d columns\n", ATTNC_BP_VP / ATTNC_BP_VS, ATTNC_BP_VS);
        dim3c gn{(unsigned)a.nseq, ATTNC_HOUT, ATTNC_BP_VP / ATTNC_BP_VS};
        cpu_launch(par::attnc_bwdp_states_narrow, gn, 256, par::attnc_bd_walk_layout::bytes, p);
#if ATTNC_BD_WALK_WS
        // CUDA_CPU_NARROW=ws: the reverse walk with its warps specialised (attnc_bwdp_dstates_ws, as api/backward.c
        // takes it on sm_90a) after the narrow one from the same inputs: its dS_out images, dU_hat rows and dh0
        // must be the narrow walk's bit for bit; the gradients below come from its own
        if (std::strcmp(std::getenv("CUDA_CPU_NARROW"), "ws") == 0) {
            const size_t dv_bytes = (size_t)a.total * ATTNC_HOUT * ATTNC_B_V * (ATTNC_BD_DUH16 ? 2 : 4);
            const size_t dh0_bytes = a.ws_dh0 ? (size_t)a.nseq * ATTNC_HOUT * ATTNC_B_K * ATTNC_B_VO * 4 : 0;
            const auto bytes_of = [](const void *x, size_t n) {
                return std::vector<unsigned char>((const unsigned char *)x, (const unsigned char *)x + n);
            };
            const std::vector<float> dso0 = dso;
            const auto dv0 = bytes_of(a.ws_dv, dv_bytes), dh00 = bytes_of(a.ws_dh0, dh0_bytes);
            cpu_launch(par::attnc_bwdp_dstates_narrow, gn, 256, par::attnc_bd_walk_layout::bytes, p);
            const std::vector<float> dso1 = dso;
            const auto dv1 = bytes_of(a.ws_dv, dv_bytes), dh01 = bytes_of(a.ws_dh0, dh0_bytes);
            std::memcpy(dso.data(), dso0.data(), img);
            std::memcpy(a.ws_dv, dv0.data(), dv_bytes);
            if (dh0_bytes)
                std::memcpy(a.ws_dh0, dh00.data(), dh0_bytes);
            cpu_launch(par::attnc_bwdp_dstates_ws, gn, 512, par::attnc_bd_walk_ws_layout::bytes, p);
            const bool same = std::memcmp(dso.data(), dso1.data(), img) == 0 &&
                              std::memcmp(a.ws_dv, dv1.data(), dv_bytes) == 0 &&
                              (!dh0_bytes || std::memcmp(a.ws_dh0, dh01.data(), dh0_bytes) == 0);
            std::printf("warp-specialised reverse walk: %s the narrow walk's\n",
                        same ? "the same bits as" : "bits differ from");
            if (!same)
                std::exit(1);
        } else
#else
        if (std::strcmp(std::getenv("CUDA_CPU_NARROW"), "ws") == 0) {   // (a check that cannot run is no pass)
            std::printf("CUDA_CPU_NARROW=ws: the plan has no warp-specialised reverse walk\n");
            std::exit(1);
        }
#endif
        cpu_launch(par::attnc_bwdp_dstates_narrow, gn, 256, par::attnc_bd_walk_layout::bytes, p);
    } else
#endif
    {
        gw.z = ATTNC_BP_VP / ATTNC_BP_VW;
        cpu_launch(par::attnc_bwdp_states, gw, 256, par::attnc_bd_walk_layout::bytes, p);
#if !ATTNC_BP_MIMG
        // CUDA_CPU_SAVED=1: the forward's saved states' path (api/backward.c's bd_uhat_saved).  ws_u then holds the
        // forward's U_hat rows, here the walk's, which stand for them (every token's own values), with the rows
        // past each sequence's end left poisoned as the forward leaves them; attnc_bwdp_wy, run again over
        // poisoned W and T, forms no U: its W and T must be the first run's bit for bit and ws_u untouched, and the
        // gradients below come from the chunk kernel reading those rows (as zeros past the end).
        if (std::getenv("CUDA_CPU_SAVED")) {
            for (int n = 0; n < a.nseq; n++) {
                const int bos = a.cu_seqlens ? a.cu_seqlens[n] : n * a.seqlen;
                const int eos = a.cu_seqlens ? a.cu_seqlens[n + 1] : bos + a.seqlen;
                for (int c0 = bos; c0 < eos; c0 += ATTNC_BP_C)
                    for (unsigned h = 0; h < ATTNC_HOUT; h++)
                        for (int r = eos - c0; r < ATTNC_BP_C; r++)
                            std::memset(&ws_u[(((size_t)(c0 / ATTNC_BP_C + n) * ATTNC_HOUT + h) * ATTNC_BP_C + r) * ATTNC_BP_VP],
                                        0xff, ATTNC_BP_VP * sizeof(par::elt));
            }
            const std::vector<par::elt> w0 = ws_w, t0 = ws_t, u0 = ws_u;
            std::memset(ws_w.data(), 0xff, ws_w.size() * sizeof(par::elt));
            std::memset(ws_t.data(), 0xff, ws_t.size() * sizeof(par::elt));
            p.bd_uhat_saved = 1;   // (with the compact layout's bytes, as api/backward.c launches it)
            cpu_launch(par::attnc_bwdp_wy, gc, 256, par::attnc_bd_wy_saved_layout::bytes, p);
            const auto differ = [](const std::vector<par::elt> &x, const std::vector<par::elt> &y) {
                size_t d = 0;
                for (size_t i = 0; i < x.size(); i++)
                    d += std::memcmp(&x[i], &y[i], sizeof(par::elt)) != 0;
                return d;
            };
            const size_t dw = differ(ws_w, w0), dt = differ(ws_t, t0), du = differ(ws_u, u0);
            std::printf("saved states: attnc_bwdp_wy without U: %zu of W's, %zu of T's elements differ, %zu of U_hat's "
                        "written\n", dw, dt, du);
            if (dw || dt || du)
                std::exit(1);
        }
#endif
        cpu_launch(par::attnc_bwdp_dstates, gw, 256, par::attnc_bd_walk_layout::bytes, p);
    }
    cpu_launch(par::attnc_bwdp_chunk, gc, par::attnc_bp_chunk_threads, par::attnc_bp_chunk_bytes, p);
    cpu_launch(par::attnc_bwdp_wy_adjoint, gc, par::attnc_bd_adj_threads, par::attnc_bd_adj_layout::bytes, p);
#else
    // CUDA_CPU_RUN=R: the scanned walks (runs of R slots, then attnc_bwdp_scan_*), as api/backward.c's scan_run
    const char *run_env = std::getenv("CUDA_CPU_RUN");
    const int run = run_env ? std::atoi(run_env) : 0;
    std::vector<float> decay((size_t)slots * ATTNC_HOUT * ATTNC_B_GK);
    std::memset(decay.data(), 0xff, decay.size() * sizeof(float));
    dim3c gr{(slots + run - 1) / (run > 0 ? run : 1), ATTNC_HOUT, ATTNC_BP_VP / ATTNC_BP_VS};
    dim3c gs{(unsigned)a.nseq, ATTNC_HOUT, (ATTNC_BP_KP + ATTNC_BP_SCAN_ROWS - 1) / ATTNC_BP_SCAN_ROWS};
    if (run > 0) {
        p.bp_run = run;
        p.ws_decay = decay.data();
        std::printf("scanned walks: runs of %d slots\n", run);
    }
#if ATTNC_BP_RUN2   // the products' own kernels (the same code at two CTAs an SM), as api/backward.c takes them
    auto *states = run > 0 ? par::attnc_bwdp_states_run : par::attnc_bwdp_states;
    auto *dstates = run > 0 ? par::attnc_bwdp_dstates_run : par::attnc_bwdp_dstates;
#else
    auto *states = par::attnc_bwdp_states;
    auto *dstates = par::attnc_bwdp_dstates;
#endif
    cpu_launch(states, run > 0 ? gr : gw, 256, par::attnc_bp_walk_layout::bytes, p);
    if (run > 0)
        cpu_launch(par::attnc_bwdp_scan_states, gs, 256, 0, p);
#if ATTNC_B_NORM != 0
    cpu_launch(par::attnc_bwdp_rows, gc, 256, par::attnc_bp_chunk_layout::bytes, p);
#endif
    cpu_launch(dstates, run > 0 ? gr : gw, 256, par::attnc_bp_walk_layout::bytes, p);
    if (run > 0)
        cpu_launch(par::attnc_bwdp_scan_dstates, gs, 256, 0, p);
    cpu_launch(par::attnc_bwdp_chunk, gc, par::attnc_bp_chunk_threads, par::attnc_bp_chunk_bytes, p);
#endif
}

void par_inputs(const host_args &a, float *const *part, void *const *direct, const int *dtype)
{
    par::attnc_bwd_params p;
    std::memset(&p, 0, sizeof p);
    for (int i = 0; i < 64; i++)
        p.in[i] = a.in[i], p.part[i] = part[i], p.direct[i] = direct[i], p.direct_dtype[i] = dtype[i];
    p.dout = a.dout;
    p.cu_seqlens = a.cu_seqlens, p.seqlen = a.seqlen, p.nseq = a.nseq, p.total = a.total;
    p.ws_dq = a.ws_dq, p.ws_dk = a.ws_dk, p.ws_dv = a.ws_dv, p.ws_dg = a.ws_dg, p.ws_db = a.ws_db;
#if ATTNC_BP_NL2
    if (!saved_l2f.empty())   // (CUDA_CPU_SAVED: par_run formed them)
        p.l2f = saved_l2f.data();
#endif
    // a warp per (token, output head), or a thread (ATTNC_B_ADJ_SCALAR), as api/backward.c launches it
    unsigned rows = (unsigned)a.total * ATTNC_HOUT, per_cta = ATTNC_B_ADJ_SCALAR ? 256 : 8;
    cpu_launch(par::attnc_bwd_inputs, dim3c{(rows + per_cta - 1) / per_cta, 1, 1}, 256, 0, p);
}
