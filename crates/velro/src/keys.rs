//! The access-token signing keys: `VELRO_JWT_KEYS` (a Supabase project's JWKs) or
//! `VELRO_JWT_SECRET` when configured, else the key file `<data_dir>/jwt-keys.json` (generated
//! on first start, owner-only), and the `velro keys` commands that rotate it. Running instances
//! read keys at start-up only.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Subcommand;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use velro_core::tokens::{KeyError, KeyRing, KeySet, RingKey, SigningAlgorithm, SigningKey};
use velro_core::Secret;

use crate::config::Config;

pub const KEY_FILE: &str = "jwt-keys.json";
/// The single secret that versions before key rotation generated; imported once.
pub const LEGACY_SECRET_FILE: &str = "jwt-secret";

/// `velro keys …`: every command reads and rewrites `<data_dir>/jwt-keys.json`.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// List the keys: kid, algorithm, state, dates (never the key material).
    List,
    /// Add a new key of VELRO_JWT_ALGORITHM and make it the signing key at once; older keys keep
    /// verifying. On several instances, use `add` then `activate` instead (see the README).
    Rotate,
    /// Add a new key of VELRO_JWT_ALGORITHM that verifies but does not sign yet.
    Add,
    /// Make a key the signing key; the previous one keeps verifying until pruned.
    Activate {
        /// The key's kid, as `velro keys list` shows it.
        kid: String,
    },
    /// Remove keys retired longer ago than the access-token lifetime plus the leeway: no token
    /// they signed can still be valid.
    Prune,
}

/// What start-up needs: the key set, and the secret refresh-token successors are derived from
/// (it never rotates, so successors stay stable across key rotations).
pub struct SigningKeys {
    pub keys: KeySet,
    pub successor_secret: Secret<Vec<u8>>,
}

/// The keys `serve` uses: the configured JWKs, else the configured secret, else the key file,
/// created (or imported from the legacy secret file) when missing. There is never a built-in
/// default.
pub fn load_or_create(config: &Config) -> anyhow::Result<SigningKeys> {
    if let Some(jwks) = &config.jwt_keys {
        return crate::jwt_keys::key_set(
            jwks,
            config.jwt_secret.as_ref(),
            OffsetDateTime::now_utc(),
        );
    }
    if let Some(secret) = configured(config)? {
        return Ok(secret);
    }
    let file = KeyFile::load_or_create(config)?;
    file.signing_keys(config.jwt_algorithm)
}

/// `VELRO_JWT_SECRET`: one HS256 key, which also verifies tokens without a `kid`.
fn configured(config: &Config) -> anyhow::Result<Option<SigningKeys>> {
    let Some(secret) = &config.jwt_secret else {
        return Ok(None);
    };
    if config.jwt_algorithm != SigningAlgorithm::Hs256 {
        bail!("invalid configuration: VELRO_JWT_SECRET is an HS256 secret; unset it to use VELRO_JWT_ALGORITHM={}", config.jwt_algorithm);
    }
    let secret = Secret::new(secret.expose().as_bytes().to_vec());
    let key = SigningKey::hs256(
        SigningKey::derived_kid(&secret),
        secret.clone(),
        OffsetDateTime::now_utc(),
    )
    .map_err(|why| anyhow::anyhow!("invalid configuration: VELRO_JWT_SECRET {why}"))?;
    Ok(Some(SigningKeys {
        keys: KeySet::single(key),
        successor_secret: secret,
    }))
}

