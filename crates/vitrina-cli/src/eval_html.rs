//! `vitrina eval --report FILE.html`: an offline evaluation as one self-contained HTML page —
//! inline CSS and SVG, no script, nothing fetched — with, per protocol, a table of every
//! model's metrics (mean ± standard error, times) and a chart per metric with 95 % intervals.
//! Pure: the caller writes the file.

use std::fmt::Write as _;

use vitrina_algo::eval::{Report, METRICS};

/// 1.96 standard errors: the half-width of a normal 95 % interval.
const Z95: f64 = 1.96;

/// The page for `reports` (one per protocol), stamped `generated`.
pub fn html(reports: &[Report], generated: &str) -> String {
    let mut s = String::new();
    let title = match reports.first() {
        Some(r) => format!("Vitrina offline evaluation: {}", r.dataset),
        None => "Vitrina offline evaluation".to_string(),
    };
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n\
         <p class=\"muted\">Generated {} by <code>vitrina eval</code>. Bars are means over test users; whiskers \
         are 95&nbsp;% intervals (±1.96 standard errors); the best mean of each metric is in bold.</p>\n",
        esc(&title),
        esc(&title),
        esc(generated)
    );
    for r in reports {
        protocol_section(&mut s, r);
    }
    s.push_str("</body></html>\n");
    s
}

fn protocol_section(s: &mut String, r: &Report) {
    let metrics: Vec<&str> = METRICS
        .iter()
        .copied()
        .filter(|m| r.protocol.metrics().contains(m) && r.models.iter().any(|x| x.metrics.contains_key(*m)))
        .collect();
    let _ = write!(
        s,
        "<section><h2>{}</h2>\n<p class=\"muted\">seed {} · {} users · {} items · {} training interactions · \
         {} test users{} · primary metric <strong>{}</strong></p>\n",
        esc(r.protocol.name()),
        r.seed,
        r.n_users,
        r.n_items,
        r.n_train,
        r.n_test_users,
        if r.tuned { " · tuned on a validation split of the training data" } else { "" },
        esc(r.protocol.primary_metric())
    );
    s.push_str("<table><thead><tr><th>model</th>");
    for m in &metrics {
        let _ = write!(s, "<th class=\"num\">{}</th>", esc(m));
    }
    s.push_str("<th class=\"num\">train s</th><th class=\"num\">score s</th><th class=\"num\">tune s</th></tr></thead><tbody>\n");
    for x in &r.models {
        let _ = write!(s, "<tr><td>{}</td>", esc(&x.name));
        for m in &metrics {
            let best = r.models.iter().all(|o| o.metric(m) <= x.metric(m));
            let se = x.std_errors.get(*m).copied().unwrap_or(0.0);
            let cell = format!("{:.4} ± {:.4}", x.metric(m), se);
            let _ = if best {
                write!(s, "<td class=\"num\"><strong>{cell}</strong></td>")
            } else {
                write!(s, "<td class=\"num\">{cell}</td>")
            };
        }
        let _ = writeln!(
            s,
            "<td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td></tr>",
            x.train_seconds, x.score_seconds, x.tune_seconds
        );
    }
    s.push_str("</tbody></table>\n<div class=\"charts\">\n");
    for m in &metrics {
        chart(s, r, m);
    }
    s.push_str("</div>\n<details><summary>Parameters</summary><table><tbody>\n");
    for x in &r.models {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            esc(&x.name),
            esc(&x.params.to_string())
        );
    }
    s.push_str("</tbody></table></details></section>\n");
}

