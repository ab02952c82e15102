/* tests/unit/test_parse.c: the scanner and parser through ast_parse: the tree and its spans, numbers,
 * precedence and associativity, error recovery (several errors in one run), the "to match this '{'" note
 * at end of file, the missing-';' placement and the depth limits. */
#include "test_util.h"

static void parse_text(unit_src *u, const char *text)
{
    unit_open(u, "p.attn", text, strlen(text));
    u->ast = ast_parse(u->arena, &u->diags, u->file);
}

static void assert_span(attnc_span s, uint32_t start, uint32_t end)
{
    assert_int_equal(s.file, 1);
    assert_int_equal(s.start, start);
    assert_int_equal(s.end, end);
}

static void tree_and_spans(void **state)
{
    (void)state;
    unit_src u;
    /*                 0         1         2         3         4         5
     *                 012345678901234567890123456789012345678901234567890123456 */
    const char *text = "attention t1 {\n  dim K = 64, V = 2 * K;\n  input q: bf16[H, K] in [-1, 1.5];\n"
                       "  linear { query = q; mask causal, document; }\n}\n";
    parse_text(&u, text);
    assert_int_equal(u.diags.n, 0);
    assert_non_null(u.ast);
    assert_string_equal(u.ast->name.text, "t1");
    assert_span(u.ast->name.span, 10, 12);
    assert_span(u.ast->span, 0, (uint32_t)strlen(text) - 1);

    const ast_item *k = u.ast->items;
    assert_int_equal(k->kind, AST_DIM);
    assert_string_equal(k->name.text, "K");
    assert_span(k->name.span, 21, 22);
    assert_span(k->span, 17, 27); /* 'dim K = 64': the first binding starts at the keyword */
    assert_int_equal(k->value->kind, AST_NUM);
    assert_true(k->value->num == 64);
    assert_span(k->value->span, 25, 27);

    const ast_item *v = k->next;
    assert_int_equal(v->kind, AST_DIM);
    assert_string_equal(v->name.text, "V");
    assert_span(v->span, 29, 38); /* 'V = 2 * K': later bindings start at their name */
    const ast_expr *e = v->value;
    assert_int_equal(e->kind, AST_BIN);
    assert_int_equal(e->op, '*');
    assert_span(e->span, 33, 38);
    assert_int_equal(e->lhs->kind, AST_NUM);
    assert_int_equal(e->rhs->kind, AST_NAME);
    assert_string_equal(e->rhs->name.text, "K");
    assert_int_equal(e->depth, 2);

    const ast_item *q = v->next;
    assert_int_equal(q->kind, AST_INPUT);
    assert_string_equal(q->name.text, "q");
    assert_string_equal(q->dtype.text, "bf16");
    assert_int_equal(q->nshape, 2);
    assert_string_equal(q->shape->name.text, "H");
    assert_string_equal(q->shape->next->name.text, "K");
    assert_int_equal(q->lo->kind, AST_NEG);
    assert_true(q->hi->num == 1.5);
    assert_span(q->span, 42, 74);

    const ast_item *b = q->next;
    assert_int_equal(b->kind, AST_BLOCK);
    assert_string_equal(b->name.text, "linear");
    const ast_item *role = b->items;
    assert_int_equal(role->kind, AST_ROLE);
    assert_string_equal(role->name.text, "query");
    const ast_item *mask = role->next;
    assert_int_equal(mask->kind, AST_SETTING);
    assert_string_equal(mask->name.text, "mask");
    assert_int_equal(mask->nargs, 2);
    assert_string_equal(mask->args->name.text, "causal");
    assert_string_equal(mask->args->next->name.text, "document");
    assert_null(mask->next);
    assert_null(b->next);
    unit_close(&u);
}

static const ast_expr *let_value(unit_src *u, const char *expr)
{
    char text[256];
    snprintf(text, sizeof text, "attention t { let x = %s; }", expr);
    parse_text(u, text);
    assert_int_equal(u->diags.errors, 0);
    assert_non_null(u->ast);
    return u->ast->items->value;
}

static void numbers(void **state)
{
    (void)state;
    struct { const char *text; double value; } cases[] = {
        {"0", 0}, {"64", 64}, {"1.5e3", 1500}, {".5", 0.5}, {"2.", 2}, {"1e-6", 1e-6}, {"007", 7}, {"1E+2", 100},
        {"0.1", 0.1}, {"179769313486231570000000000000000000000000000000000000000000000", 1.7976931348623157e62},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unit_src u;
        const ast_expr *e = let_value(&u, cases[i].text);
        assert_int_equal(e->kind, AST_NUM);
        assert_true(e->num == cases[i].value);
        unit_close(&u);
    }
}

