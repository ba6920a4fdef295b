//! The pages every visitor can read, signed in or not: the accessibility statement,
//! personal data and the legal notice (the footer's links).

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::WebState;
use crate::extract::Visitor;
use crate::views::{Chrome, Info, render};

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/accessibilite", get(accessibility))
        .route("/donnees-personnelles", get(personal_data))
        .route("/mentions-legales", get(legal))
}

fn info_page(Visitor(agent): Visitor, heading: &str, body: &'static str) -> Response {
    let chrome = match &agent {
        Some(a) => a.chrome(heading, ""),
        None => Chrome::public(heading, ""),
    };
    render(StatusCode::OK, &Info { chrome, heading: heading.to_string(), body }, agent.is_some())
}

async fn accessibility(visitor: Visitor) -> Response {
    info_page(visitor, "Déclaration d'accessibilité", ACCESSIBILITY)
}

async fn personal_data(visitor: Visitor) -> Response {
    info_page(visitor, "Données personnelles", PERSONAL_DATA)
}

async fn legal(visitor: Visitor) -> Response {
    info_page(visitor, "Mentions légales", LEGAL)
}

const ACCESSIBILITY: &str = r#"<p>L'opérateur d'Aiguillage s'engage à rendre ce service accessible, conformément à l'article 47 de la loi n° 2005-102 du 11 février 2005.</p>
<h2>État de conformité</h2>
<p>Aiguillage est <strong>partiellement conforme</strong> au référentiel général d'amélioration de l'accessibilité (RGAA 4.1.2) : aucun audit complet n'a encore été réalisé. Chaque page est vérifiée automatiquement (axe-core, critères WCAG 2.1 A et AA), au clavier et sans JavaScript.</p>
<h2>Retour d'information et contact</h2>
<p>Si vous ne pouvez pas accéder à un contenu ou à un service, contactez l'opérateur de ce site pour être orienté vers une alternative accessible.</p>
<h2>Voies de recours</h2>
<p>Si vous constatez un défaut d'accessibilité vous empêchant d'accéder à un contenu et que vous n'avez pas obtenu de réponse satisfaisante, vous pouvez saisir le Défenseur des droits (<a href="https://formulaire.defenseurdesdroits.fr/">formulaire en ligne</a>).</p>"#;

const PERSONAL_DATA: &str = r#"<p>Aiguillage traite les données des agents qui s'y connectent (nom, prénom, adresse e-mail et SIRET de l'employeur, transmis par ProConnect) pour leur donner accès à leurs espaces, et les données des personnes orientées, que les travailleurs sociaux saisissent avec leur consentement.</p>
<h2>Ce que nous ne faisons pas</h2>
<ul>
<li>Aucune donnée personnelle n'apparaît dans les adresses des pages, les journaux techniques ou les messages échangés entre les services.</li>
<li>Aucun cookie de mesure d'audience ni de publicité : un seul cookie, nécessaire, garde votre session (12 heures sans activité, 7 jours au plus).</li>
</ul>
<h2>Vos droits</h2>
<p>Vous pouvez accéder à vos données, les faire rectifier ou effacer auprès de l'opérateur de ce site et de son délégué à la protection des données. Vous pouvez aussi adresser une réclamation à la CNIL.</p>"#;

const LEGAL: &str = r#"<p>Aiguillage est un logiciel libre (licence AGPL-3.0 ou ultérieure). Ce site est édité et hébergé par l'organisme qui l'exploite ; ses coordonnées sont données par l'administrateur de la plateforme.</p>
<p>Les données du répertoire des lieux de médiation numérique proviennent du standard de la Mednum et des jeux de données ouverts cités dans la documentation du projet.</p>"#;