/// One metric across the models: a bar per model with its 95 % interval.
fn chart(s: &mut String, r: &Report, metric: &str) {
    const LEFT: f64 = 130.0;
    const WIDTH: f64 = 560.0;
    const ROW: f64 = 24.0;
    let rows: Vec<(&str, f64, f64)> = r
        .models
        .iter()
        .map(|x| (x.name.as_str(), x.metric(metric), x.std_errors.get(metric).copied().unwrap_or(0.0) * Z95))
        .collect();
    let top = rows.iter().map(|(_, v, h)| v + h).fold(0.0_f64, f64::max).max(1e-12);
    let x = |v: f64| LEFT + (WIDTH - LEFT - 70.0) * (v.max(0.0) / top);
    let height = ROW * rows.len() as f64 + 30.0;
    let _ = write!(
        s,
        "<figure><figcaption>{m}</figcaption><svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"{m} per model with 95 % intervals\">",
        m = esc(metric)
    );
    for (i, (name, v, half)) in rows.iter().enumerate() {
        let y = 10.0 + i as f64 * ROW;
        let mid = y + ROW / 2.0 - 2.0;
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.1}\">{}</text><rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"bar\"/>\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{mid:.1}\" y2=\"{mid:.1}\" class=\"whisker\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"value\">{v:.4}</text>",
            mid + 4.0,
            esc(name),
            y + 3.0,
            x(*v) - LEFT,
            ROW - 10.0,
            x(v - half),
            x(v + half),
            WIDTH - 64.0,
            mid + 4.0,
        );
    }
    s.push_str("</svg></figure>\n");
}

/// Text made safe for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#1d2330}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px}.muted{color:#667085}\
table{border-collapse:collapse;margin:12px 0;font-variant-numeric:tabular-nums}\
th,td{padding:5px 10px;border-bottom:1px solid #e3e6eb;text-align:left}.num{text-align:right}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}\
figure{margin:0;border:1px solid #e3e6eb;border-radius:8px;padding:10px}figcaption{font-weight:600;margin-bottom:4px}\
svg{width:100%;height:auto}svg text{font-size:12px;fill:#1d2330}.bar{fill:#8aa2ff}\
.whisker{stroke:#161b2e;stroke-width:2}code{font-size:12px;word-break:break-all}";

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use vitrina_algo::eval::{split::Protocol, ModelReport};

    use super::*;

    fn model(name: &str, ndcg: f64, se: f64) -> ModelReport {
        ModelReport {
            name: name.into(),
            params: serde_json::json!({"note": "<b>&"}),
            metrics: BTreeMap::from([
                ("ndcg@10".to_string(), ndcg),
                ("hr@10".to_string(), ndcg * 2.0),
                ("ndcg@20".to_string(), ndcg),
                ("recall@20".to_string(), ndcg * 2.0),
            ]),
            std_errors: BTreeMap::from([("ndcg@10".to_string(), se)]),
            train_seconds: 1.5,
            score_seconds: 0.25,
            tune_seconds: 0.0,
        }
    }

    fn report(protocol: Protocol) -> Report {
        Report {
            dataset: "data/<u>.data".into(),
            protocol,
            seed: 42,
            tuned: false,
            n_users: 10,
            n_items: 20,
            n_train: 100,
            n_test_users: 10,
            models: vec![model("ease", 0.30, 0.01), model("popularity", 0.10, 0.02)],
        }
    }

    #[test]
    fn each_protocol_has_a_table_and_a_chart_per_metric_it_reports() {
        let page = html(&[report(Protocol::LeaveLastOut), report(Protocol::Random8020)], "2026-12-04");
        assert_eq!(page.matches("<section>").count(), 2);
        assert!(page.contains("<h2>leave-last-out</h2>") && page.contains("<h2>random-80-20</h2>"));
        // Each protocol charts only its own metrics that the models report: two each.
        assert_eq!(page.matches("<figure>").count(), 4);
        assert_eq!(page.matches("class=\"bar\"").count(), 8);
        assert!(
            page.contains("<td class=\"num\"><strong>0.3000 ± 0.0100</strong></td>"),
            "the best mean is bold"
        );
        assert!(page.contains("<td class=\"num\">0.1000 ± 0.0200</td>"));
    }

    #[test]
    fn whiskers_span_the_95_percent_interval_on_the_bars_scale() {
        let page = html(&[report(Protocol::LeaveLastOut)], "now");
        // ndcg@10: top = 0.30 + 1.96 × 0.01 = 0.3196; ease's whisker from 0.2804 to 0.3196,
        // i.e. from 130 + 360 × 0.2804 / 0.3196 = 445.8 to the right end at 490.0.
        assert!(page.contains("x1=\"445.8\" x2=\"490.0\""), "{page}");
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_shows() {
        let page = html(&[report(Protocol::LeaveLastOut)], "now");
        for outside in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(outside), "{outside}");
        }
        assert!(page.contains("data/&lt;u&gt;.data"));
        assert!(page.contains("&lt;b&gt;&amp;"));
        assert!(!page.contains("<u>"));
    }
}
