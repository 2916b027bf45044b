//! The fetcher of process tasks: puts `CommandInfo.uris` into the sandbox before the command
//! starts, as the Mesos fetcher does, for the URIs an agent without network access can serve.
//!
//! `file:///abs/path` and plain absolute paths are copied into the sandbox (under their basename,
//! or `output_file`); archives are extracted into the sandbox with the system `tar`/`unzip` unless
//! `extract` is false; `executable` makes the copy mode 0755 (and is never extracted, as in Mesos).
//! Every other scheme fails the fetch, which fails the task's launch.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;
use tracing::debug;

use crate::mesos::proto::v1 as pb;

/// Why a URI could not be fetched. The message ends up in the task's TASK_FAILED update.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error(
        "failed to fetch '{uri}': scheme '{scheme}' is not supported by this agent (no network access)"
    )]
    UnsupportedScheme { uri: String, scheme: String },
    #[error(
        "failed to fetch '{uri}': a relative path needs the agent's frameworks_home, which this agent does not have"
    )]
    RelativePath { uri: String },
    #[error(
        "failed to fetch '{uri}': output_file '{output}' must be a relative path inside the sandbox"
    )]
    BadOutputFile { uri: String, output: String },
    #[error("failed to fetch '{uri}': '{}' is not a regular file", path.display())]
    NotAFile { uri: String, path: PathBuf },
    #[error("failed to fetch '{uri}': {source}")]
    Io {
        uri: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to extract '{}': {detail}", path.display())]
    Extract { path: PathBuf, detail: String },
}

/// Fetches every URI into `sandbox`, in order; the first failure stops the fetch.
pub(crate) async fn fetch_all(
    uris: &[pb::command_info::Uri],
    sandbox: &Path,
) -> Result<(), FetchError> {
    for uri in uris {
        fetch_one(uri, sandbox).await?;
    }
    Ok(())
}

async fn fetch_one(uri: &pb::command_info::Uri, sandbox: &Path) -> Result<(), FetchError> {
    let source = local_path(&uri.value)?;
    let io = |source| FetchError::Io {
        uri: uri.value.clone(),
        source,
    };
    let name = match &uri.output_file {
        Some(output) => relative_inside(output).ok_or_else(|| FetchError::BadOutputFile {
            uri: uri.value.clone(),
            output: output.clone(),
        })?,
        None => PathBuf::from(source.file_name().ok_or_else(|| FetchError::NotAFile {
            uri: uri.value.clone(),
            path: source.clone(),
        })?),
    };
    let metadata = tokio::fs::metadata(&source).await.map_err(io)?;
    if !metadata.is_file() {
        return Err(FetchError::NotAFile {
            uri: uri.value.clone(),
            path: source,
        });
    }
    let destination = sandbox.join(&name);
    if let Some(parent) = destination.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
    }
    tokio::fs::copy(&source, &destination).await.map_err(io)?;
    debug!(uri = %uri.value, destination = %destination.display(), "fetched");

    if uri.executable.unwrap_or(false) {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&destination, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(io)?;
    } else if uri.extract.unwrap_or(true) {
        if let Some(kind) = archive_kind(&name) {
            extract(&destination, kind, sandbox).await?;
        }
    }
    Ok(())
}

/// The local path a URI names, or why this agent cannot fetch it.
fn local_path(uri: &str) -> Result<PathBuf, FetchError> {
    if let Some((scheme, rest)) = uri.split_once("://") {
        if !scheme.eq_ignore_ascii_case("file") {
            return Err(FetchError::UnsupportedScheme {
                uri: uri.to_owned(),
                scheme: scheme.to_ascii_lowercase(),
            });
        }
        // file:///path, or file://localhost/path.
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(FetchError::UnsupportedScheme {
                uri: uri.to_owned(),
                scheme: "file (remote host)".to_owned(),
            });
        }
        return Ok(PathBuf::from(path));
    }
    if uri.starts_with('/') {
        Ok(PathBuf::from(uri))
    } else {
        Err(FetchError::RelativePath {
            uri: uri.to_owned(),
        })
    }
}

/// `output` as a path that stays inside the sandbox.
fn relative_inside(output: &str) -> Option<PathBuf> {
    let path = PathBuf::from(output);
    let ok = !output.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    ok.then_some(path)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveKind {
    Tar,
    Zip,
}

fn archive_kind(name: &Path) -> Option<ArchiveKind> {
    let name = name.file_name()?.to_str()?.to_ascii_lowercase();
    const TARS: [&str; 7] = [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz",
    ];
    if TARS.iter().any(|ext| name.ends_with(ext)) {
        Some(ArchiveKind::Tar)
    } else if name.ends_with(".zip") {
        Some(ArchiveKind::Zip)
    } else {
        None
    }
}

/// Extracts an archive into the sandbox; GNU tar recognises the compression by itself.
async fn extract(archive: &Path, kind: ArchiveKind, sandbox: &Path) -> Result<(), FetchError> {
    let mut command = match kind {
        ArchiveKind::Tar => {
            let mut c = Command::new("tar");
            c.arg("-C").arg(sandbox).arg("-xf").arg(archive);
            c
        }
        ArchiveKind::Zip => {
            let mut c = Command::new("unzip");
            c.arg("-o").arg("-q").arg(archive).arg("-d").arg(sandbox);
            c
        }
    };
    let output = command
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| FetchError::Extract {
            path: archive.to_owned(),
            detail: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(FetchError::Extract {
            path: archive.to_owned(),
            detail: format!(
                "{} {}: {}",
                if kind == ArchiveKind::Tar {
                    "tar"
                } else {
                    "unzip"
                },
                super::process::describe_exit(output.status),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    debug!(archive = %archive.display(), "extracted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths() {
        assert_eq!(local_path("file:///a/b").unwrap(), Path::new("/a/b"));
        assert_eq!(
            local_path("file://localhost/a/b").unwrap(),
            Path::new("/a/b")
        );
        assert_eq!(local_path("/a/b").unwrap(), Path::new("/a/b"));
        assert!(matches!(
            local_path("https://example.invalid/x.tgz"),
            Err(FetchError::UnsupportedScheme { scheme, .. }) if scheme == "https"
        ));
        assert!(matches!(
            local_path("hdfs://nn/x"),
            Err(FetchError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            local_path("x.tgz"),
            Err(FetchError::RelativePath { .. })
        ));
    }

    #[test]
    fn archive_kinds() {
        for (name, kind) in [
            ("a.tar", Some(ArchiveKind::Tar)),
            ("a.tar.gz", Some(ArchiveKind::Tar)),
            ("A.TGZ", Some(ArchiveKind::Tar)),
            ("a.tar.bz2", Some(ArchiveKind::Tar)),
            ("a.tar.xz", Some(ArchiveKind::Tar)),
            ("a.zip", Some(ArchiveKind::Zip)),
            ("a.gz", None),
            ("a.txt", None),
        ] {
            assert_eq!(archive_kind(Path::new(name)), kind, "{name}");
        }
    }

    #[test]
    fn output_files_stay_inside() {
        assert_eq!(relative_inside("a/b").unwrap(), Path::new("a/b"));
        assert!(relative_inside("/etc/x").is_none());
        assert!(relative_inside("../x").is_none());
        assert!(relative_inside("").is_none());
    }
}
