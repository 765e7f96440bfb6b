//! The ACL LOG: denied commands, channels and authentications, merged like
//! Redis's and capped at `acllog-max-len`.

use tokio::time::Instant;

use super::Acl;

/// One ACL LOG entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub count: u64,
    /// `auth`, `command`, `key` or `channel`.
    pub reason: String,
    pub context: String,
    pub object: String,
    pub username: String,
    pub created: Instant,
    pub updated: Instant,
    pub client_info: String,
}

impl Acl {
    /// Records a denial, merging with a recent identical entry like Redis
    /// (same reason, context, object and user within 60 s).
    pub fn add_log(
        &mut self,
        reason: &str,
        context: &str,
        object: &str,
        username: &str,
        client_info: String,
        now: Instant,
    ) {
        if let Some(e) = self.log.iter_mut().find(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && now.saturating_duration_since(e.updated).as_secs() < 60
        }) {
            e.count += 1;
            e.updated = now;
            e.client_info = client_info;
            return;
        }
        self.log.push_front(LogEntry {
            count: 1,
            reason: reason.into(),
            context: context.into(),
            object: object.into(),
            username: username.into(),
            created: now,
            updated: now,
            client_info,
        });
        while self.log.len() > self.log_max_len {
            self.log.pop_back();
        }
    }
}
