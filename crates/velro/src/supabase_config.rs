//! The Supabase Auth compatibility settings (`VELRO_API_EXTERNAL_URL`, `VELRO_JWT_AUD`,
//! `VELRO_JWT_ADMIN_ROLES`, `VELRO_SITE_URL`, `VELRO_URI_ALLOW_LIST`, `VELRO_MAILER_TEMPLATES_DIR`,
//! `VELRO_MAILER_AUTOCONFIRM`, `VELRO_MAILER_SECURE_EMAIL_CHANGE_ENABLED`, `VELRO_SMTP_MAX_FREQUENCY`,
//! `VELRO_DISABLE_SIGNUP`, `VELRO_SUPABASE_AT_ROOT`): their checks and the services' settings made from them.

use anyhow::bail;
use velro_core::mail_templates::{MailTemplate, MailTemplates};
use velro_core::redirect::{RedirectConfigError, RedirectPolicy};
use velro_core::service::{SupabaseSettings, DEFAULT_SMTP_MAX_FREQUENCY};
use velro_core::tokens::SupabaseTokenProfile;

use crate::config::Config;

/// Roles that name users, never administrators: a user's own token could otherwise pass as an
/// admin credential (Supabase tokens carry `authenticated`, v1 tokens Velro's role).
const USER_ROLES: [&str; 5] = ["authenticated", "anon", "viewer", "creator", "admin"];

impl Config {
    /// `iss` of Supabase access tokens.
    pub fn supabase_issuer(&self) -> String {
        format!("{}/auth/v1", self.api_external_url.trim_end_matches('/'))
    }

    pub(crate) fn validate_supabase_settings(&self) -> anyhow::Result<()> {
        let url = url::Url::parse(&self.api_external_url).ok().filter(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
        });
        if url.is_none() {
            bail!("invalid configuration: VELRO_API_EXTERNAL_URL must be an http(s) URL like https://auth.example.com");
        }
        // Distinct issuers keep the two kinds of token apart even where claims overlap.
        if self.supabase_issuer() == self.jwt_issuer {
            bail!("invalid configuration: VELRO_JWT_ISSUER must differ from VELRO_API_EXTERNAL_URL/auth/v1, the issuer of Supabase tokens");
        }
        if self.jwt_aud.trim().is_empty() {
            bail!("invalid configuration: VELRO_JWT_AUD must not be empty");
        }
        if self.jwt_admin_roles.is_empty() {
            bail!("invalid configuration: VELRO_JWT_ADMIN_ROLES must name at least one role");
        }
        if let Some(role) = self
            .jwt_admin_roles
            .iter()
            .find(|role| USER_ROLES.contains(&role.as_str()))
        {
            bail!("invalid configuration: VELRO_JWT_ADMIN_ROLES may not contain {role:?}, a role that user tokens carry");
        }
        self.redirect_policy()?;
        self.mail_templates()?;
        Ok(())
    }

    fn redirect_policy(&self) -> anyhow::Result<RedirectPolicy> {
        RedirectPolicy::new(&self.site_url, &self.uri_allow_list).map_err(|error| match error {
            RedirectConfigError::SiteUrl => anyhow::anyhow!(
                "invalid configuration: VELRO_SITE_URL must be an http(s) URL like https://app.example.com"
            ),
            RedirectConfigError::Pattern(..) => {
                anyhow::anyhow!("invalid configuration: VELRO_URI_ALLOW_LIST: {error}")
            }
        })
    }

    /// The Supabase settings; `validate_supabase_settings` has passed.
    pub fn supabase_settings(&self) -> anyhow::Result<SupabaseSettings> {
        Ok(SupabaseSettings {
            tokens: SupabaseTokenProfile {
                issuer: self.supabase_issuer(),
                audience: self.jwt_aud.clone(),
                admin_roles: self.jwt_admin_roles.clone(),
            },
            disable_signup: self.disable_signup,
            mailer_autoconfirm: self.mailer_autoconfirm,
            redirects: self.redirect_policy()?,
            templates: self.mail_templates()?,
            secure_email_change: self.mailer_secure_email_change_enabled,
            smtp_max_frequency: self.mail_frequency(),
        })
    }

    /// `VELRO_SMTP_MAX_FREQUENCY`, zero standing for GoTrue's default as in GoTrue.
    fn mail_frequency(&self) -> time::Duration {
        let frequency = self.smtp_max_frequency.0;
        if frequency.is_zero() {
            return DEFAULT_SMTP_MAX_FREQUENCY;
        }
        time::Duration::try_from(frequency).unwrap_or(DEFAULT_SMTP_MAX_FREQUENCY)
    }

    /// The compiled-in templates, each replaced by its file in `VELRO_MAILER_TEMPLATES_DIR`
    /// when there is one. Read once, at start-up.
    fn mail_templates(&self) -> anyhow::Result<MailTemplates> {
        let mut templates = MailTemplates::default();
        let Some(dir) = &self.mailer_templates_dir else {
            return Ok(templates);
        };
        for (name, slot) in [
            ("recovery.txt", &mut templates.recovery),
            ("magic_link.txt", &mut templates.magic_link),
            ("confirmation.txt", &mut templates.confirmation),
            ("invite.txt", &mut templates.invite),
            ("email_change.txt", &mut templates.email_change),
            (
                "email_change_current.txt",
                &mut templates.email_change_current,
            ),
        ] {
            let path = dir.join(name);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => bail!(
                    "VELRO_MAILER_TEMPLATES_DIR: cannot read {}: {error}",
                    path.display()
                ),
            };
            *slot = MailTemplate::parse(&text).map_err(|error| {
                anyhow::anyhow!(
                    "invalid configuration: VELRO_MAILER_TEMPLATES_DIR: {}: {error}",
                    path.display()
                )
            })?;
        }
        Ok(templates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(change: impl FnOnce(&mut Config)) -> Result<(), String> {
        let mut config = Config::default();
        change(&mut config);
        config
            .validate_supabase_settings()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_pass_and_give_the_auth_url_as_issuer() {
        assert_eq!(check(|_| {}), Ok(()));
        let config = Config {
            api_external_url: "https://auth.example.com/".into(),
            ..Config::default()
        };
        assert_eq!(config.supabase_issuer(), "https://auth.example.com/auth/v1");
    }

    #[test]
    fn user_roles_cannot_be_admin_roles_and_urls_must_be_urls() {
        for role in USER_ROLES {
            let refused = check(|c| c.jwt_admin_roles = vec![role.to_string()]);
            assert!(
                refused.is_err_and(|e| e.contains("VELRO_JWT_ADMIN_ROLES")),
                "{role}"
            );
        }
        for url in [
            "",
            "localhost:8000",
            "ftp://example.com",
            "https://a.example?x=1",
        ] {
            let refused = check(|c| c.api_external_url = url.to_string());
            assert!(
                refused.is_err_and(|e| e.contains("VELRO_API_EXTERNAL_URL")),
                "{url}"
            );
        }
        assert!(check(|c| c.jwt_issuer = "http://localhost:8000/auth/v1".into()).is_err());
        assert_eq!(check(|c| c.mailer_autoconfirm = false), Ok(()));
        let refused = check(|c| c.site_url = "app.example.com".into());
        assert!(refused.is_err_and(|e| e.contains("VELRO_SITE_URL")));
        let refused = check(|c| c.uri_allow_list = vec!["https://{a,b.example.com".into()]);
        assert!(refused.is_err_and(|e| e.contains("VELRO_URI_ALLOW_LIST")));
        assert_eq!(
            check(|c| c.uri_allow_list = vec!["https://*.example.com/**".into()]),
            Ok(())
        );
    }
}
