#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The sandbox is a boundary (issue 13): a hostile script in a real sandbox tries
//! everything it can through git (hooks, fsmonitor, config, refs, alternates,
//! symlinks to host files, `.git` redirection with `core.worktree`, writing the
//! user's objects), then the owner diffs, commits, checks conflicts, updates from
//! base, pushes and deletes, and runs `git status` in the repository. Asserted: no
//! host command ran, the user's `.git` is unchanged outside `refs/heads/anycode/*`
//! (objects may be added, never changed), a host canary folder is untouched, no host
//! file's content appears in a response or a git object, and no answer is a 500.

use anycode_testkit::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file under `dir` with its bytes (symlinks as their target).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        if meta.file_type().is_symlink() {
            out.insert(rel, std::fs::read_link(&p).unwrap().to_string_lossy().into_owned().into_bytes());
        } else if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else {
            out.insert(rel, std::fs::read(&p).unwrap_or_default());
        }
    }
    out
}

/// The user's `.git` as the assertion sees it: everything but the task branches'
/// refs and logs. Objects are compared separately (they may only be added).
fn user_git(repo: &Path) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
    let all = tree(&repo.join(".git"));
    let (objects, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = all.into_iter().partition(|(k, _)| k.starts_with("objects/"));
    let rest = rest.into_iter().filter(|(k, _)| !k.starts_with("refs/heads/anycode/") && !k.starts_with("logs/refs/heads/anycode/")).collect();
    (rest, objects)
}

