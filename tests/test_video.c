// test_video.c — video files written and read back (video.h), in process:
//   for each codec and container (mpeg4/.mp4, mjpeg/.avi, ffv1/.mkv, and
//   VP9/.webm as Something-Something v2 ships, when FFmpeg has libvpx), clips
//   whose frame k is a solid grey level g(k): every frame decodes (n_frames),
//   the kept frame of step i is floor((i + 0.5) * n / T) (computed here in
//   double), and its pixels show g of that frame (exactly for the lossless
//   codec, within 3 levels for the lossy ones), for T below, at and above n;
//   with nothing held (hold_bytes 0) the frames are the same bytes, taken in
//   one pass where the container states the frame count (mp4, avi) and in
//   two where it does not (mkv, webm);
//   the writer is bit-exact (same frames -> same file) and leaves no .tmp;
//   a discarded writer leaves nothing; unreadable inputs (missing, empty, not
//   a video, truncated) are an error naming the path, never a crash.
// Usage: test_video DIR (a scratch directory). Prints "N passed, M failed";
// exits 1 on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>

#include "stsae/io/video.h"

#include "expect.h"

static char dir[512];

enum { W = 48, H = 32 };
static int grey(int k) { return 10 + 6 * k; } // distinct, 6 apart, for k < 40

static int write_clip(const char *path, const char *codec, int n) {
    char err[1024];
    VideoWriter *w = video_writer_open(path, codec, W, H, 8, 3, err, sizeof(err));
    if (!w) {
        printf("     %s\n", err);
        return -1;
    }
    unsigned char rgb[W * H * 3];
    for (int k = 0; k < n; k++) {
        memset(rgb, grey(k), sizeof(rgb));
        if (video_writer_frame(w, rgb, err, sizeof(err)) != 0) {
            printf("     %s\n", err);
            video_writer_close(w, 0, NULL, 0);
            return -1;
        }
    }
    if (video_writer_close(w, 1, err, sizeof(err)) != 0) {
        printf("     %s\n", err);
        return -1;
    }
    return 0;
}

static unsigned char *slurp(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n + 1);
    if (fread(b, 1, (size_t)*n, f) != (size_t)*n) *n = -1;
    fclose(f);
    return b;
}

static int exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void test_codec(const char *codec, const char *ext, int lossless, int states_count) {
    const int ns[] = {1, 5, 37}, Ts[] = {1, 4, 5, 16, 40};
    for (int a = 0; a < 3; a++) {
        int n = ns[a];
        char path[1024], what[256];
        snprintf(path, sizeof(path), "%s/grey_%s_%d.%s", dir, codec, n, ext);
        snprintf(what, sizeof(what), "%s: write %d frames", codec, n);
        expect(write_clip(path, codec, n) == 0, what);
        for (int b = 0; b < 5; b++) {
            int T = Ts[b];
            VideoClip one, two;
            char err[1024];
            int r1 = video_read(path, T, VIDEO_HOLD_BYTES, &one, err, sizeof(err));
            if (r1) printf("     %s\n", err);
            int r2 = video_read(path, T, 0, &two, err, sizeof(err));
            if (r2) printf("     %s\n", err);
            snprintf(what, sizeof(what), "%s: n=%d T=%d reads in one pass and in two", codec, n, T);
            expect(r1 == 0 && r2 == 0, what);
            if (r1 || r2) continue;
            snprintf(what, sizeof(what), "%s: n=%d T=%d: n_frames %d, %dx%d", codec, n, T, one.n_frames, one.width,
                     one.height);
            expect(one.n_frames == n && two.n_frames == n && one.width == W && one.height == H, what);
            int idx_ok = 1, pix_ok = 1, worst = 0;
            for (int i = 0; i < T; i++) {
                int want = (int)floor((i + 0.5) * n / T);
                idx_ok &= one.index[i] == want && two.index[i] == want;
                double mean = 0;
                for (int p = 0; p < W * H * 3; p++) mean += one.rgb[(size_t)i * W * H * 3 + p];
                mean /= W * H * 3;
                int dev = (int)ceil(fabs(mean - grey(want)));
                if (dev > worst) worst = dev;
                pix_ok &= lossless ? dev == 0 : dev <= 3;
            }
            snprintf(what, sizeof(what), "%s: n=%d T=%d: frame i = floor((i + 0.5) n / T)", codec, n, T);
            expect(idx_ok, what);
            snprintf(what, sizeof(what), "%s: n=%d T=%d: pixels of the kept frames (worst %d levels)", codec, n, T,
                     worst);
            expect(pix_ok, what);
            snprintf(what, sizeof(what), "%s: n=%d T=%d: nothing held gives the same bytes", codec, n, T);
            expect(!memcmp(one.rgb, two.rgb, (size_t)T * W * H * 3), what);
            snprintf(what, sizeof(what), "%s: n=%d T=%d: passes %d held, %d not (want 1, %d)", codec, n, T,
                     one.passes, two.passes, states_count ? 1 : 2);
            expect(one.passes == 1 && two.passes == (states_count ? 1 : 2), what);
            video_clip_free(&one);
            video_clip_free(&two);
        }
    }
}

