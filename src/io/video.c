// video.c — decoding a clip into T_in uniformly sampled RGB24 frames (video.h).
//
// Pass 1 decodes the whole stream, counting its frames and holding references
// to them while they fit in hold_bytes; then the sampled frames are known and
// converted. Beyond hold_bytes it holds only the frames that the container's
// stated frame count predicts; if the count proves right, they are the ones.
// Otherwise pass 2 opens the file again and converts the sampled frames as
// they come by, stopping after the last one.
#define _POSIX_C_SOURCE 200809L // pthread_once
#include "stsae/io/video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "video_common.h" // video_fail

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void quiet(void) { av_log_set_level(AV_LOG_QUIET); }
void video_quiet_ffmpeg(void) { pthread_once(&quiet_once, quiet); }

static const char *av_err(int e, char *buf) {
    av_strerror(e, buf, AV_ERROR_MAX_STRING_SIZE);
    return buf;
}

typedef struct {
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int stream;
    int draining;  // the demuxer is done; the decoder is being flushed
    int n_skipped; // packets or frames the decoder rejected
} Decoder;

static void dec_close(Decoder *d) {
    av_frame_free(&d->frame);
    av_packet_free(&d->pkt);
    avcodec_free_context(&d->dec);
    avformat_close_input(&d->fmt);
}

static int dec_open(Decoder *d, const char *path, char *err, size_t cap) {
    char eb[AV_ERROR_MAX_STRING_SIZE];
    memset(d, 0, sizeof(*d));
    int r = avformat_open_input(&d->fmt, path, NULL, NULL);
    if (r < 0) return video_fail(err, cap, path, "cannot open: %s", av_err(r, eb));
    r = avformat_find_stream_info(d->fmt, NULL);
    if (r < 0) {
        dec_close(d);
        return video_fail(err, cap, path, "cannot read stream information: %s", av_err(r, eb));
    }
    const AVCodec *codec = NULL;
    d->stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (d->stream < 0) {
        dec_close(d);
        return video_fail(err, cap, path, d->stream == AVERROR_DECODER_NOT_FOUND ? "no decoder for its video stream"
                                                                         : "no video stream");
    }
    d->dec = avcodec_alloc_context3(codec);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->dec || !d->pkt || !d->frame) die("%s: out of memory for the decoder", path);
    r = avcodec_parameters_to_context(d->dec, d->fmt->streams[d->stream]->codecpar);
    d->dec->thread_count = 1; // callers decode different clips in parallel
    if (r >= 0) r = avcodec_open2(d->dec, codec, NULL);
    if (r < 0) {
        dec_close(d);
        return video_fail(err, cap, path, "cannot open the %s decoder: %s", codec->name, av_err(r, eb));
    }
    return 0;
}

// Next decoded frame into d->frame: 1, or 0 at the end of the stream. Read
// errors end the stream; rejected packets and frames are skipped.
static int dec_next(Decoder *d) {
    for (int bad = 0;;) {
        int r = avcodec_receive_frame(d->dec, d->frame);
        if (r == 0) return 1;
        if (r == AVERROR_EOF) return 0;
        if (r != AVERROR(EAGAIN)) {
            d->n_skipped++;
            if (d->draining && ++bad < 64) continue; // more frames may still come out
        }
        if (d->draining) return 0;
        r = av_read_frame(d->fmt, d->pkt);
        if (r < 0) {
            d->draining = 1;
            avcodec_send_packet(d->dec, NULL);
            continue;
        }
        if (d->pkt->stream_index == d->stream && avcodec_send_packet(d->dec, d->pkt) < 0) d->n_skipped++;
        av_packet_unref(d->pkt);
    }
}

int video_sample_index(int i, int T_in, int n_frames) {
    if (PLANTED("sample_no_half")) return (int)((int64_t)i * n_frames / T_in);
    return (int)(((int64_t)2 * i + 1) * n_frames / ((int64_t)2 * T_in)); // floor((i + 0.5) n / T)
}

// Frame f into rgb [H, W, 3] (scaled to W x H if the stream changed size),
// with the frame's own colour matrix and range.
static int to_rgb(struct SwsContext **sws, const AVFrame *f, int W, int H, uint8_t *rgb) {
    *sws = sws_getCachedContext(*sws, f->width, f->height, f->format, W, H, AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL,
                                NULL, NULL);
    if (!*sws) return -1;
    int cs = f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : (int)f->colorspace;
    int *inv, *tab, src_range, dst_range, bri, con, sat;
    if (sws_getColorspaceDetails(*sws, &inv, &src_range, &tab, &dst_range, &bri, &con, &sat) >= 0) {
        if (f->color_range == AVCOL_RANGE_JPEG) src_range = 1;
        sws_setColorspaceDetails(*sws, sws_getCoefficients(cs), src_range, tab, dst_range, bri, con, sat);
    }
    uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
    int stride[4] = {3 * W, 0, 0, 0};
    return sws_scale(*sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, stride) == H ? 0 : -1;
}

