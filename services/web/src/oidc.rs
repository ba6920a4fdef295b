//! The OpenID Connect relying party, on the `openidconnect` crate: discovery, the
//! authorization request (with ProConnect's rules), the code exchange, every check of the
//! ID token and of userinfo (JSON or a signed JWT), and RP-initiated logout.
//!
//! The provider's metadata and keys are fetched on first use and kept. An ID token or
//! a userinfo JWT signed with a key id we do not know fetches the JWKS again, once, so
//! the provider can rotate its keys.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreIdToken, CoreJsonWebKeySet};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope,
    SignatureVerificationError, SubjectIdentifier, TokenResponse,
};
use tokio::sync::RwLock;

use crate::session::random_token;

/// `AIGUILLAGE_OIDC_*`.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    /// Asked for as an essential `acr` in a `claims` request (ProConnect has no `acr_values`).
    pub acr_values: Vec<String>,
}

impl OidcSettings {
    pub const DEFAULT_SCOPES: &'static str = "openid email given_name usual_name siret";

    /// From the environment's values; `None` when no issuer is set (sign-in off).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let Some(issuer) = get("AIGUILLAGE_OIDC_ISSUER") else { return Ok(None) };
        IssuerUrl::new(issuer.clone()).map_err(|e| format!("AIGUILLAGE_OIDC_ISSUER: {e}"))?;
        let client_id =
            get("AIGUILLAGE_OIDC_CLIENT_ID").ok_or("AIGUILLAGE_OIDC_CLIENT_ID is required with an issuer")?;
        let scopes = get("AIGUILLAGE_OIDC_SCOPES").unwrap_or_else(|| Self::DEFAULT_SCOPES.to_string());
        Ok(Some(Self {
            issuer,
            client_id,
            client_secret: get("AIGUILLAGE_OIDC_CLIENT_SECRET"),
            scopes: scopes.split_whitespace().map(str::to_string).collect(),
            acr_values: get("AIGUILLAGE_OIDC_ACR_VALUES")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        }))
    }
}

/// Why a sign-in failed: a code for the audit and the logs, never a personal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the provider could not be reached or its discovery is invalid")]
    Discovery,
    #[error("no sign-in was started from this browser with that state")]
    UnknownState,
    #[error("the sign-in took more than ten minutes")]
    StateExpired,
    #[error("the sign-in was started from another browser")]
    OtherBrowser,
    #[error("the provider answered with an error")]
    ProviderError,
    #[error("the callback's issuer is not the provider's")]
    WrongIssuerParameter,
    #[error("the code could not be exchanged")]
    TokenExchange,
    #[error("no ID token")]
    NoIdToken,
    #[error("the ID token's nonce is not this sign-in's")]
    Nonce,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is for another client")]
    Audience,
    #[error("the ID token is from another issuer")]
    Issuer,
    #[error("the ID token's signature or algorithm is refused")]
    Signature,
    #[error("the ID token is invalid")]
    IdToken,
    #[error("userinfo could not be read or verified")]
    UserInfo,
    #[error("no usable e-mail address")]
    NoEmail,
    #[error("the account could not be recorded")]
    Account,
}

impl Failure {
    pub fn code(self) -> &'static str {
        match self {
            Failure::Discovery => "discovery",
            Failure::UnknownState => "state_unknown",
            Failure::StateExpired => "state_expired",
            Failure::OtherBrowser => "state_other_browser",
            Failure::ProviderError => "provider_error",
            Failure::WrongIssuerParameter => "issuer_parameter",
            Failure::TokenExchange => "token_exchange",
            Failure::NoIdToken => "no_id_token",
            Failure::Nonce => "nonce_mismatch",
            Failure::Expired => "id_token_expired",
            Failure::Audience => "wrong_audience",
            Failure::Issuer => "wrong_issuer",
            Failure::Signature => "bad_signature",
            Failure::IdToken => "bad_id_token",
            Failure::UserInfo => "userinfo",
            Failure::NoEmail => "no_email",
            Failure::Account => "account",
        }
    }

    fn of_claims(err: &ClaimsVerificationError) -> Self {
        match err {
            ClaimsVerificationError::InvalidNonce(_) => Failure::Nonce,
            ClaimsVerificationError::Expired(_) => Failure::Expired,
            ClaimsVerificationError::InvalidAudience(_) => Failure::Audience,
            ClaimsVerificationError::InvalidIssuer(_) => Failure::Issuer,
            ClaimsVerificationError::SignatureVerification(_) => Failure::Signature,
            _ => Failure::IdToken,
        }
    }
}

