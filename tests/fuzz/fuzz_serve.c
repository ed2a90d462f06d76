/* fuzz_serve.c - the job requests of `diffrestore serve` (src/cli/serve/request.c):
 * the whole input is a request body. Whatever it holds, serve_request_parse
 * either fails with an HTTP status and a message, or gives a request whose
 * fields obey the contract in serve.h: a known mode (any of the mode table), a decoded image within
 * the pixel limit, an inpaint mask of the image's size with at least one hole
 * and nothing but 0 and 255, sampler steps 1..1000. The base64 decoder is
 * also checked on its own against re-encoding. */
#include "fuzz.h"

#include "serve.h"

#include <string.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    serve_limits lim = {.max_pixels = 1 << 16};
    serve_request rq;
    char err[768];
    int st = serve_request_parse((const char *)data, size, &lim, &rq, err, sizeof err);
    if (st) {
        FUZZ_CHECK(st == 400 || st == 413 || st == 415 || st == 422);
        FUZZ_CHECK(err[0] != 0 && memchr(err, 0, sizeof err) != NULL);
        FUZZ_CHECK(rq.image.data == NULL && rq.mask.data == NULL);
    } else {
        FUZZ_CHECK(dr_mode_get(rq.mode) != NULL); /* any mode of the table, denoise too */
        FUZZ_CHECK(rq.image.data && (int64_t)rq.image.width * rq.image.height <= lim.max_pixels);
        FUZZ_CHECK(rq.params.steps >= 1 && rq.params.steps <= 1000);
        FUZZ_CHECK(rq.name[0] && !strchr(rq.name, '/'));
        if (rq.have_mask) {
            FUZZ_CHECK(rq.mode == DR_MODE_INPAINT && rq.mask.width == rq.image.width &&
                       rq.mask.height == rq.image.height && rq.mask.channels == 1);
            size_t holes = 0;
            for (size_t i = 0; i < (size_t)rq.mask.width * rq.mask.height; i++) {
                FUZZ_CHECK(rq.mask.data[i] == 0 || rq.mask.data[i] == 255);
                holes += rq.mask.data[i] == 255;
            }
            FUZZ_CHECK(holes > 0);
        }
        serve_request_free(&rq);
    }
    /* base64: a decoded buffer re-encodes to the input's significant characters */
    unsigned char *out;
    size_t n;
    if (size < 4096 && serve_base64_decode((const char *)data, size, &out, &n) == 0) {
        FUZZ_CHECK(n <= size);
        char *enc = malloc(4 * (n / 3 + 1) + 1);
        FUZZ_CHECK(enc != NULL);
        size_t k = 0;
        for (size_t i = 0; i < n; i += 3) {
            unsigned v =
                (unsigned)out[i] << 16 | (i + 1 < n ? (unsigned)out[i + 1] << 8 : 0) | (i + 2 < n ? out[i + 2] : 0);
            enc[k++] = B64[v >> 18 & 63];
            enc[k++] = B64[v >> 12 & 63];
            if (i + 1 < n) enc[k++] = B64[v >> 6 & 63];
            if (i + 2 < n) enc[k++] = B64[v & 63];
        }
        enc[k] = 0;
        /* the input without whitespace, padding or a data: prefix, in the standard alphabet */
        const char *s = (const char *)data;
        size_t m = size;
        if (m >= 5 && memcmp(s, "data:", 5) == 0) {
            const char *comma = memchr(s, ',', m);
            m -= (size_t)(comma + 1 - s);
            s = comma + 1;
        }
        size_t j = 0;
        for (size_t i = 0; i < m; i++) {
            char c = s[i];
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '=') continue;
            if (c == '-') c = '+';
            if (c == '_') c = '/';
            FUZZ_CHECK(j < k);
            /* the last character may carry unused low bits that re-encode as zero */
            if (j + 1 < k) FUZZ_CHECK(enc[j] == c);
            j++;
        }
        FUZZ_CHECK(j == k);
        free(enc);
        free(out);
    }
    return 0;
}
