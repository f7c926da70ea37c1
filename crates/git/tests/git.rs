//! Integration tests of anycode-git against real repositories, built in tempdirs
//! with the `git` CLI and checked with it too.
// Test code: a panic is how a test fails (clippy.toml allows unwrap/expect in
// #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandbox;

use anycode_git::taskrepo::{create_task_repo, remove_task_repo};
use anycode_git::{branches, check_new_branch, delete_branch, inspect_repo, Error, FileDiff};
use sandbox::{commit_all, diff, mirror_of};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

const NAME: &str = "Test User";
const EMAIL: &str = "test@example.com";

const LIB_RS: &str = "fn one() {}\nfn two() {}\nfn three() {}\nfn four() {}\nfn five() {}\n";
const RENAME_ME: &str = "alpha\nbeta\ngamma\ndelta\nepsilon\nzeta\neta\ntheta\n";

/// Runs `git` in `dir` (isolated from the system config, owner checks off) and
/// returns its trimmed stdout; panics when it fails.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "safe.directory=*", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(["-c", "core.autocrlf=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn write(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, content).unwrap();
}

/// A temp folder holding `repo/` (a repository on `main` with one commit) and
/// room for worktrees next to it.
struct Fixture {
    _tmp: TempDir,
    /// Canonical path of the temp folder.
    dir: PathBuf,
    /// Canonical path of the repository.
    repo: PathBuf,
}

impl Fixture {
    /// A repository whose own config has the test identity.
    fn new() -> Self {
        let fx = Self::without_identity();
        git(&fx.repo, &["config", "user.name", NAME]);
        git(&fx.repo, &["config", "user.email", EMAIL]);
        fx
    }

    /// A repository with no identity in its config (its first commit gets one on
    /// the command line).
    fn without_identity() -> Self {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let repo = dir.join("repo");
        fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        write(&repo.join("README.md"), "hello\n");
        write(&repo.join("src/lib.rs"), LIB_RS);
        write(&repo.join("to-delete.txt"), "one\ntwo\nthree\n");
        write(&repo.join("rename-me.txt"), RENAME_ME);
        write(&repo.join(".gitignore"), "*.log\nbuild/\n");
        fx_commit(&repo, "initial");
        Fixture { _tmp: tmp, dir, repo }
    }

    fn sha(&self, rev: &str) -> String {
        git(&self.repo, &["rev-parse", rev])
    }

    fn branch_exists(&self, name: &str) -> bool {
        !git(&self.repo, &["branch", "--list", name]).is_empty()
    }

    /// Where task `name`'s working tree goes (not created).
    fn worktree_path(&self, name: &str) -> PathBuf {
        self.dir.join("worktrees").join(name)
    }

    /// Creates task branch `branch` from `main` with its task repository (working
    /// tree `worktrees/<branch>`, mirror `mirrors/<branch>.git`).
    fn task(&self, branch: &str) -> PathBuf {
        let wt = self.worktree_path(branch);
        create_task_repo(&self.repo, Some("main"), branch, &wt, &mirror_of(&wt)).unwrap();
        wt
    }
}

/// Stages everything in `dir` and commits it with the test identity given on the
/// command line (works whatever the repository's config says).
fn fx_commit(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["-c", &format!("user.name={NAME}"), "-c", &format!("user.email={EMAIL}"), "commit", "-q", "-m", message]);
}

fn file<'a>(files: &'a [FileDiff], path: &str) -> &'a FileDiff {
    files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("{path} not in the diff: {files:#?}"))
}

