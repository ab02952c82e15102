// tools/cuda_cpu/fwd_unit.cpp: the chunk kernel (attnc_linear, sequential schedule) of one prepared
// forward unit; built twice (fwd_run.sh): UNIT_NS is the unit's namespace (fa, fb), UNIT_HDR its header,
// UNIT_INFO, UNIT_RUN, UNIT_RUN_MAT and UNIT_RUN_GRP the entry points fwd_harness.h declares.
#include "prelude.h"
#include "fwd_harness.h"
#include UNIT_HDR

// The parameter block's tensors, states and lengths; phase 0, no workspace.
static UNIT_NS::attnc_params params_of(const fwd_args &a)
{
    UNIT_NS::attnc_params p;
    std::memset(&p, 0, sizeof p);
    for (size_t i = 0; i < sizeof p.in / sizeof p.in[0]; i++)
        p.in[i] = a.in[i];
    p.out = a.out;
    p.h0 = a.h0, p.z0 = a.z0, p.m0 = a.m0, p.hT = a.hT, p.zT = a.zT, p.mT = a.mT;
    p.cu_seqlens = a.cu_seqlens, p.seqlen = a.seqlen, p.nseq = a.nseq;
    return p;
}

// FWD_CPU_SAVE=S, unit B only (UNIT_IS_B): the walk also saves its chunk states for a backward of chunks of 2^S
// tokens (p.save_img, NaN bytes first: api/kernel.c's saved states), which must leave its outputs as unit A's
// (the same build, not saving); after the run every slot that starts one of those chunks must be written
// whole: no bf16 NaN left in a bf16 image, no NaN scale in a mantissa image (whose mantissas take every value).
// The delta rule saves every token's U_hat row after the images (p.save_uh, [slot][HOUT][2^S][V]): each row of
// a token must be written whole, and no row past a sequence's end.  The l2norm factors follow (p.save_l2,
// [token][HOUT][ATTNC_SAVE_NL2] floats): each token's must be written, a positive finite number.
#ifndef ATTNC_SAVE_NL2
#define ATTNC_SAVE_NL2 0   // (a unit from an older build)
#endif
struct saved_states {
    std::vector<unsigned char> buf;
    int shift = -1;
    size_t images = 0;   // the images' bytes: U_hat's rows from there
    size_t l2 = 0;       // where the l2norm factors begin
};

static void save_begin(UNIT_NS::attnc_params &p, const fwd_args &a, saved_states &s)
{
    const char *e = std::getenv("FWD_CPU_SAVE");
    if (!UNIT_IS_B || !e)
        return;
#if defined(ATTNC_SAVES) && ATTNC_SAVES
    s.shift = std::atoi(e);
    const int total = a.cu_seqlens ? a.cu_seqlens[a.nseq] : a.seqlen * a.nseq;
    const size_t slots = (size_t)(total >> s.shift) + a.nseq + 1;
    s.images = slots * ATTNC_HOUT * UNIT_NS::SAVE_IMG_BYTES;
    const size_t uhat = ATTNC_DELTA ? (slots * ATTNC_HOUT << s.shift) * ATTNC_V * sizeof(UNIT_NS::elt) : 0;
    s.l2 = s.images + uhat;
    s.buf.assign(s.l2 + (size_t)total * ATTNC_HOUT * ATTNC_SAVE_NL2 * 4, 0xff);
    p.save_img = s.buf.data();
    p.save_shift = s.shift;
    if (uhat)
        p.save_uh = reinterpret_cast<UNIT_NS::elt *>(s.buf.data() + s.images);
#if ATTNC_SAVE_NL2
    p.save_l2 = reinterpret_cast<float *>(s.buf.data() + s.l2);
#endif
#else
    (void)p, (void)a, (void)s;
    std::fprintf(stderr, "FWD_CPU_SAVE: this unit saves no states (ATTNC_SAVES 0)\n");
    std::exit(1);
#endif
}

