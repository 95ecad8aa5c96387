//! `netslice slice stats NAME`: a slice's figures per virtual link,
//! direction and hop, with rates. On a terminal it refreshes (like `top`)
//! until Ctrl-C; piped, with `--once` or with `-o json|yaml`, it prints once.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use netslice_api::Client;
use netslice_api::types::{HopStats, SliceCheck, SliceStats};

use crate::output::{Align, Format, Table, print_data};

/// Shows `name`'s figures, refreshing every `every` on a terminal.
pub async fn run(client: &Client, name: &str, format: Format, once: bool, every: Duration) -> Result<()> {
    netslice_api::Route::slice_stats(name)?;
    let live = !once && matches!(format, Format::Table | Format::Wide) && std::io::stdout().is_terminal();
    loop {
        let stats = client.slice_stats(name).await?;
        if print_data(format, &stats)? {
            return Ok(());
        }
        let text = render(&stats, format == Format::Wide);
        if !live {
            print!("{text}");
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        // Home and clear, then the table: a screen that refreshes in place.
        write!(out, "\x1b[H\x1b[2J{text}\n(refreshing every {}s; Ctrl-C to stop)\n", every.as_secs_f64())?;
        out.flush()?;
        drop(out);
        tokio::time::sleep(every).await;
    }
}

fn rate(bps: Option<f64>) -> String {
    match bps {
        None => "-".into(),
        Some(b) if b >= 1e9 => format!("{:.2} Gbit/s", b / 1e9),
        Some(b) if b >= 1e6 => format!("{:.1} Mbit/s", b / 1e6),
        Some(b) if b >= 1e3 => format!("{:.1} kbit/s", b / 1e3),
        Some(b) => format!("{b:.0} bit/s"),
    }
}

fn per_second(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
}

fn drops(h: &HopStats) -> String {
    if h.drops.values().all(|n| *n == 0) {
        return "0".into();
    }
    h.drops.iter().filter(|(_, n)| **n > 0).map(|(why, n)| format!("{why}:{n}")).collect::<Vec<_>>().join(",")
}

/// The table of a slice's figures.
pub fn render(s: &SliceStats, wide: bool) -> String {
    let mut cols = vec![
        ("LINK", Align::Left),
        ("DIR", Align::Left),
        ("HOP", Align::Left),
        ("STAGE", Align::Left),
        ("RATE", Align::Right),
        ("FRAMES/S", Align::Right),
        ("DROPS/S", Align::Right),
        ("QUEUED", Align::Right),
        ("DELAY", Align::Right),
        ("DROPS", Align::Left),
    ];
    if wide {
        cols.extend([
            ("FRAMES", Align::Right),
            ("BYTES", Align::Right),
            ("RESERVED", Align::Right),
            ("AGE", Align::Right),
        ]);
    }
    let mut t = Table::new(&cols);
    for l in &s.links {
        for h in &l.hops {
            t.row(vec![
                l.link.clone(),
                l.direction.as_str().into(),
                h.host.clone(),
                h.stage.map(|s| s.as_str()).unwrap_or("-").into(),
                rate(h.bits_per_second),
                per_second(h.frames_per_second),
                per_second(h.drops_per_second),
                h.queued_frames.to_string(),
                h.mean_queue_delay_ms.map(|d| format!("{d:.2} ms")).unwrap_or_else(|| "-".into()),
                drops(h),
                h.frames.to_string(),
                netslice_tools::bytes(h.bytes),
                rate(Some(l.reserved_bps as f64)),
                h.age_seconds.map(|a| format!("{a:.0}s")).unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    let mut out = format!("slice {}\n", s.slice);
    out.push_str(&t.render());
    if s.links.iter().all(|l| l.hops.is_empty()) {
        out.push_str("(no counters yet: the agents report every 2 s)\n");
    }
    out
}

/// Prints a guarantee check: per link and direction, the windows judged and
/// violated; the violated windows (all of them with `wide`).
pub fn print_check(c: &SliceCheck, wide: bool) {
    println!(
        "slice {} (a window meets its guarantee when delivered >= min(offered, guaranteed) - {:.0}%)",
        c.slice,
        c.tolerance * 100.0
    );
    let mut t = Table::new(&[
        ("LINK", Align::Left),
        ("DIR", Align::Left),
        ("GUARANTEED", Align::Right),
        ("WINDOWS", Align::Right),
        ("VIOLATED", Align::Right),
    ]);
    for l in &c.links {
        t.row(vec![
            l.link.clone(),
            l.direction.as_str().into(),
            rate(Some(l.guaranteed_bps as f64)),
            l.windows.len().to_string(),
            l.violated.to_string(),
        ]);
    }
    print!("{}", t.render());
    let mut w = Table::new(&[
        ("LINK", Align::Left),
        ("DIR", Align::Left),
        ("SECOND", Align::Right),
        ("OFFERED", Align::Right),
        ("DELIVERED", Align::Right),
        ("VERDICT", Align::Left),
        ("WHY", Align::Left),
    ]);
    for l in &c.links {
        for win in l.windows.iter().filter(|w| wide || w.verdict != "met") {
            w.row(vec![
                l.link.clone(),
                l.direction.as_str().into(),
                win.t.to_string(),
                rate(Some(win.offered_bps)),
                rate(Some(win.delivered_bps)),
                win.verdict.clone(),
                win.why.clone().unwrap_or_default(),
            ]);
        }
    }
    if !w.is_empty() {
        println!();
        print!("{}", w.render());
    }
}