fn paths(files: &[FileDiff]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

// ---------------------------------------------------------------- inspect_repo

#[test]
fn inspect_repo_describes_the_root_name_and_current_branch() {
    let fx = Fixture::new();
    let info = inspect_repo(&fx.repo).unwrap();
    assert_eq!(info.root, fx.repo);
    assert_eq!(info.name, "repo");
    assert_eq!(info.current_branch.as_deref(), Some("main"));

    git(&fx.repo, &["checkout", "-q", "-b", "feature"]);
    assert_eq!(inspect_repo(&fx.repo).unwrap().current_branch.as_deref(), Some("feature"));
}

#[test]
fn inspect_repo_has_no_current_branch_on_a_detached_head() {
    let fx = Fixture::new();
    git(&fx.repo, &["checkout", "-q", "--detach"]);
    assert_eq!(inspect_repo(&fx.repo).unwrap().current_branch, None);
}

#[test]
fn inspect_repo_reports_a_missing_path_as_path_not_found() {
    let fx = Fixture::new();
    let missing = fx.dir.join("nope");
    assert!(matches!(inspect_repo(&missing), Err(Error::PathNotFound(p)) if p == missing.display().to_string()));
}

#[test]
fn inspect_repo_refuses_a_plain_folder_as_not_a_repo() {
    let fx = Fixture::new();
    let plain = fx.dir.join("plain");
    fs::create_dir(&plain).unwrap();
    assert!(matches!(inspect_repo(&plain), Err(Error::NotARepo(_))));
}

#[test]
fn inspect_repo_refuses_a_subfolder_and_names_the_enclosing_repository() {
    let fx = Fixture::new();
    let err = inspect_repo(&fx.repo.join("src")).unwrap_err();
    assert!(matches!(err, Error::NotARepo(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&fx.repo.display().to_string()), "{message}");
    assert!(message.contains("inside the repository"), "{message}");
}

#[test]
fn inspect_repo_refuses_a_bare_repository() {
    let fx = Fixture::new();
    let bare = fx.dir.join("bare.git");
    git(&fx.dir, &["clone", "-q", "--bare", fx.repo.to_str().unwrap(), bare.to_str().unwrap()]);
    assert!(matches!(inspect_repo(&bare), Err(Error::Bare(_))));
}

// -------------------------------------------------------------------- branches

#[test]
fn branches_are_sorted_with_the_current_one() {
    let fx = Fixture::new();
    for b in ["zeta", "alpha", "feature/x"] {
        git(&fx.repo, &["branch", b]);
    }
    git(&fx.repo, &["checkout", "-q", "zeta"]);
    let b = branches(&fx.repo).unwrap();
    assert_eq!(b.branches, ["alpha", "feature/x", "main", "zeta"]);
    assert_eq!(b.current.as_deref(), Some("zeta"));
}

#[test]
fn an_empty_repository_has_no_current_branch_to_branch_from() {
    let tmp = TempDir::new().unwrap();
    let repo = tmp.path().canonicalize().unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let b = branches(&repo).unwrap();
    assert!(b.branches.is_empty());
    assert_eq!(b.current, None, "an unborn branch is not a current branch");
    assert_eq!(inspect_repo(&repo).unwrap().current_branch, None);
    let err = create_task_repo(&repo, None, "task", &tmp.path().join("wt"), &tmp.path().join("wt.git")).unwrap_err();
    assert!(matches!(err, Error::NoCurrentBranch), "{err:?}");
}

// ------------------------------------------------------------ check_new_branch

#[test]
fn check_new_branch_accepts_valid_names() {
    let fx = Fixture::new();
    for name in ["feature", "anycode/fix-login", "a.b", "UPPER_case-1", "deep/er/name"] {
        check_new_branch(&fx.repo, name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
    }
}

#[test]
fn check_new_branch_rejects_names_git_forbids() {
    let fx = Fixture::new();
    for name in ["a..b", "has space", "-x", "x.lock", "x/", "@{", "", "HEAD", "a~b", "a:b", "a\0b"] {
        match check_new_branch(&fx.repo, name) {
            Err(Error::InvalidBranchName(n)) => assert_eq!(n, name),
            other => panic!("{name:?}: {other:?}"),
        }
    }
}

#[test]
fn check_new_branch_rejects_an_existing_branch() {
    let fx = Fixture::new();
    git(&fx.repo, &["branch", "taken"]);
    assert!(matches!(check_new_branch(&fx.repo, "taken"), Err(Error::BranchExists(n)) if n == "taken"));
    assert!(matches!(check_new_branch(&fx.repo, "main"), Err(Error::BranchExists(_))));
}

// ------------------------------------------------------------ create_task_repo

#[test]
fn create_task_repo_branches_at_the_base_tip_in_a_repository_of_its_own() {
    let fx = Fixture::new();
    let wt = fx.worktree_path("task");
    let (base, sha) = create_task_repo(&fx.repo, Some("main"), "task", &wt, &mirror_of(&wt)).unwrap();
    assert_eq!(base, "main");
    assert_eq!(sha, fx.sha("main"));
    assert_eq!(fx.sha("task"), sha, "the branch starts at the base's tip in the user's repository");

    assert_eq!(fs::read_to_string(wt.join("src/lib.rs")).unwrap(), LIB_RS);
    assert_eq!(fs::read_to_string(wt.join("README.md")).unwrap(), "hello\n");
    assert!(wt.join(".git").is_dir(), "the task's .git is a folder of its own, not a link to the user's");
    assert_eq!(git(&wt, &["status", "--porcelain"]), "", "a fresh working tree is clean");
    assert_eq!(git(&wt, &["symbolic-ref", "HEAD"]), "refs/heads/task");
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), sha);
    let alternates = fs::read_to_string(wt.join(".git/objects/info/alternates")).unwrap();
    assert_eq!(alternates.trim(), fx.repo.join(".git/objects").display().to_string());
    let hooks: Vec<String> = fs::read_dir(wt.join(".git/hooks")).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    assert!(hooks.iter().all(|h| h.ends_with(".sample")), "no hooks: {hooks:?}");

    assert_eq!(git(&fx.repo, &["worktree", "list", "--porcelain"]).lines().filter(|l| l.starts_with("worktree ")).count(), 1, "no worktree registered in the user's repository");
    assert!(!fx.repo.join(".git/worktrees").exists());
    assert_eq!(git(&fx.repo, &["branch", "--show-current"]), "main", "the repository's checkout is untouched");
    assert_eq!(git(&mirror_of(&wt), &["rev-parse", "refs/anycode/head"]), sha);
}

#[test]
fn create_task_repo_defaults_to_the_current_branch() {
    let fx = Fixture::new();
    git(&fx.repo, &["checkout", "-q", "-b", "dev"]);
    write(&fx.repo.join("dev-only.txt"), "dev\n");
    fx_commit(&fx.repo, "dev work");
    let wt = fx.worktree_path("task");
    let (base, sha) = create_task_repo(&fx.repo, None, "task", &wt, &mirror_of(&wt)).unwrap();
    assert_eq!(base, "dev");
    assert_eq!(sha, fx.sha("dev"));
    assert_ne!(sha, fx.sha("main"));
    assert!(wt.join("dev-only.txt").exists());
}

#[test]
fn create_task_repo_on_a_detached_head_without_base_is_no_current_branch() {
    let fx = Fixture::new();
    git(&fx.repo, &["checkout", "-q", "--detach"]);
    let wt = fx.worktree_path("task");
    let err = create_task_repo(&fx.repo, None, "task", &wt, &mirror_of(&wt)).unwrap_err();
    assert!(matches!(err, Error::NoCurrentBranch), "{err:?}");
    assert!(!fx.branch_exists("task"));
}

#[test]
fn create_task_repo_rejects_an_unknown_base_and_creates_nothing() {
    let fx = Fixture::new();
    let wt = fx.worktree_path("task");
    let err = create_task_repo(&fx.repo, Some("nope"), "task", &wt, &mirror_of(&wt)).unwrap_err();
    assert!(matches!(err, Error::UnknownBranch(ref b) if b == "nope"), "{err:?}");
    assert!(!fx.branch_exists("task"));
    assert!(!wt.exists());
    assert!(!mirror_of(&wt).exists());
}

#[test]
fn create_task_repo_rejects_an_existing_branch_and_creates_no_folder() {
    let fx = Fixture::new();
    git(&fx.repo, &["branch", "task"]);
    let wt = fx.worktree_path("task");
    let err = create_task_repo(&fx.repo, None, "task", &wt, &mirror_of(&wt)).unwrap_err();
    assert!(matches!(err, Error::BranchExists(_)), "{err:?}");
    assert!(!wt.exists());
    assert!(fx.branch_exists("task"), "the existing branch is left alone");
}

#[test]
fn create_task_repo_into_an_existing_folder_fails_leaving_no_branch_and_the_folder_intact() {
    let fx = Fixture::new();
    let wt = fx.worktree_path("task");
    write(&wt.join("precious.txt"), "keep me\n");
    let err = create_task_repo(&fx.repo, Some("main"), "task", &wt, &mirror_of(&wt)).unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(!fx.branch_exists("task"), "no branch is left behind");
    assert_eq!(fs::read_to_string(wt.join("precious.txt")).unwrap(), "keep me\n", "the folder is not touched");
    assert!(!mirror_of(&wt).exists());
    // The branch name is free for a retry elsewhere.
    let other = fx.worktree_path("other");
    create_task_repo(&fx.repo, Some("main"), "task", &other, &mirror_of(&other)).unwrap();
}

#[test]
fn create_task_repo_rolls_back_the_branch_when_the_folder_cannot_be_made() {
    let fx = Fixture::new();
    // The working tree's parent is a file: the branch is made, then the folder fails.
    write(&fx.dir.join("blocker"), "a file\n");
    let wt = fx.dir.join("blocker/task");
    let err = create_task_repo(&fx.repo, Some("main"), "task", &wt, &fx.dir.join("mirrors/task.git")).unwrap_err();
    assert!(matches!(err, Error::Git(_) | Error::Io(_)), "{err:?}");
    assert!(!fx.branch_exists("task"), "the branch is deleted again");
    assert!(!fx.dir.join("mirrors/task.git").exists(), "no mirror is left behind");
    assert_eq!(fs::read_to_string(fx.dir.join("blocker")).unwrap(), "a file\n");
}

// ------------------------------------------------------------ remove_task_repo

#[test]
fn remove_task_repo_removes_both_folders_keeps_the_branch_and_is_idempotent() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    write(&wt.join("scratch.txt"), "x\n");
    remove_task_repo(&wt, &mirror_of(&wt)).unwrap();
    assert!(!wt.exists());
    assert!(!mirror_of(&wt).exists());
    assert!(fx.branch_exists("task"));
    remove_task_repo(&wt, &mirror_of(&wt)).unwrap();
    git(&fx.repo, &["checkout", "-q", "task"]);
}

