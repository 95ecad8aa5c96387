//! How `get` and `list` commands print: `-o table|wide|json|yaml|name`, and
//! tables whose columns are as wide as their longest cell (a long name
//! never pushes the rest of its row out of line).

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// Output format of a `get` or `list` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The table with more columns.
    Wide,
    /// JSON, as the API returns it.
    Json,
    /// YAML (for `slice get`: the spec, which `slice apply -f` takes back).
    Yaml,
    /// Names only, one per line.
    Name,
}

/// The `-o` option of a `get` or `list` command (`--json` is kept as a
/// hidden synonym of `-o json`).
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
    /// Same as `-o json`.
    #[arg(long, hide = true)]
    pub json: bool,
}

impl OutputArgs {
    /// The format asked for.
    pub fn format(&self) -> Format {
        if self.json { Format::Json } else { self.output }
    }
}

/// Prints `v` as JSON or YAML; `false` for the other formats (the caller
/// prints those).
pub fn print_data<T: Serialize>(format: Format, v: &T) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(v)?)?,
        Format::Yaml => write!(out, "{}", serde_yaml_ng::to_string(v)?)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Prints names one per line.
pub fn print_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for n in names {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table: a header, rows, and each column as wide as its widest cell.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table { columns: columns.iter().map(|(h, a)| (h.to_string(), *a)).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, two spaces between columns, no trailing blanks.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| self.rows.iter().map(|r| width(&r[i])).chain([width(&self.columns[i].0)]).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.clone()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - width(c);
                match self.columns[i].1 {
                    Align::Left => {
                        line.push_str(c);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(c);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) -> Result<()> {
        std::io::stdout().lock().write_all(self.render().as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_longest_cell() {
        let mut t = Table::new(&[("NAME", Align::Left), ("NODES", Align::Right), ("OWNER", Align::Left)]);
        t.row(vec!["red".into(), "3".into(), "alice".into()]);
        t.row(vec!["a-very-long-slice-name-x".into(), "12".into(), "bob".into()]);
        assert_eq!(
            t.render(),
            "NAME                      NODES  OWNER\n\
             red                           3  alice\n\
             a-very-long-slice-name-x     12  bob\n"
        );
    }
}
