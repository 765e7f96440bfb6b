//! The pubsub link of a master or replica: AUTH, `CLIENT SETNAME
//! <prefix>-pubsub` and `SUBSCRIBE __sentinel__:hello` are written by hand
//! (renamed names, replies to the first two ignored) and their replies
//! read with the crate's RESP reader; **any error reply to
//! SUBSCRIBE, or any later error frame, drops the link** (hiredis semantics:
//! that is how a wrong password shows up as `disconnected`). `message` frames
//! on the hello channel become `Input::Hello`.
//!
//! Why not `redis::aio::PubSub`: it cannot send a renamed SUBSCRIBE, it
//! sends its own setup commands, and consuming its message stream needs a
//! `Stream` trait crate we do not otherwise depend on; a subscribed socket
//! only ever carries three-element arrays, which the reader handles.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::command::COMMAND_TIMEOUT;
use super::connect::connect_from;
use super::{LinkCtx, HELLO_CHANNEL};
use crate::core::{Input, LinkKind};
use crate::resp::{write_command, Frame, FrameReader, Limits};

/// Connects, then runs the link until the connection fails or the driver
/// drops it.
pub async fn run(ctx: LinkCtx) {
    // The connect and TLS futures are boxed: inline, their state (a TLS
    // session) would stay in every link task for its life, TLS or not
    // (hundreds of links with many masters).
    let opened = Box::pin(connect_from(&ctx.spec.host, ctx.spec.port, ctx.bind_source)).await;
    match (opened, ctx.tls.clone()) {
        (Ok((stream, _)), None) => serve(ctx, stream).await,
        (Ok((stream, _)), Some(tls)) => Box::pin(over_tls(ctx, tls, stream)).await,
        (Err(err), _) => failed(&ctx, err),
    }
}

/// The TLS handshake, then the link over it.
async fn over_tls(
    ctx: LinkCtx,
    tls: std::sync::Arc<rustls::ClientConfig>,
    stream: tokio::net::TcpStream,
) {
    match super::tls::connect(&tls, &ctx.spec.host, stream).await {
        Ok(stream) => serve(ctx, stream).await,
        Err(err) => failed(&ctx, err),
    }
}

fn failed(ctx: &LinkCtx, err: super::connect::ConnectError) {
    tracing::trace!(
        "-pubsub-link-reconnection {}:{} #{err}",
        ctx.spec.host,
        ctx.spec.port
    );
    ctx.report_down(LinkKind::PubSub)
}