// The saved image of the backward's chunk from token c0 of sequence n, output head h (the kernels' slot).
[[maybe_unused]] static const unsigned char *saved_image(const saved_states &s, int c0, int n, unsigned h)
{
    return s.buf.data() + ((size_t)((c0 >> s.shift) + n) * ATTNC_HOUT + h) * UNIT_NS::SAVE_IMG_BYTES;
}

// The saved U_hat row r of that chunk (the delta rule)
[[maybe_unused]] static const unsigned char *saved_uhat_row(const saved_states &s, int c0, int n, unsigned h, int r)
{
    return s.buf.data() + s.images +
           ((((size_t)((c0 >> s.shift) + n) * ATTNC_HOUT + h) << s.shift) + r) * ATTNC_V * sizeof(UNIT_NS::elt);
}

static void save_end(const fwd_args &a, const saved_states &s)
{
#if defined(ATTNC_SAVES) && ATTNC_SAVES
    if (s.shift < 0)
        return;
    size_t holes = 0, images = 0;
    for (int n = 0; n < a.nseq; n++) {
        const int bos = a.cu_seqlens ? a.cu_seqlens[n] : n * a.seqlen, eos = a.cu_seqlens ? a.cu_seqlens[n + 1] : bos + a.seqlen;
        for (int c0 = bos; c0 < eos; c0 += 1 << s.shift)
            for (unsigned h = 0; h < ATTNC_HOUT; h++) {
                const unsigned char *img = saved_image(s, c0, n, h);
                images++;
                if (ATTNC_SAVES == 1) {
                    for (size_t i = 0; i < (size_t)ATTNC_KP * ATTNC_V; i++)
                        holes += img[2 * i] == 0xff && img[2 * i + 1] == 0xff;
                } else {
                    for (size_t i = 0; i < (size_t)ATTNC_KP * UNIT_NS::SAVE_NSL; i++) {
                        float x;
                        std::memcpy(&x, img + (size_t)ATTNC_KP * ATTNC_V * 2 + 4 * i, 4);
                        holes += x != x;
                    }
                }
            }
    }
    std::printf("saved states: %zu images of chunks of %d tokens, %zu elements or scales left unwritten\n", images,
                1 << s.shift, holes);
    if (holes)
        std::exit(1);
    if (ATTNC_DELTA) {   // U_hat: a row per token written, none past the end (bf16 NaN bytes there still)
        size_t unwritten = 0, beyond = 0;
        for (int n = 0; n < a.nseq; n++) {
            const int bos = a.cu_seqlens ? a.cu_seqlens[n] : n * a.seqlen, eos = a.cu_seqlens ? a.cu_seqlens[n + 1] : bos + a.seqlen;
            for (int c0 = bos; c0 < eos; c0 += 1 << s.shift)
                for (unsigned h = 0; h < ATTNC_HOUT; h++)
                    for (int r = 0; r < 1 << s.shift; r++) {
                        const unsigned char *row = saved_uhat_row(s, c0, n, h, r);
                        size_t nan = 0;
                        for (int v = 0; v < ATTNC_V; v++)
                            nan += row[2 * v] == 0xff && row[2 * v + 1] == 0xff;
                        (c0 + r < eos ? unwritten : beyond) += c0 + r < eos ? nan : ATTNC_V - nan;
                    }
        }
        std::printf("saved states: U_hat, %zu elements of the tokens' rows unwritten, %zu written past the ends\n",
                    unwritten, beyond);
        if (unwritten || beyond)
            std::exit(1);
    }
    if (ATTNC_SAVE_NL2) {   // the l2norm factors: every token's, positive and finite (NaN bytes where unwritten)
        size_t bad = 0;
        for (size_t at = s.l2; at < s.buf.size(); at += 4) {   // (they end the buffer)
            float x;
            std::memcpy(&x, s.buf.data() + at, 4);
            bad += !(x > 0.f && x < INFINITY);
        }
        std::printf("saved states: %d l2norm factors per token, %zu unwritten or not a positive number\n", ATTNC_SAVE_NL2, bad);
        if (bad)
            std::exit(1);
    }
#else
    (void)a, (void)s;
#endif
}

