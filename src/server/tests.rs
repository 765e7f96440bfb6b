//! End-to-end golden tests of the server over real loopback sockets: the
//! bytes a client sends and the exact bytes it gets back, as observed on
//! redis-sentinel 7.0.15 (ids and addresses aside).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{PersistedState, ServerConfig};
use crate::core::{CoreOptions, Sentinel};
use crate::runtime::{Daemon, Inboxes};

struct Harness {
    shared: Arc<Daemon>,
    port: u16,
    _inboxes: Inboxes,
}

async fn start(cfg: ServerConfig) -> Harness {
    let (core, _) = Sentinel::new(PersistedState::default(), CoreOptions::default(), 0);
    let (shared, inboxes) = Daemon::new(core, cfg, None, tokio::time::Instant::now());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(super::serve(
        shared.server_handles(),
        super::Listeners::plain(vec![l]),
    ));
    Harness {
        shared,
        port,
        _inboxes: inboxes,
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(("127.0.0.1", h.port)).await.unwrap()
}

/// Reads exactly `expected.len()` bytes (with a timeout) and compares.
async fn expect(s: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .expect("reply in time")
        .expect("read");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Reads until the peer closes; returns everything read.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the server closed the connection in time");
    // A reset (e.g. unread data discarded on close) also counts as closed.
    let _ = r;
    out
}

async fn roundtrip(h: &Harness, send: &[u8], expected: &[u8]) {
    let mut s = connect(h).await;
    s.write_all(send).await.unwrap();
    expect(&mut s, expected).await;
}

#[tokio::test]
async fn pipelined_inline_and_multibulk_get_one_reply_each_in_order() {
    let h = start(ServerConfig::default()).await;
    roundtrip(
        &h,
        b"PING\r\n\n*1\r\n$4\r\nPING\r\nPING hi\r\n*0\r\n*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\nROLE\r\nfoo a b\r\n",
        b"+PONG\r\n+PONG\r\n$2\r\nhi\r\n$0\r\n\r\n*2\r\n$8\r\nsentinel\r\n*0\r\n-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
    )
    .await;
}

#[tokio::test]
async fn protocol_errors_reply_then_close() {
    let h = start(ServerConfig::default()).await;
    for (send, reply) in [
        (
            &b"*2\r\nx\r\n"[..],
            &b"-ERR Protocol error: expected '$', got 'x'\r\n"[..],
        ),
        (
            b"\"abc\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"*1\r\n$-1\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*abc\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"PING\r\n*1\r\n$536870913\r\n",
            b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
        ),
    ] {
        let mut s = connect(&h).await;
        s.write_all(send).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&read_to_close(&mut s).await),
            String::from_utf8_lossy(reply)
        );
    }
}

#[tokio::test]
async fn table_errors_and_quit_is_unknown() {
    let h = start(ServerConfig::default()).await;
    roundtrip(
        &h,
        b"sentinel set m opt\r\nclient setinfo lib-name x\r\nQUIT\r\nsentinel\r\nPING\r\n",
        b"-ERR wrong number of arguments for 'sentinel|set' command\r\n-ERR unknown subcommand 'setinfo'. Try CLIENT HELP.\r\n-ERR unknown command 'QUIT', with args beginning with: \r\n-ERR wrong number of arguments for 'sentinel' command\r\n+PONG\r\n",
    )
    .await;
}

