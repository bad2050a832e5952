#ifndef PETREL_CURINGSHIMS_H
#define PETREL_CURINGSHIMS_H
// A small C surface over liburing for Swift: liburing's static-inline helpers and its structs
// (with C11 atomics inside) stay on the C side; Swift sees an opaque ring and plain integers.
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An io_uring instance (struct io_uring plus bookkeeping), opaque to Swift.
typedef struct petrel_uring petrel_uring;

/// Creates a ring with `entries` SQ entries (rounded up to a power of two by the kernel) and checks
/// that IORING_OP_WRITE, IORING_OP_FSYNC and IORING_OP_SYNC_FILE_RANGE are supported.
/// Returns NULL and sets `*error` to a negative errno on failure (-ENOSYS, -EPERM under seccomp,
/// -ENOMEM, -EOPNOTSUPP when an opcode is missing).
petrel_uring *petrel_uring_create(unsigned entries, int *error);

/// Tears the ring down; SQEs prepared but never submitted are discarded.
void petrel_uring_destroy(petrel_uring *ring);

/// Number of SQ entries the kernel gave the ring.
unsigned petrel_uring_sq_entries(const petrel_uring *ring);

/// Prepares IORING_OP_WRITE of `length` bytes at `offset`. Returns 0, or -EBUSY when the SQ is full.
int petrel_uring_prep_write(petrel_uring *ring, int fd, const void *bytes, unsigned length,
                            uint64_t offset, uint64_t user_data);

/// Prepares IORING_OP_FSYNC with IORING_FSYNC_DATASYNC. Returns 0, or -EBUSY when the SQ is full.
int petrel_uring_prep_fdatasync(petrel_uring *ring, int fd, uint64_t user_data);

/// Prepares IORING_OP_SYNC_FILE_RANGE with SYNC_FILE_RANGE_WRITE (`length` 0 = to end of file).
/// Returns 0, or -EBUSY when the SQ is full.
int petrel_uring_prep_sync_file_range(petrel_uring *ring, int fd, uint64_t offset, unsigned length,
                                      uint64_t user_data);

/// SQEs prepared but not yet consumed by the kernel.
unsigned petrel_uring_sq_ready(const petrel_uring *ring);

/// Submits every prepared SQE and waits until at least `wait_count` CQEs are available.
/// Returns the number of SQEs submitted, or a negative errno.
int petrel_uring_submit_and_wait(petrel_uring *ring, unsigned wait_count);

/// Waits until at least one CQE is available, without submitting. Returns 0 or a negative errno.
int petrel_uring_wait(petrel_uring *ring);

/// Copies up to `max` available completions into `user_data` / `result` (the CQE `res`: bytes or a
/// negative errno), marks them seen and returns how many there were. Never blocks.
unsigned petrel_uring_reap(petrel_uring *ring, uint64_t *user_data, int32_t *result, unsigned max);

#ifdef __cplusplus
}
#endif
#endif
