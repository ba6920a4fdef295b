//! The messages, in French, as text and HTML from one description. Pure: what goes in
//! is what the events carry (needs, commune, dates, ids) and public names of structures;
//! there is no field for anything about the person, so nothing of theirs can come out.

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;
use contracts::{DeclineReason, Need, Outcome, WaitlistReason};

/// A message before it is addressed.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The page the message is about.
    pub link: String,
}

/// What every message is made of: a heading, some lines, one link, and the footer that
/// says why it came and where to change that.
#[derive(Debug, Clone)]
pub struct Draft {
    pub subject: String,
    pub lines: Vec<String>,
    pub link_label: String,
    pub link: String,
}

/// Where the pages are.
#[derive(Debug, Clone)]
pub struct Site {
    pub public_url: String,
}

impl Site {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }

    /// The preferences page: the unsubscribe link of every message, with nothing
    /// personal in it (the agent signs in to reach it).
    pub fn preferences(&self) -> String {
        self.url("/compte/notifications")
    }
}

/// The facts of a referral a message may tell.
#[derive(Debug, Clone)]
pub struct About {
    pub referral_id: uuid::Uuid,
    pub needs: Vec<Need>,
    pub commune_code: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
}

impl About {
    fn needs(&self) -> String {
        if self.needs.is_empty() {
            return "non précisés".to_string();
        }
        self.needs.iter().map(|n| n.label_fr()).collect::<Vec<_>>().join(", ")
    }

    fn commune(&self) -> String {
        match self.commune_code.as_deref() {
            Some(code) => match geo::communes().by_code(code) {
                Some(c) => format!("{} ({})", c.name, c.departement),
                None => code.to_string(),
            },
            None => "non précisée".to_string(),
        }
    }

    fn facts(&self) -> Vec<String> {
        let mut lines = vec![format!("Besoins : {}", self.needs()), format!("Commune : {}", self.commune())];
        if let Some(at) = self.submitted_at {
            lines.push(format!("Orientation envoyée le {}", date(at)));
        }
        lines
    }
}

pub fn date(at: DateTime<Utc>) -> String {
    at.with_timezone(&Paris).format("%d/%m/%Y à %H:%M").to_string()
}

pub fn day(at: DateTime<Utc>) -> String {
    at.with_timezone(&Paris).format("%d/%m/%Y").to_string()
}

pub fn offer_received(site: &Site, about: &About, structure: &str, expires_at: DateTime<Utc>) -> Mail {
    let mut lines = vec![format!("Une nouvelle orientation est proposée à {structure}.")];
    lines.extend(about.facts());
    lines.push(format!("Répondez avant le {}.", date(expires_at)));
    Draft {
        subject: "Nouvelle proposition d'orientation".into(),
        lines,
        link_label: "Voir la proposition".into(),
        link: site.url(&format!("/propositions/{}", about.referral_id)),
    }
    .finish(site)
}

pub fn offer_reminder(site: &Site, about: &About, structure: &str, offered_at: DateTime<Utc>) -> Mail {
    let mut lines =
        vec![format!("Une orientation proposée à {structure} le {} attend toujours votre réponse.", date(offered_at))];
    lines.extend(about.facts());
    Draft {
        subject: "Rappel : une proposition d'orientation attend votre réponse".into(),
        lines,
        link_label: "Répondre à la proposition".into(),
        link: site.url(&format!("/propositions/{}", about.referral_id)),
    }
    .finish(site)
}

pub fn contact_reminder(site: &Site, about: &About, structure: &str, accepted_at: DateTime<Utc>) -> Mail {
    let mut lines = vec![format!(
        "{structure} a accepté une orientation le {}, et aucun premier contact n'est encore noté.",
        date(accepted_at)
    )];
    lines.extend(about.facts());
    Draft {
        subject: "Rappel : premier contact à noter".into(),
        lines,
        link_label: "Suivre l'orientation".into(),
        link: site.url(&format!("/suivis/{}", about.referral_id)),
    }
    .finish(site)
}

/// What became of a referral, for the referrer who sent it.
#[derive(Debug, Clone, Copy)]
pub enum Update {
    Accepted,
    Declined(DeclineReason),
    Closed(Outcome),
    Waitlisted { reason: WaitlistReason, escalated: bool },
}

