/*
 * tests/fuzz/fuzz_scope.c -- the access-control text paths (proto/scope.c):
 * a scope as maosctl, a token_create request or maosd's uid_scopes give it,
 * a token's text as hello carries it, and token_create's fields.
 *
 * Invariants checked:
 *  - A scope that parses has a kind of the list and an argument inside the
 *    input; a prefix scope allows its own argument, and matching it against
 *    the input itself and against an empty target never crashes.
 *  - A token text that parses is canonical: formatting the 32 bytes gives
 *    back exactly the input.
 *  - token_create's fields decode, or are refused with a message; decoded
 *    fields keep their limits (name, at most 64 scopes, session).
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    maos_scope sc;
    char why[256];
    if (maos_scope_parse(s, size, &sc, why, sizeof why) == 0) {
        FUZZ_CHECK(sc.kind > 0 && sc.kind < MAOS_SCOPE__KINDS, "kind %d", sc.kind);
        FUZZ_CHECK(sc.arg.len <= size && (!sc.arg.len || (sc.arg.ptr >= s &&
                                                          sc.arg.ptr + sc.arg.len <= s + size)),
                   "argument outside the input");
        FUZZ_CHECK(maos_scope_kind_name(sc.kind) != NULL, "no name");
        if (sc.kind != MAOS_SCOPE_CHANNEL)
            FUZZ_CHECK(maos_scope_allows(&sc, sc.kind, sc.arg), "a scope refuses its own "
                       "argument: %.*s", (int)size, s);
        for (int k = 1; k < MAOS_SCOPE__KINDS; k++) {
            (void)maos_scope_allows(&sc, k, (maos_slice){s, (uint32_t)size});
            (void)maos_scope_allows(&sc, k, (maos_slice){0});
        }
    } else {
        FUZZ_CHECK(why[0] != 0, "a refusal without a message");
    }
    uint8_t raw[MAOS_TOKEN_BYTES];
    if (maos_token_parse(s, size, raw) == 0) {
        char text[MAOS_TOKEN_TEXT_LEN + 1];
        maos_token_format(raw, text);
        FUZZ_CHECK(size == MAOS_TOKEN_TEXT_LEN && !memcmp(text, s, size),
                   "token text not canonical: %.*s vs %s", (int)size, s, text);
    }
    maos_token_spec t;
    if (maos_token_spec_decode(data, size, &t, why, sizeof why) == 0) {
        FUZZ_CHECK(maos_token_name_check(t.name) == 0, "bad name accepted");
        FUZZ_CHECK(t.n_scopes <= MAOS_SCOPES_MAX, "%u scopes", t.n_scopes);
        FUZZ_CHECK(t.n_scopes || t.session.len, "neither scopes nor a session");
        FUZZ_CHECK(t.session.len <= 48, "session of %u bytes", t.session.len);
    }
    return 0;
}
