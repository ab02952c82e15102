// codegen/decode_kernel.cuh: the single-token decode step of the linear part.
//
// Generated after linear_kernel.cuh, with the same ATTNC_* constants and the same generated prologue
// (feature maps, gates, beta for one token).  When every sequence of a launch is one token long (the
// decode loop of a served model: B sequences, T = 1, state in and out), the chunk machinery is pure
// overhead, so the launcher takes this kernel instead: one CTA per (V slice, output head, sequence)
// applies the recurrence of one step in fp32, in natural-log units (algorithms.md 1.1):
//   S' = D S + k w^T                       (w = v; mLSTM: S, the write and z rescaled by the stabiliser)
//   S' = (I - beta k k^T) D S + beta k v^T (delta family)
//   o  = S'^T q (times the query's constant), then the normaliser (denominator, max floor, RMS, LayerNorm).
// Each thread owns pairs of state columns and walks K for them, so the state needs no barrier; the
// normaliser's z and the output row statistics are shared through shared memory.

#define DEC_THREADS 128

struct attnc_dec_layout {
    static constexpr unsigned q = 0;                                          // row 0 of the role tiles
    static constexpr unsigned k = q + ((ATTNC_KP * sizeof(elt) + 15) / 16) * 16;
    static constexpr unsigned v = k + ((ATTNC_KP * sizeof(elt) + 15) / 16) * 16;
    static constexpr unsigned g = v + ((ATTNC_BV * sizeof(elt) + 15) / 16) * 16;        // log gate(s), natural units
    static constexpr unsigned beta = g + ATTNC_KP * 4;
    static constexpr unsigned ig = beta + 16;
    static constexpr unsigned z = ig + 16;                                    // z' (KP floats)
    static constexpr unsigned dec = z + ATTNC_KP * 4;                         // the transition's diagonal (KP floats)
    static constexpr unsigned red = dec + ATTNC_KP * 4;                       // row statistics, 2 x THREADS
    static constexpr unsigned s = red + 2 * DEC_THREADS * 4;                  // S' [K][BV] fp32
    static constexpr unsigned bytes_raw = s + ATTNC_K * ATTNC_BV * 4;
    static constexpr unsigned bytes = (bytes_raw + 127) / 128 * 128;
};

