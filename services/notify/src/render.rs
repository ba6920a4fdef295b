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

/// Where an answer link goes in a message until it is sent: the link is made when the
/// e-mail goes ([`crate::mailer`]), so no token is ever stored.
pub const ANSWER_LINK: &str = "{{lien-de-reponse}}";

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

    /// The first need, for a subject line.
    fn first_need(&self) -> &'static str {
        self.needs.first().map(|n| n.label_fr()).unwrap_or("aide numérique")
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

/// An offer to a structure with no mediator who signs in, at its public address: what
/// the offer is about, the time left, the link to answer without an account, and an
/// invitation to create one. Nothing of the person.
pub fn answer_link_offer(site: &Site, about: &About, structure: &str, expires_at: DateTime<Utc>) -> Mail {
    let commune = about.commune();
    let mut lines = vec![
        format!("Un travailleur social oriente vers {structure} une personne qui a besoin d'aide avec le numérique."),
        format!("Besoins : {}", about.needs()),
        format!("Commune de la personne : {commune}"),
        format!("Vous avez jusqu'au {} pour répondre ({}).", date(expires_at), time_left(Utc::now(), expires_at)),
        "Le lien ci-dessous vous permet d'accepter ou de refuser sans compte. Une fois l'orientation acceptée, il donne les coordonnées de la personne pour la contacter.".into(),
    ];
    if let Some(at) = about.submitted_at {
        lines.push(format!("Orientation envoyée le {}", date(at)));
    }
    Draft {
        subject: format!("Nouvelle orientation : {} ({commune})", about.first_need()),
        lines,
        link_label: "Répondre à l'orientation".into(),
        link: ANSWER_LINK.into(),
    }
    .finish_for_structure(site, structure)
}

/// A fresh link for a referral the structure accepted, which it asked for from the page
/// of an expired link.
pub fn answer_link_renewal(site: &Site, about: &About, structure: &str) -> Mail {
    let mut lines = vec![
        format!("Voici un nouveau lien pour suivre l'orientation que {structure} a acceptée."),
        "Il remplace le précédent, qui n'est plus valable.".into(),
    ];
    lines.extend(about.facts());
    Draft {
        subject: "Nouvelle orientation : votre nouveau lien de suivi".into(),
        lines,
        link_label: "Suivre l'orientation".into(),
        link: ANSWER_LINK.into(),
    }
    .finish_for_structure(site, structure)
}

/// How long until `until`, in words, rounded to the nearest hour, then day: "3 jours",
/// "5 heures", "moins d'une heure".
pub fn time_left(now: DateTime<Utc>, until: DateTime<Utc>) -> String {
    let hours = ((until - now).num_minutes() + 30).div_euclid(60);
    match hours {
        h if h >= 36 => format!("{} jours", (h + 12) / 24),
        h if h >= 24 => "1 jour".into(),
        h if h >= 2 => format!("{h} heures"),
        1 => "1 heure".into(),
        _ => "moins d'une heure".into(),
    }
}

/// The appointment, to the referrer whose person chose to be told by them: the day, the
/// time and the place's name, and the printable slip to hand over. Nothing of the person.
pub fn appointment_to_tell(site: &Site, about: &About, structure: &str, at: DateTime<Utc>, moved: bool) -> Mail {
    let when = contracts::explain::date_time_fr(at.with_timezone(&Paris).naive_local());
    let mut lines = vec![
        format!(
            "{structure} a {} un rendez-vous pour la personne que vous avez orientée : {when}.",
            if moved { "déplacé" } else { "fixé" }
        ),
        "La personne a choisi d'être prévenue par vous : transmettez-lui la fiche à imprimer, qui dit où aller, quand et quoi apporter.".into(),
    ];
    lines.extend(about.facts());
    Draft {
        subject: if moved {
            "Rendez-vous déplacé : à prévenir".into()
        } else {
            "Rendez-vous fixé : à prévenir".into()
        },
        lines,
        link_label: "Imprimer la fiche pour la personne".into(),
        link: site.url(&format!("/orientations/{}/fiche", about.referral_id)),
    }
    .finish(site)
}

/// The appointment is cancelled, to the referrer who tells the person.
pub fn appointment_cancelled_to_tell(site: &Site, about: &About, structure: &str) -> Mail {
    let mut lines = vec![
        format!("{structure} a annulé le rendez-vous de la personne que vous avez orientée."),
        "La personne a choisi d'être prévenue par vous : dites-lui de ne pas se déplacer. Le lieu fixera un autre rendez-vous.".into(),
    ];
    lines.extend(about.facts());
    Draft {
        subject: "Rendez-vous annulé : à prévenir".into(),
        lines,
        link_label: "Voir l'orientation".into(),
        link: site.url(&format!("/orientations/{}", about.referral_id)),
    }
    .finish(site)
}

