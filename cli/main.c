/* cli/main.c: the attnc command line.
 *
 *   attnc check [--diag=text|machine] FILE...   parse and check specs; diagnostics on stderr
 *   attnc ir [--after PASS] FILE                print the IR (FILE may be a spec or IR text), lowered
 *                                               through the passes up to PASS
 *   attnc ref FILE --tokens T [options]         run the float64 reference, recurrent vs chunkwise
 *   attnc ref --grad FILE --tokens T [options]  its backward against finite differences
 *   attnc compile FILE [--arch A] [--emit cuda|ptx|cubin] [-o OUT] [--warp-specialized]
 *                                               generate the kernels (no GPU needed with --arch)
 *   attnc run FILE --tokens T [options]         run the kernels on the GPU against the reference
 *   attnc --version | --help
 *
 * Exit status: 0 clean, 1 errors in the input (or a failed numeric check), 2 misuse of the command line.
 * Only this file prints and exits; the library reports through statuses and diagnostics.
 */
#define _POSIX_C_SOURCE 200809L   /* setenv (--bwd-schedule, --bwd-walk) */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

enum { EXIT_CLEAN = 0, EXIT_INPUT = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
    "usage: attnc <command> [options]\n"
    "\n"
    "commands:\n"
    "  check [--diag=text|machine] FILE...   parse and check specs (diagnostics on stderr)\n"
    "  ir [--after PASS] FILE                print the IR of a spec (or re-print IR text), lowered\n"
    "                                        through the passes up to PASS (chunk, tile, fuse, schedule)\n"
    "  ref FILE --tokens T [--batch B] [--seed S] [--varlen L1,L2,...] [--initial-state]\n"
    "          [--chunks C1,C2,...] [--dump FILE.json]\n"
    "                                        float64 reference: recurrent vs chunkwise\n"
    "  ref --grad FILE --tokens T [--batch B] [--seed S] [--varlen L1,L2,...] [--initial-state]\n"
    "                                        float64 backward vs central finite differences; the last\n"
    "                                        line is max_rel_err=X (exit 1 when X > 1e-6)\n"
    "  compile FILE [--grad] [--arch sm_XX] [--emit cuda|ptx|cubin] [-o OUT] [--dtype bf16|fp16|fp32]\n"
    "          [--warp-specialized]\n"
    "                                        generate the kernels: CUDA C, or PTX/cubin through NVRTC\n"
    "                                        (ptxas's register and spill report on stderr); --grad: the\n"
    "                                        backward's kernels instead; --warp-specialized: the unit of\n"
    "                                        the sequential walk that the JIT runs on sm_90a, alone\n"
    "  run FILE --tokens T [--batch B] [--heads H] [--seed S] [--varlen L1,L2,...]\n"
    "          [--initial-state] [--dtype bf16|fp16|fp32] [--gate-scale X] [--chunked-ref]\n"
    "          [--schedule auto|sequential|materialized|grouped] [--grad] [--bwd-schedule auto|sequential|parallel]\n"
    "          [--bwd-walk auto|sequence|split] [--jit optimized|quick] [--saved-states]\n"
    "                                        run on the GPU and compare with the float64 reference\n"
    "                                        (exit 77 when there is no GPU); --grad: forward and\n"
    "                                        backward, every gradient against the float64 backward;\n"
    "                                        --saved-states: the forward saves its chunk states for\n"
    "                                        the backward; --jit quick: the quickly compiled kernels\n"
    "  --version                             print the version\n"
    "  --help                                print this help\n"
    "\n"
    "exit status: 0 clean, 1 errors in the input, 2 misuse of the command line\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "attnc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run 'attnc --help' for usage)\n");
    return EXIT_USAGE;
}

/* Load FILE: a spec, or IR text (the library tells them apart by the IR header). */
static attnc_status load(attnc_ctx *ctx, const char *path, attnc_spec **spec)
{
    return attnc_spec_from_file(ctx, path, spec);
}

