/*
 * diffrestore.h - restore photos with a conditional diffusion model, on a CPU.
 *
 * The one public header of libdiffrestore. Everything the `diffrestore` CLI does
 * goes through the functions declared here.
 *
 * Conventions:
 *  - Every function that can fail returns an int status: DR_OK (0) on success,
 *    a negative DR_ERR_* code otherwise. dr_last_error() then gives a message
 *    (thread-local) that names the file and the reason.
 *  - The library never prints to stdout or stderr and never exits.
 *  - Objects are created by *_load / *_alloc / *_new and released by *_free; a
 *    free function accepts NULL or a zeroed struct.
 */
#ifndef DIFFRESTORE_H
#define DIFFRESTORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DR_VERSION_MAJOR  0
#define DR_VERSION_MINOR  1
#define DR_VERSION_PATCH  0
#define DR_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------ errors */

enum {
    DR_OK = 0,
    DR_ERR_IO = -1,          /* open/read/write/rename failed */
    DR_ERR_FORMAT = -2,      /* corrupt, truncated or malformed data */
    DR_ERR_UNSUPPORTED = -3, /* valid but not supported (format, depth, ...) */
    DR_ERR_NOMEM = -4,       /* allocation failed */
    DR_ERR_INVALID = -5,     /* bad argument from the caller */
    DR_ERR_LIMIT = -6,       /* over a configured limit (pixels, sizes) */
    DR_ERR_EXISTS = -7,      /* output exists and overwriting was not allowed */
    DR_ERR_CANCELLED = -8,   /* the caller's cancel flag was raised */
    DR_ERR_NUMERIC = -9      /* NaN or inf where a finite number is required */
};

/* Message for the last error on this thread ("" if none). Valid until the
 * next failing call on the same thread. */
const char *dr_last_error(void);
/* Short name of a status code, e.g. "DR_ERR_FORMAT". */
const char *dr_status_name(int status);
const char *dr_version(void);

/* Number of threads the library's parallel sections use (OpenMP). 0 = all
 * cores. OpenBLAS itself is always kept single-threaded: see docs/DESIGN.md. */
void dr_set_threads(int n);
int dr_get_threads(void);

/* Arithmetic precision of the network (global, like the thread count; set it
 * before running anything). DR_PRECISION_FP32 (default): the reference path.
 * DR_PRECISION_BF16: the convolutions, linears and attention's matmuls
 * multiply bf16 values with fp32 accumulation (AVX512-BF16, found at run
 * time; weights, GroupNorm, softmax, optimizer state and loss stay fp32). DR_PRECISION_AUTO: bf16 where the CPU
 * has it, else fp32. Returns DR_OK, or DR_ERR_UNSUPPORTED when BF16 is asked
 * for on a CPU without it (fp32 is then kept) or p is not a precision.
 * dr_bf16_active: 1 when the bf16 kernels run with the current setting. */
typedef enum { DR_PRECISION_FP32 = 0, DR_PRECISION_BF16 = 1, DR_PRECISION_AUTO = 2 } dr_precision;
int dr_set_precision(dr_precision p);
dr_precision dr_get_precision(void);
int dr_bf16_active(void);
/* AMX (Intel Sapphire Rapids and later): where the CPU has AMX-BF16 and the
 * OS grants its tile state, the bf16 path runs its 3x3 convolutions and its
 * GEMMs on AMX tiles: the same bf16 products, fp32 sums in another order.
 * dr_amx_available: 1 on such a machine. dr_set_amx(0) keeps the AVX512-BF16
 * kernels there (to compare the two; default on). dr_amx_active: 1 when the
 * AMX kernels run with the current settings. */
int dr_amx_available(void);
void dr_set_amx(int on);
int dr_amx_active(void);

/* ------------------------------------------------------------------ images */

typedef enum {
    DR_FORMAT_UNKNOWN = 0,
    DR_FORMAT_PNG = 1,
    DR_FORMAT_JPEG = 2,
    DR_FORMAT_TIFF = 3, /* first page only */
    DR_FORMAT_WEBP = 4
} dr_format;

/* An 8- or 16-bit image. Samples are interleaved, row-major, top row first:
 * data[(y * width + x) * channels + c]. channels: 1 gray, 2 gray+alpha,
 * 3 RGB, 4 RGBA. Samples are stored as uint16_t for both depths; with
 * depth 8 they are within 0..255, with depth 16 within 0..65535. */
typedef struct {
    int width, height, channels, depth;
    uint16_t *data;
} dr_image;

typedef struct {
    dr_format format;
    int width, height;
    int channels;    /* channels as decoded (palette -> 3 or 4) */
    int depth;       /* 8 or 16 */
    int interlaced;  /* PNG Adam7 or progressive JPEG */
    int color_space; /* informational: source colour model, see dr_image_info_describe */
    int orientation; /* EXIF/TIFF orientation 1..8 found in the file (1: none). The loader
                        applies it: width, height and the pixels are upright */
    /* Colour: the embedded ICC profile, if any (without one, sRGB is assumed). */
    size_t icc_size;          /* bytes of the embedded profile (0: none) */
    int icc_converted;        /* 1: the loader converted the pixels from it to sRGB; 0: no
                                * profile, the profile is our own sRGB one, or its colour
                                * space does not match the pixels (e.g. CMYK): used as sRGB */
    char icc_description[64]; /* the profile's description ("" if none) */
    /* Metadata found (bytes; 0: none). See dr_metadata. */
    size_t exif_size, xmp_size, iptc_size;
} dr_image_info;

#define DR_DEFAULT_MAX_PIXELS (64LL * 1000 * 1000)

/* Allocate a zero-filled image. */
int dr_image_alloc(dr_image *img, int width, int height, int channels, int depth);
void dr_image_free(dr_image *img);

/* Detect a format from the first bytes of a file (magic bytes, never the name). */
dr_format dr_format_detect(const void *head, size_t n);
const char *dr_format_name(dr_format f);

