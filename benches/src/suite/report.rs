//! The report: one self-contained HTML file (plots inline as SVG, drawn by
//! plotters) beside the run's JSON.
//!
//! Plots: latency distributions per case; cost per page against pages
//! touched (tracked, untracked, naive); checkpoint time against dirty
//! pages and canister size; recovery time against log length; throughput
//! against client threads, fsync on and off.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::baseline::{self, Comparison};
use super::error::CaseContext;
use super::table::{human_ns, human_rate, human_ratio};
use super::{BenchError, Run};

/// A plot's series: a name and its (x, y) points.
type Series = (String, Vec<(f64, f64)>);

/// One axis: its label, whether it is logarithmic, how ticks read.
struct Axis {
    label: &'static str,
    log: bool,
    format: fn(f64) -> String,
}

/// Write `index.html` and `run.json` into `dir` (created if missing);
/// returns the HTML file's path.
pub fn write(dir: &Path, run: &Run, comparisons: Option<(&[Comparison], f64)>) -> Result<PathBuf, BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io(format!("creating {}", dir.display()), e))?;
    let json = serde_json::to_string_pretty(run).case("report")?;
    let json_path = dir.join("run.json");
    std::fs::write(&json_path, json).map_err(|e| BenchError::io(format!("writing {}", json_path.display()), e))?;
    let html = render(run, comparisons)?;
    let path = dir.join("index.html");
    std::fs::write(&path, html).map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

/// The report as one HTML document.
pub fn render(run: &Run, comparisons: Option<(&[Comparison], f64)>) -> Result<String, BenchError> {
    let m = &run.machine;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>canister-host benchmarks</title><style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
         table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}\
         td:first-child,th:first-child,td:last-child,th:last-child{text-align:left}pre{background:#f6f6f6;padding:1em}\
         .plot{margin:1em 0}</style></head><body><h1>canister-host benchmarks</h1>",
    );
    let _ = write!(
        html,
        "<table><tr><th>commit</th><td>{}</td></tr><tr><th>build</th><td>{}{}</td></tr><tr><th>CPU</th><td>{} ({} cores)</td></tr>\
         <tr><th>kernel</th><td>Linux {}</td></tr><tr><th>filesystem</th><td>{}</td></tr><tr><th>date</th><td>{}</td></tr></table>",
        esc(&m.commit),
        esc(&m.profile),
        if run.quick { ", --quick" } else { "" },
        esc(&m.cpu),
        m.cores,
        esc(&m.kernel),
        esc(&m.filesystem),
        esc(&m.date)
    );
    if let Some((comparisons, noise)) = comparisons {
        let _ = write!(
            html,
            "<h2>Against the stored baseline</h2><pre>{}</pre>",
            esc(&baseline::render(comparisons, noise))
        );
    }
    html.push_str("<h2>Plots</h2>");
    for svg in plots(run)? {
        let _ = write!(html, "<div class=\"plot\">{svg}</div>");
    }
    html.push_str(
        "<h2>Every case</h2><p>Latency per operation; ratios divide the case's cost (median, or inverse \
         throughput) by each baseline's, measured in the same run.</p><table><tr><th>case</th><th>p50</th>\
         <th>p90</th><th>p99</th><th>throughput</th><th>vs baselines</th></tr>",
    );
    for case in &run.results {
        let ratios: Vec<String> = case
            .baselines
            .iter()
            .filter_map(|b| run.ratio(&case.name, b).map(|r| format!("{} {}", human_ratio(r), esc(b))))
            .collect();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&case.name),
            human_ns(case.latency.p50_ns),
            human_ns(case.latency.p90_ns),
            human_ns(case.latency.p99_ns),
            case.throughput.map_or(String::new(), human_rate),
            ratios.join(", ")
        );
    }
    html.push_str("</table><h2>The IC's published figures</h2><ul>");
    for p in &run.published {
        let _ = write!(html, "<li><b>{}</b> = {}: {}</li>", esc(&p.name), human_ns(p.ns), esc(&p.source));
    }
    html.push_str("</ul></body></html>\n");
    Ok(html)
}

