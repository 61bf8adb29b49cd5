"""Every bound the broker enforces, with units last and the precedent for its default."""

# Kafka's socket.request.max.bytes default (100 MiB).
SOCKET_REQUEST_BYTES_MAX = 104_857_600
# Kafka's message.max.bytes default (1 MiB + record batch overhead).
MESSAGE_BYTES_MAX = 1_048_588
# AutoMQ and WarpStream both flush a multi-partition object at 8 MiB or 250 ms.
UPLOAD_BYTES_MAX = 8 * 1024 * 1024
UPLOAD_INTERVAL_MS = 250
# A WAL segment is rolled at this size; segments are deleted once uploaded.
WAL_SEGMENT_BYTES = 64 * 1024 * 1024
# Log cache budget: uploaded batches beyond it are evicted (un-uploaded ones never are).
LOG_CACHE_BYTES_MAX = 256 * 1024 * 1024
# Block cache for catch-up reads from objects.
BLOCK_CACHE_BYTES_MAX = 128 * 1024 * 1024
# Kafka's fetch.max.wait.ms upper bound a client may ask for is its request timeout; cap it.
FETCH_WAIT_MS_MAX = 30_000
# Idempotent producers: Kafka keeps the last 5 batches per producer for duplicate detection.
PRODUCER_BATCHES_RETAINED = 5
# Kafka's group.min/max.session.timeout.ms defaults.
GROUP_SESSION_TIMEOUT_MS_MIN = 6_000
GROUP_SESSION_TIMEOUT_MS_MAX = 1_800_000
# Retention checks run at Kafka's log.retention.check.interval.ms default / 60 (5 s).
RETENTION_CHECK_INTERVAL_MS = 5_000

# A single batch must fit in one request frame.
assert MESSAGE_BYTES_MAX <= SOCKET_REQUEST_BYTES_MAX
# The WAL must be able to hold at least one full upload window.
assert WAL_SEGMENT_BYTES >= UPLOAD_BYTES_MAX
