//! Personal data encrypted by the application before it reaches PostgreSQL.
//!
//! - **Envelope keys.** Each service schema has data keys (`{schema}.data_keys`), each
//!   stored wrapped (encrypted) by the master key from `AIGUILLAGE_MASTER_KEY` or
//!   `AIGUILLAGE_MASTER_KEY_FILE`. The master key never reaches the database.
//! - **AEAD: XChaCha20-Poly1305** (RustCrypto `chacha20poly1305`). Its 192-bit nonces are
//!   safe to draw at random for every value, with no counter to keep across replicas,
//!   and it is constant-time in software on machines without AES instructions.
//! - **Each value names its key.** A sealed value starts with a version byte and the id
//!   of the data key that sealed it, so a rotation leaves old values readable.
//! - **Bound to its place.** The associated data is `table.column:row id`: a value
//!   copied to another row or column does not open.
//! - **Blind indexes.** Lookups (duplicates by phone or e-mail) use a keyed hash
//!   (HMAC-SHA256 under a key of its own), never the plain value.
//! - **Rotation, online.** [`rotate`] adds a data key that seals from then on and re-wraps
//!   every data key under the current master key (and so moves them off a previous master
//!   key given in `AIGUILLAGE_MASTER_KEY_PREVIOUS`). Running processes reload the keys
//!   when they meet an id they do not know, so nothing is unreadable at any moment.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgPool};

const VERSION: u8 = 1;
const NONCE: usize = 24;
const HEADER: usize = 1 + 4 + NONCE;
const KEY: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "no master key: set AIGUILLAGE_MASTER_KEY (32 bytes, base64) or AIGUILLAGE_MASTER_KEY_FILE (a file holding it); \
         generate one with `openssl rand -base64 32`"
    )]
    Missing,
    #[error("invalid master key in {0}: expected 32 bytes, base64-encoded")]
    Invalid(&'static str),
    #[error("cannot read the master key file {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("data key {0} is wrapped by a master key this process does not have")]
    ForeignMaster(i32),
    #[error("data key {0} does not unwrap: wrong master key or corrupt row")]
    Unwrap(i32),
    #[error("unknown data key {0}")]
    UnknownKey(u32),
    #[error("the value is not a sealed value")]
    Malformed,
    #[error("the value does not open here (moved, altered, or sealed elsewhere)")]
    Open,
    #[error("the vault of {0} has no data key or no blind-index key")]
    NoKey(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The key that wraps data keys. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    pub fn from_base64(text: &str, source: &'static str) -> Result<Self, VaultError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| VaultError::Invalid(source))?;
        if bytes.len() != KEY {
            return Err(VaultError::Invalid(source));
        }
        // The id says which master key wrapped a data key without revealing the key.
        let digest = Sha256::digest([b"aiguillage master key id".as_slice(), &bytes].concat());
        let id: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| VaultError::Invalid(source))?;
        Ok(Self { id, cipher })
    }

    /// The master key (and a previous one, during a master rotation) from the environment.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<(MasterKey, Option<MasterKey>), VaultError> {
        let value = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let current = match (value("AIGUILLAGE_MASTER_KEY"), value("AIGUILLAGE_MASTER_KEY_FILE")) {
            (Some(k), _) => Self::from_base64(&k, "AIGUILLAGE_MASTER_KEY")?,
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path.trim())
                    .map_err(|source| VaultError::File { path: path.clone(), source })?;
                Self::from_base64(&text, "AIGUILLAGE_MASTER_KEY_FILE")?
            }
            (None, None) => return Err(VaultError::Missing),
        };
        let previous = value("AIGUILLAGE_MASTER_KEY_PREVIOUS")
            .map(|k| Self::from_base64(&k, "AIGUILLAGE_MASTER_KEY_PREVIOUS"))
            .transpose()?;
        Ok((current, previous))
    }

    /// A fresh random key, base64 (what the demo writes to its key file).
    pub fn generate_base64() -> String {
        let mut key = [0u8; KEY];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        STANDARD.encode(key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, schema: &str, id: i32, key: &[u8]) -> Vec<u8> {
        let nonce = random_nonce();
        let aad = format!("aiguillage data key {schema} {id}");
        let mut out = nonce.to_vec();
        // Encrypting a 32-byte key in memory cannot fail.
        out.extend(
            self.cipher.encrypt(&XNonce::from(nonce), Payload { msg: key, aad: aad.as_bytes() }).unwrap_or_default(),
        );
        out
    }

    fn unwrap_key(&self, schema: &str, id: i32, wrapped: &[u8]) -> Option<Vec<u8>> {
        if wrapped.len() <= NONCE {
            return None;
        }
        let aad = format!("aiguillage data key {schema} {id}");
        self.cipher.decrypt(&nonce_of(&wrapped[..NONCE])?, Payload { msg: &wrapped[NONCE..], aad: aad.as_bytes() }).ok()
    }
}

