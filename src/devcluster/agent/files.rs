//! Upstream's `FilesProcess` (`src/files/files.cpp`), as a dev cluster agent serves it:
//! `GET /files/read?path=&offset=&length=` answers `{"data": ..., "offset": ...}` with
//! `offset=-1` answering the file's size, reads capped at 16 pages (64 KiB);
//! `/files/browse?path=` lists a directory; `/files/download?path=` sends a file. 400 for a
//! missing path, a bad or negative offset or length, or a directory to read; 404 for a path
//! nothing attached.
//!
//! What is attached: every path under the agent's work directory (the sandboxes, by their real
//! directory), and each sandbox under upstream's virtual path
//! `/frameworks/<framework id>/executors/<executor id>/runs/latest` (a command executor's id is
//! its task's). A listing shows the paths under the prefix it was asked with.
//!
//! Where the dev cluster differs: no agent log files are attached; `uid`/`gid` of a listing are
//! numeric; file bytes that are not UTF-8 read as `?` (one byte each, so offsets stay byte
//! offsets) and a read never ends inside a UTF-8 character.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::SandboxReport;

/// The most one `/files/read` returns: upstream's 16 pages.
pub(crate) const MAX_READ: u64 = 16 * 4096;

/// What a files endpoint may serve: the real directories under `root` (none without a root:
/// a virtual agent keeps no files), and the virtual paths of `sandboxes`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attached {
    pub root: Option<PathBuf>,
    pub sandboxes: Vec<SandboxReport>,
}

impl Attached {
    /// The real path `path` names, if it exists and is attached.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let root = self.root.as_deref()?;
        let real = match virtual_sandbox(path, &self.sandboxes) {
            Some(real) => real,
            None => PathBuf::from(path),
        };
        resolve(root, &real)
    }
}

/// `/frameworks/<fw>/executors/<ex>/runs/latest[/rest]` as the sandbox's real path.
fn virtual_sandbox(path: &str, sandboxes: &[SandboxReport]) -> Option<PathBuf> {
    let rest = path.strip_prefix("/frameworks/")?;
    let (framework_id, rest) = rest.split_once("/executors/")?;
    let (executor_id, rest) = rest.split_once("/runs/latest")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let runs = || {
        sandboxes
            .iter()
            .filter(|s| s.framework_id == framework_id && s.task_id == executor_id)
    };
    // The live run is the latest; without one, the most recently completed.
    let sandbox = runs()
        .find(|s| !s.completed)
        .or_else(|| runs().next_back())?;
    let directory = sandbox.directory.as_ref()?;
    Some(directory.join(rest.trim_start_matches('/')))
}

/// The query of the `/files` endpoints, as text (upstream parses the numbers itself).
#[derive(Debug, Default)]
struct FilesQuery {
    path: Option<String>,
    offset: Option<String>,
    length: Option<String>,
}

impl FilesQuery {
    /// Decodes a raw query as libprocess does (`%XX`, and `+` for a space); the last of a
    /// repeated key wins, unknown keys (`jsonp`) are ignored.
    fn parse(raw: Option<&str>) -> FilesQuery {
        let mut q = FilesQuery::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = value.replace('+', " ");
            let value = percent_encoding::percent_decode_str(&value)
                .decode_utf8_lossy()
                .into_owned();
            match key {
                "path" => q.path = Some(value),
                "offset" => q.offset = Some(value),
                "length" => q.length = Some(value),
                _ => {}
            }
        }
        q
    }
}

/// `GET /files/read`.
pub(crate) async fn read(attached: Attached, raw: Option<String>) -> Response {
    let q = FilesQuery::parse(raw.as_deref());
    tokio::task::spawn_blocking(move || read_blocking(&attached, q))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn read_blocking(attached: &Attached, q: FilesQuery) -> Response {
    let Some(path) = q.path.filter(|p| !p.is_empty()) else {
        return bad("Expecting 'path=value' in query.\n");
    };
    let mut offset: i64 = -1;
    if let Some(text) = &q.offset {
        match text.parse::<i64>() {
            Ok(n) if n < -1 => return bad(&format!("Negative offset provided: {n}.\n")),
            Ok(n) => offset = n,
            Err(e) => return bad(&format!("Failed to parse offset: {e}.\n")),
        }
    }
    let mut length: Option<u64> = None;
    if let Some(text) = &q.length {
        match text.parse::<i64>() {
            Ok(n) if n < -1 => return bad(&format!("Negative length provided: {n}.\n")),
            Ok(-1) => {}
            Ok(n) => length = Some(n as u64),
            Err(e) => return bad(&format!("Failed to parse length: {e}.\n")),
        }
    }
    let Some(resolved) = attached.resolve(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if resolved.is_dir() {
        return bad("Cannot read a directory.\n");
    }
    let mut file = match std::fs::File::open(&resolved) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Failed to open file at '{}': {e}.\n", resolved.display()),
            )
                .into_response();
        }
    };
    let size = file.metadata().map_or(0, |m| m.len());
    // `offset=-1` asks for the size (the web UI's pailer starts so).
    let (start, length) = if offset == -1 {
        (0, Some(0))
    } else {
        (offset as u64, length)
    };
    let shown_offset = if offset == -1 { size } else { start };
    if start >= size {
        return files_json("", shown_offset);
    }
    let length = length.unwrap_or(size - start).min(MAX_READ);
    if length == 0 {
        return files_json("", shown_offset);
    }
    let mut bytes = Vec::with_capacity(length as usize);
    let read = file
        .seek(SeekFrom::Start(start))
        .and_then(|_| (&mut file).take(length).read_to_end(&mut bytes));
    if let Err(e) = read {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to read file at '{}': {e}.\n", resolved.display()),
        )
            .into_response();
    }
    files_json(&text_of(&bytes), shown_offset)
}

