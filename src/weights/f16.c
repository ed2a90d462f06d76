#include "weights/f16.h"

#include <string.h>

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13); /* inf or NaN (payload kept) */
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or NaN */
        return sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0);
    if (absx >= 0x477ff000u) return sign | 0x7c00u; /* rounds to >= 65520: overflow to inf */
    int32_t e = (int32_t)(absx >> 23) - 127;
    uint32_t man = (absx & 0x7fffffu) | 0x800000u;
    if (e < -25) return sign; /* below half the smallest subnormal */
    uint32_t shift, h;
    if (e < -14) { /* subnormal half */
        shift = (uint32_t)(-e - 14 + 13);
        h = man >> shift;
    } else {
        shift = 13;
        h = ((uint32_t)(e + 15) << 10) | ((man >> 13) & 0x3ffu);
    }
    uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) h++; /* carries into the exponent correctly */
    return sign | (uint16_t)h;
}
