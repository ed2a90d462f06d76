/* checkpoint.h - the training state's file.
 *
 * A checkpoint is a safetensors file (format "diffrestore-checkpoint") with
 * four 1-D F32 tensors - params, ema, adam_m, adam_v - and metadata holding
 * the model config, the step, the options that shape the random stream, the
 * data's hash and a checksum over the tensors and step, so a damaged file is
 * refused rather than resumed. Writes are atomic (temp file + rename). */
#ifndef DR_TRAIN_CHECKPOINT_H
#define DR_TRAIN_CHECKPOINT_H

#include "train/train_state.h"

int checkpoint_save(const train_state *st, const char *path);
int checkpoint_load(train_state *st, const char *path);
/* The EMA weights as a model file with full metadata. */
int checkpoint_export(const train_state *st, const char *path, int f16);

#endif
