// optim.h — one optimizer step of SPEC §1 on the flat buffers: remove from
// each decoder atom's gradient its component along the atom, Adam (bias
// corrected, linear warm-up then constant learning rate), then renormalize
// the atoms to unit length. Parameters, gradients and each Adam moment are
// one flat buffer each (sae_carve layout), so this is a few loops.
#ifndef STSAE_OPTIM_H
#define STSAE_OPTIM_H

#include <stdint.h>

#include "stsae/sae/sae.h"

typedef struct {
    float lr;             // SPEC default: 2e-4 / sqrt(m / 16384)
    float beta1, beta2, eps;
    int64_t warmup_steps; // >= 1
} AdamConfig;

// SPEC §1 defaults for a dictionary of m latents trained for total_steps.
AdamConfig adam_defaults(int m, int64_t total_steps);
// Learning rate of 1-based step t: lr * min(1, t / warmup_steps).
float adam_lr(const AdamConfig *a, int64_t t);

// The scalars of step t that every implementation of optim_step (CPU, CUDA)
// shares: the step size lr_t / (1 - beta1^t), 1 / sqrt(1 - beta2^t), and
// whether to project and renormalize the decoder (always; the planted test
// build turns pieces off).
typedef struct {
    float step, isc2;
    int project, renorm;
} AdamScalars;
AdamScalars adam_scalars(const AdamConfig *a, int64_t t);

// Full step t (1-based): projection, Adam on every parameter, renormalization.
// params, grads, m1, m2: flat buffers of sae_num_params(cfg) floats.
void optim_step(const SaeConfig *cfg, const AdamConfig *a, int64_t t, float *params, float *grads,
                float *m1, float *m2);

// The two decoder constraints, exposed for tests and for init.
void decoder_project_grad(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *g);
void decoder_renorm(const SaeConfig *cfg, SaeTensors *p);

#endif
