// Jedis 4.4.8 and Lettuce 6.2.7 writing through failovers, as Spring Data
// Redis opens them against Sentinel.
//
// Driven by tests/it/clients_jvm.rs, which causes the failovers and reads the
// logs this program writes to decide when each client followed; this program
// only records what the clients did. Clients (each a thread, each writing its
// own list key, one write every 2 ms):
//
//   jedis       JedisSentinelPool (Spring's JedisConnectionFactory with a
//               sentinel configuration): GET-MASTER-ADDR-BY-NAME at start,
//               then SUBSCRIBE +switch-master on every sentinel.
//   lettuce     RedisClient.connect() on a sentinel RedisURI (Spring's
//               LettuceConnectionFactory without readFrom): the master is
//               resolved through the sentinels on every (re)connect.
//   lettuce-mr  MasterReplica.connect() on the same URI (Spring with
//               readFrom): topology from the sentinels, refreshed on their
//               events (PSUBSCRIBE *).
//
// Every write is one EVAL: RPUSH <key> <seq>, then the server's own tcp_port
// from INFO server, so an acknowledgement names the node that took it (the
// clients' own idea of where they are connected is not trusted: Jedis 4
// reports its pool's target, not the socket's peer). Lines appended to
// <out>/<client>.log, flushed every 50 ms:
//
//   START <client> <version>
//   W <seq> <port> <epoch ms>    the write <seq> was acknowledged by <port>
//   E <epoch ms> <error>         an error, when it differs from the last one
//   END writes=<n> errors=<n>
//
// Stops when <out>/stop exists or at the deadline; every call is bounded by
// a 2 s timeout. Usage:
//   java FailoverClients --sentinels h:p,h:p,h:p --master mymaster
//        --out DIR --clients jedis,lettuce,lettuce-mr [--deadline SECONDS]

import io.lettuce.core.ClientOptions;
import io.lettuce.core.ReadFrom;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisURI;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.TimeoutOptions;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.sync.RedisCommands;
import io.lettuce.core.codec.StringCodec;
import io.lettuce.core.masterreplica.MasterReplica;
import io.lettuce.core.masterreplica.StatefulRedisMasterReplicaConnection;
import java.io.BufferedWriter;
import java.io.File;
import java.io.FileWriter;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.commons.pool2.impl.GenericObjectPoolConfig;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.JedisSentinelPool;

public final class FailoverClients {
    static final String SCRIPT =
        "redis.call('RPUSH', KEYS[1], ARGV[1]) "
            + "return tonumber(string.match(redis.call('INFO', 'server'), 'tcp_port:(%d+)'))";
    static final int TIMEOUT_MS = 2000;
    static final long PERIOD_MS = 2;

    static volatile boolean stop = false;

    /** One client's writer: how it writes, and its log. */
    abstract static class Writer implements Runnable {
        final String name;
        final String key;
        final BufferedWriter log;
        long writes = 0;
        long errors = 0;
        String lastError = null;
        long lastFlush = 0;

        Writer(String name, File out) throws IOException {
            this.name = name;
            this.key = "it-jvm-" + name;
            this.log = new BufferedWriter(new FileWriter(new File(out, name + ".log"), true));
        }

        /** Writes `seq`; returns the port of the server that acknowledged it. */
        abstract long write(long seq) throws Exception;

        abstract String version();

        abstract void close();

        void line(String s) {
            try {
                log.write(s);
                log.write('\n');
                long now = System.currentTimeMillis();
                if (now - lastFlush >= 50) {
                    log.flush();
                    lastFlush = now;
                }
            } catch (IOException e) {
                stop = true;
            }
        }

        public void run() {
            line("START " + name + " " + version());
            long seq = 0;
            while (!stop) {
                seq++;
                try {
                    long port = write(seq);
                    writes++;
                    line("W " + seq + " " + port + " " + System.currentTimeMillis());
                } catch (Throwable e) {
                    errors++;
                    String text = (e.getClass().getSimpleName() + ": " + e.getMessage())
                        .replace('\n', ' ');
                    if (!text.equals(lastError)) {
                        lastError = text;
                        line("E " + System.currentTimeMillis() + " " + text);
                    }
                    sleep(10);
                }
                sleep(PERIOD_MS);
            }
            line("END writes=" + writes + " errors=" + errors);
            try {
                log.flush();
            } catch (IOException e) {
                // Nothing left to report it to.
            }
            close();
        }
    }

    /** The jar a class was loaded from (its name carries the version). */
    static String jarOf(Class<?> c) {
        try {
            return new File(c.getProtectionDomain().getCodeSource().getLocation().toURI()).getName();
        } catch (Exception e) {
            return "?";
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            stop = true;
        }
    }

