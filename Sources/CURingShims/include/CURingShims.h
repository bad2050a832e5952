#ifndef PETREL_CURINGSHIMS_H
#define PETREL_CURINGSHIMS_H
// Placeholder: filled in by the URingIO work.
int petrel_uring_shims_version(void);
#endif
