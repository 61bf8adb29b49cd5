"""Every bound the broker enforces, with units last and the precedent for its default."""

# Kafka's socket.request.max.bytes default (100 MiB).
SOCKET_REQUEST_BYTES_MAX = 104_857_600
# Kafka's generated request readers refuse a string field longer than 0x7fff bytes
# ("string field ... had invalid length"): the ids a share coordinator keeps are held to it.
STRING_BYTES_MAX = 0x7FFF
# Kafka's message.max.bytes default (1 MiB + record batch overhead).
MESSAGE_BYTES_MAX = 1_048_588
# A multi-partition object is uploaded at 8 MiB pending (AutoMQ's and WarpStream's object
# size), or once the oldest pending byte is 5 s old. WarpStream flushes at 250 ms because
# its objects are its durability; here the local WAL is (fdatasync'd before the ack), so
# the age bounds only what lives on the local disk alone and in the log cache. 5 s lets
# the bench's 1,000-partition load (2-13 MB/s: one message per produce request) fill
# 8 MiB objects, where 250 ms cut ~1-3 MiB ones (238-590 PUTs per GiB against 128).
UPLOAD_BYTES_MAX = 8 * 1024 * 1024
UPLOAD_INTERVAL_MS = 5_000
# The uploader looks at the pending byte count this often (an int: idle partitions cost
# nothing), so a byte's age counts from at most this long after it arrived.
UPLOAD_CHECK_MS = 250
# An upload object's data: under 8 MiB before the batch that crosses it (uploader.py cuts
# after that batch), then that batch: 9 MiB with batches of Kafka's default 1 MiB (the
# largest, 12 bytes over, or a topic's larger max.message.bytes costs one more GET).
UPLOAD_OBJECT_DATA_BYTES_MAX = UPLOAD_BYTES_MAX + 1024 * 1024
# Catch-up object reads (RFC 0003, 2a-2c): ranges of one object with gaps below 1 MiB are
# read by one GET (object_store's and obstore's get_ranges default), of at most one upload
# object's data; 8 GETs in flight broker-wide (SeaweedFS's GET throughput knee here);
# a span above one upload object is read as parts of at most that, in parallel (4 MiB
# parts cost two GETs per full object, and objects in flight already fill the 8 slots).
OBJECT_READ_COALESCE_BYTES = 1024 * 1024
OBJECT_READ_SPAN_BYTES = UPLOAD_OBJECT_DATA_BYTES_MAX
OBJECT_READ_CONCURRENCY = 8
OBJECT_READ_PART_BYTES = UPLOAD_OBJECT_DATA_BYTES_MAX
# Read-ahead (RFC 0003, 2d): a stream's window is its read rate x 2 GET p99s, within
# AutoMQ's StreamReader.Readahead bounds (512 KiB start, 32 MiB cap). Catch-up fetches
# planned and assembled at once (2e): 2, one per core of the machines we size for.
OBJECT_READ_AHEAD_MIN_BYTES = 512 * 1024
OBJECT_READ_AHEAD_MAX_BYTES = 32 * 1024 * 1024
OBJECT_READ_FETCH_CONCURRENCY = 2
# Threads that write large responses (a catch-up Fetch's) to plaintext sockets off the
# event loop (broker/bulk_sender.py): as many as catch-up fetches assembled at once.
RESPONSE_SEND_THREADS = 2
# A partition's object index not used for this long leaves memory (reloaded on need).
OBJECT_INDEX_IDLE_MS = 10 * 60 * 1000
# A WAL segment is rolled at this size; segments are deleted once uploaded.
WAL_SEGMENT_BYTES = 64 * 1024 * 1024
# The object WAL (wal.url): PUTs in flight at once, and the most one group commit's
# object holds (a single larger entry still goes alone).
WAL_OBJECT_MAX_IN_FLIGHT = 4
WAL_OBJECT_BYTES_MAX = 8 * 1024 * 1024
# Log cache cap inside the memory budget (batch bytes; the WAL keeps un-uploaded ones).
LOG_CACHE_BYTES_MAX = 256 * 1024 * 1024
# Storage under pressure (full disk, unreachable object store).
# One budget for the log cache, block cache, in-flight uploads and reads, held responses
# and range records. Sized for #12's target, peak RSS <= 300 MB at 1,000 partitions: the
# idle broker's RSS (no data) measures 75 MiB at 1,000 partitions and 97 MiB at 10,000
# (91 and 113 MiB before request schemas loaded lazily), so 286 MiB - 91 MiB - 10 %
# allocator slack leaves ~166 MiB, with room to spare today (RFC 0003, "4. Memory").
MEMORY_BUDGET_BYTES = 160 * 1024 * 1024
# Un-uploaded WAL bytes after which produce is refused (throttled from half of it).
WAL_BACKLOG_BYTES = 2 * 1024 * 1024 * 1024
# Produce is throttled from this fraction of the WAL backlog or memory bound, up to
# PRODUCE_THROTTLE_MS_MAX at the bound (Kafka's quotas throttle by up to a quota window).
THROTTLE_START_FRACTION = 0.5
PRODUCE_THROTTLE_MS_MAX = 1_000
# Disk space held back for metadata commits (SQLite's -wal and -shm files) on a full disk.
METADATA_RESERVED_BYTES = 16 * 1024 * 1024
# While the disk is full, free space is checked at most this often.
DISK_RECHECK_MS = 200
# One object store request, retries included (obstore's default allows 3 minutes of
# retries); a read of an unreachable store fails with KAFKA_STORAGE_ERROR after this,
# well inside a client's 30 s request.timeout.ms.
OBJECT_STORE_REQUEST_TIMEOUT_MS = 10_000
# PostgreSQL metadata store: a connection attempt, one call (queue and run, well inside a
# client's 30 s request.timeout.ms), TCP keepalive idle time, most time between reconnects.
METADATA_CONNECT_TIMEOUT_MS = 10_000
METADATA_CALL_TIMEOUT_MS = 10_000
METADATA_KEEPALIVE_IDLE_MS = 10_000
METADATA_RECONNECT_BACKOFF_MAX_MS = 5_000
# A clean stop uploads what it can for this long, then leaves the rest in the WAL.
SHUTDOWN_TIMEOUT_MS = 15_000
# message.max.decompression.ratio: a batch's records may decompress to at most this many
# times the topic's max.message.bytes (Apache Tika's and Apache POI's zip-bomb guards
# both refuse archives that expand more than 100:1).
MESSAGE_DECOMPRESSION_RATIO_MAX = 100
# Record errors (KIP-467) named in one Produce response; the rest are counted in its
# message. Kafka names all; clients fail the unnamed records of the batch anyway.
RECORD_ERRORS_LISTED_MAX = 1_000
# Threads that decompress and walk the records of large or compressed produced batches.
RECORD_VALIDATION_THREADS = 2
# A batch of at most this many records is walked on the event loop (about a millisecond
# of work: handing it to a thread would cost more), decompressing at most this many
# bytes; a larger or more expanding batch is walked in the pool.
RECORD_VALIDATION_INLINE_RECORDS = 1_000
RECORD_VALIDATION_INLINE_BYTES = 1024 * 1024
# Schema ids the broker's validation catalog folds from `_schemas` (each with its parsed
# schema, as the registry holds them); past it, validating topics refuse records rather
# than judge them from a partial fold.
SCHEMA_VALIDATION_IDS_MAX = 100_000
# Kafka's fetch.max.wait.ms upper bound a client may ask for is its request timeout; cap it.
FETCH_WAIT_MS_MAX = 30_000
# Idempotent producers: Kafka keeps the last 5 batches per producer for duplicate detection.
PRODUCER_BATCHES_RETAINED = 5
# Kafka's group.min/max.session.timeout.ms defaults.
GROUP_SESSION_TIMEOUT_MS_MIN = 6_000
GROUP_SESSION_TIMEOUT_MS_MAX = 1_800_000
# Kafka's offsets.topic.num.partitions default: partitions of __consumer_offsets.
OFFSETS_TOPIC_PARTITIONS = 50
# Kafka's offset.metadata.max.bytes default: longer metadata in OffsetCommit or
# TxnOffsetCommit gets OFFSET_METADATA_TOO_LARGE for that partition.
OFFSET_METADATA_BYTES_MAX = 4096
# retention.ms of __consumer_offsets (compacted; retention applies only if an operator adds
# delete to its policy): 7 days, Kafka's offsets.retention.minutes default; with delete the
# coordinator re-writes a snapshot of every live offset and group every half of it.
OFFSETS_TOPIC_RETENTION_MS = 7 * 24 * 3600 * 1000
# The snapshots are at least this far apart whatever retention.ms the topic is given, and
# far enough apart that they write at most OFFSETS_SNAPSHOT_BYTES_PER_S on average: a
# retention of 1 ms must not turn them into a write loop (each is every live offset).
OFFSETS_SNAPSHOT_INTERVAL_MIN_MS = 1_000
OFFSETS_SNAPSHOT_BYTES_PER_S = 1024 * 1024
# Retention of __contextplane_audit and __contextplane_read_receipts: 7 days (precedent:
# Kafka's log.retention.hours default, 168).
AUDIT_TOPIC_RETENTION_MS = 7 * 24 * 3600 * 1000
# retention.bytes of __contextplane_audit (one partition): 1 GiB, Kafka's
# log.segment.bytes default; Kafka has no audit topic, and an unbounded one is a disk an
# unprivileged principal can fill with denials.
AUDIT_TOPIC_RETENTION_BYTES = 1024 * 1024 * 1024
# retention.bytes of __contextplane_read_receipts (one partition): 1 GiB, as the audit
# topic's; any principal that may READ one topic makes receipts by seeking.
AUDIT_READ_RECEIPTS_RETENTION_BYTES = 1024 * 1024 * 1024
# Denial records (and their log lines) per principal and second; past it they are counted
# and summarised once a second. Kafka has none: it logs each denial through log4j.
AUDIT_DENIAL_RECORDS_PER_SECOND = 10
# Denied resource names one denial record lists (the rest of the request's are counted).
AUDIT_DENIED_NAMES_LISTED = 100
# Audit records and read receipts buffered before the sink drops (or, fail-closed,
# refuses); about 5 MiB of 500-byte records.
AUDIT_BUFFER_RECORDS = 10_000
# The sink appends what is buffered this often (sooner at AUDIT_BATCH_RECORDS).
AUDIT_FLUSH_INTERVAL_MS = 200
AUDIT_BATCH_RECORDS = 1_000
# A read receipt aggregates one connection's contiguous reads of a partition this long.
AUDIT_READ_RECEIPTS_WINDOW_MS = 1_000
# Open receipt windows (connections x partitions) before all are closed at once, and
# (principal, client id, address) -> group entries remembered for receipts.
AUDIT_RECEIPT_WINDOWS_MAX = 100_000
# Offset ranges one receipt names (a consumer seeking around makes one per place it read);
# past it the closest are merged and the receipt is marked coarse. And ranges held in all
# open windows together (a few MB) before all windows are closed at once.
AUDIT_RECEIPT_RANGES_MAX = 64
AUDIT_RECEIPT_RANGES_HELD_MAX = 200_000
AUDIT_GROUPS_REMEMBERED = 100_000
# Kafka's connections.max.idle.ms default (10 minutes).
CONNECTIONS_IDLE_MS_MAX = 600_000
# Kafka's max.connections and max.connections.per.ip default (Int.MaxValue: no limit).
# Kafka's int settings stop at Java's Integer.MAX_VALUE.
INT_MAX = 2**31 - 1
CONNECTIONS_MAX = INT_MAX
# Kafka's queued.max.request.bytes default is -1 (unbounded); here one largest frame
# (socket.request.max.bytes), so a few unfinished frames cannot take the broker's memory.
QUEUED_REQUEST_BYTES_MAX = SOCKET_REQUEST_BYTES_MAX
# A frame must arrive within this long of its first byte (request.receive.timeout.ms).
# librdkafka's socket.timeout.ms (the Java clients' request.timeout.ms is 30 s): a client
# whose request has not been sent by then has given up on it.
REQUEST_RECEIVE_TIMEOUT_MS = 60_000
# Every connection may hold this many bytes of requests whatever queued.max.request.bytes
# says, so ApiVersions, heartbeats and small Metadata requests are still read while large
# frames have taken the broker-wide budget.
REQUEST_BYTES_PER_CONNECTION_FREE = 16 * 1024
# A connection holding more than this of responses its client has not read (queued for
# their turn or unsent by its transport) starts no further request until the client reads
# them: a client pipelining Fetches it never reads would otherwise pin one whole response
# each. Kafka mutes a connection until its response is sent; this keeps a producer's and a
# consumer's pipelining, whose unread responses stay small.
HELD_RESPONSE_BYTES_BEFORE_NEXT_REQUEST = 1024 * 1024
# Requests with at least this many entries (topics, partitions, resources) have their
# responses built in a worker thread, and frames of at least OFF_LOOP_FRAME_BYTES_MIN
# (produce: OFF_LOOP_PRODUCE_FRAME_BYTES_MIN, mostly record bytes, cheap to decode) are
# decoded and answered there, so the event loop keeps serving the other connections
# (Kafka: handler threads). Below them the thread hop would cost more than the work.
OFF_LOOP_ITEMS_MIN = 1000
OFF_LOOP_FRAME_BYTES_MIN = 64 * 1024
OFF_LOOP_PRODUCE_FRAME_BYTES_MIN = 1024 * 1024
# Largest read from one socket at a time (asyncio's own read size).
SOCKET_READ_BYTES_MAX = 256 * 1024
# Responses a connection may have queued (computed or pending) before it stops taking
# more requests off its input. Kafka handles one request per connection at a time; here
# pipelined produce requests share WAL syncs, and librdkafka keeps up to 64 requests of
# 1 MB in flight with the benchmark's 64 MiB queue.
RESPONSES_QUEUED_MAX = 64
# Descriptors kept free for the WAL, SQLite, object files and S3 connections: accepted
# connections are capped at RLIMIT_NOFILE minus this.
DESCRIPTORS_RESERVED = 256
# Kafka's sasl.server.max.receive.size default: the largest frame a connection may send
# before it has authenticated (a bigger one closes it before anything is allocated).
SASL_RECEIVE_BYTES_MAX = 524_288
# Kafka's connection.failed.authentication.delay.ms default: a failed authentication's
# response (and close) waits this long, so guessing passwords is slow.
FAILED_AUTHENTICATION_DELAY_MS = 100
# A connection closed by the broker's verdict (a failed login) stays open this long after
# its last response is written, or until the client closes it first: a client that reads
# the response and the close in one batch may drop the response (kafka-python 3.0 reports
# "socket disconnected" instead of the login's error). Requests read meanwhile are dropped.
CLOSE_LINGER_MS = 1_000
# OAUTHBEARER's JWKS (sasl.oauthbearer.jwks.endpoint.url): the largest document read
# (a provider's key set is a few KiB), how long one fetch may take, and how soon a token
# naming an unknown key id (or a failed fetch) may cause another fetch: a client inventing
# key ids cannot make the broker hammer its identity provider.
JWKS_BYTES_MAX = 1_048_576
JWKS_FETCH_TIMEOUT_MS = 10_000
JWKS_REFETCH_MIN_INTERVAL_MS = 10_000
# Retention checks run at Kafka's log.retention.check.interval.ms default / 60 (5 s).
RETENTION_CHECK_INTERVAL_MS = 5_000

