/* tests/unit/test_arena.c: the arena (ir/arena.c): alignment, zeroing, growth across blocks, grow, push,
 * strndup, printf, and the attnc_buf byte buffer. */
#include "test_util.h"

#include <stdint.h>

static void alloc_is_aligned_and_zeroed(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    assert_non_null(a);
    for (size_t n = 1; n <= 100; n++) {
        unsigned char *p = attnc_arena_alloc(a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(p[i], 0);
        memset(p, 0xff, n); /* dirty it: the next allocation must still come back zeroed */
    }
    assert_false(attnc_arena_failed(a));
    attnc_arena_free(a);
}

static void used_counts_rounded_sizes(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    assert_int_equal(attnc_arena_used(a), 0);
    assert_non_null(attnc_arena_alloc(a, 1));
    assert_int_equal(attnc_arena_used(a), 16);
    assert_non_null(attnc_arena_alloc(a, 17));
    assert_int_equal(attnc_arena_used(a), 48);
    assert_non_null(attnc_arena_alloc(a, 0)); /* a zero-size request still gets a distinct slot */
    assert_int_equal(attnc_arena_used(a), 64);
    assert_non_null(attnc_arena_alloc(a, 32));
    assert_int_equal(attnc_arena_used(a), 96);
    attnc_arena_free(a);
}

/* Many allocations spill over several blocks (the first is 16 KiB); none overlaps another, and what was
 * written to each survives. */
static void growth_across_blocks(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    enum { N = 300, SIZE = 1000 };
    unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = attnc_arena_alloc(a, SIZE);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        memset(p[i], i & 0xff, SIZE);
    }
    for (int i = 0; i < N; i++)
        for (int k = 0; k < SIZE; k++)
            assert_int_equal(p[i][k], i & 0xff);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            assert_true(p[i] + SIZE <= p[j] || p[j] + SIZE <= p[i]);
    assert_int_equal(attnc_arena_used(a), (size_t)N * 1008);
    /* one allocation larger than any block so far gets a block of its own */
    unsigned char *big = attnc_arena_alloc(a, (size_t)1 << 20);
    assert_non_null(big);
    assert_int_equal(big[0], 0);
    assert_int_equal(big[((size_t)1 << 20) - 1], 0);
    assert_false(attnc_arena_failed(a));
    attnc_arena_free(a);
}

static void absurd_size_fails_and_is_remembered(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    assert_false(attnc_arena_failed(a));
    assert_null(attnc_arena_alloc(a, ((size_t)1 << 34) + 1));
    assert_true(attnc_arena_failed(a));
    assert_non_null(attnc_arena_alloc(a, 8)); /* later small requests still work; the flag stays */
    assert_true(attnc_arena_failed(a));
    attnc_arena_free(a);
    /* a NULL arena is failed, has used nothing, and can be freed */
    assert_true(attnc_arena_failed(NULL));
    assert_int_equal(attnc_arena_used(NULL), 0);
    assert_null(attnc_arena_alloc(NULL, 8));
    attnc_arena_free(NULL);
}

static void grow_copies_the_prefix(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    char *p = attnc_arena_alloc(a, 8);
    memcpy(p, "abcdefgh", 8);
    char *q = attnc_arena_grow(a, p, 8, 32);
    assert_non_null(q);
    assert_ptr_not_equal(p, q);
    assert_memory_equal(q, "abcdefgh", 8);
    for (int i = 8; i < 32; i++)
        assert_int_equal(q[i], 0);
    char *r = attnc_arena_grow(a, q, 8, 4); /* shrinking copies only what fits */
    assert_memory_equal(r, "abcd", 4);
    char *s = attnc_arena_grow(a, NULL, 0, 16); /* growing nothing is an allocation */
    assert_non_null(s);
    assert_int_equal(s[0], 0);
    attnc_arena_free(a);
}

