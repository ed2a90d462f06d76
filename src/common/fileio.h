/* Whole-file reads and atomic writes (temp file in the same directory, fsync,
 * rename), shared by the image writer, the safetensors writer and checkpoints. */
#ifndef DR_COMMON_FILEIO_H
#define DR_COMMON_FILEIO_H

#include <stddef.h>
#include <stdio.h>

/* Read a whole file into a malloc'd buffer. max_size bounds the read. */
int file_read_all(const char *path, size_t max_size, unsigned char **buf, size_t *size);

/* Atomic writer: file_atomic_open creates "<dir>/.<name>.tmpXXXXXX" beside
 * path; write through w->fp; file_atomic_commit flushes, fsyncs and renames
 * (failing with DR_ERR_EXISTS if path exists and !overwrite); file_atomic_abort
 * removes the temp file. Exactly one of commit/abort must be called. */
typedef struct {
    FILE *fp;
    char *tmp_path;
    char *path;
} file_atomic;

int file_atomic_open(file_atomic *w, const char *path, int overwrite);
int file_atomic_commit(file_atomic *w, int overwrite);
void file_atomic_abort(file_atomic *w);

/* Remove the temp files a killed writer of path left behind (names
 * ".<name>.tmpXXXXXX" beside it; nothing else is touched). Only for a path
 * that one process owns, such as a training checkpoint: it would delete a
 * concurrent writer's temp file. Returns how many were removed (>= 0). */
int file_atomic_remove_stale(const char *path);

#endif