/// Every plot the run has data for.
fn plots(run: &Run) -> Result<Vec<String>, BenchError> {
    let percentile = Axis { label: "percentile", log: false, format: |v| format!("{v:.0}") };
    let latency = Axis { label: "latency (log)", log: true, format: human_ns };
    let mut out = Vec::new();
    let groups: [(&str, &[&str]); 3] = [
        ("Latency distribution: one message on the executor", &["update/", "query/"]),
        ("Latency distribution: through the host (per message)", &["host/", "scaling/", "disk/"]),
        ("Latency distribution: transfers under load", &["micropayments/", "throughput/"]),
    ];
    for (title, prefixes) in groups {
        let series: Vec<Series> = run
            .results
            .iter()
            .filter(|c| prefixes.iter().any(|p| c.name.starts_with(p)) && c.quantiles.len() == 101)
            .map(|c| (c.name.clone(), c.quantiles.iter().enumerate().map(|(p, v)| (p as f64, *v)).collect()))
            .collect();
        push_chart(&mut out, title, &percentile, &latency, series)?;
    }

    let pages = Axis { label: "pages touched (log)", log: true, format: |v| format!("{v:.0}") };
    let per_page = Axis { label: "cost per page (log)", log: true, format: human_ns };
    let mut series = Vec::new();
    for op in ["write", "read"] {
        for (prefix, mode) in [("", "tracked"), ("untracked/", "untracked"), ("naive/", "naive (IC 2021)")] {
            let points = [1u32, 16, 256]
                .iter()
                .filter_map(|n| {
                    run.cost_ns(&format!("{prefix}update/{op}_{n}_pages")).map(|c| (*n as f64, c / *n as f64))
                })
                .collect();
            series.push((format!("{op}, {mode}"), points));
        }
    }
    push_chart(&mut out, "Cost per page against pages touched", &pages, &per_page, series)?;

    let dirty = Axis { label: "dirty pages (log)", log: true, format: |v| format!("{v:.0}") };
    let time = Axis { label: "time (log)", log: true, format: human_ns };
    let mut series = Vec::new();
    for size in ["64MiB", "1GiB"] {
        for density in ["sparse", "dense"] {
            let points: Vec<(f64, f64)> = [(1.0, "1"), (100.0, "100"), (10_000.0, "10k")]
                .iter()
                .filter_map(|(x, label)| {
                    run.cost_ns(&format!("checkpoint/{density}_{size}_{label}_dirty")).map(|c| (*x, c))
                })
                .collect();
            if let Some(cp) = run.cost_ns(&format!("cp/{density}_{size}")) {
                let flat = points.iter().map(|(x, _)| (*x, cp)).collect();
                series.push((format!("cp --sparse=always, {density} {size}"), flat));
            }
            series.push((format!("checkpoint, {density} {size}"), points));
        }
    }
    push_chart(&mut out, "Checkpoint time against dirty pages and canister size", &dirty, &time, series)?;

    let rounds = Axis { label: "rounds in the log (log; 0 drawn at 1)", log: true, format: |v| format!("{v:.0}") };
    let mut recovery = Vec::new();
    let mut live = Vec::new();
    for (n, label) in [(0.0, "0"), (100.0, "100"), (400.0, "400"), (10_000.0, "10k")] {
        if let Some(c) = run.cost_ns(&format!("recovery/{label}_rounds")) {
            recovery.push((f64::max(n, 1.0), c));
        }
        if let Some(c) = run.cost_ns(&format!("live/{label}_rounds")) {
            live.push((n, c));
        }
    }
    let series = vec![("recovery (open + replay)".to_string(), recovery), ("the same rounds live".to_string(), live)];
    push_chart(&mut out, "Recovery time against log length", &rounds, &time, series)?;

    let threads = Axis { label: "client threads (log)", log: true, format: |v| format!("{v:.0}") };
    let rate = Axis { label: "transfers/s (log)", log: true, format: human_rate };
    let series = ["fsync", "no_fsync"]
        .iter()
        .map(|mode| {
            let points = [1u32, 2, 4, 8]
                .iter()
                .filter_map(|t| {
                    run.get(&format!("throughput/{mode}_{t}_threads"))
                        .and_then(|c| c.throughput)
                        .map(|r| (*t as f64, r))
                })
                .collect();
            (mode.to_string(), points)
        })
        .collect();
    push_chart(&mut out, "Throughput against client threads (10k accounts)", &threads, &rate, series)?;
    Ok(out)
}

/// Draw a line chart of `series` (those with points) into `out`, unless
/// none has any.
fn push_chart(out: &mut Vec<String>, title: &str, x: &Axis, y: &Axis, series: Vec<Series>) -> Result<(), BenchError> {
    let series: Vec<Series> = series.into_iter().filter(|(_, p)| !p.is_empty()).collect();
    if series.is_empty() {
        return Ok(());
    }
    out.push(chart(title, x, y, &series).case(&format!("plot {title}"))?);
    Ok(())
}

/// Plot on linear axes over log10 of logarithmic values, so one code path
/// serves both; tick labels show the real values.
fn chart(title: &str, x: &Axis, y: &Axis, series: &[Series]) -> Result<String, Box<dyn std::error::Error>> {
    let tx = |v: f64| if x.log { v.max(1e-9).log10() } else { v };
    let ty = |v: f64| if y.log { v.max(1e-9).log10() } else { v };
    let points: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().map(|(a, b)| (tx(*a), ty(*b)))).collect();
    let span = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = ((hi - lo) * 0.08).max(0.1);
        (lo - pad)..(hi + pad)
    };
    let (xr, yr) = (span(&mut points.iter().map(|p| p.0)), span(&mut points.iter().map(|p| p.1)));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(xr, yr)?;
        let real = |log: bool, v: f64| if log { 10f64.powf(v) } else { v };
        let (fx, fy) = (|v: &f64| (x.format)(real(x.log, *v)), |v: &f64| (y.format)(real(y.log, *v)));
        chart.configure_mesh().x_desc(x.label).y_desc(y.label).x_label_formatter(&fx).y_label_formatter(&fy).draw()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let line: Vec<(f64, f64)> = pts.iter().map(|(a, b)| (tx(*a), ty(*b))).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            if line.len() <= 12 {
                chart.draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 11))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// Escape text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