/* attnc_arena_push: capacity 4, then doubling at each power of two; the contents move with it. */
static void push_grows_geometrically(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    uint32_t *v = NULL;
    uint32_t *prev = NULL;
    int moves = 0;
    for (uint32_t n = 0; n < 1000; n++) {
        v = attnc_arena_push(a, v, n, sizeof *v);
        assert_non_null(v);
        bool moved = v != prev;
        bool expect_move = n == 0 || (n >= 4 && (n & (n - 1)) == 0);
        assert_int_equal(moved, expect_move);
        moves += moved;
        v[n] = n * 7;
        prev = v;
        for (uint32_t i = 0; i <= n; i += 97)
            assert_int_equal(v[i], i * 7);
    }
    assert_int_equal(moves, 9); /* 0, 4, 8, ..., 512 */
    /* O(n) memory: 4 + 8 + ... + 1024 elements in all */
    assert_true(attnc_arena_used(a) <= 2048 * sizeof *v + 16 * 10);
    attnc_arena_free(a);
}

static void strndup_copies_and_terminates(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    char *s = attnc_arena_strndup(a, "abcdef", 3);
    assert_string_equal(s, "abc");
    char *e = attnc_arena_strndup(a, "xyz", 0);
    assert_string_equal(e, "");
    char *z = attnc_arena_strndup(a, "a\0b", 3); /* bytes are copied as they are, NUL included */
    assert_memory_equal(z, "a\0b", 4);
    attnc_arena_free(a);
}

static void printf_formats_any_length(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    assert_string_equal(attnc_arena_printf(a, "x=%d %s %.3f", 42, "ok", 0.5), "x=42 ok 0.500");
    assert_string_equal(attnc_arena_printf(a, "%s", ""), "");
    char *long_s = attnc_arena_printf(a, "%0*d|", 1000, 7);
    assert_int_equal(strlen(long_s), 1001);
    assert_int_equal(long_s[998], '0');
    assert_int_equal(long_s[999], '7');
    assert_int_equal(long_s[1000], '|');
    attnc_arena_free(a);
}

static void buf_appends_and_terminates(void **state)
{
    (void)state;
    attnc_arena *a = attnc_arena_new();
    attnc_buf b;
    attnc_buf_init(&b, a);
    assert_string_equal(attnc_buf_str(&b), ""); /* never NULL, even when empty */
    attnc_buf_put(&b, "ab\0cd", 5);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "ab\0cd", 6);
    attnc_buf_init(&b, a);
    attnc_buf_puts(&b, "hello");
    attnc_buf_printf(&b, ", %s #%u", "world", 7u);
    assert_string_equal(attnc_buf_str(&b), "hello, world #7");
    assert_int_equal(b.len, 15);
    /* past the 256-byte stack buffer of attnc_buf_printf, and past several doublings */
    attnc_buf_printf(&b, "%0*d", 300, 1);
    assert_int_equal(b.len, 315);
    assert_true(b.cap >= b.len + 1);
    for (int i = 0; i < 1000; i++)
        attnc_buf_puts(&b, "0123456789");
    assert_int_equal(b.len, 10315);
    assert_int_equal(strlen(attnc_buf_str(&b)), 10315);
    assert_memory_equal(attnc_buf_str(&b) + 10305, "0123456789", 11);
    assert_memory_equal(attnc_buf_str(&b), "hello, world #7000", 18);
    attnc_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(alloc_is_aligned_and_zeroed),
        cmocka_unit_test(used_counts_rounded_sizes),
        cmocka_unit_test(growth_across_blocks),
        cmocka_unit_test(absurd_size_fails_and_is_remembered),
        cmocka_unit_test(grow_copies_the_prefix),
        cmocka_unit_test(push_grows_geometrically),
        cmocka_unit_test(strndup_copies_and_terminates),
        cmocka_unit_test(printf_formats_any_length),
        cmocka_unit_test(buf_appends_and_terminates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
