/* ir/arena.h: bump allocation for one compilation.
 *
 * Every object of a compilation (source text, AST, diagnostics, IR, printed text) comes from one arena
 * and is released with it; nothing is freed one by one.  Allocation never fails silently: when malloc
 * fails the arena records it (attnc_arena_failed) and returns NULL, and callers turn that into a status.
 */
#ifndef ATTNC_ARENA_H
#define ATTNC_ARENA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct attnc_arena attnc_arena;

attnc_arena *attnc_arena_new(void);
void attnc_arena_free(attnc_arena *a);
/* Zeroed, 16-byte aligned memory, or NULL if the system is out of memory (or n is absurd). */
void *attnc_arena_alloc(attnc_arena *a, size_t n);
/* A copy of old[0..old_n) in a block of new_n bytes (the old block stays until the arena dies). */
void *attnc_arena_grow(attnc_arena *a, void *old, size_t old_n, size_t new_n);
/* Room for element n of an array old[0..n) that grows one element at a time: old itself, or a copy in a
 * block twice as large when n is 0 or a power of two >= 4 (the capacity is implied by n, so an array must
 * only ever grow through this call).  Appending n elements costs O(n) time and memory, where growing by
 * one with attnc_arena_grow costs O(n^2): the arena keeps every old block. */
void *attnc_arena_push(attnc_arena *a, void *old, size_t n, size_t elem);
char *attnc_arena_strndup(attnc_arena *a, const char *s, size_t n);
char *attnc_arena_printf(attnc_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool attnc_arena_failed(const attnc_arena *a);
size_t attnc_arena_used(const attnc_arena *a);

/* A growable byte buffer in an arena (for printing). */
typedef struct attnc_buf {
    attnc_arena *arena;
    char *data;
    size_t len, cap;
} attnc_buf;

void attnc_buf_init(attnc_buf *b, attnc_arena *a);
void attnc_buf_put(attnc_buf *b, const char *s, size_t n);
void attnc_buf_puts(attnc_buf *b, const char *s);
void attnc_buf_printf(attnc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents, NUL-terminated (never NULL: "" after an allocation failure). */
char *attnc_buf_str(attnc_buf *b);

#endif
