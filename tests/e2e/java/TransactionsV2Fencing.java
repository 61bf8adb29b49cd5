// The Java client's transactional producer with transactions v2 (KIP-890), run by
// tests/e2e/test_transactions_v2_java.py as a single-file program. Two modes:
//   zombie BOOTSTRAP TOPIC TID: producer A opens a transaction and sends a record;
//     producer B with the same transactional.id initializes (fencing A and aborting its
//     transaction); A's next send and its commit must fail; B commits a record. Prints
//     "A send: <exception>", "A commit: <exception>", then "done".
//   crash BOOTSTRAP TOPIC TID: opens a transaction and sends three records, prints
//     "sent", waits for a line on stdin (the broker is killed and restarted meanwhile),
//     then sends a fourth record and commits; prints "done".
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

public class TransactionsV2Fencing {
    static KafkaProducer<String, String> producer(String bootstrap, String tid) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", tid);
        p.put("max.block.ms", "60000");
        p.put("delivery.timeout.ms", "60000");
        p.put("request.timeout.ms", "10000");
        p.put("reconnect.backoff.max.ms", "500");
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static String failure(Throwable e) {
        Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
        return cause.getClass().getSimpleName();
    }

    static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0], bootstrap = args[1], topic = args[2], tid = args[3];
        if (mode.equals("zombie")) {
            KafkaProducer<String, String> a = producer(bootstrap, tid);
            a.initTransactions();
            a.beginTransaction();
            a.send(new ProducerRecord<>(topic, 0, null, "a-open")).get();
            try (KafkaProducer<String, String> b = producer(bootstrap, tid)) {
                b.initTransactions();
                String sent = "none";
                try {
                    a.send(new ProducerRecord<>(topic, 0, null, "a-late")).get();
                } catch (Exception e) {
                    sent = failure(e);
                }
                say("A send: " + sent);
                String committed = "none";
                try {
                    a.commitTransaction();
                } catch (Exception e) {
                    committed = failure(e);
                }
                say("A commit: " + committed);
                a.close();
                b.beginTransaction();
                b.send(new ProducerRecord<>(topic, 0, null, "b")).get();
                b.commitTransaction();
            }
        } else {
            try (KafkaProducer<String, String> p = producer(bootstrap, tid)) {
                p.initTransactions();
                p.beginTransaction();
                for (int i = 0; i < 3; i++) {
                    p.send(new ProducerRecord<>(topic, 0, null, "r" + i)).get();
                }
                say("sent");
                new BufferedReader(new InputStreamReader(System.in)).readLine();
                p.send(new ProducerRecord<>(topic, 0, null, "r3")).get();
                p.commitTransaction();
            }
        }
        say("done");
    }
}
