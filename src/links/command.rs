//! The command link: one task and one connection per instance, pipelined.
//!
//! Handshake as Sentinel does it: AUTH if needed, then `CLIENT SETNAME
//! <prefix>-cmd`, replies ignored. Then every command the core asks for is
//! written at once (all the commands that arrived together in one write) and
//! its expected reply is queued; replies come back in order on the same
//! socket and are matched to the queue, so a link costs one task, one socket
//! and one read buffer however many commands are in flight: no task, timer
//! or allocation per command.
//!
//! Every command is bounded by [`COMMAND_TIMEOUT`]: one timer, armed at the
//! deadline of the oldest reply still awaited. A command that times out is
//! reported to the core as such and its reply, if it ever comes, is read and
//! dropped (a pipelined connection must keep its replies in order).
//!
//! The link runs over any `AsyncRead + AsyncWrite` stream ([`serve`]), so a
//! TLS stream can sit under the same task as a TCP socket.
//!
//! Why by hand rather than the `redis` crate's multiplexed connection: that
//! connection spawns a driver task and runs each command as its own future
//! with its own timer, sends its own setup commands, and cannot send
//! Sentinel's renamed commands; a link needs none of that, only the shared
//! RESP codec and a queue.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connect::{connect_from, resolve};
use super::{LinkCmd, LinkCtx, Request, HELLO_CHANNEL};
use crate::core::InstanceId;
use crate::core::{Input, LinkKind, PingReply};
use crate::resp::{write_command, Frame, FrameReader, Limits};

/// Upper bound for any single command on a link. Sentinel itself never times
/// out a command (its SDOWN rule watches the oldest unanswered PING), so this
/// is only a safety net: generous enough for a slow INFO, short enough that a
/// wedged connection is noticed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Most replies one link may await at once. The core keeps far fewer in
/// flight (it stops sending at 100 pending commands); beyond this the node
/// has stopped answering for long and the link is dropped.
const MAX_IN_FLIGHT: usize = 1024;

/// What the next reply on the link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Handshake, SCRIPT KILL, CLIENT UNPAUSE, the reconfiguration
    /// transaction: the reply is not looked at.
    Ignore,
    Ping,
    Info,
    Hello,
    Ask,
    /// `CLIENT PAUSE ... WRITE`, followed by its INFO.
    PauseAck,
    PauseInfo,
}

#[derive(Debug)]
struct Awaited {
    expect: Expect,
    /// The instance the command is for.
    id: InstanceId,
    /// Other instances whose PING this reply answers too (see `push`).
    also: Vec<InstanceId>,
    deadline: Instant,
    /// Already reported as timed out: the reply is read and dropped.
    expired: bool,
}

/// The state of one command link.
struct CmdLink<S> {
    ctx: LinkCtx,
    local_ip: String,
    reader: FrameReader<S>,
    /// Replies awaited, in the order the commands were written.
    awaited: VecDeque<Awaited>,
    /// Commands encoded and not written yet.
    wbuf: Vec<u8>,
    /// The last `CLIENT PAUSE` was accepted (read by the INFO after it).
    pause_ok: bool,
}

/// The link is gone (connection closed or broken, protocol error, a write
/// that did not complete in time, or too many replies awaited).
struct Dropped;

/// Connects, then runs the link until the connection fails or the driver
/// drops it.
pub async fn run(ctx: LinkCtx, rx: mpsc::UnboundedReceiver<Request>) {
    // A name is resolved at each connect (pods come back with new IPs):
    // the core learns the IP, which it shows without announce-hostnames.
    // The connect and TLS futures are boxed: inline, their state (a TLS
    // session) would stay in every link task for its life, TLS or not
    // (hundreds of links with many masters).
    let opened = match Box::pin(resolve(&ctx.spec.host, ctx.spec.port)).await {
        Ok(addr) => {
            let ip = addr.ip().to_string();
            if ip != ctx.spec.host {
                let id = ctx.spec.id;
                ctx.report(LinkKind::Command, Input::Resolved { id, ip: ip.clone() });
            }
            let opened = Box::pin(connect_from(&ip, ctx.spec.port, ctx.bind_source)).await;
            if let Ok((_, local_ip)) = &opened {
                // A sidecar's link to its own node (fencing).
                let (id, same) = (ctx.spec.id, *local_ip == ip);
                ctx.report(LinkKind::Command, Input::SameHost { id, same });
            }
            opened
        }
        Err(err) => Err(err),
    };
    match (opened, ctx.tls.clone()) {
        (Ok((stream, local_ip)), None) => serve(ctx, stream, local_ip, rx).await,
        (Ok((stream, local_ip)), Some(tls)) => {
            Box::pin(over_tls(ctx, tls, stream, local_ip, rx)).await
        }
        (Err(err), _) => failed(&ctx, err),
    }
}