fn all_objects(repo: &Path) -> String {
    let out = Command::new("git").args(["-c", "safe.directory=*", "cat-file", "--batch-all-objects", "--batch"]).current_dir(repo).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` with `args` in the sandbox as its user, as the agent would.
fn in_sandbox(cid: &str, script: &str, args: &[&str]) -> String {
    let user = docker_inspect(cid)["Config"]["User"].as_str().unwrap().to_string();
    let out = Command::new("docker").args(["exec", "-u", &user, "-w", "/workspace", cid, "sh", "-c", script, "hostile"]).args(args).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Everything the sandbox can do to git from inside, pointing every command it
/// plants at the host canary folder (a path that exists only on the host: a
/// command that runs there leaves a `pwned-*` file).
const HOSTILE: &str = r#"set -u
C="$1"; S="$2"; O="$3"; R="$4"
cd /workspace
for h in pre-commit post-commit post-checkout post-merge pre-push reference-transaction pre-auto-gc post-rewrite post-index-change fsmonitor-watchman; do
  printf '#!/bin/sh\ntouch "%s/pwned-hook-%s" 2>/dev/null\nexit 0\n' "$C" "$h" > .git/hooks/$h
  chmod +x .git/hooks/$h
done
git config core.fsmonitor "touch $C/pwned-fsmonitor 2>/dev/null; true"
git config core.hooksPath /workspace/.git/hooks
git config core.sshCommand "touch $C/pwned-ssh"
git config core.pager "touch $C/pwned-pager"
git config credential.helper "!touch $C/pwned-credential"
git config remote.origin.url "http://127.0.0.1:9/stolen"
git config uploadpack.packObjectsHook "touch $C/pwned-packhook"
git config filter.evil.clean "touch $C/pwned-filter 2>/dev/null; cat"
printf '*.txt filter=evil\n' > .gitattributes
echo "$C" >> .git/objects/info/alternates
ln -s "$S" leak.txt
ln -s "$C" canary-link
# The user's git: the objects are read-only, the rest is not in the sandbox at all.
if touch "$O/pwned" 2>/dev/null; then echo WROTE-USER-OBJECTS; fi
if mkdir -p "$R/.git/hooks" 2>/dev/null && printf '#!/bin/sh\ntouch %s/pwned-user-hook\n' "$C" > "$R/.git/hooks/post-checkout" 2>/dev/null; then
  [ -e "$O/../HEAD" ] && echo REACHED-USER-GIT
fi
echo "agent work" > agent.txt
git add agent.txt && git commit -q --no-verify -m "agent commit" && echo COMMITTED
echo "uncommitted" > wip.txt
"#;

/// Breaks the sandbox's repository the way the issue describes: `.git` becomes a
/// `gitdir:` file naming another repository whose `core.worktree` is a host folder.
const REDIRECT: &str = r#"set -u
C="$1"
cd /workspace
git init -q --bare .evil
git --git-dir=.evil config core.bare false
git --git-dir=.evil config core.worktree "$C"
mv .git .git-moved
printf 'gitdir: .evil\n' > .git
echo REDIRECTED
"#;

fn assert_no_500(what: &str, st: u16, body: &Value, secret: &str) {
    assert!(st < 500, "{what} answered {st}: {body}");
    assert!(!body.to_string().contains(secret), "{what} leaked the host file: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_sandbox_cannot_reach_the_host_through_git() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let host = tempfile::tempdir().unwrap();
    let canary = host.path().canonicalize().unwrap().join("canary");
    std::fs::create_dir_all(&canary).unwrap();
    std::fs::write(canary.join("precious.txt"), "do not touch\n").unwrap();
    let secret_value = format!("HOST-SECRET-{}", std::process::id());
    let secret = host.path().canonicalize().unwrap().join("secret.txt");
    std::fs::write(&secret, format!("{secret_value}\n")).unwrap();
    let canary_before = tree(&canary);

    let t = s.create_task(&p, json!({"title": "Hostile", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    let branch = t["branch"].as_str().unwrap().to_string();
    let objects = s.repo.join(".git/objects").canonicalize().unwrap();

    // The container sees the user's objects read-only and nothing else of its .git.
    let c = docker_inspect(&cid);
    let mounts = c["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    let obj_mount = mounts.iter().find(|m| m["Destination"] == objects.to_str().unwrap()).expect("objects mounted");
    assert_eq!(obj_mount["RW"], false, "the user's objects are read-only");
    assert!(!mounts.iter().any(|m| m["Source"] == s.repo.join(".git").to_str().unwrap()), "the user's .git is not mounted");

    // The user's .git before anything hostile happens (git status refreshes the index).
    git(&s.repo, &["status", "--porcelain"]);
    let (git_before, objects_before) = user_git(&s.repo);

    let said = in_sandbox(&cid, HOSTILE, &[canary.to_str().unwrap(), secret.to_str().unwrap(), objects.to_str().unwrap(), s.repo.to_str().unwrap()]);
    assert!(said.contains("COMMITTED"), "{said}");
    assert!(!said.contains("WROTE-USER-OBJECTS"), "{said}");
    assert!(!said.contains("REACHED-USER-GIT"), "{said}");

    // The base moves on (a file the task does not touch), so update-from-base merges.
    std::fs::write(s.repo.join("base.txt"), "base moved\n").unwrap();
    git(&s.repo, &["add", "base.txt"]);
    git(&s.repo, &["commit", "-q", "-m", "base moves"]);
    git(&s.repo, &["status", "--porcelain"]);
    let (git_before2, _) = user_git(&s.repo);
    assert_ne!(git_before, git_before2, "main moved");
    let git_before = git_before2;

    // The owner at work: diff, commit, conflicts, update from base, push.
    let (st, d) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!(st, 200, "{d}");
    assert_no_500("diff", st, &d, &secret_value);
    let files = d["files"].as_array().unwrap();
    let leak = files.iter().find(|f| f["path"] == "leak.txt").expect("the symlink is in the diff");
    let patch = leak["patch"].as_str().unwrap();
    assert!(patch.contains("new file mode 120000") && patch.contains(secret.to_str().unwrap()), "shown as a symlink: {patch}");
    assert!(files.iter().any(|f| f["path"] == "agent.txt" && f["uncommitted"] == false), "the agent's own commit: {d}");
    assert!(files.iter().any(|f| f["path"] == "wip.txt" && f["uncommitted"] == true), "uncommitted work is seen: {d}");
    assert!(git(&s.repo, &["log", "--format=%s", &branch]).contains("agent commit"), "the agent's commit is on the user's branch");

    let (st, c) = s.post(&format!("/api/tasks/{id}/commit"), json!({"message": "Owner commits"})).await;
    assert_eq!(st, 200, "{c}");
    assert_no_500("commit", st, &c, &secret_value);
    let log = git(&s.repo, &["log", "--format=%s|%an", &branch]);
    assert!(log.starts_with("Owner commits|Test User\nagent commit|"), "{log}");

    let (st, c) = s.get(&format!("/api/tasks/{id}/conflicts")).await;
    assert_eq!(st, 200, "{c}");
    assert_no_500("conflicts", st, &c, &secret_value);
    assert_eq!(c["behind"], 1, "{c}");

    let (st, u) = s.post(&format!("/api/tasks/{id}/update-from-base"), json!({})).await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["result"], "merged", "{u}");
    assert!(git(&s.repo, &["log", "-1", "--format=%s", &branch]).starts_with("Merge branch 'main'"));

    // Push: the remote the sandbox named is the sandbox's own; the user's repository
    // has none, so AnyCode refuses plainly.
    let (st, e) = s.post(&format!("/api/tasks/{id}/push"), json!({})).await;
    assert!((400..500).contains(&st), "{st} {e}");
    assert_no_500("push", st, &e, &secret_value);

    // Now the sandbox redirects its .git to a repository whose worktree is the host
    // canary folder. Everything refuses plainly, nothing leaks, nothing is written.
    let said = in_sandbox(&cid, REDIRECT, &[canary.to_str().unwrap()]);
    assert!(said.contains("REDIRECTED"), "{said}");
    let (st, e) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("TASK_REPO_BROKEN")), "{e}");
    for (what, st, body) in [
        ("diff", s.get(&format!("/api/tasks/{id}/diff")).await),
        ("commit", s.post(&format!("/api/tasks/{id}/commit"), json!({"message": "after the redirect"})).await),
        ("conflicts", s.get(&format!("/api/tasks/{id}/conflicts")).await),
        ("update-from-base", s.post(&format!("/api/tasks/{id}/update-from-base"), json!({})).await),
    ]
    .map(|(w, (st, b))| (w, st, b))
    {
        assert_no_500(what, st, &body, &secret_value);
        if st != 200 {
            assert_eq!(body["error"]["code"], "TASK_REPO_BROKEN", "{what}: {body}");
            assert!(body["error"]["message"].as_str().unwrap().contains("terminal"), "says what to do: {body}");
        }
    }
    let (st, pc) = s.get(&format!("/api/projects/{p}/conflicts")).await;
    assert_no_500("project conflicts", st, &pc, &secret_value);

    // Delete: only AnyCode's folders go; the canary behind a symlink stays.
    let workspace = PathBuf::from(t["worktree"].as_str().unwrap());
    let mirror = s.data_dir().join("mirrors").join(format!("{id}.git"));
    let mirror_objects = all_objects(&mirror);
    let (st, e) = s.delete(&format!("/api/tasks/{id}")).await;
    assert_eq!(st, 204, "{e}");
    assert!(!workspace.exists() && !mirror.exists());
    assert!(git(&s.repo, &["log", "--format=%s", &branch]).contains("Owner commits"), "delete keeps the branch with the work");

    // The assertions of the issue.
    let (git_after, objects_after) = user_git(&s.repo);
    assert_eq!(git_before.keys().collect::<Vec<_>>(), git_after.keys().collect::<Vec<_>>(), "no file of the user's .git added or removed outside refs/heads/anycode/");
    for (k, v) in &git_before {
        assert!(git_after[k] == *v, "{k} changed in the user's .git");
    }
    for (k, v) in &objects_before {
        assert_eq!(objects_after.get(k), Some(v), "object file {k} changed or went");
    }
    assert_eq!(tree(&canary), canary_before, "the host canary folder is untouched");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), format!("{secret_value}\n"));
    for objects in [all_objects(&s.repo), mirror_objects] {
        assert!(!objects.contains(&secret_value), "a host file's content is in a git object");
    }
    // The owner runs git in their repository: nothing the sandbox planted runs.
    git(&s.repo, &["status"]);
    git(&s.repo, &["log", "--oneline", "-3", &branch]);
    let planted: Vec<String> = std::fs::read_dir(&canary).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("pwned")).collect();
    assert!(planted.is_empty(), "a command the sandbox planted ran on the host: {planted:?}");
    let refs = git(&s.repo, &["for-each-ref", "--format=%(refname)"]);
    assert!(refs.lines().all(|r| ["refs/heads/main", "refs/heads/dev"].contains(&r) || r.starts_with("refs/heads/anycode/")), "{refs}");
}

/// The address of the host on Docker's default bridge (`docker0`), as containers on
/// it reach the host.
fn docker0_address() -> Option<String> {
    let out = Command::new("ip").args(["-4", "-o", "addr", "show", "docker0"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let inet = text.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
    Some(inet.split('/').next()?.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_sandboxs_work_comes_out_through_a_helper_without_network() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Exits", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    let branch = t["branch"].as_str().unwrap().to_string();

    // A host service on every address, which a planted clean filter tries to reach
    // while AnyCode brings the work out.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = docker0_address().unwrap_or_else(|| "172.17.0.1".into());
    // Control: a container of the same image on Docker's default bridge does reach
    // it, so the check below can fail.
    let image = docker_inspect(&cid)["Config"]["Image"].as_str().unwrap().to_string();
    let reached = Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "curl", &image, "-s", "-m", "3", "-o", "/dev/null", &format!("http://{host}:{port}/")])
        .status()
        .unwrap();
    let _ = reached;
    eventually(5, "the control connection", || listener.accept().is_ok()).await;
    let plant = format!(
        r#"cd /workspace
git config filter.phone.clean "curl -s -m 2 http://{host}:{port}/ >/dev/null 2>&1; cat"
printf '*.txt filter=phone\n' > .gitattributes
echo "after the last sync" > late.txt
git add late.txt .gitattributes && git commit -q --no-verify -m "late commit" && echo OK"#
    );
    let said = in_sandbox(&cid, &plant, &[]);
    assert!(said.contains("OK"), "{said}");
    std::fs::write(PathBuf::from(t["worktree"].as_str().unwrap()).join("uncommitted.txt"), "left behind\n").unwrap();
    // The sandbox stops from outside (as when its agent exits): no exec is possible.
    assert!(Command::new("docker").args(["stop", "-t", "1", &cid]).status().unwrap().success());
    eventually(20, "the task to leave running", || docker_inspect(&cid)["State"]["Running"] == false).await;
    // Drain what the planted filter could have sent while it could still reach us.
    while listener.accept().is_ok() {}

    let (st, d) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!(st, 200, "{d}");
    let files: Vec<&str> = d["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(files.contains(&"late.txt") && files.contains(&"uncommitted.txt"), "{d}");
    assert!(git(&s.repo, &["log", "--format=%s", &branch]).contains("late commit"), "the commit reached the user's branch");
    assert!(listener.accept().is_err(), "the helper reached a host service: it must have no network");
    // The helper is gone, and a second diff does not start another one.
    let helpers = Command::new("docker").args(["ps", "-aq", "--filter", &format!("name=anycode-git-{id}")]).output().unwrap();
    assert!(helpers.stdout.is_empty(), "helper container left behind");
    let started = std::time::Instant::now();
    let (st, _) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!(st, 200);
    assert!(started.elapsed() < std::time::Duration::from_millis(500), "answered from the mirror");
}
