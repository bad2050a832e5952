int petrel_uring_shims_version(void) { return 1; }
