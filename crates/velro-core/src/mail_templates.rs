//! The messages of the Supabase surface (recovery, magic link, sign-up confirmation, invite,
//! email change, to the new and to the current address) as templates an operator can
//! replace, with GoTrue's variable names (`{{ .ConfirmationURL }}`, `{{ .Token }}`,
//! `{{ .TokenHash }}`, `{{ .SiteURL }}`, `{{ .RedirectTo }}`, `{{ .Email }}`) so that a
//! Supabase project's templates carry over. Reading files is the binary's job.

use crate::domain::Email;
use crate::mail::OutgoingMail;

/// A message template: its first line is `Subject: …`, the body follows a blank line.
#[derive(Debug, Clone)]
pub struct MailTemplate {
    subject: String,
    body: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a mail template must start with a \"Subject: …\" line and a blank line")]
pub struct TemplateError;

/// The values a template may name.
pub struct TemplateValues<'a> {
    pub confirmation_url: &'a str,
    pub token: &'a str,
    pub token_hash: &'a str,
    pub site_url: &'a str,
    pub redirect_to: &'a str,
    /// The recipient.
    pub email: &'a Email,
    /// GoTrue's `{{ .NewEmail }}`: the address an email change moves to (empty otherwise).
    pub new_email: Option<&'a Email>,
}

impl MailTemplate {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let text = text.replace("\r\n", "\n");
        let (first, body) = text.split_once("\n\n").ok_or(TemplateError)?;
        let subject = first
            .strip_prefix("Subject:")
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.contains('\n'))
            .ok_or(TemplateError)?;
        Ok(Self {
            subject: subject.to_string(),
            body: body.to_string(),
        })
    }

    pub fn render(&self, values: &TemplateValues<'_>) -> OutgoingMail {
        OutgoingMail {
            to: values.email.clone(),
            subject: substitute(&self.subject, values),
            body: substitute(&self.body, values),
        }
    }
}

/// Replaces each `{{ .Name }}` (spaces optional) it knows; anything else stays as written.
fn substitute(text: &str, values: &TemplateValues<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let value = match after[..end].trim() {
            ".ConfirmationURL" => Some(values.confirmation_url),
            ".Token" => Some(values.token),
            ".TokenHash" => Some(values.token_hash),
            ".SiteURL" => Some(values.site_url),
            ".RedirectTo" => Some(values.redirect_to),
            ".Email" => Some(values.email.as_str()),
            ".NewEmail" => Some(values.new_email.map_or("", Email::as_str)),
            _ => None,
        };
        match value {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The templates of every message the Supabase surface sends.
#[derive(Debug, Clone)]
pub struct MailTemplates {
    pub recovery: MailTemplate,
    pub magic_link: MailTemplate,
    pub confirmation: MailTemplate,
    pub invite: MailTemplate,
    pub email_change: MailTemplate,
    /// The secure email change's mail to the current address.
    pub email_change_current: MailTemplate,
}

impl Default for MailTemplates {
    fn default() -> Self {
        let compiled =
            |text| MailTemplate::parse(text).expect("the compiled-in templates are valid");
        Self {
            recovery: compiled(include_str!("../templates/recovery.txt")),
            magic_link: compiled(include_str!("../templates/magic_link.txt")),
            confirmation: compiled(include_str!("../templates/confirmation.txt")),
            invite: compiled(include_str!("../templates/invite.txt")),
            email_change: compiled(include_str!("../templates/email_change.txt")),
            email_change_current: compiled(include_str!("../templates/email_change_current.txt")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gotrue_variables_are_filled_and_unknown_ones_kept() {
        let template =
            MailTemplate::parse("Subject: Hi {{.Email}}\n\n{{ .ConfirmationURL }} {{ .Token }} {{ .TokenHash }} {{ .SiteURL }} {{ .RedirectTo }} {{ .Data.x }} {{ open")
                .expect("a valid template");
        let email = Email::parse("ada@example.com").expect("an address");
        let mail = template.render(&TemplateValues {
            confirmation_url: "https://a/verify",
            token: "123456",
            token_hash: "abc",
            site_url: "https://site",
            redirect_to: "https://site/cb",
            email: &email,
            new_email: None,
        });
        assert_eq!(mail.subject, "Hi ada@example.com");
        assert_eq!(
            mail.body,
            "https://a/verify 123456 abc https://site https://site/cb {{ .Data.x }} {{ open"
        );
    }

    #[test]
    fn a_template_needs_a_subject_line_and_the_defaults_have_one() {
        for bad in ["", "Hello\n\nbody", "Subject:\n\nbody", "Subject: x\nbody"] {
            assert_eq!(
                MailTemplate::parse(bad).map(|_| ()),
                Err(TemplateError),
                "{bad:?}"
            );
        }
        let defaults = MailTemplates::default();
        assert!(defaults.recovery.body.contains("{{ .ConfirmationURL }}"));
        for template in [
            &defaults.recovery,
            &defaults.magic_link,
            &defaults.confirmation,
            &defaults.invite,
            &defaults.email_change,
            &defaults.email_change_current,
        ] {
            assert!(template.body.contains("{{ .ConfirmationURL }}"));
            assert!(template.body.contains("code: {{ .Token }}"));
        }
    }
}
