//! SQL for the `accounts` schema. Rows become typed values or a [`RowError`] naming the
//! row; agents' names and e-mail addresses come out wrapped in [`Personal`].

use chrono::{DateTime, Utc};
use contracts::accounts::{
    AgentView, AuditEntry, InvitationView, MembershipView, PlaceKind, PlaceView, RequestStatus, RequestView,
};
use contracts::{OrganisationId, Personal, Role, StructureId, Territory};
use platform::row::{Columns, RowError};
use platform::vault::{Vault, VaultError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Grant;

/// Where a sealed value lives (`table.column:row id`): the associated data that binds it
/// there, so a value copied to another row or column does not open.
pub fn place(table_column: &str, row: Uuid) -> String {
    format!("{table_column}:{row}")
}

/// The blind index of a normalised e-mail address ([`crate::domain::email_key`]): what
/// `email_key` columns hold and lookups compare, never the address.
pub fn email_index(vault: &Vault, normalised: &str) -> Vec<u8> {
    vault.blind_index("accounts.email", normalised)
}

/// The `key_id` column of a row sealed now: the vault's current key.
fn key_id(vault: &Vault) -> i32 {
    vault.current_key() as i32
}

fn vault_error(err: VaultError) -> sqlx::Error {
    match err {
        VaultError::Database(err) => err,
        other => sqlx::Error::Decode(Box::new(other)),
    }
}

/// Opens a sealed value, reloading the keys first if it names one this process has not
/// loaded yet (a rotation by another process).
async fn open(conn: &mut PgConnection, vault: &Vault, place: &str, sealed: &[u8]) -> sqlx::Result<String> {
    if !vault.knows(sealed) {
        vault.reload(&mut *conn).await.map_err(vault_error)?;
    }
    vault.open_value(place, sealed).map_err(vault_error)
}

async fn open_opt(
    conn: &mut PgConnection,
    vault: &Vault,
    place: &str,
    sealed: Option<&[u8]>,
) -> sqlx::Result<Option<String>> {
    match sealed {
        Some(s) => Ok(Some(open(conn, vault, place, s).await?)),
        None => Ok(None),
    }
}

/// An agent's identity, as the web app verified it with the provider.
pub struct Identity<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: &'a Personal<String>,
    /// The normalised address ([`crate::domain::email_key`]), before its blind index.
    pub email_key: &'a str,
    pub given_name: Option<&'a Personal<String>>,
    pub usual_name: Option<&'a Personal<String>>,
    pub siret: Option<&'a str>,
}

/// Creates the account of a first sign-in, or refreshes its names, e-mail and SIRET,
/// sealed for the account's row. Returns the account id and whether it was created.
pub async fn sign_in(conn: &mut PgConnection, vault: &Vault, who: &Identity<'_>) -> sqlx::Result<(Uuid, bool)> {
    // The row first (its id is what the values are sealed for), then its values: two
    // concurrent first sign-ins meet on the unique (issuer, subject) and the row lock.
    let inserted = sqlx::query_scalar!(
        "INSERT INTO accounts.accounts (id, issuer, subject) VALUES ($1, $2, $3)
         ON CONFLICT (issuer, subject) DO NOTHING RETURNING id",
        Uuid::now_v7(),
        who.issuer,
        who.subject
    )
    .fetch_optional(&mut *conn)
    .await?;
    let (id, created) = match inserted {
        Some(id) => (id, true),
        None => {
            let id = sqlx::query_scalar!(
                "SELECT id FROM accounts.accounts WHERE issuer = $1 AND subject = $2 FOR UPDATE",
                who.issuer,
                who.subject
            )
            .fetch_one(&mut *conn)
            .await?;
            (id, false)
        }
    };
    sqlx::query!(
        "UPDATE accounts.accounts SET given_name = $2, usual_name = $3, email = $4, email_key = $5, siret = $6,
                key_id = $7, last_sign_in_at = now()
         WHERE id = $1",
        id,
        who.given_name.map(|n| vault.seal(&place("accounts.given_name", id), n.expose())),
        who.usual_name.map(|n| vault.seal(&place("accounts.usual_name", id), n.expose())),
        vault.seal(&place("accounts.email", id), who.email.expose()),
        email_index(vault, who.email_key),
        who.siret,
        key_id(vault)
    )
    .execute(&mut *conn)
    .await?;
    Ok((id, created))
}