static void precedence_and_associativity(void **state)
{
    (void)state;
    unit_src u;
    /* a - b - c is (a - b) - c */
    const ast_expr *e = let_value(&u, "a - b - c");
    assert_int_equal(e->op, '-');
    assert_int_equal(e->lhs->kind, AST_BIN);
    assert_string_equal(e->lhs->lhs->name.text, "a");
    assert_string_equal(e->rhs->name.text, "c");
    unit_close(&u);
    /* 2 ^ 3 ^ 2 is 2 ^ (3 ^ 2) */
    e = let_value(&u, "2 ^ 3 ^ 2");
    assert_int_equal(e->op, '^');
    assert_int_equal(e->lhs->kind, AST_NUM);
    assert_int_equal(e->rhs->kind, AST_BIN);
    assert_int_equal(e->rhs->op, '^');
    unit_close(&u);
    /* -2 ^ 2 is -(2 ^ 2): ^ binds tighter than unary minus */
    e = let_value(&u, "-2 ^ 2");
    assert_int_equal(e->kind, AST_NEG);
    assert_int_equal(e->lhs->kind, AST_BIN);
    assert_int_equal(e->lhs->op, '^');
    unit_close(&u);
    /* 2 ^ -1 is allowed: the exponent is a unary */
    e = let_value(&u, "K ^ -0.5");
    assert_int_equal(e->op, '^');
    assert_int_equal(e->rhs->kind, AST_NEG);
    unit_close(&u);
    /* a + b * c / d is a + ((b * c) / d) */
    e = let_value(&u, "a + b * c / d");
    assert_int_equal(e->op, '+');
    assert_int_equal(e->rhs->op, '/');
    assert_int_equal(e->rhs->lhs->op, '*');
    unit_close(&u);
    /* parentheses group without a node of their own */
    e = let_value(&u, "(a + b) * c");
    assert_int_equal(e->op, '*');
    assert_int_equal(e->lhs->op, '+');
    assert_int_equal(e->depth, 3);
    unit_close(&u);
    /* calls: name, arguments in order, depth one more than the deepest argument */
    e = let_value(&u, "min(a, exp(b))");
    assert_int_equal(e->kind, AST_CALL);
    assert_string_equal(e->name.text, "min");
    assert_int_equal(e->nargs, 2);
    assert_string_equal(e->args->name.text, "a");
    assert_int_equal(e->args->next->kind, AST_CALL);
    assert_int_equal(e->depth, 3);
    unit_close(&u);
    e = let_value(&u, "f()");
    assert_int_equal(e->kind, AST_CALL);
    assert_int_equal(e->nargs, 0);
    assert_null(e->args);
    unit_close(&u);
}

/* One run reports every syntax error; the items after them are still in the tree. */
static void recovery_reports_several_errors(void **state)
{
    (void)state;
    unit_src u;
    parse_text(&u, "attention t {\n"
                   "  dim K = ;\n"
                   "  heads H = 4 4;\n"
                   "  linear { query = q +; key = k; }\n"
                   "  let ok = 1;\n"
                   "}\n");
    assert_int_equal(u.diags.errors, 3);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 2, 11, "unexpected ';'");
    unit_expect_diag(&u, 1, ATTNC_SEV_ERROR, 3, 15, "unexpected integer '4'");
    unit_expect_diag(&u, 2, ATTNC_SEV_ERROR, 4, 23, "unexpected ';'");
    assert_non_null(u.ast);
    const ast_item *last = u.ast->items;
    while (last && last->next)
        last = last->next;
    assert_non_null(last);
    assert_int_equal(last->kind, AST_LET);
    assert_string_equal(last->name.text, "ok");
    unit_close(&u);
}

static void eof_note_points_at_innermost_brace(void **state)
{
    (void)state;
    unit_src u;
    parse_text(&u, "attention t {\n  linear {\n    query = q;\n");
    assert_int_equal(u.diags.errors, 1);
    assert_int_equal(u.diags.n, 2);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 4, 1, "unexpected end of file");
    unit_expect_diag(&u, 1, ATTNC_SEV_NOTE, 2, 10, "to match this '{'");
    assert_int_equal(u.diags.list[1].span.start, 23);
    assert_int_equal(u.diags.list[1].span.end, 24);
    unit_close(&u);
    /* closed blocks do not count: the note is at the spec's own '{' */
    parse_text(&u, "attention t { linear { } softmax { }");
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 1, 37, "unexpected end of file");
    unit_expect_diag(&u, 1, ATTNC_SEV_NOTE, 1, 13, "to match this '{'");
    unit_close(&u);
}

static void missing_semicolon_is_placed_after_the_token(void **state)
{
    (void)state;
    unit_src u;
    parse_text(&u, "attention t {\n  dim K = 64\n  heads H = 4;\n  dim V = 1 dim W = 2;\n}\n");
    assert_int_equal(u.diags.errors, 2);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 2, 13, "expected ';' before 'heads'");
    assert_int_equal(u.diags.list[0].span.start, u.diags.list[0].span.end);
    /* on the same line the next token is simply unexpected */
    unit_expect_diag(&u, 1, ATTNC_SEV_ERROR, 4, 13, "unexpected 'dim'");
    unit_close(&u);
}