/* Read only the header. */
int dr_image_probe(const char *path, dr_image_info *info);
/* One line such as "PNG 640x480, 3 channels, 8-bit, RGB, interlaced"; it
 * names info->color_space (gray, gray+alpha, RGB, RGBA, palette, YCbCr,
 * CMYK, YCCK or unknown). */
void dr_image_info_describe(const dr_image_info *info, char *buf, size_t size);
/* Decode a PNG, JPEG, TIFF or WebP file, turned upright by its EXIF (or
 * TIFF) orientation, and converted to sRGB when it embeds an RGB or gray ICC
 * profile (Little CMS; a profile that cannot be read is an error: see
 * dr_image_load_meta). max_pixels <= 0 means DR_DEFAULT_MAX_PIXELS.
 * info may be NULL. On failure *img is left zeroed. */
int dr_image_load(const char *path, int64_t max_pixels, dr_image *img, dr_image_info *info);
/* The same from memory; name is used in error messages. */
int dr_image_load_memory(const void *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                         dr_image_info *info);

struct dr_metadata; /* below */
typedef struct {
    int jpeg_quality; /* 1..100, default 92 */
    int webp_quality; /* 0: lossless WebP (default); 1..100: lossy at that quality */
    int overwrite;    /* 0: an existing file at path is an error (DR_ERR_EXISTS) */
    /* Metadata to write (NULL: none), where the format holds it (see
     * dr_metadata; the parts it cannot hold are left out: dr_metadata_unsupported).
     * The ICC profile is embedded as given: the pixels must be in it. EXIF is
     * rewritten with libexif: orientation 1, PixelX/YDimension the image's
     * size, no thumbnail. */
    const struct dr_metadata *metadata;
    /* Provenance: NULL, or pairs key, value, ..., NULL. Written as XMP
     * properties diffrestore:KEY (namespace DR_XMP_NS) added to the XMP packet
     * (a new packet when there is none), in every format (TIFF tag 700). Keys
     * are letters and digits. */
    const char *const *provenance;
} dr_save_options;
#define DR_XMP_NS "https://github.com/diffrestore/ns/1.0/"
void dr_save_options_init(dr_save_options *o);

/* Write PNG, JPEG, TIFF or WebP, chosen by the extension of path (.png,
 * .jpg, .jpeg, .tif, .tiff, .webp). TIFF keeps 8/16-bit gray/RGB(A), Deflate
 * compressed; WebP stores 8-bit RGB(A) (16-bit is reduced, gray becomes RGB).
 * The file is written to a temporary file in the same directory and renamed
 * into place, so a failure never leaves a partial file. JPEG stores 8-bit
 * gray or RGB: 16-bit is reduced to 8 and alpha is dropped. opts may be NULL. */
int dr_image_save(const char *path, const dr_image *img, const dr_save_options *opts);
/* The same encoding into memory: *buf (malloc'd, free() it) holds *size bytes
 * of fmt (PNG, JPEG, TIFF or WebP), as dr_image_save would write them; name
 * is used in error messages, opts->overwrite is ignored. On failure *buf is
 * NULL and *size 0. */
int dr_image_encode(dr_format fmt, const dr_image *img, const dr_save_options *opts, const char *name,
                    unsigned char **buf, size_t *size);

/* ------------------------------------------------------------------ colour and metadata
 * Where each format keeps them (read and written):
 *   JPEG: ICC (APP2 ICC_PROFILE), EXIF (APP1 Exif), XMP (APP1), IPTC (APP13 Photoshop 8BIM 0x0404)
 *   PNG:  ICC (iCCP), EXIF (eXIf), XMP (iTXt XML:com.adobe.xmp); no IPTC
 *   TIFF: ICC (tag 34675), XMP (tag 700), IPTC (tag 33723); EXIF: its text fields only,
 *         read and written: Make, Model, DateTime, Artist, Copyright,
 *         ImageDescription, Software (the TIFF's own tags) and DateTimeOriginal,
 *         DateTimeDigitized, LensModel, BodySerialNumber, CameraOwnerName (its
 *         EXIF directory, tag 34665)
 *   WebP: ICC (ICCP), EXIF, XMP chunks; no IPTC
 * Loading converts pixels with an RGB (or gray) ICC profile to sRGB with Little
 * CMS, so every mode sees sRGB; without a profile sRGB is assumed. */

#define DR_MAX_ICC_SIZE  ((size_t)4 << 20)  /* larger embedded profiles are refused */
#define DR_MAX_META_SIZE ((size_t)16 << 20) /* larger EXIF, XMP or IPTC blocks are refused */

typedef struct dr_metadata {
    unsigned char *icc;
    size_t icc_size; /* ICC profile, as embedded */
    unsigned char *exif;
    size_t exif_size; /* EXIF from its TIFF header on (no "Exif\0\0") */
    unsigned char *xmp;
    size_t xmp_size; /* XMP packet (UTF-8 XML) */
    unsigned char *iptc;
    size_t iptc_size; /* IPTC-IIM records */
} dr_metadata;

/* Bits naming the parts of a dr_metadata. */
enum { DR_META_ICC = 1, DR_META_EXIF = 2, DR_META_XMP = 4, DR_META_IPTC = 8 };

void dr_metadata_free(dr_metadata *m);
/* The parts of m (non-empty ones) that format f cannot hold (DR_META_* bits;
 * EXIF counts as held by TIFF, which keeps only its text fields): IPTC in
 * PNG and WebP; in JPEG, an EXIF or IPTC over DR_JPEG_MAX_EXIF bytes or an XMP
 * over DR_JPEG_MAX_XMP (one marker segment each; extended XMP is not
 * written). dr_image_save fails on a JPEG part that does not fit: leave these
 * parts out of its metadata. */
#define DR_JPEG_MAX_EXIF 65400
#define DR_JPEG_MAX_XMP  61000
unsigned dr_metadata_unsupported(dr_format f, const dr_metadata *m);
/* The format an output path would be written as (by its extension). */
dr_format dr_format_from_path(const char *path);

