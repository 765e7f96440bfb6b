//! The command link: one `redis::aio::MultiplexedConnection` per instance,
//! over a socket we open ourselves (so its local address is known for hello
//! payloads). Handshake as Sentinel does it: AUTH if needed, then
//! `CLIENT SETNAME <prefix>-cmd`, replies ignored. Then every command the core
//! asks for runs concurrently on the multiplexed connection, each under
//! [`COMMAND_TIMEOUT`], and its reply is turned into an `Input`.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::connect::connect_from;
use super::{LinkCmd, LinkCtx, HELLO_CHANNEL};
use crate::core::{Input, LinkKind, PingReply};

/// Upper bound for any single command on a link. Sentinel itself never times
/// out a command (its SDOWN rule watches the oldest unanswered PING), so this
/// is only a safety net: generous enough for a slow INFO, short enough that a
/// wedged connection is noticed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Aborts a spawned task when dropped (the connection driver must not outlive
/// its link).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a finished command tells the link task.
enum Outcome {
    Done,
    /// The connection is gone.
    Dropped,
}

/// A reply reduced to what Sentinel looks at.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Value(Value),
    /// An error reply, as its full text (`LOADING Redis is loading ...`).
    Error(String),
}

/// Connects and sends Sentinel's handshake (AUTH, CLIENT SETNAME; their
/// replies ignored). `None`: the link is down.
async fn open(ctx: &LinkCtx) -> Option<(MultiplexedConnection, AbortOnDrop, String)> {
    let (stream, local_ip) =
        match connect_from(&ctx.spec.host, ctx.spec.port, ctx.bind_source).await {
            Ok(ok) => ok,
            Err(err) => {
                tracing::trace!(
                    "-cmd-link-reconnection {}:{} #{err}",
                    ctx.spec.host,
                    ctx.spec.port
                );
                return None;
            }
        };
    // No AUTH/SETINFO from the crate: Sentinel's handshake is ours to send
    // (renamed commands, replies ignored).
    let info = RedisConnectionInfo::default().set_skip_set_lib_name();
    // No crate-level response timeout (its default is 500 ms): a hung node
    // must keep its link with PINGs pending, as Sentinel does (SDOWN measures
    // the oldest pending PING; the flags must not gain `disconnected`). Each
    // command is bounded by COMMAND_TIMEOUT in `send` instead.
    let config = AsyncConnectionConfig::new().set_response_timeout(None);
    let setup = tokio::time::timeout(
        COMMAND_TIMEOUT,
        MultiplexedConnection::new_with_config(&info, stream, config),
    )
    .await;
    let Ok(Ok((mut conn, driver))) = setup else {
        return None;
    };
    let driver = AbortOnDrop(tokio::spawn(driver));

    if let Some(args) = ctx.auth_args() {
        let mut auth = redis::cmd(&ctx.command_name("AUTH"));
        auth.arg(args);
        if let Err(Outcome::Dropped) = send(&mut conn, &auth).await.map(|_| ()) {
            return None;
        }
    }
    let mut setname = redis::cmd(&ctx.command_name("CLIENT"));
    setname
        .arg("SETNAME")
        .arg(format!("{}-cmd", ctx.spec.client_name));
    if let Err(Outcome::Dropped) = send(&mut conn, &setname).await.map(|_| ()) {
        return None;
    }
    Some((conn, driver, local_ip))
}

fn link_down(ctx: &LinkCtx) {
    let link = LinkKind::Command;
    ctx.report(
        link,
        Input::LinkDown {
            id: ctx.spec.id,
            link,
        },
    );
}

pub async fn run(ctx: LinkCtx, mut rx: mpsc::UnboundedReceiver<LinkCmd>) {
    let link = LinkKind::Command;
    let Some((conn, mut driver, local_ip)) = open(&ctx).await else {
        return link_down(&ctx);
    };
    ctx.report(
        link,
        Input::LinkUp {
            id: ctx.spec.id,
            link,
        },
    );

    let mut inflight: JoinSet<Outcome> = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut driver.0 => break,
            cmd = rx.recv() => match cmd {
                // The driver dropped this link: just close.
                None => return,
                Some(cmd) => {
                    let ctx = ctx.clone();
                    let conn = conn.clone();
                    let local_ip = local_ip.clone();
                    inflight.spawn(async move { execute(&ctx, conn, &local_ip, cmd).await });
                }
            },
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                if let Ok(Outcome::Dropped) = done {
                    break;
                }
            }
        }
    }
    link_down(&ctx);
}