/// Runs one `velro keys` command, printing its outcome on stdout.
pub fn run(config: &Config, command: &KeysCommand) -> anyhow::Result<()> {
    if config.jwt_keys.is_some() {
        let loaded = load_or_create(config)?;
        if let KeysCommand::List = command {
            println!("VELRO_JWT_KEYS is set: its keys are used, the key file is not");
            println!("{:<38} {:<6} {:<8}", "KID", "ALG", "STATE");
            for key in loaded.keys.keys() {
                let state = if key.kid() == loaded.keys.active().kid() {
                    "active"
                } else {
                    "verifies"
                };
                println!("{:<38} {:<6} {state:<8}", key.kid(), key.algorithm());
            }
            return Ok(());
        }
        bail!("VELRO_JWT_KEYS is set, so the key file is not used: change the keys in VELRO_JWT_KEYS (key_ops \"sign\" on the new signer, the old key kept with [\"verify\"]) and restart every instance");
    }
    if let Some(configured) = configured(config)? {
        if let KeysCommand::List = command {
            let key = configured.keys.active();
            println!("VELRO_JWT_SECRET is set: one key, the key file is not used");
            println!("{:<24} {:<6} {:<8}", "KID", "ALG", "STATE");
            println!("{:<24} {:<6} {:<8}", key.kid(), key.algorithm(), "active");
            return Ok(());
        }
        bail!(
            "VELRO_JWT_SECRET is set, so {} is not used: to change the secret, give every instance the new one and restart them (tokens signed with the old one are refused)",
            config.data_dir.join(KEY_FILE).display()
        );
    }
    let file = KeyFile::load_or_create(config)?;
    let mut ring = file.to_ring()?;
    let now = OffsetDateTime::now_utc();
    let algorithm = config.jwt_algorithm;
    let new_key = |why: KeyError| anyhow::anyhow!("a new signing key {why}");
    match command {
        KeysCommand::List => {
            print!("{}", table(&ring));
            return Ok(());
        }
        KeysCommand::Rotate => {
            let kid = ring.add(algorithm, now).map_err(new_key)?;
            ring.activate(&kid, now).map_err(new_key)?;
            println!("added and activated {kid} ({algorithm}); restart the service to use it");
        }
        KeysCommand::Add => {
            let kid = ring.add(algorithm, now).map_err(new_key)?;
            println!("added {kid} ({algorithm}), verifying only; activate it once every instance has restarted with it");
        }
        KeysCommand::Activate { kid } => {
            ring.activate(kid, now).map_err(|_| {
                anyhow::anyhow!("no key has the kid {kid}; `velro keys list` shows them")
            })?;
            println!("activated {kid}; restart the service to use it");
        }
        KeysCommand::Prune => {
            let token_lifetime = config
                .access_token_ttl_secs
                .saturating_add(config.jwt_leeway_secs);
            let token_lifetime =
                time::Duration::seconds(i64::try_from(token_lifetime).unwrap_or(i64::MAX));
            let pruned = ring.prune(now, token_lifetime);
            if pruned.is_empty() {
                println!("nothing to prune");
                return Ok(());
            }
            println!("removed {}", pruned.join(", "));
        }
    }
    KeyFile::from_ring(&ring, file.successor_secret)?.save(&config.data_dir)
}

/// `velro keys list`: kid, algorithm, state and dates; never the key material.
fn table(ring: &KeyRing) -> String {
    let mut out = format!(
        "{:<24} {:<6} {:<8} {:<21} {}\n",
        "KID", "ALG", "STATE", "CREATED", "RETIRED"
    );
    for entry in ring.keys() {
        let retired = entry.retired_at.map_or_else(|| "-".to_string(), timestamp);
        out.push_str(&format!(
            "{:<24} {:<6} {:<8} {:<21} {retired}\n",
            entry.key.kid(),
            entry.key.algorithm(),
            ring.state(entry).as_str(),
            timestamp(entry.key.created_at())
        ));
    }
    out
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    /// The kid of the signing key.
    active: String,
    /// The kid that tokens without a `kid` are checked against (the imported legacy secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    legacy: Option<String>,
    /// base64url; refresh-token successors are derived from it. Never rotated.
    #[serde(serialize_with = "reveal")]
    successor_secret: Secret<String>,
    keys: Vec<StoredKey>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    kid: String,
    alg: String,
    /// RFC 3339.
    created_at: String,
    /// When it stopped signing (RFC 3339); absent for the active key and keys never activated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<String>,
    /// base64url: the HS256 secret, or the Ed25519 private key as PKCS#8 DER.
    #[serde(serialize_with = "reveal")]
    key: Secret<String>,
}

