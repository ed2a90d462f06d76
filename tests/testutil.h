/* Minimal test harness: CHECK records a failure with file:line and goes on;
 * the test's main returns test_summary(), which prints "N passed, N failed"
 * and is non-zero when anything failed. */
#ifndef DR_TESTUTIL_H
#define DR_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

extern int g_test_pass, g_test_fail;

void test_check(int ok, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define CHECK(cond, ...) test_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* Returns the process exit code: 0 if every check passed. */
int test_summary(const char *name);

/* Deterministic RNG for tests (splitmix64 / xorshift). */
typedef struct {
    uint64_t s;
} test_rng;
uint64_t test_rng_u64(test_rng *r);
float test_rng_uniform(test_rng *r); /* [0, 1) */
float test_rng_normal(test_rng *r);  /* N(0, 1) */
void test_fill_normal(test_rng *r, float *x, size_t n, float scale);

/* Max |a-b| and max |a| over n values. */
double test_max_abs_diff(const float *a, const float *b, size_t n);
double test_max_abs(const float *a, size_t n);
/* How many of n values differ (a[i] != b[i], NaN counts; a zero's sign does not). */
size_t test_count_unequal(const float *a, const float *b, size_t n);

/* A fresh empty temporary directory (mkdtemp under $TMPDIR or /tmp). */
const char *test_tmpdir(void);

#endif
