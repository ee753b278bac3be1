// backbone.c — one interface over the feature extractors (backbone.h): the
// built-in `pixels` backbone here, the Hugging Face ViTs in vit.c.
#include "stsae/backbone.h"

#include <stdlib.h>
#include <string.h>

#include "stsae/common.h"
#include "stsae/vit.h"
#include "stsae/vit_ops.h"

struct Backbone {
    Vit *vit; // NULL: the pixels backbone
    int patch;
};

int backbone_pos_interp(const char *word, PosInterp *out) {
    if (!strcmp(word, "hf")) *out = POS_INTERP_HF;
    else if (!strcmp(word, "meta")) *out = POS_INTERP_META;
    else return -1;
    return 0;
}

Backbone *backbone_open(const char *spec, const BackboneOptions *opt) {
    Backbone *bb = xcalloc(1, sizeof(Backbone));
    if (!strcmp(spec, "pixels")) {
        if (opt->patch < 1) die("pixels backbone: patch = %d must be >= 1", opt->patch);
        bb->patch = opt->patch;
    } else {
        bb->vit = vit_open(spec, opt);
    }
    return bb;
}

void backbone_close(Backbone *bb) {
    if (!bb) return;
    vit_close(bb->vit);
    free(bb);
}

const char *backbone_name(const Backbone *bb) { return bb->vit ? vit_name(bb->vit) : "pixels"; }
const char *backbone_digest(Backbone *bb) { return bb->vit ? vit_digest(bb->vit) : "none"; }
int backbone_depth(const Backbone *bb) { return bb->vit ? vit_depth(bb->vit) : 0; }

void backbone_check_layers(const Backbone *bb, const int *layers, int n_layers, const char *where) {
    const int depth = backbone_depth(bb);
    if (n_layers < 1) die("%s: no layer requested", where);
    for (int j = 0; j < n_layers; j++) {
        if (layers[j] < 0 || (bb->vit && layers[j] >= depth))
            die("%s: layer %d out of range for the %s backbone (blocks 0..%d)", where, layers[j], backbone_name(bb),
                depth - 1);
        for (int i = 0; i < j; i++)
            if (layers[i] == layers[j]) die("%s: layer %d requested twice", where, layers[j]);
    }
}

BackboneShape backbone_shape(const Backbone *bb, int T_in, int S) {
    if (bb->vit) return vit_shape(bb->vit, T_in, S);
    if (T_in < 1 || S < 1) die("pixels backbone: clips of %d frames of %d px", T_in, S);
    if (S % bb->patch) die("pixels backbone: frame size %d px is not a multiple of the patch %d", S, bb->patch);
    BackboneShape sh = {.T = T_in, .H = S / bb->patch, .W = S / bb->patch, .d = 3 * bb->patch * bb->patch};
    sh.N = sh.H * sh.W;
    return sh;
}

void backbone_forward(Backbone *bb, const float *pixels, int clips, int T_in, int S, const int *layers,
                      int n_layers, float *const *out) {
    backbone_check_layers(bb, layers, n_layers, "backbone_forward");
    if (bb->vit) {
        vit_forward(bb->vit, pixels, clips, T_in, S, layers, n_layers, out);
        return;
    }
    const BackboneShape sh = backbone_shape(bb, T_in, S);
    const size_t clip_in = (size_t)T_in * 3 * S * S, clip_out = (size_t)sh.T * sh.N * sh.d;
    for (int c = 0; c < clips; c++) {
        patchify(out[0] + c * clip_out, pixels + c * clip_in, T_in, S, bb->patch, 1);
        for (int j = 1; j < n_layers; j++)
            memcpy(out[j] + c * clip_out, out[0] + c * clip_out, sizeof(float) * clip_out);
    }
}
