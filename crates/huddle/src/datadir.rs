//! The data directory and what huddle keeps in it: the SQLite database (with
//! its `-wal` and `-shm`), the generated JWT secret and comet password. They
//! hold comet auth hashes, invite codes, private chats and signing keys, so
//! they are the owner's alone, whatever the umask:
//!
//! - a data directory (or a database's parent directory) that huddle creates
//!   is made `0700`; one that already exists keeps the permissions its
//!   operator gave it (huddle warns when others may read it);
//! - the database file is created `0600` before the driver opens it; SQLite
//!   gives its `-wal` and `-shm` the database file's mode, so they are `0600`
//!   too. An existing database keeps its mode (with a warning when others may
//!   read it: its WAL and shm will inherit that mode);
//! - the secrets are created `0600`.

use std::path::{Path, PathBuf};

use crate::config::Config;

/// Makes sure `dir` exists; creates it (and missing parents) `0700` when it
/// does not, and leaves an existing one as its operator made it.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            warn_if_shared(dir, &m);
            return Ok(());
        }
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is not a directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    // The mode given to mkdir is masked by the umask: set it exactly.
    set_mode(dir, 0o700)
}

/// The file of a SQLite URL (`sqlite://PATH?...`, `sqlite:PATH`); `None`
/// for an in-memory database or another engine.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with(":memory:") || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Before the database opens: the SQLite file's directory exists (private
/// when huddle creates it) and the file exists, created `0600` when new.
pub fn prepare_sqlite(url: &str) -> std::io::Result<()> {
    let Some(file) = sqlite_file(url) else {
        return Ok(());
    };
    if let Some(parent) = file.parent() {
        ensure_private_dir(parent)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&file) {
        Ok(_) => set_mode(&file, 0o600),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(m) = std::fs::metadata(&file) {
                warn_if_shared(&file, &m);
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

fn warn_if_shared(path: &Path, m: &std::fs::Metadata) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "readable by other users; huddle keeps secrets and private chats here (chmod go-rwx)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, m);
}

/// The JWT secret: configured, or read from `{data_dir}/jwt_secret`, or generated
/// there (mode 0600) on first start.
pub fn jwt_secret(config: &Config) -> std::io::Result<Vec<u8>> {
    if let Some(s) = &config.auth.jwt_secret {
        return Ok(s.0.as_bytes().to_vec());
    }
    kept_secret(config, "jwt_secret")
}

/// The comet password: configured, or kept in `{data_dir}/comet_password`.
pub fn comet_password(config: &Config) -> std::io::Result<String> {
    if let Some(s) = &config.comet.password {
        return Ok(s.0.clone());
    }
    kept_secret(config, "comet_password").map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A secret generated once into `{data_dir}/{name}` (mode 0600) and read back after.
fn kept_secret(config: &Config, name: &str) -> std::io::Result<Vec<u8>> {
    let path = config.data_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is too short; delete it to regenerate",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    ensure_private_dir(&config.data_dir)?;
    let mut bytes = [0u8; 48];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let secret = hex::encode(bytes);
    write_private(&path, &secret)?;
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    set_mode(path, 0o600)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_of_urls() {
        assert_eq!(
            sqlite_file("sqlite://data/huddle.db?mode=rwc"),
            Some(PathBuf::from("data/huddle.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:/tmp/x.db"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
