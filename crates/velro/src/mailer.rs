//! The two mailers: SMTP (lettre) when configured, otherwise a development mailer that writes
//! each message to a file and logs the file's path (never its content: it carries a token).

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use time::OffsetDateTime;
use velro_core::mail::{MailError, Mailer, OutgoingMail};

fn boxed(error: impl std::error::Error + Send + Sync + 'static) -> MailError {
    MailError(Box::new(error))
}

pub struct FileMailer {
    dir: PathBuf,
}

impl FileMailer {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: OutgoingMail) -> Result<(), MailError> {
        tokio::fs::create_dir_all(&self.dir).await.map_err(boxed)?;
        let stamp = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let path = self
            .dir
            .join(format!("{stamp}-{}.eml", uuid::Uuid::new_v4().simple()));
        let content = format!(
            "To: {}\nSubject: {}\nDate: {}\n\n{}",
            mail.to,
            mail.subject,
            OffsetDateTime::now_utc(),
            mail.body
        );
        tokio::fs::write(&path, content).await.map_err(boxed)?;
        tracing::info!(path = %path.display(), "development mailer wrote a message");
        Ok(())
    }
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// Parses the URL and sender once; connections are pooled by lettre.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| {
                anyhow::anyhow!(
                    "invalid configuration: VELRO_SMTP_URL is not a valid smtp:// or smtps:// URL"
                )
            })?
            .build();
        let from = from.parse().map_err(|_| {
            anyhow::anyhow!("invalid configuration: VELRO_MAIL_FROM is not a valid mailbox")
        })?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: OutgoingMail) -> Result<(), MailError> {
        let to: Mailbox = mail.to.as_str().parse().map_err(boxed)?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .body(mail.body)
            .map_err(boxed)?;
        self.transport.send(message).await.map_err(boxed)?;
        Ok(())
    }
}
