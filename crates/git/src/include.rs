//! `.worktreeinclude`: files of the owner's checkout that git ignores (`.env`, local
//! config) copied into a new task's working tree, the convention Claude Code,
//! Conductor and Codex share.
//!
//! The file sits at the root of the owner's checkout and uses gitignore syntax. A
//! file is copied only when it matches a pattern **and** git ignores it in the
//! owner's checkout **and** the task's base commit does not track it, so a tracked
//! file is never copied or overwritten. Only regular files are copied, never through
//! a symlink: the source is opened without following links and must resolve inside
//! the checkout, and no folder of the task's tree that is a symlink is written
//! through (a base commit can hold symlinks the checkout does not). Nothing named
//! `.git` is copied (a nested repository would turn into a gitlink).
//!
//! Ignored folders are not searched wholesale (`node_modules/` can hold a million
//! files): one is entered when a pattern matches the folder itself (then all its
//! files are copied) or names a path inside it (`config/local/app.json`). A pattern
//! without a slash (`.env`) matches at any depth of the folders git does not ignore.
//!
//! The copies never show as changes and are never committed: each copied path goes
//! into the task repository's `.git/info/exclude` (anchored, escaped), which
//! `git add -A` of the snapshot and commit scripts honours.

use crate::{open, Error, Result};
use git2::{Oid, StatusOptions};
use ignore::gitignore::GitignoreBuilder;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// The file listing what to copy, at the root of the owner's checkout.
pub const INCLUDE_FILE: &str = ".worktreeinclude";
/// The most files copied into one task.
pub const MAX_FILES: usize = 1000;
/// The most bytes copied into one task (64 MiB).
pub const MAX_BYTES: u64 = 64 << 20;
/// The most entries looked at inside ignored folders a pattern enters.
const MAX_VISITED: usize = 100_000;
/// The largest `.worktreeinclude` read (64 KiB).
const MAX_INCLUDE_FILE: u64 = 64 << 10;

/// What [`copy_worktree_include`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Included {
    /// Paths copied, relative to the root, `/`-separated, sorted.
    pub copied: Vec<String>,
    /// Paths (or patterns) left out, each with the reason.
    pub skipped: Vec<(String, String)>,
    /// Bytes copied.
    pub bytes: u64,
}

/// Copies the files the owner's `.worktreeinclude` names (see the module's notes)
/// from the checkout of `user_repo` into the task's working tree at `workspace`
/// (made by [`crate::taskrepo::create_task_repo`], no sandbox yet), whose base
/// commit is `base`, and lists them in `workspace/.git/info/exclude`. No
/// `.worktreeinclude`, or a bare repository, copies nothing.
///
/// A file that cannot be copied safely is skipped with its reason in
/// [`Included::skipped`]; past [`MAX_FILES`] or [`MAX_BYTES`] the rest are skipped.
///
/// Errors: git errors reading the owner's repository; [`Error::Io`] when the
/// exclude file cannot be written (the copies are removed again).
pub fn copy_worktree_include(user_repo: &Path, workspace: &Path, base: Oid) -> Result<Included> {
    let repo = open(user_repo)?;
    let mut out = Included::default();
    let Some(workdir) = repo.workdir().map(Path::to_path_buf) else { return Ok(out) };
    let Some(lines) = read_include_file(&workdir, &mut out)? else { return Ok(out) };
    let root = workdir.canonicalize().map_err(|e| Error::Io(format!("{}: {e}", workdir.display())))?;

    let mut builder = GitignoreBuilder::new(&root);
    let mut prefixes = Vec::new();
    for line in &lines {
        if let Err(e) = builder.add_line(None, line) {
            out.skipped.push((line.clone(), format!("not a valid pattern: {e}")));
            continue;
        }
        if let Some(p) = literal_prefix(line) {
            prefixes.push(p);
        }
    }
    let matcher = builder.build().map_err(|e| Error::Io(format!("{INCLUDE_FILE}: {e}")))?;
    let matches = |rel: &str, dir: bool| matcher.matched_path_or_any_parents(rel, dir).is_ignore();

    // Ignored paths of the checkout: files, and ignored folders collapsed ("dir/").
    let mut opts = StatusOptions::new();
    opts.include_ignored(true).recurse_ignored_dirs(false).include_untracked(true).recurse_untracked_dirs(true).exclude_submodules(true);
    let mut candidates = Vec::new();
    let mut visited = 0usize;
    for entry in repo.statuses(Some(&mut opts))?.iter() {
        if !entry.status().contains(git2::Status::IGNORED) {
            continue;
        }
        let Some(path) = entry.path() else { continue };
        match path.strip_suffix('/') {
            None if matches(path, false) => candidates.push(path.to_string()),
            None => {}
            Some(dir) => {
                let whole = matches(dir, true);
                let inside = format!("{dir}/");
                if !whole && !prefixes.iter().any(|p| p.starts_with(&inside)) {
                    continue;
                }
                for e in walkdir::WalkDir::new(root.join(dir)).follow_links(false) {
                    visited += 1;
                    if visited > MAX_VISITED {
                        out.skipped.push((inside.clone(), format!("more than {MAX_VISITED} entries searched; the rest is skipped")));
                        break;
                    }
                    let Ok(e) = e else { continue };
                    if !e.file_type().is_file() {
                        continue;
                    }
                    let Some(rel) = e.path().strip_prefix(&root).ok().and_then(|r| r.to_str()) else { continue };
                    if whole || matches(rel, false) {
                        candidates.push(rel.to_string());
                    }
                }
            }
        }
    }
    candidates.sort();
    candidates.dedup();

    let base_tree = repo.find_commit(base)?.tree()?;
    for rel in candidates {
        if out.copied.len() >= MAX_FILES {
            out.skipped.push((rel, format!("more than {MAX_FILES} files")));
            continue;
        }
        if Path::new(&rel).components().any(|c| matches!(c, Component::Normal(n) if n.eq_ignore_ascii_case(".git"))) {
            out.skipped.push((rel, "a path inside a .git folder is never copied".into()));
            continue;
        }
        if base_tree.get_path(Path::new(&rel)).is_ok() {
            out.skipped.push((rel, "the task's base commit tracks it".into()));
            continue;
        }
        match copy_one(&root, workspace, &rel, MAX_BYTES - out.bytes) {
            Ok(n) => {
                out.bytes += n;
                out.copied.push(rel);
            }
            Err(why) => out.skipped.push((rel, why)),
        }
    }
    if !out.copied.is_empty() {
        if let Err(e) = write_exclude(workspace, &out.copied) {
            // Copies that would show as changes are taken back.
            for rel in &out.copied {
                let _ = std::fs::remove_file(workspace.join(rel));
            }
            return Err(e);
        }
    }
    Ok(out)
}