/// An account written directly (the load generator's recipients): sealed like a
/// sign-in's, with one membership.
pub async fn create_agent(
    conn: &mut PgConnection,
    vault: &Vault,
    issuer: &str,
    email: &str,
    grant: &Grant,
    by: &str,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    let normalised = crate::domain::email_key(email).unwrap_or_else(|| email.trim().to_lowercase());
    sqlx::query!(
        "INSERT INTO accounts.accounts (id, issuer, subject, email, email_key, key_id) VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        issuer,
        id.to_string(),
        vault.seal(&place("accounts.email", id), email),
        email_index(vault, &normalised),
        key_id(vault)
    )
    .execute(&mut *conn)
    .await?;
    self::grant(conn, id, grant, by).await?;
    Ok(id)
}

struct AgentRow {
    id: Uuid,
    given_name: Option<Vec<u8>>,
    usual_name: Option<Vec<u8>>,
    email: Vec<u8>,
    siret: Option<String>,
    last_sign_in_at: Option<DateTime<Utc>>,
}

async fn agent_view(conn: &mut PgConnection, vault: &Vault, r: AgentRow) -> sqlx::Result<AgentView> {
    Ok(AgentView {
        account_id: r.id,
        given_name: open_opt(conn, vault, &place("accounts.given_name", r.id), r.given_name.as_deref())
            .await?
            .map(Personal::new),
        usual_name: open_opt(conn, vault, &place("accounts.usual_name", r.id), r.usual_name.as_deref())
            .await?
            .map(Personal::new),
        email: Personal::new(open(conn, vault, &place("accounts.email", r.id), &r.email).await?),
        siret: r.siret,
        last_sign_in_at: r.last_sign_in_at,
    })
}

/// An account that has not been purged.
pub async fn agent(conn: &mut PgConnection, vault: &Vault, id: Uuid) -> sqlx::Result<Option<AgentView>> {
    let row = sqlx::query_as!(
        AgentRow,
        r#"SELECT id, given_name, usual_name, email AS "email!", siret, last_sign_in_at FROM accounts.accounts
           WHERE id = $1 AND purged_at IS NULL AND email IS NOT NULL"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(r) => Ok(Some(agent_view(conn, vault, r).await?)),
        None => Ok(None),
    }
}

/// The account with this (normalised) address, by its blind index.
pub async fn account_by_email(conn: &mut PgConnection, vault: &Vault, email_key: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM accounts.accounts WHERE email_key = $1 AND purged_at IS NULL ORDER BY created_at LIMIT 1",
        email_index(vault, email_key)
    )
    .fetch_optional(conn)
    .await
}

/// A stored grant (membership, request or invitation), its columns read as their types
/// (a value that is none fails the read), before they are checked to make one grant.
struct GrantColumns {
    role: Role,
    organisation_id: Option<OrganisationId>,
    structure_id: Option<StructureId>,
    territories: Vec<Territory>,
}

fn grant_of(c: &Columns, g: GrantColumns) -> Result<Grant, RowError> {
    Grant::from_parts(g.role, g.organisation_id, g.structure_id, set(g.territories)).map_err(|e| c.error("role", e))
}

/// A list of départements as a set: sorted, each once.
fn set(mut territories: Vec<Territory>) -> Vec<Territory> {
    territories.sort();
    territories.dedup();
    territories
}

fn membership_view(id: Uuid, grant: &Grant, label: String) -> MembershipView {
    let (role, organisation_id, structure_id, territories) = match grant {
        Grant::Admin => (Role::Admin, None, None, vec![]),
        Grant::Dpo => (Role::Dpo, None, None, vec![]),
        Grant::Referrer(o) => (Role::Referrer, Some(*o), None, vec![]),
        Grant::Mediator(s) => (Role::Mediator, None, Some(s.clone()), vec![]),
        Grant::Coordinator(t) => (Role::Coordinator, None, None, t.clone()),
    };
    MembershipView { id, role, organisation_id, structure_id, territories, label }
}

