// tools/cuda_cpu/fwd_unit.cpp: the chunk kernel (attnc_linear, sequential schedule) of one prepared
// forward unit; built twice (fwd_run.sh): UNIT_NS is the unit's namespace (fa, fb), UNIT_HDR its header,
// UNIT_INFO and UNIT_RUN the entry points fwd_harness.h declares.
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
