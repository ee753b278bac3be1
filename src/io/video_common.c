// video_common.c — the error messages of the video reader and writer
// (video_common.h).
#include "video_common.h"

#include <stdarg.h>
#include <stdio.h>

int video_fail(char *err, size_t cap, const char *path, const char *fmt, ...) {
    int n = snprintf(err, cap, "%s: ", path);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < cap) vsnprintf(err + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}
