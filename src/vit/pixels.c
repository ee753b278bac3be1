// pixels.c — the built-in `pixels` backbone (vit.h): a patch's token is its
// normalized RGB values in (channel, row, column) order (SPEC §4); no blocks,
// so every requested layer gets the same tokens.
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/vit/vit.h"
#include "stsae/vit/vit_ops.h"

BackboneShape pixels_shape(int patch, int T_in, int S) {
    if (T_in < 1 || S < 1) die("pixels backbone: clips of %d frames of %d px", T_in, S);
    if (S % patch) die("pixels backbone: frame size %d px is not a multiple of the patch %d", S, patch);
    BackboneShape sh = {.T = T_in, .H = S / patch, .W = S / patch, .d = 3 * patch * patch};
    sh.N = sh.H * sh.W;
    return sh;
}

void pixels_forward(int patch, const float *pixels, int clips, int T_in, int S, int n_layers, float *const *out) {
    const BackboneShape sh = pixels_shape(patch, T_in, S);
    const size_t clip_in = (size_t)T_in * 3 * S * S, clip_out = (size_t)sh.T * sh.N * sh.d;
    for (int c = 0; c < clips; c++) {
        patchify(out[0] + c * clip_out, pixels + c * clip_in, T_in, S, patch, 1);
        for (int j = 1; j < n_layers; j++)
            memcpy(out[j] + c * clip_out, out[0] + c * clip_out, sizeof(float) * clip_out);
    }
}