/// `GET /files/browse`.
pub(crate) async fn browse(attached: Attached, raw: Option<String>) -> Response {
    let q = FilesQuery::parse(raw.as_deref());
    tokio::task::spawn_blocking(move || {
        let Some(path) = q.path.filter(|p| !p.is_empty()) else {
            return bad("Expecting 'path=value' in query.\n");
        };
        let Some(resolved) = attached.resolve(&path) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let mut names: Vec<_> = std::fs::read_dir(&resolved)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let listing: Vec<Value> = names
            .iter()
            .filter_map(|name| {
                let meta = std::fs::metadata(resolved.join(name)).ok()?;
                let shown = format!("{}/{}", path.trim_end_matches('/'), name.to_string_lossy());
                Some(json!({
                    "path": shown,
                    "nlink": meta.nlink(),
                    "size": meta.len(),
                    "mtime": meta.mtime(),
                    "mode": mode_string(&meta),
                    "uid": meta.uid().to_string(),
                    "gid": meta.gid().to_string(),
                }))
            })
            .collect();
        axum::Json(listing).into_response()
    })
    .await
    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `GET /files/download`.
pub(crate) async fn download(attached: Attached, raw: Option<String>) -> Response {
    let q = FilesQuery::parse(raw.as_deref());
    let Some(path) = q.path.filter(|p| !p.is_empty()) else {
        return bad("Expecting 'path=value' in query.\n");
    };
    let Some(resolved) = attached.resolve(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if resolved.is_dir() {
        return bad("Cannot download a directory.\n");
    }
    match tokio::fs::read(&resolved).await {
        Ok(bytes) => {
            let name = resolved
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename={name}"),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

fn bad(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_owned()).into_response()
}

fn files_json(data: &str, offset: u64) -> Response {
    axum::Json(json!({ "data": data, "offset": offset })).into_response()
}

/// The canonical path of `path` if it exists inside `root` (the sandboxes' work directory),
/// which is all the dev cluster attaches; None otherwise (404, as for a path upstream has not
/// attached).
fn resolve(root: &Path, path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let root = std::fs::canonicalize(root).ok()?;
    let resolved = std::fs::canonicalize(path).ok()?;
    resolved.starts_with(&root).then_some(resolved)
}

/// Bytes as JSON text, one byte per byte: a UTF-8 character split at the end of the read is left
/// for the next read, and a byte that is not UTF-8 reads as `?`.
fn text_of(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match e.error_len() {
                    // Incomplete at the end: the next read starts at that character.
                    None => return out,
                    Some(n) => {
                        out.extend(std::iter::repeat_n('?', n));
                        rest = &after[n..];
                    }
                }
            }
        }
    }
}

/// `-rw-r--r--`, as upstream's listing writes a file's mode.
fn mode_string(meta: &std::fs::Metadata) -> String {
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let mode = meta.mode();
    let mut s = String::with_capacity(10);
    s.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_paths_name_the_latest_run() {
        let run = |dir: &str, completed: bool| SandboxReport {
            framework_id: "F".into(),
            task_id: "t".into(),
            directory: Some(PathBuf::from(dir)),
            state: None,
            completed,
        };
        let both = [run("/w/live", false), run("/w/old", true)];
        let path = "/frameworks/F/executors/t/runs/latest/stdout";
        assert_eq!(
            virtual_sandbox(path, &both),
            Some(PathBuf::from("/w/live/stdout"))
        );
        assert_eq!(
            virtual_sandbox("/frameworks/F/executors/t/runs/latest", &both[1..]),
            Some(PathBuf::from("/w/old/"))
        );
        assert_eq!(
            virtual_sandbox("/frameworks/F/executors/u/runs/latest", &both),
            None
        );
        assert_eq!(
            virtual_sandbox("/frameworks/F/executors/t/runs/latestx", &both),
            None
        );
        assert_eq!(virtual_sandbox("/w/live/stdout", &both), None);
    }

    #[test]
    fn text_keeps_byte_offsets() {
        assert_eq!(text_of(b"plain\n"), "plain\n");
        // An invalid byte is one `?`.
        assert_eq!(text_of(b"a\xffb"), "a?b");
        // "é" is two bytes; cut after the first, the read ends before it.
        assert_eq!(text_of(b"caf\xc3"), "caf");
        assert_eq!(text_of("café".as_bytes()), "café");
    }
}
