// tools/cuda_cpu/unit_seq.cpp: the sequential schedule's attnc_bwd_linear of the prepared unit seq.h.
#include "prelude.h"
#include "harness.h"
#include "seq.h"

unit_info seq_info()
{
    return {ATTNC_B_K, ATTNC_B_V, ATTNC_B_VO, ATTNC_HOUT, ATTNC_HS, ATTNC_OUT_DTYPE, ATTNC_B_C, ATTNC_B_GK,
            ATTNC_B_TRANSITION != 0, ATTNC_B_NORM != 0, -1, -1, -1, ATTNC_B_DELTA != 0, false, 0};
}

void seq_run(const host_args &a)
{
    seq::attnc_bwd_params p;
    std::memset(&p, 0, sizeof p);
    for (int i = 0; i < 64; i++)
        p.in[i] = a.in[i];
    p.dout = a.dout;
    p.h0 = a.h0, p.dhT = a.dhT, p.z0 = a.z0, p.dzT = a.dzT;
    p.cu_seqlens = a.cu_seqlens, p.seqlen = a.seqlen, p.nseq = a.nseq, p.total = a.total;
    p.ws_dq = a.ws_dq, p.ws_dk = a.ws_dk, p.ws_dv = a.ws_dv, p.ws_dg = a.ws_dg, p.ws_dh0 = a.ws_dh0, p.ws_dz0 = a.ws_dz0;
    p.ws_db = a.ws_db;
    size_t slots = (size_t)a.total / ATTNC_B_C + a.nseq + 1;
    std::vector<float> ws_s(slots * ATTNC_HOUT * ATTNC_B_K * ATTNC_B_V), ws_do((size_t)a.total * ATTNC_HOUT * ATTNC_B_V);
    std::memset(ws_s.data(), 0xff, ws_s.size() * sizeof(float));
    std::memset(ws_do.data(), 0xff, ws_do.size() * sizeof(float));
    p.ws_s = ws_s.data();
    p.ws_do = ws_do.data();
    cpu_launch(seq::attnc_bwd_linear, dim3c{(unsigned)a.nseq, ATTNC_HOUT, 1}, 256, ATTNC_B_SMEM_BYTES, p);
}

void seq_inputs(const host_args &a, float *const *part)
{
    seq::attnc_bwd_params p;
    std::memset(&p, 0, sizeof p);
    for (int i = 0; i < 64; i++)
        p.in[i] = a.in[i], p.part[i] = part[i];
    p.dout = a.dout;
    p.cu_seqlens = a.cu_seqlens, p.seqlen = a.seqlen, p.nseq = a.nseq, p.total = a.total;
    p.ws_dq = a.ws_dq, p.ws_dk = a.ws_dk, p.ws_dv = a.ws_dv, p.ws_dg = a.ws_dg, p.ws_db = a.ws_db;
    unsigned warps = (unsigned)a.total * ATTNC_HOUT;
    cpu_launch(seq::attnc_bwd_inputs, dim3c{(warps + 7) / 8, 1, 1}, 256, 0, p);
}