/// The lines of `.worktreeinclude` (a regular file, not a link), or `None`.
fn read_include_file(workdir: &Path, out: &mut Included) -> Result<Option<Vec<String>>> {
    let path = workdir.join(INCLUDE_FILE);
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    if !meta.is_file() {
        out.skipped.push((INCLUDE_FILE.into(), "not a regular file (a symlink or folder is not read)".into()));
        return Ok(None);
    }
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_INCLUDE_FILE).read_to_string(&mut text))
        .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    Ok(Some(text.lines().map(str::to_string).collect()))
}

/// The literal folder path a pattern starts with (`config/local/x.json` →
/// `config/local/x.json`, `/a/b*/c` → `a/b`), for patterns with a slash before
/// their end; `None` for negations, comments and patterns matching at any depth.
fn literal_prefix(line: &str) -> Option<String> {
    let line = line.trim_end();
    if line.is_empty() || line.starts_with(['#', '!']) || line.starts_with("**") {
        return None;
    }
    let body = line.strip_suffix('/').unwrap_or(line);
    if !body.contains('/') {
        return None;
    }
    let body = body.trim_start_matches('/');
    let end = body.find(['*', '?', '[', '\\']).unwrap_or(body.len());
    Some(body[..end].to_string())
}

/// Copies `root/rel` into `workspace/rel`: a regular file opened without following
/// a link, inside the checkout, into folders that are not links, as a new file
/// (nothing is overwritten), at most `budget` bytes. Returns the bytes copied or why not.
fn copy_one(root: &Path, workspace: &Path, rel: &str, budget: u64) -> std::result::Result<u64, String> {
    let src = root.join(rel);
    let parent = src.parent().ok_or("no folder")?;
    let real_parent = parent.canonicalize().map_err(|e| e.to_string())?;
    if !real_parent.starts_with(root) {
        return Err("its folder is a symlink out of the checkout".into());
    }
    let mut file = open_nofollow(&src).map_err(|e| format!("not a regular file ({e})"))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > budget {
        return Err(format!("over the {} MiB copied into one task", MAX_BYTES >> 20));
    }
    let dest = safe_dest(workspace, rel)?;
    let mut new = create_new_nofollow(&dest, executable(&meta)).map_err(|e| format!("{}: {e}", dest.display()))?;
    let copied = std::io::copy(&mut (&mut file).take(budget), &mut new).map_err(|e| e.to_string())?;
    new.flush().map_err(|e| e.to_string())?;
    Ok(copied)
}

