//! The fast tier: the insights API's access rules and parameter checks, through the
//! router with `oneshot`, each test on a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use contracts::Role;
use platform::auth::Scope;
use platform::testing::{Keys, call, migrate_platform};
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn only_coordinators_of_the_territory_and_admins_read_it(pool: PgPool) {
    migrate_platform(&pool).await;
    insights::migrate(&pool).await.unwrap();
    let keys = Keys::default();
    let config = Arc::new(platform::Config::from_lookup(|_| None).unwrap());
    let router = insights::router(insights::InsightsState { pool, auth: keys.authenticator(), config });
    let coordinator = keys.token(Role::Coordinator, Scope::Territories(vec!["16".parse().unwrap()]));
    let admin = keys.token(Role::Admin, Scope::All);
    let referrer = keys.token(Role::Referrer, Scope::Organisation(contracts::OrganisationId::new()));
    let mediator = keys.token(Role::Mediator, Scope::Structure("lieu".parse().unwrap()));
    for path in ["/api/v1/insights/queues?territory=16", "/api/v1/insights/funnel?territory=16"] {
        assert_eq!(call(&router, "GET", path, Some(&coordinator), None, &[]).await.0, 200, "{path}");
        assert_eq!(call(&router, "GET", path, Some(&admin), None, &[]).await.0, 200, "{path}");
        assert_eq!(call(&router, "GET", path, Some(&referrer), None, &[]).await.0, 403, "{path}");
        assert_eq!(call(&router, "GET", path, Some(&mediator), None, &[]).await.0, 403, "{path}");
        let elsewhere = path.replace("=16", "=17");
        assert_eq!(call(&router, "GET", &elsewhere, Some(&coordinator), None, &[]).await.0, 404, "{elsewhere}");
    }
    let (s, problem, _) =
        call(&router, "GET", "/api/v1/insights/funnel?territory=16&from=hier", Some(&coordinator), None, &[]).await;
    assert_eq!(s, 422, "{problem}");
    assert!(problem.to_string().contains("from"), "{problem}");
    let (s, _, headers) =
        call(&router, "GET", "/api/v1/insights/export.csv?territory=16", Some(&coordinator), None, &[]).await;
    assert_eq!(s, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
}