#[test]
fn remove_task_repo_never_follows_a_symlink_out_of_the_task() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    // A canary folder outside the task, linked from inside it (as a sandbox could).
    let canary = fx.dir.join("canary");
    write(&canary.join("keep.txt"), "keep\n");
    std::os::unix::fs::symlink(&canary, wt.join("link-to-canary")).unwrap();
    std::os::unix::fs::symlink(&canary, wt.join(".git/objects/evil")).unwrap();
    remove_task_repo(&wt, &mirror_of(&wt)).unwrap();
    assert!(!wt.exists());
    assert_eq!(fs::read_to_string(canary.join("keep.txt")).unwrap(), "keep\n");
}

#[test]
fn delete_branch_deletes_and_tolerates_a_missing_branch() {
    let fx = Fixture::new();
    git(&fx.repo, &["branch", "gone"]);
    delete_branch(&fx.repo, "gone").unwrap();
    assert!(!fx.branch_exists("gone"));
    delete_branch(&fx.repo, "gone").unwrap();
}

// ------------------------------------------------------------------------ diff

#[test]
fn diff_of_a_fresh_task_is_empty_and_based_on_the_base_tip() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(d.base, fx.sha("main"));
    assert!(d.files.is_empty(), "{:#?}", d.files);
}

#[test]
fn diff_lists_untracked_files_as_added_including_inside_new_nested_folders() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    write(&wt.join("new.txt"), "a\nb\n");
    write(&wt.join("deep/nested/dir/file.rs"), "fn x() {}\n");
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(paths(&d.files), ["deep/nested/dir/file.rs", "new.txt"]);
    let new = file(&d.files, "new.txt");
    assert_eq!((new.status, new.additions, new.deletions, new.binary), ("added", 2, 0, false));
    assert_eq!(new.old_path, None);
    assert!(new.uncommitted);
    assert!(new.patch.starts_with("diff --git a/new.txt b/new.txt"), "{}", new.patch);
    assert!(new.patch.contains("+a\n+b\n"), "{}", new.patch);
    let nested = file(&d.files, "deep/nested/dir/file.rs");
    assert_eq!((nested.status, nested.additions), ("added", 1));
}

