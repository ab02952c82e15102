/* tests/unit/test_launch.c: the launcher's arithmetic (api/kernel.c): how many CTAs an SM holds, and
 * when and into how many groups AUTO splits the sequences for the grouped schedule.  The shapes are the
 * benchmark's (bench/RESULTS.md): K = V = 128, two V slices, H = 16, 132 SMs. */
#include "test_util.h"

#include "api_internal.h"

static void ctas_per_sm(void **state)
{
    (void)state;
    assert_int_equal(api_ctas_per_sm(128, 75520, 163), 3);    /* mamba2: shared memory and registers both 3 */
    assert_int_equal(api_ctas_per_sm(128, 108544, 250), 2);   /* gla: 108.5 KB a CTA */
    assert_int_equal(api_ctas_per_sm(256, 75520, 163), 1);    /* twice the threads: registers allow 1 */
    assert_int_equal(api_ctas_per_sm(128, 0, 32), 16);        /* threads bound it: 2048 / 128 */
    assert_int_equal(api_ctas_per_sm(128, 240 * 1024, 255), 1); /* never 0 */
    assert_int_equal(api_ctas_per_sm(128, 75520, -1), 2);     /* registers unknown: 255 */
}

static void grouped_groups(void **state)
{
    (void)state;
    const int64_t mamba2_slots = 132 * 3, gla_slots = 132 * 2;
    /* T = 32768, B = 2: 64 CTAs, 1024 chunks of 32 -> one wave */
    assert_int_equal(api_grouped_groups(64, mamba2_slots, 1024, false), 6);
    assert_int_equal(api_grouped_groups(64, gla_slots, 1024, false), 4);
    /* T = 8192, B = 8 (256 CTAs) and T = 2048, B = 32 (1024): more than half the slots, sequential */
    assert_int_equal(api_grouped_groups(256, mamba2_slots, 256, false), 0);
    assert_int_equal(api_grouped_groups(1024, gla_slots, 64, false), 0);
    /* exactly half of the slots: two groups; one CTA more, sequential */
    assert_int_equal(api_grouped_groups(132, gla_slots, 256, false), 2);
    assert_int_equal(api_grouped_groups(133, gla_slots, 256, false), 0);
    /* long single sequence, one head (long_mamba2: 2 CTAs, 8192 chunks) */
    assert_int_equal(api_grouped_groups(2, mamba2_slots, 8192, false), 198);
    /* short sequences: fewer than 16 chunks stay sequential; groups of at least 8 chunks */
    assert_int_equal(api_grouped_groups(4, mamba2_slots, 15, false), 0);
    assert_int_equal(api_grouped_groups(4, mamba2_slots, 16, false), 2);
    assert_int_equal(api_grouped_groups(4, mamba2_slots, 23, false), 2);
    assert_int_equal(api_grouped_groups(4, mamba2_slots, 24, false), 3);
    /* forced: at least 2 groups (1 for a one-chunk sequence), at most one per chunk */
    assert_int_equal(api_grouped_groups(1024, gla_slots, 64, true), 2);
    assert_int_equal(api_grouped_groups(16, mamba2_slots, 32, true), 24);
    assert_int_equal(api_grouped_groups(16, mamba2_slots, 5, true), 5);
    assert_int_equal(api_grouped_groups(16, mamba2_slots, 1, true), 1);
    /* degenerate input */
    assert_int_equal(api_grouped_groups(0, mamba2_slots, 32, false), 0);
    assert_int_equal(api_grouped_groups(16, mamba2_slots, 0, true), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ctas_per_sm),
        cmocka_unit_test(grouped_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
