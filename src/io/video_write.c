// video_write.c — encoding RGB24 frames into a video file (video.h), written
// to PATH.tmp and renamed on commit; bit-exact for the same frames.
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/io/video.h"
#include "video_common.h" // video_fail

struct VideoWriter {
    char *path, *tmp;
    AVFormatContext *fmt;
    AVCodecContext *enc;
    AVStream *st;
    AVFrame *frame;
    AVPacket *pkt;
    struct SwsContext *sws;
    int64_t pts;
};

static void writer_free(VideoWriter *w) {
    if (w->fmt && w->fmt->pb) avio_closep(&w->fmt->pb);
    avformat_free_context(w->fmt);
    avcodec_free_context(&w->enc);
    av_frame_free(&w->frame);
    av_packet_free(&w->pkt);
    sws_freeContext(w->sws);
    free(w->path);
    free(w->tmp);
    free(w);
}

// Sends `frame` (NULL: flush) and writes every packet the encoder returns.
static int encode(VideoWriter *w, AVFrame *frame, char *err, size_t cap) {
    char eb[AV_ERROR_MAX_STRING_SIZE];
    int r = avcodec_send_frame(w->enc, frame);
    if (r < 0)
        return video_fail(err, cap, w->tmp, "encoder refused a frame: %s", av_make_error_string(eb, sizeof(eb), r));
    for (;;) {
        r = avcodec_receive_packet(w->enc, w->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
        if (r < 0) return video_fail(err, cap, w->tmp, "encoding failed: %s", av_make_error_string(eb, sizeof(eb), r));
        if (w->pkt->duration == 0) w->pkt->duration = 1; // one frame; else mp4's edit list drops the last
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->st->time_base);
        w->pkt->stream_index = w->st->index;
        r = av_interleaved_write_frame(w->fmt, w->pkt);
        if (r < 0)
            return video_fail(err, cap, w->tmp, "cannot write a packet: %s", av_make_error_string(eb, sizeof(eb), r));
    }
}