#[tokio::test]
async fn resp2_subscribe_flow_matches_redis() {
    let h = start(ServerConfig::default()).await;
    let mut s = connect(&h).await;
    s.write_all(b"SUBSCRIBE a b\r\nPSUBSCRIBE h*\r\nPING\r\nPING hi\r\nINFO\r\n")
        .await
        .unwrap();
    expect(
        &mut s,
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$10\r\npsubscribe\r\n$2\r\nh*\r\n:3\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\npong\r\n$2\r\nhi\r\n-ERR Can't execute 'info': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    )
    .await;
    assert_eq!(h.shared.hub.publish("a", b"x"), 1);
    assert_eq!(h.shared.hub.publish("hello", b"y"), 1);
    expect(
        &mut s,
        b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n*4\r\n$8\r\npmessage\r\n$2\r\nh*\r\n$5\r\nhello\r\n$1\r\ny\r\n",
    )
    .await;
    s.write_all(b"UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nPING\r\n")
        .await
        .unwrap();
    expect(
        &mut s,
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n*3\r\n$12\r\npunsubscribe\r\n$2\r\nh*\r\n:0\r\n*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n+PONG\r\n",
    )
    .await;
}

#[tokio::test]
async fn resp3_hello_and_pushes() {
    let h = start(ServerConfig::default()).await;
    let mut s = connect(&h).await;
    s.write_all(b"HELLO 3\r\n").await.unwrap();
    let mut head = vec![0u8; 5];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"%6\r\n$");
    let mut rest = vec![0u8; 256];
    let n = s.read(&mut rest).await.unwrap();
    let text = String::from_utf8_lossy(&rest[..n]).into_owned();
    assert!(text.contains("$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:"));
    assert!(text.ends_with("$4\r\nmode\r\n$8\r\nsentinel\r\n$7\r\nmodules\r\n*0\r\n"));
    s.write_all(b"SUBSCRIBE a\r\nPING\r\nROLE\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\n")
        .await
        .unwrap();
    expect(
        &mut s,
        b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n+PONG\r\n*2\r\n$8\r\nsentinel\r\n*0\r\n>3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n>3\r\n$12\r\npunsubscribe\r\n_\r\n:0\r\n",
    )
    .await;
    roundtrip(
        &h,
        b"HELLO 4\r\nHELLO 3 foo\r\n",
        b"-NOPROTO unsupported protocol version\r\n-ERR Syntax error in HELLO option 'foo'\r\n",
    )
    .await;
}

#[tokio::test]
async fn client_commands() {
    let h = start(ServerConfig::default()).await;
    let mut a = connect(&h).await;
    a.write_all(b"CLIENT SETNAME a b\r\nCLIENT SETNAME \"a b\"\r\nCLIENT SETNAME sub1\r\nCLIENT GETNAME\r\nCLIENT LIST TYPE foo\r\nCLIENT LIST ID x\r\nCLIENT LIST TYPE pubsub\r\nCLIENT KILL 1.2.3.4:5\r\nCLIENT KILL USER nosuch\r\nCLIENT NO-TOUCH on\r\n").await.unwrap();
    expect(
        &mut a,
        b"-ERR wrong number of arguments for 'client|setname' command\r\n-ERR Client names cannot contain spaces, newlines or special characters.\r\n+OK\r\n$4\r\nsub1\r\n-ERR Unknown client type 'foo'\r\n-ERR Invalid client ID\r\n$0\r\n\r\n-ERR No such client\r\n-ERR No such user 'nosuch'\r\n-ERR unknown subcommand 'NO-TOUCH'. Try CLIENT HELP.\r\n",
    )
    .await;
    let mut b = connect(&h).await;
    b.write_all(b"CLIENT INFO\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = b.read(&mut buf).await.unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    let body = line.split("\r\n").nth(1).unwrap_or_default();
    let keys: Vec<&str> = body
        .split(' ')
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys.join(" "),
        "id addr laddr fd name age idle flags db sub psub ssub multi qbuf qbuf-free argv-mem multi-mem rbs rbp obl oll omem tot-mem events cmd user redir resp"
    );
    assert!(body.contains(" flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 "));
    assert!(body.ends_with(" events=r cmd=client|info user=default redir=-1 resp=2\n"));
    // Kill `b` by type from `a`, skipping a itself.
    a.write_all(b"CLIENT KILL TYPE normal\r\n").await.unwrap();
    expect(&mut a, b":1\r\n").await;
    assert!(read_to_close(&mut b).await.is_empty());
}

