// video.h — video files in and out, through FFmpeg (libavformat, libavcodec,
// libswscale).
//
// Reading (src/io/video.c). In: the path of any file FFmpeg demuxes and decodes
// (mp4, webm, avi, mkv, an image, an image sequence "dir/f%03d.png"), and
// T_in. Out: T_in frames as RGB24, sampled uniformly over the frames actually
// decoded (SPEC §4): step i keeps frame floor((i + 0.5) * n_frames / T_in).
// n_frames is only known once the stream ends, so the reader holds decoded
// frames (as references, not copies) while they fit in `hold_bytes`; beyond
// that, only the T_in frames that the container's stated frame count predicts
// (mp4 and avi state it). If the stated count proves wrong or is absent (mkv,
// webm), the video is decoded a second time, keeping only the sampled frames.
// Memory is therefore bounded by hold_bytes plus 2 T_in frames, whatever the
// video's length. A clip that cannot be read (missing, not a video, no
// decoder, zero decodable frames) is an error string naming the path and the
// reason, never a crash and never an exit: the caller records it and skips
// the clip. Packets the decoder rejects are skipped and counted.
//
// Writing (src/io/video_write.c). In: RGB24 frames. Out: an encoded video file
// (container from the extension), written to PATH.tmp and renamed to PATH
// when closed, bit-exact for the same frames (single-threaded encoder,
// FFmpeg's bitexact flags: no version strings, no dates).
//
// Still pictures (src/io/image_write.c). In: one RGB24 or RGBA picture.
// Out: a JPEG file (FFmpeg's MJPEG encoder, a fixed quantizer) or a PNG file
// (lossless, with alpha), written to a temporary name and renamed.
//
// All report errors as "PATH: WHAT" through src/io/video_common.h.
//
// Thread-safe: different clips may be read or written from different threads.
#ifndef STSAE_VIDEO_H
#define STSAE_VIDEO_H

#include <stddef.h>
#include <stdint.h>

#define VIDEO_HOLD_BYTES ((size_t)256 << 20) // a good default for hold_bytes

typedef struct {
    int T;          // frames kept: the T_in asked for
    int width, height;
    int n_frames;   // frames the stream decoded to
    int n_skipped;  // packets or frames the decoder rejected (skipped)
    int passes;     // decoding passes it took (1 or 2)
    int *index;     // [T] decoded frame kept at each step
    uint8_t *rgb;   // [T, height, width, 3]
} VideoClip;

// Reads `path` into clip (T_in >= 1). 0 on success; -1 with "PATH: reason"
// in err, clip left empty. hold_bytes = 0 always decodes twice.
int video_read(const char *path, int T_in, size_t hold_bytes, VideoClip *clip, char *err, size_t errcap);
void video_clip_free(VideoClip *clip);

// The frame kept at step i of T_in out of n_frames (SPEC §4).
int video_sample_index(int i, int T_in, int n_frames);

// Turns FFmpeg's own logging off, once for the process (our messages name the
// path and the reason). The readers and writers call it; thread-safe.
void video_quiet_ffmpeg(void);

typedef struct VideoWriter VideoWriter;

// Opens PATH for `width` x `height` frames at `fps` with encoder `codec`
// ("mpeg4", "mjpeg", "ffv1", "libvpx-vp9", ...), in the container named by
// PATH's extension (.mp4, .avi, .mkv, .webm). The encoder gets the RGB24 frames
// in its least lossy pixel format (yuv420p for mpeg4; RGB for ffv1, which is
// then lossless). qscale: fixed quantizer (1 best, 31 worst) for encoders
// that take one (mpeg4, mjpeg); 0 for the encoder's default rate control.
// NULL with "PATH: reason" in err on failure.
VideoWriter *video_writer_open(const char *path, const char *codec, int width, int height, int fps,
                               int qscale, char *err, size_t errcap);
// Encodes one frame, rgb [height, width, 3]. 0, or -1 with the reason in err.
int video_writer_frame(VideoWriter *w, const uint8_t *rgb, char *err, size_t errcap);
// commit = 1: flushes the encoder, writes the trailer and renames PATH.tmp to
// PATH (0, or -1 with the reason in err). commit = 0: discards PATH.tmp.
// Frees w either way.
int video_writer_close(VideoWriter *w, int commit, char *err, size_t errcap);

// Writes rgb [height, width, 3] to PATH as a JPEG with quantizer qscale (1
// best, 31 worst; 2-4 look like the picture). 0, or -1 with "PATH: reason"
// in err and no file under PATH.
int image_write_jpeg(const char *path, const uint8_t *rgb, int width, int height, int qscale, char *err,
                     size_t errcap);
// Writes rgba [height, width, 4] to PATH as a PNG. 0, or -1 as above.
int image_write_png_rgba(const char *path, const uint8_t *rgba, int width, int height, char *err, size_t errcap);

#endif