# A single batch must fit in one request frame.
assert MESSAGE_BYTES_MAX <= SOCKET_REQUEST_BYTES_MAX
# The WAL must be able to hold at least one full upload window.
assert WAL_SEGMENT_BYTES >= UPLOAD_BYTES_MAX
# Partitions one CreateTopics may create, or one CreatePartitions add, in total (Kafka's
# controller: ReplicationControlManager.MAX_PARTITIONS_PER_BATCH); above it every topic
# of the request gets POLICY_VIOLATION. The same bound holds for the topics one Metadata
# request auto-creates (Kafka sends them to its controller as one CreateTopics).
PARTITIONS_PER_REQUEST_MAX = 10_000
# Topics one DescribeTopicPartitions request may name (Kafka bounds them only by the
# frame): as many as partitions one CreateTopics may create; above it the request is
# answered INVALID_REQUEST for every topic it names. The response stays bounded: a page
# lists at most max.request.partition.size.limit partitions, plus the topics refused.
DESCRIBE_TOPICS_PER_REQUEST_MAX = PARTITIONS_PER_REQUEST_MAX
# Kafka's max.request.partition.size.limit default: the most partitions one
# DescribeTopicPartitions response lists (the request's own limit may lower it).
DESCRIBE_PARTITIONS_PER_RESPONSE = 2000
# Metadata records one request may write (Kafka's QuorumController.MAX_RECORDS_PER_USER_OP:
# a topic record, a record per partition and per explicit config); more is POLICY_VIOLATION.
RECORDS_PER_REQUEST_MAX = 10_000
# Custom broker configs (names Kafka does not know, stored as given: KIP-226) one BROKER
# resource, a broker or the cluster default, may hold: how many, and their names' and
# values' UTF-8 bytes together. Kafka bounds them only per request (each name and value
# at STRING_BYTES_MAX, RECORDS_PER_REQUEST_MAX records); here every change is also held
# to a bound on what the resource keeps, so repeated requests cannot grow the store
# without end. A plugin's configs number in the tens; a tenth of Kafka's per-operation
# record bound, within 1 MiB (an eighth of KRaft's 8 MiB metadata batch), leaves room.
BROKER_CUSTOM_CONFIGS_MAX = 1_000
BROKER_CUSTOM_CONFIG_BYTES_MAX = 1_048_576
# The most records a share partition may hold in flight under any setting (the top of
# group.share.partition.max.record.locks and group.share.max.partition.max.record.locks):
# a stored share partition is loaded up to it whatever its bound is now.
SHARE_PARTITION_RECORD_LOCKS_MAX = 10_000
# Kafka's broker fetch.max.bytes default (55 MiB): the most one Fetch response carries,
# whatever the request's max_bytes (still at least one batch, KIP-74).
FETCH_BYTES_MAX = 57_671_680
# Client quotas (Kafka's quota.window.num and quota.window.size.seconds defaults): a
# quota's rate is measured over this many sampled windows of this many seconds.
QUOTA_WINDOW_NUM = 11
QUOTA_WINDOW_SIZE_SECONDS = 1
# A quota entity's rate sensors are dropped after this long unused (Kafka:
# ClientQuotaManager's InactiveSensorExpirationTimeSeconds, one hour) ...
QUOTA_SENSOR_IDLE_MS = 3_600_000
# ... and at most this many are kept (the least recently used go first), so a client
# inventing client ids cannot grow the broker's memory.
QUOTA_SENSORS_MAX = 10_000

