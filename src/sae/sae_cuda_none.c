// sae_cuda_none.c — sae_cuda.h for a build without CUDA (no toolkit at
// configure time): every call dies saying so, with what to do. A deck with
// `device: cuda` is refused before training by train.c (device_count() < 0),
// so these are reached only by a caller that skipped that check.
#include "stsae/base/common.h"
#include "stsae/sae/sae_cuda.h"

static void no_cuda(const char *call) {
    die("%s: this stsae was built without CUDA (no CUDA toolkit at configure time); install the toolkit "
        "(nvcc in /usr/local/cuda) and build again, or use device: cpu", call);
}

float *dev_alloc_floats(size_t n) { (void)n; no_cuda("dev_alloc_floats"); return NULL; }
void dev_free(void *p) { if (p) no_cuda("dev_free"); }
void dev_upload(float *dev, const float *host, size_t n) { (void)dev, (void)host, (void)n; no_cuda("dev_upload"); }
void dev_download(float *host, const float *dev, size_t n) { (void)host, (void)dev, (void)n; no_cuda("dev_download"); }
void *dev_alloc(size_t bytes) { (void)bytes; no_cuda("dev_alloc"); return NULL; }
void *dev_host_alloc(size_t bytes) { (void)bytes; no_cuda("dev_host_alloc"); return NULL; }
void dev_host_free(void *p) { if (p) no_cuda("dev_host_free"); }
void dev_upload_bytes(void *dev, const void *host, size_t bytes) {
    (void)dev, (void)host, (void)bytes;
    no_cuda("dev_upload_bytes");
}
void dev_download_bytes(void *host, const void *dev, size_t bytes) {
    (void)host, (void)dev, (void)bytes;
    no_cuda("dev_download_bytes");
}
void dev_tokens_f16(const uint16_t *feat, const int64_t *src, int n, int d, float scale, float *x) {
    (void)feat, (void)src, (void)n, (void)d, (void)scale, (void)x;
    no_cuda("dev_tokens_f16");
}
void sae_device_state_create(SaeDeviceState *s, const SaeConfig *cfg) {
    (void)s, (void)cfg;
    no_cuda("sae_device_state_create");
}
void sae_device_state_free(SaeDeviceState *s) { if (s && s->params) no_cuda("sae_device_state_free"); }
SaeCudaWork *sae_cuda_work_create(const SaeConfig *cfg, int max_tok, SaeGemmMath math) {
    (void)cfg, (void)max_tok, (void)math;
    no_cuda("sae_cuda_work_create");
    return NULL;
}
void sae_cuda_work_free(SaeCudaWork *w) { if (w) no_cuda("sae_cuda_work_free"); }
void sae_step_cuda(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *grad, const float *x, const SaeBatch *b,
                   const uint8_t *dead, const SaeReduce *red, SaeCudaWork *w, SaeLosses *out) {
    (void)cfg, (void)p, (void)grad, (void)x, (void)b, (void)dead, (void)red, (void)w, (void)out;
    no_cuda("sae_step_cuda");
}
void sae_cuda_last_codes(SaeCudaWork *w, SparseCodes *out) { (void)w, (void)out; no_cuda("sae_cuda_last_codes"); }
int sae_cuda_dead_mask(SaeCudaWork *w, const int64_t *last_fired, int64_t tokens, int64_t dead_tokens,
                       uint8_t *dead) {
    (void)w, (void)last_fired, (void)tokens, (void)dead_tokens, (void)dead;
    no_cuda("sae_cuda_dead_mask");
    return 0;
}
void sae_cuda_fire(SaeCudaWork *w, const SaeReduce *red, int64_t tokens, int64_t *last_fired) {
    (void)w, (void)red, (void)tokens, (void)last_fired;
    no_cuda("sae_cuda_fire");
}
void optim_step_cuda(const SaeConfig *cfg, const AdamConfig *a, int64_t t, float *params, float *grads, float *m1,
                     float *m2) {
    (void)cfg, (void)a, (void)t, (void)params, (void)grads, (void)m1, (void)m2;
    no_cuda("optim_step_cuda");
}
void sae_cuda_encode(const SaeConfig *cfg, const SaeTensors *p, const float *x, int n, float theta, SaeCudaWork *w) {
    (void)cfg, (void)p, (void)x, (void)n, (void)theta, (void)w;
    no_cuda("sae_cuda_encode");
}
SaeCudaEval *sae_cuda_eval_create(const SaeConfig *cfg, int T, int N) {
    (void)cfg, (void)T, (void)N;
    no_cuda("sae_cuda_eval_create");
    return NULL;
}
void sae_cuda_eval_clip(SaeCudaEval *e, const SaeConfig *cfg, const SaeTensors *p, const uint16_t *h, float scale,
                        float theta, SaeCudaClip *out) {
    (void)e, (void)cfg, (void)p, (void)h, (void)scale, (void)theta, (void)out;
    no_cuda("sae_cuda_eval_clip");
}
void sae_cuda_eval_free(SaeCudaEval *e) { if (e) no_cuda("sae_cuda_eval_free"); }
