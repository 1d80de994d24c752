/*
 * tests/fuzz/fuzz_json.c -- the client's JSON edge: what maosctl and agents
 * feed in as JSON text (append DATA_JSON, --meta, --batch lines) and the
 * msgpack it turns into JSON for output.
 *
 * Invariants checked:
 *  - JSON text that converts gives exactly one well-formed msgpack value,
 *    which converts back to JSON text, which converts to the same msgpack
 *    bytes (the JSON <-> msgpack mapping is a fixed point after one trip).
 *  - Any bytes given as msgpack either convert to JSON or are refused with
 *    an error code; nothing crashes or leaks.
 */
#include <jansson.h>

#include "fuzz.h"
#include "maos/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *mp = NULL, *text = NULL, *mp2 = NULL;
    size_t mp_len = 0, mp2_len = 0;
    char why[256];

    if (maos_json_text_to_msgpack((const char *)data, size, &mp, &mp_len, why,
                                  sizeof why) == 0) {
        FUZZ_CHECK(maos_mp_check(mp, mp_len, NULL) == 0, "bad msgpack from JSON");
        int rc = maos_msgpack_to_json_text(mp, mp_len, &text);
        FUZZ_CHECK(rc == 0, "msgpack from JSON does not convert back: %d", rc);
        rc = maos_json_text_to_msgpack(text, strlen(text), &mp2, &mp2_len, why,
                                       sizeof why);
        FUZZ_CHECK(rc == 0, "JSON we wrote does not parse: %d %s (%s)", rc, why, text);
        FUZZ_CHECK(mp_len == mp2_len && memcmp(mp, mp2, mp_len) == 0,
                   "round trip changed the value: %s", text);
    }
    free(mp);
    free(text);
    free(mp2);

    json_t *j = NULL;
    if (maos_msgpack_to_json(data, size, &j) == 0) {
        char *t = NULL;
        FUZZ_CHECK(maos_json_dump(j, &t) == 0, "converted value does not dump");
        free(t);
        json_decref(j);
    }
    return 0;
}