/// Key material is written to the key file and nowhere else.
fn reveal<S: serde::Serializer>(secret: &Secret<String>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

fn encode(bytes: &[u8]) -> Secret<String> {
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

fn timestamp(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

impl KeyFile {
    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(KEY_FILE)
    }

    /// The key file; else the legacy secret imported into a new one; else a new one with one
    /// key of the configured algorithm.
    fn load_or_create(config: &Config) -> anyhow::Result<Self> {
        let data_dir = &config.data_dir;
        let path = Self::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_readable_by_others(&path);
                return serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a valid key file", path.display()));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("could not read {}", path.display()))
            }
        }
        let now = OffsetDateTime::now_utc();
        let file = match read_legacy_secret(data_dir)? {
            Some(secret) => {
                let file = Self::import(secret, now)?;
                tracing::warn!(
                    path = %path.display(),
                    kid = %file.active,
                    "imported the signing secret of {LEGACY_SECRET_FILE} into the key file; {LEGACY_SECRET_FILE} is no longer read"
                );
                file
            }
            None => {
                let file = Self::generate(config.jwt_algorithm, now)?;
                tracing::warn!(
                    path = %path.display(),
                    kid = %file.active,
                    algorithm = %config.jwt_algorithm,
                    "no VELRO_JWT_SECRET configured: generated a signing key and stored it (owner-only); \
                     every instance must share this file"
                );
                file
            }
        };
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("could not create the data folder {}", data_dir.display()))?;
        file.create(data_dir)?;
        Ok(file)
    }

    fn generate(algorithm: SigningAlgorithm, now: OffsetDateTime) -> anyhow::Result<Self> {
        let key = SigningKey::generate(algorithm, now)
            .map_err(|why| anyhow::anyhow!("a new signing key {why}"))?;
        let mut successor = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut successor);
        Self::from_ring(&KeyRing::first(key, false), encode(&successor))
    }

    /// The legacy secret signs on as before (tokens without a `kid` stay valid) and keeps
    /// deriving refresh-token successors, so nothing changes for existing sessions.
    fn import(secret: Secret<Vec<u8>>, now: OffsetDateTime) -> anyhow::Result<Self> {
        let kid = SigningKey::derived_kid(&secret);
        let key = SigningKey::hs256(kid, secret.clone(), now)
            .map_err(|why| anyhow::anyhow!("the secret in {LEGACY_SECRET_FILE} {why}"))?;
        Self::from_ring(&KeyRing::first(key, true), encode(secret.expose()))
    }

    fn from_ring(ring: &KeyRing, successor_secret: Secret<String>) -> anyhow::Result<Self> {
        Ok(Self {
            version: 1,
            active: ring.active().to_string(),
            legacy: ring.legacy().map(str::to_string),
            successor_secret,
            keys: ring
                .keys()
                .iter()
                .map(StoredKey::from_entry)
                .collect::<anyhow::Result<_>>()?,
        })
    }

    fn to_ring(&self) -> anyhow::Result<KeyRing> {
        if self.version != 1 {
            bail!(
                "{KEY_FILE} has version {}, which this velro does not know",
                self.version
            );
        }
        let keys = self
            .keys
            .iter()
            .map(StoredKey::to_entry)
            .collect::<anyhow::Result<_>>()?;
        KeyRing::new(keys, &self.active, self.legacy.as_deref())
            .map_err(|why| anyhow::anyhow!("{KEY_FILE} {why}"))
    }

    fn signing_keys(&self, algorithm: SigningAlgorithm) -> anyhow::Result<SigningKeys> {
        let keys = self
            .to_ring()?
            .key_set()
            .map_err(|why| anyhow::anyhow!("{KEY_FILE} {why}"))?;
        let active = keys.active().algorithm();
        if active != algorithm {
            bail!(
                "invalid configuration: VELRO_JWT_ALGORITHM is {algorithm} but the active key in {KEY_FILE} is {active}: \
                 run `velro keys rotate` with VELRO_JWT_ALGORITHM={algorithm} to switch (tokens the old key signed keep verifying until it is pruned)"
            );
        }
        let successor_secret = URL_SAFE_NO_PAD
            .decode(self.successor_secret.expose())
            .ok()
            .filter(|secret| secret.len() >= 32)
            .context(
                "the successor_secret in the key file is not base64url of at least 32 bytes",
            )?;
        Ok(SigningKeys {
            keys,
            successor_secret: Secret::new(successor_secret),
        })
    }

    fn to_json(&self) -> anyhow::Result<String> {
        let mut text =
            serde_json::to_string_pretty(self).context("could not encode the key file")?;
        text.push('\n');
        Ok(text)
    }

    /// The first write: fails rather than overwrite a file another process just created.
    fn create(&self, data_dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(data_dir);
        write_owner_only(&path, &self.to_json()?)
            .with_context(|| format!("could not write {}", path.display()))
    }

    /// Later writes: a new owner-only file renamed over the old one, so a reader never sees half.
    fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        // Refuse to write a set that `serve` could not load.
        self.to_ring()?;
        let path = Self::path(data_dir);
        let mut suffix = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut suffix);
        let temporary = data_dir.join(format!(".{KEY_FILE}.{}", URL_SAFE_NO_PAD.encode(suffix)));
        write_owner_only(&temporary, &self.to_json()?)
            .with_context(|| format!("could not write {}", temporary.display()))?;
        std::fs::rename(&temporary, &path)
            .with_context(|| format!("could not replace {}", path.display()))
    }
}