static size_t frame_bytes(const AVFrame *f) {
    size_t b = 0;
    for (int i = 0; i < AV_NUM_DATA_POINTERS && f->buf[i]; i++) b += f->buf[i]->size;
    return b;
}

void video_clip_free(VideoClip *c) {
    free(c->index);
    free(c->rgb);
    memset(c, 0, sizeof(*c));
}

int video_read(const char *path, int T_in, size_t hold_bytes, VideoClip *clip, char *err, size_t errcap) {
    video_quiet_ffmpeg();
    memset(clip, 0, sizeof(*clip));
    if (T_in < 1) return video_fail(err, errcap, path, "T_in = %d frames asked for", T_in);
    Decoder d;
    if (dec_open(&d, path, err, errcap) != 0) return -1;

    // The frame count the container states (mp4 and avi index every frame;
    // mkv and webm do not): if it proves right, the frames it predicts are
    // the ones to keep, so they are held even when the others cannot be.
    const int64_t stated = d.fmt->streams[d.stream]->nb_frames;
    uint8_t *predicted = NULL; // [stated] 1 for the frames kept if n_frames == stated
    if (stated > 0 && stated < (1 << 28)) {
        predicted = xcalloc((size_t)stated, 1);
        for (int i = 0; i < T_in; i++) predicted[video_sample_index(i, T_in, (int)stated)] = 1;
    }

    // pass 1: count; hold every frame while they fit, then the predicted ones
    AVFrame **held = NULL; // [n], NULL where not held
    int n = 0, cap_held = 0, all = 1, W = 0, H = 0;
    size_t bytes = 0;
    while (dec_next(&d)) {
        if (n == 0) W = d.frame->width, H = d.frame->height;
        if (n == cap_held) {
            held = xrealloc(held, sizeof(*held) * (size_t)(2 * cap_held + 16));
            for (int k = cap_held; k < 2 * cap_held + 16; k++) held[k] = NULL;
            cap_held = 2 * cap_held + 16;
        }
        if (all && (bytes += frame_bytes(d.frame)) > hold_bytes) {
            all = 0;
            for (int k = 0; k < n; k++)
                if (!(predicted && predicted[k])) av_frame_free(&held[k]);
        }
        if (all || (predicted && n < stated && predicted[n])) {
            held[n] = av_frame_clone(d.frame);
            if (!held[n]) die("%s: out of memory holding frame %d", path, n);
        }
        av_frame_unref(d.frame);
        n++;
    }
    const int have_all = all || (predicted && n == stated); // every kept frame is held
    free(predicted);
    int rc = 0;
    if (n == 0) rc = video_fail(err, errcap, path, "no decodable video frame");
    else if (W < 1 || H < 1) rc = video_fail(err, errcap, path, "frames of size %dx%d", W, H);
    if (rc == 0) {
        clip->T = T_in;
        clip->width = W;
        clip->height = H;
        clip->n_frames = n;
        clip->n_skipped = d.n_skipped;
        clip->passes = have_all ? 1 : 2;
        clip->index = xmalloc(sizeof(int) * (size_t)T_in);
        clip->rgb = xmalloc((size_t)T_in * H * W * 3);
        for (int i = 0; i < T_in; i++) clip->index[i] = video_sample_index(i, T_in, n);
    }
    struct SwsContext *sws = NULL;
    if (rc == 0 && have_all) {
        for (int i = 0; i < T_in && rc == 0; i++)
            if (to_rgb(&sws, held[clip->index[i]], W, H, clip->rgb + (size_t)i * H * W * 3) != 0)
                rc = video_fail(err, errcap, path, "cannot convert frame %d (%s) to RGB", clip->index[i],
                          av_get_pix_fmt_name(held[clip->index[i]]->format));
    }
    for (int k = 0; k < n; k++) av_frame_free(&held[k]);
    free(held);
    dec_close(&d);

    // pass 2: the sampled frames only
    if (rc == 0 && !have_all) {
        rc = dec_open(&d, path, err, errcap);
        int k = 0, i = 0;
        while (rc == 0 && i < T_in && dec_next(&d)) {
            for (; i < T_in && clip->index[i] == k && rc == 0; i++)
                if (to_rgb(&sws, d.frame, W, H, clip->rgb + (size_t)i * H * W * 3) != 0)
                    rc = video_fail(err, errcap, path, "cannot convert frame %d (%s) to RGB", k,
                              av_get_pix_fmt_name(d.frame->format));
            av_frame_unref(d.frame);
            k++;
        }
        if (rc == 0 && i < T_in)
            rc = video_fail(err, errcap, path, "decoded %d frames on the first pass but only %d on the second", n, k);
        dec_close(&d);
    }
    sws_freeContext(sws);
    if (rc != 0) video_clip_free(clip);
    return rc;
}
