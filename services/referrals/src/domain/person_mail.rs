//! The e-mail that tells the person of an appointment: plain French, short sentences,
//! where and when, never why. Made from the appointment and the directory's record only:
//! nothing here takes the person's name, need or note, so no e-mail can say them.

use chrono::{DateTime, Utc};

use super::sms::{SmsKind, SmsPlace, phone_words, when_words};

/// A message ready to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The e-mail for an appointment at `at`, of `duration_minutes`, in `place` (in `room`,
/// the appointment's optional room or place).
pub fn appointment_mail(
    kind: SmsKind,
    at: DateTime<Utc>,
    duration_minutes: u32,
    place: &SmsPlace<'_>,
    room: Option<&str>,
) -> PersonMail {
    let when = when_words(at);
    let phone = place.phone.and_then(phone_words);
    let subject = match kind {
        SmsKind::Set => format!("Votre rendez-vous le {when}"),
        SmsKind::Changed => format!("Votre rendez-vous change : {when}"),
        SmsKind::Reminder => format!("Rappel : votre rendez-vous le {when}"),
        SmsKind::Cancelled => format!("Votre rendez-vous du {when} est annulé"),
    };
    let mut where_ = place.name.trim().to_string();
    if let Some(room) = room.map(str::trim).filter(|r| !r.is_empty()) {
        where_ = format!("{where_}, {room}");
    }
    let address = [place.street, place.commune]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    let mut paragraphs: Vec<Vec<String>> = vec![vec!["Bonjour,".into()]];
    match kind {
        SmsKind::Cancelled => {
            paragraphs.push(vec![format!("Votre rendez-vous du {when} est annulé."), format!("Lieu : {where_}.")]);
            paragraphs.push(vec![match &phone {
                Some(p) => format!("Le lieu vous proposera un autre rendez-vous. Pour une question, appelez le {p}."),
                None => "Le lieu vous proposera un autre rendez-vous.".to_string(),
            }]);
        }
        _ => {
            let opening = match kind {
                SmsKind::Set => "Vous avez un rendez-vous pour une aide au numérique.",
                SmsKind::Changed => "Votre rendez-vous pour une aide au numérique change. Voici le nouveau.",
                _ => "Nous vous rappelons votre rendez-vous pour une aide au numérique.",
            };
            paragraphs.push(vec![opening.to_string()]);
            let mut facts =
                vec![format!("Quand : {when} ({}).", duration_words(duration_minutes)), format!("Où : {where_}.")];
            if !address.is_empty() {
                facts.push(format!("Adresse : {address}."));
            }
            if let Some(p) = &phone {
                facts.push(format!("Téléphone du lieu : {p}."));
            }
            paragraphs.push(facts);
            paragraphs.push(vec![match &phone {
                Some(_) => "Si vous ne pouvez pas venir, appelez le lieu.".to_string(),
                None => "Si vous ne pouvez pas venir, prévenez le lieu.".to_string(),
            }]);
        }
    }
    paragraphs
        .push(vec!["Ce message vient d'Aiguillage, pour le lieu qui vous reçoit. Merci de ne pas y répondre.".into()]);
    let text = paragraphs.iter().map(|p| p.join("\n")).collect::<Vec<_>>().join("\n\n") + "\n";
    let html = paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>", p.iter().map(|l| escape(l)).collect::<Vec<_>>().join("<br>")))
        .collect::<Vec<_>>()
        .join("\n");
    PersonMail { subject, text, html: format!("<!doctype html><html lang=\"fr\"><body>\n{html}\n</body></html>\n") }
}

/// `1 heure`, `1 h 30`, `45 minutes`.
fn duration_words(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} minutes"),
        (1, 0) => "1 heure".to_string(),
        (h, 0) => format!("{h} heures"),
        (h, m) => format!("{h} h {m:02}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn place() -> SmsPlace<'static> {
        SmsPlace {
            name: "Médiathèque Alpha",
            street: Some("3 rue X"),
            commune: Some("Angoulême"),
            phone: Some("+33545000000"),
        }
    }

    #[test]
    fn the_mail_says_where_and_when_in_words() {
        // 9 h 30 in Paris (winter: UTC+1).
        let at = Utc.with_ymd_and_hms(2026, 12, 15, 8, 30, 0).unwrap();
        let m = appointment_mail(SmsKind::Set, at, 90, &place(), Some("Salle 2"));
        assert_eq!(m.subject, "Votre rendez-vous le mardi 15 décembre à 9 h 30");
        assert!(m.text.contains("Quand : mardi 15 décembre à 9 h 30 (1 h 30)."), "{}", m.text);
        assert!(m.text.contains("Où : Médiathèque Alpha, Salle 2."));
        assert!(m.text.contains("Adresse : 3 rue X, Angoulême."));
        assert!(m.text.contains("Téléphone du lieu : 05 45 00 00 00."));
        assert!(m.html.contains("<p>Bonjour,</p>"));
    }

    #[test]
    fn each_kind_has_its_own_subject() {
        let at = Utc.with_ymd_and_hms(2026, 12, 15, 8, 30, 0).unwrap();
        let subjects: Vec<String> = [SmsKind::Set, SmsKind::Changed, SmsKind::Reminder, SmsKind::Cancelled]
            .into_iter()
            .map(|k| appointment_mail(k, at, 60, &place(), None).subject)
            .collect();
        assert_eq!(subjects[1], "Votre rendez-vous change : mardi 15 décembre à 9 h 30");
        assert_eq!(subjects[2], "Rappel : votre rendez-vous le mardi 15 décembre à 9 h 30");
        assert_eq!(subjects[3], "Votre rendez-vous du mardi 15 décembre à 9 h 30 est annulé");
        let cancelled = appointment_mail(SmsKind::Cancelled, at, 60, &place(), None);
        assert!(!cancelled.text.contains("Quand :"));
    }

    #[test]
    fn markup_in_a_place_name_is_escaped() {
        let at = Utc.with_ymd_and_hms(2026, 12, 15, 8, 30, 0).unwrap();
        let p = SmsPlace { name: "<b>Espace</b> & co", street: None, commune: None, phone: None };
        let m = appointment_mail(SmsKind::Set, at, 60, &p, None);
        assert!(m.html.contains("&lt;b&gt;Espace&lt;/b&gt; &amp; co"));
        assert!(!m.text.contains("Adresse"));
        assert!(m.text.contains("prévenez le lieu"));
    }

    #[test]
    fn durations_read_as_said() {
        assert_eq!(duration_words(45), "45 minutes");
        assert_eq!(duration_words(60), "1 heure");
        assert_eq!(duration_words(120), "2 heures");
        assert_eq!(duration_words(90), "1 h 30");
    }
}