impl StoredKey {
    fn from_entry(entry: &RingKey) -> anyhow::Result<Self> {
        let key = &entry.key;
        // Only VELRO_JWT_KEYS has verify-only keys, and it never reaches the key file.
        let Some(material) = key.private_material() else {
            bail!(
                "{KEY_FILE}: the key {} has no private part to store",
                key.kid()
            );
        };
        Ok(Self {
            kid: key.kid().to_string(),
            alg: key.algorithm().as_str().to_string(),
            created_at: timestamp(key.created_at()),
            retired_at: entry.retired_at.map(timestamp),
            key: encode(material.expose()),
        })
    }

    fn to_entry(&self) -> anyhow::Result<RingKey> {
        let bad =
            |why: &dyn std::fmt::Display| anyhow::anyhow!("{KEY_FILE}: the key {} {why}", self.kid);
        let algorithm =
            SigningAlgorithm::parse(&self.alg).ok_or_else(|| bad(&"has an unknown alg"))?;
        let created_at = OffsetDateTime::parse(&self.created_at, &Rfc3339)
            .map_err(|_| bad(&"has a bad created_at"))?;
        let retired_at = self
            .retired_at
            .as_deref()
            .map(|t| OffsetDateTime::parse(t, &Rfc3339))
            .transpose()
            .map_err(|_| bad(&"has a bad retired_at"))?;
        let material = URL_SAFE_NO_PAD
            .decode(self.key.expose())
            .map(Secret::new)
            .map_err(|_| bad(&"is not base64url"))?;
        let key = match algorithm {
            SigningAlgorithm::Hs256 => SigningKey::hs256(self.kid.clone(), material, created_at),
            SigningAlgorithm::EdDsa => SigningKey::ed25519(self.kid.clone(), material, created_at),
            // `SigningAlgorithm::parse` knows only the kinds the key file generates.
            SigningAlgorithm::Rs256 | SigningAlgorithm::Es256 => {
                return Err(bad(&"has an algorithm the key file does not hold"))
            }
        }
        .map_err(|why| bad(&why))?;
        Ok(RingKey { key, retired_at })
    }
}

