/*
 * client/time.c -- event times as text: RFC 3339 UTC with microseconds out,
 * RFC 3339 or integer microseconds in.
 *
 * Calendar arithmetic is done here (proleptic Gregorian, days from
 * 1970-01-01) rather than with gmtime/timegm, so it is exact for every
 * year 0000..9999, independent of TZ and free of global state.
 */
#include "maos/client.h"

#include <stdio.h>
#include <string.h>

/* Days since 1970-01-01 of y-m-d (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int maos_time_format(int64_t us, char *buf, size_t len)
{
    int64_t secs = floordiv(us, 1000000);
    int64_t frac = us - secs * 1000000;
    int64_t days = floordiv(secs, 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (!buf || y < 0 || y > 9999)
        return MAOS_EINVALID_ARG;
    int n = snprintf(buf, len, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", (int)y, m, d,
                     (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60),
                     (int)frac);
    if (n < 0 || (size_t)n >= len)
        return MAOS_EINVALID_ARG;
    return n;
}

/* Exactly n decimal digits at *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9')
            return -1;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int parse_int_us(const char *s, int64_t *us)
{
    const char *p = s;
    int neg = 0;
    uint64_t v = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (!*p)
        return MAOS_EINVALID_ARG;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return MAOS_EINVALID_ARG;
        if (v > (UINT64_MAX - 9) / 10)
            return MAOS_EINVALID_ARG;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return MAOS_EINVALID_ARG;
    *us = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

int maos_time_parse(const char *text, int64_t *us)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h = 0, mi = 0, s = 0, oh = 0, om = 0;
    int64_t frac_us = 0, off = 0;
    const char *p = text;
    if (!text || !us)
        return MAOS_EINVALID_ARG;
    if (strlen(text) < 10 || text[4] != '-')
        return parse_int_us(text, us);

    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return MAOS_EINVALID_ARG;
    if (mo < 1 || mo > 12 || d < 1 ||
        d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return MAOS_EINVALID_ARG;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return MAOS_EINVALID_ARG;
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) ||
            *p++ != ':' || digits(&p, 2, &s))
            return MAOS_EINVALID_ARG;
        if (h > 23 || mi > 59 || s > 60)
            return MAOS_EINVALID_ARG;
        if (*p == '.') {
            int nd = 0;
            p++;
            while (*p >= '0' && *p <= '9') {
                if (nd < 6)
                    frac_us = frac_us * 10 + (*p - '0');
                nd++;
                p++;
            }
            if (nd == 0 || nd > 9)
                return MAOS_EINVALID_ARG;
            for (; nd < 6; nd++)
                frac_us *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) ||
                oh > 23 || om > 59)
                return MAOS_EINVALID_ARG;
            off = sign * ((int64_t)oh * 3600 + om * 60);
        } else {
            return MAOS_EINVALID_ARG;
        }
        if (*p)
            return MAOS_EINVALID_ARG;
    }
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
                   (int64_t)h * 3600 + mi * 60 + s - off;
    *us = secs * 1000000 + frac_us;
    return 0;
}