/* As dr_image_load, and meta (zeroed first; may be NULL) receives the file's
 * ICC profile, EXIF, XMP and IPTC as stored. With meta, metadata that cannot
 * be parsed (an EXIF block libexif finds corrupt, e.g. looping IFD offsets),
 * or larger than DR_MAX_META_SIZE, is an error (DR_ERR_FORMAT / DR_ERR_LIMIT
 * naming the file); without it only the orientation is read. An ICC profile
 * over DR_MAX_ICC_SIZE (DR_ERR_LIMIT) or one Little CMS cannot use
 * (DR_ERR_FORMAT) is always an error. On failure everything is left zeroed. */
int dr_image_load_meta(const char *path, int64_t max_pixels, dr_image *img, dr_image_info *info, dr_metadata *meta);
int dr_image_load_memory_meta(const void *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                              dr_image_info *info, dr_metadata *meta);

/* Convert img (sRGB, as loaded) in place to the colour space of an RGB or gray
 * ICC profile (RGB/RGBA images need an RGB profile, gray ones a gray profile;
 * DR_ERR_UNSUPPORTED otherwise). Alpha is kept. name is used in messages. */
int dr_image_from_srgb(dr_image *img, const void *icc, size_t icc_size, const char *name);
/* Little CMS's sRGB profile as bytes (malloc'd; free() them). Loading a file
 * with exactly this profile leaves the pixels as they are. */
int dr_srgb_profile(unsigned char **buf, size_t *size);

/* SHA-256 of a file's bytes as 64 lowercase hex digits. */
int dr_file_sha256(const char *path, char hex[65]);

/* ------------------------------------------------------------------ paths */
/* 1 if path (an existing file or directory, or one still to be created) lies
 * inside the directory dir or is dir itself, 0 if not. Symbolic links are
 * resolved and directories compared by device and inode, not by name, so a
 * link into dir or a second name for it is seen. The commands use it so that
 * no output lands inside a folder they read as input. */
int dr_path_within(const char *path, const char *dir);

/* ------------------------------------------------------------------ tensors
 * A named set of float32 tensors with string metadata: what a safetensors file
 * holds. Used for weights, for `diffrestore forward` and for test dumps. */

#define DR_MAX_DIMS 8

typedef struct {
    char *name;
    int ndim;
    int64_t shape[DR_MAX_DIMS];
    int64_t numel;
    float *data; /* float32, converted from F16 on load */
} dr_tensor;

typedef struct {
    int n_tensors;
    dr_tensor *tensors;
    int n_meta;
    char **meta_keys;
    char **meta_values;
} dr_tensor_file;

/* Read every tensor of a safetensors file (F32 or F16, converted to F32).
 * Validates the header fully (dtypes, shapes, offsets, overlaps, the
 * metadata's size): the format of MODEL.md, "Weights file: safetensors". */
int dr_tensor_file_read(const char *path, dr_tensor_file *tf);
int dr_tensor_file_read_memory(const void *buf, size_t size, const char *name, dr_tensor_file *tf);
/* Write tensors as F32 (dtype_f16 = 0) or F16 (1), atomically (temp + rename). */
int dr_tensor_file_write(const char *path, const dr_tensor_file *tf, int dtype_f16);
void dr_tensor_file_free(dr_tensor_file *tf);
/* Lookups: NULL when absent. */
const dr_tensor *dr_tensor_file_get(const dr_tensor_file *tf, const char *name);
const char *dr_tensor_file_meta(const dr_tensor_file *tf, const char *key);
/* Building a file in memory: the data is copied. */
int dr_tensor_file_add(dr_tensor_file *tf, const char *name, int ndim, const int64_t *shape, const float *data);
int dr_tensor_file_set_meta(dr_tensor_file *tf, const char *key, const char *value);

/* ------------------------------------------------------------------ models */

typedef enum {
    DR_MODE_NONE = 0,
    DR_MODE_COLORIZE = 1,
    DR_MODE_INPAINT = 2,
    DR_MODE_SUPERRES = 3,
    DR_MODE_DENOISE = 4
} dr_mode;

const char *dr_mode_name(dr_mode m);         /* "none" if unknown */
dr_mode dr_mode_from_name(const char *name); /* DR_MODE_NONE if unknown */

/* What a mode takes beyond an image (dr_mode_info.flags). */
enum {
    DR_MODE_TAKES_SCALE = 1,        /* an output size or factor (dr_params.scale / out_width / out_height) */
    DR_MODE_TAKES_MASK = 2,         /* a hole mask (or the input's alpha) */
    DR_MODE_TAKES_RENDER_SIZE = 4,  /* a working resolution (dr_params.render_size) */
    DR_MODE_COLOR_OUT = 8,          /* colour out of a gray input */
    DR_MODE_MEAN_OF_X = 16,         /* dr_restore_samples' mean is taken before the output is written */
    DR_MODE_BASELINE_EXTERNAL = 32, /* eval's baseline is made outside (dr_eval_case.baseline empty) */
    DR_MODE_EVAL_NOISE = 64         /* eval degrades with dr_eval_options.noise_sigma / jpeg_quality */
};

/* One mode, as the library's table describes it: the commands, the model
 * loader, training and eval all read the same entry. */
typedef struct {
    dr_mode mode;
    const char *name;              /* "colorize": the command and the weights' metadata */
    const char *brief;             /* a few words for the command list: "colorize black-and-white photos" */
    const char *summary;           /* what it does, for MODE --help (may span lines) */
    const char *options_help;      /* help lines of the mode's own options ("" when none) */
    const char *baseline;          /* eval's classical baseline: "gray", "telea", "bicubic", "input" */
    int in_channels, out_channels; /* the U-Net's (MODEL.md, "Modes") */
    unsigned flags;                /* DR_MODE_TAKES_* and the others above */
} dr_mode_info;

/* Modes are 1 .. dr_mode_count(); NULL for an unknown one. */
int dr_mode_count(void);
const dr_mode_info *dr_mode_get(dr_mode m);

