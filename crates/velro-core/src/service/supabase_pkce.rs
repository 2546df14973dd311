//! GoTrue's PKCE flow on the Supabase surface: a mail flow started with a code challenge keeps
//! a flow state, its link token carries the `pkce_` prefix, following the link issues an auth
//! code (instead of a session in the URL fragment), and `grant_type=pkce` exchanges the code
//! and its verifier for a session. The mail flows themselves stay in `supabase` and
//! `supabase_mail`; they call in here.

use uuid::Uuid;

use super::supabase::LINK_TOKEN_LEN;
use super::{ClientInfo, IssuedSession, SupabaseAuth, SupabaseError};
use crate::domain::{
    CodeChallenge, FlowMethod, FlowStateId, IssuedAuthCode, MailPurpose, NewFlowState, UserId,
};
use crate::limits::Policy;
use crate::tokens::{generate_opaque_token, hash_token};
use crate::{AuthError, Secret};

/// What GoTrue puts before a PKCE flow's link token.
pub const PKCE_PREFIX: &str = "pkce_";

/// A mail link's token: the `pkce_`-prefixed form when the flow has a code challenge.
pub(super) fn new_link_token(pkce: bool) -> Secret<String> {
    let token = generate_opaque_token();
    if pkce {
        Secret::new(format!("{PKCE_PREFIX}{}", token.expose()))
    } else {
        token
    }
}

/// Whether `token` has the shape of a link token Velro issues, and whether it is a PKCE one.
/// The prefix is part of the stored hash, so a PKCE link stripped of it is no link at all.
pub(super) fn link_token_shape(token: &str) -> Option<bool> {
    let (pkce, bare) = match token.strip_prefix(PKCE_PREFIX) {
        Some(bare) => (true, bare),
        None => (false, token),
    };
    let shaped = bare.len() == LINK_TOKEN_LEN
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then_some(pkce)
}

/// Where a followed mail link lands: with a session (the implicit flow) or an auth code, or,
/// for one half of a secure email change, on the message that the other half is awaited.
#[derive(Debug)]
pub enum LinkLanding {
    // Boxed: a session is ten times the size of a code.
    Session(Box<IssuedSession>),
    AuthCode(Secret<String>),
    OtherAddressAwaited,
}

impl SupabaseAuth {
    /// Stores the flow state a PKCE mail flow begins with.
    pub(super) async fn start_flow(
        &self,
        user_id: UserId,
        method: FlowMethod,
        challenge: &CodeChallenge,
    ) -> Result<(), AuthError> {
        let deps = self.auth().deps();
        deps.store
            .create_flow_state(NewFlowState {
                id: FlowStateId(Uuid::now_v7()),
                user_id,
                method,
                challenge: challenge.clone(),
                now: deps.clock.now(),
            })
            .await?;
        Ok(())
    }

    /// The auth code for the user's newest flow state of the method the link named; GoTrue's
    /// answer when there is none.
    pub(super) async fn issue_auth_code(
        &self,
        user_id: UserId,
        method: FlowMethod,
    ) -> Result<Secret<String>, SupabaseError> {
        let deps = self.auth().deps();
        // GoTrue's auth codes are UUIDs; 122 random bits, stored hashed.
        let code = Secret::new(Uuid::new_v4().to_string());
        let issued = deps
            .store
            .issue_auth_code(IssuedAuthCode {
                user_id,
                method,
                code: hash_token(code.expose()),
                now: deps.clock.now(),
            })
            .await
            .map_err(AuthError::from)?;
        if !issued {
            return Err(SupabaseError::LinkFlowStateMissing);
        }
        Ok(code)
    }

    /// `POST /token?grant_type=pkce`: the session for an auth code whose flow state's challenge
    /// `verifier` answers. A wrong verifier leaves the code as it was (as GoTrue does); a right
    /// one spends it, once.
    pub async fn exchange_auth_code(
        &self,
        auth_code: &str,
        verifier: &str,
        client: ClientInfo,
    ) -> Result<IssuedSession, SupabaseError> {
        let deps = self.auth().deps();
        deps.limits
            .check_ip(Policy::PasswordResetIp, client.ip())
            .await?;
        let state = deps
            .store
            .find_flow_state(hash_token(auth_code))
            .await
            .map_err(AuthError::from)?
            .ok_or(SupabaseError::FlowStateNotFound)?;
        let now = deps.clock.now();
        if state.is_expired(now) {
            return Err(SupabaseError::FlowStateExpired);
        }
        if !state.challenge.is_verified_by(verifier) {
            return Err(SupabaseError::BadCodeVerifier);
        }
        let user = deps
            .store
            .find_user(state.user_id)
            .await
            .map_err(AuthError::from)?
            .ok_or(SupabaseError::FlowStateNotFound)?;
        if !deps
            .store
            .delete_flow_state(state.id)
            .await
            .map_err(AuthError::from)?
        {
            // Spent by a concurrent exchange.
            return Err(SupabaseError::FlowStateNotFound);
        }
        if user.is_refused(now) {
            return Err(AuthError::AccountDisabled.into());
        }
        tracing::info!(user_id = %user.id, method = state.method.as_str(), "auth code exchanged");
        Ok(self
            .sign_in_holder(user, client, state.method.as_str())
            .await?)
    }
}

/// The flow state a followed link of `kind` belongs to; `redeemed` tells GoTrue's `email` type
/// (either token kind) apart.
pub(super) fn link_method(kind: super::OtpKind, redeemed: MailPurpose) -> FlowMethod {
    use super::OtpKind as K;
    match kind {
        K::Signup => FlowMethod::Signup,
        K::Invite => FlowMethod::Invite,
        K::Recovery => FlowMethod::Recovery,
        K::MagicLink => FlowMethod::MagicLink,
        K::EmailChange => FlowMethod::EmailChange,
        K::Email => match redeemed {
            MailPurpose::Recovery => FlowMethod::MagicLink,
            MailPurpose::Confirmation => FlowMethod::Signup,
            MailPurpose::EmailChange | MailPurpose::EmailChangeCurrent => FlowMethod::EmailChange,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_are_told_apart_by_their_prefix() {
        let plain = new_link_token(false);
        let pkce = new_link_token(true);
        assert_eq!(link_token_shape(plain.expose()), Some(false));
        assert_eq!(link_token_shape(pkce.expose()), Some(true));
        assert!(pkce.expose().starts_with(PKCE_PREFIX));
        assert_eq!(link_token_shape("pkce_short"), None);
        assert_eq!(link_token_shape(&format!("pkce_{}", "*".repeat(43))), None);
        assert_eq!(link_token_shape(""), None);
    }
}
