// image_write.c — one picture into a file (video.h), through FFmpeg's
// encoders: an RGB24 picture as a JPEG (one encoded frame of MJPEG is a
// whole JFIF file: 4:2:0, full-range YUV, a fixed quantizer), an RGBA one as
// a PNG (lossless, its alpha kept). Bit-exact flags. Written through paths.h's
// temporary name, fsync and rename: a picture under its final name is whole.
#define _POSIX_C_SOURCE 200809L
#include <libavcodec/avcodec.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/io/video.h"
#include "video_common.h" // video_fail

// The encoded picture (src_fmt pixels, packed) into pkt: codec id with
// pixel format enc_fmt, qscale > 0 a fixed quantizer. 0, or -1 with the
// reason in err.
static int encode_picture(enum AVCodecID id, enum AVPixelFormat src_fmt, enum AVPixelFormat enc_fmt, int bpp,
                          const uint8_t *px, int width, int height, int qscale, AVPacket *pkt, const char *path,
                          char *err, size_t cap) {
    char eb[AV_ERROR_MAX_STRING_SIZE];
    const AVCodec *codec = avcodec_find_encoder(id);
    if (!codec) return video_fail(err, cap, path, "FFmpeg has no %s encoder", avcodec_get_name(id));
    AVCodecContext *e = avcodec_alloc_context3(codec);
    AVFrame *frame = av_frame_alloc();
    if (!e || !frame) die("%s: out of memory for the JPEG encoder", path);
    e->width = width;
    e->height = height;
    e->pix_fmt = enc_fmt;
    if (enc_fmt == AV_PIX_FMT_YUVJ420P) e->color_range = AVCOL_RANGE_JPEG;
    e->time_base = (AVRational){1, 1};
    e->thread_count = 1;
    e->flags |= AV_CODEC_FLAG_BITEXACT;
    if (qscale > 0) {
        e->flags |= AV_CODEC_FLAG_QSCALE;
        e->global_quality = FF_QP2LAMBDA * qscale;
    }
    int r = avcodec_open2(e, codec, NULL), rc = 0;
    struct SwsContext *sws = NULL;
    if (r < 0) {
        rc = video_fail(err, cap, path, "cannot open the %s encoder: %s", avcodec_get_name(id),
                        av_make_error_string(eb, sizeof(eb), r));
    } else {
        frame->format = e->pix_fmt;
        frame->width = width;
        frame->height = height;
        if (av_frame_get_buffer(frame, 0) < 0) die("%s: out of memory for a frame", path);
        sws = sws_getContext(width, height, src_fmt, width, height, enc_fmt,
                             SWS_BILINEAR | SWS_ACCURATE_RND | SWS_BITEXACT, NULL, NULL, NULL);
        if (!sws)
            rc = video_fail(err, cap, path, "no conversion from %s to %s", av_get_pix_fmt_name(src_fmt),
                            av_get_pix_fmt_name(enc_fmt));
    }
    if (rc == 0) {
        const uint8_t *src[4] = {px, NULL, NULL, NULL};
        const int stride[4] = {bpp * width, 0, 0, 0};
        sws_scale(sws, src, stride, 0, height, frame->data, frame->linesize);
        frame->pts = 0;
        if ((r = avcodec_send_frame(e, frame)) < 0 || (r = avcodec_send_frame(e, NULL)) < 0 ||
            (r = avcodec_receive_packet(e, pkt)) < 0)
            rc = video_fail(err, cap, path, "%s encoding failed: %s", avcodec_get_name(id),
                            av_make_error_string(eb, sizeof(eb), r));
    }
    sws_freeContext(sws);
    av_frame_free(&frame);
    avcodec_free_context(&e);
    return rc;
}

// Encodes and writes; 0, or -1 with err.
static int write_picture(const char *path, enum AVCodecID id, enum AVPixelFormat src_fmt, enum AVPixelFormat enc_fmt,
                         int bpp, const uint8_t *px, int width, int height, int qscale, char *err, size_t cap) {
    video_quiet_ffmpeg();
    if (width < 1 || height < 1 || width > 65535 || height > 65535)
        return video_fail(err, cap, path, "bad picture size %dx%d", width, height);
    AVPacket *pkt = av_packet_alloc();
    if (!pkt) die("%s: out of memory for a packet", path);
    int rc = encode_picture(id, src_fmt, enc_fmt, bpp, px, width, height, qscale, pkt, path, err, cap);
    if (rc == 0) {
        char tmp[4200];
        FILE *f = path_tmp_open(path, tmp, sizeof(tmp), err, cap);
        if (!f) rc = -1;
        else {
            fwrite(pkt->data, 1, (size_t)pkt->size, f); // a short write shows in ferror at the commit
            rc = path_tmp_commit(f, tmp, path, err, cap);
        }
    }
    av_packet_free(&pkt);
    return rc;
}

int image_write_jpeg(const char *path, const uint8_t *rgb, int width, int height, int qscale, char *err, size_t cap) {
    if (qscale < 1 || qscale > 31) return video_fail(err, cap, path, "JPEG quantizer %d is not in [1, 31]", qscale);
    return write_picture(path, AV_CODEC_ID_MJPEG, AV_PIX_FMT_RGB24, AV_PIX_FMT_YUVJ420P, 3, rgb, width, height, qscale,
                         err, cap);
}

int image_write_png_rgba(const char *path, const uint8_t *rgba, int width, int height, char *err, size_t cap) {
    return write_picture(path, AV_CODEC_ID_PNG, AV_PIX_FMT_RGBA, AV_PIX_FMT_RGBA, 4, rgba, width, height, 0, err, cap);
}