#[tokio::test]
async fn auth_with_requirepass() {
    let cfg = ServerConfig {
        requirepass: Some("foo".into()),
        ..ServerConfig::default()
    };
    let h = start(cfg).await;
    roundtrip(
        &h,
        b"PING\r\nHELLO\r\nAUTH x\r\nAUTH default x y\r\nAUTH foo\r\nPING\r\nACL WHOAMI\r\n",
        b"-NOAUTH Authentication required.\r\n-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n-ERR syntax error\r\n+OK\r\n+PONG\r\n$7\r\ndefault\r\n",
    )
    .await;
    // Before AUTH only small requests are accepted.
    let mut s = connect(&h).await;
    s.write_all(b"*11\r\n").await.unwrap();
    assert_eq!(
        read_to_close(&mut s).await,
        b"-ERR Protocol error: unauthenticated multibulk length\r\n".to_vec()
    );
}

#[tokio::test]
async fn acl_permissions_and_noperm() {
    let h = start(ServerConfig::default()).await;
    roundtrip(
        &h,
        b"ACL SETUSER bob on >pw -@all +ping +auth +subscribe &ok*\r\nAUTH bob pw\r\nPING\r\nROLE\r\nSUBSCRIBE nope\r\nSUBSCRIBE okay\r\n",
        b"+OK\r\n+OK\r\n+PONG\r\n-NOPERM this user has no permissions to run the 'role' command\r\n-NOPERM this user has no permissions to access one of the channels used as arguments\r\n*3\r\n$9\r\nsubscribe\r\n$4\r\nokay\r\n:1\r\n",
    )
    .await;
    roundtrip(
        &h,
        b"AUTH x\r\nACL LIST\r\n",
        b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n*2\r\n$125\r\nuser bob on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 resetchannels &ok* -@all +auth +ping +subscribe\r\n$34\r\nuser default on nopass ~* &* +@all\r\n",
    )
    .await;
}

#[tokio::test]
async fn publish_accepts_only_hello() {
    let h = start(ServerConfig::default()).await;
    roundtrip(
        &h,
        b"PUBLISH x y\r\nPUBLISH __sentinel__:hello garbage\r\n",
        b"-ERR Only HELLO messages are accepted by Sentinel instances.\r\n:1\r\n",
    )
    .await;
}

#[tokio::test]
async fn maxclients_rejects_extra_connections() {
    let cfg = ServerConfig {
        maxclients: 1,
        ..ServerConfig::default()
    };
    let h = start(cfg).await;
    let mut a = connect(&h).await;
    a.write_all(b"PING\r\n").await.unwrap();
    expect(&mut a, b"+PONG\r\n").await;
    let mut b = connect(&h).await;
    assert_eq!(
        read_to_close(&mut b).await,
        b"-ERR max number of clients reached\r\n".to_vec()
    );
}

