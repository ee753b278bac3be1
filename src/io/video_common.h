// video_common.h — what the video reader (video.c) and writer (video_write.c)
// share, internal to src/io: their error messages.
//
// In:  the file a call was about, and printf-style words for what failed.
// Out: "PATH: WHAT" in the caller's err buffer (video.h's error strings, which
//      the caller records and goes on: a bad clip never stops a run), and -1.
#ifndef STSAE_IO_VIDEO_COMMON_H
#define STSAE_IO_VIDEO_COMMON_H

#include <stddef.h>

// Writes "path: " and the formatted words into err (cap bytes, cut to fit);
// returns -1, the video functions' error status.
int video_fail(char *err, size_t cap, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