/// The TLS handshake, then the link over it.
async fn over_tls(
    ctx: LinkCtx,
    tls: std::sync::Arc<rustls::ClientConfig>,
    stream: tokio::net::TcpStream,
    local_ip: String,
    rx: mpsc::UnboundedReceiver<Request>,
) {
    match super::tls::connect(&tls, &ctx.spec.host, stream).await {
        Ok(stream) => serve(ctx, stream, local_ip, rx).await,
        Err(err) => failed(&ctx, err),
    }
}

/// A connection that could not be made: refused, or down.
fn failed(ctx: &LinkCtx, err: super::connect::ConnectError) {
    tracing::trace!(
        "-cmd-link-reconnection {}:{} #{err}",
        ctx.spec.host,
        ctx.spec.port
    );
    if err.is_refused() {
        let id = ctx.spec.id;
        ctx.report(LinkKind::Command, Input::Refused { id });
    } else {
        ctx.report_down(LinkKind::Command);
    }
}

/// Runs the link over an open stream; `local_ip` is our address as the node
/// sees it (it goes into hello payloads). Reports `LinkUp` once the handshake
/// is written and `LinkDown` when the link ends, unless the driver dropped it.
pub async fn serve<S>(
    ctx: LinkCtx,
    stream: S,
    local_ip: String,
    mut rx: mpsc::UnboundedReceiver<Request>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut link = CmdLink {
        ctx,
        local_ip,
        reader: FrameReader::new(stream, Limits::LINK),
        awaited: VecDeque::new(),
        wbuf: Vec::new(),
        pause_ok: false,
    };
    link.handshake(Instant::now());
    if link.write().await.is_err() {
        return link.ctx.report_down(LinkKind::Command);
    }
    let link_kind = LinkKind::Command;
    link.ctx.report(
        link_kind,
        Input::LinkUp {
            id: link.ctx.spec.id,
            link: link_kind,
        },
    );

    let timer = tokio::time::sleep_until(Instant::now() + COMMAND_TIMEOUT);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let next = link.next_deadline();
        if let Some(at) = next.filter(|&at| armed != Some(at)) {
            timer.as_mut().reset(at);
        }
        armed = next;
        let outcome = tokio::select! {
            cmd = rx.recv() => match cmd {
                // The driver dropped this link: just close.
                None => return,
                Some(cmd) => {
                    let now = Instant::now();
                    link.push(cmd, now);
                    // Whatever else is queued goes out in the same write.
                    while let Ok(cmd) = rx.try_recv() {
                        link.push(cmd, now);
                    }
                    link.write().await
                }
            },
            frame = link.reader.read() => match frame {
                Ok(frame) => link.reply(frame),
                Err(err) => {
                    tracing::debug!(
                        "command link to {}:{}: {err}",
                        link.ctx.spec.host,
                        link.ctx.spec.port
                    );
                    Err(Dropped)
                }
            },
            () = &mut timer, if armed.is_some() => {
                link.expire(Instant::now());
                Ok(())
            }
        };
        if outcome.is_err() {
            break;
        }
    }
    link.ctx.report_down(LinkKind::Command);
}