/* Print diagnostics; returns the exit status a load with status `st` deserves. */
static int report(attnc_ctx *ctx, attnc_status st, attnc_spec *spec, int machine)
{
    if (spec && attnc_spec_diag_count(spec))
        fputs(machine ? attnc_spec_diag_machine(spec) : attnc_spec_diag_text(spec), stderr);
    if (st == ATTNC_OK)
        return EXIT_CLEAN;
    if (st == ATTNC_ERR_INPUT)
        return EXIT_INPUT;
    fprintf(stderr, "attnc: %s\n", attnc_errmsg(ctx));
    return EXIT_INPUT;
}

static int cmd_check(attnc_ctx *ctx, int argc, char **argv)
{
    int machine = 0, nfiles = 0, worst = EXIT_CLEAN;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--diag=machine") == 0)
            machine = 1;
        else if (strcmp(argv[i], "--diag=text") == 0)
            machine = 0;
        else if (argv[i][0] == '-' && argv[i][1])
            return usage_error("check: unknown option '%s'", argv[i]);
    }
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1])
            continue;
        nfiles++;
        attnc_spec *spec = NULL;
        attnc_status st = load(ctx, argv[i], &spec);
        int rc = report(ctx, st, spec, machine);
        attnc_spec_free(spec);
        if (rc > worst)
            worst = rc;
    }
    if (!nfiles)
        return usage_error("check: no input files%s", "");
    return worst;
}

static int unknown_pass(const char *name)
{
    fprintf(stderr, "attnc: ir: unknown pass '%s'; the passes are:", name);
    for (const char *const *p = attnc_pass_names(); *p; p++)
        fprintf(stderr, " %s", *p);
    fprintf(stderr, "\n");
    return EXIT_USAGE;
}

static int cmd_ir(attnc_ctx *ctx, int argc, char **argv)
{
    const char *after = NULL, *file = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--after") == 0) {
            if (i + 1 >= argc)
                return usage_error("ir: --after needs a pass name%s", "");
            after = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("ir: unknown option '%s'", argv[i]);
        } else if (file) {
            return usage_error("ir: expected exactly one FILE ('%s' is a second)", argv[i]);
        } else {
            file = argv[i];
        }
    }
    if (!file)
        return usage_error("ir: expected exactly one FILE%s", "");
    if (after) {
        int known = 0;
        for (const char *const *p = attnc_pass_names(); *p; p++)
            known |= strcmp(*p, after) == 0;
        if (!known)
            return unknown_pass(after);
    }
    attnc_spec *spec = NULL;
    attnc_status st = load(ctx, file, &spec);
    int rc = report(ctx, st, spec, 0);
    if (rc == EXIT_CLEAN) {
        const char *text = attnc_spec_ir(spec);
        if (after) {
            st = attnc_spec_lower(spec, after, &text);
            rc = report(ctx, st, spec, 0);
        }
        if (rc == EXIT_CLEAN)
            fputs(text, stdout);
    }
    attnc_spec_free(spec);
    return rc;
}

static int parse_dtype(const char *s, int *out)
{
    static const char *const names[] = {"bf16", "fp16", "fp32"};
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = i;
            return 1;
        }
    return 0;
}

static int write_all(const char *path, const void *data, size_t size)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "attnc: compile: cannot open '%s': %s\n", path, strerror(errno));
        return EXIT_INPUT;
    }
    size_t n = fwrite(data, 1, size, f);
    int bad = n != size || (f != stdout && fclose(f) != 0);
    if (bad) {
        fprintf(stderr, "attnc: compile: error writing '%s'\n", path);
        return EXIT_INPUT;
    }
    return EXIT_CLEAN;
}

