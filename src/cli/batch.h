/* Batch planning for the commands that work through images (restore, eval):
 * collecting inputs from files and directories, deterministic order,
 * sharding, output paths and their collisions, skip-existing, mkdir -p and
 * the "never overwrite an input" check. Nothing here knows about the model. */
#ifndef DR_CLI_BATCH_H
#define DR_CLI_BATCH_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    dev_t dev;
    ino_t ino;
} file_id;

typedef struct {
    char *path;  /* what to open and what messages name */
    char *rel;   /* relative name below its input directory (the basename for a file) */
    char *error; /* when set, the item fails with this reason (walk errors, name collisions) */
    int index;   /* position in the sorted full list (sharding uses it) */
} batch_item;

typedef struct {
    batch_item *items;
    int n, cap;
    int any_dir;    /* an input was a directory */
    int subdirs;    /* a directory walked without -r had subdirectories */
    char **ignored; /* "PATH: reason" of entries the walk passed over that a user may have
                     * meant: hidden image files, FIFOs, sockets, devices (counted as skipped) */
    int n_ignored, cap_ignored;
    file_id *ids;                 /* (dev, ino) of every input file, sorted: the outputs must avoid them */
    int n_ids, cap_ids, n_sorted; /* ids[0..n_sorted) are sorted (binary search) */
} batch_list;

/* Add every input: a file as is (whatever its name: the decoder checks the
 * bytes), a directory's PNG/JPEG files (by extension, or by magic bytes for
 * other names; hidden entries skipped; subdirectories only when recursive,
 * through symbolic links but never around a loop, and never the directories
 * in skip[]).
 * A file named .png/.jpg/.jpeg that is not an image is kept: it fails later
 * with a clear message. Returns 0, or -1 when out of memory. */
int batch_collect(batch_list *b, char *const *inputs, int n_inputs, int recursive, const file_id *skip, int n_skip);
/* Sort by relative path (byte order, then the full path) and number the items. */
void batch_sort(batch_list *b);
void batch_free(batch_list *b);
/* 1 if (dev, ino) is one of the inputs. */
int batch_is_input(const batch_list *b, dev_t dev, ino_t ino);
/* Remember one more input-side file (a shared mask): outputs must avoid it too. */
int batch_add_id(batch_list *b, dev_t dev, ino_t ino);

/* Record the directory path (when it is one) in skip[*n] for batch_collect.
 * Returns 1 when added. */
int batch_skip_dir(file_id *skip, int *n, const char *path);

/* ---- outputs */

/* [dir/]rel with its extension replaced by ext and suffix inserted before it
 * (dir NULL: the name alone). NULL when out of memory. */
char *batch_out_path(const char *dir, const char *rel, const char *ext, const char *suffix);
/* Why item i fails when its output is also first's (msg of msg_n bytes). */
typedef void (*batch_collision_msg)(char *msg, size_t msg_n, const char *output, const char *first_input, void *user);
/* Items whose outputs[i] equals an earlier item's (in sorted order) fail with
 * why(): done over the full list, so every shard agrees. Items failing
 * already keep their error. Returns 0, or -1 when out of memory. */
int batch_mark_collisions(batch_list *b, char *const *outputs, batch_collision_msg why, void *user);
/* --skip-existing: 1 when every one of files[0..n) exists and is not empty
 * (outputs are written whole: an empty file is no finished output). */
int batch_outputs_done(char *const *files, int n);
/* Create path's directory. Returns 0, or -1 with msg "cannot create the directory D: reason". */
int batch_mkdir_parent(const char *path, char *msg, size_t msg_n);

/* ---- shards */

/* "K/N" with 0 <= K < N. Returns 1 when valid. */
int parse_shard(const char *s, int *k, int *n);
/* Shard from SLURM_ARRAY_TASK_ID / _COUNT (and _MIN / _STEP when set).
 * Returns 1 and sets k, n when both are set and consistent, 0 when they are
 * not set, -1 when they are set but make no shard (msg explains). */
int shard_from_slurm(int *k, int *n, char *msg, size_t msg_n);

/* Path helpers; every returned string is malloc'd (NULL when out of memory). */
char *path_join(const char *dir, const char *name);
/* rel with its extension (if any) replaced by "." ext. */
char *path_set_ext(const char *rel, const char *ext);
/* path with suffix inserted before the extension: a/b.png + "_1" -> a/b_1.png. */
char *path_add_suffix(const char *path, const char *suffix);
/* The extension without the dot ("" if none), pointing into path. */
const char *path_ext(const char *path);
/* 1 for .png / .jpg / .jpeg (any case). */
int path_has_image_ext(const char *path);
/* The directory part ("." when none). */
char *path_dirname(const char *path);

/* mkdir -p. Returns 0, or -1 with errno set and *failed pointing at the
 * component that could not be created (static buffer). */
int mkdir_p(const char *path, const char **failed);
/* 1 if path is an existing directory. */
int is_dir(const char *path);

#endif
