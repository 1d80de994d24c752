/*
 * daemon/op_sys.c -- hello (the handshake), ping and stats.
 */
#include <stdio.h>
#include <string.h>

#include "dispatch.h"

#define SERVER_NAME "maosd " MAOS_VERSION

int maosd_op_hello(maosd_call *call)
{
    maos_request *req = call->req;
    if (req->version != MAOS_PROTOCOL_VERSION) {
        snprintf(call->why, sizeof(call->why),
                 "protocol version %llu is not supported; this server speaks %d",
                 (unsigned long long)req->version, MAOS_PROTOCOL_VERSION);
        return MAOS_EPROTOCOL_VERSION;
    }
    maosd_conn *c = call->conn;
    if (c->hello) {
        snprintf(call->why, sizeof(call->why), "hello was already said on this connection");
        return MAOS_EBAD_REQUEST;
    }
    int rc = maosd_access_hello(call);
    if (rc)
        return rc;
    c->hello = 1;
    maosd_logf(MAOSD_LOG_DEBUG, "conn %llu hello client=\"%.*s\"",
               (unsigned long long)c->id, (int)req->client_name.len,
               req->client_name.ptr ? req->client_name.ptr : "");
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(c, &pk);
    maos_enc_reply_hello(&pk, req->rid, MAOS_PROTOCOL_VERSION, SERVER_NAME,
                         call->srv->cfg->max_frame);
    maosd_reply_end(c, mark);
    return 0;
}

int maosd_op_ping(maosd_call *call)
{
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(call->conn, &pk);
    maos_enc_reply_ok(&pk, call->req->rid);
    maosd_reply_end(call->conn, mark);
    return 0;
}

const char *maosd_server_state(const maosd_server *srv)
{
    if (maosd_store_state(srv->store) != MAOSD_STORE_OK)
        return "read_only";
    return atomic_load(&srv->no_space) ? "no_space" : "ok";
}

static maos_slice cslice(const char *s)
{
    return (maos_slice){s, (uint32_t)strlen(s)};
}

int maosd_op_stats(maosd_call *call)
{
    maos_stats st;
    maosd_server_stats(call->srv, &st);
    st.server = cslice(SERVER_NAME);
    st.state = cslice(maosd_server_state(call->srv));
    st.durability = cslice(call->srv->cfg->sync ? "sync" : "none");
    st.data_dir = cslice(call->srv->cfg->data_dir);
    /* position and hash of one durable head, read together */
    uint8_t hash[MAOS_HASH_BYTES];
    maosd_commit_durable(call->srv->commit, &st.head_position, hash);
    st.head_hash = (maos_slice){(const char *)hash, MAOS_HASH_BYTES};
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(call->conn, &pk);
    maos_enc_reply_stats(&pk, call->req->rid, &st);
    maosd_reply_end(call->conn, mark);
    return 0;
}