fwd_info UNIT_INFO()
{
    return {ATTNC_K, ATTNC_V, ATTNC_HOUT, ATTNC_HS, ATTNC_OUT_DTYPE, ATTNC_STATE_IN != 0, ATTNC_STATE_OUT != 0,
            ATTNC_NORM == UNIT_NS::NORM_DENOM || ATTNC_NORM == UNIT_NS::NORM_MAXFLOOR, ATTNC_NORM == UNIT_NS::NORM_MAXFLOOR};
}

void UNIT_RUN(const fwd_args &a)
{
    UNIT_NS::attnc_params p = params_of(a);
#if defined(ATTNC_WS) && ATTNC_WS   // the warp-specialised walk (fwd_run.sh's FWD_CPU_B_WS)
    const unsigned threads = ATTNC_WS_THREADS;
#else
    const unsigned threads = ATTNC_THREADS;
#endif
    saved_states saved;
    save_begin(p, a, saved);
    cpu_launch(UNIT_NS::attnc_linear, dim3c{ATTNC_V / ATTNC_BV, ATTNC_HOUT, (unsigned)a.nseq}, threads, 227 * 1024, p);
    save_end(a, saved);
}

#if defined(ATTNC_DSPLIT) && ATTNC_DSPLIT
// The split walk's saved images against its own S_in^T images for the output pass (ws_st [slot][V][KP], slots of
// this unit's chunks), and its saved U_hat rows against its U_hat^T for that pass (ws_uh [slot][V][C]): every
// saved element the same bits, transposed.
static void split_saved_check(const fwd_args &a, const saved_states &s, const std::vector<UNIT_NS::elt> &ws_st,
                              const std::vector<UNIT_NS::elt> &ws_uh)
{
    if (s.shift < 0)
        return;
    size_t differ = 0;
    for (int n = 0; n < a.nseq; n++)
        for (int c0 = n * a.seqlen; c0 < (n + 1) * a.seqlen; c0 += 1 << s.shift)
            for (unsigned h = 0; h < ATTNC_HOUT; h++) {
                const UNIT_NS::elt *img = reinterpret_cast<const UNIT_NS::elt *>(saved_image(s, c0, n, h));
                const size_t slot = (size_t)(c0 / ATTNC_C + n) * ATTNC_HOUT + h;
                for (int k = 0; k < ATTNC_KP; k++)
                    for (int v = 0; v < ATTNC_V; v++)
                        differ += std::memcmp(&img[(size_t)k * ATTNC_V + v], &ws_st[(slot * ATTNC_V + v) * ATTNC_KP + k],
                                              sizeof(UNIT_NS::elt)) != 0;
            }
    size_t uh_differ = 0;
    for (int n = 0; n < a.nseq; n++)
        for (int t = n * a.seqlen; t < (n + 1) * a.seqlen; t++)
            for (unsigned h = 0; h < ATTNC_HOUT; h++) {
                const int r = (t - n * a.seqlen) & ((1 << s.shift) - 1);
                const UNIT_NS::elt *row = reinterpret_cast<const UNIT_NS::elt *>(saved_uhat_row(s, t - r, n, h, r));
                const int rf = (t - n * a.seqlen) % ATTNC_C;   // t's row in this unit's chunk, and its slot
                const size_t slot = (size_t)((t - rf) / ATTNC_C + n) * ATTNC_HOUT + h;
                for (int v = 0; v < ATTNC_V; v++)
                    uh_differ += std::memcmp(&row[v], &ws_uh[(slot * ATTNC_V + v) * ATTNC_C + rf], sizeof(UNIT_NS::elt)) != 0;
            }
    std::printf("saved states: %zu elements differ from the split walk's images, %zu from its U_hat\n", differ, uh_differ);
    if (differ || uh_differ)
        std::exit(1);
}
#endif