/* The U-Net's hyper-parameters (MODEL.md). */
#define DR_MAX_LEVELS 8
typedef struct {
    int in_channels, out_channels;
    int base_channels;
    int n_levels;
    int channel_mult[DR_MAX_LEVELS];
    int num_res_blocks;
    int attention[DR_MAX_LEVELS]; /* 1 if level l has self-attention */
    int groups;
} dr_unet_config;

/* The U-Net every shipped model uses (dr_train_options_init's). */
#define DR_UNET_CONFIG_DEFAULT "base=32,mult=1,2,2,4,res=2,attn=3,groups=8"
/* Parse a spec such as DR_UNET_CONFIG_DEFAULT on top of *cfg. */
int dr_unet_config_parse(dr_unet_config *cfg, const char *spec);
/* Check channel counts against groups etc. */
int dr_unet_config_validate(const dr_unet_config *cfg);
int64_t dr_unet_config_num_params(const dr_unet_config *cfg);

typedef struct dr_model dr_model;

/* Load weights (safetensors with diffrestore metadata). */
int dr_model_load(const char *path, dr_model **out);
/* A model with random weights (tests, benchmarks). */
int dr_model_new_random(const dr_unet_config *cfg, dr_mode mode, uint64_t seed, dr_model **out);
/* Save as safetensors (F16 or F32) with full metadata. */
int dr_model_save(const dr_model *m, const char *path, int dtype_f16);
void dr_model_free(dr_model *m);
const dr_unet_config *dr_model_config(const dr_model *m);
dr_mode dr_model_mode(const dr_model *m);
/* superres: the range of scale factors the weights were trained on. */
void dr_model_scale_range(const dr_model *m, double *scale_min, double *scale_max);
/* Metadata value of the loaded file (NULL if absent). */
const char *dr_model_meta(const dr_model *m, const char *key);

/* One U-Net forward: x [n, in, h, w], t [n] (float timestep index),
 * y [n, out, h, w]. h and w must be multiples of 2^(levels-1). */
int dr_model_forward(dr_model *m, const float *x, const float *t, int n, int h, int w, float *y);

/* ------------------------------------------------------------------ restoring */

typedef enum {
    DR_SAMPLER_DDPM = 0,
    DR_SAMPLER_DDIM = 1,
    DR_SAMPLER_DPMPP_2M = 2,     /* DPM-Solver++(2M), deterministic */
    DR_SAMPLER_DPMPP_2M_SDE = 3, /* SDE-DPM-Solver++(2M): eta scales its noise (0: = DPMPP_2M) */
} dr_sampler;
#define DR_SAMPLER_NAMES "ddpm, ddim, dpmpp, dpmpp-sde"
typedef enum { DR_SPACING_TRAILING = 0, DR_SPACING_LEADING = 1, DR_SPACING_LINSPACE = 2 } dr_spacing;

const char *dr_sampler_name(dr_sampler s);
int dr_sampler_from_name(const char *name, dr_sampler *out); /* DR_OK or DR_ERR_INVALID */
const char *dr_spacing_name(dr_spacing s);
int dr_spacing_from_name(const char *name, dr_spacing *out); /* DR_OK or DR_ERR_INVALID */

typedef struct {
    dr_sampler sampler;
    int steps;  /* sampler steps */
    double eta; /* noise: DDIM (0 deterministic, 1 DDPM-like) and dpmpp-sde */
    dr_spacing spacing;
    uint64_t seed; /* sample k of a call uses seed + k */
    /* superres: the output size. Either scale > 0, or out_width / out_height
     * (one of them 0 keeps the aspect ratio). The factor must lie within the
     * weights' scale_min..scale_max. */
    double scale;
    int out_width, out_height;
    int tile;         /* max tile side in pixels (0: default); larger images are tiled */
    int tile_overlap; /* pixels of overlap between tiles (0: default) */
    /* colorize at a working resolution (docs/TUNING.md): the network sees the
     * luma downscaled so that its long side is render_size pixels (an image
     * already that small is not upscaled), and the predicted chroma is brought
     * back to full size by a guided filter on the full-resolution luma; the
     * output's luma is the input's, as at full resolution. 0: full resolution;
     * DR_RENDER_SIZE_AUTO (the default): the weights' metadata render_size,
     * full resolution when they have none. Other modes: 0 or AUTO only. */
    int render_size;
    /* Classifier-free guidance (Ho & Salimans 2022): the network runs twice per
     * step, with the conditioning and with it zeroed, and the sampler gets
     * o_u + guidance (o_c - o_u). Needs weights trained with
     * dr_train_options.cond_dropout (metadata cond_dropout; DR_ERR_INVALID
     * otherwise). 0 or 1: off, one network run per step; above 1 the
     * prediction moves away from the unconditional one (colorize: stronger
     * colours). 0..20, or DR_GUIDANCE_AUTO (dr_params_init's default): the
     * weights' metadata guidance, the weight they were shipped with, and off
     * for weights without one. */
    double guidance;
    /* progress: called after every sampler step with (step, steps) counted
     * over all tiles-steps of all samples of the call */
    void (*progress)(int step, int steps, void *user);
    void *user;
    volatile int *cancel; /* raised by the caller: the call returns DR_ERR_CANCELLED (checked
                           * after every batch of tiles, so a large photo stops within one) */
    /* progress within a network evaluation (NULL: none): called after each batch of
     * tiles with (tiles done, tiles run) of this evaluation; inpaint runs only the
     * tiles that hold a hole pixel. The same user pointer. */
    void (*progress_tile)(int tile, int tiles, void *user);
} dr_params;

#define DR_RENDER_SIZE_AUTO (-1)
#define DR_GUIDANCE_AUTO    (-1.0)
#define DR_RENDER_SIZE_MIN  16
#define DR_RENDER_SIZE_MAX  65536

/* Mode-independent defaults: DDIM, 20 trailing steps, eta 1, seed 0,
 * 256-pixel tiles with 32 of overlap, render_size DR_RENDER_SIZE_AUTO. Each
 * mode's measured defaults differ in the sampler: prefer dr_params_init_mode
 * when the mode is known. */