/// A message to the person about their appointment did not reach them: the referrer is
/// asked to tell them. Never the number or the address.
pub fn notice_failed(
    site: &Site,
    about: &About,
    channel: contracts::NoticeChannel,
    notice: contracts::AppointmentNotice,
) -> Mail {
    let by = match channel {
        contracts::NoticeChannel::Sms => "Le SMS",
        contracts::NoticeChannel::Email => "L'e-mail",
        contracts::NoticeChannel::Referrer => "Le message",
    };
    let mut lines = vec![
        format!("{by} « {} » n'a pas pu être remis à la personne que vous avez orientée.", notice.label_fr()),
        "Prévenez-la vous-même : la fiche à imprimer dit où aller et quand.".into(),
    ];
    lines.extend(about.facts());
    Draft {
        subject: format!("{} non distribué : prévenez la personne", if by == "Le SMS" { "SMS" } else { "Message" }),
        lines,
        link_label: "Voir l'orientation et sa fiche".into(),
        link: site.url(&format!("/orientations/{}", about.referral_id)),
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
    /// A message to an agent, about their role: its footer leads to their preferences.
    pub fn finish(self, site: &Site) -> Mail {
        let why = "Vous recevez ce message d'Aiguillage en raison de votre rôle.";
        let footer = (
            format!("{why} Choisir les messages reçus ou se désabonner : {}", site.preferences()),
            format!(
                "{why} <a href=\"{}\">Choisir les messages reçus ou se désabonner</a>.",
                escape(&site.preferences())
            ),
        );
        self.with_footer(footer)
    }

    /// A message to a structure's public address (no account): its footer says why it
    /// came, and how to receive offers on a page instead.
    pub fn finish_for_structure(self, site: &Site, structure: &str) -> Mail {
        let why = format!(
            "Vous recevez ce message parce que l'adresse de {structure} est publiée dans l'annuaire des lieux de médiation numérique."
        );
        let join = site.url("/connexion?next=%2Fcompte");
        let footer = (
            format!("{why} Créer un compte pour votre structure : {join}"),
            format!("{} <a href=\"{}\">Créer un compte pour votre structure</a>.", escape(&why), escape(&join)),
        );
        self.with_footer(footer)
    }

    fn with_footer(self, (text_footer, html_footer): (String, String)) -> Mail {
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(line);
            text.push_str("\n\n");
        }
        text.push_str(&format!("{} : {}\n\n-- \n{text_footer}\n", self.link_label, self.link));
        let mut html = String::from("<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>");
        html.push_str(&escape(&self.subject));
        html.push_str("</title></head><body>\n");
        for line in &self.lines {
            html.push_str(&format!("<p>{}</p>\n", escape(line)));
        }
        html.push_str(&format!("<p><a href=\"{}\">{}</a></p>\n", escape(&self.link), escape(&self.link_label)));
        html.push_str(&format!("<hr><p><small>{html_footer}</small></p>\n</body></html>\n"));
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
            let expires = Utc::now() + chrono::Duration::days(3);
            let m = answer_link_offer(&site(), &about(), &name, expires);
            let body = m.html.split("<body>").nth(1).unwrap();
            let tags = body.matches('<').count();
            let expected = answer_link_offer(&site(), &about(), "x", expires).html.split("<body>").nth(1).unwrap().matches('<').count();
            prop_assert_eq!(tags, expected);
        }
    }

    #[test]
    fn an_answer_link_offer_says_what_and_how_long_holds_the_link_and_invites_to_join() {
        let expires = Utc::now() + chrono::Duration::hours(72) + chrono::Duration::minutes(1);
        let m = answer_link_offer(&site(), &about(), "Médiathèque Alpha", expires);
        assert!(m.subject.starts_with("Nouvelle orientation"), "{}", m.subject);
        for part in [&m.text, &m.html] {
            assert!(part.contains(ANSWER_LINK), "the link is filled in when the e-mail goes");
            assert!(part.contains("Aide aux démarches administratives"), "{part}");
            assert!(part.contains("Angoulême"), "{part}");
            assert!(part.contains("3 jours"), "{part}");
            assert!(part.contains("Créer un compte pour votre structure"), "{part}");
            assert!(!part.contains("/compte/notifications"), "no agent's preferences for a public address");
        }
    }

    #[test]
    fn time_left_is_said_in_words() {
        let now = Utc::now();
        assert_eq!(time_left(now, now + chrono::Duration::hours(72)), "3 jours");
        assert_eq!(time_left(now, now + chrono::Duration::hours(72) - chrono::Duration::seconds(5)), "3 jours");
        assert_eq!(time_left(now, now + chrono::Duration::hours(30)), "1 jour");
        assert_eq!(time_left(now, now + chrono::Duration::hours(5)), "5 heures");
        assert_eq!(time_left(now, now + chrono::Duration::minutes(70)), "1 heure");
        assert_eq!(time_left(now, now + chrono::Duration::minutes(20)), "moins d'une heure");
        assert_eq!(time_left(now, now + chrono::Duration::hours(40)), "2 jours");
        assert_eq!(time_left(now, now - chrono::Duration::minutes(20)), "moins d'une heure");
    }
}
