// The system compression libraries Kafka's codecs need (Debian: zlib1g-dev, libsnappy-dev,
// liblz4-dev, libzstd-dev). Petrel uses them only to read and rewrite compressed batches
// (compaction, dump --deep, console consumer); produce and fetch never decompress.
#include <zlib.h>
#include <snappy-c.h>
#include <lz4frame.h>
#include <zstd.h>
