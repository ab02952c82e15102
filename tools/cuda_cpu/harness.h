// tools/cuda_cpu/harness.h: what main.cpp passes to the two units (the sequential and the parallel
// schedule of one spec's backward) and reads back: the linear kernels' role gradients and dh0.
#pragma once
#include <cstddef>

struct host_args {
    const void *in[64];
    const void *dout;
    const float *h0, *dhT, *z0, *dzT;
    const int *cu_seqlens;
    int seqlen, nseq, total;
    float *ws_dq, *ws_dk, *ws_dv, *ws_dg, *ws_dh0, *ws_dz0;   // [total, HOUT, K], .., [N, HOUT, K, VO], [N, HOUT, K]
};

struct unit_info {
    unsigned K, V, VO, HOUT, HS, out_dtype, chunk;
    bool gated, norm;
};

unit_info seq_info();
unit_info par_info();
void seq_run(const host_args &a);
void par_run(const host_args &a);
// attnc_bwd_inputs (the value DAG's adjoint) from the role gradients in a.ws_*: partials per (token,
// output head) into part[i]; the parallel unit writes a tensor with direct[i] there instead, in dtype[i]
void seq_inputs(const host_args &a, float *const *part);
void par_inputs(const host_args &a, float *const *part, void *const *direct, const int *dtype);