void dr_params_init(dr_params *p);
/* The defaults for one mode, dr_params_init_quality(p, mode, DR_QUALITY_DEFAULT),
 * e.g. dr_params_init_mode(&p, dr_model_mode(model)). */
void dr_params_init_mode(dr_params *p, dr_mode mode);

/* Sampling presets: the sampler, steps and eta of each mode at three points of
 * the measured speed/quality trade-off (docs/TUNING.md, "Presets"):
 *   fast     the fewest network evaluations, a little less accurate or softer;
 *   default  the cheapest configuration within 0.1 dB and 0.02 HF ratio of the
 *            20-step reference on the validation photos;
 *   best     the 20-step reference (DDIM; eta 1, colorize eta 0). */
typedef enum { DR_QUALITY_DEFAULT = 0, DR_QUALITY_FAST = 1, DR_QUALITY_BEST = 2 } dr_quality;
#define DR_QUALITY_NAMES "fast, default, best"
const char *dr_quality_name(dr_quality q);
int dr_quality_from_name(const char *name, dr_quality *out); /* DR_OK or DR_ERR_INVALID */
/* dr_params_init, then the preset's sampler, steps and eta for the mode.
 * DR_ERR_INVALID (p left at dr_params_init) for an unknown mode or preset. */
int dr_params_init_quality(dr_params *p, dr_mode mode, dr_quality q);

/* Restore one image with the model's mode.
 *  colorize: in is gray or colour (its luma is used); out is RGB (plus alpha if in had it).
 *  inpaint:  mask's first channel (any depth) marks the hole where > half its range;
 *            NULL uses in's alpha (transparent = hole; the filled pixels come out
 *            opaque). Known pixels are copied bit for bit.
 *  superres: out is in upscaled per p->scale / out_width / out_height.
 * out receives a newly allocated image of in's depth. */
int dr_restore(dr_model *m, const dr_image *in, const dr_image *mask, const dr_params *p, dr_image *out);

/* n samples (seeds p->seed .. p->seed + n - 1) into outs[n] (zeroed structs;
 * outs itself may be NULL when only the statistics are wanted), and
 * optionally their per-pixel mean (the posterior mean estimate) and a heat map
 * of their standard deviation (8-bit RGB). */
int dr_restore_samples(dr_model *m, const dr_image *in, const dr_image *mask, const dr_params *p, int n, dr_image *outs,
                       dr_image *mean, dr_image *uncertainty);

/* ------------------------------------------------------------------ evaluation
 * Measuring a model on ground-truth photos (`diffrestore eval`): degrade each
 * image as training does, restore it, score the result and a classical
 * baseline against the original.
 *
 * Every metric works on the 0..255 scale: 8-bit samples as they are, 16-bit
 * samples times 255/65535. A gray image counts as R = G = B; alpha is ignored.
 * Luma is Y = .299R + .587G + .114B (unrounded), chroma Cb, Cr as in MODEL.md.
 * A metric that has no meaning for the data (no hole pixel, a ground truth
 * without colour or detail for a ratio) is NaN. Images compared must have the
 * same width and height (DR_ERR_INVALID otherwise). */

#define DR_EVAL_PSNR_CAP 99.0 /* dB: the PSNR of identical images, and the most ever reported */

/* Inpaint hole generators: legacy (brush strokes and boxes, the DeepFill v2 /
 * LaMa style) or damage (scratches, cracks, blotches, strokes and boxes shaped
 * like the damage on old photos); docs/TRAINING.md describes both laws. */
typedef enum { DR_MASKS_LEGACY = 0, DR_MASKS_DAMAGE = 1 } dr_train_masks;

typedef struct {
    double scale;              /* superres: LR = round(H / scale) x round(W / scale) (default 4) */
    double hole_min, hole_max; /* inpaint: hole fraction drawn in this range (default 0.10 .. 0.30) */
    dr_train_masks masks;      /* inpaint: the hole generator (default DR_MASKS_LEGACY) */
    uint64_t seed;             /* inpaint: the mask of image `index` depends on (seed, index) only */
    int crop;                  /* > 0: score the centred crop of min(crop, W) x min(crop, H) (default 0: all) */
    double noise_sigma;        /* denoise: Gaussian noise, std on 0..255 (default 25; 0: none) */
    int jpeg_quality;          /* denoise: JPEG-compressed at this quality first (default 0: not) */
} dr_eval_options;

void dr_eval_options_init(dr_eval_options *o);

/* One ground-truth image, degraded for a mode. All images 8-bit. */
typedef struct {
    dr_mode mode;
    dr_image truth;       /* the ground truth as scored: RGB, cropped */
    dr_image input;       /* what to restore. colorize: the luma Y rounded to 8 bits, 1 channel;
                        * inpaint: truth with the hole pixels black; superres: the LR, RGB,
                        * bicubic (antialiased) downscale of truth, rounded to 8 bits;
                        * denoise: truth with JPEG artefacts and/or Gaussian noise, 8 bits */
    dr_image mask;        /* inpaint: 1 channel, 255 = hole, 0 = known (pass it to dr_restore) */
    dr_image baseline;    /* colorize: the gray input as RGB; superres: bicubic upscale of the LR
                        * to truth's size; denoise: the noisy input; inpaint: empty
                        * (scripts/telea_baseline.py makes OpenCV's Telea) */
    double hole_fraction; /* inpaint: share of hole pixels */
} dr_eval_case;

/* Build the case for ground truth gt (any layout and depth; alpha dropped)
 * and mode, as training degrades (the mode's file in src/modes/): the same resampler,
 * the same 8-bit rounding, the o->masks generator for the holes, with the mask's
 * random stream derived from (o->seed, index). Deterministic. For superres,
 * restore to exactly truth's size: dr_params.out_width / out_height. */
int dr_eval_degrade(const dr_image *gt, dr_mode mode, const dr_eval_options *o, int index, dr_eval_case *c);
/* The options of o that shape mode's cases, for a report's title: " x4",
 * " holes 0.1-0.3 damage", " noise 25" ("" when none), into buf. */
void dr_eval_options_describe(dr_mode mode, const dr_eval_options *o, char *buf, size_t n);
void dr_eval_case_free(dr_eval_case *c);