VideoWriter *video_writer_open(const char *path, const char *codec_name, int width, int height, int fps,
                               int qscale, char *err, size_t cap) {
    char eb[AV_ERROR_MAX_STRING_SIZE];
    video_quiet_ffmpeg();
    VideoWriter *w = xcalloc(1, sizeof(*w));
    size_t n = strlen(path);
    w->path = xmalloc(n + 1);
    memcpy(w->path, path, n + 1);
    w->tmp = xmalloc(n + 5);
    snprintf(w->tmp, n + 5, "%s.tmp", path);
    const AVOutputFormat *of = av_guess_format(NULL, path, NULL); // from the final name's extension
    const AVCodec *codec = avcodec_find_encoder_by_name(codec_name);
    int r = -1;
    if (!of) video_fail(err, cap, path, "no container for this file extension");
    else if (!codec) video_fail(err, cap, path, "FFmpeg has no encoder '%s'", codec_name);
    else if (width < 1 || height < 1 || fps < 1)
        video_fail(err, cap, path, "bad frame size %dx%d or fps %d", width, height, fps);
    else if ((r = avformat_alloc_output_context2(&w->fmt, of, NULL, w->tmp)) < 0)
        video_fail(err, cap, path, "cannot set up the container: %s", av_make_error_string(eb, sizeof(eb), r));
    if (r < 0) {
        writer_free(w);
        return NULL;
    }
    w->fmt->flags |= AVFMT_FLAG_BITEXACT;
    w->st = avformat_new_stream(w->fmt, NULL);
    w->enc = avcodec_alloc_context3(codec);
    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    if (!w->st || !w->enc || !w->frame || !w->pkt) die("%s: out of memory for the encoder", path);

    // the encoder's least lossy pixel format for RGB24 input
    enum AVPixelFormat pix = AV_PIX_FMT_YUV420P;
    if (codec->pix_fmts) pix = avcodec_find_best_pix_fmt_of_list(codec->pix_fmts, AV_PIX_FMT_RGB24, 0, NULL);
    AVCodecContext *e = w->enc;
    e->width = width;
    e->height = height;
    e->pix_fmt = pix;
    e->time_base = (AVRational){1, fps};
    e->framerate = (AVRational){fps, 1};
    e->gop_size = 12;
    e->max_b_frames = 0;
    e->thread_count = 1;
    e->flags |= AV_CODEC_FLAG_BITEXACT;
    if (pix == AV_PIX_FMT_YUVJ420P || pix == AV_PIX_FMT_YUVJ422P || pix == AV_PIX_FMT_YUVJ444P)
        e->color_range = AVCOL_RANGE_JPEG;
    if (qscale > 0) {
        e->flags |= AV_CODEC_FLAG_QSCALE;
        e->global_quality = FF_QP2LAMBDA * qscale;
    }
    if (w->fmt->oformat->flags & AVFMT_GLOBALHEADER) e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((r = avcodec_open2(e, codec, NULL)) < 0 ||
        (r = avcodec_parameters_from_context(w->st->codecpar, e)) < 0) {
        video_fail(err, cap, path, "cannot open the %s encoder: %s", codec_name,
                   av_make_error_string(eb, sizeof(eb), r));
        writer_free(w);
        return NULL;
    }
    w->st->time_base = e->time_base;
    w->frame->format = pix;
    w->frame->width = width;
    w->frame->height = height;
    if (av_frame_get_buffer(w->frame, 0) < 0) die("%s: out of memory for a frame", path);
    w->sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, pix, SWS_BILINEAR | SWS_ACCURATE_RND |
                            SWS_BITEXACT, NULL, NULL, NULL);
    if (!w->sws) {
        video_fail(err, cap, path, "no conversion from RGB24 to %s", av_get_pix_fmt_name(pix));
        writer_free(w);
        return NULL;
    }
    if ((r = avio_open(&w->fmt->pb, w->tmp, AVIO_FLAG_WRITE)) < 0) {
        video_fail(err, cap, w->tmp, "cannot create: %s", av_make_error_string(eb, sizeof(eb), r));
        writer_free(w);
        return NULL;
    }
    if ((r = avformat_write_header(w->fmt, NULL)) < 0) {
        video_fail(err, cap, w->tmp, "cannot write the header: %s", av_make_error_string(eb, sizeof(eb), r));
        video_writer_close(w, 0, NULL, 0);
        return NULL;
    }
    return w;
}

int video_writer_frame(VideoWriter *w, const uint8_t *rgb, char *err, size_t cap) {
    if (av_frame_make_writable(w->frame) < 0) die("%s: out of memory for a frame", w->tmp);
    const uint8_t *src[4] = {rgb, NULL, NULL, NULL};
    int stride[4] = {3 * w->enc->width, 0, 0, 0};
    sws_scale(w->sws, src, stride, 0, w->enc->height, w->frame->data, w->frame->linesize);
    w->frame->pts = w->pts++;
    return encode(w, w->frame, err, cap);
}

int video_writer_close(VideoWriter *w, int commit, char *err, size_t cap) {
    char eb[AV_ERROR_MAX_STRING_SIZE];
    int rc = 0;
    if (commit) {
        rc = encode(w, NULL, err, cap);
        int r;
        if (rc == 0 && (r = av_write_trailer(w->fmt)) < 0)
            rc = video_fail(err, cap, w->tmp, "cannot write the trailer: %s", av_make_error_string(eb, sizeof(eb), r));
        if (rc == 0 && (r = avio_closep(&w->fmt->pb)) < 0)
            rc = video_fail(err, cap, w->tmp, "cannot close: %s", av_make_error_string(eb, sizeof(eb), r));
        if (rc == 0 && rename(w->tmp, w->path) != 0) rc = video_fail(err, cap, w->tmp, "cannot rename to %s", w->path);
    }
    if (w->fmt && w->fmt->pb) avio_closep(&w->fmt->pb);
    if (!commit || rc != 0) remove(w->tmp);
    writer_free(w);
    return rc;
}
