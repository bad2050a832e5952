#ifndef PETREL_CCRC32C_H
#define PETREL_CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (start with 0).
/// Uses the SSE4.2 `crc32` instruction when the CPU has it (checked once at run time),
/// otherwise a slicing-by-8 table.
uint32_t petrel_crc32c(uint32_t crc, const void *data, size_t length);

/// The portable table implementation (exposed for tests and benchmarks).
uint32_t petrel_crc32c_portable(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware path is in use.
int petrel_crc32c_hardware_available(void);
#endif
