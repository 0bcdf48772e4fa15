import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.errors.TopicExistsException;

/**
 * Waits until a Kafka broker answers, then creates the given topics if they are missing.
 * Run as a single-file program: java -cp 'libs/*' KafkaReady.java BOOTSTRAP TIMEOUT_SECONDS PARTITIONS TOPIC...
 * One JVM for the readiness check and every topic, instead of one kafka-topics call a topic.
 */
public class KafkaReady {
  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    long deadline = System.currentTimeMillis() + Long.parseLong(args[1]) * 1000;
    int partitions = Integer.parseInt(args[2]);
    List<String> topics = Arrays.asList(args).subList(3, args.length);
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
    try (Admin admin = Admin.create(props)) {
      while (true) {
        try {
          int nodes = admin.describeCluster().nodes().get().size();
          if (nodes > 0) break;
        } catch (ExecutionException e) {
          // not up yet
        }
        if (System.currentTimeMillis() > deadline) {
          System.err.println("kafka: broker at " + bootstrap + " did not become ready in time");
          System.exit(1);
        }
        Thread.sleep(250);
      }
      Set<String> existing = admin.listTopics().names().get();
      List<NewTopic> missing = new ArrayList<>();
      for (String t : topics) if (!existing.contains(t)) missing.add(new NewTopic(t, partitions, (short) 1));
      if (!missing.isEmpty()) {
        for (Map.Entry<String, org.apache.kafka.common.KafkaFuture<Void>> e : admin.createTopics(missing).values().entrySet()) {
          try { e.getValue().get(); } catch (ExecutionException ex) {
            if (!(ex.getCause() instanceof TopicExistsException)) throw ex;
          }
        }
      }
      System.out.println("kafka: ready at " + bootstrap + " (" + topics.size() + " topics checked, " + missing.size() + " created)");
    }
  }
}