impl<S: AsyncRead + AsyncWrite + Unpin> CmdLink<S> {
    /// Queues one command (its name through the rename table) and the reply
    /// it expects.
    fn command(&mut self, expect: Expect, id: InstanceId, now: Instant, name: &str, args: &[&str]) {
        let name = super::renamed(&self.ctx.spec.renames, name);
        let mut parts: Vec<&str> = Vec::with_capacity(1 + args.len());
        parts.push(name);
        parts.extend_from_slice(args);
        write_command(&mut self.wbuf, &parts);
        self.awaited.push_back(Awaited {
            expect,
            id,
            also: Vec::new(),
            deadline: now + COMMAND_TIMEOUT,
            expired: false,
        });
    }

    /// Sentinel's handshake: AUTH if credentials are set, CLIENT SETNAME.
    fn handshake(&mut self, now: Instant) {
        let id = self.ctx.spec.id;
        if let Some(args) = self.ctx.auth_args() {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.command(Expect::Ignore, id, now, "AUTH", &args);
        }
        let name = format!("{}-cmd", self.ctx.spec.client_name);
        self.command(Expect::Ignore, id, now, "CLIENT", &["SETNAME", &name]);
    }

    /// Encodes one command of the core. A PING while another PING is
    /// awaited is not written: the reply to that one answers it too. The
    /// instances of a peer daemon share the connection and ask together
    /// (one PING on the wire for all of them, as Sentinel's shared link
    /// does), and a node that does not answer gets no more than one PING
    /// queued at a time.
    fn push(&mut self, req: Request, now: Instant) {
        let Request { id, cmd } = req;
        match cmd {
            LinkCmd::Ping => {
                let awaited = self
                    .awaited
                    .iter_mut()
                    .rev()
                    .find(|a| a.expect == Expect::Ping && !a.expired);
                match awaited {
                    Some(a) => a.also.push(id),
                    None => self.command(Expect::Ping, id, now, "PING", &[]),
                }
            }
            LinkCmd::Info => self.command(Expect::Info, id, now, "INFO", &[]),
            LinkCmd::Hello(hello) => {
                let payload = hello.payload(&self.local_ip);
                self.command(
                    Expect::Hello,
                    id,
                    now,
                    "PUBLISH",
                    &[HELLO_CHANNEL, &payload],
                );
            }
            LinkCmd::AskMasterDown {
                master_ip,
                master_port,
                epoch,
                runid,
            } => {
                let (port, epoch) = (master_port.to_string(), epoch.to_string());
                self.command(
                    Expect::Ask,
                    id,
                    now,
                    "SENTINEL",
                    &["is-master-down-by-addr", &master_ip, &port, &epoch, &runid],
                );
            }
            LinkCmd::ScriptKill => self.command(Expect::Ignore, id, now, "SCRIPT", &["KILL"]),
            // CLIENT PAUSE WRITE then INFO, in one write: the INFO is served
            // right after the pause took effect (INFO is not a write, so it
            // is not paused), and no other command of this link can slip in
            // between.
            LinkCmd::PauseWrites { ms } => {
                let ms = ms.to_string();
                self.command(
                    Expect::PauseAck,
                    id,
                    now,
                    "CLIENT",
                    &["PAUSE", &ms, "WRITE"],
                );
                self.command(Expect::PauseInfo, id, now, "INFO", &[]);
            }
            LinkCmd::Unpause => self.command(Expect::Ignore, id, now, "CLIENT", &["UNPAUSE"]),
            LinkCmd::Reconfigure { replicaof } => self.reconfigure(replicaof.as_ref(), id, now),
        }
    }

    /// `MULTI`, `SLAVEOF`, `CONFIG REWRITE`, `CLIENT KILL TYPE normal|pubsub`,
    /// `EXEC`, as Sentinel sends them to reconfigure a node, each name
    /// through the rename table. The replies are ignored: the effect is
    /// observed through INFO.
    fn reconfigure(&mut self, replicaof: Option<&(String, u16)>, id: InstanceId, now: Instant) {
        let ignore = Expect::Ignore;
        self.command(ignore, id, now, "MULTI", &[]);
        match replicaof {
            Some((host, port)) => {
                self.command(ignore, id, now, "SLAVEOF", &[host, &port.to_string()]);
            }
            None => self.command(ignore, id, now, "SLAVEOF", &["NO", "ONE"]),
        }
        self.command(ignore, id, now, "CONFIG", &["REWRITE"]);
        self.command(ignore, id, now, "CLIENT", &["KILL", "TYPE", "normal"]);
        self.command(ignore, id, now, "CLIENT", &["KILL", "TYPE", "pubsub"]);
        self.command(ignore, id, now, "EXEC", &[]);
    }

