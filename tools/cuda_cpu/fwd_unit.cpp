// tools/cuda_cpu/fwd_unit.cpp: the chunk kernel (attnc_linear, sequential schedule) of one prepared
// forward unit; built twice (fwd_run.sh): UNIT_NS is the unit's namespace (fa, fb), UNIT_HDR its header,
// UNIT_INFO, UNIT_RUN and UNIT_RUN_MAT the entry points fwd_harness.h declares.
#include "prelude.h"
#include "fwd_harness.h"
#include UNIT_HDR

fwd_info UNIT_INFO()
{
    return {ATTNC_K, ATTNC_V, ATTNC_HOUT, ATTNC_HS, ATTNC_OUT_DTYPE, ATTNC_STATE_IN != 0, ATTNC_STATE_OUT != 0,
            ATTNC_NORM == UNIT_NS::NORM_DENOM || ATTNC_NORM == UNIT_NS::NORM_MAXFLOOR, ATTNC_NORM == UNIT_NS::NORM_MAXFLOOR};
}

void UNIT_RUN(const fwd_args &a)
{
    UNIT_NS::attnc_params p;
    std::memset(&p, 0, sizeof p);
    for (size_t i = 0; i < sizeof p.in / sizeof p.in[0]; i++)
        p.in[i] = a.in[i];
    p.out = a.out;
    p.h0 = a.h0, p.z0 = a.z0, p.m0 = a.m0, p.hT = a.hT, p.zT = a.zT, p.mT = a.mT;
    p.cu_seqlens = a.cu_seqlens, p.seqlen = a.seqlen, p.nseq = a.nseq;
    p.phase = 0;
    cpu_launch(UNIT_NS::attnc_linear, dim3c{ATTNC_V / ATTNC_BV, ATTNC_HOUT, (unsigned)a.nseq}, ATTNC_THREADS,
               227 * 1024, p);
}

// The materialized schedule (sequences of one length, as the launcher requires): phase 1 stores every
// chunk's S_in image, z_in and m_in in the workspace (NaN bytes first), phase 2 runs every chunk at once.
void UNIT_RUN_MAT(const fwd_args &a)
{
    UNIT_NS::attnc_params p;
    std::memset(&p, 0, sizeof p);
    for (size_t i = 0; i < sizeof p.in / sizeof p.in[0]; i++)
        p.in[i] = a.in[i];
    p.out = a.out;
    p.h0 = a.h0, p.z0 = a.z0, p.m0 = a.m0, p.hT = a.hT, p.zT = a.zT, p.mT = a.mT;
    p.cu_seqlens = nullptr, p.seqlen = a.seqlen, p.nseq = a.nseq;
    const size_t slots = ((size_t)a.nseq * a.seqlen / ATTNC_C + 1 + a.nseq) * ATTNC_HOUT;
    std::vector<UNIT_NS::elt> ws_s(slots * ATTNC_K * ATTNC_V);
    std::vector<float> ws_z(slots * ATTNC_KP), ws_m(slots);
    std::memset(ws_s.data(), 0xff, ws_s.size() * sizeof(UNIT_NS::elt));
    std::memset(ws_z.data(), 0xff, ws_z.size() * sizeof(float));
    std::memset(ws_m.data(), 0xff, ws_m.size() * sizeof(float));
    p.ws_s = ws_s.data(), p.ws_z = ws_z.data(), p.ws_m = ws_m.data();
    const unsigned nvs = ATTNC_V / ATTNC_BV, chunks = (unsigned)((a.seqlen + ATTNC_C - 1) / ATTNC_C);
    p.phase = 1;
    cpu_launch(UNIT_NS::attnc_linear, dim3c{nvs, ATTNC_HOUT, (unsigned)a.nseq}, ATTNC_THREADS, 227 * 1024, p);
    p.phase = 2;
    cpu_launch(UNIT_NS::attnc_linear, dim3c{nvs * chunks, ATTNC_HOUT, (unsigned)a.nseq}, ATTNC_THREADS, 227 * 1024, p);
}
