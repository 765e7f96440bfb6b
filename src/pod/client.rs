//! A short RESP exchange with one server (this pod's Redis, the committed
//! master, or the local daemon): connect, authenticate, send the commands,
//! read one reply each, all under one deadline. For probes and the pod
//! commands, which must never hang on a node that does not answer.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::core::LinkAuth;
use crate::resp::{encode_command, Frame, FrameReader, Limits};

/// Sends `commands` to `host:port` and returns their replies in order (an
/// error reply is returned as a frame, not as an error). Fails when the
/// server cannot be reached, refuses the credentials, or the whole exchange
/// takes longer than `within`.
pub async fn call(
    host: &str,
    port: u16,
    auth: &LinkAuth,
    commands: &[Vec<String>],
    within: Duration,
) -> Result<Vec<Frame>, String> {
    let exchange = async {
        let (stream, _) = crate::links::connect::connect(host, port)
            .await
            .map_err(|e| e.to_string())?;
        let mut reader = FrameReader::new(stream, Limits::GENEROUS);
        let mut wire = Vec::new();
        let authenticate = auth.pass.is_some();
        if let Some(pass) = &auth.pass {
            let mut args = vec!["AUTH".to_string()];
            args.extend(auth.user.clone());
            args.push(pass.clone());
            wire.extend(encode_command(&args));
        }
        for c in commands {
            wire.extend(encode_command(c));
        }
        reader
            .get_mut()
            .write_all(&wire)
            .await
            .map_err(|e| e.to_string())?;
        if authenticate {
            if let Frame::Error(e) = reader.read().await.map_err(|e| e.to_string())? {
                return Err(format!("AUTH refused: {e}"));
            }
        }
        let mut out = Vec::with_capacity(commands.len());
        for _ in commands {
            out.push(reader.read().await.map_err(|e| e.to_string())?);
        }
        Ok(out)
    };
    match tokio::time::timeout(within, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
    }
}

/// One command; its reply.
pub async fn call_one(
    host: &str,
    port: u16,
    auth: &LinkAuth,
    command: &[&str],
    within: Duration,
) -> Result<Frame, String> {
    let c: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let mut r = call(host, port, auth, &[c], within).await?;
    r.pop().ok_or_else(|| "no reply".to_string())
}

/// The text of a bulk or simple reply; an error reply is an error.
pub fn text(f: Frame) -> Result<String, String> {
    match f {
        Frame::Error(e) => Err(e),
        other => other
            .text()
            .ok_or_else(|| format!("unexpected reply {other:?}")),
    }
}
