/*
 * tests/abi/header_alone.c -- maos/client.h stands alone: it compiles with
 * only the library's own include directory, and does not bring in the
 * wire's structures (maos/proto.h) or msgpack-c, so that the client ABI
 * does not change when they do (issue 10, "API hygiene").  The
 * abi-header-alone test runs it: a build failure or an #error here fails
 * the suite.
 */
#include "maos/client.h"

#ifdef MAOS_PROTO_H
#error "maos/client.h includes maos/proto.h"
#endif
#if defined(MSGPACK_H) || defined(MSGPACK_OBJECT_H)
#error "maos/client.h includes msgpack-c"
#endif

#include <stdio.h>

int main(void)
{
    /* the client's own types, usable without proto */
    maos_str s = {"x", 1};
    maos_table_entry e = {.key = s};
    maos_task_info t = {.queue = s};
    maos_queue_stat q = {.queue = s};
    maos_txn_item it = {.kind = MAOS_ITEM_PUT, .expect = MAOS_EXPECT_ANY};
    maos_append_info ai = {.count = 1};
    if (e.key.len != 1 || t.queue.len != 1 || q.queue.len != 1 ||
        it.kind != MAOS_ITEM_PUT || ai.count != 1) {
        puts("0 passed, 1 failed");
        return 1;
    }
    puts("1 passed, 0 failed");
    return 0;
}