    static final class JedisWriter extends Writer {
        final JedisSentinelPool pool;

        JedisWriter(File out, String master, List<String[]> sentinels) throws IOException {
            super("jedis", out);
            Set<String> addrs = new HashSet<>();
            for (String[] s : sentinels) {
                addrs.add(s[0] + ":" + s[1]);
            }
            GenericObjectPoolConfig<Jedis> cfg = new GenericObjectPoolConfig<>();
            cfg.setMaxTotal(4);
            cfg.setMaxWait(Duration.ofMillis(TIMEOUT_MS));
            pool = new JedisSentinelPool(master, addrs, cfg, TIMEOUT_MS);
        }

        long write(long seq) {
            try (Jedis j = pool.getResource()) {
                return (Long) j.eval(SCRIPT, 1, key, Long.toString(seq));
            }
        }

        String version() {
            return jarOf(JedisSentinelPool.class);
        }

        void close() {
            pool.close();
        }
    }

    static RedisURI sentinelUri(String master, List<String[]> sentinels) {
        RedisURI.Builder b = null;
        for (String[] s : sentinels) {
            int port = Integer.parseInt(s[1]);
            b = b == null ? RedisURI.Builder.sentinel(s[0], port, master) : b.withSentinel(s[0], port);
        }
        return b.withTimeout(Duration.ofMillis(TIMEOUT_MS)).build();
    }

    /** The client options Spring Data Redis sets (timeouts on, auto-reconnect). */
    static RedisClient lettuceClient() {
        RedisClient c = RedisClient.create();
        c.setOptions(ClientOptions.builder().timeoutOptions(TimeoutOptions.enabled()).build());
        return c;
    }

    static final class LettuceWriter extends Writer {
        final RedisClient client;
        final StatefulRedisConnection<String, String> conn;
        final RedisCommands<String, String> sync;

        LettuceWriter(File out, String master, List<String[]> sentinels, boolean mr) throws IOException {
            super(mr ? "lettuce-mr" : "lettuce", out);
            client = lettuceClient();
            RedisURI uri = sentinelUri(master, sentinels);
            if (mr) {
                StatefulRedisMasterReplicaConnection<String, String> c =
                    MasterReplica.connect(client, StringCodec.UTF8, uri);
                c.setReadFrom(ReadFrom.MASTER);
                conn = c;
            } else {
                conn = client.connect(StringCodec.UTF8, uri);
            }
            sync = conn.sync();
        }

        long write(long seq) {
            Long port = sync.eval(SCRIPT, ScriptOutputType.INTEGER, new String[] {key}, Long.toString(seq));
            return port;
        }

        String version() {
            return jarOf(RedisClient.class);
        }

        void close() {
            conn.close();
            client.shutdown(Duration.ZERO, Duration.ofSeconds(2));
        }
    }

    public static void main(String[] args) throws Exception {
        String master = "mymaster";
        String outDir = null;
        List<String[]> sentinels = new ArrayList<>();
        List<String> clients = Arrays.asList("jedis", "lettuce", "lettuce-mr");
        long deadline = 600;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--sentinels":
                    for (String s : args[i + 1].split(",")) {
                        sentinels.add(s.split(":"));
                    }
                    break;
                case "--master":
                    master = args[i + 1];
                    break;
                case "--out":
                    outDir = args[i + 1];
                    break;
                case "--clients":
                    clients = Arrays.asList(args[i + 1].split(","));
                    break;
                case "--deadline":
                    deadline = Long.parseLong(args[i + 1]);
                    break;
                default:
                    throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (outDir == null || sentinels.isEmpty()) {
            throw new IllegalArgumentException("--out and --sentinels are required");
        }
        File out = new File(outDir);
        List<Thread> threads = new ArrayList<>();
        for (String c : clients) {
            Writer w;
            switch (c) {
                case "jedis":
                    w = new JedisWriter(out, master, sentinels);
                    break;
                case "lettuce":
                    w = new LettuceWriter(out, master, sentinels, false);
                    break;
                case "lettuce-mr":
                    w = new LettuceWriter(out, master, sentinels, true);
                    break;
                default:
                    throw new IllegalArgumentException("unknown client " + c);
            }
            Thread t = new Thread(w, c);
            t.setDaemon(true);
            t.start();
            threads.add(t);
        }
        File stopFile = new File(out, "stop");
        long end = System.currentTimeMillis() + deadline * 1000;
        while (!stopFile.exists() && System.currentTimeMillis() < end) {
            sleep(50);
        }
        stop = true;
        for (Thread t : threads) {
            t.join(10_000);
        }
        System.exit(stopFile.exists() ? 0 : 3);
    }
}