// The materialized schedule (sequences of one length, as the launcher requires): phase 1 stores every
// chunk's S_in image, z_in and m_in in the workspace (NaN bytes first), phase 2 runs every chunk at once.
void UNIT_RUN_MAT(const fwd_args &a)
{
    UNIT_NS::attnc_params p = params_of(a);
    p.cu_seqlens = nullptr;
    const size_t slots = ((size_t)a.nseq * a.seqlen / ATTNC_C + 1 + a.nseq) * ATTNC_HOUT;
    std::vector<UNIT_NS::elt> ws_s(slots * ATTNC_K * ATTNC_V);
    std::vector<float> ws_z(slots * ATTNC_KP), ws_m(slots);
    std::memset(ws_s.data(), 0xff, ws_s.size() * sizeof(UNIT_NS::elt));
    std::memset(ws_z.data(), 0xff, ws_z.size() * sizeof(float));
    std::memset(ws_m.data(), 0xff, ws_m.size() * sizeof(float));
    p.ws_s = ws_s.data(), p.ws_z = ws_z.data(), p.ws_m = ws_m.data();
    const unsigned nvs = ATTNC_V / ATTNC_BV;
#if defined(ATTNC_DSPLIT) && ATTNC_DSPLIT
    // The split delta rule: phase 6 (every chunk's U, -W, Kd, decay), the state walk, phase 2; its image is
    // S_in^T [V][KP], and U_hat, U, -W and Kd have workspaces of their own (NaN bytes first, as all).  Its
    // parallel phases take two chunks a CTA here (the launcher's parallel_chunks), the last CTA maybe one.
    p.group_chunks = 2;
    const unsigned chunks = (unsigned)((a.seqlen + 2 * ATTNC_C - 1) / (2 * ATTNC_C));
    std::vector<UNIT_NS::elt> ws_st(slots * ATTNC_V * ATTNC_KP), ws_w(slots * ATTNC_C * ATTNC_KP),
        ws_kd(slots * ATTNC_C * ATTNC_KP), ws_uh(slots * ATTNC_V * ATTNC_C);
    std::vector<float> ws_u(slots * ATTNC_C * ATTNC_V), ws_bl(slots);
    for (auto *v : {&ws_st, &ws_w, &ws_kd, &ws_uh})
        std::memset(v->data(), 0xff, v->size() * sizeof(UNIT_NS::elt));
    for (auto *v : {&ws_u, &ws_bl})
        std::memset(v->data(), 0xff, v->size() * sizeof(float));
    p.ws_s = ws_st.data(), p.ws_w = ws_w.data(), p.ws_kd = ws_kd.data(), p.ws_uh = ws_uh.data();
    p.ws_u = ws_u.data(), p.ws_bl = ws_bl.data();
    // (phases 6 and 2 have lean kernels of their own where the unit defines them: ATTNC_WY_MIN_BLOCKS)
#ifdef ATTNC_WY_MIN_BLOCKS
    const auto wy_pass = UNIT_NS::attnc_linear_wy, out_pass = UNIT_NS::attnc_linear_out;
#else
    const auto wy_pass = UNIT_NS::attnc_linear, out_pass = UNIT_NS::attnc_linear;
#endif
    saved_states saved;   // (the state walk saves where asked, checked below against its own images; phases 6
    save_begin(p, a, saved);   // and 2 the l2norm factors of the roles they form, as the launcher runs them)
    p.phase = 6;
    cpu_launch(wy_pass, dim3c{nvs * chunks, ATTNC_HOUT, (unsigned)a.nseq}, ATTNC_THREADS, 227 * 1024, p);
    // (the training walk, attnc_linear_states_save, where the launcher takes it: saved states asked for)
#if ATTNC_SAVES == 1
    const auto walk = p.save_img ? UNIT_NS::attnc_linear_states_save : UNIT_NS::attnc_linear_states;
#else
    const auto walk = UNIT_NS::attnc_linear_states;
#endif
    cpu_launch(walk, dim3c{ATTNC_V / (16 * ATTNC_LS_WARPS), ATTNC_HOUT, (unsigned)a.nseq}, ATTNC_LS_WARPS * 32, 227 * 1024, p);
    split_saved_check(a, saved, ws_st, ws_uh);
#else
    const unsigned chunks = (unsigned)((a.seqlen + ATTNC_C - 1) / ATTNC_C);
    const auto out_pass = UNIT_NS::attnc_linear;
    p.phase = 1;
    cpu_launch(UNIT_NS::attnc_linear, dim3c{nvs, ATTNC_HOUT, (unsigned)a.nseq}, ATTNC_THREADS, 227 * 1024, p);
#endif
    p.phase = 2;
    cpu_launch(out_pass, dim3c{nvs * chunks, ATTNC_HOUT, (unsigned)a.nseq}, ATTNC_THREADS, 227 * 1024, p);
#if defined(ATTNC_DSPLIT) && ATTNC_DSPLIT
    save_end(a, saved);
#endif
}