/// Sends one command under the timeout. `Ok(None)` = timed out.
async fn send(
    conn: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
) -> Result<Option<Reply>, Outcome> {
    match tokio::time::timeout(COMMAND_TIMEOUT, conn.send_packed_command(cmd)).await {
        Err(_) => Ok(None),
        Ok(Ok(Value::ServerError(err))) => {
            Ok(Some(Reply::Error(error_text(err.code(), err.details()))))
        }
        Ok(Ok(v)) => Ok(Some(Reply::Value(v))),
        Ok(Err(err)) => match err.code() {
            Some(code) => Ok(Some(Reply::Error(error_text(code, err.detail())))),
            None => Err(Outcome::Dropped),
        },
    }
}

fn error_text(code: &str, detail: Option<&str>) -> String {
    match detail {
        Some(d) if !d.is_empty() => format!("{code} {d}"),
        _ => code.to_string(),
    }
}

async fn execute(
    ctx: &LinkCtx,
    mut conn: MultiplexedConnection,
    local_ip: &str,
    cmd: LinkCmd,
) -> Outcome {
    let id = ctx.spec.id;
    let timeout = Input::CommandTimeout { id };
    match cmd {
        LinkCmd::Ping => {
            let c = redis::cmd(&ctx.command_name("PING"));
            match send(&mut conn, &c).await {
                Err(o) => return o,
                Ok(None) => ctx.report(LinkKind::Command, timeout),
                Ok(Some(reply)) => ctx.report(
                    LinkKind::Command,
                    Input::PingReply {
                        id,
                        reply: classify_ping(&reply),
                    },
                ),
            }
        }
        LinkCmd::Info => {
            let c = redis::cmd(&ctx.command_name("INFO"));
            match send(&mut conn, &c).await {
                Err(o) => return o,
                Ok(None) => ctx.report(LinkKind::Command, timeout),
                Ok(Some(Reply::Value(v))) if text_of(&v).is_some() => {
                    let text = text_of(&v).unwrap_or_default();
                    ctx.report(LinkKind::Command, Input::InfoReply { id, text });
                }
                // Sentinel only uses string replies to INFO, but any reply
                // settles the pending command; the core has no input for a
                // useless reply, and "timed out" has the same effect there
                // (pending count released, INFO asked again next tick).
                Ok(Some(_)) => ctx.report(LinkKind::Command, timeout),
            }
        }
        LinkCmd::Hello(hello) => {
            let mut c = redis::cmd(&ctx.command_name("PUBLISH"));
            c.arg(HELLO_CHANNEL).arg(hello.payload(local_ip));
            match send(&mut conn, &c).await {
                Err(o) => return o,
                Ok(None) => ctx.report(LinkKind::Command, timeout),
                Ok(Some(reply)) => ctx.report(
                    LinkKind::Command,
                    Input::PublishReply {
                        id,
                        ok: !matches!(reply, Reply::Error(_)),
                    },
                ),
            }
        }
        LinkCmd::AskMasterDown {
            master_ip,
            master_port,
            epoch,
            runid,
        } => {
            let mut c = redis::cmd(&ctx.command_name("SENTINEL"));
            c.arg("is-master-down-by-addr")
                .arg(master_ip)
                .arg(master_port.to_string())
                .arg(epoch.to_string())
                .arg(runid);
            match send(&mut conn, &c).await {
                Err(o) => return o,
                Ok(None) => ctx.report(LinkKind::Command, timeout),
                Ok(Some(reply)) => ctx.report(
                    LinkKind::Command,
                    Input::MasterDownReply {
                        peer: id,
                        reply: parse_master_down(&reply),
                    },
                ),
            }
        }
        LinkCmd::ScriptKill => {
            let mut c = redis::cmd(&ctx.command_name("SCRIPT"));
            c.arg("KILL");
            if let Err(o) = send(&mut conn, &c).await {
                return o;
            }
        }
        LinkCmd::PauseWrites { ms } => return pause_writes(ctx, &mut conn, ms).await,
        LinkCmd::Unpause => {
            let mut c = redis::cmd(&ctx.command_name("CLIENT"));
            c.arg("UNPAUSE");
            if let Err(o) = send(&mut conn, &c).await {
                return o;
            }
        }
        LinkCmd::Reconfigure { replicaof } => {
            return reconfigure(ctx, &mut conn, replicaof.as_ref()).await
        }
    }
    Outcome::Done
}