/* Scores of one restored image (or baseline). NaN where not measured. */
typedef struct {
    double psnr;               /* all: RGB, peak 255, capped at DR_EVAL_PSNR_CAP */
    double ssim;               /* all: luma, Gaussian window 11, sigma 1.5, valid region */
    double chroma_psnr;        /* colorize: over Cb and Cr */
    double colorfulness;       /* colorize: Hasler & Suesstrunk M of the output */
    double colorfulness_gt;    /*           and of the ground truth */
    double colorfulness_ratio; /*           M_out / M_gt */
    double max_luma_diff;      /* colorize: max |Y_out - Y_in| (about 0.5 at most) */
    double hole_psnr;          /* inpaint: RGB PSNR over the hole pixels */
    double hole_hf_ratio;      /* inpaint: mean |grad Y| over the hole, output / truth */
    double max_known_diff;     /* inpaint: max |out - input| over known pixels and RGB (0) */
    double hf_ratio;           /* superres: mean |grad Y| over the image, output / truth */
    double consistency_psnr;   /* superres: downscale(output) against the LR input */
} dr_eval_metrics;

/* Score out (the restoration of c->input, truth's size) for c->mode. */
int dr_eval_score(const dr_eval_case *c, const dr_image *out, dr_eval_metrics *m);
/* Field by field mean over the finite values of m[0..n) (NaN when none). */
void dr_eval_metrics_mean(const dr_eval_metrics *m, int n, dr_eval_metrics *mean);

/* One metric as reports show it. */
typedef struct {
    const char *key;   /* the dr_eval_metrics field's name, used as the JSON key */
    const char *label; /* table header; NULL: JSON only */
    const char *fmt;   /* printf format of a table cell; NULL: JSON only */
    size_t offset;     /* of the double in dr_eval_metrics */
} dr_eval_column;

/* The metrics eval reports for mode: PSNR and SSIM, then the mode's own (the
 * mode's table entry lists them), at most max into cols. Returns how many, 0
 * for an unknown mode. */
int dr_eval_columns(dr_mode mode, const dr_eval_column **cols, int max);

/* The metrics one by one. region (may be NULL = every pixel) selects the
 * pixels whose first channel is above half its range.
 * PSNR = 10 log10(255^2 / MSE) over R, G, B of the region's pixels, capped. */
int dr_eval_psnr(const dr_image *a, const dr_image *b, const dr_image *region, double *psnr);
/* Mean SSIM of the luma over the window positions inside the image (images
 * smaller than 11 use the largest odd window that fits), C1 = (0.01 * 255)^2,
 * C2 = (0.03 * 255)^2. */
int dr_eval_ssim(const dr_image *a, const dr_image *b, double *ssim);
/* PSNR over Cb and Cr (unrounded BT.601), peak 255, capped. */
int dr_eval_chroma_psnr(const dr_image *a, const dr_image *b, double *psnr);
/* Hasler & Suesstrunk (2003): rg = R - G, yb = (R + G) / 2 - B over every
 * pixel; M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mu_rg^2 + mu_yb^2), with
 * population standard deviations. */
int dr_eval_colorfulness(const dr_image *img, double *m);
/* Mean over the region of |grad Y| = |Y(x+1,y) - Y(x,y)| + |Y(x,y+1) - Y(x,y)|
 * (a difference past the last column or row counts 0), for out divided by
 * the same for ref. */
int dr_eval_hf_ratio(const dr_image *out, const dr_image *ref, const dr_image *region, double *ratio);
/* Superres consistency: downscale hr to lr's size with the inference
 * resampler (unrounded) and take the PSNR against lr, capped. */
int dr_eval_consistency_psnr(const dr_image *hr, const dr_image *lr, double *psnr);

/* Contact sheet, 8-bit RGB: degraded | restored | truth, side by side with a
 * 2-pixel gray gap. The degraded panel is colorize: the gray input; inpaint:
 * the input with the holes magenta; superres: the LR upscaled by nearest
 * neighbour. restored must have truth's size. */
int dr_eval_sheet(const dr_eval_case *c, const dr_image *restored, dr_image *sheet);

/* ------------------------------------------------------------------ training */

/* The validation x0 error split by noise level: band k holds the val crops
 * whose t lies in [k T / DR_VAL_T_BANDS, (k + 1) T / DR_VAL_T_BANDS) (T = 1000:
 * t < 200, 200..399, ..., 800..999). The mean over all t can fall while the
 * top band, where sampling decides the picture's large structure (colorize:
 * its colours), rises: docs/TRAINING.md, session 40. */
#define DR_VAL_T_BANDS 5

typedef struct {
    int step, steps;
    double loss;          /* this step's loss */
    double loss_smooth;   /* exponential moving average of the loss */
    double lr, grad_norm; /* learning rate used, gradient norm before clipping */
    double steps_per_sec;
    double val_loss;    /* valid when is_val */
    double val_x0_mse;  /* error of the implied x0 estimate, target units (eps and v comparable) */
    double cpu_seconds; /* training CPU time of the run so far, summed over resumes */
    int is_val;
    int ranks;                          /* processes training together (1: alone) */
    double reduce_seconds;              /* ranks > 1: wall time of this step's gradient exchange */
    double val_x0_band[DR_VAL_T_BANDS]; /* valid when is_val: val_x0_mse by noise level (NAN: no crop there) */
} dr_train_progress;

typedef enum { DR_LOSS_UNIFORM = 0, DR_LOSS_MIN_SNR = 1 } dr_loss_weight;
typedef enum { DR_T_UNIFORM = 0, DR_T_LOGNORMAL = 1 } dr_t_sampling;
typedef enum { DR_SCALE_DIST_UNIFORM = 0, DR_SCALE_DIST_HIGH = 1 } dr_scale_dist;
/* How a training crop is turned: flip, a random left-right mirror (the
 * default, as every run before had); dihedral, also a random up-down mirror
 * and transpose: all 8 rotations and mirrors of the square, equally likely. */
