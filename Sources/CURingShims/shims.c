#define _GNU_SOURCE
#include "CURingShims.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>

struct petrel_uring {
    struct io_uring ring;
};

petrel_uring *petrel_uring_create(unsigned entries, int *error) {
    petrel_uring *result = calloc(1, sizeof(*result));
    if (result == NULL) {
        *error = -ENOMEM;
        return NULL;
    }
    int status = io_uring_queue_init(entries, &result->ring, 0);
    if (status < 0) {
        free(result);
        *error = status;
        return NULL;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&result->ring);
    int supported = probe != NULL
        && io_uring_opcode_supported(probe, IORING_OP_WRITE)
        && io_uring_opcode_supported(probe, IORING_OP_FSYNC)
        && io_uring_opcode_supported(probe, IORING_OP_SYNC_FILE_RANGE);
    if (probe != NULL) io_uring_free_probe(probe);
    if (!supported) {
        io_uring_queue_exit(&result->ring);
        free(result);
        *error = -EOPNOTSUPP;
        return NULL;
    }
    *error = 0;
    return result;
}

void petrel_uring_destroy(petrel_uring *ring) {
    if (ring == NULL) return;
    io_uring_queue_exit(&ring->ring);
    free(ring);
}

unsigned petrel_uring_sq_entries(const petrel_uring *ring) { return ring->ring.sq.ring_entries; }

int petrel_uring_prep_write(petrel_uring *ring, int fd, const void *bytes, unsigned length,
                            uint64_t offset, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring->ring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_write(sqe, fd, bytes, length, offset);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int petrel_uring_prep_fdatasync(petrel_uring *ring, int fd, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring->ring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int petrel_uring_prep_sync_file_range(petrel_uring *ring, int fd, uint64_t offset, unsigned length,
                                      uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring->ring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_sync_file_range(sqe, fd, length, offset, SYNC_FILE_RANGE_WRITE);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

unsigned petrel_uring_sq_ready(const petrel_uring *ring) { return io_uring_sq_ready(&ring->ring); }

int petrel_uring_submit_and_wait(petrel_uring *ring, unsigned wait_count) {
    return io_uring_submit_and_wait(&ring->ring, wait_count);
}

int petrel_uring_wait(petrel_uring *ring) {
    struct io_uring_cqe *cqe = NULL;
    // io_uring_wait_cqe does not consume the CQE; petrel_uring_reap does.
    return io_uring_wait_cqe(&ring->ring, &cqe);
}

unsigned petrel_uring_reap(petrel_uring *ring, uint64_t *user_data, int32_t *result, unsigned max) {
    unsigned count = 0;
    unsigned head;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&ring->ring, head, cqe) {
        if (count == max) break;
        user_data[count] = io_uring_cqe_get_data64(cqe);
        result[count] = cqe->res;
        count++;
    }
    io_uring_cq_advance(&ring->ring, count);
    return count;
}
