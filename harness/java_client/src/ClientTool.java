// Reference Kafka client for the contextplane test harness (built and run by harness/java_client.py).
//
// Uses the official org.apache.kafka:kafka-clients library so tests can check that the broker
// under test behaves like Apache Kafka for a real Java client. Output: one JSON object per line on
// stdout; the last line of a successful run has "type":"result". Errors print "type":"error" and
// exit non-zero. Logging goes to stderr (slf4j-simple, WARN by default).
//
// Commands:
//   produce --bootstrap H:P --topic T --count N [--acks all|1|0] [--compression none|gzip|snappy|lz4|zstd]
//           [--idempotent true|false] [--key-prefix k] [--value-prefix v] [--value-size BYTES]
//           [--partition P] [--headers k=v,k2=v2] [--transactional-id ID] [--linger-ms MS]
//           [--batch-size BYTES] [--timeout-ms MS] [--config k=v,...]
//   consume --bootstrap H:P --topic T [--group G] --count N [--timeout-ms X]
//           [--isolation-level read_uncommitted|read_committed] [--offset-reset earliest|latest]
//           [--group-protocol classic|consumer] [--summary-only true] [--config k=v,...]
//           [--topic-regex RE2] (with --group and --group-protocol consumer: subscribe to the
//           broker-evaluated SubscriptionPattern instead of --topic)
//   admin --bootstrap H:P create-topic T PARTITIONS [REPLICATION] [--config k=v,...]
//   admin --bootstrap H:P delete-topic T | list-topics | describe-topic T | describe-cluster
//   admin --bootstrap H:P list-offsets T | describe-group G | list-groups

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class ClientTool {

    private ClientTool() {}

    public static void main(String[] argv) {
        int rc;
        try {
            if (argv.length == 0) {
                throw new IllegalArgumentException("usage: ClientTool produce|consume|admin ...");
            }
            Args args = Args.parse(Arrays.copyOfRange(argv, 1, argv.length));
            switch (argv[0]) {
                case "produce": rc = produce(args); break;
                case "consume": rc = consume(args); break;
                case "admin": rc = admin(args); break;
                default: throw new IllegalArgumentException("unknown command " + argv[0]);
            }
        } catch (Throwable t) {
            Throwable root = t;
            while (root.getCause() != null && root != root.getCause()) {
                root = root.getCause();
            }
            Map<String, Object> err = new LinkedHashMap<>();
            err.put("type", "error");
            err.put("error", root.getClass().getName());
            err.put("message", String.valueOf(root.getMessage()));
            err.put("outer", t.getClass().getName() + ": " + t.getMessage());
            emit(err);
            rc = 1;
        }
        System.out.flush();
        // Exit explicitly: a lingering non-daemon client thread must not hang the harness.
        System.exit(rc);
    }

    // ---------------------------------------------------------------- produce

    private static int produce(Args a) throws Exception {
        String topic = a.required("topic");
        int count = Integer.parseInt(a.get("count", "1"));
        String keyPrefix = a.get("key-prefix", "key-");
        String valuePrefix = a.get("value-prefix", "value-");
        int valueSize = Integer.parseInt(a.get("value-size", "0"));
        String partitionArg = a.get("partition", null);
        Integer partition = partitionArg == null ? null : Integer.valueOf(partitionArg);
        String txId = a.get("transactional-id", null);
        int timeoutMs = Integer.parseInt(a.get("timeout-ms", "60000"));

        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.required("bootstrap"));
        p.put(ProducerConfig.ACKS_CONFIG, a.get("acks", "all"));
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, a.get("compression", "none"));
        p.put(ProducerConfig.CLIENT_ID_CONFIG, a.get("client-id", "contextplane-clienttool"));
        if (a.has("idempotent")) {
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, a.get("idempotent", "true"));
        }
        if (a.has("linger-ms")) {
            p.put(ProducerConfig.LINGER_MS_CONFIG, a.get("linger-ms", "5"));
        }
        if (a.has("batch-size")) {
            p.put(ProducerConfig.BATCH_SIZE_CONFIG, a.get("batch-size", "16384"));
        }
        // Keep delivery.timeout >= linger + request.timeout, as the client insists.
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, Math.min(30000, timeoutMs / 2));
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, timeoutMs);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, timeoutMs);
        if (txId != null) {
            p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txId);
        }
        a.putConfigs(p);

        RecordHeaders headers = new RecordHeaders();
        for (Map.Entry<String, String> h : a.pairs("headers").entrySet()) {
            headers.add(h.getKey(), h.getValue().getBytes(StandardCharsets.UTF_8));
        }

        long[][] acked = new long[count][];
        AtomicInteger errors = new AtomicInteger();
        AtomicReference<String> firstError = new AtomicReference<>();
        long t0 = System.nanoTime();
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            if (txId != null) {
                producer.initTransactions();
                producer.beginTransaction();
            }
            for (int i = 0; i < count; i++) {
                final int idx = i;
                byte[] key = (keyPrefix + i).getBytes(StandardCharsets.UTF_8);
                byte[] value = makeValue(valuePrefix + i, valueSize);
                ProducerRecord<byte[], byte[]> rec =
                        new ProducerRecord<>(topic, partition, null, key, value, headers);
                producer.send(rec, (RecordMetadata md, Exception e) -> {
                    if (e != null) {
                        errors.incrementAndGet();
                        firstError.compareAndSet(null, e.getClass().getName() + ": " + e.getMessage());
                    } else {
                        acked[idx] = new long[] {md.partition(), md.offset()};
                    }
                });
            }
            producer.flush();
            if (txId != null) {
                if (errors.get() == 0) {
                    producer.commitTransaction();
                } else {
                    producer.abortTransaction();
                }
            }
            producer.close(Duration.ofMillis(timeoutMs));
        }
        double seconds = (System.nanoTime() - t0) / 1e9;

        StringBuilder recs = new StringBuilder("[");
        boolean first = true;
        for (int i = 0; i < count; i++) {
            if (acked[i] == null) {
                continue;
            }
            if (!first) {
                recs.append(',');
            }
            first = false;
            recs.append('[').append(acked[i][0]).append(',').append(acked[i][1]).append(',');
            recs.append(jsonString(keyPrefix + i)).append(']');
        }
        recs.append(']');
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("type", "result");
        out.put("command", "produce");
        out.put("count", count);
        out.put("acked", count - errors.get());
        out.put("errors", errors.get());
        out.put("first_error", firstError.get());
        out.put("seconds", seconds);
        out.put("records", new RawJson(recs.toString()));
        emit(out);
        return errors.get() == 0 ? 0 : 2;
    }

    private static byte[] makeValue(String base, int size) {
        byte[] b = base.getBytes(StandardCharsets.UTF_8);
        if (size <= b.length) {
            return b;
        }
        byte[] out = new byte[size];
        System.arraycopy(b, 0, out, 0, b.length);
        Arrays.fill(out, b.length, size, (byte) 'x');
        return out;
    }

    // ---------------------------------------------------------------- consume

    private static int consume(Args a) throws Exception {
        String topic = a.required("topic");
        String group = a.get("group", null);
        int count = Integer.parseInt(a.get("count", "1"));
        long timeoutMs = Long.parseLong(a.get("timeout-ms", "30000"));
        boolean summaryOnly = Boolean.parseBoolean(a.get("summary-only", "false"));

        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, a.required("bootstrap"));
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, a.get("offset-reset", "earliest"));
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, a.get("isolation-level", "read_uncommitted"));
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, a.get("client-id", "contextplane-clienttool"));
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            // "classic" or "consumer" (KIP-848); default is the client's default.
            if (a.has("group-protocol")) {
                p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, a.get("group-protocol", "classic"));
            }
        }
        a.putConfigs(p);

        int received = 0;
        Map<TopicPartition, Long> nextOffsets = new HashMap<>();
        long deadline = System.currentTimeMillis() + timeoutMs;
        long t0 = System.nanoTime();
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            if (group != null && a.has("topic-regex")) {
                // KIP-848: the group coordinator evaluates the pattern (RE2/J syntax).
                consumer.subscribe(new SubscriptionPattern(a.get("topic-regex", "")));
            } else if (group != null) {
                consumer.subscribe(Collections.singletonList(topic));
            } else {
                // No group: read every partition from the start, commit nothing.
                List<TopicPartition> tps = new ArrayList<>();
                for (PartitionInfo pi : consumer.partitionsFor(topic, Duration.ofMillis(timeoutMs))) {
                    tps.add(new TopicPartition(topic, pi.partition()));
                }
                consumer.assign(tps);
                consumer.seekToBeginning(tps);
            }
            while (received < count && System.currentTimeMillis() < deadline) {
                long left = Math.max(1, Math.min(500, deadline - System.currentTimeMillis()));
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(left));
                Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    if (received >= count) {
                        break;
                    }
                    received++;
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    nextOffsets.put(tp, r.offset() + 1);
                    commit.put(tp, new OffsetAndMetadata(r.offset() + 1));
                    if (!summaryOnly) {
                        emitRecord(r);
                    }
                }
                if (group != null && !commit.isEmpty()) {
                    // Commit exactly what was printed, so a later consumer resumes after it.
                    try {
                        consumer.commitSync(commit, Duration.ofMillis(Math.max(5000, timeoutMs)));
                    } catch (CommitFailedException | RebalanceInProgressException e) {
                        // A rebalance took the partitions first (as an application would,
                        // go on: the records are delivered again to their next owner).
                        Map<String, Object> failed = new LinkedHashMap<>();
                        failed.put("type", "commit_failed");
                        failed.put("error", e.getClass().getSimpleName());
                        emit(failed);
                    }
                }
            }
            consumer.close(Duration.ofSeconds(10));
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("type", "result");
        out.put("command", "consume");
        out.put("count", received);
        out.put("requested", count);
        out.put("timed_out", received < count);
        out.put("seconds", (System.nanoTime() - t0) / 1e9);
        Map<String, Object> positions = new TreeMap<>();
        for (Map.Entry<TopicPartition, Long> e : nextOffsets.entrySet()) {
            positions.put(String.valueOf(e.getKey().partition()), e.getValue());
        }
        out.put("next_offsets", positions);
        emit(out);
        return 0;
    }

    private static void emitRecord(ConsumerRecord<byte[], byte[]> r) {
        StringBuilder hs = new StringBuilder("[");
        boolean first = true;
        for (Header h : r.headers()) {
            if (!first) {
                hs.append(',');
            }
            first = false;
            hs.append('[').append(jsonString(h.key())).append(',').append(jsonBytes(h.value())).append(']');
        }
        hs.append(']');
        StringBuilder sb = new StringBuilder("{\"type\":\"record\",\"record\":[");
        sb.append(r.partition()).append(',').append(r.offset()).append(',');
        sb.append(jsonBytes(r.key())).append(',').append(jsonBytes(r.value())).append(',');
        sb.append(hs).append("],\"timestamp\":").append(r.timestamp()).append('}');
        System.out.println(sb);
    }

    // ---------------------------------------------------------------- admin

    private static int admin(Args a) throws Exception {
        List<String> pos = a.positional;
        if (pos.isEmpty()) {
            throw new IllegalArgumentException("admin needs a sub-command");
        }
        long timeoutMs = Long.parseLong(a.get("timeout-ms", "30000"));
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.required("bootstrap"));
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) timeoutMs);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) Math.min(timeoutMs, 30000));
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, a.get("client-id", "contextplane-clienttool"));
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("type", "result");
        out.put("command", pos.get(0));
        try (Admin admin = Admin.create(p)) {
            switch (pos.get(0)) {
                case "create-topic": {
                    String name = pos.get(1);
                    int partitions = pos.size() > 2 ? Integer.parseInt(pos.get(2)) : 1;
                    short rf = pos.size() > 3 ? Short.parseShort(pos.get(3)) : (short) 1;
                    NewTopic nt = new NewTopic(name, partitions, rf).configs(a.pairs("config"));
                    admin.createTopics(Collections.singletonList(nt)).all().get(timeoutMs, TimeUnit.MILLISECONDS);
                    out.put("topic", name);
                    out.put("partitions", partitions);
                    break;
                }
                case "delete-topic": {
                    admin.deleteTopics(Collections.singletonList(pos.get(1))).all()
                            .get(timeoutMs, TimeUnit.MILLISECONDS);
                    out.put("topic", pos.get(1));
                    break;
                }
                case "list-topics": {
                    List<String> names = new ArrayList<>(
                            admin.listTopics().names().get(timeoutMs, TimeUnit.MILLISECONDS));
                    Collections.sort(names);
                    out.put("topics", names);
                    break;
                }
                case "describe-topic": {
                    TopicDescription d = admin.describeTopics(Collections.singletonList(pos.get(1)))
                            .allTopicNames().get(timeoutMs, TimeUnit.MILLISECONDS).get(pos.get(1));
                    out.put("topic", d.name());
                    out.put("topic_id", d.topicId().toString());
                    out.put("internal", d.isInternal());
                    List<Object> parts = new ArrayList<>();
                    for (TopicPartitionInfo tpi : d.partitions()) {
                        Map<String, Object> m = new LinkedHashMap<>();
                        m.put("partition", tpi.partition());
                        m.put("leader", tpi.leader() == null ? null : tpi.leader().id());
                        m.put("replicas", nodeIds(tpi.replicas()));
                        m.put("isr", nodeIds(tpi.isr()));
                        parts.add(m);
                    }
                    out.put("partitions", parts);
                    break;
                }
                case "describe-cluster": {
                    DescribeClusterResult r = admin.describeCluster();
                    out.put("cluster_id", r.clusterId().get(timeoutMs, TimeUnit.MILLISECONDS));
                    Node controller = r.controller().get(timeoutMs, TimeUnit.MILLISECONDS);
                    out.put("controller", controller == null ? null : controller.id());
                    List<Object> nodes = new ArrayList<>();
                    for (Node n : r.nodes().get(timeoutMs, TimeUnit.MILLISECONDS)) {
                        nodes.add(Arrays.asList(n.id(), n.host(), n.port()));
                    }
                    out.put("nodes", nodes);
                    break;
                }
                case "list-offsets": {
                    String name = pos.get(1);
                    TopicDescription d = admin.describeTopics(Collections.singletonList(name))
                            .allTopicNames().get(timeoutMs, TimeUnit.MILLISECONDS).get(name);
                    Map<TopicPartition, OffsetSpec> earliest = new HashMap<>();
                    Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
                    for (TopicPartitionInfo tpi : d.partitions()) {
                        earliest.put(new TopicPartition(name, tpi.partition()), OffsetSpec.earliest());
                        latest.put(new TopicPartition(name, tpi.partition()), OffsetSpec.latest());
                    }
                    Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e =
                            admin.listOffsets(earliest).all().get(timeoutMs, TimeUnit.MILLISECONDS);
                    Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> l =
                            admin.listOffsets(latest).all().get(timeoutMs, TimeUnit.MILLISECONDS);
                    Map<String, Object> offs = new TreeMap<>();
                    for (TopicPartition tp : e.keySet()) {
                        offs.put(String.valueOf(tp.partition()),
                                Arrays.asList(e.get(tp).offset(), l.get(tp).offset()));
                    }
                    out.put("topic", name);
                    out.put("offsets", offs);  // partition -> [earliest, latest]
                    break;
                }
                case "list-groups": {
                    List<String> ids = new ArrayList<>();
                    Collection<GroupListing> gl = admin.listGroups().all().get(timeoutMs, TimeUnit.MILLISECONDS);
                    for (GroupListing g : gl) {
                        ids.add(g.groupId());
                    }
                    Collections.sort(ids);
                    out.put("groups", ids);
                    break;
                }
                case "describe-group": {
                    String gid = pos.get(1);
                    ConsumerGroupDescription g = admin.describeConsumerGroups(Collections.singletonList(gid))
                            .all().get(timeoutMs, TimeUnit.MILLISECONDS).get(gid);
                    out.put("group", gid);
                    out.put("state", String.valueOf(g.groupState()));
                    out.put("members", g.members().size());
                    Map<String, Object> committed = new TreeMap<>();
                    Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(gid)
                            .partitionsToOffsetAndMetadata().get(timeoutMs, TimeUnit.MILLISECONDS);
                    for (Map.Entry<TopicPartition, OffsetAndMetadata> en : offs.entrySet()) {
                        committed.put(en.getKey().topic() + ":" + en.getKey().partition(),
                                en.getValue() == null ? null : en.getValue().offset());
                    }
                    out.put("committed", committed);
                    List<String> memberIds = new ArrayList<>();
                    for (MemberDescription m : g.members()) {
                        memberIds.add(m.consumerId());
                    }
                    out.put("member_ids", memberIds);
                    break;
                }
                default:
                    throw new IllegalArgumentException("unknown admin sub-command " + pos.get(0));
            }
        }
        emit(out);
        return 0;
    }

    private static List<Object> nodeIds(List<Node> nodes) {
        List<Object> ids = new ArrayList<>();
        for (Node n : nodes) {
            ids.add(n.id());
        }
        return ids;
    }

    // ---------------------------------------------------------------- args

    /** `--name value` options plus positionals; `--config`/`--headers` take k=v,k=v lists. */
    static final class Args {
        final Map<String, String> opts = new HashMap<>();
        final List<String> positional = new ArrayList<>();

        static Args parse(String[] argv) {
            Args a = new Args();
            for (int i = 0; i < argv.length; i++) {
                String s = argv[i];
                if (s.startsWith("--")) {
                    String name = s.substring(2);
                    String value;
                    int eq = name.indexOf('=');
                    if (eq >= 0) {
                        value = name.substring(eq + 1);
                        name = name.substring(0, eq);
                    } else {
                        if (i + 1 >= argv.length) {
                            throw new IllegalArgumentException("missing value for " + s);
                        }
                        value = argv[++i];
                    }
                    // Repeated list options accumulate.
                    a.opts.merge(name, value, (x, y) -> x + "," + y);
                } else {
                    a.positional.add(s);
                }
            }
            return a;
        }

        boolean has(String name) {
            return opts.containsKey(name);
        }

        String get(String name, String dflt) {
            return opts.getOrDefault(name, dflt);
        }

        String required(String name) {
            String v = opts.get(name);
            if (v == null) {
                throw new IllegalArgumentException("--" + name + " is required");
            }
            return v;
        }

        Map<String, String> pairs(String name) {
            Map<String, String> out = new LinkedHashMap<>();
            String v = opts.get(name);
            if (v == null || v.isEmpty()) {
                return out;
            }
            for (String kv : v.split(",")) {
                int eq = kv.indexOf('=');
                if (eq < 0) {
                    throw new IllegalArgumentException("--" + name + " expects k=v, got " + kv);
                }
                out.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
            return out;
        }

        void putConfigs(Properties p) {
            p.putAll(pairs("config"));
        }
    }

    // ---------------------------------------------------------------- tiny JSON writer

    /** Pre-rendered JSON fragment. */
    static final class RawJson {
        final String json;

        RawJson(String json) {
            this.json = json;
        }
    }

    static void emit(Map<String, Object> obj) {
        System.out.println(toJson(obj));
        System.out.flush();
    }

    static String toJson(Object o) {
        if (o == null) {
            return "null";
        }
        if (o instanceof RawJson) {
            return ((RawJson) o).json;
        }
        if (o instanceof String) {
            return jsonString((String) o);
        }
        if (o instanceof Double) {
            double d = (Double) o;
            return Double.isFinite(d) ? String.valueOf(d) : "null";
        }
        if (o instanceof Number || o instanceof Boolean) {
            return String.valueOf(o);
        }
        if (o instanceof Map) {
            StringBuilder sb = new StringBuilder("{");
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                sb.append(jsonString(String.valueOf(e.getKey()))).append(':').append(toJson(e.getValue()));
            }
            return sb.append('}').toString();
        }
        if (o instanceof Collection) {
            StringBuilder sb = new StringBuilder("[");
            boolean first = true;
            for (Object x : (Collection<?>) o) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                sb.append(toJson(x));
            }
            return sb.append(']').toString();
        }
        return jsonString(String.valueOf(o));
    }

    /** Bytes as a UTF-8 string (lossy for binary; the harness sends text keys/values). */
    static String jsonBytes(byte[] b) {
        return b == null ? "null" : jsonString(new String(b, StandardCharsets.UTF_8));
    }

    static String jsonString(String s) {
        StringBuilder sb = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        return sb.append('"').toString();
    }
}
