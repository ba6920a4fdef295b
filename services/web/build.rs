//! Embeds the assets the binary serves: the DSFR's stylesheet and the files it refers to
//! (icons, and the Marianne/Spectral fonts for the State brand), from
//! `assets/node_modules/@gouvfr/dsfr/dist` as `npm ci --ignore-scripts --prefix services/web/assets`
//! installs it from the committed lockfile; and the project's own stylesheet and script.
//! Each file is embedded as is and gzip-compressed; the page's links carry the DSFR's
//! version or the file's content hash, so the server can say "immutable".

// A build script fails the build by panicking, with the message cargo shows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const HELP: &str = "run `npm ci --ignore-scripts --prefix services/web/assets` (it installs the DSFR from services/web/assets/package-lock.json)";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let assets = manifest.join("assets");
    let package = assets.join("node_modules/@gouvfr/dsfr");
    let dist = package.join("dist");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=assets/package.json");
    println!("cargo:rerun-if-changed=assets/package-lock.json");
    println!("cargo:rerun-if-changed=assets/node_modules/@gouvfr/dsfr/package.json");
    println!("cargo:rerun-if-changed=static");

    let installed = std::fs::read_to_string(package.join("package.json"))
        .unwrap_or_else(|_| panic!("the DSFR is not installed in {}: {HELP}", package.display()));
    let version = json_version(&installed).unwrap_or_else(|| panic!("no version in the DSFR's package.json: {HELP}"));
    let pinned = std::fs::read_to_string(assets.join("package.json")).expect("services/web/assets/package.json");
    if !pinned.contains(&format!("\"@gouvfr/dsfr\": \"{version}\"")) {
        panic!("node_modules holds DSFR {version}, not the version pinned in services/web/assets/package.json: {HELP}");
    }

    // dsfr.min.css and every file it names, relative to dist/.
    let css = read(&dist.join("dsfr.min.css"));
    let text = String::from_utf8(css.clone()).expect("dsfr.min.css is UTF-8");
    let mut files = BTreeSet::from(["dsfr.min.css".to_string()]);
    for reference in text.split("url(").skip(1) {
        let end = reference.find(')').unwrap_or(0);
        let target = reference[..end].trim_matches(|c| c == '"' || c == '\'');
        if target.starts_with("data:") || target.is_empty() {
            continue;
        }
        assert!(
            !target.contains("//") && !target.contains(".."),
            "dsfr.min.css refers to {target:?}, outside its folder: check what it loads"
        );
        files.insert(target.split(['?', '#']).next().unwrap_or(target).to_string());
    }

    let mut code = String::new();
    writeln!(code, "/// The DSFR's version, from its package.json.").unwrap();
    writeln!(code, "pub const DSFR_VERSION: &str = {version:?};").unwrap();
    writeln!(code, "/// (path under dist/, content type, bytes, gzip-compressed bytes or empty).").unwrap();
    writeln!(code, "pub static DSFR_FILES: &[(&str, &str, &[u8], &[u8])] = &[").unwrap();
    for (i, file) in files.iter().enumerate() {
        let bytes = read(&dist.join(file));
        let gz = compressed(&out, &format!("dsfr-{i}"), file, &bytes);
        writeln!(
            code,
            "    ({file:?}, {:?}, {}, {}),",
            content_type(file),
            embed("CARGO_MANIFEST_DIR", &format!("assets/node_modules/@gouvfr/dsfr/dist/{file}")),
            embed("OUT_DIR", &gz)
        )
        .unwrap();
    }
    writeln!(code, "];").unwrap();

    // The project's own files, named by their content.
    writeln!(code, "/// (name with its content hash, content type, bytes, gzip-compressed bytes).").unwrap();
    for (constant, file) in [("OWN_CSS", "aiguillage.css"), ("OWN_JS", "orientation.js"), ("PRINT_JS", "fiche.js")] {
        let path = manifest.join("static").join(file);
        let bytes = read(&path);
        let hash = Sha256::digest(&bytes);
        let short: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let (stem, ext) = file.rsplit_once('.').unwrap();
        let name = format!("{stem}.{short}.{ext}");
        let gz = compressed(&out, constant, file, &bytes);
        writeln!(
            code,
            "pub static {constant}: (&str, &str, &[u8], &[u8]) = ({name:?}, {:?}, {}, {});",
            content_type(file),
            embed("CARGO_MANIFEST_DIR", &format!("static/{file}")),
            embed("OUT_DIR", &gz)
        )
        .unwrap();
    }
    std::fs::write(out.join("assets.rs"), code).expect("write assets.rs");
}

/// `include_bytes!` of `relative` under the directory the variable `base` names when the
/// web crate compiles, not of an absolute path written now: the generated code stays
/// right when the target directory or the checkout moves (a CI cache, a second clone),
/// which does not rerun this script.
fn embed(base: &str, relative: &str) -> String {
    format!("include_bytes!(concat!(env!({base:?}), {:?}))", format!("/{relative}"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}; {HELP}", path.display()))
}

/// Text files, gzip-compressed into OUT_DIR; fonts and images that do not shrink stay as
/// they are (an empty file: serve the original).
fn compressed(out: &Path, key: &str, file: &str, bytes: &[u8]) -> String {
    let name = format!("{key}.gz");
    let path = out.join(&name);
    let text = matches!(file.rsplit('.').next(), Some("css" | "js" | "svg"));
    let gz = if text {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).expect("gzip");
        encoder.finish().expect("gzip")
    } else {
        Vec::new()
    };
    std::fs::write(&path, gz).expect("write a compressed asset");
    name
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("png") => "image/png",
        other => panic!("dsfr.min.css refers to a file of an unexpected kind: {other:?}"),
    }
}

/// `"version": "1.15.3"` in a package.json.
fn json_version(json: &str) -> Option<String> {
    let at = json.find("\"version\"")?;
    let rest = &json[at + "\"version\"".len()..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(rest[start..end].to_string())
}