    /// Writes what is encoded. A write that cannot complete within the
    /// command timeout (the node stopped reading long ago) drops the link.
    async fn write(&mut self) -> Result<(), Dropped> {
        if self.awaited.len() > MAX_IN_FLIGHT {
            return Err(Dropped);
        }
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let stream = self.reader.get_mut();
        let written = tokio::time::timeout(COMMAND_TIMEOUT, async {
            stream.write_all(&self.wbuf).await?;
            stream.flush().await
        })
        .await;
        self.wbuf.clear();
        match written {
            Ok(Ok(())) => Ok(()),
            _ => Err(Dropped),
        }
    }

    /// When the oldest reply still awaited is due.
    fn next_deadline(&self) -> Option<Instant> {
        self.awaited.iter().find(|a| !a.expired).map(|a| a.deadline)
    }

    /// Reports every command past its deadline as timed out.
    fn expire(&mut self, now: Instant) {
        for a in self.awaited.iter_mut() {
            if a.expired || a.deadline > now {
                continue;
            }
            a.expired = true;
            let id = a.id;
            let input = match a.expect {
                Expect::Ignore | Expect::PauseAck => continue,
                Expect::PauseInfo => Input::PauseReply { id, info: None },
                Expect::Ping | Expect::Info | Expect::Hello | Expect::Ask => {
                    Input::CommandTimeout { id }
                }
            };
            for &other in &a.also {
                self.ctx.report_as(
                    other,
                    LinkKind::Command,
                    Input::CommandTimeout { id: other },
                );
            }
            self.ctx.report_as(id, LinkKind::Command, input);
        }
    }

    /// Matches a reply to the oldest command awaiting one.
    fn reply(&mut self, frame: Frame) -> Result<(), Dropped> {
        let Some(a) = self.awaited.pop_front() else {
            // Nothing was asked: the stream is not what we think it is.
            return Err(Dropped);
        };
        if a.expired {
            return Ok(());
        }
        let id = a.id;
        let input = match a.expect {
            Expect::Ignore => return Ok(()),
            Expect::PauseAck => {
                self.pause_ok = matches!(frame, Frame::Simple(_));
                return Ok(());
            }
            Expect::PauseInfo => Input::PauseReply {
                id,
                info: self.pause_ok.then(|| text_of(frame)).flatten(),
            },
            Expect::Ping => {
                let reply = classify_ping(&frame);
                for &other in &a.also {
                    let input = Input::PingReply {
                        id: other,
                        reply: reply.clone(),
                    };
                    self.ctx.report_as(other, LinkKind::Command, input);
                }
                Input::PingReply { id, reply }
            }
            Expect::Info => match text_of(frame) {
                Some(text) => Input::InfoReply { id, text },
                // Sentinel only uses string replies to INFO, but any reply
                // settles the pending command; the core has no input for a
                // useless reply, and "timed out" has the same effect there
                // (pending count released, INFO asked again next tick).
                None => Input::CommandTimeout { id },
            },
            Expect::Hello => Input::PublishReply {
                id,
                ok: !matches!(frame, Frame::Error(_)),
            },
            Expect::Ask => Input::MasterDownReply {
                peer: id,
                reply: parse_master_down(&frame),
            },
        };
        self.ctx.report_as(id, LinkKind::Command, input);
        Ok(())
    }
}

/// The text of a string reply (bulk, verbatim or status), without a copy
/// when it is valid UTF-8.
fn text_of(frame: Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) | Frame::Verbatim(_, b) => Some(
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
        Frame::Simple(s) => Some(s),
        _ => None,
    }
}