pub fn referral_update(site: &Site, about: &About, structure: Option<&str>, update: Update, at: DateTime<Utc>) -> Mail {
    let structure = structure.unwrap_or("la structure");
    let (subject, first) = match update {
        Update::Accepted => (
            "Votre orientation a été acceptée".to_string(),
            format!("{structure} a accepté votre orientation le {}.", date(at)),
        ),
        Update::Declined(reason) => (
            "Votre orientation a été refusée par une structure".to_string(),
            format!(
                "{structure} a refusé votre orientation le {} (motif : {}). Aiguillage cherche une autre structure.",
                date(at),
                reason.label_fr()
            ),
        ),
        Update::Closed(outcome) => (
            "Votre orientation est clôturée".to_string(),
            format!("{structure} a clôturé votre orientation le {} : {}.", date(at), outcome.label_fr()),
        ),
        Update::Waitlisted { reason, escalated } => (
            if escalated {
                "Votre orientation est transmise à la coordination".to_string()
            } else {
                "Votre orientation est en liste d'attente".to_string()
            },
            format!(
                "Depuis le {}, votre orientation est en liste d'attente ({}){}.",
                date(at),
                reason.label_fr(),
                if escalated { " et signalée à la coordination du territoire" } else { "" }
            ),
        ),
    };
    let mut lines = vec![first];
    lines.extend(about.facts());
    Draft {
        subject,
        lines,
        link_label: "Voir l'orientation".into(),
        link: site.url(&format!("/orientations/{}", about.referral_id)),
    }
    .finish(site)
}

pub fn territory_waitlist(
    site: &Site,
    about: &About,
    reason: WaitlistReason,
    escalated: bool,
    at: DateTime<Utc>,
) -> Mail {
    let mut lines = vec![format!(
        "Une orientation est {} depuis le {} ({}).",
        if escalated { "escaladée" } else { "en liste d'attente" },
        date(at),
        reason.label_fr()
    )];
    lines.extend(about.facts());
    Draft {
        subject: if escalated {
            "Orientation escaladée sur votre territoire".into()
        } else {
            "Orientation en attente sur votre territoire".into()
        },
        lines,
        link_label: "Voir l'orientation en attente".into(),
        link: site.url(&format!("/territoire/orientations/{}", about.referral_id)),
    }
    .finish(site)
}

/// To a structure's public contact address when nobody of the structure has signed up.
pub fn invitation(site: &Site, structure: &str) -> Mail {
    Draft {
        subject: "Des orientations vous attendent sur Aiguillage".into(),
        lines: vec![
            format!("Des travailleurs sociaux orientent des personnes vers {structure} par Aiguillage."),
            "Aucun membre de votre structure n'y a encore de compte : les propositions restent sans réponse.".into(),
            "Créez votre compte pour recevoir les orientations et y répondre. Ce message est envoyé au plus une fois par semaine.".into(),
        ],
        link_label: "Rejoindre Aiguillage".into(),
        link: site.url("/connexion"),
    }
    .finish(site)
}

/// One line of a digest.
#[derive(Debug, Clone)]
pub struct Item {
    pub subject: String,
    pub link: String,
}

pub fn daily_digest(site: &Site, items: &[Item], at: DateTime<Utc>) -> Mail {
    let mut lines = vec![format!("Voici vos {} notifications du {}.", items.len(), day(at))];
    lines.extend(items.iter().map(|i| format!("{} : {}", i.subject, i.link)));
    Draft {
        subject: format!("Aiguillage : récapitulatif du {} ({})", day(at), items.len()),
        lines,
        link_label: "Ouvrir Aiguillage".into(),
        link: site.url("/"),
    }
    .finish(site)
}

/// A referral that has not moved for a while.
#[derive(Debug, Clone)]
pub struct Stale {
    pub about: About,
    pub status: String,
    pub since: DateTime<Utc>,
}

