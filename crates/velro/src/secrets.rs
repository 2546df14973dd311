//! The JWT signing secret: configured, or generated once and kept in the data folder.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use velro_core::Secret;

const FILE_NAME: &str = "jwt-secret";

/// The configured secret, else the one in `<data_dir>/jwt-secret`, else a new random one written
/// there with owner-only permissions. There is never a built-in default.
pub fn jwt_secret(configured: Option<&Secret<String>>, data_dir: &Path) -> anyhow::Result<Secret<Vec<u8>>> {
    if let Some(secret) = configured {
        return Ok(Secret::new(secret.expose().as_bytes().to_vec()));
    }
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(stored) => {
            let stored = stored.trim();
            if stored.is_empty() {
                anyhow::bail!("{} is empty: delete it to generate a new secret", path.display());
            }
            return Ok(Secret::new(stored.as_bytes().to_vec()));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("could not read {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("could not create the data folder {}", data_dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    write_owner_only(&path, &secret).with_context(|| format!("could not write {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "no VELRO_JWT_SECRET configured: generated a new signing secret and stored it (owner-only); \
         every instance must share one secret"
    );
    Ok(Secret::new(secret.into_bytes()))
}

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
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = jwt_secret(None, dir.path()).expect("generates");
        let second = jwt_secret(None, dir.path()).expect("reads back");
        assert_eq!(first.expose(), second.expose());
        assert!(first.expose().len() >= 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME)).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_secret_wins() {
        let dir = tempfile::tempdir().expect("temp dir");
        let configured = Secret::new("x".repeat(40));
        let secret = jwt_secret(Some(&configured), dir.path()).expect("uses it");
        assert_eq!(secret.expose(), &"x".repeat(40).into_bytes());
        assert!(!dir.path().join(FILE_NAME).exists());
    }
}