#[test]
fn diff_counts_exact_additions_and_deletions_of_a_modified_file() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    // Change line 2, drop line 4, append two lines: +3 -2.
    write(&wt.join("src/lib.rs"), "fn one() {}\nfn TWO() {}\nfn three() {}\nfn five() {}\nfn six() {}\nfn seven() {}\n");
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(paths(&d.files), ["src/lib.rs"]);
    let f = &d.files[0];
    assert_eq!((f.status, f.additions, f.deletions, f.binary), ("modified", 3, 2, false));
    assert!(f.patch.starts_with("diff --git a/src/lib.rs b/src/lib.rs"), "{}", f.patch);
    assert!(f.patch.contains("-fn two() {}\n+fn TWO() {}\n"), "{}", f.patch);
}

#[test]
fn diff_lists_a_removed_file_as_deleted() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    fs::remove_file(wt.join("to-delete.txt")).unwrap();
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(paths(&d.files), ["to-delete.txt"]);
    let f = &d.files[0];
    assert_eq!((f.status, f.additions, f.deletions), ("deleted", 0, 3));
    assert_eq!(f.old_path, None);
    assert!(f.uncommitted);
}

#[test]
fn diff_detects_a_plain_mv_without_git_add_as_a_rename() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    fs::create_dir(wt.join("moved")).unwrap();
    fs::rename(wt.join("rename-me.txt"), wt.join("moved/renamed.txt")).unwrap();
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(paths(&d.files), ["moved/renamed.txt"], "one rename, not an add and a delete");
    let f = &d.files[0];
    assert_eq!(f.status, "renamed");
    assert_eq!(f.old_path.as_deref(), Some("rename-me.txt"));
    assert_eq!((f.additions, f.deletions), (0, 0));
    assert!(f.uncommitted);
}