# Transactions (Kafka's defaults): the largest transaction.timeout.ms a producer may ask
# for, and how often timed-out transactions are aborted.
TRANSACTION_MAX_TIMEOUT_MS = 15 * 60 * 1000
# A partition's aborted transactions kept in memory (storage/transactions_index.py): past
# this many, the oldest of those already stored are dropped down to half of it, and a
# read_committed read below them asks the metadata store (as Kafka reads its .txnindex
# files), so a client aborting transactions without end cannot grow the broker's memory.
ABORTED_TXNS_IN_MEMORY_MAX = 1_024
# What a partition keeps instead while every partition's entries together pass their
# share of the memory budget (storage/memory.py `aborted_limit`): with many partitions
# the per-partition bound alone would let them hold ~1.8 GB at 10,000 partitions.
ABORTED_TXNS_IN_MEMORY_FLOOR = 64
# What a start loads of every partition's aborted transactions together (each partition
# its latest, at most ABORTED_TXNS_IN_MEMORY_MAX, at least the floor): ~12 MB of entries,
# about the default budget's share for them (storage/memory.py `aborted_limit`).
ABORTED_TXNS_LOADED_MAX = 65_536
TRANSACTION_ABORT_INTERVAL_MS = 10_000
# Timed-out transactions aborted at once by one pass (their markers share WAL group
# commits; Kafka's coordinator aborts them all in one pass, batching markers per broker).
TXN_ABORT_CONCURRENCY = 32
# A transactional id idle (Empty, CompleteCommit, CompleteAbort) this long is removed, and
# the coordinator looks for them this often (Kafka's transactional.id.expiration.ms, 7
# days, and transaction.remove.expired.transaction.cleanup.interval.ms, 1 hour).
TRANSACTIONAL_ID_EXPIRATION_MS = 7 * 24 * 3_600_000
TRANSACTION_REMOVE_EXPIRED_INTERVAL_MS = 3_600_000
# A partition forgets a producer (its sequence state) whose last batch is this much older
# than now and that has no open transaction, checked this often (Kafka's
# producer.id.expiration.ms, 1 day, and producer.id.expiration.check.interval.ms, 10 min).
PRODUCER_ID_EXPIRATION_MS = 24 * 3_600_000
PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS = 600_000
# Kafka's producer epoch is a signed 16-bit number; at this epoch a new producer id is
# allocated instead of another bump (Short.MaxValue - 1).
PRODUCER_EPOCH_MAX = 32766