/// A membership in force.
#[derive(Debug, Clone)]
pub struct Membership {
    pub id: Uuid,
    pub account_id: Uuid,
    pub grant: Grant,
    pub label: String,
    /// The départements it concerns.
    pub scope: Vec<Territory>,
}

impl Membership {
    pub fn view(&self) -> MembershipView {
        membership_view(self.id, &self.grant, self.label.clone())
    }
}

struct MembershipRow {
    id: Uuid,
    account_id: Uuid,
    role: Role,
    organisation_id: Option<OrganisationId>,
    structure_id: Option<StructureId>,
    territories: Vec<Territory>,
    label: String,
    scope: Vec<Territory>,
}

impl TryFrom<MembershipRow> for Membership {
    type Error = RowError;
    fn try_from(r: MembershipRow) -> Result<Self, RowError> {
        let c = Columns::of("accounts.memberships", r.id);
        let grant = grant_of(
            &c,
            GrantColumns {
                role: r.role,
                organisation_id: r.organisation_id,
                structure_id: r.structure_id,
                territories: r.territories,
            },
        )?;
        Ok(Membership { id: r.id, account_id: r.account_id, grant, label: r.label, scope: set(r.scope) })
    }
}

fn memberships_of(rows: Vec<MembershipRow>) -> sqlx::Result<Vec<Membership>> {
    Ok(rows.into_iter().map(Membership::try_from).collect::<Result<_, _>>()?)
}

/// The memberships in force of an account, oldest first.
pub async fn memberships(conn: &mut PgConnection, account_id: Uuid) -> sqlx::Result<Vec<Membership>> {
    let rows = sqlx::query_as!(
        MembershipRow,
        r#"SELECT id, account_id, role AS "role: Role", organisation_id AS "organisation_id: OrganisationId",
                  structure_id AS "structure_id: StructureId", territories AS "territories: Vec<Territory>",
                  accounts.grant_label(role, organisation_id, structure_id, territories) AS "label!",
                  accounts.grant_scope(role, organisation_id, structure_id, territories) AS "scope!: Vec<Territory>"
           FROM accounts.memberships WHERE account_id = $1 AND removed_at IS NULL ORDER BY granted_at, id"#,
        account_id
    )
    .fetch_all(conn)
    .await?;
    memberships_of(rows)
}

