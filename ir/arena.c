/* ir/arena.c: a list of geometrically growing blocks; see arena.h. */
#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} block;

struct attnc_arena {
    block *head;
    size_t total;
    bool failed;
};

#define ARENA_MIN_BLOCK ((size_t)16 * 1024)
#define ARENA_MAX_ALLOC ((size_t)1 << 34) /* 16 GiB: anything larger is a bug or an attack */

attnc_arena *attnc_arena_new(void)
{
    return calloc(1, sizeof(attnc_arena));
}

void attnc_arena_free(attnc_arena *a)
{
    if (!a)
        return;
    for (block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(a);
}

void *attnc_arena_alloc(attnc_arena *a, size_t n)
{
    if (!a || n > ARENA_MAX_ALLOC) {
        if (a)
            a->failed = true;
        return NULL;
    }
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = b ? b->size * 2 : ARENA_MIN_BLOCK;
        if (size < n)
            size = n;
        block *nb = malloc(sizeof(block) + size);
        if (!nb) {
            a->failed = true;
            return NULL;
        }
        nb->size = size;
        nb->used = 0;
        nb->next = a->head;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

void *attnc_arena_grow(attnc_arena *a, void *old, size_t old_n, size_t new_n)
{
    void *p = attnc_arena_alloc(a, new_n);
    if (p && old && old_n)
        memcpy(p, old, old_n < new_n ? old_n : new_n);
    return p;
}

void *attnc_arena_push(attnc_arena *a, void *old, size_t n, size_t elem)
{
    if (n == 0)
        return attnc_arena_alloc(a, 4 * elem);
    if (n < 4 || (n & (n - 1)) != 0)
        return old; /* capacity: 4 or the next power of two */
    if (n > ARENA_MAX_ALLOC / 2 / elem) {
        a->failed = true;
        return NULL;
    }
    return attnc_arena_grow(a, old, n * elem, 2 * n * elem);
}

char *attnc_arena_strndup(attnc_arena *a, const char *s, size_t n)
{
    char *p = attnc_arena_alloc(a, n + 1);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

static char *arena_vprintf(attnc_arena *a, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *p = attnc_arena_alloc(a, (size_t)n + 1);
    if (p)
        vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *attnc_arena_printf(attnc_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

bool attnc_arena_failed(const attnc_arena *a)
{
    return !a || a->failed;
}

size_t attnc_arena_used(const attnc_arena *a)
{
    return a ? a->total : 0;
}

void attnc_buf_init(attnc_buf *b, attnc_arena *a)
{
    b->arena = a;
    b->data = NULL;
    b->len = b->cap = 0;
}

void attnc_buf_put(attnc_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = attnc_arena_grow(b->arena, b->data, b->len, cap);
        if (!p)
            return; /* the arena remembers the failure */
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void attnc_buf_puts(attnc_buf *b, const char *s)
{
    attnc_buf_put(b, s, strlen(s));
}

void attnc_buf_printf(attnc_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        attnc_buf_put(b, small, (size_t)n);
        return;
    }
    va_start(ap, fmt);
    char *p = arena_vprintf(b->arena, fmt, ap);
    va_end(ap);
    if (p)
        attnc_buf_put(b, p, (size_t)n);
}

char *attnc_buf_str(attnc_buf *b)
{
    if (!b->data) {
        attnc_buf_put(b, "", 0);
        if (!b->data)
            return (char *)"";
    }
    return b->data;
}
