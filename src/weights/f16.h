/* IEEE half <-> float conversion, round-to-nearest-even, with subnormals,
 * infinities and NaN. */
#ifndef DR_WEIGHTS_F16_H
#define DR_WEIGHTS_F16_H
#include <stdint.h>
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
#endif