#[test]
fn diff_detects_a_git_mv_with_an_edit_as_a_rename() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    git(&wt, &["mv", "rename-me.txt", "renamed.txt"]);
    write(&wt.join("renamed.txt"), RENAME_ME.replace("theta", "THETA"));
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(paths(&d.files), ["renamed.txt"]);
    let f = &d.files[0];
    assert_eq!((f.status, f.old_path.as_deref()), ("renamed", Some("rename-me.txt")));
    assert_eq!((f.additions, f.deletions), (1, 1));
}

#[test]
fn diff_marks_a_binary_file() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    write(&wt.join("image.bin"), [0x89u8, b'P', b'N', b'G', 0, 0, 0, 1, 2, 3, 0, 255]);
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    let f = file(&d.files, "image.bin");
    assert!(f.binary);
    assert_eq!((f.status, f.additions, f.deletions), ("added", 0, 0));
}

#[test]
fn diff_leaves_out_files_ignored_by_gitignore() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    write(&wt.join("debug.log"), "noise\n");
    write(&wt.join("build/out.txt"), "artifact\n");
    write(&wt.join("kept.txt"), "kept\n");
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(paths(&d.files), ["kept.txt"]);
}

#[test]
fn diff_is_against_the_merge_base_when_the_base_branch_moves_ahead() {
    let fx = Fixture::new();
    let fork = fx.sha("main");
    let wt = fx.task("task");
    write(&wt.join("task.txt"), "task\n");
    commit_all(&wt, "task work").unwrap();
    // Unrelated work lands on main in the repository.
    write(&fx.repo.join("README.md"), "hello\nmore\n");
    write(&fx.repo.join("main-only.txt"), "main\n");
    fx_commit(&fx.repo, "main moves on");
    assert_ne!(fx.sha("main"), fork);

    let d = diff(&wt, "main", &fork).unwrap();
    assert_eq!(d.base, fork, "the merge base, not main's tip");
    assert_eq!(d.base, git(&fx.repo, &["merge-base", "main", "task"]));
    assert_eq!(paths(&d.files), ["task.txt"], "only the task's changes");
}

