#include "train/weighting.h"

#include <math.h>

double train_min_snr_weight(double alpha_bar, double gamma, int predict_v) {
    const double snr = alpha_bar / fmax(1.0 - alpha_bar, 1e-300);
    const double clipped = snr < gamma ? snr : gamma;
    return clipped / (predict_v ? snr + 1.0 : fmax(snr, 1e-300));
}

static double log_snr_at(const noise_schedule *sch, int t) {
    const double ab = sch->alpha_bar[t];
    return log(ab) - log1p(-ab);
}

int train_t_from_log_snr(const noise_schedule *sch, double log_snr) {
    /* binary search for the first t whose log-SNR is <= log_snr */
    int lo = 0, hi = sch->T - 1;
    if (log_snr >= log_snr_at(sch, 0)) return 0;
    if (log_snr <= log_snr_at(sch, hi)) return hi;
    while (hi - lo > 1) {
        const int mid = lo + (hi - lo) / 2;
        if (log_snr_at(sch, mid) > log_snr)
            lo = mid;
        else
            hi = mid;
    }
    /* log_snr lies between t = lo and t = hi: take the nearer */
    return log_snr_at(sch, lo) - log_snr < log_snr - log_snr_at(sch, hi) ? lo : hi;
}