#[derive(Debug)]
enum UserInfoFailure {
    /// Signed with a key id the JWKS we hold does not have.
    UnknownKey,
    Invalid(#[allow(dead_code)] &'static str), // read through Debug, in the log
}

/// What a verified sign-in tells about the agent.
#[derive(Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub given_name: Option<String>,
    pub usual_name: Option<String>,
    pub siret: Option<String>,
    /// Kept for `id_token_hint` at sign-out.
    pub id_token: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// The `claims` request parameter (OpenID Connect Core, 5.5): an `acr` among the
/// configured values is essential, and the `amr` is asked for.
#[derive(serde::Serialize)]
struct ClaimsParameter<'a> {
    id_token: IdTokenClaims<'a>,
}

#[derive(serde::Serialize)]
struct IdTokenClaims<'a> {
    acr: EssentialValues<'a>,
    /// `null`: requested, with no constraint.
    amr: Option<()>,
}

#[derive(serde::Serialize)]
struct EssentialValues<'a> {
    essential: bool,
    values: &'a [String],
}

impl<'a> ClaimsParameter<'a> {
    fn essential_acr(values: &'a [String]) -> Self {
        Self { id_token: IdTokenClaims { acr: EssentialValues { essential: true, values }, amr: None } }
    }
}

/// A sign-in being started: what the callback must find again.
pub struct Started {
    pub url: url::Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

pub struct Provider {
    settings: OidcSettings,
    redirect: String,
    http: reqwest::Client,
    metadata: RwLock<Option<ProviderMetadataWithLogout>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

type HttpFuture = Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, HttpError>> + Send>>;

fn send(client: reqwest::Client, request: openidconnect::HttpRequest) -> HttpFuture {
    Box::pin(async move {
        let (parts, body) = request.into_parts();
        let response = client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError(e.without_url().to_string()))?;
        let mut answer = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let body = response.bytes().await.map_err(|e| HttpError(e.without_url().to_string()))?;
        answer.body(body.to_vec()).map_err(|e| HttpError(e.to_string()))
    })
}

impl Provider {
    pub fn new(settings: OidcSettings, redirect: String) -> Self {
        // No redirects: discovery, token and userinfo answer directly or not at all.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        Self { settings, redirect, http, metadata: RwLock::new(None) }
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    fn http(&self) -> impl Fn(openidconnect::HttpRequest) -> HttpFuture + use<> {
        let client = self.http.clone();
        move |request| send(client.clone(), request)
    }

    async fn metadata(&self) -> Result<ProviderMetadataWithLogout, Failure> {
        if let Some(m) = self.metadata.read().await.as_ref() {
            return Ok(m.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|_| Failure::Discovery)?;
        let http = self.http();
        let discovered = ProviderMetadataWithLogout::discover_async(issuer, &http).await.map_err(|err| {
            tracing::warn!(error = %err, "OpenID discovery failed");
            Failure::Discovery
        })?;
        *self.metadata.write().await = Some(discovered.clone());
        Ok(discovered)
    }

    /// The provider published new keys: fetch the JWKS again.
    async fn refresh_keys(&self, metadata: &ProviderMetadataWithLogout) -> Result<ProviderMetadataWithLogout, Failure> {
        let http = self.http();
        let jwks = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &http).await.map_err(|err| {
            tracing::warn!(error = %err, "could not fetch the provider's keys again");
            Failure::Signature
        })?;
        let refreshed = metadata.clone().set_jwks(jwks);
        *self.metadata.write().await = Some(refreshed.clone());
        tracing::info!("fetched the provider's keys again");
        Ok(refreshed)
    }

    fn client(&self, metadata: &ProviderMetadataWithLogout) -> Result<Client, Failure> {
        let redirect = RedirectUrl::new(self.redirect.clone()).map_err(|_| Failure::Discovery)?;
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        // Authenticate as the provider says it accepts: ProConnect takes client_secret_post.
        let methods = metadata.token_endpoint_auth_methods_supported();
        let post_only = methods.is_some_and(|m| {
            m.contains(&CoreClientAuthMethod::ClientSecretPost) && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
        });
        Ok(if post_only { client.set_auth_type(AuthType::RequestBody) } else { client })
    }

    /// The authorization URL of a new sign-in: `state` and `nonce` of 43 characters
    /// (ProConnect wants 32 or more), PKCE, and only the parameters ProConnect accepts.
    pub async fn start(&self) -> Result<Started, Failure> {
        let metadata = self.metadata().await?;
        let client = self.client(&metadata)?;
        let (state, nonce) = (random_token(), random_token());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (state_for, nonce_for) = (state.clone(), nonce.clone());
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state_for),
            move || Nonce::new(nonce_for),
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if !self.settings.acr_values.is_empty() {
            let claims = ClaimsParameter::essential_acr(&self.settings.acr_values);
            request = request.add_extra_param("claims", serde_json::to_string(&claims).unwrap_or_default());
        }
        let (url, _, _) = request.set_pkce_challenge(challenge).url();
        Ok(Started { url, state, nonce, pkce_verifier: verifier.secret().clone() })
    }

