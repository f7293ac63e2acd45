//! Column-aligned text tables for human output (the layout of VPP's `show` commands):
//! a header row, then rows; numbers right-aligned, text left-aligned, two spaces between
//! columns, no trailing blanks.

use std::io::{self, Write};

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table being filled.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank, extra cells are ignored.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// True if no rows were added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the header and rows, each line prefixed by `indent` spaces.
    pub fn write(&self, out: &mut dyn Write, indent: usize) -> io::Result<()> {
        let cell = |row: &[String], i: usize| row.get(i).map_or("", String::as_str).to_string();
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|(h, _)| h.chars().count())
            .collect();
        for row in &self.rows {
            for (i, w) in widths.iter_mut().enumerate() {
                *w = (*w).max(cell(row, i).chars().count());
            }
        }
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = " ".repeat(indent);
            for (i, ((_, align), width)) in self.columns.iter().zip(&widths).enumerate() {
                let text = cell(row, i);
                let pad = width - text.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(&text);
                    }
                    Align::Left => {
                        line.push_str(&text);
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&[
            ("Name", Align::Left),
            ("Calls", Align::Right),
            ("Note", Align::Left),
        ]);
        t.row(vec!["ip4-lookup".into(), "7".into(), "x".into()]);
        t.row(vec!["eth".into(), "123456".into()]);
        let mut out = Vec::new();
        t.write(&mut out, 2).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "  Name         Calls  Note\n  ip4-lookup       7  x\n  eth         123456\n"
        );
    }
}
