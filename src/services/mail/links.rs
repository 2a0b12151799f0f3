//! Where the links in mails point: the client application's pages, with
//! the token in the fragment, which browsers never send to a server (so it
//! stays out of access logs and `Referer`).

use crate::configuration::MailSettings;

#[derive(Clone, Debug)]
pub struct Links {
    /// `PUBLIC_APP_URL`, without a trailing slash.
    app_url: String,
}

impl Links {
    pub fn new(settings: &MailSettings) -> Self {
        Self {
            app_url: settings.app_url.clone(),
        }
    }

    /// The client application itself.
    pub fn home(&self) -> &str {
        &self.app_url
    }

    /// The client's page at `path` (under `PUBLIC_APP_URL`), given `token`.
    pub fn page(&self, path: &str, token: &str) -> String {
        format!("{}{path}#token={token}", self.app_url)
    }
}
