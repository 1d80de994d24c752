/*
 * proto/errors.c -- names and messages of the maos error codes, generated
 * from MAOS_ERRNO_MAP so that they can never drift from the enum.
 */
#include <string.h>

#include "maos/errors.h"

const char *maos_err_name(int err)
{
    switch (err) {
#define MAOS_ERR_NAME_(name, num, msg)                                         \
    case -(num):                                                               \
        return #name;
        MAOS_ERRNO_MAP(MAOS_ERR_NAME_)
#undef MAOS_ERR_NAME_
    case 0:
        return "OK";
    default:
        return "UNKNOWN";
    }
}

const char *maos_strerror(int err)
{
    switch (err) {
#define MAOS_ERR_MSG_(name, num, msg)                                          \
    case -(num):                                                               \
        return msg;
        MAOS_ERRNO_MAP(MAOS_ERR_MSG_)
#undef MAOS_ERR_MSG_
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}

int maos_err_from_name(const char *name, unsigned len)
{
#define MAOS_ERR_FROM_(n, num, msg)                                            \
    if (len == sizeof(#n) - 1 && memcmp(name, #n, len) == 0)                   \
        return -(num);
    MAOS_ERRNO_MAP(MAOS_ERR_FROM_)
#undef MAOS_ERR_FROM_
    return 0;
}