static int cmd_compile(attnc_ctx *ctx, int argc, char **argv)
{
    const char *file = NULL, *outpath = "-";
    attnc_compile_options co = {0};
    attnc_emit_kind kind = ATTNC_EMIT_CUDA;
    int dtype = -1, grad = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--grad") == 0) {
            grad = 1;
        } else if (strcmp(a, "--warp-specialized") == 0) {
            co.warp_specialized = 1;
        } else if (strcmp(a, "--arch") == 0) {
            if (!val || strncmp(val, "sm_", 3) != 0 || strlen(val) > 8)
                return usage_error("compile: --arch needs a name like sm_80 or sm_90a, not '%s'", val ? val : "");
            co.arch = val;
            i++;
        } else if (strcmp(a, "--emit") == 0) {
            if (val && strcmp(val, "cuda") == 0)
                kind = ATTNC_EMIT_CUDA;
            else if (val && strcmp(val, "ptx") == 0)
                kind = ATTNC_EMIT_PTX;
            else if (val && strcmp(val, "cubin") == 0)
                kind = ATTNC_EMIT_CUBIN;
            else
                return usage_error("compile: --emit takes cuda, ptx or cubin, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "-o") == 0) {
            if (!val)
                return usage_error("compile: -o needs a file name%s", "");
            outpath = val;
            i++;
        } else if (strcmp(a, "--dtype") == 0) {
            if (!parse_dtype(val, &dtype))
                return usage_error("compile: --dtype takes bf16, fp16 or fp32, not '%s'", val ? val : "");
            i++;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("compile: unknown option '%s'", a);
        } else if (file) {
            return usage_error("compile: more than one FILE ('%s')", a);
        } else {
            file = a;
        }
    }
    if (!file)
        return usage_error("compile: no FILE%s", "");
    if (kind == ATTNC_EMIT_CUBIN && strcmp(outpath, "-") == 0)
        return usage_error("compile: a cubin is binary: give -o FILE%s", "");
    if (grad && co.warp_specialized)
        return usage_error("compile: --warp-specialized is a forward unit, not one of --grad's%s", "");
    attnc_spec *spec = NULL;
    attnc_status st = load(ctx, file, &spec);
    int rc = report(ctx, st, spec, 0);
    if (rc == EXIT_CLEAN && dtype >= 0)
        rc = report(ctx, attnc_spec_override(spec, 0, dtype), spec, 0);
    if (rc != EXIT_CLEAN) {
        attnc_spec_free(spec);
        return rc;
    }
    attnc_blob blob;
    st = grad ? attnc_emit_grad(ctx, spec, kind, &co, &blob) : attnc_emit(ctx, spec, kind, &co, &blob);
    if (st == ATTNC_ERR_INPUT) {
        rc = report(ctx, st, spec, 0);
    } else if (st != ATTNC_OK) {
        fprintf(stderr, "attnc: compile: %s\n", attnc_errmsg(ctx));
        rc = EXIT_INPUT;
    } else {
        if (kind != ATTNC_EMIT_CUDA && blob.regs >= 0)
            fprintf(stderr, "%s: %s for %s: %d registers, %d bytes spilled, %d bytes of stack frame\n", file,
                    kind == ATTNC_EMIT_PTX ? "ptx" : "cubin", co.arch ? co.arch : "this GPU", blob.regs, blob.spill_bytes,
                    blob.stack_bytes);
        else if (kind != ATTNC_EMIT_CUDA)   /* PTX: ptxas has not run, so no register count yet */
            fprintf(stderr, "%s: ptx for %s (registers and spills: --emit cubin)\n", file, co.arch ? co.arch : "this GPU");
        rc = write_all(outpath, blob.data, kind == ATTNC_EMIT_CUBIN ? blob.size : strlen(blob.data));
    }
    attnc_spec_free(spec);
    return rc;
}

/* Parse a decimal integer in [lo, hi]; false if it is not one. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* A comma-separated list of integers in [lo, hi]; at most `max` of them. */
static int parse_list(const char *s, uint32_t lo, uint32_t hi, uint32_t *out, uint32_t max, uint32_t *n)
{
    *n = 0;
    while (*s) {
        char item[32];
        size_t len = strcspn(s, ",");
        uint64_t v;
        if (len == 0 || len >= sizeof item || *n == max)
            return 0;
        memcpy(item, s, len);
        item[len] = 0;
        if (!parse_u64(item, lo, hi, &v))
            return 0;
        out[(*n)++] = (uint32_t)v;
        s += len;
        if (*s == ',' && !*++s)
            return 0; /* a trailing comma */
    }
    return *n > 0;
}

#define MAX_SEQS 1024

/* The options that say which problem to draw, shared by `ref` and `run`. */
typedef struct problem_args {
    uint32_t tokens, batch, nseq;
    uint64_t seed;
    const uint32_t *seqlens; /* --varlen, or NULL */
    int initial_state;
} problem_args;

/* Reports a bad value of a problem option of command `cmd`, as usage_error words it; returns -1. */
static int bad_problem_option(const char *cmd, const char *what, const char *val)
{
    fprintf(stderr, "attnc: %s: %s, not '%s'\n(run 'attnc --help' for usage)\n", cmd, what, val ? val : "");
    return -1;
}