    /// Checks the callback's `iss` (RFC 9207), when the provider sends one.
    pub fn check_issuer_parameter(&self, iss: Option<&str>) -> Result<(), Failure> {
        match iss {
            Some(iss) if iss.trim_end_matches('/') != self.settings.issuer.trim_end_matches('/') => {
                Err(Failure::WrongIssuerParameter)
            }
            _ => Ok(()),
        }
    }

    /// Exchanges the code, verifies the ID token and reads userinfo.
    pub async fn finish(&self, code: &str, pkce_verifier: &str, nonce: &str) -> Result<Identity, Failure> {
        let mut metadata = self.metadata().await?;
        let client = self.client(&metadata)?;
        let http = self.http();
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|_| Failure::Discovery)?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&http)
            .await
            .map_err(|err| {
                tracing::info!(error = %err, "the code exchange failed");
                Failure::TokenExchange
            })?;
        let id_token = token.id_token().ok_or(Failure::NoIdToken)?.clone();
        let nonce = Nonce::new(nonce.to_string());

        let subject = match verify_id_token(&client, &id_token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                metadata = self.refresh_keys(&metadata).await?;
                let client = self.client(&metadata)?;
                verify_id_token(&client, &id_token, &nonce)
            }
            other => other,
        }
        .map_err(|err| {
            tracing::info!(error = %err, "ID token refused");
            Failure::of_claims(&err)
        })?;

        let access = token.access_token().secret().clone();
        let claims = match self.user_info(&metadata, &access, subject.as_str()).await {
            Err(UserInfoFailure::UnknownKey) => {
                metadata = self.refresh_keys(&metadata).await?;
                self.user_info(&metadata, &access, subject.as_str()).await
            }
            other => other,
        }
        .map_err(|err| {
            tracing::info!(error = ?err, "userinfo refused");
            Failure::UserInfo
        })?;
        let text =
            |key: &str| claims.get(key).and_then(serde_json::Value::as_str).map(str::trim).filter(|v| !v.is_empty());
        let email = text("email").map(str::to_string);
        let usual_name = text("usual_name").or_else(|| text("family_name")).map(str::to_string);
        Ok(Identity {
            issuer: self.settings.issuer.clone(),
            subject: subject.as_str().to_string(),
            email: email.ok_or(Failure::NoEmail)?,
            given_name: text("given_name").map(str::to_string),
            usual_name,
            siret: text("siret").map(str::to_string),
            id_token: id_token.to_string(),
        })
    }

    /// Userinfo, as JSON or as a JWT signed by the provider (ProConnect signs it, ES256
    /// or RS256). openidconnect 4.1 verifies userinfo JWTs for RS256 only, so the JWT is
    /// verified here with `jsonwebtoken` against the provider's JWKS: an asymmetric
    /// algorithm, the key of its `kid`, the issuer, the audience, and the subject of the ID
    /// token.
    async fn user_info(
        &self,
        metadata: &ProviderMetadataWithLogout,
        access: &str,
        subject: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, UserInfoFailure> {
        let endpoint = metadata.userinfo_endpoint().ok_or(UserInfoFailure::Invalid("no userinfo endpoint"))?;
        let response = self
            .http
            .get(endpoint.url().as_str())
            .bearer_auth(access)
            .header(http::header::ACCEPT, "application/jwt, application/json")
            .send()
            .await
            .map_err(|_| UserInfoFailure::Invalid("unreachable"))?;
        if !response.status().is_success() {
            return Err(UserInfoFailure::Invalid("status"));
        }
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        let body = response.bytes().await.map_err(|_| UserInfoFailure::Invalid("body"))?;
        let claims: serde_json::Map<String, serde_json::Value> = if content_type.starts_with("application/jwt") {
            let jwt = std::str::from_utf8(&body).map_err(|_| UserInfoFailure::Invalid("not text"))?.trim();
            self.verify_userinfo_jwt(metadata, jwt)?
        } else if content_type.starts_with("application/json") {
            serde_json::from_slice(&body).map_err(|_| UserInfoFailure::Invalid("not JSON"))?
        } else {
            return Err(UserInfoFailure::Invalid("content type"));
        };
        if claims.get("sub").and_then(serde_json::Value::as_str) != Some(subject) {
            return Err(UserInfoFailure::Invalid("another subject"));
        }
        Ok(claims)
    }

    fn verify_userinfo_jwt(
        &self,
        metadata: &ProviderMetadataWithLogout,
        jwt: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, UserInfoFailure> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| UserInfoFailure::Invalid("header"))?;
        let asymmetric = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::ES384,
        ];
        if !asymmetric.contains(&header.alg) {
            return Err(UserInfoFailure::Invalid("algorithm"));
        }
        let keys: JwkSet = serde_json::to_value(metadata.jwks())
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or(UserInfoFailure::Invalid("JWKS"))?;
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid).ok_or(UserInfoFailure::UnknownKey)?,
            None if keys.keys.len() == 1 => &keys.keys[0],
            None => return Err(UserInfoFailure::Invalid("no kid")),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| UserInfoFailure::Invalid("key"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.settings.issuer.as_str()]);
        validation.set_audience(&[self.settings.client_id.as_str()]);
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        // A userinfo JWT need not expire; when it says it does, it is checked.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(jwt, &key, &validation)
            .map_err(|_| UserInfoFailure::Invalid("signature or claims"))?;
        if let Some(exp) = data.claims.get("exp").and_then(serde_json::Value::as_i64)
            && exp < chrono::Utc::now().timestamp()
        {
            return Err(UserInfoFailure::Invalid("expired"));
        }
        Ok(data.claims)
    }

    /// Where to send the browser at sign-out: the provider's `end_session_endpoint` with
    /// `id_token_hint`, `state` and `post_logout_redirect_uri`, when it has one.
    pub async fn end_session_url(&self, id_token: &str, post_logout: &str) -> Option<url::Url> {
        let metadata = self.metadata().await.ok()?;
        let endpoint = metadata.additional_metadata().end_session_endpoint.clone()?;
        let id_token = CoreIdToken::from_str(id_token).ok()?;
        let post_logout = PostLogoutRedirectUrl::new(post_logout.to_string()).ok()?;
        Some(
            LogoutRequest::from(endpoint)
                .set_id_token_hint(&id_token)
                .set_post_logout_redirect_uri(post_logout)
                .set_state(CsrfToken::new(random_token()))
                .http_get_url(),
        )
    }
}