/// One membership in force, locked.
pub async fn lock_membership(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Membership>> {
    let row = sqlx::query_as!(
        MembershipRow,
        r#"SELECT id, account_id, role AS "role: Role", organisation_id AS "organisation_id: OrganisationId",
                  structure_id AS "structure_id: StructureId", territories AS "territories: Vec<Territory>",
                  accounts.grant_label(role, organisation_id, structure_id, territories) AS "label!",
                  accounts.grant_scope(role, organisation_id, structure_id, territories) AS "scope!: Vec<Territory>"
           FROM accounts.memberships WHERE id = $1 AND removed_at IS NULL FOR UPDATE"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Membership::try_from).transpose()?)
}

/// Gives an account a membership. Returns its id, or `None` if it already holds it.
pub async fn grant(conn: &mut PgConnection, account_id: Uuid, grant: &Grant, by: &str) -> sqlx::Result<Option<Uuid>> {
    let (role, organisation, structure, territories) = grant.columns();
    sqlx::query_scalar!(
        "INSERT INTO accounts.memberships (id, account_id, role, organisation_id, structure_id, territories, granted_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
        Uuid::now_v7(),
        account_id,
        role.slug(),
        organisation.map(OrganisationId::as_uuid),
        structure.map(StructureId::as_str),
        &territories,
        by
    )
    .fetch_optional(conn)
    .await
}

pub async fn remove_membership(conn: &mut PgConnection, id: Uuid, by: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE accounts.memberships SET removed_at = now(), removed_by = $2 WHERE id = $1 AND removed_at IS NULL",
        id,
        by
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Every account with its memberships in force; for a coordinator, only accounts holding
/// a membership within their départements (`territories`).
pub async fn accounts(
    conn: &mut PgConnection,
    vault: &Vault,
    territories: Option<&[String]>,
    limit: i64,
) -> sqlx::Result<Vec<(AgentView, Vec<Membership>)>> {
    let agents = sqlx::query_as!(
        AgentRow,
        r#"SELECT a.id, a.given_name, a.usual_name, a.email AS "email!", a.siret, a.last_sign_in_at
           FROM accounts.accounts a
           WHERE a.purged_at IS NULL AND a.email IS NOT NULL AND ($1::text[] IS NULL OR EXISTS (
               SELECT 1 FROM accounts.memberships m WHERE m.account_id = a.id AND m.removed_at IS NULL
                 AND accounts.grant_scope(m.role, m.organisation_id, m.structure_id, m.territories) <@ $1
                 AND cardinality(accounts.grant_scope(m.role, m.organisation_id, m.structure_id, m.territories)) > 0))
           ORDER BY a.created_at DESC, a.id LIMIT $2"#,
        territories,
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = agents.iter().map(|a| a.id).collect();
    let rows = sqlx::query_as!(
        MembershipRow,
        r#"SELECT id, account_id, role AS "role: Role", organisation_id AS "organisation_id: OrganisationId",
                  structure_id AS "structure_id: StructureId", territories AS "territories: Vec<Territory>",
                  accounts.grant_label(role, organisation_id, structure_id, territories) AS "label!",
                  accounts.grant_scope(role, organisation_id, structure_id, territories) AS "scope!: Vec<Territory>"
           FROM accounts.memberships WHERE account_id = ANY($1) AND removed_at IS NULL ORDER BY granted_at, id"#,
        &ids
    )
    .fetch_all(&mut *conn)
    .await?;
    let memberships = memberships_of(rows)?;
    let mut out = Vec::with_capacity(agents.len());
    for a in agents {
        let mine = memberships.iter().filter(|m| m.account_id == a.id).cloned().collect();
        out.push((agent_view(conn, vault, a).await?, mine));
    }
    Ok(out)
}

/// An invitation not yet accepted.
pub struct Invitation {
    pub id: Uuid,
    pub grant: Grant,
}

/// Open invitations for an e-mail address, locked so two sign-ins accept each once.
pub async fn open_invitations(
    conn: &mut PgConnection,
    vault: &Vault,
    email_key: &str,
) -> sqlx::Result<Vec<Invitation>> {
    let rows = sqlx::query!(
        r#"SELECT id, role AS "role: Role", organisation_id AS "organisation_id: OrganisationId",
                  structure_id AS "structure_id: StructureId", territories AS "territories: Vec<Territory>"
           FROM accounts.invitations
           WHERE email_key = $1 AND accepted_at IS NULL ORDER BY created_at FOR UPDATE"#,
        email_index(vault, email_key)
    )
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let c = Columns::of("accounts.invitations", r.id);
        let g = GrantColumns {
            role: r.role,
            organisation_id: r.organisation_id,
            structure_id: r.structure_id,
            territories: r.territories,
        };
        out.push(Invitation { id: r.id, grant: grant_of(&c, g)? });
    }
    Ok(out)
}

pub async fn accept_invitation(conn: &mut PgConnection, id: Uuid, account_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("UPDATE accounts.invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1", id, account_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn invite(
    conn: &mut PgConnection,
    vault: &Vault,
    email: &Personal<String>,
    email_key: &str,
    grant: &Grant,
    by: &str,
) -> sqlx::Result<Uuid> {
    let (role, organisation, structure, territories) = grant.columns();
    let id = Uuid::now_v7();
    sqlx::query_scalar!(
        "INSERT INTO accounts.invitations
             (id, email, email_key, key_id, role, organisation_id, structure_id, territories, invited_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        id,
        vault.seal(&place("invitations.email", id), email.expose()),
        email_index(vault, email_key),
        key_id(vault),
        role.slug(),
        organisation.map(OrganisationId::as_uuid),
        structure.map(StructureId::as_str),
        &territories,
        by
    )
    .fetch_one(conn)
    .await
}

/// Whether an invitation or an account exists for this (normalised) address.
pub async fn known_email(conn: &mut PgConnection, vault: &Vault, email_key: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM accounts.invitations WHERE email_key = $1)
               OR EXISTS (SELECT 1 FROM accounts.accounts WHERE email_key = $1) AS "known!""#,
        email_index(vault, email_key)
    )
    .fetch_one(conn)
    .await
}

/// Invitations, newest first; for a coordinator, those within their départements.
struct InvitationRow {
    id: Uuid,
    email: Vec<u8>,
    role: Role,
    organisation_id: Option<OrganisationId>,
    structure_id: Option<StructureId>,
    territories: Vec<Territory>,
    created_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
    label: String,
}

pub async fn invitations(
    conn: &mut PgConnection,
    vault: &Vault,
    territories: Option<&[String]>,
    limit: i64,
) -> sqlx::Result<Vec<InvitationView>> {
    let rows = sqlx::query_as!(
        InvitationRow,
        r#"SELECT id, email, role AS "role: Role", organisation_id AS "organisation_id: OrganisationId",
                  structure_id AS "structure_id: StructureId", territories AS "territories: Vec<Territory>",
                  created_at, accepted_at,
                  accounts.grant_label(role, organisation_id, structure_id, territories) AS "label!"
           FROM accounts.invitations
           WHERE $1::text[] IS NULL OR (
               accounts.grant_scope(role, organisation_id, structure_id, territories) <@ $1
               AND cardinality(accounts.grant_scope(role, organisation_id, structure_id, territories)) > 0)
           ORDER BY created_at DESC, id LIMIT $2"#,
        territories,
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let c = Columns::of("accounts.invitations", r.id);
        let g = GrantColumns {
            role: r.role,
            organisation_id: r.organisation_id,
            structure_id: r.structure_id,
            territories: r.territories,
        };
        let v = membership_view(r.id, &grant_of(&c, g)?, r.label);
        let email = open(conn, vault, &place("invitations.email", r.id), &r.email).await?;
        out.push(InvitationView {
            id: r.id,
            email: Personal::new(email),
            role: v.role,
            organisation_id: v.organisation_id,
            structure_id: v.structure_id,
            territories: v.territories,
            label: v.label,
            created_at: r.created_at,
            accepted_at: r.accepted_at,
        });
    }
    Ok(out)
}

/// A membership request.
pub struct Request {
    pub id: Uuid,
    pub account_id: Uuid,
    pub grant: Grant,
    pub label: String,
    pub scope: Vec<Territory>,
    pub status: RequestStatus,
    pub message: Option<Personal<String>>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl Request {
    pub fn view(&self, account: Option<AgentView>) -> RequestView {
        let v = membership_view(self.id, &self.grant, self.label.clone());
        RequestView {
            id: self.id,
            role: v.role,
            organisation_id: v.organisation_id,
            structure_id: v.structure_id,
            territories: v.territories,
            label: v.label,
            status: self.status,
            message: self.message.clone(),
            created_at: self.created_at,
            decided_at: self.decided_at,
            account,
        }
    }
}

struct RequestRow {
    id: Uuid,
    account_id: Uuid,
    role: Role,
    organisation_id: Option<OrganisationId>,
    structure_id: Option<StructureId>,
    territories: Vec<Territory>,
    label: String,
    scope: Vec<Territory>,
    /// contracts' `RequestStatus` has no column type: read as text, parsed below.
    status: String,
    message: Option<Vec<u8>>,
    created_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
}

impl RequestRow {
    /// The typed request, its message opened from where it was sealed.
    async fn open(self, conn: &mut PgConnection, vault: &Vault) -> sqlx::Result<Request> {
        let c = Columns::of("accounts.requests", self.id);
        let message = open_opt(conn, vault, &place("requests.message", self.id), self.message.as_deref()).await?;
        let grant = grant_of(
            &c,
            GrantColumns {
                role: self.role,
                organisation_id: self.organisation_id,
                structure_id: self.structure_id,
                territories: self.territories,
            },
        )?;
        let status = match self.status.as_str() {
            "pending" => RequestStatus::Pending,
            "approved" => RequestStatus::Approved,
            "refused" => RequestStatus::Refused,
            other => return Err(c.error("status", format!("unknown status `{other}`")).into()),
        };
        Ok(Request {
            id: self.id,
            account_id: self.account_id,
            grant,
            label: self.label,
            scope: set(self.scope),
            status,
            message: message.map(Personal::new),
            created_at: self.created_at,
            decided_at: self.decided_at,
        })
    }
}

/// Files a request, its message sealed; `None` if the same one is already waiting.
pub async fn request(
    conn: &mut PgConnection,
    vault: &Vault,
    account_id: Uuid,
    grant: &Grant,
    message: Option<&str>,
) -> sqlx::Result<Option<Uuid>> {
    let (role, organisation, structure, territories) = grant.columns();
    let id = Uuid::now_v7();
    sqlx::query_scalar!(
        "INSERT INTO accounts.requests (id, account_id, role, organisation_id, structure_id, territories, message, key_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id",
        id,
        account_id,
        role.slug(),
        organisation.map(OrganisationId::as_uuid),
        structure.map(StructureId::as_str),
        &territories,
        message.map(|m| vault.seal(&place("requests.message", id), m)),
        key_id(vault)
    )
    .fetch_optional(conn)
    .await
}

/// What selects requests.
pub struct RequestFilter<'a> {
    pub status: Option<&'a str>,
    pub account_id: Option<Uuid>,
    /// A coordinator's départements (`None`: every request).
    pub territories: Option<&'a [String]>,
    pub limit: i64,
}

pub async fn requests(conn: &mut PgConnection, vault: &Vault, f: &RequestFilter<'_>) -> sqlx::Result<Vec<Request>> {
    // The column list is lock_request's: the macros take only a literal.
    let rows = sqlx::query_as!(
        RequestRow,
        r#"SELECT id, account_id, role AS "role: Role", organisation_id AS "organisation_id: OrganisationId",
                  structure_id AS "structure_id: StructureId", territories AS "territories: Vec<Territory>",
                  status, message, created_at, decided_at,
                  accounts.grant_label(role, organisation_id, structure_id, territories) AS "label!",
                  accounts.grant_scope(role, organisation_id, structure_id, territories) AS "scope!: Vec<Territory>"
           FROM accounts.requests
           WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR account_id = $2)
             AND ($3::text[] IS NULL OR (
                 accounts.grant_scope(role, organisation_id, structure_id, territories) <@ $3
                 AND cardinality(accounts.grant_scope(role, organisation_id, structure_id, territories)) > 0))
           ORDER BY created_at DESC, id LIMIT $4"#,
        f.status,
        f.account_id,
        f.territories,
        f.limit
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut requests = Vec::with_capacity(rows.len());
    for row in rows {
        requests.push(row.open(conn, vault).await?);
    }
    Ok(requests)
}

pub async fn lock_request(conn: &mut PgConnection, vault: &Vault, id: Uuid) -> sqlx::Result<Option<Request>> {
    // The column list is requests': the macros take only a literal.
    let row = sqlx::query_as!(
        RequestRow,
        r#"SELECT id, account_id, role AS "role: Role", organisation_id AS "organisation_id: OrganisationId",
                  structure_id AS "structure_id: StructureId", territories AS "territories: Vec<Territory>",
                  status, message, created_at, decided_at,
                  accounts.grant_label(role, organisation_id, structure_id, territories) AS "label!",
                  accounts.grant_scope(role, organisation_id, structure_id, territories) AS "scope!: Vec<Territory>"
           FROM accounts.requests WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(Some(row.open(conn, vault).await?)),
        None => Ok(None),
    }
}

/// Records a decision; a refusal's reason is sealed like the request's message.
pub async fn decide(
    conn: &mut PgConnection,
    vault: &Vault,
    id: Uuid,
    status: RequestStatus,
    by: &str,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    let status = match status {
        RequestStatus::Pending => "pending",
        RequestStatus::Approved => "approved",
        RequestStatus::Refused => "refused",
    };
    sqlx::query!(
        "UPDATE accounts.requests SET status = $2, decided_at = now(), decided_by = $3, decision_reason = $4,
                key_id = COALESCE(key_id, $5)
         WHERE id = $1",
        id,
        status,
        by,
        reason.map(|r| vault.seal(&place("requests.decision_reason", id), r)),
        key_id(vault)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A public record of a structure or an organisation, from directory events.
pub struct Place<'a> {
    pub kind: PlaceKind,
    pub id: &'a str,
    pub name: &'a str,
    pub commune: Option<&'a str>,
    pub territory: &'a Territory,
    pub siret: Option<&'a str>,
}

fn kind_slug(kind: PlaceKind) -> &'static str {
    match kind {
        PlaceKind::Structure => "structure",
        PlaceKind::Organisation => "organisation",
    }
}

/// Applies a place record unless a newer one is stored.
pub async fn upsert_place(conn: &mut PgConnection, p: &Place<'_>, sequence: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO accounts.places (kind, id, name, commune, territory, siret, removed, source_sequence)
         VALUES ($1, $2, $3, $4, $5, $6, false, $7)
         ON CONFLICT (kind, id) DO UPDATE SET name = EXCLUDED.name, commune = EXCLUDED.commune,
             territory = EXCLUDED.territory, siret = EXCLUDED.siret, removed = false,
             source_sequence = EXCLUDED.source_sequence
         WHERE accounts.places.source_sequence < EXCLUDED.source_sequence",
        kind_slug(p.kind),
        p.id,
        p.name,
        p.commune,
        p.territory.as_str(),
        p.siret,
        sequence
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn remove_place(conn: &mut PgConnection, kind: PlaceKind, id: &str, sequence: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE accounts.places SET removed = true, source_sequence = $3
         WHERE kind = $1 AND id = $2 AND source_sequence < $3",
        kind_slug(kind),
        id,
        sequence
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The département of a known place, or `None` if it is unknown or removed.
pub async fn place_scope(conn: &mut PgConnection, kind: PlaceKind, id: &str) -> sqlx::Result<Option<Vec<Territory>>> {
    let territory = sqlx::query_scalar!(
        "SELECT territory FROM accounts.places WHERE kind = $1 AND id = $2 AND NOT removed",
        kind_slug(kind),
        id
    )
    .fetch_optional(conn)
    .await?;
    territory.map(|t| Ok(vec![Columns::of("accounts.places", id).parse("territory", &t)?])).transpose()
}

/// What people read for a grant.
pub async fn label_of(conn: &mut PgConnection, grant: &Grant) -> sqlx::Result<String> {
    let (role, organisation, structure, territories) = grant.columns();
    sqlx::query_scalar!(
        r#"SELECT accounts.grant_label($1, $2, $3, $4) AS "label!""#,
        role.slug(),
        organisation.map(OrganisationId::as_uuid),
        structure.map(StructureId::as_str),
        &territories
    )
    .fetch_one(conn)
    .await
}

/// Places matching a text (name or commune, accents and case ignored) or a SIRET; the
/// SIRET's matches first.
pub async fn search_places(
    conn: &mut PgConnection,
    text: Option<&str>,
    siret: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<PlaceView>> {
    // Every word must appear, in any order: "mediatheque mansle" finds "Médiathèque de Mansle".
    let patterns: Option<Vec<String>> = text
        .map(|t| fold(t).split_whitespace().map(|w| format!("%{w}%")).collect())
        .filter(|p: &Vec<String>| !p.is_empty());
    let rows = sqlx::query!(
        r#"SELECT kind, id, name, commune, territory, (siret IS NOT NULL AND siret = $2) AS "matches!"
           FROM accounts.places
           WHERE NOT removed AND (
               ($2::text IS NOT NULL AND siret = $2)
               OR ($1::text[] IS NOT NULL AND translate(lower(name || ' ' || COALESCE(commune, '')),
                        'àâäéèêëîïôöùûüç', 'aaaeeeeiioouuuc') LIKE ALL($1)))
           ORDER BY (siret IS NOT NULL AND siret = $2) DESC, name, id LIMIT $3"#,
        patterns.as_deref(),
        siret,
        limit
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let c = Columns::of("accounts.places", &r.id);
            let kind = match r.kind.as_str() {
                "structure" => PlaceKind::Structure,
                "organisation" => PlaceKind::Organisation,
                other => return Err(c.error("kind", format!("unknown kind `{other}`")).into()),
            };
            Ok(PlaceView {
                kind,
                territory: c.parse("territory", &r.territory)?,
                id: r.id,
                name: r.name,
                commune: r.commune,
                matches_siret: r.matches,
            })
        })
        .collect()
}

/// Lower case without the accents French names carry, as `search_places` compares.
pub fn fold(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' => 'i',
            'ô' | 'ö' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            '%' | '_' | '\\' => ' ',
            other => other,
        })
        .collect()
}

/// One audit record.
pub struct Audit<'a> {
    pub action: &'a str,
    pub actor: &'a str,
    pub membership: Option<&'a str>,
    pub account_id: Option<Uuid>,
    pub territories: &'a [Territory],
    pub detail: serde_json::Value,
}

pub async fn audit(conn: &mut PgConnection, a: Audit<'_>) -> sqlx::Result<()> {
    let territories: Vec<String> = a.territories.iter().map(ToString::to_string).collect();
    sqlx::query!(
        "INSERT INTO accounts.audit (action, actor, membership, account_id, territories, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
        a.action,
        a.actor,
        a.membership,
        a.account_id,
        &territories,
        a.detail
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub struct AuditFilter<'a> {
    pub territories: Option<&'a [String]>,
    pub account_id: Option<Uuid>,
    pub action: Option<&'a str>,
    pub since: Option<DateTime<Utc>>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Audit records, newest first, with the id of the last one for paging.
pub async fn audit_log(conn: &mut PgConnection, f: &AuditFilter<'_>) -> sqlx::Result<(Vec<AuditEntry>, Option<i64>)> {
    let rows = sqlx::query!(
        "SELECT id, at, action, actor, membership, account_id, detail FROM accounts.audit
         WHERE ($1::text[] IS NULL OR territories && $1) AND ($2::uuid IS NULL OR account_id = $2)
           AND ($3::text IS NULL OR action = $3) AND ($4::timestamptz IS NULL OR at >= $4)
           AND ($5::bigint IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6",
        f.territories,
        f.account_id,
        f.action,
        f.since,
        f.before_id,
        f.limit
    )
    .fetch_all(conn)
    .await?;
    let last = rows.last().map(|r| r.id);
    let items = rows
        .into_iter()
        .map(|r| AuditEntry {
            at: r.at,
            action: r.action,
            actor: r.actor,
            membership: r.membership,
            account_id: r.account_id,
            detail: r.detail,
        })
        .collect();
    Ok((items, last))
}

/// The e-mail addresses of some accounts, for the notifications sender: the one place
/// outside sign-in that reads agents' addresses. Notifications keep account ids only and
/// call this at send time, so an address is never copied out of this schema. An account
/// that does not exist is left out.
/// A purged account has no address and is left out too.
pub async fn recipients(
    conn: &mut PgConnection,
    vault: &Vault,
    accounts: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, Personal<String>)>> {
    let rows = sqlx::query!(
        r#"SELECT id, email AS "email!" FROM accounts.accounts
           WHERE id = ANY($1) AND email IS NOT NULL AND purged_at IS NULL"#,
        accounts
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((r.id, Personal::new(open(conn, vault, &place("accounts.email", r.id), &r.email).await?)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_ignores_case_and_french_accents_and_neutralises_like_wildcards() {
        assert_eq!(fold(" Angoulême "), "angouleme");
        assert_eq!(fold("CCAS d'Aïgre"), "ccas d'aigre");
        assert_eq!(fold("50%_x"), "50  x");
    }
}
