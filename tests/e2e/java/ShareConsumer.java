// A Java 4.x KafkaShareConsumer (KIP-932), run by tests/e2e/test_share_consumers.py as a
// single-file program: args bootstrap, topic, group, mode. It polls until its standard
// input closes, printing one line per record delivered: "record <offset> <delivery count>
// <value> <what it did>", then closes (committing what is pending and leaving the group).
// Modes: "implicit" (share.acknowledgement.mode=implicit: every record is accepted at the
// next poll); "explicit": a value starting "release" is released on its first delivery
// and accepted later, one starting "reject" is rejected, one starting "poison" is released
// on every delivery (until the delivery count limit archives it), any other accepted, then
// commitSync; "hold": records are printed and never acknowledged (the test kills it).
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

public class ShareConsumer {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2], mode = args[3];
        AtomicBoolean running = new AtomicBoolean(true);
        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in))) {
                while (in.readLine() != null) { }
            } catch (Exception ignored) { }
            running.set(false);
        });
        stdin.setDaemon(true);
        stdin.start();
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", group);
        props.put("max.poll.records", "5");  // small fetches: two consumers interleave
        props.put("share.acknowledgement.mode", mode.equals("implicit") ? "implicit" : "explicit");
        try (KafkaShareConsumer<String, String> consumer =
                new KafkaShareConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(topic));
            System.out.println("subscribed");
            System.out.flush();
            int held = 0;
            while (running.get()) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    int count = record.deliveryCount().map(Short::intValue).orElse(-1);
                    String did = "accept";
                    if (mode.equals("hold")) {
                        did = "hold";
                        held++;
                    } else if (mode.equals("explicit")) {
                        AcknowledgeType type = AcknowledgeType.ACCEPT;
                        if (record.value().startsWith("release") && count == 1) {
                            type = AcknowledgeType.RELEASE;
                            did = "release";
                        } else if (record.value().startsWith("poison")) {
                            type = AcknowledgeType.RELEASE;
                            did = "release";
                        } else if (record.value().startsWith("reject")) {
                            type = AcknowledgeType.REJECT;
                            did = "reject";
                        }
                        consumer.acknowledge(record, type);
                    }
                    System.out.println(
                            "record " + record.offset() + " " + count + " " + record.value() + " " + did);
                }
                System.out.flush();
                if (mode.equals("explicit")) {
                    consumer.commitSync();
                } else if (mode.equals("hold") && held > 0) {
                    Thread.sleep(Long.MAX_VALUE);  // holds its records until it is killed
                }
            }
        }
        System.out.println("closed");
    }
}