/* If argv[*i] is a problem option, reads it (and its value, advancing *i): 1.  Not one: 0.  A bad value:
 * reports it and returns -1. */
static int parse_problem_option(const char *cmd, int argc, char **argv, int *i, problem_args *p)
{
    static uint32_t seqlens[MAX_SEQS];
    const char *a = argv[*i], *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    uint64_t v;
    if (strcmp(a, "--tokens") == 0) {
        if (!parse_u64(val, 1, 1u << 24, &v))
            return bad_problem_option(cmd, "--tokens needs an integer from 1 to 16777216", val);
        p->tokens = (uint32_t)v;
    } else if (strcmp(a, "--batch") == 0) {
        if (!parse_u64(val, 1, MAX_SEQS, &v))
            return bad_problem_option(cmd, "--batch needs an integer from 1 to 1024", val);
        p->batch = (uint32_t)v;
    } else if (strcmp(a, "--seed") == 0) {
        if (!parse_u64(val, 0, UINT64_MAX, &v))
            return bad_problem_option(cmd, "--seed needs a non-negative integer", val);
        p->seed = v;
    } else if (strcmp(a, "--varlen") == 0) {
        if (!val || !parse_list(val, 1, 1u << 24, seqlens, MAX_SEQS, &p->nseq))
            return bad_problem_option(cmd, "--varlen needs lengths like 5,1,9 (each >= 1)", val);
        p->seqlens = seqlens;
    } else if (strcmp(a, "--initial-state") == 0) {
        p->initial_state = 1;
        return 1;
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

/* `ref --grad`: the report's checks, then max_rel_err=X as the last line (what tests read). */
static int ref_grad(attnc_ctx *ctx, attnc_spec *spec, const attnc_ref_options *opt)
{
    attnc_ref_grad_report r;
    attnc_status st = attnc_ref_grad_check(ctx, spec, opt, &r);
    if (st != ATTNC_OK && st != ATTNC_ERR_NUMERIC) {
        fprintf(stderr, "attnc: ref: %s\n", attnc_errmsg(ctx));
        return st == ATTNC_ERR_USAGE ? EXIT_USAGE : EXIT_INPUT;
    }
    printf("variant %s: %u sequence%s, %u tokens, %u inputs, loss %.6e, eps %g (coordinates %g)\n",
           attnc_spec_name(spec), r.nseq, r.nseq == 1 ? "" : "s", r.total_tokens, r.ninputs, r.loss, r.eps,
           r.eps_coord);
    for (uint32_t i = 0; i < r.nchecks && i < ATTNC_REF_GRAD_MAX_CHECKS; i++)
        printf("  %-20s backward % .12e  finite difference % .12e  rel err %.3e\n", r.check[i].what,
               r.check[i].analytic, r.check[i].numeric, r.check[i].rel_err);
    if (r.nchecks > ATTNC_REF_GRAD_MAX_CHECKS)
        printf("  (%u more checks not listed)\n", r.nchecks - ATTNC_REF_GRAD_MAX_CHECKS);
    printf("%s: %u checks, %u forward evaluations, tolerance %g (backward %.3f s, check %.3f s)\n",
           st == ATTNC_OK ? "agree" : "DISAGREE", r.nchecks, r.nforward, r.tolerance, r.seconds_backward,
           r.seconds_check);
    printf("max_rel_err=%.3e\n", r.max_rel_err);
    return st == ATTNC_OK ? EXIT_CLEAN : EXIT_INPUT;
}

static int cmd_ref(attnc_ctx *ctx, int argc, char **argv)
{
    const char *file = NULL, *dump = NULL;
    int grad = 0;
    attnc_ref_options opt = {0};
    problem_args pa = {.batch = 1};
    static uint32_t chunks[ATTNC_REF_MAX_CHUNKS];
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int got = parse_problem_option("ref", argc, argv, &i, &pa);
        if (got < 0)
            return EXIT_USAGE;
        if (got)
            continue;
        if (strcmp(a, "--grad") == 0) {
            grad = 1;
        } else if (strcmp(a, "--chunks") == 0) {
            if (!val || !parse_list(val, 1, 4096, chunks, ATTNC_REF_MAX_CHUNKS, &opt.nchunks))
                return usage_error("ref: --chunks needs up to 16 sizes like 1,16,64, not '%s'", val ? val : "");
            opt.chunks = chunks;
            i++;
        } else if (strcmp(a, "--dump") == 0) {
            if (!val)
                return usage_error("ref: --dump needs a file name%s", "");
            dump = val;
            i++;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("ref: unknown option '%s'", a);
        } else if (file) {
            return usage_error("ref: more than one FILE ('%s')", a);
        } else {
            file = a;
        }
    }
    if (!file)
        return usage_error("ref: no FILE%s", "");
    if (!pa.tokens && !pa.seqlens)
        return usage_error("ref: --tokens T (or --varlen) is required%s", "");
    if (grad && (opt.chunks || dump))
        return usage_error("ref: --grad takes neither --chunks nor --dump%s", "");
    opt.batch = pa.batch;
    opt.tokens = pa.tokens;
    opt.seqlens = pa.seqlens;
    opt.nseq = pa.nseq;
    opt.seed = pa.seed;
    opt.initial_state = pa.initial_state;
    opt.dump_json = dump;
    attnc_spec *spec = NULL;
    attnc_status st = load(ctx, file, &spec);
    int rc = report(ctx, st, spec, 0);
    if (rc != EXIT_CLEAN) {
        attnc_spec_free(spec);
        return rc;
    }
    if (grad) {
        rc = ref_grad(ctx, spec, &opt);
        attnc_spec_free(spec);
        return rc;
    }
    attnc_ref_report r;
    st = attnc_ref_check(ctx, spec, &opt, &r);
    if (st != ATTNC_OK && st != ATTNC_ERR_NUMERIC) {
        fprintf(stderr, "attnc: ref: %s\n", attnc_errmsg(ctx));
        attnc_spec_free(spec);
        return st == ATTNC_ERR_USAGE ? EXIT_USAGE : EXIT_INPUT;
    }
    printf("variant %s: %u sequence%s, %u tokens, K=%u V=%u, heads out=%u state=%u\n", attnc_spec_name(spec),
           r.nseq, r.nseq == 1 ? "" : "s", r.total_tokens, r.key_dim, r.value_dim, r.heads_out, r.heads_state);
    printf("recurrent: output rms %.6e, final state rms %.6e, output hash %016" PRIx64 " (%.3f s)\n", r.out_rms,
           r.state_rms, r.out_hash, r.seconds_recurrent);
    for (uint32_t i = 0; i < r.nchunks; i++)
        printf("chunkwise C=%-4u output rel err %.3e, final state rel err %.3e\n", r.chunk[i], r.out_rel_err[i],
               r.state_rel_err[i]);
    printf("%s: max_rel_err=%.3e (tolerance 1e-10, chunkwise %.3f s)\n", st == ATTNC_OK ? "agree" : "DISAGREE",
           r.max_rel_err, r.seconds_chunked);
    attnc_spec_free(spec);
    return st == ATTNC_OK ? EXIT_CLEAN : EXIT_INPUT;
}

#define EXIT_SKIP 77 /* CTest's SKIP_RETURN_CODE: no GPU here */

/* `run --grad`: the backward must be generated (a clear error otherwise, GPU or not), then one line per
 * gradient and the verdict last. */
static int run_grad(attnc_ctx *ctx, attnc_spec *spec, const attnc_run_options *opt)
{
    attnc_blob blob;
    attnc_status st = attnc_emit_grad(ctx, spec, ATTNC_EMIT_CUDA, NULL, &blob);
    if (st != ATTNC_OK)
        return report(ctx, st, spec, 0);
    if (!attnc_gpu_available()) {
        fprintf(stderr, "attnc: run: no GPU (no CUDA driver or no device): skipped\n");
        return EXIT_SKIP;
    }
    attnc_run_grad_report r;
    st = attnc_run_grad_check(ctx, spec, opt, &r);
    if (st == ATTNC_ERR_INPUT)
        return report(ctx, st, spec, 0);
    if (st != ATTNC_OK && st != ATTNC_ERR_NUMERIC) {
        fprintf(stderr, "attnc: run: %s\n", attnc_errmsg(ctx));
        return st == ATTNC_ERR_USAGE ? EXIT_USAGE : EXIT_INPUT;
    }
    for (uint32_t i = 0; i < r.n; i++)
        printf("  d%-12s rel err %.3e%s: %s\n", r.item[i].name, r.item[i].rel_err, r.item[i].nonfinite ? " (NaN/Inf)" : "",
               !r.item[i].nonfinite && r.item[i].rel_err <= r.tolerance ? "pass" : "FAIL");
    printf("%s: backward, %u tokens in %u sequence%s: %u gradients, tolerance %g, %s, backward %.3f ms, "
           "reference %.1f s: %s\n",
           attnc_spec_name(spec), r.total_tokens, r.nseq, r.nseq == 1 ? "" : "s", r.n, r.tolerance,
           r.deterministic ? "deterministic (two runs, same bits)" : "NOT DETERMINISTIC", r.backward_ms, r.reference_s,
           st == ATTNC_OK ? "pass" : "FAIL");
    return st == ATTNC_OK ? EXIT_CLEAN : EXIT_INPUT;
}

static int cmd_run(attnc_ctx *ctx, int argc, char **argv)
{
    const char *file = NULL;
    attnc_run_options opt = {0};
    problem_args pa = {.batch = 1};
    uint64_t v;
    int dtype = -1;
    uint32_t heads = 0;
    int grad = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--grad") == 0) {
            grad = 1;
            continue;
        }
        int got = parse_problem_option("run", argc, argv, &i, &pa);
        if (got < 0)
            return EXIT_USAGE;
        if (got)
            continue;
        if (strcmp(a, "--heads") == 0) {
            if (!parse_u64(val, 1, 256, &v))
                return usage_error("run: --heads needs an integer from 1 to 256, not '%s'", val ? val : "");
            heads = (uint32_t)v;
            i++;
        } else if (strcmp(a, "--dtype") == 0) {
            if (!parse_dtype(val, &dtype))
                return usage_error("run: --dtype takes bf16, fp16 or fp32, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--gate-scale") == 0) {
            char *end;
            opt.gate_scale = val ? strtod(val, &end) : 0;
            if (!val || *end || !(opt.gate_scale > 0 && opt.gate_scale < 1e6))
                return usage_error("run: --gate-scale needs a positive number, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--chunked-ref") == 0) {
            opt.reference_chunked = 1;
        } else if (strcmp(a, "--saved-states") == 0) {
            opt.saved_states = 1;
        } else if (strcmp(a, "--schedule") == 0) {
            if (val && strcmp(val, "auto") == 0)
                opt.schedule = ATTNC_SCHEDULE_AUTO;
            else if (val && strcmp(val, "sequential") == 0)
                opt.schedule = ATTNC_SCHEDULE_SEQUENTIAL;
            else if (val && strcmp(val, "materialized") == 0)
                opt.schedule = ATTNC_SCHEDULE_MATERIALIZED;
            else if (val && strcmp(val, "grouped") == 0)
                opt.schedule = ATTNC_SCHEDULE_GROUPED;
            else
                return usage_error("run: --schedule takes auto, sequential, materialized or grouped, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--jit") == 0) {
            if (!val || (strcmp(val, "optimized") != 0 && strcmp(val, "quick") != 0))
                return usage_error("run: --jit takes optimized or quick, not '%s'", val ? val : "");
            opt.quick_jit = strcmp(val, "quick") == 0;
            i++;
        } else if (strcmp(a, "--bwd-schedule") == 0) {
            /* the backward's schedule, as the library reads it (api/backward.c): ATTNC_BWD_SCHEDULE */
            if (!val || (strcmp(val, "auto") != 0 && strcmp(val, "sequential") != 0 && strcmp(val, "parallel") != 0))
                return usage_error("run: --bwd-schedule takes auto, sequential or parallel, not '%s'", val ? val : "");
            setenv("ATTNC_BWD_SCHEDULE", val, 1);
            i++;
        } else if (strcmp(a, "--bwd-walk") == 0) {
            /* the parallel backward's state walks, as the library reads them (api/backward.c): ATTNC_BWD_WALK */
            if (!val || (strcmp(val, "auto") != 0 && strcmp(val, "sequence") != 0 && strcmp(val, "split") != 0))
                return usage_error("run: --bwd-walk takes auto, sequence or split, not '%s'", val ? val : "");
            setenv("ATTNC_BWD_WALK", val, 1);
            i++;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("run: unknown option '%s'", a);
        } else if (file) {
            return usage_error("run: more than one FILE ('%s')", a);
        } else {
            file = a;
        }
    }
    if (!file)
        return usage_error("run: no FILE%s", "");
    if (!pa.tokens && !pa.seqlens)
        return usage_error("run: --tokens T (or --varlen) is required%s", "");
    if (opt.saved_states && !grad)
        return usage_error("run: --saved-states needs --grad%s", "");
    opt.batch = pa.batch;
    opt.tokens = pa.tokens;
    opt.seqlens = pa.seqlens;
    opt.nseq = pa.nseq;
    opt.seed = pa.seed;
    opt.initial_state = pa.initial_state;
    attnc_spec *spec = NULL;
    attnc_status st = load(ctx, file, &spec);
    int rc = report(ctx, st, spec, 0);
    if (rc == EXIT_CLEAN && (heads || dtype >= 0))
        rc = report(ctx, attnc_spec_override(spec, heads, dtype), spec, 0);
    if (rc != EXIT_CLEAN) {
        attnc_spec_free(spec);
        return rc;
    }
    if (grad) {
        rc = run_grad(ctx, spec, &opt);
        attnc_spec_free(spec);
        return rc;
    }
    if (!attnc_gpu_available()) {
        fprintf(stderr, "attnc: run: no GPU (no CUDA driver or no device): skipped\n");
        attnc_spec_free(spec);
        return EXIT_SKIP;
    }
    attnc_run_report r;
    st = attnc_run_check(ctx, spec, &opt, &r);
    if (st == ATTNC_ERR_INPUT) {
        rc = report(ctx, st, spec, 0);
    } else if (st != ATTNC_OK && st != ATTNC_ERR_NUMERIC) {
        fprintf(stderr, "attnc: run: %s\n", attnc_errmsg(ctx));
        rc = st == ATTNC_ERR_USAGE ? EXIT_USAGE : EXIT_INPUT;
    } else {
        printf("%s: %u tokens in %u sequence%s: out rel err %.3e (max abs %.3e), state rel err %.3e, tolerance %g, "
               "kernel %.3f ms, reference %.1f s: %s\n",
               attnc_spec_name(spec), r.total_tokens, r.nseq, r.nseq == 1 ? "" : "s", r.out_rel_err, r.out_max_abs,
               r.state_rel_err, r.tolerance, r.kernel_ms, r.reference_s, st == ATTNC_OK ? "pass" : "FAIL");
        rc = st == ATTNC_OK ? EXIT_CLEAN : EXIT_INPUT;
    }
    attnc_spec_free(spec);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("no command%s", "");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return EXIT_CLEAN;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("attnc %s (library %s)\n", ATTNC_VERSION_STRING, attnc_version_string());
        return EXIT_CLEAN;
    }
    attnc_ctx *ctx;
    attnc_status st = attnc_ctx_new(&ctx);
    if (st != ATTNC_OK) {
        fprintf(stderr, "attnc: cannot start: %s\n", attnc_status_str(st));
        return EXIT_INPUT;
    }
    int rc;
    if (strcmp(cmd, "check") == 0)
        rc = cmd_check(ctx, argc - 2, argv + 2);
    else if (strcmp(cmd, "ir") == 0)
        rc = cmd_ir(ctx, argc - 2, argv + 2);
    else if (strcmp(cmd, "ref") == 0)
        rc = cmd_ref(ctx, argc - 2, argv + 2);
    else if (strcmp(cmd, "compile") == 0)
        rc = cmd_compile(ctx, argc - 2, argv + 2);
    else if (strcmp(cmd, "run") == 0)
        rc = cmd_run(ctx, argc - 2, argv + 2);
    else
        rc = usage_error("unknown command '%s'", cmd);
    attnc_ctx_free(ctx);
    fflush(stdout);
    if (ferror(stdout)) {
        fprintf(stderr, "attnc: error writing the output\n");
        return EXIT_INPUT;
    }
    return rc;
}