typedef enum { DR_AUGMENT_FLIP = 0, DR_AUGMENT_DIHEDRAL = 1 } dr_train_augment;

/* Data-parallel training: the collectives of a group of processes ("ranks")
 * that train one model together. The library never calls MPI itself: the
 * caller (the CLI, built with MPI) supplies these. Every rank calls them in
 * the same order with the same sizes. Both return 0 on success. */
typedef struct {
    int rank, size; /* this process and how many train together */
    /* Rank r contributes send_bytes[r] bytes; recv gets every rank's bytes at
     * recv + displs[r]. */
    int (*allgatherv)(const void *send, void *recv, const size_t *send_bytes, const size_t *displs, void *user);
    /* Rank r sends send_bytes[j] bytes from send + send_displs[j] to rank j
     * and receives recv_bytes[j] bytes from rank j at recv + recv_displs[j]. */
    int (*alltoallv)(const void *send, const size_t *send_bytes, const size_t *send_displs, void *recv,
                     const size_t *recv_bytes, const size_t *recv_displs, void *user);
    void *user;
} dr_train_comm;

typedef struct {
    dr_mode mode;
    const char *data_dir;    /* every PNG and JPEG below it, recursively */
    const char *val_dir;     /* optional: val loss every val_every steps */
    const char *out_path;    /* the checkpoint (weights, EMA, Adam state, step) */
    const char *resume_path; /* optional: continue from this checkpoint */
    const char *init_path;   /* optional: start from these weights (a weights file: its config,
                              * mode, prediction, schedule, target_scale and scale range are
                              * used; Adam starts afresh, with warmup; train_steps add up, and
                              * the EMA's warm-up counts them: the weights are an EMA already) */
    const char *export_path; /* optional: EMA weights as F16 safetensors at the end */
    const char *log_path;    /* optional: CSV of step, loss, lr, ... (default: out_path + ".csv") */
    dr_unet_config config;   /* in/out channels are set from the mode */
    int steps;               /* total steps to reach (a resumed run continues to it) */
    int batch, patch;
    /* Samples per forward and backward; it divides batch. The batch's
     * gradient is a fixed tree of sums over its micro-batches' gradients, so
     * a run's result depends on batch and micro_batch, never on how many
     * ranks (up to batch / micro_batch) share it. 0: a new run alone takes the
     * whole batch (one forward and backward, as before micro-batches
     * existed), on N ranks the largest divisor of batch up to batch / N.
     * Stored in the checkpoint, and kept on resume unless given (older
     * checkpoints: the whole batch). */
    int micro_batch;
    float lr, warmup_steps, weight_decay, grad_clip, ema_decay;
    /* The rate's final phase (warmup-stable-decay): the last anneal_steps
     * steps before `steps` run in anneal_stages equal stages at lr / 2,
     * lr / 4, ... lr / 2^anneal_stages (docs/TRAINING.md: two halvings moved
     * superres's samples, a third did not). 0 (the default): constant after
     * the warmup. The window ends at `steps`, so a resume that changes steps
     * moves it. Stored in the checkpoint (older ones: 0) and kept on resume
     * unless resume_anneal is set. anneal_stages 1..8 (default 2); anneal_steps
     * 0, or at least anneal_stages. */
    int anneal_steps, anneal_stages;
    /* ResBlock dropout in training only (guided-diffusion, Palette): each
     * ResBlock's silu(norm2(h)) is zeroed with this probability before conv2
     * (0 <= dropout < 1; default 0: none). The mask is a function of the
     * seed, the step, the sample's index in the batch, the block and the
     * element, so it is the same for any threads, micro-batch or ranks.
     * Validation and restore never drop; weights files are unchanged. Stored
     * in the checkpoint (older ones: 0) and kept on resume unless
     * resume_dropout is set. */
    float dropout;
    /* Conditioning dropout (classifier-free guidance, Ho & Salimans 2022):
     * each training example's conditioning channels are zeroed with this
     * probability (0 <= cond_dropout < 1; default 0: never), so the network
     * also learns the unconditional prediction that dr_params.guidance
     * extrapolates from. Drawn per example from its own stream after all its
     * other draws (runs without it are unchanged); validation never drops.
     * Stored in the checkpoint and the exported weights (metadata
     * cond_dropout); kept on resume. */
    float cond_dropout;
    int predict_v;              /* 0: eps, 1: v (the default: docs/TRAINING.md's A/B) */
    int schedule_linear;        /* 0: cosine */
    float target_scale;         /* 0: measure from the data (std of the target -> ~0.5) */
    float scale_min, scale_max; /* superres factors */
    float hole_min, hole_max;   /* inpaint hole fraction */
    /* inpaint training masks: legacy (brush strokes and boxes) or damage
     * (scratches, cracks, blotches, strokes, boxes; docs/TRAINING.md), both
     * within hole_min..hole_max. Validation always uses legacy masks. */
    dr_train_masks masks;
    /* superres training scales: uniform over scale_min..scale_max, or high:
     * density rising linearly to 3x at scale_max (docs/TRAINING.md).
     * Validation always draws uniformly. */
    dr_scale_dist scale_dist;
    /* Training crops' orientations (dr_train_augment; validation never turns
     * its crops). Stored in the checkpoint (older ones: flip) and kept on
     * resume unless resume_augment is set. */
    dr_train_augment augment;
    /* Full-resolution crops' largest zoom: a crop covers S x S source pixels,
     * P <= S <= min(w, h, zoom_max P), log-uniform, resampled to P; 1 takes
     * the photos' own pixels only (the scale eval and restore see). 1..4
     * (default 4, as every run before it); validation always uses 4. Stored
     * in the checkpoint and kept on resume unless resume_zoom_max is set. */
    double zoom_max;
    int render_size; /* colorize: > 0 crops come from the photo as if downscaled so that
                              * its long side is render_size (times a random zoom in 0.8..1.25,
                              * never upscaled); stored in the checkpoint and as the exported
                              * weights' render_size (restore's default). 0: full resolution */
    uint64_t seed;
    int checkpoint_every; /* steps; also on cancel */
    int val_every, val_batches;
    int val_patch; /* the validation crops' size during training (0: the training patch), e.g.
                    * restore's 256-pixel tiles; measurement only: not stored, any resume may set it */
    /* Loss weight over t (docs/TRAINING.md): uniform, or Min-SNR-gamma (Hang et
     * al. 2023): min(SNR, gamma) / (SNR + 1) for v, min(SNR, gamma) / SNR for eps. */
    dr_loss_weight loss_weight;
    float snr_gamma; /* Min-SNR's gamma (default 5) */
    /* How t is drawn: uniform over 0..T-1, or log-normal: log-SNR ~ N(t_mean,
     * t_std) (EDM's ln sigma ~ N(-1.2, 1.2) is log-SNR ~ N(2.4, 2.4)), mapped to
     * the nearest t of the schedule. */
    dr_t_sampling t_sampling;
    float t_mean, t_std;
    /* EMA probes: up to DR_EMA_PROBES_MAX more EMAs of the same run, each with
     * its own decay cap (min(decay, (1 + s) / (10 + s)) with s counted as the
     * main EMA's: from the --init weights' steps), started from the main EMA
     * where the run starts (the --init weights, or the resumed checkpoint's
     * EMA) and validated beside it at every
     * validation into log_path's name + ".ema.csv"; not saved in checkpoints.
     * They measure which decay is best at a horizon in one run. */
    float ema_probe[4];
    int n_ema_probe;
    double budget_cpu_seconds; /* > 0: stop (checkpoint written, DR_OK) once the run's training
                                * CPU time, summed over resumes, reaches it */
    float resume_lr;           /* with resume_path: > 0 trains on at this learning rate from the
                              * checkpoint's step (the checkpoint then stores it); 0 keeps the
                              * checkpoint's. The campaign lowers it as the model improves */
    int resume_dropout;        /* with resume_path: nonzero trains on at dropout from the checkpoint's
                                * step (the checkpoint then stores it); 0 keeps the checkpoint's */
    int resume_augment;        /* with resume_path: nonzero trains on with augment from the checkpoint's
                                * step (the checkpoint then stores it); 0 keeps the checkpoint's */
    int resume_zoom_max;       /* the same for zoom_max */
    int resume_anneal;         /* the same for anneal_steps and anneal_stages */
    long long val_seed;        /* -1: validate with the training seed's fixed crops (the default) */
    int validate_params;       /* dr_train_validate of a checkpoint: its raw parameters, not its EMA */
    /* NULL (or size 1): train alone. Otherwise data-parallel: rank r draws and
     * differentiates samples [r B / size, (r + 1) B / size) of every global
     * batch of B; the sum of the gradients is the same fixed tree over the
     * per-sample gradients for every size, so any number of ranks gives the
     * run of one process bit for bit. Rank 0 alone writes the checkpoint, the
     * log and the export, validates, and calls progress and log. */
    const dr_train_comm *comm;
    volatile int *cancel; /* raised by the caller (e.g. on SIGINT): checkpoint, then stop */
    void (*progress)(const dr_train_progress *p, void *user);
    void (*log)(const char *message, void *user); /* notes such as skipped files */
    void *user;
} dr_train_options;