#[tokio::test]
async fn slow_subscriber_is_closed_and_publisher_never_blocks() {
    let h = start(ServerConfig::default()).await;
    let mut s = connect(&h).await;
    s.write_all(b"SUBSCRIBE c\r\n").await.unwrap();
    expect(&mut s, b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n").await;
    // The subscriber stops reading; 64 KiB messages fill the socket, then the queue.
    let payload = vec![b'x'; 64 * 1024];
    let started = tokio::time::Instant::now();
    let mut reached_zero = false;
    for _ in 0..20_000 {
        if h.shared.hub.publish("c", &payload) == 0 {
            reached_zero = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(reached_zero, "the slow subscriber was never dropped");
    assert!(started.elapsed() < Duration::from_secs(30));
    // Its connection is closed (whatever was already in flight is discarded).
    let _ = read_to_close(&mut s).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.shared.hub.counts(), (0, 0));
}

#[tokio::test]
async fn shutdown_command_cancels_the_token() {
    let h = start(ServerConfig::default()).await;
    let mut s = connect(&h).await;
    s.write_all(b"SHUTDOWN ABORT\r\nSHUTDOWN FOO\r\nSHUTDOWN NOSAVE\r\n")
        .await
        .unwrap();
    let out = read_to_close(&mut s).await;
    assert_eq!(
        out,
        b"-ERR No shutdown in progress.\r\n-ERR syntax error\r\n".to_vec()
    );
    assert!(h.shared.shutdown.is_cancelled());
}

#[tokio::test]
async fn client_tracking_rules_match_redis() {
    let h = start(ServerConfig::default()).await;
    roundtrip(
        &h,
        b"CLIENT TRACKING on prefix x\r\nCLIENT TRACKING on optin optout\r\nCLIENT TRACKING on bcast optin\r\nCLIENT CACHING yes\r\nCLIENT TRACKING on optin\r\nCLIENT CACHING yes\r\nCLIENT CACHING no\r\nCLIENT TRACKING on bcast\r\nCLIENT TRACKINGINFO\r\nCLIENT GETREDIR\r\nCLIENT PAUSE 10 all extra\r\nCLIENT PAUSE x\r\n",
        b"-ERR PREFIX option requires BCAST mode to be enabled\r\n-ERR You can't specify both OPTIN mode and OPTOUT mode\r\n-ERR OPTIN and OPTOUT are not compatible with BCAST\r\n-ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled\r\n+OK\r\n+OK\r\n-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.\r\n-ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.\r\n*6\r\n$5\r\nflags\r\n*3\r\n$2\r\non\r\n$5\r\noptin\r\n$11\r\ncaching-yes\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n:0\r\n-ERR unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP.\r\n-ERR timeout is not an integer or out of range\r\n",
    )
    .await;
}

#[tokio::test]
async fn client_reply_skip_and_off() {
    let h = start(ServerConfig::default()).await;
    roundtrip(
        &h,
        b"CLIENT REPLY SKIP\r\nPING a\r\nPING b\r\nCLIENT REPLY OFF\r\nPING c\r\nCLIENT REPLY ON\r\nPING d\r\n",
        b"$1\r\nb\r\n+OK\r\n$1\r\nd\r\n",
    )
    .await;
}

#[tokio::test]
async fn setuser_disconnects_subscribers_that_lose_their_channels() {
    let h = start(ServerConfig::default()).await;
    let mut sub = connect(&h).await;
    sub.write_all(b"ACL SETUSER carl on nopass +@all &news*\r\nAUTH carl x\r\nSUBSCRIBE news1\r\n")
        .await
        .unwrap();
    expect(
        &mut sub,
        b"+OK\r\n+OK\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nnews1\r\n:1\r\n",
    )
    .await;
    let mut admin = connect(&h).await;
    // Still allowed: the subscriber stays.
    admin
        .write_all(b"ACL SETUSER carl &more\r\n")
        .await
        .unwrap();
    expect(&mut admin, b"+OK\r\n").await;
    sub.write_all(b"PING\r\n").await.unwrap();
    expect(&mut sub, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
    // Not allowed any more: it is disconnected.
    admin
        .write_all(b"ACL SETUSER carl resetchannels &other\r\n")
        .await
        .unwrap();
    expect(&mut admin, b"+OK\r\n").await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), sub.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn info_layout_and_command_counts() {
    let h = start(ServerConfig::default()).await;
    let mut s = connect(&h).await;
    s.write_all(b"HELLO 3\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = s.read(&mut buf).await.unwrap();
    s.write_all(b"COMMAND COUNT\r\nINFO\r\n").await.unwrap();
    expect(&mut s, b":15\r\n$").await;
    // INFO stays a plain bulk string in RESP3.
    let mut len = Vec::new();
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        if b[0] == b'\r' {
            break;
        }
        len.push(b[0]);
    }
    let n: usize = String::from_utf8_lossy(&len).parse().unwrap();
    let mut body = vec![0u8; n + 3];
    s.read_exact(&mut body).await.unwrap();
    let text = String::from_utf8_lossy(&body[1..n + 1]).into_owned();
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        headers,
        vec!["# Server", "# Clients", "# Stats", "# CPU", "# Sentinel"]
    );
    assert!(text.contains("\r\nredis_mode:sentinel\r\n"));
    assert!(text.contains("\r\nconnected_clients:1\r\n"));
    assert!(text.contains(&format!("\r\ntcp_port:{}\r\n", h.port)));
    assert!(text.ends_with("\r\n"));
    assert!(!text.contains("used_memory"));
    let run_id = text
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .unwrap_or_default()
        .trim_end()
        .to_string();
    assert_eq!(run_id.len(), 40);
    assert!(run_id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn client_kill_old_form_and_by_id() {
    let h = start(ServerConfig::default()).await;
    let mut victim = connect(&h).await;
    victim.write_all(b"CLIENT ID\r\n").await.unwrap();
    let mut buf = [0u8; 32];
    let n = victim.read(&mut buf).await.unwrap();
    let id = String::from_utf8_lossy(&buf[1..n - 2]).into_owned();
    let addr = victim.local_addr().unwrap().to_string();
    let mut admin = connect(&h).await;
    admin
        .write_all(format!("CLIENT KILL {addr}\r\nCLIENT KILL ID {id}\r\n").as_bytes())
        .await
        .unwrap();
    // The old form answers +OK; by then the victim is gone, so the new form finds nothing.
    expect(&mut admin, b"+OK\r\n:0\r\n").await;
    assert!(read_to_close(&mut victim).await.is_empty());
    // Killing oneself with SKIPME no replies, then closes.
    admin
        .write_all(b"\r\nCLIENT KILL TYPE normal SKIPME no\r\n")
        .await
        .unwrap();
    let out = read_to_close(&mut admin).await;
    assert!(String::from_utf8_lossy(&out).ends_with(":1\r\n"));
}

#[tokio::test]
async fn messages_published_before_unsubscribe_come_before_its_confirmation() {
    let h = start(ServerConfig::default()).await;
    let mut s = connect(&h).await;
    s.write_all(b"SUBSCRIBE c\r\n").await.unwrap();
    expect(&mut s, b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n").await;
    for _ in 0..50 {
        assert_eq!(h.shared.hub.publish("c", b"m"), 1);
    }
    s.write_all(b"UNSUBSCRIBE\r\nPING\r\n").await.unwrap();
    let mut expected = Vec::new();
    for _ in 0..50 {
        expected.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
    }
    expected.extend_from_slice(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n+PONG\r\n");
    expect(&mut s, &expected).await;
}

/// `timeout 1`: a client that sends nothing for a second is closed; one that
/// keeps talking is not, and neither is a subscriber (as Redis spares pub/sub
/// clients). Paused time: the clock jumps to the next timer when every task
/// waits.
#[tokio::test(start_paused = true)]
async fn timeout_closes_idle_clients_but_not_subscribers() {
    let h = start(ServerConfig {
        timeout: 1,
        ..ServerConfig::default()
    })
    .await;
    let mut idle = connect(&h).await;
    idle.write_all(b"PING\r\n").await.unwrap();
    expect(&mut idle, b"+PONG\r\n").await;
    let mut talking = connect(&h).await;
    let mut sub = connect(&h).await;
    sub.write_all(b"SUBSCRIBE c\r\n").await.unwrap();
    expect(&mut sub, b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n").await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        talking.write_all(b"PING\r\n").await.unwrap();
        expect(&mut talking, b"+PONG\r\n").await;
    }
    assert!(
        read_to_close(&mut idle).await.is_empty(),
        "idle client closed"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    sub.write_all(b"PING\r\n").await.unwrap();
    expect(&mut sub, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
}

/// `proto-max-bulk-len` and `client-query-buffer-limit` hold as configured.
#[tokio::test]
async fn configured_request_limits_are_in_force() {
    let h = start(ServerConfig {
        proto_max_bulk_len: 1024 * 1024,
        query_buffer_limit: 2 * 1024 * 1024,
        ..ServerConfig::default()
    })
    .await;
    let mut s = connect(&h).await;
    s.write_all(b"*2\r\n$4\r\nPING\r\n$1048577\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut s).await;
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
    let mut s = connect(&h).await;
    s.write_all(b"*2\r\n$4\r\nPING\r\n$1048576\r\n")
        .await
        .unwrap();
    s.write_all(&vec![b'x'; 1024 * 1024]).await.unwrap();
    s.write_all(b"\r\n").await.unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head))
        .await
        .expect("reply in time")
        .expect("read");
    assert_eq!(&head, b"$1048576\r\nxx");
    // Three arguments of 1 MiB, never completed: past the 2 MiB limit.
    let mut s = connect(&h).await;
    s.write_all(b"*4\r\n$4\r\nPING\r\n").await.unwrap();
    // The daemon may close before everything is written: a failed write is
    // the expected outcome too.
    for _ in 0..3 {
        let _ = s.write_all(b"$1048576\r\n").await;
        let _ = s.write_all(&vec![b'x'; 1024 * 1024]).await;
        let _ = s.write_all(b"\r\n").await;
    }
    assert!(
        read_to_close(&mut s).await.is_empty(),
        "closed without a reply"
    );
}

/// Valkey's `SENTINEL FAILOVER <master> COORDINATED` form and raftinel's
/// `FORCE` are taken (an unknown master answers as usual); another fourth
/// word is a syntax error, and COMMAND keeps 7.0.15's arity.
#[tokio::test]
async fn failover_takes_valkeys_coordinated_argument() {
    let h = start(ServerConfig::default()).await;
    roundtrip(
        &h,
        b"SENTINEL FAILOVER nope COORDINATED\r\nSENTINEL FAILOVER nope coordinated\r\nSENTINEL FAILOVER nope force\r\nSENTINEL FAILOVER nope now\r\nSENTINEL FAILOVER nope a b\r\n",
        b"-ERR No such master with that name\r\n-ERR No such master with that name\r\n-ERR No such master with that name\r\n-ERR syntax error\r\n-ERR wrong number of arguments for 'sentinel|failover' command\r\n",
    )
    .await;
}

/// Many clients each under `client-query-buffer-limit`: the one whose
/// partial request takes all clients together past twice the limit is
/// closed; the others finish their requests.
#[tokio::test]
async fn the_clients_input_together_is_capped() {
    let h = start(ServerConfig {
        query_buffer_limit: 2 * 1024 * 1024,
        ..ServerConfig::default()
    })
    .await;
    let body = vec![b'x'; 1536 * 1024];
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&h).await;
        let _ = s.write_all(b"*2\r\n$4\r\nPING\r\n$1572864\r\n").await;
        let _ = s.write_all(&body).await;
        clients.push(s);
    }
    // Nothing completes a request until the daemon has read past the
    // crossing point (4 MiB together).
    let mut probe = connect(&h).await;
    let mut reads = 0;
    loop {
        probe.write_all(b"INFO stats\r\n").await.unwrap();
        let mut buf = vec![0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), probe.read(&mut buf))
            .await
            .expect("INFO in time")
            .expect("read");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let input: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("total_net_input_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if input > 4 * 1024 * 1024 + 64 {
            break;
        }
        reads += 1;
        assert!(reads < 500, "the daemon read only {input} bytes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut answered, mut closed) = (0, 0);
    for mut s in clients {
        let _ = s.write_all(b"\r\n").await;
        let mut head = [0u8; 10];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head))
            .await
            .expect("an answer or a close in time");
        match r {
            Ok(_) => {
                assert_eq!(&head, b"$1572864\r\n");
                answered += 1;
            }
            Err(_) => closed += 1,
        }
    }
    assert_eq!((answered, closed), (2, 1));
}