fn nonce_of(bytes: &[u8]) -> Option<XNonce> {
    <[u8; NONCE]>::try_from(bytes).ok().map(XNonce::from)
}

fn random_nonce() -> [u8; NONCE] {
    let mut nonce = [0u8; NONCE];
    rand::Rng::fill(&mut rand::rng(), &mut nonce);
    nonce
}

/// A service's data keys, unwrapped in memory.
#[derive(Clone)]
pub struct Vault {
    schema: &'static str,
    masters: Arc<(MasterKey, Option<MasterKey>)>,
    keys: Arc<RwLock<Keys>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({}, ***)", self.schema)
    }
}

#[derive(Default)]
struct Keys {
    data: HashMap<u32, XChaCha20Poly1305>,
    current: u32,
    blind: Vec<u8>,
}

const PURPOSE_DATA: &str = "data";
const PURPOSE_BLIND: &str = "blind_index";

pub(crate) fn valid_schema(schema: &str) -> bool {
    !schema.is_empty() && schema.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Creates the schema's data-key table.
pub async fn migrate(pool: &PgPool, schema: &'static str) -> Result<(), sqlx::Error> {
    assert!(valid_schema(schema), "schema names are constants");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {schema}.data_keys (
             id         integer PRIMARY KEY,
             purpose    text NOT NULL,
             wrapped    bytea NOT NULL,
             master_id  text NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now()
         )"
    )))
    .execute(pool)
    .await?;
    Ok(())
}

impl Vault {
    /// Loads the schema's data keys, creating the first ones on first use.
    pub async fn open(
        pool: &PgPool,
        schema: &'static str,
        master: MasterKey,
        previous: Option<MasterKey>,
    ) -> Result<Self, VaultError> {
        let vault = Self { schema, masters: Arc::new((master, previous)), keys: Arc::default() };
        vault.ensure_first_keys(pool).await?;
        vault.reload(pool).await?;
        Ok(vault)
    }

    /// A vault with fresh random keys held in memory only, nothing stored: for
    /// benchmarks and tests of sealing itself. What it seals no other vault opens.
    pub fn ephemeral(schema: &'static str) -> Self {
        let random = || {
            let mut key = [0u8; KEY];
            rand::Rng::fill(&mut rand::rng(), &mut key);
            key
        };
        let master = MasterKey::from_base64(&MasterKey::generate_base64(), "ephemeral")
            .unwrap_or_else(|_| unreachable!("a generated key is 32 bytes of base64"));
        let cipher = XChaCha20Poly1305::new_from_slice(&random())
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 takes any 32-byte key"));
        let keys = Keys { data: HashMap::from([(2, cipher)]), current: 2, blind: random().to_vec() };
        Self { schema, masters: Arc::new((master, None)), keys: Arc::new(RwLock::new(keys)) }
    }