# Objects no range references any more are deleted this long after (Kafka's
# log.segment.delete.delay.ms default), so a fetch holding one finishes.
SEGMENT_DELETE_DELAY_MS = 60_000
# The orphan sweep deletes an object the metadata store does not know only when the store
# dated it at least this long ago (an hour: far beyond an upload's PUT-to-commit time and
# any plausible clock difference between the store and the broker), and runs at start and
# this often (AutoMQ's stream object compaction runs hourly too).
ORPHAN_MIN_AGE_MS = 3_600_000
ORPHAN_SWEEP_INTERVAL_MS = 3_600_000
# A page of the store's listing (S3's ListObjectsV2 returns at most 1,000 keys).
ORPHAN_SWEEP_PAGE_KEYS = 1_000
# The log cleaner (Kafka's defaults): how long it sleeps when nothing is cleanable, and
# the memory of its key -> offset map (log.cleaner.dedupe.buffer.size).
CLEANER_BACKOFF_MS = 15_000
CLEANER_DEDUPE_BUFFER_BYTES = 128 * 1024 * 1024
# Kafka's log.cleaner.io.max.bytes.per.second default, Double.MaxValue: no limit.
CLEANER_IO_MAX_BYTES_PER_SECOND = 1.7976931348623157e308
# Kafka's broker-wide defaults of the cleaner's topic configs (CleanerConfig /
# ServerLogConfigs): log.cleaner.min.cleanable.ratio, log.cleaner.delete.retention.ms
# (1 day), log.cleaner.min.compaction.lag.ms, log.cleaner.max.compaction.lag.ms
# (Long.MAX_VALUE: no limit) and log.cleanup.policy.
LONG_MAX = 2**63 - 1
CLEANER_MIN_CLEANABLE_RATIO = 0.5
CLEANER_DELETE_RETENTION_MS = 86_400_000
CLEANER_MIN_COMPACTION_LAG_MS = 0
CLEANER_MAX_COMPACTION_LAG_MS = LONG_MAX
CLEANUP_POLICY = "delete"
# Object compaction (RFC 0003, "1. Object compaction"): how often it plans; how old an
# upload is before it is compacted (its data has left the log cache by then); objects per
# pass (AutoMQ's stream set object compaction takes at most 500); a stream with at least
# this much in a pass gets stream objects (AutoMQ's streamSetObjectCompactionStreamSplitSize,
# 8 MiB), at most this large each, as merged objects are (and at most an eighth of the
# memory budget, so input and output fit compaction's half of the in-flight share: 20 MiB
# at the default budget); the live share below which an object's live ranges are rewritten
# (AutoMQ's stream object CLEANUP step); its object reads are paced to this rate.
OBJECT_COMPACTION_INTERVAL_MS = 60_000
OBJECT_COMPACTION_MIN_AGE_MS = 60_000
OBJECT_COMPACTION_MAX_OBJECTS = 500
OBJECT_COMPACTION_STREAM_SPLIT_BYTES = 8 * 1024 * 1024
OBJECT_COMPACTION_STREAM_OBJECT_BYTES = 32 * 1024 * 1024
OBJECT_COMPACTION_MERGED_BYTES = 32 * 1024 * 1024
OBJECT_COMPACTION_LIVE_RATIO = 0.5
OBJECT_COMPACTION_READ_BYTES_PER_SECOND = 32 * 1024 * 1024
# Ranges of one input object closer than this are read with one GET (the gap is read and
# dropped): fewer requests for little extra memory.
OBJECT_COMPACTION_SPAN_GAP_BYTES = 64 * 1024

