//! The `scale` section (issue 14, goal 3): N running shell tasks on one server, for
//! each N asked (`--scale 10,100,500`):
//! - task creation, `POST /api/projects/{id}/tasks` until its answer (p50, p95);
//! - the server's memory per task (RSS after the N tasks minus before, over N);
//! - `GET /api/tasks` (all N) and a filtered page (`?status=running&limit=50`), p99
//!   over 200 calls each;
//! - `/ws/events` fan-out: 5 viewers, a task changed 100 times
//!   (`PUT /api/tasks/{id}/network`), from the request to each viewer's frame, p99;
//! - idle CPU, `--scale-idle-secs` each (default 30): AnyCode, and dockerd plus
//!   containerd and its shims (the whole machine's: other users' work shows too, so
//!   the same window with AnyCode stopped is measured as the baseline), first with
//!   usage read through Docker's stats (`ANYCODE_USAGE_SOURCE=docker`, the old way),
//!   then from cgroup files (the default);
//! - `kill -9` of the server, then a new one on the same data dir: the time until
//!   every agent terminal has replayed its history (an `echo history-I` typed
//!   before the kill) to a new viewer, 32 viewers connecting at a time (all and
//!   p50); and until every sandbox's relay listens again, probed from inside the
//!   sandbox (first, p50, last; waiting 60 s or 0.5 s a task, whichever is longer,
//!   and starting the cgroup files' idle window only then, and once every terminal
//!   has been quiet for 30 s, so the governor counts all N idle).

use anycode_egress::HOOK_PORT;
use anycode_testkit::{make_repo, remove_instance_containers, Api, ServeProcess, Term, TOKEN};
use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Viewers connecting at once after the restart, each to another terminal.
const RESTORE_VIEWERS: usize = 32;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU ticks (user + system) of the processes whose `comm` is one of `names`
/// (prefix match), or of `pid`.
fn cpu_ticks(names: &[&str], pid: Option<u32>) -> u64 {
    let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
    let mut sum = 0;
    for p in procs.flatten() {
        let Ok(n) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = &stat[open + 1..close];
        let hit = Some(n) == pid || (pid.is_none() && names.iter().any(|x| comm.starts_with(x)));
        if !hit {
            continue;
        }
        sum += stat_ticks(&stat);
    }
    sum
}

/// The pids of dockerd, containerd and the shim of container `cid` (full id): the
/// processes a flood in that container costs Docker. Fixed at the call, so a shim of
/// another container ending meanwhile does not take its ticks out of the sum.
pub(crate) fn docker_pids(cid: &str) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids = Vec::new();
    for p in procs.flatten() {
        let Ok(n) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(comm) = std::fs::read_to_string(p.path().join("comm")) else { continue };
        let comm = comm.trim();
        let hit = comm == "dockerd"
            || comm == "containerd"
            || (comm.starts_with("containerd-shim")
                && std::fs::read(p.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(cid)));
        if hit {
            pids.push(n);
        }
    }
    pids
}

/// CPU ticks of `pids` (a process that ended counts 0).
pub(crate) fn pids_ticks(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok()).map(|s| stat_ticks(&s)).sum()
}