/// Runs the link over an open stream (TCP, or TLS over it).
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(ctx: LinkCtx, stream: S) {
    let link = LinkKind::PubSub;
    // Pipelined handshake, as Sentinel writes it.
    let mut wire = Vec::new();
    let mut ignored_replies = 0;
    if let Some(args) = ctx.auth_args() {
        let mut parts = vec![ctx.command_name("AUTH")];
        parts.extend(args.iter().map(String::as_str));
        write_command(&mut wire, &parts);
        ignored_replies += 1;
    }
    let name = format!("{}-pubsub", ctx.spec.client_name);
    write_command(&mut wire, &[ctx.command_name("CLIENT"), "SETNAME", &name]);
    ignored_replies += 1;
    write_command(&mut wire, &[ctx.command_name("SUBSCRIBE"), HELLO_CHANNEL]);

    // One buffered reader for the handshake replies and the messages after.
    let mut reader = FrameReader::new(stream, Limits::LINK);
    let handshake = tokio::time::timeout(COMMAND_TIMEOUT, async {
        reader.get_mut().write_all(&wire).await?;
        for _ in 0..ignored_replies {
            reader.read().await?;
        }
        reader.read().await
    })
    .await;
    match handshake {
        Ok(Ok(Frame::Array(items))) if matches!(items.first(), Some(Frame::Bulk(kind)) if kind.eq_ignore_ascii_case(b"subscribe")) =>
            {}
        Ok(Ok(other)) => {
            tracing::debug!(
                "pubsub link to {}:{}: SUBSCRIBE refused: {other:?}",
                ctx.spec.host,
                ctx.spec.port
            );
            return ctx.report_down(LinkKind::PubSub);
        }
        _ => return ctx.report_down(LinkKind::PubSub),
    }

    ctx.report(
        link,
        Input::LinkUp {
            id: ctx.spec.id,
            link,
        },
    );

    // From here on the socket only carries pushed messages.
    loop {
        match reader.read().await {
            Ok(Frame::Array(items)) => {
                if let Some(payload) = hello_payload(&items) {
                    ctx.report(
                        link,
                        Input::Hello {
                            via: Some(ctx.spec.id),
                            payload,
                        },
                    );
                }
            }
            // An error with nothing pending kills a subscribed hiredis context.
            Ok(Frame::Error(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    ctx.report_down(LinkKind::PubSub);
}

/// The payload of a `message` frame on the hello channel; other frames are
/// ignored, as Sentinel ignores them.
fn hello_payload(items: &[Frame]) -> Option<String> {
    match items {
        [Frame::Bulk(kind), Frame::Bulk(channel), Frame::Bulk(payload)]
            if kind.as_slice() == b"message" && channel.as_slice() == HELLO_CHANNEL.as_bytes() =>
        {
            Some(String::from_utf8_lossy(payload).into_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::encode_command;

    #[test]
    fn only_hello_messages_count() {
        let b = Frame::bulk;
        assert_eq!(
            hello_payload(&[b("message"), b(HELLO_CHANNEL), b("1,2,3")]),
            Some("1,2,3".into())
        );
        assert_eq!(hello_payload(&[b("message"), b("other"), b("x")]), None);
        assert_eq!(
            hello_payload(&[b("pmessage"), b(HELLO_CHANNEL), b("x")]),
            None
        );
        assert_eq!(hello_payload(&[b("message"), b(HELLO_CHANNEL)]), None);
    }

    /// Against a real redis-server with requirepass (skipped if absent): a
    /// wrong password makes SUBSCRIBE fail and the link drop; the right one
    /// brings the link up and hello messages arrive as inputs.
    #[tokio::test]
    async fn subscribe_with_and_without_the_password() {
        use crate::core::{InstanceId, InstanceKind, LinkAuth, LinkSpec};
        use std::time::Duration;
        use tokio::sync::mpsc;
        let Some(redis) = crate::testutil::redis_server() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = crate::testutil::free_port();
        let _node =
            crate::testutil::spawn_redis(&redis, dir.path(), port, &["--requirepass", "secret"]);
        let ctx = |pass: &str| {
            let (out, rx) = mpsc::unbounded_channel();
            (
                LinkCtx {
                    spec: LinkSpec {
                        id: InstanceId(5),
                        kind: InstanceKind::Master,
                        host: "127.0.0.1".into(),
                        port,
                        auth: LinkAuth {
                            user: None,
                            pass: Some(pass.into()),
                        },
                        client_name: "sentinel-abcdef12".into(),
                        renames: Vec::new(),
                    },
                    gen: 1,
                    bind_source: None,
                    tls: None,
                    out,
                },
                rx,
            )
        };
        async fn next(rx: &mut mpsc::UnboundedReceiver<super::super::LinkMsg>) -> Input {
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("reported in time")
                .expect("link alive")
                .input
        }
        // Wait for the node to accept connections.
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (bad, mut bad_rx) = ctx("wrong");
        let _t = super::super::spawn_pubsub(bad);
        assert!(matches!(next(&mut bad_rx).await, Input::LinkDown { .. }));

        let (good, mut good_rx) = ctx("secret");
        let _t = super::super::spawn_pubsub(good);
        assert!(matches!(next(&mut good_rx).await, Input::LinkUp { .. }));
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        c.write_all(&encode_command(&["AUTH", "secret"]))
            .await
            .unwrap();
        c.write_all(&encode_command(&["PUBLISH", HELLO_CHANNEL, "a,b,c"]))
            .await
            .unwrap();
        assert_eq!(
            next(&mut good_rx).await,
            Input::Hello {
                via: Some(InstanceId(5)),
                payload: "a,b,c".into()
            }
        );
    }
}
