// A consume-transform-produce loop with the Java client's transactional producer, run by
// tests/e2e/test_transactions_v2.py as a single-file program: three transactions in one
// producer session (commit, abort, commit), each sending the consumer's offsets with
// sendOffsetsToTransaction. Against a broker that finalizes transaction.version 2 the
// client uses transactions v2 (KIP-890). Prints "done" when every step succeeded. An
// optional sixth argument names a properties file (security settings) both clients load.
import java.io.FileReader;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class TransactionsV2 {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], source = args[1], sink = args[2], group = args[3], tid = args[4];
        Properties common = new Properties();
        if (args.length > 5) {
            try (FileReader reader = new FileReader(args[5])) {
                common.load(reader);
            }
        }
        Properties c = new Properties();
        c.putAll(common);
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", group);
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        c.put("isolation.level", "read_committed");
        Properties p = new Properties();
        p.putAll(common);
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", tid);
        p.put("max.block.ms", "30000");
        try (KafkaConsumer<String, String> consumer =
                        new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer());
                KafkaProducer<String, String> producer =
                        new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            consumer.subscribe(List.of(source));
            int seen = 0;
            long deadline = System.currentTimeMillis() + 30000;
            while (seen < 4 && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                seen += records.count();
            }
            if (seen < 4) {
                throw new IllegalStateException("read " + seen + " source records");
            }
            producer.initTransactions();
            TopicPartition in = new TopicPartition(source, 0);
            String[] values = {"a", "b", "c"};
            long[] offsets = {2, 3, 4};
            for (int i = 0; i < values.length; i++) {
                producer.beginTransaction();
                producer.send(new ProducerRecord<>(sink, 0, null, values[i])).get();
                producer.sendOffsetsToTransaction(
                        Map.of(in, new OffsetAndMetadata(offsets[i])), consumer.groupMetadata());
                if (i == 1) {
                    producer.abortTransaction();
                } else {
                    producer.commitTransaction();
                }
            }
        }
        System.out.println("done");
    }
}