    async fn ensure_first_keys(&self, pool: &PgPool) -> Result<(), VaultError> {
        let schema = self.schema;
        for (id, purpose) in [(1, PURPOSE_BLIND), (2, PURPOSE_DATA)] {
            let mut key = [0u8; KEY];
            rand::Rng::fill(&mut rand::rng(), &mut key);
            let master = &self.masters.0;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {schema}.data_keys (id, purpose, wrapped, master_id) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING"
            )))
            .bind(id)
            .bind(purpose)
            .bind(master.wrap(schema, id, &key))
            .bind(master.id())
            .execute(pool)
            .await?;
        }
        Ok(())
    }

    /// Reads and unwraps every data key again (after a rotation elsewhere).
    pub async fn reload<'e, E: sqlx::PgExecutor<'e>>(&self, executor: E) -> Result<(), VaultError> {
        let schema = self.schema;
        let rows: Vec<(i32, String, Vec<u8>, String)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id, purpose, wrapped, master_id FROM {schema}.data_keys ORDER BY id"
        )))
        .fetch_all(executor)
        .await?;
        let mut keys = Keys::default();
        for (id, purpose, wrapped, master_id) in rows {
            let (current, previous) = &*self.masters;
            let master = if master_id == current.id() {
                current
            } else {
                previous.as_ref().filter(|p| p.id() == master_id).ok_or(VaultError::ForeignMaster(id))?
            };
            let key = master.unwrap_key(schema, id, &wrapped).ok_or(VaultError::Unwrap(id))?;
            if purpose == PURPOSE_BLIND {
                keys.blind = key;
            } else {
                let id = u32::try_from(id).map_err(|_| VaultError::Unwrap(id))?;
                keys.data.insert(id, XChaCha20Poly1305::new_from_slice(&key).map_err(|_| VaultError::Malformed)?);
                keys.current = keys.current.max(id);
            }
        }
        if keys.data.is_empty() || keys.blind.is_empty() {
            return Err(VaultError::NoKey(schema));
        }
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        Ok(())
    }

    /// Reloads the data keys every `every` until `shutdown`, so a rotation made by
    /// another process (the command line) is picked up: new values are then sealed with
    /// its new key.
    pub async fn keep_fresh(
        self,
        pool: PgPool,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(err) = self.reload(&pool).await {
                tracing::warn!(schema = self.schema, error = %err, "could not reload the data keys");
            }
        }
    }

    /// The id of the data key that seals new values.
    pub fn current_key(&self) -> u32 {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).current
    }

    /// Seals `plain` for `place` (`table.column:row id`). A vault always holds its current
    /// key ([`Vault::open`] and [`Vault::reload`] refuse to leave it without one), so this
    /// cannot fail.
    pub fn seal(&self, place: &str, plain: &str) -> Vec<u8> {
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = keys.current;
        let Some(cipher) = keys.data.get(&id) else { unreachable!("a vault is never without its current key") };
        let nonce = random_nonce();
        let mut out = Vec::with_capacity(HEADER + plain.len() + 16);
        out.push(VERSION);
        out.extend(id.to_be_bytes());
        out.extend(nonce);
        out.extend(
            cipher
                .encrypt(&XNonce::from(nonce), Payload { msg: plain.as_bytes(), aad: place.as_bytes() })
                .unwrap_or_default(),
        );
        out
    }

    /// Seals an optional value.
    pub fn seal_opt(&self, place: &str, plain: Option<&str>) -> Option<Vec<u8>> {
        plain.map(|p| self.seal(place, p))
    }

    /// The schema this vault serves.
    pub fn schema(&self) -> &'static str {
        self.schema
    }

    /// Opens a sealed value for `place`. An unknown key id is [`VaultError::UnknownKey`]:
    /// the caller reloads once (see [`Vault::open_fresh`]).
    pub fn open_value(&self, place: &str, sealed: &[u8]) -> Result<String, VaultError> {
        if sealed.len() < HEADER + 16 || sealed[0] != VERSION {
            return Err(VaultError::Malformed);
        }
        let id = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cipher = keys.data.get(&id).ok_or(VaultError::UnknownKey(id))?;
        let plain = cipher
            .decrypt(
                &nonce_of(&sealed[5..HEADER]).ok_or(VaultError::Malformed)?,
                Payload { msg: &sealed[HEADER..], aad: place.as_bytes() },
            )
            .map_err(|_| VaultError::Open)?;
        String::from_utf8(plain).map_err(|_| VaultError::Malformed)
    }

    /// Opens a value, reloading the keys once if it names one this process has not
    /// loaded yet (a rotation by another process).
    pub async fn open_fresh(&self, pool: &PgPool, place: &str, sealed: &[u8]) -> Result<String, VaultError> {
        match self.open_value(place, sealed) {
            Err(VaultError::UnknownKey(_)) => {
                self.reload(pool).await?;
                self.open_value(place, sealed)
            }
            other => other,
        }
    }

    /// Whether every key a value could name is loaded (else reload before a batch).
    pub fn knows(&self, sealed: &[u8]) -> bool {
        sealed.len() >= 5 && {
            let id = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
            self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).data.contains_key(&id)
        }
    }

    /// A keyed hash of a normalised value, for equality lookups.
    pub fn blind_index(&self, purpose: &str, normalised: &str) -> Vec<u8> {
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&keys.blind) else { return Vec::new() };
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(normalised.as_bytes());
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

/// What a rotation did.
#[derive(Debug, serde::Serialize)]
pub struct Rotation {
    pub schema: &'static str,
    /// The data key that seals from now on.
    pub new_key: i32,
    /// Data keys re-wrapped under the current master key.
    pub rewrapped: usize,
    pub master_key: String,
}

