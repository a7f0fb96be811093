//! The status page (`GET /` of `--http-listen`) in a real browser: headless Chromium loads it,
//! its script fetches `/api/stream_tables`, and the rendered DOM must list every stream table
//! with figures. A screenshot is kept in `target/operations-status-page.png`.
//!
//! Needs Debian's `chromium` (scripts/install-deps.sh installs it); without the binary the test
//! says so and passes without checking anything.

mod operations_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use operations_support::{series, setup_http, wait_for};
use pgtrickle_e2e::{connect, exec, refresh};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

fn browser(bin: &Path, profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("run chromium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_lists_stream_tables_with_figures() {
    let Some(bin) = chromium() else {
        eprintln!(
            "SKIPPED: no chromium binary on PATH (scripts/install-deps.sh installs Debian's \
             chromium); the status page was not rendered"
        );
        return;
    };
    let (_cluster, proxy, http) = setup_http(&["--scheduler-interval-ms", "200"]);
    let client = connect(&proxy.conninfo("postgres", "postgres")).await;
    exec(
        &client,
        &proxy,
        "CREATE TABLE events (id serial PRIMARY KEY, kind text); \
         INSERT INTO events (kind) SELECT 'k' || (g % 4) FROM generate_series(1, 100) g",
    )
    .await;
    for (name, mode) in [("event_counts", "DIFFERENTIAL"), ("event_kinds", "FULL")] {
        exec(
            &client,
            &proxy,
            &format!(
                "SELECT pgtrickle.create_stream_table(name => '{name}', \
                 query => $$ SELECT kind, count(*) AS n FROM events GROUP BY kind $$, \
                 schedule => '2s', refresh_mode => '{mode}')"
            ),
        )
        .await;
    }
    for _ in 0..3 {
        exec(&client, &proxy, "INSERT INTO events (kind) VALUES ('k9')").await;
        refresh(&client, &proxy, "event_counts").await;
    }
    wait_for(
        &proxy,
        http,
        "/metrics",
        200,
        Duration::from_secs(30),
        |t| {
            !series(t, "pgtrickle_refresh_rows", &["public.event_counts"]).is_empty()
                && !series(t, "pgtrickle_refresh_rows", &["public.event_kinds"]).is_empty()
        },
    );

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{http}/");
    let out = browser(&bin, profile.path(), &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !dom.is_empty(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["public.event_counts", "public.event_kinds"] {
        let row_start = dom
            .find(&format!("data-stream-table=\"{name}\""))
            .unwrap_or_else(|| panic!("{name} is not listed:\n{dom}"));
        let row = &dom[row_start..];
        let row = &row[..row.find("</tr>").unwrap_or(row.len())];
        assert!(row.contains("ACTIVE"), "{row}");
        assert!(row.contains("<svg"), "no chart: {row}");
        // Staleness and duration are figures with a unit, not placeholders.
        for class in ["staleness", "duration"] {
            let cell = row
                .split(&format!("class=\"num {class}\">"))
                .nth(1)
                .and_then(|c| c.split('<').next())
                .unwrap_or_else(|| panic!("no {class} cell: {row}"));
            assert!(
                cell.chars().next().is_some_and(|c| c.is_ascii_digit())
                    && (cell.ends_with(" ms") || cell.ends_with(" s") || cell.ends_with(" min")),
                "{class} is {cell:?}: {row}"
            );
        }
    }
    assert!(
        dom.contains("DIFFERENTIAL") && dom.contains("FULL"),
        "{dom}"
    );
    assert!(dom.contains("<polyline"), "no line in any chart:\n{dom}");
    assert!(dom.contains("ready"), "{dom}");

    // The artefact: a screenshot of the page.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target).unwrap();
    let shot = target.join("operations-status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = browser(
        &bin,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,600",
            &url,
        ],
    );
    assert!(
        shot.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("status page screenshot: {}", shot.display());
}
