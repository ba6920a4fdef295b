//! What encryption costs a submission and a read, on the CPU: the five personal fields a
//! referral's person has sealed (names, phone, e-mail, note) with their places as
//! associated data, and the two blind indexes that find duplicates; then the same five
//! opened, as a read of the referral does. The database's share (larger rows) is in the
//! load generator's A/B, not here.
//!
//! `cargo bench -p platform --bench vault`

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use platform::vault::Vault;
use std::hint::black_box;

const FIELDS: [(&str, &str); 5] = [
    ("persons.first_name", "Camille"),
    ("persons.last_name", "Essai-Dupont"),
    ("persons.phone", "+33612345678"),
    ("persons.email", "camille.essai@exemple.fr"),
    ("persons.note", "Dossier CAF à renouveler avant la fin du mois ; pas d'ordinateur à la maison."),
];

fn place(column: &str, row: uuid::Uuid) -> String {
    format!("{column}:{row}")
}

fn submission(c: &mut Criterion) {
    let vault = Vault::ephemeral("bench");
    let mut group = c.benchmark_group("vault");
    group.bench_function("seal a person (5 fields + 2 blind indexes)", |b| {
        b.iter_batched(
            uuid::Uuid::now_v7,
            |row| {
                let sealed: Vec<Vec<u8>> = FIELDS.iter().map(|(col, v)| vault.seal(&place(col, row), v)).collect();
                let phone = vault.blind_index("phone", FIELDS[2].1);
                let email = vault.blind_index("email", FIELDS[3].1);
                black_box((sealed, phone, email))
            },
            BatchSize::SmallInput,
        )
    });
    let row = uuid::Uuid::now_v7();
    let sealed: Vec<(String, Vec<u8>)> =
        FIELDS.iter().map(|(col, v)| (place(col, row), vault.seal(&place(col, row), v))).collect();
    group.bench_function("open a person (5 fields)", |b| {
        b.iter(|| {
            let opened: Vec<String> =
                sealed.iter().map(|(place, value)| vault.open_value(place, value).unwrap_or_default()).collect();
            black_box(opened)
        })
    });
    group.finish();
}

criterion_group!(benches, submission);
criterion_main!(benches);