/// utime + stime of one `/proc/<pid>/stat` line (fields 14 and 15, the 12th and
/// 13th after the `)` that ends the command name).
fn stat_ticks(stat: &str) -> u64 {
    let Some(close) = stat.rfind(')') else { return 0 };
    let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// Docker's daemons, in the order [`idle_cpu`] splits them: dockerd, containerd,
/// and containerd's shims (one per container; its execs' streams go through it).
const DOCKER_PARTS: [&[&str]; 3] = [&["dockerd"], &["containerd"], &["containerd-shim"]];

/// CPU ticks of dockerd, containerd (without its shims) and the shims.
fn docker_ticks() -> [u64; 3] {
    let shim = cpu_ticks(DOCKER_PARTS[2], None);
    [cpu_ticks(DOCKER_PARTS[0], None), cpu_ticks(DOCKER_PARTS[1], None).saturating_sub(shim), shim]
}

/// Percent of one core used over `secs` by AnyCode (`pid`, when given) and by
/// Docker's daemons, all of them and split as [`DOCKER_PARTS`].
async fn idle_cpu(pid: Option<u32>, secs: u64) -> (f64, f64, [f64; 3]) {
    let (a0, d0) = (pid.map(|p| cpu_ticks(&[], Some(p))).unwrap_or(0), docker_ticks());
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let el = t.elapsed().as_secs_f64();
    let (a1, d1) = (pid.map(|p| cpu_ticks(&[], Some(p))).unwrap_or(0), docker_ticks());
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS / el * 100.0;
    let parts = [rate(d0[0], d1[0]), rate(d0[1], d1[1]), rate(d0[2], d1[2])];
    (rate(a0, a1), parts.iter().sum(), parts)
}

/// `dockerd X, containerd Y, shims Z` (percent of a core).
fn split(p: &[f64; 3]) -> String {
    format!("dockerd {:.2}, containerd {:.2}, shims {:.2}", p[0], p[1], p[2])
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    super::pct(v, p)
}

/// Milliseconds for `docker run -d` of `task`'s image (`sleep infinity`), the
/// container removed afterwards (not timed); `None` when Docker refused.
fn raw_docker_run(task: &Value) -> Option<f64> {
    use std::process::Command;
    let cid = task["container_id"].as_str()?;
    let out = Command::new("docker").args(["inspect", "-f", "{{.Config.Image}}", cid]).output().ok()?;
    let image = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let t = Instant::now();
    let out = Command::new("docker").args(["run", "-d", "--rm", "--label", "anycode-bench=raw", &image, "sleep", "infinity"]).output().ok()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || id.is_empty() {
        return None;
    }
    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    Some(ms)
}

/// Starts `anycode serve` on `data` with the scale settings.
fn serve(bin: &Path, data: &Path, repo: Option<&Path>, n: usize, usage: &str) -> ServeProcess {
    let max = (n + 1).to_string();
    let env = [("ANYCODE_MAX_RUNNING", max.as_str()), ("ANYCODE_PAUSE_AFTER_MIN", "0"), ("ANYCODE_STOP_AFTER_MIN", "0"), ("ANYCODE_USAGE_SOURCE", usage), ("ANYCODE_SCROLLBACK_KB", "64")];
    let extra: Vec<&str> = match repo {
        Some(r) => vec!["--project", r.to_str().unwrap_or_default()],
        None => vec![],
    };
    ServeProcess::start_with_env(bin, data, &extra, &env)
}

/// Five viewers of `/ws/events`, the snapshot read.
async fn viewers(base: &str) -> Result<Vec<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>>> {
    let mut out = Vec::new();
    for _ in 0..5 {
        let mut req = format!("{}/ws/events", base.replacen("http", "ws", 1)).into_client_request()?;
        req.headers_mut().insert("Authorization", format!("Bearer {TOKEN}").parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"snapshot\"") => {}
            other => bail!("no snapshot on /ws/events: {other:?}"),
        }
        out.push(ws);
    }
    Ok(out)
}