/// Adds a data key that seals from now on, and re-wraps every data key under the
/// current master key. Online: values sealed before stay readable, and running processes
/// pick the new key up when they reload.
pub async fn rotate(
    pool: &PgPool,
    schema: &'static str,
    master: &MasterKey,
    previous: Option<&MasterKey>,
) -> Result<Rotation, VaultError> {
    assert!(valid_schema(schema), "schema names are constants");
    let mut tx = pool.begin().await?;
    // One rotation at a time per schema.
    sqlx::query(AssertSqlSafe(format!("LOCK TABLE {schema}.data_keys IN EXCLUSIVE MODE"))).execute(&mut *tx).await?;
    let rows: Vec<(i32, Vec<u8>, String)> =
        sqlx::query_as(AssertSqlSafe(format!("SELECT id, wrapped, master_id FROM {schema}.data_keys ORDER BY id")))
            .fetch_all(&mut *tx)
            .await?;
    let mut rewrapped = 0;
    let mut last = 0;
    for (id, wrapped, master_id) in rows {
        last = last.max(id);
        let holder = if master_id == master.id() {
            master
        } else {
            previous.filter(|p| p.id() == master_id).ok_or(VaultError::ForeignMaster(id))?
        };
        let key = holder.unwrap_key(schema, id, &wrapped).ok_or(VaultError::Unwrap(id))?;
        sqlx::query(AssertSqlSafe(format!("UPDATE {schema}.data_keys SET wrapped = $2, master_id = $3 WHERE id = $1")))
            .bind(id)
            .bind(master.wrap(schema, id, &key))
            .bind(master.id())
            .execute(&mut *tx)
            .await?;
        rewrapped += 1;
    }
    let new_key = last + 1;
    let mut key = [0u8; KEY];
    rand::Rng::fill(&mut rand::rng(), &mut key);
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {schema}.data_keys (id, purpose, wrapped, master_id) VALUES ($1, $2, $3, $4)"
    )))
    .bind(new_key)
    .bind(PURPOSE_DATA)
    .bind(master.wrap(schema, new_key, &key))
    .bind(master.id())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Rotation { schema, new_key, rewrapped, master_key: master.id().to_string() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        let master = MasterKey::from_base64(&MasterKey::generate_base64(), "test").unwrap();
        let cipher = XChaCha20Poly1305::new_from_slice(&[7u8; 32]).unwrap();
        let keys = Keys { data: HashMap::from([(2, cipher)]), current: 2, blind: vec![9; 32] };
        Vault { schema: "test", masters: Arc::new((master, None)), keys: Arc::new(RwLock::new(keys)) }
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_place() {
        let v = vault();
        let sealed = v.seal("persons.first_name:0193", "Camille");
        assert!(!String::from_utf8_lossy(&sealed).contains("Camille"));
        assert_eq!(v.open_value("persons.first_name:0193", &sealed).unwrap(), "Camille");
        assert!(matches!(v.open_value("persons.first_name:0194", &sealed), Err(VaultError::Open)));
        assert!(matches!(v.open_value("persons.last_name:0193", &sealed), Err(VaultError::Open)));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(v.open_value("persons.first_name:0193", &tampered).is_err());
        assert!(matches!(v.open_value("x", b"plain text"), Err(VaultError::Malformed)));
        // Two seals of one value differ (random nonces), and both open.
        let again = v.seal("persons.first_name:0193", "Camille");
        assert_ne!(sealed, again);
    }

    #[test]
    fn a_value_sealed_with_an_unknown_key_asks_for_a_reload() {
        let v = vault();
        let mut sealed = v.seal("p", "x");
        sealed[1..5].copy_from_slice(&9u32.to_be_bytes());
        assert!(matches!(v.open_value("p", &sealed), Err(VaultError::UnknownKey(9))));
    }

    #[test]
    fn blind_indexes_are_stable_keyed_and_per_purpose() {
        let v = vault();
        assert_eq!(v.blind_index("phone", "+33612345678"), v.blind_index("phone", "+33612345678"));
        assert_ne!(v.blind_index("phone", "+33612345678"), v.blind_index("email", "+33612345678"));
        assert_ne!(v.blind_index("phone", "+33612345678"), v.blind_index("phone", "+33612345679"));
        assert_eq!(v.blind_index("phone", "x").len(), 16);
    }

    #[test]
    fn master_keys_wrap_and_unwrap_and_refuse_the_wrong_slot() {
        let m = MasterKey::from_base64(&MasterKey::generate_base64(), "test").unwrap();
        let wrapped = m.wrap("referrals", 2, &[1u8; 32]);
        assert_eq!(m.unwrap_key("referrals", 2, &wrapped).unwrap(), vec![1u8; 32]);
        assert!(m.unwrap_key("referrals", 3, &wrapped).is_none());
        assert!(m.unwrap_key("accounts", 2, &wrapped).is_none());
        let other = MasterKey::from_base64(&MasterKey::generate_base64(), "test").unwrap();
        assert!(other.unwrap_key("referrals", 2, &wrapped).is_none());
        assert_ne!(m.id(), other.id());
        assert!(format!("{m:?}").starts_with("MasterKey("));
    }

    #[test]
    fn the_environment_names_what_is_wrong() {
        let none = MasterKey::from_env(|_| None).unwrap_err();
        assert!(none.to_string().contains("AIGUILLAGE_MASTER_KEY"), "{none}");
        let short = MasterKey::from_env(|k| (k == "AIGUILLAGE_MASTER_KEY").then(|| "c2hvcnQ=".into())).unwrap_err();
        assert!(matches!(short, VaultError::Invalid("AIGUILLAGE_MASTER_KEY")));
        let missing = MasterKey::from_env(|k| (k == "AIGUILLAGE_MASTER_KEY_FILE").then(|| "/nonexistent/key".into()));
        assert!(matches!(missing, Err(VaultError::File { .. })));
    }

    #[test]
    fn a_value_sealed_by_one_key_opens_after_a_new_current_key_is_added() {
        let v = vault();
        let old = v.seal("persons.note:1", "avant");
        {
            let mut keys = v.keys.write().unwrap();
            keys.data.insert(3, XChaCha20Poly1305::new_from_slice(&[8u8; 32]).unwrap());
            keys.current = 3;
        }
        let new = v.seal("persons.note:1", "après");
        assert_eq!(u32::from_be_bytes([new[1], new[2], new[3], new[4]]), 3);
        assert_eq!(v.open_value("persons.note:1", &old).unwrap(), "avant");
        assert_eq!(v.open_value("persons.note:1", &new).unwrap(), "après");
        assert!(v.knows(&old) && v.knows(&new));
        assert!(!v.knows(b"\x01"));
    }

    #[test]
    fn a_short_or_foreign_version_value_is_malformed_not_a_panic() {
        let v = vault();
        for bad in [&b""[..], &[1u8; 10], &[2u8; 64], &[1u8; HEADER + 15]] {
            assert!(matches!(v.open_value("p", bad), Err(VaultError::Malformed) | Err(VaultError::UnknownKey(_))));
        }
    }

    #[test]
    fn the_master_key_file_is_read_and_trimmed() {
        let key = MasterKey::generate_base64();
        let path = std::env::temp_dir().join(format!("vault-test-{}.key", uuid::Uuid::now_v7()));
        std::fs::write(&path, format!("{key}\n")).unwrap();
        let p = path.to_string_lossy().into_owned();
        let (m, previous) = MasterKey::from_env(|k| (k == "AIGUILLAGE_MASTER_KEY_FILE").then(|| p.clone())).unwrap();
        assert_eq!(m.id(), MasterKey::from_base64(&key, "t").unwrap().id());
        assert!(previous.is_none());
        let _ = std::fs::remove_file(&path);
        // The variable wins over the file.
        let (m2, _) = MasterKey::from_env(|k| match k {
            "AIGUILLAGE_MASTER_KEY" => Some(key.clone()),
            "AIGUILLAGE_MASTER_KEY_FILE" => Some("/nonexistent".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(m2.id(), m.id());
        assert_eq!(MasterKey::generate_base64().len(), 44);
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips_in_its_place_only(plain in ".{0,300}", row in 0u64..u64::MAX, other in 0u64..u64::MAX) {
            let v = vault();
            let place = format!("persons.first_name:{row}");
            let sealed = v.seal(&place, &plain);
            proptest::prop_assert_eq!(v.open_value(&place, &sealed).unwrap(), plain.clone());
            proptest::prop_assert_eq!(sealed.len(), HEADER + plain.len() + 16);
            if other != row {
                let elsewhere = format!("persons.first_name:{other}");
                proptest::prop_assert!(matches!(v.open_value(&elsewhere, &sealed), Err(VaultError::Open)));
            }
        }

        #[test]
        fn any_flipped_bit_is_refused(plain in ".{1,100}", bit in 0usize..8, at in 0usize..1000) {
            let v = vault();
            let mut sealed = v.seal("p:1", &plain);
            let i = at % sealed.len();
            sealed[i] ^= 1 << bit;
            proptest::prop_assert!(v.open_value("p:1", &sealed).is_err());
        }

        #[test]
        fn blind_indexes_differ_for_different_values(a in "[+0-9a-z@.]{1,40}", b in "[+0-9a-z@.]{1,40}") {
            let v = vault();
            proptest::prop_assert_eq!(v.blind_index("email", &a) == v.blind_index("email", &b), a == b);
        }
    }
}