# The inter-broker client (cluster/peer_client.py): requests in flight per peer, the
# largest response frame it reads (its answers are markers' and verifications' results:
# small), how long one request may take, and the reconnect backoff bounds.
PEER_IN_FLIGHT_MAX = 64
PEER_RESPONSE_BYTES_MAX = 4 * 1024 * 1024
PEER_REQUEST_TIMEOUT_S = 30.0
PEER_BACKOFF_MIN_S = 0.1
PEER_BACKOFF_MAX_S = 5.0
# How long a CreateTopics, CreatePartitions or DeleteTopics answer on a cluster waits for
# the live brokers to answer Metadata with the change (broker/topic_propagation.py), and
# the first and longest pause between its rounds of asking.
TOPIC_CHANGE_WAIT_S = 2.0
# Topic changes one broker waits on at once; past it a change is answered without the
# wait (each wait polls every peer, sharing their connections' request slots, so
# unbounded concurrent waits would be a way to load the whole cluster).
TOPIC_CHANGE_WAITS_MAX = 16
TOPIC_CHANGE_POLL_FIRST_S = 0.005
TOPIC_CHANGE_POLL_MAX_S = 0.1
# ZoneProduce (broker/handlers/zone_produce.py): the request frames one call hands a
# leader, and the object bytes it makes the leader read for them.
ZONE_PRODUCE_FRAMES_MAX = 1_000
ZONE_PRODUCE_BYTES_MAX = 64 * 1024 * 1024
# A leader's answer past this loses its messages (codes, offsets, record indexes kept);
# the proxy reads an answer up to the peer bound plus ZONE_PRODUCE_ANSWER_PER_FRAME_BYTE
# times the call's frame bytes (a Produce answer without messages is at most ~7 times
# its request: a null-records partition of 6 bytes draws ~40).
ZONE_PRODUCE_ANSWER_BYTES = 2 * 1024 * 1024
ZONE_PRODUCE_ANSWER_PER_FRAME_BYTE = 8
# How long one of the broker's own writes (audit records, read receipts, dead letters:
# cluster/forwarder.py) may take, retries to a moved leader included.
BROKER_WRITE_TIMEOUT_S = 10.0
