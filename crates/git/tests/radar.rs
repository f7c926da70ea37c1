//! The conflict radar on real repositories with task repositories, with branches
//! built to conflict and not to conflict. The radar (on the mirrors) must leave
//! every working tree, index, mirror and object store exactly as it was. "Update
//! from base" runs in the sandbox; the server's tests cover it with real containers.
// Test code: a panic is how a test fails (clippy.toml allows unwrap/expect in
// #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandbox;

use anycode_git::taskrepo::{create_task_repo, mirror_merge_check};
use anycode_git::Error;
use sandbox::{mirror_of, sync};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sandbox::{git_t as git, write_file as write};

/// Every file under `dir` with its bytes and modification time (the whole state a
/// check could disturb: worktree files, the index, refs, objects).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else {
            out.insert(p.clone(), (fs::read(&p).unwrap_or_default(), meta.modified().unwrap()));
        }
    }
    out
}

struct Fx {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    repo: PathBuf,
}

const SHARED: &str = "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\n";

fn fixture() -> Fx {
    let (tmp, dir, repo) = sandbox::temp_repo();
    write(&repo.join("shared.txt"), SHARED);
    write(&repo.join("other.txt"), "other\n");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    Fx { _tmp: tmp, dir, repo }
}

impl Fx {
    fn task(&self, branch: &str) -> PathBuf {
        let wt = self.dir.join("wt").join(branch.replace('/', "-"));
        create_task_repo(&self.repo, Some("main"), branch, &wt, &mirror_of(&wt)).unwrap();
        wt
    }

    /// Commits on main (in the main repository's working directory).
    fn advance_main(&self, file: &str, content: &str) {
        write(&self.repo.join(file), content);
        git(&self.repo, &["add", "."]);
        git(&self.repo, &["commit", "-q", "-m", &format!("main changes {file}")]);
    }
}

fn commit(wt: &Path, file: &str, content: &str) {
    write(&wt.join(file), content);
    git(wt, &["add", "-A"]);
    git(wt, &["commit", "-q", "-m", &format!("task changes {file}")]);
}

#[test]
fn clean_and_conflicting_branches_and_nothing_written() {
    let fx = fixture();
    let clean = fx.task("anycode/clean");
    let clash = fx.task("anycode/clash");
    let pending = fx.task("anycode/pending");
    // clean: changes line 1 of shared.txt; main changes line 8 → merges cleanly.
    commit(&clean, "shared.txt", &SHARED.replace("line 1\n", "line 1 (task)\n"));
    // clash: changes line 8 like main does, differently → conflict.
    commit(&clash, "shared.txt", &SHARED.replace("line 8\n", "line 8 (task)\n"));
    // pending: the same clash, but uncommitted, plus an untracked new file.
    write(&pending.join("shared.txt"), &SHARED.replace("line 8\n", "line eight, uncommitted\n"));
    write(&pending.join("new/untracked.txt"), "new\n");
    fx.advance_main("shared.txt", &SHARED.replace("line 8\n", "line 8 (main)\n"));

    // Bring every task's work out (as the engine does before the radar).
    for wt in [&clean, &clash, &pending] {
        sync(wt).unwrap();
    }
    // `git status` refreshes indexes itself: run it before taking the snapshot.
    let status_before: Vec<String> = [&fx.repo, &clean, &clash, &pending].iter().map(|p| git(p, &["status", "--porcelain"])).collect();
    let dirs = [fx.repo.clone(), clean.clone(), clash.clone(), pending.clone(), fx.dir.join("mirrors")];
    let before: Vec<_> = dirs.iter().map(|p| snapshot(p)).collect();
    let check = |wt: &Path, base: &str| mirror_merge_check(&fx.repo, &mirror_of(wt), base);

    let c = check(&clean, "main").unwrap();
    assert!(c.clean, "{c:?}");
    assert!(c.conflicts.is_empty());
    assert_eq!((c.ahead, c.behind), (1, 1));
    assert_eq!(c.changed, vec!["shared.txt"]);
    assert!(!c.uncommitted);
    assert_eq!(c.base_sha, git(&fx.repo, &["rev-parse", "main"]));
    assert_eq!(c.head_sha, git(&clean, &["rev-parse", "HEAD"]));

    let c = check(&clash, "main").unwrap();
    assert!(!c.clean, "{c:?}");
    assert_eq!(c.conflicts, vec!["shared.txt"]);

    let c = check(&pending, "main").unwrap();
    assert!(c.uncommitted);
    assert_eq!(c.conflicts, vec!["shared.txt"], "uncommitted work counts");
    assert_eq!(c.changed, vec!["new/untracked.txt", "shared.txt"]);
    assert_eq!(c.ahead, 0);

    // Unknown base: a clear error.
    assert!(matches!(check(&clean, "nope"), Err(Error::UnknownBranch(_))));

    // Nothing was written anywhere: files, indexes, refs, objects, mtimes.
    let after: Vec<_> = dirs.iter().map(|p| snapshot(p)).collect();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>(), "no file added or removed");
        for (k, v) in b {
            assert!(a[k] == *v, "{} changed", k.display());
        }
    }
    let status_after: Vec<String> = [&fx.repo, &clean, &clash, &pending].iter().map(|p| git(p, &["status", "--porcelain"])).collect();
    assert_eq!(status_before, status_after);
}
