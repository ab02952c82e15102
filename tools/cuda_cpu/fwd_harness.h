// tools/cuda_cpu/fwd_harness.h: what fwd_main.cpp passes to the two forward units (two generated
// forwards of one spec, e.g. a build that ran on the GPU and a change that has not) and reads back.
#pragma once
#include <cstddef>

struct fwd_args {
    const void *in[64];
    void *out;                 // [total, HOUT, V] in the output dtype
    const float *h0, *z0, *m0; // initial states, or null
    float *hT, *zT, *mT;       // final states, or null
    const int *cu_seqlens;
    int seqlen, nseq;
};

struct fwd_info {
    unsigned K, V, HOUT, HS, out_dtype;
    bool state_in, state_out, has_z, has_m;
};

fwd_info fwd_a_info();
fwd_info fwd_b_info();
void fwd_a_run(const fwd_args &a);
void fwd_b_run(const fwd_args &a);
void fwd_a_run_mat(const fwd_args &a);   // the materialized schedule (sequences of one length)
void fwd_b_run_mat(const fwd_args &a);
void fwd_a_run_grp(const fwd_args &a, int group_chunks);   // the grouped schedule (sequences of one length)
void fwd_b_run_grp(const fwd_args &a, int group_chunks);