/// CLIENT PAUSE WRITE then INFO, in one write: the INFO is served right
/// after the pause took effect (INFO is not a write, so it is not paused),
/// and no other command of this link can slip in between.
async fn pause_writes(ctx: &LinkCtx, conn: &mut MultiplexedConnection, ms: u64) -> Outcome {
    let id = ctx.spec.id;
    let mut pipe = redis::pipe();
    pipe.cmd(&ctx.command_name("CLIENT"))
        .arg("PAUSE")
        .arg(ms.to_string())
        .arg("WRITE");
    pipe.cmd(&ctx.command_name("INFO"));
    let sent = tokio::time::timeout(COMMAND_TIMEOUT, conn.send_packed_commands(&pipe, 0, 2)).await;
    let info = match sent {
        Ok(Ok(replies)) => match replies.as_slice() {
            [Value::Okay | Value::SimpleString(_), info] => text_of(info),
            _ => None,
        },
        Ok(Err(err)) => {
            if err.code().is_none() && (err.is_connection_dropped() || err.is_io_error()) {
                return Outcome::Dropped;
            }
            None
        }
        Err(_) => None,
    };
    ctx.report(LinkKind::Command, Input::PauseReply { id, info });
    Outcome::Done
}

/// The reconfiguration transaction; replies are ignored (the effect is
/// observed through INFO), only a dead connection matters.
async fn reconfigure(
    ctx: &LinkCtx,
    conn: &mut MultiplexedConnection,
    replicaof: Option<&(String, u16)>,
) -> Outcome {
    let pipe = reconfigure_pipeline(ctx, replicaof);
    let sent = tokio::time::timeout(
        COMMAND_TIMEOUT,
        conn.send_packed_commands(&pipe, 0, pipe.len()),
    )
    .await;
    if let Ok(Err(err)) = sent {
        if err.code().is_none() && (err.is_connection_dropped() || err.is_io_error()) {
            return Outcome::Dropped;
        }
    }
    Outcome::Done
}

/// `MULTI`, `SLAVEOF`, `CONFIG REWRITE`, `CLIENT KILL TYPE normal|pubsub`,
/// `EXEC`, as Sentinel sends them to reconfigure a node, each name through
/// the rename table.
fn reconfigure_pipeline(ctx: &LinkCtx, replicaof: Option<&(String, u16)>) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd(&ctx.command_name("MULTI"));
    match replicaof {
        Some((host, port)) => pipe
            .cmd(&ctx.command_name("SLAVEOF"))
            .arg(host)
            .arg(port.to_string()),
        None => pipe.cmd(&ctx.command_name("SLAVEOF")).arg("NO").arg("ONE"),
    };
    pipe.cmd(&ctx.command_name("CONFIG")).arg("REWRITE");
    pipe.cmd(&ctx.command_name("CLIENT"))
        .arg("KILL")
        .arg("TYPE")
        .arg("normal");
    pipe.cmd(&ctx.command_name("CLIENT"))
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub");
    pipe.cmd(&ctx.command_name("EXEC"));
    pipe
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// As in Sentinel: status or error replies starting with PONG, LOADING or MASTERDOWN are
/// valid; anything else is only "some reply" (BUSY noted for SCRIPT KILL).
fn classify_ping(reply: &Reply) -> PingReply {
    let text = match reply {
        Reply::Error(e) => e.as_str(),
        Reply::Value(Value::SimpleString(s)) => s.as_str(),
        Reply::Value(Value::Okay) => "OK",
        Reply::Value(_) => "",
    };
    if text.starts_with("PONG") {
        PingReply::Valid { pong: true }
    } else if text.starts_with("LOADING") || text.starts_with("MASTERDOWN") {
        PingReply::Valid { pong: false }
    } else {
        PingReply::Other {
            busy: text.starts_with("BUSY"),
        }
    }
}

