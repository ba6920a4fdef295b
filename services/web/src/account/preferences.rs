//! `/compte/notifications`: the signed-in agent chooses, per kind of message, to get it
//! at once, in the morning digest, or never. It is the page every e-mail's
//! `List-Unsubscribe` header and footer link to: reached after sign-in, so its URL
//! carries nothing personal.

use askama::Template;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::accounts::PreferencesBody;
use contracts::{DeliveryMode, MessageKind};

use crate::api::ApiFailure;
use crate::error::PageError;
use crate::extract::{Agent, Anyone, CsrfForm, SignedIn};
use crate::views::render;

pub struct KindChoice {
    pub slug: &'static str,
    pub label: &'static str,
    pub mode: &'static str,
}

#[derive(Template)]
#[template(path = "preferences.html")]
struct Preferences {
    chrome: crate::views::Chrome,
    csrf: String,
    done: Option<&'static str>,
    invalid: bool,
    kinds: Vec<KindChoice>,
    modes: Vec<(&'static str, &'static str)>,
}

/// The page, with each kind's mode as the API holds it (it answers every kind).
async fn page(agent: &Agent, done: Option<&'static str>, invalid: bool) -> Result<Response, PageError> {
    let current = agent.api.preferences().await?;
    let kinds = MessageKind::ALL
        .iter()
        .map(|k| {
            let mode = current
                .mode(*k)
                .ok_or_else(|| ApiFailure::Shape(format!("the preferences do not say how to send {k}")))?;
            Ok(KindChoice { slug: k.slug(), label: k.label_fr(), mode: mode.slug() })
        })
        .collect::<Result<_, ApiFailure>>()?;
    let title = if invalid { "Erreur : Mes notifications" } else { "Mes notifications" };
    let p = Preferences {
        chrome: agent.chrome(title, "compte"),
        csrf: agent.session.csrf.clone(),
        done,
        invalid,
        kinds,
        modes: DeliveryMode::ALL.iter().map(|m| (m.slug(), m.label_fr())).collect(),
    };
    let status = if invalid { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render(status, &p, true))
}

#[derive(serde::Deserialize)]
pub struct Saved {
    enregistre: Option<String>,
}

pub async fn show(agent: SignedIn<Anyone>, Query(q): Query<Saved>) -> Result<Response, PageError> {
    let done = q.enregistre.is_some().then_some("Vos préférences de notification sont enregistrées.");
    page(&agent, done, false).await
}

/// The modes the form sets; `None` when one is not a mode.
fn chosen(form: &[(String, String)]) -> Option<PreferencesBody> {
    let mut body = PreferencesBody::default();
    for kind in MessageKind::ALL {
        if let Some((_, v)) = form.iter().find(|(k, _)| k == kind.slug()) {
            body.set(*kind, v.parse().ok()?);
        }
    }
    Some(body)
}

pub async fn save(
    agent: SignedIn<Anyone>,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let Some(body) = chosen(&form) else { return page(&agent, None, true).await };
    match agent.api.set_preferences(&body).await {
        Ok(_) => Ok(Redirect::to("/compte/notifications?enregistre=1").into_response()),
        Err(err) if err.status() == Some(StatusCode::UNPROCESSABLE_ENTITY) => page(&agent, None, true).await,
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_sets_the_kinds_it_names_and_refuses_a_mode_that_is_not_one() {
        let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let body = chosen(&form(&[("csrf", "t"), ("offer_received", "daily")])).unwrap();
        assert_eq!(body.mode(MessageKind::OfferReceived), Some(DeliveryMode::Daily));
        assert_eq!(body.mode(MessageKind::WeeklyDigest), None, "a kind left out keeps its setting");
        assert!(chosen(&form(&[("offer_received", "sometimes")])).is_none());
    }
}