static void lexical_errors(void **state)
{
    (void)state;
    unit_src u;
    parse_text(&u, "attention t {\n  let a = 12ab;\n  let b = 1 @ 2;\n  /* open\n");
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 2, 11, "invalid number '12ab'");
    unit_expect_diag(&u, 1, ATTNC_SEV_ERROR, 3, 13, "unexpected character '@'");
    unit_expect_diag(&u, 2, ATTNC_SEV_ERROR, 3, 15, "unexpected integer '2'");
    unit_expect_diag(&u, 3, ATTNC_SEV_ERROR, 4, 3, "unterminated comment");
    unit_expect_diag(&u, 4, ATTNC_SEV_ERROR, 5, 1, "unexpected end of file");
    unit_expect_diag(&u, 5, ATTNC_SEV_NOTE, 1, 13, "to match this '{'");
    assert_int_equal(u.diags.n, 6);
    unit_close(&u);
    /* one diagnostic per run of bad bytes, whatever its length; blanks do not end a run, a token does */
    parse_text(&u, "attention t { \x01\x02\x03\x04 \xce\xbb\xce\xbb\xce\xbb }");
    assert_int_equal(u.diags.errors, 1);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 1, 15, "control character 0x01 in the source");
    assert_int_equal(u.diags.list[0].span.end - u.diags.list[0].span.start, 4);
    unit_close(&u);
    parse_text(&u, "attention t { let a = \x01\x02 1; let b = \xce\xbb\xce\xbb 2; }");
    assert_int_equal(u.diags.errors, 2);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 1, 23, "control character 0x01 in the source");
    unit_expect_diag(&u, 1, ATTNC_SEV_ERROR, 1, 37, "non-ASCII text is allowed only in comments");
    assert_int_equal(u.diags.list[1].span.end - u.diags.list[1].span.start, 4);
    unit_close(&u);
    /* comments may hold anything, NUL bytes included */
    const char text[] = "// \xff\x01 \xce\xbb\nattention t { /* \x00\x7f */ }";
    unit_open(&u, "c.attn", text, sizeof text - 1);
    u.ast = ast_parse(u.arena, &u.diags, u.file);
    assert_int_equal(u.diags.n, 0);
    assert_non_null(u.ast);
    unit_close(&u);
}

static char *repeat(const char *head, const char *unit, int n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * (size_t)n + tl + 1);
    memcpy(s, head, hl);
    for (int i = 0; i < n; i++)
        memcpy(s + hl + ul * (size_t)i, unit, ul);
    memcpy(s + hl + ul * (size_t)n, tail, tl + 1);
    return s;
}

/* An expression may be 200 levels deep; the 201st level is an error (once per expression). */
static void depth_limit(void **state)
{
    (void)state;
    unit_src u;
    char *ok = repeat("attention t { let x = ", "-", AST_MAX_DEPTH - 1, "1; }");
    parse_text(&u, ok);
    assert_int_equal(u.diags.n, 0);
    assert_int_equal(u.ast->items->value->depth, AST_MAX_DEPTH);
    unit_close(&u);
    free(ok);
    char *deep = repeat("attention t { let x = ", "-", AST_MAX_DEPTH, "1; }");
    parse_text(&u, deep);
    assert_int_equal(u.diags.n, 1);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 1, 23, "expression is nested too deeply (more than 200 levels)");
    unit_close(&u);
    free(deep);
    /* calls count too */
    char *calls = repeat("attention t { let x = ", "exp(", AST_MAX_DEPTH, "1");
    char *text = repeat(calls, ")", AST_MAX_DEPTH, "; }");
    parse_text(&u, text);
    assert_int_equal(u.diags.n, 1);
    unit_expect_diag(&u, 0, ATTNC_SEV_ERROR, 1, 23, "expression is nested too deeply (more than 200 levels)");
    unit_close(&u);
    free(calls);
    free(text);
    /* the parser's own stack is bounded as well */
    char *parens = repeat("attention t { let x = ", "(", 100000, "1");
    parse_text(&u, parens);
    assert_int_equal(u.diags.n, 1);
    assert_string_equal(u.diags.list[0].message, "the input is nested too deeply or is too large to parse");
    unit_close(&u);
    free(parens);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tree_and_spans),
        cmocka_unit_test(numbers),
        cmocka_unit_test(precedence_and_associativity),
        cmocka_unit_test(recovery_reports_several_errors),
        cmocka_unit_test(eof_note_points_at_innermost_brace),
        cmocka_unit_test(missing_semicolon_is_placed_after_the_token),
        cmocka_unit_test(lexical_errors),
        cmocka_unit_test(depth_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