pub fn weekly_digest(site: &Site, stale: &[Stale], unreached: &[String], at: DateTime<Utc>) -> Mail {
    let mut lines =
        vec![format!("Semaine du {} : {} orientations n'ont pas bougé depuis plus de 7 jours.", day(at), stale.len())];
    for s in stale.iter().take(50) {
        lines.push(format!(
            "{} à {}, {} depuis le {} : {}",
            s.about.needs(),
            s.about.commune(),
            s.status,
            day(s.since),
            site.url(&format!("/territoire/orientations/{}", s.about.referral_id))
        ));
    }
    if !unreached.is_empty() {
        lines.push(format!(
            "{} structures n'ont aucun médiateur inscrit et ne peuvent pas recevoir de proposition : {}.",
            unreached.len(),
            unreached.join(", ")
        ));
    }
    Draft {
        subject: format!("Aiguillage : bilan de la semaine du {}", day(at)),
        lines,
        link_label: "Voir les files d'attente".into(),
        link: site.url("/territoire"),
    }
    .finish(site)
}

impl Draft {
    pub fn finish(self, site: &Site) -> Mail {
        let footer = format!(
            "Vous recevez ce message d'Aiguillage en raison de votre rôle. Choisir les messages reçus ou se désabonner : {}",
            site.preferences()
        );
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(line);
            text.push_str("\n\n");
        }
        text.push_str(&format!("{} : {}\n\n-- \n{footer}\n", self.link_label, self.link));
        let mut html = String::from("<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>");
        html.push_str(&escape(&self.subject));
        html.push_str("</title></head><body>\n");
        for line in &self.lines {
            html.push_str(&format!("<p>{}</p>\n", escape(line)));
        }
        html.push_str(&format!("<p><a href=\"{}\">{}</a></p>\n", escape(&self.link), escape(&self.link_label)));
        html.push_str(&format!(
            "<hr><p><small>Vous recevez ce message d'Aiguillage en raison de votre rôle. <a href=\"{}\">Choisir les messages reçus ou se désabonner</a>.</small></p>\n</body></html>\n",
            escape(&site.preferences())
        ));
        Mail { subject: self.subject, text, html, link: self.link }
    }
}

/// HTML text and attribute escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn site() -> Site {
        Site { public_url: "https://aiguillage.example/".into() }
    }

    fn about() -> About {
        About {
            referral_id: uuid::Uuid::nil(),
            needs: vec![Need::AideDemarchesAdministratives],
            commune_code: Some("16015".into()),
            submitted_at: Some("2026-11-28T10:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn an_offer_says_needs_commune_dates_and_link() {
        let m = offer_received(&site(), &about(), "France Services Angoulême", "2026-12-01T09:00:00Z".parse().unwrap());
        assert!(m.text.contains("Aide aux démarches administratives"), "{}", m.text);
        assert!(m.text.contains("Angoulême (16)"), "{}", m.text);
        assert!(m.text.contains("28/11/2026 à 11:00"), "{}", m.text);
        assert!(m.text.contains("01/12/2026 à 10:00"), "{}", m.text);
        assert!(m.text.contains("https://aiguillage.example/propositions/00000000-0000-0000-0000-000000000000"));
        assert!(m.html.contains("<a href=\"https://aiguillage.example/compte/notifications\">"));
        assert!(m.text.contains("https://aiguillage.example/compte/notifications"));
    }

    #[test]
    fn each_update_names_what_happened() {
        let at = "2026-11-30T10:00:00Z".parse().unwrap();
        let s = site();
        let a = about();
        let cases = [
            (Update::Accepted, "accepté"),
            (Update::Declined(DeclineReason::OutOfArea), DeclineReason::OutOfArea.label_fr()),
            (Update::Closed(Outcome::Completed), Outcome::Completed.label_fr()),
            (Update::Waitlisted { reason: WaitlistReason::NoCapacity, escalated: true }, "coordination"),
        ];
        for (u, needle) in cases {
            let m = referral_update(&s, &a, Some("Médiathèque"), u, at);
            assert!(m.text.contains(needle), "{u:?}: {}", m.text);
            assert!(m.link.ends_with("/orientations/00000000-0000-0000-0000-000000000000"));
        }
    }

    proptest! {
        /// Whatever a structure is called, the HTML stays well-formed: no tag comes from data.
        #[test]
        fn structure_names_are_escaped(name in ".{0,40}") {
            let m = invitation(&site(), &name);
            let body = m.html.split("<body>").nth(1).unwrap();
            let tags = body.matches('<').count();
            let expected = invitation(&site(), "x").html.split("<body>").nth(1).unwrap().matches('<').count();
            prop_assert_eq!(tags, expected);
        }
    }
}
