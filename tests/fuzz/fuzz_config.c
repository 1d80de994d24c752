/*
 * tests/fuzz/fuzz_config.c -- the config file (INI, through inih) into
 * maosd: maosd_config_parse_text, as maosd reads /etc/maos/maosd.conf at
 * start and on SIGHUP.
 *
 * Invariants checked: any text is either taken or refused (-1) without a
 * crash, leak or undefined behaviour; a taken one leaves every setting
 * inside the range config.c promises (maosd.conf(5)), and the paths set.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0; /* the file ends at the first NUL, as inih reads it */
    maosd_config cfg;
    if (maosd_config_parse_text(&cfg, text, "fuzz.conf") == 0) {
        FUZZ_CHECK(cfg.max_frame >= 1024 && cfg.max_frame <= (1u << 30), "max_frame %u",
                   cfg.max_frame);
        FUZZ_CHECK(cfg.max_connections >= 1, "max_connections %u", cfg.max_connections);
        FUZZ_CHECK(cfg.hello_timeout_ms >= 10, "hello_timeout_ms %u", cfg.hello_timeout_ms);
        FUZZ_CHECK(cfg.max_subscriptions >= 1, "max_subscriptions %u", cfg.max_subscriptions);
        FUZZ_CHECK(cfg.retention_interval_s >= 1 && cfg.retention_interval_s <= 86400,
                   "retention_interval_s %u", cfg.retention_interval_s);
        FUZZ_CHECK(cfg.chain_interval_s <= 86400, "chain_interval_s %u", cfg.chain_interval_s);
        FUZZ_CHECK(cfg.n_allow_uid <= MAOSD_ALLOW_MAX && cfg.n_allow_gid <= MAOSD_ALLOW_MAX,
                   "allow lists %u %u", cfg.n_allow_uid, cfg.n_allow_gid);
        FUZZ_CHECK(maosd_log_level_name(cfg.log_level) != NULL, "log_level %d", cfg.log_level);
    }
    maosd_config_free(&cfg);
    free(text);
    return 0;
}