#[test]
fn diff_uses_the_fallback_sha_when_the_base_branch_is_gone() {
    let fx = Fixture::new();
    git(&fx.repo, &["branch", "dev"]);
    let wt = fx.worktree_path("task");
    let (_, base_sha) = create_task_repo(&fx.repo, Some("dev"), "task", &wt, &mirror_of(&wt)).unwrap();
    write(&wt.join("task.txt"), "task\n");
    commit_all(&wt, "task work").unwrap();
    write(&wt.join("README.md"), "changed\n");
    git(&fx.repo, &["branch", "-D", "dev"]);

    let d = diff(&wt, "dev", &base_sha).unwrap();
    assert_eq!(d.base, base_sha);
    assert_eq!(paths(&d.files), ["README.md", "task.txt"]);
}

#[test]
fn diff_marks_only_changes_not_yet_committed_as_uncommitted() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    write(&wt.join("src/lib.rs"), format!("{LIB_RS}fn six() {{}}\n"));
    write(&wt.join("nested/new.txt"), "new\n");
    fs::remove_file(wt.join("to-delete.txt")).unwrap();
    fs::rename(wt.join("rename-me.txt"), wt.join("renamed.txt")).unwrap();
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(paths(&d.files), ["nested/new.txt", "renamed.txt", "src/lib.rs", "to-delete.txt"]);
    assert!(d.files.iter().all(|f| f.uncommitted), "{:#?}", d.files);

    commit_all(&wt, "everything").unwrap();
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(paths(&d.files), ["nested/new.txt", "renamed.txt", "src/lib.rs", "to-delete.txt"], "still the task's changes");
    assert_eq!(file(&d.files, "renamed.txt").status, "renamed");
    assert!(d.files.iter().all(|f| !f.uncommitted), "{:#?}", d.files);

    write(&wt.join("src/lib.rs"), format!("{LIB_RS}fn six() {{}}\nfn seven() {{}}\n"));
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    let lib = file(&d.files, "src/lib.rs");
    assert!(lib.uncommitted);
    assert_eq!((lib.additions, lib.deletions), (2, 0), "counts stay against the base");
    let others: Vec<_> = d.files.iter().filter(|f| f.uncommitted).map(|f| f.path.as_str()).collect();
    assert_eq!(others, ["src/lib.rs"]);

    // Moving the committed rename again makes it uncommitted through its old path.
    fs::rename(wt.join("renamed.txt"), wt.join("renamed-again.txt")).unwrap();
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    let again = file(&d.files, "renamed-again.txt");
    assert_eq!((again.status, again.old_path.as_deref(), again.uncommitted), ("renamed", Some("rename-me.txt"), true));
}

#[test]
fn diff_marks_a_staged_change_as_uncommitted() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    write(&wt.join("staged.txt"), "staged\n");
    git(&wt, &["add", "staged.txt"]);
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    let f = file(&d.files, "staged.txt");
    assert_eq!((f.status, f.uncommitted), ("added", true));
}

// ------------------------------------------------------------------ commit_all

#[test]
fn commit_all_commits_everything_on_the_task_branch_as_seen_from_the_repository() {
    let fx = Fixture::new();
    let main_before = fx.sha("main");
    let wt = fx.task("task");
    write(&wt.join("new.txt"), "new\n");
    write(&wt.join("nested/dir/deep.txt"), "deep\n");
    write(&wt.join(".env.example"), "KEY=\n");
    write(&wt.join("src/lib.rs"), "changed\n");
    fs::remove_file(wt.join("to-delete.txt")).unwrap();
    write(&wt.join("debug.log"), "ignored\n");

    let sha = commit_all(&wt, "Task: do the thing\n\nWith a body.").unwrap();
    assert_eq!(sha.len(), 40);
    assert_eq!(fx.sha("task"), sha, "the branch moved, seen from the repository");
    assert_eq!(fx.sha("main"), main_before, "the base did not");
    assert_eq!(git(&fx.repo, &["rev-parse", "task^"]), main_before);

    let log = git(&fx.repo, &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", "task"]);
    assert_eq!(log, format!("{NAME} <{EMAIL}>|{NAME} <{EMAIL}>|Task: do the thing"));
    assert_eq!(git(&fx.repo, &["log", "-1", "--format=%B", "task"]), "Task: do the thing\n\nWith a body.");

    let changes = git(&fx.repo, &["show", "--name-status", "--format=", "task"]);
    let mut changes: Vec<_> = changes.lines().collect();
    changes.sort();
    assert_eq!(changes, ["A\t.env.example", "A\tnested/dir/deep.txt", "A\tnew.txt", "D\tto-delete.txt", "M\tsrc/lib.rs"]);

    assert_eq!(git(&wt, &["status", "--porcelain"]), "", "the worktree is clean after");
    assert!(wt.join("debug.log").exists(), "ignored files stay, uncommitted");
    assert_eq!(git(&fx.repo, &["status", "--porcelain"]), "", "the repository's own checkout is untouched");
}

#[test]
fn commit_all_rejects_a_blank_message() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    write(&wt.join("new.txt"), "new\n");
    for message in ["", "   ", "\n\t\n"] {
        assert!(matches!(commit_all(&wt, message), Err(Error::EmptyMessage)), "{message:?}");
    }
    assert_eq!(fx.sha("task"), fx.sha("main"));
}

