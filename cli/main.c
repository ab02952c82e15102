/* cli/main.c: the attnc command line.
 *
 *   attnc check [--diag=text|machine] FILE...   parse and check specs; diagnostics on stderr
 *   attnc ir FILE                               print the IR (FILE may be a spec or IR text)
 *   attnc ref FILE --tokens T [options]         run the float64 reference, recurrent vs chunkwise
 *   attnc --version | --help
 *
 * Exit status: 0 clean, 1 errors in the input (or a failed numeric check), 2 misuse of the command line.
 * Only this file prints and exits; the library reports through statuses and diagnostics.
 */
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
    "  ir FILE                               print the IR of a spec (or re-print IR text)\n"
    "  ref FILE --tokens T [--batch B] [--seed S] [--varlen L1,L2,...] [--initial-state]\n"
    "          [--chunks C1,C2,...] [--dump FILE.json]\n"
    "                                        float64 reference: recurrent vs chunkwise\n"
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

static int cmd_ir(attnc_ctx *ctx, int argc, char **argv)
{
    if (argc != 1 || (argv[0][0] == '-' && argv[0][1]))
        return usage_error("ir: expected exactly one FILE%s", "");
    attnc_spec *spec = NULL;
    attnc_status st = load(ctx, argv[0], &spec);
    int rc = report(ctx, st, spec, 0);
    if (rc == EXIT_CLEAN)
        fputs(attnc_spec_ir(spec), stdout);
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

static int cmd_ref(attnc_ctx *ctx, int argc, char **argv)
{
    const char *file = NULL, *dump = NULL;
    attnc_ref_options opt = {.batch = 1};
    static uint32_t seqlens[MAX_SEQS], chunks[ATTNC_REF_MAX_CHUNKS];
    uint64_t v;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--tokens") == 0) {
            if (!parse_u64(val, 1, 1u << 24, &v))
                return usage_error("ref: --tokens needs an integer from 1 to 16777216, not '%s'", val ? val : "");
            opt.tokens = (uint32_t)v;
            i++;
        } else if (strcmp(a, "--batch") == 0) {
            if (!parse_u64(val, 1, MAX_SEQS, &v))
                return usage_error("ref: --batch needs an integer from 1 to 1024, not '%s'", val ? val : "");
            opt.batch = (uint32_t)v;
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_u64(val, 0, UINT64_MAX, &v))
                return usage_error("ref: --seed needs a non-negative integer, not '%s'", val ? val : "");
            opt.seed = v;
            i++;
        } else if (strcmp(a, "--varlen") == 0) {
            if (!val || !parse_list(val, 1, 1u << 24, seqlens, MAX_SEQS, &opt.nseq))
                return usage_error("ref: --varlen needs lengths like 5,1,9 (each >= 1), not '%s'", val ? val : "");
            opt.seqlens = seqlens;
            i++;
        } else if (strcmp(a, "--chunks") == 0) {
            if (!val || !parse_list(val, 1, 4096, chunks, ATTNC_REF_MAX_CHUNKS, &opt.nchunks))
                return usage_error("ref: --chunks needs up to 16 sizes like 1,16,64, not '%s'", val ? val : "");
            opt.chunks = chunks;
            i++;
        } else if (strcmp(a, "--initial-state") == 0) {
            opt.initial_state = 1;
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
    if (!opt.tokens && !opt.seqlens)
        return usage_error("ref: --tokens T (or --varlen) is required%s", "");
    opt.dump_json = dump;
    attnc_spec *spec = NULL;
    attnc_status st = load(ctx, file, &spec);
    int rc = report(ctx, st, spec, 0);
    if (rc != EXIT_CLEAN) {
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
