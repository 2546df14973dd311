//! GoTrue's two limits on the mail /auth/v1 sends: the deployment's budget
//! (`RATE_LIMIT_EMAIL_SENT`, counted by the rate limiter, so one budget for every instance
//! sharing a Redis) and the shortest time between two mails of a kind to one user
//! (`SMTP_MAX_FREQUENCY`, kept by the store, so it holds across instances). Every path that
//! mails spends the budget through `spend_mail_budget` before it issues the mail's tokens.

use time::Duration;

use super::{SupabaseAuth, SupabaseError};

/// GoTrue's default `SMTP_MAX_FREQUENCY`, which it also puts in place of zero.
pub const DEFAULT_SMTP_MAX_FREQUENCY: Duration = Duration::seconds(60);

impl SupabaseAuth {
    /// One mail out of the deployment's budget; `MailBudgetSpent` (429
    /// `over_email_send_rate_limit`) when none is left. GoTrue counts only with auto-confirm
    /// off; Velro counts always (the README says why).
    pub(crate) async fn spend_mail_budget(&self) -> Result<(), SupabaseError> {
        self.auth()
            .deps()
            .limits
            .spend_mail_budget()
            .await
            .map_err(|_| {
                tracing::warn!(
                    "mail not sent: the mail budget (VELRO_RATE_LIMIT_EMAIL_SENT) is spent"
                );
                SupabaseError::MailBudgetSpent
            })
    }

    /// The shortest time between two mails of one kind to one user.
    pub(crate) fn mail_frequency(&self) -> Duration {
        self.settings().smtp_max_frequency
    }
}
