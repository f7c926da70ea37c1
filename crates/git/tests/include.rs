#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `.worktreeinclude`: ignored files of the owner's checkout copied into a new task's
//! tree, never tracked files, never through symlinks, never committed or shown as
//! changes (checked with the same snapshot and commit scripts the sandbox runs).

mod sandbox;

use anycode_git::include::copy_worktree_include;
use anycode_git::taskrepo::{create_task_repo, Oid};
use sandbox::{commit_all, diff, git_t as git, mirror_of, run_script, temp_repo, write_file as write};
use std::fs;

#[test]
fn ignored_files_listed_in_worktreeinclude_are_copied_and_stay_out_of_diffs_and_commits() {
    let (_tmp, dir, repo) = temp_repo();
    write(&repo.join(".gitignore"), ".env\n*.local\nsecrets/\nnode_modules/\nconfig/private/\nlink.env\noutside/\n");
    write(&repo.join("README.md"), "hi\n");
    write(&repo.join("tracked.local"), "tracked, in the base\n");
    write(&repo.join("config/app.json"), "{}\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["add", "-f", "tracked.local"]);
    git(&repo, &["commit", "-q", "-m", "initial"]);
    // The owner's ignored files.
    write(&repo.join(".env"), "SECRET=1\n");
    write(&repo.join("packages/api/.env"), "API=2\n");
    write(&repo.join("dev.local"), "local\n");
    write(&repo.join("tracked.local"), "changed by the owner\n");
    write(&repo.join("secrets/a key.txt"), "k\n");
    write(&repo.join("secrets/nested/b.txt"), "b\n");
    write(&repo.join("config/private/db.json"), "{\"db\":1}\n");
    write(&repo.join("config/private/other.json"), "{}\n");
    write(&repo.join("node_modules/x/.env"), "not wanted\n");
    write(&repo.join("secrets/.git/config"), "[core]\n");
    write(&repo.join("not-ignored.local.txt"), "untracked, not ignored\n");
    let outside = dir.join("host-secret");
    write(&outside, "HOST\n");
    std::os::unix::fs::symlink(&outside, repo.join("link.env")).unwrap();
    std::os::unix::fs::symlink(&dir, repo.join("outside")).unwrap();
    std::os::unix::fs::symlink(&dir, repo.join("secrets/up")).unwrap();
    // Ignored only by the owner's own exclude file, which the task's repository lacks.
    write(&repo.join(".git/info/exclude"), "owner-only.txt\n");
    write(&repo.join("owner-only.txt"), "mine\n");
    write(
        &repo.join(".worktreeinclude"),
        "# copied into every task\n.env\n*.local\nsecrets/\nconfig/private/db.json\nlink.env\noutside/host-secret\nREADME.md\nnot-ignored.local.txt\nowner-only.txt\n",
    );

    let wt = dir.join("worktrees").join("t1");
    let (_, base) = create_task_repo(&repo, Some("main"), "task", &wt, &mirror_of(&wt)).unwrap();
    let got = copy_worktree_include(&repo, &wt, Oid::from_str(&base).unwrap()).unwrap();

    assert_eq!(
        got.copied,
        vec![".env", "config/private/db.json", "dev.local", "owner-only.txt", "packages/api/.env", "secrets/a key.txt", "secrets/nested/b.txt"],
        "skipped: {:?}",
        got.skipped
    );
    assert_eq!(fs::read_to_string(wt.join(".env")).unwrap(), "SECRET=1\n");
    assert_eq!(fs::read_to_string(wt.join("secrets/a key.txt")).unwrap(), "k\n");
    // Tracked in the owner's checkout: never a candidate; the task's version stays.
    assert_eq!(fs::read_to_string(wt.join("tracked.local")).unwrap(), "tracked, in the base\n");
    // Symlinks are not followed, nested .git folders and unignored files not copied.
    assert!(wt.join("link.env").symlink_metadata().is_err());
    assert!(wt.join("outside").symlink_metadata().is_err());
    assert!(!wt.join("secrets/.git").exists());
    assert!(wt.join("secrets/up").symlink_metadata().is_err());
    assert!(!wt.join("node_modules").exists());
    assert!(!wt.join("not-ignored.local.txt").exists());
    assert!(!wt.join("config/private/other.json").exists());
    assert_eq!(got.bytes, ("SECRET=1\n".len() + "{\"db\":1}\n".len() + "local\n".len() + "mine\n".len() + "API=2\n".len() + 2 + 2) as u64);

    // The snapshot the sandbox takes sees no change; a commit holds none of them.
    let d = diff(&wt, "main", &base).unwrap();
    assert!(d.files.is_empty(), "copies show as changes: {:#?}", d.files);
    write(&wt.join("work.txt"), "the agent's work\n");
    commit_all(&wt, "work").unwrap();
    let files = git(&repo, &["ls-tree", "-r", "--name-only", "task"]);
    assert_eq!(files.lines().collect::<Vec<_>>(), vec![".gitignore", "README.md", "config/app.json", "tracked.local", "work.txt"]);
    let status = run_script(&wt, "git status --porcelain --untracked-files=all", "status", &[], &[], b"");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "");

    // Ignored and untracked in the owner's checkout, but tracked in the task's base
    // (another branch): the base's file stays, the owner's is not copied.
    git(&repo, &["checkout", "-q", "-b", "based"]);
    write(&repo.join("based.local"), "the base's\n");
    git(&repo, &["add", "-f", "based.local"]);
    git(&repo, &["commit", "-q", "-m", "based"]);
    git(&repo, &["checkout", "-q", "main"]);
    write(&repo.join("based.local"), "the owner's\n");
    let wt3 = dir.join("worktrees").join("t3");
    let (_, base3) = create_task_repo(&repo, Some("based"), "task3", &wt3, &mirror_of(&wt3)).unwrap();
    let got = copy_worktree_include(&repo, &wt3, Oid::from_str(&base3).unwrap()).unwrap();
    assert!(got.skipped.iter().any(|(p, why)| p == "based.local" && why.contains("tracks")), "{:?}", got.skipped);
    assert!(!got.copied.contains(&"based.local".to_string()));
    assert_eq!(fs::read_to_string(wt3.join("based.local")).unwrap(), "the base's\n");
}

#[test]
fn no_worktreeinclude_copies_nothing_and_a_symlinked_one_is_not_read() {
    let (_tmp, dir, repo) = temp_repo();
    write(&repo.join(".gitignore"), ".env\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "initial"]);
    write(&repo.join(".env"), "S=1\n");
    let wt = dir.join("worktrees").join("t1");
    let (_, base) = create_task_repo(&repo, Some("main"), "task", &wt, &mirror_of(&wt)).unwrap();
    let got = copy_worktree_include(&repo, &wt, Oid::from_str(&base).unwrap()).unwrap();
    assert!(got.copied.is_empty() && got.skipped.is_empty(), "{got:?}");

    write(&dir.join("elsewhere"), ".env\n");
    std::os::unix::fs::symlink(dir.join("elsewhere"), repo.join(".worktreeinclude")).unwrap();
    let wt2 = dir.join("worktrees").join("t2");
    let (_, base) = create_task_repo(&repo, Some("main"), "task2", &wt2, &mirror_of(&wt2)).unwrap();
    let got = copy_worktree_include(&repo, &wt2, Oid::from_str(&base).unwrap()).unwrap();
    assert!(got.copied.is_empty(), "{got:?}");
    assert_eq!(got.skipped.len(), 1);
    assert!(!wt2.join(".env").exists());
}