/// Accepted only as exactly `[integer, bulk string, integer]`, as Sentinel
/// does.
fn parse_master_down(reply: &Reply) -> Option<(i64, String, i64)> {
    match reply {
        Reply::Value(Value::Array(items)) => match items.as_slice() {
            [Value::Int(down), Value::BulkString(runid), Value::Int(epoch)] => {
                Some((*down, String::from_utf8_lossy(runid).into_owned(), *epoch))
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{InstanceId, InstanceKind, LinkAuth, LinkSpec};

    #[test]
    fn ping_classification() {
        let v = |s: &str| Reply::Value(Value::SimpleString(s.into()));
        let e = |s: &str| Reply::Error(s.into());
        assert_eq!(classify_ping(&v("PONG")), PingReply::Valid { pong: true });
        assert_eq!(
            classify_ping(&e("LOADING Redis is loading the dataset in memory")),
            PingReply::Valid { pong: false }
        );
        assert_eq!(
            classify_ping(&e("MASTERDOWN Link down")),
            PingReply::Valid { pong: false }
        );
        assert_eq!(
            classify_ping(&e("BUSY Redis is busy running a script")),
            PingReply::Other { busy: true }
        );
        assert_eq!(
            classify_ping(&e("NOAUTH Authentication required.")),
            PingReply::Other { busy: false }
        );
        // A bulk "PONG" (PING renamed to ECHO-like) is not a valid reply.
        assert_eq!(
            classify_ping(&Reply::Value(Value::BulkString(b"PONG".to_vec()))),
            PingReply::Other { busy: false }
        );
    }

    #[test]
    fn master_down_reply_shape() {
        let ok = Reply::Value(Value::Array(vec![
            Value::Int(1),
            Value::BulkString(b"*".to_vec()),
            Value::Int(0),
        ]));
        assert_eq!(parse_master_down(&ok), Some((1, "*".into(), 0)));
        let bad = Reply::Value(Value::Array(vec![Value::Int(1), Value::Int(0)]));
        assert_eq!(parse_master_down(&bad), None);
        assert_eq!(parse_master_down(&Reply::Error("ERR".into())), None);
    }

    #[test]
    fn reconfigure_transaction_uses_renames() {
        let (out, _) = mpsc::unbounded_channel();
        let ctx = LinkCtx {
            spec: LinkSpec {
                id: InstanceId(1),
                kind: InstanceKind::Replica,
                host: "127.0.0.1".into(),
                port: 1,
                auth: LinkAuth::default(),
                client_name: "sentinel-12345678".into(),
                renames: vec![("config".into(), "cfg".into())],
            },
            gen: 1,
            bind_source: None,
            out,
        };
        let p = reconfigure_pipeline(&ctx, Some(&("10.0.0.1".to_string(), 6380)));
        let wire = String::from_utf8(p.get_packed_pipeline()).unwrap();
        let words: Vec<&str> = wire
            .split("\r\n")
            .filter(|l| !l.starts_with('*') && !l.starts_with('$') && !l.is_empty())
            .collect();
        assert_eq!(
            words,
            [
                "MULTI", "SLAVEOF", "10.0.0.1", "6380", "cfg", "REWRITE", "CLIENT", "KILL", "TYPE",
                "normal", "CLIENT", "KILL", "TYPE", "pubsub", "EXEC"
            ]
        );
        let p = reconfigure_pipeline(&ctx, None);
        let wire = String::from_utf8(p.get_packed_pipeline()).unwrap();
        assert!(wire.contains("SLAVEOF\r\n$2\r\nNO\r\n$3\r\nONE\r\n"));
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<super::super::LinkMsg>) -> Input {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("link reported in time")
            .expect("link alive")
            .input
    }

    /// Against a real redis-server (skipped if absent): the link comes up,
    /// PING/INFO replies come back as inputs, and the reconfiguration
    /// transaction turns the node into a replica without killing our link.
    #[tokio::test]
    async fn reconfigure_a_real_redis() {
        let Some(redis) = crate::testutil::redis_server() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = crate::testutil::free_port();
        let node = crate::testutil::spawn_redis(&redis, dir.path(), port, &[]);
        let (out, mut rx) = mpsc::unbounded_channel();
        let ctx = LinkCtx {
            spec: LinkSpec {
                id: InstanceId(3),
                kind: InstanceKind::Replica,
                host: "127.0.0.1".into(),
                port,
                auth: LinkAuth::default(),
                client_name: "sentinel-abcdef12".into(),
                renames: Vec::new(),
            },
            gen: 1,
            bind_source: None,
            out,
        };
        // The node may still be starting: retry the connect a few times.
        let mut task = None;
        for _ in 0..50 {
            let t = super::super::spawn_command(ctx.clone());
            match next(&mut rx).await {
                Input::LinkUp { .. } => {
                    task = Some(t);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let task = task.expect("link up");
        task.tx.send(LinkCmd::Ping).unwrap();
        assert_eq!(
            next(&mut rx).await,
            Input::PingReply {
                id: InstanceId(3),
                reply: PingReply::Valid { pong: true }
            }
        );
        task.tx
            .send(LinkCmd::Reconfigure {
                replicaof: Some(("127.0.0.1".into(), 1)),
            })
            .unwrap();
        let mut role_slave = false;
        for _ in 0..50 {
            task.tx.send(LinkCmd::Info).unwrap();
            match next(&mut rx).await {
                Input::InfoReply { text, .. } => {
                    if text.contains("role:slave") && text.contains("master_port:1\r\n") {
                        role_slave = true;
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            role_slave,
            "SLAVEOF applied through the same, still open, link"
        );
        // The node dies with no command in flight: the link notices by itself.
        drop(node);
        assert!(matches!(next(&mut rx).await, Input::LinkDown { .. }));
    }
}
