//! What accounts consumes: the directory's public records of structures and
//! organisations, to label memberships, scope them to a département, and match an
//! agent's SIRET to their workplace.

use bus::{Handler, HandlerError, ServiceQueue};
use contracts::Envelope;
use contracts::accounts::PlaceKind;
use contracts::events::{OrganisationUpserted, StructureRemoved, StructureUpserted};
use sqlx::PgConnection;

use crate::store::{self, Place};

contracts::event_set! {
    /// Every event the accounts queue is bound to.
    pub enum Inbound { StructureUpserted, StructureRemoved, OrganisationUpserted }
}

pub fn queue() -> ServiceQueue {
    ServiceQueue { service: crate::SERVICE, bindings: &["structure.*", "organisation.upserted"] }
}

pub struct AccountsHandler;

impl Handler for AccountsHandler {
    type Event = Inbound;

    /// Only conditional writes of public records: safe to share a transaction.
    const BATCH: usize = 8;

    async fn handle(&self, tx: &mut PgConnection, env: &Envelope, event: Inbound) -> Result<(), HandlerError> {
        match event {
            Inbound::StructureUpserted(e) => {
                let s = &e.structure;
                let place = Place {
                    kind: PlaceKind::Structure,
                    id: s.id.as_str(),
                    name: &s.name,
                    commune: s.address.commune.as_deref(),
                    territory: &s.territory,
                    siret: s.siret.as_deref(),
                };
                store::upsert_place(tx, &place, env.sequence).await?;
            }
            Inbound::StructureRemoved(e) => {
                store::remove_place(tx, PlaceKind::Structure, e.structure_id.as_str(), env.sequence).await?
            }
            Inbound::OrganisationUpserted(e) => {
                let id = e.organisation_id.to_string();
                let place = Place {
                    kind: PlaceKind::Organisation,
                    id: &id,
                    name: &e.name,
                    commune: None,
                    territory: &e.territory,
                    siret: e.siret.as_deref(),
                };
                store::upsert_place(tx, &place, env.sequence).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bound_to_exactly_the_events_it_knows() {
        assert_eq!(queue().mismatches::<Inbound>(), Vec::<String>::new());
    }
}
