/* Logging: one line per event to stderr, in key=value text or JSON. */
#include "util/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

log_level log_min_level = LOG_INFO;
static int log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_set_level_name(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            log_min_level = (log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_set_format_name(const char *name)
{
    if (strcmp(name, "text") == 0)
        log_json = 0;
    else if (strcmp(name, "json") == 0)
        log_json = 1;
    else
        return -1;
    return 0;
}

void log_write(log_level level, const char *fmt, ...)
{
    char msg[2048];
    char ts[40];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof ts - tl, ".%03dZ", (int)(tv.tv_usec / 1000));

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    /* Each line leaves in one write(2), so lines from several threads never interleave. */
    char line[4400];
    int n;
    if (!log_json) {
        n = snprintf(line, sizeof line, "ts=%s level=%s %s\n", ts, level_names[level], msg);
        goto emit;
    }
    /* JSON: the formatted key=value text goes into "msg", escaped. */
    char esc[4200];
    size_t j = 0;
    for (const char *p = msg; *p && j < sizeof esc - 8; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            esc[j++] = '\\';
            esc[j++] = (char)c;
        } else if (c < 0x20) {
            j += (size_t)snprintf(esc + j, sizeof esc - j, "\\u%04x", c);
        } else {
            esc[j++] = (char)c;
        }
    }
    esc[j] = 0;
    n = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
                 level_names[level], esc);
emit:
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