#define DR_EMA_PROBES_MAX 4

void dr_train_options_init(dr_train_options *o);
/* Train until o->steps. Returns DR_OK, DR_ERR_CANCELLED (checkpoint written),
 * DR_ERR_NUMERIC (NaN/inf loss: stopped, the last checkpoint is kept), or an
 * error. */
int dr_train(const dr_train_options *o);
/* The validation loss and x0 MSE (as logged in training) of a checkpoint's
 * EMA (o->resume_path; its raw parameters with o->validate_params) or of a weights file (o->init_path)
 * on o->val_dir's fixed crops of o->patch pixels (for a checkpoint too, whatever patch it trained at),
 * t and noise of o->val_seed (val_batches batches of 16 crops, whatever the training batch): models
 * of different runs and sessions measured on one scale. */
int dr_train_validate(const dr_train_options *o, double *val_loss, double *val_x0_mse);
/* dr_train_validate's numbers and the x0 MSE by noise level (DR_VAL_T_BANDS). */
typedef struct {
    double val_loss, val_x0_mse;
    double x0_band[DR_VAL_T_BANDS]; /* x0 MSE of the crops in band k (NAN: no crop there) */
    int band_crops[DR_VAL_T_BANDS]; /* how many of the crops fall in band k */
    int timesteps;                  /* the model's T: band k is t in [k T / DR_VAL_T_BANDS, (k + 1) T / ...) */
} dr_val_result;
int dr_train_validate_bands(const dr_train_options *o, dr_val_result *r);
/* Write a checkpoint's EMA weights as a weights file (F16 or F32). */
int dr_train_export(const char *checkpoint, const char *out_path, int f16);

/* ------------------------------------------------------------------ benchmark */

typedef struct {
    int height, width, batch;
    int train;     /* 0: one forward; 1: one training step (forward, backward, AdamW) */
    int iters;     /* timed iterations (after one warm-up) */
    float dropout; /* train: ResBlock dropout in the step (0 <= dropout < 1; default 0) */
} dr_bench_options;

typedef struct {
    int iters;
    double ms_median, ms_min, ms_max;
    double gflop;  /* per iteration: 2 x MACs of convolutions, linears, attention matmuls */
    double gflops; /* gflop / median time */
    /* mean ms per iteration by layer kind; other = the rest (elementwise, optimizer) */
    double ms_conv, ms_norm, ms_attn, ms_linear, ms_other;
    double peak_rss_mb; /* of the whole process so far */
    size_t activation_bytes;
} dr_bench_result;

void dr_bench_options_init(dr_bench_options *o);
/* Time the U-Net of cfg (random weights, random inputs) for mode's channels. */
int dr_bench(const dr_unet_config *cfg, dr_mode mode, const dr_bench_options *o, dr_bench_result *r);

#ifdef __cplusplus
}
#endif
#endif /* DIFFRESTORE_H */