// The grouped schedule (sequences of one length, as the launcher requires): phase 3 records every group's
// own state, z and log2 decay in the workspace (NaN bytes first), phase 5 composes each group's S_in and
// writes its outputs.  Where the unit has phase 3's lean body (attnc_linear_group) it records groups of half
// as many chunks as phase 5 walks (group_chunks rounded up to even), as the launcher does where that body
// fits two CTAs an SM: phase 5 composes two records a group.  A unit generated without the schedule (an
// older build) has no phases 3 and 5.
void UNIT_RUN_GRP(const fwd_args &a, int group_chunks)
{
#if ATTNC_GROUPED
    UNIT_NS::attnc_params p = params_of(a);
    p.cu_seqlens = nullptr;
    const unsigned nvs = ATTNC_V / ATTNC_BV, chunks = (unsigned)((a.seqlen + ATTNC_C - 1) / ATTNC_C);
#ifdef ATTNC_GROUP_MIN_BLOCKS
    const int fine = (group_chunks + 1) / 2;
    group_chunks = 2 * fine;
    p.group_fine = fine;
#else
    const int fine = group_chunks;
#endif
    const unsigned records = (chunks + fine - 1) / fine;
    const size_t slots = (size_t)a.nseq * records * ATTNC_HOUT;
    std::vector<float> ws_gs(slots * ATTNC_K * ATTNC_V), ws_gz(slots * ATTNC_KP), ws_gl(slots * ATTNC_KP);
    std::memset(ws_gs.data(), 0xff, ws_gs.size() * sizeof(float));
    std::memset(ws_gz.data(), 0xff, ws_gz.size() * sizeof(float));
    std::memset(ws_gl.data(), 0xff, ws_gl.size() * sizeof(float));
    p.ws_gs = ws_gs.data(), p.ws_gz = ws_gz.data(), p.ws_gl = ws_gl.data();
    saved_states saved;   // (phase 5 saves where asked: the walk's image of each chunk's S_in; both phases the
    save_begin(p, a, saved);   // l2norm factors of the roles they form, as the launcher runs them)
    p.phase = 3;
    p.group_chunks = fine;
#ifdef ATTNC_GROUP_MIN_BLOCKS
    cpu_launch(UNIT_NS::attnc_linear_group, dim3c{nvs * records, ATTNC_HOUT, (unsigned)a.nseq}, ATTNC_THREADS,
               227 * 1024, p);
#else
    cpu_launch(UNIT_NS::attnc_linear, dim3c{nvs * records, ATTNC_HOUT, (unsigned)a.nseq}, ATTNC_THREADS, 227 * 1024, p);
#endif
    p.phase = 5;
    p.group_chunks = group_chunks;
    cpu_launch(UNIT_NS::attnc_linear, dim3c{nvs * ((chunks + group_chunks - 1) / group_chunks), ATTNC_HOUT,
                                            (unsigned)a.nseq}, ATTNC_THREADS, 227 * 1024, p);
    save_end(a, saved);
#else
    (void)a, (void)group_chunks;
    std::fprintf(stderr, "this unit was generated without the grouped schedule\n");
    std::abort();
#endif
}