fn read_legacy_secret(data_dir: &Path) -> anyhow::Result<Option<Secret<Vec<u8>>>> {
    let path = data_dir.join(LEGACY_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(stored) => {
            let stored = stored.trim();
            if stored.is_empty() {
                bail!(
                    "{} is empty: delete it to generate a new key",
                    path.display()
                );
            }
            Ok(Some(Secret::new(stored.as_bytes().to_vec())))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("could not read {}", path.display())),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the key file is readable by others than its owner: chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(unix)]
fn write_owner_only(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_owner_only(path: &Path, content: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, algorithm: SigningAlgorithm) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            jwt_algorithm: algorithm,
            ..Config::default()
        }
    }

    fn file(dir: &Path) -> KeyFile {
        let text = std::fs::read_to_string(dir.join(KEY_FILE)).expect("key file");
        serde_json::from_str(&text).expect("valid key file")
    }

    #[test]
    fn a_generated_key_file_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config(dir.path(), SigningAlgorithm::Hs256);
        let first = load_or_create(&config).expect("generates");
        let second = load_or_create(&config).expect("reads back");
        assert_eq!(first.keys.active().kid(), second.keys.active().kid());
        assert_eq!(
            first.keys.active().private_material().map(Secret::expose),
            second.keys.active().private_material().map(Secret::expose)
        );
        assert_eq!(first.successor_secret, second.successor_secret);
        assert!(first.keys.legacy().is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_secret_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = config(dir.path(), SigningAlgorithm::Hs256);
        config.jwt_secret = Some(Secret::new("x".repeat(40)));
        let keys = load_or_create(&config).expect("uses it");
        assert_eq!(
            keys.keys
                .active()
                .private_material()
                .expect("private")
                .expose(),
            &"x".repeat(40).into_bytes()
        );
        assert_eq!(keys.successor_secret.expose(), &"x".repeat(40).into_bytes());
        assert!(
            keys.keys.legacy().is_some(),
            "tokens of earlier versions have no kid"
        );
        assert!(!dir.path().join(KEY_FILE).exists());
        assert!(run(&config, &KeysCommand::Rotate).is_err());
        config.jwt_algorithm = SigningAlgorithm::EdDsa;
        assert!(load_or_create(&config).is_err());
    }

    #[test]
    fn the_legacy_secret_file_is_imported_and_keeps_its_tokens_and_successors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let legacy = "a-secret-that-an-earlier-version-generated-0123";
        std::fs::write(dir.path().join(LEGACY_SECRET_FILE), format!("{legacy}\n")).expect("writes");
        let keys = load_or_create(&config(dir.path(), SigningAlgorithm::Hs256)).expect("imports");
        assert_eq!(
            keys.keys
                .active()
                .private_material()
                .expect("private")
                .expose(),
            legacy.as_bytes()
        );
        assert_eq!(
            keys.keys.legacy().map(SigningKey::kid),
            Some(keys.keys.active().kid())
        );
        assert_eq!(keys.successor_secret.expose(), legacy.as_bytes());
        assert!(dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn rotate_adds_an_active_key_and_keeps_the_others_and_the_successor_secret() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config(dir.path(), SigningAlgorithm::Hs256);
        let before = load_or_create(&config).expect("generates");
        run(&config, &KeysCommand::Rotate).expect("rotates");
        let after = load_or_create(&config).expect("loads");
        assert_eq!(after.keys.keys().len(), 2);
        assert_ne!(after.keys.active().kid(), before.keys.active().kid());
        assert!(after.keys.get(before.keys.active().kid()).is_some());
        assert_eq!(after.successor_secret, before.successor_secret);
        let stored = file(dir.path());
        assert!(stored.keys[0].retired_at.is_some());
        assert!(stored.keys[1].retired_at.is_none());
    }

    #[test]
    fn add_stages_a_key_that_activate_promotes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config(dir.path(), SigningAlgorithm::EdDsa);
        let first = load_or_create(&config)
            .expect("generates")
            .keys
            .active()
            .kid()
            .to_string();
        run(&config, &KeysCommand::Add).expect("adds");
        let staged = file(dir.path()).keys[1].kid.clone();
        assert_eq!(
            load_or_create(&config).expect("loads").keys.active().kid(),
            first
        );
        assert!(table(&file(dir.path()).to_ring().expect("valid")).contains("staged"));
        run(
            &config,
            &KeysCommand::Activate {
                kid: staged.clone(),
            },
        )
        .expect("activates");
        assert_eq!(
            load_or_create(&config).expect("loads").keys.active().kid(),
            staged
        );
        assert!(run(&config, &KeysCommand::Activate { kid: "nope".into() }).is_err());
    }

    #[test]
    fn prune_rewrites_the_file_without_keys_retired_before_the_token_lifetime() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config(dir.path(), SigningAlgorithm::Hs256);
        load_or_create(&config).expect("generates");
        run(&config, &KeysCommand::Add).expect("adds a staged key");
        run(&config, &KeysCommand::Rotate).expect("rotates");
        // Just rotated: the retired key may still have live tokens.
        run(&config, &KeysCommand::Prune).expect("prunes");
        assert_eq!(file(dir.path()).keys.len(), 3);
        let mut stored = file(dir.path());
        let first = stored.keys[0].kid.clone();
        let long_ago = OffsetDateTime::now_utc()
            - time::Duration::seconds(config.access_token_ttl_secs as i64 + 60);
        stored.keys[0].retired_at = Some(timestamp(long_ago));
        std::fs::remove_file(dir.path().join(KEY_FILE)).expect("removes");
        stored.create(dir.path()).expect("writes");
        run(&config, &KeysCommand::Prune).expect("prunes");
        let kids: Vec<String> = file(dir.path()).keys.into_iter().map(|k| k.kid).collect();
        assert_eq!(kids.len(), 2, "the staged key and the active key stay");
        assert!(!kids.contains(&first));
    }

    #[test]
    fn switching_the_algorithm_needs_a_rotation() {
        let dir = tempfile::tempdir().expect("temp dir");
        load_or_create(&config(dir.path(), SigningAlgorithm::Hs256)).expect("generates");
        let eddsa = config(dir.path(), SigningAlgorithm::EdDsa);
        let error = load_or_create(&eddsa).err().expect("refused");
        assert!(error.to_string().contains("velro keys rotate"), "{error}");
        run(&eddsa, &KeysCommand::Rotate).expect("rotates");
        let keys = load_or_create(&eddsa).expect("loads");
        assert_eq!(keys.keys.active().algorithm(), SigningAlgorithm::EdDsa);
    }

    #[test]
    fn the_key_file_never_reaches_debug_output() {
        let dir = tempfile::tempdir().expect("temp dir");
        load_or_create(&config(dir.path(), SigningAlgorithm::Hs256)).expect("generates");
        let stored = file(dir.path());
        let secret = stored.keys[0].key.expose().clone();
        assert!(!format!("{stored:?}").contains(&secret));
        assert!(!table(&stored.to_ring().expect("valid")).contains(&secret));
    }
}
