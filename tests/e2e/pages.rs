//! The referrer's pages over HTTP, as a browser without JavaScript uses them: the form
//! with its errors in French beside each field, the referral it creates, its page and
//! its cancellation; and 404 for another membership.

use reqwest::StatusCode;

use crate::signin::{browser, csrf_of, grant, location, page, server, sign_in, submit, text};
use crate::support::oidc::{Agent, CLAIRE, KARIM, OidcProvider};
use crate::support::structure;

#[tokio::test]
async fn a_referrer_fills_the_form_fixes_its_errors_follows_and_cancels_the_referral() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    app.structure(
        "lieu-angouleme",
        structure("Médiathèque d'Angoulême", 45.65, 0.16, &["aide_demarches_administratives"], 5),
    )
    .await;
    let organisation = app.organisation("16").await.to_string();
    grant(
        &app,
        &["--email", "claire.dubois@ccas-angouleme.example", "--role", "referrer", "--organisation", &organisation],
    )
    .await;
    grant(
        &app,
        &[
            "--email",
            "karim.benali@regie-urbaine-angouleme.example",
            "--role",
            "mediator",
            "--structure",
            "lieu-angouleme",
        ],
    )
    .await;
    let b = browser();
    assert_eq!(
        sign_in(&app, &oidc, &b, &Agent::Demo(CLAIRE), "/orientations/nouvelle").await.status(),
        StatusCode::SEE_OTHER
    );

    let (status, _, html) = page(&app, &b, "/orientations/nouvelle").await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "Prénom",
        "Nom",
        "Téléphone",
        "Adresse e-mail",
        "Préférence de contact",
        "Commune",
        "Langues",
        "Besoins",
        "Modalité",
        "Distance maximale",
        "Urgence",
        "Date limite",
        "Note",
        "Consentement",
        "Mode de recueil du consentement",
        "Aide aux démarches administratives",
        "Envoyer l'orientation",
    ] {
        assert!(html.contains(name), "{name} is missing from the form");
    }
    let csrf = csrf_of(&html);
    let key_at = html.find("name=\"key\" value=\"").unwrap() + "name=\"key\" value=\"".len();
    let key = html[key_at..key_at + 43].to_string();

    // Nothing ticked, a commune that is not one: every error beside its field, in French.
    let bad = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("first_name", "Amina"),
        ("last_name", "B."),
        ("phone", "12"),
        ("commune", "Nullepartville"),
        ("contact_preference", "phone"),
    ];
    let r = submit(&app, &b, "/orientations/nouvelle", &bad).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(r).await;
    assert!(html.contains("<title>Erreur : nouvelle orientation"), "{html}");
    for (id, words) in [
        ("commune-error", "Nullepartville"),
        ("needs-error", "Cochez au moins un besoin"),
        ("consent-error", "consentement"),
    ] {
        let at = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("{id}: {html}"));
        assert!(html[at..at + 300].contains(words), "{id}: {}", &html[at..at + 300]);
    }
    assert!(html.contains("value=\"Amina\""), "what was typed comes back");

    // The API's own check (the phone number) comes back beside its field too.
    let almost = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("first_name", "Amina"),
        ("last_name", "B."),
        ("phone", "12"),
        ("commune", "16000"),
        ("needs", "aide_demarches_administratives"),
        ("consent", "oui"),
        ("consent_method", "oral"),
        ("contact_preference", "phone"),
        ("languages", "fr"),
        ("modes", "in_person"),
    ];
    let r = submit(&app, &b, "/orientations/nouvelle", &almost).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(r).await;
    assert!(html.contains("id=\"phone-error\""), "{html}");

    // Before sending: where it could go, from match/preview, and nothing typed is lost.
    let mut ask: Vec<(&str, &str)> = almost.to_vec();
    ask.push(("apercu", "1"));
    let r = submit(&app, &b, "/orientations/nouvelle", &ask).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = text(r).await;
    assert!(html.contains("1 lieu possible à moins de") && html.contains("Médiathèque d'Angoulême"), "{html}");
    assert!(html.contains("value=\"Amina\""), "{html}");

    let good: Vec<(&str, &str)> =
        almost.iter().map(|(k, v)| (*k, if *k == "phone" { "06 12 34 56 78" } else { *v })).collect();
    let r = submit(&app, &b, "/orientations/nouvelle", &good).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", text(r).await);
    let at = location(&r);
    assert!(at.starts_with("/orientations/"), "{at}");
    // Sent twice (a double click): the same referral.
    let again = submit(&app, &b, "/orientations/nouvelle", &good).await;
    assert_eq!(location(&again), at);

    let id = at.trim_start_matches("/orientations/").to_string();
    app.until_status(&id, &app.admin, "offered").await;
    let (status, _, html) = page(&app, &b, &at).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Proposée à Médiathèque d'Angoulême") && html.contains("Amina B."), "{html}");
    assert!(html.contains("Pourquoi ce lieu"), "{html}");
    let (_, _, list) = page(&app, &b, "/orientations").await;
    assert!(list.contains(&id) && list.contains("Angoulême (16015)"), "{list}");
    assert!(
        list.contains("Proposée à Médiathèque d&#39;Angoulême") || list.contains("Proposée à Médiathèque d'Angoulême"),
        "{list}"
    );
    let (_, _, filtered) = page(&app, &b, "/orientations?statut=closed").await;
    assert!(!filtered.contains(&id), "{filtered}");

    // Cancelling needs a reason.
    let csrf = csrf_of(&html);
    let cancel = format!("{}/orientations/{id}/annulation", app.base);
    let r = submit(&app, &b, &cancel, &[("csrf", csrf.as_str()), ("reason", " ")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(r).await.contains("Indiquez le motif"));
    let r = submit(&app, &b, &cancel, &[("csrf", csrf.as_str()), ("reason", "La personne a trouvé de l'aide")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, _, html) = page(&app, &b, &location(&r)).await;
    assert!(html.contains("L'orientation est annulée") && html.contains("Annulée"), "{html}");
    assert!(!html.contains("Annuler l'orientation</button>"), "{html}");

    // A mediator has no referrer's pages: 404, as the API answers.
    let m = browser();
    sign_in(&app, &oidc, &m, &Agent::Demo(KARIM), "/").await;
    assert_eq!(page(&app, &m, "/orientations").await.0, StatusCode::NOT_FOUND);
    assert_eq!(page(&app, &m, &at).await.0, StatusCode::NOT_FOUND);
    // A referral id in a URL is no personal data; the person's name never is in one.
    assert!(!at.contains("Amina"));
    app.stop().await;
}

#[tokio::test]
async fn a_mediator_answers_an_offer_follows_the_person_closes_and_keeps_the_week() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    app.structure("lieu-mediation", structure("Espace numérique", 45.65, 0.16, &["aide_demarches_administratives"], 5))
        .await;
    grant(
        &app,
        &[
            "--email",
            "karim.benali@regie-urbaine-angouleme.example",
            "--role",
            "mediator",
            "--structure",
            "lieu-mediation",
        ],
    )
    .await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    let first = app.submit(&referrer, crate::support::referral()).await;
    app.until_status(&first, &referrer, "offered").await;
    let second = app.submit(&referrer, crate::support::referral()).await;
    app.until_status(&second, &referrer, "offered").await;

    let b = browser();
    sign_in(&app, &oidc, &b, &Agent::Demo(KARIM), "/propositions").await;
    let (status, _, html) = page(&app, &b, "/propositions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("/propositions/{first}")) && html.contains(&format!("/propositions/{second}")),
        "{html}"
    );

    // Before acceptance: the need, never the person.
    let (status, _, html) = page(&app, &b, &format!("/propositions/{first}")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, person) = app.get(&format!("/api/v1/referrals/{first}"), &referrer).await;
    let last_name = person["person"]["last_name"].as_str().unwrap().to_string();
    assert!(!html.contains(&last_name), "no identity before acceptance: {html}");
    assert!(html.contains("Aide aux démarches administratives") && html.contains("Motif du refus"), "{html}");
    let csrf = csrf_of(&html);

    // A refusal needs its reason; then the referral goes elsewhere (or waits).
    let refuse = format!("{}/propositions/{second}/refus", app.base);
    let r = submit(&app, &b, &refuse, &[("csrf", csrf.as_str()), ("reason", "")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(r).await.contains("Choisissez le motif du refus"));
    let r = submit(
        &app,
        &b,
        &refuse,
        &[("csrf", csrf.as_str()), ("reason", "no_capacity"), ("comment", "Complet jusqu'à lundi")],
    )
    .await;
    assert_eq!(location(&r), "/propositions?refusee=1");

    let r = submit(&app, &b, &format!("/propositions/{first}/acceptation"), &[("csrf", csrf.as_str())]).await;
    assert_eq!(location(&r), format!("/suivis/{first}?acceptee=1"));
    let (_, _, html) = page(&app, &b, &location(&r)).await;
    assert!(html.contains(&last_name) && html.contains("Proposition acceptée"), "{html}");
    // Accepting again: the offer has moved on, a page says so (409), not a 500.
    let again = submit(&app, &b, &format!("/propositions/{first}/acceptation"), &[("csrf", csrf.as_str())]).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let (_, _, list) = page(&app, &b, "/suivis").await;
    assert!(list.contains(&format!("/suivis/{first}")), "{list}");

    let r =
        submit(&app, &b, &format!("/suivis/{first}/contact"), &[("csrf", csrf.as_str()), ("kind", "first_contact")])
            .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let close = format!("{}/suivis/{first}/cloture", app.base);
    let r = submit(&app, &b, &close, &[("csrf", csrf.as_str())]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(r).await.contains("Choisissez le résultat"));
    let r = submit(&app, &b, &close, &[("csrf", csrf.as_str()), ("outcome", "completed")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let v = app.until_status(&first, &referrer, "closed").await;
    assert_eq!(v["outcome"], "completed");

    // The week: places, accepting, and opening hours in OSM syntax.
    let (status, _, html) = page(&app, &b, "/ma-structure").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Places par semaine")
            && html.contains("Accepte de nouvelles orientations")
            && html.contains("Horaires")
    );
    let save = format!("{}/ma-structure", app.base);
    let r = submit(&app, &b, &save, &[("csrf", csrf.as_str()), ("capacity", "3"), ("hours", "quand on peut")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(r).await.contains("id=\"hours-error\""));
    let r =
        submit(&app, &b, &save, &[("csrf", csrf.as_str()), ("capacity", "3"), ("hours", "Mo-Fr 09:00-12:00; PH off")])
            .await;
    assert_eq!(location(&r), "/ma-structure?enregistre=1");
    let (_, s) = app.get("/api/v1/structures/lieu-mediation", &app.admin).await;
    assert_eq!((s["weekly_capacity"].as_u64(), s["accepting"].as_bool()), (Some(3), Some(false)), "{s}");
    assert_eq!(s["opening_hours"], "Mo-Fr 09:00-12:00; PH off");

    // A referrer has none of these pages.
    let c = browser();
    grant(
        &app,
        &["--email", "claire.dubois@ccas-angouleme.example", "--role", "referrer", "--organisation", &org.to_string()],
    )
    .await;
    sign_in(&app, &oidc, &c, &Agent::Demo(CLAIRE), "/").await;
    for path in ["/propositions", "/suivis", "/ma-structure", &format!("/suivis/{first}")] {
        assert_eq!(page(&app, &c, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_coordinator_sees_queues_reroutes_a_waiting_referral_and_reads_the_figures() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    app.structure("lieu-coord", structure("Maison numérique", 45.65, 0.16, &["aide_demarches_administratives"], 1))
        .await;
    app.structure("lieu-coord-2", structure("Tiers-lieu", 45.66, 0.17, &["aide_demarches_administratives"], 0)).await;
    grant(
        &app,
        &["--email", "sophie.martin@departement-charente.example", "--role", "coordinator", "--territory", "16"],
    )
    .await;
    grant(
        &app,
        &["--email", "karim.benali@regie-urbaine-angouleme.example", "--role", "mediator", "--structure", "lieu-coord"],
    )
    .await;
    let org = app.organisation("16").await;
    let referrer = app.referrer(org);
    let offered = app.submit(&referrer, crate::support::referral()).await;
    app.until_status(&offered, &referrer, "offered").await;
    // The only place with room has none left: the next one waits.
    let waiting = app.submit(&referrer, crate::support::referral()).await;
    app.until_status(&waiting, &referrer, "waitlisted").await;

    let b = browser();
    sign_in(&app, &oidc, &b, &Agent::Demo(crate::support::oidc::SOPHIE), "/territoire").await;
    let html = crate::support::eventually(
        "insights to see the waiting referral",
        std::time::Duration::from_secs(20),
        || async {
            let (status, _, html) = page(&app, &b, "/territoire").await;
            (status == StatusCode::OK && html.contains(&format!("/territoire/orientations/{waiting}"))).then_some(html)
        },
    )
    .await;
    assert!(html.contains("<caption>Files d'attente</caption>") && html.contains("Maison numérique"), "{html}");

    let (status, _, html) = page(&app, &b, &format!("/territoire/orientations/{waiting}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("Réorienter") && html.contains("<label class=\"fr-label\" for=\"structure\">Structure</label>"),
        "{html}"
    );
    let (_, person) = app.get(&format!("/api/v1/referrals/{waiting}"), &referrer).await;
    assert!(!html.contains(person["person"]["last_name"].as_str().unwrap()), "no personal data for the coordinator");
    let csrf = csrf_of(&html);
    let r = submit(
        &app,
        &b,
        &format!("/territoire/orientations/{waiting}/reorientation"),
        &[("csrf", csrf.as_str()), ("structure", "lieu-coord-2"), ("force", "oui")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", text(r).await);
    app.until_status(&waiting, &referrer, "offered").await;

    let (status, _, html) = page(&app, &b, "/territoire/entonnoir?du=2020-01-01&au=2099-12-31").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<caption>Entonnoir</caption>") && html.contains("role=\"img\""), "{html}");
    assert!(html.contains("<th scope=\"row\">Envoyées</th><td>2</td>"), "{html}");
    let (status, _, html) = page(&app, &b, "/territoire/entonnoir?du=demain&au=2020-01-01").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"du-error\""), "{html}");

    let (status, _, html) = page(&app, &b, "/territoire/offre-et-demande").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<caption>Offre et demande</caption>") && html.contains("Angoulême"), "{html}");

    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let (status, _, html) = page(&app, &b, &format!("/territoire/structures/lieu-coord/rapport?mois={month}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("Télécharger (CSV)") && html.contains("<label class=\"fr-label\" for=\"mois\">Mois</label>"),
        "{html}"
    );
    let csv =
        b.get(format!("{}/territoire/structures/lieu-coord/rapport.csv?mois={month}", app.base)).send().await.unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(!csv.text().await.unwrap().is_empty());
    assert_eq!(
        page(&app, &b, "/territoire/structures/lieu-coord/rapport?mois=13-2026").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let m = browser();
    sign_in(&app, &oidc, &m, &Agent::Demo(KARIM), "/").await;
    for path in [
        "/territoire",
        "/territoire/entonnoir",
        "/territoire/offre-et-demande",
        &format!("/territoire/orientations/{waiting}"),
    ] {
        assert_eq!(page(&app, &m, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_coordinator_validates_a_request_and_invites_an_agent_from_the_accounts_page() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    grant(
        &app,
        &["--email", "sophie.martin@departement-charente.example", "--role", "coordinator", "--territory", "16"],
    )
    .await;
    let org = app.organisation("16").await.to_string();
    crate::accounts::until_place(&app, &org).await;

    // Léa asks for access to the organisation.
    let lea = browser();
    sign_in(&app, &oidc, &lea, &Agent::Demo(crate::support::oidc::LEA), "/compte").await;
    let (_, _, html) = page(&app, &lea, "/compte?q=CCAS").await;
    let csrf = csrf_of(&html);
    let r =
        submit(&app, &lea, "/compte/demandes", &[("csrf", csrf.as_str()), ("place", &format!("organisation:{org}"))])
            .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", text(r).await);

    let b = browser();
    sign_in(&app, &oidc, &b, &Agent::Demo(crate::support::oidc::SOPHIE), "/admin/comptes").await;
    let (status, _, html) = page(&app, &b, "/admin/comptes").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Léa Fontaine") && html.contains("CCAS test"), "{html}");
    let id_at = html.find("/admin/comptes/demandes/").unwrap() + "/admin/comptes/demandes/".len();
    let id = html[id_at..id_at + 36].to_string();
    let csrf = csrf_of(&html);
    let r =
        submit(&app, &b, &format!("/admin/comptes/demandes/{id}"), &[("csrf", csrf.as_str()), ("decision", "valider")])
            .await;
    assert_eq!(location(&r), "/admin/comptes?fait=valide");
    let (_, _, html) = page(&app, &lea, "/").await;
    assert!(html.contains("Prescription — CCAS test"), "Léa's next page has the space: {html}");

    // An invitation: a bad address is refused beside its field; a good one is listed.
    let invite = format!("{}/admin/comptes/invitations", app.base);
    let r = submit(
        &app,
        &b,
        &invite,
        &[("csrf", csrf.as_str()), ("email", "pas-une-adresse"), ("place", "coordinator:16")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(r).await.contains("id=\"email-error\""));
    let r = submit(
        &app,
        &b,
        &invite,
        &[("csrf", csrf.as_str()), ("email", "nouvelle.coordinatrice@example.org"), ("place", "coordinator:16")],
    )
    .await;
    assert_eq!(location(&r), "/admin/comptes?fait=invite");
    let (_, _, html) = page(&app, &b, "/admin/comptes?fait=invite").await;
    assert!(html.contains("nouvelle.coordinatrice@example.org"), "{html}");
    // A referrer has no such page.
    assert_eq!(page(&app, &lea, "/admin/comptes").await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_coordinator_imports_a_mednum_file_and_reads_its_report() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    grant(
        &app,
        &["--email", "sophie.martin@departement-charente.example", "--role", "coordinator", "--territory", "16"],
    )
    .await;
    let b = browser();
    sign_in(&app, &oidc, &b, &Agent::Demo(crate::support::oidc::SOPHIE), "/territoire/import").await;
    let (status, _, html) = page(&app, &b, "/territoire/import").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("<label class=\"fr-label\" for=\"fichier\">Fichier</label>") && html.contains("Importer"),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let upload = |bytes: Vec<u8>, name: &'static str| {
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .part("fichier", reqwest::multipart::Part::bytes(bytes).file_name(name));
        b.post(format!("{}/territoire/import", app.base)).header("origin", &app.base).multipart(form).send()
    };
    // Not a Mednum file: said beside the field, nothing imported.
    let r = upload(b"ceci n'est pas un fichier".to_vec(), "notes.txt").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(r).await.contains("n'est pas un fichier Mednum"));
    // The real Charente file: its report as a page.
    let r = upload(directory::SAMPLE_DIRECTORY.to_vec(), "charente.json").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = text(r).await;
    assert!(html.contains("<caption>Rapport d'import</caption>"), "{html}");
    assert!(html.contains("<th scope=\"row\">Créés</th><td>188</td>"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn an_admin_creates_an_organisation_and_lists_the_structures() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    app.structure(
        "lieu-admin",
        structure("Espace public numérique", 45.65, 0.16, &["aide_demarches_administratives"], 4),
    )
    .await;
    grant(&app, &["--email", "camille.lefevre@aiguillage.example", "--role", "admin"]).await;
    let b = browser();
    sign_in(&app, &oidc, &b, &Agent::Demo(crate::support::oidc::CAMILLE), "/admin/organisations").await;
    let (status, _, html) = page(&app, &b, "/admin/organisations").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&html);
    let create = format!("{}/admin/organisations", app.base);
    let r = submit(
        &app,
        &b,
        &create,
        &[("csrf", csrf.as_str()), ("name", "CCAS de Cognac"), ("kind", "social_service"), ("territory", "99x")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(r).await;
    assert!(html.contains("id=\"territory-error\"") && html.contains("value=\"CCAS de Cognac\""), "{html}");
    let r = b
        .post(&create)
        .header("origin", &app.base)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "CCAS de Cognac"),
            ("kind", "social_service"),
            ("territory", "16"),
            ("siret", "261 601 023 00012"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/admin/organisations?creee=1");
    let (_, _, html) = page(&app, &b, "/admin/organisations?creee=1").await;
    assert!(html.contains("CCAS de Cognac") && html.contains("26160102300012"), "{html}");

    let (status, _, html) = page(&app, &b, "/admin/structures?departement=16").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<caption>Structures</caption>") && html.contains("Espace public numérique"), "{html}");
    assert_eq!(page(&app, &b, "/admin/structures?departement=zz9").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

#[tokio::test]
async fn a_coordinator_adds_a_structure_by_hand_then_edits_it_keeping_what_the_form_does_not_show() {
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    app.structure("lieu-existant", structure("Déjà là", 45.65, 0.16, &["aide_demarches_administratives"], 4)).await;
    grant(
        &app,
        &["--email", "sophie.martin@departement-charente.example", "--role", "coordinator", "--territory", "16"],
    )
    .await;
    let b = browser();
    sign_in(&app, &oidc, &b, &Agent::Demo(crate::support::oidc::SOPHIE), "/admin/structures/nouvelle").await;
    let (status, _, html) = page(&app, &b, "/admin/structures/nouvelle").await;
    assert_eq!(status, StatusCode::OK);
    for name in
        ["Identifiant", "Nom", "Services", "Code postal", "Horaires", "Places par semaine", "Ajouter la structure"]
    {
        assert!(html.contains(name), "{name} is missing from the form");
    }
    let csrf = csrf_of(&html);
    let new = format!("{}/admin/structures/nouvelle", app.base);
    let post = |url: String, fields: Vec<(&'static str, String)>| {
        let b = b.clone();
        let origin = app.base.clone();
        async move { b.post(url).header("origin", origin).form(&fields).send().await.unwrap() }
    };

    // Nothing right: an identifier with an accent, no name, no service, a bad capacity.
    let r = post(new.clone(), vec![("csrf", csrf.clone()), ("id", "médiathèque".into()), ("capacity", "huit".into())])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(r).await;
    assert!(html.contains("id=\"id-error\"") && html.contains("value=\"médiathèque\""), "{html}");
    // An identifier that is taken: refused, not replaced.
    let r = post(
        new.clone(),
        vec![
            ("csrf", csrf.clone()),
            ("id", "lieu-existant".into()),
            ("name", "Autre".into()),
            ("services", "aide_demarches_administratives".into()),
            ("postcode", "16000".into()),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(r).await.contains("Une structure a déjà cet identifiant"));
    assert_eq!(app.get("/api/v1/structures/lieu-existant", &app.admin).await.1["name"], "Déjà là");
    // The API's own refusals, beside their fields: no service, bad hours.
    let r = post(
        new.clone(),
        vec![
            ("csrf", csrf.clone()),
            ("id", "france-services-mansle".into()),
            ("name", "France services Mansle".into()),
            ("postcode", "16230".into()),
            ("hours", "tous les jours".into()),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = text(r).await;
    assert!(html.contains("id=\"services-error\"") && html.contains("id=\"hours-error\""), "{html}");
    assert_eq!(app.get("/api/v1/structures/france-services-mansle", &app.admin).await.0, 404, "nothing half-written");

    let r = post(
        new.clone(),
        vec![
            ("csrf", csrf.clone()),
            ("id", "france-services-mansle".into()),
            ("name", "France services Mansle".into()),
            ("services", "aide_demarches_administratives".into()),
            ("services", "insertion_professionnelle".into()),
            ("street", "21 rue Martin".into()),
            ("postcode", "16230".into()),
            ("commune", "Mansle".into()),
            ("hours", "Mo-Fr 10:00-12:00,14:00-17:30".into()),
            ("capacity", "6".into()),
            ("accepting", "oui".into()),
            ("phone", "05 45 20 72 08".into()),
        ],
    )
    .await;
    assert_eq!(location(&r), "/admin/structures/france-services-mansle/modifier?enregistree=1");
    let (status, stored) = app.get("/api/v1/structures/france-services-mansle", &app.admin).await;
    assert_eq!(status, 200);
    assert_eq!((stored["territory"].as_str(), stored["weekly_capacity"].as_i64()), (Some("16"), Some(6)));

    // Languages set through the API stay when the page edits the structure.
    let mut with_languages = stored.clone();
    with_languages["languages"] = serde_json::json!(["fr", "ar"]);
    let (status, _) = app.put("/api/v1/structures/france-services-mansle", &app.admin, with_languages).await;
    assert!(status == 200 || status == 201, "{status}");
    let (status, _, html) = page(&app, &b, "/admin/structures/france-services-mansle/modifier?enregistree=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Enregistré.") && html.contains("value=\"France services Mansle\""), "{html}");
    let edit = format!("{}/admin/structures/france-services-mansle/modifier", app.base);
    let r = post(
        edit,
        vec![
            ("csrf", csrf.clone()),
            ("name", "France services de Mansle".into()),
            ("services", "aide_demarches_administratives".into()),
            ("street", "21 rue Martin".into()),
            ("postcode", "16230".into()),
            ("commune", "Mansle".into()),
            ("hours", "Mo-Fr 10:00-12:00".into()),
            ("capacity", "3".into()),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, after) = app.get("/api/v1/structures/france-services-mansle", &app.admin).await;
    assert_eq!(after["name"], "France services de Mansle");
    assert_eq!((after["weekly_capacity"].as_i64(), after["accepting"].as_bool()), (Some(3), Some(false)));
    assert_eq!(after["languages"], serde_json::json!(["ar", "fr"]), "kept: {after}");
    assert_eq!(after["location"], stored["location"]);

    let (_, _, html) = page(&app, &b, "/admin/structures?departement=16").await;
    assert!(html.contains("href=\"/admin/structures/france-services-mansle/modifier\""), "{html}");
    // A structure outside the coordinator's territory, or none: not theirs.
    assert_eq!(page(&app, &b, "/admin/structures/inconnue/modifier").await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// The data protection officer signs in like any agent and reads the audit of access on
/// `/journal`: who did what to which referral, filtered, page by page, with errors in
/// French beside the field; never a person's values; nothing else of Aiguillage.
#[tokio::test]
async fn the_data_protection_officer_reads_the_audit_of_access_on_the_journal_page() {
    use crate::support::oidc::NADIA;
    let oidc = OidcProvider::start().await;
    let app = server(&oidc, oidc.client()).await;
    let organisation = app.organisation("16").await;
    let referrer = app.referrer(organisation);
    let body = crate::support::merged(
        crate::support::referral(),
        serde_json::json!({"person": {"first_name": "Prénomjournal", "last_name": "Nomjournal"}}),
    );
    let first = app.submit(&referrer, body.clone()).await;
    let other = app.submit(&referrer, body).await;
    // 51 reads of the first: the journal's first page holds 50 entries.
    for _ in 0..51 {
        assert_eq!(app.get(&format!("/api/v1/referrals/{first}"), &referrer).await.0, 200);
    }
    grant(&app, &["--email", "nadia.roussel@departement-charente.example", "--role", "dpo"]).await;
    let b = browser();
    sign_in(&app, &oidc, &b, &Agent::Demo(NADIA), "/").await;
    let (status, _, html) = page(&app, &b, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Consulter le journal des accès aux données personnelles"), "{html}");
    assert!(html.contains("Protection des données"), "{html}");

    let (status, _, html) = page(&app, &b, "/journal").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<caption>Entrées du journal"), "{html}");
    assert!(html.contains(&first) && html.contains(&other), "{html}");
    assert!(html.contains("Envoi de l'orientation") && html.contains("Lecture des données de la personne"));
    assert!(html.contains("Prescription") && html.contains("jeton"), "{html}");
    assert!(!html.contains("Prénomjournal") && !html.contains("Nomjournal"), "no person's value");

    // One referral, page by page: its submission and 51 reads, as the API counts them.
    let (_, audit) = app.get(&format!("/api/v1/audit?referral_id={first}&limit=1000"), &app.admin).await;
    let entries = audit["items"].as_array().unwrap().len();
    assert!((52..100).contains(&entries), "{audit}");
    let (status, _, html) = page(&app, &b, &format!("/journal?orientation={first}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(&other), "only the referral asked for");
    assert_eq!(html.matches("<tr>").count() - 1, 50, "a page of 50 entries and the header");
    let tail = html.rfind("Entrées suivantes").expect("Entrées suivantes");
    let link = html[..tail].rfind("href=\"").unwrap();
    // As a browser reads the attribute (askama writes `&` as `&#38;`).
    let next = html[link + 6..tail].split('"').next().unwrap().replace("&#38;", "&").replace("&amp;", "&");
    assert!(next.starts_with("/journal?orientation=") && next.contains("apres="), "{next}");
    let (status, _, html) = page(&app, &b, &next).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(html.matches("<tr>").count() - 1, entries - 50, "the last entries, at {next}");
    assert!(!html.contains("Entrées suivantes"), "{html}");

    // Bad filters: 422, a French message beside the field, nothing half-shown.
    let (status, _, html) = page(&app, &b, "/journal?orientation=pas-un-identifiant").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"orientation-error\"") && html.contains("Indiquez l'identifiant d'une orientation"));
    assert!(html.contains("value=\"pas-un-identifiant\"") && !html.contains("<caption>Entrées"), "{html}");
    let (status, _, html) = page(&app, &b, "/journal?du=2026-12-10&au=2026-12-01").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"au-error\""), "{html}");
    let (status, _, html) = page(&app, &b, "/journal?agent=123&du=31%2F12").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"agent-error\"") && html.contains("id=\"du-error\""), "{html}");
    assert_eq!(page(&app, &b, "/journal?apres=abc").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    // A period with nothing in it.
    let (status, _, html) = page(&app, &b, "/journal?du=2020-01-01&au=2020-01-31").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Aucune entrée pour ce filtre."), "{html}");

    // The officer reads the audit, not the referrals nor the territory.
    for path in ["/orientations", "/territoire", "/admin/comptes", &format!("/orientations/{first}")] {
        assert_eq!(page(&app, &b, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    // A referrer does not read the audit.
    grant(
        &app,
        &[
            "--email",
            "claire.dubois@ccas-angouleme.example",
            "--role",
            "referrer",
            "--organisation",
            &organisation.to_string(),
        ],
    )
    .await;
    let claire = browser();
    sign_in(&app, &oidc, &claire, &Agent::Demo(CLAIRE), "/").await;
    assert_eq!(page(&app, &claire, "/journal").await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}
