// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
// Hardware path: SSE4.2 crc32q over three interleaved streams (hides the 3-cycle latency of the
// instruction), combined with a GF(2) shift table; runtime-dispatched via __builtin_cpu_supports,
// so no -msse4.2 flag is needed for the rest of the package. Fallback: slicing-by-8 tables.
#include "CCRC32C.h"
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int table_ready = 0;

static void build_tables(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = n;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ POLY : crc >> 1;
        table[0][n] = crc;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = table[0][n];
        for (int k = 1; k < 8; k++) {
            crc = table[0][crc & 0xff] ^ (crc >> 8);
            table[k][n] = crc;
        }
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static void ensure_tables(void) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_tables();
}

uint32_t petrel_crc32c_portable(uint32_t crc, const void *data, size_t length) {
    ensure_tables();
    const unsigned char *p = (const unsigned char *)data;
    crc = ~crc;
    while (length && ((uintptr_t)p & 7)) {
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        length--;
    }
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        word ^= crc;
        crc = table[7][word & 0xff] ^ table[6][(word >> 8) & 0xff] ^ table[5][(word >> 16) & 0xff] ^
              table[4][(word >> 24) & 0xff] ^ table[3][(word >> 32) & 0xff] ^ table[2][(word >> 40) & 0xff] ^
              table[1][(word >> 48) & 0xff] ^ table[0][word >> 56];
        p += 8;
        length -= 8;
    }
    while (length--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
#include <cpuid.h>

// Multiply a CRC by x^(8*len) mod P (shift the CRC past `len` zero bytes) using GF(2) matrices.
static uint32_t gf2_matrix_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1) sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void gf2_matrix_square(uint32_t *square, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) square[n] = gf2_matrix_times(mat, mat[n]);
}

// Table to shift a crc by LONG bytes: shift_table[k][b] = contribution of byte b at position k.
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256
static uint32_t long_shift[4][256];
static uint32_t short_shift[4][256];
static int hw_state = -1;  // -1 unknown, 0 no, 1 yes

static void zeros_op(uint32_t *even, size_t len) {
    uint32_t odd[32];
    odd[0] = POLY;
    uint32_t row = 1;
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    gf2_matrix_square(even, odd);
    gf2_matrix_square(odd, even);
    do {
        gf2_matrix_square(even, odd);
        len >>= 1;
        if (len == 0) return;
        gf2_matrix_square(odd, even);
        len >>= 1;
    } while (len);
    memcpy(even, odd, sizeof(odd));
}

static void zeros_table(uint32_t zeros[][256], size_t len) {
    uint32_t op[32];
    zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_matrix_times(op, n);
        zeros[1][n] = gf2_matrix_times(op, n << 8);
        zeros[2][n] = gf2_matrix_times(op, n << 16);
        zeros[3][n] = gf2_matrix_times(op, n << 24);
    }
}

static inline uint32_t shift_crc(uint32_t shift[][256], uint32_t crc) {
    return shift[0][crc & 0xff] ^ shift[1][(crc >> 8) & 0xff] ^ shift[2][(crc >> 16) & 0xff] ^ shift[3][crc >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *data, size_t length) {
    const unsigned char *next = (const unsigned char *)data;
    uint64_t crc0 = ~crc;
    while (length && ((uintptr_t)next & 7)) {
        crc0 = __builtin_ia32_crc32qi((uint32_t)crc0, *next++);
        length--;
    }
    while (length >= LONG_BLOCK * 3) {
        uint64_t crc1 = 0, crc2 = 0;
        const unsigned char *end = next + LONG_BLOCK;
        do {
            uint64_t a, b, c;
            memcpy(&a, next, 8);
            memcpy(&b, next + LONG_BLOCK, 8);
            memcpy(&c, next + 2 * LONG_BLOCK, 8);
            crc0 = __builtin_ia32_crc32di(crc0, a);
            crc1 = __builtin_ia32_crc32di(crc1, b);
            crc2 = __builtin_ia32_crc32di(crc2, c);
            next += 8;
        } while (next < end);
        crc0 = shift_crc(long_shift, (uint32_t)crc0) ^ crc1;
        crc0 = shift_crc(long_shift, (uint32_t)crc0) ^ crc2;
        next += LONG_BLOCK * 2;
        length -= LONG_BLOCK * 3;
    }
    while (length >= SHORT_BLOCK * 3) {
        uint64_t crc1 = 0, crc2 = 0;
        const unsigned char *end = next + SHORT_BLOCK;
        do {
            uint64_t a, b, c;
            memcpy(&a, next, 8);
            memcpy(&b, next + SHORT_BLOCK, 8);
            memcpy(&c, next + 2 * SHORT_BLOCK, 8);
            crc0 = __builtin_ia32_crc32di(crc0, a);
            crc1 = __builtin_ia32_crc32di(crc1, b);
            crc2 = __builtin_ia32_crc32di(crc2, c);
            next += 8;
        } while (next < end);
        crc0 = shift_crc(short_shift, (uint32_t)crc0) ^ crc1;
        crc0 = shift_crc(short_shift, (uint32_t)crc0) ^ crc2;
        next += SHORT_BLOCK * 2;
        length -= SHORT_BLOCK * 3;
    }
    while (length >= 8) {
        uint64_t a;
        memcpy(&a, next, 8);
        crc0 = __builtin_ia32_crc32di(crc0, a);
        next += 8;
        length -= 8;
    }
    while (length) {
        crc0 = __builtin_ia32_crc32qi((uint32_t)crc0, *next++);
        length--;
    }
    return ~(uint32_t)crc0;
}

static int detect_hw(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (!(ecx & bit_SSE4_2)) return 0;
    zeros_table(long_shift, LONG_BLOCK);
    zeros_table(short_shift, SHORT_BLOCK);
    return 1;
}

int petrel_crc32c_hardware_available(void) {
    int state = __atomic_load_n(&hw_state, __ATOMIC_ACQUIRE);
    if (state < 0) {
        state = detect_hw();
        __atomic_store_n(&hw_state, state, __ATOMIC_RELEASE);
    }
    return state;
}

uint32_t petrel_crc32c(uint32_t crc, const void *data, size_t length) {
    if (petrel_crc32c_hardware_available()) return crc32c_hw(crc, data, length);
    return petrel_crc32c_portable(crc, data, length);
}
#else
int petrel_crc32c_hardware_available(void) { return 0; }
uint32_t petrel_crc32c(uint32_t crc, const void *data, size_t length) {
    return petrel_crc32c_portable(crc, data, length);
}
#endif