/// As in Sentinel: status or error replies starting with PONG, LOADING or MASTERDOWN are
/// valid; anything else is only "some reply" (BUSY noted for SCRIPT KILL).
fn classify_ping(reply: &Frame) -> PingReply {
    let text = match reply {
        Frame::Error(e) | Frame::Simple(e) => e.as_str(),
        _ => "",
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
fn parse_master_down(reply: &Frame) -> Option<(i64, String, i64)> {
    match reply {
        Frame::Array(items) => match items.as_slice() {
            [Frame::Integer(down), Frame::Bulk(runid), Frame::Integer(epoch)] => {
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
    use crate::resp::{Decoder, Limits};
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, DuplexStream};

    #[test]
    fn ping_classification() {
        let v = |s: &str| Frame::simple(s);
        let e = |s: &str| Frame::error(s);
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
            classify_ping(&Frame::bulk("PONG")),
            PingReply::Other { busy: false }
        );
    }

    #[test]
    fn master_down_reply_shape() {
        let ok = Frame::Array(vec![Frame::Integer(1), Frame::bulk("*"), Frame::Integer(0)]);
        assert_eq!(parse_master_down(&ok), Some((1, "*".into(), 0)));
        let bad = Frame::Array(vec![Frame::Integer(1), Frame::Integer(0)]);
        assert_eq!(parse_master_down(&bad), None);
        assert_eq!(parse_master_down(&Frame::error("ERR")), None);
    }

    fn req(cmd: LinkCmd) -> Request {
        Request {
            id: InstanceId(1),
            cmd,
        }
    }

    fn spec(renames: Vec<(String, String)>) -> LinkSpec {
        LinkSpec {
            id: InstanceId(1),
            kind: InstanceKind::Replica,
            host: "127.0.0.1".into(),
            port: 1,
            auth: LinkAuth::default(),
            client_name: "sentinel-12345678".into(),
            renames,
        }
    }

    fn link_on(
        stream: DuplexStream,
        spec: LinkSpec,
    ) -> (
        CmdLink<DuplexStream>,
        mpsc::UnboundedReceiver<super::super::LinkMsg>,
    ) {
        let (out, rx) = mpsc::unbounded_channel();
        let ctx = LinkCtx {
            spec,
            gen: 1,
            bind_source: None,
            tls: None,
            out,
        };
        let link = CmdLink {
            ctx,
            local_ip: "127.0.0.1".into(),
            reader: FrameReader::new(stream, Limits::LINK),
            awaited: VecDeque::new(),
            wbuf: Vec::new(),
            pause_ok: false,
        };
        (link, rx)
    }

    /// The words of the commands in `wire`, one Vec per command.
    fn commands(wire: &[u8]) -> Vec<Vec<String>> {
        let mut d = Decoder::new(Limits::LINK);
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf).unwrap() {
            match f {
                Frame::Array(items) => out.push(items.iter().filter_map(Frame::text).collect()),
                other => panic!("{other:?}"),
            }
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn reconfigure_transaction_uses_renames() {
        let (a, _b) = tokio::io::duplex(64);
        let (mut link, _rx) = link_on(a, spec(vec![("config".into(), "cfg".into())]));
        let now = Instant::now();
        link.push(
            req(LinkCmd::Reconfigure {
                replicaof: Some(("10.0.0.1".to_string(), 6380)),
            }),
            now,
        );
        assert_eq!(
            commands(&link.wbuf),
            [
                vec!["MULTI"],
                vec!["SLAVEOF", "10.0.0.1", "6380"],
                vec!["cfg", "REWRITE"],
                vec!["CLIENT", "KILL", "TYPE", "normal"],
                vec!["CLIENT", "KILL", "TYPE", "pubsub"],
                vec!["EXEC"],
            ]
        );
        assert_eq!(link.awaited.len(), 6);
        link.wbuf.clear();
        link.push(req(LinkCmd::Reconfigure { replicaof: None }), now);
        assert_eq!(commands(&link.wbuf)[1], ["SLAVEOF", "NO", "ONE"]);
    }

    /// Commands that arrive together go out in one write; replies are
    /// matched in order; a command past its deadline is reported as timed
    /// out once and its late reply is dropped without shifting the others.
    #[tokio::test(start_paused = true)]
    async fn pipelined_replies_in_order_and_timeouts() {
        let (ours, mut node) = tokio::io::duplex(4096);
        let (out, mut rx) = mpsc::unbounded_channel();
        let (tx, cmds) = mpsc::unbounded_channel();
        let ctx = LinkCtx {
            spec: spec(Vec::new()),
            gen: 1,
            bind_source: None,
            tls: None,
            out,
        };
        let task = tokio::spawn(serve(ctx, ours, "127.0.0.1".into(), cmds));
        let id = InstanceId(1);
        assert_eq!(
            rx.recv().await.unwrap().input,
            Input::LinkUp {
                id,
                link: LinkKind::Command
            }
        );
        tx.send(req(LinkCmd::Ping)).unwrap();
        tx.send(req(LinkCmd::Info)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while commands(&got).len() < 3 {
            let n = node.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            commands(&got),
            [
                vec!["CLIENT", "SETNAME", "sentinel-12345678-cmd"],
                vec!["PING"],
                vec!["INFO"]
            ]
        );
        // SETNAME and PING answered; INFO is not, and times out.
        node.write_all(b"+OK\r\n+PONG\r\n").await.unwrap();
        assert_eq!(
            rx.recv().await.unwrap().input,
            Input::PingReply {
                id,
                reply: PingReply::Valid { pong: true }
            }
        );
        tokio::time::sleep(COMMAND_TIMEOUT + Duration::from_millis(1)).await;
        assert_eq!(rx.recv().await.unwrap().input, Input::CommandTimeout { id });
        // A PING sent after: the late INFO reply is dropped, the PING's
        // reply is the PING's.
        tx.send(req(LinkCmd::Ping)).unwrap();
        let n = node.read(&mut buf).await.unwrap();
        assert_eq!(commands(&buf[..n]), [vec!["PING"]]);
        node.write_all(b"$3\r\nold\r\n-LOADING x\r\n")
            .await
            .unwrap();
        assert_eq!(
            rx.recv().await.unwrap().input,
            Input::PingReply {
                id,
                reply: PingReply::Valid { pong: false }
            }
        );
        // A reply nobody asked for: the link drops.
        node.write_all(b"+PONG\r\n").await.unwrap();
        assert_eq!(
            rx.recv().await.unwrap().input,
            Input::LinkDown {
                id,
                link: LinkKind::Command
            }
        );
        task.await.unwrap();
    }

    /// PINGs asked while one is awaited ride on it: one PING on the wire,
    /// a reply (or a timeout) for each instance that asked.
    #[tokio::test]
    async fn pings_share_the_awaited_reply() {
        let (ours, _node) = tokio::io::duplex(64);
        let (mut link, mut rx) = link_on(ours, spec(Vec::new()));
        let now = Instant::now();
        for id in [1, 2, 2] {
            let id = InstanceId(id);
            link.push(
                Request {
                    id,
                    cmd: LinkCmd::Ping,
                },
                now,
            );
        }
        link.push(req(LinkCmd::Info), now);
        assert_eq!(commands(&link.wbuf), [vec!["PING"], vec!["INFO"]]);
        assert!(link.reply(Frame::simple("PONG")).is_ok());
        let mut got = Vec::new();
        for _ in 0..3 {
            match rx.recv().await.unwrap().input {
                Input::PingReply { id, reply } => {
                    assert_eq!(reply, PingReply::Valid { pong: true });
                    got.push(id.0);
                }
                other => panic!("{other:?}"),
            }
        }
        got.sort();
        assert_eq!(got, [1, 2, 2]);
        // The next PING after the reply is written again; its timeout
        // reaches both instances.
        link.wbuf.clear();
        link.push(req(LinkCmd::Ping), now);
        link.push(
            Request {
                id: InstanceId(2),
                cmd: LinkCmd::Ping,
            },
            now,
        );
        assert_eq!(commands(&link.wbuf), [vec!["PING"]]);
        link.expire(now + COMMAND_TIMEOUT + COMMAND_TIMEOUT);
        let mut timed_out = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            if let Input::CommandTimeout { id } = msg.input {
                timed_out.push(id.0);
            }
        }
        timed_out.sort();
        assert_eq!(timed_out, [1, 1, 2], "the INFO and both PINGs");
    }

    /// CLIENT PAUSE and its INFO: the INFO text is reported only when the
    /// pause was accepted.
    #[tokio::test]
    async fn pause_reports_the_info_after_an_accepted_pause() {
        let (ours, _node) = tokio::io::duplex(64);
        let (mut link, mut rx) = link_on(ours, spec(Vec::new()));
        let now = Instant::now();
        let id = InstanceId(1);
        link.push(req(LinkCmd::PauseWrites { ms: 500 }), now);
        assert_eq!(
            commands(&link.wbuf),
            [vec!["CLIENT", "PAUSE", "500", "WRITE"], vec!["INFO"]]
        );
        assert!(link.reply(Frame::ok()).is_ok());
        assert!(link.reply(Frame::bulk("role:master")).is_ok());
        assert_eq!(
            rx.recv().await.unwrap().input,
            Input::PauseReply {
                id,
                info: Some("role:master".into())
            }
        );
        link.push(req(LinkCmd::PauseWrites { ms: 500 }), now);
        assert!(link.reply(Frame::error("ERR syntax")).is_ok());
        assert!(link.reply(Frame::bulk("role:master")).is_ok());
        assert_eq!(
            rx.recv().await.unwrap().input,
            Input::PauseReply { id, info: None }
        );
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<super::super::LinkMsg>) -> Input {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("link reported in time")
            .expect("link alive")
            .input
    }

    /// A name is resolved before the connect and the IP reported to the
    /// core (shown without announce-hostnames); a literal reports nothing.
    #[tokio::test]
    async fn reports_what_a_name_resolved_to() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let accept = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                kept.push(s);
            }
        });
        for (host, resolved) in [("localhost", true), ("127.0.0.1", false)] {
            let (out, mut rx) = mpsc::unbounded_channel();
            let ctx = LinkCtx {
                spec: LinkSpec {
                    host: host.into(),
                    port,
                    ..spec(Vec::new())
                },
                gen: 1,
                bind_source: None,
                tls: None,
                out,
            };
            let (_tx, cmds) = mpsc::unbounded_channel();
            let task = tokio::spawn(run(ctx, cmds));
            let id = InstanceId(1);
            let mut first = next(&mut rx).await;
            if resolved {
                let Input::Resolved { id: rid, ip } = first else {
                    panic!("{host}: {first:?}");
                };
                assert_eq!(rid, id);
                assert!(ip.parse::<std::net::IpAddr>().unwrap().is_loopback());
                if ip != "127.0.0.1" {
                    // A resolver that puts ::1 first: the v4 listener refuses.
                    task.abort();
                    continue;
                }
                first = next(&mut rx).await;
            }
            // Loopback to loopback: the link stays on this host.
            assert_eq!(first, Input::SameHost { id, same: true }, "{host}");
            first = next(&mut rx).await;
            let up = Input::LinkUp {
                id,
                link: LinkKind::Command,
            };
            assert_eq!(first, up, "{host}");
            task.abort();
        }
        accept.abort();
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
            tls: None,
            out,
        };
        // The node may still be starting: retry the connect a few times.
        let mut task = None;
        for _ in 0..50 {
            let t = super::super::spawn_command(ctx.clone());
            let mut first = next(&mut rx).await;
            if let Input::SameHost { .. } = first {
                first = next(&mut rx).await;
            }
            match first {
                Input::LinkUp { .. } => {
                    task = Some(t);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let task = task.expect("link up");
        let req = |cmd| Request {
            id: InstanceId(3),
            cmd,
        };
        let tx = task.tx.as_ref().unwrap();
        tx.send(req(LinkCmd::Ping)).unwrap();
        assert_eq!(
            next(&mut rx).await,
            Input::PingReply {
                id: InstanceId(3),
                reply: PingReply::Valid { pong: true }
            }
        );
        tx.send(req(LinkCmd::Reconfigure {
            replicaof: Some(("127.0.0.1".into(), 1)),
        }))
        .unwrap();
        let mut role_slave = false;
        for _ in 0..50 {
            tx.send(req(LinkCmd::Info)).unwrap();
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