#[test]
fn commit_all_on_a_clean_worktree_is_nothing_to_commit() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    assert!(matches!(commit_all(&wt, "nothing"), Err(Error::NothingToCommit)));
    write(&wt.join("debug.log"), "ignored only\n");
    assert!(matches!(commit_all(&wt, "nothing"), Err(Error::NothingToCommit)));

    write(&wt.join("new.txt"), "new\n");
    commit_all(&wt, "something").unwrap();
    assert!(matches!(commit_all(&wt, "again"), Err(Error::NothingToCommit)));
}

#[test]
fn commit_all_without_any_configured_identity_is_no_identity() {
    // No identity in the repository; point libgit2's global, XDG and system config
    // at an empty folder (rather than HOME, which libgit2 reads once per process).
    // Process-wide: nextest runs this test in its own process, and every other
    // test's repository carries its own identity anyway.
    let empty = TempDir::new().unwrap();
    for level in [git2::ConfigLevel::Global, git2::ConfigLevel::XDG, git2::ConfigLevel::System] {
        // SAFETY: set before this test's first libgit2 call, which reads these paths.
        unsafe { git2::opts::set_search_path(level, empty.path()).unwrap() };
    }
    let fx = Fixture::without_identity();
    let wt = fx.task("task");
    write(&wt.join("new.txt"), "new\n");
    assert!(matches!(commit_all(&wt, "no one"), Err(Error::NoIdentity)));
    assert_eq!(fx.sha("task"), fx.sha("main"));
}

// ------------------------------------------- what a hostile sandbox can send back

#[test]
fn a_symlink_to_a_host_file_comes_back_as_a_symlink_never_as_the_file() {
    let fx = Fixture::new();
    let secret = fx.dir.join("host-secret.txt");
    write(&secret, "HOST-SECRET-CONTENT\n");
    let wt = fx.task("task");
    std::os::unix::fs::symlink(&secret, wt.join("innocent.txt")).unwrap();
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    let f = file(&d.files, "innocent.txt");
    assert!(f.patch.contains(&secret.display().to_string()), "the link's target is shown: {}", f.patch);
    assert!(f.patch.contains("new file mode 120000"), "as a symlink: {}", f.patch);
    let all = serde_json::to_string(&d).unwrap();
    assert!(!all.contains("HOST-SECRET-CONTENT"), "the target's content never appears");
    // Nor in any object of the mirror or the user's repository.
    for repo in [mirror_of(&wt), fx.repo.clone()] {
        let out = Command::new("git").args(["cat-file", "--batch-all-objects", "--batch"]).current_dir(&repo).output().unwrap();
        assert!(out.status.success());
        assert!(!String::from_utf8_lossy(&out.stdout).contains("HOST-SECRET-CONTENT"), "{}", repo.display());
    }
}

#[test]
fn a_sandbox_without_its_task_branch_is_task_repo_broken_and_the_users_branch_stays() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    write(&wt.join("work.txt"), "work\n");
    commit_all(&wt, "work").unwrap();
    let kept = fx.sha("task");
    git(&wt, &["checkout", "-q", "-b", "elsewhere"]);
    git(&wt, &["branch", "-D", "task"]);
    let err = diff(&wt, "main", &fx.sha("main")).unwrap_err();
    assert!(matches!(err, Error::TaskRepoBroken(_)), "{err:?}");
    assert!(err.to_string().contains("task"), "{err}");
    assert_eq!(fx.sha("task"), kept, "the user's branch keeps the work brought back last");
    // The fetch alone also refuses a sandbox that no longer advertises the branch.
    let err = sandbox::fetch(&wt).unwrap_err();
    assert!(matches!(err, Error::TaskRepoBroken(_)), "{err:?}");
}