/// One row of the README table, for `n` tasks.
pub async fn run(bin: &Path, n: usize, idle_secs: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let repo = make_repo(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let instance = super::instance_of(&data);
    struct Clean(String);
    impl Drop for Clean {
        fn drop(&mut self) {
            remove_instance_containers(&self.0);
        }
    }
    let _clean = Clean(instance);
    let s = serve(bin, &data, Some(&repo), n, "docker");
    let pid = s.child.id();
    let api = Api::new(&s.base);
    let (_, projects) = api.req(reqwest::Method::GET, "/api/projects", None).await;
    let project = projects[0]["id"].as_str().context("no project")?.to_string();
    let rss0 = super::rss_kb(pid);
    let mut create = Vec::new();
    let mut raw_run = Vec::new();
    let mut tasks: Vec<Value> = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let (st, task) = api.req(reqwest::Method::POST, &format!("/api/projects/{project}/tasks"), Some(json!({"title": format!("scale {i}"), "agent": "shell", "record": false}))).await;
        create.push(t.elapsed().as_secs_f64());
        if st != 201 {
            bail!("creating task {i} failed: {task}");
        }
        // The baseline, every 10th task: Docker alone starting a container of the
        // same image beside as many running ones (`docker run -d`, CLI included).
        if i % 10 == 9 {
            if let Some(ms) = raw_docker_run(&task) {
                raw_run.push(ms);
            }
        }
        tasks.push(task);
    }
    // Each new sandbox starts its relay (an exec); at 500 the last ones may still
    // start after the loop, and the list and fan-out below would measure that load.
    tokio::time::sleep(Duration::from_secs(3 + n as u64 / 10)).await;
    let rss1 = super::rss_kb(pid);
    let (_, list) = api.req(reqwest::Method::GET, "/api/tasks", None).await;
    let running = list.as_array().map(|a| a.iter().filter(|t| t["status"] == "running").count()).unwrap_or(0);

    // Each request's time is to its last byte (what the server costs); `parsed`
    // adds this client's parse of the body into JSON values (what runs A-M
    // measured: at 500 tasks, 0.7 MB parsed took a few ms of the figure).
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let req = http.get(format!("{}{path}", s.base)).bearer_auth(TOKEN);
        async move {
            let t = Instant::now();
            let resp = req.send().await?;
            let ok = resp.status().is_success();
            let body = resp.bytes().await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if !ok {
                bail!("GET {path} failed: {}", String::from_utf8_lossy(&body));
            }
            Ok::<_, anyhow::Error>((ms, body))
        }
    };
    let mut get_all = Vec::new();
    let mut get_all_parsed = Vec::new();
    let mut get_page = Vec::new();
    for _ in 0..200 {
        let (ms, body) = get("/api/tasks").await?;
        get_all.push(ms);
        let t = Instant::now();
        let v: Value = serde_json::from_slice(&body)?;
        get_all_parsed.push(ms + t.elapsed().as_secs_f64() * 1000.0);
        if v.as_array().map(Vec::len) != Some(n) {
            bail!("GET /api/tasks listed {} tasks, not {n}", v.as_array().map_or(0, Vec::len));
        }
        get_page.push(get("/api/tasks?status=running&limit=50").await?.0);
    }

    let mut ws = viewers(&s.base).await?;
    let mut fan = Vec::new();
    for i in 0..100 {
        let id = tasks[i % tasks.len()]["id"].as_str().unwrap_or_default().to_string();
        let t = Instant::now();
        let (st, e) = api.req(reqwest::Method::PUT, &format!("/api/tasks/{id}/network"), Some(json!({"add": [format!("fan{i}.example.com")]}))).await;
        if st != 200 {
            bail!("changing a task failed: {e}");
        }
        for v in ws.iter_mut() {
            loop {
                match tokio::time::timeout(Duration::from_secs(10), v.next()).await {
                    Ok(Some(Ok(Message::Text(txt)))) if txt.contains(&format!("fan{i}.example.com")) || (txt.contains("\"task\"") && txt.contains(&id)) => break,
                    Ok(Some(Ok(_))) => continue,
                    other => bail!("a viewer got no event: {other:?}"),
                }
            }
            fan.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    drop(ws);

    // Idle, usage through Docker's stats.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (any_docker, dock_docker, split_docker) = idle_cpu(Some(pid), idle_secs).await;

    // History to come back: each agent terminal runs `echo history-I` (an idle shell's
    // log is empty, so "any output" would wait forever).
    for (i, task) in tasks.iter().enumerate() {
        let term = task["terminals"][0]["id"].as_str().unwrap_or_default();
        let mut tm = Term::connect(&s.base, term, TOKEN).await;
        tm.run(&format!("echo history-{i}"), &format!("typed{i}")).await;
    }

    // kill -9, a new server reading usage from cgroup files: every terminal back,
    // its history (the line above) replayed to a new viewer.
    s.kill9();
    let t = Instant::now();
    let s = serve(bin, &data, None, n, "auto");
    // Serving: the listener is bound at once, but answers only after the reconcile.
    let health = reqwest::Client::new().get(format!("{}/api/health", s.base)).bearer_auth(TOKEN).timeout(Duration::from_secs(120)).send().await;
    let serving = t.elapsed().as_secs_f64();
    if !health.is_ok_and(|r| r.status().is_success()) {
        bail!("the new server did not answer /api/health");
    }
    // Every terminal asked for at once, a few dozen connections at a time (as many
    // viewers would), each until its history is there. Asked one after the other,
    // the figure was mostly this client's 500 round trips in a row.
    let opened: Vec<(bool, f64, Term)> = futures_util::stream::iter(tasks.iter().enumerate())
        .map(|(i, task)| {
            let base = s.base.clone();
            let term = task["terminals"][0]["id"].as_str().unwrap_or_default().to_string();
            async move {
                let mut tm = Term::connect(&base, &term, TOKEN).await;
                let want = format!("history-{i}\n");
                let deadline = Instant::now() + Duration::from_secs(30);
                while !tm.text().contains(&want) && Instant::now() < deadline {
                    match tokio::time::timeout(Duration::from_secs(5), tm.ws.next()).await {
                        Ok(Some(Ok(Message::Binary(b)))) => tm.output.extend_from_slice(&b),
                        Ok(Some(Ok(_))) | Err(_) => continue,
                        _ => break,
                    }
                }
                (tm.text().contains(&want), t.elapsed().as_secs_f64(), tm)
            }
        })
        .buffered(RESTORE_VIEWERS)
        .collect()
        .await;
    let back = opened.iter().filter(|(ok, _, _)| *ok).count();
    let mut back_at: Vec<f64> = opened.iter().filter(|(ok, _, _)| *ok).map(|(_, at, _)| *at).collect();
    let restore = back_at.iter().copied().fold(0.0, f64::max);
    let restore_p50 = pct(&mut back_at, 0.5);
    let mut probes = Vec::new();
    for (i, (_, _, mut tm)) in opened.into_iter().enumerate() {
        // Then, from inside the sandbox: when its relay (hooks, the egress proxy)
        // listens again. What is typed waits for the relay anyway (at most 15 s);
        // the loop makes the answer the port's, not the wait's. The interactive
        // shell survives a failed `exec` redirection, and waits with the `read`
        // builtin's timeout, so the loop forks nothing (at 500 sandboxes a `sleep`
        // every 0.5 s each was 1,000 forks a second, and a subshell with a 50 ms
        // sleep a load of 500: either slowed the relays it measured).
        tm.send(&format!("until exec 3<>/dev/tcp/127.0.0.1/{HOOK_PORT}; do read -t 0.5 _; done 2>/dev/null; exec 3>&-; echo relay-{i}-$((1+1))\r")).await;
        probes.push(tm);
    }
    let relay_wait = relay_deadline(n);
    let relay_times = relays_up(&mut probes, t, relay_wait).await;
    drop(probes);
    // The new server restarts every sandbox's relay (an exec each) after the kill:
    // the idle window waits for that to be over (4 s once every relay listens, else
    // 4 s plus 1 s per 10 tasks).
    let all_up = relay_times.iter().all(Option::is_some);
    tokio::time::sleep(Duration::from_secs(if all_up { 4 } else { 4 + n as u64 / 10 })).await;
    // And "all idle" means idle to AnyCode too: the governor reads a sandbox's usage
    // every 3 s while its terminals had output or input in the last 30 s, and every
    // 30 s after (engine's governor.rs, QUIET_USAGE_EVERY). Each terminal's last
    // output is its probe's answer, so the window starts 30 s after the last one.
    let last_answer = relay_times.iter().flatten().copied().fold(0.0, f64::max);
    let quiet_at = t + Duration::from_secs_f64(last_answer) + QUIET + Duration::from_secs(1);
    tokio::time::sleep_until(quiet_at.into()).await;
    let pid2 = s.child.id();
    let (any_cg, dock_cg, split_cg) = idle_cpu(Some(pid2), idle_secs).await;
    let (_, list) = api_of(&s).req(reqwest::Method::GET, "/api/tasks?limit=1", None).await;
    let usage_seen = !list[0]["usage"].is_null();
    s.kill9();
    // The baseline: the same sandboxes, AnyCode stopped (once their relays, whose
    // streams closed, have exited).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, dock_base, split_base) = idle_cpu(None, idle_secs).await;

    let mut create_ms: Vec<f64> = create.iter().map(|s| s * 1000.0).collect();
    println!("\n== scale: {n} running shell tasks ({running} running after creation) ==");
    println!("create (POST to 201)       p50 {:.0} ms, p95 {:.0} ms", pct(&mut create_ms, 0.5), pct(&mut create_ms, 0.95));
    if !raw_run.is_empty() {
        println!(
            "  baseline `docker run -d` of the image, every 10th task ({}): p50 {:.0} ms, p95 {:.0} ms",
            raw_run.len(),
            pct(&mut raw_run, 0.5),
            pct(&mut raw_run, 0.95)
        );
    }
    println!("server memory per task     {:.3} MB (RSS {:.1} -> {:.1} MB)", (rss1.saturating_sub(rss0)) as f64 / 1024.0 / n as f64, rss0 as f64 / 1024.0, rss1 as f64 / 1024.0);
    println!("GET /api/tasks (all {n})    p50 {:.2} ms, p99 {:.2} ms", pct(&mut get_all, 0.5), pct(&mut get_all, 0.99));
    println!("  with this client's JSON parse  p50 {:.2} ms, p99 {:.2} ms", pct(&mut get_all_parsed, 0.5), pct(&mut get_all_parsed, 0.99));
    println!("GET ?status=running&limit=50 p50 {:.2} ms, p99 {:.2} ms", pct(&mut get_page, 0.5), pct(&mut get_page, 0.99));
    println!("/ws/events fan-out, 5 viewers p50 {:.2} ms, p99 {:.2} ms", pct(&mut fan, 0.5), pct(&mut fan, 0.99));
    println!("idle {idle_secs} s, usage via Docker stats: AnyCode {any_docker:.2} %, dockerd+containerd {dock_docker:.2} % of a core ({})", split(&split_docker));
    println!("idle {idle_secs} s, usage via cgroup files: AnyCode {any_cg:.2} %, dockerd+containerd {dock_cg:.2} % of a core ({}; usage shown: {usage_seen})", split(&split_cg));
    println!("idle {idle_secs} s, AnyCode stopped:        dockerd+containerd {dock_base:.2} % of a core ({})", split(&split_base));
    println!(
        "AnyCode + the Docker CPU it causes: {:.2} % (Docker stats) vs {:.2} % (cgroup files) of a core",
        any_docker + (dock_docker - dock_base).max(0.0),
        any_cg + (dock_cg - dock_base).max(0.0)
    );
    println!("kill -9 -> every terminal back with its history: {back}/{n} in {restore:.2} s, p50 {restore_p50:.2} s (serving after {serving:.2} s; {RESTORE_VIEWERS} viewers connecting at a time)");
    let mut up: Vec<f64> = relay_times.iter().flatten().copied().collect();
    if up.is_empty() {
        println!("kill -9 -> relays listening again: 0/{n} within {} s", relay_wait.as_secs());
    } else {
        println!(
            "kill -9 -> relays listening again: {}/{n} within {} s, first {:.2} s, p50 {:.2} s, last {:.2} s",
            up.len(),
            relay_wait.as_secs(),
            pct(&mut up, 0.0),
            pct(&mut up, 0.5),
            pct(&mut up, 1.0)
        );
    }
    Ok(())
}

/// How long a sandbox's terminals must have had no output or input before the
/// governor counts it quiet (the engine's `QUIET_USAGE_EVERY`).
const QUIET: Duration = Duration::from_secs(30);

/// How long the bench waits for every relay after the restart: 60 s, or 0.5 s a
/// task (relays start a few a second on 2 cores, and the idle window after them is
/// only idle once they all listen).
fn relay_deadline(n: usize) -> Duration {
    Duration::from_secs(60.max(n as u64 / 2))
}

/// Reads every probe terminal (each typed the relay probe of its index, see above)
/// until its `relay-I-2` marker, at most `wait` after `since`: the seconds from
/// `since` to each marker, `None` for a relay not back.
async fn relays_up(probes: &mut [Term], since: Instant, wait: Duration) -> Vec<Option<f64>> {
    let deadline = since + wait;
    let waits = probes.iter_mut().enumerate().map(|(i, tm)| async move {
        let want = format!("relay-{i}-2");
        while !tm.text().contains(&want) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, tm.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => tm.output.extend_from_slice(&b),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
        Some(since.elapsed().as_secs_f64())
    });
    futures_util::future::join_all(waits).await
}

fn api_of(s: &ServeProcess) -> Api {
    Api::new(&s.base)
}
