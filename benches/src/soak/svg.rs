//! Line charts as SVG text: one polyline per series over time, axes with round
//! ticks from 0, a dashed line at the end of the warm-up and, per series, a
//! dashed line at its flat limit.

use std::fmt::Write;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 78.0;
/// the legend is on the right of the plot
const RIGHT: f64 = 190.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 48.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f",
];

/// One series: (seconds, value) points and its flat limit, if it has one.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub limit: Option<f64>,
}

/// A chart of `lines` over `0..=end_s` seconds.
pub struct Chart {
    pub title: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    pub warmup_s: f64,
    pub end_s: f64,
}

/// A round step (1, 2 or 5 times a power of ten) near `range / 5`.
fn step_for(range: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let rough = range / 5.0;
    let pow = 10f64.powf(rough.log10().floor());
    let m = rough / pow;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * pow
}

fn label(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{v:.decimals$}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart {
    pub fn render(&self) -> String {
        let top_value = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1).chain(l.limit))
            .fold(0.0f64, f64::max);
        let y_step = step_for(top_value * 1.05);
        let y_max = ((top_value * 1.05) / y_step).ceil().max(1.0) * y_step;
        let x_max = self.end_s.max(1.0);
        let x_step = step_for(x_max / 60.0) * 60.0;
        let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let x = |s: f64| LEFT + s / x_max * pw;
        let y = |v: f64| TOP + ph - v / y_max * ph;
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        // grid and y ticks
        let mut v = 0.0;
        while v <= y_max + y_step / 2.0 {
            let yy = y(v);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                yy + 4.0,
                label(v, y_step)
            );
            v += y_step;
        }
        // x ticks, in minutes
        let mut s = 0.0;
        while s <= x_max + 0.5 {
            let xx = x(s);
            let _ = writeln!(
                out,
                r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 5.0,
                TOP + ph + 18.0,
                label(s / 60.0, x_step / 60.0)
            );
            s += x_step;
        }
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#333"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
            TOP + ph,
            TOP + ph,
            LEFT + pw,
            TOP + ph
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">minutes since the traffic started</text>"#,
            LEFT + pw / 2.0,
            HEIGHT - 8.0
        );
        let _ = writeln!(
            out,
            r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + ph / 2.0,
            escape(&self.y_label)
        );
        // end of warm-up
        let wx = x(self.warmup_s);
        let _ = writeln!(
            out,
            r##"<line x1="{wx:.1}" y1="{TOP}" x2="{wx:.1}" y2="{:.1}" stroke="#777" stroke-dasharray="4 4"/><text x="{:.1}" y="{:.1}" fill="#555">end of warm-up</text>"##,
            TOP + ph,
            wx + 4.0,
            TOP + 12.0
        );
        for (i, line) in self.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            if let Some(limit) = line.limit {
                let ly = y(limit);
                let _ = writeln!(
                    out,
                    r#"<line x1="{wx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-opacity="0.6" stroke-dasharray="2 3"/>"#,
                    LEFT + pw
                );
            }
            let pts: Vec<String> = line
                .points
                .iter()
                .map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{}"/>"#,
                pts.join(" ")
            );
            let ly = TOP + 10.0 + 16.0 * i as f64;
            let lx = LEFT + pw + 12.0;
            let _ = writeln!(
                out,
                r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 4.0,
                lx + 18.0,
                ly - 4.0,
                lx + 24.0,
                escape(&line.name)
            );
        }
        if self.lines.iter().any(|l| l.limit.is_some()) {
            let ly = TOP + 10.0 + 16.0 * self.lines.len() as f64;
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{ly:.1}" fill="#555">dotted: flat limit</text>"##,
                LEFT + pw + 12.0
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(step_for(100.0), 20.0);
        assert_eq!(step_for(7.0), 2.0);
        assert_eq!(step_for(0.0), 1.0);
        assert!((step_for(0.3) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn renders_every_series() {
        let chart = Chart {
            title: "RSS <MiB>".into(),
            y_label: "MiB".into(),
            lines: vec![
                Line {
                    name: "replica 1".into(),
                    points: vec![(0.0, 10.0), (60.0, 12.0), (120.0, 12.5)],
                    limit: Some(13.2),
                },
                Line {
                    name: "replica 2".into(),
                    points: vec![(0.0, 11.0), (120.0, 11.5)],
                    limit: None,
                },
            ],
            warmup_s: 60.0,
            end_s: 120.0,
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("RSS &lt;MiB&gt;"), "{svg}");
        assert!(svg.contains("end of warm-up"), "{svg}");
    }
}
