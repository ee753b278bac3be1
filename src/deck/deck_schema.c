// deck_schema.c — the keys of an stsae deck (SPEC §1, §2, §4, §5) as one table:
// path, type, default, allowed values, flags, help. Adding a deck option is
// one row here; the parser (deck.c) needs no change. Relative paths are kept
// as written: each stage resolves them under run_dir.
//
// Every integer key has a bounded range "[lo, hi]" (tests/test_jobs.c checks
// the table): the values go into C ints (k, expansion, batches, counts), so a
// value beyond its range is a `FILE:LINE: key` error instead of a number cut
// to 32 bits. The bounds are generous (far beyond the paper's decks); sizes
// that multiply (m = expansion x d, batch x T x N tokens) are checked in 64
// bits against the data by jobs_check (jobs.h).
#include "stsae/deck/deck_schema.h"

#include "stsae/sae/variants.h" // the variant names come from the one variant table

#define REQ DECK_REQUIRED
#define VARIANTS SAE_VARIANT_CHOICES // "standard|temporal|...|frozen" (fuzz/seeds.py reads this row by that name)

const DeckKey stsae_schema[] = {
    // key                          type            default       allowed     flags  help
    {"run_dir",                     DECK_PATH,      "runs/default", NULL,     0, "everything a run writes goes under it"},
    {"device",                      DECK_ENUM,      "cpu",        "cpu|cuda", 0, "where the SAE step and the backbone run"},
    {"comm",                        DECK_MAP,       "{}",         NULL,       0, "how the ranks talk (device: cuda)"},
    {"comm.backend",                DECK_ENUM,      "nccl",       "nccl|mpi", 0, "sums between GPUs: nccl, or mpi through host copies (ranks may share a GPU)"},

    {"synth",                       DECK_MAP,       NULL,         NULL,       0, "stage: the built-in synthetic labelled video set"},
    {"synth.out",                   DECK_PATH,      "data/synth", NULL,       0, "directory of the videos and their CSV"},
    {"synth.clips",                 DECK_INT,       "240",        "[1, 1000000]", 0, "number of clips"},
    {"synth.seed",                  DECK_INT,       "0",          "[0, 4294967295]", 0, NULL},
    {"synth.frames",                DECK_INT,       "32",         "[2, 1024]", 0, "frames per clip"},
    {"synth.size",                  DECK_INT,       "128",        "[16, 4096]", 0, "frame width and height in pixels"},
    {"synth.fps",                   DECK_INT,       "8",          "[1, 1000]", 0, NULL},
    {"synth.test_frac",             DECK_NUM,       "0.2",        "[0, 1)",   0, "share of each action's clips in the test split"},
    {"synth.distractors",           DECK_INT,       "3",          "[0, 8]",   0, "most distractor objects per clip"},
    {"synth.noise",                 DECK_NUM,       "6",          ">= 0",     0, "pixel noise, standard deviation in grey levels"},
    {"synth.codec",                 DECK_ENUM,      "mpeg4",      "mpeg4|mjpeg|ffv1", 0, "mpeg4 in .mp4, mjpeg in .avi, ffv1 (lossless) in .mkv"},
    {"synth.quality",               DECK_INT,       "4",          "[1, 31]",  0, "encoder quantizer (mpeg4, mjpeg): 1 best"},

    {"extract",                     DECK_MAP,       NULL,         NULL,       0, "stage: backbone features into one HDF5 file"},
    {"extract.input",               DECK_MAP,       NULL,         NULL,       REQ | DECK_ONE_OF, "exactly one of csv, ssv2, k400, pixels"},
    {"extract.input.csv",           DECK_PATH,      NULL,         NULL,       0, "CSV of path,label[,split]"},
    {"extract.input.ssv2",          DECK_MAP,       NULL,         NULL,       0, "Something-Something v2"},
    {"extract.input.ssv2.videos",   DECK_PATH,      NULL,         NULL,       REQ, "directory of the .webm files"},
    {"extract.input.ssv2.annotations", DECK_PATH,   NULL,         NULL,       REQ, "annotation JSON (train or validation)"},
    {"extract.input.ssv2.labels",   DECK_PATH,      NULL,         NULL,       REQ, "labels.json"},
    {"extract.input.k400",          DECK_MAP,       NULL,         NULL,       0, "Kinetics-400"},
    {"extract.input.k400.videos",   DECK_PATH,      NULL,         NULL,       REQ, NULL},
    {"extract.input.k400.csv",      DECK_PATH,      NULL,         NULL,       REQ, NULL},
    {"extract.input.pixels",        DECK_PATH,      NULL,         NULL,       0, "HDF5 of preprocessed /pixels"},
    {"extract.backbone",            DECK_PATH,      "pixels",     NULL,       0, "pixels, motion, or a Hugging Face model directory"},
    {"extract.layers",              DECK_INT_LIST,  "[11]",       "[0, 1023]", 0, "blocks whose output is saved (0-based)"},
    {"extract.final_norm",          DECK_BOOL,      "false",      NULL,       0, "apply the model's final LayerNorm"},
    {"extract.pos_interp",          DECK_ENUM,      "hf",         "hf|meta",  0, "DINOv2 position-embedding resampling"},
    {"extract.gpu_math",            DECK_ENUM,      "fp32",       "fp32|tf32|bf16", 0, "device: cuda: the backbone GEMMs' math: fp32 (as PyTorch's default), or TF32 / bf16 tensor-core products with fp32 accumulation (faster; ~1e-3 / ~6e-3 relative)"},
    {"extract.out",                 DECK_PATH,      "features.h5", NULL,      0, NULL},
    {"extract.frames",              DECK_INT,       "16",         "[1, 1024]", 0, "T_in: frames sampled per clip"},
    {"extract.patch",               DECK_INT,       "16",         "[1, 256]", 0, "patch size of the pixels backbone"},
    {"extract.image_size",          DECK_INT,       "224",        "[1, 4096]", 0, "frame size of the pixels backbone"},
    {"extract.batch_clips",         DECK_INT,       "4",          "[1, 4096]", 0, "clips per forward pass and rank"},
    {"extract.test_frac",           DECK_NUM,       "0.2",        "[0, 1)",   0, "test share of each label's clips without a split"},
    {"extract.split_seed",          DECK_INT,       "0",          "[0, 4294967295]", 0, "seed of that split"},
    {"extract.max_failed_frac",     DECK_NUM,       "1.0",        "[0, 1]",   0, "share of clips that may fail to decode before extract fails (1: fail only when none succeeds)"},
    {"extract.text_embeddings",     DECK_PATH,      NULL,         NULL,       0, "HDF5 with /text_embeddings [labels, e] to import"},
    {"extract.clip_embeddings",     DECK_PATH,      NULL,         NULL,       0, "HDF5 with /clip_embeddings [clips, e] to import"},
    {"extract.clip",                DECK_PATH,      NULL,         NULL,       0, "a Hugging Face CLIP directory: /clip_embeddings of every clip's frames and /text_embeddings of the label names, in the same pass over the videos"},

    {"train",                       DECK_MAP,       NULL,         NULL,       0, "stage: every SAE of the grid"},
    {"train.features",              DECK_PATH,      "features.h5", NULL,      0, NULL},
    {"train.layer",                 DECK_INT,       "11",         "[0, 1023]", 0, "the feature file's layer of jobs that set none (and of the raw row)"},
    {"train.expansion",             DECK_INT,       "8",          "[1, 1024]", 0, "m = expansion * d"},
    {"train.k",                     DECK_INT,       "64",         "[1, 65536]", 0, "kept latents per token (TopK)"},
    {"train.k_aux",                 DECK_INT,       "512",        "[0, 65536]", 0, "AuxK latents (0: AuxK off)"},
    {"train.alpha",                 DECK_NUM,       "0.03125",    ">= 0",     0, "AuxK weight"},
    {"train.beta",                  DECK_NUM,       "1.0",        ">= 0",     0, "Matryoshka L_high weight (+M)"},
    {"train.high_frac",             DECK_NUM,       "0.2",        "(0, 1]",   0, "Matryoshka high-level share of m (+M)"},
    {"train.dead_tokens",           DECK_INT,       "10000000",   "[1, 1000000000000000]", 0, "a latent unused this long is dead"},
    {"train.lr",                    DECK_NUM,       NULL,         "> 0",      0, "absent: 2e-4 / sqrt(m / 16384)"},
    {"train.warmup_frac",           DECK_NUM,       "0.01",       "[0, 1]",   0, "linear warm-up share of the steps"},
    {"train.adam_beta1",            DECK_NUM,       "0.9",        "[0, 1)",   0, NULL},
    {"train.adam_beta2",            DECK_NUM,       "0.999",      "[0, 1)",   0, NULL},
    {"train.adam_eps",              DECK_NUM,       "1.0e-8",     "> 0",      0, NULL},
    {"train.batch_tokens",          DECK_INT,       "4096",       "[1, 16777216]", 0, "global batch of standard variants"},
    {"train.batch_clips",           DECK_INT,       "8",          "[1, 65536]", 0, "global batch of temporal, separate"},
    {"train.batch_pairs",           DECK_INT,       "2048",       "[1, 8388608]", 0, "global batch of raster"},
    {"train.epochs",                DECK_INT,       "10",         "[1, 1000000]", 0, NULL},
    {"train.max_steps",             DECK_INT,       NULL,         "[1, 1000000000000]", 0, "absent: no limit"},
    {"train.ranks_per_job",         DECK_INT,       "1",          "[1, 65536]", 0, "ranks training one job together"},
    {"train.lockstep",              DECK_INT,       "8",          "[1, 4096]", 0, "jobs with the same batches (kind, size, seed) trained together on one read of each batch; 1: one at a time"},
    {"train.lockstep_gb",           DECK_NUM,       "2",          "> 0",      0, "memory a cohort's jobs may hold together per rank (GB, estimated); a job alone may exceed it"},
    {"train.gemm",                  DECK_ENUM,      "fp32",       "fp32|bf16", 0, "the encoder's forward product: fp32, or bf16 operands with fp32 accumulation (about 2x the GEMM's speed where the CPU has AVX512-BF16 or AMX, through oneDNN; cuBLAS with device: cuda; pre-activations ~2e-3 relative); the backward pass stays fp32"},
    {"train.device_features",       DECK_ENUM,      "auto",       "auto|resident|stream", 0, "device: cuda: the layer's training clips held on the GPU as float16 (resident; auto: when they fit in half its free memory) or read and uploaded each step (stream)"},
    {"train.seeds",                 DECK_INT_LIST,  "[0, 1, 2]",  "[0, 4294967295]", 0, "every grid entry runs once per seed"},
    {"train.lambda",                DECK_NUM,       "0.1",        ">= 0",     0, "contrastive weight (see train.grid)"},
    {"train.tau",                   DECK_NUM,       "0.1",        "> 0",      0, "InfoNCE temperature"},
    {"train.T_s",                   DECK_NUM,       "1.0",        "> 0",      0, "sparsemax / entmax input temperature"},
    {"train.streams",               DECK_INT,       "12",         "[1, 65536]", 0, "data streams of loose tokens and pairs (>= ranks_per_job)"},
    {"train.mix_clips",             DECK_INT,       "4",          "[1, 4096]", 0, "clips a stream shuffles together (mixing buffer)"},
    {"train.scale_sample",          DECK_INT,       "20000",      "[1, 100000000]", 0, "tokens sampled for the input scale"},
    {"train.checkpoint_every",      DECK_NUM,       "600",        ">= 0",     0, "seconds; 0: only on signals"},
    {"train.progress_every",        DECK_NUM,       "10",         ">= 0",     0, "seconds between progress lines"},
    {"train.theta_decay",           DECK_NUM,       "0.99",       "[0, 1)",   0, "BatchTopK threshold EMA decay"},
    {"train.grid",                  DECK_MAP_LIST,  NULL,         NULL,       REQ, "list-valued keys expand as a Cartesian product"},
    {"train.grid.variant",          DECK_ENUM_LIST, NULL,         VARIANTS,   REQ, NULL},
    {"train.grid.name",             DECK_STR,       NULL,         NULL,       0, NULL},
    {"train.grid.lambda",           DECK_NUM_LIST,  NULL,         ">= 0",     0, NULL},
    {"train.grid.lambda_t",         DECK_NUM_LIST,  NULL,         ">= 0",     0, NULL},
    {"train.grid.lambda_s",         DECK_NUM_LIST,  NULL,         ">= 0",     0, NULL},
    {"train.grid.tau",              DECK_NUM_LIST,  NULL,         "> 0",      0, NULL},
    {"train.grid.high_frac",        DECK_NUM_LIST,  NULL,         "(0, 1]",   0, NULL},
    {"train.grid.T_s",              DECK_NUM_LIST,  NULL,         "> 0",      0, NULL},
    {"train.grid.k",                DECK_INT_LIST,  NULL,         "[1, 65536]", 0, NULL},
    {"train.grid.expansion",        DECK_INT_LIST,  NULL,         "[1, 1024]", 0, NULL},
    {"train.grid.layer",            DECK_INT_LIST,  NULL,         "[0, 1023]", 0, "layers of the feature file (the layer analysis)"},
    {"train.grid.alpha",            DECK_NUM_LIST,  NULL,         ">= 0",     0, NULL},
    {"train.grid.beta",             DECK_NUM_LIST,  NULL,         ">= 0",     0, NULL},
    {"train.grid.lr",               DECK_NUM_LIST,  NULL,         "> 0",      0, NULL},
    {"train.grid.seeds",            DECK_INT_LIST,  NULL,         "[0, 4294967295]", 0, NULL},

    {"eval",                        DECK_MAP,       NULL,         NULL,       0, "stage: metrics of every trained job"},
    {"eval.embeddings",             DECK_ENUM,      "raw",        "raw|clip", 0, "clip similarity: raw features or /clip_embeddings"},
    {"eval.text_stand_in",          DECK_ENUM,      "hashed",     "hashed|none", 0, "retrieval's label texts where the file has no /text_embeddings: hashed words and word pairs, or no retrieval"},
    {"eval.clip_value",             DECK_ENUM,      "mean",       "mean|max", 0, "a latent's value on a clip"},
    {"eval.probe_max_iter",         DECK_INT,       "1000",       "[1, 1000000]", 0, "L-BFGS iterations of the linear probe"},
    {"eval.ablate_n",               DECK_INT_LIST,  "[10, 50, 100, 500]", "[1, 16777216]", 0, "latents zeroed in the causal ablation"},
    {"eval.random_draws",           DECK_INT,       "5",          "[1, 10000]", 0, "random-latent controls per n"},
    {"eval.smoothing",              DECK_NUM_LIST,  "[0.5, 0.8]", "[0, 1)",   0, "EMA factors of post-hoc smoothing"},
    {"eval.progress_every",         DECK_NUM,       "10",         ">= 0",     0, "seconds between progress lines"},

    {"report",                      DECK_MAP,       NULL,         NULL,       0, "the report's feature browser (stsae report, stsae browse)"},
    {"report.browse",               DECK_BOOL,      "true",       NULL,       0, "stsae report also writes the static HTML feature browser RUN_DIR/browser/"},
    {"report.browse_latents",       DECK_INT,       "16",         "[0, 100000]", 0, "latent pages per job: the live latents with the largest mean clip value (each page: its 8 top clips as frame strips, ~0.1-0.5 MB)"},
    {NULL, 0, NULL, NULL, 0, NULL},
};