#if ATTNC_WANT(2)
extern "C" __global__ void __launch_bounds__(DEC_THREADS) attnc_decode(attnc_params p)
{
    extern __shared__ __align__(128) unsigned char smem[];
    using L = attnc_dec_layout;
    elt *sq = (elt *)(smem + L::q), *sk = (elt *)(smem + L::k), *sv = (elt *)(smem + L::v);
    float *sg = (float *)(smem + L::g), *sbeta = (float *)(smem + L::beta), *sig = (float *)(smem + L::ig);
    float *sz = (float *)(smem + L::z), *sred = (float *)(smem + L::red), *sS = (float *)(smem + L::s);
    float *sdec = (float *)(smem + L::dec);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int v0 = blockIdx.x * ATTNC_BV, h = blockIdx.y, n = blockIdx.z;
    const int hs = h / (ATTNC_HOUT / ATTNC_HS);
    const int t = n * p.seqlen;   // the launcher takes this kernel only for seqlen == 1
    const size_t sbase = ((size_t)n * ATTNC_HS + hs);
    unsigned char *stage = smem + L::bytes;
    attnc_stage_issue<false>(p, t, t + 1, h, stage, nullptr);
    attnc_stage_wait();
    __syncthreads();
    if (warp == 0)
        attnc_prologue(p, t, h, 0, v0, lane, sq, sk, sv, sg, sbeta, sig, stage);
    __syncthreads();

    // The step's scalars, in natural units.  mLSTM: m' = max(log f + m, i); the old state and z are
    // scaled by e^{log f + m - m'}, the write by e^{i - m'}.
    float m_in = 0.f, m_out = 0.f, f_old = 1.f, f_write = 1.f;
    if constexpr (ATTNC_STABILIZED) {
        if (ATTNC_STATE_IN && p.m0)
            m_in = p.m0[sbase];
        m_out = fmaxf(sg[0] + m_in, sig[0]);
        f_old = expf(sg[0] + m_in - m_out);
        f_write = expf(sig[0] - m_out);
    }
    // The transition's diagonal per channel (times f_old), once: every column reads it.
    for (int c = tid; c < ATTNC_K; c += DEC_THREADS) {
        float d = 1.f;
        if constexpr (ATTNC_STABILIZED)
            d = f_old;
        else if constexpr (ATTNC_TRANSITION == TR_SCALAR || ATTNC_TRANSITION == TR_CONST)
            d = expf(sg[0]);
        else if constexpr (ATTNC_TRANSITION == TR_DIAG)
            d = expf(sg[c]);
        sdec[c] = d;
    }
    __syncthreads();
    if constexpr (ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR) {
        for (int c = tid; c < ATTNC_K; c += DEC_THREADS) {
            float z0 = ATTNC_STATE_IN && p.z0 ? p.z0[sbase * ATTNC_K + c] : 0.f;
            sz[c] = sdec[c] * z0 + f_write * attnc_elt_to_float(sk[c]);
        }
        __syncthreads();
    }
    float den = 0.f;   // q . z'
    if constexpr (ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR)
        for (int c = 0; c < ATTNC_K; c++)
            den += attnc_elt_to_float(sq[c]) * sz[c];
    den *= ATTNC_QSCALE;

    // The state, two columns per thread.
    constexpr int NPAIR = (ATTNC_BV / 2 + DEC_THREADS - 1) / DEC_THREADS;
    float o[NPAIR][2];
    float s1 = 0.f, s2 = 0.f;   // row sums of the outputs (RMS, LayerNorm)
#pragma unroll
    for (int i = 0; i < NPAIR; i++) {
        o[i][0] = o[i][1] = 0.f;
        const int jp = tid + i * DEC_THREADS;
        if (jp >= ATTNC_BV / 2)
            continue;
        const int j = 2 * jp;
        for (int e = 0; e < 2; e++) {
            const size_t col = v0 + j + e;
            float u = 0.f;   // delta: k . (D S)_col
            for (int c = 0; c < ATTNC_K; c++) {
                float s = ATTNC_STATE_IN && p.h0 ? p.h0[(sbase * ATTNC_K + c) * ATTNC_V + col] : 0.f;
                s *= sdec[c];
                sS[c * ATTNC_BV + j + e] = s;
                if constexpr (ATTNC_DELTA)
                    u += attnc_elt_to_float(sk[c]) * s;
            }
            const float vx = attnc_elt_to_float(sv[j + e]);
            const float w = ATTNC_DELTA ? sbeta[0] * (vx - u) : f_write * vx;
            float acc = 0.f;
            for (int c = 0; c < ATTNC_K; c++) {
                const float s = sS[c * ATTNC_BV + j + e] + attnc_elt_to_float(sk[c]) * w;
                sS[c * ATTNC_BV + j + e] = s;
                acc += attnc_elt_to_float(sq[c]) * s;
            }
            acc *= ATTNC_QSCALE;
            if constexpr (ATTNC_NORM == NORM_DENOM)
                acc /= den + ATTNC_EPS;
            else if constexpr (ATTNC_NORM == NORM_MAXFLOOR)
                acc /= fmaxf(fabsf(den), expf(-m_out)) + ATTNC_EPS;
            o[i][e] = acc;
            s1 += acc;
            s2 += acc * acc;
        }
    }
    float scale = 1.f, shift = 0.f;
    if constexpr (ATTNC_NORM == NORM_RMS || ATTNC_NORM == NORM_LAYER) {
        // whole rows: the tile pass gives these norms one V slice of all V
        sred[tid] = s1;
        sred[DEC_THREADS + tid] = s2;
        __syncthreads();
        float a = 0.f, b = 0.f;
        for (int i = 0; i < DEC_THREADS; i++) {
            a += sred[i];
            b += sred[DEC_THREADS + i];
        }
        const float mean = a / ATTNC_V, ms = b / ATTNC_V;
        if constexpr (ATTNC_NORM == NORM_RMS) {
            scale = rsqrtf(ms + ATTNC_EPS);
        } else {
            scale = rsqrtf(fmaxf(ms - mean * mean, 0.f) + ATTNC_EPS);
            shift = -mean * scale;
        }
    }
    const bool write_state = ATTNC_STATE_OUT && p.hT && h % (ATTNC_HOUT / ATTNC_HS) == 0;
#pragma unroll
    for (int i = 0; i < NPAIR; i++) {
        const int jp = tid + i * DEC_THREADS;
        if (jp >= ATTNC_BV / 2)
            continue;
        const int j = 2 * jp;
        attnc_store_out2(p.out, ((size_t)t * ATTNC_HOUT + h) * ATTNC_V + v0 + j, o[i][0] * scale + shift,
                         o[i][1] * scale + shift);
        if (write_state)
            for (int c = 0; c < ATTNC_K; c++) {
                p.hT[(sbase * ATTNC_K + c) * ATTNC_V + v0 + j] = sS[c * ATTNC_BV + j];
                p.hT[(sbase * ATTNC_K + c) * ATTNC_V + v0 + j + 1] = sS[c * ATTNC_BV + j + 1];
            }
    }
    if (write_state && blockIdx.x == 0) {
        if constexpr (ATTNC_NORM == NORM_DENOM || ATTNC_NORM == NORM_MAXFLOOR)
            if (p.zT)
                for (int c = tid; c < ATTNC_K; c += DEC_THREADS)
                    p.zT[sbase * ATTNC_K + c] = sz[c];
        if constexpr (ATTNC_NORM == NORM_MAXFLOOR)
            if (p.mT && tid == 0)
                p.mT[sbase] = m_out;
    }
}
#endif
