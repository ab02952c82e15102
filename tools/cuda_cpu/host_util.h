// tools/cuda_cpu/host_util.h: the host side's tensors (desc.sh's lines) and their random inputs, 16-bit
// conversions and relative difference, shared by main.cpp and fwd_main.cpp (the kernels' own conversions are
// the prelude's emulations of the PTX).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

/* A spec's tensor as desc.sh describes it, its inputs in data. */
struct host_tensor {
    std::string name, dtype;
    bool token;
    unsigned heads, len;
    bool ranged;     // drawn uniformly in [lo, hi] (the spec's `in [lo, hi]`), else N(0, 1)
    float lo, hi;
    std::vector<unsigned char> data;
};

/* The tensors of DESC, one line each "name dtype token|head heads len lo hi" (lo hi "- -": no range). */
static inline std::vector<host_tensor> host_read_desc(const char *path)
{
    std::vector<host_tensor> ts;
    FILE *f = std::fopen(path, "r");
    char name[64], dt[16], kind[16], lo[32], hi[32];
    unsigned heads, len;
    while (f && std::fscanf(f, "%63s %15s %15s %u %u %31s %31s", name, dt, kind, &heads, &len, lo, hi) == 7) {
        const bool ranged = std::strcmp(lo, "-") != 0;
        ts.push_back({name, dt, std::strcmp(kind, "token") == 0, heads, len, ranged, ranged ? std::strtof(lo, nullptr) : 0.f,
                      ranged ? std::strtof(hi, nullptr) : 0.f, {}});
    }
    if (f)
        std::fclose(f);
    return ts;
}

/* One input element of t: uniform in its declared range, else standard normal (the caller's generators, so
 * that every draw continues one sequence). */
static inline float host_draw(const host_tensor &t, std::mt19937 &rng, std::normal_distribution<float> &nd,
                              std::uniform_real_distribution<float> &ud)
{
    return t.ranged ? t.lo + (t.hi - t.lo) * ud(rng) : nd(rng);
}

/* A bf16 (f16 = false) or fp16 bit pattern as a float. */
static inline float host_half_to_float(unsigned short h, bool f16)
{
    if (!f16) {
        unsigned u = (unsigned)h << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
    unsigned sg = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? std::ldexp((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp((float)(m | 1024), (int)e - 25);
    return sg ? -v : v;
}

/* float to bf16, round to nearest even. */
static inline unsigned short host_to_bf16(float f)
{
    unsigned u;
    std::memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

/* ||got - want|| / ||want|| over the first `cols` of every `stride` elements (rows with padding columns);
 * infinity when either side holds a non-finite value in them. */
static inline double host_rel(const std::vector<float> &got, const std::vector<float> &want, size_t stride, size_t cols)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); i++) {
        if (i % stride >= cols)
            continue;
        if (!std::isfinite(got[i]) || !std::isfinite(want[i]))
            return INFINITY;
        num += (double)(got[i] - want[i]) * (got[i] - want[i]);
        den += (double)want[i] * want[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