/// `workspace/rel` with its folders made, refusing a path whose existing folders
/// include a symlink or a file.
fn safe_dest(workspace: &Path, rel: &str) -> std::result::Result<PathBuf, String> {
    let mut at = workspace.to_path_buf();
    let parts: Vec<Component> = Path::new(rel).components().collect();
    let Some((last, folders)) = parts.split_last() else { return Err("an empty path".into()) };
    for c in folders {
        let Component::Normal(n) = c else { return Err("not a plain relative path".into()) };
        at.push(n);
        match at.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is a symlink or a file in the task's tree", at.display())),
            Err(_) => std::fs::create_dir(&at).map_err(|e| format!("{}: {e}", at.display()))?,
        }
    }
    let Component::Normal(n) = last else { return Err("not a plain relative path".into()) };
    Ok(at.join(n))
}

#[cfg(unix)]
fn open_nofollow(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc_nofollow()).open(p)
}

#[cfg(not(unix))]
fn open_nofollow(p: &Path) -> std::io::Result<std::fs::File> {
    if p.symlink_metadata()?.file_type().is_symlink() {
        return Err(std::io::Error::other("a symlink"));
    }
    std::fs::File::open(p)
}

#[cfg(unix)]
fn create_new_nofollow(p: &Path, exec: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).custom_flags(libc_nofollow()).mode(if exec { 0o755 } else { 0o644 }).open(p)
}

#[cfg(not(unix))]
fn create_new_nofollow(p: &Path, _exec: bool) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(p)
}

/// `O_NOFOLLOW`: the final component is not followed.
#[cfg(unix)]
fn libc_nofollow() -> i32 {
    libc::O_NOFOLLOW
}

#[cfg(unix)]
fn executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_m: &std::fs::Metadata) -> bool {
    false
}

/// The same copies for a working tree on another machine (a remote host's volume):
/// [`copy_worktree_include`] into `stage` (an empty folder of AnyCode's, which the
/// caller removes), then the copies as a tar (paths relative to the working tree's
/// root, regular files only) and the lines to append to its `.git/info/exclude`.
/// An empty tar and text when nothing was copied.
///
/// Errors: as [`copy_worktree_include`]; [`Error::Io`] reading the copies back.
pub fn worktree_include_tar(user_repo: &Path, stage: &Path, base: Oid) -> Result<(Vec<u8>, String, Included)> {
    let info = stage.join(".git").join("info");
    std::fs::create_dir_all(&info).map_err(|e| Error::Io(format!("{}: {e}", info.display())))?;
    let got = copy_worktree_include(user_repo, stage, base)?;
    if got.copied.is_empty() {
        return Ok((Vec::new(), String::new(), got));
    }
    let exclude = std::fs::read_to_string(info.join("exclude")).map_err(|e| Error::Io(format!("{}: {e}", info.display())))?;
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for rel in &got.copied {
        builder.append_path_with_name(stage.join(rel), rel).map_err(|e| Error::Io(format!("{rel}: {e}")))?;
    }
    let tar = builder.into_inner().map_err(|e| Error::Io(format!("the .worktreeinclude tar: {e}")))?;
    Ok((tar, exclude, got))
}

/// Appends `paths` to `workspace/.git/info/exclude`, each anchored at the root with
/// gitignore's special characters escaped, so `git add -A` leaves them out.
fn write_exclude(workspace: &Path, paths: &[String]) -> Result<()> {
    let info = workspace.join(".git").join("info");
    std::fs::create_dir_all(&info).map_err(|e| Error::Io(format!("{}: {e}", info.display())))?;
    let file = info.join("exclude");
    let mut text = String::from("# AnyCode: files copied from the owner's checkout by .worktreeinclude\n");
    for p in paths {
        text.push('/');
        for c in p.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\' | ' ' | '!' | '#') {
                text.push('\\');
            }
            text.push(c);
        }
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&file).map_err(|e| Error::Io(format!("{}: {e}", file.display())))?;
    f.write_all(text.as_bytes()).map_err(|e| Error::Io(format!("{}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::literal_prefix;

    #[test]
    fn literal_prefixes_name_the_folders_a_pattern_enters() {
        assert_eq!(literal_prefix("config/local/app.json").as_deref(), Some("config/local/app.json"));
        assert_eq!(literal_prefix("/a/b*/c").as_deref(), Some("a/b"));
        assert_eq!(literal_prefix("secrets/").as_deref(), None);
        assert_eq!(literal_prefix(".env"), None);
        assert_eq!(literal_prefix("!x/y"), None);
        assert_eq!(literal_prefix("**/x/y"), None);
    }
}