fn verify_id_token(
    client: &Client,
    id_token: &CoreIdToken,
    nonce: &Nonce,
) -> Result<SubjectIdentifier, ClaimsVerificationError> {
    let verifier = client.id_token_verifier();
    id_token.claims(&verifier, nonce).map(|claims| claims.subject().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claims_parameter_asks_for_an_essential_acr_and_the_amr() {
        let values = vec!["eidas1".to_string()];
        let claims = serde_json::to_string(&ClaimsParameter::essential_acr(&values)).unwrap();
        assert_eq!(claims, r#"{"id_token":{"acr":{"essential":true,"values":["eidas1"]},"amr":null}}"#);
    }

    #[test]
    fn settings_need_a_client_with_an_issuer() {
        let none = OidcSettings::from_lookup(|_| None).unwrap();
        assert!(none.is_none());
        let missing =
            OidcSettings::from_lookup(|k| (k == "AIGUILLAGE_OIDC_ISSUER").then(|| "http://127.0.0.1:1".into()));
        assert!(missing.unwrap_err().contains("CLIENT_ID"));
        let set = OidcSettings::from_lookup(|k| match k {
            "AIGUILLAGE_OIDC_ISSUER" => Some("https://auth.example/api/v2".into()),
            "AIGUILLAGE_OIDC_CLIENT_ID" => Some("c".into()),
            "AIGUILLAGE_OIDC_ACR_VALUES" => Some("eidas1".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(set.scopes, ["openid", "email", "given_name", "usual_name", "siret"]);
        assert_eq!(set.acr_values, ["eidas1"]);
        assert!(OidcSettings::from_lookup(|k| (k == "AIGUILLAGE_OIDC_ISSUER").then(|| "not a url".into())).is_err());
    }

    #[test]
    fn failure_codes_fit_the_audit() {
        for f in [Failure::Discovery, Failure::UnknownState, Failure::Nonce, Failure::Signature, Failure::Account] {
            assert!(f.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", f.code());
        }
    }
}