#[test]
fn a_sandbox_that_sends_more_than_the_limit_is_refused() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    // 256 KiB of incompressible bytes, against a 64 KiB limit.
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let noise: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    write(&wt.join("big.bin"), noise);
    let out = sandbox::run_script(&wt, anycode_git::taskrepo::SNAPSHOT_SCRIPT, "snapshot", &["task"], &[], b"");
    assert!(out.status.success());
    let (stream, mut child) = sandbox::upload_pack(&wt, 64 * 1024);
    let err = anycode_git::taskrepo::fetch_into_mirror(&mirror_of(&wt), "task", stream).unwrap_err();
    let _ = child.kill();
    assert!(matches!(err, Error::TaskRepoBroken(_)), "{err:?}");
    assert!(err.to_string().contains("more than"), "{err}");
}

#[test]
fn bring_back_leaves_a_branch_the_user_moved_alone() {
    let fx = Fixture::new();
    let wt = fx.task("task");
    write(&wt.join("a.txt"), "a\n");
    commit_all(&wt, "agent work").unwrap();
    // The user commits on the task branch in their own repository meanwhile.
    git(&fx.repo, &["checkout", "-q", "task"]);
    write(&fx.repo.join("mine.txt"), "mine\n");
    fx_commit(&fx.repo, "user work");
    let users = fx.sha("task");
    git(&fx.repo, &["checkout", "-q", "main"]);
    write(&wt.join("b.txt"), "b\n");
    let err = commit_all(&wt, "more agent work").unwrap_err();
    assert!(matches!(err, Error::BranchDiverged(_)), "{err:?}");
    assert_eq!(fx.sha("task"), users, "the user's commit is not overwritten");
    // Only refs/heads/task ever changed in the user's repository.
    let refs = git(&fx.repo, &["for-each-ref", "--format=%(refname)"]);
    assert_eq!(refs.lines().collect::<Vec<_>>(), ["refs/heads/main", "refs/heads/task"]);
}

#[test]
fn an_older_anycode_worktree_moves_to_a_repository_of_its_own_keeping_its_files() {
    let fx = Fixture::new();
    // What an older AnyCode made: a git worktree of the user's repository, with a
    // commit and uncommitted work in it.
    let wt = fx.worktree_path("legacy");
    git(&fx.repo, &["worktree", "add", "-q", "-b", "legacy", wt.to_str().unwrap(), "main"]);
    write(&wt.join("done.txt"), "committed\n");
    fx_commit(&wt, "old work");
    write(&wt.join("wip.txt"), "uncommitted\n");
    assert!(anycode_git::taskrepo::is_legacy_worktree(&wt));
    let name = fs::read_dir(fx.repo.join(".git/worktrees")).unwrap().flatten().next().unwrap().file_name().to_string_lossy().into_owned();

    anycode_git::taskrepo::migrate_legacy_worktree(&fx.repo, &wt, &mirror_of(&wt), "legacy").unwrap();
    anycode_git::remove_legacy_registration(&fx.repo, &name).unwrap();
    assert!(!anycode_git::taskrepo::is_legacy_worktree(&wt));
    assert!(wt.join(".git").is_dir());
    assert!(!fx.repo.join(".git/worktrees").join(&name).exists(), "the registration is gone");
    assert_eq!(git(&fx.repo, &["worktree", "list", "--porcelain"]).lines().filter(|l| l.starts_with("worktree ")).count(), 1);
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), fx.sha("legacy"));
    assert_eq!(git(&wt, &["status", "--porcelain"]), "?? wip.txt", "the working files stay, the index matches HEAD");
    // And it works as a task repository: the uncommitted file shows in the diff.
    let d = diff(&wt, "main", &fx.sha("main")).unwrap();
    assert_eq!(paths(&d.files), ["done.txt", "wip.txt"]);
    assert!(file(&d.files, "wip.txt").uncommitted && !file(&d.files, "done.txt").uncommitted);
}
