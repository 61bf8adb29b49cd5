// The Java client against a cluster, run by tests/e2e/test_cluster_java_client.py as a
// single-file program: an idempotent producer (acks=all) writes `count` records to every
// partition of `topic`, a consumer in `group` reads them back, commits, and checks that
// each partition holds its records exactly once and in order and that the committed
// offset of each is its end. Prints the partitions' leaders ("leaders 1,2,3"), then
// "done" when every check passed; a failed check exits non-zero with its reason.
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class ClusterExactlyOnce {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2];
        int count = Integer.parseInt(args[3]);
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("max.block.ms", "30000");
        p.put("delivery.timeout.ms", "60000");
        List<TopicPartition> partitions = new ArrayList<>();
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            Set<Integer> leaders = new TreeSet<>();
            for (PartitionInfo info : producer.partitionsFor(topic)) {
                partitions.add(new TopicPartition(topic, info.partition()));
                leaders.add(info.leader().id());
            }
            System.out.println("leaders " + String.join(",", leaders.stream().map(String::valueOf).toList()));
            // Interleaved over the partitions, so every leader has batches in flight at once.
            for (int i = 0; i < count; i++) {
                for (TopicPartition tp : partitions) {
                    producer.send(new ProducerRecord<>(topic, tp.partition(), null, tp.partition() + "-" + i));
                }
            }
            producer.flush();
        }
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", group);
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        Map<Integer, List<String>> read = new HashMap<>();
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(topic));
            int total = 0, expected = count * partitions.size();
            long deadline = System.currentTimeMillis() + 90000;
            while (total < expected && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    read.computeIfAbsent(record.partition(), k -> new ArrayList<>()).add(record.value());
                    if (record.offset() != read.get(record.partition()).size() - 1) {
                        fail("partition " + record.partition() + " record at offset " + record.offset());
                    }
                    total++;
                }
            }
            consumer.commitSync(Duration.ofSeconds(30));
            // Whatever the polls returned beyond `expected` would be a duplicate.
            for (TopicPartition tp : partitions) {
                List<String> want = new ArrayList<>();
                for (int i = 0; i < count; i++) {
                    want.add(tp.partition() + "-" + i);
                }
                List<String> got = read.getOrDefault(tp.partition(), List.of());
                if (!got.equals(want)) {
                    fail("partition " + tp.partition() + " read " + got.size() + " of " + count
                            + (got.size() == count ? " (out of order)" : ""));
                }
            }
            Map<TopicPartition, OffsetAndMetadata> committed =
                    consumer.committed(Set.copyOf(partitions), Duration.ofSeconds(30));
            for (TopicPartition tp : partitions) {
                OffsetAndMetadata at = committed.get(tp);
                if (at == null || at.offset() != count) {
                    fail("partition " + tp.partition() + " committed " + at);
                }
            }
        }
        System.out.println("done");
    }

    private static void fail(String reason) {
        System.err.println(reason);
        System.exit(1);
    }
}
