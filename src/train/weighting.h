/*
 * weighting.h - how much each timestep counts in training: the Min-SNR-gamma
 * loss weight and the log-normal timestep draw (docs/TRAINING.md has the
 * equal-CPU-time comparisons that chose between them).
 */
#ifndef DR_TRAIN_WEIGHTING_H
#define DR_TRAIN_WEIGHTING_H

#include "diffusion/diffusion.h"

/* Min-SNR-gamma (Hang et al., ICCV 2023) for a sample at alpha_bar: the x0
 * loss weighted by min(SNR, gamma), SNR = alpha_bar / (1 - alpha_bar),
 * expressed on the network's own target. The v loss is (SNR + 1) times the
 * x0 loss, the eps loss SNR times, so the weight is min(SNR, gamma) / (SNR + 1)
 * for v and min(SNR, gamma) / SNR for eps. */
double train_min_snr_weight(double alpha_bar, double gamma, int predict_v);

/* The timestep whose log-SNR is nearest to log_snr (alpha_bar falls with t,
 * so log-SNR does too): a normal draw of log_snr gives the log-normal
 * sampling of EDM (ln sigma = -log_snr / 2). */
int train_t_from_log_snr(const noise_schedule *sch, double log_snr);

#endif
