/* Logging: one line per event, key=value (or JSON), level checked before formatting. */
#ifndef SDO_LOG_H
#define SDO_LOG_H

#include <stdarg.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level;

extern log_level log_min_level;

/* Sets the level and format ("text" or "json"). Returns 0, or -1 on an unknown name. */
int log_set_level_name(const char *name);
int log_set_format_name(const char *name);

/* Writes one line to stderr: "ts=... level=... " + the formatted message. */
void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOGF(lvl, ...)                                                                             \
    do {                                                                                           \
        if ((lvl) >= log_min_level)                                                                \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_debug(...) LOGF(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) LOGF(LOG_INFO, __VA_ARGS__)
#define log_warn(...) LOGF(LOG_WARN, __VA_ARGS__)
#define log_error(...) LOGF(LOG_ERROR, __VA_ARGS__)

#endif
