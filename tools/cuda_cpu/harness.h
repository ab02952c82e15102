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
    float *ws_db;   // the delta rule: d beta [total, HOUT]
    void *direct[64];   // the parallel unit: the tensors' gradients it writes directly (or null), as p.direct
    int direct_dtype[64];
};

struct unit_info {
    unsigned K, V, VO, HOUT, HS, out_dtype, chunk;
    unsigned gk;   // the gate's length per token and head: 1, or K (per-channel gates)
    bool dg, norm;   // dg: the unit writes the gate's role gradient (ws_dg): gated, and (parallel) ATTNC_BP_DG
    int dq_tensor, dk_tensor, dv_tensor;   // the tensor whose gradient the chunk kernel writes for the query / key / value role, or -1
    bool delta;                 // the delta rule: beta's role gradient (ws_db) too
    bool duh16;                 // ws_dv holds dU_hat in 16 bits: half its floats (api/backward.c's sizing)
    unsigned dk16_floats;       // ws_dk holds the chunk kernel's dk as 16-bit mantissas: floats a row (else 0)
};

unit_info seq_info();
unit_info par_info();
void seq_run(const host_args &a);
void par_run(const host_args &a);
// par_run writes the query / key / value role gradient into a.direct[dq_tensor / dk_tensor / dv_tensor] instead of ws_dq / ws_dk / ws_dv
// where the unit says so (par_info).  attnc_bwd_inputs (the value DAG's adjoint) from the role gradients in
// a.ws_*: partials per (token, output head) into part[i]; the parallel unit writes a tensor with direct[i]
// there instead, in dtype[i] (not the chunk kernel's tensors: those it must leave as they are)
void seq_inputs(const host_args &a, float *const *part);
void par_inputs(const host_args &a, float *const *part, void *const *direct, const int *dtype);