static void test_writer(void) {
    char a[1024], b[1024], tmp[1100], err[1024];
    snprintf(a, sizeof(a), "%s/det_a.mp4", dir);
    snprintf(b, sizeof(b), "%s/det_b.mp4", dir);
    write_clip(a, "mpeg4", 9);
    write_clip(b, "mpeg4", 9);
    long na, nb;
    unsigned char *ba = slurp(a, &na), *bb = slurp(b, &nb);
    expect(ba && bb && na > 0 && na == nb && !memcmp(ba, bb, (size_t)na), "writer: same frames, same bytes");
    free(ba);
    free(bb);
    snprintf(tmp, sizeof(tmp), "%s.tmp", a);
    expect(!exists(tmp), "writer: no .tmp left after commit");
    snprintf(a, sizeof(a), "%s/discarded.mp4", dir);
    VideoWriter *w = video_writer_open(a, "mpeg4", W, H, 8, 3, err, sizeof(err));
    unsigned char rgb[W * H * 3] = {0};
    if (w) video_writer_frame(w, rgb, err, sizeof(err));
    if (w) video_writer_close(w, 0, NULL, 0);
    snprintf(tmp, sizeof(tmp), "%s.tmp", a);
    expect(w && !exists(a) && !exists(tmp), "writer: a discarded file leaves nothing");
    w = video_writer_open(a, "no-such-codec", W, H, 8, 3, err, sizeof(err));
    expect(!w && strstr(err, "no-such-codec"), "writer: unknown encoder is an error");
}

static void expect_unreadable(const char *path, const char *what) {
    VideoClip c;
    char err[1024] = "";
    int rc = video_read(path, 4, VIDEO_HOLD_BYTES, &c, err, sizeof(err));
    int ok = rc != 0 && !strncmp(err, path, strlen(path)) && c.rgb == NULL;
    expect(ok, what);
    if (!ok) printf("     rc %d: '%s'\n", rc, err);
}

static void test_unreadable(void) {
    char p[1024];
    snprintf(p, sizeof(p), "%s/missing.mp4", dir);
    expect_unreadable(p, "read: missing file");
    snprintf(p, sizeof(p), "%s/empty.mp4", dir);
    fclose(fopen(p, "wb"));
    expect_unreadable(p, "read: empty file");
    snprintf(p, sizeof(p), "%s/text.mp4", dir);
    FILE *f = fopen(p, "wb");
    fputs("this is not a video\n", f);
    fclose(f);
    expect_unreadable(p, "read: text file");
    // a truncated mp4: the index (moov) is at the end
    char full[1024];
    snprintf(full, sizeof(full), "%s/grey_mpeg4_37.mp4", dir);
    long n;
    unsigned char *b = slurp(full, &n);
    snprintf(p, sizeof(p), "%s/truncated.mp4", dir);
    f = fopen(p, "wb");
    if (b) fwrite(b, 1, (size_t)n / 2, f);
    fclose(f);
    free(b);
    expect_unreadable(p, "read: truncated mp4");
    snprintf(p, sizeof(p), "%s", dir);
    expect_unreadable(p, "read: a directory");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_video DIR\n");
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s", argv[1]);
    test_codec("mpeg4", "mp4", 0, 1);
    test_codec("mjpeg", "avi", 0, 1);
    test_codec("ffv1", "mkv", 1, 0);
    if (avcodec_find_encoder_by_name("libvpx-vp9")) test_codec("libvpx-vp9", "webm", 0, 0);
    else printf("skip libvpx-vp9: FFmpeg has no VP9 encoder\n");
    test_writer();
    test_unreadable();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
